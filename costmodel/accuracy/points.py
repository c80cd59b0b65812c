"""Measured points: load and validate a JSON or CSV file of measurements (format: docs/points-format.md).

JSON: a list of point objects, or ``{"points": [...], "description": "..."}``. CSV: a header naming fields,
one point per row; empty cells are absent (or null); ``model_config`` and ``original`` cells hold JSON text.
Every problem is a ValueError naming the file, the point (``id`` when it has one, else its 1-based position)
and the field. The shipped development set: :func:`shipped_points` (costmodel/data/measured/README.md).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field, fields
from importlib import resources

from ..config import ModelConfig, resolve_kv_dtype, suggest
from ..hardware import HARDWARE, Hardware
from ..models import MODELS
from .files import parse_json, read_text_file
from .schema import FIELD_BY_NAME, FIELDS, MAX_COUNT, MEASURED_RANGE, METRIC_UNITS

MAX_POINTS_FILE_BYTES = 16 * 2**20
_DATA = "data/measured"
_CONFIG_FIELDS = {f.name: f.type for f in fields(ModelConfig)}
# "power limited to 330 W" in hardware_note: the part ran under a power cap (gpt-fast's A100s)
POWER_LIMIT = re.compile(r"power[- ]limited to (\d+) ?W\b", re.IGNORECASE)
# "group size 32" or "G=32" in weight_note: grouped weight quantization (when weight_group_size is absent)
GROUP_SIZE = re.compile(r"group size (\d+)|\bG ?= ?(\d+)\b", re.IGNORECASE)


def power_limited_variant(hardware_key: str | None, note: str, hardware) -> str | None:
    """``<hardware_key>-<N>w`` when ``note`` states a power limit of N watts and ``hardware`` has that variant
    (a100-sxm-80gb + "power limited to 330 W" -> a100-sxm-80gb-330w), else ``hardware_key``."""
    m = POWER_LIMIT.search(note or "")
    if hardware_key is None or m is None:
        return hardware_key
    variant = f"{hardware_key}-{int(m.group(1))}w"
    return variant if variant in hardware else hardware_key


@dataclass(frozen=True)
class MeasuredPoint:
    """One validated measurement; optional fields hold their defaults (docs/points-format.md)."""

    id: str
    model_key: str | None
    model_config: ModelConfig | None
    hardware_key: str | None
    tp: int
    pp: int
    num_gpus: int
    weight_dtype: str
    kv_dtype: str
    batch: int | None
    input_len: int
    output_len: int
    batching: str
    metric: str
    measured: float
    source_short: str = ""
    moe: bool = False
    duplicate_of: str | None = None
    in_sample: bool | None = None
    weight_group_size: int | None = None
    weight_group_bytes: float | None = None
    kv_read_per_query_head: bool = False
    notes: dict = field(default_factory=dict, compare=False)  # every other field given (model_name, original, ...)

    @property
    def model_label(self) -> str:
        return self.model_key if self.model_key is not None else self.model_config.name

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]


class _Where:
    """Names the file and the point in error messages."""

    def __init__(self, file: str, index: int, raw):
        pid = raw.get("id") if isinstance(raw, dict) else None
        self.text = f"{file}, point {index}" + (f" (id {pid!r})" if isinstance(pid, str) and pid else "")

    def error(self, field: str, msg: str) -> ValueError:
        return ValueError(f"{self.text}, field {field!r}: {msg}")


def _check_kind(where: _Where, f, value):
    """``value`` checked against field ``f``'s kind (no coercion: the CSV reader converts cells first)."""
    if value is None:
        if f.nullable:
            return None
        raise where.error(f.name, "must not be null")
    k = f.kind
    if k in ("text", "name", "choice"):
        if not isinstance(value, str):
            raise where.error(f.name, f"must be a string; got {type(value).__name__} {value!r}")
        if k == "name" and not value.strip():
            raise where.error(f.name, "must be a non-empty string")
        if k == "choice" and value not in f.choices:
            raise where.error(
                f.name, f"unknown value {value!r}{suggest(value, f.choices)}; allowed: " + ", ".join(f.choices)
            )
    elif k == "count":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise where.error(f.name, f"must be a positive integer up to 2**40; got {value!r}")
    elif k == "number":
        lo, hi = MEASURED_RANGE
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise where.error(f.name, f"must be a number from {lo:g} to {hi:g}; got {value!r}")
        value = float(value)
    elif k == "flag":
        if not isinstance(value, bool):
            raise where.error(f.name, f"must be true or false; got {value!r}")
    elif k == "object":
        if not isinstance(value, dict):
            raise where.error(f.name, f"must be an object; got {type(value).__name__}")
    return value


