"""Each physical term of the latency model on its own, against its formula's limits and published figures."""

import math

import pytest

import costmodel as cm
from costmodel.parallel import collective_path, ring_allreduce_latency
from costmodel.roofline import TILE_N, attention_tile_efficiency, gemm_tile_efficiency

M, H = cm.MODELS, cm.HARDWARE
FLAT = cm.Efficiency(wave_quantization=False)  # the estimate without tile quantization (isolates a term)


def test_allreduce_ring_limits():
    """Ring all-reduce: 2(p-1)/p of the message per link; tiny messages cost α, huge ones bytes / bandwidth."""
    bw, alpha = 300e9, 20e-6
    for p in (2, 4, 8):
        assert cm.ring_allreduce_bytes(1e6, p) == pytest.approx(2 * (p - 1) / p * 1e6, rel=1e-15)
        assert cm.allreduce_time(1.0, p, bw, latency_s=alpha) == pytest.approx(alpha, rel=1e-6)  # α-dominated
        big = 1e15
        t = cm.allreduce_time(big, p, bw, latency_s=alpha, efficiency=0.8)
        assert t / (2 * (p - 1) / p * big / (bw * 0.8)) == pytest.approx(1.0, rel=1e-6)  # β-dominated
    assert cm.allreduce_time(1e9, 1, bw) == 0.0


def test_allreduce_latency_steps_ring_two_shot_and_network():
    """NCCL's model: base + 2(p-1) steps on a ring; 2 steps two-shot on a direct fabric (NVSwitch); across
    nodes 2(nodes-1) of the ring's steps cross the network, at its bandwidth."""
    base = 14e-6
    l40s = collective_path(H["l40s"], 8)  # PCIe: a ring
    assert not l40s.direct and ring_allreduce_latency(8, l40s, base_s=base) == pytest.approx(base + 14 * 1.0e-6)
    h100 = collective_path(H["h100-sxm"], 8)  # NVSwitch: two-shot
    assert h100.direct and ring_allreduce_latency(8, h100, base_s=base) == pytest.approx(base + 2 * 0.6e-6)
    two = collective_path(H["h100-sxm"], 16)  # two nodes of 8: a ring over the network
    assert two.nodes == 2 and two.bandwidth == H["h100-sxm"].network_bandwidth and "inter-node network" in two.note
    assert ring_allreduce_latency(16, two, base_s=base) == pytest.approx(base + 28 * 0.6e-6 + 2 * 2.7e-6)
    assert ring_allreduce_latency(1, h100, base_s=base) == 0.0
    with pytest.raises(ValueError, match="no network_bandwidth"):
        collective_path(H["l40s"], 16)


# NCCL's topology model of a PCIe link (src/graph/topo.cc, ncclTopoAddPci): width x per-lane rate / 80 GB/s,
# the per-lane rate in 100 Mb/s: 120 for 16 GT/s (PCIe 4.0), 240 for 32 GT/s (PCIe 5.0)
NCCL_PCIE_RATE = {"PCIe 4.0 x16": 120, "PCIe 5.0 x16": 240}


def test_pcie_links_are_their_data_rate_and_give_the_measured_bus_bandwidth():
    """PCIe parts carry NCCL's data rate of an x16 link (24 / 48 GB/s, not the 32 / 64 GB/s signalling rate);
    a large ring all-reduce over four PCIe 4.0 cards then runs at 18-22 GB/s of bus bandwidth, what
    nccl-tests all_reduce_perf reports for four PCIe 4.0 x16 GPUs on one CPU (NVIDIA/nccl#1603: 18 GB/s
    through host memory, 22 GB/s peer to peer)."""
    pcie = {name: hw for name, hw in H.items() if hw.link and hw.link.startswith("PCIe")}
    assert set(pcie) >= {"l4", "l40s", "h100-pcie"}
    for hw in pcie.values():
        assert hw.link_bandwidth == 16 * NCCL_PCIE_RATE[hw.link] / 80 * 1e9
    message, p = 256e6, 4
    t = cm.allreduce_time(message, p, H["l40s"].link_bandwidth, efficiency=cm.ESTIMATE.link)
    bus_bandwidth = cm.ring_allreduce_bytes(message, p) / t  # nccl-tests' busbw: algbw x 2(p-1)/p
    assert 18e9 <= bus_bandwidth <= 22e9


