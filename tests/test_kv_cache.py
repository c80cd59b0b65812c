"""KV cache: decode equals prefill, in-place writes, overflow, sizes, and no (B, S, N, Dh) allocation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from naive_attention import naive_rope

from refimpl import KVCache, attention_layer_forward, decode_step, init_attention_params
from refimpl.rope import Rope

D_MODEL, N_HEADS, HEAD_DIM = 12, 6, 4


def _layer(n_kv, bias=False, seed=0):
    rng = np.random.default_rng(seed)
    return rng, init_attention_params(rng, D_MODEL, N_HEADS, n_kv, HEAD_DIM, bias=bias)


@pytest.mark.parametrize("n_kv", [1, 2, 6])
@pytest.mark.parametrize(
    ("rope", "mask"),
    [
        (None, {}),
        (Rope("half"), {}),
        (Rope("interleaved", theta=500000.0, offset=5), dict(softcap=2.0)),
        (Rope("half", offset=2), dict(window=3, scale=0.3)),
    ],
)
def test_prefill_then_token_by_token_decode_equals_full_forward(n_kv, rope, mask):
    rng, params = _layer(n_kv, bias="qkv", seed=n_kv)
    batch, seq, prompt = 2, 9, 4
    x = rng.standard_normal((batch, seq, D_MODEL))
    full, _ = attention_layer_forward(x, params, n_heads=N_HEADS, n_kv_heads=n_kv, rope=rope, causal=True, **mask)
    cache = KVCache.empty(batch, 16, n_kv, HEAD_DIM)
    kw = dict(n_heads=N_HEADS, n_kv_heads=n_kv, rope=rope, **mask)
    outputs = [decode_step(x[:, :prompt], params, cache, **kw)[0]]  # the prompt as one chunk
    for t in range(prompt, seq):
        y_t, returned = decode_step(x[:, t], params, cache, **kw)  # (B, D): one token
        assert returned is cache and y_t.shape == (batch, D_MODEL)
        outputs.append(y_t[:, None])
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, rtol=0, atol=1e-12)
    assert cache.length == seq


def test_cache_is_written_in_place_with_roped_keys_and_raw_values():
    rng, params = _layer(2, bias=True)
    x = rng.standard_normal((1, 3, D_MODEL))
    cache = KVCache.empty(1, 5, 2, HEAD_DIM)
    k_buffer, v_buffer = cache.k, cache.v
    decode_step(x, params, cache, n_heads=N_HEADS, n_kv_heads=2, rope=Rope("interleaved", offset=1))
    assert cache.k is k_buffer and cache.v is v_buffer and cache.length == 3  # same buffers, filled
    k = (x @ params["w_k"] + params["b_k"]).reshape(1, 3, 2, HEAD_DIM)
    v = (x @ params["w_v"] + params["b_v"]).reshape(1, 3, 2, HEAD_DIM)
    np.testing.assert_allclose(cache.k[:, :3], naive_rope(k, np.arange(1, 4), layout="interleaved"), atol=1e-14)
    np.testing.assert_allclose(cache.v[:, :3], v, atol=1e-14)
    assert not cache.k[:, 3:].any() and not cache.v[:, 3:].any()  # untouched capacity
    assert np.shares_memory(cache.keys(), k_buffer) and cache.keys().shape == (1, 3, 2, HEAD_DIM)


def test_writing_past_max_len_raises_and_writes_nothing():
    rng, params = _layer(3)
    cache = KVCache.empty(2, 4, 3, HEAD_DIM)
    decode_step(rng.standard_normal((2, 3, D_MODEL)), params, cache, n_heads=N_HEADS, n_kv_heads=3)
    before_k, before_v = cache.k.copy(), cache.v.copy()
    with pytest.raises(ValueError, match="overflow"):
        decode_step(rng.standard_normal((2, 2, D_MODEL)), params, cache, n_heads=N_HEADS, n_kv_heads=3)
    assert cache.length == 3 and np.array_equal(cache.k, before_k) and np.array_equal(cache.v, before_v)
    decode_step(rng.standard_normal((2, D_MODEL)), params, cache, n_heads=N_HEADS, n_kv_heads=3)  # fills it
    with pytest.raises(ValueError, match="overflow"):
        decode_step(rng.standard_normal((2, D_MODEL)), params, cache, n_heads=N_HEADS, n_kv_heads=3)
    with pytest.raises(ValueError, match="overflow"):
        cache.append(np.zeros((2, 1, 3, HEAD_DIM)), np.zeros((2, 1, 3, HEAD_DIM)))
    assert cache.length == 4


def test_sizes_hold_k_heads_only():
    cache = KVCache.empty(3, 100, 2, 64)
    assert cache.k.shape == cache.v.shape == (3, 100, 2, 64)  # K heads, not N
    assert cache.nbytes == 2 * 3 * 100 * 2 * 64 * 8 == cache.k.nbytes + cache.v.nbytes
    half = KVCache.empty(3, 100, 2, 64, dtype=np.float32)
    assert half.nbytes * 2 == cache.nbytes and half.length == 0


def test_float32_cache_decodes_close_to_float64():
    rng, params = _layer(2)
    x = rng.standard_normal((1, 5, D_MODEL))
    full, _ = attention_layer_forward(x, params, n_heads=N_HEADS, n_kv_heads=2)
    cache = KVCache.empty(1, 5, 2, HEAD_DIM, dtype=np.float32)
    y, _ = decode_step(x, params, cache, n_heads=N_HEADS, n_kv_heads=2)
    assert y.dtype == np.float64 and cache.k.dtype == np.float32
    np.testing.assert_allclose(y, full, atol=1e-5)  # keys/values rounded to float32 only


def test_decode_step_allocates_nothing_of_size_b_s_n_dh():
    """One decode step at S = 4096, N = 16, K = 1: peak extra memory far below a (B, S, N, Dh) array."""
    n_heads, head_dim, d_model, max_len = 16, 64, 256, 4096
    rng = np.random.default_rng(0)
    params = init_attention_params(rng, d_model, n_heads, 1, head_dim)
    cache = KVCache(rng.standard_normal((1, max_len, 1, head_dim)), rng.standard_normal((1, max_len, 1, head_dim)),
                    length=max_len - 1)  # fmt: skip
    repeated_bytes = max_len * n_heads * head_dim * 8  # 32 MiB
    tracemalloc.start()
    decode_step(rng.standard_normal((1, d_model)), params, cache, n_heads=n_heads, n_kv_heads=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert cache.length == max_len
    assert peak < repeated_bytes / 8, (peak, repeated_bytes)


def test_bad_inputs_raise_value_error_naming_argument():
    rng, params = _layer(2)
    cache = KVCache.empty(1, 8, 2, HEAD_DIM)
    x = rng.standard_normal((1, 2, D_MODEL))
    for kwargs, name in [((0, 8, 2, 4), "batch"), ((1, 0, 2, 4), "max_len"), ((1, 8, -2, 4), "n_kv_heads"),
                         ((1, 8, 2, 2.5), "head_dim")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            KVCache.empty(*kwargs)
    with pytest.raises(ValueError, match="dtype"):
        KVCache.empty(1, 8, 2, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="cache"):
        decode_step(x, params, KVCache.empty(1, 8, 3, HEAD_DIM), n_heads=N_HEADS, n_kv_heads=2)  # K mismatch
    with pytest.raises(ValueError, match="cache"):
        decode_step(x, params, KVCache.empty(2, 8, 2, HEAD_DIM), n_heads=N_HEADS, n_kv_heads=2)  # B mismatch
    with pytest.raises(ValueError, match="cache"):
        decode_step(x, params, {"k": cache.k}, n_heads=N_HEADS, n_kv_heads=2)
    with pytest.raises(ValueError, match="x_t"):
        decode_step(x[0, 0], params, cache, n_heads=N_HEADS, n_kv_heads=2)
    with pytest.raises(ValueError, match="n_kv_heads"):
        decode_step(x, params, cache, n_heads=N_HEADS, n_kv_heads=4)
    with pytest.raises(ValueError, match="k_new"):
        cache.append(np.zeros((1, 1, 3, HEAD_DIM)), np.zeros((1, 1, 3, HEAD_DIM)))
    with pytest.raises(ValueError, match="length"):
        KVCache(cache.k, cache.v, length=9)
    with pytest.raises(ValueError, match="v"):
        KVCache(cache.k, cache.v[:, :4])
    assert cache.length == 0
