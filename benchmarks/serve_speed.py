"""Speed of the serving model: `glugqa serve` over 32 candidates, and 10,000-request simulations.

Goals (issue 13): `glugqa serve` for one model over 4 chips x 4 tensor-parallel degrees x 2 KV dtypes in under
2 s; a 10,000-request simulation in under 5 s. Each figure is the best of REPEATS runs in this process (the
first run also pays the imports); the command line run in a fresh interpreter is timed too.

    python benchmarks/serve_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

REPEATS = 3
SERVE_ARGS = ["serve", "--hardware", "a100-sxm-80gb,h100-sxm,h200-sxm,b200", "--tp", "1,2,4,8", "--kv-dtype",
              "bf16,fp8", "--format", "csv"]  # fmt: skip
SIM_CASES = (  # (model, chip, rate as a fraction of saturation, prompt, output)
    ("llama-3-8b", "h100-sxm", 0.1, "2000", "300"),
    ("llama-3-8b", "h100-sxm", 0.8, "2000", "300"),
    ("llama-3-8b", "h100-sxm", 0.8, "lognormal:1000,1", "uniform:50,600"),
    ("mixtral-8x7b", "h200-sxm", 0.5, "1000", "250"),
    ("gemma-2-9b", "h100-sxm", 0.5, "6000", "300"),
)


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from click.testing import CliRunner

    import costmodel as cm
    from costmodel.cli import cli
    from costmodel.serving.replica import Replica
    from costmodel.serving.steady import SteadyModel
    from costmodel.serving.workload import Lengths, poisson_workload

    def serve():
        result = CliRunner().invoke(cli, SERVE_ARGS)
        assert result.exit_code == 0, result.output

    t = best(serve)
    print(f"glugqa serve, 32 candidates (4 chips x tp 1,2,4,8 x KV bf16,fp8), in process: {t:.2f} s (goal < 2 s)")
    start = time.perf_counter()
    code = "import sys; from costmodel.cli import cli; cli.main(sys.argv[1:], prog_name='glugqa')"
    subprocess.run([sys.executable, "-c", code, *SERVE_ARGS], check=True, capture_output=True)
    print(f"  the same from a fresh interpreter (imports included): {time.perf_counter() - start:.2f} s")

    for name, chip, load, prompt, output in SIM_CASES:
        rep = Replica(cm.MODELS[name], chip)
        pl, ol = Lengths.parse(prompt), Lengths.parse(output)
        rng = np.random.default_rng(0)
        model = SteadyModel(rep, pl.draw(rng, 256), ol.draw(rng, 256))
        rate = load * model.saturation()[0]
        w = poisson_workload(rate, 10_000, pl, ol, np.random.default_rng(1))
        r = rep.simulate(w)  # the table is built once per replica
        t = best(lambda rep=rep, w=w: rep.simulate(w))
        print(
            f"simulate 10,000 requests: {name} on {chip}, prompts {prompt}, outputs {output}, {load:.0%} load: "
            f"{t:.2f} s ({r.iterations:,} iterations; goal < 5 s)"
        )


if __name__ == "__main__":
    main()
