"""The pass rule: flash-attention's, with its tolerances written down.

Per tensor (an output, the log-sum-exp, each gradient), with gold the float64 reference evaluated on the
very inputs the candidate received (already rounded to its format) and base the naive same-format baseline
(baseline.py):

    pass  iff  max|cand - gold| <= k * max|base - gold| + c * ulp(format, max|gold|)
               k = 2 for forward tensors, 3 for gradients, c = 2
    and no NaN / Inf in cand where gold is finite (always a failure, whatever the tolerance).

max|base - gold| is the largest over the seeds of the case kind (cases.pool_baselines): each seed draws the
same computation anew, and on a small tensor (a one-token decode's router gradient is a handful of rounded
dot products) a single draw's baseline can be lucky by a factor of several; the worst of three is steady.

Source: flash-attention's tests (tests/test_flash_attn.py) assert
``(out - out_ref).abs().max() <= 2 * (out_pt - out_ref).abs().max()`` forward and 3x for dq/dk/dv; its
Hopper tests add ~2 ulp at the output's scale, which keeps a baseline that happens to be exact from
demanding exactness. Positions where gold itself is +-inf (the log-sum-exp of a fully masked row is -inf;
flash-attn stores +inf there), or beyond the format's largest finite value (a log-sum-exp of 1e300 at
scale = 1e300 has no fp32 value: its correct rounding is inf), are not compared; the report counts them.

A baseline that could not compute the tensor (non-finite: e.g. scale = 1e300 overflows fp32 scores to inf, so
the naive softmax gives NaN) gives no yardstick: that tensor is held to the absolute backstop below, so a
tolerance is always a finite number (never NaN, never inf).

Without a baseline (``Rule(baseline=False)``) the absolute backstop applies instead:

    pass  iff  max|cand - gold| <= ABSOLUTE_ULPS[format] * ulp(format, max(max|gold|, 1))

i.e. a fixed number of units in the last place at the tensor's scale (at least at 1, so tensors that are
nearly all zeros are not held to their tiny ulp). The multipliers sit above what the naive baseline loses
on the kit's default cases by a factor of about 4 (measured in tests/test_conformance_policy.py), so a
correct implementation passes at those sizes; they are looser than the baseline rule where the baseline is
accurate and do not grow with the problem size as rounding error does, which is why the baseline rule is
the default.

The no-op guard (both rules; it needs no tolerance). A tolerance of a few ulps can exceed the whole signal
in a coarse format (fp8's ulp is 1/8 to 1/4 of the value), so an all-zero kernel could pass. The guard
measures the error against the golden tensor's own spread,

    spread = mean |gold - median(gold)|      (over finite positions)
    fail   iff  mean|cand - gold| >= SPREAD_FRACTION * spread                  (SPREAD_FRACTION = 1/2)

and applies to a tensor where it can tell a right answer from a wrong one: where the rule's bound is below
SPREAD_FRACTION * spread, or the naive baseline's mean error is below SPREAD_FRACTION * spread /
GUARD_BASELINE_MULTIPLE (= 1/6 of the spread). Why it is sound:

* any constant c (zeros included) fails wherever the guard applies: the median minimises the mean absolute
  deviation, so mean|c - gold| >= spread > spread / 2, whatever the tolerance;
* the golden output of another case (independent inputs) is about sqrt(2) spreads away on average: it fails;
* a correct candidate passes: where the bound is below spread / 2 its mean error is below its max error,
  below the bound; elsewhere a candidate at most GUARD_BASELINE_MULTIPLE times as far from the truth, on
  average, as the naive same-format computation (the rule's own multiple for gradients) has a mean error
  below 3 x spread / 6 = spread / 2.

Where neither holds (the format cannot resolve the tensor at all) the guard stays silent for that tensor;
tests/test_conformance_guard.py checks that every check keeps guarded tensors in every format.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .dtypes import NumberFormat, number_format, ulp

# backstop multipliers: ulps at the tensor's scale allowed without a baseline (see module docstring)
# (the naive baseline's worst on the default FFN and attention cases: fp64 15, fp32 11, others 2-2.4 ulps)
ABSOLUTE_ULPS = {"fp64": 64.0, "fp32": 64.0, "fp16": 8.0, "bf16": 8.0, "fp8_e4m3": 8.0, "fp8_e5m2": 8.0}
SPREAD_FRACTION = 0.5  # the no-op guard: mean error must stay below this fraction of the golden spread
GUARD_BASELINE_MULTIPLE = 3.0  # ... where a candidate this many times the naive mean error would pass it


class Rule(NamedTuple):
    """The acceptance rule's constants (defaults: flash-attention's)."""

    k_forward: float = 2.0  # multiple of the baseline's error allowed for forward tensors
    k_backward: float = 3.0  # ... and for gradients
    c_ulp: float = 2.0  # plus this many ulps at the tensor's scale
    baseline: bool = True  # False: judge by the absolute backstop alone

    def describe(self, fmt) -> str:
        fmt = number_format(fmt)
        if not self.baseline:
            return (
                f"|cand - gold| <= {ABSOLUTE_ULPS[fmt.name]:g} ulp({fmt.name}, max(|gold|, 1)) (no baseline)"
            )
        return (
            f"|cand - gold| <= {self.k_forward:g}x baseline + {self.c_ulp:g} ulp({fmt.name}, |gold|) "
            "forward, "
            f"{self.k_backward:g}x baseline + {self.c_ulp:g} ulp for gradients"
        )


class TensorResult(NamedTuple):
    """One tensor of one case, judged."""

    case: str  # e.g. "chunk.s1"
    tensor: str  # "y", "out", "lse", "dx", "dw_up", "dq", ...
    max_error: float  # max |cand - gold| over comparable positions (inf when cand is NaN/Inf there)
    mean_error: float  # mean of the same
    baseline_error: float  # max |base - gold|
    ratio: float  # max_error / baseline_error (inf when the baseline is exact and the candidate is not)
    tolerance: float  # the bound max_error was held to
    scale: float  # max |gold| over comparable positions
    nonfinite: int  # NaN / Inf in cand where gold is finite
    skipped: int  # positions where gold itself is +-inf or beyond the format's range (not compared)
    passed: bool
    spread: float = 0.0  # mean |gold - median(gold)| over finite positions (the no-op guard's yardstick)
    guarded: bool = False  # the no-op guard applied to this tensor
    backstop: bool = False  # the baseline was not finite: the absolute backstop bounded this tensor

    @property
    def noop(self) -> bool:
        """True when the no-op guard failed the tensor (mean error >= SPREAD_FRACTION * spread)."""
        return self.guarded and not self.mean_error < SPREAD_FRACTION * self.spread


def is_gradient(tensor: str) -> bool:
    """Gradients are named "d" + the input's name ("dx", "dw_up", "dq"); everything else is forward."""
    return tensor.startswith("d")


