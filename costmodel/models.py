"""Model presets (dimensions only), each with the Hugging Face config.json or paper it comes from.

Parameter counts these reproduce exactly (tests/test_cost_params.py): Llama-2-7B 6,738,415,616;
Mistral-7B 7,241,732,096; Llama-3-8B 8,030,261,248; Gemma-7B 8,537,680,896; t5-base 222,903,552;
T5.1.1-base 247,577,856.
"""

from __future__ import annotations

from .config import ModelConfig, unknown_name
from .models_recent import RECENT_MODELS


def _llama(name, src, d, layers, n, k, f, vocab, **kw) -> ModelConfig:
    return ModelConfig(
        d_model=d,
        n_layers=layers,
        n_heads=n,
        n_kv_heads=k,
        d_ff=f,
        vocab_size=vocab,
        ffn="swiglu",
        norm="rmsnorm",
        position="rope",
        name=name,
        source=src,
        **kw,
    )


def _t5(name, src, d, layers, n, dh, f, ffn, *, tied) -> ModelConfig:
    return ModelConfig(
        d_model=d,
        n_layers=layers,
        n_encoder_layers=layers,
        n_heads=n,
        head_dim=dh,
        d_ff=f,
        vocab_size=32128,
        ffn=ffn,
        tied_embeddings=tied,
        norm="rmsnorm",
        position="relative",
        relative_buckets=32,
        name=name,
        source=src,
    )


_HF = "https://huggingface.co/{}/blob/main/config.json"

# Shazeer 2020 ran T5-base (12+12 layers, D 768, 12 heads) with d_ff 3072 for the two-matrix FFNs and 2048
# for the three-matrix ones (same parameter count); T5 v1.0 shares the embedding with the output layer.
_SHAZEER = "Shazeer 2020 (arXiv:2002.05202) Sec. 3 on T5-base; dims of " + _HF.format("google-t5/t5-base")
_SEED_T5 = {
    f"t5-base-{v}": _t5(f"t5-base-{v}", _SHAZEER, 768, 12, 12, 64, 2048 if gated else 3072, v, tied=True)
    for v, gated in (
        ("relu", False),
        ("gelu", False),
        ("swish", False),
        ("glu", True),
        ("bilinear", True),
        ("reglu", True),
        ("geglu", True),
        ("swiglu", True),
    )
}

MODELS: dict[str, ModelConfig] = {
    "llama-2-7b": _llama(
        "llama-2-7b", _HF.format("meta-llama/Llama-2-7b-hf"), 4096, 32, 32, 32, 11008, 32000
    ),
    "llama-2-13b": _llama(
        "llama-2-13b", _HF.format("meta-llama/Llama-2-13b-hf"), 5120, 40, 40, 40, 13824, 32000
    ),
    "llama-2-70b": _llama(
        "llama-2-70b", _HF.format("meta-llama/Llama-2-70b-hf"), 8192, 80, 64, 8, 28672, 32000
    ),
    "llama-3-8b": _llama(
        "llama-3-8b", _HF.format("meta-llama/Meta-Llama-3-8B"), 4096, 32, 32, 8, 14336, 128256
    ),
    "llama-3-70b": _llama(
        "llama-3-70b", _HF.format("meta-llama/Meta-Llama-3-70B"), 8192, 80, 64, 8, 28672, 128256
    ),
    "mistral-7b": _llama(
        "mistral-7b",
        _HF.format("mistralai/Mistral-7B-v0.1"),
        4096,
        32,
        32,
        8,
        14336,
        32000,
        sliding_window=4096,
    ),
    "gemma-2b": ModelConfig(
        d_model=2048,
        n_layers=18,
        n_heads=8,
        n_kv_heads=1,
        head_dim=256,
        d_ff=16384,
        vocab_size=256000,
        ffn="geglu",
        tied_embeddings=True,
        name="gemma-2b",
        source=_HF.format("google/gemma-2b"),
    ),
    "gemma-7b": ModelConfig(
        d_model=3072,
        n_layers=28,
        n_heads=16,
        n_kv_heads=16,
        head_dim=256,
        d_ff=24576,
        vocab_size=256000,
        ffn="geglu",
        tied_embeddings=True,
        name="gemma-7b",
        source=_HF.format("google/gemma-7b"),
    ),
    "qwen2-7b": _llama(
        "qwen2-7b", _HF.format("Qwen/Qwen2-7B"), 3584, 28, 28, 4, 18944, 152064, qkv_bias=True
    ),
    "t5.1.1-base": _t5(
        "t5.1.1-base", _HF.format("google/t5-v1_1-base"), 768, 12, 12, 64, 2048, "geglu", tied=False
    ),
    "t5.1.1-xxl": _t5(
        "t5.1.1-xxl", _HF.format("google/t5-v1_1-xxl"), 4096, 24, 64, 64, 10240, "geglu", tied=False
    ),
    # The FasterTransformer benchmark model of kipply's "Transformer Inference Arithmetic" (2022): 40 layers,
    # D 5120, 40 heads (MHA), vocab 50272; GPT-style otherwise (4D GELU FFN, biases, LayerNorm, learned
    # positions, tied embeddings) -- cli99/llm-analysis model_configs/test-13b.json uses the same dims.
    "kipply-13b": ModelConfig(
        d_model=5120,
        n_layers=40,
        n_heads=40,
        d_ff=20480,
        vocab_size=50272,
        ffn="gelu",
        tied_embeddings=True,
        qkv_bias=True,
        out_bias=True,
        ffn_bias=True,
        norm="layernorm",
        position="learned",
        max_position=2048,
        name="kipply-13b",
        source="https://kipp.ly/transformer-inference-arithmetic/",
    ),
    **_SEED_T5,
    **RECENT_MODELS,  # Llama-3.1, Mixtral, Qwen2.5, Qwen3 (+MoE), Gemma 2/3, Phi-3, gpt-oss (models_recent.py)
}


def get_model(model) -> ModelConfig:
    """A ModelConfig as given, or the preset of that name (close names suggested otherwise)."""
    if isinstance(model, ModelConfig):
        return model
    if isinstance(model, str) and model in MODELS:  # (isinstance first: a list is unhashable)
        return MODELS[model]
    raise unknown_name("model", model, MODELS)
