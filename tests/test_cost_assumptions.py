"""The library side of what a plan assumes: the KV dtype of weight-only quantized weights (one rule everywhere),
a config.json's quantization_config carried for notes, and the memory a plan that does not fit lacks."""

import json
from pathlib import Path

import pytest

import costmodel as cm
from costmodel.config import resolve_kv_dtype
from costmodel.serving.replica import Replica

M = cm.MODELS
HF = json.loads((Path(__file__).parent / "data" / "hf_configs.json").read_text())


def test_kv_dtype_defaults_to_the_activation_dtype_for_weight_only_quantization():
    assert [resolve_kv_dtype(None, w) for w in ("int4", "int8", "fp8", "bf16", "fp16", "fp32")] == [
        "bf16", "bf16", "fp8", "bf16", "fp16", "fp32"]  # fmt: skip
    assert resolve_kv_dtype(None, "int4", act_dtype="fp16") == "fp16" and resolve_kv_dtype("fp8", "int4") == "fp8"
    cfg = M["llama-3-8b"]
    p = cm.plan(cfg, "h100-sxm", context=4096, weight_dtype="int4")
    bf16 = cm.plan(cfg, "h100-sxm", context=4096, weight_dtype="int4", kv_dtype="bf16")
    assert p.kv_dtype == "bf16" and p.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # Llama-3-8B, 2 bytes
    assert (p.max_batch, p.budget, p.decode.total_s) == (bf16.max_batch, bf16.budget, bf16.decode.total_s)
    assert [n for n in p.notes if n.startswith("KV cache in")] == [
        "KV cache in bf16: int4 is weight-only quantization (activations stay bf16, as vLLM's kv_cache_dtype 'auto'); "
        "--kv-dtype sets it"]  # fmt: skip
    assert not [n for n in bf16.notes if n.startswith("KV cache in")]  # asked for: nothing to say
    kw = dict(batch=8, context=4096, weight_dtype="int8")
    assert cm.memory_budget(cfg, "h100-sxm", **kw) == cm.memory_budget(cfg, "h100-sxm", kv_dtype="bf16", **kw)
    assert cm.decode_latency(cfg, "h100-sxm", **kw).bytes == cm.decode_latency(cfg, "h100-sxm", kv_dtype="bf16",
                                                                              **kw).bytes  # fmt: skip
    assert cm.gqa_rows(cfg, "h100-sxm", batch=1, context=4096, weight_dtype="int4")[0].kv_bytes == cm.kv_cache_bytes(
        cfg.with_(n_kv_heads=32), batch=1, context=4096, kv_dtype="bf16")  # fmt: skip
    assert Replica(cfg, "h100-sxm", weight_dtype="int4").kv_dtype == "bf16"
    assert Replica(cfg, "h100-sxm", weight_dtype="fp8").kv_dtype == "fp8"  # fp8 weights: unchanged


def gpt_oss(**extra) -> dict:
    return {**HF["gpt-oss-20b"]["config"], **extra}


@pytest.mark.parametrize(
    "quantization_config, carried",
    [
        ({"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}, "mxfp4"),  # openai/gpt-oss-20b
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, "awq, 4-bit"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bitsandbytes, 4-bit"),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8"),
        ({"bits": 8}, "unnamed method, 8-bit"),
    ],
)
def test_a_quantization_config_is_carried_and_changes_no_count(quantization_config, carried):
    cfg = cm.load_hf_config(gpt_oss(quantization_config=quantization_config))
    assert cfg.quantization == carried
    assert cfg == cm.MODELS["gpt-oss-20b"] and cm.param_count(cfg) == 20_914_757_184  # card: 20.9 B
    assert cm.load_hf_config(gpt_oss()).quantization == ""
    gemma = {**HF["gemma-3-27b"]["config"], "quantization_config": quantization_config}  # top level of the
    assert cm.load_hf_config(gemma).quantization == carried  # multimodal config, beside its text_config


@pytest.mark.parametrize(
    "quantization_config, key",
    [({"quant_method": 4}, "quant_method"), ({"bits": "4"}, "bits"), ({"load_in_4bit": "true"}, "load_in_4bit"),
     ("mxfp4", "quantization_config")],
)  # fmt: skip
def test_a_quantization_config_of_the_wrong_type_is_an_error_naming_the_key(quantization_config, key):
    with pytest.raises(ValueError, match=f"'{key}' must be"):
        cm.load_hf_config(gpt_oss(quantization_config=quantization_config))
    with pytest.raises(ValueError, match="quantization must be a string"):
        M["llama-3-8b"].with_(quantization=4)


def test_a_budget_that_does_not_fit_says_what_it_lacks():
    over = cm.memory_budget(M["llama-3-8b"], "h100-sxm", batch=100, context=8192)
    assert over.shortfall == -over.kv_free == over.used - over.usable > 0 and not over.fits
    fits = cm.memory_budget(M["llama-3-8b"], "h100-sxm", batch=52, context=8192)
    assert fits.shortfall == 0 and fits.fits
