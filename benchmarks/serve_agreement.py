"""The analytic steady state against the iteration-level simulator, over rates up to saturation.

Issue 13's must-shows, printed: mean TPOT and throughput within 5% below saturation, the same saturation rate
within 5%, Little's law within 1% (tests/test_serving_steady.py and tests/test_serving_sim.py assert a subset
of these points); mean TTFT and the p99s for reference. Each rate: Poisson arrivals, REQUESTS requests
(LONG_REQUESTS from 90% of saturation on, where the queue takes longer to settle), the simulator's steady
window (10%-90% of the arrivals). Little's law is exact over a whole run (the event loop integrates the
requests in the system); over the window it is an estimate whose edges cost up to ~1% when requests live long.

    python benchmarks/serve_agreement.py
"""

from __future__ import annotations

import numpy as np

REQUESTS, LONG_REQUESTS = 6000, 20000
CASES = (  # (model, chip, prompt, output, loads as fractions of the analytic saturation rate)
    ("llama-3-8b", "h100-sxm", "2000", "300", (0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)),
    ("llama-3-8b", "h100-sxm", "uniform:200,1800", "lognormal:250,0.5", (0.1, 0.3, 0.5, 0.7, 0.85, 0.95)),
    ("gemma-2-9b", "h100-sxm", "6000", "300", (0.1, 0.3, 0.5, 0.7, 0.85)),  # sliding window + full layers
    ("mixtral-8x7b", "h200-sxm", "1000", "250", (0.1, 0.3, 0.5, 0.7, 0.85)),  # mixture of experts
)
SATURATION_CASES = (
    ("llama-3-8b", "h100-sxm", "2000", "300"),
    ("llama-3-8b", "h100-sxm", "512", "256"),
    ("gemma-2-9b", "h100-sxm", "6000", "300"),
    ("mixtral-8x7b", "h200-sxm", "1000", "250"),
)


def pct(a: float, b: float) -> str:
    return f"{a / b - 1:+6.1%}"


def main() -> None:
    import costmodel as cm
    from costmodel.serving.replica import Replica
    from costmodel.serving.steady import SteadyModel
    from costmodel.serving.workload import Lengths, poisson_workload

    def setup(name, chip, prompt, output):
        rep = Replica(cm.MODELS[name], chip)
        pl, ol = Lengths.parse(prompt), Lengths.parse(output)
        rng = np.random.default_rng(5)
        return SteadyModel(rep, pl.draw(rng, 256), ol.draw(rng, 256)), rep, pl, ol

    worst_tpot = worst_tput = worst_little = worst_run = 0.0
    for name, chip, prompt, output, loads in CASES:
        model, rep, pl, ol = setup(name, chip, prompt, output)
        sat, why = model.saturation()
        print(f"\n{name} on {chip}, prompts {prompt}, outputs {output}: saturates at {sat:.4g} req/s ({why})")
        print("load   TPOT ms (sim)        err    tok/s (sim)          err    TTFT ms (sim)         err  "
              "p99 TPOT (sim)    p99 TTFT (sim)    Little: window")  # fmt: skip
        for load in loads:
            rate = load * sat
            s = model.at(rate)
            p99 = model.percentiles(rate, 0.99)
            n = LONG_REQUESTS if load >= 0.9 else REQUESTS
            sim = rep.simulate(poisson_workload(rate, n, pl, ol, np.random.default_rng(1)))
            t0, t1 = sim.window
            tput = sim.tokens_between(t0, t1) / (t1 - t0)
            tpot, ttft = float(sim.tpot_s.mean()), float(sim.ttft_s.mean())
            conc, little = sim.window_little()
            worst_tpot = max(worst_tpot, abs(s.tpot_s / tpot - 1))
            worst_tput = max(worst_tput, abs(s.throughput_tok_s / tput - 1))
            worst_little = max(worst_little, abs(little / conc - 1))
            worst_run = max(worst_run, abs(sim.request_rate * float(sim.e2e_s.mean()) / sim.mean_concurrency - 1))
            print(
                f"{load:4.0%}  {s.tpot_s * 1e3:6.2f} ({tpot * 1e3:6.2f})  {pct(s.tpot_s, tpot)}  "
                f"{s.throughput_tok_s:7.0f} ({tput:7.0f})  {pct(s.throughput_tok_s, tput)}  "
                f"{s.ttft_s * 1e3:7.1f} ({ttft * 1e3:7.1f})  {pct(s.ttft_s, ttft)}  "
                f"{p99[1] * 1e3:6.2f} ({np.quantile(sim.tpot_s, 0.99) * 1e3:6.2f})  "
                f"{p99[0] * 1e3:7.1f} ({np.quantile(sim.ttft_s, 0.99) * 1e3:7.1f})  {pct(little, conc)}"
            )
    print(f"\nworst |error| below saturation: mean TPOT {worst_tpot:.1%}, throughput {worst_tput:.1%} (goal 5%); "
          f"Little's law over whole runs {worst_run:.1e}, over the windows {worst_little:.2%} (goal 1%)")  # fmt: skip
    print("\nsaturation: the simulator overloaded (2x the analytic rate), sustained over 20%-70% of the run")
    for name, chip, prompt, output in SATURATION_CASES:
        model, rep, pl, ol = setup(name, chip, prompt, output)
        sat, why = model.saturation()
        sim = rep.simulate(poisson_workload(2 * sat, REQUESTS, pl, ol, np.random.default_rng(2)))
        t0, t1 = 0.2 * sim.makespan_s, 0.7 * sim.makespan_s
        sustained = sim.tokens_between(t0, t1) / (t1 - t0) / float(ol.mean)
        print(f"  {name} on {chip}, {prompt}/{output}: analytic {sat:.4g} req/s ({why}), simulated "
              f"{sustained:.4g} ({pct(sustained, sat)})")  # fmt: skip


if __name__ == "__main__":
    main()
