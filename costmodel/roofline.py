"""The roofline's terms and result types: the efficiency profile (software parameters with their sourced
defaults), one op's cost, and the breakdown of a decode step or a prefill. ``costmodel.latency`` assembles
them per model; ``costmodel.efficiency_file`` reads and writes profiles as TOML.

Each op (one kernel) takes  max(compute, memory) + eff.kernel_overhead_s  (Williams et al. 2009's roofline,
applied per op as in Pope et al. 2022 / kipply 2022), with

    compute = FLOPs / (peak(dtype) · eff.flops[_fp8] · chip.flops_efficiency_factor [· eff.attn_compute])
    memory  = Σ_kind bytes_kind / (hbm_bandwidth · eff.hbm · chip.hbm_efficiency_factor · factor_kind)

where factor_kind is 1 for activations and full-precision weights, eff.dequant_int8 / eff.dequant_int4 for
weight-only quantized weights and eff.attn_memory for the KV cache an attention kernel reads. Collectives take
their α–β time (costmodel.parallel) and every forward pass adds eff.step_overhead_s. ``IDEAL`` is the pure
roofline: every fraction 1, every latency and overhead 0. Every parameter, its default and its source:
:data:`PARAMS` (docs/cost-model.md, "Efficiency profile").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .checks import check_bool, number_in


@dataclass(frozen=True)
class Param:
    """One efficiency parameter: default (``ESTIMATE``), its ``IDEAL`` value, the accepted range, the physical
    range ``glugqa calibrate`` fits it within (None: not fitted), its unit and the source of the default."""

    name: str
    default: float
    ideal: float
    lo: float
    hi: float
    fit: tuple[float, float] | None
    unit: str
    doc: str
    source: str


US, MS = 1e-6, 1e-3
# CUDA.jl's measurement of 80 small kernels launched one after another (cuda.juliagpu.org, "Graphs"): 260 µs
CUDA_JL_GRAPH_KERNELS, CUDA_JL_UNGRAPHED_S = 80, 260e-6
DEFAULT_KERNEL_OVERHEAD_S = CUDA_JL_UNGRAPHED_S / CUDA_JL_GRAPH_KERNELS  # 3.25 µs
DEFAULT_FLOPS_EFF = 0.7  # kipply 2022, FasterTransformer profile on an A100
DEFAULT_HBM_EFF = 0.9  # kipply 2022, FasterTransformer profile on an A100
# NCCL's ring all-reduce caps its A100 NVLink bus bandwidth at 235 GB/s of the 300 GB/s per direction
# (src/graph/tuning.cc); nccl-tests reports ~230-240 GB/s bus bandwidth on 8 x A100 (docs/references.md)
DEFAULT_LINK_EFF = 0.78
# gpt-fast README (pytorch-labs/gpt-fast, Llama-2-7B on an A100): achieved "memory bandwidth" 1397.31 GB/s
# in bf16, 1069.20 with int8 and 862.69 with int4 (group 32) weight-only quantization
GPT_FAST_BANDWIDTH_GBS = {"bf16": 1397.31, "int8": 1069.20, "int4": 862.69}
FRACTION = (0.01, 1.0)  # accepted range of every fraction: below 1% of a chip's peak is not a real system

PARAMS: tuple[Param, ...] = (
    Param("flops", DEFAULT_FLOPS_EFF, 1.0, *FRACTION, (0.3, 0.95), "",
          "16-bit (bf16/fp16) and int8 GEMMs: achieved fraction of the dtype's dense peak",
          "kipply 2022 (FasterTransformer on an A100)"),
    Param("hbm", DEFAULT_HBM_EFF, 1.0, *FRACTION, (0.5, 1.0), "",
          "weight and activation streams: achieved fraction of HBM bandwidth",
          "kipply 2022 (FasterTransformer on an A100)"),
    Param("kernel_overhead_s", DEFAULT_KERNEL_OVERHEAD_S, 0.0, 0.0, 1 * MS, (0.0, 20 * US), "s",
          "fixed cost of every kernel (launch, ramp-up, tail)",
          "CUDA.jl, 80 kernels launched one by one: 260 µs"),
    Param("link", DEFAULT_LINK_EFF, 1.0, *FRACTION, (0.3, 1.0), "",
          "collectives: achieved fraction of the link (or network) bandwidth per direction",
          "NCCL tuning.cc: A100 ring bus bandwidth capped at 235 of 300 GB/s"),
    Param("flops_fp8", 0.5, 1.0, *FRACTION, (0.2, 0.95), "",
          "fp8 GEMMs: achieved fraction of the dense fp8 peak",
          "TensorRT-LLM's fp8 first-token latency at 2048 tokens (Llama-2-7B: 36 ms on an H100, v0.5; 30.2 ms "
          "on an H200, v0.9) needs 0.45-0.53 of the fp8 peak: in sample for those two points"),
    Param("collective_latency_s", 14 * US, 0.0, 0.0, 1 * MS, (0.0, 50 * US), "s",
          "start-up latency of one collective (synchronisation and protocol), before its per-step latencies",
          "NCCL tuning.cc base latency of Ring/LL128 (14 µs); 8-GPU all-reduces of 4-512 KB take 17-20 µs"),
    Param("step_overhead_s", 0.0, 0.0, 0.0, 1.0, (0.0, 20 * MS), "s",
          "fixed cost of every forward pass (a decode step or a prefill): scheduling, sampling, host work",
          "0: stacks differ (CUDA graphs ~0, Python schedulers ms); calibrate it on your own stack"),
    Param("attn_compute", 0.85, 1.0, *FRACTION, (0.3, 1.0), "",
          "attention core FLOPs, as a fraction of eff.flops (fused attention vs GEMMs; 16-bit rate)",
          "FlashAttention-2 forward reaches 50-73% of the A100's peak (Dao 2023) vs 0.7 for GEMMs: ~0.6/0.7"),
    Param("attn_memory", 0.9, 1.0, *FRACTION, (0.3, 1.0), "",
          "KV-cache reads of the attention kernel, as a fraction of eff.hbm (paged, per-sequence reads)",
          "FlashInfer README: paged (vector-sparse) attention reaches 90% of the bandwidth of dense kernels"),
    Param("dequant_int8", round(GPT_FAST_BANDWIDTH_GBS["int8"] / GPT_FAST_BANDWIDTH_GBS["bf16"], 3), 1.0, *FRACTION,
          (0.3, 1.0), "", "weight-only int8 weights: effective bandwidth as a fraction of eff.hbm (dequantisation "
          "in the kernel)", "gpt-fast README: 1069.20 of 1397.31 GB/s (Llama-2-7B, A100)"),
    Param("dequant_int4", round(GPT_FAST_BANDWIDTH_GBS["int4"] / GPT_FAST_BANDWIDTH_GBS["bf16"], 3), 1.0, *FRACTION,
          (0.2, 1.0), "", "weight-only int4 weights: effective bandwidth as a fraction of eff.hbm (dequantisation "
          "in the kernel)", "gpt-fast README: 862.69 of 1397.31 GB/s (Llama-2-7B, A100)"),
)  # fmt: skip
PARAM_BY_NAME = {p.name: p for p in PARAMS}
# implementation settings: properties of a user's stack, stated, never fitted:
# name -> (ESTIMATE, IDEAL, doc, source)
SETTINGS = {
    "kv_read_per_query_head": (False, False, "the decode attention kernel reads each KV head once per query head "
                               "(no grouped-query decode kernel): decode cache bytes x N/K, the GQA bandwidth saving "
                               "lost in software", "off: grouped decode kernels are the norm (TensorRT-LLM's XQA "
                               "since v0.8); on for TensorRT-LLM before v0.8 and gpt-fast (repeat_interleave)"),
    "wave_quantization": (True, False, "GEMM and fused-attention tiles run in whole waves over the chip's compute "
                          "units (tile and wave quantization); off: every FLOP at the achieved rate",
                          "NVIDIA, Matrix Multiplication Background User's Guide (tile and wave quantization)"),
}

# Tile and wave quantization (NVIDIA, "Matrix Multiplication Background User's Guide", Deep Learning Performance
# documentation): a GEMM's (M, N) output is cut into tiles, one per thread block; the tiles run in waves of one
# per compute unit, and the last wave and the padded edge tiles do work nobody uses. cuBLAS/CUTLASS use
# 128-wide tiles for large GEMMs and shrink the M side for skinny ones (down to 16 rows); fused attention
# (FlashAttention) gives each thread block 128 queries of one head.
TILE_N = 128
TILE_M_MAX, TILE_M_MIN = 128, 16
ATTENTION_TILE_Q = 128


def _waves_used(tiles: float, useful: float, tile_size: float, units: int) -> float:
    """useful / (whole waves · units · tile size): the fraction of the issued tile work that is real."""
    waves = math.ceil(tiles / units)
    return useful / (waves * units * tile_size)


def gemm_tile_efficiency(m: float, n: int, units: int, *, groups: float = 1) -> float:
    """Fraction of a GEMM's issued work that is useful when its (m, n) outputs (``groups`` such GEMMs run
    together, e.g. the experts of a MoE layer) are cut into tiles of TILE_N columns and min(TILE_M_MAX,
    next power of two >= m, >= TILE_M_MIN) rows and run in whole waves over ``units`` compute units."""
    tile_m = min(TILE_M_MAX, max(TILE_M_MIN, 2 ** math.ceil(math.log2(max(m, 1)))))
    tiles = max(1.0, groups) * math.ceil(m / tile_m) * math.ceil(n / TILE_N)
    return min(1.0, _waves_used(tiles, max(1.0, groups) * m * n, tile_m * TILE_N, units))


def gemm_tile_breaks(top: int) -> list[int]:
    """The row counts m <= ``top`` at which the tiling of a GEMM with m output rows changes: its tile rows
    double from TILE_M_MIN up to TILE_M_MAX (m = 17, 33, 65, 129 with the defaults), then every TILE_M_MAX
    more rows add a row of tiles (257, 385, ...). Between two breaks such a GEMM runs the same tiles in the same
    waves, so its compute time is constant there (:func:`gemm_tile_efficiency`)."""
    breaks, m = [], TILE_M_MIN
    while m < TILE_M_MAX:
        breaks.append(m + 1)
        m *= 2
    return [b for b in breaks if b <= top] + list(range(TILE_M_MAX + 1, top + 1, TILE_M_MAX))


def attention_tile_efficiency(heads: int, q_len: int, units: int) -> float:
    """The same for fused attention over ``heads`` (batch x query heads) of ``q_len`` queries each, one thread
    block per ATTENTION_TILE_Q queries of one head."""
    return varlen_attention_tile_efficiency(((heads, q_len),), units)


def varlen_attention_tile_efficiency(shapes, units: int) -> float:
    """The same for one fused attention kernel over sequences of different lengths (a varlen kernel: the
    prefill chunks of a continuous-batching iteration): ``shapes`` = ((heads, q_len), ...); every sequence's
    heads get ceil(q_len / ATTENTION_TILE_Q) blocks, and all the blocks share the waves."""
    tiles = sum(h * math.ceil(q / ATTENTION_TILE_Q) for h, q in shapes)
    return min(1.0, _waves_used(tiles, sum(h * q for h, q in shapes), ATTENTION_TILE_Q, units))


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak FLOP/s, HBM and link bandwidth, fixed latencies and implementation
    settings (:data:`PARAMS`, :data:`SETTINGS`). Every value is checked: a real number in its stated range
    (bools and strings refused), so every time the cost model derives from it is finite."""

    flops: float = PARAM_BY_NAME["flops"].default
    hbm: float = PARAM_BY_NAME["hbm"].default
    kernel_overhead_s: float = PARAM_BY_NAME["kernel_overhead_s"].default
    link: float = PARAM_BY_NAME["link"].default
    flops_fp8: float = PARAM_BY_NAME["flops_fp8"].default
    collective_latency_s: float = PARAM_BY_NAME["collective_latency_s"].default
    step_overhead_s: float = PARAM_BY_NAME["step_overhead_s"].default
    attn_compute: float = PARAM_BY_NAME["attn_compute"].default
    attn_memory: float = PARAM_BY_NAME["attn_memory"].default
    dequant_int8: float = PARAM_BY_NAME["dequant_int8"].default
    dequant_int4: float = PARAM_BY_NAME["dequant_int4"].default
    kv_read_per_query_head: bool = SETTINGS["kv_read_per_query_head"][0]
    wave_quantization: bool = SETTINGS["wave_quantization"][0]

    def __post_init__(self):
        for p in PARAMS:
            object.__setattr__(self, p.name, number_in(f"eff.{p.name}", getattr(self, p.name), p.lo, p.hi,
                                                       unit=p.unit))  # fmt: skip
        for name in SETTINGS:
            check_bool(f"eff.{name}", getattr(self, name))

    def values(self) -> dict:
        """{name: value} of every parameter and setting, in :data:`PARAMS` order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


IDEAL = Efficiency(**{p.name: p.ideal for p in PARAMS}, **{k: v[1] for k, v in SETTINGS.items()})
ESTIMATE = Efficiency()


# What an op's cost follows, for whoever composes steps from ops (costmodel.serving.step):
ROLE_TOKENS = "tokens"  # the tokens passing (norms, projections, FFN or experts, collectives, embedding)
ROLE_ATTENTION = "attention"  # each sequence's queries and keys (the attention core: grows with the context)
ROLE_LOGITS = "logits"  # the rows that sample a token (lm_head)
ROLE_STEP = "step"  # once per forward pass (eff.step_overhead_s)
ROLES = (ROLE_TOKENS, ROLE_ATTENTION, ROLE_LOGITS, ROLE_STEP)


@dataclass(frozen=True)
class OpCost:
    """One op (kernel) repeated ``count`` times (e.g. once per layer); flops, bytes and times are totals.
    ``role``: what its cost follows (:data:`ROLES`): the tokens of the pass, each sequence's attention, the
    sampled rows, or the pass itself."""

    name: str
    count: int
    flops: float
    bytes: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    time_s: float
    bound: str  # "compute", "memory", "link" or "overhead"
    role: str = ROLE_TOKENS

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per HBM byte."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(frozen=True)
class LatencyBreakdown:
    """Per-op costs and totals of one decode step or one prefill, on one device. ``notes``: what an
    assumption changed (e.g. fp8 weights computed at the bf16 rate on a chip with no fp8 peak)."""

    phase: str
    model: str
    hardware: str
    batch: int
    q_len: int
    context: int
    tp: int
    efficiency: Efficiency
    ops: tuple
    notes: tuple = ()

    @property
    def total_s(self) -> float:
        return sum(op.time_s for op in self.ops)

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.ops)

    @property
    def bytes(self) -> float:
        return sum(op.bytes for op in self.ops)

    @property
    def tokens_per_s(self) -> float:
        """Decode: batch / step time (one token per sequence per step); prefill: batch·T / time."""
        return self.batch * self.q_len / self.total_s

    def time_by_bound(self) -> dict[str, float]:
        out = {}
        for op in self.ops:
            out[op.bound] = out.get(op.bound, 0.0) + op.time_s
        return out

    def rows(self) -> list[dict]:
        return [
            {
                "op": op.name,
                "count": op.count,
                "flops": op.flops,
                "bytes": op.bytes,
                "intensity": op.intensity,
                "bound": op.bound,
                "time_s": op.time_s,
                "share": op.time_s / self.total_s,
            }
            for op in self.ops
        ]
