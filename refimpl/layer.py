"""The self-attention layer with projections (Vaswani et al. 2017; GQA: Ainslie et al. 2023), fwd and bwd.

Shape legend: B batch, T sequence length, D d_model, N query heads, K key/value heads, Dh head dim.

    q = rope(x W_q + b_q)   (B, T, N, Dh)      W_q (D, N*Dh), column n*Dh + d is head n, dim d (head-major)
    k = rope(x W_k + b_k)   (B, T, K, Dh)      W_k (D, K*Dh)
    v = x W_v + b_v         (B, T, K, Dh)      W_v (D, K*Dh)
    a = attention(q, k, v)  (B, T, N, Dh)      refimpl.attention (query head n reads KV head n // (N/K))
    y = a W_o + b_o         (B, T, D)          W_o (N*Dh, D)

Backward: dW_o = a^T dy, da = dy W_o^T -> (dq, dk, dv) by attention_backward -> rope_backward on dq, dk ->
dW_q = x^T dq, dW_k = x^T dk, dW_v = x^T dv, dx = dq W_q^T + dk W_k^T + dv W_v^T; biases get row sums.
Biases: none (Llama), all four (bias=True: GPT-2 style), or q, k, v only (bias="qkv": Qwen2).
Sinks (gpt-oss): an optional parameter "sinks" (N,), one logit per query head, passed to attention_forward
(refimpl/attention.py); its gradient is attention_backward's "sinks".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import float_array, float_dtype, param_keys, positive_int
from .attention import AttentionCache, attention_backward, attention_forward, check_sinks
from .rope import Rope, RopeCache, apply_rope, check_rope, rope_backward

WEIGHTS = ("w_q", "w_k", "w_v", "w_o")
BIASES = ("b_q", "b_k", "b_v", "b_o")
SINKS = "sinks"  # (N,) per-head sink logits (gpt-oss); optional
_BIAS_OF = dict(zip(WEIGHTS, BIASES, strict=True))


def init_attention_params(
    rng: np.random.Generator, d_model: int, n_heads: int, n_kv_heads: int, head_dim: int, *, bias=False,
    sinks=False, dtype=np.float64,
) -> dict:  # fmt: skip
    """Weights (and biases) with std 1/sqrt(fan_in): "w_q" (D, N*Dh), "w_k", "w_v" (D, K*Dh), "w_o" (N*Dh, D).

    bias: False (none), True (b_q, b_k, b_v, b_o) or "qkv" (b_q, b_k, b_v: Qwen2). sinks: True adds "sinks"
    (N,), standard normal sink logits (gpt-oss learns one per head; O(1) values make the sink matter).
    dtype: a floating dtype.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    d_model, head_dim, n_heads, n_kv_heads, bias, sinks = check_init(d_model, head_dim, n_heads, n_kv_heads, bias,
                                                                     sinks)  # fmt: skip
    dtype = float_dtype("dtype", dtype)
    shapes = {"w_q": (d_model, n_heads * head_dim), "w_k": (d_model, n_kv_heads * head_dim),
              "w_v": (d_model, n_kv_heads * head_dim), "w_o": (n_heads * head_dim, d_model)}  # fmt: skip
    with_bias = {True: WEIGHTS, "qkv": WEIGHTS[:3], False: ()}[bias]
    params = {}
    for w, shape in shapes.items():
        std = 1.0 / math.sqrt(shape[0])
        params[w] = (rng.standard_normal(shape) * std).astype(dtype)  # (fan_in, fan_out)
        if w in with_bias:
            params[_BIAS_OF[w]] = (rng.standard_normal(shape[1]) * std).astype(dtype)  # (fan_out,)
    if sinks:
        params[SINKS] = rng.standard_normal(n_heads).astype(dtype)  # (N,)
    return params


