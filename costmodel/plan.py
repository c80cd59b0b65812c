"""Capacity planning: the largest batch that fits like a real server, its time to first token and per-token time.

Memory (``costmodel.budget``): per device, weights + activation peak of the largest prefill chunk + runtime
reserve + the batch's KV cache in whole blocks <= memory · utilization (vLLM's defaults). The largest batch
is ep · floor(KV pool / paged KV per sequence), capped at ``max_num_seqs`` for the batch evaluated; the largest
context at that batch is the longest whose paged KV still fits. Time to first token is the prompt's chunked
prefill beside the other batch - 1 sequences decoding (``costmodel.serving.step``); the time per output token
is one decode step of the batch at the full context (the slowest step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .budget import MEMORY_UTILIZATION, SERVE, MemoryBudget, ServerConfig, fixed_terms, memory_budget
from .config import ModelConfig, check_cfg, positive_int, resolve_kv_dtype
from .hardware import get_hardware
from .latency import ESTIMATE, Efficiency, LatencyBreakdown, decode_latency
from .memory import kv_bytes_per_token, paged_kv_bytes
from .notes import encoder_note, kv_dtype_note, plan_notes
from .parallel import check_ep, check_tp
from .serving.step import StepModel

__all__ = ["MEMORY_UTILIZATION", "KVChoice", "KVOption", "Plan", "choose_kv_heads", "divisors", "encoder_note",
           "max_batch", "max_context", "plan", "plan_notes"]  # fmt: skip

CONTEXT_SEARCH_LIMIT = 2**40  # the largest context max_context() tries (the CLI's largest count)


@dataclass(frozen=True)
class Plan:
    """Everything ``glugqa plan`` prints; bytes are per device."""

    model: str
    hardware: str
    devices: int
    context: int
    prompt: int
    weight_dtype: str
    kv_dtype: str
    server: ServerConfig  # resolved: every default filled in
    budget: MemoryBudget  # at the batch evaluated
    kv_bytes_per_token: float  # unpaged, all layers
    kv_bytes_per_sequence: int  # paged, at the full context
    max_batch: int  # memory's limit (0 when not even one sequence fits)
    batch: int  # the batch evaluated: min(max_batch, max_num_seqs) unless asked
    max_context: int | None  # the longest context whose KV fits at that batch (None: no limit)
    decode: LatencyBreakdown | None  # one decode step at the full context (None when nothing fits)
    ttft_s: float | None  # the prompt's chunked prefill beside batch - 1 decodes
    ep: int = 1
    notes: tuple = ()

    @property
    def fits(self) -> bool:
        return 1 <= self.batch <= self.max_batch

    @property
    def usable_bytes(self) -> int:
        return self.budget.usable

    @property
    def weight_bytes(self) -> int:
        return self.budget.weights

    @property
    def used_bytes(self) -> int:
        return self.budget.used

    @property
    def ms_per_token(self) -> float:
        """Time per output token (TPOT) in ms: each sequence gets one token per decode step."""
        return self.decode.total_s * 1e3 if self.decode else float("inf")

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second over the whole batch (all ``devices`` together serve one batch)."""
        return self.decode.tokens_per_s if self.decode else 0.0


def _setup(cfg, hw, devices, ep, weight_dtype, kv_dtype, act_dtype, server):
    hw = get_hardware(hw)
    tp, ep = check_tp(check_cfg(cfg), devices), check_ep(cfg, ep)
    if not isinstance(server, ServerConfig):
        raise ValueError(f"server must be a ServerConfig; got {type(server).__name__}")
    server = server.resolve(hw, tp)
    terms = fixed_terms(cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, act_dtype=act_dtype, server=server)
    device, headroom, reserve, weights, act = terms
    kv_dtype = resolve_kv_dtype(kv_dtype, weight_dtype, act_dtype)
    return hw, tp, ep, kv_dtype, server, device - headroom - reserve - weights - act


def _kv_seq(cfg, context, kv_dtype, tp, server, encoder_len) -> int:
    return int(paged_kv_bytes(cfg, batch=1, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len,
                              block_size=server.block_size))  # fmt: skip


