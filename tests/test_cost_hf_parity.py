"""param_count(load_hf_config(config)) equals the parameters of the model Transformers builds from the same
config on the meta device, for every supported family with each flag on and off, and for every preset's
config.json (tests/data/hf_configs.json). Transformers and torch are test-only: skipped cleanly without them.
"""

import pytest
from hf_oracle import PRESET_CONFIGS, TINY, hf_param_count

import costmodel as cm

_QWEN2_MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=48)
_QWEN3_MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)
_GPT_OSS = dict(num_local_experts=4, num_experts_per_tok=2, head_dim=16)
# (model_type, keys added to TINY): every flag the family's code reads, on and off, and flags it ignores
FAMILY_CASES = [
    ("llama", {}),
    ("llama", {"attention_bias": True}),
    ("llama", {"mlp_bias": True}),
    ("llama", {"tie_word_embeddings": True, "head_dim": 8}),  # Llama 3.2: tied; explicit head_dim
    ("mistral", {"attention_bias": True, "mlp_bias": True}),  # both ignored: bias=False hard-coded
    ("mistral", {"sliding_window": 3, "tie_word_embeddings": True}),
    ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    ("mixtral", {"num_local_experts": 3, "num_experts_per_tok": 1, "tie_word_embeddings": True}),
    ("qwen2", {}),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 2, "max_window_layers": 2}),
    ("qwen2", {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True}),  # ignored flags
    ("qwen2_moe", _QWEN2_MOE),
    ("qwen2_moe", {**_QWEN2_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [0], "qkv_bias": False}),
    ("qwen2_moe", {**_QWEN2_MOE, "num_experts": 0}),  # no experts: every layer dense
    ("qwen3", {}),
    ("qwen3", {"attention_bias": True}),
    ("qwen3", {"head_dim": 8, "tie_word_embeddings": True}),
    ("qwen3_moe", _QWEN3_MOE),
    ("qwen3_moe", {**_QWEN3_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [1], "attention_bias": True}),
    ("qwen3_moe", {**_QWEN3_MOE, "head_dim": 8, "use_sliding_window": True, "sliding_window": 3}),
    ("gemma", {"head_dim": 16}),
    ("gemma", {"head_dim": 16, "attention_bias": True, "tie_word_embeddings": False, "hidden_act": "gelu"}),
    ("gemma2", {"head_dim": 16}),
    ("gemma2", {"head_dim": 16, "attention_bias": True, "tie_word_embeddings": False}),
    ("gemma3", {"text_config": {**TINY, "head_dim": 16}}),  # the multimodal config: its text_config
    ("gemma3", {"text_config": {**TINY, "head_dim": 16, "attention_bias": True, "tie_word_embeddings": False}}),
    ("gemma3_text", {"head_dim": 16, "sliding_window_pattern": 2}),
    ("phi3", {}),
    ("phi3", {"tie_word_embeddings": True, "num_key_value_heads": 4, "sliding_window": 3}),
    pytest.param("gpt_oss", _GPT_OSS),
    pytest.param("gpt_oss", {**_GPT_OSS, "attention_bias": False, "tie_word_embeddings": True}),
    ("t5", dict(d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu")),
    ("t5", dict(d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=3, num_heads=4, feed_forward_proj="relu",
                relative_attention_num_buckets=8, vocab_size=100)),  # fmt: skip
]


def _config(model_type: str, keys: dict) -> dict:
    base = {} if model_type in ("t5", "gemma3") else TINY
    return {"model_type": model_type, **base, **keys}


@pytest.mark.parametrize("model_type,keys", FAMILY_CASES)
def test_tiny_configs_equal_transformers_meta_model(model_type, keys):
    config = _config(model_type, keys)
    assert cm.param_count(cm.load_hf_config(config)) == hf_param_count(config)


def test_t5_untied_checkpoint_layout_differs_from_transformers5_by_the_lm_head():
    """Transformers 5.24's T5Config forces tie_word_embeddings=True (configuration_t5.py: the flag now only
    decides whether decoder outputs are scaled), so T5ForConditionalGeneration never builds a separate lm_head.
    T5.1.1 checkpoints do have one (google/t5-v1_1-base: 247,577,856 parameters, tests/test_cost_params.py);
    load_hf_config keeps the checkpoint's layout, so the two differ by exactly the V x D lm_head."""
    config = _config("t5", dict(d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4, vocab_size=100,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=False))  # fmt: skip
    ours = cm.load_hf_config(config)
    assert cm.param_count(ours) - hf_param_count(config) == cm.param_breakdown(ours)["lm_head"] == 100 * 16


@pytest.mark.parametrize("name", list(PRESET_CONFIGS))
def test_preset_configs_equal_transformers_meta_model(name):
    config = PRESET_CONFIGS[name]["config"]
    assert cm.param_count(cm.MODELS[name]) == cm.param_count(cm.load_hf_config(config)) == hf_param_count(config)
