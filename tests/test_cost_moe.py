"""Mixture of experts: published totals and active parameters, the expected-experts formula against a Monte
Carlo of random top-k routing, decode bytes and FLOPs of the routed experts, tensor and expert parallelism."""

import math

import numpy as np
import pytest

import costmodel as cm

M = cm.MODELS


def _b(n: int) -> float:
    return n / 1e9


def test_published_totals_and_active_parameters():
    # Mixtral-8x7B model card / Mistral's announcement: 46.7 B total, 12.9 B active
    assert round(_b(cm.param_count(M["mixtral-8x7b"])), 1) == 46.7
    assert round(_b(cm.active_param_count(M["mixtral-8x7b"])), 1) == 12.9
    # Mixtral-8x22B: 141 B total, 39 B active
    assert round(_b(cm.param_count(M["mixtral-8x22b"]))) == 141
    assert round(_b(cm.active_param_count(M["mixtral-8x22b"]))) == 39
    # Qwen3-30B-A3B model card: "30.5B in total and 3.3B activated" (non-embedding 29.9B). Ours: 30.53 B and
    # 3.353 B active: the card's 3.3 is the figure cut to one decimal (rounded, 3.353 would read 3.4)
    total, active = cm.param_count(M["qwen3-30b-a3b"]), cm.active_param_count(M["qwen3-30b-a3b"])
    assert round(_b(total), 1) == 30.5 and math.floor(_b(active) * 10) / 10 == 3.3
    assert round(_b(total - 2 * 151936 * 2048), 1) == 29.9  # the card's non-embedding total
    # Qwen3-235B-A22B model card: 235 B total, 22 B activated
    assert round(_b(cm.param_count(M["qwen3-235b-a22b"]))) == 235
    assert round(_b(cm.active_param_count(M["qwen3-235b-a22b"]))) == 22


def test_gpt_oss_published_figures_and_active_conventions():
    # gpt-oss model card (OpenAI 2025, Table 1): 116.83 B / 20.91 B total; 5.13 B / 3.61 B active, counted
    # without the input embedding table; with it (the default, as Mistral and Qwen count) 5.7 B / 4.2 B
    big, small = M["gpt-oss-120b"], M["gpt-oss-20b"]
    assert round(_b(cm.param_count(big)), 1) == 116.8 and round(_b(cm.param_count(small)), 1) == 20.9
    assert round(_b(cm.active_param_count(big, convention="no_input_embedding")), 1) == 5.1
    assert round(_b(cm.active_param_count(small, convention="no_input_embedding")), 1) == 3.6
    assert round(_b(cm.active_param_count(big)), 1) == 5.7 and round(_b(cm.active_param_count(small)), 1) == 4.2
    assert cm.active_param_count(big) - cm.active_param_count(big, convention="no_input_embedding") == 201088 * 2880


def test_active_parameters_written_out():
    """Mixtral: total minus (E - k) = 6 experts of 3·D·F_e in each of the 32 layers."""
    c = M["mixtral-8x7b"]
    assert cm.param_count(c) - cm.active_param_count(c) == 32 * 6 * 3 * 4096 * 14336
    dense = M["llama-3-8b"]
    assert cm.active_param_count(dense) == cm.param_count(dense)
    assert cm.active_param_count(dense, convention="no_input_embedding") == cm.param_count(dense) - 128256 * 4096
    tied = M["gemma-7b"]  # a tied table is also the output layer: kept under either convention
    assert cm.active_param_count(tied, convention="no_input_embedding") == cm.param_count(tied)
    with pytest.raises(ValueError, match="convention"):
        cm.active_param_count(c, convention="card")


@pytest.mark.parametrize("experts,top_k,tokens", [(8, 2, 1), (8, 2, 3), (8, 2, 16), (32, 4, 5), (128, 8, 1),
                                                  (128, 8, 16), (128, 8, 64)])  # fmt: skip
def test_expected_experts_matches_monte_carlo_of_random_topk(experts, top_k, tokens):
    """Each token picks k distinct experts uniformly at random (the top k of i.i.d. uniform scores)."""
    rng = np.random.default_rng(experts * 1000 + tokens)
    trials = 4000 if experts * tokens < 2000 else 600
    scores = rng.random((trials, tokens, experts))  # (trials, n, E)
    chosen = np.argpartition(scores, -top_k, axis=-1)[..., -top_k:]  # (trials, n, k)
    hit = np.zeros((trials, experts), dtype=bool)
    np.put_along_axis(hit, chosen.reshape(trials, -1), True, axis=1)
    mc = hit.sum(axis=1).mean()
    assert abs(mc - cm.expected_experts(experts, top_k, tokens)) <= 0.01 * mc
    assert cm.expected_experts(experts, top_k, 1) == pytest.approx(top_k)


def test_expected_experts_limits_and_errors():
    assert cm.expected_experts(8, 2, 10**15) == 8.0 and cm.expected_experts(8, 8, 3) == 8.0
    for bad in (dict(top_k=9), dict(tokens=0), dict(n_experts=True)):
        with pytest.raises(ValueError):
            cm.expected_experts(**{"n_experts": 8, "top_k": 2, "tokens": 4, **bad})


def _expert_bytes(lat):
    return sum(op.bytes for op in lat.ops if op.name.startswith("moe_experts"))


