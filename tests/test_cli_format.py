"""Rendering of reports: human units in tables, raw SI numbers in CSV/JSON."""

import csv
import io
import json
from fractions import Fraction

import pytest

from costmodel.cli.formats import Column, Report, format_value, render


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (16_060_522_496, "bytes", "16.06 GB"),
        (131_072, "bytes", "131.1 kB"),
        (512, "bytes", "512 B"),
        (0.02630862, "s", "26.31 ms"),
        (3.25e-6, "s", "3.250 us"),
        (1.5, "s", "1.500 s"),
        (8_030_261_248, "count", "8.030 billion (8,030,261,248)"),
        (989e12, "flop/s", "989.0 TFLOP/s"),
        (3.35e12, "B/s", "3.350 TB/s"),
        (80 * 2**30, "GiB", "80 GiB"),
        (0.875, "%", "87.5%"),
        (2.5, "x", "2.500x"),
        (8192, "int", "8,192"),
        (None, "bytes", "-"),
        (True, "text", "yes"),
        (Fraction(1, 2), "bytes", "0.5000 B"),
    ],
)
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text


def _report():
    cols = [
        Column("name", "name"),
        Column("kv", "KV", "bytes"),
        Column("t", "time", "s"),
        Column("n", "n", "int"),
    ]
    rows = [
        {"name": "a", "kv": 2.5e9, "t": 0.0125, "n": 1000},
        {"name": "b", "kv": Fraction(1, 2), "t": 2e-5, "n": 3},
    ]
    return Report("title", cols, rows, meta={"model": "m"}, notes=["a note"])


def test_table_uses_one_unit_per_column():
    text = render(_report(), "table")
    assert "KV (GB)" in text and "time (ms)" in text
    assert "12.500" in text and "0.020" in text  # 20 us in ms keeps 2 significant digits
    assert "2.50000" in text and "5e-10" in text  # 0.5 B in GB: beyond 2 extra digits, e-notation
    assert text.splitlines()[:2] == ["title", "a note"]


def test_json_and_csv_carry_raw_numbers():
    data = json.loads(render(_report(), "json"))
    assert data["model"] == "m" and data["rows"][0] == {"name": "a", "kv": 2.5e9, "t": 0.0125, "n": 1000}
    assert data["rows"][1]["kv"] == 0.5  # an exact Fraction (int4) becomes a float, not a string
    rows = list(csv.reader(io.StringIO(render(_report(), "csv"))))
    assert rows[0] == ["name", "kv", "t", "n"] and rows[1] == ["a", "2500000000.0", "0.0125", "1000"]


def test_markdown_and_latex():
    md = render(_report(), "markdown")
    assert md.startswith("**title**") and "|:-" in md
    tex = render(_report(), "latex")
    assert tex.startswith("% title") and "\\toprule" in tex


def test_key_value_report():
    cols = [Column("w", "weights", "bytes"), Column("b", "batch", "int")]
    text = render(Report("plan", cols, [{"w": 16e9, "b": 57}], kv=True), "table")
    assert "16.00 GB" in text and "57" in text
    assert json.loads(render(Report("plan", cols, [{"w": 16e9, "b": 57}], kv=True), "json"))["w"] == 16e9


def test_bad_unit_and_format_raise():
    with pytest.raises(ValueError, match="unit must be one of"):
        Column("x", "x", "furlongs")
    with pytest.raises(ValueError, match="format must be one of"):
        render(_report(), "yaml")
