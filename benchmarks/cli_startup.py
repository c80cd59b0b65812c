"""Cold start of ``glugqa plan`` (the default capacity plan, printed) and ``glugqa --help`` against
``python -c pass``.

Each run is a fresh interpreter, so it pays every import: click, tabulate, the cost model. Reported: the
median and minimum wall time of each over ``--repeats`` runs, interleaved so machine noise hits all alike,
and the difference to ``python -c pass`` (glugqa's own cost). Goal: both under 0.2 s median on this machine.
``--compare DIR`` times the same commands from another checkout (``PYTHONPATH=DIR``, e.g. the main branch)
in the same interleaved run, so the two trees are measured under the same load. Also printed: what
``glugqa plan`` imports that a user might worry about (it must not import JAX or the reference's NumPy ops;
tests/test_cli_startup.py enforces that).

    python benchmarks/cli_startup.py [--repeats 15] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 0.2
HERE = Path(__file__).resolve().parent.parent
ENTRY = "from costmodel.cli import main; import sys; sys.argv = ['glugqa', *sys.argv[1:]]; main()"
PROBE = (
    "import sys; from costmodel.cli import cli; cli.main(['plan'], standalone_mode=False); "
    "print(sorted(m for m in ('numpy', 'scipy', 'jax', 'matplotlib', 'torch') if m in sys.modules))"
)


def wall(cmd: list[str], env: dict) -> float:
    """Seconds one fresh interpreter takes. It runs in the tree it times (``python -c`` puts the working
    folder first on sys.path, so run from elsewhere it could import another checkout's code)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=env.get("PYTHONPATH", HERE))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--compare", type=Path, help="Another checkout to time in the same run.")
    args = parser.parse_args()
    trees = {"": HERE} if args.compare is None else {"this tree: ": HERE, "compared: ": args.compare.resolve()}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    commands = {"python -c pass": ([sys.executable, "-c", "pass"], env)}
    for label, root in trees.items():
        tree_env = {**env, "PYTHONPATH": str(root)}
        for argv in (["plan"], ["--help"]):
            commands[f"{label}glugqa {' '.join(argv)}"] = ([sys.executable, "-c", ENTRY, *argv], tree_env)
    for cmd, cmd_env in commands.values():  # warm the OS file cache once; timed runs are still fresh processes
        wall(cmd, cmd_env)
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (cmd, cmd_env) in commands.items():
            times[name].append(wall(cmd, cmd_env))
    base = statistics.median(times["python -c pass"])
    width = max(map(len, commands)) + 1
    print(f"{'command':{width}s} {'median':>9s} {'min':>9s} {'minus python':>13s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:{width}s} {med:8.3f}s {min(ts):8.3f}s {med - base:12.3f}s")
    here_env = {**env, "PYTHONPATH": str(HERE)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True, env=here_env, cwd=HERE
    )
    first = next(iter(trees))
    for argv in ("plan", "--help"):
        med = statistics.median(times[f"{first}glugqa {argv}"])
        verdict = "meets" if med < GOAL_S else "MISSES"
        print(f"{first}glugqa {argv}: median {med:.3f} s {verdict} the {GOAL_S} s goal ({med / base:.1f}x python)")
    print(f"heavy modules imported by glugqa plan: {probe.stdout.splitlines()[-1]}")

if __name__ == "__main__":
    main()
