"""JAX attention layer and KV-cache decode against the float64 NumPy reference (x64): the layer's forward
within 1e-12 and jax.grad within 1e-10 of the manual backward (rope layouts, biases, GQA/MQA/MHA, masks);
decode (prefill chunk + single steps) equal to NumPy's decode and to the full causal forward; the decode
step compiles once per shape and refuses to overflow."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax_support import rel, x64  # noqa: E402, F401 -- x64: autouse fixture

import refimpl  # noqa: E402
from refimpl.jax import kv_cache as jkv  # noqa: E402
from refimpl.jax import layer as jlayer  # noqa: E402
from refimpl.rope import Rope  # noqa: E402

LAYER_CASES = [
    (dict(n_heads=4, n_kv_heads=2, rope=Rope("half")), False),
    (dict(n_heads=4, n_kv_heads=1, rope=Rope("interleaved", offset=3), window=3, softcap=2.0), True),
    (dict(n_heads=4, n_kv_heads=4, kv_lengths=[5, 3], causal=True), "qkv"),
    (dict(n_heads=6, n_kv_heads=3, rope=Rope("half", theta=5e5), causal=False, kv_lengths=[2, 0]), True),
]


@pytest.mark.parametrize("kw,bias", LAYER_CASES)
def test_layer_forward_and_jax_grad_match_numpy(kw, bias):
    rng = np.random.default_rng(LAYER_CASES.index((kw, bias)))
    kw = {**kw, **({"kv_lengths": np.array(kw["kv_lengths"])} if "kv_lengths" in kw else {})}
    params = refimpl.init_attention_params(rng, 12, kw["n_heads"], kw["n_kv_heads"], 4, bias=bias)
    x, dy = rng.standard_normal((2, 2, 5, 12))  # (B, T, D) each; dy: random upstream gradient
    y_ref, cache = refimpl.attention_layer_forward(x, params, **kw)
    g_ref = refimpl.attention_layer_backward(dy, cache)
    assert rel(jlayer.attention_layer_forward(x, params, **kw), y_ref) <= 1e-12

    def loss(x_, p_):
        return jnp.sum(jnp.asarray(dy) * jlayer.attention_layer_forward(x_, p_, **kw))

    dx, dp = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(x), {k: jnp.asarray(a) for k, a in params.items()})
    got = {"x": dx, **dp}
    assert sorted(got) == sorted(g_ref)
    # b_k's gradient is analytically 0 without rope (q.b_k shifts a whole score row; softmax ignores shifts):
    # each gradient is measured against max(its own max, 1e-6 x the layer's largest gradient)
    floor = 1e-6 * max(float(np.max(np.abs(g))) for g in g_ref.values())
    for name in g_ref:
        assert rel(got[name], g_ref[name], floor) <= 1e-10, name
    helper = jlayer.attention_layer_backward(dy, x, params, **kw)
    assert max(rel(helper[n], g_ref[n], floor) for n in g_ref) <= 1e-10


@pytest.mark.parametrize("n_kv,rope,window", [(1, Rope("interleaved", offset=4), None), (2, Rope("half"), 3),
                                              (4, None, None)])  # fmt: skip
def test_decode_matches_numpy_decode_and_full_forward_and_compiles_once(n_kv, rope, window):
    rng = np.random.default_rng(n_kv)
    n_heads, head_dim, d_model, batch, prompt, steps = 4, 4, 12, 2, 3, 5
    params = refimpl.init_attention_params(rng, d_model, n_heads, n_kv, head_dim, bias="qkv")
    x = rng.standard_normal((batch, prompt + steps, d_model))  # (B, T, D)
    kw = dict(n_heads=n_heads, n_kv_heads=n_kv, rope=rope, window=window)
    y_full, _ = refimpl.attention_layer_forward(x, params, **kw)
    cache_np = refimpl.KVCache.empty(batch, 10, n_kv, head_dim)
    cache = jkv.KVCache.empty(batch, 10, n_kv, head_dim, dtype=jnp.float64)
    jkv._decode_step._clear_cache()
    y_np, cache_np = refimpl.decode_step(x[:, :prompt], params, cache_np, **kw)
    y, cache = jkv.decode_step(x[:, :prompt], params, cache, **kw)
    assert rel(y, y_np) <= 1e-12
    for t in range(prompt, prompt + steps):
        y_np, cache_np = refimpl.decode_step(x[:, t], params, cache_np, **kw)
        y, cache = jkv.decode_step(x[:, t], params, cache, **kw)
        assert y.shape == (batch, d_model) and rel(y, y_np) <= 1e-12
        assert rel(y, y_full[:, t]) <= 1e-12
    assert int(cache.length) == cache_np.length == prompt + steps
    assert rel(cache.k, cache_np.k) <= 1e-12 and rel(cache.v, cache_np.v) <= 1e-12
    assert jkv._decode_step._cache_size() == 2  # one compile for the prompt chunk, one for all single steps


def test_decode_step_donates_the_cache_and_refuses_overflow():
    rng = np.random.default_rng(0)
    params = refimpl.init_attention_params(rng, 8, 2, 1, 4)
    cache = jkv.KVCache.empty(1, 3, 1, 4, dtype=jnp.float64)
    _, new = jkv.decode_step(rng.standard_normal((1, 2, 8)), params, cache, n_heads=2, n_kv_heads=1)
    if jax.default_backend() != "cpu":  # XLA:CPU may ignore donation; accelerators reuse the buffer
        assert cache.k.is_deleted()
    with pytest.raises(ValueError, match="overflow"):
        jkv.decode_step(rng.standard_normal((1, 2, 8)), params, new, n_heads=2, n_kv_heads=1)
    assert int(new.length) == 2


def test_cache_nbytes_is_two_buffers_of_k_heads():
    cache = jkv.KVCache.empty(3, 16, 2, 8, dtype=jnp.bfloat16)
    assert cache.nbytes == 2 * 3 * 16 * 2 * 8 * 2
    assert cache.nbytes == refimpl.KVCache.empty(3, 16, 2, 8, dtype=np.float16).nbytes


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda x, p: jlayer.attention_layer_forward(x, p, n_heads=3, n_kv_heads=2), "n_kv_heads"),
        (lambda x, p: jlayer.attention_layer_forward(x[..., :5], p, n_heads=4, n_kv_heads=2), "params"),
        (lambda x, p: jlayer.attention_layer_forward(x, p, n_heads=4, n_kv_heads=2, rope="half"), "rope"),
        (lambda x, p: jkv.decode_step(x[0], p, "cache", n_heads=4, n_kv_heads=2), "cache"),
        (lambda x, p: jkv.decode_step(x, p, jkv.KVCache.empty(1, 8, 2, 4), n_heads=4, n_kv_heads=2), "cache"),
        (lambda x, p: jkv.KVCache.empty(1, 0, 2, 4), "max_len"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=name):
        call(rng.standard_normal((2, 3, 8)), refimpl.init_attention_params(rng, 8, 4, 2, 4))


def test_layer_and_decode_with_sinks_match_numpy():
    """The "sinks" parameter: layer output and jax.grad (sinks' gradient included) against NumPy; decode with
    sinks against NumPy's decode and the full forward."""
    rng = np.random.default_rng(9)
    params = refimpl.init_attention_params(rng, 12, 4, 2, 4, bias=True, sinks=True)
    kw = dict(n_heads=4, n_kv_heads=2, rope=Rope("half"), window=3)
    x, dy = rng.standard_normal((2, 2, 6, 12))  # (B, T, D) each
    y_ref, cache = refimpl.attention_layer_forward(x, params, **kw)
    g_ref = refimpl.attention_layer_backward(dy, cache)
    assert rel(jlayer.attention_layer_forward(x, params, **kw), y_ref) <= 1e-12
    got = jlayer.attention_layer_backward(dy, x, params, **kw)
    floor = 1e-6 * max(float(np.max(np.abs(g))) for g in g_ref.values())
    assert sorted(got) == sorted(g_ref) and max(rel(got[n], g_ref[n], floor) for n in g_ref) <= 1e-10
    cache_j = jkv.KVCache.empty(2, 8, 2, 4, dtype=jnp.float64)
    y_j, cache_j = jkv.decode_step(x[:, :4], params, cache_j, **kw)
    y_last, _ = jkv.decode_step(x[:, 4], params, cache_j, **kw)
    assert rel(y_j, y_ref[:, :4]) <= 1e-12 and rel(y_last, y_ref[:, 4]) <= 1e-12
