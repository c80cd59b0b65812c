"""``glugqa plan``: the capacity plan of one model on one accelerator (tensor-parallel over ``--tp``)."""

from __future__ import annotations

import click

from ..latency import LatencyBreakdown
from ..params import active_param_count, param_count
from ..plan import MEMORY_UTILIZATION, max_batch, plan
from .formats import Column, Report
from .options import (
    ACTIVE_LABELS,
    COUNT,
    DEFAULT_CONTEXT,
    FRACTION,
    active_convention_option,
    dtype_options,
    efficiency_options,
    emit,
    ep_option,
    format_option,
    hardware_options,
    model_options,
    tp_option,
)

BOUND_NAMES = {"memory": "HBM bandwidth", "compute": "compute", "link": "link bandwidth"}


def bound_of(lat: LatencyBreakdown) -> tuple[str, float]:
    """The bound holding most of the step's time and its share of it."""
    by = lat.time_by_bound()
    top = max(by, key=by.get)
    return BOUND_NAMES.get(top, top), by[top] / sum(by.values())


PLAN_COLUMNS = [
    Column("model", "model"),
    Column("hardware", "hardware"),
    Column("devices", "devices (tensor parallel)", "int"),
    Column("context", "context (tokens per sequence)", "int"),
    Column("attention", "attention"),
    Column("layers", "layers"),
    Column("weight_dtype", "weight dtype"),
    Column("kv_dtype", "KV dtype"),
    Column("params", "parameters", "count"),
    Column("weight_bytes", "weights per device", "bytes"),
    Column("kv_bytes_per_token", "KV cache per token", "bytes"),
    Column("kv_bytes_per_sequence", "KV cache per sequence", "bytes"),
    Column("usable_bytes", "usable memory per device", "bytes"),
    Column("max_batch", "largest batch that fits", "int"),
    Column("batch", "batch evaluated", "int"),
    Column("used_bytes", "memory used at that batch", "bytes"),
    Column("fits", "fits"),
    Column("decode_s", "decode latency per token", "s"),
    Column("tokens_per_s", "throughput (whole batch)", "tok/s"),
    Column("tokens_per_s_per_sequence", "throughput per sequence", "tok/s"),
    Column("bound", "bound"),
    Column("bound_share", "share of step time under that bound", "%"),
    Column("intensity", "arithmetic intensity", "flop/B"),
    Column("ridge_point", "hardware ridge point", "flop/B"),
]


def _smallest_tp_that_fits(cfg, hw, context, tp, weight_dtype, kv_dtype, utilization, ep=1) -> str | None:
    """'--tp 4 (fits 12 sequences)' for the smallest valid tp above ``tp`` where a sequence fits, or None."""
    for larger in range(tp + 1, cfg.n_heads + 1):
        try:
            n = max_batch(cfg, hw, context=context, devices=larger, weight_dtype=weight_dtype,
                          kv_dtype=kv_dtype, memory_utilization=utilization, ep=ep)  # fmt: skip
        except ValueError:  # tp incompatible with the head counts or d_ff
            continue
        if n >= 1:
            return f"--tp {larger} (fits {n} sequences)"
    return None


# lines only a MoE model shows, each after the line named first
MOE_COLUMNS = (
    ("devices", Column("ep", "expert-parallel groups (x devices each)", "int")),  # with --ep > 1
    ("layers", Column("experts", "experts (routed, per token)")),
    *(("params", Column(f"active_params_{k}", label, "count")) for k, label in reversed(ACTIVE_LABELS.items())),
)


def plan_columns(cfg) -> list[Column]:
    """PLAN_COLUMNS, with the MoE lines for a MoE model."""
    cols = list(PLAN_COLUMNS)
    if cfg.moe is not None:
        for after, col in MOE_COLUMNS:
            cols.insert(next(i for i, c in enumerate(cols) if c.key == after) + 1, col)
    return cols


def moe_rows(cfg, convention: str) -> dict:
    """The plan/params lines a MoE model adds: its experts and its active parameters (under ``convention``)."""
    if cfg.moe is None:
        return {}
    m = cfg.moe
    shared = f" + {m.n_shared} shared" if m.n_shared else ""
    dense = f", {len(cfg.dense_layers)} dense layers" if cfg.dense_layers else ""
    return {
        "experts": f"{m.n_experts} x {m.d_ff} wide, top-{m.top_k}{shared}{dense}",
        f"active_params_{convention}": active_param_count(cfg, convention=convention),
    }


