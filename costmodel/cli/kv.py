"""``glugqa kv``: the KV cache per device, against the same model with MHA, or by layer kind (--breakdown)."""

from __future__ import annotations

import click

from ..config import DTYPES
from ..memory import CROSS_ATTENTION, kv_bytes_per_token, kv_cache_breakdown, kv_cache_bytes
from ..notes import encoder_note, window_note
from ..parallel import kv_heads_per_device
from .formats import Column, Report, format_value
from .options import (
    COUNT,
    DEFAULT_CONTEXT,
    check_encoder_len,
    emit,
    encoder_len_option,
    format_option,
    hardware_options,
    model_options,
    tp_option,
)
from .plan import kv_per_token_column

KV_COLUMNS = [
    Column("attention", "attention"),
    Column("n_kv_heads", "KV heads per device", "int"),
    Column("kv_bytes_per_token", "KV per token", "bytes"),
    Column("kv_bytes_per_sequence", "KV per sequence", "bytes"),
    Column("kv_bytes", "KV cache", "bytes"),
    Column("memory_share", "share of device memory", "%"),
]
BREAKDOWN_COLUMNS = [
    Column("cache", "cache"),
    Column("layers", "layers", "int"),
    Column("positions", "positions", "int"),
    Column("per_layer", "per layer", "bytes"),
    Column("bytes", "all layers", "bytes"),
]


def breakdown_rows(cfg, *, batch, context, kv_dtype, tp, encoder_len=None) -> list[dict]:
    """K and V of each layer kind (full, each sliding window, cross-attention): layers, positions held per
    sequence, bytes per layer and over those layers (costmodel.kv_cache_breakdown)."""
    parts = kv_cache_breakdown(cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len)
    layers: dict[str, tuple[int, int]] = {}
    for layer, count in cfg.layer_groups:
        positions = layer.positions(context)
        n = layers.get(layer.attention_label, (0, positions))[0]
        layers[layer.attention_label] = (n + count, positions)
    if cfg.is_encoder_decoder:
        layers[CROSS_ATTENTION] = (cfg.n_layers, context if encoder_len is None else encoder_len)
    uniform = len(parts) == 1 or (cfg.is_encoder_decoder and len(parts) == 2)
    rows = []
    for kind, total in parts.items():
        count, positions = layers[kind]
        label = "self-attention" if uniform and kind != CROSS_ATTENTION else kind
        for tensor in ("K", "V"):
            rows.append({"cache": f"{label} {tensor}", "layers": count, "positions": positions,
                         "per_layer": total / 2 / count, "bytes": total / 2})  # fmt: skip
    return rows


@click.command("kv", short_help="KV cache size per device, against the same model as MHA.")
@model_options
@hardware_options
@tp_option
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True)
@click.option("--context", "-c", type=COUNT, default=DEFAULT_CONTEXT, show_default=True)
@click.option("--kv-dtype", type=click.Choice(DTYPES), default="bf16", show_default=True)
@click.option("--breakdown", is_flag=True, help="K and V of each layer kind (full, sliding, cross), per layer and all.")
@encoder_len_option
@format_option
def kv_command(cfg, hw, tp, batch, context, kv_dtype, breakdown, encoder_len, fmt):
    """KV cache size, per device, against the same model with MHA (K = N); by layer kind with --breakdown."""
    check_encoder_len(cfg, encoder_len)
    notes = encoder_note(cfg, context=context, encoder_len=encoder_len)
    if cfg.sliding_window is not None:  # the per-token column counts every layer as full: the average here
        per_sequence = kv_cache_bytes(cfg, batch=1, context=context, kv_dtype=kv_dtype, tp=tp)
        average = format_value(per_sequence / context, "bytes")
        notes += [f"{n} ({average} per token on average)" for n in window_note(cfg, context=context)]
    if breakdown:
        cols = BREAKDOWN_COLUMNS
        rows = breakdown_rows(cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len)
    else:
        cols = [kv_per_token_column(c, cfg) if c.key == "kv_bytes_per_token" else c for c in KV_COLUMNS]
        rows = []
        for label, c in (
            (cfg.attention_kind, cfg),
            ("MHA (same model, K = N)", cfg.with_(n_kv_heads=cfg.n_heads)),
        ):
            kv = kv_cache_bytes(c, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len)
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
    layers = f"L={cfg.n_layers}" if cfg.is_uniform else cfg.layer_pattern
    title = (
        f"KV cache of {cfg.name} ({kv_dtype}): batch {batch}, context {context}, tp={tp}, on {hw.label} "
        f"(N={cfg.n_heads}, K={cfg.n_kv_heads}, Dh={cfg.head_dim}, {layers})"
    )
    meta = {"model": cfg.name, "attention": cfg.attention_kind, "ffn": cfg.ffn, "layers": cfg.layer_pattern,
            "batch": batch, "context": context, "kv_dtype": kv_dtype, "tp": tp, "hardware": hw.name}  # fmt: skip
    emit(Report(title, cols, rows, meta=meta, notes=notes), fmt)
