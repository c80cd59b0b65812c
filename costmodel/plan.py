"""Capacity planning: the largest batch that fits, decode latency and throughput there, and which K fits a target.

Memory per device = weights + batch·(KV cache per sequence + workspace per sequence) <= memory·utilization
(with expert parallelism, ``ep`` groups of ``devices`` devices each serve batch/ep sequences).
The default utilization 0.9 is vLLM's ``gpu_memory_utilization`` default (the rest covers the CUDA context,
allocator fragmentation and kernels' scratch space).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, check_cfg, fraction_in_unit, positive_int
from .hardware import get_hardware
from .latency import ESTIMATE, Efficiency, LatencyBreakdown, decode_latency
from .memory import kv_bytes_per_token, kv_cache_bytes, weight_bytes, workspace_bytes
from .moe import expected_experts
from .parallel import check_ep, check_tp

MEMORY_UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization


@dataclass(frozen=True)
class Plan:
    """Everything ``glugqa plan`` prints; bytes are per device."""

    model: str
    hardware: str
    devices: int
    context: int
    weight_dtype: str
    kv_dtype: str
    usable_bytes: float  # memory · utilization
    weight_bytes: float
    kv_bytes_per_sequence: float
    kv_bytes_per_token: float
    workspace_bytes_per_sequence: float
    max_batch: int  # 0 when not even one sequence fits
    batch: int  # the batch evaluated (max_batch unless asked)
    decode: LatencyBreakdown | None  # None when nothing fits
    ep: int = 1  # expert-parallel groups of ``devices`` devices each
    notes: tuple = ()  # assumptions that changed the answer (sliding windows, routing, context limits)

    @property
    def fits(self) -> bool:
        return self.batch >= 1 and self.batch <= self.max_batch

    @property
    def used_bytes(self) -> float:
        """Bytes on one device: weights + the sequences of its group (ceil(batch/ep))."""
        return self.weight_bytes + -(-self.batch // self.ep) * (
            self.kv_bytes_per_sequence + self.workspace_bytes_per_sequence
        )

    @property
    def ms_per_token(self) -> float:
        """Decode step time in ms: each sequence gets one token per step."""
        return self.decode.total_s * 1e3 if self.decode else float("inf")

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second over the whole batch (all ``devices`` together serve one batch)."""
        return self.decode.tokens_per_s if self.decode else 0.0


def max_batch(
    cfg: ModelConfig,
    hw,
    *,
    context: int,
    devices: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    memory_utilization: float = MEMORY_UTILIZATION,
    ep: int = 1,
) -> int:
    """ep·floor((memory·utilization - weights) / (KV + workspace per sequence)), or 0."""
    return _sizes(cfg, hw, context, devices, weight_dtype, kv_dtype, act_dtype, memory_utilization, ep)[-1]


