"""Input validation shared by the reference: every failure is a ValueError naming the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

# ml_dtypes' low-precision floats (bfloat16, float8_*) have dtype.kind "V", not "f".
_EXTRA_FLOAT_NAMES = ("bfloat16", "float8")


def is_float_dtype(dtype: np.dtype) -> bool:
    """True for NumPy floats and ml_dtypes' bfloat16 / float8 types."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype.name.startswith(_EXTRA_FLOAT_NAMES)


def float_array(name: str, value, *, ndim: int | None = None, min_ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a float64 array, or raise ValueError naming ``name``.

    Accepts NumPy arrays of any floating dtype (float16/32/64, bfloat16, float8); rejects integers,
    booleans, complex numbers and objects instead of silently converting them.
    """
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a NumPy floating-point array; got {type(value).__name__}")
    if not is_float_dtype(value.dtype):
        raise ValueError(f"{name} must have a floating-point dtype; got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {value.shape}")
    if min_ndim is not None and value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s); got shape {value.shape}")
    return np.asarray(value, dtype=np.float64)


def positive_int(name: str, value) -> int:
    """Return ``value`` as int if it is a positive integer (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def choice(name: str, value, choices: Iterable) -> object:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def same_shape(name: str, value: np.ndarray, expected: tuple[int, ...]) -> None:
    """Raise ValueError unless ``value.shape == expected``."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}; got {tuple(value.shape)}")


def param_keys(name: str, params: dict, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Raise ValueError on missing or unexpected keys of a parameter dict."""
    if not isinstance(params, dict):
        raise ValueError(f"{name} must be a dict of arrays; got {type(params).__name__}")
    required, optional = set(required), set(optional)
    missing = sorted(required - params.keys())
    extra = sorted(params.keys() - required - optional)
    if missing:
        expected = f"{sorted(required)} (+ optional {sorted(optional)})"
        raise ValueError(f"{name} is missing {missing}; expected keys {expected}")
    if extra:
        raise ValueError(f"{name} has unexpected keys {extra}; expected {sorted(required | optional)}")


def float_dtype(name: str, value) -> np.dtype:
    """Return ``value`` as a floating NumPy dtype (float16/32/64, bfloat16, float8), or raise ValueError.

    Refuses what ``np.dtype`` would reject with TypeError ("foo"), and what it would silently accept as
    something else: None (which NumPy reads as float64), integers, booleans, complex and objects.
    """
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} must be a floating-point dtype such as np.float64; got {value!r}")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a floating-point dtype such as np.float64; got {value!r}") from None
    if not is_float_dtype(dtype):
        raise ValueError(f"{name} must be a floating-point dtype; got {dtype}")
    return dtype


def int_array(name: str, value, shape_text: str) -> np.ndarray:
    """``value`` as a NumPy integer array (any int/uint dtype), or ValueError naming ``name``: refuses
    ragged lists, floats, booleans and strings instead of letting NumPy raise or convert."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer array of shape {shape_text}; got {value!r:.80}") from None
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array of shape {shape_text}; got dtype {arr.dtype}")
    return arr


def positive_real(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite real number > 0: Python or NumPy scalars of any width
    (np.float32 included); bools, arrays, strings, inf and NaN are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive finite real number; got {value!r}")
    out = float(value)
    if not (0.0 < out < math.inf):
        raise ValueError(f"{name} must be a positive finite real number; got {value!r}")
    return out


def flag(name: str, value) -> bool:
    """Return ``value`` if it is a bool (np.bool_ included); 0, 1, "false" and None are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)