def max_batch(
    cfg: ModelConfig,
    hw,
    *,
    context: int,
    devices: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    ep: int = 1,
    encoder_len: int | None = None,
    server: ServerConfig = SERVE,
) -> int:
    """ep·floor(KV pool / paged KV per sequence), or 0: the most sequences of ``context`` tokens whose KV
    fits (``server.max_num_seqs`` does not cap it)."""
    context = positive_int("context", context)
    hw, tp, ep, kv_dtype, server, pool = _setup(cfg, hw, devices, ep, weight_dtype, kv_dtype, act_dtype, server)
    return ep * (pool // _kv_seq(cfg, context, kv_dtype, tp, server, encoder_len)) if pool > 0 else 0


def max_context(
    cfg: ModelConfig,
    hw,
    *,
    batch: int,
    devices: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    ep: int = 1,
    encoder_len: int | None = None,
    server: ServerConfig = SERVE,
) -> int | None:
    """The longest context whose paged KV fits ``batch`` sequences (ceil(batch/ep) per device): 0 when not
    even one token does, None when it never stops fitting (every layer sliding; searched up to 2**40)."""
    b = positive_int("batch", batch)
    hw, tp, ep, kv_dtype, server, pool = _setup(cfg, hw, devices, ep, weight_dtype, kv_dtype, act_dtype, server)
    per_device = -(-b // ep)

    def fits(s: int) -> bool:
        return per_device * _kv_seq(cfg, s, kv_dtype, tp, server, encoder_len) <= pool

    if pool <= 0 or not fits(1):
        return 0
    if fits(CONTEXT_SEARCH_LIMIT):
        return None
    lo, hi = 1, CONTEXT_SEARCH_LIMIT  # fits(lo), not fits(hi): paged KV never shrinks as the context grows
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _ttft(cfg, hw, *, tp, ep, weight_dtype, kv_dtype, act_dtype, eff, batch, context, prompt, server):
    """(TTFT in seconds, note or None): the prompt's chunks beside batch - 1 decodes at the full context;
    an encoder-decoder runs its encoder over the whole prompt (servers do not chunk it)."""
    if cfg.is_encoder_decoder:
        from .latency import prefill_latency  # noqa: PLC0415 -- only encoder-decoders need it here

        lat = prefill_latency(cfg, hw, batch=1, prompt_len=prompt, tp=tp, weight_dtype=weight_dtype,
                              kv_dtype=kv_dtype, act_dtype=act_dtype, eff=eff, ep=ep)  # fmt: skip
        return lat.total_s, "encoder-decoder: time to first token is the whole prompt's encoder pass (not chunked)"
    step = StepModel(cfg, hw, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff, ep=ep)
    t = step.ttft_s(prompt, budget=server.max_num_batched_tokens, decodes=batch - 1, context=context)
    note = None
    if ep > 1:
        note = "expert parallel: the prompt's chunk is timed as if its tokens were spread over the ep groups"
    return t, note


def plan(
    cfg: ModelConfig,
    hw,
    *,
    context: int,
    devices: int = 1,
    batch: int | None = None,
    prompt: int | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    eff: Efficiency = ESTIMATE,
    ep: int = 1,
    encoder_len: int | None = None,
    server: ServerConfig = SERVE,
) -> Plan:
    """Capacity plan for ``devices``-way tensor parallelism at ``context`` tokens per sequence (with ``ep``
    expert-parallel groups of ``devices`` devices each for a MoE model: tp·ep devices in all).

    batch=None evaluates min(largest batch that fits, max_num_seqs); a given batch is evaluated even if it
    does not fit (``Plan.fits`` says so). ``prompt`` (default: the whole context) is the prompt whose time
    to first token is given. ``server``: memory and batching settings (vLLM's defaults). ``kv_dtype=None``:
    the weight dtype, or ``act_dtype`` for weight-only int8/int4 weights (``costmodel.config.resolve_kv_dtype``).
    """
    context = positive_int("context", context)
    prompt = context if prompt is None else positive_int("prompt", prompt)
    if prompt > context:
        raise ValueError(f"prompt must be at most the context ({context}); got prompt={prompt}")
    asked_kv_dtype = kv_dtype
    hw, tp, ep, kv_dtype, server, pool = _setup(cfg, hw, devices, ep, weight_dtype, kv_dtype, act_dtype, server)
    kv_seq = _kv_seq(cfg, context, kv_dtype, tp, server, encoder_len)
    n = ep * (pool // kv_seq) if pool > 0 else 0
    b = min(n, server.max_num_seqs) if batch is None else positive_int("batch", batch)
    common = dict(devices=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype, ep=ep,
                  encoder_len=encoder_len, server=server)  # fmt: skip
    budget = memory_budget(cfg, hw, batch=b, context=context, tp=tp, ep=ep, weight_dtype=weight_dtype,
                           kv_dtype=kv_dtype, act_dtype=act_dtype, encoder_len=encoder_len, server=server)  # fmt: skip
    dec = ttft = None
    notes = list(plan_notes(cfg, context=context, batch=b, encoder_len=encoder_len, weight_dtype=weight_dtype))
    notes += kv_dtype_note(weight_dtype, asked_kv_dtype, act_dtype=act_dtype)
    if b >= 1:
        dec = decode_latency(cfg, hw, batch=b, context=context, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                             act_dtype=act_dtype, eff=eff, ep=ep, encoder_len=encoder_len)  # fmt: skip
        ttft, note = _ttft(cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
                           eff=eff, batch=b, context=context, prompt=prompt, server=server)  # fmt: skip
        notes += [note] if note else []
        notes += [x for x in dec.notes if x not in notes]  # what the latency model assumed
    if batch is None and n > server.max_num_seqs:
        notes.append(f"batch capped at max_num_seqs {server.max_num_seqs:,} (memory alone fits {n:,})")
    longest = max_context(cfg, hw, batch=max(b, 1), **common)
    return Plan(
        cfg.name, hw.name, tp, context, prompt, weight_dtype, kv_dtype, server, budget,
        kv_bytes_per_token(cfg, kv_dtype, tp=tp), kv_seq, n, b, longest, dec, ttft, ep, tuple(notes),
    )  # fmt: skip


def divisors(n: int) -> list[int]:
    """Positive divisors of n, descending (MHA's K = N first, MQA's 1 last); O(sqrt(n)) trials."""
    n = positive_int("n", n)
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return sorted({*small, *(n // k for k in small)}, reverse=True)


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
    server: ServerConfig = SERVE,
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
        p = plan(c, hw, context=context, devices=devices, batch=batch, weight_dtype=weight_dtype,
                 kv_dtype=kv_dtype, eff=eff, server=server)  # fmt: skip
        fast = latency_target_s is None or p.decode.total_s <= latency_target_s
        options.append(KVOption(k, c.attention_kind, p, fast, p.max_batch >= need))
    if not options:
        check_tp(cfg, devices)  # raises the precise error
    best = next((o for o in options if o.ok), None)
    return KVChoice(tuple(options), best)
