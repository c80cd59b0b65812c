"""``glugqa plan``: the capacity plan of one model on one accelerator (tensor-parallel over ``--tp``)."""

from __future__ import annotations

import click

from ..budget import SERVE
from ..forward import ForwardModel
from ..latency import LatencyBreakdown
from ..params import active_param_count, param_count
from ..plan import divisors, max_batch, plan
from .formats import Column, Report
from .groups import CheckFailed
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
    hardware_options,
    model_options,
    server_options,
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
    Column("prompt", "prompt (tokens)", "int"),
    Column("attention", "attention"),
    Column("layers", "layers"),
    Column("weight_dtype", "weight dtype"),
    Column("kv_dtype", "KV dtype"),
    Column("params", "parameters", "count"),
    Column("kv_bytes_per_token", "KV cache per token", "bytes"),
    Column("kv_bytes_per_sequence", "KV cache per sequence (whole blocks)", "bytes"),
    Column("block_size", "KV block (tokens)", "int"),
    Column("max_num_batched_tokens", "prefill chunk (max_num_batched_tokens)", "int"),
    Column("max_num_seqs", "most sequences at once (max_num_seqs)", "int"),
    Column("device_bytes", "memory per device, the sum of:", "bytes"),
    Column("headroom_bytes", "+ outside --memory-utilization", "bytes"),
    Column("runtime_reserve_bytes", "+ runtime (driver, collective buffers, graphs)", "bytes"),
    Column("weight_bytes", "+ weights", "bytes"),
    Column("activation_bytes", "+ activation peak of one chunk", "bytes"),
    Column("kv_cache_bytes", "+ KV cache of the batch", "bytes"),
    Column("kv_free_bytes", "+ KV pool left unused", "bytes"),
    Column("shortfall_bytes", "- short by (the plan does not fit)", "bytes"),  # only when it does not fit
    Column("usable_bytes", "usable memory per device", "bytes"),
    Column("kv_pool_bytes", "KV pool per device", "bytes"),
    Column("max_batch", "largest batch that fits", "int"),
    Column("batch", "batch evaluated", "int"),
    Column("max_context", "longest context at that batch", "int"),
    Column("used_bytes", "memory used at that batch", "bytes"),
    Column("fits", "fits"),
    Column("ttft_s", "time to first token (TTFT)", "s"),
    Column("decode_s", "time per output token (TPOT)", "s"),
    Column("tokens_per_s", "throughput (whole batch)", "tok/s"),
    Column("tokens_per_s_per_sequence", "throughput per sequence", "tok/s"),
    Column("bound", "bound (most of the step's time)"),
    Column("bound_share", "share of step time under that bound", "%"),
    Column("intensity", "arithmetic intensity (whole step)", "flop/B"),
    Column("ridge_point_used", "ridge point at achieved rates (whole tiles)", "flop/B"),
    Column("ridge_point", "ridge point of the bare chip (bf16)", "flop/B"),
]


def _smallest_tp_that_fits(cfg, hw, context, tp, weight_dtype, kv_dtype, server, ep=1) -> str | None:
    """'--tp 4 (fits 12 sequences)' for the smallest valid tp above ``tp`` where a sequence fits, or None."""
    for larger in sorted(k for k in divisors(cfg.n_heads) if k > tp):  # tp must divide N (check_tp)
        try:
            n = max_batch(cfg, hw, context=context, devices=larger, weight_dtype=weight_dtype,
                          kv_dtype=kv_dtype, server=server, ep=ep)  # fmt: skip
        except ValueError:  # tp incompatible with the head counts or d_ff
            continue
        if n >= 1:
            return f"--tp {larger} (fits {n} sequences)"
    return None


def kv_per_token_column(col: Column, cfg) -> Column:
    """``col`` (a KV-per-token figure: ``kv_bytes_per_token``, every layer as full attention) labelled so when
    ``cfg`` has sliding-window layers, whose cache stops growing at the window."""
    if cfg.sliding_window is None:
        return col
    return Column(col.key, f"{col.label}, all layers full", col.unit, col.fixed)


# lines only a MoE model shows, each after the line named first
MOE_COLUMNS = (
    ("devices", Column("ep", "expert-parallel groups (x devices each)", "int")),  # with --ep > 1
    ("layers", Column("experts", "experts (routed, per token)")),
    *(("params", Column(f"active_params_{k}", label, "count")) for k, label in reversed(ACTIVE_LABELS.items())),
)


def plan_columns(cfg) -> list[Column]:
    """PLAN_COLUMNS, with the MoE lines for a MoE model (and the per-token KV labelled for what it is when
    some layers are sliding: every layer counted as full attention)."""
    cols = [kv_per_token_column(c, cfg) if c.key == "kv_bytes_per_token" else c for c in PLAN_COLUMNS]
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


def memory_rows(budget) -> dict:
    """The memory budget's terms, the usable memory and the KV pool, none negative: when the plan does not
    fit, the pool left unused (and the KV pool, if the weights alone overflow) is 0 and "shortfall_bytes"
    says how much memory is missing, so that the terms minus the shortfall add up to the device memory."""
    return {
        "device_bytes": budget.device,
        "headroom_bytes": budget.headroom,
        "runtime_reserve_bytes": budget.runtime_reserve,
        "weight_bytes": budget.weights,
        "activation_bytes": budget.activations,
        "kv_cache_bytes": budget.kv_cache,
        "kv_free_bytes": max(budget.kv_free, 0),
        **({"shortfall_bytes": budget.shortfall} if budget.shortfall else {}),
        "usable_bytes": budget.usable,
        "kv_pool_bytes": max(budget.kv_pool, 0),
    }


