"""The public gradient checker catches the bugs it exists for, in both of its modes."""

import numpy as np
import pytest

from refimpl.gradcheck import assert_grads_close, check_grads


@pytest.mark.parametrize("max_elements", [10_000, 1])  # central differences, VJP inner product
def test_correct_gradient_passes_and_planted_bugs_fail(max_elements, rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))  # (M, K), (K, N)
    dy = rng.standard_normal((4, 5))  # (M, N)
    f = lambda p: np.tanh(p["x"] @ p["w"])  # noqa: E731
    dz = dy * (1 - np.tanh(x @ w) ** 2)  # (M, N)
    good = {"x": dz @ w.T, "w": x.T @ dz}
    report = check_grads(f, {"x": x, "w": w}, good, dy, max_elements=max_elements)
    assert report.max_rel_error < 1e-8
    scaled = {**good, "x": good["x"] * 1.01}
    assert check_grads(f, {"x": x, "w": w}, scaled, dy, max_elements=max_elements).max_rel_error > 1e-3
    wrong_row = {**good, "x": np.roll(good["x"], 1, axis=0)}
    assert check_grads(f, {"x": x, "w": w}, wrong_row, dy, max_elements=max_elements).max_rel_error > 1e-2


def test_report_locates_the_worst_element(rng):
    x = rng.standard_normal((3, 4))  # (3, 4)
    dy = rng.standard_normal((3, 4))  # (3, 4)
    grad = 2 * x * dy  # d<dy, x^2>
    grad[2, 1] += 0.5
    report = check_grads(lambda p: p["x"] ** 2, {"x": x}, {"x": grad}, dy)
    assert report.worst == "x[2, 1]" and report.method["x"] == "central differences"
    with pytest.raises(AssertionError, match=r"x\[2, 1\]"):
        assert_grads_close(lambda p: p["x"] ** 2, {"x": x}, {"x": grad}, dy)


def test_tuple_outputs(rng):
    x = rng.standard_normal(6)  # (6,)
    dy = (rng.standard_normal(6), rng.standard_normal(6))  # one per output
    grad = dy[0] * np.cos(x) + dy[1] * 3 * x**2
    report = check_grads(lambda p: (np.sin(p["x"]), p["x"] ** 3), {"x": x}, {"x": grad}, dy)
    assert report.max_rel_error < 1e-8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"inputs": {}}, "inputs must be a non-empty"),
        ({"grads": {"z": np.ones(3)}}, "not in inputs"),
        ({"grads": {"x": np.ones(4)}}, r"grads\['x'\] must have shape"),
        ({"dy": np.ones(4)}, "dy must match"),
        ({"eps": 0.0}, "eps"),
        ({"inputs": {"x": np.arange(3)}}, "floating-point"),
        ({"rng": 0}, "rng must be a numpy.random.Generator or None"),  # issue 12: was an AttributeError
        ({"f": lambda p: "x"}, "f must return a float array, a real number or a tuple of them"),
        ({"f": None}, "f must be a function"),
        ({"eps": True}, "eps must be a positive finite real"),
        ({"eps": float("inf")}, "eps must be a positive finite real"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"f": lambda p: p["x"] * 2, "inputs": {"x": np.ones(3)}, "grads": {"x": np.full(3, 2.0)}, "dy": np.ones(3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        check_grads(**args)


def test_scalar_valued_f_is_accepted(rng):
    """Issue 12: an f returning a Python float raised AttributeError; a scalar loss is a natural use."""
    x = rng.standard_normal(5)  # (5,)
    report = check_grads(lambda p: float(np.sum(np.sin(p["x"]))), {"x": x}, {"x": np.cos(x)}, 1.0)
    assert report.max_rel_error < 1e-8
    f = lambda p: np.sum(p["x"] ** 2)  # noqa: E731  a NumPy scalar, dy and eps NumPy float32 scalars
    report = check_grads(f, {"x": x}, {"x": 3.0 * 2 * x}, np.float32(3.0), eps=np.float32(1e-4))
    assert report.max_rel_error < 1e-8
