"""KV-cache decoding in JAX, mirroring ``refimpl.kv_cache``: a fixed-capacity cache and a jitted decode step.

Shape legend: B batch, S_max cache capacity, L filled length, T_new new tokens, D d_model, N query heads,
K key/value heads, Dh head dim.

The cache holds K heads only: ``k`` and ``v`` (B, S_max, K, Dh) each, N/K times smaller than an MHA cache.
``decode_step`` projects the new tokens, writes their (roped) keys and values at [L, L + T_new) and attends
with the causal mask aligned bottom-right (token t of the chunk sits at position L + t), so prefill followed
by token-by-token decode equals the full causal forward of the layer (to rounding).

NOTE(jax): ``KVCache`` is an immutable pytree (a NamedTuple) whose ``length`` is an int32 scalar *array*,
not a Python int: the step is one compiled program for every L. It always attends over the whole S_max
buffer, with keys at and after L + T_new masked as padding (``kv_lengths = L + T_new``), so every step of a
sequence has the same shapes and ``decode_step`` compiles once per (B, T_new, S_max) (tested by counting
traces). The cache argument is *donated*: XLA writes the new keys into the old buffers where the backend
supports donation (GPU, TPU; the CPU backend may copy), and the caller must use the returned cache.
NOTE(jax): an overflow (L + T_new > S_max) raises ValueError before anything is written when the cache
length is concrete (the public ``decode_step`` reads it: one scalar device-to-host copy per call);
``decode_step_unchecked`` skips that read (for benchmarks and callers that count tokens themselves) and
then an overflowing write is clamped by ``dynamic_update_slice``, i.e. wrong.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..kv_cache import check_step_inputs
from ..rope import Rope
from ._checks import float_array, positive_int
from .attention import check_options, grouped_attention
from .layer import project_out, project_qkv
from .masks import query_positions


class KVCache(NamedTuple):
    """One layer's cache: ``k``, ``v`` (B, S_max, K, Dh) and ``length`` (int32 scalar), shared by all rows."""

    k: jax.Array  # (B, S_max, K, Dh)
    v: jax.Array  # (B, S_max, K, Dh)
    length: jax.Array  # () int32

    @classmethod
    def empty(cls, batch: int, max_len: int, n_kv_heads: int, head_dim: int, *, dtype=jnp.float32) -> KVCache:
        """A zero-filled cache of capacity ``max_len`` tokens, length 0. NOTE(jax): float32 by default."""
        sizes = (("batch", batch), ("max_len", max_len), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim))
        shape = tuple(positive_int(n, v) for n, v in sizes)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a floating-point dtype; got {dtype!r}")
        zeros = jnp.zeros(shape, dtype=dtype)  # (B, S_max, K, Dh)
        return cls(zeros, jnp.zeros_like(zeros), jnp.zeros((), jnp.int32))

    @property
    def batch(self) -> int:
        return self.k.shape[0]

    @property
    def max_len(self) -> int:
        return self.k.shape[1]

    @property
    def n_kv_heads(self) -> int:
        return self.k.shape[2]

    @property
    def head_dim(self) -> int:
        return self.k.shape[3]

    @property
    def nbytes(self) -> int:
        """Bytes of the two buffers: 2 * B * S_max * K * Dh * itemsize (one layer, all devices together)."""
        return self.k.nbytes + self.v.nbytes

    def keys(self):
        """The filled keys, (B, L, K, Dh) (a copy: needs a concrete length)."""
        return self.k[:, : int(self.length)]

    def values(self):
        """The filled values, (B, L, K, Dh) (a copy: needs a concrete length)."""
        return self.v[:, : int(self.length)]


def append(cache: KVCache, k_new, v_new) -> KVCache:
    """A cache with (B, T_new, K, Dh) keys and values written at [length, length + T_new). Traceable."""
    zero = jnp.zeros((), jnp.int32)
    start = (zero, cache.length, zero, zero)
    k = jax.lax.dynamic_update_slice(cache.k, k_new.astype(cache.k.dtype), start)  # (B, S_max, K, Dh)
    v = jax.lax.dynamic_update_slice(cache.v, v_new.astype(cache.v.dtype), start)  # (B, S_max, K, Dh)
    return KVCache(k, v, cache.length + k_new.shape[1])


