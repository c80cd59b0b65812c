"""Roofline latency per op for a decode step and for prefill, on one of ``tp`` (x ``ep``) devices.

Each op (one kernel) takes  max(compute, memory) + eff.kernel_overhead_s  (Williams et al. 2009's roofline,
applied per op as in Pope et al. 2022 / kipply 2022; the rates, with every efficiency and its source, are in
``costmodel.roofline``); collectives take their α–β time (costmodel.parallel) + eff.kernel_overhead_s; every
forward pass adds eff.step_overhead_s. A step is the sum over the model's layers of each layer's ops
(costmodel.latency_ops; one term per distinct layer, times how many layers are like it), plus the embedding
gather, the final norm and the lm_head. A decode step reads every weight once (a MoE layer: the experts the
step touches) and every sequence's KV cache; prefill likewise, with T tokens per sequence.

``IDEAL`` is the pure roofline; ``ESTIMATE`` the sourced default (docs/cost-model.md). The breakdown's
``notes`` say what an assumption changed (fp8 weights on a chip with no fp8 peak, tensor parallelism past one
node, KV read per query head, quantized weights' bandwidth).
Validation: tests/test_cost_latency.py (kipply's 13B on an A100-40GB) and ``glugqa accuracy`` (docs/accuracy.md:
every shipped published measurement).
"""

from __future__ import annotations

from dataclasses import replace

from . import flops as F
from .checks import number_in
from .config import ModelConfig, check_cfg, dtype_bytes, positive_int
from .hardware import get_hardware
from .latency_ops import Ctx, attention_ops, ffn_ops, head_ops, layer_ops, merge_ops, op_cost
from .parallel import ALLREDUCES_PER_LAYER, check_ep, check_tp, collective_path, kv_heads_per_device  # noqa: F401
from .params import NORM_VECTORS
from .roofline import (  # noqa: F401  (re-exported: the public home of these names was this module)
    DEFAULT_FLOPS_EFF,
    DEFAULT_HBM_EFF,
    DEFAULT_KERNEL_OVERHEAD_S,
    ESTIMATE,
    IDEAL,
    Efficiency,
    LatencyBreakdown,
    OpCost,
)

MAX_GROUP_BYTES = 64.0  # bytes stored per quantization group (scale and zero point): far above any format's


def _ctx(
    cfg, hw, *, tp, ep, weight_dtype, kv_dtype, act_dtype, compute_dtype, eff, link_latency_s, group_size,
    group_bytes,
) -> tuple[Ctx, tuple]:
    """The context every op needs, and the notes of what an assumption changed."""
    check_cfg(cfg)
    hw = get_hardware(hw)
    tp, ep = check_tp(cfg, tp), check_ep(cfg, ep)
    if not isinstance(eff, Efficiency):
        raise ValueError(f"eff must be an Efficiency (IDEAL, ESTIMATE or your own); got {type(eff).__name__}")
    if link_latency_s is not None:
        link_latency_s = number_in("link_latency_s", link_latency_s, 0.0, 1e-3, unit="s")
    wb = float(dtype_bytes(weight_dtype, "weight_dtype"))
    kb = float(dtype_bytes(kv_dtype or weight_dtype, "kv_dtype"))
    ab = float(dtype_bytes(act_dtype, "act_dtype"))
    wm = wb
    if group_size is not None:
        per_group = number_in("group_bytes", group_bytes, 0.0, MAX_GROUP_BYTES, unit="B")
        wm += per_group / positive_int("group_size", group_size)
    notes = []
    if compute_dtype is None:
        compute_dtype = "fp8" if weight_dtype == "fp8" and "fp8" in hw.peak_flops else "bf16"
        if weight_dtype == "fp8" and compute_dtype == "bf16":
            notes.append(f"fp8 weights on {hw.name}, which has no fp8 peak: computed at the bf16 rate")
    peak = hw.flops_for(compute_dtype)
    gemm_eff = eff.flops_fp8 if compute_dtype == "fp8" else eff.flops
    dequant = {"int8": eff.dequant_int8, "int4": eff.dequant_int4}.get(weight_dtype, 1.0)
    if dequant < 1.0:
        notes.append(f"weight-only {weight_dtype} weights stream at {dequant:g} of the bandwidth (dequantisation, "
                     f"eff.dequant_{weight_dtype})")  # fmt: skip
    tp_path = collective_path(hw, tp, step_latency_s=link_latency_s) if tp > 1 else None
    ep_path = collective_path(hw, tp * ep, step_latency_s=link_latency_s) if ep > 1 else None
    notes += [p.note for p in (tp_path, ep_path) if p is not None and p.note]
    k_dev, n_dev = kv_heads_per_device(cfg.n_kv_heads, tp), cfg.n_heads // tp
    if eff.kv_read_per_query_head and n_dev > k_dev:
        notes.append(f"decode reads each KV head once per query head (no grouped decode kernel): cache bytes "
                     f"x {n_dev // k_dev}")  # fmt: skip
    chip_flops = hw.flops_efficiency_factor
    c = Ctx(
        cfg, hw, tp, ep, wb, wm, kb, ab, peak * gemm_eff * chip_flops,
        hw.flops_for("bf16") * eff.flops * eff.attn_compute * chip_flops,
        hw.hbm_bandwidth * eff.hbm * hw.hbm_efficiency_factor, dequant, eff, tp_path, ep_path,
        n_dev, k_dev, cfg.d_ff // tp, -(-cfg.vocab_size // tp), len({layer.window for layer in cfg.layers}) > 1,
    )  # fmt: skip
    return c, tuple(notes)


