"""The roofline's terms and result types: efficiencies (with their sourced defaults), one op's cost, and
the breakdown of a decode step or a prefill. ``costmodel.latency`` assembles them per model.

Each op (one kernel) takes  max(FLOPs / (peak · eff.flops), bytes / (hbm_bandwidth · eff.hbm)) + eff.kernel_overhead_s
(Williams et al. 2009's roofline, applied per op as in Pope et al. 2022 / kipply 2022).

Efficiencies are explicit. ``IDEAL`` (1, 1, no overhead) is the pure bound. ``ESTIMATE`` uses
- eff.flops = 0.7 and eff.hbm = 0.9: the best efficiencies kipply (2022, "Transformer Inference Arithmetic",
  kipp.ly/transformer-inference-arithmetic) observed profiling NVIDIA FasterTransformer on an A100 (also
  llm-analysis's examples/fastertransformer defaults; docs/references.md);
- kernel_overhead_s = 260 µs / 80 kernels = 3.25 µs per kernel: CUDA.jl's measurement of 80 small broadcast
  kernels launched one after another (cuda.juliagpu.org/dev/usage/graphs, "Graphs": 260 µs; 70 µs as one
  CUDA graph). This is the launch/ramp cost a roofline ignores and what dominates tiny kernels at batch 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import fraction_in_unit

CUDA_JL_GRAPH_KERNELS = 80  # kernels in CUDA.jl's RK4 example
CUDA_JL_UNGRAPHED_S = 260e-6  # their wall time launched one by one
DEFAULT_KERNEL_OVERHEAD_S = CUDA_JL_UNGRAPHED_S / CUDA_JL_GRAPH_KERNELS  # 3.25 µs
DEFAULT_FLOPS_EFF = 0.7  # kipply 2022, FasterTransformer profile
DEFAULT_HBM_EFF = 0.9  # kipply 2022, FasterTransformer profile


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak FLOP/s, HBM and link bandwidth, and a fixed cost per kernel."""

    flops: float = DEFAULT_FLOPS_EFF
    hbm: float = DEFAULT_HBM_EFF
    kernel_overhead_s: float = DEFAULT_KERNEL_OVERHEAD_S
    link: float = 1.0

    def __post_init__(self):
        for f in ("flops", "hbm", "link"):
            object.__setattr__(self, f, fraction_in_unit(f"eff.{f}", getattr(self, f)))
        if not float(self.kernel_overhead_s) >= 0:
            raise ValueError(f"eff.kernel_overhead_s must be >= 0; got {self.kernel_overhead_s!r}")


IDEAL = Efficiency(1.0, 1.0, 0.0, 1.0)
ESTIMATE = Efficiency()


@dataclass(frozen=True)
class OpCost:
    """One op (kernel) repeated ``count`` times (e.g. once per layer); flops, bytes and times are totals."""

    name: str
    count: int
    flops: float
    bytes: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    time_s: float
    bound: str  # "compute", "memory" or "link"

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per HBM byte."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(frozen=True)
class LatencyBreakdown:
    """Per-op costs and totals of one decode step or one prefill, on one device."""

    phase: str
    model: str
    hardware: str
    batch: int
    q_len: int
    context: int
    tp: int
    efficiency: Efficiency
    ops: tuple

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
