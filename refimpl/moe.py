"""Mixture-of-experts FFN layer: a router, k of E routed experts per token, optional shared experts.

Shape legend: T tokens (the product of x's leading dims), D d_model, F expert d_ff, E experts, k top-k.

    router logits   l = x W_router + b_router                                                   (T, E)
    selection S and combine weights w (T, k): refimpl.router (conventions "softmax_topk" with normalize
                    True/False, "topk_softmax"; ties to the lowest expert index; S held fixed in backward)
    output          y_t = sum_j w_tj FFN_{S_tj}(x_t) + FFN_shared(x_t) [* sigmoid(x_t w_shared_gate)]

Experts are FFNs of any registry variant (``swiglu_oss`` with its ``alpha``/``limit``), computed by
``refimpl.ffn`` on the tokens routed to them: the T*k (token, slot) pairs are sorted by expert with one stable
argsort (tokens keep their order within an expert); each expert gathers its group of tokens (one fancy index,
a cache-sized block) and runs once on it, writing its rows of the sorted outputs -- a loop over experts, never
over tokens. The per-token sums over the k slots (the weighted combine, and dx) are
one sparse (T, T*k) matrix product each (scipy.sparse: a gather and a sum in one pass, no scatter).
n_shared shared experts of width Fs are one FFN of width n_shared*Fs (hidden units are independent, so this
is exact; with biases, their b_down sum is one vector). Qwen2-MoE: one shared expert gated by
sigmoid(x w_shared_gate).

Backward (dy given): dw_tj = <dy_t, FFN_{S_tj}(x_t)> (unweighted expert outputs are kept); expert e gets
ffn_backward of w_tj dy_t on its rows; the router's backward (refimpl.router.route_backward) turns dw into
dl; dW_router = x^T dl, db_router = sum_t dl, dx = sum_j (expert dx) + dl W_router^T (+ the shared path).
Shared gate: z = x w_shared_gate, dz = <dy, FFN_shared(x)> sigma(z) sigma(-z).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_array

from ._checks import choice, flag, float_array, float_dtype, param_keys, positive_int
from .activations import GELU_APPROXIMATIONS, sigmoid_pair
from .ffn import _BIAS_OF, FFNCache, check_ffn_params, ffn_backward, ffn_forward, ffn_options, init_ffn_params
from .router import Routing, check_routing, route, route_backward
from .variants import FFNVariant, get_variant

_EXPERT_SHAPES = {"w_gate": "EDF", "w_up": "EDF", "w_down": "EFD", "b_gate": "EF", "b_up": "EF", "b_down": "ED",
                  "b_router": "E", "w_shared_gate": "D1"}  # fmt: skip


def init_moe_params(rng: np.random.Generator, d_model: int, d_ff: int, n_experts: int, variant: str, *,
                    bias: bool = False, router_bias: bool = False, n_shared: int = 0, shared_d_ff: int | None = None,
                    shared_gate: bool = False, dtype=np.float64) -> dict:  # fmt: skip
    """{"w_router" (D, E), ["b_router" (E,)], "w_gate" (E, D, F) (gated variants), "w_up" (E, D, F), "w_down"
    (E, F, D), ["b_*" (E, F) / (E, D)], ["shared": FFN params of width n_shared * shared_d_ff],
    ["w_shared_gate" (D, 1)]}, every weight with std 1/sqrt(fan_in) as ``init_ffn_params``.

    ``shared_d_ff`` (default d_ff) and ``shared_gate`` need n_shared >= 1; ``bias`` applies to routed and
    shared experts alike.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    d_model, d_ff, n_experts, v, n_shared, shared_d_ff, dtype = check_moe_init(
        d_model, d_ff, n_experts, variant, bias, router_bias, n_shared, shared_d_ff, shared_gate, dtype)
    std = 1.0 / math.sqrt(d_model)
    params = {"w_router": (rng.standard_normal((d_model, n_experts)) * std).astype(dtype)}  # (D, E)
    if router_bias:
        params["b_router"] = (rng.standard_normal(n_experts) * std).astype(dtype)  # (E,)
    experts = [init_ffn_params(rng, d_model, d_ff, variant, bias=bias, dtype=dtype) for _ in range(n_experts)]
    params.update({k: np.stack([e[k] for e in experts]) for k in experts[0]})  # (E, ...) each
    if n_shared:
        params["shared"] = init_ffn_params(rng, d_model, n_shared * shared_d_ff, v.name, bias=bias, dtype=dtype)
        if shared_gate:
            params["w_shared_gate"] = (rng.standard_normal((d_model, 1)) * std).astype(dtype)  # (D, 1)
    return params


