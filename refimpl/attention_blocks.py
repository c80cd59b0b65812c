"""The block-level pieces of ``refimpl.attention``: regrouping queries per KV head, scores, masking, the
softmax of one query block, and the handling of non-finite inputs.

Shape legend: B batch, K key/value heads, R = N / K query heads per KV head, Dh head dim, rows the query rows
of one block, Sb the keys [lo, hi) the block is scored against. In a block every array is grouped per KV
head: (B, K, rows*R, ...), row index t*R + r is query t of the block, query head k*R + r.

Non-finite inputs. Values behind a mask never reach an output or a gradient: masked scores are replaced by
-inf by *selection* (np.copyto with where=), so their probability is exactly 0, and a masked key's value or
key vector meets only those exact zeros. 0 * NaN is NaN, though, so a block whose inputs hold a non-finite
number is recomputed on *cleaned* copies (non-finite entries replaced by 0, by selection) and the rule for
what a query can see is applied by selection afterwards (``poisoned_rows``):

    a query row is poisoned when it sees (has visible) a key whose k or v vector holds a non-finite entry,
    or when its own q vector holds one and it sees at least one key;
    a poisoned row's output and log-sum-exp are NaN, and it sends no gradient anywhere (its upstream
    gradient is dropped, as jax.grad of a where() does); every other row is computed exactly as if the
    garbage were absent.

The fast path needs no copy: a block is clean iff its q rows and keys [lo, hi) are finite (checked on the
operands, or on the raw scores q.k when those are fewer: a non-finite entry of q or k makes every score of
its row or column non-finite) and its output p @ v is finite (a non-finite v entry in [lo, hi) makes every
row's output non-finite: p = 0 gives NaN, p > 0 gives inf).
"""

from __future__ import annotations

import numpy as np