def _step_ops(c: Ctx) -> list[OpCost]:
    """The fixed cost of one forward pass (eff.step_overhead_s), as an op of its own (none when 0)."""
    s = c.eff.step_overhead_s
    return [OpCost("step_overhead", 1, 0.0, 0.0, 0.0, 0.0, 0.0, s, s, "overhead")] if s > 0 else []


def _decoder_ops(c: Ctx, *, batch, q_len, kv_len, encoder_len, global_batch) -> list[OpCost]:
    """The decoder layers: for each distinct layer, its ops times the number of layers like it."""
    cfg = c.cfg
    if cfg.is_encoder_decoder:  # uniform decoder layers with cross-attention (T5)
        L, layer = cfg.n_layers, cfg.layers[0]
        ops = attention_ops(
            c, "attn", L, batch=batch, q_len=q_len, kv_len=kv_len, causal=True, window=layer.window,
            kv_proj=True, cache_read=layer.positions(kv_len),
        )  # fmt: skip
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else kv_len)
        ops += attention_ops(
            c, "cross_attn", L, batch=batch, q_len=q_len, kv_len=s_enc, causal=False, window=None,
            kv_proj=False, cache_read=s_enc,
        )  # fmt: skip
        return ops + ffn_ops(c, L, batch * q_len)
    groups = [
        layer_ops(c, layer, count, batch=batch, q_len=q_len, kv_len=kv_len, global_tokens=global_batch * q_len)
        for layer, count in cfg.layer_groups
    ]
    return merge_ops(groups)


