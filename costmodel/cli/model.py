"""``glugqa params | flops | kv | latency``: one model, by component or by op (``kv`` lives in ``kv.py``)."""

from __future__ import annotations

import click

from ..config import resolve_kv_dtype
from ..flops import decode_flops, prefill_flops
from ..latency import decode_latency, prefill_latency
from ..notes import encoder_note, kv_dtype_note, quantization_note
from ..parallel import per_device_param_breakdown
from ..params import active_param_count, param_count
from .formats import Column, Report
from .options import (
    ACTIVE_LABELS,
    COUNT,
    DEFAULT_CONTEXT,
    active_convention_option,
    check_active_convention,
    check_encoder_len,
    dtype_options,
    efficiency_options,
    emit,
    encoder_len_option,
    ep_option,
    format_option,
    given,
    hardware_options,
    model_options,
    tp_option,
)
from .plan import BOUND_NAMES, bound_of

DEFAULT_PROMPT = 1024  # prompt tokens of a prefill, the same in `flops` and `latency`

_MOE_GROUPS = {"experts": "moe/experts", "combine": "moe/experts", "shared": "moe/shared",
               "w_shared_gate": "moe/shared", "shared_gate": "moe/shared", "shared_gate_act": "moe/shared"}  # fmt: skip


def component_group(key: str) -> str:
    """Group of a breakdown key: 'layers/attn/w_q' -> 'attn', 'decoder/layers/cross_attn/q' ->
    'decoder/cross_attn', 'layers/moe/experts/w_up' -> 'moe/experts', 'layers/moe/w_router' -> 'moe/router';
    keys outside attention, FFN and MoE stay as they are."""
    parts = key.split("/")
    for i, part in enumerate(parts):
        if part in ("attn", "cross_attn", "ffn"):
            return "/".join(p for p in parts[: i + 1] if p != "layers")
        if part == "moe":
            return _MOE_GROUPS.get(parts[i + 1], "moe/router")  # router, its bias, routing
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
@click.command("params", short_help="Parameter count by component (per device with --tp); MoE: active too.")
@model_options
@tp_option
@ep_option
@click.option("--breakdown", is_flag=True, help="Every weight tensor (summed over layers) instead of groups.")
@active_convention_option
@format_option
def params_command(cfg, tp, ep, breakdown, active_convention, fmt):
    """Parameter count, by component (per device with --tp / --ep); a MoE model adds its active parameters
    per token (the whole model's: the routed experts a token skips left out)."""
    check_active_convention(cfg)
    items = per_device_param_breakdown(cfg, tp, ep=ep)
    items = items if breakdown else grouped(items)
    total = sum(items.values())
    rows = share_rows(items, "params") + [{"component": "total", "params": total, "share": 1.0}]
    meta = _model_meta(cfg, tp=tp, layers=cfg.layer_pattern)
    if cfg.moe is not None:
        active = active_param_count(cfg, convention=active_convention)
        label = ACTIVE_LABELS[active_convention].replace(" parameters", "")
        # the shares above are of this device's total; the whole model's active count gets one only when that
        # total is the whole model's (tp = ep = 1)
        share = active / param_count(cfg) if tp * ep == 1 else None
        rows.append({"component": f"{label}, whole model", "params": active, "share": share})
        meta.update(ep=ep, active_params=active, active_convention=active_convention)
    cols = [
        Column("component", "component"),
        Column("params", "parameters", "int"),
        Column("share", "share", "%"),
    ]
    where = "per device, " if tp * ep > 1 else ""
    ffn = f"{cfg.moe.n_experts} x {cfg.ffn} experts (top-{cfg.moe.top_k}, d_ff={cfg.moe.d_ff})" if cfg.moe else (
        f"{cfg.ffn}, d_ff={cfg.d_ff}")  # fmt: skip
    par = f"tp={tp}" + (f", ep={ep}" if ep > 1 else "")
    title = f"Parameters of {cfg.name} ({where}{par}; {cfg.attention_kind}, {ffn}; layers: {cfg.layer_pattern})"
    emit(Report(title, cols, rows, meta=meta), fmt)


# --- options that apply to one phase ---------------------------------------------------------------------
PHASE_OPTIONS = {  # option -> (the phase it applies to, what the other phase reads instead)
    "prompt": ("prefill", "a decode step attends --context keys"),
    "context": ("decode", "a prefill's length is --prompt"),
    "encoder_len": ("decode", "a prefill's encoder reads the --prompt tokens"),
}