def step_core(x, p, cache: KVCache, *, n_heads, n_kv_heads, head_dim, rope, window, softcap, scale):
    """One decode step on checked inputs, x (B, T_new, D) -> (y (B, T_new, D), new cache). Traceable; also
    the per-device body of the sharded step (where N and K are the device's local head counts)."""
    n_new = x.shape[1]
    positions = query_positions(n_new, n_new, None) + cache.length  # (1, T_new): L + t
    rope_positions = None if rope is None else positions + rope.offset  # (1, T_new)
    q, k, v = project_qkv(x, p, n_heads, n_kv_heads, head_dim, rope, rope_positions)
    cache = append(cache, k, v)
    lengths = jnp.broadcast_to(cache.length, (x.shape[0],))  # (B,) L + T_new: later slots are padding
    a, _ = grouped_attention(q, cache.k, cache.v, positions, jnp.arange(cache.max_len), lengths, causal=True,
                             window=window, softcap=softcap, scale=scale)  # fmt: skip
    return project_out(a, p), cache  # (B, T_new, D)


_STATIC = ("n_heads", "n_kv_heads", "head_dim", "rope", "window", "softcap", "scale")


@partial(jax.jit, static_argnames=_STATIC, donate_argnames=("cache",))
def _decode_step(x, p, cache, **static):
    return step_core(x, p, cache, **static)


def _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale):
    x, single, p, head_dim, n_heads, n_kv_heads = check_step_inputs(
        x_t, params, cache, n_heads, n_kv_heads, cache_type=KVCache, as_array=float_array
    )  # NumPy's rules; NOTE(jax): arrays keep their dtype
    if rope is not None and not isinstance(rope, Rope):
        raise ValueError(f"rope must be a refimpl.rope.Rope or None; got {type(rope).__name__}")
    _, window, softcap, scale = check_options(True, window, softcap, scale, head_dim)
    static = dict(n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, rope=rope, window=window,
                  softcap=softcap, scale=scale)  # fmt: skip
    return x, p, single, static


def decode_step_unchecked(x_t, params: dict, cache: KVCache, *, n_heads: int, n_kv_heads: int,
                          rope: Rope | None = None, window=None, softcap=None, scale=None):  # fmt: skip
    """``decode_step`` without the overflow check (no device-to-host read of the length)."""
    x, p, single, static = _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale)
    y, cache = _decode_step(x, p, cache, **static)
    return (y[:, 0] if single else y), cache


def decode_step(x_t, params: dict, cache: KVCache, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None,
                window=None, softcap=None, scale=None):  # fmt: skip
    """Attend new tokens to the cache and themselves; append their keys/values. Returns (y_t, new cache).

    x_t: (B, D) for one token (y_t (B, D)) or (B, T_new, D) for a chunk such as the prompt. Token t of the
    chunk sits at position L + t (rope: rope.offset + L + t). NOTE(jax): the given cache is donated (do not
    reuse it); raises ValueError, writing nothing, if L + T_new > S_max. window, softcap, scale: as
    attention_forward (the mask is causal).
    """
    if not isinstance(cache, KVCache):
        raise ValueError(f"cache must be a refimpl.jax.KVCache; got {type(cache).__name__}")
    n_new = 1 if getattr(x_t, "ndim", 0) == 2 else getattr(x_t, "shape", (0, 0))[1]
    if not isinstance(cache.length, jax.core.Tracer) and int(cache.length) + n_new > cache.max_len:
        raise ValueError(
            f"cache overflow: x_t adds {n_new} token(s) at length {int(cache.length)}; max_len={cache.max_len}"
        )
    return decode_step_unchecked(x_t, params, cache, n_heads=n_heads, n_kv_heads=n_kv_heads, rope=rope,
                                 window=window, softcap=softcap, scale=scale)  # fmt: skip
