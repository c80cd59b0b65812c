"""Parameter counts against published figures and presets' Hugging Face configs."""

import pytest

import costmodel as cm

# Published totals (Hugging Face model cards / `sum(p.numel())` of the checkpoints):
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,  # Touvron et al. 2023 (arXiv:2307.09288), meta-llama/Llama-2-7b-hf
    "mistral-7b": 7_241_732_096,  # mistralai/Mistral-7B-v0.1 ("7.24B")
    "llama-3-8b": 8_030_261_248,  # meta-llama/Meta-Llama-3-8B ("8.03B")
    "gemma-7b": 8_537_680_896,  # google/gemma-7b ("8.54B")
    "t5-base-relu": 222_903_552,  # google-t5/t5-base
    "t5.1.1-base": 247_577_856,  # google/t5-v1_1-base
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(name):
    assert cm.param_count(cm.MODELS[name]) == PUBLISHED[name]


def test_llama2_7b_written_out():
    """Independent arithmetic: embed + lm_head + 32 x (4 D^2 + 3 D F + 2 D) + D."""
    d, f, v, layers = 4096, 11008, 32000, 32
    assert cm.param_count(cm.MODELS["llama-2-7b"]) == 2 * v * d + layers * (4 * d * d + 3 * d * f + 2 * d) + d


def test_shazeer_t5_base_every_variant_same_count():
    """Shazeer 2020: d_ff 3072 (two matrices) vs 2048 (three) gives 2*768*3072 = 3*768*2048 per FFN."""
    counts = {
        cm.param_count(cm.MODELS[f"t5-base-{v}"])
        for v in ("relu", "gelu", "swish", "glu", "bilinear", "reglu", "geglu", "swiglu")
    }
    assert counts == {222_903_552}
    rows = cm.ffn_rows()
    assert {r.params for r in rows} == {4_718_592}
    assert {r.matmul_flops_per_token for r in rows} == {2 * 4_718_592}
    assert {r.d_ff for r in rows if r.gated} == {2048} and {r.d_ff for r in rows if not r.gated} == {3072}
    assert [r.log_ppl_524k for r in rows if r.variant == "geglu"] == [1.633]  # the paper's Table 1


def test_breakdown_keys_and_totals():
    b = cm.param_breakdown(cm.MODELS["llama-2-70b"])
    assert b["layers/attn/w_k"] == 80 * 8192 * 8 * 128 and b["layers/attn/w_q"] == 80 * 8192 * 64 * 128
    assert b["layers/ffn/w_gate"] == b["layers/ffn/w_up"] == b["layers/ffn/w_down"] == 80 * 8192 * 28672
    assert b["embed"] == b["lm_head"] == 32000 * 8192
    assert "lm_head" not in cm.param_breakdown(cm.MODELS["gemma-7b"])  # tied
    qwen = cm.param_breakdown(cm.MODELS["qwen2-7b"])
    assert qwen["layers/attn/b_q"] == 28 * 3584 and qwen["layers/attn/b_k"] == 28 * 4 * 128
    assert "layers/attn/b_o" not in qwen
    t5 = cm.param_breakdown(cm.MODELS["t5.1.1-xxl"])
    assert t5["decoder/layers/cross_attn/w_q"] == t5["decoder/layers/attn/w_q"] == 24 * 4096 * 64 * 64
    assert t5["encoder/rel_bias"] == t5["decoder/rel_bias"] == 32 * 64


def test_gemma_head_dim_is_not_d_over_n():
    g = cm.MODELS["gemma-7b"]
    assert g.head_dim == 256 != g.d_model // g.n_heads
    assert cm.param_breakdown(g)["layers/attn/w_q"] == 28 * 3072 * 16 * 256


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(d_model=0), "d_model"),
        (dict(n_layers=-1), "n_layers"),
        (dict(n_kv_heads=5), "n_kv_heads"),
        (dict(d_ff=1.5), "d_ff"),
        (dict(ffn="swigluu"), "ffn.*did you mean swiglu"),
        (dict(norm="batchnorm"), "norm"),
        (dict(n_heads=7, n_kv_heads=7), "head_dim"),
        (dict(vocab_size=True), "vocab_size"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    base = dict(d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, d_ff=128, vocab_size=100)
    with pytest.raises(ValueError, match=field):
        cm.ModelConfig(**{**base, **kwargs})


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="llama-2-7b"):
        cm.get_model("llama2-7b")
