"""The candidate's number format: names, correct rounding from float64, and the unit in the last place.

Formats (IEEE-style binary floats, p = fraction bits, e_min = smallest normal exponent):

    name       storage dtype              p    e_min   eps = 2^-p
    fp64       numpy.float64             52   -1022   2.2e-16
    fp32       numpy.float32             23    -126   1.2e-7
    fp16       numpy.float16             10     -14   9.8e-4
    bf16       ml_dtypes.bfloat16         7    -126   7.8e-3
    fp8_e4m3   ml_dtypes.float8_e4m3fn    3      -6   0.125   (OCP FP8 E4M3, max 448, no inf)
    fp8_e5m2   ml_dtypes.float8_e5m2      2     -14   0.25    (OCP FP8 E5M2, max 57344)

Rounding is round-to-nearest-even, done once from float64: with e = max(floor(log2|x|), e_min) the
representable numbers near x are spaced ulp = 2^(e - p), and round(x) = rint(x / ulp) * ulp (both steps
exact in float64; rint rounds ties to even). We do not use ``x.astype(bfloat16)`` on float64 data because
ml_dtypes converts float64 through float32 and so rounds twice (1 + 2^-8 + 2^-30 becomes 1, not 1 + 2^-7).

ulp(dtype, a) = 2^(max(floor(log2 a), e_min) - p) is the spacing of the format's numbers at magnitude a
(2^(e_min - p), the smallest subnormal, at a = 0) -- ``numpy.spacing`` for fp16/fp32/fp64.
"""

from __future__ import annotations

from typing import NamedTuple

import ml_dtypes
import numpy as np


class NumberFormat(NamedTuple):
    name: str  # canonical short name: "fp32", "bf16", ...
    dtype: np.dtype  # storage dtype of the candidate's arrays
    fraction_bits: int  # p: explicit mantissa bits
    min_exponent: int  # e_min: exponent of the smallest normal number
    max_value: float  # largest finite value
    accumulator: np.dtype  # dtype a matrix product accumulates in (float32, or float64 for fp64)

    @property
    def eps(self) -> float:
        """2^-p: the spacing of the format's numbers just above 1."""
        return 2.0**-self.fraction_bits


def _format(name: str, dtype, accumulator=np.float32) -> NumberFormat:
    info = ml_dtypes.finfo(dtype)
    return NumberFormat(
        name, np.dtype(dtype), int(info.nmant), int(info.minexp), float(info.max), np.dtype(accumulator)
    )


FORMATS: dict[str, NumberFormat] = {
    f.name: f
    for f in (
        _format("fp64", np.float64, np.float64),
        _format("fp32", np.float32),
        _format("fp16", np.float16),
        _format("bf16", ml_dtypes.bfloat16),
        _format("fp8_e4m3", ml_dtypes.float8_e4m3fn),
        _format("fp8_e5m2", ml_dtypes.float8_e5m2),
    )
}

# other spellings accepted for a format name (NumPy / ml_dtypes / torch names)
_ALIASES = {
    "float64": "fp64",
    "double": "fp64",
    "float32": "fp32",
    "float": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float8_e4m3fn": "fp8_e4m3",
    "e4m3": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2",
    "e5m2": "fp8_e5m2",
}


def number_format(dtype) -> NumberFormat:
    """The NumberFormat for a name ("bf16", "bfloat16", "fp32", ...), a NumPy/ml_dtypes dtype or a format."""
    if isinstance(dtype, NumberFormat):
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        key = _ALIASES.get(key, key)
        if key in FORMATS:
            return FORMATS[key]
    elif dtype is not None and not isinstance(dtype, (bool, int, float)):
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            np_dtype = None
        for f in FORMATS.values():
            if np_dtype is not None and np_dtype == f.dtype:
                return f
    raise ValueError(f"dtype must be one of {', '.join(FORMATS)} (or its NumPy dtype); got {dtype!r}")


def _exponent(a: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """max(floor(log2 a), e_min) for a >= 0 (e_min at a = 0), exactly (frexp: a = m 2^e, 0.5 <= m < 1)."""
    _, e = np.frexp(a)  # e = floor(log2 a) + 1 for a > 0; 0 for a = 0
    return np.where(a > 0, np.maximum(e.astype(np.int64) - 1, fmt.min_exponent), fmt.min_exponent)


def ulp(dtype, a) -> np.ndarray | float:
    """Spacing of ``dtype``'s numbers at magnitude |a| (scalar in, float out; array in, array out)."""
    fmt = number_format(dtype)
    arr = np.abs(np.asarray(a, dtype=np.float64))
    if not np.all(np.isfinite(arr)):
        raise ValueError("a must be finite to have a unit in the last place")
    spacing = np.ldexp(1.0, _exponent(arr, fmt) - fmt.fraction_bits)  # same shape as a
    return float(spacing) if spacing.ndim == 0 else spacing


def round_to(x, dtype) -> np.ndarray:
    """x rounded to the nearest ``dtype`` number (ties to even), returned as float64.

    Overflow follows the format: beyond the largest finite value fp16, bf16, fp32 and E5M2 give +-inf and
    E4M3 (no infinity) gives NaN. NaN and +-inf pass through.
    """
    fmt = number_format(dtype)
    x = np.asarray(x, dtype=np.float64)
    if fmt.name == "fp64":
        return x.copy()
    finite = np.isfinite(x)
    xf = np.where(finite, x, 0.0)  # same shape as x
    spacing = np.ldexp(1.0, _exponent(np.abs(xf), fmt) - fmt.fraction_bits)  # same shape as x
    rounded = np.rint(xf / spacing) * spacing  # same shape as x; exact: spacing is a power of two
    rounded = np.where(finite, rounded, x)
    over = np.abs(rounded) > fmt.max_value
    if np.any(over):
        overflow = np.nan if fmt.name == "fp8_e4m3" else np.inf
        rounded = np.where(over, np.copysign(overflow, rounded), rounded)
    return rounded


def cast(x, dtype) -> np.ndarray:
    """x rounded to ``dtype`` and stored in it (the arrays a candidate receives)."""
    fmt = number_format(dtype)
    return round_to(x, fmt).astype(fmt.dtype)  # exact: the values are representable


def to_float64(name: str, value) -> np.ndarray:
    """A candidate's result as float64; ValueError naming it unless it is a floating NumPy array."""
    if not isinstance(value, np.ndarray):
        kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
        raise ValueError(f"{name} must be a NumPy array (e.g. tensor.float().numpy()); got {kind}")
    if not (value.dtype.kind == "f" or value.dtype.name.startswith(("bfloat16", "float8"))):
        raise ValueError(f"{name} must have a floating-point dtype; got {value.dtype}")
    return value.astype(np.float64)
