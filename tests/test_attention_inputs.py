"""Issue 12's examples for the attention side, in both ports: a rejected call changes nothing (kind 1),
KV-cache casts and the baseline's softcap are warning-free (kind 4), and bad inputs raise ValueError naming
the argument instead of TypeError / IndexError / OverflowError or a silent reinterpretation (kind 6).
pytest turns RuntimeWarning into errors, so "no warning" is asserted by every test here."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import refimpl
from refimpl import KVCache, attention_mask, decode_step, init_attention_params, rope_forward
from refimpl.conformance.baseline import naive_attention as baseline_attention
from refimpl.conformance.dtypes import number_format
from refimpl.rope import MAX_POSITION, Rope

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from refimpl import jax as rj  # noqa: E402

# ---- kind 1: validate everything, then mutate --------------------------------------------------------------

BAD_STEP_OPTIONS = [
    (dict(window=0), "window"), (dict(softcap=-1.0), "softcap"), (dict(scale=0.0), "scale"),
    (dict(rope="half"), "rope"), (dict(rope=Rope(offset=MAX_POSITION)), "offset"), (dict(n_kv_heads=3), "n_kv_heads"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs, name", BAD_STEP_OPTIONS)
def test_rejected_decode_step_leaves_the_numpy_cache_unchanged(kwargs, name):
    """The issue's example (window=0 grew the cache to length 1) and every other option checked late."""
    params = init_attention_params(np.random.default_rng(0), 8, 2, 1, 4)
    cache = KVCache.empty(1, 4, 1, 4)
    cache.k[:] = 5.0
    with pytest.raises(ValueError, match=name):
        decode_step(np.ones((1, 2, 8)), params, cache, **{"n_heads": 2, "n_kv_heads": 1, **kwargs})
    assert cache.length == 0 and np.all(cache.k == 5.0) and np.all(cache.v == 0.0)


