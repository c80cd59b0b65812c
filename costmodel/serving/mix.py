"""The iterations a steady state is made of, and their expectations over the decoders' spread (docs/serving.md).

For requests with a sample of prompt lengths P and outputs O on one replica (its IterationTable):

    base(d)  = tokens(d) + logits(d) + attn_dec(d at the mean context)     a decode-only iteration of d
    X(d, K)  = ⌊w/q⌋·(tokens(d + q) - tokens(d)) + tokens(d + r) - tokens(d)   K prompts beside d decodes,
               + K·attn_pre(P) + logits(d + K) - logits(d)                 w = K·P tokens in chunks of
                                                                           q = C - d, r = w mod q

Tile and wave quantization make tokens(n) a step function of the token count, so an expectation over the
decoders d cannot be read at the mean d: every integer d counts, weighted by the distribution of d (Poisson,
or negative binomial when the decoders cluster; never above the requests admitted at once). base and X are
tabulated over every integer d up to that cap; a decoder's view of d is size-biased. Var d comes from the
discrete linear Hawkes process decoders and prompts form (:meth:`IterationMix.spread`); the slope b it needs
is itself averaged over that spread (a step inside a narrow spread would call b huge), so the two are solved
together.
"""

from __future__ import annotations

import math

import numpy as np

from .queueing import count_weights, hawkes_window_moments, poisson_weights
from .table import IterationTable

SPREAD_ROUNDS, SPREAD_TOL = 60, 1e-3  # the fixed point of Var d and the slope b averaged over it
SPREAD_MAX = 100.0  # Var d beyond this times (1 + E d)²: the clusters never die out
MAX_TABLE = 2**22  # entries of the X(d, K) table (32 MiB); a K beyond it is computed, not tabulated


