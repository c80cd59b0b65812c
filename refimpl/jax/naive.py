"""Naive same-dtype baselines for the parity suite (NumPy only): the textbook formulas with every
intermediate array rounded to the test dtype, as a straightforward float32 or bfloat16 implementation
(e.g. PyTorch's math path) computes them. Matrix products take dtype-rounded operands, accumulate in
float32 (as BLAS sgemm and every bf16 GEMM do) and round their result once.

Their error against the float64 reference is the yardstick for the JAX port's low-precision tolerance
(flash-attention's rule: error <= c x the naive error). Functions take and return float32 arrays holding
dtype-representable values; ``rnd`` rounds to the dtype and back to float32.

Shape legend: M rows, D d_model, F d_ff; B, T, S, N, K, R = N / K, Dh as in refimpl.attention.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ..activations import activation, activation_grad, swish, swish_grad
from ..ffn import ffn_options
from ..masks import attention_mask
from ..variants import get_variant


def rounder(dtype: str):
    """a -> a rounded to ``dtype`` ("float32" or "bfloat16"), held as float32."""
    if dtype == "float32":
        return lambda a: np.asarray(a, dtype=np.float32)
    if dtype == "bfloat16":
        return lambda a: np.asarray(a, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    raise ValueError(f"dtype must be 'float32' or 'bfloat16'; got {dtype!r}")


def ffn(x, p: dict, variant: str, gelu: str, dy, rnd) -> tuple[np.ndarray, dict]:
    """Forward y and the manual backward of refimpl.ffn, each op rounded. x, dy (M, D). Returns (y, grads).
    swiglu_oss with its default options: the clamps applied to a and b, masks on their gradients."""
    v = get_variant(variant)
    opts = ffn_options(v)

    def affine(inp, w, b):
        out = rnd(inp @ p[w])  # (M, out)
        return rnd(out + p[b]) if b in p else out

    act = lambda a: rnd(activation(v.activation, a, gelu_approximate=gelu))  # noqa: E731
    act_grad = lambda a: rnd(activation_grad(v.activation, a, gelu_approximate=gelu))  # noqa: E731
    b = affine(x, "w_up", "b_up")  # (M, F)
    up_mask = None
    if "limit" in opts:  # swiglu_oss: swish_alpha of the clamped gate, (clipped up + 1)
        alpha, limit = opts["alpha"], opts["limit"]
        act = lambda a: rnd(swish(np.minimum(a, limit), alpha))  # noqa: E731
        act_grad = lambda a: rnd(swish_grad(np.minimum(a, limit), alpha) * (a <= limit))  # noqa: E731
        up_mask = np.abs(b) <= limit  # (M, F)
        b = rnd(np.clip(b, -limit, limit) + 1.0)  # (M, F)
    if v.gated:
        a = affine(x, "w_gate", "b_gate")  # (M, F)
        act_a = act(a)  # (M, F)
        h = rnd(act_a * b)  # (M, F)
    else:
        h = act(b)  # (M, F)
    y = affine(h, "w_down", "b_down")  # (M, D)
    g = {"w_down": rnd(h.T @ dy)}  # (F, D)
    dh = rnd(dy @ p["w_down"].T)  # (M, F)
    if v.gated:
        db = rnd(dh * act_a)  # (M, F)
        if up_mask is not None:
            db = db * up_mask  # exact: zeroes where the up clamp is active
        da = rnd(rnd(dh * b) * act_grad(a))  # (M, F)
        g["w_gate"], g["w_up"] = rnd(x.T @ da), rnd(x.T @ db)  # (D, F) each
        g["x"] = rnd(rnd(da @ p["w_gate"].T) + rnd(db @ p["w_up"].T))  # (M, D)
    else:
        db = rnd(dh * act_grad(b))  # (M, F)
        g["w_up"] = rnd(x.T @ db)  # (D, F)
        g["x"] = rnd(db @ p["w_up"].T)  # (M, D)
    for name, d in (("b_down", dy), ("b_up", db), ("b_gate", da if v.gated else None)):
        if name in p:
            g[name] = rnd(d.sum(axis=0, dtype=np.float32))  # (F,) or (D,)
    return y, g


def attention(q, k, v, dout, rnd, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None):
    """Dense attention forward and its manual backward (refimpl.attention's formulas), each op rounded.

    q, dout (B, T, N, Dh); k, v (B, S, K, Dh). Returns (out, {"q", "k", "v"}).
    """
    batch, n_q, n_heads, head_dim = q.shape
    n_k, n_kv = k.shape[1], k.shape[2]
    r = n_heads // n_kv
    scale = 1.0 / np.sqrt(head_dim) if scale is None else scale
    mask = attention_mask(n_q, n_k, causal=causal, kv_lengths=kv_lengths, window=window, batch=batch)  # (B, T, S)
    mask = mask[:, None, :, None, :]  # (B, 1, T, 1, S)
    qg = q.reshape(batch, n_q, n_kv, r, head_dim)  # (B, T, K, R, Dh)
    u = rnd(rnd(np.einsum("btkrd,bskd->bktrs", qg, k)) * np.float32(scale))  # (B, K, T, R, S)
    t = None
    if softcap is not None:
        t = rnd(np.tanh(rnd(u / np.float32(softcap))))  # (B, K, T, R, S)
        u = rnd(t * np.float32(softcap))
    s = np.where(mask, u, -np.inf).astype(np.float32)  # (B, K, T, R, S)
    m = s.max(axis=-1, keepdims=True)  # (B, K, T, R, 1)
    m = np.where(np.isneginf(m), 0.0, m).astype(np.float32)
    e = rnd(np.exp(rnd(s - m)))  # (B, K, T, R, S)
    den = rnd(e.sum(axis=-1, keepdims=True, dtype=np.float32))  # (B, K, T, R, 1)
    p = rnd(e / np.where(den > 0, den, np.float32(1.0)))  # (B, K, T, R, S)
    out = rnd(np.einsum("bktrs,bskd->btkrd", p, v)).reshape(q.shape)  # (B, T, N, Dh)
    dog = dout.reshape(batch, n_q, n_kv, r, head_dim)  # (B, T, K, R, Dh)
    delta = rnd((dout * out).sum(axis=-1, dtype=np.float32))  # (B, T, N)
    delta = delta.reshape(batch, n_q, n_kv, r).transpose(0, 2, 1, 3)[..., None]  # (B, K, T, R, 1)
    dp = rnd(np.einsum("btkrd,bskd->bktrs", dog, v))  # (B, K, T, R, S)
    ds = rnd(p * rnd(dp - delta))  # (B, K, T, R, S)
    if t is not None:
        ds = rnd(ds * rnd(1.0 - rnd(t * t)))
    dq = rnd(rnd(np.einsum("bktrs,bskd->btkrd", ds, k)) * np.float32(scale)).reshape(q.shape)  # (B, T, N, Dh)
    dk = rnd(rnd(np.einsum("bktrs,btkrd->bskd", ds, qg)) * np.float32(scale))  # (B, S, K, Dh)
    dv = rnd(np.einsum("bktrs,btkrd->bskd", p, dog))  # (B, S, K, Dh)
    return out, {"q": dq, "k": dk, "v": dv}
