"""Rotary position embeddings (Su et al. 2021, RoFormer, arXiv:2104.09864), forward / backward, both layouts.

Shape legend: B batch, T sequence length, H heads (N for queries, K for keys), Dh head dim (even).

Position p of head-dimension pair i (i = 0 .. Dh/2 - 1) is rotated by the angle p * theta^(-2i / Dh):

    y_a = x_a cos - x_b sin,     y_b = x_b cos + x_a sin

where the pair (a, b) is
    layout="half"         (a, b) = (i, i + Dh/2)   HF ``rotate_half``, GPT-NeoX, Llama in transformers
    layout="interleaved"  (a, b) = (2i, 2i + 1)    Meta's original Llama code, GPT-J, RoFormer

Positions are ``offset + t`` for token t by default, or given explicitly; every position is an integer in
[0, MAX_POSITION] = [0, 2^31 - 1] (int32 in the JAX port; far beyond any model's context). Rotation is
orthogonal, so backward is the rotation by the opposite angle: dx_a = dy_a cos + dy_b sin, dx_b = dy_b cos - dy_a sin.

A checkpoint converts between the layouts by permuting the columns of w_q and w_k (and b_q, b_k) within each
head (``rope_permutation``): q and k are then permuted alike, which leaves every dot product q.k unchanged.
This is the permutation HF's convert_llama_weights_to_hf.py applies to Meta's checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._checks import choice, float_array, int_array, positive_int

ROPE_LAYOUTS = ("half", "interleaved")
DEFAULT_THETA = 10000.0  # Su et al. 2021; Llama 1/2 (Llama 3 uses 500000)
MAX_POSITION = 2**31 - 1  # the largest position: int32, as the JAX port stores positions


def _check_theta(theta) -> float:
    if isinstance(theta, bool) or not isinstance(theta, (int, float, np.integer, np.floating)):
        raise ValueError(f"theta must be a finite number > 1; got {theta!r}")
    theta = float(theta)
    if not (math.isfinite(theta) and theta > 1.0):
        raise ValueError(f"theta must be a finite number > 1; got {theta!r}")
    return theta


def _check_offset(offset, n_positions: int = 1) -> int:
    """offset as an int such that offset + n_positions - 1 <= MAX_POSITION."""
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or not 0 <= offset <= MAX_POSITION:
        raise ValueError(f"offset must be an integer in [0, {MAX_POSITION}]; got {offset!r}")
    if int(offset) + n_positions - 1 > MAX_POSITION:
        raise ValueError(f"offset {offset} + {n_positions} positions pass the largest position {MAX_POSITION}")
    return int(offset)


def check_rope(rope, head_dim: int, n_positions: int, start: int = 0) -> None:
    """Validate a layer's ``rope`` before anything runs: a Rope or None, an even head dim, and positions
    rope.offset + start + t (t < n_positions) within [0, MAX_POSITION]."""
    if rope is None:
        return
    if not isinstance(rope, Rope):
        raise ValueError(f"rope must be a refimpl.rope.Rope or None; got {type(rope).__name__}")
    if head_dim % 2:
        raise ValueError(f"rope needs an even head dim; params give Dh={head_dim}")
    if rope.offset + start + n_positions - 1 > MAX_POSITION:
        raise ValueError(f"rope.offset {rope.offset} + {start + n_positions} tokens pass the largest position "
                         f"{MAX_POSITION}")  # fmt: skip


@dataclass(frozen=True)
class Rope:
    """Rotary settings a layer takes as ``rope=``: layout, base theta, position of the first token."""

    layout: str = "half"
    theta: float = DEFAULT_THETA
    offset: int = 0

    def __post_init__(self):
        choice("layout", self.layout, ROPE_LAYOUTS)
        object.__setattr__(self, "theta", _check_theta(self.theta))
        object.__setattr__(self, "offset", _check_offset(self.offset))


class RopeCache(NamedTuple):
    """What backward needs: the cos / sin tables (the rotation), nothing of x."""

    cos: np.ndarray  # (B|1, T, 1, Dh/2)
    sin: np.ndarray  # (B|1, T, 1, Dh/2)
    layout: str
    shape: tuple  # x.shape


def rope_angles(positions: np.ndarray, head_dim: int, theta: float = DEFAULT_THETA) -> np.ndarray:
    """angle[..., i] = position * theta^(-2i/Dh): shape positions.shape + (Dh/2,)."""
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (Dh/2,)
    return np.asarray(positions, dtype=np.float64)[..., None] * inv_freq  # (..., Dh/2)


def _positions(positions, offset, batch: int, seq: int) -> np.ndarray:
    offset = _check_offset(offset, seq)
    if positions is None:
        return (offset + np.arange(seq))[None, :]  # (1, T)
    if offset != 0:
        raise ValueError(f"pass positions or offset, not both; got offset={offset} with positions")
    pos = int_array("positions", positions, f"({seq},) or ({batch}, {seq})")
    if pos.shape == (seq,):
        pos = pos[None, :]  # (1, T)
    if pos.shape not in ((1, seq), (batch, seq)):
        raise ValueError(f"positions must have shape ({seq},) or ({batch}, {seq}); got {pos.shape}")
    if np.any(pos < 0) or np.any(pos > MAX_POSITION):
        raise ValueError(f"positions must lie in [0, {MAX_POSITION}]; got values in [{pos.min()}, {pos.max()}]")
    return pos.astype(np.int64)  # (B|1, T)


def _pairs(x: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    half = x.shape[-1] // 2
    if layout == "half":
        return x[..., :half], x[..., half:]  # (..., Dh/2) views
    return x[..., 0::2], x[..., 1::2]  # (..., Dh/2) views


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, layout: str) -> np.ndarray:
    xa, xb = _pairs(x, layout)
    y = np.empty_like(x)  # (B, T, H, Dh)
    ya, yb = _pairs(y, layout)
    np.subtract(xa * cos, xb * sin, out=ya)
    np.add(xb * cos, xa * sin, out=yb)
    return y


def rope_forward(x, *, positions=None, offset: int = 0, theta: float = DEFAULT_THETA, layout: str = "half"):
    """Rotate x (B, T, H, Dh) by its positions. Returns (y, cache), y of x's shape in float64.

    positions: integer array (T,) or (B, T); default ``offset + arange(T)``. Give one of positions / offset.
    """
    x = float_array("x", x, ndim=4)
    choice("layout", layout, ROPE_LAYOUTS)
    theta = _check_theta(theta)
    batch, seq, _, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"x must have an even head dim (last axis) for rotary pairs; got {head_dim}")
    angles = rope_angles(_positions(positions, offset, batch, seq), head_dim, theta)  # (B|1, T, Dh/2)
    cos = np.cos(angles)[:, :, None, :]  # (B|1, T, 1, Dh/2)
    sin = np.sin(angles)[:, :, None, :]  # (B|1, T, 1, Dh/2)
    return _rotate(x, cos, sin, layout), RopeCache(cos, sin, layout, x.shape)


def rope_backward(dy, cache: RopeCache) -> np.ndarray:
    """dx for <dy, y>: the inverse rotation of dy (shape (B, T, H, Dh))."""
    if not isinstance(cache, RopeCache):
        raise ValueError(f"cache must be the RopeCache returned by rope_forward; got {type(cache).__name__}")
    dy = float_array("dy", dy)
    if dy.shape != cache.shape:
        raise ValueError(f"dy must have the output's shape {cache.shape}; got {dy.shape}")
    return _rotate(dy, cache.cos, -cache.sin, cache.layout)


def apply_rope(x, rope: Rope | None, positions=None):
    """Forward of a ``Rope`` config (None: identity) with positions ``rope.offset + t`` unless given."""
    if rope is None:
        return x, None
    if not isinstance(rope, Rope):
        raise ValueError(f"rope must be a refimpl.rope.Rope or None; got {type(rope).__name__}")
    if positions is None:
        return rope_forward(x, offset=rope.offset, theta=rope.theta, layout=rope.layout)  # checked by check_rope
    return rope_forward(x, positions=positions, theta=rope.theta, layout=rope.layout)


def rope_permutation(head_dim: int, n_heads: int = 1, *, src="interleaved", dst="half") -> np.ndarray:
    """Column indices ``perm`` (n_heads * Dh,) with ``w_dst = w_src[:, perm]`` for w_q or w_k (head-major).

    interleaved -> half: new dim c * Dh/2 + i takes old dim 2i + c (c in {0, 1}); half -> interleaved is its
    inverse. rope_dst(x @ w_dst) then equals rope_src(x @ w_src) with every head's dims permuted by perm.
    """
    head_dim, n_heads = positive_int("head_dim", head_dim), positive_int("n_heads", n_heads)
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for rotary pairs; got {head_dim}")
    choice("src", src, ROPE_LAYOUTS)
    choice("dst", dst, ROPE_LAYOUTS)
    inter_to_half = np.concatenate([np.arange(0, head_dim, 2), np.arange(1, head_dim, 2)])  # (Dh,)
    if src == dst:
        within = np.arange(head_dim)  # (Dh,)
    elif src == "interleaved":
        within = inter_to_half
    else:
        within = np.argsort(inter_to_half)  # (Dh,) the inverse permutation
    return (np.arange(n_heads)[:, None] * head_dim + within[None, :]).reshape(-1)  # (n_heads * Dh,)
