"""The self-attention layer with projections in JAX, mirroring ``refimpl.layer``.

Shape legend: B batch, T sequence length, D d_model, N query heads, K key/value heads, Dh head dim.

    q = rope(x W_q + b_q)   (B, T, N, Dh)      W_q (D, N*Dh), column n*Dh + d is head n, dim d (head-major)
    k = rope(x W_k + b_k)   (B, T, K, Dh)      W_k (D, K*Dh)
    v = x W_v + b_v         (B, T, K, Dh)      W_v (D, K*Dh)
    a = attention(q, k, v)  (B, T, N, Dh)      query head n reads KV head n // (N/K)
    y = a W_o + b_o         (B, T, D)          W_o (N*Dh, D)

Sinks (gpt-oss): the optional parameter "sinks" (N,), as in the NumPy layer.

NOTE(jax): ``attention_layer_forward`` returns y alone; ``attention_layer_backward(dy, x, params, ...)`` is
``jax.vjp`` of it and returns the NumPy backward's dict ("x" plus one key per parameter).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import layer as _np_layer
from ..layer import BIASES, SINKS, WEIGHTS, check_heads, check_init
from ..masks import clip_window
from ..rope import Rope, check_rope
from ._checks import add_bias as _add_bias
from ._checks import concrete_values, float_array, jax_float_dtype, prng_key
from .attention import check_options, grouped_attention
from .masks import check_kv_lengths, query_positions
from .rope import apply_rope

_BIAS_OF = dict(zip(WEIGHTS, BIASES, strict=True))


def init_attention_params(key, d_model: int, n_heads: int, n_kv_heads: int, head_dim: int, *, bias=False,
                          sinks=False, dtype=jnp.float32) -> dict:  # fmt: skip
    """Weights (and biases, and "sinks" (N,) standard normal when sinks=True), as
    ``refimpl.init_attention_params``: std 1/sqrt(fan_in).

    NOTE(jax): takes a ``jax.random`` key instead of a NumPy Generator, and defaults to float32.
    """
    key = prng_key("key", key)
    d_model, head_dim, n_heads, n_kv_heads, bias, sinks = check_init(d_model, head_dim, n_heads, n_kv_heads, bias,
                                                                     sinks)  # fmt: skip
    dtype = jax_float_dtype("dtype", dtype)
    if sinks:
        key, sinks_key = jax.random.split(key)  # only then: weights without sinks stay what they were
    shapes = {"w_q": (d_model, n_heads * head_dim), "w_k": (d_model, n_kv_heads * head_dim),
              "w_v": (d_model, n_kv_heads * head_dim), "w_o": (n_heads * head_dim, d_model)}  # fmt: skip
    with_bias = {True: WEIGHTS, "qkv": WEIGHTS[:3], False: ()}[bias]
    params = {}
    for (w, shape), k in zip(shapes.items(), jax.random.split(key, len(shapes)), strict=True):
        kw, kb = jax.random.split(k)
        std = 1.0 / math.sqrt(shape[0])
        params[w] = (jax.random.normal(kw, shape) * std).astype(dtype)  # (fan_in, fan_out)
        if w in with_bias:
            params[_BIAS_OF[w]] = (jax.random.normal(kb, shape[1:]) * std).astype(dtype)  # (fan_out,)
    if sinks:
        params[SINKS] = jax.random.normal(sinks_key, (n_heads,)).astype(dtype)  # (N,)
    return params


def check_params(params: dict, n_heads: int, n_kv_heads: int, d_model: int | None = None) -> tuple[dict, int]:
    """NumPy's rules (``refimpl.layer.check_params``). NOTE(jax): arrays keep their dtype."""
    return _np_layer.check_params(params, n_heads, n_kv_heads, d_model, as_array=float_array, values=concrete_values)


def _affine(x2, p: dict, name: str):
    out = x2 @ p[name]  # (M, out)
    bias = p.get(_BIAS_OF[name])
    if bias is not None:
        out = _add_bias(out, bias)
    return out


