"""The test cases the kit feeds a candidate: inputs in its format, golden results, the baseline's errors.

Every case follows steps 1-3 of the rule (policy.py): inputs drawn in float64 (weights with std
1/sqrt(fan_in), activations and upstream gradients N(0, 1)), rounded to the candidate's format; golden
outputs and gradients in float64 by the reference (refimpl.ffn / refimpl.attention) from those *rounded*
inputs; the naive same-format baseline (baseline.py) run on the same inputs, its max and mean errors kept.
Each case kind runs once per seed, with ``numpy.random.default_rng([seed, kind index])``.

FFN kinds (x is (B, T, D); sizes default to 113 tokens and d_ff 203, not multiples of any block size):
    random    x (1, T, D) ~ N(0, 1). w_gate and w_up are independent, so a [gate; up] / [up; gate]
              packing swap changes the result by O(1) (for every gated variant but the symmetric bilinear).
    act-tail  x scaled by 2.35, so the pre-activations have std 2.35 and ~14% of them lie in
              2 <= |a| <= 2.7, where erf and tanh GELU differ most (up to 4.7e-4: visible in fp32).
    decode    one token, x (1, 1, D): the matrix-vector path of a kernel.

Attention kinds (q (B, T, N, Dh), k and v (B, S, K, Dh); S = seq_len, default 113, B = batch, default 2):
    prefill   T = S.
    chunk     T = S // 3 (37) queries against S keys: top-left causal alignment fails (ours: bottom-right).
    decode    T = 1 against S keys (under causal, top-left would show it one key instead of all).
    padded    T = S // 3 with kv_lengths = [S, T // 2] (causal: the first T - T // 2 query rows of batch row 1
              see no key) or [S, 0] (not causal: batch row 1 is fully masked). Fully masked rows must give
              output 0 and zero gradients.
    ortho-v   T = S = S // 3 with each KV head's values along its own orthonormal direction (plus 10% noise),
              so every query head's output points at its KV head's direction: a strided head map
              (n -> n % K instead of n // R) is off by O(1) in every element. Needs Dh >= K.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import positive_int
from ..activations import GELU_APPROXIMATIONS
from ..ffn import ffn_backward, ffn_forward, init_ffn_params
from ..variants import PAPER_VARIANTS, get_variant
from .baseline import naive_attention, naive_ffn
from .dtypes import NumberFormat, cast, round_to

FFN_KINDS = ("random", "act-tail", "decode")
ATTENTION_KINDS = ("prefill", "chunk", "decode", "padded", "ortho-v")
_ACT_TAIL_STD = 2.35  # pre-activation std putting ~14% of values in 2 <= |a| <= 2.7
_ORTHO_NOISE = 0.1


class AttentionSpec(NamedTuple):
    """What an attention candidate is asked to compute besides q, k, v (mask already resolved)."""

    causal: bool  # bottom-right aligned: query t sits at position L_b - T + t
    scale: float  # multiplies q.k (1/sqrt(Dh) by default)
    kv_lengths: np.ndarray | None  # (B,) int64: keys j >= kv_lengths[b] are padding; None = all S valid
    mask: np.ndarray  # (B, T, S) bool, True where key j is visible to query t (causal and padding applied)
    window: int | None = None  # sliding window (refimpl.masks), already applied in mask
    softcap: float | None = None  # scores s -> c tanh(s / c) before masking (Gemma 2)


class Case(NamedTuple):
    name: str  # "<kind>.s<seed>", e.g. "chunk.s1"
    inputs: dict  # input name -> array in the candidate's dtype ("x", "w_*" / "q", "k", "v")
    douts: dict  # output name -> upstream gradient in the candidate's dtype ({} when forward only)
    golden: dict  # tensor -> float64 ("y", "dx", "dw_*" / "out", "lse", "dq", "dk", "dv")
    baseline_max: dict  # tensor -> max |base - gold|
    baseline_mean: dict  # tensor -> mean |base - gold| over finite gold
    spec: AttentionSpec | None  # attention only


def _errors(golden: dict, base: dict) -> tuple[dict, dict]:
    worst, mean = {}, {}
    for name, gold in golden.items():
        finite = np.isfinite(gold)  # gold's shape
        err = np.abs(base[name][finite] - gold[finite])  # (n_finite,)
        worst[name] = float(np.max(err, initial=0.0))
        mean[name] = float(np.mean(err)) if err.size else 0.0
    return worst, mean


def _seeds(seeds) -> tuple[int, ...]:
    seeds = tuple(seeds) if isinstance(seeds, (list, tuple, range)) else (seeds,)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of non-negative ints; got {seeds!r}")
    return tuple(int(s) for s in seeds)


def ffn_cases(
    variant: str,
    fmt: NumberFormat,
    *,
    d_model: int,
    d_ff: int,
    n_tokens: int,
    seeds,
    gelu: str = "erf",
    backward: bool = True,
) -> list[Case]:
    """The FFN cases (kinds FFN_KINDS, one per seed each) for ``variant`` in format ``fmt``."""
    v = get_variant(variant)
    if not v.paper:  # the naive baseline knows the paper's eight formulas only
        raise ValueError(f"variant {v.name!r} is not covered by the conformance kit yet; it covers "
                         f"{', '.join(PAPER_VARIANTS)}")  # fmt: skip
    d_model, d_ff, n_tokens = (
        positive_int(n, x) for n, x in (("d_model", d_model), ("d_ff", d_ff), ("n_tokens", n_tokens))
    )
    if gelu not in GELU_APPROXIMATIONS:
        raise ValueError(f"gelu must be one of {GELU_APPROXIMATIONS}; got {gelu!r}")
    cases = []
    for seed in _seeds(seeds):
        for idx, kind in enumerate(FFN_KINDS):
            rng = np.random.default_rng([seed, idx])
            tokens = 1 if kind == "decode" else n_tokens
            x = rng.standard_normal((1, tokens, d_model))  # (1, T, D)
            if kind == "act-tail":
                x *= _ACT_TAIL_STD
            params = {k: round_to(w, fmt) for k, w in init_ffn_params(rng, d_model, d_ff, v.name).items()}
            x = round_to(x, fmt)  # (1, T, D)
            dy = round_to(rng.standard_normal(x.shape), fmt) if backward else None  # (1, T, D)
            y, cache = ffn_forward(x, params, v.name, gelu=gelu)
            golden = {"y": y}
            if backward:
                golden.update({"d" + k: g for k, g in ffn_backward(dy, cache).items()})
            base = naive_ffn(x, params, v.name, fmt, dy=dy, gelu=gelu)
            worst, mean = _errors(golden, base)
            inputs = {"x": cast(x, fmt), **{k: cast(w, fmt) for k, w in params.items()}}
            douts = {"y": cast(dy, fmt)} if backward else {}
            cases.append(Case(f"{kind}.s{seed}", inputs, douts, golden, worst, mean, None))
    return cases


def _attention_shapes(kind: str, seq_len: int, causal: bool) -> tuple[int, int, list | None]:
    """(T, S, kv_lengths) of a case kind."""
    chunk = max(1, seq_len // 3)
    if kind == "prefill":
        return seq_len, seq_len, None
    if kind == "chunk":
        return chunk, seq_len, None
    if kind == "decode":
        return 1, seq_len, None
    if kind == "padded":
        return chunk, seq_len, [seq_len, chunk // 2 if causal else 0]
    return chunk, chunk, None  # ortho-v


def _ortho_values(rng, batch: int, n_keys: int, n_kv: int, head_dim: int) -> np.ndarray:
    """v[b, s, g] = sqrt(Dh) u_g + noise with u_g orthonormal: each KV head's values point its own way."""
    basis, _ = np.linalg.qr(rng.standard_normal((head_dim, head_dim)))  # (Dh, Dh) orthogonal
    directions = math.sqrt(head_dim) * basis[:, :n_kv].T  # (K, Dh) rows orthogonal, entries O(1)
    noise = _ORTHO_NOISE * rng.standard_normal((batch, n_keys, n_kv, head_dim))  # (B, S, K, Dh)
    return directions[None, None] + noise  # (B, S, K, Dh)


