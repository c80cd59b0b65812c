"""Input checks shared by the cost model: integers in range, strings from a list, one-line error messages.

Every public function of ``costmodel`` validates its arguments with these and raises ``ValueError`` naming the
argument (never TypeError/AttributeError/OverflowError leaking out of arithmetic on a bad value). Pure Python.
"""

from __future__ import annotations

import difflib
import math

# The largest count (dimension, batch, context, layer index) the cost model accepts. Every count must be exact
# as a float64 (2**53) so times and bytes stay finite and exact-integer formulas agree with float ones; no real
# model comes near it (Llama-3.1-405B's largest dimension is 128,256).
MAX_COUNT = 2**53
# Dimensions whose cost-model work grows with the value (one Layer per decoder layer; one plan per divisor of
# the query heads in the GQA table and the kv-heads sweep), bounded far above every real model (Llama-3.1-405B:
# 126 layers, 128 query heads) so every command answers in about a second at the bound.
MAX_LAYERS = 4096
MAX_HEADS = 65536


def show(value) -> str:
    """``value`` for an error message: huge integers by their size (``repr`` of a 5000-digit int raises in
    Python >= 3.11), everything else by a repr cut at 60 characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return f"an integer of about {int((value.bit_length() - 1) * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value) -> bool:
    """True for Python and NumPy integers; False for bools, floats and everything else."""
    return not isinstance(value, bool) and hasattr(value, "__index__") and not isinstance(value, float)


def positive_int(name: str, value) -> int:
    """``value`` as int if it is an integer in [1, MAX_COUNT] (bools rejected, NumPy integers accepted)."""
    if not is_int(value) or not 0 < int(value) <= MAX_COUNT:
        raise ValueError(f"{name} must be a positive integer (at most 2**53); got {show(value)}")
    return int(value)


def bounded_int(name: str, value, high: int, *, low: int = 1) -> int:
    """``value`` as int if it is an integer in [low, high]; the message states the range."""
    if not is_int(value) or not low <= int(value) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high:,}; got {show(value)}")
    return int(value)


def nonneg_int(name: str, value) -> int:
    """``value`` as int if it is an integer in [0, MAX_COUNT]."""
    if not is_int(value) or not 0 <= int(value) <= MAX_COUNT:
        raise ValueError(f"{name} must be a non-negative integer (at most 2**53); got {show(value)}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """``value`` if it is a bool ("false", 0 and 1 are not: no truthiness)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {show(value)}")
    return value


def positive_float(name: str, value) -> float:
    """A finite number > 0 (bools and strings rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite positive number; got {show(value)}")
    try:
        v = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite positive number; got {show(value)}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite positive number; got {show(value)}")
    return v


def fraction_in_unit(name: str, value, *, allow_zero: bool = False) -> float:
    """An efficiency in (0, 1] (or [0, 1] when ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number in (0, 1]; got {show(value)}") from None
    if not (0.0 <= v <= 1.0) or (v == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be in (0, 1]; got {show(value)}")
    return v


def closest_names(name, known) -> list[str]:
    """Up to 3 known names: those containing ``name`` (case-insensitive) first ("a100" -> the A100s),
    then difflib's close matches."""
    known, low = list(known), str(name).lower()
    hits = [k for k in known if low and low in k.lower()]
    hits += [k for k in difflib.get_close_matches(low, known, n=3, cutoff=0.5) if k not in hits]
    return hits[:3]


def suggest(name, known) -> str:
    """' (did you mean ...?)', or '' when nothing is close; used in every unknown-name error."""
    close = closest_names(name, known) if isinstance(name, str) else []
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_name(field_name: str, name, known) -> ValueError:
    known = list(known)
    return ValueError(f"unknown {field_name} {show(name)}{suggest(name, known)}; known: {', '.join(known)}")


def one_of(field_name: str, value, known) -> str:
    """``value`` if it is one of the strings ``known`` (unhashable or non-string values give a ValueError
    too, never a TypeError)."""
    if not isinstance(value, str) or value not in known:
        raise unknown_name(field_name, value, known)
    return value


def number_in(name: str, value, lo: float, hi: float, *, unit: str = "") -> float:
    """``value`` as a float if it is a real number (int or float, not bool or str) in [lo, hi]; the message
    states the range (``unit`` after each bound). Keeps every derived time finite: the range is physical."""
    u = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number from {lo:g}{u} to {hi:g}{u}; got {show(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        v = math.inf
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name} must be a number from {lo:g}{u} to {hi:g}{u}; got {show(value)}")
    return v
