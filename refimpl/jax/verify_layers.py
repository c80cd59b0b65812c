"""Parity rows for the layers of issue 15: attention with sinks, the clamped SwiGLU with its clamps active,
and mixture-of-experts layers, each forward and gradients (the JAX port against the float64 NumPy reference).

Same table and rule as verify.py. The naive same-dtype computation for float32 / bfloat16 is the conformance
kit's baseline (refimpl.conformance.baseline / baseline_moe: every op from dtype values, float32 accumulation,
one rounding to the dtype), which has sinks, gpt-oss's alpha and limit, biases and the MoE. MoE tokens are drawn
as the kit draws them (cases_moe.draw_tokens): no token's k-th and (k+1)-th router logits are within 4 ulps of
the dtype, so the port and the float64 reference select the same experts (otherwise the row would compare two
different routings).
Shape legend: B, T, S, N, K, Dh as refimpl.attention; D, F, E, k as refimpl.moe.
"""

from __future__ import annotations

import math

import numpy as np

import refimpl

from ..conformance.baseline import naive_attention, naive_ffn
from ..conformance.baseline_moe import naive_moe
from ..conformance.cases_moe import draw_tokens, flatten
from ..conformance.dtypes import number_format
from ..masks import attention_mask
from . import attention as jattn
from . import ffn as jffn
from . import moe as jmoe
from .parity import Ctx, ParityRow, make_rows, rel, rel_grads

# name -> ((B, T, S, N, K, Dh), mask options; kv_lengths absolute)
SINK_CASES = {
    "attention sinks gqa causal window": ((2, 10, 16, 8, 2, 16), dict(causal=True, window=6)),
    "attention sinks gqa non-causal padded+empty softcap": ((2, 7, 9, 6, 3, 8),
                                                            dict(causal=False, kv_lengths=(9, 0), softcap=2.0)),
}  # fmt: skip
OSS_CASES = {"ffn swiglu_oss clamps active (x3.5, alpha 1.5, limit 5)": dict(alpha=1.5, limit=5.0)}
# name -> (variant, E, routing options, init options, input scale)
MOE_CASES = {
    "moe mixtral (softmax_topk, renormalised)": ("swiglu", 8, dict(routing="softmax_topk", normalize=True), {}, 1.0),
    "moe qwen2 (not renormalised, gated shared expert)": (
        "swiglu", 6, dict(routing="softmax_topk", normalize=False), dict(n_shared=1, shared_gate=True), 1.0),
    "moe gpt-oss (topk_softmax, swiglu_oss, biases)": (
        "swiglu_oss", 6, dict(routing="topk_softmax", normalize=True), dict(bias=True, router_bias=True), 3.0),
}  # fmt: skip
_TOP_K = 2


def _grads_of(base: dict) -> dict:
    """The baseline's flat gradients {"dq": ...} as {"q": ...}."""
    return {k[1:]: a for k, a in base.items() if k.startswith("d")}


def _sink_rows(ctx: Ctx, op, shapes, options) -> list[ParityRow]:
    batch, n_q, n_k, n_heads, n_kv, head_dim = shapes
    opts = {k: np.array(v) if k == "kv_lengths" else v for k, v in options.items()}
    q = ctx.arr(ctx.rng.standard_normal((batch, n_q, n_heads, head_dim)))  # (B, T, N, Dh)
    k, v = (ctx.arr(ctx.rng.standard_normal((batch, n_k, n_kv, head_dim))) for _ in range(2))  # (B, S, K, Dh) each
    dout = ctx.arr(ctx.rng.standard_normal(q.shape))  # (B, T, N, Dh)
    z = ctx.arr(math.log(n_k) + ctx.rng.uniform(-1.0, 1.0, n_heads))  # (N,) sinks
    out_ref, cache = refimpl.attention_forward(q, k, v, sinks=z, **opts)
    g_ref = refimpl.attention_backward(dout, cache)  # q, k, v, sinks
    out, _ = jattn.attention_forward(ctx.jx(q), ctx.jx(k), ctx.jx(v), sinks=ctx.jx(z), **opts)
    g = jattn.attention_backward(ctx.jx(dout), ctx.jx(q), ctx.jx(k), ctx.jx(v), sinks=ctx.jx(z), **opts)
    errors = {"forward": rel(out, out_ref), "grad": rel_grads(g, g_ref)}
    naive_errors = None
    if ctx.rnd is not None:
        mask = attention_mask(n_q, n_k, batch=batch, **{a: opts.get(a) for a in ("causal", "kv_lengths", "window")})
        base = naive_attention(q, k, v, mask, cache.scale, number_format(ctx.dtype), dout=dout,
                               softcap=opts.get("softcap"), sinks=z)  # fmt: skip
        naive_errors = {"forward": rel(base["out"], out_ref), "grad": rel_grads(_grads_of(base), g_ref)}
    return make_rows(op, ctx.dtype, errors, naive_errors)


