"""Bytes: weights by dtype (with optional quantization scales), KV cache (its own dtype), activations.

KV cache (Pope et al. 2022; Ainslie et al. 2023): per layer and sequence, K and V each hold S_layer·K·Dh
elements, S_layer = context on a full-attention layer and min(context, W) on a sliding one, summed over the
layers. The GQA paper's saving is exactly N/K.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .config import ModelConfig, as_number, check_cfg, dtype_bytes, positive_int, show
from .layers import Layer
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
    ep: int = 1,
):
    """Bytes of the weights on one of ``tp`` x ``ep`` devices: params·bytes(dtype), plus, for quantized weights
    with ``group_size``, one ``scale_dtype`` scale per group of ``group_size`` values in each tensor (e.g.
    GPTQ/AWQ int4 with group 128 and fp16 scales adds 2/128 byte per weight). int4 counts 1/2 byte exactly.
    ``ep`` > 1 places E/ep whole experts on each device (costmodel.parallel)."""
    per_elem = dtype_bytes(dtype, "weight_dtype")
    counts = per_device_param_breakdown(cfg, tp, ep=ep)
    total = Fraction(sum(counts.values())) * per_elem
    if group_size is not None:
        g = positive_int("group_size", group_size)
        total += sum(math.ceil(n / g) for n in counts.values()) * dtype_bytes(scale_dtype, "scale_dtype")
    return as_number(total)


def kv_cache_len(cfg: ModelConfig, context: int, *, layer: Layer | None = None) -> int:
    """Positions one decoder layer holds per sequence: ``context`` on a full-attention layer,
    min(context, W) on a sliding one. ``layer``: one of ``cfg.layers`` (needed when they differ)."""
    check_cfg(cfg)
    context = positive_int("context", context)
    if layer is None:
        if len({lay.window for lay in cfg.layers}) > 1:
            raise ValueError(
                f"layer must be given: the attention of {cfg.name!r} differs by layer ({cfg.layer_pattern})"
            )
        layer = cfg.layers[0]
    elif layer not in cfg.layers:
        raise ValueError(f"layer must be one of cfg.layers; got {show(layer)}")
    return layer.positions(context)


def kv_bytes_per_token(cfg: ModelConfig, kv_dtype: str = "bf16", *, tp: int = 1):
    """Self-attention KV bytes per cached token over all decoder layers: 2·L·K_dev·Dh·bytes (a sliding
    layer stops growing at W tokens; :func:`kv_cache_bytes` counts that exactly).
    Llama-2-7B fp16: 2·32·32·128·2 = 524,288; Llama-2-70B: 2·80·8·128·2 = 327,680 (their config.json files)."""
    check_tp(check_cfg(cfg), tp)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    return as_number(KV_TENSORS * cfg.n_layers * k_dev * cfg.head_dim * dtype_bytes(kv_dtype, "kv_dtype"))


CROSS_ATTENTION = "cross-attention"
BLOCK_SIZE = 16  # tokens per KV block: vLLM's default --block-size (PagedAttention, Kwon et al. 2023)


def kv_blocks(layer: Layer, context: int, block_size: int = BLOCK_SIZE) -> int:
    """KV blocks of ``block_size`` positions one layer holds for a sequence that has reached ``context``
    positions, when the cache is paged (PagedAttention, Kwon et al. SOSP 2023; vLLM):

    - full attention: ceil(S/b);
    - sliding window W: ceil(S/b) while S <= W; after that the blocks the last W positions span, at their
      most so far: floor((min(S - W, b - 1) + W - 1)/b) + 1 (vLLM frees a block once every position in it
      left the window, ``SlidingWindowManager.remove_skipped_blocks``; W positions starting r into a block
      span floor((r + W - 1)/b) + 1 blocks, and by context S the offset r has taken every value up to
      min(S - W, b - 1)). Monotone in S: a sequence never needs fewer blocks than it once held.

    W = 4096, b = 16: 256 blocks at S = 4096, 257 from S = 4097 on (a window that starts mid-block).
    """
    s, b = positive_int("context", context), positive_int("block_size", block_size)
    if layer.window is None or s <= layer.window:
        return -(-s // b)
    w = layer.window
    return (min(s - w, b - 1) + w - 1) // b + 1


def _kv_by_kind(cfg, batch, context, kv_dtype, tp, encoder_len, positions) -> dict:
    """Bytes per layer kind on one of ``tp`` devices, ``positions(layer, S)`` positions per layer."""
    check_tp(check_cfg(cfg), tp)
    b, context = positive_int("batch", batch), positive_int("context", context)
    per_position = KV_TENSORS * b * kv_heads_per_device(cfg.n_kv_heads, tp) * cfg.head_dim
    per_position *= dtype_bytes(kv_dtype, "kv_dtype")
    out: dict = {}
    for layer, count in cfg.layer_groups:
        label = layer.attention_label
        out[label] = out.get(label, 0) + count * positions(layer, context) * per_position
    if cfg.is_encoder_decoder:
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else context)
        out[CROSS_ATTENTION] = cfg.n_layers * positions(Layer("full", None, "dense"), s_enc) * per_position
    return {k: as_number(v) for k, v in out.items()}


def kv_cache_breakdown(
    cfg: ModelConfig,
    *,
    batch: int,
    context: int,
    kv_dtype: str = "bf16",
    tp: int = 1,
    encoder_len: int | None = None,
) -> dict:
    """KV cache on one of ``tp`` devices by layer kind: {"full": bytes, "sliding (W=4096)": bytes, ...,
    "cross-attention": bytes (encoder-decoder)}. Each kind: 2·L_kind·B·S_kind·K_dev·Dh·bytes with
    S_kind = context (full) or min(context, W) (sliding), K_dev = max(K/tp, 1); the cross-attention cache
    holds ``encoder_len`` (default ``context``) source positions per decoder layer."""
    return _kv_by_kind(cfg, batch, context, kv_dtype, tp, encoder_len, lambda layer, s: layer.positions(s))


def paged_kv_breakdown(
    cfg: ModelConfig,
    *,
    batch: int,
    context: int,
    kv_dtype: str = "bf16",
    tp: int = 1,
    encoder_len: int | None = None,
    block_size: int = BLOCK_SIZE,
) -> dict:
    """:func:`kv_cache_breakdown` with each layer's positions rounded up to whole blocks of ``block_size``
    (:func:`kv_blocks` · b positions per layer and sequence): what a paged server allocates. The
    cross-attention cache is paged the same way over ``encoder_len`` positions."""
    b = positive_int("block_size", block_size)
    return _kv_by_kind(cfg, batch, context, kv_dtype, tp, encoder_len, lambda layer, s: kv_blocks(layer, s, b) * b)


def kv_cache_bytes(
    cfg: ModelConfig,
    *,
    batch: int,
    context: int,
    kv_dtype: str = "bf16",
    tp: int = 1,
    encoder_len: int | None = None,
):
    """KV cache on one of ``tp`` devices: the sum over layers of 2·B·S_layer·K_dev·Dh·bytes, S_layer =
    context on full-attention layers and min(context, W) on sliding ones (K_dev = max(K/tp, 1)); see
    :func:`kv_cache_breakdown` for the terms. Attention sinks hold no KV.

    Encoder-decoder models add each decoder layer's cross-attention cache over ``encoder_len`` (default:
    ``context``) source positions, same head layout.
    """
    parts = kv_cache_breakdown(
        cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len
    )
    return as_number(sum(Fraction(v) for v in parts.values()))


def paged_kv_bytes(
    cfg: ModelConfig,
    *,
    batch: int,
    context: int,
    kv_dtype: str = "bf16",
    tp: int = 1,
    encoder_len: int | None = None,
    block_size: int = BLOCK_SIZE,
):
    """KV cache on one of ``tp`` devices in whole blocks (the sum of :func:`paged_kv_breakdown`)."""
    parts = paged_kv_breakdown(
        cfg, batch=batch, context=context, kv_dtype=kv_dtype, tp=tp, encoder_len=encoder_len, block_size=block_size
    )
    return as_number(sum(Fraction(v) for v in parts.values()))


def activation_elements_per_token(cfg: ModelConfig, *, tp: int = 1) -> int:
    """Live activation elements per token inside one layer (estimate), on one of ``tp`` devices:
    residual x and its norm (2D), q, k, v ((N + 2K_dev)·Dh / split), attention output (N·Dh/tp),
    FFN hidden ((n_matrices - 1)·F/tp: gate and up, or up; a MoE layer: the k routed and the shared experts'
    hidden, (n_matrices - 1)·(k·F_e + n_shared·F_s)/tp, plus E router logits; the larger of the layer kinds)
    and the FFN output (D). Attention scores are not stored (fused/flash attention); layers run one after
    another."""
    tp = check_tp(check_cfg(cfg), tp)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    n_dev = cfg.n_heads // tp
    qkv = (n_dev + 2 * k_dev) * cfg.head_dim
    n_in = cfg.variant.n_matrices - 1
    hidden = []
    if cfg.n_moe_layers < cfg.n_layers or cfg.is_encoder_decoder:
        hidden.append(n_in * cfg.d_ff // tp)
    if cfg.moe is not None:
        moe = cfg.moe
        hidden.append(n_in * (moe.top_k * moe.d_ff + moe.n_shared * moe.shared_width) // tp + moe.n_experts)
    return 2 * cfg.d_model + qkv + n_dev * cfg.head_dim + max(hidden) + cfg.d_model


def workspace_bytes(cfg: ModelConfig, *, batch: int, tokens: int = 1, act_dtype: str = "bf16", tp: int = 1):
    """Activation + workspace estimate for a forward of ``tokens`` new tokens per sequence:
    B·T·activation_elements_per_token·bytes(act_dtype) + B·ceil(V/tp)·LOGITS_BYTES (last-token logits)."""
    b, t = positive_int("batch", batch), positive_int("tokens", tokens)
    tp = check_tp(check_cfg(cfg), tp)
    acts = Fraction(b * t * activation_elements_per_token(cfg, tp=tp)) * dtype_bytes(act_dtype, "act_dtype")
    return as_number(acts + b * -(-cfg.vocab_size // tp) * LOGITS_BYTES)


def activation_peak_bytes(cfg: ModelConfig, *, tokens: int, logit_rows: int, act_dtype: str = "bf16", tp: int = 1):
    """Activation peak of one forward over ``tokens`` new tokens (a prefill chunk of vLLM's
    ``max_num_batched_tokens``, the largest step a server runs), on one of ``tp`` devices:
    tokens·activation_elements_per_token·bytes(act_dtype) + logit_rows·ceil(V/tp)·LOGITS_BYTES, the fp32
    logits of the ``logit_rows`` sequences that sample (vLLM profiles its dummy forward with
    min(max_num_seqs, tokens) sequences and samples from each)."""
    t, rows = positive_int("tokens", tokens), positive_int("logit_rows", logit_rows)
    tp = check_tp(check_cfg(cfg), tp)
    acts = Fraction(t * activation_elements_per_token(cfg, tp=tp)) * dtype_bytes(act_dtype, "act_dtype")
    return as_number(acts + rows * -(-cfg.vocab_size // tp) * LOGITS_BYTES)