def check_init(d_model, head_dim, n_heads, n_kv_heads, bias, sinks) -> tuple:
    """init_attention_params' sizes and flags (shared with the JAX port)."""
    d_model, head_dim = positive_int("d_model", d_model), positive_int("head_dim", head_dim)
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    if not (isinstance(bias, bool) or (isinstance(bias, str) and bias == "qkv")):
        raise ValueError(f"bias must be False, True or 'qkv'; got {bias!r}")
    if not isinstance(sinks, bool):
        raise ValueError(f"sinks must be True or False; got {sinks!r}")
    return d_model, head_dim, n_heads, n_kv_heads, bias, sinks


def check_heads(n_heads, n_kv_heads) -> tuple[int, int]:
    n_heads, n_kv_heads = positive_int("n_heads", n_heads), positive_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads must divide n_heads; got n_heads={n_heads}, n_kv_heads={n_kv_heads}")
    return n_heads, n_kv_heads


def check_params(
    params: dict, n_heads: int, n_kv_heads: int, d_model: int | None = None, *, as_array=float_array,
    values=np.asarray,
) -> tuple[dict, int]:  # fmt: skip
    """Validate a layer's parameters; return them converted by ``as_array`` (float64 here; the JAX port
    passes its dtype-keeping converter and ``values``, see check_sinks) and the head dim Dh = w_q.shape[1] / N."""
    param_keys("params", params, WEIGHTS, (*BIASES, SINKS))
    p = {k: as_array(f"params[{k!r}]", params[k], ndim=2 if k.startswith("w_") else 1) for k in params}
    dims = p["w_q"].shape
    if d_model is None:
        d_model = dims[0]
    if dims[1] % n_heads or dims[1] == 0:
        raise ValueError(f"params['w_q'] must have N*Dh columns with N={n_heads}; got shape {dims}")
    head_dim = dims[1] // n_heads
    q_width, kv_width = n_heads * head_dim, n_kv_heads * head_dim
    expected = {"w_q": (d_model, q_width), "w_k": (d_model, kv_width), "w_v": (d_model, kv_width),
                "w_o": (q_width, d_model), "b_q": (q_width,), "b_k": (kv_width,), "b_v": (kv_width,),
                "b_o": (d_model,), SINKS: (n_heads,)}  # fmt: skip
    for k, arr in p.items():
        if arr.shape != expected[k]:
            raise ValueError(
                f"params[{k!r}] must have shape {expected[k]} (D={d_model}, N={n_heads}, K={n_kv_heads}, "
                f"Dh={head_dim}); got {arr.shape}"
            )
    if SINKS in params:
        p[SINKS] = check_sinks(params[SINKS], n_heads, as_array=as_array, values=values)
    return p, head_dim


def _affine(x2: np.ndarray, p: dict, name: str) -> np.ndarray:
    out = x2 @ p[name]  # (M, out)
    bias = p.get(_BIAS_OF[name])
    if bias is not None:
        out += bias
    return out


def project_qkv(x: np.ndarray, p: dict, n_heads: int, n_kv_heads: int, head_dim: int, rope: Rope | None,
                positions=None):  # fmt: skip
    """x (B, T, D) -> q (B, T, N, Dh), k, v (B, T, K, Dh), rope applied to q and k; plus the rope caches.
    Inputs are checked (``check_rope`` covers rope and the positions)."""
    batch, seq, d_model = x.shape
    x2 = x.reshape(batch * seq, d_model)  # (B*T, D)
    q = _affine(x2, p, "w_q").reshape(batch, seq, n_heads, head_dim)  # (B, T, N, Dh)
    k = _affine(x2, p, "w_k").reshape(batch, seq, n_kv_heads, head_dim)  # (B, T, K, Dh)
    v = _affine(x2, p, "w_v").reshape(batch, seq, n_kv_heads, head_dim)  # (B, T, K, Dh)
    q, rope_q = apply_rope(q, rope, positions)
    k, rope_k = apply_rope(k, rope, positions)
    return q, k, v, rope_q, rope_k


def project_out(a: np.ndarray, p: dict) -> np.ndarray:
    """a (B, T, N, Dh) -> y (B, T, D)."""
    batch, seq = a.shape[:2]
    return _affine(a.reshape(batch * seq, -1), p, "w_o").reshape(batch, seq, -1)  # (B, T, D)


