"""The naive low-precision baseline of a mixture-of-experts layer: refimpl.moe's math, rounding after each op.

Same arithmetic as baseline.py (each op from format values, accumulated in float32 -- float64 for fp64 --
and rounded once to the format), in the order a straightforward PyTorch MoE computes it (Transformers'
``MixtralSparseMoeBlock`` and ``GptOssMLP`` in one dtype). Shape legend: T tokens, D d_model, E experts,
k top-k, n_e the tokens routed to expert e.

    l = r(x W_router + b_router)                                            router logits, one op
    S = top-k of l (ties to the lowest index)                               the same selection as the
                                                                            golden run: inputs are drawn
                                                                            without near-ties (cases_moe.py)
    softmax_topk:  p = r(softmax(l))  w = p[S]  [normalize: w = r(w / r(sum w))]
    topk_softmax:  w = r(softmax(l[S]))
    o_tj = naive_ffn(x_t) of expert S_tj (baseline.naive_ffn on the n_e rows of each expert)
    y = r(... r(r(w_t0 o_t0) + r(w_t1 o_t1)) ...)                           slot by slot, as index_add_ does
    [+ shared: y = r(y + r(shared(x) * r(sigmoid(r(x w_shared_gate)))))]
Backward (dy given): each expert's naive_ffn backward with dy_e = r(w dy); dw_tj = r(<dy_t, o_tj>);
    softmax_topk: c = r(dw - r(<dw, w>)), dp[S] = r(c / sum p[S]) (normalize) or dw; dl = r(p r(dp - r(<dp, p>)))
    topk_softmax: dl[S] = r(w r(dw - r(<dw, w>)))
    dW_router = r(x^T dl), db_router = r(sum_t dl), dx = the slots' dx summed slot by slot, + r(dl W_router^T),
    + the shared path (gate: dz = r(r(<dy, shared(x)>) * r(sigma(z) sigma(-z)))).
Gradients come back flat: "dx", "dw_router", "dw_up" (E, D, F), ..., "dshared.w_up", "dw_shared_gate".
"""

from __future__ import annotations

import numpy as np

from ..activations import sigmoid
from ..router import select_experts, softmax
from .arith import Naive
from .baseline import naive_ffn
from .dtypes import NumberFormat

EXPERT_KEYS = ("w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down")


def _slot_sum(nv: Naive, terms: np.ndarray) -> np.ndarray:
    """(T, D): terms (T, k, D) added slot after slot, each addition rounded."""
    total = terms[:, 0]  # (T, D)
    for j in range(1, terms.shape[1]):
        total = nv.r(nv.a(total) + nv.a(terms[:, j]))
    return total


def _weights(nv: Naive, logits, selected, routing: str, normalize: bool) -> tuple:
    """Combine weights (T, k), and (probs (T, E), sum p[S] (T, 1)) for softmax_topk's backward."""
    if routing == "topk_softmax":
        return nv.r(softmax(nv.a(np.take_along_axis(logits, selected, axis=-1)))), None, None  # (T, k)
    probs = nv.r(softmax(nv.a(logits)))  # (T, E) one op
    w = np.take_along_axis(probs, selected, axis=-1)  # (T, k)
    if not normalize:
        return w, probs, None
    total = nv.r(nv.sum(w, -1, keepdims=True))  # (T, 1)
    return nv.r(nv.a(w) / nv.a(total)), probs, total


def _route_backward(nv: Naive, dw, w, selected, probs, total, n_experts: int) -> np.ndarray:
    """d logits (T, E) from d weights (T, k), the selection held fixed (refimpl.router.route_backward)."""
    centred = nv.r(nv.a(dw) - nv.a(nv.r(nv.sum(nv.a(dw) * nv.a(w), -1, keepdims=True))))  # (T, k)
    dl = np.zeros((dw.shape[0], n_experts))  # (T, E)
    if probs is None:  # topk_softmax
        np.put_along_axis(dl, selected, nv.mul(w, centred), axis=-1)
        return dl
    np.put_along_axis(dl, selected, dw if total is None else nv.r(nv.a(centred) / nv.a(total)), axis=-1)
    inner = nv.r(nv.sum(nv.a(dl) * nv.a(probs), -1, keepdims=True))  # (T, 1)
    return nv.mul(probs, nv.r(nv.a(dl) - nv.a(inner)))  # (T, E)


