"""Output of the ``glugqa`` commands: one :class:`Report` rendered as a table, CSV, JSON or LaTeX.

Human formats (``table``, ``github``, ``markdown``, ``latex``; drawn by ``text_table`` in tabulate's
layouts) show scaled units: one unit per column chosen from the column's largest value (``KV cache (GB)``),
or per value in key/value reports (``16.06 GB``). Machine formats (``csv``, ``json``) carry the raw numbers
in SI units: bytes, seconds, FLOP, FLOP/s, bytes/s, tokens/s; ratios as plain numbers. Sizes are decimal
(GB = 1e9 bytes); GiB appear only where a column's unit says so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from fractions import Fraction

from .text_table import draw

FORMATS = ("table", "github", "markdown", "csv", "json", "latex")
HUMAN_FORMATS = {"table": "simple", "github": "github", "markdown": "pipe", "latex": "latex_booktabs"}

# unit -> [(scale, label)] from small to large; the label replaces the unit in headers and values
_SI = (
    (1e-9, "n"),
    (1e-6, "u"),
    (1e-3, "m"),
    (1.0, ""),
    (1e3, "k"),
    (1e6, "M"),
    (1e9, "G"),
    (1e12, "T"),
    (1e15, "P"),
)
_SCALES: dict[str, tuple[tuple[float, str], ...]] = {
    "bytes": tuple((s, f"{p}B") for s, p in _SI if s >= 1),
    "s": tuple((s, f"{p}s") for s, p in _SI if s <= 1),
    "flop": tuple((s, f"{p}FLOP") for s, p in _SI if s >= 1),
    "flop/s": tuple((s, f"{p}FLOP/s") for s, p in _SI if s >= 1),
    "B/s": tuple((s, f"{p}B/s") for s, p in _SI if s >= 1),
    "count": ((1.0, ""), (1e3, "thousand"), (1e6, "million"), (1e9, "billion"), (1e12, "trillion")),
}
# units shown as they are (no scaling): label appended to the header / value
_PLAIN = {"tok/s": "tok/s", "x": "x", "flop/B": "FLOP/B", "": ""}
GIB = 2**30  # unit "GiB": bytes shown in binary gigabytes (memory capacities sold as GiB)
UNITS = (*_SCALES, *_PLAIN, "GiB", "int", "%", "text")


@dataclass(frozen=True)
class Column:
    """One column of a table report (or one row of a key/value report)."""

    key: str  # the JSON / CSV key
    label: str  # the human header
    unit: str = "text"  # one of UNITS: "bytes", "s", "count", "flop", "%", "int" (exact, grouped), ...
    fixed: str | None = None  # a scaled unit to use in tables instead of the best fit, e.g. "TFLOP/s"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {self.unit!r}")
        if self.fixed is not None and self.fixed not in dict(map(reversed, _SCALES.get(self.unit, ()))):
            raise ValueError(f"fixed must be a scaled form of {self.unit!r}; got {self.fixed!r}")


@dataclass
class Report:
    """What a command prints: a title, context (``meta``), and either table rows or key/value pairs.
    ``notes``: lines under the title (what an assumption changed, caveats); JSON carries them as "notes".

    ``rows`` is a list of dicts keyed by column key (a table); with ``kv=True`` the single dict
    ``rows[0]`` is shown vertically as quantity / value.
    """

    title: str
    columns: list[Column]
    rows: list[dict]
    meta: dict = field(default_factory=dict)
    kv: bool = False
    notes: list[str] = field(default_factory=list)


def raw(value):
    """A JSON-ready number: Fractions (sub-byte dtypes) become int when whole, else float."""
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        return value.item()
    return value


def _pick_scale(unit: str, magnitude: float) -> tuple[float, str]:
    scales = _SCALES[unit]
    best = scales[0]
    for scale, label in scales:
        if magnitude >= scale:
            best = (scale, label)
    return best


MAX_EXTRA_DECIMALS = (
    2  # digits a column may add for its smallest values beyond its largest value's 4 significant
)


def _decimals(largest: float, smallest: float) -> int:
    """Digits after the point: 4 significant digits for the largest value, 2 for the smallest when that
    costs at most MAX_EXTRA_DECIMALS more (smaller values are then written like 5e-10)."""
    if largest <= 0:
        return 0
    d = max(3 - math.floor(math.log10(largest)), 0)
    if smallest > 0:
        d = min(max(d, 1 - math.floor(math.log10(smallest))), d + MAX_EXTRA_DECIMALS)
    return d


def _is_number(v) -> bool:
    return isinstance(v, (int, float, Fraction)) and not isinstance(v, bool)


def _number_text(v: float, decimals: int) -> str:
    """``v`` with ``decimals`` digits, or in e-notation when that would round a nonzero value to 0."""
    if v != 0 and abs(v) < 0.5 * 10.0**-decimals:
        return f"{v:.2g}"
    return f"{v:,.{decimals}f}"


def format_value(value, unit: str) -> str:
    """One value with its own unit (key/value reports): ``16.06 GB``, ``12.5 ms``, ``8,030,261,248``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not _is_number(value):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if unit == "int":
        return f"{int(value):,}" if float(value).is_integer() else f"{v:,.4g}"
    if unit == "%":
        return f"{100 * v:.1f}%"
    if unit == "GiB":
        return f"{v / GIB:,.{_decimals(v / GIB, 0) if not (v / GIB).is_integer() else 0}f} GiB"
    if unit in _SCALES:
        scale, label = _pick_scale(unit, abs(v))
        whole = scale == 1.0 and float(value).is_integer()
        text = _number_text(v / scale, 0 if whole else _decimals(abs(v / scale), 0))
        if unit == "count" and float(value).is_integer() and scale > 1:
            return f"{text} {label} ({int(value):,})"
        return f"{text} {label}".rstrip()
    suffix = _PLAIN.get(unit, "")
    text = f"{v:,.{_decimals(abs(v), 0)}f}" if not float(value).is_integer() or unit == "x" else f"{int(v):,}"
    return f"{text}{suffix}" if unit == "x" else f"{text} {suffix}".rstrip()