def check_moe_init(d_model, d_ff, n_experts, variant, bias, router_bias, n_shared, shared_d_ff, shared_gate,
                   dtype) -> tuple:  # fmt: skip
    """init_moe_params' arguments checked (shared by the JAX port): (D, F, E, variant, n_shared, Fs, dtype)."""
    d_model, d_ff, n_experts = (positive_int(n, val) for n, val in (("d_model", d_model), ("d_ff", d_ff),
                                                                    ("n_experts", n_experts)))  # fmt: skip
    v = get_variant(variant)
    for name, value in (("bias", bias), ("router_bias", router_bias), ("shared_gate", shared_gate)):
        flag(name, value)
    if isinstance(n_shared, bool) or not isinstance(n_shared, (int, np.integer)) or n_shared < 0:
        raise ValueError(f"n_shared must be a non-negative integer; got {n_shared!r}")
    if n_shared == 0 and (shared_d_ff is not None or shared_gate):
        raise ValueError("shared_d_ff and shared_gate apply only with n_shared >= 1; got n_shared=0")
    shared_d_ff = d_ff if shared_d_ff is None else positive_int("shared_d_ff", shared_d_ff)
    return d_model, d_ff, n_experts, v, int(n_shared), shared_d_ff, float_dtype("dtype", dtype)


def check_moe_params(params: dict, v: FFNVariant, d_model: int, *, as_array=float_array) -> dict:
    """Validate MoE parameters (shapes as in ``init_moe_params``); return them converted by ``as_array``."""
    weights = v.param_names
    param_keys("params", params, ("w_router", *weights),
               ("b_router", *(_BIAS_OF[w] for w in weights), "shared", "w_shared_gate"))  # fmt: skip
    w_router = as_array("params['w_router']", params["w_router"], ndim=2)
    if w_router.shape[0] != d_model or w_router.shape[1] == 0:
        raise ValueError(f"params['w_router'] must have shape (D, E) with D={d_model}, E >= 1; got {w_router.shape}")
    w_up = as_array("params['w_up']", params["w_up"], ndim=3)
    if w_up.shape[:2] != (w_router.shape[1], d_model) or w_up.shape[2] == 0:
        raise ValueError(f"params['w_up'] must have shape (E, D, F) with E={w_router.shape[1]} (w_router's), "
                         f"D={d_model}, F >= 1; got {w_up.shape}")  # fmt: skip
    sizes = {"E": w_up.shape[0], "D": d_model, "F": w_up.shape[2], "1": 1}
    p = {"w_router": w_router, "w_up": w_up}
    for k in sorted(set(params) - {"w_router", "w_up", "shared"}):
        expected = tuple(sizes[c] for c in _EXPERT_SHAPES[k])
        p[k] = as_array(f"params[{k!r}]", params[k], ndim=len(expected))
        if p[k].shape != expected:
            legend = ", ".join(f"{c}={sizes[c]}" for c in _EXPERT_SHAPES[k] if c != "1")
            raise ValueError(f"params[{k!r}] must have shape {expected} ({legend}); got {p[k].shape}")
    if "shared" in params:
        p["shared"] = check_ffn_params(params["shared"], v, d_model, as_array=as_array, name="params['shared']")
    elif "w_shared_gate" in params:
        raise ValueError("params['w_shared_gate'] needs params['shared'] (the shared expert it gates)")
    return p


def check_moe_options(v: FFNVariant, n_experts: int, top_k, routing, normalize, gelu, alpha, limit) -> dict:
    """Validate moe_forward's options (shared by the JAX port); return the variant's options."""
    check_routing(n_experts, top_k, routing, normalize)
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    return ffn_options(v, alpha=alpha, limit=limit)


