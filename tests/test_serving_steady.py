"""The analytic steady state (costmodel.serving.steady) against the simulator run long enough: mean TPOT and
throughput within 5% over a grid of rates below saturation, the same saturation rate within 5%; MoE and
sliding-window models flow through the same code."""

import numpy as np
import pytest

import costmodel as cm
from costmodel.serving import mix as serving_mix
from costmodel.serving.mix import MAX_TABLE
from costmodel.serving.replica import Replica
from costmodel.serving.steady import SteadyModel
from costmodel.serving.workload import Lengths, poisson_workload

M = cm.MODELS
N_REQUESTS = 3000


def model_and_replica(name, hw, prompt, output):
    rep = Replica(M[name], hw)
    rng = np.random.default_rng(5)
    pl, ol = Lengths.parse(prompt), Lengths.parse(output)
    return SteadyModel(rep, pl.draw(rng, 256), ol.draw(rng, 256)), rep, pl, ol


@pytest.mark.parametrize(
    "name, hw, prompt, output, loads",
    [
        ("llama-3-8b", "h100-sxm", "2000", "300", (0.2, 0.4, 0.6, 0.8)),
        ("llama-3-8b", "h100-sxm", "uniform:200,1800", "lognormal:250,0.5", (0.3, 0.7)),
        ("gemma-2-9b", "h100-sxm", "6000", "300", (0.3, 0.7)),  # sliding window + full layers
        ("mixtral-8x7b", "h200-sxm", "1000", "250", (0.3, 0.7)),  # mixture of experts
    ],
)
def test_analytic_tpot_and_throughput_agree_with_the_simulator(name, hw, prompt, output, loads):
    model, rep, pl, ol = model_and_replica(name, hw, prompt, output)
    sat, _ = model.saturation()
    for load in loads:
        rate = load * sat
        s = model.at(rate)
        sim = rep.simulate(poisson_workload(rate, N_REQUESTS, pl, ol, np.random.default_rng(1)))
        t0, t1 = sim.window
        assert s.stable
        assert s.tpot_s == pytest.approx(float(sim.tpot_s.mean()), rel=0.05), (name, load)
        sim_throughput = sim.tokens_between(t0, t1) / (t1 - t0)
        assert s.throughput_tok_s == pytest.approx(sim_throughput, rel=0.05), (name, load)


@pytest.mark.parametrize(
    "name, hw, prompt, output",
    [("llama-3-8b", "h100-sxm", "2000", "300"), ("llama-3-8b", "h100-sxm", "512", "256"),
     ("gemma-2-9b", "h100-sxm", "6000", "300")],
)  # fmt: skip
def test_the_same_saturation_rate(name, hw, prompt, output):
    """The simulator overloaded (Poisson arrivals at twice the analytic saturation rate): its throughput over
    the middle of the run is the rate it sustains."""
    model, rep, pl, ol = model_and_replica(name, hw, prompt, output)
    sat, limit = model.saturation()
    sim = rep.simulate(poisson_workload(2 * sat, N_REQUESTS, pl, ol, np.random.default_rng(2)))
    t0, t1 = 0.2 * sim.makespan_s, 0.7 * sim.makespan_s
    sustained = sim.tokens_between(t0, t1) / (t1 - t0) / float(ol.mean)
    assert sustained == pytest.approx(sat, rel=0.05)
    assert limit == "KV memory"
    assert not model.at(1.01 * sat).stable and model.at(0.99 * sat).stable


def test_light_load_is_one_request_alone():
    model, rep, _, _ = model_and_replica("llama-3-8b", "h100-sxm", "2000", "300")
    s = model.at(1e-4)
    alone_ttft = rep.step.ttft_s(2000, budget=8192)
    assert s.ttft_s == pytest.approx(alone_ttft, rel=1e-3)
    contexts = np.arange(2001, 2300)
    alone_tpot = np.mean([rep.step.iteration_s(1, int(c)) for c in contexts[::37]])
    assert s.tpot_s == pytest.approx(alone_tpot, rel=2e-3)