def _column_cells(col: Column, values: list) -> tuple[str, list[str]]:
    """Header with the column's unit, and each cell scaled to it."""
    numbers = [abs(float(v)) for v in values if _is_number(v) and math.isfinite(float(v))]
    if col.unit in ("text", "int", "%") or not numbers:
        header = col.label if col.unit != "%" else f"{col.label} (%)"
        cells = []
        for v in values:
            if col.unit == "%" and _is_number(v):
                cells.append(f"{100 * float(v):.1f}")
            else:
                cells.append(format_value(v, "int" if col.unit == "int" else "text"))
        return header, cells
    if col.fixed is not None:
        scale, label = next(x for x in _SCALES[col.unit] if x[1] == col.fixed)
    elif col.unit in _SCALES:
        scale, label = _pick_scale(col.unit, statistics.median(numbers))  # most cells read naturally
    elif col.unit == "GiB":
        scale, label = float(GIB), "GiB"
    else:
        scale, label = 1.0, _PLAIN[col.unit]
    nonzero = [n / scale for n in numbers if n > 0]
    integral = all((float(v) / scale).is_integer() for v in values if _is_number(v)) and scale in (1.0, GIB)
    decimals = 0 if integral else _decimals(max(nonzero, default=0.0), min(nonzero, default=0.0))
    header = f"{col.label} ({label})" if label else col.label
    cells = [
        _number_text(float(v) / scale, decimals) if _is_number(v) else format_value(v, "text") for v in values
    ]
    return header, cells


def _human(report: Report, fmt: str) -> str:
    if report.kv:
        row = report.rows[0]
        body = [[c.label, format_value(row.get(c.key), c.unit)] for c in report.columns if c.key in row]
        table = draw(body, ["quantity", "value"], HUMAN_FORMATS[fmt], ("left", "right"))
    else:
        headers, columns = [], []
        for col in report.columns:
            header, cells = _column_cells(col, [r.get(col.key) for r in report.rows])
            headers.append(header)
            columns.append(cells)
        align = tuple("left" if c.unit == "text" else "right" for c in report.columns)
        body = [list(cells) for cells in zip(*columns, strict=True)]
        table = draw(body, headers, HUMAN_FORMATS[fmt], align)
    lines = [report.title, *report.notes]
    if fmt == "latex":
        return "\n".join([*(f"% {line}" for line in lines if line), table])
    if fmt in ("github", "markdown"):
        head = [f"**{report.title}**", *(f"\n_{n}_" for n in report.notes)]
        return "\n".join([*head, "", table])
    return "\n".join([*(line for line in lines if line), "", table])


def _json(report: Report) -> str:
    body: dict = {"title": report.title, **{k: raw(v) for k, v in report.meta.items()}}
    if report.notes:  # what the human formats print under the title (assumptions, caveats), in JSON too
        body["notes"] = list(report.notes)
    if report.kv:
        body.update(
            {c.key: raw(report.rows[0].get(c.key)) for c in report.columns if c.key in report.rows[0]}
        )
    else:
        body["rows"] = [{c.key: raw(r.get(c.key)) for c in report.columns} for r in report.rows]
    return json.dumps(body, indent=2)


def _csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if report.kv:
        writer.writerow(["key", "value"])
        writer.writerows(
            [c.key, raw(report.rows[0][c.key])] for c in report.columns if c.key in report.rows[0]
        )
    else:
        writer.writerow([c.key for c in report.columns])
        writer.writerows([raw(r.get(c.key)) for c in report.columns] for r in report.rows)
    return buf.getvalue().rstrip("\n")


def render(report: Report, fmt: str = "table") -> str:
    """The report as text in ``fmt`` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "json":
        return _json(report)
    if fmt == "csv":
        return _csv(report)
    return _human(report, fmt)
