"""Grouped-query attention in the float64 reference against torch SDPA (enable_gqa), same run, same machine.

Prefill (issue 3): causal GQA, B=1, T=S=1024, N=32, K=4, Dh=128, float64: forward and forward+backward time
and peak extra memory, for refimpl.attention_forward / attention_backward and, when torch is installed,
torch.nn.functional.scaled_dot_product_attention(..., is_causal=True, enable_gqa=True) (T = S, so torch's
top-left causal alignment equals ours). Goal: reference time / torch time <= 1.5 for both. The same
reference with attention sinks (gpt-oss: one logit per query head in each softmax denominator) is timed
in the same run, interleaved; goal: sinks / no sinks <= 1.1 for forward and forward+backward.

Peak extra memory is measured two ways: tracemalloc (sees NumPy's buffers, not torch's allocator) and the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs before each call) minus the resident
set before it, which sees both. Outputs and caches kept alive by the call count as extra.

Decode: one query (T=1) against S=8192 cached keys, N=32, K=1 (MQA), Dh=128: attention_forward alone and a
whole decode_step through a KVCache. Neither may allocate anything of shape (B, S, N, Dh) (repeated K/V): the
peaks are printed beside that array's size.

    python benchmarks/attention_cpu.py [--repeats 3] [--no-torch]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from refimpl import KVCache, attention_backward, attention_forward, decode_step, init_attention_params

B, T, N, K, DH = 1, 1024, 32, 4, 128
DECODE_S, DECODE_N, DECODE_K = 8192, 32, 1
MIB = 2**20


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_extra(fn) -> float | None:
    """Peak resident set during fn() minus the resident set before it (Linux only; None elsewhere)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    result = fn()
    peak = _status_bytes("VmHWM")
    del result
    return None if before is None or peak is None else float(peak - before)


def peak_traced(fn) -> float:
    """tracemalloc's peak of new allocations during fn() (NumPy buffers; not torch's allocator)."""
    gc.collect()
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return float(peak)


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def prefill_cases(rng, use_torch: bool) -> dict:
    q = rng.standard_normal((B, T, N, DH))  # (B, T, N, Dh)
    k = rng.standard_normal((B, T, K, DH))  # (B, S, K, Dh)
    v = rng.standard_normal((B, T, K, DH))  # (B, S, K, Dh)
    dout = rng.standard_normal((B, T, N, DH))  # (B, T, N, Dh)

    def ref_fwd():
        return attention_forward(q, k, v, causal=True)

    def ref_fwd_bwd():
        out, cache = attention_forward(q, k, v, causal=True)
        return out, attention_backward(dout, cache)

    sinks = rng.standard_normal(N)  # (N,) one logit per query head

    def sinks_fwd():
        return attention_forward(q, k, v, causal=True, sinks=sinks)

    def sinks_fwd_bwd():
        out, cache = attention_forward(q, k, v, causal=True, sinks=sinks)
        return out, attention_backward(dout, cache)

    cases = {"reference": (ref_fwd, ref_fwd_bwd), "+ sinks": (sinks_fwd, sinks_fwd_bwd)}
    if use_torch:
        import torch
        import torch.nn.functional as F

        to_bhtd = lambda a: torch.from_numpy(a).transpose(1, 2)  # noqa: E731  (B, H, T, Dh) view
        tq, tk, tv, tdout = map(to_bhtd, (q, k, v, dout))

        def torch_fwd():
            with torch.no_grad():
                return F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True)

        def torch_fwd_bwd():
            qq, kk, vv = (t.detach().requires_grad_() for t in (tq, tk, tv))
            out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, enable_gqa=True)
            out.backward(tdout)
            return out, qq.grad, kk.grad, vv.grad

        cases["torch"] = (torch_fwd, torch_fwd_bwd)
        out_ref = ref_fwd()[0]
        out_torch = torch_fwd().transpose(1, 2).numpy()
        print(f"  max |reference - torch| forward: {np.abs(out_ref - out_torch).max():.2e}")
    return cases