def test_rejected_appends_and_lengths_leave_the_numpy_cache_unchanged():
    cache = KVCache.empty(1, 4, 1, 2)
    for k_new, v_new, name in [(np.ones((1, 1, 1, 2)), np.ones((1, 2, 1, 2)), "v_new"),
                               (np.ones((1, 0, 1, 2)), np.ones((1, 0, 1, 2)), "k_new"),
                               (np.ones((1, 5, 1, 2)), np.ones((1, 5, 1, 2)), "overflow")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            cache.append(k_new, v_new)
    for length in (-1, 5, 1.0, True):
        with pytest.raises(ValueError, match="length"):
            cache.length = length
    assert cache.length == 0 and not cache.k.any() and not cache.v.any()


@pytest.mark.parametrize("kwargs, name", BAD_STEP_OPTIONS)
def test_rejected_jax_decode_step_donates_nothing(kwargs, name):
    params = init_attention_params(np.random.default_rng(0), 8, 2, 1, 4)
    cache = rj.KVCache.empty(1, 4, 1, 4)
    with pytest.raises(ValueError, match=name):
        rj.decode_step(np.ones((1, 2, 8), np.float32), params, cache, **{"n_heads": 2, "n_kv_heads": 1, **kwargs})
    y, new = rj.decode_step(np.ones((1, 2, 8), np.float32), params, cache, n_heads=2, n_kv_heads=1)  # still usable
    assert int(new.length) == 2 and np.isfinite(np.asarray(y)).all()


@pytest.mark.parametrize("fields, name", [
    (lambda z: (z, z.astype(jnp.float16), jnp.zeros((), jnp.int32)), "cache.v"),  # k and v of different dtypes
    (lambda z: (z, z[:, :2], jnp.zeros((), jnp.int32)), "cache.v"),
    (lambda z: (z, z, jnp.array(-1, jnp.int32)), "cache.length"),  # a negative length
    (lambda z: (z, z, jnp.array(5, jnp.int32)), "cache.length"),
    (lambda z: (z, z, jnp.zeros((), jnp.float32)), "cache.length"),
    (lambda z: (z[0], z[0], 0), "cache.k"),
])  # fmt: skip
def test_jax_cache_fields_are_checked_before_use(fields, name):
    params = init_attention_params(np.random.default_rng(0), 8, 2, 1, 4)
    cache = rj.KVCache(*fields(jnp.zeros((1, 4, 1, 4), jnp.float32)))
    with pytest.raises(ValueError, match=name):
        rj.decode_step(np.ones((1, 8), np.float32), params, cache, n_heads=2, n_kv_heads=1)


# ---- kind 4: casts and extreme valid values are warning-free ----------------------------------------------


@pytest.mark.parametrize("dtype, stored", [(np.float16, np.inf), (ml_dtypes.bfloat16, np.inf),
                                           (ml_dtypes.float8_e5m2, np.inf),
                                           (ml_dtypes.float8_e4m3fn, np.nan)])  # fmt: skip
def test_low_precision_cache_stores_what_the_cast_gives_without_warning(dtype, stored):
    """fp16 KVCache.append of 7e4 (issue 12): stored as +inf, as float16 hardware and the JAX port store it
    (float8_e4m3fn, which has no infinity: NaN); no RuntimeWarning."""
    cache = KVCache.empty(1, 2, 1, 2, dtype=dtype)
    value = 7e4 if dtype is np.float16 else 1e300
    cache.append(np.full((1, 1, 1, 2), value), np.full((1, 1, 1, 2), -value))
    k, v = cache.k.astype(np.float64)[0, 0, 0], cache.v.astype(np.float64)[0, 0, 0]
    assert cache.length == 1
    np.testing.assert_array_equal(k, [stored, stored])
    np.testing.assert_array_equal(v, [-stored, -stored] if stored == np.inf else [stored, stored])


@pytest.mark.parametrize("softcap", [1e300, 1e-300])
@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp32", "fp64"])
def test_baseline_softcap_extremes_are_warning_free_and_finite(softcap, fmt):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 3, 2, 4)), *rng.standard_normal((2, 1, 5, 1, 4))
    dout = rng.standard_normal(q.shape)
    out = baseline_attention(q, k, v, attention_mask(3, 5), 0.5, number_format(fmt), dout=dout, softcap=softcap)
    assert all(np.isfinite(a).all() for a in out.values())
    ref, cache = refimpl.attention_forward(q, k, v, softcap=softcap, scale=0.5)
    assert np.abs(out["out"] - ref).max() < 1e-2  # a 1e300 cap is the identity, a 1e-300 cap flattens the scores


# ---- kind 6: one exception type, naming the argument; one meaning per input ------------------------------


@pytest.mark.parametrize("dtype", ["foo", np.int32, None, bool, complex])
def test_bad_dtypes_raise_value_error(dtype):
    rng = np.random.default_rng(0)
    for call in (lambda: KVCache.empty(1, 4, 1, 4, dtype=dtype), lambda: rj.KVCache.empty(1, 4, 1, 4, dtype=dtype),
                 lambda: init_attention_params(rng, 8, 2, 1, 4, dtype=dtype),
                 lambda: rj.init_attention_params(jax.random.key(0), 8, 2, 1, 4, dtype=dtype)):  # fmt: skip
        with pytest.raises(ValueError, match="dtype"):
            call()


@pytest.mark.parametrize("mask_fn", [attention_mask, rj.attention_mask])
@pytest.mark.parametrize("kv_lengths", [3, [[1, 2]], [1, [2, 3]], [], ["a"], [1.5]])
def test_attention_mask_bad_kv_lengths(mask_fn, kv_lengths):
    with pytest.raises(ValueError, match="kv_lengths"):
        mask_fn(4, 4, kv_lengths=kv_lengths)


