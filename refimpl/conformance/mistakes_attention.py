"""The known attention mistakes' references: the output of attention computed under each mistake (mistakes.py).

Each function takes a case (cases_attention) and the candidate's output and returns a list of alternatives,
float64 (B, T, N, Dh); the diagnosis uses the one nearest the candidate. Shape legend as refimpl.attention.
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_forward
from ..masks import visible_keys
from .baseline import naive_attention
from .dtypes import number_format

_FP64 = number_format("fp64")


def inputs64(case) -> dict:
    """A case's inputs as float64 (the reference's and the mistaken references' operands)."""
    return {k: a.astype(np.float64) for k, a in case.inputs.items()}


def attend(case, mask: np.ndarray) -> np.ndarray:
    """The output of float64 attention (the baseline's formulas in fp64) with an explicit mask (B, T, S)."""
    spec, p = case.spec, inputs64(case)
    return naive_attention(p["q"], p["k"], p["v"], mask, spec.scale, _FP64, dout=None, softcap=spec.softcap,
                           sinks=p.get("sinks"))["out"]  # fmt: skip


def reference(case, **changes) -> np.ndarray:
    """refimpl.attention_forward's output on the case's inputs, with some options or inputs changed."""
    spec, p = case.spec, inputs64(case)
    kw = dict(q=p["q"], k=p["k"], v=p["v"], causal=spec.causal, kv_lengths=spec.kv_lengths, window=spec.window,
              softcap=spec.softcap, scale=spec.scale, sinks=p.get("sinks"))  # fmt: skip
    kw.update(changes)
    return attention_forward(**kw)[0]


def top_left(case, cand) -> list:
    """Causal mask aligned top-left (query t sees keys j <= t), with the padding mask and without it."""
    spec = case.spec
    batch, n_q, n_k = spec.mask.shape
    q_pos = np.broadcast_to(np.arange(n_q), (batch, n_q))  # (B, T) query t at position t
    masks = [visible_keys(q_pos, np.arange(n_k), lengths, causal=True, window=spec.window)
             for lengths in (spec.kv_lengths, None)]  # (B|1, T, S) each: with padding, and blind to it  # fmt: skip
    return [attend(case, np.broadcast_to(m, (batch, n_q, n_k))) for m in masks]


def tiled(case, cand) -> list:
    """Query head n reads KV head n % K (KV heads tiled h0, h1, h0, h1) instead of n // R."""
    p = inputs64(case)
    group = p["q"].shape[2] // p["k"].shape[2]
    return [reference(case, k=np.tile(p["k"], (1, 1, group, 1)), v=np.tile(p["v"], (1, 1, group, 1)))]


def sink_value(case, cand) -> list:
    """The sink carries a value c_n (per query head, fitted): out = gold + p_sink c_n, p_sink = exp(z - lse)."""
    gold, lse = case.golden["out"], case.golden["lse"]  # (B, T, N, Dh), (B, T, N)
    ok = np.isfinite(gold).all(axis=-1) & np.isfinite(cand).all(axis=-1)  # (B, T, N)
    p_sink = np.where(ok, np.exp(case.inputs["sinks"].astype(np.float64) - np.where(ok, lse, 0.0)), 0.0)  # (B, T, N)
    resid = np.where(ok[..., None], cand - gold, 0.0)  # (B, T, N, Dh)
    c = np.einsum("btn,btnd->nd", p_sink, resid) / np.maximum((p_sink**2).sum(axis=(0, 1)), 1e-300)[:, None]  # (N, Dh)
    return [gold + p_sink[..., None] * c]


def empty_rows(case, cand) -> list:
    """Fully masked rows give NaN (a plain softmax's 0/0) or the mean of V (uniform weights, as JAX)."""
    empty = ~case.spec.mask.any(axis=-1)  # (B, T)
    if not empty.any():
        return []
    gold, v = case.golden["out"], case.inputs["v"].astype(np.float64)  # (B, T, N, Dh), (B, S, K, Dh)
    group = gold.shape[2] // v.shape[2]
    mean_v = np.repeat(v.mean(axis=1), group, axis=1)[:, None]  # (B, 1, N, Dh) head n: KV head n // R
    rows = empty[:, :, None, None]  # (B, T, 1, 1)
    return [np.where(rows, np.nan, gold), np.where(rows, mean_v, gold)]


def sinks_ignored(case, cand) -> list:
    return [reference(case, sinks=None)]


def softcap_ignored(case, cand) -> list:
    return [reference(case, softcap=None)]
