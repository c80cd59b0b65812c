"""Percentiles of the analytic steady state: a seeded Monte Carlo over its terms (costmodel.serving.steady).

TTFT: the iteration in progress at arrival (drawn by length), the prompts arriving with it (over-dispersed like
the Hawkes clusters), the waits for a slot (Erlang C) and for the prefill budget (M/D/1), and the prompt's
chunks. TPOT: a request's own iterations (the others around it averaged over its life) plus the prompts that
arrive during its decode (negative binomial, variance × 1/(1-α)²). Seeded: the same answer every time.
"""

from __future__ import annotations

import math

import numpy as np

from .queueing import clustered, poisson_weights

SAMPLES = 2048  # Monte Carlo draws
LIFE_VARIANCE = 2.0 / 3.0  # variance of a decode-window average of an M/D/∞ count, over its own variance


def monte_carlo(model, rate: float, q: float) -> tuple[float, float]:
    """(TTFT, TPOT) of ``model`` (a SteadyModel) at ``rate`` requests/s, quantile ``q``."""
    s = model.at(rate)
    if not s.stable:
        return math.inf, math.inf
    rng = np.random.default_rng(0)
    tbar, dec, m = s.iteration_s, s.decoding, rate * s.iteration_s
    d = 1.0 + rate * model.d_mean * tbar
    budget = max(math.floor(model.C - dec), 1)
    c, wait_given, rho = model.queue_terms(rate, m, budget)
    t_it, p_it = model.iterations(tbar, m, d)
    biased = p_it * t_it / float(p_it @ t_it)  # the iteration an arrival lands in, by length
    landed = t_it[rng.choice(t_it.size, SAMPLES, p=biased)]  # (SAMPLES,)
    busy = rng.random(SAMPLES) < 1.0 - math.exp(-rate * model.d_mean * tbar)
    residual = busy * rng.random(SAMPLES) * landed
    ks, pk = poisson_weights(m)
    mix = model.mix
    per_arrival = float(pk @ mix.lumps(d, ks)) / m if m > 0 else 0.0
    mean_d, var_d, _, _ = mix.spread(rate, tbar)
    b = mix.slope(mean_d, var_d)
    alpha = min(rate * (per_arrival + b * model.d_mean), 0.99)  # the clusters' branching ratio
    # the prompts arriving in the same iteration
    co = clustered(rng, rate * landed * busy, min(rate * per_arrival, 0.99), SAMPLES)
    i = rng.integers(0, model.P.size, SAMPLES)
    prompt, decodes = model.P[i], model.O[i] - 1
    t, lin_d = model.table, model.table.lin(d)
    w = prompt + co * model.p_mean
    nfull, r = np.floor(w / budget), np.mod(w, budget)
    chunked = nfull * (t.lin(d + budget) - lin_d) + np.where(r > 0, t.lin(d + r) - lin_d, 0.0)
    n_chunks = np.ceil(w / budget)
    service = n_chunks * mix.base(d) + chunked + t.prompt_attention(prompt) + t.logits(d + co + 1) - t.logits(d)
    wait = (rng.random(SAMPLES) < c) * rng.exponential(wait_given if np.isfinite(wait_given) else 0, SAMPLES)
    wait += (rng.random(SAMPLES) < rho) * rng.exponential(tbar / max(2 * (1 - rho), 1e-12), SAMPLES)
    ttft = residual + wait + service
    many = decodes > 0
    if not many.any():
        return float(np.quantile(ttft, q)), 0.0
    spread = math.sqrt(LIFE_VARIANCE * var_d / max(mean_d, 1e-12))  # clustered decoders spread wider
    life = np.maximum(dec + spread * (rng.poisson(max(dec, 1e-12), SAMPLES) - dec), 0.0)
    arrivals = clustered(rng, rate * decodes[many] * s.tpot_s, alpha, SAMPLES)
    tpot = mix.base(1.0 + life[many]) + arrivals * per_arrival / decodes[many]
    tpot += s.tpot_s - tpot.mean()  # centred on the analytic mean (the clusters' shift of the size-biased view)
    return float(np.quantile(ttft, q)), float(np.quantile(tpot, q))
