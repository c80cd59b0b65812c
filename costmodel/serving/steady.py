"""The analytic steady state of a continuous-batching server under Poisson arrivals (docs/serving.md).

Given the arrival rate λ, the mean prompt P̄ and D̄ = E[output - 1] decode iterations per request, with base(d)
and X(d, K) the iterations of costmodel.serving.mix:

    t̄ = E[ base(d) + X(d, K) ]          the mean iteration; E d = λ·D̄·t̄ (each arrival decodes D̄ iterations),
                                        K ~ Poisson(m = λ·t̄) prompts land in one iteration
    TPOT = E*[ base(d) + X(d, K) ] + G·Cov(d, K) / E d      a decoding request's mean iteration: d as a
                                        decoder sees it (size-biased), plus the prompts that cluster with it

d is a count with the variance the clusters give it (IterationMix.spread: a prompt lengthens its iteration,
longer iterations gather more arrivals, which decode for D̄ iterations: a discrete Hawkes process), Poisson
at light load, negative binomial beyond, never above the requests admitted at once. Every integer d counts:
tile and wave quantization make base a step function of the token count, so neither t̄ nor TPOT can be read at
the mean d (the linear model this replaces did, and came out 10% low where the decoders straddle a step).
t̄ is the smallest root; bisection where the clusters never die out. Then

    running  = λ·E[held]  (held: n_pre prefill iterations of t_pre and D decode iterations of TPOT)
    stable   iff running <= max_num_seqs, KV held <= the pool and E d + m·P̄ <= C (the token budget) for a full
             server (no fluctuation: d = λ·D̄·t̄ exactly); the highest such λ is the saturation rate;
    TTFT     = the iteration in progress at arrival (length-biased) + W_slot (Erlang C) + W_budget (M/D/1 on the
             prefill budget) + n_pre·t_pre;  throughput = λ·E[output] while stable.

Percentiles compose the same terms by a seeded Monte Carlo (costmodel.serving.percentiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import positive_float
from .mix import IterationMix
from .percentiles import monte_carlo
from .queueing import erlang_c_wait, illinois, poisson_weights
from .replica import Replica

CLOSED_TOL = 1e-4  # a full server's iteration time: the saturation rate needs no more
SOLVE_TOL = 1e-3  # relative precision of t̄ (rates are searched to 0.5%)
BRACKET_STEP = 1.5  # t̄ is bracketed by steps of 50% up from an empty server (then regula falsi to SOLVE_TOL)
SATURATION_TOL = 1e-3  # relative precision of the saturation rate (printed to 4 significant digits)


@dataclass(frozen=True)
class SteadyState:
    rate: float  # requests/s offered
    stable: bool
    tpot_s: float  # mean time per output token (the mean iteration a decoding request is in)
    ttft_s: float  # mean time to first token
    throughput_tok_s: float  # output tokens/s (rate·E[output] when stable)
    decoding: float  # mean sequences decoding
    running: float  # mean sequences admitted (decoding + prefilling)
    prefill_tokens: float  # mean prompt tokens per iteration
    kv_occupancy: float  # mean fraction of the KV pool held
    limit: str = ""  # what it exceeds when not stable
    iteration_s: float = math.inf  # t̄: the mean iteration (shorter than TPOT: busy iterations hold more decodes)


class SteadyModel:
    """The analytic model of ``replica`` serving requests with the lengths of ``prompt`` and ``output`` (arrays
    of a representative sample, e.g. a trace or draws from the length distributions)."""

    def __init__(self, replica: Replica, prompt, output):
        self.r = replica
        p, o = np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64)
        self.table = replica.table(int((p + o).max()))
        self.P, self.O = p, o
        self.C, self.M = replica.server.max_num_batched_tokens, replica.server.max_num_seqs
        self.p_mean, self.d_mean, self.o_mean = float(p.mean()), float((o - 1).mean()), float(o.mean())
        self.need = replica.kv_need(p, o)  # (n,) bytes each holds while admitted
        self.need_mean = float(self.need.mean())
        self._saturation: tuple | None = None
        # the most requests admitted at once: max_num_seqs, or as many as the KV pool holds on average
        self.cap = min(float(self.M), replica.kv_pool / self.need_mean) if replica.fits else 0.0
        self.mix = IterationMix(self.table, p, o, budget=self.C, cap=self.cap)
        self._closed: dict = {}  # rate -> a full server's iteration, to bracket later ones
        self._states: dict = {}  # rate -> SteadyState
        self._quantiles: dict = {}  # (rate, q) -> (TTFT, TPOT)

    def solve(self, rate: float) -> float | None:
        """t̄ at ``rate``: the mean iteration, the smallest root of t̄ = E[base(d) + X(d, K)] (d and K as
        iterations averaging t̄ make them: IterationMix.mean_and_tpot); None when there is none below t_cap,
        the t̄ at which the decoding sequences alone, E d = λ·D̄·t̄, would reach the cap (max_num_seqs, the KV
        pool or the token budget): beyond it no server keeps up, so a root there is not a steady state.

        The gap E[...] - t̄ is positive at 0 and turns negative at the smallest root, but it is infinite where
        the clusters never die out and need not be monotone after the root, so the root is bracketed by steps of
        BRACKET_STEP up from 0 (an infinite gap counts as positive) and then found by regula falsi. Each rate is
        solved from scratch, so its answer does not hang on the rates asked before. Near saturation the gap
        can stay positive or infinite up to t_cap: no steady state (``at`` reports it unstable, limit "time")."""
        rate = positive_float("rate", rate)
        mix = self.mix
        mix.kappa = 1.0  # each solve starts the spread's fixed point afresh: the answer does not hang on history

        def gap(t: float) -> float:
            return mix.mean_and_tpot(rate, t)[0] - t  # inf where the clusters never die out

        t_cap = min(self.cap, self.C) / (rate * max(self.d_mean, 1e-9))
        lo, g_lo = 0.0, gap(0.0)  # an empty server: the gap is its first iteration, positive
        hi = float(mix.base(1.0))
        g_hi = gap(min(hi, t_cap))
        while g_hi > 0:
            if hi >= t_cap:  # no root before the decoders reach the cap: the server cannot keep up
                return None
            if math.isfinite(g_hi):
                lo, g_lo = hi, g_hi
            hi = min(hi * BRACKET_STEP, t_cap)
            g_hi = gap(hi)
        return illinois(gap, lo, g_lo, hi, g_hi, tol=SOLVE_TOL)

    # --- the state -------------------------------------------------------------------------------------
    def at(self, rate: float) -> SteadyState:
        """The steady state at ``rate`` requests/s (``stable`` False, with the cap exceeded, beyond saturation)."""
        if rate not in self._states:
            self._states[rate] = self._at(rate)
        return self._states[rate]

    def _admitted(self, rate: float, tpot: float, iteration: float, decoding: float):
        """(requests admitted, KV bytes they hold, prefill iterations per request, their mean time): Little's
        law per request, each holding its KV for its n_pre prefill and D decode iterations (so long requests
        weigh more in the KV held than in the count)."""
        q = max(math.floor(self.C - decoding), 1)
        n_pre = np.ceil(self.P / q)  # (n,)
        ks, pk = poisson_weights(rate * iteration)
        # the prompt's own iteration, beside the decoding others (base: no decode kernel at 0, linear up to 1)
        t_pre = float(self.mix.base(decoding)) + float(pk @ self.mix.lumps(decoding, ks + 1))
        held = (self.O - 1) * tpot + n_pre * t_pre  # (n,) seconds each is admitted
        return rate * float(held.mean()), rate * float((self.need * held).mean()), float(n_pre.mean()), t_pre

    def closed(self, rate: float) -> tuple[float, str]:
        """(load at ``rate`` of a full server, whose decoders do not fluctuate: 1 = a cap reached; that cap).
        The iteration t̄ = base(d) + E[X(d, K)] at d = λ·D̄·t̄ exactly, then the largest of admitted /
        max_num_seqs, KV held / pool and tokens per iteration / C."""
        rate = positive_float("rate", rate)
        mix = self.mix

        def gap(t: float) -> float:
            d, m = max(rate * self.d_mean * t, 1.0), rate * t
            ks, pk = poisson_weights(m)
            return float(mix.base(d)) + float(pk @ mix.lumps(d, ks)) - t

        # t rises with the rate: the iterations found at the nearest rates below and above bracket this one
        lo = max((t for r, t in self._closed.items() if r < rate), default=0.0)
        hi = min((t for r, t in self._closed.items() if r > rate), default=max(float(mix.base(1.0)), 2 * lo))
        g_hi = gap(hi)
        while g_hi > 0:
            lo, hi = hi, 2 * hi
            if hi > 1e6 * mix.base(1.0):
                return math.inf, "time"
            g_hi = gap(hi)
        g_lo = gap(lo)
        self._closed[rate] = t = illinois(gap, lo, g_lo, hi, g_hi, tol=CLOSED_TOL) if g_lo > 0 else lo
        dec = rate * self.d_mean * t
        running, kv, _, _ = self._admitted(rate, t, t, dec)
        loads = {"max_num_seqs": running / self.M, "KV memory": kv / max(self.r.kv_pool, 1e-30),
                 "token budget": (dec + rate * t * self.p_mean) / self.C}  # fmt: skip
        worst = max(loads, key=loads.get)
        return loads[worst], worst

    def saturation(self, *, rel_tol: float = SATURATION_TOL) -> tuple[float, str]:
        """(the highest rate a replica sustains, the cap that stops it: "KV memory", "max_num_seqs" or
        "token budget"): bisection on :meth:`closed`, a full server as under overload."""
        if self._saturation is not None and self._saturation[2] <= rel_tol:
            return self._saturation[:2]  # computed before, at least as precisely
        if not self.r.fits or float(self.need.max()) > self.r.kv_pool:
            return 0.0, "KV memory"
        guess = self.cap / ((self.d_mean + 1) * float(self.mix.base(max(float(self.cap), 1.0))))
        lo, hi = guess / 2, guess
        while self.closed(hi)[0] < 1:
            lo, hi = hi, 2 * hi
        while self.closed(lo)[0] >= 1:
            lo, hi = lo / 2, lo
        while hi - lo > rel_tol * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.closed(mid)[0] < 1 else (lo, mid)
        self._saturation = (lo, self.closed(hi)[1], rel_tol)
        return lo, self._saturation[1]

    def _sat(self) -> tuple[float, str]:
        """The saturation rate as first computed (at whatever precision was asked for)."""
        return self._saturation[:2] if self._saturation is not None else self.saturation()

    def _at(self, rate: float) -> SteadyState:
        sat, why = self._sat()
        tbar = self.solve(rate) if rate < sat else None
        if tbar is None:
            return SteadyState(rate, False, math.inf, math.inf, 0.0, math.inf, math.inf, math.inf, math.inf,
                               why if rate >= sat else "time")  # fmt: skip
        tpot = self.mix.mean_and_tpot(rate, tbar)[1]
        if not math.isfinite(tpot):
            return SteadyState(rate, False, math.inf, math.inf, 0.0, math.inf, math.inf, math.inf, math.inf,
                               "time")  # fmt: skip
        dec, m = rate * self.d_mean * tpot, rate * tbar  # time-average decoders (Little); prompts per iteration
        running, kv, n_pre, t_pre = self._admitted(rate, tpot, tbar, dec)
        ttft = self._ttft_mean(rate, tbar, m, max(math.floor(self.C - dec), 1), n_pre, t_pre)
        return SteadyState(rate, True, tpot, ttft, rate * self.o_mean, dec, running, m * self.p_mean,
                           kv / max(self.r.kv_pool, 1e-30), "", tbar)  # fmt: skip

    def iterations(self, tbar: float, m: float, d: float) -> tuple[np.ndarray, np.ndarray]:
        """(iteration times, their probabilities): decode-only or with K ~ Poisson(m) prompts."""
        ks, pk = poisson_weights(m)
        return self.mix.base(d) + self.mix.lumps(d, ks), pk

    def queue_terms(self, rate, m, q):
        """(P(wait for a slot), mean wait given waiting, ρ of the prefill budget): Erlang C over N_cap slots
        offered λ/λ_sat of them, each held N_cap/λ_sat on average (as at saturation), the wait scaled by
        (1 + c²)/2 for the holding times' spread (Lee & Longton 1959)."""
        sat = self._sat()[0]
        n = max(int(self.cap), 1)
        held = self.O - 1 + np.ceil(self.P / q)  # (n,) iterations each holds a slot
        c, wait_given = erlang_c_wait(n, n * rate / sat, n / sat, float(held.var() / held.mean() ** 2))
        return c, wait_given, m * self.p_mean / q

    def _ttft_mean(self, rate, tbar, m, q, n_pre, t_pre) -> float:
        c, wait_given, rho = self.queue_terms(rate, m, q)
        budget_wait = rho / (2 * (1 - rho)) * tbar if rho < 1 else math.inf
        t, pt = self.iterations(tbar, m, 1.0 + rate * self.d_mean * tbar)
        busy = 1.0 - math.exp(-rate * self.d_mean * tbar)
        residual = busy * float(pt @ t**2) / (2 * float(pt @ t))  # the iteration in progress, length-biased
        return residual + c * wait_given + budget_wait + n_pre * t_pre

    def percentiles(self, rate: float, q: float) -> tuple[float, float]:
        """(TTFT, TPOT) at quantile ``q`` in (0, 1): a seeded Monte Carlo over the terms above. TTFT: the
        iteration in progress at arrival (drawn by length), the prompts arriving with it (Poisson in its
        length), the waits for a slot and for the budget, its chunks. TPOT: a request's own iterations
        (others around it: Poisson, their count averaged over its life) plus the prompts arriving during its
        decode, over-dispersed as the Hawkes clusters make them (negative binomial, variance × 1/(1-α)²)."""
        if not 0 < q < 1:
            raise ValueError(f"q must be in (0, 1); got {q!r}")
        if (rate, q) not in self._quantiles:
            self._quantiles[(rate, q)] = self._percentiles(rate, q)
        return self._quantiles[(rate, q)]

    def _percentiles(self, rate: float, q: float) -> tuple[float, float]:
        return monte_carlo(self, rate, q)
