"""Scaled dot-product attention, MHA / GQA / MQA (Ainslie et al. 2023, arXiv:2305.13245), forward, backward.

Shape legend: B batch, T query length, S key/value length, N query heads, K key/value heads (the GQA
paper's G; K = N is MHA, K = 1 is MQA), R = N / K query heads per KV head, Dh head dim.

Head map: query head n reads KV head n // R (contiguous groups, as torch ``enable_gqa``, HF ``repeat_kv``,
flash-attn and JAX). K/V are never repeated: a block of q rows (B, rows, N, Dh) is regrouped to
(B, K, rows*R, Dh), so each KV head's R query heads meet it in one matrix product (np.matmul batched over B
and K); key/value-side memory grows with K, not N.

Forward, per query row i (one query head, one position), keys j:

    u_ij = scale * q_i . k_j                 scale = 1/sqrt(Dh) by default
    s_ij = c * tanh(u_ij / c)                only with softcap=c (Gemma 2), else s_ij = u_ij
    s_ij = -inf where key j is masked        (masks: see refimpl/masks.py)
    lse_i = log sum_j exp(s_ij)              stably: m_i + log sum_j exp(s_ij - m_i), m_i = max_j s_ij
    p_ij = exp(s_ij - lse_i),  o_i = sum_j p_ij v_j

Backward (dO given), with D_i = dO_i . o_i (= sum_j p_ij dP_ij):

    dP_ij = dO_i . v_j,   dS_ij = p_ij (dP_ij - D_i),   dU_ij = dS_ij (1 - tanh^2(u_ij / c))  [softcap]
    dq_i = scale sum_j dU_ij k_j,   dk_j = scale sum_i dU_ij q_i,   dv_j = sum_i p_ij dO_i

where the sums over i for dk and dv run over the R query heads of the KV head's group (and all positions).

A fully masked row (no visible key) gives o_i = 0, lse_i = -inf and zero gradients, never NaN.

Blocking (as FlashAttention, Dao et al. 2022): queries are processed in blocks of rows; each block is scored
only against the key interval [lo, hi) that holds its visible keys (refimpl.masks.key_range), which halves
the work of a causal T = S forward, and the score block (about _SCORE_BLOCK_ELEMENTS = 2^21 floats, 16 MiB)
is the only score-sized temporary. The cache
stores q, k, v, the output and the log-sum-exp; the probabilities are *recomputed* block by block in
backward from lse (one extra matrix product instead of storing B*N*T*S floats).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import float_array
from .masks import check_kv_lengths, check_window, key_range, query_positions, visible_keys

# Rows per query block: as many as keep one score block (B, K, rows * R, S) near this many float64 elements.
_SCORE_BLOCK_ELEMENTS = 1 << 21


class AttentionCache(NamedTuple):
    """What backward needs. Stores q, k, v, out and lse (no copies); recomputes the probabilities.

    ``lse`` is the public log-sum-exp of each query row, shape (B, T, N), -inf for fully masked rows.
    """

    q: np.ndarray  # (B, T, N, Dh)
    k: np.ndarray  # (B, S, K, Dh)
    v: np.ndarray  # (B, S, K, Dh)
    out: np.ndarray  # (B, T, N, Dh)
    lse: np.ndarray  # (B, T, N)
    causal: bool
    kv_lengths: np.ndarray | None  # (B,) int64
    window: int | None
    softcap: float | None
    scale: float


def _positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


def check_qkv(q, k, v, *, as_array=float_array) -> tuple:
    """Validate q (B, T, N, Dh), k and v (B, S, K, Dh) of one floating dtype with N % K == 0; return them
    converted by ``as_array`` (float64 here; the JAX port passes its dtype-keeping converter)."""
    converted = tuple(as_array(name, arr) for name, arr in (("q", q), ("k", k), ("v", v)))  # float arrays
    for name, arr in (("q", q), ("k", k), ("v", v)):
        if arr.ndim != 4:
            layout = "(B, T, N, Dh)" if name == "q" else "(B, S, K, Dh)"
            raise ValueError(f"{name} must have 4 dimensions {layout}; got shape {tuple(arr.shape)}")
        if 0 in arr.shape:
            raise ValueError(f"{name} must have no zero-sized dimension; got shape {tuple(arr.shape)}")
    for name, arr in (("k", k), ("v", v)):
        if arr.dtype != q.dtype:
            raise ValueError(f"{name} must have q's dtype {q.dtype}; got {arr.dtype}")
    batch, _, n_heads, head_dim = q.shape
    if k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(f"k must have shape (B={batch}, S, K, Dh={head_dim}) to match q; got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have k's shape {tuple(k.shape)}; got {tuple(v.shape)}")
    if n_heads % k.shape[2]:
        raise ValueError(
            f"k has K={k.shape[2]} heads, which must divide q's N={n_heads} heads (N % K == 0); q {tuple(q.shape)}"
        )
    return converted


def check_options(causal, window, softcap, scale, head_dim: int) -> tuple:
    """Validate the static options; return (causal, window, softcap, scale), scale defaulting to 1/sqrt(Dh)."""
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be a bool; got {causal!r}")
    window = check_window(window)
    softcap = None if softcap is None else _positive_float("softcap", softcap)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else _positive_float("scale", scale)
    return bool(causal), window, softcap, scale


def _block_rows(batch: int, n_heads: int, n_keys: int, n_queries: int) -> int:
    return max(1, min(n_queries, _SCORE_BLOCK_ELEMENTS // (batch * n_heads * n_keys)))


def _grouped_rows(x_block: np.ndarray, factor: float | None = None) -> np.ndarray:
    """(B, rows, K, R, Dh) view -> contiguous (B, K, rows*R, Dh) copy (times ``factor``): one KV head's
    R query heads over the block's rows become one matrix, so each group is one matrix product."""
    batch, rows, n_kv, n_groups, head_dim = x_block.shape
    grouped = np.empty((batch, n_kv, rows, n_groups, head_dim))  # (B, K, rows, R, Dh)
    source = x_block.transpose(0, 2, 1, 3, 4)  # (B, K, rows, R, Dh) view
    if factor is None:
        np.copyto(grouped, source)
    else:
        np.multiply(source, factor, out=grouped)
    return grouped.reshape(batch, n_kv, rows * n_groups, head_dim)  # (B, K, rows*R, Dh) view