def test_small_allreduce_matches_nccl_tests_on_an_nvswitch_node():
    """nccl-tests all_reduce_perf on 8 GPUs of an NVSwitch node: 16.7 µs for 4 KB (deepseek-ai/DeepEP#303,
    8 x H20); the model: start-up + 2 steps + one kernel + bytes, within 15%."""
    eff, hw = cm.ESTIMATE, H["h100-sxm"]
    path = collective_path(hw, 8)
    t = eff.kernel_overhead_s + cm.allreduce_time(
        4096, 8, path.bandwidth, latency_s=ring_allreduce_latency(8, path, base_s=eff.collective_latency_s),
        efficiency=eff.link,
    )  # fmt: skip
    assert abs(t / 16.7e-6 - 1) < 0.15


def test_tensor_parallel_past_one_node_is_timed_on_the_network_and_says_so():
    cfg = M["llama-2-70b"]
    one = cm.decode_latency(cfg, "h100-sxm", batch=1, context=512, tp=8)
    two = cm.decode_latency(cfg, "h100-sxm", batch=1, context=512, tp=16)
    assert not one.notes and any("inter-node network" in n for n in two.notes)
    ar8 = sum(op.comm_s for op in one.ops if op.bound == "link")
    ar16 = sum(op.comm_s for op in two.ops if op.bound == "link")
    assert ar16 > 2 * ar8  # 50 GB/s per device instead of 450, 30 ring steps instead of 2
    msg = 8192 * 2  # one token's activations, bf16
    eff, hw = cm.ESTIMATE, H["h100-sxm"]
    alpha = eff.collective_latency_s + 28 * hw.link_latency_s + 2 * hw.network_latency_s
    expect = 160 * (alpha + 2 * 15 / 16 * msg / (hw.network_bandwidth * eff.link))
    assert ar16 == pytest.approx(expect, rel=1e-12)


def test_int4_bytes_with_group_scales_match_gpt_fast():
    """Llama-2-7B int4, groups of 32 with a bf16 scale and zero (gpt-fast quantize.py): 0.5 + 4/32 bytes per
    weight of every linear layer; with the bf16 embedding table and norms that is gpt-fast's model size,
    README: 862.69 GB/s at 196.80 tok/s = 4.384 GB read per token (its 'bandwidth' counts every buffer)."""
    cfg = M["llama-2-7b"]
    d = cm.decode_latency(cfg, "a100-sxm-80gb", batch=1, context=1, weight_dtype="int4", kv_dtype="bf16",
                          group_size=32, group_bytes=4)  # fmt: skip
    breakdown = cm.param_breakdown(cfg)
    embed, norms = breakdown["embed"], sum(v for k, v in breakdown.items() if "norm" in k)
    linear = cm.param_count(cfg) - embed - norms
    ffn_in = next(op for op in d.ops if op.name == "ffn_in")
    act = 1 * (4096 + 2 * 11008) * 2  # the token's input and the two outputs, bf16
    assert ffn_in.bytes - 32 * act == pytest.approx(32 * 2 * 4096 * 11008 * (0.5 + 4 / 32), rel=1e-12)
    model_size = linear * (0.5 + 4 / 32) + 2 * (embed + norms)
    assert model_size == pytest.approx(862.69e9 / 196.80, rel=0.005)
    # the same extra bytes as costmodel.weight_bytes with one 4-byte "scale" per group
    plain = cm.decode_latency(cfg, "a100-sxm-80gb", batch=1, context=1, weight_dtype="int4", kv_dtype="bf16")
    matrices = sum(op.bytes for op in d.ops) - sum(op.bytes for op in plain.ops)
    assert matrices == pytest.approx(linear * 4 / 32, rel=1e-12)


