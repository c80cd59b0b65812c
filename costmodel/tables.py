"""Rows of the two tradeoff tables: GQA (MHA -> GQA-K -> MQA) and the eight FFN variants at matched d_ff."""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.variants import FFN_VARIANTS, PAPER_VARIANTS

from .config import ModelConfig, check_cfg, positive_int, resolve_kv_dtype
from .flops import ffn_flops
from .latency import ESTIMATE, Efficiency, decode_latency
from .memory import kv_bytes_per_token, kv_cache_bytes
from .params import ffn_param_breakdown, matched_d_ff, param_count
from .plan import divisors


@dataclass(frozen=True)
class GQARow:
    label: str  # "MHA", "GQA-8", "MQA"
    n_kv_heads: int
    params: int
    kv_bytes_per_token: float  # per device
    kv_bytes: float  # per device, batch x context
    kv_reduction: float  # MHA's KV bytes / this row's (N/K when tp <= K)
    decode_s: float
    speedup: float  # MHA decode time / this row's


def gqa_rows(
    cfg: ModelConfig,
    hw,
    *,
    batch: int,
    context: int,
    tp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    eff: Efficiency = ESTIMATE,
) -> list[GQARow]:
    """One row per K dividing N (MHA first, MQA last; K incompatible with ``tp`` skipped). Only the
    attention's K changes; W_k/W_v shrink with K so params drop too (the GQA paper keeps the rest fixed)."""
    kv_dtype = resolve_kv_dtype(kv_dtype, weight_dtype)
    rows, base = [], None
    for k in divisors(check_cfg(cfg).n_heads):
        if k % tp and tp % k:
            continue
        c = cfg.with_(n_kv_heads=k)
        kv = kv_cache_bytes(c, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp)
        t = decode_latency(
            c, hw, batch=batch, context=context, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff
        ).total_s
        base = base or (kv, t)
        rows.append(
            GQARow(
                c.attention_kind,
                k,
                param_count(c),
                kv_bytes_per_token(c, kv_dtype, tp=tp),
                kv,
                base[0] / kv,
                t,
                base[1] / t,
            )
        )
    return rows


@dataclass(frozen=True)
class FFNRow:
    variant: str
    label: str
    gated: bool
    d_ff: int
    params: int  # one FFN layer's weights (and biases)
    matmul_flops_per_token: int
    elementwise_flops_per_token: int
    log_ppl_65k: float  # Shazeer 2020 Table 1
    log_ppl_524k: float


def ffn_rows(
    d_model: int = 768, d_ff: int = 3072, *, multiple_of: int = 1, bias: bool = False
) -> list[FFNRow]:
    """The eight variants of Shazeer 2020 at matched d_ff (gated: round(2/3·d_ff) up to ``multiple_of``).
    Defaults are the paper's T5-base (768, 3072 -> 2048), where every row has 4,718,592 parameters."""
    d_model, d_ff = positive_int("d_model", d_model), positive_int("d_ff", d_ff)
    rows = []
    for name in PAPER_VARIANTS:  # the paper's eight only: swiglu_oss has no perplexities to cite
        v = FFN_VARIANTS[name]
        f = matched_d_ff(d_ff, name, multiple_of=multiple_of)
        fl = ffn_flops(1, d_model, f, name, bias=bias)
        matmul = sum(fl[k] for k in ("gate", "up", "down") if k in fl)
        rows.append(
            FFNRow(
                name,
                v.label,
                v.gated,
                f,
                sum(ffn_param_breakdown(d_model, f, name, bias=bias).values()),
                matmul,
                fl["act"] + fl["bias"],
                v.log_ppl_65k,
                v.log_ppl_524k,
            )
        )
    return rows