def _group_batch(batch: int, ep: int) -> int:
    """Sequences one of the ep groups serves: ceil(B/ep) (the busiest group)."""
    return -(-batch // ep)


def decode_latency(
    cfg: ModelConfig,
    hw,
    *,
    batch: int,
    context: int,
    tp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    compute_dtype: str | None = None,
    eff: Efficiency = ESTIMATE,
    encoder_len: int | None = None,
    ep: int = 1,
    link_latency_s: float | None = None,
    group_size: int | None = None,
    group_bytes: float = 2.0,
) -> LatencyBreakdown:
    """One decode step: ``batch`` sequences each add one token attending ``context`` keys (cache + itself).

    kv_dtype defaults to weight_dtype; compute_dtype to fp8 for fp8 weights on chips with an fp8 peak, else
    bf16 (weight-only int8/int4 quantization computes in bf16). ``eff=IDEAL`` gives the pure roofline bound.
    ``ep``: expert-parallel groups of ``tp`` devices each (MoE models; costmodel.parallel): a group serves
    ceil(batch/ep) sequences and the times are those of one of its devices. ``link_latency_s``: the latency
    of one ring step of a collective (default: the hardware's ``link_latency_s``). ``group_size`` /
    ``group_bytes``: grouped weight quantization (GPTQ/AWQ-style int4 with group 128 and an fp16 scale: 128 and
    2; gpt-fast's int4 keeps a bf16 scale and zero point per group of 32: 32 and 4): every weight matrix
    carries group_bytes / group_size more bytes per weight (costmodel.memory.weight_bytes counts the same).
    """
    c, notes = _ctx(
        cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
        compute_dtype=compute_dtype, eff=eff, link_latency_s=link_latency_s, group_size=group_size,
        group_bytes=group_bytes,
    )  # fmt: skip
    b, s = positive_int("batch", batch), positive_int("context", context)
    b_dev = _group_batch(b, c.ep)
    embed, tail = head_ops(c, tokens=b_dev, logits_tokens=b_dev)
    dec = _decoder_ops(c, batch=b_dev, q_len=1, kv_len=s, encoder_len=encoder_len, global_batch=b)
    ops = tuple(embed + dec + tail + _step_ops(c))
    return LatencyBreakdown("decode", cfg.name, c.hw.name, b, 1, s, c.tp, eff, ops, notes)


def prefill_latency(
    cfg: ModelConfig,
    hw,
    *,
    batch: int,
    prompt_len: int,
    tp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    compute_dtype: str | None = None,
    eff: Efficiency = ESTIMATE,
    ep: int = 1,
    link_latency_s: float | None = None,
    group_size: int | None = None,
    group_bytes: float = 2.0,
) -> LatencyBreakdown:
    """Process a ``prompt_len`` prompt per sequence (causal, every token) and produce the first logits.

    Encoder-decoder: the encoder over the prompt, the cross-attention K/V of every decoder layer, then the
    decoder's first step. ``ep``, ``link_latency_s``, ``group_size`` and ``group_bytes`` as in
    :func:`decode_latency`.
    """
    c, notes = _ctx(
        cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
        compute_dtype=compute_dtype, eff=eff, link_latency_s=link_latency_s, group_size=group_size,
        group_bytes=group_bytes,
    )  # fmt: skip
    b, t = positive_int("batch", batch), positive_int("prompt_len", prompt_len)
    b_dev = _group_batch(b, c.ep)
    if not cfg.is_encoder_decoder:
        embed, tail = head_ops(c, tokens=b_dev * t, logits_tokens=b_dev)
        dec = _decoder_ops(c, batch=b_dev, q_len=t, kv_len=t, encoder_len=None, global_batch=b)
        ops = tuple(embed + dec + tail + _step_ops(c))
        return LatencyBreakdown("prefill", cfg.name, c.hw.name, b, t, t, c.tp, eff, ops, notes)
    embed, _ = head_ops(c, tokens=b * t, logits_tokens=b)
    d, kw = cfg.d_model, 2 * c.k_dev * cfg.head_dim
    enc = attention_ops(
        c, "enc_attn", cfg.n_encoder_layers, batch=b, q_len=t, kv_len=t, causal=False, window=None,
        kv_proj=True, cache_read=t,
    )  # fmt: skip
    enc += [replace(o, name=f"enc_{o.name}") for o in ffn_ops(c, cfg.n_encoder_layers, b * t)]
    enc_norm = F.norm_flops(b * t, d, cfg.norm)
    enc.append(op_cost(c, "enc_final_norm", 1, enc_norm, 2 * b * t * d * c.ab + NORM_VECTORS[cfg.norm] * d * c.wb))
    cross_kv = op_cost(
        c, "cross_kv", cfg.n_layers, F.linear_flops(b * t, d, kw), d * kw * c.wm + b * t * (d * c.ab + kw * c.kb),
        weights=d * kw * c.wm, gemm=(b * t, kw, 1),
    )
    dec_embed, tail = head_ops(c, tokens=b, logits_tokens=b)
    dec = _decoder_ops(c, batch=b, q_len=1, kv_len=1, encoder_len=t, global_batch=b)
    ops = embed + enc + [cross_kv] + dec_embed + dec + tail + _step_ops(c)
    return LatencyBreakdown("prefill", cfg.name, c.hw.name, b, t, t, c.tp, eff, tuple(ops), notes)


__all__ = [
    "ALLREDUCES_PER_LAYER",
    "DEFAULT_FLOPS_EFF",
    "DEFAULT_HBM_EFF",
    "DEFAULT_KERNEL_OVERHEAD_S",
    "ESTIMATE",
    "IDEAL",
    "Efficiency",
    "LatencyBreakdown",
    "OpCost",
    "decode_latency",
    "prefill_latency",
]
