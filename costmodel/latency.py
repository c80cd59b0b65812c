"""Roofline latency per op for a decode step and for prefill, on one of ``tp`` devices.

Each op (one kernel) takes  max(FLOPs / (peak · eff.flops), bytes / (hbm_bandwidth · eff.hbm)) + eff.kernel_overhead_s
(Williams et al. 2009's roofline, applied per op as in Pope et al. 2022 / kipply 2022); all-reduces take
2(tp-1)/tp · bytes / (link_bandwidth · eff.link) + eff.kernel_overhead_s. A decode step reads every weight
once and every sequence's KV cache; prefill likewise, with T tokens per sequence.

Efficiencies are explicit (``costmodel.roofline``: ``IDEAL`` is the pure bound, ``ESTIMATE`` the sourced
default: 0.7 of peak FLOP/s, 0.9 of HBM bandwidth, 3.25 µs per kernel).
Validation (tests/test_cost_latency.py): kipply's 13B on an A100-40GB, batch 1, context 512 (kipply 2022):
pure bound ~17 ms, ESTIMATE within 15% of the measured 22.0 ms per token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import flops as F
from .config import ModelConfig, dtype_bytes, positive_int
from .hardware import Hardware, get_hardware
from .memory import LOGITS_BYTES, kv_cache_len
from .parallel import ALLREDUCES_PER_LAYER, allreduce_time, check_tp, kv_heads_per_device
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


@dataclass(frozen=True)
class _Ctx:
    cfg: ModelConfig
    hw: Hardware
    tp: int
    wb: float
    kb: float
    ab: float
    peak: float
    eff: Efficiency
    n_dev: int
    k_dev: int
    f_dev: int
    v_dev: int


def _op(c: _Ctx, name, count, flops, nbytes) -> OpCost:
    compute = count * flops / (c.peak * c.eff.flops)
    memory = count * nbytes / (c.hw.hbm_bandwidth * c.eff.hbm)
    overhead = count * c.eff.kernel_overhead_s
    bound = "compute" if compute >= memory else "memory"
    return OpCost(
        name,
        count,
        count * flops,
        count * nbytes,
        compute,
        memory,
        0.0,
        overhead,
        max(compute, memory) + overhead,
        bound,
    )


def _allreduce(c: _Ctx, name, count, tokens) -> list[OpCost]:
    if c.tp == 1:
        return []
    comm = count * allreduce_time(
        tokens * c.cfg.d_model * c.ab, c.tp, c.hw.link_bandwidth, efficiency=c.eff.link
    )
    overhead = count * c.eff.kernel_overhead_s
    return [OpCost(name, count, 0.0, 0.0, 0.0, 0.0, comm, overhead, comm + overhead, "link")]


def _norm_op(c: _Ctx, name, count, tokens) -> OpCost:
    """Fused residual add + norm: reads x and the residual, writes the normalised x."""
    d = c.cfg.d_model
    fl = F.norm_flops(tokens, d, c.cfg.norm) + F.RESIDUAL_FLOPS_PER_ELEMENT * tokens * d
    return _op(c, name, count, fl, 3 * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb)


def _attn_ops(
    c: _Ctx, pre, count, *, batch, q_len, kv_len, causal, window, kv_proj, cache_read
) -> list[OpCost]:
    cfg, d, dh = c.cfg, c.cfg.d_model, c.cfg.head_dim
    tokens = batch * q_len
    proj = F.attention_projection_flops(
        tokens, d, c.n_dev, c.k_dev, dh, qkv_bias=cfg.qkv_bias, out_bias=cfg.out_bias, kv=kv_proj
    )
    out_bias = tokens * d if cfg.out_bias else 0
    width = (c.n_dev + 2 * c.k_dev * kv_proj) * dh
    qkv_w = d * width + (width if cfg.qkv_bias else 0)
    new_kv = tokens * 2 * c.k_dev * dh * c.kb if kv_proj else 0  # appended to the cache
    ops = [
        _norm_op(c, f"{pre}_norm", count, tokens),
        _op(
            c,
            f"{pre}_qkv" if kv_proj else f"{pre}_q",
            count,
            proj["q"] + proj.get("k", 0) + proj.get("v", 0) + proj["bias"] - out_bias,
            qkv_w * c.wb + tokens * (d + width) * c.ab + new_kv,
        ),
    ]
    core = F.attention_core_flops(batch, q_len, kv_len, c.n_dev, dh, causal=causal, window=window)
    cache = batch * cache_read * 2 * c.k_dev * dh * c.kb
    ops.append(_op(c, f"{pre}_core", count, sum(core.values()), cache + 2 * tokens * c.n_dev * dh * c.ab))
    o_w = c.n_dev * dh * d + (d if cfg.out_bias else 0)
    ops.append(
        _op(c, f"{pre}_out", count, proj["o"] + out_bias, o_w * c.wb + tokens * (c.n_dev * dh + d) * c.ab)
    )
    return ops + _allreduce(c, f"{pre}_allreduce", count, tokens)


def _ffn_ops(c: _Ctx, count, tokens) -> list[OpCost]:
    cfg, d, f = c.cfg, c.cfg.d_model, c.f_dev
    fl = F.ffn_flops(tokens, d, f, cfg.ffn, bias=cfg.ffn_bias)
    n_in = cfg.variant.n_matrices - 1
    in_bias = tokens * n_in * f if cfg.ffn_bias else 0
    ops = [
        _norm_op(c, "ffn_norm", count, tokens),
        _op(
            c,
            "ffn_in",
            count,
            fl.get("gate", 0) + fl["up"] + in_bias,
            (n_in * d * f + (n_in * f if cfg.ffn_bias else 0)) * c.wb + tokens * (d + n_in * f) * c.ab,
        ),
        _op(c, "ffn_act", count, fl["act"], tokens * (n_in + 1) * f * c.ab),
        _op(
            c,
            "ffn_down",
            count,
            fl["down"] + fl["bias"] - in_bias,
            (f * d + (d if cfg.ffn_bias else 0)) * c.wb + tokens * (f + d) * c.ab,
        ),
    ]
    return ops + _allreduce(c, "ffn_allreduce", count, tokens)


def _ctx(cfg, hw, *, tp, weight_dtype, kv_dtype, act_dtype, compute_dtype, eff) -> _Ctx:
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be a ModelConfig; got {type(cfg).__name__}")
    hw = get_hardware(hw)
    tp = check_tp(cfg, tp)
    if not isinstance(eff, Efficiency):
        raise ValueError(f"eff must be an Efficiency (IDEAL, ESTIMATE or your own); got {type(eff).__name__}")
    wb = float(dtype_bytes(weight_dtype, "weight_dtype"))
    kb = float(dtype_bytes(kv_dtype or weight_dtype, "kv_dtype"))
    ab = float(dtype_bytes(act_dtype, "act_dtype"))
    if compute_dtype is None:
        compute_dtype = "fp8" if weight_dtype == "fp8" and "fp8" in hw.peak_flops else "bf16"
    return _Ctx(
        cfg,
        hw,
        tp,
        wb,
        kb,
        ab,
        hw.flops_for(compute_dtype),
        eff,
        cfg.n_heads // tp,
        kv_heads_per_device(cfg.n_kv_heads, tp),
        cfg.d_ff // tp,
        -(-cfg.vocab_size // tp),
    )


def _head_ops(c: _Ctx, *, tokens, logits_tokens) -> tuple[list[OpCost], list[OpCost]]:
    """(embedding gather, [final norm, lm_head]): lookup is 0 FLOPs and reads only the B·T rows used."""
    d = c.cfg.d_model
    embed = [_op(c, "embed", 1, 0, tokens * d * (c.wb + c.ab))]
    fn = F.norm_flops(tokens, d, c.cfg.norm)
    tail = [
        _op(c, "final_norm", 1, fn, 2 * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb),
        _op(
            c,
            "lm_head",
            1,
            F.linear_flops(logits_tokens, d, c.v_dev),
            c.v_dev * d * c.wb + logits_tokens * (d * c.ab + c.v_dev * LOGITS_BYTES),
        ),
    ]
    return embed, tail


def _decoder_ops(c: _Ctx, *, batch, q_len, kv_len, encoder_len) -> list[OpCost]:
    cfg, L = c.cfg, c.cfg.n_layers
    tokens = batch * q_len
    ops = _attn_ops(
        c,
        "attn",
        L,
        batch=batch,
        q_len=q_len,
        kv_len=kv_len,
        causal=True,
        window=cfg.sliding_window,
        kv_proj=True,
        cache_read=kv_cache_len(cfg, kv_len),
    )
    if cfg.is_encoder_decoder:
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else kv_len)
        ops += _attn_ops(
            c,
            "cross_attn",
            L,
            batch=batch,
            q_len=q_len,
            kv_len=s_enc,
            causal=False,
            window=None,
            kv_proj=False,
            cache_read=s_enc,
        )
    return ops + _ffn_ops(c, L, tokens)


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
) -> LatencyBreakdown:
    """One decode step: ``batch`` sequences each add one token attending ``context`` keys (cache + itself).

    kv_dtype defaults to weight_dtype; compute_dtype to fp8 for fp8 weights on chips with an fp8 peak, else
    bf16 (weight-only int8/int4 quantization computes in bf16). ``eff=IDEAL`` gives the pure roofline bound.
    """
    c = _ctx(
        cfg,
        hw,
        tp=tp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        act_dtype=act_dtype,
        compute_dtype=compute_dtype,
        eff=eff,
    )
    b, s = positive_int("batch", batch), positive_int("context", context)
    embed, tail = _head_ops(c, tokens=b, logits_tokens=b)
    ops = embed + _decoder_ops(c, batch=b, q_len=1, kv_len=s, encoder_len=encoder_len) + tail
    return LatencyBreakdown("decode", cfg.name, c.hw.name, b, 1, s, c.tp, eff, tuple(ops))


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
) -> LatencyBreakdown:
    """Process a ``prompt_len`` prompt per sequence (causal, every token) and produce the first logits.

    Encoder-decoder: the encoder over the prompt, the cross-attention K/V of every decoder layer, then the
    decoder's first step.
    """
    c = _ctx(
        cfg,
        hw,
        tp=tp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        act_dtype=act_dtype,
        compute_dtype=compute_dtype,
        eff=eff,
    )
    b, t = positive_int("batch", batch), positive_int("prompt_len", prompt_len)
    if not cfg.is_encoder_decoder:
        embed, tail = _head_ops(c, tokens=b * t, logits_tokens=b)
        ops = embed + _decoder_ops(c, batch=b, q_len=t, kv_len=t, encoder_len=None) + tail
        return LatencyBreakdown("prefill", cfg.name, c.hw.name, b, t, t, c.tp, eff, tuple(ops))
    embed, _ = _head_ops(c, tokens=b * t, logits_tokens=b)
    d, kw = cfg.d_model, 2 * c.k_dev * cfg.head_dim
    enc = _attn_ops(
        c,
        "enc_attn",
        cfg.n_encoder_layers,
        batch=b,
        q_len=t,
        kv_len=t,
        causal=False,
        window=None,
        kv_proj=True,
        cache_read=t,
    )
    enc += [replace(o, name=f"enc_{o.name}") for o in _ffn_ops(c, cfg.n_encoder_layers, b * t)]
    enc.append(
        _op(
            c,
            "enc_final_norm",
            1,
            F.norm_flops(b * t, d, cfg.norm),
            2 * b * t * d * c.ab + NORM_VECTORS[cfg.norm] * d * c.wb,
        )
    )
    cross_kv = _op(
        c,
        "cross_kv",
        cfg.n_layers,
        F.linear_flops(b * t, d, kw),
        d * kw * c.wb + b * t * (d * c.ab + kw * c.kb),
    )
    dec_embed, tail = _head_ops(c, tokens=b, logits_tokens=b)
    dec = _decoder_ops(c, batch=b, q_len=1, kv_len=1, encoder_len=t)
    ops = embed + enc + [cross_kv] + dec_embed + dec + tail
    return LatencyBreakdown("prefill", cfg.name, c.hw.name, b, t, t, c.tp, eff, tuple(ops))


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
