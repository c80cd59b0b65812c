"""click parameter types of ``glugqa``: bounded counts, fractions in (0, 1], bounded numbers, value lists,
N-or-'max'.

Each rejects what the cost model cannot use (NaN, infinities, zero, absurdly large counts) with click's
one-line "Invalid value for '--opt': ..." message.
"""

from __future__ import annotations

import math

import click

from ..checks import MAX_HEADS, MAX_LAYERS

MAX_COUNT = 2**40  # upper bound of every integer option (keeps float arithmetic finite)


class BoundedFloat(click.ParamType):
    """A finite number in [low, high] (``open_low``: > low), NaN and infinities rejected: every fraction,
    rate, percentile and fixed cost of the CLI (the range every derived time stays finite and sane in).
    ``unit`` follows the range in the message; ``what`` replaces the range there."""

    def __init__(self, low: float, high: float, *, open_low: bool = False, name: str = "FLOAT", unit: str = "",
                 what: str = ""):  # fmt: skip
        self.low, self.high, self.open_low, self.name = low, high, open_low, name
        self.what = what or (f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]")
        self.what += f" {unit}" if unit else ""

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number in {self.what}", param, ctx)
        above = v > self.low if self.open_low else v >= self.low
        if not (math.isfinite(v) and above and v <= self.high):
            self.fail(f"{value!r} is not in {self.what}", param, ctx)
        return v


MAX_DIGITS = 15  # digits of a list's integer (MAX_COUNT has 13): longer ones are refused unparsed
MAX_LIST_ITEMS = 1000  # values one list option may hold: each is a plan or a candidate to evaluate


def list_items(text) -> list[str]:
    """The comma-separated items of ``text``, stripped. Every list option reads its value with this: an empty
    item (``1,,2``, ``1,``, ``""``) is a ValueError, never dropped."""
    items = [x.strip() for x in str(text).split(",")]
    if not all(items):
        raise ValueError(f"{str(text)!r} has an empty item (give comma-separated values, none empty)")
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"{len(items)} values; at most {MAX_LIST_ITEMS}")
    return items


def check_distinct(values, items) -> None:
    """ValueError naming the first value given twice (``values`` parsed from ``items``, so 2 and 02, or 1
    and 1.0, are the same): every list option takes each value once."""
    seen: dict = {}
    for value, item in zip(values, items, strict=True):
        if value in seen:
            same = "" if seen[value] == item else f" (as {seen[value]!r})"
            raise ValueError(f"{item!r} is given twice{same}; give each value once")
        seen[value] = item


class IntList(click.ParamType):
    """``1,2,4,8``, ``512..8192`` (doubling from START up to END) or ``1024:8192:1024`` (START:END:STEP); at
    most MAX_LIST_ITEMS values, each once."""

    name = "LIST"
    max_items = MAX_LIST_ITEMS

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        text = str(value).replace(" ", "")
        if ":" not in text and ".." not in text:
            try:
                items = list_items(text)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
            if not all(x.isascii() and x.isdigit() and len(x) <= MAX_DIGITS for x in items):
                self.fail(f"{value!r} is not a comma-separated list of integers, START..END or START:END:STEP",
                          param, ctx)  # fmt: skip
            out = [int(x) for x in items]
            try:
                check_distinct(out, items)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
            if any(not 1 <= x <= MAX_COUNT for x in out):
                self.fail(f"{value!r}: every value must be an integer in [1, {MAX_COUNT}]", param, ctx)
            return out
        try:
            if text.count(":") == 2:
                lo, hi, step = (int(x) for x in text.split(":"))
                if not (1 <= lo <= hi <= MAX_COUNT and step >= 1 and (hi - lo) // step < self.max_items):
                    self.fail(
                        f"{value!r}: need 1 <= START <= END <= {MAX_COUNT}, STEP >= 1, "
                        f"at most {self.max_items} values",
                        param,
                        ctx,
                    )
                return list(range(lo, hi + 1, step))
            if ".." in text:
                lo, hi = (int(x) for x in text.split(".."))
                if not 1 <= lo <= hi <= MAX_COUNT:
                    self.fail(f"{value!r}: need 1 <= START <= END <= {MAX_COUNT}", param, ctx)
                out = []
                while lo <= hi:
                    out.append(lo)
                    lo *= 2
                return out
        except ValueError:
            pass
        self.fail(f"{value!r} is not a comma-separated list of integers, START..END or START:END:STEP", param, ctx)


class _BatchOrMax(click.ParamType):
    """A positive integer, or 'max' (returned as None: the largest batch that fits)."""

    name = "N|max"

    def convert(self, value, param, ctx):
        if value is None or value == "max":
            return None
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a positive integer nor 'max'", param, ctx)
        if not 1 <= n <= MAX_COUNT:
            self.fail(f"{value!r} is not in [1, {MAX_COUNT}] (or 'max')", param, ctx)
        return n


class _Count(click.ParamType):
    """A positive integer up to ``maximum`` (MAX_COUNT, 2**40, unless a dimension needs a smaller bound)."""

    name = "INTEGER"

    def __init__(self, maximum: int = MAX_COUNT):
        self.maximum = maximum
        self.top = "2**40" if maximum == MAX_COUNT else f"{maximum:,}"

    def convert(self, value, param, ctx):
        try:
            n = int(str(value).replace("_", ""))
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if not 1 <= n <= self.maximum:
            self.fail(f"{value!r} is not a positive integer up to {self.top}", param, ctx)
        return n


def count_up_to(maximum: int) -> click.ParamType:
    """A positive-integer option type bounded by ``maximum`` (the message states it)."""
    return _Count(maximum)


COUNT = _Count()
LAYERS = _Count(MAX_LAYERS)  # a list of layers is built (costmodel.checks.MAX_LAYERS)
HEADS = _Count(MAX_HEADS)  # the GQA table and kv-heads sweep plan every divisor of N
BATCH_OR_MAX = _BatchOrMax()
FRACTION = BoundedFloat(0.0, 1.0, open_low=True, name="FRACTION")
UTILIZATION = BoundedFloat(0.01, 1.0, name="FRACTION")  # below 1% nothing fits, and sizes stay printable
POSITIVE = BoundedFloat(0.0, MAX_COUNT, open_low=True, name="NUMBER")
PERCENTILE = BoundedFloat(1.0, 99.99, name="PERCENTILE")
NONNEG = BoundedFloat(0.0, math.inf, what="[0, inf)")
EFFICIENCY = BoundedFloat(0.01, 1.0)  # an achieved fraction of a peak: below 1% is not a real system
OVERHEAD_US = BoundedFloat(0.0, 1000.0, unit="µs")  # a fixed cost per kernel, microseconds
