"""Reading user files safely: the text reader (costmodel.textfile: a small UTF-8 regular file, never a pipe)
and bounded JSON.

- JSON: nesting deeper than MAX_JSON_DEPTH is refused before parsing (a 100,000-deep file gives ValueError,
  never RecursionError); NaN, Infinity, numbers that overflow to infinity and duplicate keys are refused.
"""

from __future__ import annotations

import json
import math
import re

from ..textfile import read_text_file  # noqa: F401  (re-exported)

MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings (a conservative count for malformed text)."""
    depth = deepest = 0
    for b in _BRACKETS.findall(_JSON_STRING.sub('""', text)):
        depth += 1 if b in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s} is not finite")
    return v


def _reject_constant(s: str):
    raise ValueError(f"{s} is not a number (NaN and infinities are refused)")


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_json(text: str, *, where: str, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads`` with bounded nesting, finite numbers and unique keys; ValueError naming ``where``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{where}: JSON nested {depth} deep; at most {max_depth} allowed")
    try:
        return json.loads(
            text,
            parse_float=_finite_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # our hooks, and int() refusing a number with too many digits
        raise ValueError(f"{where}: {exc}") from None
