"""The decode-step cost model vectorized over NumPy arrays of configurations (millions per second).

Same per-op roofline as :func:`costmodel.decode_latency` (written out again here in array form, with the same
efficiency terms: attention's cache-read efficiency, the KV-read setting, dequantisation, tile and wave
quantization, the step overhead; the tests check both agree), for decoder-only models without biases or
sliding windows, tp = 1. Every argument broadcasts; results are float64 arrays of the broadcast shape.
"""

from __future__ import annotations

import numpy as np

from refimpl.variants import FFN_VARIANTS

from .checks import number_in
from .config import ModelConfig, dtype_bytes, resolve_kv_dtype
from .flops import NORM_FLOPS_PER_ELEMENT, SOFTMAX_FLOPS_PER_SCORE, activation_flops
from .hardware import get_hardware
from .latency import ESTIMATE, Efficiency
from .memory import LOGITS_BYTES
from .params import NORM_VECTORS
from .roofline import TILE_M_MAX, TILE_M_MIN, TILE_N

_INT_FIELDS = (
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "vocab_size",
    "batch",
    "context",
)


def variant_arrays(names) -> tuple[np.ndarray, np.ndarray]:
    """(gated, activation FLOPs per hidden element incl. the gate multiply) for an array of variant names."""
    names = np.asarray(names)
    uniq, inverse = np.unique(names, return_inverse=True)
    bad = [str(u) for u in uniq if str(u) not in FFN_VARIANTS]
    if bad:
        raise ValueError(f"ffn must be one of {', '.join(FFN_VARIANTS)}; got {bad}")
    variants = [FFN_VARIANTS[str(u)] for u in uniq]
    gated = np.array([v.gated for v in variants])
    act = np.array([activation_flops(v.name) for v in variants], dtype=np.float64)
    return gated[inverse].reshape(names.shape), act[inverse].reshape(names.shape)


def _check(name: str, a: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(a)) or np.any(a <= 0) or np.any(a != np.floor(a)):
        raise ValueError(f"{name} must hold positive integers")
    return a


RATE_RANGE = {"peak_flops": (1e9, 1e18), "hbm_bandwidth": (1e9, 1e15)}  # as costmodel.hardware accepts


def _rate(name: str, value) -> np.ndarray:
    """A positive, finite rate array in RATE_RANGE (the hardware file's bounds): no negative or zero peak."""
    lo, hi = RATE_RANGE[name]
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers from {lo:g} to {hi:g}") from None
    if not np.all((a >= lo) & (a <= hi)):  # NaN fails too
        raise ValueError(f"{name} must hold numbers from {lo:g} to {hi:g}")
    return a


def _tile_efficiency(m, n, units) -> np.ndarray:
    """costmodel.roofline.gemm_tile_efficiency over arrays (one GEMM group)."""
    tile_m = np.clip(2.0 ** np.ceil(np.log2(np.maximum(m, 1.0))), TILE_M_MIN, TILE_M_MAX)
    tiles = np.ceil(m / tile_m) * np.ceil(n / TILE_N)
    waves = np.ceil(tiles / units)
    return np.minimum(1.0, m * n / (waves * units * tile_m * TILE_N))


