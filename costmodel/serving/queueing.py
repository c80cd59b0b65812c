"""The probability pieces of the analytic steady state (costmodel.serving.steady), each a textbook result:

- :func:`poisson_weights`: P(K = k) of a Poisson count over the integers where it has weight;
  :func:`count_weights`: a count with a given mean and variance (Poisson or negative binomial), also as one
  of its members sees it (size-biased);
- :func:`illinois`: a bracketed root by regula falsi with the Illinois fix;
- :func:`erlang_c_wait`: the chance of waiting for one of n servers and the mean wait (Erlang C), scaled by
  (1 + c²)/2 for service times with squared coefficient of variation c² (Lee & Longton 1959);
- :func:`hawkes_window_moments`: variance of a window sum of a discrete linear Hawkes (self-exciting) count
  process and its covariance with the current count, from the count spectrum E[K]/|1 - H(ω)|² (Hawkes 1971);
- :func:`clustered`: counts over-dispersed as such a process's clusters make them (negative binomial).
"""

from __future__ import annotations

import functools
import math

import numpy as np

REL_TOL = 1e-6  # relative precision of the roots
HAWKES_SPAN = 8  # FFT length in windows: the clusters' correlations die out well within it
HAWKES_EXACT_LAGS = 4096  # windows up to this many steps on the grid itself; longer ones extrapolated
HAWKES_BASE_LAGS = 1024  # the two windows the extrapolation starts from: this and twice this


@functools.lru_cache(maxsize=256)
def poisson_weights(mean: float, *, tail: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(K = k)) for K ~ Poisson(mean), every integer k within mean ± (tail·sqrt(mean) + tail) (what lies
    outside weighs below 1e-12): integers, because the iteration time is a step function of the token count
    (tile and wave quantization), which a few quadrature points of a normal limit would miss. Cached (the
    same mean comes back within one solve); the arrays are read-only."""
    k, p = _poisson_weights(float(mean), tail)
    k.flags.writeable = p.flags.writeable = False
    return k, p


def _poisson_weights(mean: float, tail: float) -> tuple[np.ndarray, np.ndarray]:
    if mean <= 0:
        return np.zeros(1), np.ones(1)
    spread = tail * math.sqrt(mean) + tail
    lo = max(0, int(mean - spread))
    k = np.arange(lo, int(mean + spread) + 1)
    log_fact = math.lgamma(lo + 1) + np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])  # log k! by sums
    logp = k * math.log(mean) - mean - log_fact
    p = np.exp(logp - logp.max())
    return k.astype(float), p / p.sum()


def count_weights(mean: float, var: float, *, size_biased: bool = False, top: int | None = None,
                  tail: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, P(N = n)) for a count N of this ``mean`` and variance ``var``: Poisson when var <= mean, else
    negative binomial NB(r, p), r = mean²/(var - mean), p = mean/var, over every integer within ``tail``
    standard deviations. ``size_biased``: N as one of its members sees it, n·P(N = n)/E N, which is
    1 + Poisson(mean), or 1 + NB(r + 1, p). ``top``: N capped there (the mass beyond lands on top)."""
    shift = float(size_biased)
    if mean <= 0:
        return np.full(1, shift), np.ones(1)
    if var <= mean * (1 + 1e-9):  # Poisson(mean), shifted by the size bias
        r, p, mu, sd = math.inf, 1.0, mean, math.sqrt(mean)
    else:
        p, r = mean / var, mean**2 / (var - mean) + shift
        mu = r * (1 - p) / p
        sd = math.sqrt(mu / p)
    lo, hi = max(0, int(mu - tail * sd - tail)), int(mu + tail * sd + tail)
    if top is not None:
        if lo + shift >= top:
            return np.full(1, float(top)), np.ones(1)
        hi = min(hi, int(top - shift))
    k = np.arange(lo, hi + 1, dtype=float)  # (n,)
    if math.isinf(r):  # log P(k) = k log μ - μ - log k!
        logp = k * math.log(mu) - mu - (math.lgamma(lo + 1) + np.concatenate([[0.0], np.cumsum(np.log(k[1:]))]))
    else:  # log P(k) = lgamma(k + r) - lgamma(r) - log k! + r log p + k log(1 - p), by sums from lo
        first = math.lgamma(lo + r) - math.lgamma(r) - math.lgamma(lo + 1) + r * math.log(p) + lo * math.log1p(-p)
        steps = np.log((k[1:] - 1 + r) / k[1:]) + math.log1p(-p)  # log P(k) - log P(k - 1)
        logp = first + np.concatenate([[0.0], np.cumsum(steps)])
    w = np.exp(logp)
    if top is not None and k[-1] + shift >= top:  # the mass beyond the cap lands on it
        w[-1] = max(0.0, 1.0 - w[:-1].sum())
    return k + shift, w / w.sum()


