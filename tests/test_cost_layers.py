"""A model is a list of layers: per-layer attention kinds (full / sliding W), MoE layers, the carried extras,
and the presets of the 2024-26 models loaded from their config.json files."""

import json
from pathlib import Path

import pytest

import costmodel as cm

PRESET_CONFIGS = json.loads((Path(__file__).parent / "data" / "hf_configs.json").read_text())
BASE = dict(d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=96, vocab_size=100)


def test_issue_qwen2_example_layer_below_max_window_layers_is_full():
    """transformers#35896 / PR#36162: with use_sliding_window only layers i >= max_window_layers slide; the
    single layer here is full attention and keeps both tokens: 2 (K, V) x 2 positions x 2 heads x 16 x 4 B."""
    cfg = cm.load_hf_config({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 1,
                             "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
                             "vocab_size": 101, "use_sliding_window": True, "sliding_window": 1,
                             "max_window_layers": 1})  # fmt: skip
    assert cm.kv_cache_bytes(cfg, batch=1, context=2, kv_dtype="fp32") == 512
    deep = cm.load_hf_config({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 36,
                              "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
                              "vocab_size": 101, "use_sliding_window": True, "sliding_window": 4096,
                              "max_window_layers": 28})  # fmt: skip
    assert deep.layer_pattern == "28 full + 8 sliding (W=4096)"
    per_token = 2 * 2 * 16 * 2  # K and V, 2 heads, Dh 16, bf16
    assert cm.kv_cache_bytes(deep, batch=1, context=32768) == per_token * (28 * 32768 + 8 * 4096)


def test_uniform_models_are_the_special_case():
    llama = cm.MODELS["llama-3-8b"]
    assert llama.layers == (cm.Layer("full", None, "dense"),) * 32 and llama.is_uniform
    assert llama.layer_pattern == "32 full" and llama.layer_types is None
    mistral = cm.MODELS["mistral-7b"]  # sliding_window alone: every layer windowed (Mistral's meaning)
    assert {layer.window for layer in mistral.layers} == {4096} and mistral.layer_pattern == "32 sliding (W=4096)"
    explicit = cm.ModelConfig(**BASE, sliding_window=8, layer_types=("sliding",) * 4)
    assert explicit == cm.ModelConfig(**BASE, sliding_window=8) and explicit.layer_types is None  # canonical
    hf_names = cm.ModelConfig(**BASE, sliding_window=8, layer_types=["sliding_attention", "full_attention"] * 2)
    assert hf_names.layer_types == ("sliding", "full", "sliding", "full")


def test_per_layer_sums_kv_flops_and_latency():
    cfg = cm.ModelConfig(**BASE, sliding_window=8, layer_types=("sliding", "full") * 2)
    kinds = cm.kv_cache_breakdown(cfg, batch=2, context=100, kv_dtype="fp32")
    per_position = 2 * 2 * 2 * 16 * 4  # K and V, batch 2, 2 heads, Dh 16, fp32
    assert kinds == {"sliding (W=8)": 2 * 8 * per_position, "full": 2 * 100 * per_position}
    full = cm.ModelConfig(**BASE)
    flops, full_flops = cm.decode_flops(cfg, batch=2, context=100), cm.decode_flops(full, batch=2, context=100)
    assert flops.items["layers/attn/qk"] == 2 * 2 * 2 * 4 * 16 * (8 + 100)  # 2 layers at 8 keys, 2 at 100
    assert full_flops.items["layers/attn/qk"] == 2 * 2 * 2 * 4 * 16 * (100 + 100)
    lat = cm.decode_latency(cfg, "h100-sxm", batch=2, context=100, eff=cm.IDEAL)
    names = [op.name for op in lat.ops]
    assert names.index("attn_core (sliding W=8)") + 1 == names.index("attn_core (full)")
    assert {op.count for op in lat.ops if op.name.startswith("attn_core")} == {2}
    assert next(op.count for op in lat.ops if op.name == "attn_qkv") == 4  # same op on every layer: one row
    assert lat.flops == flops.total
    with pytest.raises(ValueError, match="layer must be given"):
        cm.layer_flops(cfg, batch=1, q_len=1, kv_len=4)
    assert cm.layer_flops(cfg, batch=1, q_len=1, kv_len=40, layer=cfg.layers[0])["attn/qk"] == 2 * 4 * 16 * 8


