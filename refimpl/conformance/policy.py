"""The pass rule: flash-attention's, with its tolerances written down.

Per tensor (an output, the log-sum-exp, each gradient), with gold the float64 reference evaluated on the
very inputs the candidate received (already rounded to its format) and base the naive same-format baseline
(baseline.py):

    pass  iff  max|cand - gold| <= k * max|base - gold| + c * ulp(format, max|gold|)
               k = 2 for forward tensors, 3 for gradients, c = 2
    and no NaN / Inf in cand where gold is finite (always a failure, whatever the tolerance).

Source: flash-attention's tests (tests/test_flash_attn.py) assert
``(out - out_ref).abs().max() <= 2 * (out_pt - out_ref).abs().max()`` forward and 3x for dq/dk/dv; its
Hopper tests add ~2 ulp at the output's scale, which keeps a baseline that happens to be exact from
demanding exactness. Positions where gold itself is +-inf (the log-sum-exp of a fully masked row is -inf;
flash-attn stores +inf there) are not compared; the report counts them.

Without a baseline (``Rule(baseline=False)``) the absolute backstop applies instead:

    pass  iff  max|cand - gold| <= ABSOLUTE_ULPS[format] * ulp(format, max(max|gold|, 1))

i.e. a fixed number of units in the last place at the tensor's scale (at least at 1, so tensors that are
nearly all zeros are not held to their tiny ulp). The multipliers sit above what the naive baseline loses
on the kit's default cases by a factor of about 4 (measured in tests/test_conformance_policy.py), so a
correct implementation passes at those sizes; they are looser than the baseline rule where the baseline is
accurate and do not grow with the problem size as rounding error does, which is why the baseline rule is
the default.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .dtypes import NumberFormat, number_format, ulp

# backstop multipliers: ulps at the tensor's scale allowed without a baseline (see module docstring)
# (the naive baseline's worst on the default FFN and attention cases: fp64 15, fp32 11, others 2-2.4 ulps)
ABSOLUTE_ULPS = {"fp64": 64.0, "fp32": 64.0, "fp16": 8.0, "bf16": 8.0, "fp8_e4m3": 8.0, "fp8_e5m2": 8.0}


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
    max_error: float  # max |cand - gold| over positions where gold is finite (inf when cand is NaN/Inf there)
    mean_error: float  # mean of the same
    baseline_error: float  # max |base - gold|
    ratio: float  # max_error / baseline_error (inf when the baseline is exact and the candidate is not)
    tolerance: float  # the bound max_error was held to
    scale: float  # max |gold| over finite positions
    nonfinite: int  # NaN / Inf in cand where gold is finite
    skipped: int  # positions where gold itself is +-inf (not compared)
    passed: bool


def is_gradient(tensor: str) -> bool:
    """Gradients are named "d" + the input's name ("dx", "dw_up", "dq"); everything else is forward."""
    return tensor.startswith("d")


def tolerance(rule: Rule, fmt: NumberFormat, *, gradient: bool, baseline_error: float, scale: float) -> float:
    """The bound on max|cand - gold| for one tensor."""
    if not rule.baseline:
        return ABSOLUTE_ULPS[fmt.name] * ulp(fmt, max(scale, 1.0))
    k = rule.k_backward if gradient else rule.k_forward
    return k * baseline_error + rule.c_ulp * ulp(fmt, scale)


def judge(
    case: str,
    tensor: str,
    cand: np.ndarray,
    gold: np.ndarray,
    *,
    baseline_error: float,
    fmt: NumberFormat,
    rule: Rule,
) -> TensorResult:
    """Judge one candidate tensor (float64, gold's shape) against the golden one."""
    judged = np.isfinite(gold)  # gold's shape
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
    passed = nonfinite == 0 and max_error <= tol
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
    )