def test_kv_read_per_query_head_multiplies_decode_cache_bytes_by_n_over_k():
    cfg = M["llama-2-70b"]  # N/K = 64/8
    kw = dict(batch=4, context=3000, eff=FLAT)
    grouped = cm.decode_latency(cfg, "h100-sxm", **kw)
    per_head = cm.decode_latency(cfg, "h100-sxm", batch=4, context=3000, eff=cm.Efficiency(
        wave_quantization=False, kv_read_per_query_head=True))  # fmt: skip
    cache = 4 * 3000 * 2 * 8 * 128 * 2 * 80  # B · S · (K, V) · K · Dh · bf16 · layers
    core = {lat: next(op for op in lat.ops if op.name == "attn_core") for lat in (grouped, per_head)}
    assert core[per_head].bytes - core[grouped].bytes == cache * (64 // 8 - 1)
    assert any("once per query head" in n for n in per_head.notes) and not grouped.notes
    mha = cm.decode_latency(M["llama-2-7b"], "h100-sxm", batch=4, context=3000, eff=per_head.efficiency)
    assert mha.total_s == cm.decode_latency(M["llama-2-7b"], "h100-sxm", batch=4, context=3000, eff=FLAT).total_s
    prefill = [cm.prefill_latency(cfg, "h100-sxm", batch=1, prompt_len=512, eff=e).total_s
               for e in (FLAT, per_head.efficiency)]  # fmt: skip
    assert prefill[0] == prefill[1]  # a decode-kernel setting


def test_power_limited_a100_variant():
    """gpt-fast README: an A100 80GB power-limited to 330 W peaks at ~1700 GB/s: the variant streams at
    exactly that under the default HBM efficiency, the rest of the part unchanged."""
    cap, full = H["a100-sxm-80gb-330w"], H["a100-sxm-80gb"]
    achieved = cap.hbm_bandwidth * cap.hbm_efficiency_factor * cm.ESTIMATE.hbm
    assert achieved == pytest.approx(1700e9, rel=1e-3)
    assert cap.peak_flops == full.peak_flops and cap.memory_bytes == full.memory_bytes
    a = cm.decode_latency(M["llama-2-7b"], cap, batch=1, context=200, eff=FLAT)
    b = cm.decode_latency(M["llama-2-7b"], full, batch=1, context=200, eff=FLAT)
    memory = sum(op.memory_s for op in b.ops)
    assert sum(op.memory_s for op in a.ops) == pytest.approx(memory / 0.926, rel=1e-12)


def test_fp8_weights_without_an_fp8_peak_compute_at_bf16_and_say_so():
    d = cm.decode_latency(M["llama-2-7b"], "a100-sxm-80gb", batch=1, context=8, weight_dtype="fp8")
    assert any("no fp8 peak: computed at the bf16 rate" in n for n in d.notes)
    h = cm.decode_latency(M["llama-2-7b"], "h100-sxm", batch=1, context=8, weight_dtype="fp8")
    assert not h.notes


def test_compute_rates_per_dtype_and_attention():
    """Compute-bound prefill: GEMMs at eff.flops (16-bit) or eff.flops_fp8 of the dtype's peak, the
    attention core at eff.attn_compute of the 16-bit rate."""
    cfg, hw = M["llama-2-7b"], H["h100-sxm"]
    eff = cm.Efficiency(wave_quantization=False, flops=0.6, flops_fp8=0.4, attn_compute=0.5)
    for dtype, peak in (("bf16", 989e12 * 0.6), ("fp8", 1979e12 * 0.4)):
        p = cm.prefill_latency(cfg, hw, batch=4, prompt_len=4096, weight_dtype=dtype, eff=eff)
        ffn = next(op for op in p.ops if op.name == "ffn_in")
        assert ffn.compute_s == pytest.approx(ffn.flops / peak, rel=1e-12)
        core = next(op for op in p.ops if op.name == "attn_core")
        assert core.compute_s == pytest.approx(core.flops / (989e12 * 0.6 * 0.5), rel=1e-12)


def test_dequantisation_attention_reads_and_step_overhead_each_act_alone():
    cfg, hw = M["llama-2-7b"], H["a100-sxm-80gb"]
    base = cm.Efficiency(wave_quantization=False, dequant_int4=1.0, attn_memory=1.0, step_overhead_s=0.0)
    kw = dict(batch=1, context=2048, weight_dtype="int4", kv_dtype="bf16")
    ref = cm.decode_latency(cfg, hw, eff=base, **kw)
    slow = cm.decode_latency(cfg, hw, eff=cm.Efficiency(**{**base.values(), "dequant_int4": 0.5}), **kw)
    for a, b in zip(ref.ops, slow.ops, strict=True):  # only ops holding weight matrices change
        weights = a.name.endswith(("_qkv", "_out", "_in", "_down")) or a.name == "lm_head"
        assert (b.memory_s > a.memory_s) == weights, a.name
    att = cm.decode_latency(cfg, hw, eff=cm.Efficiency(**{**base.values(), "attn_memory": 0.5}), **kw)
    assert [op.name for op, r in zip(att.ops, ref.ops, strict=True) if op.time_s != r.time_s] == ["attn_core"]
    step = cm.decode_latency(cfg, hw, eff=cm.Efficiency(**{**base.values(), "step_overhead_s": 1e-3}), **kw)
    assert step.total_s == pytest.approx(ref.total_s + 1e-3, rel=1e-12) and step.ops[-1].bound == "overhead"


def test_tile_and_wave_quantization():
    """NVIDIA's Matrix Multiplication Background guide: output tiles run in waves over the SMs."""
    assert gemm_tile_efficiency(4096, 132 * TILE_N, 132) == 1.0  # full tiles, whole waves
    assert gemm_tile_efficiency(128, 32 * TILE_N, 132) == pytest.approx(32 / 132)  # one partial wave
    assert gemm_tile_efficiency(1, 132 * TILE_N, 132) == pytest.approx(1 / 16)  # one row in a 16-row tile
    assert gemm_tile_efficiency(128, 133 * TILE_N, 132) == pytest.approx(133 / 264)  # a second wave of one
    assert gemm_tile_efficiency(8, 128, 10, groups=10) == pytest.approx(8 / 16)  # ten expert GEMMs, one wave
    assert attention_tile_efficiency(32, 128, 132) == pytest.approx(32 / 132)
    assert attention_tile_efficiency(132, 100, 132) == pytest.approx(100 / 128)
    # short prompts use the chip poorly: a 128-token prefill takes longer per token than a 2048-token one
    short = cm.prefill_latency(M["llama-2-7b"], "h200-sxm", batch=1, prompt_len=128, weight_dtype="fp8")
    flat = cm.prefill_latency(M["llama-2-7b"], "h200-sxm", batch=1, prompt_len=128, weight_dtype="fp8",
                              eff=cm.Efficiency(wave_quantization=False))  # fmt: skip
    assert short.total_s > 1.3 * flat.total_s


def test_ideal_is_the_pure_roofline():
    v = cm.IDEAL.values()
    assert all(v[p.name] == p.ideal for p in cm.roofline.PARAMS)
    assert v["wave_quantization"] is False and v["kv_read_per_query_head"] is False
    d = cm.decode_latency(M["llama-2-70b"], "h100-sxm", batch=8, context=4096, tp=4, eff=cm.IDEAL)
    assert all(op.overhead_s == 0 for op in d.ops)
    for op in d.ops:
        if op.bound != "link":
            assert op.time_s == max(op.flops / 989e12, op.bytes / 3.35e12)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(flops="0.5"), "eff.flops"),
        (dict(flops=True), "eff.flops"),
        (dict(flops=1e-320), "eff.flops"),
        (dict(kernel_overhead_s=math.inf), "eff.kernel_overhead_s"),
        (dict(kernel_overhead_s=1e308), "eff.kernel_overhead_s"),
        (dict(hbm=float("nan")), "eff.hbm"),
        (dict(collective_latency_s=-1e-6), "eff.collective_latency_s"),
        (dict(kv_read_per_query_head="false"), "eff.kv_read_per_query_head"),
        (dict(wave_quantization=1), "eff.wave_quantization"),
    ],
)
def test_efficiency_values_are_numbers_in_their_range(kw, name):
    with pytest.raises(ValueError, match=name):
        cm.Efficiency(**kw)