def attention_cases(
    fmt: NumberFormat,
    *,
    n_heads: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int,
    causal: bool,
    seeds,
    scale=None,
    window=None,
    softcap=None,
    backward: bool = True,
) -> list[Case]:
    """The attention cases (kinds ATTENTION_KINDS, one per seed each) in format ``fmt``."""
    from ..attention import attention_backward, attention_forward
    from ..masks import attention_mask

    n_heads, n_kv_heads, head_dim = (
        positive_int(n, x)
        for n, x in (("n_heads", n_heads), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim))
    )
    seq_len, batch = positive_int("seq_len", seq_len), positive_int("batch", batch)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads must divide n_heads={n_heads}; got {n_kv_heads}")
    if seq_len < 4:
        raise ValueError(
            f"seq_len must be at least 4 (so that T = seq_len // 3 differs from S); got {seq_len}"
        )
    if batch < 2:
        raise ValueError(f"batch must be at least 2 (the padded case pads batch row 1); got {batch}")
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be a bool; got {causal!r}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    cases = []
    for seed in _seeds(seeds):
        for idx, kind in enumerate(ATTENTION_KINDS):
            if kind == "ortho-v" and head_dim < n_kv_heads:
                continue  # no K orthogonal directions in Dh < K dimensions
            rng = np.random.default_rng([seed, idx])
            n_q, n_k, lengths = _attention_shapes(kind, seq_len, bool(causal))
            q = round_to(rng.standard_normal((batch, n_q, n_heads, head_dim)), fmt)  # (B, T, N, Dh)
            k = round_to(rng.standard_normal((batch, n_k, n_kv_heads, head_dim)), fmt)  # (B, S, K, Dh)
            if kind == "ortho-v":
                v = round_to(_ortho_values(rng, batch, n_k, n_kv_heads, head_dim), fmt)  # (B, S, K, Dh)
            else:
                v = round_to(rng.standard_normal(k.shape), fmt)  # (B, S, K, Dh)
            dout = round_to(rng.standard_normal(q.shape), fmt) if backward else None  # (B, T, N, Dh)
            kv_lengths = None if lengths is None else np.array(lengths, dtype=np.int64)  # (B,)
            if kv_lengths is not None and batch > 2:
                kv_lengths = np.concatenate([kv_lengths, np.full(batch - 2, n_k, dtype=np.int64)])  # (B,)
            mask = attention_mask(
                n_q, n_k, causal=bool(causal), kv_lengths=kv_lengths, window=window, batch=batch
            )  # (B, T, S)
            spec = AttentionSpec(bool(causal), scale, kv_lengths, mask, window, softcap)
            out, cache = attention_forward(
                q,
                k,
                v,
                causal=bool(causal),
                kv_lengths=kv_lengths,
                window=window,
                softcap=softcap,
                scale=scale,
            )
            golden = {"out": out, "lse": cache.lse}
            if backward:
                golden.update({"d" + n: g for n, g in attention_backward(dout, cache).items()})
            base = naive_attention(q, k, v, mask, scale, fmt, dout=dout, softcap=softcap)
            worst, mean = _errors(golden, base)
            inputs = {"q": cast(q, fmt), "k": cast(k, fmt), "v": cast(v, fmt)}
            douts = {"out": cast(dout, fmt)} if backward else {}
            cases.append(Case(f"{kind}.s{seed}", inputs, douts, golden, worst, mean, spec))
    return cases