def test_percentiles_rise_with_the_rate_and_bracket_the_mean():
    model, _, _, _ = model_and_replica("llama-3-8b", "h100-sxm", "uniform:500,3000", "300")
    sat, _ = model.saturation()
    last = (0.0, 0.0)
    for load in (0.2, 0.5, 0.8):
        s = model.at(load * sat)
        p50, p99 = model.percentiles(load * sat, 0.5), model.percentiles(load * sat, 0.99)
        assert p50[0] < s.ttft_s * 1.5 and p99[0] > s.ttft_s and p99[1] > s.tpot_s
        assert p99[0] >= last[0] and p99[1] >= last[1]
        last = p99
    with pytest.raises(ValueError, match="q must be in"):
        model.percentiles(1.0, 1.0)


def test_near_saturation_a_state_is_a_real_one_or_none_whatever_was_asked_before():
    """Found by a new user: just below saturation the solver once bracketed past the cap and returned a
    'steady state' holding 5,384 decoders (max_num_seqs 1,024) and 134% of the KV pool, with TTFT inf, and a
    rate's figures changed with the rates asked before it. Each state is now either unstable or within every
    cap, and the same in a fresh model as after other rates."""
    rep = Replica(M["llama-3-8b"], cm.get_hardware("b200"), tp=4, kv_dtype="fp8")
    p, o = np.full(64, 2000), np.full(64, 300)
    model = SteadyModel(rep, p, o)
    sat, _ = model.saturation()
    rates = [0.90 * sat, 0.91 * sat, 0.96 * sat, 0.99 * sat]
    states = [model.at(r) for r in rates]
    assert states[0].stable  # 90% of saturation has a steady state
    for rate, s in zip(rates, states, strict=True):
        if s.stable:
            assert np.isfinite([s.ttft_s, s.tpot_s, s.decoding]).all()
            assert s.decoding <= rep.server.max_num_seqs and s.kv_occupancy <= 1
        fresh = SteadyModel(rep, p, o).at(rate)
        assert fresh.stable == s.stable and (not s.stable or fresh.tpot_s == pytest.approx(s.tpot_s, rel=1e-9))


def test_prompts_alone_saturate_where_the_simulator_does():
    """Found by tests/test_cli_fuzz.py: `glugqa serve --output 1` (no decode step: the first token comes from
    the prefill) ran out of memory. Its saturation search starts at a rate the server is far past, where an
    iteration would hold ~10**8 prompts, and the table of X(d, K) grew a row per K. Rows beyond MAX_TABLE
    entries are computed, not tabulated; the rate found is the overloaded simulator's."""
    model, rep, pl, ol = model_and_replica("llama-3-8b", "h100-sxm", "2000", "1")
    sat, limit = model.saturation()
    assert len(model.mix._lumps) * model.mix._d.size <= MAX_TABLE
    sim = rep.simulate(poisson_workload(2 * sat, 1000, pl, ol, np.random.default_rng(2)))
    t0, t1 = 0.2 * sim.makespan_s, 0.7 * sim.makespan_s
    assert sim.tokens_between(t0, t1) / (t1 - t0) == pytest.approx(sat, rel=0.05)  # one token per request
    assert limit == "token budget"


def test_computed_rows_are_the_tabulated_ones(monkeypatch):
    model, _, _, _ = model_and_replica("llama-3-8b", "h100-sxm", "uniform:500,3000", "300")
    sat, _ = model.saturation()
    tabulated = model.at(0.6 * sat)
    monkeypatch.setattr(serving_mix, "MAX_TABLE", 0)  # nothing tabulated: every X(d, K) from the formula
    fresh, _, _, _ = model_and_replica("llama-3-8b", "h100-sxm", "uniform:500,3000", "300")
    assert len(fresh.mix._lumps) == 0
    assert fresh.saturation()[0] == pytest.approx(sat, rel=1e-12)
    computed = fresh.at(0.6 * sat)
    assert len(fresh.mix._lumps) == 0
    assert computed.tpot_s == pytest.approx(tabulated.tpot_s, rel=1e-12)
    assert computed.ttft_s == pytest.approx(tabulated.ttft_s, rel=1e-12)
