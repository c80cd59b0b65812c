"""Mixture of experts (NumPy): the forward against a token-by-token implementation written out here, the
routing conventions and tie-breaking, the load-balancing loss, and every backward against finite differences
(central differences and the VJP inner-product test) for hypothesis-drawn shapes and options."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import refimpl.moe
from refimpl import (
    check_grads,
    ffn_forward,
    init_moe_params,
    load_balancing_loss,
    load_balancing_loss_backward,
    moe_backward,
    moe_forward,
)

SMOOTH = ["swiglu", "swiglu_oss", "geglu", "gelu", "glu", "bilinear", "swish"]  # no kinks for FD (relu excluded)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def token_by_token(x, p, variant, top_k, routing, normalize, **opts):
    """The MoE written out per token (a Python loop, as a test may): route, run k FFNs, combine."""
    x2 = x.reshape(-1, x.shape[-1])  # (T, D)
    y = np.zeros_like(x2)  # (T, D)
    for t, xt in enumerate(x2):
        logits = xt @ p["w_router"] + p.get("b_router", 0.0)  # (E,)
        chosen = sorted(range(len(logits)), key=lambda e: (-logits[e], e))[:top_k]  # ties: lowest index
        if routing == "topk_softmax":
            w = _softmax(logits[chosen])
        else:
            w = _softmax(logits)[chosen]
            w = w / w.sum() if normalize else w
        for wj, e in zip(w, chosen, strict=True):
            expert = {k: a[e] for k, a in p.items() if k in ("w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down")}
            y[t] += wj * ffn_forward(xt[None], expert, variant, **opts)[0][0]
        if "shared" in p:
            s = ffn_forward(xt[None], p["shared"], variant, **opts)[0][0]
            y[t] += s / (1 + np.exp(-(xt @ p["w_shared_gate"])[0])) if "w_shared_gate" in p else s
    return y.reshape(x.shape)


CONVENTIONS = [("softmax_topk", True), ("softmax_topk", False), ("topk_softmax", True)]


@pytest.mark.parametrize("routing,normalize", CONVENTIONS)
@pytest.mark.parametrize("variant,kw", [("swiglu", {}), ("swiglu_oss", dict(bias=True, router_bias=True)),
                                        ("geglu", dict(n_shared=2, shared_d_ff=3, shared_gate=True)),
                                        ("relu", dict(n_shared=1, bias=True))])  # fmt: skip
def test_forward_equals_token_by_token(routing, normalize, variant, kw, rng):
    p = init_moe_params(rng, 8, 6, 5, variant, **kw)
    x = 3.0 * rng.standard_normal((2, 7, 8))  # (B, T, D)
    y, cache = moe_forward(x, p, variant, top_k=2, routing=routing, normalize=normalize)
    np.testing.assert_allclose(y, token_by_token(x, p, variant, 2, routing, normalize), rtol=1e-12, atol=1e-13)
    assert cache.router_logits.shape == (2, 7, 5)


def test_routing_conventions_relate_as_documented(rng):
    p = init_moe_params(rng, 8, 6, 6, "swiglu")
    x = rng.standard_normal((20, 8))  # (T, D)
    y_norm, c_norm = moe_forward(x, p, "swiglu", top_k=3)
    y_topk, c_topk = moe_forward(x, p, "swiglu", top_k=3, routing="topk_softmax")
    np.testing.assert_allclose(y_topk, y_norm, rtol=1e-13, atol=1e-14)  # exp(l_i) / sum_S exp(l_j) both ways
    np.testing.assert_allclose(c_norm.routing.weights.sum(axis=1), 1.0, rtol=1e-15)
    _, c_raw = moe_forward(x, p, "swiglu", top_k=3, normalize=False)
    assert np.all(c_raw.routing.weights.sum(axis=1) < 1.0)  # Qwen3-MoE with norm_topk_prob=False
    np.testing.assert_array_equal(c_raw.routing.selected, c_norm.routing.selected)
    assert np.all(np.diff(np.take_along_axis(c_raw.router_logits, c_raw.routing.selected, 1), axis=1) <= 0)


def test_ties_go_to_the_lowest_expert_index(rng):
    p = init_moe_params(rng, 4, 3, 5, "swiglu")
    p["w_router"][:] = p["w_router"][:, :1]  # every expert's logit is the same: all five tie
    _, cache = moe_forward(rng.standard_normal((6, 4)), p, "swiglu", top_k=2)
    assert cache.routing.selected.tolist() == [[0, 1]] * 6
    np.testing.assert_allclose(cache.routing.weights, 0.5, rtol=1e-15)


def test_experts_loop_not_tokens_and_unused_experts_get_zero_gradients(rng, monkeypatch):
    p = init_moe_params(rng, 4, 3, 6, "swiglu", n_shared=1)
    p["w_router"][:, 2:] -= 100.0  # experts 2..5 lose to 0 and 1 for every token drawn below
    x = np.abs(rng.standard_normal((50, 4)))  # (T, D) positive, so the -100 shift loses
    calls = []
    real = refimpl.moe.ffn_forward
    monkeypatch.setattr(refimpl.moe, "ffn_forward", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    y, cache = moe_forward(x, p, "swiglu", top_k=2)
    assert sorted(calls) == [(50, 4)] * 3  # experts 0 and 1 once each on all 50 tokens, plus the shared expert
    grads = moe_backward(rng.standard_normal(y.shape), cache)
    assert np.all(grads["w_up"][2:] == 0) and np.any(grads["w_up"][:2] != 0)
    assert {k: g.shape for k, g in grads.items() if k != "shared"} == {"x": (50, 4), **{k: a.shape for k, a in
                                                                       p.items() if k != "shared"}}  # fmt: skip


def _flat(params):
    """{name: array} with the shared expert's arrays as "shared.<name>" (check_grads takes a flat dict)."""
    return {**{k: a for k, a in params.items() if k != "shared"},
            **{f"shared.{k}": a for k, a in params.get("shared", {}).items()}}  # fmt: skip


