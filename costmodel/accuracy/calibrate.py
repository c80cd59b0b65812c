"""Fit the efficiency parameters to a user's own measurements (``glugqa calibrate``).

Robust least squares on the log error: minimise Σ ρ(ln(predicted_i / measured_i)) over the chosen parameters
of :class:`costmodel.Efficiency`, each kept inside its physical range (``costmodel.roofline.PARAMS[*].fit``),
with ρ scipy's ``soft_l1`` (quadratic below ``ROBUST_SCALE`` = 10% error, linear above: one bad
measurement cannot drag every parameter) and a weak pull of each parameter towards its starting value
(``PRIOR_WEIGHT``: a parameter the points barely constrain stays where the sources put it, one they
constrain goes where they say).
``scipy.optimize.least_squares`` (trust-region reflective, bounded) does the fitting; SciPy is imported only
here, on the first call.

Which parameters: those the points can identify. A parameter whose every prediction moves by less than
``MIN_SENSITIVITY`` (relative) across its range is left alone (no int4 point: ``dequant_int4`` stays); of the
others, a pivoted QR of the sensitivity matrix orders them by the new information each adds, and at most
max(1, n // 2) are fitted for n points (one or two points fit one parameter, and the result says so).

The fit is checked by k-fold cross-validation: the points are split into k folds (a seeded shuffle), each fold
is predicted by the parameters fitted on the others, and the errors of those held-out predictions are
summarised beside the in-sample ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from ..roofline import ESTIMATE, PARAM_BY_NAME, Efficiency
from .predict import Prediction, evaluate
from .stats import ErrorSummary, counted, none_counted, summarize

ROBUST_SCALE = 0.1  # soft_l1's f_scale on ln(pred / meas): errors above ~10% count linearly
PRIOR_WEIGHT = 0.05  # moving a parameter across its whole fit range costs like one point off by ln(1.25)
MIN_SENSITIVITY = 1e-3  # max |d ln pred| over a parameter's range below which the points cannot identify it
DEFAULT_FOLDS = 5
FITTABLE = tuple(name for name, p in PARAM_BY_NAME.items() if p.fit is not None)


@dataclass(frozen=True)
class Calibration:
    """A fitted profile and how good it is: in sample, and on points held out of the fit (k-fold)."""

    efficiency: Efficiency
    base: Efficiency
    fitted: tuple[str, ...]
    unidentified: tuple[str, ...]  # asked for, but no point's prediction depends on them
    limited: tuple[str, ...]  # identifiable, but left at their value: too few points to fit them all
    n: int
    folds: int
    in_sample: ErrorSummary
    base_summary: ErrorSummary
    cross_validated: ErrorSummary | None  # None when there are fewer than 2 points
    predictions: tuple[Prediction, ...]

    def notes(self) -> list[str]:
        out = [f"fitted {len(self.fitted)} of {len(self.fitted) + len(self.limited) + len(self.unidentified)} "
               f"parameters to {self.n} points: {', '.join(self.fitted)}"]  # fmt: skip
        if self.limited:
            out.append(f"{self.n} point(s) fit at most {max(1, self.n // 2)} parameter(s); kept at their start "
                       f"value: {', '.join(self.limited)}")  # fmt: skip
        if self.unidentified:
            out.append(f"no point depends on: {', '.join(self.unidentified)} (kept)")
        if self.cross_validated is None:
            out.append("one point: no cross-validation possible (the in-sample error is not a prediction)")
        return out


def _check_params(params) -> tuple[str, ...]:
    if params is None:
        return FITTABLE
    if isinstance(params, str) or not all(isinstance(p, str) for p in params):
        raise ValueError(f"params must be a list of parameter names; got {params!r}")
    bad = [p for p in params if p not in FITTABLE]
    if bad:
        raise ValueError(f"params: cannot fit {bad}; fittable: {', '.join(FITTABLE)}")
    if not params:
        raise ValueError("params must name at least one parameter")
    return tuple(dict.fromkeys(params))


def _log_ratios(points, eff, kw) -> list[float]:
    preds = evaluate(points, eff=eff, **kw)
    return [math.log(p.ratio) if p.computable else 0.0 for p in preds]


def _choose(points, base, names, kw) -> tuple[list[str], list[str], list[str]]:
    """(fitted, limited, unidentified): identifiable parameters ordered by pivoted QR of the sensitivity
    matrix (each column: the change of every ln prediction across the parameter's fit range)."""
    import numpy as np  # noqa: PLC0415

    at = np.array(_log_ratios(points, base, kw))
    cols, keep, unidentified = [], [], []
    for name in names:
        lo, hi = PARAM_BY_NAME[name].fit
        col = np.array(_log_ratios(points, replace(base, **{name: hi}), kw)) - np.array(
            _log_ratios(points, replace(base, **{name: lo}), kw)
        )
        if np.max(np.abs(col)) < MIN_SENSITIVITY or not np.all(np.isfinite(col)) or not np.all(np.isfinite(at)):
            unidentified.append(name)
        else:
            keep.append(name)
            cols.append(col)
    if not keep:
        return [], [], unidentified
    from scipy.linalg import qr  # noqa: PLC0415

    _, _, order = qr(np.column_stack(cols), pivoting=True, mode="economic")
    ranked = [keep[i] for i in order]
    most = max(1, len(points) // 2)
    return ranked[:most], ranked[most:], unidentified


def fit(points, *, base: Efficiency = ESTIMATE, params=None, models=None, hardware=None, predictors=None):
    """(fitted Efficiency, fitted names, limited names, unidentified names) for ``points`` (each computable
    with ``base``). See the module docstring for the method."""
    import numpy as np  # noqa: PLC0415
    from scipy.optimize import least_squares  # noqa: PLC0415

    kw = dict(models=models, hardware=hardware, predictors=predictors)
    names, limited, unidentified = _choose(points, base, _check_params(params), kw)
    if not names:
        return base, (), tuple(limited), tuple(unidentified)
    lo = np.array([PARAM_BY_NAME[n].fit[0] for n in names])
    hi = np.array([PARAM_BY_NAME[n].fit[1] for n in names])
    x0 = np.clip([getattr(base, n) for n in names], lo, hi)
    width = hi - lo

    def residuals(x):
        eff = replace(base, **dict(zip(names, map(float, x), strict=True)))
        return np.concatenate([_log_ratios(points, eff, kw), math.sqrt(PRIOR_WEIGHT) * (x - x0) / width])

    result = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=ROBUST_SCALE,
                           x_scale=width, diff_step=1e-3, max_nfev=200)  # fmt: skip
    eff = replace(base, **dict(zip(names, map(float, result.x), strict=True)))
    return eff, tuple(names), tuple(limited), tuple(unidentified)


def _folds(n: int, k: int, seed: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def calibrate(
    points, *, base: Efficiency = ESTIMATE, params=None, folds: int = DEFAULT_FOLDS, seed: int = 0,
    models=None, hardware=None, predictors=None,
) -> Calibration:  # fmt: skip
    """Fit ``params`` (default: every fittable one the points identify) to the computable, non-duplicate
    ``points``, and cross-validate with ``folds`` folds (at most one per point; none for a single point)."""
    if not isinstance(base, Efficiency):
        raise ValueError(f"base must be an Efficiency; got {type(base).__name__}")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 100:
        raise ValueError(f"folds must be an integer from 2 to 100; got {folds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    _check_params(params)
    kw = dict(models=models, hardware=hardware, predictors=predictors)
    first = evaluate(list(points), eff=base, **kw)
    start = counted(first)
    if not start:
        raise ValueError(f"points: {none_counted(first)}")
    usable = [p.point for p in start]
    eff, names, limited, unidentified = fit(usable, base=base, params=params, **kw)
    preds = tuple(evaluate(usable, eff=eff, **kw))
    held = None
    k = min(folds, len(usable))
    if k >= 2:
        out: list[Prediction] = []
        for fold in _folds(len(usable), k, seed):
            train = [p for i, p in enumerate(usable) if i not in fold]
            fold_eff = fit(train, base=base, params=params, **kw)[0]
            out += evaluate([usable[i] for i in fold], eff=fold_eff, **kw)
        held = summarize(out)
    return Calibration(
        efficiency=eff, base=base, fitted=names, unidentified=unidentified, limited=limited, n=len(usable),
        folds=k if k >= 2 else 0, in_sample=summarize(preds), base_summary=summarize(start),
        cross_validated=held, predictions=preds,
    )  # fmt: skip
