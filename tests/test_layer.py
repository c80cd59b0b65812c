"""The attention layer: forward against per-head loops, gradients of x and every parameter against finite
differences, parameter init and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive_attention import check_grads_or_independence, naive_layer

from refimpl import attention_layer_backward, attention_layer_forward, init_attention_params
from refimpl.rope import Rope


@st.composite
def layer_configs(draw):
    n_heads = draw(st.sampled_from([2, 4, 6]))
    n_kv = draw(st.sampled_from(sorted({d for d in range(1, n_heads + 1) if n_heads % d == 0})))
    batch, seq = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    padded = draw(st.booleans())
    lengths = draw(st.lists(st.integers(0, seq), min_size=batch, max_size=batch)) if padded else None
    return dict(
        dims=(batch, seq, draw(st.integers(1, 5)), n_heads, n_kv, draw(st.sampled_from([2, 4]))),
        bias=draw(st.sampled_from([False, True, "qkv"])),
        rope=draw(st.none() | st.sampled_from(["half", "interleaved"])),
        rope_offset=draw(st.integers(0, 9)),
        mask=dict(
            causal=draw(st.booleans()),
            kv_lengths=None if lengths is None else np.array(lengths),
            window=draw(st.none() | st.integers(1, 3)),
            softcap=draw(st.none() | st.floats(0.5, 3.0)),
        ),
        seed=draw(st.integers(0, 2**16)),
    )


def _setup(cfg):
    batch, seq, d_model, n_heads, n_kv, head_dim = cfg["dims"]
    rng = np.random.default_rng(cfg["seed"])
    params = init_attention_params(rng, d_model, n_heads, n_kv, head_dim, bias=cfg["bias"])
    x = rng.standard_normal((batch, seq, d_model))
    rope = None if cfg["rope"] is None else Rope(cfg["rope"], offset=cfg["rope_offset"])
    kw = dict(n_heads=n_heads, n_kv_heads=n_kv, rope=rope, **cfg["mask"])
    return rng, x, params, kw


@given(layer_configs())
def test_forward_matches_per_head_loops(cfg):
    _, x, params, kw = _setup(cfg)
    y, _ = attention_layer_forward(x, params, **kw)
    expected = naive_layer(x, params, n_heads=kw["n_heads"], n_kv_heads=kw["n_kv_heads"], rope=cfg["rope"],
                           rope_offset=cfg["rope_offset"], **cfg["mask"])  # fmt: skip
    np.testing.assert_allclose(y, expected, rtol=1e-11, atol=1e-12)


@given(layer_configs())
def test_backward_matches_finite_differences_for_x_and_every_parameter(cfg):
    rng, x, params, kw = _setup(cfg)
    y, cache = attention_layer_forward(x, params, **kw)
    dy = rng.standard_normal(y.shape)  # random upstream gradient
    grads = attention_layer_backward(dy, cache)
    assert set(grads) == {"x", *params}
    check_grads_or_independence(
        lambda p: attention_layer_forward(p["x"], {k: p[k] for k in params}, **kw)[0], {"x": x, **params}, grads,
        dy, rng,
    )  # fmt: skip


@pytest.mark.parametrize("rope", ["half", "interleaved"])
@pytest.mark.parametrize("n_kv", [1, 2, 4])
def test_backward_grid_with_rope_bias_and_masks(rope, n_kv):
    cfg = dict(dims=(2, 5, 6, 4, n_kv, 4), bias=True, rope=rope, rope_offset=3, seed=n_kv,
               mask=dict(causal=True, kv_lengths=np.array([5, 3]), window=3, softcap=2.0))  # fmt: skip
    rng, x, params, kw = _setup(cfg)
    y, cache = attention_layer_forward(x, params, **kw)
    dy = rng.standard_normal(y.shape)
    grads = attention_layer_backward(dy, cache)
    check_grads_or_independence(
        lambda p: attention_layer_forward(p["x"], {k: p[k] for k in params}, **kw)[0], {"x": x, **params}, grads,
        dy, rng,
    )  # fmt: skip


@pytest.mark.parametrize(("bias", "keys"), [(False, set()), (True, {"b_q", "b_k", "b_v", "b_o"}),
                                            ("qkv", {"b_q", "b_k", "b_v"})])  # fmt: skip
def test_init_shapes_bias_modes_and_scale(bias, keys):
    d_model, n_heads, n_kv, head_dim = 256, 8, 2, 32
    params = init_attention_params(np.random.default_rng(0), d_model, n_heads, n_kv, head_dim, bias=bias)
    assert set(params) == {"w_q", "w_k", "w_v", "w_o"} | keys
    assert params["w_q"].shape == (256, 256) and params["w_k"].shape == params["w_v"].shape == (256, 64)
    assert params["w_o"].shape == (256, 256)
    for name, arr in params.items():
        fan_in = 256  # D for w_q/w_k/w_v and their biases; N*Dh = 256 for w_o, b_o
        assert arr.dtype == np.float64
        assert abs(arr.std() * np.sqrt(fan_in) - 1.0) < (0.03 if arr.ndim == 2 else 0.2), name


def test_w_q_columns_are_head_major():
    """Zero every column of w_q but head 2's block: only query head 2 changes the output (others see q = 0)."""
    d_model, n_heads, n_kv, head_dim = 6, 4, 2, 3
    rng = np.random.default_rng(0)
    params = init_attention_params(rng, d_model, n_heads, n_kv, head_dim)
    x = rng.standard_normal((1, 4, d_model))
    zero_q = {**params, "w_q": np.zeros_like(params["w_q"])}
    one_head = {**params, "w_q": np.zeros_like(params["w_q"])}
    one_head["w_q"][:, 2 * head_dim : 3 * head_dim] = params["w_q"][:, 2 * head_dim : 3 * head_dim]
    a_zero = attention_layer_forward(x, zero_q, n_heads=n_heads, n_kv_heads=n_kv)[1].a
    a_one = attention_layer_forward(x, one_head, n_heads=n_heads, n_kv_heads=n_kv)[1].a
    changed = np.abs(a_one - a_zero).max(axis=(0, 1, 3)) > 1e-9  # per query head
    assert changed.tolist() == [False, False, True, False]


