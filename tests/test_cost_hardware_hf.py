"""Hardware presets (dense, SI, per-direction, sourced), user TOML files, and Hugging Face config.json loading."""

import json
import sys

import pytest

import costmodel as cm

LLAMA2_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
}  # meta-llama/Llama-2-7b-hf config.json
QWEN2_7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "sliding_window": 131072,
    "use_sliding_window": False,
}  # Qwen/Qwen2-7B
GEMMA_7B = {
    "model_type": "gemma",
    "hidden_size": 3072,
    "intermediate_size": 24576,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 16,
    "head_dim": 256,
    "vocab_size": 256000,
    "hidden_act": "gelu",
}  # google/gemma-7b config.json (no tie_word_embeddings: tied by default)
T5_XXL = {
    "model_type": "t5",
    "d_model": 4096,
    "d_ff": 10240,
    "d_kv": 64,
    "num_heads": 64,
    "num_layers": 24,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "relative_attention_num_buckets": 32,
}  # google/t5-v1_1-xxl config.json
MISTRAL = {
    **LLAMA2_7B,
    "model_type": "mistral",
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "sliding_window": 4096,
}  # mistralai/Mistral-7B-v0.1 config.json


@pytest.mark.parametrize(
    "hf,preset",
    [
        (LLAMA2_7B, "llama-2-7b"),
        (QWEN2_7B, "qwen2-7b"),
        (GEMMA_7B, "gemma-7b"),
        (T5_XXL, "t5.1.1-xxl"),
        (MISTRAL, "mistral-7b"),
    ],
)
def test_hf_config_matches_preset(hf, preset):
    assert cm.load_hf_config(hf) == cm.MODELS[preset]


def test_family_implicit_facts():
    q = cm.load_hf_config(QWEN2_7B)
    assert q.qkv_bias and not q.out_bias and q.sliding_window is None
    g = cm.load_hf_config(GEMMA_7B)
    assert g.tied_embeddings and g.head_dim == 256 and g.ffn == "geglu"
    t = cm.load_hf_config(T5_XXL)
    assert t.ffn == "geglu" and t.n_encoder_layers == 24 and not t.tied_embeddings
    assert (
        cm.load_hf_config({**T5_XXL, "feed_forward_proj": "relu", "tie_word_embeddings": True}).ffn == "relu"
    )
    assert cm.load_hf_config({**LLAMA2_7B, "attention_bias": True}).out_bias


def test_hf_from_file_and_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    assert cm.param_count(cm.load_hf_config(tmp_path)) == 6_738_415_616
    with pytest.raises(ValueError, match="llama, mistral, gemma, qwen2, t5"):
        cm.load_hf_config({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="hidden_size"):
        cm.load_hf_config({k: v for k, v in LLAMA2_7B.items() if k != "hidden_size"})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        cm.load_hf_config(tmp_path / "bad.json")


def test_hardware_presets_are_dense_sourced_per_direction():
    h = cm.HARDWARE
    assert h["h100-sxm"].peak_flops["bf16"] == 989e12  # not 1979 (that is bf16 with sparsity)
    assert h["h100-sxm"].peak_flops["fp8"] == 1979e12
    assert h["a100-sxm-40gb"].hbm_bandwidth == 1.555e12 and h["a100-sxm-40gb"].link_bandwidth == 300e9
    assert h["a100-sxm-40gb"].memory_bytes == 40 * 2**30 and h["h200-sxm"].memory_bytes == 141 * 10**9
    for chip in h.values():
        assert chip.source and chip.date_read and chip.peak_flops["fp16"] == chip.peak_flops["bf16"]
    assert set(h) >= {
        "a100-sxm-40gb",
        "a100-sxm-80gb",
        "h100-sxm",
        "h100-pcie",
        "h200-sxm",
        "b200",
        "mi300x",
        "l4",
        "l40s",
        "tpu-v4",
        "tpu-v5e",
        "tpu-v5p",
    }


def test_user_toml(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(
        '[my-chip]\nlabel = "X"\nflops_bf16 = 1e15\nhbm_bandwidth = 2e12\nmemory_gb = 64\n'
        'source = "me"\ndate_read = "2026-01-01"\n'
    )
    chip = cm.load_hardware(p)["my-chip"]
    assert chip.memory_bytes == 64 * 10**9 and chip.link_bandwidth is None
    with pytest.raises(ValueError, match="link_bandwidth"):
        cm.decode_latency(cm.MODELS["llama-2-7b"], chip, batch=1, context=8, tp=2)
    p.write_text(
        '[c]\nlabel = "X"\nflops_bf16 = -1\nhbm_bandwidth = 2e12\nmemory_gb = 1\nsource = "s"\ndate_read = "d"\n'
    )
    with pytest.raises(ValueError, match="flops_bf16"):
        cm.load_hardware(p)
    p.write_text("[c\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        cm.load_hardware(p)


def test_import_pulls_in_neither_jax_nor_reference_ops():
    import subprocess

    code = (
        "import sys, costmodel; bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'scipy') "
        "or m in ('refimpl.ffn', 'refimpl.attention', 'refimpl.layer')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_chip_suggests_names_containing_it():
    import costmodel

    with pytest.raises(ValueError, match=r"did you mean a100-sxm-40gb, a100-sxm-80gb"):
        costmodel.get_hardware("a100")
