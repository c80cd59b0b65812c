"""Grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245) in JAX, mirroring ``refimpl.attention``.

Shape legend: B batch, T query length, S key/value length, N query heads, K key/value heads (K = N is
MHA, K = 1 is MQA), R = N / K query heads per KV head, Dh head dim.

Head map: query head n reads KV head n // R. K/V are never repeated: q is regrouped to (B, T, K, R, Dh)
and contracted per KV head. Per query row i and key j:

    u_ij = scale * q_i . k_j                 scale = 1/sqrt(Dh) by default
    s_ij = c * tanh(u_ij / c)                only with softcap=c (Gemma 2)
    s_ij = -inf where key j is masked        (bottom-right causal, padding, window: refimpl.jax.masks)
    lse_i = m_i + log sum_j exp(s_ij - m_i), m_i = max_j s_ij;   o_i = sum_j exp(s_ij - lse_i) v_j

A fully masked row gives o_i = 0, lse_i = -inf and zero gradients, never NaN.
Sinks (gpt-oss; derivation in refimpl/attention.py): L_i = log(exp(z_n) + sum_j exp(s_ij)), p_ij = exp(s_ij -
L_i); a fully masked row gives o_i = 0 and lse_i = z_n. Non-finite values behind a mask never reach an output
or a gradient; a query that sees one gets NaN output and lse and sends no gradient (refimpl/attention_blocks.py).

NOTE(jax): masked garbage is kept out of every product by cleaning q, k and v on every call (non-finite
entries -> 0 by jnp.where; NumPy cleans only blocks that hold one) and poisoning the rows that see a bad
entry afterwards, with jnp.where: a differentiable program cannot skip it by a data-dependent branch.
jax.grad of the where() gives a poisoned row's output no cotangent, which is the NumPy backward's rule. The
decode step, forward only, branches instead (``grouped_attention(..., fast_path=True)``).

NOTE(jax): no blocking: XLA forms the whole (B, K, T, R, S) score tensor. Gradients come from ``jax.vjp``
(``attention_backward``); the row max m_i is under ``stop_gradient`` (softmax is shift-invariant, so this
changes no derivative and keeps the argmax out of the backward).
NOTE(jax): the second result is ``AttentionCache(lse)`` only (JAX keeps its own residuals), so
``out, cache = attention_forward(...); cache.lse`` reads the same in both packages.
NOTE(jax): arrays keep their dtype. For float16/bfloat16 inputs the scores, softmax statistics and matrix
product accumulators are float32 (``preferred_element_type``), as flash-attention does; probabilities are
rounded to the input dtype before the product with V. The scale multiplies the scores, not q (the NumPy
code scales q first): same value up to one rounding, and no extra rounding of q in low precision.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import attention as _np_attention
from ..attention import check_options  # noqa: F401  (NumPy's rules, re-exported)
from ..masks import clip_window
from ._checks import concrete_values, float_array, stats_dtype
from .masks import check_kv_lengths, query_positions, visible_keys


class AttentionCache(NamedTuple):
    """NOTE(jax): only the public log-sum-exp; shape (B, T, N), -inf for a fully masked row (z_n with sinks)."""

    lse: jax.Array  # (B, T, N)


def check_qkv(q, k, v):
    """NumPy's rules (``refimpl.attention.check_qkv``). NOTE(jax): arrays keep their dtype."""
    return _np_attention.check_qkv(q, k, v, as_array=float_array)


def check_sinks(sinks, n_heads: int):
    """NumPy's rules (``refimpl.attention.check_sinks``); values checked when concrete."""
    return _np_attention.check_sinks(sinks, n_heads, as_array=float_array, values=concrete_values)


def cleaned(x):
    """(x with non-finite entries replaced by 0, bad (...,) True where a vector held one), as NumPy's."""
    finite = jnp.isfinite(x)
    return jnp.where(finite, x, jnp.zeros((), x.dtype)), ~finite.all(axis=-1)