def test_decode_reads_the_experts_a_step_touches():
    """Batch 1 reads k experts' weights; a big batch all E; in between E·(1 - (1 - k/E)^B)."""
    c = M["mixtral-8x7b"]
    d, f = 4096, 14336
    one_expert = 3 * d * f * 2  # bf16 bytes
    for batch in (1, 4, 64):
        lat = cm.decode_latency(c, "h100-sxm", batch=batch, context=1024, eff=cm.IDEAL)
        weights = 32 * one_expert * cm.expected_experts(8, 2, batch)
        pairs = 2 * batch
        acts = 32 * pairs * ((d + 2 * f) + 3 * f + (f + d)) * 2  # in, act and down read/write (B·k) rows
        assert _expert_bytes(lat) == pytest.approx(weights + acts, rel=1e-12)
    assert cm.expected_experts(8, 2, 64) == pytest.approx(8, rel=1e-6)
    flops = cm.decode_flops(c, batch=4, context=1024)
    assert flops.items["layers/moe/experts/up"] == 32 * 2 * (4 * 2) * 4096 * 14336  # B·k token-expert pairs
    assert flops.items["layers/moe/router"] == 32 * 2 * 4 * 4096 * 8
    lat = cm.decode_latency(c, "h100-sxm", batch=4, context=1024, eff=cm.IDEAL)
    assert lat.flops == flops.total  # the ops sum to the FLOPs model


def test_tensor_parallel_shards_each_expert_and_expert_parallel_places_whole_experts():
    c = M["mixtral-8x7b"]
    full = cm.per_device_param_breakdown(c, 1)
    tp2 = cm.per_device_param_breakdown(c, 2)
    ep2 = cm.per_device_param_breakdown(c, 1, ep=2)
    ep4tp2 = cm.per_device_param_breakdown(c, 2, ep=4)
    key = "layers/moe/experts/w_gate"
    assert tp2[key] * 2 == ep2[key] * 2 == ep4tp2[key] * 8 == full[key]
    assert ep2["layers/moe/w_router"] == full["layers/moe/w_router"]  # the router is on every device
    assert ep2["layers/attn/w_q"] == full["layers/attn/w_q"]  # attention replicated across ep groups
    assert cm.weight_bytes(c, tp=1, ep=2) < cm.weight_bytes(c, tp=1)
    with pytest.raises(ValueError, match="ep must divide the number of experts 8"):
        cm.per_device_param_breakdown(c, 1, ep=3)
    with pytest.raises(ValueError, match="ep applies to mixture-of-experts"):
        cm.decode_latency(M["llama-3-8b"], "h100-sxm", batch=1, context=8, ep=2)
    narrow = c.with_(moe=cm.MoE(n_experts=8, top_k=2, d_ff=24))
    with pytest.raises(ValueError, match="moe.d_ff=24"):
        cm.check_tp(narrow, 16)  # TP splits each expert's width


def test_expert_parallel_all_to_all_alpha_beta():
    """Two all-to-alls per MoE layer (dispatch, combine); each device sends (ep-1)/ep of its (B/ep·k, D/tp)
    token copies; α per message, β = the link bandwidth."""
    c, hw, alpha = M["mixtral-8x7b"], cm.get_hardware("h100-sxm"), 2e-6
    lat = cm.decode_latency(c, hw, batch=8, context=512, ep=4, eff=cm.IDEAL, link_latency_s=alpha)
    a2a = [op for op in lat.ops if op.name in ("moe_dispatch", "moe_combine")]
    assert [op.count for op in a2a] == [32, 32] and all(op.bound == "link" for op in a2a)
    message = (8 // 4) * 2 * 4096 * 2  # tokens per group · k · D · bf16
    one = 3 / 4 * message / hw.link_bandwidth + 3 * alpha
    assert one == pytest.approx(cm.alltoall_time(message, 4, hw.link_bandwidth, latency_s=alpha))
    assert sum(op.comm_s for op in a2a) == pytest.approx(2 * 32 * one)
    assert cm.alltoall_time(1e6, 1, 1e9) == 0.0
    none = cm.decode_latency(c, hw, batch=8, context=512, eff=cm.IDEAL)
    assert not any(op.bound == "link" for op in none.ops)


def test_qwen2_moe_shared_expert_and_dense_layers():
    cfg = cm.ModelConfig(
        d_model=64, n_layers=4, n_heads=4, d_ff=96, vocab_size=100, dense_layers=(0,),
        moe=cm.MoE(n_experts=4, top_k=2, d_ff=32, n_shared=1, shared_d_ff=48, shared_gate=True),
    )  # fmt: skip
    b = cm.param_breakdown(cfg)
    assert b["layers/ffn/w_up"] == 1 * 64 * 96  # layer 0 is dense
    assert b["layers/moe/experts/w_up"] == 3 * 4 * 64 * 32 and b["layers/moe/shared/w_up"] == 3 * 64 * 48
    assert b["layers/moe/w_shared_gate"] == 3 * 64 and b["layers/moe/w_router"] == 3 * 64 * 4
    assert [layer.ffn for layer in cfg.layers] == ["dense", "moe", "moe", "moe"]
    d = cm.decode_latency(cfg, "h100-sxm", batch=3, context=10, eff=cm.IDEAL)
    assert d.flops == cm.decode_flops(cfg, batch=3, context=10).total
    p = cm.prefill_latency(cfg, "h100-sxm", batch=2, prompt_len=7)
    assert p.flops == cm.prefill_flops(cfg, batch=2, prompt_len=7).total


@pytest.mark.parametrize(
    "moe,field",
    [
        (dict(n_experts=4, top_k=5, d_ff=8), "top_k"),
        (dict(n_experts=0, top_k=1, d_ff=8), "n_experts"),
        (dict(n_experts=4, top_k=1, d_ff=8, shared_gate=True), "shared_gate"),
        (dict(n_experts=4, top_k=1, d_ff=8, router_bias="yes"), "router_bias"),
        (dict(n_experts=4, top_k=1, d_ff=8, shared_d_ff=4), "shared_d_ff"),
    ],
)
def test_bad_moe_names_the_field(moe, field):
    with pytest.raises(ValueError, match=field):
        cm.MoE(**moe)
