"""How many devices a request rate needs: every candidate (chip × tp × KV dtype × weight dtype), ranked.

For each candidate, one replica (tp devices) is modelled analytically (costmodel.serving.steady) on a sample
of the workload's lengths: its saturation rate, then the highest rate per replica at which both SLOs hold at
their quantile (TTFT and TPOT percentiles, by bisection; they rise with the rate). Replicas = ⌈rate / that⌉,
devices = replicas × tp. The limiting factor: the SLO that binds first, or, when both hold up to saturation,
what saturates (memory: the KV pool; otherwise the iteration's bound at saturation, compute or bandwidth).

Ranking: fewest devices; then the cheaper chip (its dense bf16 peak as a price proxy: faster parts cost more);
then the smaller tp (fewer links to fail or wait on); then the most spare capacity. Candidates that cannot
serve at all (weights do not fit, an SLO missed even at the lowest load) come last, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..budget import SERVE, ServerConfig
from ..checks import fraction_in_unit, positive_float, positive_int
from ..hardware import get_hardware
from ..latency import ESTIMATE, Efficiency
from .replica import Replica
from .steady import SteadyModel
from .workload import Lengths

SAMPLE = 256  # workload lengths drawn to stand for the distribution
RATE_TOL = 0.005  # relative precision of the rate per replica
LOW_LOAD = 1e-3  # "the lowest load": this fraction of the saturation rate
MAX_REASON = 60  # characters of a reason in a table cell; a longer one goes in Option.detail


@dataclass(frozen=True)
class SLO:
    """TTFT and TPOT limits (seconds) at ``quantile`` (0.99 = p99)."""

    ttft_s: float
    tpot_s: float
    quantile: float = 0.99

    def __post_init__(self):
        positive_float("ttft_s", self.ttft_s), positive_float("tpot_s", self.tpot_s)
        q = fraction_in_unit("quantile", self.quantile)
        if q >= 1:
            raise ValueError(f"quantile must be below 1; got {q}")

    @property
    def label(self) -> str:
        return f"p{100 * self.quantile:g}"


@dataclass(frozen=True)
class Candidate:
    """A chip (a Hardware, or a preset's name), tp, KV and weight dtypes."""

    hardware: object
    tp: int
    kv_dtype: str
    weight_dtype: str


@dataclass(frozen=True)
class Option:
    """A candidate's answer. ``replica_rate``: requests/s one replica serves within the SLOs (0 when none)."""

    candidate: Candidate
    replica_rate: float
    replicas: int
    devices: int
    limit: str  # "SLO: TTFT p99", "SLO: TPOT p99", "memory", "compute", "bandwidth", "queueing: ...", or why not
    saturation_rate: float = 0.0
    saturation_limit: str = ""
    ttft_s: float = math.inf  # at the quantile, at replica_rate
    tpot_s: float = math.inf
    peak: float = 0.0  # the chip's dense bf16 FLOP/s (ranking)
    detail: str = ""  # the whole reason when ``limit`` gives it in short (a table cell)

    @property
    def feasible(self) -> bool:
        return self.replicas > 0


def iteration_bound(replica: Replica, tokens: float) -> str:
    """'compute' or 'bandwidth': which holds most of an iteration of ``tokens`` tokens."""
    lat = replica.step.decode(max(int(round(tokens)), 1), 1)
    compute = sum(op.time_s for op in lat.ops if op.bound == "compute")
    return "compute" if compute > lat.total_s / 2 else "bandwidth"


def _search(model: SteadyModel, slo: SLO, top: float) -> tuple[float, str]:
    """The highest rate in (0, top] meeting both SLOs, and which one binds ("TTFT", "TPOT"; "queueing" where
    the analytic model finds no steady state below saturation): regula falsi (Illinois) on the worse of the two
    percentile / limit ratios, minus 1 (it rises with the rate)."""
    cache = {}

    def slack(rate: float) -> float:
        if not model.at(rate).stable:  # no steady state below saturation: the queue, not an SLO, stops it
            cache[rate] = "queueing"
            return 1.0
        ttft, tpot = model.percentiles(rate, slo.quantile)
        cache[rate] = "TTFT" if ttft / slo.ttft_s >= tpot / slo.tpot_s else "TPOT"
        return min(max(ttft / slo.ttft_s, tpot / slo.tpot_s) - 1.0, 1.0)  # inf beyond saturation -> 1

    f_hi = slack(top)
    if f_hi <= 0:
        return top, ""
    lo, f_lo, hi = LOW_LOAD * top, slack(LOW_LOAD * top), top
    side = 0
    while hi - lo > RATE_TOL * hi:
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        x = min(max(x, lo + RATE_TOL * hi / 2), hi - RATE_TOL * hi / 2)
        fx = slack(x)
        if fx <= 0:
            lo, f_lo = x, fx
            f_hi, side = (f_hi / 2 if side == -1 else f_hi), -1
        else:
            hi, f_hi = x, fx
            f_lo, side = (f_lo / 2 if side == 1 else f_lo), 1
    return lo, cache[hi]


def evaluate_candidate(cfg, c: Candidate, *, rate: float, prompt, output, slo: SLO, eff: Efficiency,
                       server: ServerConfig) -> Option:  # fmt: skip
    """One candidate's answer; ``prompt``/``output``: arrays of sampled lengths."""
    hw = get_hardware(c.hardware)
    c = Candidate(hw, c.tp, c.kv_dtype, c.weight_dtype)
    try:
        rep = Replica(cfg, hw, tp=c.tp, weight_dtype=c.weight_dtype, kv_dtype=c.kv_dtype, eff=eff, server=server)
    except ValueError as exc:
        full = str(exc)
        short = getattr(exc, "short", None) or (full if len(full) <= MAX_REASON else "see the notes")
        return Option(c, 0.0, 0, 0, f"invalid: {short}", peak=hw.peak_flops["bf16"],
                      detail=full if short != full else "")  # fmt: skip
    peak = hw.peak_flops["bf16"]
    if not rep.fits:
        return Option(c, 0.0, 0, 0, "memory: the weights leave no KV pool", peak=peak)
    if float(rep.kv_need(prompt, output).max()) > rep.kv_pool:
        return Option(c, 0.0, 0, 0, "memory: the longest request's KV does not fit", peak=peak)
    model = SteadyModel(rep, prompt, output)
    sat, why = model.saturation()  # the precision `glugqa sweep rate` reports it at: both print one number
    if sat <= 0:
        return Option(c, 0.0, 0, 0, "memory: no request fits", peak=peak)
    ttft0, tpot0 = model.percentiles(LOW_LOAD * sat, slo.quantile)  # the lowest load
    if ttft0 > slo.ttft_s or tpot0 > slo.tpot_s:
        name, got, lim = ("TTFT", ttft0, slo.ttft_s) if ttft0 > slo.ttft_s else ("TPOT", tpot0, slo.tpot_s)
        return Option(c, 0.0, 0, 0, f"SLO: {name} {slo.label} {got * 1e3:.4g} ms > {lim * 1e3:.4g} ms at the "
                      "lowest load", sat, why, ttft0, tpot0, peak)  # fmt: skip
    r, binds = _search(model, slo, sat)
    if binds == "queueing":
        limit = "queueing: no steady state at higher rates"
    elif binds:
        limit = f"SLO: {binds} {slo.label}"
    elif why == "KV memory":
        limit = "memory"
    else:
        s = model.at(sat)
        limit = iteration_bound(rep, min(s.decoding + s.prefill_tokens, rep.server.max_num_batched_tokens))
    ttft, tpot = model.percentiles(r, slo.quantile)
    replicas = math.ceil(rate / r * (1 - 1e-12))
    return Option(c, r, replicas, replicas * c.tp, limit, sat, why, ttft, tpot, peak)


def rank(options) -> list[Option]:
    """Feasible first: devices, chip peak (price proxy), tp, then most spare capacity; infeasible last."""
    def key(o: Option):
        if not o.feasible:
            return (1, 0, o.peak, o.candidate.tp, 0.0)
        return (0, o.devices, o.peak, o.candidate.tp, -o.replicas * o.replica_rate)

    return sorted(options, key=key)


def plan_service(
    cfg,
    *,
    rate: float,
    prompt: Lengths,
    output: Lengths,
    slo: SLO,
    candidates,
    eff: Efficiency = ESTIMATE,
    server: ServerConfig = SERVE,
    seed: int = 0,
) -> list[Option]:
    """Every candidate's devices for ``rate`` requests/s of these lengths under ``slo``, ranked."""
    rate = positive_float("rate", rate)
    if not isinstance(slo, SLO):
        raise ValueError(f"slo must be an SLO; got {type(slo).__name__}")
    candidates = list(candidates)
    if not candidates:
        raise ValueError("candidates: give at least one")
    rng = np.random.default_rng(positive_int("seed", seed + 1) - 1)
    p, o = prompt.draw(rng, SAMPLE), output.draw(rng, SAMPLE)
    return rank(evaluate_candidate(cfg, c, rate=rate, prompt=p, output=o, slo=slo, eff=eff, server=server)
                for c in candidates)  # fmt: skip