def _oss_rows(ctx: Ctx, op, options) -> list[ParityRow]:
    p = ctx.tree(refimpl.init_ffn_params(ctx.rng, 64, 96, "swiglu_oss", bias=True), ctx.arr)
    x = ctx.arr(3.5 * ctx.rng.standard_normal((48, 64)))  # (M, D): ~5% of the gates pass the limit of 5
    dy = ctx.arr(ctx.rng.standard_normal((48, 64)))  # (M, D)
    y_ref, cache = refimpl.ffn_forward(x, p, "swiglu_oss", **options)
    g_ref = refimpl.ffn_backward(dy, cache)
    pj = ctx.tree(p, ctx.jx)
    y = jffn.ffn_forward(ctx.jx(x), pj, "swiglu_oss", **options)
    g = jffn.ffn_backward(ctx.jx(dy), ctx.jx(x), pj, "swiglu_oss", **options)
    errors = {"forward": rel(y, y_ref), "grad": rel_grads(g, g_ref)}
    naive_errors = None
    if ctx.rnd is not None:
        base = naive_ffn(x, p, "swiglu_oss", number_format(ctx.dtype), dy=dy, **options)
        naive_errors = {"forward": rel(base["y"], y_ref), "grad": rel_grads(_grads_of(base), g_ref)}
    return make_rows(op, ctx.dtype, errors, naive_errors)


def _moe_rows(ctx: Ctx, op, variant, n_experts, routing, init, scale) -> list[ParityRow]:
    fmt = number_format("fp64" if ctx.dtype == "float64" else ctx.dtype)
    params = refimpl.init_moe_params(ctx.rng, 32, 24, n_experts, variant, **init)
    p = {k: ctx.tree(a, ctx.arr) if isinstance(a, dict) else ctx.arr(a) for k, a in params.items()}
    x = draw_tokens(ctx.rng, 40, "random", p, fmt, _TOP_K, scale)  # (T, D) clear of near-ties
    dy = ctx.arr(ctx.rng.standard_normal(x.shape))  # (T, D)
    opts = dict(top_k=_TOP_K, **routing)
    y_ref, cache = refimpl.moe_forward(x, p, variant, **opts)
    g_ref = flatten(refimpl.moe_backward(dy, cache))
    pj = {k: ctx.tree(a, ctx.jx) if isinstance(a, dict) else ctx.jx(a) for k, a in p.items()}
    y = jmoe.moe_forward(ctx.jx(x), pj, variant, **opts)
    g = flatten(jmoe.moe_backward(ctx.jx(dy), ctx.jx(x), pj, variant, **opts))
    errors = {"forward": rel(y, y_ref), "grad": rel_grads(g, g_ref)}
    naive_errors = None
    if ctx.rnd is not None:
        base = naive_moe(x, p, variant, fmt, dy=dy, **opts)
        naive_errors = {"forward": rel(base["y"], y_ref), "grad": rel_grads(_grads_of(base), g_ref)}
    return make_rows(op, ctx.dtype, errors, naive_errors)


JOBS = [(op, _sink_rows, case) for op, case in SINK_CASES.items()]
JOBS += [(op, _oss_rows, (options,)) for op, options in OSS_CASES.items()]
JOBS += [(op, _moe_rows, case) for op, case in MOE_CASES.items()]
