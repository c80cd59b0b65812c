"""Check a candidate FFN or attention implementation against the reference, in the candidate's own format.

Calling convention (all arrays are NumPy; inputs arrive in the candidate's dtype: numpy.float32 /
float16 / float64 or ml_dtypes.bfloat16 / float8_*; results may come back in any floating dtype):

FFN, ``check_ffn(fn, variant, *, dtype, backward=None, ...)``::

    fn(x, params) -> y                    x (B, T, D); params {"w_gate" (D, F) [gated only], "w_up" (D, F),
                                          "w_down" (F, D), ["b_gate" (F,), "b_up" (F,), "b_down" (D,)]} in
                                          LLaMA's naming (w_gate carries the activation)
    backward(x, params, dy) -> grads      grads {"x": (B, T, D), "w_gate", "w_up", "w_down", ["b_*"]}: of <dy, y>

Attention, ``check_attention(fn, *, n_heads, n_kv_heads, dtype, causal, backward=None, ...)``::

    fn(q, k, v, spec) -> out | (out, lse) q (B, T, N, Dh); k, v (B, S, K, Dh); out (B, T, N, Dh);
                                          lse (B, T, N)
    backward(q, k, v, spec, dout) -> grads  {"q", "k", "v"} (+ "sinks" (N,) with sinks), the gradients of
                                          <dout, out>

``spec`` (cases.AttentionSpec) says what to compute: ``causal`` (bottom-right: query t at position
L_b - T + t), ``scale``, ``kv_lengths`` ((B,) or None), ``window``, ``softcap``, ``sinks`` ((N,) sink logits
in the candidate's dtype, or None: gpt-oss's, in each row's softmax denominator, with no value), and
``mask``, the resolved (B, T, S) boolean visibility (True = attend), for implementations that take an
explicit mask. Query head n reads KV head n // (N / K). A fully masked query row must give output 0 (and
zero gradients). The MoE check is in check_moe.py.

Each returns a ConformanceReport (report.py), with a diagnosis (diagnosis.py) when it fails;
``assert_conforms(report)`` raises AssertionError with its table.
"""

from __future__ import annotations

from collections.abc import Callable

from .._checks import flag
from ..variants import get_variant
from .cases import Case, ffn_cases, pool_baselines
from .cases_attention import attention_cases
from .diagnosis import diagnose
from .dtypes import NumberFormat, number_format, to_float64
from .policy import Rule, TensorResult, judge
from .report import ConformanceReport

DEFAULT_SEEDS = (0, 1, 2)


def copies(arrays: dict) -> dict:
    """Fresh copies for the candidate (it may write into its inputs); nested dicts copied too."""
    return {k: copies(a) if isinstance(a, dict) else a.copy() for k, a in arrays.items()}


def candidate_grads(name: str, grads, expected: list[str]) -> dict:
    """The gradient dict a candidate's backward returned, as {"d" + key: float64 array}.

    ``expected`` names flat keys; "shared.w_up" is looked up as grads["shared"]["w_up"].
    """
    if not isinstance(grads, dict):
        raise ValueError(f"{name} must return a dict with keys {expected}; got {type(grads).__name__}")
    found = {}
    for key in expected:
        head, dot, tail = key.partition(".")
        inner = grads.get(head) if dot else grads
        if not isinstance(inner, dict) or (tail if dot else key) not in inner:
            raise ValueError(f"{name} must return a dict with keys {expected}; missing {[key]}")
        found["d" + key] = to_float64(f"{name}()[{key!r}]", inner[tail if dot else key])
    return found


def run_ffn_candidate(case: Case, fn: Callable, backward: Callable | None) -> dict:
    """Call the candidate on one FFN case; its results as {tensor: float64 array}."""
    params = {k: a for k, a in case.inputs.items() if k != "x"}
    outputs = {"y": to_float64("fn()", fn(case.inputs["x"].copy(), copies(params)))}
    if backward is not None:
        grads = backward(case.inputs["x"].copy(), copies(params), case.douts["y"].copy())
        outputs.update(candidate_grads("backward", grads, ["x", *params]))
    return outputs


def run_attention_candidate(case: Case, fn: Callable, backward: Callable | None) -> dict:
    """Call the candidate on one attention case; its results as {tensor: float64 array}."""
    q, k, v = (case.inputs[n] for n in ("q", "k", "v"))
    spec = case.spec if case.spec.sinks is None else case.spec._replace(sinks=case.spec.sinks.copy())
    result = fn(q.copy(), k.copy(), v.copy(), spec)
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
        grads = backward(q.copy(), k.copy(), v.copy(), spec, case.douts["out"].copy())
        outputs.update(candidate_grads("backward", grads, [n for n in ("q", "k", "v", "sinks") if n in case.inputs]))
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
        results.append(judge(case.name, tensor, cand, gold, baseline_error=case.baseline_max[tensor],
                             baseline_mean=case.baseline_mean[tensor], fmt=fmt, rule=rule))  # fmt: skip
    return results


