"""JAX activations and FFNs against the float64 NumPy reference (x64): forward within 1e-12, jax.grad within
1e-10 of the manual backward, for every variant and both GELU flavours; jit caching; validation."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax_support import rel, x64  # noqa: E402, F401 -- x64: autouse fixture

import refimpl  # noqa: E402
from refimpl import activations as np_act  # noqa: E402
from refimpl.jax import activations as jact  # noqa: E402
from refimpl.jax import ffn as jffn  # noqa: E402

CASES = [(v, g) for v, spec in refimpl.FFN_VARIANTS.items()
         for g in (("erf", "tanh") if spec.activation == "gelu" else ("erf",))]  # fmt: skip


@pytest.mark.parametrize("name,approx", [(n, "erf") for n in np_act.ACTIVATION_FUNCTIONS] + [("gelu", "tanh")])
def test_activations_and_autodiff_derivatives_match_numpy_elementwise(name, approx):
    x = np.concatenate([np.linspace(-50, 50, 1001), [0.0, -1e-3, 1e-3, 1e4, -1e4, 1e200, -1e200]])
    got = np.asarray(jact.activation(name, x, gelu_approximate=approx))
    ref = np_act.activation(name, x, gelu_approximate=approx)
    dgot = np.asarray(jact.activation_grad(name, x, gelu_approximate=approx))
    dref = np_act.activation_grad(name, x, gelu_approximate=approx)
    # elementwise relative 1e-12; the 1e-290 floor admits XLA's flush of subnormal results (|y| < 2.2e-308) to 0
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-290)
    np.testing.assert_allclose(dgot, dref, rtol=1e-12, atol=1e-290)


def test_sigmoid_derivative_does_not_cancel_in_the_tail():
    """JAX's own logistic derivative s(1 - s) is exactly 0 at x = 40; ours is sigma(x) sigma(-x) = 4.2e-18."""
    x = np.array([40.0, 60.0])
    assert np.all(np.asarray(jax.vmap(jax.grad(jax.nn.sigmoid))(x)) == 0.0)
    np.testing.assert_allclose(np.asarray(jact.sigmoid_grad(x)), np.exp(-x) / (1 + np.exp(-x)) ** 2, rtol=1e-14)


def test_relu_derivative_is_zero_at_the_kink():
    assert float(jact.relu_grad(np.array([0.0]))[0]) == 0.0
    assert float(jax.grad(lambda t: jnp.maximum(t, 0.0))(0.0)) == 0.5  # why relu is written with where


@pytest.mark.parametrize("variant,gelu,bias", [(v, g, True) for v, g in CASES] + [("swiglu", "erf", False)])
def test_ffn_forward_and_jax_grad_match_numpy(variant, gelu, bias):
    rng = np.random.default_rng(CASES.index((variant, gelu)) * 2 + bias)
    params = refimpl.init_ffn_params(rng, 12, 20, variant, bias=bias)
    x = rng.standard_normal((2, 3, 12))  # (B, T, D)
    dy = rng.standard_normal(x.shape)  # random upstream gradient
    y_ref, cache = refimpl.ffn_forward(x, params, variant, gelu=gelu)
    g_ref = refimpl.ffn_backward(dy, cache)
    assert rel(jffn.ffn_forward(x, params, variant, gelu=gelu), y_ref) <= 1e-12

    def loss(x_, p_):
        return jnp.sum(jnp.asarray(dy) * jffn.ffn_forward(x_, p_, variant, gelu=gelu))

    dx, dp = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(x), {k: jnp.asarray(a) for k, a in params.items()})
    got = {"x": dx, **dp}
    assert sorted(got) == sorted(g_ref)
    for name in g_ref:
        assert rel(got[name], g_ref[name]) <= 1e-10, name


def test_ffn_backward_helper_is_the_vjp_and_matches_numpy():
    rng = np.random.default_rng(5)
    params = refimpl.init_ffn_params(rng, 12, 20, "geglu", bias=True)
    x, dy = rng.standard_normal((7, 12)), rng.standard_normal((7, 12))
    g_ref = refimpl.ffn_backward(dy, refimpl.ffn_forward(x, params, "geglu", gelu="tanh")[1])
    got = jffn.ffn_backward(dy, x, params, "geglu", gelu="tanh")
    assert sorted(got) == sorted(g_ref)
    assert max(rel(got[name], g_ref[name]) for name in g_ref) <= 1e-10


def test_ffn_keeps_dtype_and_compiles_once_per_variant_and_shape():
    rng = np.random.default_rng(0)
    params = {k: a.astype(np.float32) for k, a in refimpl.init_ffn_params(rng, 8, 16, "swiglu").items()}
    x = rng.standard_normal((4, 8)).astype(np.float32)
    jffn.ffn_forward._clear_cache()
    for _ in range(3):
        y = jffn.ffn_forward(x + 1.0, params, "swiglu")
    assert y.dtype == jnp.float32 and jffn.ffn_forward._cache_size() == 1
    jffn.ffn_forward(x, params, "swiglu", gelu="tanh")  # gelu is static: a new compile (unused here, but keyed)
    assert jffn.ffn_forward._cache_size() == 2


def test_init_ffn_params_shapes_and_scale():
    p = jffn.init_ffn_params(jax.random.key(0), 128, 512, "geglu", bias=True)
    assert {k: a.shape for k, a in p.items()} == {"w_gate": (128, 512), "w_up": (128, 512), "w_down": (512, 128),
                                                  "b_gate": (512,), "b_up": (512,), "b_down": (128,)}  # fmt: skip
    assert abs(float(jnp.std(p["w_up"])) * np.sqrt(128) - 1.0) < 0.02  # std 1/sqrt(fan_in)
    assert jffn.matched_d_ff(3072, "swiglu") == 2048


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda x, p: jffn.ffn_forward(x, p, "swigluu"), "variant"),
        (lambda x, p: jffn.ffn_forward(x, p, "swiglu", gelu="exact"), "gelu"),
        (lambda x, p: jffn.ffn_forward(x.astype(np.int64), p, "swiglu"), "x"),
        (lambda x, p: jffn.ffn_forward(x[:, :3], p, "swiglu"), "params['w_"),
        (lambda x, p: jffn.ffn_forward(x, {k: a for k, a in p.items() if k != "w_up"}, "swiglu"), "params"),
        (lambda x, p: jffn.ffn_backward(x[:1], x, p, "swiglu"), "dy"),
        (lambda x, p: jact.swish(x, beta=0.0), "beta"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    rng = np.random.default_rng(0)
    params = refimpl.init_ffn_params(rng, 4, 6, "swiglu")
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        call(rng.standard_normal((2, 4)), params)


def test_swish_beta_any_real_scalar_and_extreme_values_match_numpy():
    """Issue 12 in the port: np.float32 beta accepted; beta = 1e300 and 1e-300 exact, like NumPy."""
    x = np.array([1e300, -1e300, 1e-300, -3e-301, 2.0, 0.0])
    for beta in (np.float32(2), 1e300, 1e-300):
        np.testing.assert_allclose(np.asarray(jact.swish(x, beta)), np_act.swish(x, beta), rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(np.asarray(jact.swish_grad(x, beta)), np_act.swish_grad(x, beta), rtol=1e-14,
                                   atol=1e-300)  # fmt: skip
    with pytest.raises(ValueError, match="beta must be a positive finite real"):
        jact.swish(x, True)