def run_prefill(repeats: int, use_torch: bool) -> None:
    print(f"Prefill: causal GQA B={B} T=S={T} N={N} K={K} Dh={DH} float64 (best of {repeats}, interleaved, rotating)")
    cases = prefill_cases(np.random.default_rng(0), use_torch)
    for _, fwd_bwd in cases.values():  # warm up: page faults, BLAS / OpenMP thread pools
        fwd_bwd()
    times = {name: [float("inf"), float("inf")] for name in cases}
    names = list(cases)
    for r in range(repeats):  # the order rotates, so no case always runs right after torch's busy threads
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for i, fn in enumerate(cases[name]):
                times[name][i] = min(times[name][i], best_time(fn, 1))
    header = f"{'forward':>10} {'fwd+bwd':>10} {'peak extra (tracemalloc)':>26} {'peak extra (RSS)':>20}"
    print(f"  {'':10} {header}")
    for name, (fwd, fwd_bwd) in cases.items():
        traced = [peak_traced(fn) / MIB for fn in (fwd, fwd_bwd)]
        rss = [peak_rss_extra(fn) for fn in (fwd, fwd_bwd)]
        rss_text = " / ".join("n/a" if r is None else f"{r / MIB:.0f}" for r in rss)
        traced_text = " / ".join(f"{t:.0f}" for t in traced) + (" (invisible)" if name == "torch" else "")
        print(f"  {name:10} {times[name][0]:9.3f}s {times[name][1]:9.3f}s {traced_text + ' MiB':>26} "
              f"{rss_text + ' MiB':>20}")  # fmt: skip
    sink_ratio = [times["+ sinks"][i] / times["reference"][i] for i in (0, 1)]
    print(f"  ratio with sinks / without: forward {sink_ratio[0]:.3f}, fwd+bwd {sink_ratio[1]:.3f} (goal <= 1.1)")
    if "torch" in cases:
        fwd_ratio = times["reference"][0] / times["torch"][0]
        both_ratio = times["reference"][1] / times["torch"][1]
        print(f"  ratio reference/torch: forward {fwd_ratio:.2f}, fwd+bwd {both_ratio:.2f} (goal <= 1.5)")
    print(f"  score matrix B*N*T*S float64 would be {B * N * T * T * 8 / MIB:.0f} MiB")


def run_decode(repeats: int) -> None:
    head_dim, d_model = DH, DECODE_N * DH
    repeated_bytes = B * DECODE_S * DECODE_N * head_dim * 8  # a (B, S, N, Dh) float64 array
    print(f"\nDecode: T=1 against S={DECODE_S}, N={DECODE_N}, K={DECODE_K}, Dh={head_dim}, float64")
    rng = np.random.default_rng(1)
    q = rng.standard_normal((B, 1, DECODE_N, head_dim))  # (B, 1, N, Dh)
    k = rng.standard_normal((B, DECODE_S, DECODE_K, head_dim))  # (B, S, K, Dh)
    v = rng.standard_normal((B, DECODE_S, DECODE_K, head_dim))  # (B, S, K, Dh)
    attn = lambda: attention_forward(q, k, v, causal=True)  # noqa: E731
    attn()
    print(f"  attention_forward : {best_time(attn, repeats) * 1e3:7.2f} ms, tracemalloc peak "
          f"{peak_traced(attn) / MIB:6.2f} MiB")  # fmt: skip

    params = init_attention_params(rng, d_model, DECODE_N, DECODE_K, head_dim)
    cache = KVCache.empty(B, DECODE_S, DECODE_K, head_dim)
    cache.append(k[:, :-1], v[:, :-1])  # S - 1 cached tokens; each timed step writes token S - 1 again
    x_t = rng.standard_normal((B, d_model))  # (B, D)

    def step():
        cache.length = DECODE_S - 1
        return decode_step(x_t, params, cache, n_heads=DECODE_N, n_kv_heads=DECODE_K)

    step()
    print(f"  decode_step       : {best_time(step, repeats) * 1e3:7.2f} ms, tracemalloc peak "
          f"{peak_traced(step) / MIB:6.2f} MiB (projections included; cache {cache.nbytes / MIB:.0f} MiB "
          f"preallocated)")  # fmt: skip
    print(f"  one (B, S, N, Dh) float64 array (repeated K or V) would take {repeated_bytes / MIB:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="skip torch even when it is installed")
    args = parser.parse_args()
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch

            print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
        except ImportError:
            print("torch is not installed: reference figures only")
            use_torch = False
    run_prefill(args.repeats, use_torch)
    run_decode(args.repeats)


if __name__ == "__main__":
    main()
