"""The serving memory budget (costmodel.budget) and paged KV (costmodel.memory.kv_blocks, paged_kv_bytes):
terms that add up to the device exactly, block rounding at the boundaries, vLLM's defaults per chip."""

import math

import pytest

import costmodel as cm
from costmodel.budget import BATCH_DEFAULTS, CUDA_GRAPH_BYTES, NON_TORCH_BYTES, NON_TORCH_TP_BYTES, TERMS
from costmodel.hardware import GIB
from costmodel.layers import Layer

M = cm.MODELS


def brute_blocks(window, context, b):
    """Blocks a layer holds by its most so far: for every s <= context, the blocks the kept positions span."""
    most = 0
    for s in range(1, context + 1):
        first = 0 if window is None else max(0, s - window)
        most = max(most, (s - 1) // b - first // b + 1)
    return most


@pytest.mark.parametrize("window", [None, 1, 7, 16, 40, 64])
@pytest.mark.parametrize("b", [1, 4, 16])
def test_kv_blocks_equals_the_positions_counted_one_by_one(window, b):
    layer = Layer("full" if window is None else "sliding", window, "dense")
    for s in range(1, 130):
        assert cm.kv_blocks(layer, s, b) == brute_blocks(window, s, b), (window, b, s)


def test_block_rounding_at_16k():
    """Full layers: ceil(S/16)·16 positions; a 4096-window layer: 256 blocks up to S = 4096, then 257."""
    cfg = M["llama-3-8b"]  # 32 full layers, 8 KV heads x 128, bf16: 2·8·128·2 = 4096 bytes per position per layer
    per_position = 32 * 2 * 8 * 128 * 2
    for s, positions in ((16383, 16384), (16384, 16384), (16385, 16400)):
        assert cm.paged_kv_bytes(cfg, batch=1, context=s) == positions * per_position
        assert cm.kv_cache_bytes(cfg, batch=1, context=s) == s * per_position  # unpaged: exact positions
    sliding = Layer("sliding", 4096, "dense")
    assert [cm.kv_blocks(sliding, s) for s in (4095, 4096, 4097, 16383, 16384, 16385)] == [256, 256, 257, 257, 257, 257]
    gemma = M["gemma-2-9b"]  # 21 sliding (W=4096) + 21 full layers, 8 KV heads x 256
    per_layer = 2 * 8 * 256 * 2
    for s in (16383, 16384, 16385):
        full = math.ceil(s / 16) * 16
        assert cm.paged_kv_bytes(gemma, batch=1, context=s) == 21 * (full + 257 * 16) * per_layer


@pytest.mark.parametrize(
    "name, hw, tp, ep, wd, kd",
    [
        ("llama-3-8b", "h100-sxm", 1, 1, "bf16", "bf16"),
        ("llama-2-70b", "h200-sxm", 4, 1, "int4", "fp8"),  # int4: half bytes, rounded up to whole bytes
        ("gemma-2-9b", "a100-sxm-40gb", 2, 1, "fp8", "fp8"),
        ("mixtral-8x7b", "h100-sxm", 2, 2, "bf16", "bf16"),
        ("t5.1.1-xxl", "l40s", 1, 1, "bf16", "bf16"),
    ],
)
@pytest.mark.parametrize("batch", [0, 1, 7, 300])
def test_budget_terms_add_up_to_the_device_exactly(name, hw, tp, ep, wd, kd, batch):
    b = cm.memory_budget(M[name], hw, batch=batch, context=3001, tp=tp, ep=ep, weight_dtype=wd, kv_dtype=kd)
    terms = b.terms()
    assert tuple(terms) == TERMS and all(isinstance(v, int) for v in terms.values())
    assert sum(terms.values()) == b.device == cm.HARDWARE[hw].memory_bytes
    assert b.kv_pool == b.usable - b.runtime_reserve - b.weights - b.activations
    assert b.fits == (b.kv_free >= 0)


def test_budget_defaults_are_vllms():
    """vLLM's EngineArgs.get_batch_defaults: 8192 tokens / 1024 sequences for `vllm serve` on >= 70 GiB chips
    other than the A100, else 2048 / 256; the LLM class 16384 / 8192."""
    serve, offline = cm.ServerConfig(), cm.ServerConfig(usage="offline")
    cases = {"h100-sxm": (8192, 1024, 16384), "h200-sxm": (8192, 1024, 16384), "mi300x": (8192, 1024, 16384),
             "a100-sxm-80gb": (2048, 256, 8192), "l4": (2048, 256, 8192)}  # fmt: skip
    for hw, (tokens, seqs, offline_tokens) in cases.items():
        r = serve.resolve(hw)
        assert (r.max_num_batched_tokens, r.max_num_seqs) == (tokens, seqs)
        assert offline.resolve(hw).max_num_batched_tokens == offline_tokens
        assert r.memory_utilization == 0.9 and r.block_size == 16
    assert BATCH_DEFAULTS[("serve", True)] == (8192, 1024)
    assert serve.resolve("h100-sxm", tp=1).runtime_reserve_bytes == NON_TORCH_BYTES + CUDA_GRAPH_BYTES
    assert serve.resolve("h100-sxm", tp=4).runtime_reserve_bytes == NON_TORCH_TP_BYTES + CUDA_GRAPH_BYTES
    assert NON_TORCH_BYTES == round(1.79 * GIB) and NON_TORCH_TP_BYTES == round(3.58 * GIB)  # vLLM PR #10511


def test_activation_peak_is_one_chunk_and_the_logits_of_max_num_seqs():
    """Llama-3-8B: 2D + (N + 2K)·Dh + N·Dh + 2F + D = 51,200 activations per token, bf16; fp32 logits."""
    b = cm.memory_budget(M["llama-3-8b"], "h100-sxm", batch=1, context=128)
    assert b.activations == 8192 * 51200 * 2 + 1024 * 128256 * 4
    small = cm.ServerConfig(max_num_batched_tokens=512, max_num_seqs=64)
    b = cm.memory_budget(M["llama-3-8b"], "h100-sxm", batch=1, context=128, server=small)
    assert b.activations == 512 * 51200 * 2 + 64 * 128256 * 4


def test_largest_batch_and_context_are_the_edges_of_fitting():
    cfg = M["llama-3-8b"]
    for context in (1000, 8192, 16385):
        n = cm.max_batch(cfg, "h100-sxm", context=context)
        assert cm.memory_budget(cfg, "h100-sxm", batch=n, context=context).fits
        assert not cm.memory_budget(cfg, "h100-sxm", batch=n + 1, context=context).fits
    for batch in (1, 52, 300):
        s = cm.max_context(cfg, "h100-sxm", batch=batch)
        assert cm.memory_budget(cfg, "h100-sxm", batch=batch, context=s).fits
        assert not cm.memory_budget(cfg, "h100-sxm", batch=batch, context=s + 1).fits
    # every layer sliding (Mistral-7B v0.1: W = 4096): the cache stops growing, so no context limit
    assert cm.max_context(M["mistral-7b"], "h100-sxm", batch=1) is None
    assert cm.max_context(M["llama-2-70b"], "l4", batch=1) == 0  # the weights alone do not fit


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(memory_utilization=1e-320), "memory_utilization must be a number in [0.01, 1]"),
        (dict(memory_utilization=1.5), "memory_utilization"),
        (dict(memory_utilization=True), "memory_utilization"),
        (dict(block_size=0), "block_size"),
        (dict(max_num_seqs=2048, max_num_batched_tokens=1024), "must be at least max_num_seqs"),
        (dict(runtime_reserve_bytes=-1), "runtime_reserve_bytes"),
        (dict(usage="batch"), "usage"),
    ],
)
def test_server_config_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        cm.ServerConfig(**kwargs)
