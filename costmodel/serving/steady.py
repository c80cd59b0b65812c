"""The analytic steady state of a continuous-batching server under Poisson arrivals (docs/serving.md).

Unknown: τ, the mean time of an iteration a decoding request takes part in (= its mean TPOT). Given the
arrival rate λ, the mean prompt P̄ and D̄ = E[output - 1] decode iterations per request:

    L = λ·D̄·τ                    sequences decoding (Little's law on the decode phase)
    m = λ·τ                      arrivals per iteration; K ~ Poisson(m) prompts land in one iteration
    τ = E[ base(1 + N) + Σ_K Pois(K; m)·X(1 + N, K) ],   N ~ Poisson(L): the others a decoding request sees
    base(d) = lin(d) + logits(d) + overhead + d·ū           a decode-only iteration (ū: u averaged over the
                                                            contexts a request decodes at)
    X(d, K) = chunks of the K prompts' tokens beside d decodes: ⌊w/q⌋·(lin(d+q) - lin(d)) + lin(d+r) - lin(d)
              (w = K·P, q = C - d, r = w mod q) + K·core_pre(P) + logits(d + K) - logits(d)

solved for its smallest root. The prompts' costs go per iteration, not averaged over tokens, because
lin(n) is flat until a step turns compute-bound (a decode-only iteration reads the weights anyway); treating a
prompt as tokens spread over every iteration would call prefill nearly free. Then

    running  = L + λ·n_pre·t_pre     (n_pre = E⌈P/q⌉ iterations in prefill, t_pre their mean time)
    stable   iff running <= N_cap (max_num_seqs, or the requests whose whole KV fits the pool) and
             L + m·P̄ <= C (the token budget), the highest such λ is the saturation rate;
    TTFT     = P(busy)·τ/2 + W_slot + W_budget + n_pre·t_pre      (W_slot: Erlang C over N_cap slots held
             W = running/λ each; W_budget: M/D/1 on the prefill budget, ρ = m·P̄/q)
    TPOT     = τ;  throughput = λ·E[output] while stable.

Poisson expectations are summed term by term, beyond a mean of 64 over 15 Gauss–Hermite points of the normal
limit. Percentiles compose the same terms by a seeded Monte Carlo (a request's TPOT: its base iteration plus the
prompts that arrive during its D decode iterations, Poisson(λ·D·τ), each adding X/m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import positive_float
from .percentiles import monte_carlo
from .queueing import erlang_c_wait, hawkes_window_moments, illinois, poisson_weights
from .replica import Replica

POISSON_EXACT = 30.0  # below this mean, expectations over N are summed term by term; above, N = its mean
CLOSED_TOL = 1e-5  # a full server's iteration time: the saturation rate needs no more


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
        self.table = t = replica.table(int(p.max()), int((p + o).max()))
        self.P, self.O = p, o
        self.p_values, counts = np.unique(p, return_counts=True)  # distinct prompts and their weights
        self.p_weights = counts / counts.sum()
        self.C, self.M = replica.server.max_num_batched_tokens, replica.server.max_num_seqs
        self.p_mean, self.d_mean, self.o_mean = float(p.mean()), float((o - 1).mean()), float(o.mean())
        g = np.linspace(0.0, 1.0, 17)  # u is piecewise linear in the context: 17 points per request suffice
        ctx = p[:, None] + 1 + g[None, :] * np.maximum(o - 2, 0)[:, None]  # (n, 17)
        per_request = t.u(ctx).mean(axis=1) * (o - 1)
        self.u_mean = float(per_request.sum() / max((o - 1).sum(), 1))
        self.core_pre = float(t.pre(p).mean())
        self.need = replica.kv_need(p, o)  # (n,) bytes each holds while admitted
        self.need_mean = float(self.need.mean())
        self._saturation: tuple | None = None
        # the most requests admitted at once: max_num_seqs, or as many as the KV pool holds on average
        self.cap = min(float(self.M), replica.kv_pool / self.need_mean) if replica.fits else 0.0
        self._solved: dict = {}  # rate -> t̄ (None: no root), to bracket later solves
        self._states: dict = {}  # rate -> SteadyState
        self._quantiles: dict = {}  # (rate, q) -> (TTFT, TPOT)

    # --- the iteration ---------------------------------------------------------------------------------
    def base(self, d):
        t = self.table
        return t.lin(d) + t.logits(d) + t.core_overhead_s + d * self.u_mean

    def lumps(self, d, k) -> np.ndarray:
        """X(d, K), broadcast over arrays ``d`` and ``k`` (K = 1 averages over the sample's prompts)."""
        t = self.table
        d, k = np.asarray(d, dtype=float), np.asarray(k, dtype=float)
        q = np.maximum(np.floor(self.C - d), 1.0)
        lin_d = np.interp(d, t.n, t.lin_s)
        full = np.interp(d + q, t.n, t.lin_s) - lin_d

        def chunked(w):
            nfull, r = np.floor(w / q), np.mod(w, q)
            return nfull * full + np.where(r > 0, np.interp(d + r, t.n, t.lin_s) - lin_d, 0.0)

        x = chunked(k * self.p_mean)
        if self.p_values.size > 1 and np.any(k == 1):
            shape = self.p_values.shape + (1,) * d.ndim
            one = np.tensordot(self.p_weights, chunked(self.p_values.reshape(shape)), axes=1)  # (*d.shape,)
            x = np.where(k == 1, one, x)
        logits = np.interp(d + k, t.n, t.logits_s) - np.where(d > 0, np.interp(d, t.n, t.logits_s), 0.0)
        return x + k * self.core_pre + logits

    def _f(self, rate: float, tbar: float) -> float:
        """A decoding request's mean iteration when iterations average ``tbar`` and the others around it are
        Poisson: E[base(1 + N) + X(1 + N, K)], N ~ Poisson(λ·D̄·tbar), K ~ Poisson(λ·tbar)."""
        decoding, m = rate * self.d_mean * tbar, rate * tbar
        ks, pk = poisson_weights(m)
        if decoding < POISSON_EXACT:
            ns, pn = poisson_weights(decoding)
            d = 1.0 + ns
        else:
            d, pn = np.array([1.0 + decoding]), np.ones(1)
        extra = self.lumps(d[:, None], ks[None, :]) @ pk  # (len(d),)
        return float(pn @ (self.base(d) + extra))

    def slope(self, d: float) -> float:
        """b = d base / d d, one more decoding sequence's cost in an iteration."""
        return float(self.base(d + 0.5) - self.base(max(d - 0.5, 0.5))) / (d + 0.5 - max(d - 0.5, 0.5))

    def excess(self, rate: float, tbar: float) -> float:
        """What clustering adds to a decoding request's mean iteration beyond the Poisson view of ``_f``:
        [b·(Var d - E d) + G·Cov(d, K)] / E d, with d (decoders) and K (prompts) per iteration from the
        discrete linear Hawkes process they form (module docstring)."""
        mean_d, m = rate * self.d_mean * tbar, rate * tbar
        if mean_d <= 0 or m <= 0:
            return 0.0
        d = 1.0 + mean_d
        b = self.slope(d)
        ks, pk = poisson_weights(m)
        g = float(pk @ self.lumps(d, ks)) / m
        var_d, cov_dk = hawkes_window_moments(m, rate * g, rate * b, max(int(round(self.d_mean)), 1))
        return max(0.0, b * (var_d - mean_d) + g * cov_dk) / mean_d

    def solve(self, rate: float) -> float | None:
        """t̄ at ``rate``: the mean iteration, the smallest root of t̄ = _f(t̄) - b (a request's own token
        left out); None when there is none below the point where the decoding sequences alone would pass
        the caps (the server cannot keep up)."""
        rate = positive_float("rate", rate)

        def gap(t: float) -> float:
            return self._f(rate, t) - self.slope(1.0 + rate * self.d_mean * t) - t

        below = [t for r, t in self._solved.items() if r < rate and t is not None]
        above = [t for r, t in self._solved.items() if r > rate and t is not None]
        lo = max(below, default=0.0)  # t̄ rises with the rate: earlier solutions bracket this one
        g_lo = gap(lo)
        hi = min(above, default=max(float(self.base(1.0)), 2 * lo))
        hi_cap = min(self.cap, self.C) / (rate * max(self.d_mean, 1e-9))  # t̄ where the decoders reach the cap
        g_hi = gap(hi)
        while g_hi > 0:  # bracket: gap(lo) > 0 >= gap(hi)
            lo, g_lo, hi = hi, g_hi, 2 * hi
            if hi > 2 * hi_cap and hi > 1e6 * self.base(1.0):
                self._solved[rate] = None
                return None
            g_hi = gap(hi)
        self._solved[rate] = root = illinois(gap, lo, g_lo, hi, g_hi) if g_lo > 0 else lo
        return root

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
        # the prompt's own iteration, beside the decoding others (the decode kernels' overhead only if any)
        t_pre = float(self.base(decoding)) + float(pk @ self.lumps(decoding, ks + 1))
        t_pre -= self.table.core_overhead_s * math.exp(-decoding)
        held = (self.O - 1) * tpot + n_pre * t_pre  # (n,) seconds each is admitted
        return rate * float(held.mean()), rate * float((self.need * held).mean()), float(n_pre.mean()), t_pre

    def closed(self, rate: float) -> tuple[float, str]:
        """(load at ``rate`` of a full server, whose decoders do not fluctuate: 1 = a cap reached; that cap).
        The iteration t̄ = base(d) + E[X(d, K)] at d = λ·D̄·t̄ exactly, then the largest of admitted /
        max_num_seqs, KV held / pool and tokens per iteration / C."""
        rate = positive_float("rate", rate)

        def gap(t: float) -> float:
            d, m = max(rate * self.d_mean * t, 1.0), rate * t
            ks, pk = poisson_weights(m)
            return float(self.base(d)) + float(pk @ self.lumps(d, ks)) - t

        hi = float(self.base(1.0))
        while gap(hi) > 0:
            hi *= 2
            if hi > 1e6 * self.base(1.0):
                return math.inf, "time"
        t = illinois(gap, 0.0, gap(0.0), hi, gap(hi), tol=CLOSED_TOL)
        dec = rate * self.d_mean * t
        running, kv, _, _ = self._admitted(rate, t, t, dec)
        loads = {"max_num_seqs": running / self.M, "KV memory": kv / max(self.r.kv_pool, 1e-30),
                 "token budget": (dec + rate * t * self.p_mean) / self.C}  # fmt: skip
        worst = max(loads, key=loads.get)
        return loads[worst], worst

    def saturation(self, *, rel_tol: float = 1e-4) -> tuple[float, str]:
        """(the highest rate a replica sustains, the cap that stops it: "KV memory", "max_num_seqs" or
        "token budget"): bisection on :meth:`closed`, a full server as under overload."""
        if self._saturation is not None and self._saturation[2] <= rel_tol:
            return self._saturation[:2]  # computed before, at least as precisely
        if not self.r.fits or float(self.need.max()) > self.r.kv_pool:
            return 0.0, "KV memory"
        guess = self.cap / ((self.d_mean + 1) * float(self.base(max(float(self.cap), 1.0))))
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
        tpot = self._f(rate, tbar) + self.excess(rate, tbar)
        dec, m = rate * self.d_mean * tpot, rate * tbar  # time-average decoders (Little); prompts per iteration
        running, kv, n_pre, t_pre = self._admitted(rate, tpot, tbar, dec)
        ttft = self._ttft_mean(rate, tbar, m, max(math.floor(self.C - dec), 1), n_pre, t_pre)
        return SteadyState(rate, True, tpot, ttft, rate * self.o_mean, dec, running, m * self.p_mean,
                           kv / max(self.r.kv_pool, 1e-30), "", tbar)  # fmt: skip

    def iterations(self, tbar: float, m: float, d: float) -> tuple[np.ndarray, np.ndarray]:
        """(iteration times, their probabilities): decode-only or with K ~ Poisson(m) prompts."""
        ks, pk = poisson_weights(m)
        return self.base(d) + self.lumps(d, ks), pk

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
