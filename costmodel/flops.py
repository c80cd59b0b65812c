"""Forward FLOPs per component: prefill (T tokens, the causal triangle counted exactly), one decode step at
context S, training (backward = 2x forward). FLOPs = 2 x multiply-accumulates for every matrix product.

Matrix products (the terms XLA's cost analysis also counts as 2·M·N·K):
    q, k, v, o projections   2·tokens·D·N·Dh, 2·tokens·D·K·Dh (x2), 2·tokens·N·Dh·D
    QK^T and P·V             2·B·N·Dh·pairs each, pairs = (query, key) pairs the mask allows
    FFN                      2·tokens·D·F per matrix (3 matrices gated, 2 ungated)
    lm_head                  2·V·D per token; the embedding lookup is 0 FLOPs
Elementwise terms are kept apart under their own names so a comparison can include or drop them; each counts
1 FLOP per elementary add/multiply/divide/max per element and 0 for exp/erf/tanh (XLA reports those as
"transcendentals"):
    "softmax"  SOFTMAX_FLOPS_PER_SCORE per allowed score: scale, running max, subtract, sum, divide
    "act"      ACTIVATION_FLOPS[activation] per hidden element, plus GATE_MULTIPLY_FLOPS when gated
    "bias"     1 per output element of every biased projection
    "norm"     NORM_FLOPS_PER_ELEMENT per element of each norm's input
    "residual" RESIDUAL_FLOPS_PER_ELEMENT per element, one add per sub-block
Sources: Kaplan et al. 2020 (arXiv:2001.08361) Table 1 for 2·N per token; Chinchilla (Hoffmann et al. 2022)
App. F for the attention terms; backward = 2x forward (Kaplan et al. 2020, Sec. 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, check_cfg, positive_int, show
from .flops_blocks import (  # noqa: F401  (re-exported: the public home of the block functions)
    ACTIVATION_FLOPS,
    BACKWARD_FORWARD_RATIO,
    GATE_MULTIPLY_FLOPS,
    MATMUL_TERMS,
    NORM_FLOPS_PER_ELEMENT,
    RESIDUAL_FLOPS_PER_ELEMENT,
    SOFTMAX_FLOPS_PER_SCORE,
    VARIANT_ACTIVATION_FLOPS,
    activation_flops,
    attention_core_flops,
    attention_pairs,
    attention_projection_flops,
    ffn_flops,
    linear_flops,
    norm_flops,
)
from .layers import Layer
from .moe import moe_flops


def _attn_block(cfg, prefix, *, batch, q_len, kv_len, causal, window, kv_proj=True) -> dict[str, int]:
    tokens = batch * q_len
    proj = attention_projection_flops(
        tokens,
        cfg.d_model,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.head_dim,
        qkv_bias=cfg.qkv_bias,
        out_bias=cfg.out_bias,
        kv=kv_proj,
    )
    core = attention_core_flops(batch, q_len, kv_len, cfg.n_heads, cfg.head_dim, causal=causal, window=window)
    out = {f"{prefix}/{k}": v for k, v in {**proj, **core}.items()}
    if cfg.qk_norm and prefix == "attn":  # RMSNorm over Dh of every q head and k head
        heads = cfg.n_heads + cfg.n_kv_heads
        out[f"{prefix}/qk_norm"] = NORM_FLOPS_PER_ELEMENT[cfg.norm] * tokens * heads * cfg.head_dim
    if cfg.attn_sinks and prefix == "attn":  # the sink joins each softmax denominator: 1 add per query head
        out[f"{prefix}/sinks"] = tokens * cfg.n_heads
    return out


def _pick_layer(cfg: ModelConfig, layer: Layer | None) -> Layer:
    if layer is None:
        if not cfg.is_uniform:
            raise ValueError(
                f"layer must be given: the layers of {cfg.name!r} differ ({cfg.layer_pattern}); "
                "pass one of cfg.layers (forward_flops sums over all of them)"
            )
        return cfg.layers[0]
    if layer not in cfg.layers:
        raise ValueError(f"layer must be one of cfg.layers; got {show(layer)}")
    return layer


def layer_flops(
    cfg: ModelConfig,
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    stack: str = "decoder",
    encoder_len: int | None = None,
    layer: Layer | None = None,
) -> dict[str, int]:
    """FLOPs of ONE layer, keys "attn/q" ... "attn/softmax", "cross_attn/..." (decoder of an encoder-decoder:
    K/V of the encoder output are cached, so only q, o and the core), "ffn/..." (dense) or "moe/..." (a MoE
    block, :func:`moe_flops`), "norm", "residual".

    ``layer``: which decoder layer (one of ``cfg.layers``; needed when they differ). ``stack="encoder"``
    gives a bidirectional (non-causal) encoder layer with q_len = kv_len.
    """
    check_cfg(cfg)
    b, t = positive_int("batch", batch), positive_int("q_len", q_len)
    if stack not in ("decoder", "encoder"):
        raise ValueError(f"stack must be 'decoder' or 'encoder'; got {show(stack)}")
    enc = stack == "encoder"
    lay = Layer("full", None, "dense") if enc else _pick_layer(cfg, layer)
    out = _attn_block(cfg, "attn", batch=b, q_len=t, kv_len=kv_len, causal=not enc, window=lay.window)
    n_blocks = 2
    if cfg.is_encoder_decoder and not enc:
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else kv_len)
        out.update(
            _attn_block(
                cfg, "cross_attn", batch=b, q_len=t, kv_len=s_enc, causal=False, window=None, kv_proj=False
            )
        )
        n_blocks = 3
    if lay.ffn == "moe":
        out.update({f"moe/{k}": v for k, v in moe_flops(cfg, b * t).items()})
    else:
        ffn = ffn_flops(b * t, cfg.d_model, cfg.d_ff, cfg.ffn, bias=cfg.ffn_bias)
        out.update({f"ffn/{k}": v for k, v in ffn.items()})
    n_norms = n_blocks + (2 if cfg.post_norms else 0)
    out["norm"] = n_norms * norm_flops(b * t, cfg.d_model, cfg.norm)
    out["residual"] = n_blocks * RESIDUAL_FLOPS_PER_ELEMENT * b * t * cfg.d_model
    return out


@dataclass(frozen=True)
class FlopsBreakdown:
    """FLOPs by component (totals over layers), slash keys as in param_breakdown; rows() for tables."""

    items: dict
    phase: str

    @property
    def total(self) -> int:
        return sum(self.items.values())

    @property
    def matmul(self) -> int:
        """Matrix-product FLOPs only (the leaf names in MATMUL_TERMS)."""
        return sum(v for k, v in self.items.items() if k.rsplit("/", 1)[-1] in MATMUL_TERMS)

    @property
    def elementwise(self) -> int:
        return self.total - self.matmul

    def rows(self) -> list[dict]:
        return [
            {"component": k, "flops": v, "share": v / self.total if self.total else 0.0}
            for k, v in self.items.items()
        ]


def _scaled(prefix: str, per_layer: dict, n: int, into: dict | None = None) -> dict[str, int]:
    out = {} if into is None else into
    for k, v in per_layer.items():
        out[f"{prefix}layers/{k}"] = out.get(f"{prefix}layers/{k}", 0) + n * v
    return out


def forward_flops(
    cfg: ModelConfig,
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    logits: str = "all",
    encoder_len: int | None = None,
    phase: str = "forward",
) -> FlopsBreakdown:
    """Decoder(-only) forward over ``q_len`` new tokens attending ``kv_len`` keys (keys include the new ones).

    logits: "all" (training: lm_head on every token) or "last" (generation: one token per sequence).
    Encoder-decoder models: only the decoder here (see :func:`prefill_flops` for the encoder).
    """
    check_cfg(cfg)
    if logits not in ("all", "last"):
        raise ValueError(f"logits must be 'all' or 'last'; got {show(logits)}")
    b = positive_int("batch", batch)
    prefix = "decoder/" if cfg.is_encoder_decoder else ""
    items = {"embed": 0}
    for lay, count in cfg.layer_groups:  # a sum over layers: one term per distinct layer
        per_layer = layer_flops(cfg, batch=b, q_len=q_len, kv_len=kv_len, encoder_len=encoder_len, layer=lay)
        _scaled(prefix, per_layer, count, into=items)
    items[f"{prefix}final_norm"] = norm_flops(b * q_len, cfg.d_model, cfg.norm)
    items["lm_head"] = linear_flops(b * (q_len if logits == "all" else 1), cfg.d_model, cfg.vocab_size)
    return FlopsBreakdown(items, phase)


def encoder_flops(cfg: ModelConfig, *, batch: int, src_len: int) -> dict[str, int]:
    """Encoder stack over ``src_len`` tokens plus each decoder layer's cross-attention K/V projection of its
    output (computed once per sequence and cached)."""
    if not check_cfg(cfg).is_encoder_decoder:
        raise ValueError(f"cfg must be an encoder-decoder model (n_encoder_layers > 0); got {cfg.name!r}")
    b, s = positive_int("batch", batch), positive_int("src_len", src_len)
    items = _scaled(
        "encoder/", layer_flops(cfg, batch=b, q_len=s, kv_len=s, stack="encoder"), cfg.n_encoder_layers
    )
    items["encoder/final_norm"] = norm_flops(b * s, cfg.d_model, cfg.norm)
    kv_proj = 2 * linear_flops(b * s, cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
    items["decoder/layers/cross_attn/kv_cache"] = cfg.n_layers * kv_proj
    return items


def prefill_flops(cfg: ModelConfig, *, batch: int, prompt_len: int) -> FlopsBreakdown:
    """Process a ``prompt_len`` prompt and produce the first token's logits (lm_head on the last token only).

    Encoder-decoder: the encoder over the prompt, the cross K/V, and the decoder's first step (T = 1).
    """
    if check_cfg(cfg).is_encoder_decoder:
        dec = forward_flops(cfg, batch=batch, q_len=1, kv_len=1, logits="last", encoder_len=prompt_len)
        items = {**encoder_flops(cfg, batch=batch, src_len=prompt_len), **dec.items}
        items["decoder/layers/cross_attn/k"] = items.pop("decoder/layers/cross_attn/kv_cache") // 2
        items["decoder/layers/cross_attn/v"] = items["decoder/layers/cross_attn/k"]
        return FlopsBreakdown(items, "prefill")
    return forward_flops(
        cfg, batch=batch, q_len=prompt_len, kv_len=prompt_len, logits="last", phase="prefill"
    )


def decode_flops(
    cfg: ModelConfig, *, batch: int, context: int, encoder_len: int | None = None
) -> FlopsBreakdown:
    """One decode step: one new token per sequence attending ``context`` keys (the cache plus itself)."""
    return forward_flops(
        cfg, batch=batch, q_len=1, kv_len=context, logits="last", encoder_len=encoder_len, phase="decode"
    )


def training_flops(cfg: ModelConfig, *, batch: int, seq_len: int) -> int:
    """Forward (logits on every token) x (1 + BACKWARD_FORWARD_RATIO) for a decoder-only model."""
    if check_cfg(cfg).is_encoder_decoder:
        raise ValueError("training_flops supports decoder-only models; got an encoder-decoder cfg")
    fwd = forward_flops(cfg, batch=batch, q_len=seq_len, kv_len=seq_len, logits="all").total
    return (1 + BACKWARD_FORWARD_RATIO) * fwd
