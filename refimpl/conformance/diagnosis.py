"""Diagnosis of a failing report: which known mistake the candidate most likely made, and the evidence.

Every failing report gets one (report.py prints it under the table). Two parts:

1. The pattern: which case kinds fail and which pass, which tensors fail, and whether the forward output
   passes everywhere (then the mistake is in the backward pass) or the no-op guard fired.
2. The probe, for each known mistake that applies (mistakes.MISTAKES): the reference is computed *under the
   mistake* on the very inputs of each case whose main output (y / out) failed, and compared with the
   candidate's output there. The mistake is reported when, on at least MATCH_SHARE (80%) of those cases,
   the candidate is at least twice as close to the mistaken reference as to the truth and within the
   rule's bound of it (2x, for the rounding of a different computation) or ten times closer to it than to
   the truth (coarse formats, whose bound is most of the signal). This needs no second run of the
   candidate, so it works on test-vector files too. Two generic probes join them: a constant output (a
   kernel that does nothing) and the golden output of another case (results written to the wrong case).

The pattern of kinds (e.g. "prefill passes; chunk, decode and padded fail") is the mistake's signature and
is printed as evidence; the probe decides, so a correct kernel (which passes and is never diagnosed) and a
kernel with an unknown bug (no probe matches: "no known mistake matches") are told apart from the known
ones, and each known mistake is told from the others (tests/test_conformance_diagnosis.py: the matrix of
planted bugs against diagnoses).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .cases import AttentionSpec, kind_of
from .mistakes import MISTAKES
from .policy import comparable

MATCH_SHARE = 0.8  # share of the failing cases a mistake must explain
_CLOSER = 0.5  # the candidate must be at least this much closer to the mistaken reference than to the truth
_WITHIN_BOUND = 2.0  # ... and within this multiple of the rule's bound of it,
_FAR_CLOSER = 0.1  # ... or this much closer (coarse formats)


class Finding(NamedTuple):
    mistake: str  # mistakes.MISTAKES key, or "constant-output" / "other-case-output"
    cause: str  # the likely cause, one line
    evidence: str  # the pattern and the probe's figures, one line


class Diagnosis(NamedTuple):
    pattern: str  # which kinds and tensors fail
    findings: tuple  # Finding, best first; empty when no known mistake matches


def _distance(cand: np.ndarray, alt: np.ndarray, gold: np.ndarray, fmt) -> float:
    """max |cand - alt| where gold is comparable; NaN equals NaN, one non-finite side is infinitely far."""
    judged = comparable(gold, fmt)  # gold's shape
    c, a = cand[judged], alt[judged]  # (n,) each
    both_nan = np.isnan(c) & np.isnan(a)
    finite = np.isfinite(c) & np.isfinite(a)
    if not np.all(both_nan | finite):
        return math.inf
    return float(np.max(np.abs(c[finite] - a[finite]), initial=0.0))


def _explains(distance: float, truth: float, result) -> bool:
    """The candidate's ``distance`` to a mistaken reference, against its distance to the truth (both NaN-aware)."""
    close = distance <= _WITHIN_BOUND * result.tolerance or distance <= _FAR_CLOSER * truth
    return math.isfinite(distance) and distance <= _CLOSER * truth and close


def _pattern(report, main: str) -> str:
    failed = {(kind_of(r.case), r.tensor) for r in report.failures}
    kinds = report.kinds()
    failing = [k for k in kinds if any(f[0] == k for f in failed)]
    passing = [k for k in kinds if k not in failing]
    tensors = [t for t in report.tensors() if any(f[1] == t for f in failed)]
    text = f"failing kinds {', '.join(failing)}" + (f" (passing {', '.join(passing)})" if passing else "")
    text += f"; failing tensors {', '.join(tensors)}"
    noop = sorted({r.tensor for r in report.failures if r.noop and r.max_error <= r.tolerance})
    if noop:
        text += f"; the no-op guard failed {', '.join(noop)} (mean error >= half the golden spread)"
    if main not in tensors:
        text += f"; {main} passes in every case: the mistake is in the backward pass"
    return text


def _generic(cases, outputs, failing, report, main) -> list[Finding]:
    """A constant output, or another case's golden output, on the failing cases."""
    findings = []
    constant = [c for c in failing if np.isfinite(outputs[c.name][main]).all() and np.ptp(outputs[c.name][main]) == 0]
    if len(constant) >= max(1, math.ceil(MATCH_SHARE * len(failing))):
        findings.append(Finding("constant-output", "the candidate returns a constant (zeros?): a kernel that does "
                                "nothing, or results never copied back", f"{main} is constant in "
                                f"{len(constant)} of {len(failing)} failing cases"))  # fmt: skip
    swapped = []
    for c in failing:
        cand = outputs[c.name][main]
        others = [o for o in cases if o is not c and o.golden[main].shape == cand.shape]
        truth = _distance(cand, c.golden[main], c.golden[main], report.fmt)
        if any(_explains(_distance(cand, o.golden[main], c.golden[main], report.fmt), truth,
                         report.result(c.name, main)) for o in others):  # fmt: skip
            swapped.append(c.name)
    if swapped and len(swapped) >= math.ceil(MATCH_SHARE * len(failing)):
        findings.append(Finding("other-case-output", "the candidate returns the result of another case "
                                "(outputs or inputs mixed up between calls, a stale buffer)",
                                f"{main} equals another case's golden {main} in {', '.join(swapped[:4])}"))  # fmt: skip
    return findings


def diagnose(cases, outputs: dict, report) -> Diagnosis:
    """The diagnosis of a failing report (module docstring); ``outputs``: {case: {tensor: float64}}."""
    spec = cases[0].spec
    main = "out" if isinstance(spec, AttentionSpec) else "y"
    op = "attention" if isinstance(spec, AttentionSpec) else ("ffn" if "top_k" not in spec._fields else "moe")
    failing = [c for c in cases if not report.result(c.name, main).passed]
    if not failing:
        return Diagnosis(_pattern(report, main), ())
    findings = _generic(cases, outputs, failing, report, main)
    scored = []
    for m in MISTAKES:
        if op not in m.ops or not m.applies(spec):
            continue
        explained, worst = [], (0.0, 0.0, 0.0)
        for c in failing:
            cand, result = outputs[c.name][main], report.result(c.name, main)
            with np.errstate(all="ignore"):  # a candidate's garbage must not warn here
                alternatives = m.mistaken(c, cand)
            dist = min((_distance(cand, alt, c.golden[main], report.fmt) for alt in alternatives), default=math.inf)
            if _explains(dist, _distance(cand, c.golden[main], c.golden[main], report.fmt), result):
                explained.append(kind_of(c.name))
                worst = max(worst, (dist / max(result.tolerance, 1e-300), dist, result.tolerance))
        if explained and len(explained) >= math.ceil(MATCH_SHARE * len(failing)):
            kinds = ", ".join(dict.fromkeys(explained))
            evidence = (f"{m.signature}; the candidate's {main} equals the reference computed under this mistake "
                        f"in {len(explained)} of {len(failing)} failing cases ({kinds}): worst distance "
                        f"{worst[1]:.3g}, bound {worst[2]:.3g}")  # fmt: skip
            scored.append((worst[0], Finding(m.key, m.cause, evidence)))
    findings += [f for _, f in sorted(scored, key=lambda s: s[0])]
    return Diagnosis(_pattern(report, main), tuple(findings))