def sweep_decode(
    *,
    d_model,
    n_layers,
    n_heads,
    n_kv_heads,
    d_ff,
    vocab_size,
    batch,
    context,
    head_dim=None,
    ffn="swiglu",
    tied=False,
    norm: str = "rmsnorm",
    weight_bytes=2.0,
    kv_bytes=None,
    act_bytes=2.0,
    peak_flops,
    hbm_bandwidth,
    eff: Efficiency = ESTIMATE,
    attn_peak_flops=None,
    compute_units=None,
    dequant: float = 1.0,
) -> dict[str, np.ndarray]:
    """Params, KV bytes, FLOPs, bytes and decode step time for every configuration (broadcast arrays).

    ``peak_flops`` / ``hbm_bandwidth``: the achieved-rate bases (dense peak of the compute dtype, HBM bytes/s;
    :func:`sweep_configs` passes a chip's, scaled by its efficiency factors), times eff.flops (or what the
    caller folded in) and eff.hbm. ``attn_peak_flops``: the attention core's 16-bit peak (default
    ``peak_flops``); ``compute_units``: the chip's SMs for tile and wave quantization (None: none);
    ``dequant``: the bandwidth factor of the weight matrices (eff.dequant_int8/int4 for weight-only int8/int4).
    Returns {"params", "kv_cache_bytes", "flops", "bytes", "compute_s", "memory_s", "time_s", "tokens_per_s"};
    compute_s / memory_s are sums over ops of each op's compute / memory time.
    """
    a = {
        k: np.asarray(v, dtype=np.float64)
        for k, v in dict(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            d_ff=d_ff,
            vocab_size=vocab_size,
            batch=batch,
            context=context,
        ).items()
    }
    a["head_dim"] = (
        a["d_model"] / a["n_heads"] if head_dim is None else np.asarray(head_dim, dtype=np.float64)
    )
    for k in _INT_FIELDS:
        _check(k, a[k])
    if np.any(np.fmod(a["n_heads"], a["n_kv_heads"])):
        raise ValueError("n_kv_heads must divide n_heads in every configuration")
    if norm not in NORM_VECTORS:
        raise ValueError(f"norm must be one of {', '.join(NORM_VECTORS)}; got {norm!r}")
    gated, act_fl = variant_arrays(ffn)
    D, L, N, K, Dh = a["d_model"], a["n_layers"], a["n_heads"], a["n_kv_heads"], a["head_dim"]
    Fd, V, B, S = a["d_ff"], a["vocab_size"], a["batch"], a["context"]
    wb, ab = np.asarray(weight_bytes, dtype=np.float64), np.asarray(act_bytes, dtype=np.float64)
    kb = wb if kv_bytes is None else np.asarray(kv_bytes, dtype=np.float64)
    nf, nv = NORM_FLOPS_PER_ELEMENT[norm], NORM_VECTORS[norm]
    n_in = 1.0 + gated
    width = (N + 2 * K) * Dh
    peak = _rate("peak_flops", peak_flops)
    pf = peak * eff.flops
    apf = (peak if attn_peak_flops is None else _rate("peak_flops", attn_peak_flops)) * eff.flops * eff.attn_compute
    bw = _rate("hbm_bandwidth", hbm_bandwidth) * eff.hbm
    dequant = number_in("dequant", dequant, 0.01, 1.0)
    ko = eff.kernel_overhead_s
    units = None
    if compute_units is not None and eff.wave_quantization:
        units = np.asarray(compute_units, dtype=np.float64)
        _check("compute_units", units)

    def q(n):  # the rate factor of a GEMM with B rows and n columns
        return 1.0 if units is None else _tile_efficiency(B, n, units)

    cache = 2 * B * S * K * Dh * kb * ((N / K) if eff.kv_read_per_query_head else 1.0)
    layer_ops = (  # (flops, other bytes, weight bytes, cache bytes, rate) of one layer's kernels, one new token per seq
        ((nf + 1) * B * D, 3 * B * D * ab + nv * D * wb, 0.0, 0.0, pf),  # attn_norm (fused residual add)
        (2 * B * D * width, B * (D + width) * ab + 2 * B * K * Dh * kb, D * width * wb, 0.0, pf * q(width)),  # qkv
        ((4 * Dh + SOFTMAX_FLOPS_PER_SCORE) * B * N * S, 2 * B * N * Dh * ab, 0.0, cache, apf),  # core
        (2 * B * N * Dh * D, B * (N * Dh + D) * ab, N * Dh * D * wb, 0.0, pf * q(D)),  # attn_out
        ((nf + 1) * B * D, 3 * B * D * ab + nv * D * wb, 0.0, 0.0, pf),  # ffn_norm
        (2 * B * D * Fd * n_in, B * (D + n_in * Fd) * ab, n_in * D * Fd * wb, 0.0, pf * q(n_in * Fd)),  # ffn_in
        (B * Fd * act_fl, B * (n_in + 1) * Fd * ab, 0.0, 0.0, pf),  # ffn_act
        (2 * B * Fd * D, B * (Fd + D) * ab, Fd * D * wb, 0.0, pf * q(D)),  # ffn_down
    )
    once_ops = (
        (0.0 * B, B * D * (wb + ab), 0.0, 0.0, pf),  # embed
        (nf * B * D, 2 * B * D * ab + nv * D * wb, 0.0, 0.0, pf),  # final_norm
        (2 * B * D * V, B * (D * ab + V * LOGITS_BYTES), V * D * wb, 0.0, pf * q(V)),  # lm_head
    )
    flops = nbytes = compute_s = memory_s = 0.0
    time_s = eff.step_overhead_s
    for count, ops in ((L, layer_ops), (1.0, once_ops)):
        for fl, rest, weights, kv, rate in ops:
            c = count * fl / rate
            m = count * (rest + weights / dequant + kv / eff.attn_memory) / bw
            flops, nbytes = flops + count * fl, nbytes + count * (rest + weights + kv)
            compute_s, memory_s = compute_s + c, memory_s + m
            time_s = time_s + np.maximum(c, m) + count * ko
    params = (
        V * D * (2 - np.asarray(tied, dtype=np.float64))
        + nv * D
        + L * (D * width + N * Dh * D + (1 + n_in) * D * Fd + 2 * nv * D)
    )
    return {
        "params": params,
        "kv_cache_bytes": 2 * L * B * S * K * Dh * kb,
        "flops": flops,
        "bytes": nbytes,
        "compute_s": compute_s,
        "memory_s": memory_s,
        "time_s": time_s,
        "tokens_per_s": B / time_s,
    }


