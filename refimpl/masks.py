"""Which keys each query sees: causal (bottom-right), padding (kv_lengths) and sliding-window masks.

Shape legend: B batch, T query length, S key/value length.

Positions. Query t of batch row b sits at position

    q_pos[b, t] = L_b - T + t,      L_b = kv_lengths[b]   (L_b = S when kv_lengths is None)

i.e. the queries are the *last* T tokens of the row's L_b valid keys ("bottom-right" causal alignment, as
flash-attn >= 2.1; torch ``is_causal`` and ``jax.nn.dot_product_attention`` align top-left, which differs
only when T != S). A decode step is then just T = 1 and needs no special case.

Visibility. Key j (0 <= j < S) is visible to query (b, t) iff all of

    j < L_b                         (padding: keys at and after kv_lengths[b] are ignored)
    j <= q_pos[b, t]                (only when causal=True)
    j > q_pos[b, t] - window        (only when window is given: the query sees itself and window - 1
                                     keys before it, as HF's sliding-window mask kv_idx > q_idx - window
                                     and flash-attn's window_size=(window - 1, 0))

``window`` only limits how far back a query looks; with causal=False keys after the query stay visible.
A query with no visible key (e.g. q_pos < 0 when L_b < T under causal, or L_b = 0) is *fully masked*:
attention gives it output 0 and log-sum-exp -inf (with sinks: output 0, log-sum-exp = the sink logit).

Hugging Face's ``sliding_window = W`` (``sliding_window_overlay``: kv_idx > q_idx - W, and'ed with the causal
kv_idx <= q_idx; Mistral, Gemma 2/3, gpt-oss's sliding layers) is ``window=W`` here: W keys, the query's own
included. A window of S or more constrains nothing (q_pos - j <= S - 1) and is treated as no window.
"""

from __future__ import annotations

import numpy as np

from ._checks import int_array, positive_int


def check_kv_lengths(kv_lengths, batch: int, kv_len: int) -> np.ndarray | None:
    """Return kv_lengths as an int64 array of shape (B,) with 0 <= L_b <= S, or None."""
    if kv_lengths is None:
        return None
    arr = int_array("kv_lengths", kv_lengths, f"({batch},)")
    if arr.shape != (batch,):
        raise ValueError(f"kv_lengths must have shape ({batch},) (one length per batch row); got {arr.shape}")
    if np.any(arr < 0) or np.any(arr > kv_len):
        raise ValueError(f"kv_lengths must lie in [0, S={kv_len}]; got {arr.tolist()}")
    return arr.astype(np.int64)


def check_window(window) -> int | None:
    """Return window as a positive int, or None."""
    return None if window is None else positive_int("window", window)


def clip_window(window: int | None, n_keys: int) -> int | None:
    """None when ``window >= S``: such a window hides no key (q_pos - j <= S - 1 < window). Keeps the mask
    arithmetic (q_pos - window) within the position range whatever integer the caller gave."""
    return None if window is None or window >= n_keys else window


def query_positions(n_queries: int, n_keys: int, kv_lengths: np.ndarray | None) -> np.ndarray:
    """q_pos = L_b - T + t, shape (B, T) with kv_lengths, else (1, T) with L = S."""
    lengths = np.array([n_keys]) if kv_lengths is None else kv_lengths  # (B,) or (1,)
    return lengths[:, None] - n_queries + np.arange(n_queries)[None, :]  # (B|1, T)


def visible_keys(
    q_pos: np.ndarray, key_idx: np.ndarray, kv_lengths: np.ndarray | None, *, causal: bool, window: int | None
) -> np.ndarray | None:
    """Boolean visibility (B|1, Tq, Sk) of keys ``key_idx`` (Sk,) to queries at ``q_pos`` (B|1, Tq).

    Returns None when nothing constrains visibility (no causal, padding or window).
    """
    if not causal and kv_lengths is None and window is None:
        return None
    qp = q_pos[:, :, None]  # (B|1, Tq, 1)
    j = key_idx[None, None, :]  # (1, 1, Sk)
    visible = np.ones((q_pos.shape[0], q_pos.shape[1], key_idx.size), dtype=bool)  # (B|1, Tq, Sk)
    if kv_lengths is not None:
        visible &= j < kv_lengths[:, None, None]
    if causal:
        visible &= j <= qp
    if window is not None:
        visible &= j > qp - window
    return visible


def key_range(
    q_pos: np.ndarray, n_keys: int, kv_lengths: np.ndarray | None, *, causal: bool, window: int | None
) -> tuple[int, int]:
    """[lo, hi): the smallest key interval holding every key visible to the queries ``q_pos`` (B|1, Tq).

    Keys outside it are masked for every query of the block, so a block-wise kernel may skip them (this is
    what halves the work of a causal forward). hi <= lo means the whole block is fully masked.
    """
    hi = n_keys if kv_lengths is None else int(kv_lengths.max(initial=0))
    if causal:
        last = q_pos[:, -1] + 1  # (B|1,) one past the last query's position
        lengths = np.full_like(last, n_keys) if kv_lengths is None else kv_lengths  # (B|1,)
        hi = int(np.minimum(last, lengths).max())
    lo = 0 if window is None else max(0, int(q_pos[:, 0].min()) - window + 1)
    return lo, min(hi, n_keys)


def infer_batch(kv_lengths, batch) -> int:
    """The batch size of ``attention_mask``: ``batch`` if given, else one row per kv_lengths entry, else 1."""
    if batch is not None:
        return positive_int("batch", batch)
    if kv_lengths is None:
        return 1
    arr = int_array("kv_lengths", kv_lengths, "(B,)")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"kv_lengths must be a 1-D integer array (B,), one length per batch row; got {arr.shape}")
    return arr.shape[0]


def attention_mask(
    n_queries: int,
    n_keys: int,
    *,
    causal: bool = True,
    kv_lengths=None,
    window: int | None = None,
    batch: int | None = None,
) -> np.ndarray:
    """The full boolean mask, True where key j is visible to query t: shape (B, T, S) (B = 1 by default).

    For naive implementations and tests; ``attention_forward`` never builds it whole.
    """
    n_queries, n_keys = positive_int("n_queries", n_queries), positive_int("n_keys", n_keys)
    batch = infer_batch(kv_lengths, batch)
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be a bool; got {causal!r}")
    lengths = check_kv_lengths(kv_lengths, batch, n_keys)
    window = clip_window(check_window(window), n_keys)
    q_pos = query_positions(n_queries, n_keys, lengths)  # (B|1, T)
    mask = visible_keys(q_pos, np.arange(n_keys), lengths, causal=bool(causal), window=window)  # (B|1, T, S)
    if mask is None:
        mask = np.ones((1, n_queries, n_keys), dtype=bool)  # (1, T, S)
    return np.broadcast_to(mask, (batch, n_queries, n_keys)).copy()  # (B, T, S)
