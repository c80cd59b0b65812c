"""Number formats: correct rounding and ulp, checked against NumPy and against brute-force enumeration."""

import ml_dtypes
import numpy as np
import pytest

from refimpl.conformance import FORMATS, cast, number_format, round_to, ulp
from refimpl.conformance.dtypes import to_float64

SMALL_FORMATS = {
    "bf16": (ml_dtypes.bfloat16, np.uint16),
    "fp8_e4m3": (ml_dtypes.float8_e4m3fn, np.uint8),
    "fp8_e5m2": (ml_dtypes.float8_e5m2, np.uint8),
}


def _all_finite_values(dtype, bits) -> np.ndarray:
    """Every finite value of a small format, sorted (by enumerating its bit patterns)."""
    n = np.iinfo(bits).max + 1
    with np.errstate(invalid="ignore"):  # the NaN bit patterns
        values = np.arange(n, dtype=np.int64).astype(bits).view(dtype).astype(np.float64)  # (2^bits,)
    return np.unique(values[np.isfinite(values)])


def _nearest_even(x: np.ndarray, grid: np.ndarray, dtype, bits) -> np.ndarray:
    """Brute-force round-to-nearest, ties to the value with an even bit pattern."""
    idx = np.clip(np.searchsorted(grid, x), 1, grid.size - 1)
    lo, hi = grid[idx - 1], grid[idx]
    pick_hi = (hi - x) < (x - lo)
    tie = (hi - x) == (x - lo)
    hi_even = (np.array(hi).astype(dtype).view(bits) % 2) == 0
    return np.where(pick_hi | (tie & hi_even), hi, lo)


@pytest.mark.parametrize("name", sorted(SMALL_FORMATS))
def test_round_to_is_nearest_even_by_enumeration(name, rng):
    dtype, bits = SMALL_FORMATS[name]
    grid = _all_finite_values(dtype, bits)
    interior = grid[(grid > -grid.max() / 2) & (grid < grid.max() / 2)]
    midpoints = (interior[:-1] + interior[1:]) / 2  # exact ties, in float64
    randoms = rng.uniform(-1, 1, 4000) * 2.0 ** rng.integers(-20, 8, 4000)  # many binades, subnormals too
    x = np.concatenate([midpoints, randoms, interior])
    np.testing.assert_array_equal(round_to(x, name), _nearest_even(x, grid, dtype, bits))


@pytest.mark.parametrize("name, np_dtype", [("fp16", np.float16), ("fp32", np.float32)])
def test_round_to_matches_numpy_casts(name, np_dtype, rng):
    x = rng.standard_normal(5000) * 2.0 ** rng.integers(-30, 12, 5000)  # (5000,) incl. fp16 subnormals
    np.testing.assert_array_equal(round_to(x, name), x.astype(np_dtype).astype(np.float64))


def test_round_to_rounds_once_where_ml_dtypes_rounds_twice():
    x = np.array([1 + 2.0**-8 + 2.0**-30])  # just above the tie between 1 and 1 + 2^-7
    assert round_to(x, "bf16")[0] == 1 + 2.0**-7
    assert x.astype(ml_dtypes.bfloat16).astype(np.float64)[0] == 1.0  # float64 -> float32 -> bf16


def test_round_to_overflow_and_nonfinite():
    x = np.array([1e6, -1e6, np.inf, np.nan])
    assert np.array_equal(round_to(x, "fp16")[:3], [np.inf, -np.inf, np.inf])
    assert np.isnan(round_to(x, "fp8_e4m3")[:2]).all()  # E4M3 has no infinity
    assert round_to(np.array([448.0]), "fp8_e4m3")[0] == 448.0
    assert np.isnan(round_to(x, "bf16")[3])


@pytest.mark.parametrize("name, np_dtype", [("fp16", np.float16), ("fp32", np.float32), ("fp64", np.float64)])
def test_ulp_matches_numpy_spacing(name, np_dtype, rng):
    x = np.abs(rng.standard_normal(500)) * 2.0 ** rng.integers(-20, 10, 500)  # (500,)
    x = x.astype(np_dtype)
    np.testing.assert_array_equal(ulp(name, x), np.spacing(x).astype(np.float64))


@pytest.mark.parametrize("name", sorted(SMALL_FORMATS))
def test_ulp_is_the_gap_to_the_next_value(name):
    dtype, bits = SMALL_FORMATS[name]
    grid = _all_finite_values(dtype, bits)
    positive = grid[grid >= 0]
    np.testing.assert_array_equal(ulp(name, positive[:-1]), np.diff(positive))
    assert ulp(name, 0.0) == positive[1]  # the smallest subnormal


def test_eps_and_formats():
    assert number_format("bf16").eps == 2.0**-7
    assert number_format("fp32").eps == np.finfo(np.float32).eps
    assert number_format("fp8_e4m3").max_value == 448.0
    assert set(FORMATS) == {"fp64", "fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2"}


@pytest.mark.parametrize("spelling", ["bf16", "bfloat16", "BF16", "torch.bfloat16", ml_dtypes.bfloat16])
def test_number_format_spellings(spelling):
    assert number_format(spelling).name == "bf16"


@pytest.mark.parametrize("bad", ["int8", "fp12", np.int32, None, 3])
def test_number_format_rejects_unknown(bad):
    with pytest.raises(ValueError, match="dtype must be one of"):
        number_format(bad)


def test_cast_stores_in_the_format():
    x = np.array([1 + 2.0**-8 + 2.0**-30, -3.3])
    out = cast(x, "bf16")
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out.astype(np.float64), round_to(x, "bf16"))


def test_ulp_rejects_nonfinite():
    with pytest.raises(ValueError, match="finite"):
        ulp("fp32", np.inf)


def test_to_float64_names_the_result():
    with pytest.raises(ValueError, match="out must be a NumPy array"):
        to_float64("out", [1.0, 2.0])
    with pytest.raises(ValueError, match="floating-point dtype"):
        to_float64("out", np.arange(3))
