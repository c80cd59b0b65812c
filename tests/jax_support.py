"""What every JAX-against-NumPy test module shares: x64 on for each test (the NumPy reference is float64), and
the relative error of a result against its float64 reference.

Use: ``from jax_support import rel, x64  # noqa: F401`` (importing the fixture makes it autouse there)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def rel(got, ref, floor: float = 0.0) -> float:
    """max |got - ref| / max(max |ref|, floor): the error relative to the reference's largest entry."""
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / max(np.max(np.abs(ref)), floor, 1e-300))
