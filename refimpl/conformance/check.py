"""Check a candidate FFN or attention implementation against the reference, in the candidate's own format.

Calling convention (all arrays are NumPy; inputs arrive in the candidate's dtype: numpy.float32 /
float16 / float64 or ml_dtypes.bfloat16 / float8_*; results may come back in any floating dtype):

FFN, ``check_ffn(fn, variant, *, dtype, backward=None, ...)``::

    fn(x, params) -> y                    x (B, T, D); params {"w_gate" (D, F) [gated only], "w_up" (D, F),
                                          "w_down" (F, D)} in LLaMA's naming (w_gate carries the activation)
    backward(x, params, dy) -> grads      grads {"x": (B, T, D), "w_gate", "w_up", "w_down"}: of <dy, y>

Attention, ``check_attention(fn, *, n_heads, n_kv_heads, dtype, causal, backward=None, ...)``::

    fn(q, k, v, spec) -> out | (out, lse) q (B, T, N, Dh); k, v (B, S, K, Dh); out (B, T, N, Dh);
                                          lse (B, T, N)
    backward(q, k, v, spec, dout) -> grads  {"q", "k", "v"}, the gradients of <dout, out>

``spec`` (cases.AttentionSpec) says what to compute: ``causal`` (bottom-right: query t at position
L_b - T + t), ``scale``, ``kv_lengths`` ((B,) or None), ``window``, ``softcap``, and ``mask``, the resolved
(B, T, S) boolean visibility (True = attend), for implementations that take an explicit mask. Query head n
reads KV head n // (N / K). A fully masked query row must give output 0 (and zero gradients).

Each returns a ConformanceReport (report.py); ``assert_conforms(report)`` raises AssertionError with its
table.
"""

from __future__ import annotations

from collections.abc import Callable

from ..activations import GELU_APPROXIMATIONS
from ..variants import get_variant
from .cases import Case, attention_cases, ffn_cases
from .dtypes import NumberFormat, number_format, to_float64
from .policy import Rule, TensorResult, judge
from .report import ConformanceReport

DEFAULT_SEEDS = (0, 1, 2)


def _copies(arrays: dict) -> dict:
    return {k: a.copy() for k, a in arrays.items()}


def _grads(name: str, grads, expected: list[str]) -> dict:
    """The gradient dict a candidate's backward returned, as {"d" + key: float64 array}."""
    if not isinstance(grads, dict):
        raise ValueError(f"{name} must return a dict with keys {expected}; got {type(grads).__name__}")
    missing = sorted(set(expected) - grads.keys())
    if missing:
        raise ValueError(f"{name} must return a dict with keys {expected}; missing {missing}")
    return {"d" + k: to_float64(f"{name}()[{k!r}]", grads[k]) for k in expected}


def run_ffn_candidate(case: Case, fn: Callable, backward: Callable | None) -> dict:
    """Call the candidate on one FFN case; its results as {tensor: float64 array}."""
    params = {k: a for k, a in case.inputs.items() if k != "x"}
    outputs = {"y": to_float64("fn()", fn(case.inputs["x"].copy(), _copies(params)))}
    if backward is not None:
        grads = backward(case.inputs["x"].copy(), _copies(params), case.douts["y"].copy())
        outputs.update(_grads("backward", grads, ["x", *params]))
    return outputs


def run_attention_candidate(case: Case, fn: Callable, backward: Callable | None) -> dict:
    """Call the candidate on one attention case; its results as {tensor: float64 array}."""
    q, k, v = (case.inputs[n] for n in ("q", "k", "v"))
    result = fn(q.copy(), k.copy(), v.copy(), case.spec)
    if isinstance(result, (tuple, list)):
        if len(result) != 2:
            raise ValueError(f"fn must return out or (out, lse); got a sequence of {len(result)}")
        outputs = {
            "out": to_float64("fn()[0] (out)", result[0]),
            "lse": to_float64("fn()[1] (lse)", result[1]),
        }
    else:
        outputs = {"out": to_float64("fn()", result)}
    if backward is not None:
        grads = backward(q.copy(), k.copy(), v.copy(), case.spec, case.douts["out"].copy())
        outputs.update(_grads("backward", grads, ["q", "k", "v"]))
    return outputs