def backstop(fmt: NumberFormat, scale: float) -> float:
    """The absolute backstop: ABSOLUTE_ULPS[format] ulps at max(scale, 1)."""
    return ABSOLUTE_ULPS[fmt.name] * ulp(fmt, max(scale, 1.0))


def tolerance(rule: Rule, fmt: NumberFormat, *, gradient: bool, baseline_error: float, scale: float) -> float:
    """The bound on max|cand - gold| for one tensor: always a finite number (module docstring)."""
    if not rule.baseline:
        return backstop(fmt, scale)
    k = rule.k_backward if gradient else rule.k_forward
    bound = k * float(baseline_error) + rule.c_ulp * ulp(fmt, scale) if math.isfinite(baseline_error) else math.inf
    return bound if math.isfinite(bound) else backstop(fmt, scale)


def comparable(gold: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """Where a candidate in ``fmt`` can be compared with gold: gold finite and within the format's range."""
    return np.isfinite(gold) & (np.abs(np.nan_to_num(gold)) <= fmt.max_value)  # gold's shape


def spread(gold: np.ndarray) -> float:
    """mean |gold - median(gold)| over gold's finite positions (0 when there are none)."""
    values = gold[np.isfinite(gold)]  # (n_finite,)
    return float(np.mean(np.abs(values - np.median(values)))) if values.size else 0.0


def guard_applies(bound: float, baseline_mean: float, spread_: float) -> bool:
    """Where the no-op guard can tell a right answer from a constant (module docstring)."""
    limit = SPREAD_FRACTION * spread_
    return bound < limit or GUARD_BASELINE_MULTIPLE * baseline_mean < limit


def judge(
    case: str,
    tensor: str,
    cand: np.ndarray,
    gold: np.ndarray,
    *,
    baseline_error: float,
    fmt: NumberFormat,
    rule: Rule,
    baseline_mean: float = math.inf,
) -> TensorResult:
    """Judge one candidate tensor (float64, gold's shape) against the golden one: the rule's bound on the max
    error, NaN/Inf, and the no-op guard on the mean error (``baseline_mean``: the naive baseline's mean error;
    inf when unknown, which leaves the guard to tensors whose bound is below half their spread)."""
    judged = comparable(gold, fmt)  # gold's shape
    skipped = int(gold.size - np.count_nonzero(judged))
    scale = float(np.max(np.abs(gold[judged]), initial=0.0))
    nonfinite = int(np.count_nonzero(judged & ~np.isfinite(cand)))
    if nonfinite:
        max_error = mean_error = float("inf")
    else:
        err = np.abs(cand[judged] - gold[judged])  # (n_judged,)
        max_error = float(np.max(err, initial=0.0))
        mean_error = float(np.mean(err)) if err.size else 0.0
    if baseline_error > 0:
        ratio = max_error / baseline_error
    else:
        ratio = 0.0 if max_error == 0 else float("inf")
    tol = tolerance(rule, fmt, gradient=is_gradient(tensor), baseline_error=baseline_error, scale=scale)
    spread_ = spread(gold[judged])
    mean_base = float(baseline_mean) if math.isfinite(baseline_mean) else math.inf
    guarded = guard_applies(tol, mean_base, spread_)
    passed = nonfinite == 0 and max_error <= tol and not (guarded and mean_error >= SPREAD_FRACTION * spread_)
    return TensorResult(
        case,
        tensor,
        max_error,
        mean_error,
        float(baseline_error),
        ratio,
        tol,
        scale,
        nonfinite,
        skipped,
        passed,
        spread_,
        guarded,
        rule.baseline and not math.isfinite(baseline_error),
    )
