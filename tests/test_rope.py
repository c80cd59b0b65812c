"""Rotary embeddings: against the complex-number formula, relative-position property, backward, layouts and the
checkpoint permutation between them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive_attention import naive_layer, naive_rope

from refimpl import attention_layer_forward, init_attention_params, rope_backward, rope_forward, rope_permutation
from refimpl.convert import convert_rope_layout
from refimpl.gradcheck import assert_grads_close
from refimpl.rope import Rope

LAYOUTS = ("half", "interleaved")


@given(st.sampled_from(LAYOUTS), st.integers(1, 2), st.integers(1, 5), st.integers(1, 3), st.sampled_from([2, 4, 8]),
       st.integers(0, 50), st.sampled_from([10000.0, 500000.0, 7.5]), st.integers(0, 2**16))  # fmt: skip
def test_forward_matches_complex_rotation(layout, batch, seq, heads, head_dim, offset, theta, seed):
    x = np.random.default_rng(seed).standard_normal((batch, seq, heads, head_dim))
    y, _ = rope_forward(x, offset=offset, theta=theta, layout=layout)
    expected = naive_rope(x, offset + np.arange(seq), theta=theta, layout=layout)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_known_values_by_hand():
    """Dh = 4, position 1: pair 0 turns by 1 rad, pair 1 by theta^(-1/2) = 0.01 rad (theta = 1e4)."""
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    c0, s0, c1, s1 = np.cos(1.0), np.sin(1.0), np.cos(0.01), np.sin(0.01)
    half, _ = rope_forward(x, offset=1, layout="half")  # pairs (x0, x2), (x1, x3)
    np.testing.assert_allclose(half.ravel(), [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1])
    inter, _ = rope_forward(x, offset=1, layout="interleaved")  # pairs (x0, x1), (x2, x3)
    np.testing.assert_allclose(inter.ravel(), [1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1])
    at_zero, _ = rope_forward(x, offset=0)
    assert np.array_equal(at_zero, x)  # position 0 is the identity


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dot_products_depend_only_on_relative_position(layout):
    rng = np.random.default_rng(4)
    q, k = rng.standard_normal((2, 1, 1, 1, 8))
    dots = []
    for shift in (0, 3, 117):
        rq, _ = rope_forward(q, offset=5 + shift, layout=layout)
        rk, _ = rope_forward(k, offset=2 + shift, layout=layout)
        dots.append(float(np.sum(rq * rk)))
    np.testing.assert_allclose(dots, dots[0], rtol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_explicit_positions_equal_offset_and_per_row_positions(layout):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 4))
    by_offset, _ = rope_forward(x, offset=4, layout=layout)
    by_positions, _ = rope_forward(x, positions=np.arange(4, 7), layout=layout)
    assert np.array_equal(by_offset, by_positions)
    per_row = np.array([[0, 1, 2], [9, 3, 3]])
    y, _ = rope_forward(x, positions=per_row, layout=layout)
    np.testing.assert_allclose(y, naive_rope(x, per_row, layout=layout), rtol=1e-12, atol=1e-12)


@given(st.sampled_from(LAYOUTS), st.booleans(), st.integers(0, 2**16))
def test_backward_matches_finite_differences(layout, per_row, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 2, 6))
    kw = dict(positions=rng.integers(0, 40, size=(2, 3))) if per_row else dict(offset=7)
    dy = rng.standard_normal(x.shape)
    _, cache = rope_forward(x, layout=layout, **kw)
    dx = rope_backward(dy, cache)
    assert_grads_close(lambda p: rope_forward(p["x"], layout=layout, **kw)[0], {"x": x}, {"x": dx}, dy, rtol=1e-7)


def test_permutation_matches_hf_conversion_script_formula():
    """HF convert_llama_weights_to_hf.py: permute(w) = w.view(H, Dh/2, 2, D).transpose(1, 2).reshape(H*Dh, D),
    on torch's (out, in) weights; ours are (in, out), so compare on the transpose."""
    n_heads, head_dim, d_model = 3, 8, 5
    w = np.random.default_rng(1).standard_normal((d_model, n_heads * head_dim))
    hf = w.T.reshape(n_heads, head_dim // 2, 2, d_model).transpose(0, 2, 1, 3).reshape(n_heads * head_dim, d_model).T
    assert np.array_equal(w[:, rope_permutation(head_dim, n_heads)], hf)
    back = rope_permutation(head_dim, n_heads, src="half", dst="interleaved")
    assert np.array_equal(hf[:, back], w)
    assert np.array_equal(rope_permutation(head_dim, n_heads, src="half", dst="half"), np.arange(n_heads * head_dim))


@pytest.mark.parametrize(("src", "dst"), [("interleaved", "half"), ("half", "interleaved")])
@pytest.mark.parametrize("bias", [False, "qkv"])
def test_permutation_converts_a_checkpoint_exactly(src, dst, bias):
    n_heads, n_kv, head_dim, d_model = 4, 2, 6, 8
    rng = np.random.default_rng(9)
    params = init_attention_params(rng, d_model, n_heads, n_kv, head_dim, bias=bias)
    x = rng.standard_normal((2, 5, d_model))
    y_src, _ = attention_layer_forward(x, params, n_heads=n_heads, n_kv_heads=n_kv, rope=Rope(src, offset=3))
    converted = convert_rope_layout(params, n_heads, n_kv, src=src, dst=dst)
    y_dst, _ = attention_layer_forward(x, converted, n_heads=n_heads, n_kv_heads=n_kv, rope=Rope(dst, offset=3))
    np.testing.assert_allclose(y_dst, y_src, rtol=1e-12, atol=1e-12)
    expected = naive_layer(x, params, n_heads=n_heads, n_kv_heads=n_kv, rope=src, rope_offset=3)
    np.testing.assert_allclose(y_src, expected, rtol=1e-12, atol=1e-12)
    y_wrong, _ = attention_layer_forward(x, params, n_heads=n_heads, n_kv_heads=n_kv, rope=Rope(dst, offset=3))
    assert np.abs(y_wrong - y_src).max() > 1e-3  # without the permutation the layouts really differ


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(layout="rotate"), "layout"),
        (dict(theta=1.0), "theta"),
        (dict(theta=float("nan")), "theta"),
        (dict(offset=-1), "offset"),
        (dict(offset=2, positions=np.arange(3)), "positions"),
        (dict(positions=np.arange(4)), "positions"),
        (dict(positions=np.arange(3.0)), "positions"),
        (dict(positions=np.array([0, -1, 2])), "positions"),
    ],
)
def test_bad_arguments_raise_value_error_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rope_forward(np.zeros((1, 3, 1, 4)), **kwargs)


def test_bad_shapes_and_configs():
    with pytest.raises(ValueError, match="head dim"):
        rope_forward(np.zeros((1, 3, 1, 5)))
    with pytest.raises(ValueError, match="x"):
        rope_forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="head_dim"):
        rope_permutation(5, 2)
    with pytest.raises(ValueError, match="layout"):
        Rope("neox")
    with pytest.raises(ValueError, match="offset"):
        Rope(offset=-3)
    _, cache = rope_forward(np.zeros((1, 3, 1, 4)))
    with pytest.raises(ValueError, match="dy"):
        rope_backward(np.zeros((1, 2, 1, 4)), cache)
