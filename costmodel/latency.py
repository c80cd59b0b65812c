"""Roofline latency per op for a decode step and for prefill, on one of ``tp`` (x ``ep``) devices.

Each op (one kernel) takes  max(compute, memory) + eff.kernel_overhead_s  (Williams et al. 2009's roofline,
applied per op as in Pope et al. 2022 / kipply 2022; the rates, with every efficiency and its source, are in
``costmodel.roofline``); collectives take their α–β time (costmodel.parallel) + eff.kernel_overhead_s; every
forward pass adds eff.step_overhead_s. A step is the sum over the model's layers of each layer's ops
(costmodel.latency_ops; one term per distinct layer, times how many layers are like it), plus the embedding
gather, the final norm and the lm_head. A decode step reads every weight once (a MoE layer: the experts the
step touches) and every sequence's KV cache; prefill likewise, with T tokens per sequence.

The passes are assembled by :class:`costmodel.forward.ForwardModel` (which also prices a continuous-batching
iteration: decodes beside prefill chunks in one pass). ``IDEAL`` is the pure roofline; ``ESTIMATE`` the sourced
default (docs/cost-model.md). The breakdown's
``notes`` say what an assumption changed (fp8 weights on a chip with no fp8 peak, tensor parallelism past one
node, KV read per query head, quantized weights' bandwidth).
Validation: tests/test_cost_latency.py (kipply's 13B on an A100-40GB) and ``glugqa accuracy`` (docs/accuracy.md:
every shipped published measurement).
"""

from __future__ import annotations

from .config import ModelConfig
from .forward import ForwardModel
from .parallel import ALLREDUCES_PER_LAYER, check_ep, check_tp, collective_path, kv_heads_per_device  # noqa: F401
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

    kv_dtype defaults to weight_dtype (act_dtype for weight-only int8/int4 weights); compute_dtype to fp8 for
    fp8 weights on chips with an fp8 peak, else bf16 (weight-only int8/int4 quantization computes in bf16).
    ``eff=IDEAL`` gives the pure roofline bound.
    ``ep``: expert-parallel groups of ``tp`` devices each (MoE models; costmodel.parallel): a group serves
    ceil(batch/ep) sequences and the times are those of one of its devices. ``link_latency_s``: the latency
    of one ring step of a collective (default: the hardware's ``link_latency_s``). ``group_size`` /
    ``group_bytes``: grouped weight quantization (GPTQ/AWQ-style int4 with group 128 and an fp16 scale: 128 and
    2; gpt-fast's int4 keeps a bf16 scale and zero point per group of 32: 32 and 4): every weight matrix
    carries group_bytes / group_size more bytes per weight (costmodel.memory.weight_bytes counts the same).
    """
    fm = ForwardModel(
        cfg, hw, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
        compute_dtype=compute_dtype, eff=eff, ep=ep, link_latency_s=link_latency_s, group_size=group_size,
        group_bytes=group_bytes,
    )  # fmt: skip
    return fm.decode(batch=batch, context=context, encoder_len=encoder_len)


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
    fm = ForwardModel(
        cfg, hw, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
        compute_dtype=compute_dtype, eff=eff, ep=ep, link_latency_s=link_latency_s, group_size=group_size,
        group_bytes=group_bytes,
    )  # fmt: skip
    return fm.prefill(batch=batch, prompt_len=prompt_len)


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
