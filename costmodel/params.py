"""Exact parameter counts: per-block formulas and the whole model's breakdown with slash keys.

Attention (Ainslie et al. 2023, GQA): W_q (D, N*Dh), W_k and W_v (D, K*Dh), W_o (N*Dh, D); biases
b_q (N*Dh), b_k, b_v (K*Dh), b_o (D); attention sinks N; q/k norms Dh each. FFN (Shazeer 2020): ungated
W_up (D, F), W_down (F, D); gated adds W_gate (D, F); biases b_gate, b_up (F) and b_down (D). A MoE block:
E experts of that FFN at width F_e, the router W_router (D, E) (+ b_router E), shared experts, Qwen2-MoE's
shared-expert gate (D, 1). These are the shapes refimpl.init_attention_params / init_ffn_params allocate
(tests/test_cost_vs_reference.py) and the modules Transformers builds (tests/test_cost_hf_parity.py).
"""

from __future__ import annotations

from refimpl.variants import get_variant

from .checks import one_of, positive_int
from .config import ModelConfig, check_cfg

# weights of one norm layer per kind: RMSNorm has a scale (D); LayerNorm a scale and a shift (2D)
NORM_VECTORS = {"rmsnorm": 1, "layernorm": 2, "none": 0}
NORMS_PER_LAYER = 2  # pre-norm before attention and before the FFN
POST_NORMS_PER_LAYER = 2  # Gemma 2/3: also after attention and after the FFN
ACTIVE_CONVENTIONS = ("with_embeddings", "no_input_embedding")


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


def moe_param_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """ONE MoE block: {"experts/w_gate": E*D*F_e, ..., "w_router": D*E, "b_router": E, "shared/w_gate": ...,
    "w_shared_gate": D}. Experts and shared experts are the model's FFN variant (with its biases)."""
    moe, d = check_cfg(cfg).moe, cfg.d_model
    if moe is None:
        raise ValueError(f"cfg must have a MoE block (moe=MoE(...)); {cfg.name!r} has none")
    expert = ffn_param_breakdown(d, moe.d_ff, cfg.ffn, bias=cfg.ffn_bias)
    out = {f"experts/{k}": moe.n_experts * v for k, v in expert.items()}
    out["w_router"] = d * moe.n_experts
    if moe.router_bias:
        out["b_router"] = moe.n_experts
    if moe.n_shared:
        shared = ffn_param_breakdown(d, moe.shared_width, cfg.ffn, bias=cfg.ffn_bias)
        out.update({f"shared/{k}": moe.n_shared * v for k, v in shared.items()})
    if moe.shared_gate:
        out["w_shared_gate"] = d
    return out


def attention_block_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """One decoder layer's attention: projections, biases, sinks (N) and q/k norms (Dh each)."""
    out = attention_param_breakdown(
        cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, qkv_bias=cfg.qkv_bias, out_bias=cfg.out_bias
    )
    if cfg.attn_sinks:
        out["sinks"] = cfg.n_heads
    if cfg.qk_norm:
        out["q_norm"] = out["k_norm"] = NORM_VECTORS[cfg.norm] * cfg.head_dim
    return out


def _add(out: dict, prefix: str, block: dict, n: int) -> None:
    for k, v in block.items():
        out[f"{prefix}{k}"] = out.get(f"{prefix}{k}", 0) + n * v


