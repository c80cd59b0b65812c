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
NOTE(jax): every argument is validated before the step runs, so a call that raises donates nothing and the
given cache stays usable. An overflow (L + T_new > S_max) raises ValueError when the cache length is
concrete (the public ``decode_step`` reads it: one scalar device-to-host copy per call);
``decode_step_unchecked`` skips that read (for benchmarks and callers that count tokens themselves) and
then an overflowing write is clamped by ``dynamic_update_slice``, i.e. wrong. A KVCache is a plain
NamedTuple (a pytree: JAX rebuilds it from leaves and PartitionSpecs), so it is checked where it is used
(``check_cache``: k and v of one shape and floating dtype, length an integer scalar in [0, S_max]).
Slots at and after L + T_new may hold anything: they are masked, and masked garbage never reaches y.
New keys and values are cast to the cache's dtype as in NumPy: overflow stores +-inf (NaN for float8_e4m3fn).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..kv_cache import check_step_inputs
from ..layer import SINKS
from ..masks import clip_window
from ..rope import Rope
from ._checks import concrete_values, float_array, jax_float_dtype, positive_int
from .attention import grouped_attention
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
        dtype = jax_float_dtype("dtype", dtype)
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


def check_cache(cache) -> int | None:
    """Validate a KVCache's fields; return its length as an int, or None when it is traced."""
    if not isinstance(cache, KVCache):
        raise ValueError(f"cache must be a refimpl.jax.KVCache; got {type(cache).__name__}")
    for name in ("k", "v"):
        float_array(f"cache.{name}", getattr(cache, name), ndim=4)
    if cache.v.shape != cache.k.shape or cache.v.dtype != cache.k.dtype:
        raise ValueError(f"cache.v must match cache.k's shape {tuple(cache.k.shape)} and dtype {cache.k.dtype}; "
                         f"got {tuple(cache.v.shape)} {cache.v.dtype}")  # fmt: skip
    length = cache.length
    is_int = isinstance(length, (int, np.integer)) and not isinstance(length, bool)
    if not (is_int or (hasattr(length, "dtype") and jnp.issubdtype(length.dtype, jnp.integer) and length.ndim == 0)):
        raise ValueError(f"cache.length must be an integer scalar; got {length!r:.80}")
    values = concrete_values(length)
    if values is None:
        return None
    if not 0 <= int(values) <= cache.max_len:
        raise ValueError(f"cache.length must lie in [0, S_max={cache.max_len}]; got {int(values)}")
    return int(values)


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
                             window=window, softcap=softcap, scale=scale, sinks=p.get(SINKS),
                             fast_path=True)  # fmt: skip
    return project_out(a, p), cache  # (B, T_new, D)


_STATIC = ("n_heads", "n_kv_heads", "head_dim", "rope", "window", "softcap", "scale")


@partial(jax.jit, static_argnames=_STATIC, donate_argnames=("cache",))
def _decode_step(x, p, cache, **static):
    return step_core(x, p, cache, **static)


def _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale, *, overflow: bool):
    """Every check of a step, before anything runs: NumPy's rules (check_step_inputs) on the port's arrays.
    ``overflow``: also refuse L + T_new > S_max (reads the length from the device)."""
    length = check_cache(cache) if isinstance(cache, KVCache) else None
    x, single, p, static = check_step_inputs(
        x_t, params, cache, n_heads, n_kv_heads, rope=rope, window=window, softcap=softcap, scale=scale,
        cache_type=KVCache, as_array=float_array, values=concrete_values,
        length_of=lambda _: length if overflow else None,
    )  # NOTE(jax): arrays keep their dtype
    static["window"] = clip_window(static["window"], cache.max_len)
    return x, p, single, static


def decode_step_unchecked(x_t, params: dict, cache: KVCache, *, n_heads: int, n_kv_heads: int,
                          rope: Rope | None = None, window=None, softcap=None, scale=None):  # fmt: skip
    """``decode_step`` without the overflow check (no device-to-host read of the length)."""
    x, p, single, static = _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale,
                                       overflow=False)  # fmt: skip
    y, cache = _decode_step(x, p, cache, **static)
    return (y[:, 0] if single else y), cache


def decode_step(x_t, params: dict, cache: KVCache, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None,
                window=None, softcap=None, scale=None):  # fmt: skip
    """Attend new tokens to the cache and themselves; append their keys/values. Returns (y_t, new cache).

    x_t: (B, D) for one token (y_t (B, D)) or (B, T_new, D) for a chunk such as the prompt. Token t of the
    chunk sits at position L + t (rope: rope.offset + L + t). NOTE(jax): the given cache is donated (do not
    reuse it); raises ValueError, donating and writing nothing, on any bad argument and if L + T_new > S_max.
    window, softcap, scale: as attention_forward (the mask is causal); sinks come from params["sinks"].
    """
    x, p, single, static = _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale,
                                       overflow=True)  # fmt: skip
    y, cache = _decode_step(x, p, cache, **static)
    return (y[:, 0] if single else y), cache