def plan_report(
    cfg, hw, *, context, tp, batch, weight_dtype, kv_dtype, eff, utilization, ep=1, convention="with_embeddings"
) -> Report:
    p = plan(
        cfg,
        hw,
        context=context,
        devices=tp,
        batch=batch,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        eff=eff,
        memory_utilization=utilization,
        ep=ep,
    )
    row = {
        "model": cfg.name,
        "hardware": hw.label,
        "devices": p.devices,
        **({"ep": p.ep} if p.ep > 1 else {}),
        "context": p.context,
        "attention": cfg.attention_kind,
        "layers": cfg.layer_pattern,
        **moe_rows(cfg, convention),
        "weight_dtype": p.weight_dtype,
        "kv_dtype": p.kv_dtype,
        "params": param_count(cfg),
        "weight_bytes": p.weight_bytes,
        "kv_bytes_per_token": p.kv_bytes_per_token,
        "kv_bytes_per_sequence": p.kv_bytes_per_sequence,
        "usable_bytes": p.usable_bytes,
        "max_batch": p.max_batch,
        "batch": p.batch,
        "used_bytes": p.used_bytes,
        "fits": p.fits,
    }
    notes = list(p.notes)
    if p.decode is not None:
        bound, share = bound_of(p.decode)
        row.update(
            decode_s=p.decode.total_s,
            tokens_per_s=p.tokens_per_s,
            tokens_per_s_per_sequence=1.0 / p.decode.total_s,
            bound=bound,
            bound_share=share,
            intensity=p.decode.flops / p.decode.bytes,
            ridge_point=hw.ridge_point,
        )
    else:
        tries = [_smallest_tp_that_fits(cfg, hw, context, tp, weight_dtype, kv_dtype, utilization, ep)]
        tries = [t for t in tries if t] + ["a smaller --weight-dtype/--kv-dtype", "a shorter --context"]
        notes.append(
            f"Not even one sequence of {context} tokens fits beside the weights: try {', '.join(tries)}."
        )
    if not p.fits and p.decode is not None:
        notes.append(f"batch {p.batch} does NOT fit (largest: {p.max_batch}); latency shown as if it did.")
    where = f"{p.ep * p.devices} x {hw.label} (tp {p.devices} x ep {p.ep})" if p.ep > 1 else f"{p.devices} x {hw.label}"
    title = (
        f"Capacity plan: {cfg.name} on {where}, {context} tokens per sequence, "
        f"{'the largest batch that fits' if batch is None else f'batch {batch}'}"
    )
    meta = {"notes": list(p.notes)} if p.notes else {}  # the assumptions, in JSON too
    return Report(title, plan_columns(cfg), [row], kv=True, notes=notes, meta=meta)


@click.command("plan", short_help="Capacity plan: largest batch that fits, latency, tokens/s.")
@model_options
@hardware_options
@tp_option
@ep_option
@click.option("--batch", "-b", type=COUNT, help="Batch to evaluate. [default: the largest that fits]")
@click.option(
    "--context",
    "-c",
    type=COUNT,
    default=DEFAULT_CONTEXT,
    show_default=True,
    help="Tokens per sequence (prompt + generated); latency is for the last one.",
)
@dtype_options
@efficiency_options
@click.option(
    "--memory-utilization",
    type=FRACTION,
    default=MEMORY_UTILIZATION,
    show_default=True,
    help="Fraction of device memory the server may use (vLLM's gpu_memory_utilization).",
)
@active_convention_option
@format_option
def plan_command(
    cfg, hw, tp, ep, batch, context, weight_dtype, kv_dtype, eff, memory_utilization, active_convention, fmt
):
    """Capacity plan: weights, KV cache, the largest batch that fits, decode latency and throughput.

    With no options: Llama-3-8B on one H100 SXM, bf16 weights and KV cache, 8192-token context.
    """
    report = plan_report(
        cfg,
        hw,
        context=context,
        tp=tp,
        batch=batch,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        eff=eff,
        utilization=memory_utilization,
        ep=ep,
        convention=active_convention,
    )
    emit(report, fmt)


COMMANDS = (plan_command,)