class IterationMix:
    """base(d), X(d, K) and their expectations for requests of lengths ``prompt``/``output`` (sample arrays)
    on ``table``'s replica with a ``budget`` of tokens per iteration and at most ``cap`` requests admitted."""

    def __init__(self, table: IterationTable, prompt, output, *, budget: int, cap: float):
        p, o = np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64)
        self.table, self.C = table, budget
        self.p_values, counts = np.unique(p, return_counts=True)  # distinct prompts and their weights
        self.p_weights = counts / counts.sum()
        self.p_mean, self.d_mean = float(p.mean()), float((o - 1).mean())
        g = np.linspace(0.0, 1.0, 17)  # attention is piecewise linear in the context: 17 points per request
        ctx = p[:, None] + 1 + g[None, :] * np.maximum(o - 2, 0)[:, None]  # (n, 17)
        c, m = table.per_sequence(ctx)  # (J, n, 17) per layer group
        steps = max((o - 1).sum(), 1)
        self.c_mean = (c.mean(axis=2) * (o - 1)).sum(axis=1) / steps  # (J,) per decode, over the decode steps
        self.m_mean = (m.mean(axis=2) * (o - 1)).sum(axis=1) / steps  # (J,)
        self.core_pre = float(table.prompt_attention(p).mean())
        self.d_top = max(int(cap), 1)  # decoders in one iteration: never more than are admitted at once
        # (D,) 0 … 2·d_top + 1: the expectations stop at d_top + 1, a full server's mean-field d (saturation
        # searched from above) goes beyond
        self._d = np.arange(min(2 * self.d_top, budget) + 2.0)
        self._one_x = np.tensordot(self.p_weights, self._chunked(self._d, self.p_values[:, None]), axes=1)  # (D,)
        self._base = self._base_formula(self._d)  # (D,)
        self._lumps = np.zeros((0, self._d.size))  # (K, D): X(d, K) for K = 0, 1, … and every d of the table
        self.kappa = 1.0  # Var d / E d of the last spread: where the next fixed point starts
        self._last_spread: tuple = (None, None)  # ((rate, tbar), its spread)

    # --- base and X ------------------------------------------------------------------------------------
    def _base_formula(self, d):
        t = self.table
        att = t.kernels(np.multiply.outer(self.c_mean, d), np.multiply.outer(self.m_mean, d))
        return t.lin(d) + t.logits(d) + np.where(d > 0, att, 0.0)

    def base(self, d):
        """A decode-only iteration of d sequences at the mean context (no decode kernel for d = 0: what is left
        is the weights' stream, tokens(1), that a prefill-only iteration's X(0, K) builds on). Inside the table
        from it (linear between integers), beyond from the formula."""
        d = np.asarray(d, dtype=float)
        if np.all(d <= self._d[-1]):
            return np.interp(d, self._d, self._base)
        return self._base_formula(d)

    def _chunked(self, d, w):
        """tokens(…) of w prompt tokens cut into chunks of q = C - d beside d decoders (broadcast)."""
        t = self.table
        q = np.maximum(np.floor(self.C - d), 1.0)
        lin_d = np.interp(d, t.n, t.lin_s)
        full = np.interp(d + q, t.n, t.lin_s) - lin_d
        nfull, r = np.floor(w / q), np.mod(w, q)
        return nfull * full + np.where(r > 0, np.interp(d + r, t.n, t.lin_s) - lin_d, 0.0)

    def _lumps_formula(self, d, k):
        t = self.table
        x = self._chunked(d, k * self.p_mean)
        if self.p_values.size > 1 and np.any(k == 1):  # one prompt: averaged over the sample's prompts
            near = np.interp(d, self._d, self._one_x)
            if not np.all(d <= self._d[-1]):
                shape = self.p_values.shape + (1,) * d.ndim
                far = np.tensordot(self.p_weights, self._chunked(d, self.p_values.reshape(shape)), axes=1)
                near = np.where(d <= self._d[-1], near, far)
            x = np.where(k == 1, near, x)
        logits = np.interp(d + k, t.n, t.logits_s) - np.where(d > 0, np.interp(d, t.n, t.logits_s), 0.0)
        return x + k * self.core_pre + logits

    def _tabulated(self, top: int) -> bool:
        """Whether rows K = 0 … ``top`` fit in MAX_TABLE (a server far past saturation meets K in the millions:
        those are computed from the formula, the same values, never tabulated)."""
        return max(top + 1, 2 * len(self._lumps)) * self._d.size <= MAX_TABLE

    def _rows(self, top: int) -> np.ndarray:
        """The X table with rows K = 0 … at least ``top``, grown (doubling) when a larger K comes."""
        if top >= len(self._lumps):
            k = np.arange(len(self._lumps), max(top + 1, 2 * len(self._lumps)), dtype=float)  # (k,)
            self._lumps = np.concatenate([self._lumps, self._lumps_formula(self._d[None, :], k[:, None])])
        return self._lumps

    def lumps(self, d, k) -> np.ndarray:
        """X(d, K), broadcast over ``d`` and ``k`` (K = 1 averages over the sample's prompts). A scalar d inside
        the table with whole K from it (linear between integer d), else from the formula."""
        d, k = np.asarray(d, dtype=float), np.asarray(k, dtype=float)
        whole = d.ndim == 0 and d < self._d[-1] and k.ndim == 1 and k.size and np.all(k == np.floor(k))
        if whole and self._tabulated(int(k.max())):
            rows = self._rows(int(k.max()))[k.astype(np.int64)]  # (len(k), D)
            lo = int(d)
            return rows[:, lo] + (d - lo) * (rows[:, lo + 1] - rows[:, lo])
        return self._lumps_formula(d, k)

    # --- expectations over the decoders' spread --------------------------------------------------------
    def expect(self, m: float, mean_d: float, var_d: float, *, size_biased: bool) -> float:
        """E[base(d) + X(d, K)]: the mean iteration (d as iterations hold it), or a decoding request's mean
        iteration (``size_biased``: the d it shares iterations with); d of this mean and variance, at most
        the cap; K ~ Poisson(m) prompts."""
        ks, pk = poisson_weights(m)
        d, pn = count_weights(mean_d, var_d, size_biased=size_biased, top=self.d_top)
        di = d.astype(np.int64)
        if self._tabulated(int(ks[-1])):
            x = self._rows(int(ks[-1]))[ks.astype(np.int64)][:, di]  # (len(ks), len(di))
        else:
            x = self._lumps_formula(self._d[di][None, :], ks[:, None])  # (len(ks), len(di))
        return float(pn @ (self._base[di] + pk @ x))

    def slope(self, mean_d: float, var_d: float | None = None) -> float:
        """b: one more decoder's mean cost in the iterations a decoder is in, E*[base(d + 1) - base(d)], d
        size-biased with this mean and variance (default: Poisson)."""
        d, pn = count_weights(mean_d, mean_d if var_d is None else var_d, size_biased=True, top=self.d_top)
        di = d.astype(np.int64)
        return float(pn @ (self._base[di + 1] - self._base[di]))

    def spread(self, rate: float, tbar: float) -> tuple[float, float, float, float]:
        """(E d, Var d, Cov(d, K), G) of the decoders d and prompts K per iteration when iterations average
        ``tbar`` at ``rate`` requests/s: E d = λ·D̄·tbar; a prompt lengthens its iteration by G, a decoder each
        of its D̄ iterations by b = :meth:`slope` over the spread itself, and longer iterations gather more
        arrivals (a discrete linear Hawkes process: queueing.hawkes_window_moments). The fixed point in
        Var d starts from the last one found (``kappa``); a b that would let the clusters grow for ever
        widens the spread it is averaged over. Var d = inf when no spread keeps them finite."""
        if self._last_spread[0] == (rate, tbar):  # the steady state, then its percentiles, ask twice
            return self._last_spread[1]
        mean_d, m = rate * self.d_mean * tbar, rate * tbar
        if mean_d <= 0 or m <= 0:
            return mean_d, mean_d, 0.0, 0.0
        ks, pk = poisson_weights(m)
        g = float(pk @ self.lumps(1.0 + mean_d, ks)) / m
        lags = max(int(round(self.d_mean)), 1)
        var, cov = self.kappa * mean_d, 0.0
        for _ in range(SPREAD_ROUNDS):
            b = self.slope(mean_d, var)
            if rate * (g + b * lags) >= 1:  # b averaged over too narrow a spread (a step inside it): widen it
                var *= 2
                if var > SPREAD_MAX * (1 + mean_d) ** 2:
                    return mean_d, math.inf, math.inf, g
                continue
            new, cov = hawkes_window_moments(m, rate * g, rate * b, lags)
            new = max(new, mean_d)
            done, var = abs(new - var) <= SPREAD_TOL * new, new
            if done:
                break
        self.kappa = var / mean_d
        self._last_spread = ((rate, tbar), (mean_d, var, cov, g))
        return mean_d, var, cov, g

    def mean_and_tpot(self, rate: float, tbar: float) -> tuple[float, float]:
        """(the mean iteration iterations averaging ``tbar`` make, TPOT: a decoding request's mean iteration
        plus G·Cov(d, K)/E d, the prompts that cluster with decoders); (inf, inf) when the clusters never
        die out."""
        mean_d, var_d, cov, g = self.spread(rate, tbar)
        if not math.isfinite(var_d):
            return math.inf, math.inf
        m = rate * tbar
        tpot = self.expect(m, mean_d, var_d, size_biased=True) + (g * max(cov, 0.0) / mean_d if mean_d > 0 else 0.0)
        return self.expect(m, mean_d, var_d, size_biased=False), tpot
