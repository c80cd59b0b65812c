"""The parity suite's shared pieces: the row type, the error measures, the tolerance rule, the input context.

Error = max |got - ref| / max |ref| per array (gradients: the worst over the inputs and every parameter; a
gradient that is analytically ~0 is measured against 1e-6 x the op's largest gradient instead of its own
rounding noise). Tolerances: float64 1e-12 forward, 1e-10 gradients; float32 / bfloat16 FACTOR x the error of
a naive same-dtype computation (flash-attention's rule), as verify.py's docstring says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import ml_dtypes
import numpy as np

from . import naive

DTYPES = ("float64", "float32", "bfloat16")
FLOAT64_TOLERANCE = {"forward": 1e-12, "grad": 1e-10}
FACTOR = {"forward": 2.0, "grad": 3.0}  # x the naive same-dtype error (flash-attention's rule)
ZERO_GRAD_FLOOR = 1e-6  # relative to the op's largest gradient


class ParityRow(NamedTuple):
    op: str  # e.g. "ffn swiglu", "attention gqa T<S padded"
    kind: str  # "forward" or "grad"
    dtype: str
    max_rel_error: float  # the JAX port against the float64 reference
    tolerance: float
    naive_error: float | None  # the naive same-dtype computation's error (None for float64)
    passed: bool


def rel(got, ref) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))


def rel_grads(got: dict, ref: dict) -> float:
    floor = ZERO_GRAD_FLOOR * max(float(np.max(np.abs(r))) for r in ref.values())
    worst = 0.0
    for name, r in ref.items():
        diff = np.max(np.abs(np.asarray(got[name], np.float64) - r))
        worst = max(worst, float(diff / max(float(np.max(np.abs(r))), floor, 1e-300)))
    return worst


def make_rows(op, dtype, errors: dict, naive_errors: dict | None) -> list[ParityRow]:
    rows = []
    for kind, err in errors.items():
        if naive_errors is None:
            tol, nerr = FLOAT64_TOLERANCE[kind], None
        else:
            nerr = naive_errors[kind]
            tol = FACTOR[kind] * nerr
        rows.append(ParityRow(op, kind, dtype, err, tol, nerr, bool(err <= tol)))
    return rows


class Ctx:
    """Random inputs rounded to the test dtype: ``arr`` gives the float64 copy (reference), ``jx`` the JAX
    array in the dtype, ``lo`` the float32 copy the naive code takes."""

    def __init__(self, dtype: str, seed: int):
        self.dtype, self.rng = dtype, np.random.default_rng(seed)
        self.np_dtype = {"float64": np.float64, "float32": np.float32, "bfloat16": ml_dtypes.bfloat16}[dtype]
        self.rnd = None if dtype == "float64" else naive.rounder(dtype)

    def arr(self, a):
        return np.asarray(np.asarray(a).astype(self.np_dtype), np.float64)

    def jx(self, a):
        return jnp.asarray(np.asarray(a).astype(self.np_dtype))

    def tree(self, d: dict, fn: Callable) -> dict:
        return {k: fn(a) for k, a in d.items()}

    def lo(self, a):
        return np.asarray(a, np.float32)
