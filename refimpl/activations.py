"""Activations of the GLU family, each beside its derivative (float64, elementwise).

Stability: every function is warning-free for any float64 input and gives the limit at +-inf. Inside the
saturating factor (sigmoid, Phi, phi, the x**3 of tanh-GELU) its argument is clipped to +-1e100, which is
exact because those factors have reached their float64 limits long before (Swish: beta x is saturated there
for any beta, without forming an overflowing product); the outer factor x is clipped from below at the
largest finite float only (so x = -inf meets 0 as -1.8e308 * 0 = -0, and every finite x is used unchanged).
sigma'(a) is computed as sigma(a)*sigma(-a), never 1 - sigma(a) (which cancels to 0 for a > 37).

Formulas (Shazeer 2020 for their use; Hendrycks & Gimpel 2016 for GELU; Ramachandran et al. 2017 for Swish):
    sigmoid(x)   = 1 / (1 + exp(-x))                 sigmoid'(x) = sigmoid(x) sigmoid(-x)
    relu(x)      = max(0, x)                         relu'(x)    = [x > 0]   (0 at the kink)
    gelu_erf(x)  = x Phi(x)                          gelu'(x)    = Phi(x) + x phi(x)
    gelu_tanh(x) = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3)       (0.5(1 + tanh u) = sigmoid(2u))
                                                     gelu'(x)    = s + x s sigmoid(-2u) 2u',  s = sigmoid(2u)
    swish(x)     = x sigmoid(beta x)                 swish'(x)   = s + beta x s sigmoid(-beta x)
    identity(x)  = x                                 identity'(x) = 1
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from ._checks import choice, float_array, positive_real

_BIG = 1e100  # |x| beyond this: every saturating function is at its float64 limit; x**3 still finite
_MAX = float(np.finfo(np.float64).max)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_PHI_CLIP = 40.0  # phi(40) ~ 1e-348 underflows to 0: clipping x here keeps x**2 and x*phi(x) finite
GELU_APPROXIMATIONS = ("erf", "tanh")


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -_BIG, _BIG)


def _floor(x: np.ndarray) -> np.ndarray:
    """x clipped from below only: the outer factor of x*gate(x), where gate(-inf) = 0."""
    return np.maximum(x, -_MAX)


def sigmoid_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigmoid(z), sigmoid(-z)) from one e = exp(-|z|), which never overflows.

    With r = 1/(1+e) = sigmoid(|z|): sigmoid(z) = max(e, [z >= 0]) r and sigmoid(-z) = max(e, [z < 0]) r,
    i.e. r on the positive side and e r (no 1 - sigmoid cancellation) on the negative side: a few ulp in
    both tails. Branch-free and in place: np.where on a random mask and fresh temporaries (page faults)
    each cost more than the exp itself at FFN sizes.
    """
    e = np.abs(z)  # same shape as z
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|z|) in (0, 1]
    r = e + 1.0  # same shape as z
    np.reciprocal(r, out=r)  # r = sigmoid(|z|)
    s = np.maximum(e, z >= 0)  # same shape as z: 1 where z >= 0, else e
    s *= r  # sigmoid(z)
    np.maximum(e, z < 0, out=e)
    e *= r  # sigmoid(-z)
    return s, e


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = float_array("x", x)
    return sigmoid_pair(x)[0]


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    s, s_neg = sigmoid_pair(float_array("x", x))
    return s * s_neg


def relu(x: np.ndarray) -> np.ndarray:
    x = float_array("x", x)
    return np.maximum(x, 0.0)


def relu_grad(x: np.ndarray) -> np.ndarray:
    x = float_array("x", x)
    return (x > 0.0).astype(np.float64)


def identity(x: np.ndarray) -> np.ndarray:
    return float_array("x", x).copy()


def identity_grad(x: np.ndarray) -> np.ndarray:
    return np.ones_like(float_array("x", x))


def _gelu_tanh_sigmoid_arg(xc: np.ndarray) -> np.ndarray:
    """2u = 2 sqrt(2/pi) (x + 0.044715 x^3), for clipped x."""
    return (2.0 * _SQRT_2_OVER_PI) * (xc + _GELU_TANH_CUBIC * xc * xc * xc)


