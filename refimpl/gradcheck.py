"""Check a hand-written gradient against finite differences.

Point it at any function of NumPy arrays::

    report = check_grads(lambda p: f(p["x"], p["w"]), {"x": x, "w": w}, {"x": dx, "w": dw}, dy)
    assert report.max_rel_error <= 1e-7, report

The scalar probed is L(inputs) = <dy, f(inputs)> for a fixed upstream gradient ``dy`` (use a random one:
ones hide transposition and row-mixing bugs). For each input:

* small inputs (``size <= max_elements``): central differences element by element,
  dL/dx_i ~ <dy, f(x + h e_i) - f(x - h e_i)> / 2h, error = max_i |num_i - ana_i| / max(max|ana|, max|num|);
* large inputs: the VJP inner-product test (as JAX's ``check_grads``) on ``n_directions`` random unit
  directions t: <dy, f(x + h t) - f(x - h t)> / 2h against <grad, t>, error relative to ||grad||.

Differences are taken output-wise before the dot product, so rounding scales with |dy|·|f|, not with L.
``f`` may return a float array, a real number (a scalar loss: pass ``dy`` as a real number too, e.g. 1.0 --
for a scalar the upstream gradient is a plain factor), or a tuple of them.
Non-smooth points (ReLU at 0) make finite differences meaningless there: keep inputs away from kinks.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._checks import float_array, positive_int, positive_real

_TINY = 1e-300  # denominators: an all-zero gradient compared with all-zero differences is error 0


class GradCheckReport(NamedTuple):
    max_rel_error: float  # worst relative error over all inputs
    worst: str  # where it occurred, e.g. "w_up[3, 1]" or "x (direction 2)"
    per_input: dict  # name -> relative error
    method: dict  # name -> "central differences" | "vjp inner product"

    def __str__(self) -> str:
        lines = [f"max relative error {self.max_rel_error:.3e} at {self.worst}"]
        for name, err in self.per_input.items():
            lines.append(f"  {name:<12} {err:.3e}  ({self.method[name]})")
        return "\n".join(lines)


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _as_float(name: str, value) -> np.ndarray:
    """A float array, or a real number (Python or NumPy scalar) as a 0-d float64 array."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return np.asarray(float(value))
    return float_array(name, value)


def _outputs(f, inputs: dict) -> tuple:
    outs = _as_tuple(f(inputs))
    try:
        return tuple(_as_float(f"f's output {i}", out) for i, out in enumerate(outs))
    except ValueError as err:
        raise ValueError(f"f must return a float array, a real number or a tuple of them: {err}") from None


def _directional_derivative(f, inputs, name, direction, dys, h) -> float:
    """<dy, f(x + h·t) - f(x - h·t)> / 2h for input ``name`` moved along ``direction``."""
    x = inputs[name]
    plus = _outputs(f, {**inputs, name: x + h * direction})
    minus = _outputs(f, {**inputs, name: x - h * direction})
    total = sum(float(np.sum(dy * (p - m))) for dy, p, m in zip(dys, plus, minus, strict=True))
    return total / (2.0 * h)


def check_grads(
    f: Callable[[dict], np.ndarray | tuple],
    inputs: dict,
    grads: dict,
    dy,
    *,
    eps: float = 1e-5,
    max_elements: int = 2048,
    n_directions: int = 4,
    rng: np.random.Generator | None = None,
) -> GradCheckReport:
    """Compare ``grads`` (the claimed dL/d inputs for L = <dy, f(inputs)>) with finite differences.

    ``f`` takes a dict like ``inputs`` and returns an array or a real number (or a tuple of them, with ``dy``
    a tuple of the same length). ``grads`` may name a subset of ``inputs``; inputs it omits are held fixed.
    ``eps``: a positive finite real; ``rng``: a numpy Generator (or None: seed 0) for the VJP directions.
    Every bad argument is a ``ValueError`` naming it.
    """
    if not callable(f):
        raise ValueError(f"f must be a function of a dict of arrays; got {type(f).__name__}")
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError("inputs must be a non-empty dict of float arrays")
    if not isinstance(grads, dict) or not grads:
        raise ValueError("grads must be a non-empty dict of float arrays")
    inputs = {k: float_array(f"inputs[{k!r}]", v) for k, v in inputs.items()}
    unknown = sorted(set(grads) - set(inputs))
    if unknown:
        raise ValueError(f"grads names {unknown}, which are not in inputs {sorted(inputs)}")
    eps = positive_real("eps", eps)
    positive_int("max_elements", max_elements)
    positive_int("n_directions", n_directions)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator or None; got {rng!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    dys = tuple(_as_float("dy", d) for d in _as_tuple(dy))
    outs = _outputs(f, inputs)
    if len(outs) != len(dys) or any(o.shape != d.shape for o, d in zip(outs, dys, strict=False)):
        raise ValueError(f"dy must match f's output shapes {[o.shape for o in outs]}; got {[d.shape for d in dys]}")

    per_input, method, worst = {}, {}, {}
    for name, grad in grads.items():
        x = inputs[name]
        grad = float_array(f"grads[{name!r}]", grad)
        if grad.shape != x.shape:
            raise ValueError(f"grads[{name!r}] must have shape {x.shape}; got {grad.shape}")
        if x.size <= max_elements:
            numeric = np.empty(x.shape)  # same shape as x
            for idx in np.ndindex(x.shape):
                unit = np.zeros(x.shape)  # one-hot direction e_idx
                unit[idx] = 1.0
                numeric[idx] = _directional_derivative(f, inputs, name, unit, dys, eps)
            abs_err = np.abs(numeric - grad)  # same shape as x
            denom = max(np.max(np.abs(grad), initial=0.0), np.max(np.abs(numeric), initial=0.0), _TINY)
            at = np.unravel_index(int(np.argmax(abs_err)), x.shape) if x.size else ()
            per_input[name] = float(np.max(abs_err, initial=0.0) / denom)
            method[name] = "central differences"
            worst[name] = f"{name}[{', '.join(map(str, at))}]"
        else:
            grad_norm = max(float(np.linalg.norm(grad)), _TINY)
            errs = []
            for _ in range(n_directions):
                t = rng.standard_normal(x.shape)  # same shape as x
                t /= np.linalg.norm(t)
                numeric = _directional_derivative(f, inputs, name, t, dys, eps)
                errs.append(abs(numeric - float(np.sum(grad * t))) / grad_norm)
            k = int(np.argmax(errs))
            per_input[name] = float(errs[k])
            method[name] = "vjp inner product"
            worst[name] = f"{name} (direction {k})"
    name = max(per_input, key=per_input.get)
    return GradCheckReport(per_input[name], worst[name], per_input, method)


def assert_grads_close(f, inputs, grads, dy, *, rtol: float = 1e-7, **kwargs) -> GradCheckReport:
    """``check_grads`` and raise ``AssertionError`` with the report when the worst error exceeds rtol."""
    report = check_grads(f, inputs, grads, dy, **kwargs)
    if not report.max_rel_error <= rtol:
        raise AssertionError(f"gradient check failed (rtol {rtol:.1e}):\n{report}")
    return report
