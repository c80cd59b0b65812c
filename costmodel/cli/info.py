"""``glugqa hardware list|show`` and ``glugqa models list|show``: the presets and where they come from."""

from __future__ import annotations

import click

from ..hardware import HARDWARE, Hardware
from ..memory import kv_bytes_per_token
from ..models import MODELS, get_model
from ..params import active_param_count, param_count
from .formats import Column, Report
from .groups import LazyGroup
from .options import check_name, emit, format_option, load_hardware_option
from .plan import moe_rows

HW_COLUMNS = [
    Column("name", "name"),
    Column("label", "chip"),
    Column("flops_bf16", "bf16 dense", "flop/s", "TFLOP/s"),
    Column("flops_fp8", "fp8 dense", "flop/s", "TFLOP/s"),
    Column("hbm_bandwidth", "HBM", "B/s", "TB/s"),
    Column("memory_bytes", "memory", "GiB"),
    Column("link_bandwidth", "link per direction", "B/s", "GB/s"),
    Column("ridge_point", "ridge point", "flop/B"),
]
HW_DETAIL = [
    *HW_COLUMNS[:5],
    Column("ops_int8", "int8 dense", "flop/s"),
    Column("memory_bytes", "memory", "GiB"),
    Column("memory_gb", "memory (decimal)", "bytes"),
    Column("link", "link"),
    Column("link_bandwidth", "link bandwidth per direction", "B/s"),
    Column("ridge_point", "ridge point (bf16)", "flop/B"),
    Column("devices_per_node", "devices per node", "int"),
    Column("link_direct", "link joins every pair directly"),
    Column("link_latency_s", "link latency per ring step", "s"),
    Column("network", "network between nodes"),
    Column("network_bandwidth", "network bandwidth per device and direction", "B/s"),
    Column("network_latency_s", "network latency per ring step", "s"),
    Column("compute_units", "compute units (SMs)", "int"),
    Column("hbm_efficiency_factor", "HBM efficiency factor", "x"),
    Column("flops_efficiency_factor", "FLOP/s efficiency factor", "x"),
    Column("source", "source"),
    Column("date_read", "date read"),
]


def hardware_row(hw: Hardware) -> dict:
    return {
        "name": hw.name,
        "label": hw.label,
        "flops_bf16": hw.peak_flops.get("bf16"),
        "flops_fp8": hw.peak_flops.get("fp8"),
        "ops_int8": hw.peak_flops.get("int8"),
        "hbm_bandwidth": hw.hbm_bandwidth,
        "memory_bytes": hw.memory_bytes,
        "memory_gb": hw.memory_bytes,
        "link": hw.link,
        "link_bandwidth": hw.link_bandwidth,
        "ridge_point": hw.ridge_point,
        "devices_per_node": hw.devices_per_node,
        "link_direct": hw.link_direct,
        "link_latency_s": hw.link_latency_s,
        "network": hw.network or None,
        "network_bandwidth": hw.network_bandwidth,
        "network_latency_s": hw.network_latency_s,
        "compute_units": hw.compute_units,
        "hbm_efficiency_factor": hw.hbm_efficiency_factor,
        "flops_efficiency_factor": hw.flops_efficiency_factor,
        "source": hw.source,
        "date_read": hw.date_read,
    }


def _chips(path: str | None) -> dict[str, Hardware]:
    return HARDWARE if path is None else load_hardware_option(path)


_FILE_OPTION = click.option(
    "--hardware-file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PATH",
    help="List/show the chips of this TOML file instead of the presets.",
)


@click.group("hardware", cls=LazyGroup, short_help="Accelerator presets: peaks, bandwidth, memory, sources.")
def hardware_group() -> None:
    """Accelerator presets: dense peak FLOP/s, HBM bandwidth, memory, links, sources."""


@hardware_group.command("list")
@_FILE_OPTION
@format_option
def hardware_list(hardware_file, fmt):
    """Every chip (dense peaks; link bandwidth per direction)."""
    rows = [hardware_row(hw) for hw in _chips(hardware_file).values()]
    title = "Accelerators (dense peaks, decimal units; memory in GiB; link bandwidth per direction)"
    emit(Report(title, HW_COLUMNS, rows), fmt)


@hardware_group.command("show")
@click.argument("name")
@_FILE_OPTION
@format_option
def hardware_show(name, hardware_file, fmt):
    """One chip with its source."""
    chips = _chips(hardware_file)
    hw = chips[check_name("hardware", name, chips, "glugqa hardware list")]
    emit(Report(f"{hw.label} ({hw.name})", HW_DETAIL, [hardware_row(hw)], kv=True), fmt)


