"""Attention core: forward against a naive loop implementation, backward against finite differences, masks,
head map, numerics and input validation."""

from __future__ import annotations

import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive_attention import check_grads_or_independence, naive_attention, naive_mask

from refimpl import attention as attention_mod
from refimpl import attention_backward, attention_forward, attention_mask
from refimpl.gradcheck import assert_grads_close


@st.composite
def attention_configs(draw):
    """Shapes with T != S allowed, K in {1, a middle divisor, N}, and every mask option."""
    n_heads = draw(st.sampled_from([1, 2, 4, 6]))
    middle = [d for d in range(2, n_heads) if n_heads % d == 0]
    n_kv = draw(st.sampled_from(sorted({1, n_heads, *middle})))
    batch, n_queries, n_keys = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    head_dim = draw(st.sampled_from([1, 2, 4]))
    padded = draw(st.booleans())
    kv_lengths = np.array(draw(st.lists(st.integers(0, n_keys), min_size=batch, max_size=batch))) if padded else None
    return dict(
        shapes=(batch, n_queries, n_keys, n_heads, n_kv, head_dim),
        mask=dict(
            causal=draw(st.booleans()),
            kv_lengths=kv_lengths,
            window=draw(st.none() | st.integers(1, 4)),
            softcap=draw(st.none() | st.floats(0.5, 3.0)),
            scale=draw(st.none() | st.floats(0.2, 2.0)),
        ),
        block_elements=draw(st.sampled_from([1, attention_mod._SCORE_BLOCK_ELEMENTS])),  # 1: one row per block
        seed=draw(st.integers(0, 2**16)),
    )


# Fixed grid beside the hypothesis draws, so every combination named in the issue runs on every CI run:
# K in {1, a middle divisor, N} x {causal T < S, causal T > S with padding, window + softcap + scale, full}.
_GRID_MASKS = [
    dict(causal=True),
    dict(causal=True, kv_lengths=np.array([5, 2])),
    dict(causal=True, window=2, softcap=1.5, scale=0.7),
    dict(causal=False, kv_lengths=np.array([3, 0])),
]
GRID = [
    dict(shapes=(2, n_q, 5, 6, n_kv, 4), mask=mask, block_elements=block, seed=i)
    for i, (n_kv, (n_q, mask), block) in enumerate(
        (n_kv, qm, block)
        for n_kv in (1, 3, 6)
        for qm in zip((3, 7, 4, 5), _GRID_MASKS, strict=True)
        for block in (1, attention_mod._SCORE_BLOCK_ELEMENTS)
    )
]


def _random_qkv(rng, batch, n_queries, n_keys, n_heads, n_kv, head_dim, spread=1.0):
    q = spread * rng.standard_normal((batch, n_queries, n_heads, head_dim))
    k = spread * rng.standard_normal((batch, n_keys, n_kv, head_dim))
    v = rng.standard_normal((batch, n_keys, n_kv, head_dim))
    return q, k, v


@given(attention_configs())
def test_forward_matches_naive_loops(cfg):
    _check_forward(cfg)


@pytest.mark.parametrize("cfg", GRID)
def test_forward_matches_naive_loops_grid(cfg):
    _check_forward(cfg)


def _check_forward(cfg):
    q, k, v = _random_qkv(np.random.default_rng(cfg["seed"]), *cfg["shapes"])
    with mock.patch.object(attention_mod, "_SCORE_BLOCK_ELEMENTS", cfg["block_elements"]):
        out, cache = attention_forward(q, k, v, **cfg["mask"])
    expected_out, expected_lse = naive_attention(q, k, v, **cfg["mask"])
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.isneginf(cache.lse), np.isneginf(expected_lse))
    finite = np.isfinite(expected_lse)
    np.testing.assert_allclose(cache.lse[finite], expected_lse[finite], rtol=1e-12, atol=1e-12)


@given(attention_configs())
def test_backward_matches_finite_differences(cfg):
    _check_backward(cfg)


@pytest.mark.parametrize("cfg", GRID)
def test_backward_matches_finite_differences_grid(cfg):
    _check_backward(cfg)


def _check_backward(cfg):
    rng = np.random.default_rng(cfg["seed"])
    q, k, v = _random_qkv(rng, *cfg["shapes"])
    dout = rng.standard_normal(q.shape)  # random upstream gradient
    with mock.patch.object(attention_mod, "_SCORE_BLOCK_ELEMENTS", cfg["block_elements"]):
        out, cache = attention_forward(q, k, v, **cfg["mask"])
        grads = attention_backward(dout, cache)
        check_grads_or_independence(
            lambda p: attention_forward(p["q"], p["k"], p["v"], **cfg["mask"])[0], {"q": q, "k": k, "v": v}, grads,
            dout, rng,
        )  # fmt: skip