def _stack(prefix: str, cfg: ModelConfig, n_layers: int, *, cross: bool) -> dict[str, int]:
    """Totals over the stack's layers; ``cross`` adds decoder cross-attention (same head layout). Decoder
    layers are summed per :attr:`ModelConfig.layer_groups` (dense FFN or MoE block)."""
    out: dict[str, int] = {}
    _add(out, f"{prefix}layers/attn/", attention_block_breakdown(cfg), n_layers)
    if cross:
        attn = attention_param_breakdown(
            cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, qkv_bias=cfg.qkv_bias, out_bias=cfg.out_bias
        )
        _add(out, f"{prefix}layers/cross_attn/", attn, n_layers)
    n_moe = cfg.n_moe_layers if prefix != "encoder/" else 0
    if n_layers - n_moe:
        _add(out, f"{prefix}layers/ffn/", ffn_param_breakdown(cfg.d_model, cfg.d_ff, cfg.ffn, bias=cfg.ffn_bias),
             n_layers - n_moe)  # fmt: skip
    if n_moe:
        _add(out, f"{prefix}layers/moe/", moe_param_breakdown(cfg), n_moe)
    norms_per_layer = NORMS_PER_LAYER + cross + (POST_NORMS_PER_LAYER if cfg.post_norms else 0)
    norm = NORM_VECTORS[cfg.norm] * cfg.d_model
    if norm:
        out[f"{prefix}layers/norm"] = n_layers * norms_per_layer * norm
        out[f"{prefix}final_norm"] = norm
    if cfg.position == "relative":  # T5: one (buckets, N) table in the first layer's self-attention
        out[f"{prefix}rel_bias"] = cfg.relative_buckets * cfg.n_heads
    return out


def param_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter counts by component, slash keys, totals over layers.

    Decoder-only: "embed", "pos_embed" (learned positions), "layers/attn/w_q", ..., "layers/ffn/w_gate", ...
    (dense layers), "layers/moe/experts/w_gate", "layers/moe/w_router", ... (MoE layers), "layers/norm",
    "final_norm", "lm_head" (absent when tied). Encoder-decoder: the same under "encoder/" and "decoder/"
    (the decoder adds "decoder/layers/cross_attn/..."); one shared "embed".
    """
    check_cfg(cfg)
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
    """Total parameters (exact integer): sum of :func:`param_breakdown` (every expert counted)."""
    return sum(param_breakdown(cfg).values())


def idle_expert_params(cfg: ModelConfig) -> int:
    """Parameters of the routed experts one token does NOT use: (E - k) experts in every MoE layer."""
    moe = check_cfg(cfg).moe
    if moe is None:
        return 0
    expert = sum(ffn_param_breakdown(cfg.d_model, moe.d_ff, cfg.ffn, bias=cfg.ffn_bias).values())
    return cfg.n_moe_layers * (moe.n_experts - moe.top_k) * expert


def active_param_count(cfg: ModelConfig, *, convention: str = "with_embeddings") -> int:
    """Parameters one token uses: the total minus the (E - k) routed experts it skips in each MoE layer.

    ``convention``:
    - "with_embeddings" (default): embeddings included, as Mistral (Mixtral-8x7B: 12.9 B active) and Qwen
      (Qwen3-30B-A3B: 3.3 B) count on their model cards;
    - "no_input_embedding": the input embedding table left out as well (a token reads one row of it), as
      the gpt-oss model card counts (gpt-oss-120b: 5.1 B; 5.7 B by the default). A tied table is kept: it is
      also the output layer.
    Dense models: active = total (minus the input table under "no_input_embedding").
    """
    one_of("convention", convention, ACTIVE_CONVENTIONS)
    active = param_count(cfg) - idle_expert_params(cfg)
    if convention == "no_input_embedding" and not cfg.tied_embeddings:
        active -= cfg.vocab_size * cfg.d_model
    return active


def matmul_param_count(cfg: ModelConfig) -> int:
    """Parameters that take part in matrix products per token (all "w_*" entries plus the lm_head matrix;
    the embedding table when tied, since it then serves as the lm_head), counting only the k routed experts
    a token uses. FLOPs per token ~ 2x this."""
    b = param_breakdown(cfg)
    n = sum(v for k, v in b.items() if k.rsplit("/", 1)[-1].startswith("w_"))
    if cfg.moe is not None:
        moe = cfg.moe
        expert_weights = sum(v for k, v in ffn_param_breakdown(cfg.d_model, moe.d_ff, cfg.ffn).items())
        n -= cfg.n_moe_layers * (moe.n_experts - moe.top_k) * expert_weights
    return n + cfg.vocab_size * cfg.d_model