MODEL_COLUMNS = [
    Column("name", "name"),
    Column("attention", "attention"),
    Column("n_layers", "L", "int"),
    Column("d_model", "D", "int"),
    Column("n_heads", "N", "int"),
    Column("n_kv_heads", "K", "int"),
    Column("head_dim", "Dh", "int"),
    Column("d_ff", "F", "int"),
    Column("ffn", "FFN"),
    Column("vocab_size", "V", "int"),
    Column("params", "params", "count"),
    Column("active_params", "active", "count"),
    Column("kv_bytes_per_token", "KV/token bf16, all layers full", "bytes"),
]
KV_PER_TOKEN_NOTE = (
    "KV/token counts every layer as full attention; a sliding-window layer stops growing at its window "
    "(`glugqa kv -m NAME -c CONTEXT` gives the cache at a context)"
)
MODEL_DETAIL = [
    *MODEL_COLUMNS[:-3],
    Column("layers", "layers"),
    Column("experts", "experts (routed, per token)"),
    Column("extras", "per-layer extras"),
    Column("max_position", "max positions", "int"),
    Column("rope_scaling", "RoPE scaling"),
    Column("softcaps", "logit softcaps (attention, final)"),
    Column("n_encoder_layers", "encoder layers", "int"),
    Column("tied_embeddings", "tied embeddings"),
    Column("qkv_bias", "q/k/v bias"),
    Column("out_bias", "output bias"),
    Column("ffn_bias", "FFN bias"),
    Column("norm", "norm"),
    Column("position", "positions"),
    Column("sliding_window", "sliding window", "int"),
    *MODEL_COLUMNS[-3:],
    Column("source", "source"),
]


def model_row(cfg) -> dict:
    fields = (
        "name",
        "n_layers",
        "d_model",
        "n_heads",
        "n_kv_heads",
        "head_dim",
        "d_ff",
        "ffn",
        "vocab_size",
        "n_encoder_layers",
        "tied_embeddings",
        "qkv_bias",
        "out_bias",
        "ffn_bias",
        "norm",
        "position",
        "sliding_window",
        "source",
    )
    extras = [name for name, on in (("attention sinks", cfg.attn_sinks), ("q/k norms", cfg.qk_norm),
                                    ("post-norms", cfg.post_norms)) if on]  # fmt: skip
    rope = cfg.rope_scaling
    optional = {
        "experts": moe_rows(cfg, "with_embeddings").get("experts"),
        "extras": ", ".join(extras) or None,
        "max_position": cfg.max_position if cfg.position != "learned" and cfg.max_position else None,
        "rope_scaling": f"{rope.kind} x{rope.factor:g}" + (f" from {rope.original_max_position:,}"
                                                          if rope.original_max_position else "") if rope else None,
        "softcaps": f"{cfg.attn_softcap}, {cfg.final_softcap}" if cfg.attn_softcap or cfg.final_softcap else None,
    }  # fmt: skip
    return {
        **{f: getattr(cfg, f) for f in fields},
        "attention": cfg.attention_kind,
        "layers": cfg.layer_pattern,
        **{k: v for k, v in optional.items() if v is not None},
        "params": param_count(cfg),
        "active_params": active_param_count(cfg),
        "kv_bytes_per_token": kv_bytes_per_token(cfg, "bf16"),
    }


@click.group("models", cls=LazyGroup)
def models_group() -> None:
    """Model presets (dimensions only) and their sources."""


@models_group.command("list")
@format_option
def models_list(fmt):
    """Every preset: dimensions, parameters, KV bytes per token (bf16)."""
    rows = [model_row(cfg) for cfg in MODELS.values()]
    title = "Model presets (L layers, D width, N query heads, K KV heads, Dh head dim, F d_ff, V vocab)"
    emit(Report(title, MODEL_COLUMNS, rows, notes=[KV_PER_TOKEN_NOTE]), fmt)


@models_group.command("show")
@click.argument("name")
@format_option
def models_show(name, fmt):
    """One preset with every field and its source."""
    cfg = get_model(check_name("model", name, MODELS, "glugqa models list"))
    notes = [KV_PER_TOKEN_NOTE] if cfg.sliding_window is not None else []
    emit(Report(f"Model preset {cfg.name}", MODEL_DETAIL, [model_row(cfg)], kv=True, notes=notes), fmt)
