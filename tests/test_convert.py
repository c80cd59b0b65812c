"""Checkpoint conversion: MHA -> GQA pooling against pooling written out here, GQA -> MHA expansion is exact."""

from __future__ import annotations

import numpy as np
import pytest

from refimpl import attention_layer_forward, expand_kv_heads, init_attention_params, mean_pool_kv_heads
from refimpl.rope import Rope

D_MODEL, N_HEADS, HEAD_DIM = 10, 8, 4


def _head(w, h):
    """Columns (or bias entries) of head h."""
    return w[..., h * HEAD_DIM : (h + 1) * HEAD_DIM]


@pytest.mark.parametrize("n_kv", [1, 2, 4, 8])
@pytest.mark.parametrize("bias", [False, True, "qkv"])
def test_mean_and_first_equal_pooling_written_out(n_kv, bias):
    mha = init_attention_params(np.random.default_rng(n_kv), D_MODEL, N_HEADS, N_HEADS, HEAD_DIM, bias=bias)
    group = N_HEADS // n_kv
    mean = mean_pool_kv_heads(mha, N_HEADS, n_kv)
    first = mean_pool_kv_heads(mha, N_HEADS, n_kv, method="first")
    for name in ("w_k", "w_v", "b_k", "b_v"):
        if name not in mha:
            continue
        assert mean[name].shape == mha[name].shape[:-1] + (n_kv * HEAD_DIM,)
        for g in range(n_kv):
            members = [_head(mha[name], h) for h in range(g * group, (g + 1) * group)]
            np.testing.assert_allclose(_head(mean[name], g), sum(members) / group, rtol=1e-15, atol=1e-15)
            assert np.array_equal(_head(first[name], g), members[0])
    for name in set(mha) - {"w_k", "w_v", "b_k", "b_v"}:
        assert np.array_equal(mean[name], mha[name]) and mean[name] is not mha[name]  # kept, copied


def test_random_reinitialises_kv_heads_from_scratch():
    mha = init_attention_params(np.random.default_rng(0), 64, N_HEADS, N_HEADS, 16, bias=True)
    a = mean_pool_kv_heads(mha, N_HEADS, 2, method="random", rng=np.random.default_rng(5))
    b = mean_pool_kv_heads(mha, N_HEADS, 2, method="random", rng=np.random.default_rng(5))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # reproducible from the generator
    assert a["w_k"].shape == (64, 32) and abs(a["w_k"].std() * 8 - 1) < 0.1  # std 1/sqrt(D)
    mean = mean_pool_kv_heads(mha, N_HEADS, 2)
    assert np.corrcoef(a["w_k"].ravel(), mean["w_k"].ravel())[0, 1] < 0.2  # unrelated to the source heads
    assert np.array_equal(a["w_q"], mha["w_q"]) and np.array_equal(a["b_o"], mha["b_o"])
    with pytest.raises(ValueError, match="rng"):
        mean_pool_kv_heads(mha, N_HEADS, 2, method="random")


def test_pooling_a_layer_whose_group_heads_agree_keeps_its_outputs():
    """If the G heads of every group are equal, mean pooling loses nothing: GQA output == MHA output."""
    rng = np.random.default_rng(3)
    gqa = init_attention_params(rng, D_MODEL, N_HEADS, 2, HEAD_DIM, bias=True)
    mha = expand_kv_heads(gqa, N_HEADS, 2)
    pooled = mean_pool_kv_heads(mha, N_HEADS, 2)
    x = rng.standard_normal((2, 5, D_MODEL))
    y_mha, _ = attention_layer_forward(x, mha, n_heads=N_HEADS, n_kv_heads=N_HEADS, rope=Rope())
    y_pooled, _ = attention_layer_forward(x, pooled, n_heads=N_HEADS, n_kv_heads=2, rope=Rope())
    np.testing.assert_allclose(y_pooled, y_mha, rtol=1e-12, atol=1e-13)


