"""Arithmetic in one number format, as a straightforward kernel does it: the naive baseline's building block.

Every op takes format values, computes in the format's accumulator dtype (float32; float64 for fp64) and
rounds its result once to the format. How a sum accumulates matters where the accumulator's own rounding
shows, i.e. for fp32 and fp64 (for bf16, fp16 and fp8 a float32 accumulation is far finer than the final
rounding). There a plain loop -- and torch's matrix-vector product on a CPU, and a GPU kernel along its K tiles
-- adds one term at a time, which loses more than BLAS's blocked order: measured on 64-term float32 dot
products, torch's ``x @ W`` for one row errs about twice as much as NumPy's sgemm (99th percentile 1.6 vs 0.8
units of 2^-24 relative to sum |x w|), enough to fail a one-token decode case held to 3x a BLAS baseline.
So for fp32 and fp64 every contraction and sum with at most SEQUENTIAL_STEPS multiply-adds is accumulated
strictly one term after another (each product and each addition rounded in the accumulator dtype, as a loop
without fused multiply-add); larger ones (the whole score matrix of a long attention, where BLAS and torch
use the same blocked sgemm) use BLAS's order, because the emulation would cost seconds per product.
"""

from __future__ import annotations

import itertools

import numpy as np

from .dtypes import NumberFormat, round_to

SEQUENTIAL_STEPS = 1 << 22  # multiply-adds of a product emulated one term at a time (fp32, fp64)
_SEQUENTIAL_FORMATS = ("fp32", "fp64")


class Naive:
    """Arithmetic in one format: each op from format values, in the accumulator dtype, rounded once."""

    def __init__(self, fmt: NumberFormat):
        self.fmt = fmt
        self.acc = fmt.accumulator.type
        self.sequential = fmt.name in _SEQUENTIAL_FORMATS

    def a(self, x: np.ndarray) -> np.ndarray:
        """Operands in the accumulator dtype (exact: format values are representable there)."""
        return np.asarray(x).astype(self.acc)

    def r(self, x: np.ndarray) -> np.ndarray:
        """The result of one op rounded to the format (float64 holding format values)."""
        return round_to(np.asarray(x, dtype=np.float64), self.fmt)

    def dot(self, subscripts: str, x: np.ndarray, y: np.ndarray, fast=None) -> np.ndarray:
        """A two-operand contraction (einsum ``subscripts``) accumulated in the accumulator dtype, rounded once.

        ``fast()``: the same product in BLAS's order (a matmul of pre-arranged operands), used when the
        sequential emulation does not apply (module docstring)."""
        return self.r(self.contract(subscripts, x, y, fast))

    def contract(self, subscripts: str, x: np.ndarray, y: np.ndarray, fast=None) -> np.ndarray:
        """The contraction in the accumulator dtype, not rounded to the format (for a fused epilogue)."""
        ins, out = subscripts.split("->")
        sx, sy = ins.split(",")
        summed = [c for c in sx if c in sy and c not in out]
        sizes = {**dict(zip(sx, np.shape(x), strict=True)), **dict(zip(sy, np.shape(y), strict=True))}
        steps = int(np.prod([sizes[c] for c in summed])) * int(np.prod([sizes[c] for c in out]))
        if not (self.sequential and summed and steps <= SEQUENTIAL_STEPS):
            return fast() if fast is not None else np.einsum(subscripts, self.a(x), self.a(y), optimize=True)
        xa, ya = self.a(x), self.a(y)
        kept = f"{''.join(c for c in sx if c not in summed)},{''.join(c for c in sy if c not in summed)}->{out}"
        total = None
        for index in itertools.product(*(range(sizes[c]) for c in summed)):
            at = dict(zip(summed, index, strict=True))
            x_at = xa[tuple(at.get(c, slice(None)) for c in sx)]
            y_at = ya[tuple(at.get(c, slice(None)) for c in sy)]
            term = np.einsum(kept, x_at, y_at)  # out's shape: the products, each rounded
            total = term if total is None else total + term  # one rounding per addition, in order
        return total

    def sum(self, x: np.ndarray, axis, keepdims: bool = False) -> np.ndarray:
        """Sum over ``axis`` (an int or a tuple) in the accumulator dtype, term after term (fp32, fp64) or
        pairwise (NumPy's order, for the narrower formats whose final rounding hides it); not rounded."""
        xa = self.a(x)
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(a % xa.ndim for a in axes)
        if not self.sequential or xa.size > SEQUENTIAL_STEPS:
            return xa.sum(axis=axes, keepdims=keepdims)
        moved = np.moveaxis(xa, axes, tuple(range(len(axes))))  # summed axes first
        flat = moved.reshape(-1, *moved.shape[len(axes):])  # (n_terms, rest)
        total = np.zeros(flat.shape[1:], dtype=self.acc)
        for term in flat:
            total = total + term
        if keepdims:
            total = np.expand_dims(total, axes)
        return total

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.r(self.a(x) * self.a(y))

    def affine(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """r(x w + b): a matrix product with its bias added in the accumulator, one rounding (torch addmm)."""
        product = self.contract("md,df->mf", x, w)  # (M, F) in the accumulator dtype
        return self.r(product if b is None else product + self.a(b))