def _ungroup_into(dest_block: np.ndarray, grouped: np.ndarray, factor: float | None = None) -> None:
    """Write (B, K, rows*R, Dh) back into a (B, rows, K, R, Dh) view (times ``factor``): the inverse."""
    batch, rows, n_kv, n_groups, head_dim = dest_block.shape
    source = grouped.reshape(batch, n_kv, rows, n_groups, head_dim).transpose(0, 2, 1, 3, 4)  # view
    if factor is None:
        np.copyto(dest_block, source)
    else:
        np.multiply(source, factor, out=dest_block)


def _block_scores(q_block, k_heads, lo, hi, softcap):
    """Capped scores s = c*tanh(q.k / c) of a query block against keys [lo, hi) (q already scaled).

    Returns (s, t) with t = tanh(u / c) (None without softcap), both (B, K, rows*R, hi-lo).
    """
    s = q_block @ k_heads[:, :, lo:hi].swapaxes(-1, -2)  # (B, K, rows*R, Sb)
    if softcap is None:
        return s, None
    s /= softcap
    t = np.tanh(s, out=s)  # (B, K, rows*R, Sb) in place: s now holds tanh(u / c)
    return t * softcap, t  # (B, K, rows*R, Sb)


def _mask_block(s, q_pos_block, lo, hi, lengths, causal, window, n_groups):
    """Set masked scores of the block to -inf in place."""
    key_idx = np.arange(lo, hi)  # (Sb,)
    visible = visible_keys(q_pos_block, key_idx, lengths, causal=causal, window=window)  # (B|1, rows, Sb)
    if visible is not None and not visible.all():
        batch, n_kv, _, width = s.shape
        s5 = s.reshape(batch, n_kv, q_pos_block.shape[1], n_groups, width)  # (B, K, rows, R, Sb) view
        np.copyto(s5, -np.inf, where=~visible[:, None, :, None, :])


