"""The decode-step cost model vectorized over NumPy arrays of configurations (millions per second).

Same per-op roofline as :func:`costmodel.decode_latency` (written out again here in array form; the tests
check both agree), for decoder-only models without biases or sliding windows, tp = 1. Every argument
broadcasts; results are float64 arrays of the broadcast shape.
"""

from __future__ import annotations

import numpy as np

from refimpl.variants import FFN_VARIANTS

from .config import ModelConfig, dtype_bytes
from .flops import NORM_FLOPS_PER_ELEMENT, SOFTMAX_FLOPS_PER_SCORE, activation_flops
from .hardware import get_hardware
from .latency import ESTIMATE, Efficiency
from .memory import LOGITS_BYTES
from .params import NORM_VECTORS

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
) -> dict[str, np.ndarray]:
    """Params, KV bytes, FLOPs, bytes and decode step time for every configuration (broadcast arrays).

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
    pf = np.asarray(peak_flops, dtype=np.float64) * eff.flops
    bw = np.asarray(hbm_bandwidth, dtype=np.float64) * eff.hbm
    ko = eff.kernel_overhead_s

    layer_ops = (  # (flops, bytes) of one layer's kernels, one new token per sequence
        ((nf + 1) * B * D, 3 * B * D * ab + nv * D * wb),  # attn_norm (fused residual add)
        (2 * B * D * width, D * width * wb + B * (D + width) * ab + 2 * B * K * Dh * kb),  # attn_qkv
        (
            (4 * Dh + SOFTMAX_FLOPS_PER_SCORE) * B * N * S,
            2 * B * S * K * Dh * kb + 2 * B * N * Dh * ab,
        ),  # core
        (2 * B * N * Dh * D, N * Dh * D * wb + B * (N * Dh + D) * ab),  # attn_out
        ((nf + 1) * B * D, 3 * B * D * ab + nv * D * wb),  # ffn_norm
        (2 * B * D * Fd * n_in, n_in * D * Fd * wb + B * (D + n_in * Fd) * ab),  # ffn_in
        (B * Fd * act_fl, B * (n_in + 1) * Fd * ab),  # ffn_act
        (2 * B * Fd * D, Fd * D * wb + B * (Fd + D) * ab),  # ffn_down
    )
    once_ops = (
        (0.0 * B, B * D * (wb + ab)),  # embed
        (nf * B * D, 2 * B * D * ab + nv * D * wb),  # final_norm
        (2 * B * D * V, V * D * wb + B * (D * ab + V * LOGITS_BYTES)),  # lm_head
    )
    flops = nbytes = compute_s = memory_s = time_s = 0.0
    for count, ops in ((L, layer_ops), (1.0, once_ops)):
        for fl, by in ops:
            c, m = count * fl / pf, count * by / bw
            flops, nbytes = flops + count * fl, nbytes + count * by
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
    col = {f: np.array([getattr(c, f) for c in cfgs]) for f in _INT_FIELDS[:-2]}
    return sweep_decode(
        **col,
        batch=batch,
        context=context,
        ffn=np.array([c.ffn for c in cfgs]),
        tied=np.array([c.tied_embeddings for c in cfgs]),
        norm=norms.pop(),
        weight_bytes=float(dtype_bytes(weight_dtype, "weight_dtype")),
        kv_bytes=float(dtype_bytes(kv_dtype or weight_dtype, "kv_dtype")),
        peak_flops=hw.flops_for("bf16"),
        hbm_bandwidth=hw.hbm_bandwidth,
        eff=eff,
    )
