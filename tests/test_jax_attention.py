"""JAX attention, masks and rope against the float64 NumPy reference (x64): forward within 1e-12, jax.grad
within 1e-10 of the manual backward over the NumPy test matrix (T != S, K in {1, middle, N}, padding
including empty rows, window, softcap, scale, non-causal); fully masked rows; jax.nn.dot_product_attention."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax_support import rel, x64  # noqa: E402, F401 -- x64: autouse fixture

import refimpl  # noqa: E402
from refimpl import masks as np_masks  # noqa: E402
from refimpl import rope as np_rope  # noqa: E402
from refimpl.jax import attention as jattn  # noqa: E402
from refimpl.jax import masks as jmasks  # noqa: E402
from refimpl.jax import rope as jrope  # noqa: E402

# (B, T, S, N, K, Dh), mask options: K in {1, middle, N}; T < S, T = S, T > S; every mask option
MATRIX = [
    ((2, 3, 7, 6, 1, 4), dict(causal=True)),
    ((2, 3, 7, 6, 3, 4), dict(causal=True, kv_lengths=[7, 2])),
    ((2, 5, 5, 6, 6, 4), dict(causal=True, window=2)),
    ((1, 6, 4, 4, 2, 8), dict(causal=True)),  # T > S: the first queries see no key (q_pos < 0)
    ((2, 4, 6, 4, 2, 4), dict(causal=False, kv_lengths=[3, 0])),  # an empty row: fully masked
    ((2, 4, 6, 4, 4, 4), dict(causal=False, window=3, softcap=1.5)),
    ((1, 1, 9, 8, 2, 4), dict(causal=True, softcap=0.7, scale=0.9, window=4)),  # decode-shaped T = 1
    ((2, 6, 6, 2, 1, 2), dict(causal=True, kv_lengths=[4, 6], window=3, softcap=2.0)),
]


def _case(shapes, options, seed):
    """q, k, v, a random upstream gradient, sink logits and the options with kv_lengths as an array."""
    batch, n_q, n_k, n_heads, n_kv, head_dim = shapes
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, n_q, n_heads, head_dim))
    k, v = rng.standard_normal((2, batch, n_k, n_kv, head_dim))
    dout, sinks = rng.standard_normal(q.shape), rng.standard_normal(n_heads)
    opts = {**options, "kv_lengths": None if "kv_lengths" not in options else np.array(options["kv_lengths"])}
    return q, k, v, dout, sinks, opts


@pytest.mark.parametrize("shapes,options", MATRIX)
def test_forward_lse_and_jax_grad_match_numpy(shapes, options):
    q, k, v, dout, _, opts = _case(shapes, options, MATRIX.index((shapes, options)))
    out_ref, cache = refimpl.attention_forward(q, k, v, **opts)
    g_ref = refimpl.attention_backward(dout, cache)
    out, jcache = jattn.attention_forward(q, k, v, **opts)
    assert rel(out, out_ref) <= 1e-12
    lse = np.asarray(jcache.lse)
    assert np.array_equal(np.isneginf(lse), np.isneginf(cache.lse))
    finite = np.isfinite(cache.lse)
    assert rel(lse[finite], cache.lse[finite]) <= 1e-12 if finite.any() else True

    def loss(q_, k_, v_):
        return jnp.sum(jnp.asarray(dout) * jattn.attention_forward(q_, k_, v_, **opts)[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*(jnp.asarray(a) for a in (q, k, v)))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    for name, g in zip("qkv", grads, strict=True):
        assert rel(g, g_ref[name]) <= 1e-10, name


def test_backward_helper_is_the_vjp():
    rng = np.random.default_rng(3)
    q, dout = rng.standard_normal((2, 2, 5, 4, 4))
    k, v = rng.standard_normal((2, 2, 7, 2, 4))
    opts = dict(causal=True, kv_lengths=np.array([7, 3]), window=4, softcap=3.0)
    g_ref = refimpl.attention_backward(dout, refimpl.attention_forward(q, k, v, **opts)[1])
    got = jattn.attention_backward(dout, q, k, v, **opts)
    assert max(rel(got[n], g_ref[n]) for n in "qkv") <= 1e-10


def test_fully_masked_rows_give_zero_output_minus_inf_lse_and_zero_grads_in_float32():
    with jax.enable_x64(False):
        rng = np.random.default_rng(0)
        q = rng.standard_normal((2, 3, 2, 4)).astype(np.float32)
        k, v = rng.standard_normal((2, 2, 4, 1, 4)).astype(np.float32)
        lengths = np.array([0, 4])
        out, cache = jattn.attention_forward(q, k, v, causal=False, kv_lengths=lengths)
        g = jattn.attention_backward(np.ones_like(q), q, k, v, causal=False, kv_lengths=lengths)
    assert np.all(np.asarray(out)[0] == 0) and np.all(np.isneginf(np.asarray(cache.lse)[0]))
    assert np.all(np.asarray(g["q"])[0] == 0) and all(np.isfinite(np.asarray(a)).all() for a in g.values())


def test_head_map_is_contiguous_groups():
    """Query head n must read KV head n // R: give each KV head a constant value, read it back per query head."""
    n_heads, n_kv = 6, 3
    q = np.zeros((1, 1, n_heads, 2))
    k = np.zeros((1, 2, n_kv, 2))
    v = np.broadcast_to(np.arange(n_kv, dtype=np.float64)[None, None, :, None], (1, 2, n_kv, 2)).copy()
    out, _ = jattn.attention_forward(q, k, v, causal=False)
    np.testing.assert_array_equal(np.asarray(out)[0, 0, :, 0], np.arange(n_heads) // (n_heads // n_kv))


def test_against_jax_nn_dot_product_attention_where_conventions_agree():
    """jax.nn.dot_product_attention aligns causal masks top-left and takes the softmax in float32 even for
    float64 inputs: for T = S (where top-left = bottom-right) it agrees only to float32 accuracy (~1e-7);
    for T < S the causal outputs differ by O(1), the alignment difference."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 4, 4, 8))
    k, v = rng.standard_normal((2, 1, 4, 2, 8))
    ours, _ = jattn.attention_forward(q, k, v, causal=True)
    theirs = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    err = rel(theirs, ours)
    assert 1e-10 < err < 1e-5  # agrees, but only to float32 precision
    q_short = q[:, 2:]
    ours_short, _ = jattn.attention_forward(q_short, k, v, causal=True)  # the last two queries: positions 2, 3
    theirs_short = jax.nn.dot_product_attention(q_short, k, v, is_causal=True)  # positions 0, 1
    assert rel(theirs_short, ours_short) > 1e-2
    np.testing.assert_allclose(np.asarray(ours_short), np.asarray(ours)[:, 2:], rtol=1e-12)


@pytest.mark.parametrize("n_q,n_k,kw", [(3, 7, dict(causal=True, kv_lengths=[7, 2, 0], window=3)),
                                        (6, 4, dict(causal=False, window=2)), (1, 5, dict(causal=True))])  # fmt: skip
def test_masks_match_numpy(n_q, n_k, kw):
    ref = np_masks.attention_mask(n_q, n_k, **kw)
    np.testing.assert_array_equal(np.asarray(jmasks.attention_mask(n_q, n_k, **kw)), ref)


@pytest.mark.parametrize("layout", np_rope.ROPE_LAYOUTS)
@pytest.mark.parametrize("kw", [dict(offset=5), dict(positions=np.array([[3, 1, 4, 1], [5, 9, 2, 6]]), theta=5e5)])
def test_rope_forward_and_backward_match_numpy(layout, kw):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((2, 2, 4, 3, 8))
    y_ref, cache = np_rope.rope_forward(x, layout=layout, **kw)
    assert rel(jrope.rope_forward(x, layout=layout, **kw), y_ref) <= 1e-12
    assert rel(jrope.rope_backward(dy, x, layout=layout, **kw), np_rope.rope_backward(dy, cache)) <= 1e-12


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda q, k: jattn.attention_forward(q, k[:, :, :, :3], k[:, :, :, :3]), "k"),
        (lambda q, k: jattn.attention_forward(q[:, :, :3], k, k), "K=2"),
        (lambda q, k: jattn.attention_forward(q, k, k, kv_lengths=np.array([9])), "kv_lengths"),
        (lambda q, k: jattn.attention_forward(q, k, k, kv_lengths=np.array([1.0])), "kv_lengths"),
        (lambda q, k: jattn.attention_forward(q, k, k, window=0), "window"),
        (lambda q, k: jattn.attention_forward(q, k, k, softcap=-1.0), "softcap"),
        (lambda q, k: jattn.attention_forward(q, k, k, causal="yes"), "causal"),
        (lambda q, k: jattn.attention_backward(q[:, :1], q, k, k), "dout"),
        (lambda q, k: jrope.rope_forward(q, layout="neox"), "layout"),
        (lambda q, k: jrope.rope_forward(q, positions=np.array([-1, 0, 1])), "positions"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=name):
        call(rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 5, 2, 4)))


SINK_CASES = [
    ((2, 3, 7, 6, 2, 4), dict(causal=True, kv_lengths=[7, 0])),  # an empty row: all mass on the sink
    ((1, 6, 6, 4, 1, 8), dict(causal=True, window=3, softcap=2.0)),  # gpt-oss's sliding layer (+ softcap)
    ((2, 4, 6, 4, 4, 4), dict(causal=False, window=2, scale=0.6)),
]


@pytest.mark.parametrize("shapes,options", SINK_CASES)
def test_sinks_forward_and_jax_grad_match_numpy(shapes, options):
    """jax.grad of the JAX forward, sinks included, equals the NumPy manual backward (x64)."""
    q, k, v, dout, sinks, opts = _case(shapes, options, SINK_CASES.index((shapes, options)))
    out_ref, cache = refimpl.attention_forward(q, k, v, sinks=sinks, **opts)
    g_ref = refimpl.attention_backward(dout, cache)
    out, jcache = jattn.attention_forward(q, k, v, sinks=sinks, **opts)
    assert rel(out, out_ref) <= 1e-12 and rel(jcache.lse, cache.lse) <= 1e-12

    def loss(q_, k_, v_, z_):
        return jnp.sum(jnp.asarray(dout) * jattn.attention_forward(q_, k_, v_, sinks=z_, **opts)[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(*(jnp.asarray(a) for a in (q, k, v, sinks)))
    for name, g in zip(("q", "k", "v", "sinks"), grads, strict=True):
        assert rel(g, g_ref[name]) <= 1e-10, name
    helper = jattn.attention_backward(dout, q, k, v, sinks=sinks, **opts)
    assert sorted(helper) == sorted(g_ref) and max(rel(helper[n], g_ref[n]) for n in g_ref) <= 1e-10
