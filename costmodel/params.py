"""Exact parameter counts: per-block formulas and the whole model's breakdown with slash keys.

Attention (Ainslie et al. 2023, GQA): W_q (D, N*Dh), W_k and W_v (D, K*Dh), W_o (N*Dh, D); biases
b_q (N*Dh), b_k, b_v (K*Dh), b_o (D). FFN (Shazeer 2020): ungated W_up (D, F), W_down (F, D); gated adds
W_gate (D, F); biases b_gate, b_up (F) and b_down (D). These are the shapes refimpl.init_attention_params
and refimpl.init_ffn_params allocate (tests/test_cost_vs_reference.py compares the counts).
"""

from __future__ import annotations

from refimpl.variants import get_variant

from .config import ModelConfig, positive_int

# weights of one norm layer per kind: RMSNorm has a scale (D); LayerNorm a scale and a shift (2D)
NORM_VECTORS = {"rmsnorm": 1, "layernorm": 2, "none": 0}


def attention_param_breakdown(
    d_model: int,
    n_heads: int,
    n_kv_heads: int,
    head_dim: int,
    *,
    qkv_bias: bool = False,
    out_bias: bool = False,
) -> dict[str, int]:
    """{"w_q": D*N*Dh, "w_k": D*K*Dh, "w_v": D*K*Dh, "w_o": N*Dh*D, "b_q": N*Dh, "b_k"/"b_v": K*Dh, "b_o": D}."""
    d, n, k, dh = (
        positive_int(a, v)
        for a, v in (
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("n_kv_heads", n_kv_heads),
            ("head_dim", head_dim),
        )
    )
    if n % k:
        raise ValueError(f"n_kv_heads must divide n_heads={n}; got n_kv_heads={k}")
    out = {"w_q": d * n * dh, "w_k": d * k * dh, "w_v": d * k * dh, "w_o": n * dh * d}
    if qkv_bias:
        out.update(b_q=n * dh, b_k=k * dh, b_v=k * dh)
    if out_bias:
        out["b_o"] = d
    return out


def ffn_param_breakdown(d_model: int, d_ff: int, variant: str, *, bias: bool = False) -> dict[str, int]:
    """{"w_gate": D*F (gated only), "w_up": D*F, "w_down": F*D} plus "b_*" (F, F, D) when ``bias``."""
    d, f = positive_int("d_model", d_model), positive_int("d_ff", d_ff)
    v = get_variant(variant)
    sizes = {"w_gate": d * f, "w_up": d * f, "w_down": f * d}
    bias_sizes = {"w_gate": ("b_gate", f), "w_up": ("b_up", f), "w_down": ("b_down", d)}
    out = {w: sizes[w] for w in v.param_names}
    if bias:
        out.update(bias_sizes[w] for w in v.param_names)
    return out


def matched_d_ff(d_ff: int, variant: str, *, multiple_of: int = 1) -> int:
    """Shazeer 2020's matched width: gated variants get round(2F/3) (3072 -> 2048), rounded up to
    ``multiple_of`` (LLaMA: 256); ungated keep F. Same rule as refimpl.matched_d_ff (tested equal)."""
    d_ff, multiple_of = positive_int("d_ff", d_ff), positive_int("multiple_of", multiple_of)
    if not get_variant(variant).gated:
        return d_ff
    two_thirds = (2 * d_ff + 1) // 3  # round(2F/3) in exact integers
    return -(-two_thirds // multiple_of) * multiple_of


def _stack(prefix: str, cfg: ModelConfig, n_layers: int, *, cross: bool) -> dict[str, int]:
    """Totals over ``n_layers`` identical layers; ``cross`` adds decoder cross-attention (same head layout)."""
    attn = attention_param_breakdown(
        cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, qkv_bias=cfg.qkv_bias, out_bias=cfg.out_bias
    )
    ffn = ffn_param_breakdown(cfg.d_model, cfg.d_ff, cfg.ffn, bias=cfg.ffn_bias)
    norms_per_layer = 3 if cross else 2  # pre-norm before each sub-block
    out = {f"{prefix}layers/attn/{k}": n_layers * v for k, v in attn.items()}
    if cross:
        out.update({f"{prefix}layers/cross_attn/{k}": n_layers * v for k, v in attn.items()})
    out.update({f"{prefix}layers/ffn/{k}": n_layers * v for k, v in ffn.items()})
    norm = NORM_VECTORS[cfg.norm] * cfg.d_model
    if norm:
        out[f"{prefix}layers/norm"] = n_layers * norms_per_layer * norm
        out[f"{prefix}final_norm"] = norm
    if cfg.position == "relative":  # T5: one (buckets, N) table in the first layer's self-attention
        out[f"{prefix}rel_bias"] = cfg.relative_buckets * cfg.n_heads
    return out


def param_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter counts by component, slash keys, totals over layers.

    Decoder-only: "embed", "pos_embed" (learned positions), "layers/attn/w_q", ..., "layers/ffn/w_gate", ...,
    "layers/norm", "final_norm", "lm_head" (absent when tied). Encoder-decoder: the same under "encoder/"
    and "decoder/" (the decoder adds "decoder/layers/cross_attn/..."); one shared "embed".
    """
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be a ModelConfig; got {type(cfg).__name__}")
    out = {"embed": cfg.vocab_size * cfg.d_model}
    if cfg.position == "learned":
        out["pos_embed"] = cfg.max_position * cfg.d_model
    if cfg.is_encoder_decoder:
        out.update(_stack("encoder/", cfg, cfg.n_encoder_layers, cross=False))
        out.update(_stack("decoder/", cfg, cfg.n_layers, cross=True))
    else:
        out.update(_stack("", cfg, cfg.n_layers, cross=False))
    if not cfg.tied_embeddings:
        out["lm_head"] = cfg.vocab_size * cfg.d_model
    return out


def param_count(cfg: ModelConfig) -> int:
    """Total parameters (exact integer): sum of :func:`param_breakdown`."""
    return sum(param_breakdown(cfg).values())


def matmul_param_count(cfg: ModelConfig) -> int:
    """Parameters that take part in matrix products per token (all "w_*" entries plus the lm_head matrix;
    the embedding table when tied, since it then serves as the lm_head). FLOPs per token ~ 2x this."""
    b = param_breakdown(cfg)
    n = sum(v for k, v in b.items() if k.rsplit("/", 1)[-1].startswith("w_"))
    return n + cfg.vocab_size * cfg.d_model