def plan_report(
    cfg, hw, *, context, tp, batch, weight_dtype, kv_dtype, eff, server=SERVE, ep=1, convention="with_embeddings",
    prompt=None, encoder_len=None,
) -> tuple[Report, object]:
    """The plan's report and the plan itself."""  # fmt: skip
    check_encoder_len(cfg, encoder_len)
    p = plan(cfg, hw, context=context, devices=tp, batch=batch, prompt=prompt, weight_dtype=weight_dtype,
             kv_dtype=kv_dtype, eff=eff, server=server, ep=ep, encoder_len=encoder_len)  # fmt: skip
    row = {
        "model": cfg.name,
        "hardware": hw.name,
        "devices": p.devices,
        **({"ep": p.ep} if p.ep > 1 else {}),
        "context": p.context,
        "prompt": p.prompt,
        "attention": cfg.attention_kind,
        "layers": cfg.layer_pattern,
        **moe_rows(cfg, convention),
        "weight_dtype": p.weight_dtype,
        "kv_dtype": p.kv_dtype,
        "params": param_count(cfg),
        "kv_bytes_per_token": p.kv_bytes_per_token,
        "kv_bytes_per_sequence": p.kv_bytes_per_sequence,
        "block_size": p.server.block_size,
        "max_num_batched_tokens": p.server.max_num_batched_tokens,
        "max_num_seqs": p.server.max_num_seqs,
        **memory_rows(p.budget),
        "max_batch": p.max_batch,
        "batch": p.batch,
        "max_context": p.max_context if p.max_context is not None else "no limit (every layer is sliding)",
        "used_bytes": p.used_bytes,
        "fits": p.fits,
    }
    notes = list(p.notes)
    if cfg.max_position and p.max_context and p.max_context > cfg.max_position:
        notes.append(
            f"the longest context at batch {p.batch} is what memory holds; the model itself stops at "
            f"max_position_embeddings {cfg.max_position:,}"
        )
    if p.decode is not None:
        bound, share = bound_of(p.decode)
        row.update(
            ttft_s=p.ttft_s,
            decode_s=p.decode.total_s,
            tokens_per_s=p.tokens_per_s,
            tokens_per_s_per_sequence=1.0 / p.decode.total_s,
            bound=bound,
            bound_share=share,
            intensity=p.decode.flops / p.decode.bytes,
            ridge_point_used=ForwardModel(cfg, hw, tp=p.devices, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                                          eff=eff, ep=p.ep).ridge_point,  # fmt: skip
            ridge_point=hw.ridge_point,
        )
    if p.max_batch == 0:
        tries = [_smallest_tp_that_fits(cfg, hw, context, tp, weight_dtype, kv_dtype, server, ep)]
        tries = [t for t in tries if t] + ["a smaller --weight-dtype/--kv-dtype", "a shorter --context"]
        notes.append(
            f"Not even one sequence of {context} tokens fits beside the weights: try {', '.join(tries)}."
        )
    elif not p.fits:
        notes.append(f"batch {p.batch} does NOT fit (largest: {p.max_batch}); latency shown as if it did.")
    where = f"{p.ep * p.devices} x {hw.label} (tp {p.devices} x ep {p.ep})" if p.ep > 1 else f"{p.devices} x {hw.label}"
    title = (
        f"Capacity plan: {cfg.name} on {where}, {context} tokens per sequence, "
        f"{'the largest batch that fits' if batch is None else f'batch {batch}'}"
    )
    return Report(title, plan_columns(cfg), [row], kv=True, notes=notes), p


def does_not_fit(p) -> str:
    """Why a plan failed its check, in one line."""
    if p.max_batch == 0:
        return f"does not fit: not even one sequence of {p.context} tokens fits beside the weights"
    return f"does not fit: batch {p.batch} needs more memory than the {p.max_batch} sequences that fit"


@click.command("plan", short_help="Capacity plan: largest batch that fits, TTFT, per-token time, tokens/s.")
@model_options
@hardware_options
@tp_option
@ep_option
@click.option("--batch", "-b", type=COUNT, help="Batch to evaluate. [default: the largest that fits, at most "
              "--max-num-seqs]")  # fmt: skip
@click.option(
    "--context",
    "-c",
    type=COUNT,
    default=DEFAULT_CONTEXT,
    show_default=True,
    help="Tokens per sequence (prompt + generated); latency is for the last one.",
)
@click.option("--prompt", type=COUNT, help="Prompt tokens of the time to first token. [default: the context]")
@encoder_len_option
@dtype_options
@efficiency_options
@server_options
@active_convention_option
@format_option
def plan_command(
    cfg, hw, tp, ep, batch, context, prompt, encoder_len, weight_dtype, kv_dtype, eff, server, active_convention, fmt
):
    """Capacity plan: memory term by term, the largest batch that fits, time to first token, time per
    output token and throughput.

    With no options: Llama-3-8B on one H100 SXM, bf16 weights and KV cache, 8192-token context, vLLM's
    memory defaults. Exit status 1 (after the report) when the plan does not fit.
    """
    check_active_convention(cfg)
    report, p = plan_report(
        cfg, hw, context=context, tp=tp, batch=batch, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff,
        server=server, ep=ep, convention=active_convention, prompt=prompt, encoder_len=encoder_len,
    )  # fmt: skip
    emit(report, fmt)
    if not p.fits:
        raise CheckFailed(does_not_fit(p), click.get_current_context().command_path)