def judge_case(case: Case, outputs: dict, fmt: NumberFormat, rule: Rule) -> list[TensorResult]:
    """Judge a candidate's results for one case: every tensor it offered (each has a golden value)."""
    results = []
    for tensor, cand in outputs.items():
        gold = case.golden[tensor]
        if cand.shape != gold.shape:
            raise ValueError(
                f"candidate's {tensor!r} for case {case.name} must have shape {gold.shape}; got {cand.shape}"
            )
        results.append(
            judge(case.name, tensor, cand, gold, baseline_error=case.baseline_max[tensor], fmt=fmt, rule=rule)
        )
    return results


def _rule(rule) -> Rule:
    if rule is None:
        return Rule()
    if not isinstance(rule, Rule):
        raise ValueError(f"rule must be a refimpl.conformance.Rule; got {type(rule).__name__}")
    return rule


def _callable(name: str, value, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise ValueError(f"{name} must be a callable; got {type(value).__name__}")


def check_ffn(
    fn: Callable,
    variant: str,
    *,
    dtype,
    backward: Callable | None = None,
    gelu: str = "erf",
    d_model: int = 64,
    d_ff: int = 203,
    n_tokens: int = 113,
    seeds=DEFAULT_SEEDS,
    rule: Rule | None = None,
) -> ConformanceReport:
    """Check a candidate FFN of ``variant`` (refimpl.FFN_VARIANTS) computing in ``dtype`` (module docstring).

    ``gelu`` is the GELU the candidate claims ("erf" or "tanh"); cases are cases.FFN_KINDS per seed.
    """
    _callable("fn", fn, optional=False)
    _callable("backward", backward, optional=True)
    v = get_variant(variant)
    if gelu not in GELU_APPROXIMATIONS:
        raise ValueError(f"gelu must be one of {GELU_APPROXIMATIONS}; got {gelu!r}")
    fmt, rule = number_format(dtype), _rule(rule)
    cases = ffn_cases(
        v.name,
        fmt,
        d_model=d_model,
        d_ff=d_ff,
        n_tokens=n_tokens,
        seeds=seeds,
        gelu=gelu,
        backward=backward is not None,
    )
    results = []
    for case in cases:
        results += judge_case(case, run_ffn_candidate(case, fn, backward), fmt, rule)
    act = f", gelu={gelu}" if v.activation == "gelu" else ""
    subject = f"{v.name} FFN (D={d_model}, F={d_ff}, T={n_tokens}{act})"
    return ConformanceReport(subject, fmt, rule, tuple(results))


def check_attention(
    fn: Callable,
    *,
    n_heads: int,
    n_kv_heads: int,
    dtype,
    causal: bool,
    backward: Callable | None = None,
    head_dim: int = 64,
    seq_len: int = 113,
    batch: int = 2,
    scale: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
    seeds=DEFAULT_SEEDS,
    rule: Rule | None = None,
) -> ConformanceReport:
    """Check a candidate grouped-query attention computing in ``dtype`` (module docstring for ``fn``).

    Cases are cases.ATTENTION_KINDS per seed: S = seq_len keys, T = S, S // 3 and 1 queries, padding with
    fully masked rows, and orthogonal values per KV head. ``lse`` is judged when ``fn`` returns it.
    """
    _callable("fn", fn, optional=False)
    _callable("backward", backward, optional=True)
    fmt, rule = number_format(dtype), _rule(rule)
    cases = attention_cases(
        fmt,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        seq_len=seq_len,
        batch=batch,
        causal=causal,
        seeds=seeds,
        scale=scale,
        window=window,
        softcap=softcap,
        backward=backward is not None,
    )
    results = []
    for case in cases:
        results += judge_case(case, run_attention_candidate(case, fn, backward), fmt, rule)
    extras = "".join(f", {n}={x}" for n, x in (("window", window), ("softcap", softcap)) if x is not None)
    subject = (
        f"attention (N={n_heads}, K={n_kv_heads}, Dh={head_dim}, S={seq_len}, "
        f"{'causal' if causal else 'not causal'}{extras})"
    )
    notes = () if head_dim >= n_kv_heads else (f"ortho-v case skipped: head_dim {head_dim} < n_kv_heads",)
    return ConformanceReport(subject, fmt, rule, tuple(results), notes)
