"""Presets of the open models deployed in 2024-2026, each from its Hugging Face config.json (the URL in
``source``). tests/test_cost_presets.py loads the same config.json files (tests/data/hf_configs.json) and
checks ``load_hf_config(config) == preset`` and the parameter count of the model Transformers builds.

Published totals these reproduce (model cards): Mixtral-8x7B 46.7 B total / 12.9 B active, Mixtral-8x22B
141 B / 39 B, Qwen3-30B-A3B 30.5 B / 3.3 B, Qwen3-235B-A22B 235 B / 22 B, gpt-oss-120b 116.8 B, gpt-oss-20b
20.9 B (active 5.1 B / 3.6 B by the card's convention, which leaves out the input embedding table).
"""

from __future__ import annotations

from .config import ModelConfig
from .layers import MoE, RopeScaling

_HF = "https://huggingface.co/{}/blob/main/config.json"
_LLAMA31_ROPE = RopeScaling("llama3", 8.0, 8192)  # rope_scaling of every Llama-3.1 config.json


def _llama31(name, repo, d, layers, n, f) -> ModelConfig:
    return ModelConfig(
        d_model=d, n_layers=layers, n_heads=n, n_kv_heads=8, d_ff=f, vocab_size=128256, max_position=131072,
        rope_scaling=_LLAMA31_ROPE, name=name, source=_HF.format(repo),
    )  # fmt: skip


def _mixtral(name, repo, d, layers, n, f, max_position) -> ModelConfig:
    return ModelConfig(
        d_model=d, n_layers=layers, n_heads=n, n_kv_heads=8, d_ff=f, vocab_size=32000, max_position=max_position,
        moe=MoE(n_experts=8, top_k=2, d_ff=f), name=name, source=_HF.format(repo),
    )  # fmt: skip


def _qwen3(name, repo, d, layers, n, k, f, *, moe=None) -> ModelConfig:
    return ModelConfig(
        d_model=d, n_layers=layers, n_heads=n, n_kv_heads=k, head_dim=128, d_ff=f, vocab_size=151936,
        qk_norm=True, max_position=40960, moe=moe, name=name, source=_HF.format(repo),
    )  # fmt: skip


def _gemma2(name, repo, d, layers, n, k, dh, f) -> ModelConfig:
    return ModelConfig(
        d_model=d, n_layers=layers, n_heads=n, n_kv_heads=k, head_dim=dh, d_ff=f, vocab_size=256000, ffn="geglu",
        tied_embeddings=True, sliding_window=4096, layer_types=("sliding", "full") * (layers // 2),
        post_norms=True, attn_softcap=50.0, final_softcap=30.0, max_position=8192, name=name,
        source=_HF.format(repo),
    )  # fmt: skip


def _gpt_oss(name, repo, layers, experts) -> ModelConfig:
    return ModelConfig(
        d_model=2880, n_layers=layers, n_heads=64, n_kv_heads=8, head_dim=64, d_ff=2880, vocab_size=201088,
        ffn="swiglu_oss", qkv_bias=True, out_bias=True, ffn_bias=True, attn_sinks=True, sliding_window=128,
        layer_types=("sliding", "full") * (layers // 2), moe=MoE(n_experts=experts, top_k=4, d_ff=2880,
        router_bias=True), max_position=131072, rope_scaling=RopeScaling("yarn", 32.0, 4096), name=name,
        source=_HF.format(repo), quantization="mxfp4",
    )  # fmt: skip


RECENT_MODELS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        _llama31("llama-3.1-8b", "meta-llama/Llama-3.1-8B", 4096, 32, 32, 14336),
        _llama31("llama-3.1-70b", "meta-llama/Llama-3.1-70B", 8192, 80, 64, 28672),
        _llama31("llama-3.1-405b", "meta-llama/Llama-3.1-405B", 16384, 126, 128, 53248),
        _mixtral("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 4096, 32, 32, 14336, 32768),
        _mixtral("mixtral-8x22b", "mistralai/Mixtral-8x22B-v0.1", 6144, 56, 48, 16384, 65536),
        ModelConfig(
            d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, d_ff=18944, vocab_size=152064, qkv_bias=True,
            max_position=131072, name="qwen2.5-7b", source=_HF.format("Qwen/Qwen2.5-7B"),
        ),  # fmt: skip
        ModelConfig(
            d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8, d_ff=29568, vocab_size=152064, qkv_bias=True,
            max_position=131072, name="qwen2.5-72b", source=_HF.format("Qwen/Qwen2.5-72B"),
        ),  # fmt: skip
        _qwen3("qwen3-8b", "Qwen/Qwen3-8B", 4096, 36, 32, 8, 12288),
        _qwen3("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", 2048, 48, 32, 4, 6144, moe=MoE(128, 8, 768)),
        _qwen3("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B", 4096, 94, 64, 4, 12288, moe=MoE(128, 8, 1536)),
        _gemma2("gemma-2-9b", "google/gemma-2-9b", 3584, 42, 16, 8, 256, 14336),
        _gemma2("gemma-2-27b", "google/gemma-2-27b", 4608, 46, 32, 16, 128, 36864),
        # Gemma 3: the language model of the multimodal config (text_config); its config.json leaves
        # vocab_size (262208) and the 5:1 sliding pattern (sliding_window_pattern 6) at Gemma3TextConfig's
        # defaults and states no max_position_embeddings
        ModelConfig(
            d_model=5376, n_layers=62, n_heads=32, n_kv_heads=16, head_dim=128, d_ff=21504, vocab_size=262208,
            ffn="geglu", tied_embeddings=True, sliding_window=1024,
            layer_types=tuple("full" if (i + 1) % 6 == 0 else "sliding" for i in range(62)), qk_norm=True,
            post_norms=True, rope_scaling=RopeScaling("linear", 8.0), name="gemma-3-27b",
            source=_HF.format("google/gemma-3-27b-it"),
        ),  # fmt: skip
        # Phi-3-mini-4k: fused qkv_proj and gate_up_proj (same parameters as separate matrices); its
        # config.json windows every layer at 2047
        ModelConfig(
            d_model=3072, n_layers=32, n_heads=32, d_ff=8192, vocab_size=32064, sliding_window=2047,
            max_position=4096, name="phi-3-mini", source=_HF.format("microsoft/Phi-3-mini-4k-instruct"),
        ),  # fmt: skip
        # gpt-oss: clamped SwiGLU experts with biases (refimpl's "swiglu_oss"), attention sinks, biases on
        # q/k/v/o and the router; its config.json's quantization_config is mxfp4 (experts stored at ~4 bits)
        _gpt_oss("gpt-oss-20b", "openai/gpt-oss-20b", 24, 32),
        _gpt_oss("gpt-oss-120b", "openai/gpt-oss-120b", 36, 128),
    )
}
