"""Bytes (weights, KV cache) and tensor parallelism against published figures and written-out formulas."""

import math

import pytest

import costmodel as cm

M = cm.MODELS


def test_kv_per_token_published():
    """From the config.json files: Llama-2-7B 524,288 B/token and Llama-2-70B 327,680 B/token in fp16."""
    assert cm.kv_bytes_per_token(M["llama-2-7b"], "fp16") == 524_288 == 2 * 32 * 32 * 128 * 2
    assert cm.kv_bytes_per_token(M["llama-2-70b"], "fp16") == 327_680 == 2 * 80 * 8 * 128 * 2
    assert cm.kv_cache_bytes(M["llama-2-70b"], batch=3, context=100, kv_dtype="fp16") == 3 * 100 * 327_680


@pytest.mark.parametrize("tp,heads", [(1, 8), (2, 4), (4, 2), (8, 1), (16, 1), (32, 1), (64, 1)])
def test_llama2_70b_kv_heads_per_device(tp, heads):
    """max(K/TP, 1): at TP=16 each device holds one (replicated) KV head per layer."""
    assert cm.kv_heads_per_device(8, tp) == heads
    assert cm.kv_bytes_per_token(M["llama-2-70b"], "fp16", tp=tp) == 2 * 80 * heads * 128 * 2


def test_t5_xxl_decoder_kv_shrinks_8x_mha_to_gqa8():
    """Ainslie et al. 2023: GQA-8 from the 64-head T5-XXL cuts the decoder KV cache (self + cross) by 64/8."""
    mha = M["t5.1.1-xxl"]
    gqa = mha.with_(n_kv_heads=8)
    a = cm.kv_cache_bytes(mha, batch=4, context=128, encoder_len=512)
    b = cm.kv_cache_bytes(gqa, batch=4, context=128, encoder_len=512)
    assert a == 8 * b
    assert a == 2 * 24 * 4 * (128 + 512) * 64 * 64 * 2


def test_sliding_window_caps_the_cache():
    cfg = M["mistral-7b"]
    assert cm.kv_cache_bytes(cfg, batch=1, context=32768) == cm.kv_cache_bytes(cfg, batch=1, context=4096)
    assert cm.kv_cache_bytes(cfg, batch=1, context=100) == 100 * 2 * 32 * 8 * 128 * 2


def test_weight_bytes_dtypes_and_quantization_scales():
    cfg = M["llama-2-7b"]
    n = cm.param_count(cfg)
    assert cm.weight_bytes(cfg, "fp16") == 2 * n
    assert cm.weight_bytes(cfg, "int4") == n / 2  # exact: two weights per byte
    assert cm.weight_bytes(cfg, "fp8") == n
    scales = sum(math.ceil(c / 128) for c in cm.param_breakdown(cfg).values())
    assert cm.weight_bytes(cfg, "int4", group_size=128, scale_dtype="fp16") == n / 2 + 2 * scales


def test_tensor_parallel_weights():
    """Llama-2-7B at TP=2: everything halves except the replicated norms (2 per layer + final, D each)."""
    cfg = M["llama-2-7b"]
    per_dev = cm.weight_bytes(cfg, "bf16", tp=2)
    assert 2 * per_dev - cm.weight_bytes(cfg, "bf16") == 2 * (2 * 32 + 1) * 4096
    # Llama-2-70B at TP=16: K/V weights are replicated (one of 8 heads per device), queries split 64/16
    b = cm.per_device_param_breakdown(M["llama-2-70b"], 16)
    assert b["layers/attn/w_k"] == 80 * 8192 * 1 * 128 and b["layers/attn/w_q"] == 80 * 8192 * 4 * 128


def test_ring_allreduce_time():
    assert cm.allreduce_time(1e6, 1, 300e9) == 0.0
    assert cm.allreduce_time(1e6, 4, 300e9, latency_s=5e-6) == pytest.approx(2 * 3 / 4 * 1e6 / 300e9 + 5e-6)


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda: cm.kv_cache_bytes(M["llama-2-7b"], batch=1, context=1, kv_dtype="fp12"), "kv_dtype"),
        (lambda: cm.weight_bytes(M["llama-2-7b"], "int3"), "weight_dtype"),
        (lambda: cm.kv_cache_bytes(M["llama-2-7b"], batch=0, context=1), "batch"),
        (lambda: cm.kv_cache_bytes(M["llama-2-7b"], batch=1, context=-5), "context"),
        (lambda: cm.weight_bytes(M["llama-2-7b"], tp=3), "tp"),
        (lambda: cm.kv_heads_per_device(8, 3), "tp"),
        (
            lambda: cm.check_tp(
                cm.ModelConfig(d_model=48, n_layers=1, n_heads=12, n_kv_heads=4, d_ff=48, vocab_size=9), 3
            ),
            "tp must divide n_kv_heads",
        ),
        (lambda: cm.allreduce_time(1.0, 2, None), "link_bandwidth"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_workspace_estimate_scales_with_batch():
    cfg = M["llama-2-7b"]
    one = cm.workspace_bytes(cfg, batch=1)
    per_tok = (2 * 4096 + (32 + 64) * 128 + 32 * 128 + 2 * 11008 + 4096) * 2 + 32000 * 4
    assert one == per_tok and cm.workspace_bytes(cfg, batch=8) == 8 * one