def attention_forward(q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None):
    """Grouped-query attention o = softmax(mask(cap(scale * q k^T))) v. Returns (out, cache).

    q: (B, T, N, Dh); k, v: (B, S, K, Dh) with N % K == 0, all of one floating dtype (computed in float64).
    causal: bottom-right aligned (query t at position L_b - T + t); kv_lengths: (B,) ints in [0, S], keys
    j >= kv_lengths[b] are padding; window: key j visible iff q_pos - window < j (see refimpl.masks for the
    exact rule); softcap: c > 0 applies c * tanh(s / c) before masking; scale: default 1/sqrt(Dh).

    out: (B, T, N, Dh) float64. The log-sum-exp of each row is ``cache.lse``, shape (B, T, N), -inf for a
    fully masked row (whose output is 0). There is no ``return_lse`` argument: read it from the cache.
    """
    q, k, v = check_qkv(q, k, v)
    batch, n_queries, n_heads, head_dim = q.shape
    n_keys, n_kv = k.shape[1], k.shape[2]
    n_groups = n_heads // n_kv
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, head_dim)
    lengths = check_kv_lengths(kv_lengths, batch, n_keys)

    q_rows = q.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    k_heads = k.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view, no copy
    v_heads = v.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view, no copy
    out = np.zeros((batch, n_queries, n_heads, head_dim))  # (B, T, N, Dh)
    lse = np.full((batch, n_queries, n_heads), -np.inf)  # (B, T, N)
    out_rows = out.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    lse_rows = lse.reshape(batch, n_queries, n_kv, n_groups, 1)  # (B, T, K, R, 1) view
    q_pos = query_positions(n_queries, n_keys, lengths)  # (B|1, T)
    rows = _block_rows(batch, n_heads, n_keys, n_queries)
    for t0 in range(0, n_queries, rows):
        t1 = min(n_queries, t0 + rows)
        lo, hi = key_range(q_pos[:, t0:t1], n_keys, lengths, causal=causal, window=window)
        if hi <= lo:
            continue  # every query of the block is fully masked: output 0, lse -inf
        q_block = _grouped_rows(q_rows[:, t0:t1], scale)  # (B, K, rows*R, Dh) scaled
        s, _ = _block_scores(q_block, k_heads, lo, hi, softcap)  # (B, K, rows*R, Sb)
        _mask_block(s, q_pos[:, t0:t1], lo, hi, lengths, causal, window, n_groups)
        row_max = s.max(axis=-1)  # (B, K, rows*R)
        row_max[row_max == -np.inf] = 0.0  # fully masked rows: exp(-inf - 0) = 0, no inf - inf
        s -= row_max[..., None]
        p = np.exp(s, out=s)  # (B, K, rows*R, Sb) unnormalised
        denom = p.sum(axis=-1)  # (B, K, rows*R); >= 1 unless the row is fully masked
        has_keys = denom > 0  # (B, K, rows*R)
        denom[~has_keys] = 1.0
        o = p @ v_heads[:, :, lo:hi]  # (B, K, rows*R, Dh)
        o /= denom[..., None]
        _ungroup_into(out_rows[:, t0:t1], o)
        lse_block = np.where(has_keys, row_max + np.log(denom), -np.inf)  # (B, K, rows*R)
        _ungroup_into(lse_rows[:, t0:t1], lse_block[..., None])
        del s, p  # free the score block before the next one is allocated (halves the peak)
    return out, AttentionCache(q, k, v, out, lse, causal, lengths, window, softcap, scale)