def _nested(flat):
    out = {k: a for k, a in flat.items() if not k.startswith("shared.") and k != "x"}
    shared = {k[7:]: a for k, a in flat.items() if k.startswith("shared.")}
    return {**out, "shared": shared} if shared else out


def _boundary_gap(logits, top_k):
    """Smallest gap between the k-th and (k+1)-th largest logit of any token (inf when k = E)."""
    s = -np.sort(-logits.reshape(-1, logits.shape[-1]), axis=-1)  # (T, E) descending
    return np.inf if top_k == s.shape[1] else float(np.min(s[:, top_k - 1] - s[:, top_k]))


@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    d_model=st.integers(1, 4),
    d_ff=st.integers(1, 3),
    n_experts=st.integers(1, 4),
    top_k=st.integers(1, 4),
    convention=st.sampled_from(CONVENTIONS),
    variant=st.sampled_from(SMOOTH),
    bias=st.booleans(),
    router_bias=st.booleans(),
    shared=st.sampled_from([(0, False), (1, False), (2, True)]),
    seed=st.integers(0, 2**31),
)
def test_backward_matches_central_differences(lead, d_model, d_ff, n_experts, top_k, convention, variant, bias,
                                              router_bias, shared, seed):  # fmt: skip
    assume(top_k <= n_experts)
    rng = np.random.default_rng(seed)
    routing, normalize = convention
    p = init_moe_params(rng, d_model, d_ff, n_experts, variant, bias=bias, router_bias=router_bias,
                        n_shared=shared[0], shared_gate=shared[1])  # fmt: skip
    x = rng.standard_normal((*lead, d_model))  # (..., D)
    opts = dict(top_k=top_k, routing=routing, normalize=normalize)
    y, cache = moe_forward(x, p, variant, **opts)
    assume(_boundary_gap(cache.router_logits, top_k) > 1e-3)  # the selection is constant under FD's steps
    dy = rng.standard_normal(y.shape)  # random upstream gradient, never ones
    grads = moe_backward(dy, cache)
    report = check_grads(lambda i: moe_forward(i["x"], _nested(i), variant, **opts)[0], {"x": x, **_flat(p)},
                         {"x": grads["x"], **_flat(grads)}, dy)  # fmt: skip
    assert report.max_rel_error <= 1e-7, report