def gelu(x: np.ndarray, approximate: str = "erf") -> np.ndarray:
    """GELU: ``approximate="erf"`` is the exact x*Phi(x) (the paper, torch's default); ``"tanh"`` the
    approximation T5, Gemma and ``jax.nn.gelu`` use. They differ by up to 4.7e-4 near x = 2.7."""
    x = float_array("x", x)
    choice("approximate", approximate, GELU_APPROXIMATIONS)
    if approximate == "erf":
        out = _floor(x)  # same shape as x
        out *= ndtr(x)
        return out
    out = _floor(x)  # same shape as x
    out *= sigmoid_pair(_gelu_tanh_sigmoid_arg(_clip(x)))[0]
    return out


def gelu_grad(x: np.ndarray, approximate: str = "erf") -> np.ndarray:
    x = float_array("x", x)
    choice("approximate", approximate, GELU_APPROXIMATIONS)
    if approximate == "erf":
        xs = np.clip(x, -_PHI_CLIP, _PHI_CLIP)
        return ndtr(x) + xs * (_INV_SQRT_2PI * np.exp(-0.5 * xs * xs))
    xc = _clip(x)
    s, s_neg = sigmoid_pair(_gelu_tanh_sigmoid_arg(xc))
    d_two_u = (2.0 * _SQRT_2_OVER_PI) * (1.0 + 3.0 * _GELU_TANH_CUBIC * xc * xc)
    return s + (xc * d_two_u) * (s * s_neg)


def _check_beta(beta) -> float:
    """beta: any finite real number > 0 (Python or NumPy scalar); bools, arrays, inf, NaN refused."""
    return positive_real("beta", beta)


def swish(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Swish_beta(x) = x sigmoid(beta x); beta = 1 is SiLU, the paper's choice."""
    x = float_array("x", x)
    beta = _check_beta(beta)
    out = _floor(x)  # same shape as x
    out *= sigmoid_pair(_beta_x(x, beta))[0]
    return out


def _beta_x(x: np.ndarray, beta: float) -> np.ndarray:
    """beta * x clipped to +-1e100, without overflow for any beta: beta < 1 multiplies first (|beta x| <= |x|),
    beta > 1 clips x to +-1e100 / beta first (beta = 1e300 included); beta = 1 (SiLU) skips the multiply."""
    if beta == 1.0:
        return _clip(x)
    if beta < 1.0:
        return _clip(beta * x)
    out = np.clip(x, -_BIG / beta, _BIG / beta)  # same shape as x
    out *= beta
    return out


def swish_grad(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """swish'(x) = s + beta x s sigmoid(-beta x) = s (1 + beta x sigmoid(-beta x)), s = sigmoid(beta x)."""
    return swish_value_and_grad(x, beta)[1]


def swish_value_and_grad(x: np.ndarray, beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(swish(x), swish'(x)) sharing one sigmoid pair: the FFN forward stores both for its backward."""
    x = float_array("x", x)
    bx = _beta_x(x, _check_beta(beta))
    s, s_neg = sigmoid_pair(bx)
    value = _floor(x)  # same shape as x
    value *= s
    bx *= s_neg
    bx += 1.0
    bx *= s  # swish'(x)
    return value, bx


# name (as in variants.ACTIVATIONS) -> (function, derivative); gelu takes ``approximate``
ACTIVATION_FUNCTIONS = {
    "relu": (relu, relu_grad),
    "gelu": (gelu, gelu_grad),
    "swish": (swish, swish_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "identity": (identity, identity_grad),
}


def _lookup(name: str, gelu_approximate: str):
    choice("activation", name, ACTIVATION_FUNCTIONS)
    choice("gelu_approximate", gelu_approximate, GELU_APPROXIMATIONS)
    fn, grad = ACTIVATION_FUNCTIONS[name]
    extra = (gelu_approximate,) if name == "gelu" else ()
    return fn, grad, extra


def activation(name: str, x: np.ndarray, *, gelu_approximate: str = "erf") -> np.ndarray:
    """act(x) for a registry activation name (variants.ACTIVATIONS)."""
    fn, _, extra = _lookup(name, gelu_approximate)
    return fn(x, *extra)


def activation_grad(name: str, x: np.ndarray, *, gelu_approximate: str = "erf") -> np.ndarray:
    """act'(x) for a registry activation name."""
    _, grad, extra = _lookup(name, gelu_approximate)
    return grad(x, *extra)


def activation_value_and_grad(name: str, x: np.ndarray, *, gelu_approximate: str = "erf"):
    """(act(x), act'(x)); swish shares its sigmoid between the two."""
    fn, grad, extra = _lookup(name, gelu_approximate)
    if name == "swish":
        return swish_value_and_grad(x)
    return fn(x, *extra), grad(x, *extra)