def test_extras_add_their_parameters():
    plain = cm.param_count(cm.ModelConfig(**BASE))
    assert cm.param_count(cm.ModelConfig(**BASE, attn_sinks=True)) == plain + 4 * 4  # N per layer
    assert cm.param_count(cm.ModelConfig(**BASE, qk_norm=True)) == plain + 4 * 2 * 16  # Dh for q and for k
    assert cm.param_count(cm.ModelConfig(**BASE, post_norms=True)) == plain + 4 * 2 * 64  # 2 more D norms
    carried = cm.ModelConfig(**BASE, attn_softcap=50.0, final_softcap=30.0, max_position=4096,
                             rope_scaling=cm.RopeScaling("yarn", 32.0, 4096))  # fmt: skip
    assert cm.param_count(carried) == plain and cm.decode_flops(carried, batch=1, context=9).total == cm.decode_flops(
        cm.ModelConfig(**BASE), batch=1, context=9
    ).total
    sinks = cm.ModelConfig(**BASE, attn_sinks=True)
    assert cm.kv_cache_bytes(sinks, batch=1, context=5) == cm.kv_cache_bytes(cm.ModelConfig(**BASE), batch=1, context=5)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(layer_types=("full", "sliding", "full", "full")), "sliding_window must be given"),
        (dict(layer_types=("full",) * 3, sliding_window=4), "one entry per layer"),
        (dict(layer_types=("full", "linear", "full", "full"), sliding_window=4), r"layer_types\[1\]"),
        (dict(layer_types="full"), "layer_types"),
        (dict(layer_types=("full",) * 4, sliding_window=4), "applies to no layer"),
        (dict(dense_layers=(0,)), "dense_layers applies only"),
        (dict(moe=cm.MoE(4, 2, 8), dense_layers=(7,)), "dense_layers"),
        (dict(moe={"n_experts": 4}), "moe must be"),
        (dict(attn_softcap=float("inf")), "attn_softcap"),
        (dict(rope_scaling=("yarn", 2.0)), "rope_scaling"),
        (dict(rope_scaling=cm.RopeScaling("yarn", -1.0)), "rope_scaling.factor"),
        (dict(qk_norm=1), "qk_norm"),
    ],
)
def test_bad_layer_description_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        cm.ModelConfig(**{**BASE, **kwargs})


def test_with_keeps_layers_consistent():
    cfg = cm.ModelConfig(**BASE, sliding_window=8, layer_types=("sliding", "full") * 2)
    assert cfg.with_(n_kv_heads=4).layers == cfg.layers
    with pytest.raises(ValueError, match="one entry per layer"):
        cfg.with_(n_layers=6)
    with pytest.raises(ValueError, match="layers is derived"):
        cfg.with_(layers=())


@pytest.mark.parametrize("name", list(PRESET_CONFIGS))
def test_presets_equal_their_config_json(name):
    entry = PRESET_CONFIGS[name]
    assert cm.load_hf_config(entry["config"]) == cm.MODELS[name]
    assert entry["source"].startswith(cm.MODELS[name].source)


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("gemma-2-9b", "21 sliding (W=4096) + 21 full"),
        ("gemma-3-27b", "52 sliding (W=1024) + 10 full"),
        ("gpt-oss-120b", "18 sliding (W=128) + 18 full"),
        ("phi-3-mini", "32 sliding (W=2047)"),
        ("qwen3-235b-a22b", "94 full"),
    ],
)
def test_layer_patterns(name, pattern):
    assert cm.MODELS[name].layer_pattern == pattern


def test_deepseek_and_linear_attention_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="multi-head latent attention"):
        cm.load_hf_config({"model_type": "deepseek_v3", "hidden_size": 7168})
    with pytest.raises(ValueError, match="linear-attention"):
        cm.load_hf_config({"model_type": "qwen3_next"})
    with pytest.raises(ValueError, match=r"layer_types\[1\]"):
        cm.load_hf_config({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "intermediate_size": 8,
                           "layer_types": ["full_attention", "linear_attention"]})  # fmt: skip


def test_family_facts_flags_the_code_ignores():
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96,
            "num_key_value_heads": 2, "vocab_size": 100, "attention_bias": True, "mlp_bias": True}  # fmt: skip
    for mt in ("mistral", "qwen2", "gemma"):
        c = cm.load_hf_config({"model_type": mt, **base})
        assert not c.ffn_bias, mt  # mlp_bias ignored: bias=False hard-coded
    assert not cm.load_hf_config({"model_type": "mistral", **base}).qkv_bias
    assert cm.load_hf_config({"model_type": "llama", **base}).ffn_bias
    q3 = cm.load_hf_config({"model_type": "qwen3", **base})
    assert q3.head_dim == 128 and q3.qk_norm  # Qwen3Config.head_dim defaults to 128, not D/N
    llama32 = cm.load_hf_config({"model_type": "llama", **base, "tie_word_embeddings": True,
                                 "rope_scaling": {"rope_type": "llama3", "factor": 32.0,
                                                  "original_max_position_embeddings": 8192}})  # fmt: skip
    assert llama32.tied_embeddings and llama32.rope_scaling == cm.RopeScaling("llama3", 32.0, 8192)


def test_family_table_doc_covers_every_family_and_preset():
    doc = (Path(__file__).parent.parent / "docs" / "hf-families.md").read_text()
    for mt in cm.SUPPORTED_MODEL_TYPES:
        assert f"| `{mt}` |" in doc, mt
    for name in PRESET_CONFIGS:
        assert f"`{name}`" in doc, name
    assert "Transformers 5.24.0" in doc
