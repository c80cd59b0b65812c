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

Attention sinks (gpt-oss: one learned logit z_n per query head n, Transformers ``GptOssAttention.sinks``; the
softmax-with-an-extra-term idea of Xiao et al. 2023, arXiv:2309.17453, and Miller 2023's "off-by-one" softmax):
the sink joins each row's softmax denominator and carries no value,

    L_i = log(exp(z_n) + sum_j exp(s_ij)),   p_ij = exp(s_ij - L_i),   o_i = sum_j p_ij v_j,

and L_i is the returned lse. A fully masked row puts all its mass on the sink: o_i = 0, L_i = z_n.
Backward: the sink is one more key with score z_n and value 0, so the softmax backward of the extended row
applies unchanged. For a real key dS_ij = p_ij (dP_ij - D_i) with D_i = sum_j p_ij dP_ij + p_i,sink * 0 =
dO_i . o_i (the formulas above hold as they are, with the new p and L); for the sink column dP_i,sink =
dO_i . 0 = 0, so its score gradient is p_i,sink (0 - D_i), and z_n is shared by every row of head n:

    dz_n = -sum_i exp(z_n - L_i) D_i          (sum over batch rows and positions of head n)

(``tests/test_attention_sinks.py`` checks it against central differences).

Masked positions are excluded by selection; garbage (NaN, inf) in masked q, k or v slots never reaches an
output or a gradient, and the gradients of masked K/V slots are exactly 0. Non-finite values a query *can*
see make its output and lse NaN (refimpl/attention_blocks.py states the rule).

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

from . import attention_blocks as blk
from ._checks import float_array
from .masks import check_kv_lengths, check_window, clip_window, key_range, query_positions, visible_keys

# Rows per query block: as many as keep one score block (B, K, rows * R, S) near this many float64 elements.
_SCORE_BLOCK_ELEMENTS = 1 << 21


class AttentionCache(NamedTuple):
    """What backward needs. Stores q, k, v, out and lse (no copies); recomputes the probabilities.

    ``lse`` is the public log-sum-exp of each query row, shape (B, T, N): -inf for fully masked rows
    without sinks, the sink logit z_n with sinks; NaN for rows that see non-finite inputs.
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
    sinks: np.ndarray | None  # (N,) float64
    rows: int  # query rows per block (the backward uses the forward's blocks)
    nonfinite: bool  # some block held a non-finite input: the backward cleans every block


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


def check_sinks(sinks, n_heads: int, *, as_array=float_array, values=np.asarray):
    """Validate sinks: None, or a floating array (N,) of finite logits, returned converted by ``as_array``.

    A sink of -inf would be no sink at all: pass sinks=None. ``values(sinks)`` gives the values to check, or
    None when they are not known yet (the JAX port's traced arrays).
    """
    if sinks is None:
        return None
    arr = as_array("sinks", sinks, ndim=1)
    if tuple(arr.shape) != (n_heads,):
        raise ValueError(f"sinks must have shape (N={n_heads},), one logit per query head; got {tuple(arr.shape)}")
    concrete = values(sinks)
    if concrete is not None and not np.isfinite(np.asarray(concrete, dtype=np.float64)).all():
        raise ValueError("sinks must be finite logits (a sink of -inf is no sink: pass sinks=None)")
    return arr


def attention_forward(
    q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None, sinks=None
):  # fmt: skip
    """Grouped-query attention o = softmax(mask(cap(scale * q k^T))) v. Returns (out, cache).

    q: (B, T, N, Dh); k, v: (B, S, K, Dh) with N % K == 0, all of one floating dtype (computed in float64).
    causal: bottom-right aligned (query t at position L_b - T + t); kv_lengths: (B,) ints in [0, S], keys
    j >= kv_lengths[b] are padding; window: key j visible iff q_pos - window < j (see refimpl.masks for the
    exact rule; HF's sliding_window W is window=W); softcap: c > 0 applies c * tanh(s / c) before masking;
    scale: default 1/sqrt(Dh); sinks: None or (N,) finite logits, one per query head, added to each row's
    softmax denominator only (gpt-oss).

    out: (B, T, N, Dh) float64. The log-sum-exp of each row is ``cache.lse``, shape (B, T, N): -inf for a
    fully masked row (whose output is 0), or the sink logit z_n there with sinks. There is no
    ``return_lse`` argument: read it from the cache.
    """
    q, k, v = check_qkv(q, k, v)
    batch, n_queries, n_heads, head_dim = q.shape
    n_keys, n_kv = k.shape[1], k.shape[2]
    n_groups = n_heads // n_kv
    causal, window, softcap, scale = check_options(causal, window, softcap, scale, head_dim)
    lengths = check_kv_lengths(kv_lengths, batch, n_keys)
    sinks = check_sinks(sinks, n_heads)
    window = clip_window(window, n_keys)

    q_rows = q.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    k_heads = k.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view, no copy
    v_heads = v.transpose(0, 2, 1, 3)  # (B, K, S, Dh) view, no copy
    out = np.zeros((batch, n_queries, n_heads, head_dim))  # (B, T, N, Dh)
    lse = np.empty((batch, n_queries, n_heads))  # (B, T, N)
    lse[...] = -np.inf if sinks is None else sinks  # fully masked rows: -inf, or all mass on the sink
    out_rows = out.reshape(batch, n_queries, n_kv, n_groups, head_dim)  # (B, T, K, R, Dh) view
    lse_rows = lse.reshape(batch, n_queries, n_kv, n_groups, 1)  # (B, T, K, R, 1) view
    q_pos = query_positions(n_queries, n_keys, lengths)  # (B|1, T)
    rows = blk.block_rows(batch, n_heads, n_keys, n_queries, _SCORE_BLOCK_ELEMENTS)
    nonfinite = False
    for t0 in range(0, n_queries, rows):
        t1 = min(n_queries, t0 + rows)
        lo, hi = key_range(q_pos[:, t0:t1], n_keys, lengths, causal=causal, window=window)
        if hi <= lo:
            continue  # every query of the block is fully masked: output 0, lse -inf (or the sink)
        visible = _visible(q_pos[:, t0:t1], lo, hi, lengths, causal, window)  # (B|1, rows, Sb) or None
        q_block = blk.grouped_rows(q_rows[:, t0:t1], scale)  # (B, K, rows*R, Dh) scaled
        k_block, v_block = k_heads[:, :, lo:hi], v_heads[:, :, lo:hi]  # (B, K, Sb, Dh) views
        z = blk.sink_rows(sinks, n_kv, t1 - t0)  # (1, K, rows*R) or None
        with np.errstate(over="ignore", invalid="ignore"):  # only non-finite inputs trip these; redone below
            o, lse_block, clean = blk.attend(q_block, k_block, v_block, visible, n_groups, softcap, z)
        if not clean:
            nonfinite = True
            o, lse_block = blk.attend_cleaned(q_block, k_block, v_block, visible, softcap, z, n_groups)
        blk.ungroup_into(out_rows[:, t0:t1], o)
        blk.ungroup_into(lse_rows[:, t0:t1], lse_block[..., None])
    cache = AttentionCache(q, k, v, out, lse, causal, lengths, window, softcap, scale, sinks, rows, nonfinite)
    return out, cache


def _visible(q_pos_block, lo, hi, lengths, causal, window):
    """Visibility (B|1, rows, Sb) of keys [lo, hi) to the block's queries; None when every key is visible."""
    visible = visible_keys(q_pos_block, np.arange(lo, hi), lengths, causal=causal, window=window)
    return None if visible is None or visible.all() else visible


def attention_backward(dout, cache: AttentionCache) -> dict:
    """Gradients of <dout, out>: {"q": (B, T, N, Dh), "k": (B, S, K, Dh), "v": (B, S, K, Dh)} (+ "sinks" (N,)
    when the forward had sinks), float64. dout must be finite (an upstream gradient is never garbage)."""
    if not isinstance(cache, AttentionCache):
        raise ValueError(f"cache must be attention_forward's AttentionCache; got {type(cache).__name__}")
    dout = float_array("dout", dout)
    if dout.shape != cache.out.shape:
        raise ValueError(f"dout must have the output's shape {cache.out.shape}; got {dout.shape}")
    if not np.isfinite(dout).all():
        raise ValueError("dout must be finite")
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
    for t0 in range(0, n_queries, cache.rows):
        t1 = min(n_queries, t0 + cache.rows)
        lo, hi = key_range(q_pos[:, t0:t1], n_keys, lengths, causal=causal, window=window)
        if hi <= lo:
            continue  # fully masked block: zero gradients
        visible = _visible(q_pos[:, t0:t1], lo, hi, lengths, causal, window)  # (B|1, rows, Sb) or None
        q_block = blk.grouped_rows(q_rows[:, t0:t1], scale)  # (B, K, rows*R, Dh) scaled
        k_block, v_block = k_heads[:, :, lo:hi], v_heads[:, :, lo:hi]  # (B, K, Sb, Dh) views
        dout_block = blk.grouped_rows(dout_rows[:, t0:t1])  # (B, K, rows*R, Dh)
        lse_block = blk.grouped_rows(lse_rows[:, t0:t1])  # (B, K, rows*R, 1)
        delta_block = blk.grouped_rows(delta_rows[:, t0:t1])  # (B, K, rows*R, 1)
        if cache.nonfinite:  # clean the inputs; poisoned rows (NaN outputs) send no gradient
            (q_block, q_bad), (k_block, k_bad), (v_block, v_bad) = map(blk.cleaned, (q_block, k_block, v_block))
            bad = blk.poisoned_rows(visible, q_bad, k_bad | v_bad, n_groups)[..., None]  # (B, K, rows*R, 1)
            np.copyto(dout_block, 0.0, where=bad)
            np.copyto(delta_block, 0.0, where=bad)
            np.copyto(lse_block, np.inf, where=bad)  # p = exp(s - inf) = 0 on the row
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite garbage may overflow q.k (masked)
            s, tanh_u, _ = blk.scores(q_block, k_block, softcap)  # (B, K, rows*R, Sb)
        blk.fill_masked(s, visible, n_groups, -np.inf)
        lse_block[lse_block == -np.inf] = 0.0  # fully masked rows: every s is -inf, so p = exp(-inf - 0) = 0
        s -= lse_block
        p = np.exp(s, out=s)  # (B, K, rows*R, Sb) probabilities, recomputed
        dv_heads[:, :, lo:hi] += p.swapaxes(-1, -2) @ dout_block
        ds = dout_block @ v_block.swapaxes(-1, -2)  # (B, K, rows*R, Sb) dP
        ds -= delta_block
        ds *= p  # dS = p (dP - D)
        if softcap is not None:
            np.multiply(tanh_u, tanh_u, out=tanh_u)
            np.subtract(1.0, tanh_u, out=tanh_u)
            ds *= tanh_u  # dU = dS (1 - tanh^2(u / c))
        if cache.nonfinite:
            blk.fill_masked(ds, visible, n_groups, 0.0)  # 0 * (an overflowed dP or tanh) stays out
        blk.ungroup_into(dq_rows[:, t0:t1], ds @ k_block, scale)
        dk_heads[:, :, lo:hi] += ds.swapaxes(-1, -2) @ q_block  # q_block carries the scale already
        del s, p, ds, tanh_u  # free the score-sized blocks before the next ones are allocated
    grads = {"q": dq, "k": dk, "v": dv}
    if cache.sinks is not None:
        grads["sinks"] = _sinks_backward(cache.sinks, cache.lse, delta)
    return grads


def _sinks_backward(sinks: np.ndarray, lse: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """dz_n = -sum_{b, t} exp(z_n - L_btn) D_btn (module docstring), (N,); poisoned rows (lse NaN) send none.

    exp(z - L) <= 1 because L = log(exp(z) + ...) >= z: the sink's probability, no overflow.
    """
    live = ~np.isnan(lse)  # (B, T, N)
    weight = np.exp(np.where(live, sinks - np.where(live, lse, 0.0), -np.inf))  # (B, T, N) sink probability
    return -np.einsum("btn,btn->n", weight, np.where(live, delta, 0.0))  # (N,)
