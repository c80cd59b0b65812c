"""``glugqa params | flops | kv | latency``: one model, by component or by op."""

from __future__ import annotations

import click

from ..config import DTYPES
from ..flops import decode_flops, prefill_flops
from ..latency import decode_latency, prefill_latency
from ..memory import KV_TENSORS, kv_bytes_per_token, kv_cache_bytes, kv_cache_len
from ..parallel import kv_heads_per_device, per_device_param_breakdown
from ..params import param_count
from .formats import Column, Report
from .options import (
    COUNT,
    DEFAULT_CONTEXT,
    dtype_options,
    efficiency_options,
    emit,
    format_option,
    hardware_options,
    model_options,
    tp_option,
)
from .plan import BOUND_NAMES, bound_of


def component_group(key: str) -> str:
    """Group of a breakdown key: 'layers/attn/w_q' -> 'attn', 'decoder/layers/cross_attn/q' ->
    'decoder/cross_attn'; keys outside attention and FFN stay as they are."""
    parts = key.split("/")
    for i, part in enumerate(parts):
        if part in ("attn", "cross_attn", "ffn"):
            return "/".join(p for p in parts[: i + 1] if p != "layers")
    return key


def grouped(items: dict) -> dict:
    out: dict = {}
    for key, value in items.items():
        group = component_group(key)
        out[group] = out.get(group, 0) + value
    return out


def share_rows(items: dict, value_key: str) -> list[dict]:
    total = sum(items.values())
    return [{"component": k, value_key: v, "share": v / total if total else 0.0} for k, v in items.items()]


def _model_meta(cfg, **extra) -> dict:
    return {"model": cfg.name, "attention": cfg.attention_kind, "ffn": cfg.ffn, **extra}


# --- params ----------------------------------------------------------------------------------------------
@click.command("params", short_help="Parameter count by component (per device with --tp).")
@model_options
@tp_option
@click.option("--breakdown", is_flag=True, help="Every weight tensor (summed over layers) instead of groups.")
@format_option
def params_command(cfg, tp, breakdown, fmt):
    """Parameter count, by component (per device with --tp)."""
    items = per_device_param_breakdown(cfg, tp)
    items = items if breakdown else grouped(items)
    rows = share_rows(items, "params") + [{"component": "total", "params": sum(items.values()), "share": 1.0}]
    cols = [
        Column("component", "component"),
        Column("params", "parameters", "int"),
        Column("share", "share", "%"),
    ]
    where = "per device, " if tp > 1 else ""
    title = f"Parameters of {cfg.name} ({where}tp={tp}; {cfg.attention_kind}, {cfg.ffn}, d_ff={cfg.d_ff})"
    emit(Report(title, cols, rows, meta=_model_meta(cfg, tp=tp)), fmt)


# --- flops -----------------------------------------------------------------------------------------------
@click.command("flops", short_help="FLOPs of one decode step or one prefill, by component.")
@model_options
@click.option("--phase", type=click.Choice(["decode", "prefill"]), default="decode", show_default=True)
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True)
@click.option(
    "--context",
    "-c",
    type=COUNT,
    default=DEFAULT_CONTEXT,
    show_default=True,
    help="Decode: keys attended (cache + new token). Prefill: prompt length.",
)
@click.option("--breakdown", is_flag=True, help="Every term (q, k, v, qk, softmax, ...) instead of groups.")
@format_option
def flops_command(cfg, phase, batch, context, breakdown, fmt):
    """Forward FLOPs of one decode step or one prefill (FLOPs = 2 x multiply-accumulates)."""
    if phase == "decode":
        fb = decode_flops(cfg, batch=batch, context=context)
        tokens = batch
    else:
        fb = prefill_flops(cfg, batch=batch, prompt_len=context)
        tokens = batch * context
    items = fb.items if breakdown else grouped(fb.items)
    rows = share_rows(items, "flops") + [{"component": "total", "flops": fb.total, "share": 1.0}]
    cols = [Column("component", "component"), Column("flops", "FLOPs", "flop"), Column("share", "share", "%")]
    title = (
        f"{phase.capitalize()} FLOPs of {cfg.name}: batch {batch}, context {context} "
        f"({fb.total / tokens / param_count(cfg):.2f} x params FLOPs per new token; "
        f"matrix products {fb.matmul / fb.total:.1%})"
    )
    meta = _model_meta(
        cfg,
        phase=phase,
        batch=batch,
        context=context,
        total_flops=fb.total,
        matmul_flops=fb.matmul,
        flops_per_token=fb.total / tokens,
    )
    emit(Report(title, cols, rows, meta=meta), fmt)


# --- kv --------------------------------------------------------------------------------------------------
KV_COLUMNS = [
    Column("attention", "attention"),
    Column("n_kv_heads", "KV heads per device", "int"),
    Column("kv_bytes_per_token", "KV per token", "bytes"),
    Column("kv_bytes_per_sequence", "KV per sequence", "bytes"),
    Column("kv_bytes", "KV cache", "bytes"),
    Column("memory_share", "share of device memory", "%"),
]


