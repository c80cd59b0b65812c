"""How well calibration generalises on the shipped development set (too slow for the test suite).

Prints, for the default estimate and for profiles fitted by ``costmodel.accuracy.calibrate``:
- the whole set: in-sample error and k-fold cross-validated error (what ``glugqa calibrate`` reports);
- random halves: fit on one half, predict the other, for several seeds (mean and per-seed deltas);
- leave one source out: fit on every other source family, predict the held-out one.
Both error definitions are reported (geometric-mean |error| and the log-based error).
Run: python benchmarks/calibration.py [n_half_splits]
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from costmodel.accuracy import counted, evaluate, shipped_points, summarize
from costmodel.accuracy.calibrate import calibrate, fit


def line(label: str, s) -> str:
    return f"{label:42s} n={s.n:3d}  geo-mean |error| {s.geomean_abs_error:6.1%}  log-based {s.log_error:6.1%}"


def main(splits: int = 10) -> None:
    t0 = time.perf_counter()
    points = [p.point for p in counted(evaluate(shipped_points()))]
    cal = calibrate(points, folds=5, seed=0)
    print(line("default estimate, whole set", cal.base_summary))
    print(line("calibrated, in sample", cal.in_sample))
    print(line("calibrated, 5-fold cross-validated", cal.cross_validated))
    print("fitted:", ", ".join(f"{n}={getattr(cal.efficiency, n):.3g}" for n in cal.fitted))
    rows = []
    for seed in range(splits):
        idx = list(range(len(points)))
        random.Random(seed).shuffle(idx)
        train, test = [points[i] for i in idx[::2]], [points[i] for i in idx[1::2]]
        eff = fit(train)[0]
        d, c = summarize(evaluate(test)), summarize(evaluate(test, eff=eff))
        rows.append((d.geomean_abs_error, d.log_error, c.geomean_abs_error, c.log_error))
    m = [statistics.mean(x) for x in zip(*rows, strict=True)]
    print(f"random halves ({splits} seeds), held-out half: default {m[0]:.1%} / {m[1]:.1%}, calibrated "
          f"{m[2]:.1%} / {m[3]:.1%} (geo-mean / log-based); calibrated better on the log-based error in "
          f"{sum(r[3] < r[1] for r in rows)} of {splits}, on the geo-mean in {sum(r[2] < r[0] for r in rows)}")
    for source in sorted({p.source_short for p in points}):
        train = [p for p in points if p.source_short != source]
        test = [p for p in points if p.source_short == source]
        eff = fit(train)[0]
        d, c = summarize(evaluate(test)), summarize(evaluate(test, eff=eff))
        print(f"leave out {source:16s} n={len(test):2d}: default {d.geomean_abs_error:6.1%} / {d.log_error:6.1%}"
              f"   calibrated on the rest {c.geomean_abs_error:6.1%} / {c.log_error:6.1%}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
