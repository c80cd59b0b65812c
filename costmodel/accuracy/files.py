"""Reading user files safely: a regular file only, size checked before reading, UTF-8 text, bounded JSON.

- Named pipes, directories and devices are refused: the file is opened non-blocking and checked with fstat
  before a byte is read (opening a pipe never blocks, a pipe is never read).
- At most ``max_bytes`` are read (checked from the size first, then by reading one byte more).
- UTF-8 only (a leading byte-order mark is dropped); NUL characters are refused.
- JSON: nesting deeper than MAX_JSON_DEPTH is refused before parsing (a 100,000-deep file gives ValueError,
  never RecursionError); NaN, Infinity, numbers that overflow to infinity and duplicate keys are refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat

MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def read_text_file(path, *, what: str, max_bytes: int) -> str:
    """The text of ``path``; ValueError naming ``what`` and the path for anything but a small UTF-8 file."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what}: the path must be a string or path; got {type(path).__name__}")
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} {name!r}: cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {name!r}: not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{what} {name!r}: {st.st_size} bytes is over the limit of {max_bytes}")
    except ValueError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {name!r}: more than {max_bytes} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {name!r}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ValueError(f"{what} {name!r}: holds NUL characters (not a text file)")
    return text


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
