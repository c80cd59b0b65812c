"""KV-cache decoding: a preallocated per-layer key/value cache and the decode step that fills it.

Shape legend: B batch, S_max cache capacity, L filled length, T_new new tokens, D d_model, N query heads,
K key/value heads, Dh head dim.

The cache holds K heads only, ``k`` and ``v`` each (B, S_max, K, Dh): under GQA it is N/K times smaller than
an MHA cache (Ainslie et al. 2023, the point of GQA). ``decode_step`` projects the new tokens, writes their
(roped) keys and values at positions [L, L + T_new) and attends with the causal mask aligned bottom-right,
so the new tokens see every cached token and each other causally: prefill followed by token-by-token decode
equals the full causal forward of refimpl.layer (to rounding). Attention reads views of the buffers
(``cache.k[:, :L]``), never a copy repeated over query heads.

**The cache is mutated in place**: ``append`` / ``decode_step`` write into the preallocated buffers and
advance ``length``; ``decode_step`` returns the same object it was given. Every argument is validated
before anything is written: a call that raises (a bad option, a shape, writing past S_max) leaves the cache
as it was (never wraps around, never grows). Slots at and after ``length`` may hold anything (stale or
uninitialised values): attention reads only the filled part.

Storage dtype: new keys and values are rounded to the cache's dtype as a cast does, silently: a value
beyond a float16 / bfloat16 / float8_e5m2 cache's range is stored as +-inf (float8_e4m3fn, which has no
infinity: NaN), as the hardware and the JAX port store it; attention then gives NaN to every query that sees
that token (refimpl/attention_blocks.py), so the overflow shows instead of being clipped away.
"""

from __future__ import annotations

import numpy as np

from ._checks import float_array, float_dtype, is_float_dtype, positive_int
from .attention import attention_forward, check_options
from .layer import SINKS, check_heads, check_params, project_out, project_qkv
from .rope import Rope, check_rope


class KVCache:
    """One layer's cache: ``k``, ``v`` (B, S_max, K, Dh) and ``length``, an int shared by all batch rows.

    Rows of different lengths are not tracked here (pad the prompts, then pass kv_lengths to
    attention_forward directly if needed). ``nbytes`` = k.nbytes + v.nbytes (the whole capacity).
    ``k`` and ``v`` are read-only attributes (the buffers themselves are written in place); ``length`` may
    be set, to an integer in [0, S_max] (e.g. to rewind).
    """

    __slots__ = ("_k", "_v", "_length")

    def __init__(self, k: np.ndarray, v: np.ndarray, length: int = 0):
        for name, arr in (("k", k), ("v", v)):
            if not isinstance(arr, np.ndarray) or not is_float_dtype(arr.dtype) or arr.ndim != 4:
                raise ValueError(f"{name} must be a 4-D float array (B, S_max, K, Dh); got {arr!r:.80}")
        if v.shape != k.shape or v.dtype != k.dtype:
            raise ValueError(f"v must match k's shape {k.shape} and dtype {k.dtype}; got {v.shape} {v.dtype}")
        if 0 in k.shape:
            raise ValueError(f"k and v must have no zero-sized dimension; got shape {k.shape}")
        self._k, self._v, self._length = k, v, 0
        self.length = length

    @property
    def k(self) -> np.ndarray:
        return self._k

    @property
    def v(self) -> np.ndarray:
        return self._v

    @property
    def length(self) -> int:
        return self._length

    @length.setter
    def length(self, value) -> None:
        valid_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not (valid_int and 0 <= value <= self.max_len):
            raise ValueError(f"length must be an integer in [0, S_max={self.max_len}]; got {value!r}")
        self._length = int(value)

    @classmethod
    def empty(cls, batch: int, max_len: int, n_kv_heads: int, head_dim: int, *, dtype=np.float64) -> KVCache:
        """A zero-filled cache of capacity ``max_len`` tokens, length 0; dtype any floating dtype."""
        sizes = {"batch": batch, "max_len": max_len, "n_kv_heads": n_kv_heads, "head_dim": head_dim}
        shape = tuple(positive_int(name, value) for name, value in sizes.items())  # (B, S_max, K, Dh)
        dtype = float_dtype("dtype", dtype)
        return cls(np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype), 0)  # (B, S_max, K, Dh) each

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
        """Bytes of the two buffers: 2 * B * S_max * K * Dh * itemsize (one layer)."""
        return self.k.nbytes + self.v.nbytes

    def keys(self) -> np.ndarray:
        """View of the filled keys, (B, L, K, Dh)."""
        return self.k[:, : self.length]

    def values(self) -> np.ndarray:
        """View of the filled values, (B, L, K, Dh)."""
        return self.v[:, : self.length]

    def append(self, k_new, v_new) -> None:
        """Write (B, T_new, K, Dh) keys and values (T_new >= 1, any floating dtype) at [length, length + T_new)
        in place, rounded to the cache's dtype (see the module docstring); advance length."""
        expected = (self.batch, None, self.n_kv_heads, self.head_dim)
        for name, arr in (("k_new", k_new), ("v_new", v_new)):
            float_array(name, arr, ndim=4)
            if any(e is not None and e != s for e, s in zip(expected, arr.shape, strict=True)) or arr.shape[1] == 0:
                raise ValueError(f"{name} must have shape (B={self.batch}, T_new >= 1, K={self.n_kv_heads}, "
                                 f"Dh={self.head_dim}); got {arr.shape}")  # fmt: skip
        if v_new.shape != k_new.shape:
            raise ValueError(f"v_new must have k_new's shape {k_new.shape}; got {v_new.shape}")
        n_new = k_new.shape[1]
        if self.length + n_new > self.max_len:
            raise ValueError(
                f"cache overflow: {n_new} new token(s) at length {self.length} pass max_len={self.max_len}"
            )
        with np.errstate(over="ignore"):  # overflow of the cast is the documented behaviour: +-inf (or NaN)
            self.k[:, self.length : self.length + n_new] = k_new
            self.v[:, self.length : self.length + n_new] = v_new
        self.length += n_new

    def __repr__(self) -> str:
        return f"KVCache(batch={self.batch}, max_len={self.max_len}, n_kv_heads={self.n_kv_heads}, " \
               f"head_dim={self.head_dim}, length={self.length}, dtype={self.k.dtype})"  # fmt: skip


