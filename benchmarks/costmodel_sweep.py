"""Configurations per second of costmodel.sweep_decode (goal >= 1e6/s) and the scalar decode_latency rate.

A grid of random decoder-only configurations (D, L, N, K | N, d_ff, vocab, batch, context) is evaluated in
one vectorized call; the script prints the rate of the vectorized sweep, the scalar rate, and their ratio.
Run: python benchmarks/costmodel_sweep.py [n_configs]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import costmodel as cm
from refimpl.variants import FFN_VARIANTS


def random_grid(n: int, rng: np.random.Generator) -> dict:
    n_heads = rng.choice([8, 16, 32, 64, 128], n)
    group = rng.choice([1, 2, 4, 8], n)
    return dict(
        d_model=n_heads * 128,
        n_layers=rng.integers(12, 96, n),
        n_heads=n_heads,
        n_kv_heads=np.maximum(n_heads // group, 1),
        d_ff=n_heads * 128 * 4,
        vocab_size=rng.choice([32000, 128256], n),
        batch=rng.integers(1, 256, n),
        context=rng.integers(128, 32768, n),
        ffn=rng.choice(list(FFN_VARIANTS), n),
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(0)
    grid = random_grid(n, rng)
    hw = cm.HARDWARE["h100-sxm"]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        out = cm.sweep_decode(**grid, peak_flops=hw.peak_flops["bf16"], hbm_bandwidth=hw.hbm_bandwidth)
        best = min(best, time.perf_counter() - t0)
    assert np.all(np.isfinite(out["time_s"]))
    vec_rate = n / best
    m = 2000
    t0 = time.perf_counter()
    for i in range(m):
        cfg = cm.ModelConfig(
            d_model=int(grid["d_model"][i]),
            n_layers=int(grid["n_layers"][i]),
            n_heads=int(grid["n_heads"][i]),
            n_kv_heads=int(grid["n_kv_heads"][i]),
            d_ff=int(grid["d_ff"][i]),
            vocab_size=int(grid["vocab_size"][i]),
            ffn=str(grid["ffn"][i]),
        )
        cm.decode_latency(cfg, hw, batch=int(grid["batch"][i]), context=int(grid["context"][i]))
    scalar_rate = m / (time.perf_counter() - t0)
    print(
        f"sweep_decode: {n:,} configurations in {best * 1e3:.1f} ms = {vec_rate:,.0f} configurations/s "
        f"(goal >= 1,000,000/s: {'met' if vec_rate >= 1e6 else 'NOT met'})"
    )
    print(
        f"decode_latency (scalar): {scalar_rate:,.0f} configurations/s; "
        f"vectorized / scalar = {vec_rate / scalar_rate:,.0f}x"
    )


if __name__ == "__main__":
    main()