def _model_config(where: _Where, kwargs: dict) -> ModelConfig:
    unknown = sorted(set(kwargs) - set(_CONFIG_FIELDS))
    if unknown:
        raise where.error("model_config", f"unknown keys {unknown}; allowed: {', '.join(_CONFIG_FIELDS)}")
    for key, v in kwargs.items():
        if not (v is None or isinstance(v, (str, int))):  # bool is an int: ModelConfig checks flags itself
            raise where.error("model_config", f"{key} must be a string, integer, bool or null; got {v!r}")
        if key in ("name", "source") and not isinstance(v, str):
            raise where.error("model_config", f"{key} must be a string; got {v!r}")
        if isinstance(v, int) and not isinstance(v, bool) and v > MAX_COUNT:
            raise where.error("model_config", f"{key} must be at most 2**40; got {v!r}")
    try:
        return ModelConfig(**kwargs)
    except ValueError as exc:
        raise where.error("model_config", str(exc)) from None


def point_from_dict(raw, *, file: str, index: int, models, hardware) -> MeasuredPoint:
    """One point from a dict of field values; ValueError naming file, point and field."""
    where = _Where(file, index, raw)
    if not isinstance(raw, dict):
        raise ValueError(f"{where.text}: must be an object of fields; got {type(raw).__name__}")
    unknown = [k for k in raw if k not in FIELD_BY_NAME]
    if unknown:
        k = str(unknown[0])
        raise where.error(k, f"unknown field{suggest(k, FIELD_BY_NAME)}; known: {', '.join(FIELD_BY_NAME)}")
    for f in FIELDS:
        if f.required and f.name not in raw:
            raise where.error(f.name, "is required")
    v = {f.name: _check_kind(where, f, raw[f.name]) for f in FIELDS if f.name in raw}
    if ("model_key" in v) == ("model_config" in v):
        raise where.error("model_key", "give exactly one of model_key and model_config")
    cfg = None
    if "model_config" in v:
        cfg = _model_config(where, v["model_config"])
    elif v["model_key"] not in models:
        raise where.error("model_key", f"unknown model {v['model_key']!r}{suggest(v['model_key'], models)}")
    hw = v["hardware_key"]
    if hw is not None and hw not in hardware:
        raise where.error(
            "hardware_key", f"unknown hardware {hw!r}{suggest(hw, hardware)}; known: " + ", ".join(hardware)
        )
    hw = power_limited_variant(hw, v.get("hardware_note", ""), hardware)
    group = v.get("weight_group_size")
    note_group = GROUP_SIZE.search(v.get("weight_note", "")) if v["weight_dtype"] in ("int8", "int4") else None
    if group is None and note_group is not None:
        group = int(note_group.group(1) or note_group.group(2))
        if not 1 <= group <= MAX_COUNT:
            raise where.error("weight_note", f"group size must be a positive integer up to 2**40; got {group}")
    tp, pp = v["tp"], v.get("pp", 1)
    if v.get("num_gpus", tp * pp) != tp * pp:
        raise where.error("num_gpus", f"must equal tp · pp = {tp * pp}; got {v['num_gpus']}")
    batching, batch = v["batching"], v["batch"]
    if batch is None and batching != "offline-max":
        raise where.error("batch", f"null is allowed only for batching 'offline-max'; got {batching!r}")
    if batching == "batch-1" and batch != 1:
        raise where.error("batch", f"must be 1 for batching 'batch-1'; got {batch}")
    unit = v.get("unit", METRIC_UNITS[v["metric"]])
    if unit != METRIC_UNITS[v["metric"]]:
        raise where.error("unit", f"metric {v['metric']!r} is in {METRIC_UNITS[v['metric']]!r}; got {unit!r}")
    if ("weight_group_bytes" in v) and "weight_group_size" not in v:
        raise where.error("weight_group_bytes", "needs weight_group_size (the values one scale covers)")
    if v.get("duplicate_of") == v["id"]:
        raise where.error("duplicate_of", "a point cannot duplicate itself")
    own = {f.name for f in fields(MeasuredPoint)} | {"unit"}
    return MeasuredPoint(
        id=v["id"], model_key=v.get("model_key"), model_config=cfg, hardware_key=hw, tp=tp, pp=pp,
        num_gpus=tp * pp, weight_dtype=v["weight_dtype"],
        kv_dtype=resolve_kv_dtype(v.get("kv_dtype"), v["weight_dtype"]),
        batch=batch, input_len=v["input_len"], output_len=v["output_len"], batching=batching,
        metric=v["metric"], measured=v["measured"], source_short=v.get("source_short", ""),
        moe=v.get("moe", False), duplicate_of=v.get("duplicate_of"), in_sample=v.get("in_sample"),
        weight_group_size=group, weight_group_bytes=v.get("weight_group_bytes"),
        kv_read_per_query_head=v.get("kv_read_per_query_head", False),
        notes={k: x for k, x in v.items() if k not in own and x != ""},  # "" = absent, as in CSV
    )  # fmt: skip