def illinois(f, lo: float, f_lo: float, hi: float, f_hi: float, *, tol: float = REL_TOL) -> float:
    """The root of f in [lo, hi] (f(lo) > 0 >= f(hi)) by regula falsi with the Illinois fix (a few dozen
    evaluations at most, to REL_TOL); a bisection step where f is infinite."""
    side = 0
    for _ in range(200):
        finite = math.isfinite(f_lo) and math.isfinite(f_hi) and f_hi != f_lo
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if finite else (lo + hi) / 2
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


@functools.lru_cache(maxsize=32)
def _hawkes_transforms(lags: int) -> tuple[np.ndarray, ...]:
    """On a grid HAWKES_SPAN windows long, the real FFTs (half spectrum: every input is real) of a unit event
    one step later and of unit events at each of the ``lags`` steps after that, as real and imaginary parts,
    and the weights that turn a half-spectrum sum into the full one's mean for Var d (|W|²) and Cov(d, K)
    (Re W), W the transform of the window d_i = K_{i-1} + ... + K_{i-lags} (read-only)."""
    n = 1 << math.ceil(math.log2(HAWKES_SPAN * (lags + 2)))
    one, later, window = np.zeros(n), np.zeros(n), np.zeros(n)  # (n,) each
    one[1], later[2 : lags + 2], window[1 : lags + 1] = 1.0, 1.0, 1.0
    f_one, f_later, f_window = np.fft.rfft(one), np.fft.rfft(later), np.fft.rfft(window)  # (n/2 + 1,) each
    half = np.full(f_one.shape, 2.0 / n)  # bins 1 … n/2 - 1 stand for their mirror images too
    half[0] = half[-1] = 1.0 / n
    out = (f_one.real, f_one.imag, f_later.real, f_later.imag, half * np.abs(f_window) ** 2, half * f_window.real)
    for a in out:
        a.flags.writeable = False
    return out


def hawkes_window_moments(mean: float, first: float, later: float, lags: int) -> tuple[float, float]:
    """:func:`hawkes_grid_moments` for ``lags`` up to HAWKES_EXACT_LAGS; beyond, its cost (an FFT grid
    HAWKES_SPAN·lags long) would grow with the output length, so the moments are extrapolated from two
    windows of HAWKES_BASE_LAGS and twice that with the same total kernel ``later · lags`` (Richardson):
    both grow affinely in the window as it lengthens at fixed branching, Var d = A·lags + B and
    Cov(d, K) = A' + B'/lags up to O(1/lags²) (tests/test_serving_queueing.py checks them against a grid
    many windows long)."""
    if lags <= HAWKES_EXACT_LAGS:
        return hawkes_grid_moments(mean, first, later, lags)
    lo, hi = HAWKES_BASE_LAGS, 2 * HAWKES_BASE_LAGS
    branching = later * lags  # the events one event adds over the whole window, kept
    v_lo, c_lo = hawkes_grid_moments(mean, first, branching / lo, lo)
    v_hi, c_hi = hawkes_grid_moments(mean, first, branching / hi, hi)
    slope_v = 2 * v_hi / hi - v_lo / lo  # Var d / lags = A + B / lags: A from the two windows
    slope_c = 2 * c_hi - c_lo  # Cov = A' + B' / lags: A'
    return slope_v * lags + (v_lo - slope_v * lo), slope_c + (c_lo - slope_c) * lo / lags


def hawkes_grid_moments(mean: float, first: float, later: float, lags: int) -> tuple[float, float]:
    """(Var d, Cov(d, K)) for K_i, counts per step of a stationary discrete linear Hawkes process with mean
    ``mean`` whose every event adds ``first`` expected events one step later and ``later`` at each of the
    ``lags`` steps after that, and d_i = K_{i-1} + ... + K_{i-lags}. From the count spectrum
    S(ω) = mean / |1 - H(ω)|² (H: the kernel's transform, first·e^{-iω} + later·Σ_j e^{-ijω}) on an FFT grid
    HAWKES_SPAN windows long: Var d = mean over the grid of S·|W|², Cov(d, K) = of S·Re W (half the grid,
    the other half mirrors it; elementwise sums, not BLAS dot products, whose threads stall a busy machine)."""
    one_re, one_im, rest_re, rest_im, w2, w_re = _hawkes_transforms(lags)
    re = 1.0 - first * one_re - later * rest_re  # (n/2 + 1,)
    im = first * one_im + later * rest_im
    spectrum = mean / (re * re + im * im)
    return float((spectrum * w2).sum()), float((spectrum * w_re).sum())