def check_rule(rule) -> Rule:
    if rule is None:
        return Rule()
    if not isinstance(rule, Rule):
        raise ValueError(f"rule must be a refimpl.conformance.Rule; got {type(rule).__name__}")
    return rule


def check_callables(fn, backward) -> None:
    for name, value in (("fn", fn), ("backward", backward)):
        if not (callable(value) or (value is None and name == "backward")):
            raise ValueError(f"{name} must be a callable; got {type(value).__name__}")


def judge_all(subject: str, cases: list[Case], run: Callable, fmt: NumberFormat, rule: Rule,
              notes: tuple = ()) -> ConformanceReport:  # fmt: skip
    """Run the candidate (``run(case) -> outputs``) on every case, judge it (baselines pooled over the seeds of
    each kind: cases.pool_baselines), diagnose a failure."""
    outputs, results = {}, []
    for case in pool_baselines(cases):
        outputs[case.name] = run(case)
        results += judge_case(case, outputs[case.name], fmt, rule)
    return report_of(subject, cases, outputs, tuple(results), fmt, rule, notes)


def report_of(subject, cases, outputs, results, fmt, rule, notes=()) -> ConformanceReport:
    """The report, with the diagnosis of a failure (diagnosis.py) and a note on tensors held to the backstop."""
    backstopped = sorted({r.tensor for r in results if r.backstop})
    if backstopped:
        notes = (*notes, f"the naive baseline overflowed on {', '.join(backstopped)}: the absolute backstop "
                 "bounds those tensors")  # fmt: skip
    report = ConformanceReport(subject, fmt, rule, tuple(results), tuple(notes))
    if report.passed:
        return report
    return ConformanceReport(subject, fmt, rule, report.results, report.notes, diagnose(cases, outputs, report))


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
    bias: bool = False,
    alpha=None,
    limit=None,
    seeds=DEFAULT_SEEDS,
    rule: Rule | None = None,
) -> ConformanceReport:
    """Check a candidate FFN of ``variant`` (refimpl.FFN_VARIANTS) computing in ``dtype`` (module docstring).

    ``gelu`` is the GELU the candidate claims ("erf" or "tanh"); ``bias``: the candidate takes biases;
    ``alpha``, ``limit``: swiglu_oss's options (default gpt-oss's); cases are cases.FFN_KINDS per seed.
    """
    check_callables(fn, backward)
    v = get_variant(variant)
    fmt, rule = number_format(dtype), check_rule(rule)
    cases = ffn_cases(v.name, fmt, d_model=d_model, d_ff=d_ff, n_tokens=n_tokens, seeds=seeds, gelu=gelu,
                      backward=backward is not None, bias=bias, alpha=alpha, limit=limit)  # fmt: skip
    extras = [f"gelu={gelu}"] if v.activation == "gelu" else []
    extras += [f"{k}={x:g}" for k, x in cases[0].spec.options] + (["bias"] if flag("bias", bias) else [])
    subject = f"{v.name} FFN (D={d_model}, F={d_ff}, T={n_tokens}{''.join(', ' + e for e in extras)})"
    return judge_all(subject, cases, lambda c: run_ffn_candidate(c, fn, backward), fmt, rule)


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
    sinks: bool = False,
    seeds=DEFAULT_SEEDS,
    rule: Rule | None = None,
) -> ConformanceReport:
    """Check a candidate grouped-query attention computing in ``dtype`` (module docstring for ``fn``).

    Cases are cases_attention.ATTENTION_KINDS per seed: S = seq_len keys, T = S, S // 3 and 1 queries,
    padding with fully masked rows, and orthogonal values per KV head. ``lse`` is judged when ``fn`` returns
    it. ``sinks=True``: every case has a sink logit per query head (``spec.sinks``; backward returns "sinks").
    """
    check_callables(fn, backward)
    fmt, rule = number_format(dtype), check_rule(rule)
    cases = attention_cases(fmt, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, seq_len=seq_len,
                            batch=batch, causal=causal, seeds=seeds, scale=scale, window=window, softcap=softcap,
                            sinks=sinks, backward=backward is not None)  # fmt: skip
    options = (("window", window), ("softcap", softcap), ("sinks", "yes" if sinks else None))
    extras = "".join(f", {n}={x}" for n, x in options if x is not None)
    subject = (
        f"attention (N={n_heads}, K={n_kv_heads}, Dh={head_dim}, S={seq_len}, "
        f"{'causal' if causal else 'not causal'}{extras})"
    )
    notes = () if head_dim >= n_kv_heads else (f"ortho-v case skipped: head_dim {head_dim} < n_kv_heads",)
    return judge_all(subject, cases, lambda c: run_attention_candidate(c, fn, backward), fmt, rule, notes)

