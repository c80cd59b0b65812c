"""Input validation for the JAX port: the NumPy package's rules, for NumPy and JAX arrays alike.

Checks run on static information only (shapes, dtypes, Python values), so they run once, at trace time,
and raise ``ValueError`` naming the argument, as ``refimpl._checks`` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import choice, float_dtype, param_keys, positive_int  # noqa: F401  (re-exported for the port)


def float_array(name: str, value, *, ndim: int | None = None, min_ndim: int | None = None):
    """Return ``value`` as a JAX array of its own floating dtype, or raise ValueError naming ``name``.

    NOTE(jax): unlike ``refimpl._checks.float_array`` the dtype is kept (float32 stays float32, bfloat16
    stays bfloat16): the port computes in its inputs' dtype. Integers, booleans and complex are refused.
    """
    if not isinstance(value, (np.ndarray, jnp.ndarray)):
        raise ValueError(f"{name} must be a NumPy or JAX floating-point array; got {type(value).__name__}")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {tuple(value.shape)}")
    if min_ndim is not None and value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s); got shape {tuple(value.shape)}")
    return jnp.asarray(value)


def stats_dtype(dtype):
    """Dtype for softmax statistics and activation internals: at least float32 (float64 stays float64)."""
    return jnp.promote_types(dtype, jnp.float32)


def add_bias(out, bias):
    """out + bias, added in at least float32 and rounded once to out's dtype.

    NOTE(jax): not ``+=`` (arrays are immutable). In float32 and float64 this is the plain sum; for
    bfloat16/float16 the float32 add makes the bias *gradient* (the transpose: a sum over all rows) accumulate
    in float32, as the naive baseline and every GEMM epilogue do, instead of in the 8-bit-mantissa dtype.
    """
    acc = stats_dtype(out.dtype)
    return (out.astype(acc) + bias.astype(acc)).astype(out.dtype)


def concrete_values(value):
    """The values of an array as NumPy, or None when they are traced (unknown until the program runs)."""
    return None if isinstance(value, jax.core.Tracer) else np.asarray(value)


def jax_float_dtype(name: str, value):
    """A floating dtype JAX can hold, or ValueError naming ``name`` (refimpl._checks.float_dtype's rules)."""
    dtype = float_dtype(name, value)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point dtype JAX supports; got {dtype}")
    return dtype


def prng_key(name: str, key):
    """A jax.random key: a typed key array (jax.random.key) or a raw uint32 (2,) key (jax.random.PRNGKey)."""
    if isinstance(key, jax.Array) and (
        (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ())
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return key
    raise ValueError(f"{name} must be a jax.random key (jax.random.key(seed)); got {key!r:.80}")
