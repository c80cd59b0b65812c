"""The Hawkes window moments of the steady state (costmodel.serving.queueing): the half-spectrum sums equal
the full complex FFT's, and windows beyond HAWKES_EXACT_LAGS, extrapolated, agree with a grid long enough
for the clusters' correlations to die out."""

import numpy as np
import pytest

from costmodel.serving import queueing as Q


def full_spectrum_moments(mean, first, later, lags, span):
    """The textbook form: the count spectrum on a complex FFT grid ``span`` windows long."""
    n = 1 << int(np.ceil(np.log2(span * (lags + 2))))
    one, rest, window = np.zeros(n), np.zeros(n), np.zeros(n)
    one[1], rest[2 : lags + 2], window[1 : lags + 1] = 1.0, 1.0, 1.0
    h = first * np.fft.fft(one) + later * np.fft.fft(rest)
    s = mean / np.abs(1.0 - h) ** 2
    w = np.fft.fft(window)
    return float(np.sum(s * np.abs(w) ** 2)) / n, float(np.real(np.sum(s * np.conj(w)))) / n


def draws(seed, count, most):
    """(mean, first, later-total) triples with branching first + later·lags at most ``most``."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        first = rng.uniform(0.0, most)
        yield 10 ** rng.uniform(-2, 1.5), first, rng.uniform(0.0, most - first)


@pytest.mark.parametrize("lags", [1, 2, 299, 1200, Q.HAWKES_EXACT_LAGS])
def test_the_half_spectrum_sums_are_the_full_ones(lags):
    for mean, first, total in draws(lags, 8, 0.95):
        got = Q.hawkes_window_moments(mean, first, total / lags, lags)
        want = full_spectrum_moments(mean, first, total / lags, lags, Q.HAWKES_SPAN)
        assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("lags", [Q.HAWKES_EXACT_LAGS + 1, 9000])
def test_long_windows_are_extrapolated_to_the_converged_moments(lags):
    """Against a grid 64 windows long (the 8-window grid's own difference from it is up to 1e-3 here)."""
    for mean, first, total in draws(lags, 6, 0.8):
        var, cov = Q.hawkes_window_moments(mean, first, total / lags, lags)
        want_var, want_cov = full_spectrum_moments(mean, first, total / lags, lags, 64)
        assert var == pytest.approx(want_var, rel=1e-3) and cov == pytest.approx(want_cov, rel=1e-3)