def naive_moe(x: np.ndarray, params: dict, variant: str, fmt: NumberFormat, *, top_k: int, routing: str,
              normalize: bool, dy: np.ndarray | None, gelu: str = "erf", alpha=None, limit=None) -> dict:  # fmt: skip
    """Baseline tensors {"y"} (+ the flat gradients when ``dy`` is given), float64 holding format values.

    x (..., D); params as refimpl.init_moe_params (float64 holding format values).
    """
    nv = Naive(fmt)
    ffn_kw = dict(gelu=gelu, alpha=alpha, limit=limit)
    x2 = x.reshape(-1, x.shape[-1])  # (T, D)
    n_tokens, d_model = x2.shape
    n_experts = params["w_router"].shape[1]
    logits = nv.affine(x2, params["w_router"], params.get("b_router"))  # (T, E)
    selected = select_experts(logits, top_k)  # (T, k)
    w, probs, total = _weights(nv, logits, selected, routing, normalize)  # (T, k)
    dy2 = None if dy is None else dy.reshape(n_tokens, d_model)  # (T, D)
    outs = np.zeros((n_tokens * top_k, d_model))  # (T*k, D) unweighted expert outputs per slot
    dxs = np.zeros_like(outs)  # (T*k, D)
    experts = {k: a for k, a in params.items() if k in EXPERT_KEYS}
    grads = {"d" + k: np.zeros(a.shape) for k, a in experts.items()}  # (E, ...) each
    flat = selected.ravel()  # (T*k,)
    for e in range(n_experts):
        slots = np.flatnonzero(flat == e)  # (n_e,) token t's slot j is t*k + j
        if slots.size == 0:
            continue
        tokens = slots // top_k  # (n_e,)
        dy_e = None if dy2 is None else nv.mul(w.ravel()[slots, None], dy2[tokens])  # (n_e, D)
        res = naive_ffn(x2[tokens], {k: a[e] for k, a in experts.items()}, variant, fmt, dy=dy_e, **ffn_kw)
        outs[slots] = res.pop("y")
        if dy_e is not None:
            dxs[slots] = res.pop("dx")
            for name, g in res.items():
                grads[name][e] = g
    o = outs.reshape(n_tokens, top_k, d_model)  # (T, k, D)
    y = _slot_sum(nv, nv.mul(w[..., None], o))  # (T, D)
    shared = gate = None
    if "shared" in params:
        dy_shared = None
        if "w_shared_gate" in params:
            z = nv.dot("td,do->to", x2, params["w_shared_gate"])  # (T, 1) gate logit
            gate = nv.r(sigmoid(z))  # (T, 1)
            dy_shared = None if dy2 is None else nv.mul(dy2, gate)  # (T, D)
        elif dy2 is not None:
            dy_shared = dy2
        shared = naive_ffn(x2, params["shared"], variant, fmt, dy=dy_shared, **ffn_kw)
        y = nv.r(nv.a(y) + nv.a(shared["y"] if gate is None else nv.mul(shared["y"], gate)))  # (T, D)
    result = {"y": y.reshape(x.shape)}
    if dy2 is None:
        return result
    dw = nv.dot("td,tkd->tk", dy2, o)  # (T, k) d combine weights
    dl = _route_backward(nv, dw, w, selected, probs, total, n_experts)  # (T, E)
    result["dw_router"] = nv.dot("td,te->de", x2, dl)  # (D, E)
    if "b_router" in params:
        result["db_router"] = nv.r(nv.sum(dl, 0))  # (E,)
    dx = _slot_sum(nv, dxs.reshape(n_tokens, top_k, d_model))  # (T, D)
    dx = nv.r(nv.a(dx) + nv.a(nv.dot("te,de->td", dl, params["w_router"])))  # (T, D)
    result.update(grads)
    if shared is not None:
        dx = nv.r(nv.a(dx) + nv.a(shared.pop("dx")))
        result.update({"dshared." + name[1:]: g for name, g in shared.items() if name != "y"})
        if gate is not None:
            dz = nv.dot("td,td->t", dy2, shared["y"])[:, None]  # (T, 1)
            dz = nv.mul(dz, nv.r(sigmoid(z) * sigmoid(-z)))  # (T, 1) through the sigmoid
            result["dw_shared_gate"] = nv.dot("td,to->do", x2, dz)  # (D, 1)
            dx = nv.r(nv.a(dx) + nv.a(nv.dot("to,do->td", dz, params["w_shared_gate"])))
    result["dx"] = dx.reshape(x.shape)
    return result