def poisoned_rows(visible, q_bad, kv_bad, n_groups: int):
    """(B, T, N) True for rows that see a bad key, or hold a bad q and see any key (NumPy's rule).

    visible (B|1, T, S) or None; q_bad (B, T, N); kv_bad (B, S, K).
    """
    if visible is None:
        return q_bad | jnp.repeat(kv_bad.any(axis=1), n_groups, axis=-1)[:, None, :]  # (B, T, N)
    visible = jnp.broadcast_to(visible, (kv_bad.shape[0], *visible.shape[1:]))  # (B, T, S)
    seen = jnp.einsum("bts,bsk->btk", visible.astype(jnp.float32), kv_bad.astype(jnp.float32))  # (B, T, K)
    has_keys = visible.any(axis=-1)[..., None]  # (B, T, 1)
    return (q_bad & has_keys) | jnp.repeat(seen > 0, n_groups, axis=-1)  # (B, T, N)


def grouped_attention(q, k, v, q_pos, key_idx, kv_lengths, *, causal, window, softcap, scale, sinks=None,
                      fast_path=False):  # fmt: skip
    """The attention core on checked inputs, for queries at positions ``q_pos`` (B|1, T) and keys
    ``key_idx`` (S,); sinks (N,) or None. Shared by ``attention_forward``, the layer and the KV-cache decode
    step. Returns (out, lse).

    fast_path=False (differentiable): q, k, v cleaned on every call, rows that see garbage poisoned.
    fast_path=True (the decode step, forward only): computed on the raw inputs, and again on cleaned ones
    (``lax.cond``) only when the raw scores or outputs hold a non-finite value, which happens iff some q, k
    or v entry is non-finite (the NumPy blocks' test); it spares a decode step the passes over the whole
    cache that cleaning costs. Not for jax.grad: the unused raw branch would meet the garbage in its backward.
    """
    visible = visible_keys(q_pos, key_idx, kv_lengths, causal=causal, window=window)  # (B|1, T, S)
    options = dict(softcap=softcap, scale=scale, sinks=sinks)
    if not fast_path:
        return _attend_cleaned(q, k, v, visible, **options)
    out, lse, finite = _attend(q, k, v, visible, **options)
    clean = finite & jnp.isfinite(out).all()
    return jax.lax.cond(clean, lambda: (out, lse), lambda: _attend_cleaned(q, k, v, visible, **options))


def _attend_cleaned(q, k, v, visible, **options):
    """``_attend`` on cleaned copies, rows that see a non-finite entry poisoned (NaN output and lse)."""
    (q, q_bad), (k, k_bad), (v, v_bad) = cleaned(q), cleaned(k), cleaned(v)  # garbage out of every product
    out, lse, _ = _attend(q, k, v, visible, **options)
    bad = poisoned_rows(visible, q_bad, k_bad | v_bad, q.shape[2] // k.shape[2])  # (B, T, N)
    return jnp.where(bad[..., None], jnp.nan, out), jnp.where(bad, jnp.nan, lse)


def _attend(q, k, v, visible, *, softcap, scale, sinks):
    """Masked softmax attention (with sinks: one more denominator term per row). Returns (out (B, T, N, Dh),
    lse (B, T, N), whether the raw scores q.k were all finite)."""
    batch, n_queries, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    n_groups = n_heads // n_kv
    acc = stats_dtype(q.dtype)
    q_g = q.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh)
    s = jnp.einsum("btkrd,bskd->bktrs", q_g, k, preferred_element_type=acc) * scale  # (B, K, T, R, S)
    finite = jnp.isfinite(s).all()
    if softcap is not None:
        s = softcap * jnp.tanh(s / softcap)  # (B, K, T, R, S)
    if visible is not None:
        s = jnp.where(visible[:, None, :, None, :], s, -jnp.inf)  # (B, K, T, R, S)
    row_max = jax.lax.stop_gradient(jnp.max(s, axis=-1))  # (B, K, T, R)
    if sinks is None:
        row_max = jnp.where(row_max == -jnp.inf, 0.0, row_max)  # fully masked rows: exp(-inf - 0) = 0
    else:
        z = sinks.astype(acc).reshape(1, n_kv, 1, n_groups)  # (1, K, 1, R) head k*R + r
        row_max = jnp.maximum(row_max, jax.lax.stop_gradient(z))
    p = jnp.exp(s - row_max[..., None])  # (B, K, T, R, S) unnormalised
    denom = p.sum(axis=-1)  # (B, K, T, R); >= 1 unless the row is fully masked (and has no sink)
    if sinks is not None:
        denom = denom + jnp.exp(z - row_max)  # the sink: in the denominator, no value
    has_mass = denom > 0  # (B, K, T, R)
    denom = jnp.where(has_mass, denom, 1.0)
    o = jnp.einsum("bktrs,bskd->btkrd", p.astype(v.dtype), v, preferred_element_type=acc)  # (B, T, K, R, Dh)
    o = o / jnp.moveaxis(denom, 1, 2)[..., None]
    lse = jnp.where(has_mass, row_max + jnp.log(denom), -jnp.inf)  # (B, K, T, R)
    out = o.reshape(batch, n_queries, n_heads, head_dim).astype(q.dtype)  # (B, T, N, Dh)
    return out, jnp.moveaxis(lse, 1, 2).reshape(batch, n_queries, n_heads), finite  # (B, T, N)