def sweep_configs(
    cfgs,
    hw,
    *,
    batch,
    context,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    eff: Efficiency = ESTIMATE,
) -> dict[str, np.ndarray]:
    """:func:`sweep_decode` over a list of ModelConfigs (decoder-only, uniform dense layers with full attention,
    no biases, sinks, q/k norms or post-norms: what the vectorized model describes; the others take
    :func:`costmodel.decode_latency`)."""
    hw = get_hardware(hw)
    cfgs = list(cfgs)
    for c in cfgs:
        if not isinstance(c, ModelConfig):
            raise ValueError(f"cfgs must hold ModelConfig objects; got {type(c).__name__}")
        if (
            c.is_encoder_decoder
            or c.qkv_bias
            or c.out_bias
            or c.ffn_bias
            or c.sliding_window
            or c.norm == "none"
            or c.moe is not None
            or c.attn_sinks
            or c.qk_norm
            or c.post_norms
        ):
            raise ValueError(
                f"cfgs: {c.name!r} has encoder layers, biases, a window, experts, sinks or extra norms; "
                "use decode_latency"
            )
    norms = {c.norm for c in cfgs}
    if len(norms) != 1:
        raise ValueError("cfgs must share one norm kind")
    if weight_dtype == "fp8":
        raise ValueError("weight_dtype fp8 computes in fp8 where the chip can: use decode_latency")
    col = {f: np.array([getattr(c, f) for c in cfgs]) for f in _INT_FIELDS[:-2]}
    return sweep_decode(
        **col,
        batch=batch,
        context=context,
        ffn=np.array([c.ffn for c in cfgs]),
        tied=np.array([c.tied_embeddings for c in cfgs]),
        norm=norms.pop(),
        weight_bytes=float(dtype_bytes(weight_dtype, "weight_dtype")),
        kv_bytes=float(dtype_bytes(resolve_kv_dtype(kv_dtype, weight_dtype), "kv_dtype")),
        peak_flops=hw.flops_for("bf16") * hw.flops_efficiency_factor,
        hbm_bandwidth=hw.hbm_bandwidth * hw.hbm_efficiency_factor,
        eff=eff,
        compute_units=hw.compute_units,
        dequant={"int8": eff.dequant_int8, "int4": eff.dequant_int4}.get(weight_dtype, 1.0),
    )
