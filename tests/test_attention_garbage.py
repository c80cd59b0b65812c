"""Values behind a mask never reach an output or a gradient (issue 12, kind 2), in the NumPy reference, the JAX
port and the conformance kit's naive baseline: NaN, +-inf and huge finite garbage in padded or masked K/V slots,
in fully masked query rows, and in a KV cache beyond its length. A query that *sees* a non-finite entry gets NaN
output and lse and sends no gradient; every other row is exactly the garbage-free computation, and the
gradients of garbage slots are exactly 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive_attention import naive_mask
from test_attention import attention_configs

import refimpl
from refimpl import KVCache, attention_backward, attention_forward, decode_step, init_attention_params
from refimpl.conformance.baseline import naive_attention as baseline_attention
from refimpl.conformance.dtypes import number_format

GARBAGE = [np.nan, np.inf, -np.inf]


def test_issue_example_causal_nan_value_of_a_future_key():
    """q = k = 1, v = [3, NaN], causal: query 0 cannot see key 1, so its output is 3.0; query 1 sees the NaN."""
    q = k = np.ones((1, 2, 1, 1))
    v = np.array([3.0, np.nan]).reshape(1, 2, 1, 1)
    out, cache = attention_forward(q, k, v, causal=True)
    assert out[0, 0, 0, 0] == 3.0 and np.isnan(out[0, 1, 0, 0]) and np.isnan(cache.lse[0, 1, 0])
    grads = attention_backward(np.full_like(out, 2.0), cache)
    assert grads["v"].ravel().tolist() == [2.0, 0.0]  # row 0 alone: p = 1 on key 0; the poisoned row sends none
    assert grads["q"].ravel().tolist() == [0.0, 0.0] and grads["k"].ravel().tolist() == [0.0, 0.0]


def test_issue_example_padding_rows_alone_and_batched():
    """kv_lengths=[1]: 3.0 alone, and still 3.0 when batched with a longer row (it was NaN)."""
    q = np.ones((1, 1, 1, 1))
    v = np.array([3.0, np.nan]).reshape(1, 2, 1, 1)
    alone, _ = attention_forward(q, np.ones((1, 2, 1, 1)), v, kv_lengths=np.array([1]))
    v2 = np.concatenate([v, np.array([1.0, 2.0]).reshape(1, 2, 1, 1)])  # (2, 2, 1, 1): row 1 is valid
    batched, _ = attention_forward(np.ones((2, 1, 1, 1)), np.ones((2, 2, 1, 1)), v2, kv_lengths=np.array([1, 2]))
    assert alone.ravel().tolist() == [3.0] and batched.ravel().tolist() == [3.0, 1.5]


def poisoned_rows(mask, q_bad, kv_bad, n_heads):
    """Loops: row (b, t, n) is poisoned iff it sees a bad key of its KV head, or has a bad q and sees a key."""
    batch, n_q, _ = mask.shape
    n_kv = kv_bad.shape[2]
    out = np.zeros((batch, n_q, n_heads), dtype=bool)
    for b, t, n in np.ndindex(out.shape):
        seen = np.flatnonzero(mask[b, t])
        out[b, t, n] = bool(kv_bad[b, seen, n // (n_heads // n_kv)].any()) or (q_bad[b, t, n] and seen.size > 0)
    return out


@st.composite
def garbage_cases(draw):
    cfg = draw(attention_configs())
    batch, n_q, n_k, n_heads, n_kv, head_dim = cfg["shapes"]
    rng = np.random.default_rng(cfg["seed"])
    q = rng.standard_normal((batch, n_q, n_heads, head_dim))
    k, v = rng.standard_normal((2, batch, n_k, n_kv, head_dim))
    sinks = rng.standard_normal(n_heads) if draw(st.booleans()) else None
    value = draw(st.sampled_from(GARBAGE))
    q_bad, kv_bad = rng.random(q.shape[:3]) < 0.25, rng.random(k.shape[:3]) < 0.3  # (B, T, N), (B, S, K)
    where_kv = draw(st.sampled_from(["k", "v", "both"]))
    dirty = {"q": q.copy(), "k": k.copy(), "v": v.copy()}
    dirty["q"][q_bad, rng.integers(head_dim)] = value
    for name in ("k", "v") if where_kv == "both" else (where_kv,):
        dirty[name][kv_bad, rng.integers(head_dim)] = value
    return cfg, dict(q=q, k=k, v=v), dirty, sinks, q_bad, kv_bad, rng


@given(garbage_cases())
def test_non_finite_inputs_poison_only_the_rows_that_see_them(case):
    cfg, clean, dirty, sinks, q_bad, kv_bad, rng = case
    batch, n_q, n_k, n_heads, _, _ = cfg["shapes"]
    mask_kw = {a: cfg["mask"][a] for a in ("causal", "kv_lengths", "window")}
    bad = poisoned_rows(naive_mask(batch, n_q, n_k, **mask_kw), q_bad, kv_bad, n_heads)  # (B, T, N)
    out, cache = attention_forward(**dirty, sinks=sinks, **cfg["mask"])
    out_ref, cache_ref = attention_forward(**clean, sinks=sinks, **cfg["mask"])
    assert np.isnan(out[bad]).all() and np.isnan(cache.lse[bad]).all()
    np.testing.assert_allclose(out[~bad], out_ref[~bad], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cache.lse[~bad], cache_ref.lse[~bad], rtol=1e-13, atol=1e-15)
    dout = rng.standard_normal(out.shape)
    grads = attention_backward(dout, cache)
    grads_ref = attention_backward(np.where(bad[..., None], 0.0, dout), cache_ref)  # poisoned rows send nothing
    assert all(np.isfinite(g).all() for g in grads.values())
    assert np.all(grads["q"][q_bad] == 0) and np.all(grads["k"][kv_bad] == 0) and np.all(grads["v"][kv_bad] == 0)
    for name, g in grads.items():
        np.testing.assert_allclose(g, grads_ref[name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e300, -1e300])
@pytest.mark.parametrize("mask", [dict(causal=True, kv_lengths=np.array([6, 3])),
                                  dict(causal=False, kv_lengths=np.array([2, 0]), window=2, softcap=1.5),
                                  dict(causal=True, kv_lengths=np.array([4, 1]), window=3)])  # fmt: skip
@pytest.mark.parametrize("sinks", [False, True])
def test_garbage_in_padded_slots_and_masked_rows_changes_nothing(value, mask, sinks):
    """Padding slots (j >= L_b) and fully masked query rows hold garbage, finite or not: outputs and gradients
    equal the clean ones (to rounding), the garbage slots' gradients are exactly 0, no warning is raised."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 4, 4, 8)), *rng.standard_normal((2, 2, 6, 2, 8))
    z = rng.standard_normal(4) if sinks else None
    padded = np.arange(6)[None, :] >= mask["kv_lengths"][:, None]  # (B, S)
    masked_rows = ~naive_mask(2, 4, 6, **{a: mask.get(a) for a in ("causal", "kv_lengths", "window")}).any(-1)
    dirty = [a.copy() for a in (q, k, v)]
    dirty[0][masked_rows] = value
    dirty[1][padded], dirty[2][padded] = value, -value
    out, cache = attention_forward(*dirty, sinks=z, **mask)
    out_ref, cache_ref = attention_forward(q, k, v, sinks=z, **mask)
    np.testing.assert_allclose(out, out_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(np.isneginf(cache.lse), np.isneginf(cache_ref.lse))
    dout = rng.standard_normal(out.shape)
    grads, grads_ref = attention_backward(dout, cache), attention_backward(dout, cache_ref)
    assert np.all(grads["k"][padded] == 0) and np.all(grads["v"][padded] == 0) and np.all(grads["q"][masked_rows] == 0)
    for name, g in grads.items():
        np.testing.assert_allclose(g, grads_ref[name], rtol=1e-12, atol=1e-14, err_msg=name)
    full_mask = refimpl.attention_mask(4, 6, batch=2, **{a: mask[a] for a in mask if a != "softcap"})  # (B, T, S)
    base = baseline_attention(*dirty, full_mask, cache.scale, number_format("fp64"), dout=dout,
                              softcap=mask.get("softcap"), sinks=z)  # fmt: skip
    refs = {"out": out_ref, **{"d" + n: g for n, g in grads_ref.items()}}  # "dsinks" with sinks
    assert set(base) == {"lse", *refs}
    for name, ref in refs.items():
        np.testing.assert_allclose(base[name], ref, rtol=1e-12, atol=1e-14, err_msg=name)


def test_baseline_poisons_the_same_rows_as_the_reference():
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((2, 5, 4, 4)), *rng.standard_normal((2, 2, 7, 2, 4))
    k[0, 6, 1, 0], v[1, 2, 0, 3], q[1, 0, 2, 1] = np.nan, np.inf, -np.inf
    kw = dict(causal=True, kv_lengths=np.array([7, 6]), window=4)
    out, cache = attention_forward(q, k, v, **kw)
    dout = rng.standard_normal(out.shape)
    grads = attention_backward(dout, cache)
    base = baseline_attention(q, k, v, refimpl.attention_mask(5, 7, **kw), cache.scale, number_format("fp64"),
                              dout=dout)  # fmt: skip
    assert 0 < np.isnan(out).sum() < out.size
    np.testing.assert_allclose(base["out"], out, rtol=1e-12, atol=1e-14)  # NaN where the reference has NaN
    np.testing.assert_allclose(base["lse"], cache.lse, rtol=1e-12, atol=1e-14)
    for name in "qkv":
        np.testing.assert_allclose(base[f"d{name}"], grads[name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("sinks", [False, True])
def test_decode_ignores_garbage_beyond_the_cache_length(sinks):
    rng = np.random.default_rng(1)
    params = init_attention_params(rng, 12, 4, 2, 4, sinks=sinks)
    x = rng.standard_normal((2, 5, 12))
    kw = dict(n_heads=4, n_kv_heads=2, window=3)
    clean, dirty = KVCache.empty(2, 8, 2, 4), KVCache.empty(2, 8, 2, 4)
    dirty.k[:], dirty.v[:] = np.nan, np.inf  # uninitialised memory
    for t in range(5):
        y_ref, _ = decode_step(x[:, t], params, clean, **kw)
        y, _ = decode_step(x[:, t], params, dirty, **kw)
        np.testing.assert_array_equal(y, y_ref)
    assert np.isnan(dirty.k[:, 5:]).all()  # still garbage: never read


class TestJax:
    """The JAX port agrees with NumPy on garbage, alone and batched (it gave NaN even alone)."""

    jax = pytest.importorskip("jax")

    @pytest.fixture(autouse=True)
    def x64(self):
        with self.jax.enable_x64(True):
            yield

    def test_issue_examples(self):
        from refimpl.jax import attention_forward as jattention

        q = k = np.ones((1, 2, 1, 1))
        v = np.array([3.0, np.nan]).reshape(1, 2, 1, 1)
        out, _ = jattention(q, k, v, causal=True)
        assert np.asarray(out)[0, 0, 0, 0] == 3.0 and np.isnan(np.asarray(out)[0, 1, 0, 0])
        alone, _ = jattention(np.ones((1, 1, 1, 1)), np.ones((1, 2, 1, 1)), v, kv_lengths=np.array([1]))
        assert np.asarray(alone).ravel().tolist() == [3.0]
        with self.jax.enable_x64(False):
            alone32, _ = jattention(*(np.ones(s, np.float32) for s in ((1, 1, 1, 1), (1, 2, 1, 1))),
                                    v.astype(np.float32), kv_lengths=np.array([1]))  # fmt: skip
        assert np.asarray(alone32).ravel().tolist() == [3.0]

    @pytest.mark.parametrize("sinks", [False, True])
    def test_outputs_and_jax_grad_equal_numpy_with_garbage(self, sinks):
        import jax.numpy as jnp

        from refimpl.jax import attention_forward as jattention

        rng = np.random.default_rng(2)
        q, k, v = rng.standard_normal((2, 5, 4, 4)), *rng.standard_normal((2, 2, 7, 2, 4))
        z = rng.standard_normal(4) if sinks else None
        k[0, 6, 1, 0], v[1, 2, 0, 3], q[1, 0, 2, 1], k[1, 6], v[1, 6] = np.nan, np.inf, -np.inf, np.nan, 1e300
        kw = dict(causal=True, kv_lengths=np.array([7, 6]), window=4, softcap=3.0)
        out_ref, cache = attention_forward(q, k, v, sinks=z, **kw)
        dout = rng.standard_normal(q.shape)
        g_ref = attention_backward(dout, cache)
        out, jcache = jattention(q, k, v, sinks=z, **kw)
        np.testing.assert_allclose(np.asarray(out), out_ref, rtol=1e-12, atol=1e-15)  # NaN rows included
        np.testing.assert_allclose(np.asarray(jcache.lse), cache.lse, rtol=1e-12, atol=1e-15)

        def loss(q_, k_, v_):
            o = jattention(q_, k_, v_, sinks=z, **kw)[0]
            return jnp.sum(jnp.where(jnp.isnan(o), 0.0, jnp.asarray(dout) * o))

        grads = self.jax.grad(loss, argnums=(0, 1, 2))(*(jnp.asarray(a) for a in (q, k, v)))
        for name, g in zip("qkv", grads, strict=True):
            np.testing.assert_allclose(np.asarray(g), g_ref[name], rtol=1e-10, atol=1e-13, err_msg=name)

    def test_decode_ignores_garbage_beyond_the_cache_length(self):
        import jax.numpy as jnp

        from refimpl.jax import KVCache as JaxCache
        from refimpl.jax import decode_step as jdecode

        rng = np.random.default_rng(1)
        params = init_attention_params(rng, 12, 4, 2, 4, sinks=True)
        x = rng.standard_normal((2, 4, 12))
        ref, _ = refimpl.attention_layer_forward(x, params, n_heads=4, n_kv_heads=2)
        garbage = jnp.full((2, 6, 2, 4), jnp.nan)
        cache = JaxCache(garbage, jnp.full_like(garbage, jnp.inf), jnp.zeros((), jnp.int32))
        y, cache = jdecode(x, params, cache, n_heads=4, n_kv_heads=2)
        np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-12, atol=1e-14)
        # a NaN the next token *sees* (batch row 1, slot 0): that row's output is NaN in both ports
        cache = cache._replace(v=cache.v.at[1, 0].set(jnp.nan))
        np_cache = KVCache(np.array(cache.k), np.array(cache.v), 4)
        y, _ = jdecode(x[:, 0], params, cache, n_heads=4, n_kv_heads=2)
        y_np, _ = decode_step(x[:, 0], params, np_cache, n_heads=4, n_kv_heads=2)
        assert np.isnan(y_np[1]).all() and np.isfinite(y_np[0]).all()
        np.testing.assert_allclose(np.asarray(y), y_np, rtol=1e-12, atol=1e-14)