def block_rows(batch: int, n_heads: int, n_keys: int, n_queries: int, score_elements: int) -> int:
    """Rows per query block: as many as keep one score block (B, K, rows * R, S) near ``score_elements``."""
    return max(1, min(n_queries, score_elements // (batch * n_heads * n_keys)))


def grouped_rows(x_block: np.ndarray, factor: float | None = None) -> np.ndarray:
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


def ungroup_into(dest_block: np.ndarray, grouped: np.ndarray, factor: float | None = None) -> None:
    """Write (B, K, rows*R, Dh) back into a (B, rows, K, R, Dh) view (times ``factor``): the inverse."""
    batch, rows, n_kv, n_groups, head_dim = dest_block.shape
    source = grouped.reshape(batch, n_kv, rows, n_groups, head_dim).transpose(0, 2, 1, 3, 4)  # view
    if factor is None:
        np.copyto(dest_block, source)
    else:
        np.multiply(source, factor, out=dest_block)


def sink_rows(sinks: np.ndarray | None, n_kv: int, rows: int) -> np.ndarray | None:
    """The sink logit of each grouped row, (1, K, rows*R), from sinks (N,) (head k*R + r); None without."""
    if sinks is None:
        return None
    n_groups = sinks.size // n_kv
    z = np.broadcast_to(sinks.reshape(1, n_kv, 1, n_groups), (1, n_kv, rows, n_groups))  # (1, K, rows, R)
    return z.reshape(1, n_kv, rows * n_groups)  # (1, K, rows*R)


def scores(q_block, k_block, softcap):
    """Capped scores s = c*tanh(q.k / c) of a (scaled) query block against a key block.

    Returns (s, t, finite): s and t = tanh(u / c) (None without softcap) (B, K, rows*R, Sb), and whether
    the block's q and k are finite. Checked on whichever is smaller: the operands, or the raw products q.k
    (non-finite iff an operand entry is, or a product overflowed: then the cleaned recomputation, which
    changes nothing finite, is merely redundant).
    """
    s = q_block @ k_block.swapaxes(-1, -2)  # (B, K, rows*R, Sb)
    if s.size <= q_block.size + k_block.size:  # decode-shaped blocks: few scores, many keys
        finite = bool(np.isfinite(s).all())
    else:
        finite = bool(np.isfinite(q_block).all() and np.isfinite(k_block).all())
    if softcap is None:
        return s, None, finite
    s /= softcap
    t = np.tanh(s, out=s)  # (B, K, rows*R, Sb) in place: s now holds tanh(u / c)
    return t * softcap, t, finite  # (B, K, rows*R, Sb)


def fill_masked(x: np.ndarray, visible: np.ndarray | None, n_groups: int, value: float) -> None:
    """Set the masked entries of a contiguous grouped score-shaped block x (B, K, rows*R, Sb) to ``value``,
    in place, by selection; visible (B|1, rows, Sb) or None (nothing masked)."""
    if visible is None:
        return
    batch, n_kv, n_rows, width = x.shape
    x5 = x.reshape(batch, n_kv, n_rows // n_groups, n_groups, width)  # (B, K, rows, R, Sb) view
    np.copyto(x5, value, where=~visible[:, None, :, None, :])


def attend(q_block, k_block, v_block, visible, n_groups, softcap, sinks_block):
    """Softmax attention of one block: returns (o (B, K, rows*R, Dh), lse (B, K, rows*R), clean).

    Without sinks, m_i = max_j s_ij (0 for a fully masked row), lse_i = m_i + log sum_j exp(s_ij - m_i)
    (-inf for a fully masked row, whose output is 0). With sinks z, m_i = max(z, max_j s_ij) and the
    denominator gains exp(z - m_i): every row then has denominator >= 1, a fully masked row gives output 0
    and lse = z. ``clean`` is False when the block must be recomputed on cleaned inputs (see the module).
    """
    s, _, finite = scores(q_block, k_block, softcap)
    fill_masked(s, visible, n_groups, -np.inf)
    row_max = s.max(axis=-1)  # (B, K, rows*R)
    if sinks_block is None:
        row_max[row_max == -np.inf] = 0.0  # fully masked rows: exp(-inf - 0) = 0, no inf - inf
    else:
        np.maximum(row_max, sinks_block, out=row_max)
    s -= row_max[..., None]
    p = np.exp(s, out=s)  # (B, K, rows*R, Sb) unnormalised
    denom = p.sum(axis=-1)  # (B, K, rows*R); >= 1 unless the row is fully masked (and has no sink)
    if sinks_block is not None:
        denom += np.exp(sinks_block - row_max)  # the sink: in the denominator, no value
    has_mass = denom > 0  # (B, K, rows*R)
    denom[~has_mass] = 1.0
    o = p @ v_block  # (B, K, rows*R, Dh)
    o /= denom[..., None]
    lse = np.where(has_mass, row_max + np.log(denom), -np.inf)  # (B, K, rows*R)
    return o, lse, finite and bool(np.isfinite(o).all())


def cleaned(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x with non-finite entries replaced by 0, by selection; bad (...,) True where a vector (last axis)
    held a non-finite entry)."""
    finite = np.isfinite(x)  # same shape as x
    return np.where(finite, x, 0.0), ~finite.all(axis=-1)


def poisoned_rows(visible, q_bad, kv_bad, n_groups: int) -> np.ndarray:
    """(B, K, rows*R) True for rows that see a bad key, or hold a bad q and see any key (module docstring).

    visible (B|1, rows, Sb) or None (every key visible); q_bad (B, K, rows*R); kv_bad (B, K, Sb).
    """
    if visible is None:
        return q_bad | kv_bad.any(axis=-1)[..., None]  # (B, K, rows*R)
    seen = visible[:, None].astype(np.float64) @ kv_bad[..., None].astype(np.float64)  # (B, K, rows, 1) counts
    sees_bad = np.repeat(seen[..., 0] > 0, n_groups, axis=-1)  # (B, K, rows*R)
    has_keys = np.repeat(visible.any(axis=-1)[:, None], n_groups, axis=-1)  # (B|1, 1, rows*R)
    return (q_bad & has_keys) | sees_bad


def attend_cleaned(q_block, k_block, v_block, visible, softcap, sinks_block, n_groups):
    """``attend`` for a block holding non-finite inputs: computed on cleaned copies, poisoned rows NaN."""
    (q_c, q_bad), (k_c, k_bad), (v_c, v_bad) = cleaned(q_block), cleaned(k_block), cleaned(v_block)
    with np.errstate(over="ignore", invalid="ignore"):  # huge finite values may still overflow q.k
        o, lse, _ = attend(q_c, k_c, v_c, visible, n_groups, softcap, sinks_block)
    bad = poisoned_rows(visible, q_bad, k_bad | v_bad, n_groups)  # (B, K, rows*R)
    o[bad] = np.nan
    lse[bad] = np.nan
    return o, lse
