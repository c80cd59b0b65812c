"""Activations of the GLU family in JAX, mirroring ``refimpl.activations`` (same names, same formulas).

Formulas (Shazeer 2020 for their use; Hendrycks & Gimpel 2016 for GELU; Ramachandran et al. 2017 for Swish):
    sigmoid(x)   = 1 / (1 + exp(-x))                 sigmoid'(x) = sigmoid(x) sigmoid(-x)
    relu(x)      = max(0, x)                         relu'(x)    = [x > 0]   (0 at the kink)
    gelu_erf(x)  = x Phi(x)                          gelu'(x)    = Phi(x) + x phi(x)
    gelu_tanh(x) = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3)
    swish(x)     = x sigmoid(beta x)                 swish'(x)   = s + beta x s sigmoid(-beta x)
    identity(x)  = x                                 identity'(x) = 1

Derivatives are not written by hand here: ``*_grad`` is the forward-mode derivative ``jax.jvp`` of the
function with a tangent of ones (exact for elementwise maps), and the FFN's gradients come from ``jax.vjp``.
Two choices make autodiff agree with the NumPy derivatives elementwise, not only normwise:

* NOTE(jax): ``sigmoid`` has a ``custom_jvp`` giving sigma'(x) = sigma(x) sigma(-x) (the package's rule);
  JAX's own logistic derivative is s (1 - s), which cancels to 0 for x > 37 in float64.
* NOTE(jax): ``relu`` is ``where(x > 0, x, 0)``: ``jnp.maximum(x, 0)`` differentiates to 0.5 at x = 0.

NOTE(jax): inputs keep their dtype; for float16/bfloat16 the activation is evaluated in float32 and the
result rounded once (what XLA's fusion does anyway). Clipping uses a per-dtype bound (1e100 cannot be
represented in float32): the cube root of the dtype's largest value over 8, so x**3 stays finite.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .._checks import positive_real
from ..activations import GELU_APPROXIMATIONS
from ._checks import choice, float_array, stats_dtype

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715
_CLIP_DIVISOR = 8.0  # _big(dtype)**3 stays below the dtype's max with margin


def _big(dtype) -> float:
    """Like refimpl.activations._BIG (1e100 in float64): beyond it every saturating factor is at its limit."""
    return min(1e100, float(np.cbrt(jnp.finfo(dtype).max)) / _CLIP_DIVISOR)


def _clip(x):
    big = _big(x.dtype)
    return jnp.clip(x, -big, big)


def _floor(x):
    """x clipped from below at the dtype's largest finite value: the outer factor of x*gate(x), gate(-inf) = 0."""
    return jnp.maximum(x, -float(jnp.finfo(x.dtype).max))


def _elementwise(fn):
    """Evaluate ``fn`` in at least float32 and round the result back to the input dtype once."""

    def wrapped(x, *args):
        x = float_array("x", x)
        return fn(x.astype(stats_dtype(x.dtype)), *args).astype(x.dtype)

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


@jax.custom_jvp
def _sigmoid(x):
    return jax.nn.sigmoid(x)


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    s = jax.nn.sigmoid(x)
    return s, t * (s * jax.nn.sigmoid(-x))  # sigma(x) sigma(-x), never 1 - sigma


@_elementwise
def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)); derivative sigma(x) sigma(-x) (custom_jvp)."""
    return _sigmoid(x)


@_elementwise
def relu(x):
    """max(0, x), differentiating to [x > 0] (0 at the kink, as the NumPy reference)."""
    return jnp.where(x > 0.0, x, jnp.zeros_like(x))


@_elementwise
def identity(x):
    """x (the Bilinear variant's 'activation')."""
    return x


def _gelu_tanh_sigmoid_arg(xc):
    """2u = 2 sqrt(2/pi) (x + 0.044715 x^3), for clipped x."""
    return (2.0 * _SQRT_2_OVER_PI) * (xc + _GELU_TANH_CUBIC * xc * xc * xc)


def gelu(x, approximate: str = "erf"):
    """GELU: ``approximate="erf"`` is the exact x*Phi(x); ``"tanh"`` the approximation of T5, Gemma and
    ``jax.nn.gelu`` (its default). They differ by up to 4.7e-4 near x = 2.7."""
    choice("approximate", approximate, GELU_APPROXIMATIONS)
    return _gelu(x, approximate)


@_elementwise
def _gelu(x, approximate):
    if approximate == "erf":
        return _floor(x) * ndtr(x)
    return _floor(x) * _sigmoid(_gelu_tanh_sigmoid_arg(_clip(x)))


def _check_beta(beta) -> float:
    """beta: any finite real number > 0 (Python or NumPy scalar), as ``refimpl.activations``."""
    return positive_real("beta", beta)


def swish(x, beta: float = 1.0):
    """Swish_beta(x) = x sigmoid(beta x); beta = 1 is SiLU, the paper's choice."""
    return _swish(x, _check_beta(beta))


@_elementwise
def _swish(x, beta):
    if beta == 1.0:  # as refimpl.activations._beta_x: beta x saturated at +-_big, whatever beta
        bx = _clip(x)
    else:  # NOTE(jax): beta may exceed the dtype's range (float32 and beta = 1e300): select, never overflow
        big = _big(x.dtype)
        beta_in_range = min(beta, float(jnp.finfo(x.dtype).max))
        bx = jnp.where(jnp.abs(x) > big / beta, jnp.sign(x) * big, x * beta_in_range)
    return _floor(x) * _sigmoid(bx)


def _derivative(fn, x, *args):
    """d fn / dx elementwise: the JVP of an elementwise map with a tangent of ones."""
    x = float_array("x", x)
    return jax.jvp(lambda u: fn(u, *args), (x,), (jnp.ones_like(x),))[1]


def sigmoid_grad(x):
    return _derivative(sigmoid, x)


def relu_grad(x):
    return _derivative(relu, x)


def identity_grad(x):
    return _derivative(identity, x)


def gelu_grad(x, approximate: str = "erf"):
    choice("approximate", approximate, GELU_APPROXIMATIONS)
    return _derivative(gelu, x, approximate)


def swish_grad(x, beta: float = 1.0):
    return _derivative(swish, x, _check_beta(beta))


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


def activation(name: str, x, *, gelu_approximate: str = "erf"):
    """act(x) for a registry activation name (variants.ACTIVATIONS)."""
    fn, _, extra = _lookup(name, gelu_approximate)
    return fn(x, *extra)


def activation_grad(name: str, x, *, gelu_approximate: str = "erf"):
    """act'(x) for a registry activation name, by forward-mode autodiff."""
    _, grad, extra = _lookup(name, gelu_approximate)
    return grad(x, *extra)
