"""FLOP formulas against independent counts (brute-force masks, written-out totals)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import costmodel as cm


def brute_pairs(t, s, window=None, causal=True):
    """Count allowed (query, key) pairs from an explicit bottom-right-aligned mask."""
    q_pos = np.arange(t)[:, None] + s - t  # (T, 1)
    k_pos = np.arange(s)[None, :]  # (1, S)
    allowed = np.ones((t, s), bool) if not causal else k_pos <= q_pos  # (T, S)
    if window is not None:
        allowed &= k_pos > q_pos - window
    return int(allowed.sum())


@given(st.integers(1, 40), st.integers(0, 40), st.one_of(st.none(), st.integers(1, 50)))
def test_attention_pairs_match_explicit_mask(t, extra, window):
    s = t + extra
    assert cm.attention_pairs(t, s, window=window) == brute_pairs(t, s, window)
    assert cm.attention_pairs(t, s, causal=False) == brute_pairs(t, s, causal=False) == t * s


def test_causal_triangle_counted_exactly():
    b, n, dh, t = 2, 4, 8, 100
    core = cm.attention_core_flops(b, t, t, n, dh)
    assert core["qk"] == core["pv"] == 2 * b * n * dh * t * (t + 1) // 2
    assert core["softmax"] == cm.flops.SOFTMAX_FLOPS_PER_SCORE * b * n * t * (t + 1) // 2


def test_decode_flops_written_out():
    """Llama-2-7B, one token at context S: 2 x (matrix params incl. lm_head) + 4 L D S (QK^T and PV)."""
    cfg, s, d, f, v, layers = cm.MODELS["llama-2-7b"], 1000, 4096, 11008, 32000, 32
    got = cm.decode_flops(cfg, batch=1, context=s)
    assert got.matmul == 2 * (layers * (4 * d * d + 3 * d * f) + v * d) + 4 * layers * d * s
    assert got.items["embed"] == 0 and got.items["lm_head"] == 2 * v * d


def test_kipply_13b_flops_per_token():
    """kipply 2022: ~2 x 12 L D^2 per token, plus the lm_head 2 V D; the rest is attention and elementwise."""
    cfg = cm.MODELS["kipply-13b"]
    got = cm.decode_flops(cfg, batch=1, context=1).matmul
    assert got == 2 * (12 * 40 * 5120**2 + 50272 * 5120) + 4 * 40 * 5120


def test_ffn_flops_per_variant():
    for v in ("relu", "swiglu"):
        fl = cm.ffn_flops(3, 8, 16, v, bias=True)
        n_mat = 3 if v == "swiglu" else 2
        assert sum(fl[k] for k in ("gate", "up", "down") if k in fl) == n_mat * 2 * 3 * 8 * 16
        assert fl["bias"] == 3 * ((n_mat - 1) * 16 + 8)


def test_prefill_training_and_gqa_independence():
    cfg = cm.MODELS["llama-2-7b"]
    fwd = cm.forward_flops(cfg, batch=2, q_len=64, kv_len=64, logits="all").total
    assert cm.training_flops(cfg, batch=2, seq_len=64) == 3 * fwd
    pre = cm.prefill_flops(cfg, batch=2, prompt_len=64)
    assert fwd - pre.total == 2 * 2 * 63 * 4096 * 32000  # lm_head on the last token only
    # attention core FLOPs do not depend on K; projections shrink with K
    gqa = cfg.with_(n_kv_heads=8)
    a, b = cm.layer_flops(cfg, batch=1, q_len=8, kv_len=8), cm.layer_flops(gqa, batch=1, q_len=8, kv_len=8)
    assert a["attn/qk"] == b["attn/qk"] and b["attn/k"] * 4 == a["attn/k"]


def test_encoder_decoder_prefill_includes_bidirectional_encoder():
    cfg = cm.MODELS["t5.1.1-base"]
    enc = cm.encoder_flops(cfg, batch=1, src_len=10)
    assert enc["encoder/layers/attn/qk"] == 12 * 2 * 12 * 64 * 10 * 10  # full T x T, not the triangle
    pre = cm.prefill_flops(cfg, batch=1, prompt_len=10)
    assert pre.items["decoder/layers/cross_attn/qk"] == 12 * 2 * 12 * 64 * 10  # first decoder token, 10 keys


@pytest.mark.parametrize(
    "call",
    [
        lambda: cm.attention_pairs(5, 3),
        lambda: cm.attention_pairs(0, 3),
        lambda: cm.ffn_flops(1, 8, -2, "relu"),
        lambda: cm.attention_pairs(2, 3, causal=False, window=2),
    ],
)
def test_bad_flops_input(call):
    with pytest.raises(ValueError):
        call()
