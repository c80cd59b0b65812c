"""Rotary position embeddings (Su et al. 2021, arXiv:2104.09864) in JAX, mirroring ``refimpl.rope``.

Shape legend: B batch, T sequence length, H heads (N for queries, K for keys), Dh head dim (even).

Position p of pair i (i = 0 .. Dh/2 - 1) is rotated by p * theta^(-2i / Dh):
    y_a = x_a cos - x_b sin,     y_b = x_b cos + x_a sin
with (a, b) = (i, i + Dh/2) for layout="half" (HF rotate_half) or (2i, 2i + 1) for "interleaved" (Meta).

NOTE(jax): ``rope_forward`` returns y alone; ``rope_backward`` is ``jax.vjp`` of it (the inverse rotation).
NOTE(jax): positions may be traced (a decode step's position is the cache length), so their range [0,
MAX_POSITION] = [0, 2^31 - 1] (the NumPy package's, chosen so that int32 holds every position) is checked
only when concrete. The angles are computed in the widest float JAX has enabled: float64 under
``jax_enable_x64``, else float32 (as HF and Meta's code), where an angle p * theta^(-2i/Dh) carries an
absolute error of about p * 2^-24 rad.
The ``Rope`` settings class is the NumPy package's own (frozen, hashable: a valid static argument).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import int_array
from ..rope import (  # noqa: F401  (shared settings and checks)
    DEFAULT_THETA,
    MAX_POSITION,
    ROPE_LAYOUTS,
    Rope,
    _check_offset,
    _check_theta,
    check_rope,
    rope_permutation,
)
from ._checks import choice, float_array


def _angle_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def rope_angles(positions, head_dim: int, theta: float = DEFAULT_THETA):
    """angle[..., i] = position * theta^(-2i/Dh): shape positions.shape + (Dh/2,)."""
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (Dh/2,) static
    return jnp.asarray(positions, dtype=_angle_dtype())[..., None] * jnp.asarray(inv_freq, _angle_dtype())


def check_positions(positions, offset, batch: int, seq: int):
    """(B|1, T) int32 positions: ``offset + arange(T)`` by default, else the given array (T,) or (B, T)."""
    offset = _check_offset(offset, seq)
    if positions is None:
        return (offset + jnp.arange(seq, dtype=jnp.int32))[None, :]  # (1, T)
    if offset != 0:
        raise ValueError(f"pass positions or offset, not both; got offset={offset} with positions")
    shape_text = f"({seq},) or ({batch}, {seq})"
    pos = positions if isinstance(positions, jax.Array) else int_array("positions", positions, shape_text)
    if not jnp.issubdtype(pos.dtype, jnp.integer):
        raise ValueError(f"positions must be an integer array; got dtype {pos.dtype}")
    if pos.shape == (seq,):
        pos = pos[None, :]  # (1, T)
    if pos.shape not in ((1, seq), (batch, seq)):
        raise ValueError(f"positions must have shape {shape_text}; got {tuple(positions.shape)}")
    if not isinstance(pos, jax.core.Tracer):
        values = np.asarray(pos)
        if np.any(values < 0) or np.any(values > MAX_POSITION):
            raise ValueError(f"positions must lie in [0, {MAX_POSITION}]; got values in [{values.min()}, "
                             f"{values.max()}]")  # fmt: skip
    return jnp.asarray(pos, dtype=jnp.int32)  # (B|1, T)


def _pairs(x, layout: str):
    half = x.shape[-1] // 2
    if layout == "half":
        return x[..., :half], x[..., half:]  # (..., Dh/2)
    return x[..., 0::2], x[..., 1::2]  # (..., Dh/2)


def _rotate(x, cos, sin, layout: str):
    xa, xb = _pairs(x, layout)
    ya = xa * cos - xb * sin  # (B, T, H, Dh/2)
    yb = xb * cos + xa * sin  # (B, T, H, Dh/2)
    if layout == "half":
        return jnp.concatenate([ya, yb], axis=-1)  # (B, T, H, Dh)
    return jnp.stack([ya, yb], axis=-1).reshape(x.shape)  # (B, T, H, Dh) pairs interleaved back


def rotate(x, positions, *, theta: float, layout: str):
    """The rotation on checked inputs: x (B, T, H, Dh), positions (B|1, T). Traceable; keeps x's dtype."""
    angles = rope_angles(positions, x.shape[-1], theta)  # (B|1, T, Dh/2)
    cos = jnp.cos(angles)[:, :, None, :].astype(x.dtype)  # (B|1, T, 1, Dh/2)
    sin = jnp.sin(angles)[:, :, None, :].astype(x.dtype)  # (B|1, T, 1, Dh/2)
    return _rotate(x, cos, sin, layout)


def _check(x, positions, offset, theta, layout):
    x = float_array("x", x, ndim=4)
    choice("layout", layout, ROPE_LAYOUTS)
    theta = _check_theta(theta)
    batch, seq, _, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"x must have an even head dim (last axis) for rotary pairs; got {head_dim}")
    return x, check_positions(positions, offset, batch, seq), theta


@partial(jax.jit, static_argnames=("theta", "layout"))
def _rope(x, positions, *, theta, layout):
    return rotate(x, positions, theta=theta, layout=layout)


def rope_forward(x, *, positions=None, offset: int = 0, theta: float = DEFAULT_THETA, layout: str = "half"):
    """Rotate x (B, T, H, Dh) by its positions; y has x's shape and dtype.

    positions: integer array (T,) or (B, T); default ``offset + arange(T)``. Give one of positions / offset.
    """
    x, pos, theta = _check(x, positions, offset, theta, layout)
    return _rope(x, pos, theta=theta, layout=layout)


@partial(jax.jit, static_argnames=("theta", "layout"))
def _rope_vjp(dy, x, positions, *, theta, layout):
    _, vjp = jax.vjp(lambda x_: rotate(x_, positions, theta=theta, layout=layout), x)
    return vjp(dy.astype(x.dtype))[0]


def rope_backward(dy, x, *, positions=None, offset: int = 0, theta: float = DEFAULT_THETA, layout: str = "half"):
    """dx for <dy, y> by ``jax.vjp`` (the inverse rotation of dy). NOTE(jax): takes the forward's inputs."""
    x, pos, theta = _check(x, positions, offset, theta, layout)
    dy = float_array("dy", dy)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the output's shape {tuple(x.shape)}; got {tuple(dy.shape)}")
    return _rope_vjp(dy, x, pos, theta=theta, layout=layout)


def apply_rope(x, rope: Rope | None, positions=None):
    """Rotation of a ``Rope`` config (None: identity) at positions ``rope.offset + t`` unless given.

    Traceable (for the layer and the decode step): positions, when given, must already be (B|1, T) ints.
    """
    if rope is None:
        return x
    if not isinstance(rope, Rope):
        raise ValueError(f"rope must be a refimpl.rope.Rope or None; got {type(rope).__name__}")
    if positions is None:
        positions = check_positions(None, rope.offset, x.shape[0], x.shape[1])  # (1, T)
    return rotate(x, positions, theta=rope.theta, layout=rope.layout)
