"""Which keys each query sees, in JAX: mirrors ``refimpl.masks`` (same rule, same names).

Shape legend: B batch, T query length, S key/value length.

Query t of batch row b sits at q_pos[b, t] = L_b - T + t (L_b = kv_lengths[b], or S without padding:
bottom-right causal alignment). Key j is visible iff j < L_b, j <= q_pos (causal) and j > q_pos - window
(window). A query with no visible key is fully masked: output 0, log-sum-exp -inf. HF's sliding_window W is
window=W; a window of S or more is no window (``clip_window``).

NOTE(jax): ``kv_lengths`` may be a traced array (its values change without recompiling), so its range
[0, S] is checked only when its values are concrete (outside jit); ``causal`` and ``window`` are static.
NOTE(jax): there is no ``key_range``: XLA computes the full (T, S) score block and the mask removes keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import int_array, positive_int
from ..masks import check_window, clip_window, infer_batch  # noqa: F401  (Python-side checks: shared, not ported)


def check_kv_lengths(kv_lengths, batch: int, kv_len: int):
    """Return kv_lengths as an int32 array of shape (B,), or None; values checked when concrete."""
    if kv_lengths is None:
        return None
    if not isinstance(kv_lengths, jax.Array):
        kv_lengths = int_array("kv_lengths", kv_lengths, f"({batch},)")
    if not jnp.issubdtype(kv_lengths.dtype, jnp.integer):
        raise ValueError(f"kv_lengths must be an integer array of shape ({batch},); got dtype {kv_lengths.dtype}")
    if tuple(kv_lengths.shape) != (batch,):
        raise ValueError(f"kv_lengths must have shape ({batch},) (one length per batch row); got {kv_lengths.shape}")
    if not isinstance(kv_lengths, jax.core.Tracer):
        values = np.asarray(kv_lengths)
        if np.any(values < 0) or np.any(values > kv_len):
            raise ValueError(f"kv_lengths must lie in [0, S={kv_len}]; got {values.tolist()}")
    return jnp.asarray(kv_lengths, dtype=jnp.int32)


def query_positions(n_queries: int, n_keys: int, kv_lengths):
    """q_pos = L_b - T + t, shape (B, T) with kv_lengths, else (1, T) with L = S."""
    lengths = jnp.array([n_keys], dtype=jnp.int32) if kv_lengths is None else kv_lengths  # (B,) or (1,)
    return lengths[:, None] - n_queries + jnp.arange(n_queries, dtype=jnp.int32)[None, :]  # (B|1, T)


def visible_keys(q_pos, key_idx, kv_lengths, *, causal: bool, window: int | None):
    """Boolean visibility (B|1, Tq, Sk) of keys ``key_idx`` (Sk,) to queries at ``q_pos`` (B|1, Tq).

    Returns None when nothing constrains visibility (no causal, padding or window).
    """
    if not causal and kv_lengths is None and window is None:
        return None
    qp = q_pos[:, :, None]  # (B|1, Tq, 1)
    j = key_idx[None, None, :]  # (1, 1, Sk)
    visible = jnp.ones((q_pos.shape[0], q_pos.shape[1], key_idx.size), dtype=bool)  # (B|1, Tq, Sk)
    if kv_lengths is not None:
        visible = visible & (j < kv_lengths[:, None, None])
    if causal:
        visible = visible & (j <= qp)
    if window is not None:
        visible = visible & (j > qp - window)
    return visible


def attention_mask(n_queries: int, n_keys: int, *, causal: bool = True, kv_lengths=None, window=None, batch=None):
    """The full boolean mask, True where key j is visible to query t: shape (B, T, S) (B = 1 by default)."""
    n_queries, n_keys = positive_int("n_queries", n_queries), positive_int("n_keys", n_keys)
    batch = infer_batch(kv_lengths, batch)
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be a bool; got {causal!r}")
    lengths = check_kv_lengths(kv_lengths, batch, n_keys)
    window = clip_window(check_window(window), n_keys)
    q_pos = query_positions(n_queries, n_keys, lengths)  # (B|1, T)
    mask = visible_keys(q_pos, jnp.arange(n_keys), lengths, causal=bool(causal), window=window)  # (B|1, T, S)
    if mask is None:
        mask = jnp.ones((1, n_queries, n_keys), dtype=bool)  # (1, T, S)
    return jnp.broadcast_to(mask, (batch, n_queries, n_keys))  # (B, T, S)