@click.command("kv", short_help="KV cache size per device, against the same model as MHA.")
@model_options
@hardware_options
@tp_option
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True)
@click.option("--context", "-c", type=COUNT, default=DEFAULT_CONTEXT, show_default=True)
@click.option("--kv-dtype", type=click.Choice(DTYPES), default="bf16", show_default=True)
@click.option("--breakdown", is_flag=True, help="K and V of each attention kind, per layer and in total.")
@format_option
def kv_command(cfg, hw, tp, batch, context, kv_dtype, breakdown, fmt):
    """KV cache size, per device, against the same model with MHA (K = N)."""
    cols = KV_COLUMNS
    if breakdown:
        k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
        kv_cache_bytes(cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp)  # validates
        per_elem = kv_bytes_per_token(cfg, kv_dtype, tp=tp) / (
            KV_TENSORS * cfg.n_layers * k_dev * cfg.head_dim
        )
        kinds = [("self-attention", kv_cache_len(cfg, context))]
        if cfg.is_encoder_decoder:
            kinds.append(("cross-attention", context))
        rows = []
        for kind, positions in kinds:
            for tensor in ("K", "V"):
                per_layer = batch * positions * k_dev * cfg.head_dim * per_elem
                rows.append(
                    {
                        "cache": f"{kind} {tensor}",
                        "positions": positions,
                        "per_layer": per_layer,
                        "bytes": cfg.n_layers * per_layer,
                    }
                )
        cols = [
            Column("cache", "cache"),
            Column("positions", "positions", "int"),
            Column("per_layer", "per layer", "bytes"),
            Column("bytes", "all layers", "bytes"),
        ]
    else:
        rows = []
        for label, c in (
            (cfg.attention_kind, cfg),
            ("MHA (same model, K = N)", cfg.with_(n_kv_heads=cfg.n_heads)),
        ):
            kv = kv_cache_bytes(c, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp)
            rows.append(
                {
                    "attention": label,
                    "n_kv_heads": kv_heads_per_device(c.n_kv_heads, tp),
                    "kv_bytes_per_token": kv_bytes_per_token(c, kv_dtype, tp=tp),
                    "kv_bytes_per_sequence": kv / batch,
                    "kv_bytes": kv,
                    "memory_share": kv / hw.memory_bytes,
                }
            )
        if cfg.n_kv_heads == cfg.n_heads:
            rows = rows[:1]
    title = (
        f"KV cache of {cfg.name} ({kv_dtype}): batch {batch}, context {context}, tp={tp}, on {hw.label} "
        f"(N={cfg.n_heads}, K={cfg.n_kv_heads}, Dh={cfg.head_dim}, L={cfg.n_layers})"
    )
    meta = _model_meta(cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, hardware=hw.name)
    emit(Report(title, cols, rows, meta=meta), fmt)


# --- latency ---------------------------------------------------------------------------------------------
LATENCY_COLUMNS = [
    Column("phase", "phase"),
    Column("tokens", "new tokens", "int"),
    Column("time_s", "time", "s"),
    Column("tokens_per_s", "throughput", "tok/s"),
    Column("flops", "FLOPs", "flop"),
    Column("bytes", "HBM traffic", "bytes"),
    Column("intensity", "intensity", "flop/B"),
    Column("bound", "bound"),
    Column("bound_share", "bound share", "%"),
]
OP_COLUMNS = [
    Column("phase", "phase"),
    Column("op", "op"),
    Column("count", "count", "int"),
    Column("flops", "FLOPs", "flop"),
    Column("bytes", "bytes", "bytes"),
    Column("intensity", "intensity", "flop/B"),
    Column("bound", "bound"),
    Column("time_s", "time", "s"),
    Column("share", "share", "%"),
]


@click.command("latency", short_help="Roofline latency of prefill and decode (per op: --breakdown).")
@model_options
@hardware_options
@tp_option
@click.option("--phase", type=click.Choice(["both", "prefill", "decode"]), default="both", show_default=True)
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True)
@click.option("--prompt", type=COUNT, default=1024, show_default=True, help="Prompt length for prefill.")
@click.option(
    "--context",
    "-c",
    type=COUNT,
    default=DEFAULT_CONTEXT,
    show_default=True,
    help="Keys a decode step attends (cache + new token).",
)
@dtype_options
@efficiency_options
@click.option("--breakdown", is_flag=True, help="One row per op (kernel), summed over layers.")
@format_option
def latency_command(cfg, hw, tp, phase, batch, prompt, context, weight_dtype, kv_dtype, eff, breakdown, fmt):
    """Roofline latency of a prefill and of one decode step, per op with --breakdown."""
    common = dict(tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff)
    results = []
    if phase in ("both", "prefill"):
        results.append(prefill_latency(cfg, hw, batch=batch, prompt_len=prompt, **common))
    if phase in ("both", "decode"):
        results.append(decode_latency(cfg, hw, batch=batch, context=context, **common))
    if breakdown:
        rows = [{"phase": lat.phase, **r} for lat in results for r in lat.rows()]
        for row in rows:
            row["bound"] = BOUND_NAMES.get(row["bound"], row["bound"])
        cols = OP_COLUMNS
    else:
        rows = []
        for lat in results:
            bound, share = bound_of(lat)
            rows.append(
                {
                    "phase": lat.phase,
                    "tokens": lat.batch * lat.q_len,
                    "time_s": lat.total_s,
                    "tokens_per_s": lat.tokens_per_s,
                    "flops": lat.flops,
                    "bytes": lat.bytes,
                    "intensity": lat.flops / lat.bytes,
                    "bound": bound,
                    "bound_share": share,
                }
            )
        cols = LATENCY_COLUMNS
    title = (
        f"Latency of {cfg.name} on {tp} x {hw.label}: batch {batch}, prompt {prompt}, decode at context "
        f"{context}; weights {weight_dtype}, KV {kv_dtype or weight_dtype}; efficiency flops {eff.flops:g}, "
        f"HBM {eff.hbm:g}, {eff.kernel_overhead_s * 1e6:g} us per kernel"
    )
    meta = _model_meta(
        cfg,
        hardware=hw.name,
        tp=tp,
        batch=batch,
        prompt=prompt,
        context=context,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype or weight_dtype,
    )
    emit(Report(title, cols, rows, meta=meta), fmt)


COMMANDS = (params_command, flops_command, kv_command, latency_command)
