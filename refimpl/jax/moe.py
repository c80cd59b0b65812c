"""Mixture-of-experts FFN layer in JAX, mirroring ``refimpl.moe`` (same parameters, routing, formulas).

Shape legend: T tokens, D d_model, F expert d_ff, E experts, k top-k.

Static shapes under ``jit`` (NOTE(jax)): a capacity-free, sort-based dispatch. The T*k (token, slot) pairs
are sorted by expert with a stable argsort -- a permutation of static size T*k -- and each expert's weights
meet exactly its contiguous rows in a grouped matrix product, ``jax.lax.ragged_dot(x_sorted (T*k, D),
W (E, D, F), group_sizes (E,))``: the group sizes are data (an int array), the shapes are not, so one compile
serves every routing and no token is dropped or padded. Work is T*k rows per matrix, as in the NumPy
reference (dense per-expert compute with masks would cost E/k times more). The same code runs on a slice of
the experts (expert parallelism, ``sharding.moe_forward_ep``): slots routed elsewhere sort after the local
groups, fall outside them (ragged_dot leaves those rows 0) and are removed by selection, never by
multiplying garbage by 0.

NOTE(jax): ``moe_forward`` returns y alone; ``moe_backward(dy, x, params, variant, ...)`` is ``jax.vjp``.
Router logits for ``load_balancing_loss`` are ``x @ params["w_router"] (+ b_router)``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from ..ffn import _BIAS_OF
from ..moe import check_moe_init, check_moe_options, check_moe_params
from ..variants import get_variant
from ._checks import add_bias, float_array
from .activations import sigmoid
from .ffn import _ffn, check_key, hidden, init_ffn_params
from .router import route

EXPERT_KEYS = ("w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down")
_STATIC = ("variant", "top_k", "routing", "normalize", "gelu", "alpha", "limit")


def init_moe_params(key, d_model: int, d_ff: int, n_experts: int, variant: str, *, bias: bool = False,
                    router_bias: bool = False, n_shared: int = 0, shared_d_ff: int | None = None,
                    shared_gate: bool = False, dtype=jnp.float32) -> dict:  # fmt: skip
    """As ``refimpl.init_moe_params``. NOTE(jax): a ``jax.random`` key, float32 by default."""
    check_key(key)
    d_model, d_ff, n_experts, v, n_shared, shared_d_ff, dtype = check_moe_init(
        d_model, d_ff, n_experts, variant, bias, router_bias, n_shared, shared_d_ff, shared_gate, dtype)
    k_router, k_bias, k_experts, k_shared, k_gate = jax.random.split(key, 5)
    std = 1.0 / math.sqrt(d_model)
    params = {"w_router": (jax.random.normal(k_router, (d_model, n_experts)) * std).astype(dtype)}  # (D, E)
    if router_bias:
        params["b_router"] = (jax.random.normal(k_bias, (n_experts,)) * std).astype(dtype)  # (E,)
    shapes = {"w_gate": (d_model, d_ff), "w_up": (d_model, d_ff), "w_down": (d_ff, d_model)}
    for w, k in zip(v.param_names, jax.random.split(k_experts, v.n_matrices), strict=True):
        kw, kb = jax.random.split(k)  # NOTE(jax): one draw per stacked weight, not one per expert
        fan_in = shapes[w][0]
        params[w] = (jax.random.normal(kw, (n_experts, *shapes[w])) / math.sqrt(fan_in)).astype(dtype)  # (E, ., .)
        if bias:
            b_shape = (n_experts, shapes[w][1])
            params[_BIAS_OF[w]] = (jax.random.normal(kb, b_shape) / math.sqrt(fan_in)).astype(dtype)  # (E, F)|(E, D)
    if n_shared:
        params["shared"] = init_ffn_params(k_shared, d_model, n_shared * shared_d_ff, v.name, bias=bias, dtype=dtype)
        if shared_gate:
            params["w_shared_gate"] = (jax.random.normal(k_gate, (d_model, 1)) * std).astype(dtype)  # (D, 1)
    return params


def check_moe(x, params, variant, top_k, routing, normalize, gelu, alpha, limit):
    v = get_variant(variant)
    x = float_array("x", x, min_ndim=1)
    p = check_moe_params(params, v, x.shape[-1], as_array=float_array)
    opts = check_moe_options(v, p["w_router"].shape[1], top_k, routing, normalize, gelu, alpha, limit)
    return x, p, v, opts


def router_logits(x2, p: dict):
    """l = x W_router + b_router, (T, E)."""
    logits = x2 @ p["w_router"]  # (T, E)
    return add_bias(logits, p["b_router"]) if "b_router" in p else logits


def routed_experts(x2, p: dict, selected, weights, v, gelu: str, opts: dict, expert_offset=0):
    """sum_j w_tj FFN_{S_tj}(x_t) over the experts p holds, global indices expert_offset .. + E_local - 1.

    x2 (T, D), selected and weights (T, k); returns (T, D). Slots routed to other experts contribute 0.
    """
    n_tokens, top_k = selected.shape
    n_local = p["w_up"].shape[0]
    local = selected.reshape(-1) - expert_offset  # (T*k,) local expert index of each slot
    is_local = (local >= 0) & (local < n_local)  # (T*k,)
    group = jnp.where(is_local, local, n_local)  # (T*k,) non-local slots sort last, past every group
    order = jnp.argsort(group, stable=True)  # (T*k,)
    group_sizes = jnp.bincount(group, length=n_local + 1)[:n_local].astype(jnp.int32)  # (E_local,)
    bias_row = jnp.minimum(group[order], n_local - 1)  # (T*k,) any valid row for non-local slots (dropped)

    def affine(inp, w: str, b: str):
        out = jax.lax.ragged_dot(inp, p[w], group_sizes)  # (T*k, out) grouped matrix product
        return add_bias(out, p[b][bias_row]) if b in p else out

    x_sorted = x2[order // top_k]  # (T*k, D)
    a = affine(x_sorted, "w_gate", "b_gate") if v.gated else None  # (T*k, F)
    h = hidden(a, affine(x_sorted, "w_up", "b_up"), v, gelu, opts)  # (T*k, F)
    out = affine(h, "w_down", "b_down")[jnp.argsort(order)]  # (T*k, D) back in slot order
    out = jnp.where(is_local[:, None], out, jnp.zeros_like(out))  # (T*k, D) selection, not a multiply
    return jnp.einsum("tk,tkd->td", weights, out.reshape(n_tokens, top_k, -1))  # (T, D)


def shared_experts(x2, p: dict, v, gelu: str, opts: dict):
    """FFN_shared(x) [* sigmoid(x w_shared_gate)], (T, D); 0 without shared experts."""
    if "shared" not in p:
        return jnp.zeros_like(x2)
    y = _ffn(x2, p["shared"], v, gelu, opts)  # (T, D)
    return y * sigmoid(x2 @ p["w_shared_gate"]) if "w_shared_gate" in p else y


def _moe(x, p, v, top_k, routing, normalize, gelu, opts):
    x2 = x.reshape(-1, x.shape[-1])  # (T, D)
    selected, weights = route(router_logits(x2, p), top_k, routing, normalize)  # (T, k) each
    experts = {k: a for k, a in p.items() if k in EXPERT_KEYS}
    y = routed_experts(x2, experts, selected, weights, v, gelu, opts) + shared_experts(x2, p, v, gelu, opts)
    return y.reshape(x.shape)


@partial(jax.jit, static_argnames=_STATIC)
def moe_forward(x, params: dict, variant: str, *, top_k: int, routing: str = "softmax_topk", normalize: bool = True,
                gelu: str = "erf", alpha=None, limit=None):  # fmt: skip
    """y = MoE(x) for x (..., D), as ``refimpl.moe_forward``; y has x's shape and dtype."""
    x, p, v, opts = check_moe(x, params, variant, top_k, routing, normalize, gelu, alpha, limit)
    return _moe(x, p, v, top_k, routing, normalize, gelu, opts)


@partial(jax.jit, static_argnames=_STATIC)
def moe_backward(dy, x, params: dict, variant: str, *, top_k: int, routing: str = "softmax_topk",
                 normalize: bool = True, gelu: str = "erf", alpha=None, limit=None) -> dict:  # fmt: skip
    """Gradients of <dy, y> by ``jax.vjp``: {"x", "w_router", ..., "shared": {...}}, as ``refimpl.moe_backward``.

    NOTE(jax): takes the forward's inputs instead of a cache; add a load-balancing term with ``jax.grad``.
    """
    x, p, v, opts = check_moe(x, params, variant, top_k, routing, normalize, gelu, alpha, limit)
    dy = float_array("dy", dy)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have shape {tuple(x.shape)} (the output's); got {tuple(dy.shape)}")
    _, vjp = jax.vjp(lambda x_, p_: _moe(x_, p_, v, top_k, routing, normalize, gelu, opts), x, p)
    dx, dp = vjp(dy.astype(x.dtype))
    return {"x": dx, **dp}
