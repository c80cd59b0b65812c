"""The parity suite: the JAX port against the float64 NumPy reference, op by op, on whatever backend JAX has.

Each row compares one op's forward output or gradients with the NumPy reference run on the *same* inputs
(inputs are first rounded to the test dtype). Error = max |got - ref| / max |ref| per array (gradients:
the worst over q/k/v or x and every parameter; a gradient that is analytically ~0 is measured against
1e-6 x the op's largest gradient instead of its own rounding noise).

Tolerance per dtype:
* float64 (run with jax_enable_x64): 1e-12 forward, 1e-10 gradients (issue 4's bar; measured ~1e-15).
* float32 / bfloat16: ``FACTOR[kind] x`` the error of a naive same-dtype computation of the same formulas
  (refimpl.jax.naive: every intermediate rounded to the dtype, float32 accumulation), measured in the same
  run: forward 2x, gradients 3x, flash-attention's rule (its tests/test_flash_attn.py; docs/references.md). A correct
  port rounds at most as often as the naive code, so its error is about the naive one or smaller; a real
  bug (a wrong head map, a gradient off by a factor, a mask off by one) gives errors of order 1.

Rows: every FFN variant (both GELUs), attention (MHA/GQA/MQA, padding, empty rows, window, softcap, scale), the
layer and its decode steps here; attention with sinks, the clamped SwiGLU with its clamps active and the
mixture-of-experts layers (three routing conventions, shared experts, biases) in verify_layers.py. The shared
pieces (row type, error measures, tolerances) are in parity.py.
"""

from __future__ import annotations

import jax
import numpy as np

import refimpl

from ..rope import Rope, rope_backward, rope_forward
from . import attention as jattn
from . import ffn as jffn
from . import kv_cache as jkv
from . import layer as jlayer
from . import naive, verify_layers
from .parity import DTYPES, FACTOR, FLOAT64_TOLERANCE, Ctx, ParityRow, make_rows, rel, rel_grads

__all__ = ["ATTENTION_CASES", "DTYPES", "FACTOR", "FLOAT64_TOLERANCE", "LAYER_CASES", "ParityRow", "parity_rows"]

def _ffn_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, v in refimpl.FFN_VARIANTS.items():
        for gelu in ("erf", "tanh") if v.activation == "gelu" else ("erf",):
            cases.append((f"ffn {name}" + (f" ({gelu})" if v.activation == "gelu" else ""), name, gelu))
    return cases


# name -> ((B, T, S, N, K, Dh), mask options); kv_lengths given as fractions of S, resolved per case
ATTENTION_CASES = {
    "attention mha causal T=S": ((2, 12, 12, 4, 4, 16), dict(causal=True)),
    "attention gqa causal T<S": ((2, 6, 16, 8, 2, 16), dict(causal=True)),
    "attention mqa causal T<S padded": ((2, 6, 16, 8, 1, 16), dict(causal=True, kv_lengths=(16, 9))),
    "attention gqa non-causal T>S padded+empty": ((2, 10, 6, 6, 3, 8), dict(causal=False, kv_lengths=(4, 0))),
    "attention gqa window softcap scale": ((1, 16, 16, 4, 2, 16), dict(causal=True, window=5, softcap=2.0, scale=0.3)),
}
LAYER_CASES = {
    "layer gqa rope half": (dict(n_heads=8, n_kv_heads=2, rope=Rope("half")), False),
    "layer mqa rope interleaved bias window": (
        dict(n_heads=4, n_kv_heads=1, rope=Rope("interleaved", offset=5), window=6), True),
}  # fmt: skip


def _ffn_rows(ctx: Ctx, op, variant, gelu) -> list[ParityRow]:
    p = ctx.tree(refimpl.init_ffn_params(ctx.rng, 64, 96, variant, bias=True), ctx.arr)
    x, dy = ctx.arr(ctx.rng.standard_normal((48, 64))), ctx.arr(ctx.rng.standard_normal((48, 64)))
    y_ref, cache = refimpl.ffn_forward(x, p, variant, gelu=gelu)
    g_ref = refimpl.ffn_backward(dy, cache)
    pj = ctx.tree(p, ctx.jx)
    y = jffn.ffn_forward(ctx.jx(x), pj, variant, gelu=gelu)
    g = jffn.ffn_backward(ctx.jx(dy), ctx.jx(x), pj, variant, gelu=gelu)
    errors = {"forward": rel(y, y_ref), "grad": rel_grads(g, g_ref)}
    naive_errors = None
    if ctx.rnd is not None:
        y_n, g_n = naive.ffn(ctx.lo(x), ctx.tree(p, ctx.lo), variant, gelu, ctx.lo(dy), ctx.rnd)
        naive_errors = {"forward": rel(y_n, y_ref), "grad": rel_grads(g_n, g_ref)}
    return make_rows(op, ctx.dtype, errors, naive_errors)


