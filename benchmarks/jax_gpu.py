"""The JAX port on an accelerator, at Llama-3-8B shapes: bf16 SwiGLU forward+backward TFLOP/s as a fraction
of the chip's dense bf16 peak, and one GQA decode step's bytes/s as a fraction of its HBM bandwidth.

Shapes (Llama-3-8B: D=4096, F=14336, N=32 query heads, K=8 KV heads, Dh=128), one layer, bfloat16:
1. SwiGLU forward + backward (refimpl.jax.ffn_forward + ffn_backward, jitted together) on T=8192 tokens.
   FLOPs = 2 * 9 * T * D * F (3 forward and 6 backward matrix products). Goal >= 0.6 of peak.
2. One decode step (refimpl.jax.kv_cache, the jitted step with the cache donated) at batch 64, context 8192:
   the bytes it must move are the KV cache read, 2 * B * S * K * Dh * 2, plus the layer's weights,
   (D*N*Dh + 2*D*K*Dh + N*Dh*D) * 2, plus the new keys/values written and x in / y out (small). Achieved
   bytes/s = that total / time per step. Goal >= 0.7 of HBM bandwidth.

Peaks come from costmodel's hardware presets (costmodel/data/hardware.toml, dense figures), matched on
``jax.devices()[0].device_kind``; pass --hardware NAME to choose a preset when the match fails or is wrong
(e.g. a PCIe card reported with an SXM-like name). Without a GPU/TPU the script prints why and exits 0.

    python benchmarks/jax_gpu.py [--repeats 10] [--hardware h100-sxm] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

D, F, N_HEADS, N_KV, HEAD_DIM = 4096, 14336, 32, 8, 128
FFN_TOKENS, BATCH, CONTEXT = 8192, 64, 8192
BF16_BYTES = 2
GOALS = {"ffn_fraction_of_peak": 0.6, "decode_fraction_of_hbm": 0.7}

# (substrings all present in device_kind, upper-cased) -> costmodel hardware preset; first match wins
_PRESET_RULES = [
    (("H200",), "h200-sxm"), (("H100", "PCIE"), "h100-pcie"), (("H100", "HBM3"), "h100-sxm"),
    (("H100", "SXM"), "h100-sxm"), (("A100", "80GB"), "a100-sxm-80gb"), (("A100", "40GB"), "a100-sxm-40gb"),
    (("B200",), "b200"), (("MI300X",), "mi300x"), (("L40S",), "l40s"), (("L4",), "l4"),
    (("TPU V4",), "tpu-v4"), (("TPU V5 LITE",), "tpu-v5e"), (("TPU V5E",), "tpu-v5e"), (("TPU V5P",), "tpu-v5p"),
]  # fmt: skip


def preset_for(device_kind: str) -> str | None:
    kind = device_kind.upper()
    for needles, name in _PRESET_RULES:
        if all(n in kind for n in needles):
            return name
    return None


def timed(fn, repeats: int) -> float:
    """Median seconds per call over ``repeats`` calls after one warm-up; fn blocks on its result."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_ffn(repeats: int) -> dict:
    from refimpl.jax import ffn as jffn

    key = jax.random.key(0)
    params = jffn.init_ffn_params(key, D, F, "swiglu", dtype=jnp.bfloat16)
    kx, kd = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (FFN_TOKENS, D), jnp.bfloat16)  # (T, D)
    dy = jax.random.normal(kd, (FFN_TOKENS, D), jnp.bfloat16)  # (T, D)

    @jax.jit
    def fwd_bwd(x_, dy_, p_):
        return jffn.ffn_forward(x_, p_, "swiglu"), jffn.ffn_backward(dy_, x_, p_, "swiglu")

    seconds = timed(lambda: jax.block_until_ready(fwd_bwd(x, dy, params)), repeats)
    flop = 2 * 9 * FFN_TOKENS * D * F
    return {"seconds": seconds, "flop": flop, "flop_per_s": flop / seconds}


