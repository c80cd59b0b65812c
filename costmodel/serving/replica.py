"""One replica of a served model: tp devices, their memory budget, their iteration time and KV per request.

A :class:`Replica` ties the cost model's pieces together for the serving models: the step model
(costmodel.serving.step), the server's settings resolved for the chip (costmodel.budget), the KV pool they
leave, what each request holds in it (paged, its whole length), and the tabulated iteration time.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..budget import SERVE, ServerConfig, fixed_terms
from ..config import dtype_bytes, resolve_kv_dtype
from ..hardware import get_hardware
from ..latency import ESTIMATE, Efficiency
from ..memory import KV_TENSORS
from ..parallel import kv_heads_per_device
from .simulate import SimResult, simulate
from .step import StepModel
from .table import IterationTable
from .workload import Workload


def paged_kv_array(cfg, contexts, *, kv_dtype: str, tp: int, block_size: int) -> np.ndarray:
    """costmodel.memory.paged_kv_bytes(batch=1) for an array of contexts at once (float64 bytes; decoder-only)."""
    s = np.asarray(contexts, dtype=np.int64)  # (n,)
    b = block_size
    per_position = float(KV_TENSORS * kv_heads_per_device(cfg.n_kv_heads, tp) * cfg.head_dim
                         * Fraction(dtype_bytes(kv_dtype, "kv_dtype")))  # fmt: skip
    total = np.zeros(s.shape)
    for layer, count in cfg.layer_groups:
        blocks = -(-s // b)
        if layer.window is not None:
            w = layer.window
            blocks = np.where(s <= w, blocks, (np.minimum(s - w, b - 1) + w - 1) // b + 1)
        total += count * blocks * b * per_position
    return total


class Replica:
    """``tp`` devices serving one copy of ``cfg`` (decoder-only) with ``server``'s settings."""

    def __init__(self, cfg, hw, *, tp: int = 1, weight_dtype: str = "bf16", kv_dtype: str | None = None,
                 eff: Efficiency = ESTIMATE, server: ServerConfig = SERVE, act_dtype: str = "bf16",
                 group_size: int | None = None, group_bytes: float = 2.0):  # fmt: skip
        """``group_size`` / ``group_bytes``: grouped weight quantization, priced in the iteration time as by
        :func:`costmodel.decode_latency` (the memory budget counts the weights without their group scales)."""
        if not isinstance(server, ServerConfig):
            raise ValueError(f"server must be a ServerConfig; got {type(server).__name__}")
        self.hw = get_hardware(hw)
        kv_dtype = resolve_kv_dtype(kv_dtype, weight_dtype, act_dtype)
        self.step = StepModel(cfg, self.hw, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff,
                              group_size=group_size, group_bytes=group_bytes)  # fmt: skip
        self.cfg, self.tp = cfg, tp
        self.weight_dtype, self.kv_dtype = weight_dtype, kv_dtype
        self.server = server.resolve(self.hw, tp)
        device, headroom, reserve, weights, act = fixed_terms(
            cfg, self.hw, tp=tp, ep=1, weight_dtype=weight_dtype, act_dtype=act_dtype, server=self.server
        )
        self.kv_pool = device - headroom - reserve - weights - act  # bytes per device (<= 0: nothing fits)
        self._table: IterationTable | None = None

    @property
    def fits(self) -> bool:
        return self.kv_pool > 0

    def kv_need(self, prompt, output) -> np.ndarray:
        """Bytes of KV each request holds while admitted: its whole length, prompt + output - 1 positions
        (the last token is sampled, never stored), in whole blocks."""
        ctx = np.asarray(prompt, dtype=np.int64) + np.asarray(output, dtype=np.int64) - 1
        return paged_kv_array(self.cfg, ctx, kv_dtype=self.kv_dtype, tp=self.tp, block_size=self.server.block_size)

    def capacity(self, prompt: int, output: int) -> int:
        """Requests of these lengths whose KV fits at once (at most max_num_seqs)."""
        if not self.fits:
            return 0
        return int(min(self.server.max_num_seqs, self.kv_pool // float(self.kv_need(prompt, output))))

    def table(self, max_context: int) -> IterationTable:
        """The tabulated iteration time, covering at least ``max_context`` keys per decode (rebuilt larger
        when a longer workload comes)."""
        t = self._table
        if t is None or t.max_context < max_context:
            grow = 1 if t is None else 2  # grow geometrically when a longer workload comes
            self._table = IterationTable(
                self.step, max_tokens=self.server.max_num_batched_tokens,
                max_context=max(int(max_context), grow * (t.max_context if t else 1)),
            )  # fmt: skip
        return self._table

    def simulate(self, workload: Workload, *, clients: int | None = None, window=(0.1, 0.9)) -> SimResult:
        """Run the iteration-level simulator over ``workload`` (open loop, or ``clients`` closed-loop)."""
        if not self.fits:
            raise ValueError(f"{self.cfg.name} does not fit on {self.tp} x {self.hw.name}: no room for a KV cache")
        p, o = workload.prompt, workload.output
        table = self.table(int((p + o).max()))
        s = self.server
        return simulate(
            table, workload, max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
            kv_pool=float(self.kv_pool), kv_need=self.kv_need(p, o), clients=clients, window=window,
        )  # fmt: skip
