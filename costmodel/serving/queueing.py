"""The probability pieces of the analytic steady state (costmodel.serving.steady), each a textbook result:

- :func:`poisson_weights`: P(K = k) of a Poisson count, summed term by term, or over Gauss–Hermite points of
  its normal limit for a large mean (the cost never grows with the mean);
- :func:`illinois`: a bracketed root by regula falsi with the Illinois fix;
- :func:`erlang_c_wait`: the chance of waiting for one of n servers and the mean wait (Erlang C), scaled by
  (1 + c²)/2 for service times with squared coefficient of variation c² (Lee & Longton 1959);
- :func:`hawkes_window_moments`: variance of a window sum of a discrete linear Hawkes (self-exciting) count
  process and its covariance with the current count, from the count spectrum E[K]/|1 - H(ω)|² (Hawkes 1971);
- :func:`clustered`: counts over-dispersed as such a process's clusters make them (negative binomial).
"""

from __future__ import annotations

import math

import numpy as np

REL_TOL = 1e-6  # relative precision of the roots
HAWKES_SPAN = 8  # FFT length in windows: the clusters' correlations die out well within it


POISSON_TERMS = 64.0  # above this mean, a Poisson is summed over Gauss–Hermite points of its normal limit
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(15)  # nodes and weights for a standard normal


def poisson_weights(mean: float, *, tail: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(K = k)) for K ~ Poisson(mean): every k up to mean + tail·sqrt(mean) + tail, or, for a large
    mean, 15 Gauss–Hermite points of the normal approximation (so the cost never grows with the mean)."""
    if mean > POISSON_TERMS:
        return np.maximum(mean + math.sqrt(mean) * _GH_Z, 0.0), _GH_W / _GH_W.sum()
    top = int(mean + tail * math.sqrt(mean) + tail)
    k = np.arange(top + 1)
    if mean <= 0:
        return k, (k == 0).astype(float)
    logp = k * math.log(mean) - mean - np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])  # log k! by sums
    p = np.exp(logp - logp.max())
    return k, p / p.sum()


def illinois(f, lo: float, f_lo: float, hi: float, f_hi: float, *, tol: float = REL_TOL) -> float:
    """The root of f in [lo, hi] (f(lo) > 0 >= f(hi)) by regula falsi with the Illinois fix (a few dozen
    evaluations at most, to REL_TOL)."""
    side = 0
    for _ in range(200):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else (lo + hi) / 2
        fx = f(x)
        if fx > 0:
            lo, f_lo = x, fx
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = x, fx
            if side == 1:
                f_lo /= 2
            side = 1
        if hi - lo <= tol * hi or fx == 0:
            break
    return hi


def clustered(rng: np.random.Generator, mean, alpha: float, samples: int) -> np.ndarray:
    """Counts with this mean and variance mean / (1 - α)², as a Hawkes process's clusters make them
    (negative binomial: a Poisson of a gamma-distributed mean)."""
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (samples,) if np.ndim(mean) == 0 else np.shape(mean))
    spread = 1 / (1 - alpha) ** 2 - 1
    if spread <= 0:
        return rng.poisson(mean)
    shape = np.maximum(mean / spread, 1e-12)
    return rng.poisson(rng.gamma(shape, np.where(mean > 0, mean / shape, 0.0)))


def erlang_c_wait(n: int, load: float, hold: float, cv2: float) -> tuple[float, float]:
    """(P(wait), mean wait given waiting) for ``n`` servers offered ``load`` Erlangs (load < n), each busy
    ``hold`` seconds on average with squared coefficient of variation ``cv2``: Erlang C, its wait
    hold/(n - load) for M/M/n, times (1 + cv2)/2 (Lee & Longton). (1, inf) at or beyond n."""
    if load >= n:
        return 1.0, math.inf
    b = 1.0
    for k in range(1, n + 1):  # Erlang B by its recursion, then Erlang C
        b = load * b / (k + load * b)
    c = n * b / (n - load * (1 - b))
    return c, (1 + cv2) / 2 * hold / (n - load)


def hawkes_window_moments(mean: float, first: float, later: float, lags: int) -> tuple[float, float]:
    """(Var d, Cov(d, K)) for K_i, counts per step of a stationary discrete linear Hawkes process with mean
    ``mean`` whose every event adds ``first`` expected events one step later and ``later`` at each of the
    ``lags`` steps after that, and d_i = K_{i-1} + ... + K_{i-lags}. From the count spectrum
    S(ω) = mean / |1 - H(ω)|² (H: the kernel's transform) on an FFT grid HAWKES_SPAN windows long."""
    n = 1 << math.ceil(math.log2(HAWKES_SPAN * (lags + 2)))
    kernel = np.zeros(n)  # (n,) offspring per event in the steps after it
    kernel[1], kernel[2 : lags + 2] = first, later
    window = np.zeros(n)  # (n,) d_i = K_{i-1} + ... + K_{i-lags}
    window[1 : lags + 1] = 1.0
    spectrum = mean / np.abs(1.0 - np.fft.fft(kernel)) ** 2  # (n,)
    w = np.fft.fft(window)
    return float((spectrum * np.abs(w) ** 2).sum()) / n, float(np.real((spectrum * np.conj(w)).sum())) / n