def check_step_inputs(
    x_t, params: dict, cache, n_heads: int, n_kv_heads: int, *, rope=None, window=None, softcap=None,
    scale=None, cache_type=None, as_array=float_array, values=np.asarray, length_of=None,
) -> tuple:  # fmt: skip
    """Validate every input of a decode step before anything runs: returns (x (B, T_new, D), single, params,
    static options dict), arrays converted by ``as_array``. ``cache_type`` defaults to this module's KVCache;
    the JAX port passes its own, its dtype-keeping converter, ``values`` (see check_sinks) and ``length_of``
    (the checked cache length, None when traced), so both ports share one set of rules."""
    cache_type = KVCache if cache_type is None else cache_type
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    if not isinstance(cache, cache_type):
        raise ValueError(f"cache must be a {cache_type.__module__}.KVCache; got {type(cache).__name__}")
    length = cache.length if length_of is None else length_of(cache)
    x = as_array("x_t", x_t)
    single = x.ndim == 2
    if single:
        x = x[:, None, :]  # (B, 1, D)
    if x.ndim != 3:
        raise ValueError(f"x_t must have shape (B, D) or (B, T_new, D); got {tuple(x.shape)}")
    if 0 in x.shape:
        raise ValueError(f"x_t must have at least one token and no zero-sized dimension; got {tuple(x_t.shape)}")
    p, head_dim = check_params(params, n_heads, n_kv_heads, x.shape[2], as_array=as_array, values=values)
    if (cache.batch, cache.n_kv_heads, cache.head_dim) != (x.shape[0], n_kv_heads, head_dim):
        raise ValueError(
            f"cache must have B={x.shape[0]}, K={n_kv_heads}, Dh={head_dim} to match x_t and params; "
            f"got B={cache.batch}, K={cache.n_kv_heads}, Dh={cache.head_dim}"
        )
    _, window, softcap, scale = check_options(True, window, softcap, scale, head_dim)
    n_new = x.shape[1]
    if length is not None and length + n_new > cache.max_len:
        raise ValueError(f"cache overflow: x_t adds {n_new} token(s) at length {length}; max_len={cache.max_len}")
    check_rope(rope, head_dim, n_new, start=cache.max_len - n_new if length is None else length)
    static = dict(n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, rope=rope, window=window,
                  softcap=softcap, scale=scale)  # fmt: skip
    return x, single, p, static


def decode_step(
    x_t, params: dict, cache: KVCache, *, n_heads: int, n_kv_heads: int, rope: Rope | None = None,
    window=None, softcap=None, scale=None,
):  # fmt: skip
    """Attend new tokens to the cache and themselves; append their keys/values. Returns (y_t, cache).

    x_t: (B, D) for one token (y_t (B, D)), or (B, T_new, D) for a chunk such as the prompt (y_t likewise).
    Token t of the chunk sits at position L + t (rope: rope.offset + L + t), L = cache.length before the call.
    The cache is updated **in place** and returned; ValueError (nothing written) if L + T_new > S_max.
    window, softcap, scale: as attention_forward (the mask is causal); sinks come from params["sinks"].
    Everything is validated first: a call that raises leaves the cache unchanged.
    """
    x, single, p, static = check_step_inputs(x_t, params, cache, n_heads, n_kv_heads, rope=rope, window=window,
                                             softcap=softcap, scale=scale)  # fmt: skip
    start, n_new = cache.length, x.shape[1]
    positions = None if rope is None else rope.offset + start + np.arange(n_new)  # (T_new,)
    q, k, v, _, _ = project_qkv(x, p, static["n_heads"], static["n_kv_heads"], static["head_dim"], rope, positions)
    cache.append(k, v)  # the only mutation, after every check
    k_all = np.asarray(cache.keys(), dtype=np.float64)  # (B, L + T_new, K, Dh) view when float64
    v_all = np.asarray(cache.values(), dtype=np.float64)  # (B, L + T_new, K, Dh) view when float64
    a, _ = attention_forward(q, k_all, v_all, causal=True, window=static["window"], softcap=static["softcap"],
                             scale=static["scale"], sinks=p.get(SINKS))  # fmt: skip
    y = project_out(a, p)  # (B, T_new, D)
    return (y[:, 0] if single else y), cache