def test_float32_params_and_input_compute_in_float64():
    rng = np.random.default_rng(0)
    params = init_attention_params(rng, 4, 2, 1, 2, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in params.values())
    y, _ = attention_layer_forward(rng.standard_normal((1, 3, 4)).astype(np.float32), params, n_heads=2, n_kv_heads=1)
    assert y.dtype == np.float64


def test_bad_inputs_raise_value_error_naming_argument():
    rng = np.random.default_rng(0)
    params = init_attention_params(rng, 4, 4, 2, 2)
    x = rng.standard_normal((1, 3, 4))
    with pytest.raises(ValueError, match="n_kv_heads"):
        attention_layer_forward(x, params, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="w_k"):
        attention_layer_forward(x, params, n_heads=4, n_kv_heads=1)  # w_k holds 2 heads
    with pytest.raises(ValueError, match="w_q"):
        attention_layer_forward(x, params, n_heads=3, n_kv_heads=1)  # 8 columns do not split into 3 heads
    with pytest.raises(ValueError, match="x"):
        attention_layer_forward(x[0], params, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="w_q"):
        attention_layer_forward(x[..., :3], params, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="missing"):
        attention_layer_forward(x, {k: v for k, v in params.items() if k != "w_v"}, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="unexpected"):
        attention_layer_forward(x, {**params, "w_gate": params["w_q"]}, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="b_q"):
        attention_layer_forward(x, {**params, "b_q": np.zeros(3)}, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="rope"):
        attention_layer_forward(x, params, n_heads=4, n_kv_heads=2, rope="half")
    with pytest.raises(ValueError, match="window"):
        attention_layer_forward(x, params, n_heads=4, n_kv_heads=2, window=0)
    with pytest.raises(ValueError, match="bias"):
        init_attention_params(rng, 4, 4, 2, 2, bias="qk")
    with pytest.raises(ValueError, match="n_kv_heads"):
        init_attention_params(rng, 4, 4, 3, 2)
    with pytest.raises(ValueError, match="rng"):
        init_attention_params(0, 4, 4, 2, 2)
    y, cache = attention_layer_forward(x, params, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="dy"):
        attention_layer_backward(y[:, :2], cache)
