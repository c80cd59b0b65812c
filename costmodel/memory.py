"""Bytes: weights by dtype (with optional quantization scales), KV cache (its own dtype), activations.

KV cache (Pope et al. 2022; Ainslie et al. 2023): per layer and sequence, K and V each hold S_cache·K·Dh
elements, S_cache = min(context, sliding_window). The GQA paper's saving is exactly N/K.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .config import ModelConfig, as_number, dtype_bytes, positive_int
from .parallel import check_tp, kv_heads_per_device, per_device_param_breakdown

KV_TENSORS = 2  # K and V
LOGITS_BYTES = 4  # logits are kept in fp32 for sampling


def weight_bytes(
    cfg: ModelConfig,
    dtype: str = "bf16",
    *,
    tp: int = 1,
    group_size: int | None = None,
    scale_dtype: str = "fp16",
):
    """Bytes of the weights on one of ``tp`` devices: params·bytes(dtype), plus, for quantized weights with
    ``group_size``, one ``scale_dtype`` scale per group of ``group_size`` values in each tensor (e.g. GPTQ/AWQ
    int4 with group 128 and fp16 scales adds 2/128 byte per weight). int4 counts 1/2 byte exactly."""
    per_elem = dtype_bytes(dtype, "weight_dtype")
    counts = per_device_param_breakdown(cfg, tp)
    total = Fraction(sum(counts.values())) * per_elem
    if group_size is not None:
        g = positive_int("group_size", group_size)
        total += sum(math.ceil(n / g) for n in counts.values()) * dtype_bytes(scale_dtype, "scale_dtype")
    return as_number(total)


def kv_cache_len(cfg: ModelConfig, context: int) -> int:
    """Positions held per sequence: min(context, sliding_window)."""
    context = positive_int("context", context)
    return context if cfg.sliding_window is None else min(context, cfg.sliding_window)


def kv_bytes_per_token(cfg: ModelConfig, kv_dtype: str = "bf16", *, tp: int = 1):
    """Self-attention KV bytes per cached token over all decoder layers: 2·L·K_dev·Dh·bytes.
    Llama-2-7B fp16: 2·32·32·128·2 = 524,288; Llama-2-70B: 2·80·8·128·2 = 327,680 (their config.json files)."""
    check_tp(cfg, tp)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    return as_number(KV_TENSORS * cfg.n_layers * k_dev * cfg.head_dim * dtype_bytes(kv_dtype, "kv_dtype"))


def kv_cache_bytes(
    cfg: ModelConfig,
    *,
    batch: int,
    context: int,
    kv_dtype: str = "bf16",
    tp: int = 1,
    encoder_len: int | None = None,
):
    """KV cache on one of ``tp`` devices: 2·L·B·S_cache·K_dev·Dh·bytes (K_dev = max(K/tp, 1)).

    Encoder-decoder models add each decoder layer's cross-attention cache over ``encoder_len`` (default:
    ``context``) source positions, same head layout.
    """
    check_tp(cfg, tp)
    b = positive_int("batch", batch)
    positions = kv_cache_len(cfg, context)
    if cfg.is_encoder_decoder:
        positions += positive_int("encoder_len", encoder_len if encoder_len is not None else context)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    elems = KV_TENSORS * cfg.n_layers * b * positions * k_dev * cfg.head_dim
    return as_number(elems * dtype_bytes(kv_dtype, "kv_dtype"))


def activation_elements_per_token(cfg: ModelConfig, *, tp: int = 1) -> int:
    """Live activation elements per token inside one layer (estimate), on one of ``tp`` devices:
    residual x and its norm (2D), q, k, v ((N + 2K_dev)·Dh / split), attention output (N·Dh/tp),
    FFN hidden ((n_matrices - 1)·F/tp: gate and up, or up) and the FFN output (D).
    Attention scores are not stored (fused/flash attention); layers run one after another."""
    tp = check_tp(cfg, tp)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    n_dev = cfg.n_heads // tp
    qkv = (n_dev + 2 * k_dev) * cfg.head_dim
    return (
        2 * cfg.d_model
        + qkv
        + n_dev * cfg.head_dim
        + (cfg.variant.n_matrices - 1) * cfg.d_ff // tp
        + cfg.d_model
    )


def workspace_bytes(cfg: ModelConfig, *, batch: int, tokens: int = 1, act_dtype: str = "bf16", tp: int = 1):
    """Activation + workspace estimate for a forward of ``tokens`` new tokens per sequence:
    B·T·activation_elements_per_token·bytes(act_dtype) + B·ceil(V/tp)·LOGITS_BYTES (last-token logits)."""
    b, t = positive_int("batch", batch), positive_int("tokens", tokens)
    tp = check_tp(cfg, tp)
    acts = Fraction(b * t * activation_elements_per_token(cfg, tp=tp)) * dtype_bytes(act_dtype, "act_dtype")
    return as_number(acts + b * -(-cfg.vocab_size // tp) * LOGITS_BYTES)
