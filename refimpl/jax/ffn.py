"""Feed-forward networks of Shazeer 2020 in JAX, mirroring ``refimpl.ffn``.

Shape legend: M = product of the leading (batch) dims of x, D d_model, F d_ff.

    ungated (relu, gelu, swish):   b = x W_up + b_up,  h = act(b),                y = h W_down + b_down
    gated (glu, bilinear, reglu,   a = x W_gate + b_gate,  b = x W_up + b_up,
           geglu, swiglu):         h = act(a) * b,                                 y = h W_down + b_down
    swiglu_oss (gpt-oss):          h = swish_alpha(min(a, limit)) * (clip(b, -limit, limit) + 1)

NOTE(jax): ``ffn_forward`` returns y alone, not (y, cache): JAX keeps what the backward needs itself.
``ffn_backward(dy, x, params, variant)`` is ``jax.vjp`` of the forward and returns the NumPy backward's dict
(nine matrix products for a gated variant, forward included, as XLA schedules them).
NOTE(jax): arrays keep their dtype (the NumPy reference upcasts to float64); matmuls run in the input dtype
with XLA's default precision, which on GPU/TPU may use reduced-precision passes for float32 unless
``jax.default_matmul_precision("highest")`` is set.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from .._checks import flag, float_dtype
from ..ffn import (
    check_ffn_params,
    ffn_options,
    matched_d_ff,  # noqa: F401  (pure integer arithmetic: shared, not ported)
)
from ..variants import FFNVariant, get_variant
from ._checks import add_bias as _add_bias
from ._checks import choice, float_array, positive_int
from .activations import GELU_APPROXIMATIONS, activation, swish

_BIAS_OF = {"w_gate": "b_gate", "w_up": "b_up", "w_down": "b_down"}


def _param_names(v: FFNVariant) -> tuple[tuple[str, ...], tuple[str, ...]]:
    weights = v.param_names
    return weights, tuple(_BIAS_OF[w] for w in weights)


def init_ffn_params(key, d_model: int, d_ff: int, variant: str, *, bias: bool = False, dtype=jnp.float32) -> dict:
    """Weights with std 1/sqrt(fan_in), as ``refimpl.init_ffn_params``.

    NOTE(jax): takes a ``jax.random`` key instead of a NumPy Generator, and defaults to float32.
    """
    check_key(key)
    d_model, d_ff = positive_int("d_model", d_model), positive_int("d_ff", d_ff)
    v = get_variant(variant)
    bias, dtype = flag("bias", bias), float_dtype("dtype", dtype)
    shapes = {"w_gate": (d_model, d_ff), "w_up": (d_model, d_ff), "w_down": (d_ff, d_model)}
    params = {}
    for w, k in zip(v.param_names, jax.random.split(key, v.n_matrices), strict=True):
        kw, kb = jax.random.split(k)
        fan_in = shapes[w][0]
        params[w] = (jax.random.normal(kw, shapes[w]) / math.sqrt(fan_in)).astype(dtype)  # (D, F) or (F, D)
        if bias:
            params[_BIAS_OF[w]] = (jax.random.normal(kb, shapes[w][1:]) / math.sqrt(fan_in)).astype(dtype)  # (F,)|(D,)
    return params


def check_key(key) -> None:
    """A ``jax.random.key`` (typed) or a legacy ``PRNGKey`` (uint32 pair), else ValueError naming ``key``."""
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0
    raw = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
    if not (typed or raw):
        raise ValueError(f"key must be a jax.random.key (or PRNGKey); got {key!r:.80}")


def _check_params(params: dict, v: FFNVariant, d_model: int) -> dict:
    """NumPy's rules (``refimpl.ffn.check_ffn_params``). NOTE(jax): arrays keep their dtype."""
    return check_ffn_params(params, v, d_model, as_array=float_array)


def _affine(x, w, b):
    out = x @ w  # (M, out)
    if b is not None:
        out = _add_bias(out, b)
    return out


def _clamp_above(z, limit: float):
    """min(z, limit). NOTE(jax): ``where``, not ``jnp.minimum``: gradient 1 at z == limit (torch.clamp's and the
    NumPy reference's choice); jnp.minimum/jnp.clip split it 0.5/0.5 at the tie."""
    return jnp.where(z > limit, limit, z)


def hidden(a, b, v: FFNVariant, gelu: str, opts: dict):
    """The hidden h (M, F) from the pre-activations a (gate; None when ungated) and b (up), any variant."""
    if not v.gated:
        return activation(v.activation, b, gelu_approximate=gelu)
    if "limit" in opts:  # swiglu_oss
        limit = opts["limit"]
        up = -_clamp_above(-_clamp_above(b, limit), limit)  # clip(b, -limit, limit), gradient 1 at |b| == limit
        return swish(_clamp_above(a, limit), opts["alpha"]) * (up + 1.0)
    return activation(v.activation, a, gelu_approximate=gelu) * b


def _ffn(x, p: dict, v: FFNVariant, gelu: str, opts: dict):
    """The forward on checked inputs; x (..., D)."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, D)
    a = _affine(x2, p["w_gate"], p.get("b_gate")) if v.gated else None  # (M, F)
    b = _affine(x2, p["w_up"], p.get("b_up"))  # (M, F)
    y = _affine(hidden(a, b, v, gelu, opts), p["w_down"], p.get("b_down"))  # (M, D)
    return y.reshape(x.shape)


_STATIC = ("variant", "gelu", "alpha", "limit")


@partial(jax.jit, static_argnames=_STATIC)
def ffn_forward(x, params: dict, variant: str, *, gelu: str = "erf", alpha=None, limit=None):
    """y = FFN_variant(x) for x of shape (..., D); y has x's shape and dtype. ``alpha``, ``limit``:
    swiglu_oss's options (None: gpt-oss's 1.702, 7.0), static; other variants refuse them."""
    v = get_variant(variant)
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    opts = ffn_options(v, alpha=alpha, limit=limit)
    x = float_array("x", x, min_ndim=1)
    return _ffn(x, _check_params(params, v, x.shape[-1]), v, gelu, opts)


@partial(jax.jit, static_argnames=_STATIC)
def ffn_backward(dy, x, params: dict, variant: str, *, gelu: str = "erf", alpha=None, limit=None) -> dict:
    """Gradients of <dy, y> by ``jax.vjp``: {"x": (..., D), "w_up": (D, F), ..., "b_*" with biases}.

    NOTE(jax): takes the forward's inputs instead of a cache (the NumPy signature is ffn_backward(dy, cache)).
    """
    v = get_variant(variant)
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    opts = ffn_options(v, alpha=alpha, limit=limit)
    x = float_array("x", x, min_ndim=1)
    p = _check_params(params, v, x.shape[-1])
    dy = float_array("dy", dy)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have shape {tuple(x.shape)} (the output's); got {tuple(dy.shape)}")
    _, vjp = jax.vjp(lambda x_, p_: _ffn(x_, p_, v, gelu, opts), x, p)
    dx, dp = vjp(dy.astype(x.dtype))
    return {"x": dx, **dp}
