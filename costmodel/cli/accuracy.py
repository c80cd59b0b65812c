"""``glugqa accuracy [POINTS]`` (predicted vs measured, errors by source, hardware and metric) and
``glugqa calibrate POINTS -o PROFILE`` (fit the efficiency parameters to measurements; k-fold checked).

Both read a points file (docs/points-format.md; default for ``accuracy``: the shipped development set) and take
the shared efficiency options; ``calibrate`` starts from them. ``costmodel.accuracy`` is imported when a command
runs (``glugqa plan`` starts without it), SciPy only inside ``calibrate``.
"""

from __future__ import annotations

import os

import click

from ..hardware import HARDWARE
from ..notes import seconds_text
from ..roofline import PARAM_BY_NAME
from .formats import Column, Report
from .options import efficiency_options, emit, format_option, load_hardware_option
from .param_types import check_distinct, list_items

POINT_COLUMNS = [
    Column("id", "point"),
    Column("source", "source"),
    Column("model", "model"),
    Column("hardware", "hardware"),
    Column("tp", "tp", "int"),
    Column("metric", "metric"),
    Column("measured", "measured", ""),
    Column("predicted", "predicted", ""),
    Column("unit", "unit"),
    Column("error", "error", "%"),
]
GROUP_COLUMNS = [
    Column("group", "by"),
    Column("value", "value"),
    Column("n", "points", "int"),
    Column("geomean_abs_error", "geo-mean |error|", "%"),
    Column("log_error", "log-based error", "%"),
    Column("bias", "bias", "%"),
    Column("worst_error", "worst error", "%"),
    Column("worst", "worst point"),
]
VIEWS = ("both", "points", "groups")
GROUP_KINDS = ("source", "hardware", "metric")  # costmodel.accuracy.stats.GROUPS


def definitions() -> str:
    from ..accuracy.stats import ERROR_FLOOR  # noqa: PLC0415

    return (
        f"error = predicted / measured - 1; geo-mean |error| = exp(mean ln max(|error|, {ERROR_FLOOR:g})); "
        "log-based error = exp(mean |ln(predicted / measured)|) - 1; bias = exp(mean ln(predicted / measured)) - 1"
    )


def _hardware(hardware_file):
    return HARDWARE if hardware_file is None else {**HARDWARE, **load_hardware_option(hardware_file)}


def point_rows(preds) -> list[dict]:
    rows = []
    for p in preds:
        q = p.point
        rows.append({
            "id": q.id + (" (dup)" if q.duplicate_of else "") + (" (in sample)" if q.in_sample else ""),
            "source": q.source_short, "model": q.model_label, "hardware": q.hardware_key or "-", "tp": q.tp,
            "metric": q.metric, "measured": q.measured, "predicted": p.predicted, "unit": q.unit,
            "error": p.error if p.computable else None,
        })  # fmt: skip
    return rows


def group_rows(r: dict) -> list[dict]:
    out = []
    for kind in ("overall", *GROUP_KINDS):
        items = {"all": r["overall"]} if kind == "overall" else r[kind]
        for value, s in items.items():
            if s is None:
                continue
            out.append({
                "group": kind, "value": value, "n": s.n, "geomean_abs_error": s.geomean_abs_error,
                "log_error": s.log_error, "bias": s.bias, "worst_error": s.worst.error, "worst": s.worst.point.id,
            })  # fmt: skip
    return out


SHOWN_REASONS = 5  # reasons of points not computable listed in the notes (all of them in the JSON)


def accuracy_reports(preds, *, source: str) -> tuple[Report, Report]:
    """(points report, groups report) of ``preds``; the first carries the overall summary in its notes."""
    from ..accuracy.stats import none_counted, report  # noqa: PLC0415

    r = report(preds)
    o = r["overall"]
    if o is None:
        raise ValueError(none_counted(preds))
    missing = r["not_computable"]
    why = "; ".join(f"{p.point.id}: {p.reason}" for p in missing[:SHOWN_REASONS])
    if len(missing) > SHOWN_REASONS:
        why += f"; and {len(missing) - SHOWN_REASONS} more (every reason in --format json)"
    notes = [
        f"{o.n} points counted (computable, not duplicates): geo-mean |error| {o.geomean_abs_error:.1%}, "
        f"log-based {o.log_error:.1%}, bias {o.bias:+.1%}; worst {o.worst.point.id} {o.worst.error:+.1%}",
        f"not computable: {len(missing)}{f' ({why})' if missing else ''}; duplicates shown, not counted: "
        f"{len(r['duplicates'])}",
        definitions(),
    ]
    title = f"Predicted vs measured: {source}"
    meta = {
        "points": source, "counted": o.n, "geomean_abs_error": o.geomean_abs_error, "log_error": o.log_error,
        "bias": o.bias, "reasons": {p.point.id: p.reason for p in r["not_computable"]},
    }  # fmt: skip
    points = Report(title, POINT_COLUMNS, point_rows(preds), meta=meta, notes=notes)
    groups = Report(f"Errors by source, hardware and metric: {source}", GROUP_COLUMNS, group_rows(r))
    return points, groups


def hardware_file_option(f):
    return click.option(
        "--hardware-file",
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="A TOML file of chips the points may name besides the presets.",
    )(f)


@click.command("accuracy", short_help="Predicted vs measured for published (or your) measurements.")
@click.argument("points", required=False, type=click.Path(dir_okay=False))
@hardware_file_option
@efficiency_options
@click.option("--view", type=click.Choice(VIEWS), default=None,
              help="Points, per-group errors, or both. [default: both; csv: points]")  # fmt: skip
