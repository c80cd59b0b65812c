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

from .. import attention as _np_attention
from ..attention import check_options  # noqa: F401  (NumPy's rules, re-exported)
from ._checks import float_array, stats_dtype
from .masks import check_kv_lengths, query_positions, visible_keys


class AttentionCache(NamedTuple):
    """NOTE(jax): only the public log-sum-exp; shape (B, T, N), -inf for a fully masked row."""

    lse: jax.Array  # (B, T, N)


def check_qkv(q, k, v):
    """NumPy's rules (``refimpl.attention.check_qkv``). NOTE(jax): arrays keep their dtype."""
    return _np_attention.check_qkv(q, k, v, as_array=float_array)


def grouped_attention(q, k, v, q_pos, key_idx, kv_lengths, *, causal, window, softcap, scale):
    """The attention core on checked inputs, for queries at positions ``q_pos`` (B|1, T) and keys
    ``key_idx`` (S,). Shared by ``attention_forward`` and the KV-cache decode step. Returns (out, lse)."""
    batch, n_queries, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    n_groups = n_heads // n_kv
    acc = stats_dtype(q.dtype)
    q_g = q.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh)
    s = jnp.einsum("btkrd,bskd->bktrs", q_g, k, preferred_element_type=acc) * scale  # (B, K, T, R, S)
    if softcap is not None:
        s = softcap * jnp.tanh(s / softcap)  # (B, K, T, R, S)
    visible = visible_keys(q_pos, key_idx, kv_lengths, causal=causal, window=window)  # (B|1, T, S)
    if visible is not None:
        s = jnp.where(visible[:, None, :, None, :], s, -jnp.inf)  # (B, K, T, R, S)
    row_max = jax.lax.stop_gradient(jnp.max(s, axis=-1))  # (B, K, T, R)
    row_max = jnp.where(row_max == -jnp.inf, 0.0, row_max)  # fully masked rows: exp(-inf - 0) = 0
    p = jnp.exp(s - row_max[..., None])  # (B, K, T, R, S) unnormalised
    denom = p.sum(axis=-1)  # (B, K, T, R); >= 1 unless the row is fully masked
    has_keys = denom > 0  # (B, K, T, R)
    denom = jnp.where(has_keys, denom, 1.0)
    o = jnp.einsum("bktrs,bskd->btkrd", p.astype(v.dtype), v, preferred_element_type=acc)  # (B, T, K, R, Dh)
    o = o / jnp.moveaxis(denom, 1, 2)[..., None]
    lse = jnp.where(has_keys, row_max + jnp.log(denom), -jnp.inf)  # (B, K, T, R)
    out = o.reshape(batch, n_queries, n_heads, head_dim).astype(q.dtype)  # (B, T, N, Dh)
    return out, jnp.moveaxis(lse, 1, 2).reshape(batch, n_queries, n_heads)  # (B, T, N)


@partial(jax.jit, static_argnames=("causal", "window", "softcap", "scale"))
def _attention(q, k, v, kv_lengths, *, causal, window, softcap, scale):
    n_queries, n_keys = q.shape[1], k.shape[1]
    q_pos = query_positions(n_queries, n_keys, kv_lengths)  # (B|1, T)
    return grouped_attention(
        q, k, v, q_pos, jnp.arange(n_keys), kv_lengths, causal=causal, window=window, softcap=softcap, scale=scale
    )


def attention_forward(q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None):
    """Grouped-query attention o = softmax(mask(cap(scale * q k^T))) v. Returns (out, AttentionCache(lse)).

    q: (B, T, N, Dh); k, v: (B, S, K, Dh) with N % K == 0, one floating dtype. Options as
    ``refimpl.attention_forward`` (causal bottom-right, kv_lengths padding, window, softcap, scale); all but
    kv_lengths are static (a new value compiles anew). out: (B, T, N, Dh) in q's dtype; lse: (B, T, N).
    """
    q, k, v = check_qkv(q, k, v)
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, q.shape[3])
    lengths = check_kv_lengths(kv_lengths, q.shape[0], k.shape[1])
    out, lse = _attention(q, k, v, lengths, causal=causal, window=window, softcap=softcap, scale=scale)
    return out, AttentionCache(lse)


@partial(jax.jit, static_argnames=("causal", "window", "softcap", "scale"))
def _attention_vjp(dout, q, k, v, kv_lengths, *, causal, window, softcap, scale):
    def f(q_, k_, v_):
        return _attention(q_, k_, v_, kv_lengths, causal=causal, window=window, softcap=softcap, scale=scale)[0]

    _, vjp = jax.vjp(f, q, k, v)
    dq, dk, dv = vjp(dout.astype(q.dtype))
    return {"q": dq, "k": dk, "v": dv}


def attention_backward(dout, q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None):
    """Gradients of <dout, out> by ``jax.vjp``: {"q": (B, T, N, Dh), "k": (B, S, K, Dh), "v": (B, S, K, Dh)}.

    NOTE(jax): takes the forward's inputs and options instead of the NumPy cache.
    """
    q, k, v = check_qkv(q, k, v)
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, q.shape[3])
    lengths = check_kv_lengths(kv_lengths, q.shape[0], k.shape[1])
    dout = float_array("dout", dout)
    if dout.shape != q.shape:
        raise ValueError(f"dout must have the output's shape {tuple(q.shape)}; got {tuple(dout.shape)}")
    return _attention_vjp(dout, q, k, v, lengths, causal=causal, window=window, softcap=softcap, scale=scale)
