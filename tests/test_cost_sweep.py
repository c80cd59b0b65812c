"""The vectorized sweep agrees with the scalar model for every preset it supports."""

import numpy as np
import pytest

import costmodel as cm

NAMES = ["llama-2-7b", "llama-2-70b", "llama-3-8b", "gemma-2b", "gemma-7b", "llama-3-70b"]


@pytest.mark.parametrize("eff", [cm.IDEAL, cm.ESTIMATE])
def test_sweep_matches_scalar(eff):
    cfgs = [cm.MODELS[n] for n in NAMES]
    out = cm.sweep_configs(cfgs, "h100-sxm", batch=7, context=3000, eff=eff)
    for i, c in enumerate(cfgs):
        d = cm.decode_latency(c, "h100-sxm", batch=7, context=3000, eff=eff)
        assert out["time_s"][i] == pytest.approx(d.total_s, rel=1e-12)
        assert out["flops"][i] == cm.decode_flops(c, batch=7, context=3000).total
        assert out["params"][i] == cm.param_count(c)
        assert out["kv_cache_bytes"][i] == cm.kv_cache_bytes(c, batch=7, context=3000)


def test_sweep_broadcasts_over_gqa_grid():
    k = np.array([64, 32, 16, 8, 4, 2, 1])[:, None]  # (7, 1)
    ctx = np.array([512, 4096, 32768])[None, :]  # (1, 3)
    h = cm.HARDWARE["a100-sxm-80gb"]
    out = cm.sweep_decode(
        d_model=8192,
        n_layers=80,
        n_heads=64,
        n_kv_heads=k,
        d_ff=28672,
        vocab_size=32000,
        batch=16,
        context=ctx,
        peak_flops=h.peak_flops["bf16"],
        hbm_bandwidth=h.hbm_bandwidth,
    )
    assert out["time_s"].shape == (7, 3)
    assert np.all(np.diff(out["time_s"], axis=0) < 0)  # fewer KV heads, faster decode
    assert np.array_equal(out["kv_cache_bytes"][0] / out["kv_cache_bytes"][3], np.full(3, 8.0))


def test_sweep_rejects_bad_input():
    h = cm.HARDWARE["l4"]
    kw = dict(
        d_model=64,
        n_layers=2,
        n_heads=8,
        d_ff=64,
        vocab_size=10,
        batch=1,
        context=4,
        peak_flops=h.peak_flops["bf16"],
        hbm_bandwidth=h.hbm_bandwidth,
    )
    with pytest.raises(ValueError, match="n_kv_heads"):
        cm.sweep_decode(n_kv_heads=np.array([8, 3]), **kw)
    with pytest.raises(ValueError, match="batch"):
        cm.sweep_decode(n_kv_heads=8, **{**kw, "batch": np.array([1, 0])})
    with pytest.raises(ValueError, match="ffn"):
        cm.sweep_decode(n_kv_heads=8, ffn="swigl", **kw)
    with pytest.raises(ValueError, match="qwen2-7b"):
        cm.sweep_configs([cm.MODELS["qwen2-7b"]], h, batch=1, context=4)


@pytest.mark.parametrize("chip", ["h100-sxm", "mi300x", "tpu-v4"])
@pytest.mark.parametrize("dtype", ["bf16", "int4"])
def test_sweep_matches_scalar_with_every_efficiency_term(chip, dtype):
    """Attention efficiencies, the KV-read setting, dequantisation, the step overhead, the chip factors and
    tile quantization (or its absence: TPUs have no compute-unit count) agree with decode_latency."""
    eff = cm.Efficiency(attn_memory=0.7, attn_compute=0.6, kv_read_per_query_head=True, dequant_int4=0.5,
                        step_overhead_s=2e-4, kernel_overhead_s=5e-6)  # fmt: skip
    cfgs = [cm.MODELS[n] for n in NAMES]
    for batch in (1, 37, 300):
        out = cm.sweep_configs(cfgs, chip, batch=batch, context=2500, weight_dtype=dtype, kv_dtype="bf16", eff=eff)
        for i, c in enumerate(cfgs):
            d = cm.decode_latency(c, chip, batch=batch, context=2500, weight_dtype=dtype, kv_dtype="bf16", eff=eff)
            assert out["time_s"][i] == pytest.approx(d.total_s, rel=1e-12)