def project_qkv(x, p: dict, n_heads: int, n_kv_heads: int, head_dim: int, rope: Rope | None, positions=None):
    """x (B, T, D) -> q (B, T, N, Dh), k, v (B, T, K, Dh), rope applied to q and k (positions (B|1, T))."""
    batch, seq, d_model = x.shape
    x2 = x.reshape(batch * seq, d_model)  # (B*T, D)
    q = _affine(x2, p, "w_q").reshape(batch, seq, n_heads, head_dim)  # (B, T, N, Dh)
    k = _affine(x2, p, "w_k").reshape(batch, seq, n_kv_heads, head_dim)  # (B, T, K, Dh)
    v = _affine(x2, p, "w_v").reshape(batch, seq, n_kv_heads, head_dim)  # (B, T, K, Dh)
    return apply_rope(q, rope, positions), apply_rope(k, rope, positions), v


def project_out(a, p: dict):
    """a (B, T, N, Dh) -> y (B, T, D)."""
    batch, seq = a.shape[:2]
    return _affine(a.reshape(batch * seq, -1), p, "w_o").reshape(batch, seq, -1)  # (B, T, D)


def layer_core(x, p, kv_lengths, *, n_heads, n_kv_heads, head_dim, rope, causal, window, softcap, scale):
    """The layer on checked inputs (traceable; also the per-device body of the sharded layer)."""
    q, k, v = project_qkv(x, p, n_heads, n_kv_heads, head_dim, rope)
    n_queries = x.shape[1]
    q_pos = query_positions(n_queries, n_queries, kv_lengths)  # (B|1, T)
    a, _ = grouped_attention(q, k, v, q_pos, jnp.arange(n_queries), kv_lengths, causal=causal, window=window,
                             softcap=softcap, scale=scale, sinks=p.get(SINKS))  # fmt: skip
    return project_out(a, p)  # (B, T, D)


_STATIC = ("n_heads", "n_kv_heads", "head_dim", "rope", "causal", "window", "softcap", "scale")


@partial(jax.jit, static_argnames=_STATIC)
def _layer(x, p, kv_lengths, **static):
    return layer_core(x, p, kv_lengths, **static)


@partial(jax.jit, static_argnames=_STATIC)
def _layer_vjp(dy, x, p, kv_lengths, **static):
    _, vjp = jax.vjp(lambda x_, p_: layer_core(x_, p_, kv_lengths, **static), x, p)
    dx, dp = vjp(dy.astype(x.dtype))
    return {"x": dx, **dp}


def check_layer(x, params, n_heads, n_kv_heads, rope, causal, kv_lengths, window, softcap, scale):
    """Validate the layer's arguments; returns (x, params, kv_lengths, static options as a dict)."""
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    x = float_array("x", x, ndim=3)
    if 0 in x.shape:
        raise ValueError(f"x must have no zero-sized dimension (B, T, D); got shape {tuple(x.shape)}")
    p, head_dim = check_params(params, n_heads, n_kv_heads, x.shape[2])
    check_rope(rope, head_dim, x.shape[1])
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, head_dim)
    lengths = check_kv_lengths(kv_lengths, x.shape[0], x.shape[1])
    static = dict(n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, rope=rope, causal=causal,
                  window=clip_window(window, x.shape[1]), softcap=softcap, scale=scale)  # fmt: skip
    return x, p, lengths, static


def attention_layer_forward(x, params: dict, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None,
                            causal=True, kv_lengths=None, window=None, softcap=None, scale=None):  # fmt: skip
    """y = Attention(x) for x (B, T, D); y (B, T, D) in x's dtype. Arguments as refimpl's."""
    x, p, lengths, static = check_layer(x, params, n_heads, n_kv_heads, rope, causal, kv_lengths, window, softcap,
                                        scale)  # fmt: skip
    return _layer(x, p, lengths, **static)


def attention_layer_backward(dy, x, params: dict, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None,
                             causal=True, kv_lengths=None, window=None, softcap=None, scale=None) -> dict:  # fmt: skip
    """Gradients of <dy, y> by ``jax.vjp``: {"x": (B, T, D), "w_q": ..., one key per parameter}.

    NOTE(jax): takes the forward's inputs instead of the NumPy cache.
    """
    x, p, lengths, static = check_layer(x, params, n_heads, n_kv_heads, rope, causal, kv_lengths, window, softcap,
                                        scale)  # fmt: skip
    dy = float_array("dy", dy)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the output's shape {tuple(x.shape)}; got {tuple(dy.shape)}")
    values = concrete_values(dy)
    if values is not None and not np.isfinite(values).all():
        raise ValueError("dy must be finite")
    return _layer_vjp(dy, x, p, lengths, **static)
