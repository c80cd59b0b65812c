"""What a serving engine does with a device's memory, term by term: the memory budget of a capacity plan.

    device memory = outside the utilization fraction   (1 - u)·M
                  + runtime reserve                    CUDA context, cuBLAS/NCCL buffers, CUDA graphs
                  + weights                            on this device (tensor/expert parallel share)
                  + activation peak                    the largest step: a prefill chunk of C tokens
                  + KV cache                           the batch's sequences, in whole blocks of b tokens
                  + KV pool left unused                what the KV pool could still hold (< 0: does not fit;
                                                       ``MemoryBudget.shortfall`` is then what is missing)

Every term is whole bytes, so the six add up to the device memory exactly. The KV pool (what vLLM calls the
KV cache memory) is u·M - runtime reserve - weights - activation peak.

Defaults follow vLLM (the engine most deployments start from), each an option of :class:`ServerConfig`:

- u = 0.9: vLLM's ``gpu_memory_utilization`` default.
- b = 16 tokens per block: vLLM's ``--block-size`` default (PagedAttention, Kwon et al. SOSP 2023).
- C = ``max_num_batched_tokens`` and the ``max_num_seqs`` cap on running sequences: vLLM's defaults
  (``EngineArgs.get_batch_defaults``): for ``vllm serve`` 8192 tokens and 1024 sequences on GPUs with at
  least 70 GiB that are not A100s, else 2048 and 256; for the offline ``LLM`` class 16384/1024, else
  8192/256. vLLM profiles the activation peak by running one dummy forward of C tokens over
  min(max_num_seqs, C) sequences and sampling from each; :func:`costmodel.memory.activation_peak_bytes`
  estimates that forward.
- runtime reserve: what is not PyTorch tensors (vLLM's ``non_torch_memory``: CUDA context, cuBLAS
  workspaces, NCCL buffers with tp > 1), measured by vLLM at 1.79 GiB on one H100 and 3.58 GiB per device
  with tp = 2 (Llama-3-8B; vllm-project/vllm PR #10511's log), plus CUDA graphs, which vLLM's start-up log
  puts at "additional 1~3 GiB memory per GPU" (we take 1 GiB; recent vLLM counts them inside u, as here).
  Other vendors' runtimes (ROCm/RCCL, XLA on TPUs) hold the same kinds of buffers; the same default is used
  for every chip (``--runtime-reserve-gib`` sets your own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from .checks import bounded_int, nonneg_int, one_of, positive_int, show
from .config import ModelConfig, check_cfg, resolve_kv_dtype
from .hardware import GIB, Hardware, get_hardware
from .memory import BLOCK_SIZE, activation_peak_bytes, paged_kv_bytes, weight_bytes
from .parallel import check_ep, check_tp

MEMORY_UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization
MIN_MEMORY_UTILIZATION = 0.01  # below 1% of a device no model fits; also keeps every printed size sane
LARGE_DEVICE_BYTES = 70 * GIB  # vLLM's threshold for its larger batch defaults (A100s excluded by name)
# (max_num_batched_tokens, max_num_seqs) by vLLM usage context and device class (EngineArgs.get_batch_defaults)
BATCH_DEFAULTS = {
    ("serve", True): (8192, 1024),
    ("serve", False): (2048, 256),
    ("offline", True): (16384, 1024),
    ("offline", False): (8192, 256),
}
USAGES = ("serve", "offline")
# The most tokens one iteration may schedule (max_num_batched_tokens, and so max_num_seqs): the serving model
# tabulates the iteration time at every token count up to it, so its cost grows with it. 8x vLLM's largest
# default; long-context deployments that chunk their prefills stay far below it.
MAX_BATCHED_TOKENS = 65536
NON_TORCH_BYTES = round(1.79 * GIB)  # vLLM PR #10511: Llama-3-8B, one H100, non_torch_memory
NON_TORCH_TP_BYTES = round(3.58 * GIB)  # the same with tp = 2 (NCCL buffers), per device
CUDA_GRAPH_BYTES = GIB  # vLLM: "CUDA graphs can take additional 1~3 GiB memory per GPU" (the low end)


def is_large_device(hw: Hardware) -> bool:
    """vLLM's test for its larger defaults: at least 70 GiB and not an A100."""
    return hw.memory_bytes >= LARGE_DEVICE_BYTES and "a100" not in f"{hw.name} {hw.label}".lower()


def default_runtime_reserve(tp: int) -> int:
    """Bytes per device outside tensors: non-torch memory (1.79 GiB, 3.58 GiB with tp > 1) + 1 GiB of CUDA
    graphs."""
    return (NON_TORCH_BYTES if positive_int("tp", tp) == 1 else NON_TORCH_TP_BYTES) + CUDA_GRAPH_BYTES


