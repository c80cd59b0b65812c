"""MoE and router inputs: every bad argument is a ValueError naming it, a rejected call changes nothing,
parameter shapes and dtypes of init_moe_params."""

import numpy as np
import pytest

from refimpl import init_moe_params, load_balancing_loss, load_balancing_loss_backward, moe_backward, moe_forward


def test_init_shapes_and_scale(rng):
    p = init_moe_params(rng, 64, 48, 4, "swiglu_oss", bias=True, router_bias=True, n_shared=2, shared_d_ff=10,
                        shared_gate=True)  # fmt: skip
    shapes = {k: a.shape for k, a in p.items() if k != "shared"}
    assert shapes == {"w_router": (64, 4), "b_router": (4,), "w_gate": (4, 64, 48), "w_up": (4, 64, 48),
                      "w_down": (4, 48, 64), "b_gate": (4, 48), "b_up": (4, 48), "b_down": (4, 64),
                      "w_shared_gate": (64, 1)}  # fmt: skip
    shared = {"w_gate": (64, 20), "w_up": (64, 20), "w_down": (20, 64), "b_gate": (20,), "b_up": (20,), "b_down": (64,)}
    assert {k: a.shape for k, a in p["shared"].items()} == shared  # two shared experts of 10: one FFN of width 20
    assert abs(np.std(p["w_up"]) * 8 - 1) < 0.05 and abs(np.std(p["w_router"]) * 8 - 1) < 0.15  # 1/sqrt(fan_in)
    ungated = init_moe_params(rng, 8, 4, 3, "gelu", dtype=np.float32)
    assert sorted(ungated) == ["w_down", "w_router", "w_up"] and ungated["w_up"].dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_experts=0), "n_experts must be a positive integer"),
        (dict(n_shared=-1), "n_shared must be a non-negative integer"),
        (dict(n_shared=True), "n_shared must be a non-negative integer"),
        (dict(shared_gate=True), "shared_d_ff and shared_gate apply only with n_shared >= 1"),
        (dict(shared_d_ff=4), "shared_d_ff and shared_gate apply only with n_shared >= 1"),
        (dict(n_shared=1, shared_d_ff=0), "shared_d_ff must be a positive integer"),
        (dict(bias="yes"), "bias must be True or False"),
        (dict(router_bias=1), "router_bias must be True or False"),
        (dict(dtype="foo"), "dtype must be a floating-point dtype"),
        (dict(dtype=np.int32), "dtype must be a floating-point dtype; got int32"),
        (dict(variant="swigly"), "variant must be one of"),
        (dict(rng=0), "rng must be a numpy.random.Generator"),
    ],
)
def test_init_bad_arguments(kwargs, match):
    args = dict(rng=np.random.default_rng(0), d_model=4, d_ff=3, n_experts=2, variant="swiglu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        init_moe_params(args.pop("rng"), args.pop("d_model"), args.pop("d_ff"), args.pop("n_experts"),
                        args.pop("variant"), **args)  # fmt: skip


