"""glugqa's analytic cost model. Never imports JAX or the reference's NumPy ops.

Parameters, FLOPs, bytes (weights, KV cache, activations), roofline latency for prefill and decode,
tensor parallelism, capacity planning, sweeps and tradeoff tables for any (N, K, d_ff, hardware).
Formulas, derivations and sources: docs/cost-model.md.
"""

from .budget import MemoryBudget, ServerConfig, memory_budget
from .config import DTYPE_BYTES, DTYPES, ModelConfig, dtype_bytes
from .efficiency_file import dump_efficiency, load_efficiency, parse_efficiency
from .flops import (
    FlopsBreakdown,
    attention_core_flops,
    attention_pairs,
    attention_projection_flops,
    decode_flops,
    encoder_flops,
    ffn_flops,
    forward_flops,
    layer_flops,
    linear_flops,
    moe_flops,
    norm_flops,
    prefill_flops,
    training_flops,
)
from .hardware import HARDWARE, Hardware, get_hardware, load_hardware
from .latency import ESTIMATE, IDEAL, Efficiency, LatencyBreakdown, OpCost, decode_latency, prefill_latency
from .layers import Layer, MoE, RopeScaling
from .memory import (
    activation_peak_bytes,
    kv_blocks,
    kv_bytes_per_token,
    kv_cache_breakdown,
    kv_cache_bytes,
    paged_kv_bytes,
    weight_bytes,
    workspace_bytes,
)
from .models import MODELS, get_model
from .moe import expected_experts
from .parallel import (
    allreduce_time,
    alltoall_time,
    alpha_beta_time,
    check_ep,
    check_tp,
    collective_path,
    kv_heads_per_device,
    per_device_param_breakdown,
    ring_allreduce_bytes,
    ring_allreduce_latency,
)
from .params import (
    ACTIVE_CONVENTIONS,
    active_param_count,
    attention_param_breakdown,
    ffn_param_breakdown,
    matched_d_ff,
    moe_param_breakdown,
    param_breakdown,
    param_count,
)
from .plan import KVChoice, KVOption, Plan, choose_kv_heads, divisors, max_batch, max_context, plan
from .tables import FFNRow, GQARow, ffn_rows, gqa_rows

__all__ = [
    "ACTIVE_CONVENTIONS", "DTYPES", "DTYPE_BYTES", "ESTIMATE", "HARDWARE", "IDEAL", "MODELS",
    "SUPPORTED_MODEL_TYPES", "Efficiency", "FFNRow", "FlopsBreakdown", "GQARow", "Hardware", "KVChoice",
    "KVOption", "LatencyBreakdown", "Layer", "ModelConfig", "MoE", "OpCost", "Plan", "RopeScaling",
    "active_param_count", "allreduce_time", "alltoall_time", "alpha_beta_time", "check_ep", "expected_experts",
    "kv_cache_breakdown", "moe_flops", "moe_param_breakdown", "attention_core_flops", "attention_pairs",
    "attention_param_breakdown",
    "attention_projection_flops", "check_tp", "choose_kv_heads", "decode_flops", "decode_latency", "divisors",
    "dtype_bytes", "encoder_flops", "ffn_flops", "ffn_param_breakdown", "ffn_rows", "forward_flops",
    "get_hardware", "get_model", "gqa_rows", "kv_bytes_per_token", "kv_cache_bytes", "kv_heads_per_device",
    "layer_flops", "linear_flops", "load_hardware", "load_hf_config", "matched_d_ff", "max_batch", "norm_flops",
    "param_breakdown", "param_count", "per_device_param_breakdown", "plan", "prefill_flops", "prefill_latency",
    "training_flops", "weight_bytes", "workspace_bytes", "sweep_decode", "sweep_configs", "variant_arrays",
    "collective_path", "dump_efficiency", "load_efficiency", "parse_efficiency", "ring_allreduce_bytes",
    "ring_allreduce_latency",
    "MemoryBudget", "ServerConfig", "activation_peak_bytes", "kv_blocks", "max_context", "memory_budget",
    "paged_kv_bytes",
]  # fmt: skip

_LAZY_SWEEP = ("sweep_decode", "sweep_configs", "variant_arrays")  # need NumPy: loaded on first use
_LAZY_HF = ("load_hf_config", "SUPPORTED_MODEL_TYPES")  # JSON reading and the family table: on first use


def __getattr__(name: str):
    if name in _LAZY_HF:
        from . import hf

        return getattr(hf, name)
    if name in _LAZY_SWEEP:
        from . import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'costmodel' has no attribute {name!r}")