class LayerCache(NamedTuple):
    """Stores x, the attention output a (input of W_o) and the inner caches; q, k, v live in attn."""

    x: np.ndarray  # (B, T, D)
    a: np.ndarray  # (B, T, N, Dh)
    attn: AttentionCache
    rope_q: RopeCache | None
    rope_k: RopeCache | None
    params: dict


def attention_layer_forward(
    x, params: dict, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None, causal=True, kv_lengths=None,
    window=None, softcap=None, scale=None,
):  # fmt: skip
    """y = Attention(x) for x (B, T, D). Returns (y, cache); y (B, T, D) float64.

    The mask arguments (causal, kv_lengths, window, softcap, scale) are attention_forward's; ``rope`` is a
    ``refimpl.rope.Rope`` (positions rope.offset + t) or None.
    """
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    x = float_array("x", x, ndim=3)
    if 0 in x.shape:
        raise ValueError(f"x must have no zero-sized dimension (B, T, D); got shape {x.shape}")
    p, head_dim = check_params(params, n_heads, n_kv_heads, x.shape[2])
    check_rope(rope, head_dim, x.shape[1])
    q, k, v, rope_q, rope_k = project_qkv(x, p, n_heads, n_kv_heads, head_dim, rope)
    a, attn = attention_forward(q, k, v, causal=causal, kv_lengths=kv_lengths, window=window, softcap=softcap,
                                scale=scale, sinks=p.get(SINKS))  # fmt: skip
    return project_out(a, p), LayerCache(x, a, attn, rope_q, rope_k, p)


def attention_layer_backward(dy, cache: LayerCache) -> dict:
    """Gradients of <dy, y>: {"x": (B, T, D), "w_q": ..., one key per parameter of the forward ("sinks"
    included)}. dy must be finite."""
    if not isinstance(cache, LayerCache):
        raise ValueError(f"cache must be attention_layer_forward's LayerCache; got {type(cache).__name__}")
    dy = float_array("dy", dy)
    if dy.shape != cache.x.shape:
        raise ValueError(f"dy must have the output's shape {cache.x.shape}; got {dy.shape}")
    if not np.isfinite(dy).all():
        raise ValueError("dy must be finite")
    p = cache.params
    batch, seq, d_model = cache.x.shape
    x2 = cache.x.reshape(batch * seq, d_model)  # (B*T, D)
    dy2 = dy.reshape(batch * seq, d_model)  # (B*T, D)
    a2 = cache.a.reshape(batch * seq, -1)  # (B*T, N*Dh)
    grads = {"w_o": a2.T @ dy2}  # (N*Dh, D)
    da = (dy2 @ p["w_o"].T).reshape(cache.a.shape)  # (B, T, N, Dh)
    d = attention_backward(da, cache.attn)
    dq = d["q"] if cache.rope_q is None else rope_backward(d["q"], cache.rope_q)  # (B, T, N, Dh)
    dk = d["k"] if cache.rope_k is None else rope_backward(d["k"], cache.rope_k)  # (B, T, K, Dh)
    dx = np.zeros((batch * seq, d_model))  # (B*T, D)
    for name, g in (("q", dq), ("k", dk), ("v", d["v"])):
        g2 = g.reshape(batch * seq, -1)  # (B*T, N*Dh) or (B*T, K*Dh)
        grads[f"w_{name}"] = x2.T @ g2  # (D, N*Dh) or (D, K*Dh)
        if f"b_{name}" in p:
            grads[f"b_{name}"] = g2.sum(axis=0)  # (N*Dh,) or (K*Dh,)
        dx += g2 @ p[f"w_{name}"].T
    if "b_o" in p:
        grads["b_o"] = dy2.sum(axis=0)  # (D,)
    if SINKS in p:
        grads[SINKS] = d["sinks"]  # (N,)
    return {"x": dx.reshape(batch, seq, d_model), **{k: grads[k] for k in p}}
