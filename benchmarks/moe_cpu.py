"""SwiGLU mixture of experts forward+backward in the float64 reference, as a ratio to its expert matrix products.

Shapes (issue 15): T=4096 tokens, D=1024, E=8 experts, top-k=2, expert d_ff=1408, float64 (about Qwen1.5-MoE's
expert width). The floor is the nine SwiGLU matrix products of every expert (3 forward, 6 backward, as in
benchmarks/ffn_cpu.py) on tokens already grouped by expert -- the same group sizes the reference's router
produced -- timed in the same run, interleaved, so the ratio floor / reference is robust to a noisy shared
machine. What the reference adds: the router (logits, softmax, top-k, its backward), sorting the T*k slots by
expert, gathering tokens and scattering results, the combine weights and their gradient, the activations.
Goal: >= 0.85. A third timing, the experts alone through refimpl.ffn on the pre-grouped tokens, splits the gap
into the FFN's own elementwise work and what the MoE layer adds around it.

The run is made twice, each in a fresh interpreter: with glibc's default allocator, and with the allocator told
to keep freed memory for reuse (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_, glibc's
documented tunables, see mallopt(3)). By default every array above the mmap threshold (up to 32 MB) is mapped
fresh and unmapped on free, so each call page-faults its hundreds of MB of activations, caches and weight
gradients again; the MoE layer allocates more such arrays than the floor does, so it pays more of that.

Measured on the development machine (2 cores of an AMD EPYC VM, idle; matmul floor ~98 GFLOP/s): with the
default allocator floor/reference 0.69-0.73 (floor/ffn 0.89, ffn/reference 0.78-0.81); keeping freed memory
0.90-0.91 (floor/ffn 0.93, ffn/reference 0.97). Under a cProfile the layer's own work (router, sort, gathers,
sparse slot sums) is ~3% of the total: the rest of the default-allocator gap is page faults, not arithmetic.

    python benchmarks/moe_cpu.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
from ffn_cpu import best_time  # benchmarks/ is the script's folder, first on sys.path

from refimpl import ffn_backward, ffn_forward, init_moe_params, moe_backward, moe_forward

T, D, E, K, F = 4096, 1024, 8, 2, 1408
KEEP_FREED_MEMORY = {  # glibc tunables: no mmap per large array, no trimming on free (mallopt(3))
    "MALLOC_MMAP_THRESHOLD_": str(2**32),
    "MALLOC_TRIM_THRESHOLD_": str(2**36),
    "MALLOC_TOP_PAD_": str(2**30),
}
CHILD = "GLUGQA_MOE_BENCH_CHILD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    params = init_moe_params(rng, D, F, E, "swiglu")
    x = rng.standard_normal((T, D))  # (T, D)
    dy = rng.standard_normal((T, D))  # (T, D)
    _, cache = moe_forward(x, params, "swiglu", top_k=K)
    sizes = np.diff(cache.bounds)  # (E,) tokens per expert, as routed
    # stand-ins for each expert's grouped tokens, hidden activations and gradients
    groups = [tuple(rng.standard_normal((n, width)) for width in (D, D, F, F, F)) for n in sizes]  # x, dy, h, da, db

    def expert_matmuls():
        for e, (xe, dye, he, dae, dbe) in enumerate(groups):
            w_gate, w_up, w_down = params["w_gate"][e], params["w_up"][e], params["w_down"][e]
            _ = xe @ w_gate, xe @ w_up, he @ w_down  # forward
            _ = dye @ w_down.T, he.T @ dye, xe.T @ dae, xe.T @ dbe, dae @ w_gate.T, dbe @ w_up.T  # backward

    experts = [{k: params[k][e] for k in ("w_gate", "w_up", "w_down")} for e in range(E)]

    def experts_alone():  # refimpl.ffn on each expert's pre-grouped tokens: no router, no dispatch
        caches = [ffn_forward(xe, pe, "swiglu")[1] for (xe, *_), pe in zip(groups, experts, strict=True)]
        for (_, dye, *_), ce in zip(groups, caches, strict=True):
            ffn_backward(dye, ce)

    def reference():
        _, c = moe_forward(x, params, "swiglu", top_k=K)
        moe_backward(dy, c)

    timings = {"matmuls": expert_matmuls, "ffn": experts_alone, "moe": reference}
    best = dict.fromkeys(timings, float("inf"))
    for fn in timings.values():
        fn()  # warm up (page faults, BLAS threads)
    for _ in range(args.repeats):  # interleaved so all see the same machine load
        for name, fn in timings.items():
            best[name] = min(best[name], best_time(fn, 1))
    flops = 2 * 9 * T * K * D * F
    print(f"SwiGLU MoE fwd+bwd, T={T} D={D} E={E} top-k={K} F={F}, float64 (best of {args.repeats})")
    print(f"  tokens per expert        : {', '.join(map(str, sizes))}")
    floor = best["matmuls"]
    print(f"  expert matmuls alone     : {floor * 1e3:8.1f} ms  ({flops / floor / 1e9:.1f} GFLOP/s)")
    print(f"  experts via refimpl.ffn  : {best['ffn'] * 1e3:8.1f} ms  (floor/ffn {best['matmuls'] / best['ffn']:.3f})")
    print(f"  reference MoE fwd+bwd    : {best['moe'] * 1e3:8.1f} ms  (ffn/moe {best['ffn'] / best['moe']:.3f})")
    print(f"  ratio floor/reference    : {best['matmuls'] / best['moe']:.3f}   (goal >= 0.85)")


def both_allocators() -> None:
    """Run this script once per allocator setting, each in a fresh interpreter."""
    for label, extra in (("default allocator", {}), ("allocator keeping freed memory", KEEP_FREED_MEMORY)):
        print(f"-- {label} --", flush=True)
        env = {**os.environ, **extra, CHILD: "1"}
        subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env, check=True)


if __name__ == "__main__":
    main() if os.environ.get(CHILD) else both_allocators()