@pytest.mark.parametrize("routing,normalize", CONVENTIONS)
def test_backward_vjp_inner_product_at_larger_sizes(routing, normalize, rng):
    p = init_moe_params(rng, 16, 12, 6, "swiglu_oss", bias=True, router_bias=True, n_shared=1, shared_gate=True)
    x = 3.0 * rng.standard_normal((2, 40, 16))  # (B, T, D): clamps active in some units
    opts = dict(top_k=2, routing=routing, normalize=normalize)
    y, cache = moe_forward(x, p, "swiglu_oss", **opts)
    assert _boundary_gap(cache.router_logits, 2) > 1e-6
    dy = rng.standard_normal(y.shape)  # (B, T, D)
    grads = moe_backward(dy, cache)
    report = check_grads(lambda i: moe_forward(i["x"], _nested(i), "swiglu_oss", **opts)[0], {"x": x, **_flat(p)},
                         {"x": grads["x"], **_flat(grads)}, dy, max_elements=64, rng=rng)  # fmt: skip
    assert report.method["w_up"] == "vjp inner product" and report.max_rel_error <= 1e-7, report


def test_load_balancing_loss_values():
    """E sum_e f_e P_e, f_e = top-k assignments of e over T (Transformers' normalisation: sum_e f_e = k)."""
    loss, _ = load_balancing_loss(np.zeros((5, 4)), top_k=2)  # uniform: P_e = 1/4, ties -> experts 0, 1
    assert loss == pytest.approx(2.0, rel=1e-15)  # = k for uniform probabilities
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0]])  # (T, E): top-1 picks 0 and 1
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # (T, E)
    f = np.array([0.5, 0.5, 0.0])  # (E,)
    assert load_balancing_loss(logits, 1)[0] == pytest.approx(3 * f @ p.mean(0), rel=1e-15)


@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=2), n_experts=st.integers(1, 6),
       top_k=st.integers(1, 6), seed=st.integers(0, 2**31))  # fmt: skip
def test_load_balancing_loss_backward_matches_central_differences(lead, n_experts, top_k, seed):
    assume(top_k <= n_experts)
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.standard_normal((*lead, n_experts))  # (..., E)
    assume(_boundary_gap(logits, top_k) > 1e-3)
    loss, cache = load_balancing_loss(logits, top_k)
    dloss = float(rng.standard_normal())
    grad = load_balancing_loss_backward(dloss, cache)["router_logits"]
    if top_k == n_experts:  # every expert in every top-k: f_e = 1, L = E sum_e P_e = E, a constant
        assert loss == pytest.approx(n_experts, rel=1e-14) and np.all(grad == 0.0)
        return
    report = check_grads(lambda i: load_balancing_loss(i["l"], top_k)[0], {"l": logits}, {"l": grad}, dloss)
    assert report.max_rel_error <= 1e-7, report


def test_moe_backward_takes_the_load_balancing_gradient_through_the_router(rng):
    """d/d(params) of <dy, y> + c * aux(router logits), checked against central differences of both outputs."""
    p = init_moe_params(rng, 5, 4, 4, "swiglu", router_bias=True)
    x = rng.standard_normal((9, 5))  # (T, D)
    y, cache = moe_forward(x, p, "swiglu", top_k=2)
    assert _boundary_gap(cache.router_logits, 2) > 1e-3
    dy, dloss = rng.standard_normal(y.shape), 0.7  # (T, D), scalar
    loss, lb_cache = load_balancing_loss(cache.router_logits, 2)
    grads = moe_backward(dy, cache, d_router_logits=load_balancing_loss_backward(dloss, lb_cache)["router_logits"])

    def f(i):
        y_, c_ = moe_forward(i["x"], _nested(i), "swiglu", top_k=2)
        return y_, load_balancing_loss(c_.router_logits, 2)[0]

    report = check_grads(f, {"x": x, **p}, {"x": grads["x"], **{k: grads[k] for k in p}}, (dy, dloss))
    assert report.max_rel_error <= 1e-7, report