def bench_decode(repeats: int) -> dict:
    from refimpl.jax import kv_cache as jkv
    from refimpl.jax import layer as jlayer

    params = jlayer.init_attention_params(jax.random.key(2), D, N_HEADS, N_KV, HEAD_DIM, dtype=jnp.bfloat16)
    k_cache = jax.random.normal(jax.random.key(3), (BATCH, CONTEXT, N_KV, HEAD_DIM), jnp.bfloat16)
    v_cache = jax.random.normal(jax.random.key(4), (BATCH, CONTEXT, N_KV, HEAD_DIM), jnp.bfloat16)
    n_steps = repeats + 1  # one warm-up step, then `repeats` timed steps: the cache ends full (context 8192)
    start_len = CONTEXT - n_steps
    cache = jkv.KVCache(k_cache, v_cache, jnp.asarray(start_len, jnp.int32))
    x = jax.random.normal(jax.random.key(5), (BATCH, 1, D), jnp.bfloat16)  # (B, 1, D)
    static = dict(n_heads=N_HEADS, n_kv_heads=N_KV, head_dim=HEAD_DIM, rope=None, window=None, softcap=None,
                  scale=HEAD_DIM**-0.5)  # fmt: skip
    y, cache = jkv._decode_step(x, params, cache, **static)  # compile + warm-up
    jax.block_until_ready(y)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y, cache = jkv._decode_step(x, params, cache, **static)
        jax.block_until_ready((y, cache))
        times.append(time.perf_counter() - t0)
    assert int(cache.length) == CONTEXT
    assert jkv._decode_step._cache_size() == 1, "the decode step recompiled"
    seconds = float(np.median(times))
    kv_read = 2 * BATCH * CONTEXT * N_KV * HEAD_DIM * BF16_BYTES
    weights = (D * N_HEADS * HEAD_DIM + 2 * D * N_KV * HEAD_DIM + N_HEADS * HEAD_DIM * D) * BF16_BYTES
    small = (2 * BATCH * N_KV * HEAD_DIM + 2 * BATCH * D) * BF16_BYTES  # new k, v written; x read, y written
    total = kv_read + weights + small
    return {"seconds": seconds, "bytes": total, "kv_bytes": kv_read, "weight_bytes": weights,
            "bytes_per_s": total / seconds}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--hardware", default=None, help="costmodel hardware preset name (default: from device)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    backend = jax.default_backend()
    if backend not in ("gpu", "cuda", "rocm", "tpu"):
        print(f"jax_gpu.py: no GPU/TPU backend (JAX backend is {backend!r}); nothing to measure. "
              "Run it on a machine with an accelerator (pip install 'jax[cuda12]').")  # fmt: skip
        return 0
    from costmodel import get_hardware

    device_kind = jax.devices()[0].device_kind
    name = args.hardware or preset_for(device_kind)
    if name is None:
        print(f"jax_gpu.py: no hardware preset matches device {device_kind!r}; pass --hardware NAME", file=sys.stderr)
        return 2
    hw = get_hardware(name)
    peak, hbm = hw.flops_for("bf16"), hw.hbm_bandwidth
    print(f"device: {device_kind} (preset {name}: bf16 {peak / 1e12:.0f} TFLOP/s, HBM {hbm / 1e12:.2f} TB/s), "
          f"jax {jax.__version__}")  # fmt: skip
    ffn = bench_ffn(args.repeats)
    ffn_fraction = ffn["flop_per_s"] / peak
    print(f"SwiGLU fwd+bwd bf16 T={FFN_TOKENS} D={D} F={F}: {ffn['seconds'] * 1e3:.2f} ms, "
          f"{ffn['flop_per_s'] / 1e12:.1f} TFLOP/s = {ffn_fraction:.3f} of peak (goal >= 0.6)")  # fmt: skip
    dec = bench_decode(args.repeats)
    dec_fraction = dec["bytes_per_s"] / hbm
    print(f"GQA decode step bf16 B={BATCH} context={CONTEXT} N={N_HEADS} K={N_KV} Dh={HEAD_DIM}: "
          f"{dec['seconds'] * 1e6:.0f} us, {dec['bytes'] / 1e9:.3f} GB moved, {dec['bytes_per_s'] / 1e12:.2f} TB/s "
          f"= {dec_fraction:.3f} of HBM bandwidth (goal >= 0.7)")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device_kind": device_kind, "preset": name, "jax": jax.__version__,
                       "ffn": {**ffn, "fraction_of_peak": ffn_fraction},
                       "decode": {**dec, "fraction_of_hbm": dec_fraction}, "goals": GOALS}, fh, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