def _without(p, key):
    return {k: a for k, a in p.items() if k != key}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=5), "top_k must be at most the number of experts E=4"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=0), "top_k must be a positive integer"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2.0), "top_k must be a positive integer"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2, routing="sinkhorn"), "routing must be one of"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2, normalize="no"), "normalize must be True or False"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2, routing="topk_softmax", normalize=False),
         "normalize=False applies to routing='softmax_topk' only"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2, gelu="fast"), "gelu must be one of"),
        (lambda x, p: moe_forward(x, p, "swiglu", top_k=2, limit=7.0), "limit does not apply to variant 'swiglu'"),
        (lambda x, p: moe_forward(x, p, "swiglu_oss", top_k=2, alpha=-1.0), "alpha must be a positive finite"),
        (lambda x, p: moe_forward(x.astype(int), p, "swiglu", top_k=2), "x must have a floating-point dtype"),
        (lambda x, p: moe_forward(x[:, :3], p, "swiglu", top_k=2), r"params\['w_router'\] must have shape \(D, E\)"),
        (lambda x, p: moe_forward(x, _without(p, "w_gate"), "swiglu", top_k=2), r"params is missing \['w_gate'\]"),
        (lambda x, p: moe_forward(x, {**p, "w_k": x}, "swiglu", top_k=2), r"unexpected keys \['w_k'\]"),
        (lambda x, p: moe_forward(x, {**p, "w_up": p["w_up"][:3]}, "swiglu", top_k=2), r"params\['w_up'\] must have"),
        (lambda x, p: moe_forward(x, {**p, "w_down": p["w_up"]}, "swiglu", top_k=2),
         r"params\['w_down'\] must have shape \(4, 3, 5\) \(E=4, F=3, D=5\)"),
        (lambda x, p: moe_forward(x, {**p, "b_router": np.zeros(3)}, "swiglu", top_k=2), r"params\['b_router'\]"),
        (lambda x, p: moe_forward(x, _without(p, "shared"), "swiglu", top_k=2), r"params\['w_shared_gate'\] needs"),
        (lambda x, p: moe_forward(x, {**p, "shared": {**p["shared"], "w_up": p["shared"]["w_up"].T}}, "swiglu",
                                  top_k=2), r"params\['shared'\]\['w_up'\] must have shape"),  # fmt: skip
        (lambda x, p: moe_forward(x, {**p, "shared": [1]}, "swiglu", top_k=2), r"params\['shared'\] must be a dict"),
        (lambda x, p: moe_forward(np.full_like(x, np.inf), p, "swiglu", top_k=2), "must give finite router logits"),
        (lambda x, p: moe_backward(x[:2], moe_forward(x, p, "swiglu", top_k=2)[1]), "dy must have shape"),
        (lambda x, p: moe_backward(x, {"x": x}), "cache must be the MoECache"),
        (lambda x, p: moe_backward(x, moe_forward(x, p, "swiglu", top_k=2)[1], d_router_logits=x),
         "d_router_logits must have the router logits' shape"),
    ],
)
def test_bad_input_names_the_argument(call, match, rng):
    p = init_moe_params(rng, 5, 3, 4, "swiglu", n_shared=1, shared_gate=True)
    x = rng.standard_normal((6, 5))  # (T, D)
    with pytest.raises(ValueError, match=match):
        call(x, p)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: load_balancing_loss(np.zeros((3, 0)), 1), "at least one token and one expert"),
        (lambda: load_balancing_loss(np.zeros((3, 4)), 5), "top_k must be at most the number of experts E=4"),
        (lambda: load_balancing_loss(np.full((3, 4), np.nan), 1), "router_logits must be finite"),
        (lambda: load_balancing_loss(np.zeros((3, 4), int), 1), "router_logits must have a floating-point dtype"),
        (lambda: load_balancing_loss_backward(np.nan, load_balancing_loss(np.zeros((3, 4)), 1)[1]), "dloss must be"),
        (lambda: load_balancing_loss_backward(True, load_balancing_loss(np.zeros((3, 4)), 1)[1]), "dloss must be"),
        (lambda: load_balancing_loss_backward(np.ones(2), load_balancing_loss(np.zeros((3, 4)), 1)[1]), "dloss must"),
        (lambda: load_balancing_loss_backward(1.0, None), "cache must be the LoadBalancingCache"),
    ],
)
def test_load_balancing_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_calls_change_nothing_they_are_given(rng):
    p = init_moe_params(rng, 5, 3, 4, "swiglu_oss", bias=True, router_bias=True, n_shared=1, shared_gate=True)
    x, dy = rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 5))  # (B, T, D) each
    before = {k: a.copy() for k, a in p.items() if k != "shared"}, {k: a.copy() for k, a in p["shared"].items()}
    x0, dy0 = x.copy(), dy.copy()
    y, cache = moe_forward(x, p, "swiglu_oss", top_k=2)
    grads = moe_backward(dy, cache)
    moe_backward(dy, cache)  # the cache can be used twice
    with pytest.raises(ValueError):
        moe_forward(x, p, "swiglu_oss", top_k=9)
    assert np.array_equal(x, x0) and np.array_equal(dy, dy0)
    assert all(np.array_equal(p[k], a) for k, a in before[0].items())
    assert all(np.array_equal(p["shared"][k], a) for k, a in before[1].items())
    assert np.array_equal(moe_backward(dy, cache)["w_up"], grads["w_up"])


def test_float32_params_and_inputs_compute_in_float64(rng):
    p = init_moe_params(rng, 5, 3, 4, "swiglu", dtype=np.float32)
    x = rng.standard_normal((7, 5)).astype(np.float32)  # (T, D)
    y, cache = moe_forward(x, p, "swiglu", top_k=2)
    y64, _ = moe_forward(x.astype(np.float64), {k: a.astype(np.float64) for k, a in p.items()}, "swiglu", top_k=2)
    assert y.dtype == np.float64 and np.array_equal(y, y64)
    assert moe_backward(np.ones_like(y), cache)["w_gate"].dtype == np.float64