def attention_backward(dout, cache: AttentionCache) -> dict:
    """Gradients of <dout, out>: {"q": (B, T, N, Dh), "k": (B, S, K, Dh), "v": (B, S, K, Dh)}, float64."""
    if not isinstance(cache, AttentionCache):
        raise ValueError(f"cache must be attention_forward's AttentionCache; got {type(cache).__name__}")
    dout = float_array("dout", dout)
    if dout.shape != cache.out.shape:
        raise ValueError(f"dout must have the output's shape {cache.out.shape}; got {dout.shape}")
    batch, n_queries, n_heads, head_dim = cache.q.shape
    n_keys, n_kv = cache.k.shape[1], cache.k.shape[2]
    n_groups = n_heads // n_kv
    causal, lengths, window, softcap = cache.causal, cache.kv_lengths, cache.window, cache.softcap
    scale = cache.scale

    q_rows = cache.q.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    dout_rows = dout.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    delta = np.einsum("btnd,btnd->btn", dout, cache.out)  # (B, T, N) D_i = dO_i . o_i
    delta_rows = delta.reshape(batch, n_queries, n_kv, n_groups, 1)  # (B, T, K, R, 1) view
    lse_rows = cache.lse.reshape(batch, n_queries, n_kv, n_groups, 1)  # (B, T, K, R, 1) view
    k_heads = cache.k.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view
    v_heads = cache.v.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view
    dq = np.zeros((batch, n_queries, n_heads, head_dim))  # (B, T, N, Dh)
    dk = np.zeros((batch, n_keys, n_kv, head_dim))  # (B, S, K, Dh)
    dv = np.zeros((batch, n_keys, n_kv, head_dim))  # (B, S, K, Dh)
    dq_rows = dq.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    dk_heads, dv_heads = dk.transpose(0, 2, 1, 3), dv.transpose(0, 2, 1, 3)  # (B, K, S, Dh) views
    q_pos = query_positions(n_queries, n_keys, lengths)  # (B|1, T)
    rows = _block_rows(batch, n_heads, n_keys, n_queries)
    for t0 in range(0, n_queries, rows):
        t1 = min(n_queries, t0 + rows)
        lo, hi = key_range(q_pos[:, t0:t1], n_keys, lengths, causal=causal, window=window)
        if hi <= lo:
            continue  # fully masked block: zero gradients
        q_block = _grouped_rows(q_rows[:, t0:t1], scale)  # (B, K, rows*R, Dh) scaled
        dout_block = _grouped_rows(dout_rows[:, t0:t1])  # (B, K, rows*R, Dh)
        s, tanh_u = _block_scores(q_block, k_heads, lo, hi, softcap)  # (B, K, rows*R, Sb)
        _mask_block(s, q_pos[:, t0:t1], lo, hi, lengths, causal, window, n_groups)
        lse_block = _grouped_rows(lse_rows[:, t0:t1])  # (B, K, rows*R, 1)
        # fully masked rows: every s is -inf, so p = exp(-inf - 0) = 0 (no -inf - -inf)
        lse_block[lse_block == -np.inf] = 0.0
        s -= lse_block
        p = np.exp(s, out=s)  # (B, K, rows*R, Sb) probabilities, recomputed
        dv_heads[:, :, lo:hi] += p.swapaxes(-1, -2) @ dout_block
        ds = dout_block @ v_heads[:, :, lo:hi].swapaxes(-1, -2)  # (B, K, rows*R, Sb) dP
        ds -= _grouped_rows(delta_rows[:, t0:t1])
        ds *= p  # dS = p (dP - D)
        if softcap is not None:
            np.multiply(tanh_u, tanh_u, out=tanh_u)
            np.subtract(1.0, tanh_u, out=tanh_u)
            ds *= tanh_u  # dU = dS (1 - tanh^2(u / c))
        _ungroup_into(dq_rows[:, t0:t1], ds @ k_heads[:, :, lo:hi], scale)
        dk_heads[:, :, lo:hi] += ds.swapaxes(-1, -2) @ q_block  # q_block carries the scale already
        del s, p, ds, tanh_u  # free the score-sized blocks before the next ones are allocated
    return {"q": dq, "k": dk, "v": dv}