def _attention_rows(ctx: Ctx, op, shapes, options) -> list[ParityRow]:
    batch, n_q, n_k, n_heads, n_kv, head_dim = shapes
    opts = dict(options)
    if "kv_lengths" in opts:
        opts["kv_lengths"] = np.array(opts["kv_lengths"])
    q = ctx.arr(ctx.rng.standard_normal((batch, n_q, n_heads, head_dim)))  # (B, T, N, Dh)
    k = ctx.arr(ctx.rng.standard_normal((batch, n_k, n_kv, head_dim)))  # (B, S, K, Dh)
    v = ctx.arr(ctx.rng.standard_normal((batch, n_k, n_kv, head_dim)))  # (B, S, K, Dh)
    dout = ctx.arr(ctx.rng.standard_normal(q.shape))  # (B, T, N, Dh)
    out_ref, cache = refimpl.attention_forward(q, k, v, **opts)
    g_ref = refimpl.attention_backward(dout, cache)
    out, _ = jattn.attention_forward(ctx.jx(q), ctx.jx(k), ctx.jx(v), **opts)
    g = jattn.attention_backward(ctx.jx(dout), ctx.jx(q), ctx.jx(k), ctx.jx(v), **opts)
    errors = {"forward": rel(out, out_ref), "grad": rel_grads(g, g_ref)}
    naive_errors = None
    if ctx.rnd is not None:
        out_n, g_n = naive.attention(ctx.lo(q), ctx.lo(k), ctx.lo(v), ctx.lo(dout), ctx.rnd, **opts)
        naive_errors = {"forward": rel(out_n, out_ref), "grad": rel_grads(g_n, g_ref)}
    return make_rows(op, ctx.dtype, errors, naive_errors)


def _naive_layer(x, p, dy, rnd, *, n_heads, n_kv_heads, rope=None, **mask):
    """The layer by composition of naive pieces (rope: float64 rotation, rounded once)."""
    batch, seq, d_model = x.shape
    head_dim = p["w_q"].shape[1] // n_heads
    x2, dy2 = x.reshape(batch * seq, d_model), dy.reshape(batch * seq, d_model)  # (B*T, D)

    def affine(inp, name, bias):
        out = rnd(inp @ p[name])
        return rnd(out + p[bias]) if bias in p else out

    def rot(a, backward=None):
        if rope is None:
            return a
        _, c = rope_forward(a, offset=rope.offset, theta=rope.theta, layout=rope.layout)
        return rnd(rope_backward(a, c) if backward else rope_forward(a, offset=rope.offset, theta=rope.theta,
                                                                      layout=rope.layout)[0])  # fmt: skip

    q = rot(affine(x2, "w_q", "b_q").reshape(batch, seq, n_heads, head_dim))  # (B, T, N, Dh)
    k = rot(affine(x2, "w_k", "b_k").reshape(batch, seq, n_kv_heads, head_dim))  # (B, T, K, Dh)
    v = affine(x2, "w_v", "b_v").reshape(batch, seq, n_kv_heads, head_dim)  # (B, T, K, Dh)
    da = rnd(dy2 @ p["w_o"].T).reshape(batch, seq, n_heads, head_dim)  # (B, T, N, Dh)
    a, ga = naive.attention(q, k, v, da, rnd, **mask)
    a2 = a.reshape(batch * seq, -1)  # (B*T, N*Dh)
    y = affine(a2, "w_o", "b_o").reshape(x.shape)  # (B, T, D)
    g = {"w_o": rnd(a2.T @ dy2)}
    if "b_o" in p:
        g["b_o"] = rnd(dy2.sum(axis=0))
    dx = None
    for name, d in (("q", rot(ga["q"], True)), ("k", rot(ga["k"], True)), ("v", ga["v"])):
        d2 = d.reshape(batch * seq, -1)  # (B*T, N*Dh) or (B*T, K*Dh)
        g[f"w_{name}"] = rnd(x2.T @ d2)
        if f"b_{name}" in p:
            g[f"b_{name}"] = rnd(d2.sum(axis=0))
        part = rnd(d2 @ p[f"w_{name}"].T)  # (B*T, D)
        dx = part if dx is None else rnd(dx + part)
    g["x"] = dx.reshape(x.shape)
    return y, g