_STATIC = ("causal", "window", "softcap", "scale")


@partial(jax.jit, static_argnames=_STATIC)
def _attention(q, k, v, kv_lengths, sinks, *, causal, window, softcap, scale):
    n_queries, n_keys = q.shape[1], k.shape[1]
    q_pos = query_positions(n_queries, n_keys, kv_lengths)  # (B|1, T)
    return grouped_attention(q, k, v, q_pos, jnp.arange(n_keys), kv_lengths, causal=causal, window=window,
                             softcap=softcap, scale=scale, sinks=sinks)  # fmt: skip


def _check(q, k, v, causal, kv_lengths, window, softcap, scale, sinks):
    q, k, v = check_qkv(q, k, v)
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, q.shape[3])
    lengths = check_kv_lengths(kv_lengths, q.shape[0], k.shape[1])
    sinks = check_sinks(sinks, q.shape[2])
    static = dict(causal=causal, window=clip_window(window, k.shape[1]), softcap=softcap, scale=scale)
    return q, k, v, lengths, sinks, static


def attention_forward(q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None, sinks=None):
    """Grouped-query attention o = softmax(mask(cap(scale * q k^T))) v. Returns (out, AttentionCache(lse)).

    q: (B, T, N, Dh); k, v: (B, S, K, Dh) with N % K == 0, one floating dtype. Options as
    ``refimpl.attention_forward`` (causal bottom-right, kv_lengths padding, window, softcap, scale, sinks (N,));
    all but kv_lengths and sinks are static (a new value compiles anew). out: (B, T, N, Dh) in q's dtype;
    lse: (B, T, N).
    """
    q, k, v, lengths, sinks, static = _check(q, k, v, causal, kv_lengths, window, softcap, scale, sinks)
    out, lse = _attention(q, k, v, lengths, sinks, **static)
    return out, AttentionCache(lse)


@partial(jax.jit, static_argnames=_STATIC)
def _attention_vjp(dout, q, k, v, kv_lengths, sinks, **static):
    def f(q_, k_, v_, sinks_):
        return _attention(q_, k_, v_, kv_lengths, sinks_, **static)[0]

    _, vjp = jax.vjp(f, q, k, v, sinks)
    dq, dk, dv, dsinks = vjp(dout.astype(q.dtype))
    return {"q": dq, "k": dk, "v": dv, **({} if sinks is None else {"sinks": dsinks})}


def attention_backward(dout, q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None,
                       sinks=None):  # fmt: skip
    """Gradients of <dout, out> by ``jax.vjp``: {"q": (B, T, N, Dh), "k": (B, S, K, Dh), "v": (B, S, K, Dh)}
    (+ "sinks" (N,) when sinks are given). dout must be finite (checked when concrete).

    NOTE(jax): takes the forward's inputs and options instead of the NumPy cache.
    """
    q, k, v, lengths, sinks, static = _check(q, k, v, causal, kv_lengths, window, softcap, scale, sinks)
    dout = float_array("dout", dout)
    if dout.shape != q.shape:
        raise ValueError(f"dout must have the output's shape {tuple(q.shape)}; got {tuple(dout.shape)}")
    values = concrete_values(dout)
    if values is not None and not np.isfinite(values).all():
        raise ValueError("dout must be finite")
    return _attention_vjp(dout, q, k, v, lengths, sinks, **static)