def test_backward_mqa_and_mha_larger_shapes_by_vjp():
    """Inputs above gradcheck's element limit use the VJP inner-product test; several blocks, window, pad."""
    rng = np.random.default_rng(7)
    kw = dict(kv_lengths=np.array([30, 17]), window=9, softcap=2.5)
    for n_kv in (1, 3, 6):
        q, k, v = _random_qkv(rng, 2, 24, 30, 6, n_kv, 8)
        dout = rng.standard_normal(q.shape)
        with mock.patch.object(attention_mod, "_SCORE_BLOCK_ELEMENTS", 2 * 6 * 30 * 5):  # 5 rows per block
            grads = attention_backward(dout, attention_forward(q, k, v, **kw)[1])
            f = lambda p: attention_forward(p["q"], p["k"], p["v"], **kw)[0]  # noqa: E731
            assert_grads_close(f, {"q": q, "k": k, "v": v}, grads, dout, rtol=1e-7, max_elements=1, n_directions=3)


def test_mask_rule_examples_written_out():
    """Bottom-right causal for T < S, padding per row, window; each matrix written by hand."""
    causal = attention_mask(2, 4)[0]
    assert causal.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]  # queries at positions 2 and 3 (not top-left 0, 1)
    padded = attention_mask(2, 4, kv_lengths=np.array([4, 3]))
    assert padded[1].tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]  # row 1: queries at 1 and 2, key 3 is padding
    windowed = attention_mask(3, 3, window=2)[0]
    assert windowed.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]  # sees itself and window - 1 = 1 key back
    lookback_only = attention_mask(2, 3, causal=False, window=1)[0]
    assert lookback_only.tolist() == [[0, 1, 1], [0, 0, 1]]  # window without causal limits only the past
    no_keys = attention_mask(3, 2, kv_lengths=np.array([1]))[0]
    assert no_keys.tolist() == [[0, 0], [0, 0], [1, 0]]  # queries at -1 and 0 (L - T + t): two masked rows


@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 5), st.booleans(), st.none() | st.integers(1, 4),
       st.integers(0, 100))  # fmt: skip
def test_attention_mask_matches_naive(batch, n_queries, n_keys, causal, window, seed):
    lengths = np.random.default_rng(seed).integers(0, n_keys + 1, size=batch)
    got = attention_mask(n_queries, n_keys, causal=causal, kv_lengths=lengths, window=window)
    assert np.array_equal(got, naive_mask(batch, n_queries, n_keys, causal=causal, kv_lengths=lengths, window=window))


def test_head_map_is_contiguous_and_strided_map_fails():
    """Orthogonal constant values per KV head: query head n must return exactly KV head n // R's value."""
    batch, seq, n_heads, n_kv, head_dim = 1, 3, 4, 2, 4
    rng = np.random.default_rng(3)
    q, k, _ = _random_qkv(rng, batch, seq, seq, n_heads, n_kv, head_dim)
    v = np.zeros((batch, seq, n_kv, head_dim))
    v[:, :, 0, 0] = 1.0  # KV head 0 values: e_0 at every position
    v[:, :, 1, 1] = 1.0  # KV head 1 values: e_1 (orthogonal)
    out, _ = attention_forward(q, k, v)
    for n in range(n_heads):  # softmax weights sum to 1, so head n's output is its KV head's value vector
        np.testing.assert_allclose(out[:, :, n], v[:, :, n // (n_heads // n_kv)], rtol=0, atol=1e-15)
    contiguous_k, contiguous_v = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)  # heads (h0, h0, h1, h1)
    strided_k, strided_v = np.tile(k, (1, 1, 2, 1)), np.tile(v, (1, 1, 2, 1))  # heads (h0, h1, h0, h1)
    np.testing.assert_allclose(attention_forward(q, contiguous_k, contiguous_v)[0], out, rtol=0, atol=1e-15)
    strided_out = attention_forward(q, strided_k, strided_v)[0]
    assert np.abs(strided_out - out).max() == pytest.approx(1.0)  # O(1): e_0 where e_1 belongs
    strided_naive, _ = naive_attention(q, k, v, head_map=lambda n, n_heads, n_kv_heads: n % n_kv_heads)
    np.testing.assert_allclose(strided_naive, strided_out, atol=1e-15)  # the naive strided map agrees


def test_fully_masked_rows_give_zero_output_lse_minus_inf_and_zero_grads():
    rng = np.random.default_rng(5)
    q, k, v = _random_qkv(rng, 2, 3, 4, 4, 2, 4)
    lengths = np.array([1, 0])  # row 0: queries at -2, -1, 0 -> two masked; row 1: everything masked
    out, cache = attention_forward(q, k, v, kv_lengths=lengths)
    grads = attention_backward(rng.standard_normal(out.shape), cache)
    masked = ~naive_mask(2, 3, 4, kv_lengths=lengths).any(axis=-1)  # (B, T)
    assert masked.tolist() == [[True, True, False], [True, True, True]]
    assert np.all(out[masked] == 0) and np.all(cache.lse[masked] == -np.inf)
    assert np.all(grads["q"][masked] == 0) and np.all(grads["k"][1] == 0) and np.all(grads["v"][1] == 0)
    assert np.all(grads["k"][0, 1:] == 0)  # padding keys of row 0 get nothing
    assert all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(out).all()


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_huge_logits_are_stable(softcap):
    """Logits around +-1e4: no warning (pytest turns RuntimeWarning into errors), finite, one-hot softmax."""
    rng = np.random.default_rng(11)
    q, k, v = _random_qkv(rng, 1, 4, 6, 2, 1, 8)
    q *= 1e4 / np.abs(np.einsum("btnd,bsd->btns", q, k[:, :, 0])).max() * np.sqrt(8)  # max |logit| = 1e4
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, cache = attention_forward(q, k, v, causal=False, softcap=softcap)
        grads = attention_backward(rng.standard_normal(out.shape), cache)
    expected_out, expected_lse = naive_attention(q, k, v, causal=False, softcap=softcap)
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.lse, expected_lse, rtol=1e-12)
    assert all(np.isfinite(g).all() for g in grads.values())


