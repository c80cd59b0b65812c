"""Cold start of ``glugqa plan`` (the default capacity plan, printed) against ``python -c pass``.

Each run is a fresh interpreter, so it pays every import: click, tabulate, the cost model. Reported: the
median and minimum wall time of each over ``--repeats`` runs, interleaved so machine noise hits both alike,
and their difference (glugqa's own cost). Goal (issue 6): ``glugqa plan`` under 0.5 s on this machine.
Also printed: what ``glugqa plan`` imports that a user might worry about (it must not import JAX or the
reference's NumPy ops; tests/test_cli_startup.py enforces that).

    python benchmarks/cli_startup.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

GOAL_S = 0.5
PLAN = [
    sys.executable,
    "-c",
    "from costmodel.cli import main; import sys; sys.argv = ['glugqa', 'plan']; main()",
]
BASELINE = [sys.executable, "-c", "pass"]
PROBE = (
    "import sys; from costmodel.cli import cli; cli.main(['plan'], standalone_mode=False); "
    "print(sorted(m for m in ('numpy', 'scipy', 'jax', 'matplotlib', 'torch') if m in sys.modules))"
)


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    commands = {"python -c pass": BASELINE, "glugqa plan (python -c entry)": PLAN}
    script = shutil.which("glugqa")
    if script:
        commands["glugqa plan (console script)"] = [script, "plan"]
    for cmd in commands.values():  # warm the OS file cache once; the timed runs are still fresh processes
        wall(cmd)
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':32s} {'median':>9s} {'min':>9s} {'minus python':>13s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:32s} {med:8.3f}s {min(ts):8.3f}s {med - base:12.3f}s")
    plan = statistics.median(times["glugqa plan (python -c entry)"])
    heavy = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout.splitlines()[-1]
    print(
        f"glugqa plan median {plan:.3f} s: {'meets' if plan < GOAL_S else 'MISSES'} the {GOAL_S} s goal; "
        f"{plan / base:.1f}x python -c pass; heavy modules imported: {heavy}"
    )


if __name__ == "__main__":
    main()