def test_pooling_in_two_steps_equals_one_step():
    """MHA -> GQA-4 -> GQA-2 (pairs of pairs) equals MHA -> GQA-2: contiguous groups nest."""
    mha = init_attention_params(np.random.default_rng(2), D_MODEL, N_HEADS, N_HEADS, HEAD_DIM, bias=True)
    two_steps = mean_pool_kv_heads(mean_pool_kv_heads(mha, N_HEADS, 4), N_HEADS, 2)
    one_step = mean_pool_kv_heads(mha, N_HEADS, 2)
    for k in one_step:
        np.testing.assert_allclose(two_steps[k], one_step[k], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("n_kv", [1, 2, 4])
@pytest.mark.parametrize("rope", [None, Rope("interleaved", offset=4)])
def test_expansion_is_exact(n_kv, rope):
    rng = np.random.default_rng(n_kv)
    gqa = init_attention_params(rng, D_MODEL, N_HEADS, n_kv, HEAD_DIM, bias="qkv")
    mha = expand_kv_heads(gqa, N_HEADS, n_kv)
    for name in ("w_k", "w_v", "b_k", "b_v"):
        for n in range(N_HEADS):  # query head n gets an exact copy of KV head n // R
            assert np.array_equal(_head(mha[name], n), _head(gqa[name], n // (N_HEADS // n_kv)))
    x = rng.standard_normal((2, 6, D_MODEL))
    mask = dict(kv_lengths=np.array([6, 4]), window=4)
    y_gqa, _ = attention_layer_forward(x, gqa, n_heads=N_HEADS, n_kv_heads=n_kv, rope=rope, **mask)
    y_mha, _ = attention_layer_forward(x, mha, n_heads=N_HEADS, n_kv_heads=N_HEADS, rope=rope, **mask)
    np.testing.assert_allclose(y_mha, y_gqa, rtol=1e-13, atol=1e-14)
    back = mean_pool_kv_heads(mha, N_HEADS, n_kv)
    assert all(np.allclose(back[k], gqa[k], rtol=1e-15, atol=0) for k in gqa)  # round trip


def test_dtype_is_kept_and_input_not_mutated():
    mha = init_attention_params(np.random.default_rng(0), D_MODEL, N_HEADS, N_HEADS, HEAD_DIM, dtype=np.float32)
    copy = {k: v.copy() for k, v in mha.items()}
    pooled = mean_pool_kv_heads(mha, N_HEADS, 2)
    assert all(v.dtype == np.float32 for v in pooled.values())
    assert all(np.array_equal(mha[k], copy[k]) for k in mha)


def test_bad_inputs_raise_value_error_naming_argument():
    mha = init_attention_params(np.random.default_rng(0), D_MODEL, N_HEADS, N_HEADS, HEAD_DIM)
    gqa = mean_pool_kv_heads(mha, N_HEADS, 2)
    with pytest.raises(ValueError, match="n_kv_heads"):
        mean_pool_kv_heads(mha, N_HEADS, 3)  # 3 does not divide 8
    with pytest.raises(ValueError, match="n_kv_heads"):
        mean_pool_kv_heads(gqa, N_HEADS, 4)  # cannot pool 2 heads into 4
    with pytest.raises(ValueError, match="method"):
        mean_pool_kv_heads(mha, N_HEADS, 2, method="max")
    with pytest.raises(ValueError, match="n_kv_heads"):
        expand_kv_heads(gqa, N_HEADS, 4)  # w_k holds 2 heads
    with pytest.raises(ValueError, match="w_q"):
        expand_kv_heads(gqa, 5, 1)
    with pytest.raises(ValueError, match="w_k"):
        mean_pool_kv_heads({**mha, "w_k": mha["w_k"][:, :-1]}, N_HEADS, 2)
    with pytest.raises(ValueError, match="params"):
        expand_kv_heads([mha], N_HEADS, 2)