def check_phase_options(phase: str, names) -> None:
    """ValueError for each of ``names`` the user gave although it does not apply to ``phase`` ("both"
    takes every one): `flops` and `latency` read their phase options alike."""
    ctx = click.get_current_context()
    for name in names:
        applies, instead = PHASE_OPTIONS[name]
        if phase not in (applies, "both") and given(ctx, name):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} applies to --phase {applies}; {instead}")


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
    help="Decode: keys attended (cache + new token).",
)
@click.option("--prompt", type=COUNT, help=f"Prefill: prompt tokens. [default: {DEFAULT_PROMPT}]")
@click.option("--breakdown", is_flag=True, help="Every term (q, k, v, qk, softmax, ...) instead of groups.")
@format_option
@click.pass_context
def flops_command(ctx, cfg, phase, batch, context, prompt, breakdown, fmt):
    """Forward FLOPs of one decode step or one prefill (FLOPs = 2 x multiply-accumulates).

    The prompt length is --prompt, as in `latency`, `plan` and `serve`; with --phase prefill, -c/--context
    is still read as the prompt when --prompt is not given (its old meaning here).
    """
    check_phase_options(phase, ("prompt",))
    if phase == "prefill" and prompt is None:
        prompt = context if given(ctx, "context") else DEFAULT_PROMPT
    if phase == "decode":
        fb = decode_flops(cfg, batch=batch, context=context)
        tokens = batch
    else:
        fb = prefill_flops(cfg, batch=batch, prompt_len=prompt)
        tokens = batch * prompt
        context = prompt
    items = fb.items if breakdown else grouped(fb.items)
    rows = share_rows(items, "flops") + [{"component": "total", "flops": fb.total, "share": 1.0}]
    cols = [Column("component", "component"), Column("flops", "FLOPs", "flop"), Column("share", "share", "%")]
    which = "active params" if cfg.moe is not None else "params"
    where = f"context {context}" if phase == "decode" else f"prompt {prompt}"
    title = (
        f"{phase.capitalize()} FLOPs of {cfg.name}: batch {batch}, {where} "
        f"({fb.total / tokens / active_param_count(cfg):.2f} x {which} FLOPs per new token; "
        f"matrix products {fb.matmul / fb.total:.1%})"
    )
    meta = _model_meta(
        cfg,
        phase=phase,
        batch=batch,
        context=context,
        **({"prompt": prompt} if phase == "prefill" else {}),
        total_flops=fb.total,
        matmul_flops=fb.matmul,
        flops_per_token=fb.total / tokens,
    )
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
@ep_option
@click.option("--phase", type=click.Choice(["both", "prefill", "decode"]), default="both", show_default=True)
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True)
@click.option("--prompt", type=COUNT, default=DEFAULT_PROMPT, show_default=True, help="Prefill: prompt tokens.")
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
@click.option(
    "--breakdown", is_flag=True,
    help="One row per op (kernel), summed over the layers that share it; per layer kind where they differ.",
)  # fmt: skip
@encoder_len_option
@format_option
def latency_command(
    cfg, hw, tp, ep, phase, batch, prompt, context, weight_dtype, kv_dtype, eff, breakdown, encoder_len, fmt
):
    """Roofline latency of a prefill and of one decode step, per op with --breakdown (attention-core rows
    per layer kind, e.g. sliding and full; MoE layers' router, experts and all-to-alls)."""
    check_encoder_len(cfg, encoder_len)
    check_phase_options(phase, ("prompt", "context", "encoder_len"))
    common = dict(tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff, ep=ep)
    results = []
    notes = []
    if phase in ("both", "prefill"):
        results.append(prefill_latency(cfg, hw, batch=batch, prompt_len=prompt, **common))
    if phase in ("both", "decode"):
        results.append(decode_latency(cfg, hw, batch=batch, context=context, encoder_len=encoder_len, **common))
        notes += encoder_note(cfg, context=context, encoder_len=encoder_len)
    notes += quantization_note(cfg, weight_dtype=weight_dtype) + kv_dtype_note(weight_dtype, kv_dtype)
    for lat in results:  # what the latency model assumed (its breakdowns carry notes)
        notes += [n for n in lat.notes if n not in notes]
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
    where = f"{tp * ep} x {hw.label} (tp {tp} x ep {ep})" if ep > 1 else f"{tp} x {hw.label}"
    lengths = {"prefill": f"prompt {prompt}", "decode": f"decode at context {context}"}
    shown = [lengths[p] for p in lengths if phase in (p, "both")]  # only what the phase reads
    title = (
        f"Latency of {cfg.name} on {where}: batch {batch}, {', '.join(shown)}; weights {weight_dtype}, "
        f"KV {resolve_kv_dtype(kv_dtype, weight_dtype)}"
    )
    meta = _model_meta(
        cfg,
        hardware=hw.name,
        tp=tp,
        **({"ep": ep} if ep > 1 else {}),
        batch=batch,
        **({"prompt": prompt} if phase != "decode" else {}),
        **({"context": context} if phase != "prefill" else {}),
        weight_dtype=weight_dtype,
        kv_dtype=resolve_kv_dtype(kv_dtype, weight_dtype),
    )
    emit(Report(title, cols, rows, meta=meta, notes=notes), fmt)