@pytest.mark.parametrize("rope", [rope_forward, rj.rope_forward])
@pytest.mark.parametrize("kwargs, name", [
    (dict(offset=2**64), "offset"), (dict(offset=2**63 - 2), "offset"), (dict(offset=MAX_POSITION), "offset"),
    (dict(positions=np.array([2**64 - 1, 0], np.uint64)), "positions"),
    (dict(positions=np.array([-1, 0])), "positions"),
    (dict(positions=[[0, 1], [2]]), "positions"), (dict(positions=np.array([MAX_POSITION + 1, 0])), "positions"),
])  # fmt: skip
def test_rope_positions_outside_the_stated_range_raise(rope, kwargs, name):
    """Positions are integers in [0, 2^31 - 1]: uint64 2^64 - 1 no longer acts as -1, offsets no longer wrap."""
    with pytest.raises(ValueError, match=name):
        rope(np.ones((1, 2, 1, 4)), **kwargs)


@pytest.mark.parametrize("rope", [rope_forward, rj.rope_forward])
def test_rope_accepts_the_largest_position(rope):
    with jax.enable_x64(True):  # float32 angles at p = 2^31 carry ~p * 2^-24 rad of error
        y = rope(np.ones((1, 2, 1, 4)), offset=MAX_POSITION - 1)
    y = y[0] if isinstance(y, tuple) else y
    expected, _ = rope_forward(np.ones((1, 1, 1, 4)), positions=np.array([MAX_POSITION]))
    np.testing.assert_allclose(np.asarray(y)[:, 1:], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_t, name", [(jnp.ones(8), "x_t"), (np.ones((1, 0, 8)), "x_t"), (np.ones((0, 8)), "x_t")])
def test_decode_step_blames_x_t_for_bad_or_empty_tokens(x_t, name):
    """refimpl.jax.decode_step(jnp.ones(8), ...) raised IndexError; zero new tokens blamed q."""
    params = init_attention_params(np.random.default_rng(0), 8, 2, 1, 4)
    with pytest.raises(ValueError, match=name):
        decode_step(np.asarray(x_t, np.float64), params, KVCache.empty(1, 4, 1, 4), n_heads=2, n_kv_heads=1)
    with pytest.raises(ValueError, match=name):
        rj.decode_step(jnp.asarray(x_t, jnp.float32), params, rj.KVCache.empty(1, 4, 1, 4), n_heads=2, n_kv_heads=1)


def test_layer_blames_x_for_zero_tokens_and_checks_upstream_gradients():
    rng = np.random.default_rng(0)
    params = init_attention_params(rng, 8, 2, 1, 4)
    for fn in (refimpl.attention_layer_forward, rj.attention_layer_forward):
        with pytest.raises(ValueError, match=r"\bx\b"):
            fn(np.ones((1, 0, 8)), params, n_heads=2, n_kv_heads=1)
    y, cache = refimpl.attention_layer_forward(np.ones((1, 2, 8)), params, n_heads=2, n_kv_heads=1)
    with pytest.raises(ValueError, match="dy"):
        refimpl.attention_layer_backward(np.full(y.shape, np.nan), cache)
    q = rng.standard_normal((1, 2, 2, 4))
    out, attn = refimpl.attention_forward(q, q[:, :, :1], q[:, :, :1])
    with pytest.raises(ValueError, match="dout"):
        refimpl.attention_backward(np.full(out.shape, np.inf), attn)
    with pytest.raises(ValueError, match="key"):
        rj.init_attention_params(0, 8, 2, 1, 4)  # an int, not a jax.random key (was a TypeError from JAX)


@pytest.mark.parametrize("window", [7, 2**40, 2**70])
def test_a_window_longer_than_the_keys_is_no_window_in_both_ports(window):
    """Huge windows overflowed int64 (NumPy) or int32 (JAX) in q_pos - window; such a window hides nothing."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 3, 2, 4)), *rng.standard_normal((2, 1, 7, 1, 4))
    ref, _ = refimpl.attention_forward(q, k, v)
    np.testing.assert_array_equal(refimpl.attention_forward(q, k, v, window=window)[0], ref)
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(rj.attention_forward(q, k, v, window=window)[0]), ref, rtol=1e-12)
    assert attention_mask(3, 7, window=window).all(axis=None) == attention_mask(3, 7).all(axis=None)