def _sizes(cfg, hw, context, devices, weight_dtype, kv_dtype, act_dtype, utilization, ep=1):
    hw = get_hardware(hw)
    tp, ep = check_tp(cfg, devices), check_ep(cfg, ep)
    kv_dtype = kv_dtype or weight_dtype
    usable = hw.memory_bytes * fraction_in_unit("memory_utilization", utilization)
    w = weight_bytes(cfg, weight_dtype, tp=tp, ep=ep)
    kv_seq = kv_cache_bytes(cfg, batch=1, context=context, kv_dtype=kv_dtype, tp=tp)
    ws_seq = workspace_bytes(cfg, batch=1, tokens=1, act_dtype=act_dtype, tp=tp)
    n = ep * int((usable - w) // (kv_seq + ws_seq)) if usable > w else 0
    return hw, tp, kv_dtype, usable, w, kv_seq, ws_seq, n


def plan_notes(cfg: ModelConfig, *, context: int, batch: int) -> tuple[str, ...]:
    """The assumptions that changed a plan's numbers, one line each (empty for a dense model with full
    attention inside its context)."""
    notes = []
    windowed = [layer for layer in cfg.layers if layer.window is not None and layer.window < context]
    if windowed:
        windows = sorted({layer.window for layer in windowed})
        notes.append(
            f"sliding window: {len(windowed)} of {cfg.n_layers} layers keep only the last "
            f"{', '.join(f'{w:,}' for w in windows)} positions of the {context:,}-token context"
        )
    if cfg.max_position and context > cfg.max_position:
        notes.append(f"context {context:,} is beyond the model's max_position_embeddings {cfg.max_position:,}")
    if cfg.moe is not None and batch >= 1:
        touched = expected_experts(cfg.moe.n_experts, cfg.moe.top_k, batch)
        notes.append(
            f"MoE: a decode step of {batch} tokens reads ~{touched:.1f} of {cfg.moe.n_experts} experts per layer "
            f"(top-{cfg.moe.top_k}, tokens routed uniformly at random)"
        )
    return tuple(notes)


def plan(
    cfg: ModelConfig,
    hw,
    *,
    context: int,
    devices: int = 1,
    batch: int | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    eff: Efficiency = ESTIMATE,
    memory_utilization: float = MEMORY_UTILIZATION,
    ep: int = 1,
) -> Plan:
    """Capacity plan for ``devices``-way tensor parallelism at ``context`` tokens per sequence (with ``ep``
    expert-parallel groups of ``devices`` devices each for a MoE model: tp·ep devices in all).

    batch=None evaluates the largest batch that fits; a given batch is evaluated even if it does not fit
    (``Plan.fits`` says so). Latency is for the last token of a full context (the worst step).
    """
    context = positive_int("context", context)
    hw, tp, kv_dtype, usable, w, kv_seq, ws_seq, n = _sizes(
        cfg, hw, context, devices, weight_dtype, kv_dtype, act_dtype, memory_utilization, ep
    )
    b = n if batch is None else positive_int("batch", batch)
    dec = None
    if b >= 1:
        dec = decode_latency(
            cfg,
            hw,
            batch=b,
            context=context,
            tp=tp,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            act_dtype=act_dtype,
            eff=eff,
            ep=ep,
        )
    return Plan(
        cfg.name,
        hw.name,
        tp,
        context,
        weight_dtype,
        kv_dtype,
        usable,
        w,
        kv_seq,
        kv_bytes_per_token(cfg, kv_dtype, tp=tp),
        ws_seq,
        n,
        b,
        dec,
        ep,
        plan_notes(cfg, context=context, batch=b),
    )


def divisors(n: int) -> list[int]:
    """Positive divisors of n, descending (MHA's K = N first, MQA's 1 last)."""
    n = positive_int("n", n)
    return [k for k in range(n, 0, -1) if n % k == 0]


@dataclass(frozen=True)
class KVOption:
    n_kv_heads: int
    label: str
    plan: Plan
    meets_latency: bool
    meets_batch: bool

    @property
    def ok(self) -> bool:
        return self.meets_latency and self.meets_batch


@dataclass(frozen=True)
class KVChoice:
    options: tuple  # KVOption for every valid K, descending
    best: KVOption | None  # the largest K meeting every target (closest to MHA quality); None if none does


def choose_kv_heads(
    cfg: ModelConfig,
    hw,
    *,
    context: int,
    devices: int = 1,
    batch: int = 1,
    latency_target_s: float | None = None,
    min_batch: int | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    eff: Efficiency = ESTIMATE,
) -> KVChoice:
    """Every K dividing N (and compatible with ``devices``): its plan at ``batch``, whether the decode step
    meets ``latency_target_s`` and whether at least ``min_batch`` sequences fit; best = largest K meeting both."""
    check_cfg(cfg)
    batch = positive_int("batch", batch)
    if latency_target_s is not None and not float(latency_target_s) > 0:
        raise ValueError(f"latency_target_s must be > 0; got {latency_target_s!r}")
    need = batch if min_batch is None else positive_int("min_batch", min_batch)
    options = []
    for k in divisors(cfg.n_heads):
        c = cfg.with_(n_kv_heads=k)
        if k % devices and devices % k or cfg.n_heads % devices:
            continue
        p = plan(
            c,
            hw,
            context=context,
            devices=devices,
            batch=batch,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            eff=eff,
        )
        fast = latency_target_s is None or p.decode.total_s <= latency_target_s
        options.append(KVOption(k, c.attention_kind, p, fast, p.max_batch >= need))
    if not options:
        check_tp(cfg, devices)  # raises the precise error
    best = next((o for o in options if o.ok), None)
    return KVChoice(tuple(options), best)