def _expert_names(p: dict) -> list[str]:
    return [k for k in p if k in _BIAS_OF or k in _BIAS_OF.values()]


class MoECache(NamedTuple):
    x: np.ndarray  # (T, D)
    lead_shape: tuple  # x.shape[:-1]
    params: dict  # validated, float64
    router_logits: np.ndarray  # (..., E): what load_balancing_loss takes
    routing: Routing  # selection (T, k), weights (T, k), probabilities
    order: np.ndarray  # (T*k,) slots t*k + j sorted by expert
    position: np.ndarray  # (T*k,) inverse of order: where slot t*k + j sits in the sorted rows
    bounds: np.ndarray  # (E + 1,) expert e's sorted slots are order[bounds[e]:bounds[e + 1]]
    expert_caches: tuple  # FFNCache per expert, None for an expert that got no token
    out_sorted: np.ndarray  # (T*k, D) unweighted expert outputs, sorted by expert
    shared: FFNCache | None
    shared_gate: np.ndarray | None  # (T, 2) sigmoid(z), sigmoid(-z) of the gate logit z = x w_shared_gate
    shared_out: np.ndarray | None  # (T, D) the shared FFN's output before the gate (gated only)


def _slot_sum(rows: np.ndarray, position: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, D): sum_j weights[t, j] rows[position[t*k + j]] for sorted rows (T*k, D), as a sparse matrix product."""
    n_tokens, top_k = weights.shape
    indptr = np.arange(0, n_tokens * top_k + 1, top_k)  # (T + 1,) k entries per token
    return csr_array((weights.ravel(), position, indptr), shape=(n_tokens, len(position))) @ rows  # (T, D)


def moe_forward(x: np.ndarray, params: dict, variant: str, *, top_k: int, routing: str = "softmax_topk",
                normalize: bool = True, gelu: str = "erf", alpha=None, limit=None) -> tuple:  # fmt: skip
    """y = MoE(x) for x (..., D) (module docstring). Returns (y, MoECache); y has x's shape, in float64;
    ``cache.router_logits`` (..., E) feeds ``load_balancing_loss``.

    ``alpha``, ``limit``: swiglu_oss's options, passed to every expert (shared included).
    """
    v = get_variant(variant)
    x = float_array("x", x, min_ndim=1)
    p = check_moe_params(params, v, x.shape[-1])
    n_experts = p["w_router"].shape[1]
    opts = check_moe_options(v, n_experts, top_k, routing, normalize, gelu, alpha, limit)
    x2 = x.reshape(-1, x.shape[-1])  # (T, D)
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite logits are refused just below
        logits = x2 @ p["w_router"]  # (T, E)
        if "b_router" in p:
            logits += p["b_router"]
    if not np.isfinite(logits).all():
        raise ValueError("x and params['w_router'] must give finite router logits")
    r = route(logits, top_k, routing, normalize)
    order = np.argsort(r.selected.ravel(), kind="stable")  # (T*k,) slots grouped by expert
    position = np.empty_like(order)  # (T*k,)
    position[order] = np.arange(order.size)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(r.selected.ravel(), minlength=n_experts))])  # (E + 1,)
    tokens = order // top_k  # (T*k,) each sorted slot's token
    out_sorted = np.empty((order.size, x2.shape[1]))  # (T*k, D)
    caches = []
    for e in range(n_experts):
        rows = slice(bounds[e], bounds[e + 1])
        if rows.start == rows.stop:
            caches.append(None)
            continue
        x_e = x2[tokens[rows]]  # (n_e, D) expert e's tokens, gathered per expert (cache-sized)
        _, cache_e = ffn_forward(x_e, {k: p[k][e] for k in _expert_names(p)}, v.name, gelu=gelu,
                                 out=out_sorted[rows], **opts)  # fmt: skip
        caches.append(cache_e)
    y = _slot_sum(out_sorted, position, r.weights)  # (T, D)
    shared = gate = shared_out = None
    if "shared" in p:
        shared_out, shared = ffn_forward(x2, p["shared"], v.name, gelu=gelu, **opts)  # (T, D)
        if "w_shared_gate" in p:
            gate = np.concatenate(sigmoid_pair(x2 @ p["w_shared_gate"]), axis=1)  # (T, 2): sigma(z), sigma(-z)
            y += shared_out * gate[:, :1]
        else:
            y += shared_out
            shared_out = None
    cache = MoECache(x2, x.shape[:-1], p, logits.reshape(*x.shape[:-1], n_experts), r, order, position, bounds,
                     tuple(caches), out_sorted, shared, gate, shared_out)  # fmt: skip
    return y.reshape(x.shape), cache


def moe_backward(dy: np.ndarray, cache: MoECache, *, d_router_logits: np.ndarray | None = None) -> dict:
    """Gradients of <dy, y> (+ <d_router_logits, router logits>, e.g. from load_balancing_loss_backward):
    {"x", "w_router", ["b_router"], expert weights (E, ...), ["shared": {...}], ["w_shared_gate"]}."""
    if not isinstance(cache, MoECache):
        raise ValueError(f"cache must be the MoECache returned by moe_forward; got {type(cache).__name__}")
    n_tokens, d_model = cache.x.shape
    dy = float_array("dy", dy)
    if dy.shape != (*cache.lead_shape, d_model):
        raise ValueError(f"dy must have shape {(*cache.lead_shape, d_model)} (the output's); got {dy.shape}")
    if d_router_logits is not None:
        d_router_logits = float_array("d_router_logits", d_router_logits)
        if d_router_logits.shape != cache.router_logits.shape:
            raise ValueError(f"d_router_logits must have the router logits' shape {cache.router_logits.shape}; "
                             f"got {d_router_logits.shape}")  # fmt: skip
    p, r = cache.params, cache.routing
    top_k = r.selected.shape[1]
    dy2 = dy.reshape(n_tokens, d_model)  # (T, D)
    tokens, w_sorted = cache.order // top_k, r.weights.ravel()[cache.order]  # (T*k,) each
    dw_sorted = np.empty(cache.order.size)  # (T*k,)
    dx_sorted = np.empty_like(cache.out_sorted)  # (T*k, D)
    grads = {k: np.zeros(p[k].shape) for k in _expert_names(p)}  # (E, ...) each; 0 for experts without tokens
    for e, cache_e in enumerate(cache.expert_caches):
        if cache_e is not None:
            rows = slice(cache.bounds[e], cache.bounds[e + 1])
            dy_e = dy2[tokens[rows]]  # (n_e, D) gathered per expert (cache-sized)
            dw_sorted[rows] = np.einsum("sd,sd->s", dy_e, cache.out_sorted[rows])
            dy_e *= w_sorted[rows, None]
            ffn_backward(dy_e, cache_e, out={"x": dx_sorted[rows], **{k: g[e] for k, g in grads.items()}})
    dw = dw_sorted[cache.position].reshape(n_tokens, top_k)  # (T, k)
    dx = _slot_sum(dx_sorted, cache.position, np.ones((n_tokens, top_k)))  # (T, D)
    dl = route_backward(dw, r)  # (T, E)
    if d_router_logits is not None:
        dl += d_router_logits.reshape(dl.shape)
    grads["w_router"] = cache.x.T @ dl  # (D, E)
    if "b_router" in p:
        grads["b_router"] = dl.sum(axis=0)  # (E,)
    dx += dl @ p["w_router"].T
    if cache.shared is not None:
        dy_shared = dy2 if cache.shared_gate is None else dy2 * cache.shared_gate[:, :1]  # (T, D)
        g = ffn_backward(dy_shared, cache.shared)
        dx += g.pop("x")
        grads["shared"] = g
        if cache.shared_gate is not None:
            dz = np.sum(dy2 * cache.shared_out, axis=1, keepdims=True)  # (T, 1) d gate logit
            dz *= cache.shared_gate[:, :1] * cache.shared_gate[:, 1:]
            grads["w_shared_gate"] = cache.x.T @ dz  # (D, 1)
            dx += dz @ p["w_shared_gate"].T
    return {"x": dx.reshape(*cache.lead_shape, d_model), **grads}
