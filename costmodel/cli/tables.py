"""``glugqa table gqa|ffn``: the two papers' tradeoff tables (Ainslie et al. 2023; Shazeer 2020)."""

from __future__ import annotations

import click

from ..config import resolve_kv_dtype
from ..plan import plan
from ..tables import ffn_rows, gqa_rows
from .formats import Column, Report
from .groups import LazyGroup
from .options import (
    COUNT,
    DEFAULT_CONTEXT,
    dtype_options,
    efficiency_options,
    emit,
    format_option,
    given,
    hardware_options,
    model_options,
    tp_option,
)

GQA_PAPER_NOTE = (
    "Ainslie et al. 2023, Table 1 (T5-XXL, TPUv4, time per sample): MHA 1.51 s, GQA-8 0.28 s, "
    "MQA 0.24 s; their speedups come from the KV cache read at each decode step, as here."
)
FFN_PAPER_NOTE = (
    "Log-perplexities: Shazeer 2020 (arXiv:2002.05202) Table 1, T5-base on C4 after 65,536 / "
    "524,288 steps -- cited from the paper, not computed here."
)



@click.group("table", cls=LazyGroup, short_help="The papers' tables: GQA (MHA..MQA) and FFN variants.")
def table_group() -> None:
    """The papers' tradeoff tables: GQA (MHA -> GQA-K -> MQA) and the eight FFN variants."""


GQA_COLUMNS = [
    Column("label", "attention"),
    Column("n_kv_heads", "K", "int"),
    Column("params", "params", "count"),
    Column("kv_bytes_per_token", "KV/token", "bytes"),
    Column("kv_bytes", "KV cache", "bytes"),
    Column("kv_reduction", "KV vs MHA", "x"),
    Column("max_batch", "max batch", "int"),
    Column("decode_s", "decode/token", "s"),
    Column("speedup", "speedup vs MHA", "x"),
]


@table_group.command("gqa")
@model_options
@hardware_options
@tp_option
@click.option("--batch", "-b", type=COUNT, default=8, show_default=True)
@click.option("--context", "-c", type=COUNT, default=DEFAULT_CONTEXT, show_default=True)
@dtype_options
@efficiency_options
@format_option
def table_gqa(cfg, hw, tp, batch, context, weight_dtype, kv_dtype, eff, fmt):
    """MHA, GQA-K for every K dividing N, and MQA: KV cache, decode latency, speedup over MHA."""
    if given(click.get_current_context(), "kv_heads"):
        raise click.BadParameter("the table has a row for every K dividing N: drop --kv-heads",
                                 param_hint="'--kv-heads'")  # fmt: skip
    rows = []
    for r in gqa_rows(
        cfg, hw, batch=batch, context=context, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff
    ):
        p = plan(
            cfg.with_(n_kv_heads=r.n_kv_heads),
            hw,
            context=context,
            devices=tp,
            batch=batch,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            eff=eff,
        )
        rows.append({**r.__dict__, "max_batch": p.max_batch})
    title = (
        f"GQA tradeoff for {cfg.name} (N={cfg.n_heads}) on {tp} x {hw.label}: batch {batch}, context "
        f"{context}, weights {weight_dtype}, KV {resolve_kv_dtype(kv_dtype, weight_dtype)}"
    )
    meta = {"model": cfg.name, "hardware": hw.name, "tp": tp, "batch": batch, "context": context}
    emit(Report(title, GQA_COLUMNS, rows, meta=meta, notes=[GQA_PAPER_NOTE]), fmt)


FFN_COLUMNS = [
    Column("variant", "name"),
    Column("label", "paper's name"),
    Column("gated", "gated"),
    Column("d_ff", "d_ff", "int"),
    Column("params", "params per layer", "int"),
    Column("matmul_flops_per_token", "matmul FLOPs/token", "int"),
    Column("elementwise_flops_per_token", "elementwise FLOPs/token", "int"),
    Column("log_ppl_65k", "log-ppl 65k (paper)", ""),
    Column("log_ppl_524k", "log-ppl 524k (paper)", ""),
]


@table_group.command("ffn")
@click.option("--d-model", type=COUNT, default=768, show_default=True, help="Model width (T5-base: 768).")
@click.option(
    "--d-ff",
    type=COUNT,
    default=3072,
    show_default=True,
    help="d_ff of the two-matrix FFNs; gated ones get round(2/3 d_ff) (T5-base: 3072 -> 2048).",
)
@click.option(
    "--multiple-of",
    type=COUNT,
    default=1,
    show_default=True,
    help="Round gated d_ff up to this (LLaMA: 256).",
)
@click.option("--bias", is_flag=True, help="Count biases (the paper has none).")
@format_option
def table_ffn(d_model, d_ff, multiple_of, bias, fmt):
    """The eight FFN variants of Shazeer 2020 at matched d_ff: parameters and FLOPs per token."""
    rows = [r.__dict__ for r in ffn_rows(d_model, d_ff, multiple_of=multiple_of, bias=bias)]
    title = f"FFN variants at matched parameters: d_model {d_model}, d_ff {d_ff} (gated: matched d_ff)"
    meta = {"d_model": d_model, "d_ff": d_ff, "multiple_of": multiple_of, "bias": bias}
    emit(Report(title, FFN_COLUMNS, rows, meta=meta, notes=[FFN_PAPER_NOTE]), fmt)
