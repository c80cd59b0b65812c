"""Attention sinks (gpt-oss): forward against naive loops, backward (dq, dk, dv and the sink logits) against
finite differences for hypothesis-drawn shapes and masks, fully masked rows, the layer and decode with sinks,
and parity in float64 with Transformers' GptOssAttention (sliding and full layers, outputs and gradients)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from naive_attention import check_grads_or_independence, naive_attention, naive_layer
from test_attention import GRID, _random_qkv, attention_configs

from refimpl import (
    KVCache,
    attention_backward,
    attention_forward,
    attention_layer_backward,
    attention_layer_forward,
    attention_mask,
    decode_step,
    init_attention_params,
)
from refimpl import attention as attention_mod
from refimpl.gradcheck import assert_grads_close
from refimpl.rope import Rope


def _with_sinks(cfg, spread=1.5):
    rng = np.random.default_rng(cfg["seed"])
    q, k, v = _random_qkv(rng, *cfg["shapes"])
    sinks = spread * rng.standard_normal(cfg["shapes"][3])  # (N,) O(1): the sink takes a real share
    return rng, q, k, v, sinks


def _check_forward(cfg):
    _, q, k, v, sinks = _with_sinks(cfg)
    with mock.patch.object(attention_mod, "_SCORE_BLOCK_ELEMENTS", cfg["block_elements"]):
        out, cache = attention_forward(q, k, v, sinks=sinks, **cfg["mask"])
    expected_out, expected_lse = naive_attention(q, k, v, sinks=sinks, **cfg["mask"])
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.lse, expected_lse, rtol=1e-12, atol=1e-12)  # finite everywhere


def _check_backward(cfg, **kwargs):
    rng, q, k, v, sinks = _with_sinks(cfg)
    dout = rng.standard_normal(q.shape)  # random upstream gradient
    with mock.patch.object(attention_mod, "_SCORE_BLOCK_ELEMENTS", cfg["block_elements"]):
        grads = attention_backward(dout, attention_forward(q, k, v, sinks=sinks, **cfg["mask"])[1])
        assert sorted(grads) == ["k", "q", "sinks", "v"]

        def f(p):
            return attention_forward(p["q"], p["k"], p["v"], sinks=p["sinks"], **cfg["mask"])[0]

        check_grads_or_independence(f, {"q": q, "k": k, "v": v, "sinks": sinks}, grads, dout, rng, **kwargs)


@given(attention_configs())
def test_forward_with_sinks_matches_naive_loops(cfg):
    _check_forward(cfg)


@pytest.mark.parametrize("cfg", GRID)
def test_forward_with_sinks_matches_naive_loops_grid(cfg):
    _check_forward(cfg)


@given(attention_configs())
def test_backward_with_sinks_matches_central_differences(cfg):
    _check_backward(cfg)  # element-wise central differences (inputs are small)


@pytest.mark.parametrize("cfg", GRID[::3])
def test_backward_with_sinks_matches_the_vjp_test(cfg):
    _check_backward(cfg, max_elements=1, n_directions=3)  # check_grads' VJP inner-product test


def test_sink_gradient_is_minus_the_sink_probability_times_d():
    """dz_n = -sum_i exp(z_n - L_i) D_i, written out from the forward's lse and output (the docstring's claim)."""
    rng = np.random.default_rng(4)
    q, k, v = _random_qkv(rng, 2, 5, 7, 6, 2, 4)
    sinks, dout = rng.standard_normal(6), rng.standard_normal(q.shape)
    out, cache = attention_forward(q, k, v, sinks=sinks, kv_lengths=np.array([7, 3]), window=3)
    delta = (dout * out).sum(axis=-1)  # (B, T, N)
    expected = -(np.exp(sinks - cache.lse) * delta).sum(axis=(0, 1))  # (N,)
    np.testing.assert_allclose(attention_backward(dout, cache)["sinks"], expected, rtol=1e-13, atol=1e-15)


def test_fully_masked_rows_put_all_mass_on_the_sink():
    rng = np.random.default_rng(5)
    q, k, v = _random_qkv(rng, 2, 3, 4, 4, 2, 4)
    sinks = rng.standard_normal(4)
    lengths = np.array([1, 0])  # row 0: queries at -2, -1, 0 -> two masked; row 1: everything masked
    out, cache = attention_forward(q, k, v, kv_lengths=lengths, sinks=sinks)
    grads = attention_backward(rng.standard_normal(out.shape), cache)
    masked = ~attention_mask(3, 4, kv_lengths=lengths).any(axis=-1)  # (B, T)
    assert np.all(out[masked] == 0) and np.array_equal(cache.lse[masked], np.broadcast_to(sinks, (5, 4)))
    assert np.all(grads["q"][masked] == 0) and np.all(grads["k"][1] == 0) and np.all(grads["v"][1] == 0)
    assert all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(out).all()
    # the one visible row (row 0, last query, key 0 only): p = 1 / (1 + exp(z - s)), o = p v_0
    s0 = np.einsum("nd,nd->n", q[0, 2], k[0, 0, np.arange(4) // 2]) / 2.0  # (N,) scale 1/sqrt(Dh) = 1/2
    p0 = 1.0 / (1.0 + np.exp(sinks - s0))  # (N,)
    np.testing.assert_allclose(out[0, 2], p0[:, None] * v[0, 0, np.arange(4) // 2], rtol=1e-14)


@pytest.mark.parametrize("sinks, match", [(np.zeros(3), "shape"), (np.zeros((4, 1)), "dimensions"),
                                          (np.array([0.0, np.inf, 0.0, 0.0]), "finite"),
                                          (np.array([0.0, -np.inf, 0.0, 0.0]), "finite"),
                                          (np.arange(4), "floating"), ([0.0] * 4, "NumPy")])  # fmt: skip
def test_bad_sinks_raise_value_error(sinks, match):
    q, k, v = _random_qkv(np.random.default_rng(0), 1, 2, 3, 4, 2, 4)
    with pytest.raises(ValueError, match=rf"sinks.*{match}|{match}.*sinks|sinks must"):
        attention_forward(q, k, v, sinks=sinks)


def test_layer_with_sinks_matches_naive_and_finite_differences():
    rng = np.random.default_rng(6)
    params = init_attention_params(rng, 12, 4, 2, 4, bias=True, sinks=True)
    assert params["sinks"].shape == (4,)
    x = rng.standard_normal((2, 5, 12))
    kw = dict(n_heads=4, n_kv_heads=2, rope=Rope("half", offset=2), window=3, kv_lengths=np.array([5, 4]))
    y, cache = attention_layer_forward(x, params, **kw)
    np.testing.assert_allclose(y, naive_layer(x, params, n_heads=4, n_kv_heads=2, rope="half", rope_offset=2,
                                              window=3, kv_lengths=np.array([5, 4])), atol=1e-12)  # fmt: skip
    dy = rng.standard_normal(y.shape)
    grads = attention_layer_backward(dy, cache)
    assert sorted(grads) == sorted(["x", *params])
    f = lambda p: attention_layer_forward(p["x"], {n: p[n] for n in params}, **kw)[0]  # noqa: E731
    assert_grads_close(f, {"x": x, **params}, grads, dy, rtol=1e-7)


def test_decode_with_sinks_equals_the_full_forward():
    rng = np.random.default_rng(7)
    params = init_attention_params(rng, 12, 6, 2, 4, sinks=True)
    x = rng.standard_normal((2, 7, 12))
    kw = dict(n_heads=6, n_kv_heads=2, rope=Rope("half"), window=3, softcap=4.0)
    full, _ = attention_layer_forward(x, params, **kw)
    cache = KVCache.empty(2, 9, 2, 4, dtype=np.float64)
    steps = [decode_step(x[:, :3], params, cache, **kw)[0]]
    steps += [decode_step(x[:, t], params, cache, **kw)[0][:, None] for t in range(3, 7)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-12)
