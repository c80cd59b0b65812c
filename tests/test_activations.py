"""Activations: values against the textbook formulas written out here, derivatives against finite
differences, and the extremes (|x| up to 1e300, +-inf) without floating-point warnings."""

import math

import numpy as np
import pytest
from scipy.special import erfc

from refimpl.activations import (
    ACTIVATION_FUNCTIONS,
    gelu,
    gelu_grad,
    sigmoid,
    sigmoid_pair,
    swish,
    swish_grad,
)
from refimpl.gradcheck import check_grads

MODERATE = np.linspace(-12.0, 12.0, 241) + 0.013  # avoids the ReLU kink at exactly 0
EXTREMES = np.array([-np.inf, -1e300, -1e4, -745.0, -40.0, -1e-300, 0.0, 1e-300, 2.7, 40.0, 1e4, 1e300, np.inf])


@pytest.mark.parametrize(
    "fn, textbook",
    [
        (sigmoid, lambda x: 1.0 / (1.0 + math.exp(-x))),
        # 0.5 x (1 + erf(x/sqrt 2)) cancels for x < 0; erfc(-x/sqrt 2) is the same function without it
        (lambda x: gelu(x, "erf"), lambda x: 0.5 * x * math.erfc(-x / math.sqrt(2.0))),
        # likewise 0.5 (1 + tanh u) = 1 / (1 + exp(-2u))
        (
            lambda x: gelu(x, "tanh"),
            lambda x: x / (1.0 + math.exp(-2.0 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
        ),
        (swish, lambda x: x / (1.0 + math.exp(-x))),
        (lambda x: swish(x, 2.0), lambda x: x / (1.0 + math.exp(-2.0 * x))),
    ],
)
def test_values_match_textbook_formulas(fn, textbook):
    expected = np.array([textbook(float(x)) for x in MODERATE])
    # 1e-13: at x = -12 erfc(t), t = x/sqrt(2), turns a 1-ulp rounding of t into 2 t^2 ulp ~ 1.6e-14
    np.testing.assert_allclose(fn(MODERATE), expected, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", sorted(ACTIVATION_FUNCTIONS))
@pytest.mark.parametrize("approximate", ["erf", "tanh"])
def test_derivatives_match_finite_differences(name, approximate, rng):
    fn, grad = ACTIVATION_FUNCTIONS[name]
    extra = (approximate,) if name == "gelu" else ()
    x = MODERATE.reshape(1, -1)[:, ::3].copy()  # (1, 81)
    dy = rng.standard_normal(x.shape)  # (1, 81)
    report = check_grads(lambda p: fn(p["x"], *extra), {"x": x}, {"x": dy * grad(x, *extra)}, dy)
    assert report.max_rel_error <= 1e-7, report


def test_swish_beta_derivative(rng):
    x = rng.standard_normal(50) * 4  # (50,)
    dy = rng.standard_normal(50)  # (50,)
    for beta in (0.5, 1.7):
        report = check_grads(lambda p, beta=beta: swish(p["x"], beta), {"x": x}, {"x": dy * swish_grad(x, beta)}, dy)
        assert report.max_rel_error <= 1e-7, report


def test_sigmoid_pair_is_accurate_in_both_tails():
    z = np.array([-700.0, -300.0, -40.0, -1.0, 0.0, 1.0, 40.0, 300.0, 700.0])
    s, s_neg = sigmoid_pair(z)
    exact = np.array([1.0 / (1.0 + math.exp(-v)) if v > -50 else math.exp(v) / (1.0 + math.exp(v)) for v in z])
    exact_neg = np.array([1.0 / (1.0 + math.exp(v)) if v < 50 else math.exp(-v) / (1.0 + math.exp(-v)) for v in z])
    np.testing.assert_allclose(s, exact, rtol=1e-15)
    np.testing.assert_allclose(s_neg, exact_neg, rtol=1e-15)  # 1 - sigma would give 0 for z = 40, 300, 700


def test_extremes_give_limits_without_warnings():
    x = EXTREMES
    with np.errstate(divide="raise", over="raise", invalid="raise"):  # underflow to 0 is the limit
        outs = {name: (fn(x), grad(x)) for name, (fn, grad) in ACTIVATION_FUNCTIONS.items()}
        outs["gelu_tanh"] = (gelu(x, "tanh"), gelu_grad(x, "tanh"))
    for name, (value, derivative) in outs.items():
        assert not np.isnan(value).any() and not np.isnan(derivative).any(), name
    pos_inf, neg_inf = x == np.inf, x == -np.inf
    for name in ("relu", "gelu", "swish", "gelu_tanh"):
        value, derivative = outs[name]
        assert np.all(value[pos_inf] == np.inf) and np.all(value[neg_inf] == 0.0), name
        assert derivative[pos_inf][0] == 1.0 and derivative[neg_inf][0] == 0.0, name
        big = np.abs(x) == 1e300
        np.testing.assert_array_equal(value[big], np.maximum(x[big], 0.0))  # x for huge x, 0 for -huge x
    sig, dsig = outs["sigmoid"]
    assert sig[pos_inf][0] == 1.0 and sig[neg_inf][0] == 0.0 and np.all(dsig[~np.isfinite(x)] == 0.0)


def test_erf_and_tanh_gelu_differ_by_at_most_4_7e_4_near_2_7():
    # the largest gap between erf and tanh GELU (Hendrycks & Gimpel 2016) is 4.7e-4, near x = 2.7.
    x = np.linspace(-8.0, 8.0, 160001)
    gap = np.abs(gelu(x, "erf") - gelu(x, "tanh"))
    assert 4.6e-4 < gap.max() < 4.8e-4
    assert 2.6 < abs(x[np.argmax(gap)]) < 2.8  # gelu(x) - gelu(-x) = x for both, so the gap is even
    np.testing.assert_allclose(gelu(x, "erf"), 0.5 * x * erfc(-x / np.sqrt(2)), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sigmoid(np.arange(3)), "x must have a floating-point dtype"),
        (lambda: gelu([1.0, 2.0]), "x must be a NumPy"),
        (lambda: gelu(np.ones(3), "fast"), "approximate"),
        (lambda: swish(np.ones(3), 0.0), "beta"),
        (lambda: swish(np.ones(3), float("nan")), "beta"),
        (lambda: swish(np.ones(3), True), "beta must be a positive finite real"),  # a bool is not a number here
        (lambda: swish(np.ones(3), np.array(2.0)), "beta must be a positive finite real"),  # nor an array
        (lambda: swish(np.ones(3), "2"), "beta must be a positive finite real"),
        (lambda: swish(np.ones(3), float("inf")), "beta must be a positive finite real"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_swish_accepts_any_real_scalar_beta():
    """Issue 12: np.float32(2) was rejected although np.float64(2) was accepted."""
    x = np.linspace(-3, 3, 7)
    for beta in (np.float32(2), np.float16(2), np.int64(2), 2, np.float64(2)):
        np.testing.assert_array_equal(swish(x, beta), swish(x, 2.0))


def test_swish_huge_and_tiny_beta_without_overflow():
    """Issue 12: swish(np.array([1e300]), beta=1e300) warned overflow (beta * x); its value is 1e300."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert swish(np.array([1e300]), beta=1e300)[0] == 1e300
        # beta x = +-1 exactly for x = +-1e-300: the gate is sigmoid(+-1)
        np.testing.assert_allclose(swish(np.array([1e-300, -1e-300]), beta=1e300),
                                   [1e-300 / (1 + np.exp(-1.0)), -1e-300 / (1 + np.exp(1.0))], rtol=1e-15)  # fmt: skip
        # beta tiny: beta x = +-1 for x = +-1e300, so the gate is sigmoid(+-1), not saturated
        np.testing.assert_allclose(swish(np.array([1e300, -1e300]), beta=1e-300),
                                   [1e300 / (1 + np.exp(-1.0)), -1e300 / (1 + np.exp(1.0))], rtol=1e-15)  # fmt: skip
        assert np.isfinite(swish_grad(np.array([1e300, -1e300, 0.0]), beta=1e300)).all()