@format_option
def accuracy_command(points, hardware_file, eff, view, fmt):
    """Predict every point of POINTS (a points file, docs/points-format.md; default: the development set
    shipped with glugqa) and compare with its measurement: signed error per point, geometric-mean |error|
    (and the stricter log-based error) overall and by source, hardware and metric."""
    view = view or ("points" if fmt == "csv" else "both")
    if fmt == "csv" and view == "both":
        raise ValueError("--format csv holds one table: choose --view points or --view groups")
    from ..accuracy import evaluate, shipped_points  # noqa: PLC0415

    hw = _hardware(hardware_file)
    pts = shipped_points() if points is None else _points_with(points, hw)
    preds = evaluate(pts, eff=eff, hardware=hw)
    source = "the shipped development set" if points is None else os.path.basename(points)
    by_point, by_group = accuracy_reports(preds, source=source)
    if view == "groups":
        emit(by_group, fmt)
    elif view == "points" or fmt != "json":
        emit(by_point, fmt)
        if view == "both":
            click.echo()
            emit(by_group, fmt)
    else:  # json, both: one document
        by_point.meta["groups"] = by_group.rows
        emit(by_point, fmt)


def _points_with(path, hw):
    from ..accuracy import load_points  # noqa: PLC0415

    try:
        return load_points(path, hardware=hw)
    except ValueError as exc:
        raise ValueError(f"POINTS: {exc}") from None


PARAM_COLUMNS = [
    Column("parameter", "parameter"),
    Column("start", "start"),
    Column("fitted", "fitted"),
    Column("range", "fit range"),
    Column("status", "status"),
]


def _param_text(value: float, unit: str) -> str:
    """A parameter for people: fractions to 3 decimals, seconds in µs or ms (below 1 ns: 0 us)."""
    if unit != "s":
        return f"{value:.3f}"
    return seconds_text(value, digits=3)


@click.command("calibrate", short_help="Fit the efficiency parameters to your measurements (k-fold checked).")
@click.argument("points", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, metavar="PROFILE",
              help="Where to write the fitted profile (TOML); every command reads it with --efficiency-file.")
@click.option("--params", metavar="NAMES",
              help="Comma-separated parameters to fit. [default: every one the points identify]")
@click.option("--folds", type=click.IntRange(2, 100), default=5, show_default=True,
              help="Cross-validation folds (at most one per point).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="Seed of the fold shuffle.")
@hardware_file_option
@efficiency_options
@format_option  # fmt: skip
def calibrate_command(points, output, params, folds, seed, hardware_file, eff, fmt):
    """Fit the efficiency parameters to the measurements in POINTS (robust least squares on the log error,
    each parameter bounded to its physical range), report the in-sample and the k-fold cross-validated error,
    and write the profile to PROFILE. Start: the sourced estimate, or --efficiency-file / the flags."""
    from refimpl.outfile import check_output, write_output  # noqa: PLC0415

    from ..accuracy.calibrate import calibrate  # noqa: PLC0415 -- SciPy: only this command needs it
    from ..efficiency_file import dump_efficiency  # noqa: PLC0415

    check_output(output, what="--output")  # before the fit: a pipe or a missing folder is refused at once
    names = None
    if params is not None:
        try:
            names = list_items(params)
            check_distinct(names, names)
        except ValueError as exc:
            raise ValueError(f"--params: {exc}") from None
    hw = _hardware(hardware_file)
    cal = calibrate(_points_with(points, hw), base=eff, params=names, folds=folds, seed=seed, hardware=hw)
    summary = {"points": os.path.basename(points), "n": cal.n, "fitted": list(cal.fitted), "folds": cal.folds,
               "in_sample_geomean_abs_error": cal.in_sample.geomean_abs_error,
               "in_sample_log_error": cal.in_sample.log_error,
               "start_geomean_abs_error": cal.base_summary.geomean_abs_error,
               "start_log_error": cal.base_summary.log_error}  # fmt: skip
    if cal.cross_validated is not None:
        summary["cross_validated_geomean_abs_error"] = cal.cross_validated.geomean_abs_error
        summary["cross_validated_log_error"] = cal.cross_validated.log_error
    write_output(output, dump_efficiency(cal.efficiency, calibration=summary), what="--output")
    rows = []
    for name in (*cal.fitted, *cal.limited, *cal.unidentified):
        p = PARAM_BY_NAME[name]
        status = "fitted" if name in cal.fitted else ("kept: too few points" if name in cal.limited else
                                                      "kept: no point depends on it")  # fmt: skip
        rows.append({"parameter": name, "start": _param_text(getattr(cal.base, name), p.unit),
                     "fitted": _param_text(getattr(cal.efficiency, name), p.unit),
                     "range": f"{_param_text(p.fit[0], p.unit)} .. {_param_text(p.fit[1], p.unit)}",
                     "status": status})  # fmt: skip
    notes = [*cal.notes(), _error_line("start", cal.base_summary), _error_line("fitted, in sample", cal.in_sample)]
    if cal.cross_validated is not None:
        notes.append(_error_line(f"fitted, {cal.folds}-fold cross-validated", cal.cross_validated))
    notes.append(f"profile written to {output}; use it with --efficiency-file {output}")
    title = f"Calibration on {os.path.basename(points)}: {cal.n} points"
    meta = {**summary, "efficiency": cal.efficiency.values(), "start": cal.base.values()}
    emit(Report(title, PARAM_COLUMNS, rows, meta=meta, notes=notes), fmt)


def _error_line(label: str, s) -> str:
    return (f"{label}: geo-mean |error| {s.geomean_abs_error:.1%}, log-based {s.log_error:.1%}, bias {s.bias:+.1%}, "
            f"worst {s.worst.point.id} {s.worst.error:+.1%}")  # fmt: skip
