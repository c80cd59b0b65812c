"""Predictions against measured systems: the points format, the recipe per metric, error statistics.

    from costmodel.accuracy import shipped_points, load_points, evaluate, report
    preds = evaluate(shipped_points())            # or load_points("mine.csv"); eff=costmodel.IDEAL, ...
    report(preds)["overall"].geomean_abs_error

Modules: ``points`` (load and validate JSON/CSV measurements; docs/points-format.md), ``predict`` (the recipe:
each metric as prefill and decode steps; a registry a serving model plugs into), ``series`` (the exact sum of
decode steps), ``stats`` (signed and geometric-mean errors by source, hardware and metric). Not imported by
``import costmodel``.
"""

from .points import MeasuredPoint, all_models, load_points, parse_points, shipped_model_configs, shipped_points
from .predict import PREDICTORS, Prediction, Setup, evaluate, predict_point, register_predictor
from .schema import BATCHINGS, FIELDS, KNOWN_DTYPES, METRIC_UNITS, METRICS
from .stats import ErrorSummary, counted, report, summarize, summarize_by

__all__ = [
    "BATCHINGS", "FIELDS", "KNOWN_DTYPES", "METRICS", "METRIC_UNITS", "PREDICTORS",
    "ErrorSummary", "MeasuredPoint", "Prediction", "Setup",
    "all_models", "counted", "evaluate", "load_points", "parse_points", "predict_point", "register_predictor",
    "report", "shipped_model_configs", "shipped_points", "summarize", "summarize_by",
]  # fmt: skip

from ..serving import accuracy as _serving  # noqa: E402,F401  (registers the serving model for continuous/offline-max)