def _csv_cell(where: _Where, name: str, cell: str):
    """A CSV cell converted to the field's kind; '' means absent (None)."""
    f = FIELD_BY_NAME[name]
    if cell == "":  # an empty cell of a nullable field: null
        return None
    if f.kind == "count":
        if not cell.isascii() or not cell.isdigit():
            raise where.error(name, f"must be a positive integer up to 2**40; got {cell!r}")
        return int(cell) if len(cell) <= 20 else MAX_COUNT + 1
    if f.kind == "number":
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise where.error(
                name, f"must be a number from {MEASURED_RANGE[0]:g} to {MEASURED_RANGE[1]:g}; got {cell!r}"
            )
        return value
    if f.kind == "flag":
        if cell not in ("true", "false"):
            raise where.error(name, f"must be true or false; got {cell!r}")
        return cell == "true"
    if f.kind == "object":
        return parse_json(cell, where=f"{where.text}, field {name!r}")
    return cell


def _csv_records(text: str, file: str) -> list[dict]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ValueError(f"{file}: not valid CSV: {exc}") from None
    rows = [r for r in rows if r]  # blank lines
    if not rows:
        raise ValueError(f"{file}: empty CSV (a header row naming the fields is required)")
    header = [h.strip() for h in rows[0]]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{file}: header repeats columns {dup}")
    for h in header:
        if h not in FIELD_BY_NAME:
            raise ValueError(
                f"{file}, header, field {h!r}: unknown column{suggest(h, FIELD_BY_NAME)}; known: "
                + ", ".join(FIELD_BY_NAME)
            )
    records = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise ValueError(f"{file}, point {i}: has {len(row)} cells; the header has {len(header)}")
        raw = {h: c for h, c in zip(header, row, strict=True) if c != "" or FIELD_BY_NAME[h].nullable}
        where = _Where(file, i, raw)
        records.append({h: _csv_cell(where, h, c) for h, c in raw.items()})
    return records


def parse_points(records, *, file: str = "<points>", models=None, hardware=None) -> list[MeasuredPoint]:
    """Validate a list of point dicts (as a JSON file holds them); ``models`` and ``hardware`` are the names a
    point may use (default: the model presets plus the shipped extra configs; the hardware presets)."""
    models = all_models() if models is None else models
    hardware = HARDWARE if hardware is None else hardware
    if not isinstance(records, list) or not records:
        raise ValueError(f"{file}: needs a non-empty list of points")
    points = [point_from_dict(r, file=file, index=i, models=models, hardware=hardware)
              for i, r in enumerate(records, start=1)]  # fmt: skip
    by_id = {}
    for i, p in enumerate(points, start=1):
        if p.id in by_id:
            raise _Where(file, i, {"id": p.id}).error("id", f"{p.id!r} repeats point {by_id[p.id]}")
        by_id[p.id] = i
    for i, p in enumerate(points, start=1):
        if p.duplicate_of is None:
            continue
        target = by_id.get(p.duplicate_of)
        if target is None or points[target - 1].duplicate_of is not None:
            raise _Where(file, i, {"id": p.id}).error(
                "duplicate_of", f"{p.duplicate_of!r} must be the id of another point that is not itself a duplicate"
            )
    return points


def load_points(path, *, models=None, hardware=None) -> list[MeasuredPoint]:
    """Points of a ``.json`` or ``.csv`` file (by extension); see :func:`parse_points` and docs/points-format.md."""
    text = read_text_file(path, what="points file", max_bytes=MAX_POINTS_FILE_BYTES)
    file = f"points file {os.fspath(path)!r}"
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".csv":
        records = _csv_records(text, file)
    elif ext == ".json":
        data = parse_json(text, where=file)
        if isinstance(data, dict):
            extra = sorted(set(data) - {"points", "description"})
            if extra or "points" not in data:
                raise ValueError(
                    f"{file}: an object must have 'points' (and optionally 'description'); got keys {sorted(data)}"
                )
            data = data["points"]
        records = data
    else:
        raise ValueError(f"{file}: unknown extension {ext!r}; use .json or .csv")
    return parse_points(records, file=file, models=models, hardware=hardware)


def _data_text(name: str) -> str:
    return resources.files("costmodel").joinpath(f"{_DATA}/{name}").read_text(encoding="utf-8")


def shipped_model_configs() -> dict[str, ModelConfig | str]:
    """Models of the shipped set that have no preset: a ModelConfig, or the reason none can be built yet."""
    data = parse_json(_data_text("model_configs.json"), where="model_configs.json")
    out = {}
    for key, entry in data.items():
        if entry["preset"]:
            continue
        if entry["kwargs"] is None:
            out[key] = "no dimensions known"
        else:
            out[key] = ModelConfig(**entry["kwargs"], source=entry["source"])
    return out


def all_models() -> dict[str, ModelConfig | str]:
    """The names a point's model_key may use: the presets, then the shipped extra configs."""
    return {**shipped_model_configs(), **MODELS}


def shipped_points() -> list[MeasuredPoint]:
    """The development set shipped with glugqa (costmodel/data/measured/dev_points.json)."""
    text = _data_text("dev_points.json")
    return parse_points(parse_json(text, where="dev_points.json"), file="dev_points.json")


def resolve_hardware(point: MeasuredPoint, hardware=None) -> Hardware | None:
    return None if point.hardware_key is None else (HARDWARE if hardware is None else hardware)[point.hardware_key]