@dataclass(frozen=True)
class ServerConfig:
    """A serving engine's memory and batching settings (vLLM's names). ``None`` means vLLM's default for
    the device (see the module docstring); :meth:`resolve` fills them in.

    memory_utilization: fraction u of device memory the engine may use, in [0.01, 1].
    block_size: tokens per KV block b.  max_num_batched_tokens: tokens per iteration C (the prefill chunk).
    max_num_seqs: the most sequences running at once (both at most MAX_BATCHED_TOKENS, 65536).
    runtime_reserve_bytes: bytes per device outside tensors.  usage: "serve" (an API server, ``vllm serve``)
    or "offline" (vLLM's ``LLM`` class defaults).
    """

    memory_utilization: float = MEMORY_UTILIZATION
    block_size: int = BLOCK_SIZE
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    runtime_reserve_bytes: int | None = None
    usage: str = "serve"

    def __post_init__(self):
        u = self.memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not MIN_MEMORY_UTILIZATION <= u <= 1:
            raise ValueError(f"memory_utilization must be a number in [{MIN_MEMORY_UTILIZATION}, 1]; got {show(u)}")
        object.__setattr__(self, "memory_utilization", float(u))
        positive_int("block_size", self.block_size)
        for name in ("max_num_batched_tokens", "max_num_seqs"):
            if getattr(self, name) is not None:
                bounded_int(name, getattr(self, name), MAX_BATCHED_TOKENS)
        if self.runtime_reserve_bytes is not None:
            nonneg_int("runtime_reserve_bytes", self.runtime_reserve_bytes)
        one_of("usage", self.usage, USAGES)
        if None not in (self.max_num_batched_tokens, self.max_num_seqs):
            _check_budget(self.max_num_batched_tokens, self.max_num_seqs)

    def resolve(self, hw, tp: int = 1) -> ServerConfig:
        """Every default filled in for ``hw`` and ``tp``."""
        hw = get_hardware(hw)
        tokens, seqs = BATCH_DEFAULTS[(self.usage, is_large_device(hw))]
        out = replace(
            self,
            max_num_batched_tokens=tokens if self.max_num_batched_tokens is None else self.max_num_batched_tokens,
            max_num_seqs=seqs if self.max_num_seqs is None else self.max_num_seqs,
            runtime_reserve_bytes=(
                default_runtime_reserve(tp) if self.runtime_reserve_bytes is None else self.runtime_reserve_bytes
            ),
        )
        _check_budget(out.max_num_batched_tokens, out.max_num_seqs)
        return out


def _check_budget(tokens: int, seqs: int) -> None:
    if tokens < seqs:  # vLLM refuses the same: every running sequence needs a token in a decode step
        raise ValueError(
            f"max_num_batched_tokens ({tokens}) must be at least max_num_seqs ({seqs}): a decode step gives "
            "every running sequence one token"
        )


SERVE = ServerConfig()

TERMS = ("headroom", "runtime_reserve", "weights", "activations", "kv_cache", "kv_free")


@dataclass(frozen=True)
class MemoryBudget:
    """One device's memory, whole bytes per term (see the module docstring); the terms sum to ``device``."""

    device: int
    headroom: int  # outside memory_utilization
    runtime_reserve: int
    weights: int
    activations: int  # peak of the largest prefill chunk
    kv_cache: int  # the evaluated batch, in whole blocks
    kv_free: int  # KV pool left unused (negative: the batch does not fit)

    @property
    def usable(self) -> int:
        return self.device - self.headroom

    @property
    def kv_pool(self) -> int:
        """Bytes the engine gives the KV cache: usable - runtime reserve - weights - activation peak."""
        return self.usable - self.runtime_reserve - self.weights - self.activations

    @property
    def used(self) -> int:
        return self.runtime_reserve + self.weights + self.activations + self.kv_cache

    @property
    def fits(self) -> bool:
        return self.kv_free >= 0

    @property
    def shortfall(self) -> int:
        """Bytes missing when the batch does not fit (-kv_free), else 0."""
        return max(-self.kv_free, 0)

    def terms(self) -> dict[str, int]:
        return {t: getattr(self, t) for t in TERMS}


def whole_bytes(x) -> int:
    """Bytes rounded up to a whole byte (int4 weights count half bytes)."""
    return math.ceil(Fraction(x))


def fixed_terms(cfg: ModelConfig, hw, *, tp: int, ep: int, weight_dtype: str, act_dtype: str,
                server: ServerConfig) -> tuple[int, int, int, int, int]:
    """(device, headroom, runtime reserve, weights, activation peak) in bytes on one device; ``server``
    resolved."""  # fmt: skip
    hw = get_hardware(hw)
    tp, ep = check_tp(check_cfg(cfg), tp), check_ep(cfg, ep)
    device = hw.memory_bytes
    usable = math.floor(Fraction(device) * Fraction(server.memory_utilization))
    chunk = server.max_num_batched_tokens
    act = activation_peak_bytes(cfg, tokens=chunk, logit_rows=min(server.max_num_seqs, chunk), act_dtype=act_dtype,
                                tp=tp)  # fmt: skip
    weights = whole_bytes(weight_bytes(cfg, weight_dtype, tp=tp, ep=ep))
    return device, device - usable, server.runtime_reserve_bytes, weights, whole_bytes(act)


def memory_budget(
    cfg: ModelConfig,
    hw,
    *,
    batch: int,
    context: int,
    tp: int = 1,
    ep: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str = "bf16",
    encoder_len: int | None = None,
    server: ServerConfig = SERVE,
) -> MemoryBudget:
    """The budget of one device serving ``batch`` sequences (0 allowed) of ``context`` tokens
    (ceil(batch/ep) of them on each of the ep expert-parallel groups), KV paged in ``server.block_size``
    blocks."""
    if not isinstance(server, ServerConfig):
        raise ValueError(f"server must be a ServerConfig; got {type(server).__name__}")
    b = nonneg_int("batch", batch)
    server = server.resolve(hw, tp)
    device, headroom, reserve, weights, act = fixed_terms(
        cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, act_dtype=act_dtype, server=server
    )
    kv_dtype = resolve_kv_dtype(kv_dtype, weight_dtype, act_dtype)
    per_seq = paged_kv_bytes(cfg, batch=1, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len,
                             block_size=server.block_size)  # fmt: skip
    kv = whole_bytes(per_seq * -(-b // ep))
    free = device - headroom - reserve - weights - act - kv
    return MemoryBudget(device, headroom, reserve, weights, act, kv, free)