def test_matches_torch_sdpa_with_enable_gqa_when_installed():
    """torch's SDPA with an explicit bottom-right boolean mask (its is_causal is top-left) and enable_gqa."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    q, k, v = _random_qkv(rng, 2, 5, 7, 6, 2, 4)
    lengths = np.array([7, 6])
    out, _ = attention_forward(q, k, v, kv_lengths=lengths, window=4)
    mask = torch.from_numpy(naive_mask(2, 5, 7, kv_lengths=lengths, window=4)[:, None])  # (B, 1, T, S)
    to_bhsd = lambda a: torch.from_numpy(a).transpose(1, 2)  # noqa: E731  (B, H, T, Dh)
    ref = torch.nn.functional.scaled_dot_product_attention(to_bhsd(q), to_bhsd(k), to_bhsd(v), attn_mask=mask,
                                                           enable_gqa=True)  # fmt: skip
    np.testing.assert_allclose(out, ref.transpose(1, 2).numpy(), rtol=1e-12, atol=1e-12)


def test_float32_inputs_are_upcast():
    q, k, v = _random_qkv(np.random.default_rng(1), 1, 3, 3, 2, 1, 4)
    out32, _ = attention_forward(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32))
    out64, _ = attention_forward(*(a.astype(np.float32).astype(np.float64) for a in (q, k, v)))
    assert out32.dtype == np.float64 and np.array_equal(out32, out64)


def test_decode_shaped_call_allocates_nothing_of_size_b_s_n_dh():
    """T = 1 against S = 4096 keys, N = 16, K = 1: peak extra memory stays far below one (B, S, N, Dh) array."""
    q, k, v = _random_qkv(np.random.default_rng(0), 1, 1, 4096, 16, 1, 64)
    repeated_bytes = 1 * 4096 * 16 * 64 * 8  # what np.repeat(k, 16, axis=2) would take: 32 MiB
    tracemalloc.start()
    attention_forward(q, k, v)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < repeated_bytes / 8, (peak, repeated_bytes)


def _inputs(n_heads=4, n_kv=2):
    return _random_qkv(np.random.default_rng(0), 2, 3, 4, n_heads, n_kv, 4)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda q, k, v: (q[..., :3], k, v), "k"),  # head dim mismatch
        (lambda q, k, v: (q[:1], k, v), "k"),  # batch mismatch
        (lambda q, k, v: (q, k, v[:, :3]), "v"),  # S mismatch between k and v
        (lambda q, k, v: (q, k.astype(np.float32), v), "k"),  # dtype mismatch
        (lambda q, k, v: (q.astype(np.int64), k, v), "q"),  # integer input
        (lambda q, k, v: (q[0], k, v), "q"),  # wrong rank
        (lambda q, k, v: (q[:, :0], k, v), "q"),  # empty
    ],
)
def test_bad_arrays_raise_value_error_naming_argument(change, names):
    q, k, v = _inputs()
    with pytest.raises(ValueError, match=rf"\b{names}\b"):
        attention_forward(*change(q, k, v))


def test_n_heads_not_divisible_by_kv_heads():
    q, _, _ = _inputs(n_heads=4)
    k = np.zeros((2, 4, 3, 4))
    with pytest.raises(ValueError, match=r"K=3 .*N=4|N % K"):
        attention_forward(q, k, k)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(kv_lengths=np.array([4, 5])), "kv_lengths"),  # above S
        (dict(kv_lengths=np.array([-1, 2])), "kv_lengths"),
        (dict(kv_lengths=np.array([1, 2, 3])), "kv_lengths"),  # one per batch row
        (dict(kv_lengths=np.array([1.0, 2.0])), "kv_lengths"),  # not integers
        (dict(window=0), "window"),
        (dict(window=-2), "window"),
        (dict(window=1.5), "window"),
        (dict(softcap=0.0), "softcap"),
        (dict(softcap=float("inf")), "softcap"),
        (dict(scale=-1.0), "scale"),
        (dict(causal="yes"), "causal"),
    ],
)
def test_bad_options_raise_value_error_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        attention_forward(*_inputs(), **kwargs)


def test_backward_validates_dout_and_cache():
    out, cache = attention_forward(*_inputs())
    with pytest.raises(ValueError, match="dout"):
        attention_backward(out[:, :1], cache)
    with pytest.raises(ValueError, match="cache"):
        attention_backward(out, None)
