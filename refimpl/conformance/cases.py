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
              2 <= |a| <= 2.7, where erf and tanh GELU differ most (up to 4.7e-4: visible in fp32);
              swiglu_oss: scaled by 3.5, so ~2% of gates and ~5% of ups pass gpt-oss's clamp at 7.
    decode    one token, x (1, 1, D): the matrix-vector path of a kernel.
Attention cases are in cases_attention.py, MoE cases in cases_moe.py.

Sizes are bounded before anything is allocated: a case whose arrays (inputs, golden results and the
baseline's intermediates) would need more than MAX_CASE_BYTES (2 GiB) is a ValueError saying so.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import choice, flag, positive_int
from ..activations import GELU_APPROXIMATIONS
from ..ffn import ffn_backward, ffn_forward, ffn_options, init_ffn_params
from ..variants import get_variant
from .baseline import naive_ffn
from .dtypes import NumberFormat, cast, round_to
from .policy import comparable

FFN_KINDS = ("random", "act-tail", "decode")
_ACT_TAIL_STD = 2.35  # pre-activation std putting ~14% of values in 2 <= |a| <= 2.7
_CLAMP_TAIL_STD = 3.5  # swiglu_oss: 7 / 3.5 = 2 std, so ~2% of gates exceed gpt-oss's limit of 7
MAX_CASE_BYTES = 2**31  # the most memory one case may need (inputs, golden results, baseline intermediates)
_FLOAT_BYTES = 8


def tail_std(opts: dict) -> float:
    """The act-tail kind's input scale: GELU's erf/tanh band, or swiglu_oss's clamps."""
    return _CLAMP_TAIL_STD if "limit" in opts else _ACT_TAIL_STD


def check_case_size(n_floats: int, what: str) -> None:
    """ValueError when a case would need more than MAX_CASE_BYTES (n_floats: float64 values, estimated)."""
    if n_floats * _FLOAT_BYTES > MAX_CASE_BYTES:
        raise ValueError(
            f"{what} would need about {n_floats * _FLOAT_BYTES:.3g} bytes per case; the conformance kit's bound "
            f"is {MAX_CASE_BYTES} bytes (2 GiB, refimpl.conformance.cases.MAX_CASE_BYTES): use smaller sizes"
        )


class AttentionSpec(NamedTuple):
    """What an attention candidate is asked to compute besides q, k, v (mask already resolved)."""

    causal: bool  # bottom-right aligned: query t sits at position L_b - T + t
    scale: float  # multiplies q.k (1/sqrt(Dh) by default)
    kv_lengths: np.ndarray | None  # (B,) int64: keys j >= kv_lengths[b] are padding; None = all S valid
    mask: np.ndarray  # (B, T, S) bool, True where key j is visible to query t (causal and padding applied)
    window: int | None = None  # sliding window (refimpl.masks), already applied in mask
    softcap: float | None = None  # scores s -> c tanh(s / c) before masking (Gemma 2)
    sinks: np.ndarray | None = None  # (N,) sink logits in the candidate's dtype (gpt-oss), or None


class FFNSpec(NamedTuple):
    """What an FFN candidate is asked to compute (the options check_ffn was given, defaults resolved)."""

    variant: str  # refimpl.FFN_VARIANTS
    gelu: str = "erf"
    options: tuple = ()  # ((name, value), ...): swiglu_oss's alpha and limit


class MoESpec(NamedTuple):
    """What an MoE candidate is asked to compute (the options check_moe was given, defaults resolved)."""

    variant: str  # the experts' FFN variant (refimpl.FFN_VARIANTS)
    top_k: int
    routing: str  # "softmax_topk" | "topk_softmax" (refimpl.router)
    normalize: bool  # softmax_topk: renormalise the k weights to sum 1
    gelu: str = "erf"
    options: tuple = ()  # ((name, value), ...): swiglu_oss's alpha and limit


class Case(NamedTuple):
    name: str  # "<kind>.s<seed>", e.g. "chunk.s1"
    inputs: dict  # input name -> array in the candidate's dtype ("x", "w_*" / "q", "k", "v")
    douts: dict  # output name -> upstream gradient in the candidate's dtype ({} when forward only)
    golden: dict  # tensor -> float64 ("y", "dx", "dw_*" / "out", "lse", "dq", "dk", "dv", "dsinks")
    baseline_max: dict  # tensor -> max |base - gold| (inf where the baseline is not finite)
    baseline_mean: dict  # tensor -> mean |base - gold| over finite gold (inf likewise)
    spec: FFNSpec | AttentionSpec | MoESpec


def baseline_errors(golden: dict, base: dict, fmt: NumberFormat) -> tuple[dict, dict]:
    """Max and mean |base - gold| per tensor where gold is comparable (policy.comparable); inf when base is not
    finite there."""
    worst, mean = {}, {}
    for name, gold in golden.items():
        finite = comparable(gold, fmt)  # gold's shape
        if not np.isfinite(base[name][finite]).all():
            worst[name] = mean[name] = float("inf")
            continue
        err = np.abs(base[name][finite] - gold[finite])  # (n_finite,)
        worst[name] = float(np.max(err, initial=0.0))
        mean[name] = float(np.mean(err)) if err.size else 0.0
    return worst, mean


def kind_of(case_name: str) -> str:
    """"chunk.s1" -> "chunk"."""
    return case_name.rsplit(".s", 1)[0]


def pool_baselines(cases: list) -> list:
    """The cases with each baseline error replaced by the largest over the seeds of its case kind.

    The seeds of a kind draw the same computation anew, so the worst of them is a steadier yardstick than any
    one: on a small tensor (a one-token decode's router gradient holds a handful of rounded dot products) one
    draw's baseline can be lucky by a factor of several (policy.py)."""
    worst: dict = {}
    for c in cases:
        for part, errors in (("max", c.baseline_max), ("mean", c.baseline_mean)):
            for t, e in errors.items():
                key = (kind_of(c.name), part, t)
                worst[key] = max(worst.get(key, 0.0), e)
    return [c._replace(baseline_max={t: worst[(kind_of(c.name), "max", t)] for t in c.baseline_max},
                       baseline_mean={t: worst[(kind_of(c.name), "mean", t)] for t in c.baseline_mean})
            for c in cases]  # fmt: skip


def check_seeds(seeds) -> tuple[int, ...]:
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
    bias: bool = False,
    alpha=None,
    limit=None,
) -> list[Case]:
    """The FFN cases (kinds FFN_KINDS, one per seed each) for ``variant`` in format ``fmt``.

    ``bias``: every matrix gets a bias (gpt-oss's experts have all of them); ``alpha``, ``limit``:
    swiglu_oss's options (None: gpt-oss's 1.702 and 7.0; other variants refuse them).
    """
    v = get_variant(variant)
    opts = ffn_options(v, alpha=alpha, limit=limit)
    d_model, d_ff, n_tokens = (
        positive_int(n, x) for n, x in (("d_model", d_model), ("d_ff", d_ff), ("n_tokens", n_tokens))
    )
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    bias, backward = flag("bias", bias), flag("backward", backward)
    check_case_size(12 * n_tokens * (d_model + d_ff) + 8 * d_model * d_ff, f"an FFN case of D={d_model}, "
                    f"F={d_ff}, T={n_tokens}")  # fmt: skip
    spec = FFNSpec(v.name, gelu, tuple(opts.items()))
    cases = []
    for seed in check_seeds(seeds):
        for idx, kind in enumerate(FFN_KINDS):
            rng = np.random.default_rng([seed, idx])
            tokens = 1 if kind == "decode" else n_tokens
            x = rng.standard_normal((1, tokens, d_model))  # (1, T, D)
            if kind == "act-tail":
                x *= tail_std(opts)
            params = init_ffn_params(rng, d_model, d_ff, v.name, bias=bias)
            params = {k: round_to(w, fmt) for k, w in params.items()}
            x = round_to(x, fmt)  # (1, T, D)
            dy = round_to(rng.standard_normal(x.shape), fmt) if backward else None  # (1, T, D)
            y, cache = ffn_forward(x, params, v.name, gelu=gelu, **opts)
            golden = {"y": y}
            if backward:
                golden.update({"d" + k: g for k, g in ffn_backward(dy, cache).items()})
            base = naive_ffn(x, params, v.name, fmt, dy=dy, gelu=gelu, **opts)
            worst, mean = baseline_errors(golden, base, fmt)
            inputs = {"x": cast(x, fmt), **{k: cast(w, fmt) for k, w in params.items()}}
            douts = {"y": cast(dy, fmt)} if backward else {}
            cases.append(Case(f"{kind}.s{seed}", inputs, douts, golden, worst, mean, spec))
    return cases
