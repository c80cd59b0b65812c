"""The conformance report: every tensor of every case judged, a verdict, a readable table, and for a failing
report the diagnosis (diagnosis.py): the pattern of failing kinds and tensors and the likely cause."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tabulate import tabulate

from .cases import kind_of
from .diagnosis import Diagnosis
from .dtypes import NumberFormat
from .policy import Rule, TensorResult


def _fmt_ratio(ratio: float) -> str:
    return "inf" if math.isinf(ratio) else f"{ratio:.2f}"


@dataclass(frozen=True)
class ConformanceReport:
    """Outcome of check_ffn / check_attention / check_moe / check_vectors.

    ``results`` holds one TensorResult per (case, tensor); ``passed`` is True iff all of them passed.
    ``table()`` groups the seeds of a case kind and shows the worst seed (the one nearest its bound).
    ``diagnosis`` (failing reports only): the pattern and the likely causes; ``likely_causes`` their keys.
    """

    subject: str  # what was checked, e.g. "swiglu FFN (D=64, F=203)"
    fmt: NumberFormat
    rule: Rule
    results: tuple[TensorResult, ...]
    notes: tuple[str, ...] = field(default=())
    diagnosis: Diagnosis | None = None

    @property
    def likely_causes(self) -> tuple[str, ...]:
        """Keys of the known mistakes the diagnosis found (docs/conformance.md), best first; () if none."""
        return () if self.diagnosis is None else tuple(f.mistake for f in self.diagnosis.findings)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[TensorResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def result(self, case: str, tensor: str) -> TensorResult:
        """The result of one tensor of one case (e.g. ``("chunk.s0", "out")``); KeyError if absent."""
        for r in self.results:
            if r.case == case and r.tensor == tensor:
                return r
        raise KeyError(f"no result for case {case!r}, tensor {tensor!r}")

    def worst(self, kind: str, tensor: str) -> TensorResult:
        """Over the seeds of a case kind (e.g. "chunk"), the result nearest (or furthest past) its bound."""
        rows = [r for r in self.results if kind_of(r.case) == kind and r.tensor == tensor]
        if not rows:
            raise KeyError(f"no result for case kind {kind!r}, tensor {tensor!r}")
        return max(rows, key=_severity)

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(kind_of(r.case) for r in self.results))

    def tensors(self) -> list[str]:
        return list(dict.fromkeys(r.tensor for r in self.results))

    def verdict(self) -> str:
        if self.passed:
            return f"CONFORMS: all {len(self.results)} tensor checks passed"
        worst = max(self.failures, key=_severity)
        return (
            f"DOES NOT CONFORM: {len(self.failures)} of {len(self.results)} tensor checks failed "
            f"(worst: {worst.tensor} in {worst.case}, "
            f"error {worst.max_error:.3g} > bound {worst.tolerance:.3g})"
        )

    def table(self) -> str:
        rows = []
        for kind in self.kinds():
            for tensor in self.tensors():
                try:
                    r = self.worst(kind, tensor)
                except KeyError:
                    continue
                verdict = "pass" if r.passed else ("FAIL (NaN/Inf)" if r.nonfinite else "FAIL")
                if not r.passed and not r.nonfinite and r.max_error <= r.tolerance:
                    verdict = "FAIL (no-op guard)"
                numbers = [f"{x:.2e}" for x in (r.max_error, r.mean_error, r.baseline_error)]
                rows.append(
                    [
                        kind,
                        tensor,
                        *numbers,
                        _fmt_ratio(r.ratio),
                        f"{r.tolerance:.2e}",
                        f"{r.scale:.3g}",
                        verdict,
                    ]
                )
        headers = [
            "case",
            "tensor",
            "max err",
            "mean err",
            "baseline",
            "ratio",
            "bound",
            "max|gold|",
            "verdict",
        ]
        return tabulate(
            rows, headers=headers, disable_numparse=True, colalign=("left", "left") + ("right",) * 7
        )

    def __str__(self) -> str:
        n_seeds = len({r.case for r in self.results}) // max(1, len(self.kinds()))
        lines = [
            f"{self.subject}, {self.fmt.name}: {len(self.kinds())} case kinds x {n_seeds} seed(s)",
            f"rule: {self.rule.describe(self.fmt)}",
            *self.notes,
            self.table(),
            self.verdict(),
        ]
        if self.diagnosis is not None:
            lines.append(f"diagnosis: {self.diagnosis.pattern}")
            for f in self.diagnosis.findings:
                lines += [f"likely cause: {f.cause}", f"  evidence: {f.evidence}"]
            if not self.diagnosis.findings:
                lines.append("likely cause: no known mistake matches the failing outputs (the traps table of "
                             "docs/conformance.md lists the mistakes the kit recognises)")
        return "\n".join(lines)


def _severity(r: TensorResult) -> float:
    if r.nonfinite:
        return math.inf
    if r.tolerance > 0:
        return r.max_error / r.tolerance
    return 0.0 if r.max_error == 0 else math.inf


def assert_conforms(report: ConformanceReport) -> ConformanceReport:
    """Raise AssertionError carrying the report's table unless every check passed; return the report."""
    if not isinstance(report, ConformanceReport):
        raise ValueError(f"report must be a ConformanceReport; got {type(report).__name__}")
    if not report.passed:
        raise AssertionError(f"candidate does not conform\n{report}")
    return report
