"""Error statistics of predictions against measurements, overall and by source, hardware and metric.

With r = predicted / measured for each counted point:

- signed error  e = r − 1 of the published quantity (as reported; see ``Prediction.optimism`` for the speed sign);
- geometric-mean |error| (the headline, the issue's definition) = exp(mean ln max(|e|, ERROR_FLOOR)): the
  geometric mean of the |e| values themselves; a point predicted exactly counts as ERROR_FLOOR (0.1%) so one
  exact point cannot make the mean 0;
- log-based error = exp(mean |ln r|) − 1: stricter, and symmetric in over- and under-prediction (2× and 0.5×
  are both +100%) and the same whether a point reports a time or its inverse rate;
- bias = exp(mean ln r) − 1: the geometric-mean ratio, signed;
- worst: the point with the largest |ln r| (its signed error is reported).

Counted points: computable and not a ``duplicate_of`` another point (a repeated measurement would weigh its
system twice); points the model was tuned on (``in_sample``) are counted and flagged in reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .predict import Prediction

GROUPS = {"source": "source_short", "hardware": "hardware_key", "metric": "metric"}
ERROR_FLOOR = 1e-3  # |e| below 0.1% counts as 0.1% in the geometric mean


@dataclass(frozen=True)
class ErrorSummary:
    n: int
    geomean_abs_error: float  # exp(mean ln max(|e|, ERROR_FLOOR))
    log_error: float  # exp(mean |ln r|) - 1
    bias: float
    worst: Prediction


def counted(predictions) -> list[Prediction]:
    """The predictions that enter statistics: computable, and not a duplicate of another point."""
    return [p for p in predictions if p.computable and p.point.duplicate_of is None]


REASONS_SHOWN = 3  # reasons quoted in the one-line error when no point could be predicted


def none_counted(predictions) -> str:
    """The one-line error when no prediction is counted: 'no point could be predicted: ' and the first
    REASONS_SHOWN points' reasons ('id: reason'), then how many more (or that every point is a duplicate)."""
    why = [p for p in predictions if not p.computable]
    if not predictions:
        return "no point could be predicted: there are none"
    if not why:
        return f"no point could be predicted: all {len(predictions)} points duplicate others (duplicate_of)"
    shown = "; ".join(f"{p.point.id}: {p.reason}" for p in why[:REASONS_SHOWN])
    more = len(why) - REASONS_SHOWN
    return f"no point could be predicted: {shown}" + (f"; and {more} more" if more > 0 else "")


def summarize(predictions) -> ErrorSummary | None:
    """Summary of the counted predictions (None when none is counted)."""
    preds = counted(predictions)
    if not preds:
        return None
    logs = [math.log(p.ratio) for p in preds]
    worst = max(range(len(preds)), key=lambda i: abs(logs[i]))
    n = len(preds)
    return ErrorSummary(
        n=n,
        geomean_abs_error=geomean_abs_error([p.error for p in preds]),
        log_error=math.exp(sum(abs(x) for x in logs) / n) - 1.0,
        bias=math.exp(sum(logs) / n) - 1.0,
        worst=preds[worst],
    )


def geomean_abs_error(errors) -> float:
    """exp(mean ln max(|e|, ERROR_FLOOR)) of signed errors ``e`` (the issue's "geometric mean of |error|")."""
    errors = list(errors)
    if not errors:
        raise ValueError("errors must not be empty")
    return math.exp(sum(math.log(max(abs(e), ERROR_FLOOR)) for e in errors) / len(errors))


def summarize_by(predictions, group: str) -> dict[str, ErrorSummary]:
    """{value: summary} over the counted predictions grouped by ``group`` ("source", "hardware", "metric")."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}; got {group!r}")
    buckets: dict[str, list[Prediction]] = {}
    for p in counted(predictions):
        buckets.setdefault(str(getattr(p.point, GROUPS[group])), []).append(p)
    return {k: summarize(v) for k, v in sorted(buckets.items())}


def report(predictions) -> dict:
    """{"overall": summary, "source"/"hardware"/"metric": {value: summary}, "not_computable": [...],
    "duplicates": [...]} for printing (the CLI's accuracy command and docs)."""
    predictions = list(predictions)
    out = {"overall": summarize(predictions)}
    out.update({g: summarize_by(predictions, g) for g in GROUPS})
    out["not_computable"] = [p for p in predictions if not p.computable]
    out["duplicates"] = [p for p in predictions if p.computable and p.point.duplicate_of is not None]
    return out