def _layer_rows(ctx: Ctx, op, kw, bias) -> list[ParityRow]:
    d_model, head_dim, batch, seq = 32, 16, 2, 10
    p = ctx.tree(refimpl.init_attention_params(ctx.rng, d_model, kw["n_heads"], kw["n_kv_heads"], head_dim,
                                               bias=bias), ctx.arr)  # fmt: skip
    x, dy = (ctx.arr(ctx.rng.standard_normal((batch, seq, d_model))) for _ in range(2))  # (B, T, D) each
    y_ref, cache = refimpl.attention_layer_forward(x, p, **kw)
    g_ref = refimpl.attention_layer_backward(dy, cache)
    pj = ctx.tree(p, ctx.jx)
    y = jlayer.attention_layer_forward(ctx.jx(x), pj, **kw)
    g = jlayer.attention_layer_backward(ctx.jx(dy), ctx.jx(x), pj, **kw)
    # decode: a prefill chunk of half the sequence, then one token per step, against the full causal forward
    cache_j = jkv.KVCache.empty(batch, seq + 2, kw["n_kv_heads"], head_dim, dtype=ctx.np_dtype)
    step_kw = {k: kw[k] for k in ("n_heads", "n_kv_heads", "rope", "window") if k in kw}
    y0, cache_j = jkv.decode_step(ctx.jx(x[:, : seq // 2]), pj, cache_j, **step_kw)
    outs = [np.asarray(y0, np.float64)]
    for t in range(seq // 2, seq):
        yt, cache_j = jkv.decode_step(ctx.jx(x[:, t]), pj, cache_j, **step_kw)
        outs.append(np.asarray(yt, np.float64)[:, None])
    errors = {"forward": rel(y, y_ref), "grad": rel_grads(g, g_ref)}
    decode_errors = {"forward": rel(np.concatenate(outs, axis=1), y_ref)}
    naive_errors = naive_decode = None
    if ctx.rnd is not None:
        y_n, g_n = _naive_layer(ctx.lo(x), ctx.tree(p, ctx.lo), ctx.lo(dy), ctx.rnd, **kw)
        naive_errors = {"forward": rel(y_n, y_ref), "grad": rel_grads(g_n, g_ref)}
        naive_decode = {"forward": naive_errors["forward"]}
    return make_rows(op, ctx.dtype, errors, naive_errors) + make_rows(
        op.replace("layer", "decode (prefill + steps)"), ctx.dtype, decode_errors, naive_decode
    )


def parity_rows(dtype: str = "float64", *, seed: int = 0, only: str | None = None) -> list[ParityRow]:
    """Run the suite in ``dtype`` ("float64", "float32", "bfloat16"); ``only`` keeps ops whose name contains
    that substring. float64 runs under ``jax.enable_x64(True)`` (restored afterwards)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if only is not None and not isinstance(only, str):
        raise ValueError(f"only must be a string or None; got {only!r}")
    jobs = [(op, _ffn_rows, (variant, gelu)) for op, variant, gelu in _ffn_cases()]
    jobs += [(op, _attention_rows, case) for op, case in ATTENTION_CASES.items()]
    jobs += [(op, _layer_rows, case) for op, case in LAYER_CASES.items()]
    jobs += verify_layers.JOBS  # attention with sinks, clamped SwiGLU, mixture of experts
    jobs = [j for j in jobs if only is None or only in j[0] or only in j[0].replace("layer", "decode")]
    if not jobs:
        raise ValueError(f"only={only!r} matches no op of the suite")
    rows = []
    with jax.enable_x64(True):
        for i, (op, fn, args) in enumerate(jobs):
            rows += fn(Ctx(dtype, seed + i), op, *args)
    return rows
