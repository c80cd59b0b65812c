"""JAX MoE, router and clamped SwiGLU against the float64 NumPy reference (x64): forward within 1e-12, autodiff
(jax.vjp via moe_backward, jax.grad of output + load-balancing loss) within 1e-10 of NumPy's moe_backward, for
every routing convention, shared experts, biases and several variants; one compile for every routing of a shape
(static shapes); dtype kept; validation shared with NumPy."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax_support import rel, x64  # noqa: E402, F401 -- x64: autouse fixture

import refimpl  # noqa: E402
from refimpl.jax import ffn as jffn  # noqa: E402
from refimpl.jax import moe as jmoe  # noqa: E402
from refimpl.jax import router as jrouter  # noqa: E402


def rel_tree(got: dict, ref: dict) -> dict:
    out = {}
    for k, r in ref.items():
        if isinstance(r, dict):
            out.update({f"{k}.{s}": rel(got[k][s], r[s]) for s in r})
        else:
            out[k] = rel(got[k], r)
    return out


CASES = [  # variant, init options, routing, normalize, moe options (plain Mixtral: the load-balancing test below)
    ("swiglu", dict(n_shared=2, shared_d_ff=3, shared_gate=True), "softmax_topk", False, {}),
    ("swiglu_oss", dict(bias=True, router_bias=True), "topk_softmax", True, {}),
    ("swiglu_oss", dict(bias=True, n_shared=1), "softmax_topk", True, dict(alpha=1.0, limit=1.5)),
    ("geglu", dict(bias=True, router_bias=True, n_shared=1), "softmax_topk", True, dict(gelu="tanh")),
    ("gelu", {}, "topk_softmax", True, {}),
]


@pytest.mark.parametrize("variant,init_kw,routing,normalize,kw", CASES)
def test_moe_forward_and_jax_grad_match_numpy(variant, init_kw, routing, normalize, kw):
    rng = np.random.default_rng(CASES.index((variant, init_kw, routing, normalize, kw)))
    p = refimpl.init_moe_params(rng, 12, 7, 5, variant, **init_kw)
    x = 3.0 * rng.standard_normal((2, 6, 12))  # (B, T, D): swiglu_oss clamps active
    dy = rng.standard_normal(x.shape)  # random upstream gradient
    opts = dict(top_k=2, routing=routing, normalize=normalize, **kw)
    y_ref, cache = refimpl.moe_forward(x, p, variant, **opts)
    g_ref = refimpl.moe_backward(dy, cache)
    assert rel(jmoe.moe_forward(x, p, variant, **opts), y_ref) <= 1e-12

    errors = rel_tree(jmoe.moe_backward(dy, x, p, variant, **opts), g_ref)  # jax.vjp of the forward
    assert max(errors.values()) <= 1e-10, errors


def test_load_balancing_loss_and_its_gradient_through_the_router_match_numpy():
    rng = np.random.default_rng(3)
    p = refimpl.init_moe_params(rng, 8, 5, 6, "swiglu", router_bias=True)
    x, dy, c = rng.standard_normal((20, 8)), rng.standard_normal((20, 8)), 0.3  # (T, D), (T, D), aux weight
    y, cache = refimpl.moe_forward(x, p, "swiglu", top_k=2)
    aux, aux_cache = refimpl.load_balancing_loss(cache.router_logits, 2)
    d_logits = refimpl.load_balancing_loss_backward(c, aux_cache)["router_logits"]
    g_ref = refimpl.moe_backward(dy, cache, d_router_logits=d_logits)
    assert abs(float(jrouter.load_balancing_loss(cache.router_logits, 2)) - aux) <= 1e-14 * aux
    got = jrouter.load_balancing_loss_backward(c, cache.router_logits, 2)["router_logits"]
    assert rel(got, d_logits) <= 1e-12

    def total(x_, p_):  # <dy, y> + c * aux(router logits), as a training step would differentiate it
        y_ = jmoe.moe_forward(x_, p_, "swiglu", top_k=2)
        logits = jmoe.router_logits(x_, p_)
        return jnp.sum(jnp.asarray(dy) * y_) + c * jrouter.load_balancing_loss(logits, 2)

    dx, dp = jax.grad(total, argnums=(0, 1))(jnp.asarray(x), jax.tree.map(jnp.asarray, p))
    assert max(rel_tree({"x": dx, **dp}, g_ref).values()) <= 1e-10


def test_one_compile_for_every_routing_of_a_shape():
    """Static shapes: different expert loads (including experts that get no token) reuse one executable."""
    rng = np.random.default_rng(0)
    p = refimpl.init_moe_params(rng, 8, 4, 4, "swiglu")
    jmoe.moe_forward._clear_cache()
    skewed = {**p, "w_router": p["w_router"] + np.array([50.0, 50.0, -50.0, -50.0])}  # experts 2, 3 unused
    x = np.abs(rng.standard_normal((10, 8)))  # (T, D) positive: the skew decides the routing
    for params, inp in ((p, x), (skewed, x), (p, -x), (skewed, 2 * x)):
        y = jmoe.moe_forward(inp, params, "swiglu", top_k=2)
        assert rel(y, refimpl.moe_forward(inp, params, "swiglu", top_k=2)[0]) <= 1e-12
    assert jmoe.moe_forward._cache_size() == 1


def test_dtype_kept_and_float32_close_to_the_reference():
    rng = np.random.default_rng(1)
    p = refimpl.init_moe_params(rng, 16, 8, 4, "swiglu_oss", bias=True, router_bias=True)
    x = rng.standard_normal((12, 16))  # (T, D)
    y = jmoe.moe_forward(x.astype(np.float32), jax.tree.map(lambda a: a.astype(np.float32), p), "swiglu_oss",
                         top_k=2, routing="topk_softmax")  # fmt: skip
    assert y.dtype == jnp.float32
    assert rel(y, refimpl.moe_forward(x, p, "swiglu_oss", top_k=2, routing="topk_softmax")[0]) <= 1e-5


def test_clamp_gradient_at_equality_matches_numpy():
    """jnp.minimum / jnp.clip would give 0.5 at g == limit; the port passes 1, as NumPy and torch.clamp."""
    p = {"w_gate": np.array([[7.0, 8.0, 2.0]]), "w_up": np.array([[7.0, -7.0, 7.5]]), "w_down": np.ones((3, 1))}
    x, dy = np.ones((1, 1)), np.array([[1.0]])  # pre-activations are the weights
    g_ref = refimpl.ffn_backward(dy, refimpl.ffn_forward(x, p, "swiglu_oss")[1])
    got = jffn.ffn_backward(dy, x, p, "swiglu_oss")
    for k in ("w_gate", "w_up"):
        np.testing.assert_allclose(np.asarray(got[k]), g_ref[k], rtol=1e-13, atol=1e-300)


def test_init_moe_params_shapes_and_key_validation():
    p = jmoe.init_moe_params(jax.random.key(0), 16, 8, 4, "swiglu", bias=True)  # shared experts: init_ffn_params
    assert {k: a.shape for k, a in p.items()} == {"w_router": (16, 4), "w_gate": (4, 16, 8), "w_up": (4, 16, 8),
                                                  "w_down": (4, 8, 16), "b_gate": (4, 8), "b_up": (4, 8),
                                                  "b_down": (4, 16)}  # fmt: skip
    assert abs(float(jnp.std(p["w_up"])) * 4 - 1) < 0.1  # std 1/sqrt(fan_in)
    assert p["w_up"].dtype == jnp.float32 and not np.allclose(p["w_up"][0], p["w_up"][1])  # experts differ
    for bad, match in (
        (dict(key=0), "key must be a jax.random.key"),
        (dict(dtype=jnp.int32), "dtype must be a f"),
        (dict(dtype="foo"), "dtype must be a floating"),
        (dict(shared_gate=True), "n_shared >= 1"),
    ):
        args = {"key": jax.random.key(0), "dtype": jnp.float32, "shared_gate": False, **bad}
        with pytest.raises(ValueError, match=match):
            jmoe.init_moe_params(args.pop("key"), 4, 3, 2, "swiglu", **args)
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        jffn.init_ffn_params(jax.random.key(0), 4, 3, "swiglu", dtype=jnp.int32)  # issue 12, in the port too
    with pytest.raises(ValueError, match="key must be"):
        jffn.init_ffn_params(np.random.default_rng(0), 4, 3, "swiglu")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, p: jmoe.moe_forward(x, p, "swiglu", top_k=9), "top_k must be at most the number of experts E=4"),
        (lambda x, p: jmoe.moe_forward(x, p, "swiglu", top_k=2, routing="topk_softmax", normalize=False), "normalize"),
        (lambda x, p: jmoe.moe_forward(x, p, "swiglu", top_k=2, alpha=2.0), "alpha does not apply"),
        (lambda x, p: jmoe.moe_forward(x, {**p, "w_down": p["w_up"]}, "swiglu", top_k=2), r"params\['w_down'\]"),
        (lambda x, p: jmoe.moe_backward(x[:2], x, p, "swiglu", top_k=2), "dy must have shape"),
        (lambda x, p: jrouter.load_balancing_loss(x, 99), "top_k must be at most"),
        (
            lambda x, p: jffn.ffn_forward(x, {k: a[0] for k, a in p.items() if k != "w_router"}, "swiglu", limit=1.0),
            "limit does not apply",
        ),
    ],
)
def test_bad_input_names_the_argument(call, match):
    rng = np.random.default_rng(0)
    p = refimpl.init_moe_params(rng, 6, 3, 4, "swiglu")
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal((5, 6)), p)
