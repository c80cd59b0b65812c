"""The cost model's per-layer FLOPs (costmodel/flops.py) against XLA's own count of the jitted JAX port,
``jax.jit(f).lower(...).compile().cost_analysis()["flops"]``, for the FFN and the attention layer, prefill
(T = S tokens) and decode (T = 1 against an S-token cache).

How the terms are separated. XLA counts 2*m*n*k per dot and one FLOP per element per elementwise HLO op
(exp, log, tanh, erf's pieces...: XLA lists exp/log/tanh as "transcendentals" but expands erf into ~60
multiply-adds). Elementwise counts therefore depend on how an op is written, and the cost model keeps them
apart under their own names ("act", "softmax", "bias"). The tests compare:

* matrix products EXACTLY: XLA(forward) - XLA(the forward's elementwise part compiled alone) equals the cost
  model's matmul terms (FFN: gate/up/down; layer: q/k/v/o). For the attention core, whose elementwise part
  cannot be compiled without its two products, the difference between head dims Dh = 8 and 4 isolates them:
  XLA(8) - XLA(4) = (qk + pv)(8) - (qk + pv)(4) + B*T*N*4*2 + cleaning(8) - cleaning(4): two elementwise ops
  per output element (o / sum of p, and the select that poisons rows seeing non-finite inputs), and the
  cleaning of q, k, v (non-finite entries -> 0), which grows with Dh and is compiled alone. The port scores
  every (query, key) pair and masks afterwards, so its prefill matches the cost model's full rectangle
  (causal=False, T*S pairs), not the causal triangle; a decode step (T = 1) has S pairs either way.
* elementwise terms where conventions coincide: Bilinear without biases has one elementwise op (the gate
  product, GATE_MULTIPLY_FLOPS per hidden element), so there XLA's total equals the cost model's total.
  Other activations differ by convention and are documented, not asserted (docs/jax.md): XLA counts per
  hidden element relu 2 (compare + select), swish 7, sigmoid-GLU 4, tanh-GELU 11-12, erf-GELU 67-68,
  against ACTIVATION_FLOPS 1 / 4 / 3 / 4 / 4 in the cost model.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
flops = pytest.importorskip("costmodel.flops", reason="costmodel/flops.py (the cost model's FLOP functions) absent")
import jax.numpy as jnp  # noqa: E402

import refimpl  # noqa: E402
from refimpl.jax import activations as jact  # noqa: E402
from refimpl.jax import attention as jattn  # noqa: E402
from refimpl.jax import ffn as jffn  # noqa: E402
from refimpl.jax import kv_cache as jkv  # noqa: E402
from refimpl.jax import layer as jlayer  # noqa: E402
from refimpl.variants import get_variant  # noqa: E402

D_MODEL, D_FF, BATCH, PROMPT, CONTEXT = 32, 48, 2, 8, 16
N_HEADS, N_KV, HEAD_DIM = 4, 2, 8


def xla_flops(fn, *args) -> int:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older JAX returns one dict per device
    value = cost["flops"]
    assert value == int(value)
    return int(value)


def matmul_terms(items: dict) -> int:
    return sum(v for k, v in items.items() if k in flops.MATMUL_TERMS)


@pytest.mark.parametrize("variant,gelu", [("swiglu", "erf"), ("geglu", "tanh"), ("geglu", "erf"), ("relu", "erf"),
                                          ("glu", "erf"), ("gelu", "tanh")])  # fmt: skip
@pytest.mark.parametrize("tokens", [BATCH * PROMPT, BATCH], ids=["prefill", "decode"])
def test_ffn_matmul_flops_equal_xla(variant, gelu, tokens):
    spec = get_variant(variant)
    params = {k: jnp.asarray(a, jnp.float32) for k, a in
              refimpl.init_ffn_params(np.random.default_rng(0), D_MODEL, D_FF, variant).items()}  # fmt: skip
    x = jnp.zeros((tokens, D_MODEL), jnp.float32)  # (M, D)
    hidden = jnp.zeros((tokens, D_FF), jnp.float32)  # (M, F)
    total = xla_flops(lambda x_, p_: jffn.ffn_forward(x_, p_, variant, gelu=gelu), x, params)
    if spec.gated:
        elementwise = xla_flops(lambda a, b: jact.activation(spec.activation, a, gelu_approximate=gelu) * b,
                                hidden, hidden)  # fmt: skip
    else:
        elementwise = xla_flops(lambda b: jact.activation(spec.activation, b, gelu_approximate=gelu), hidden)
    expected = flops.ffn_flops(tokens, D_MODEL, D_FF, variant)
    assert total - elementwise == matmul_terms(expected)


def test_bilinear_ffn_total_flops_equal_xla_including_the_gate_product():
    params = {k: jnp.asarray(a, jnp.float32) for k, a in
              refimpl.init_ffn_params(np.random.default_rng(0), D_MODEL, D_FF, "bilinear").items()}  # fmt: skip
    x = jnp.zeros((BATCH * PROMPT, D_MODEL), jnp.float32)
    expected = flops.ffn_flops(BATCH * PROMPT, D_MODEL, D_FF, "bilinear")
    assert xla_flops(lambda x_, p_: jffn.ffn_forward(x_, p_, "bilinear"), x, params) == sum(expected.values())


def _layer_params():
    rng = np.random.default_rng(1)
    return {k: jnp.asarray(a, jnp.float32)
            for k, a in refimpl.init_attention_params(rng, D_MODEL, N_HEADS, N_KV, HEAD_DIM).items()}  # fmt: skip


OUTPUT_ELEMENTWISE_OPS = 2  # per output element: o / sum of p, and the poisoned-row select


def _cleaning(n_queries, n_keys, head_dim):
    """XLA's count of the core's input cleaning alone (non-finite entries of q, k, v replaced by 0)."""
    q = jnp.zeros((BATCH, n_queries, N_HEADS, head_dim), jnp.float32)
    k = jnp.zeros((BATCH, n_keys, N_KV, head_dim), jnp.float32)
    return xla_flops(lambda q_, k_, v_: tuple(jattn.cleaned(a) for a in (q_, k_, v_)), q, k, k)


def _core(n_queries, n_keys, head_dim):
    """The attention core alone (XLA cost), q (B, T, N, Dh) against n_keys keys, causal bottom-right; with
    T = 1 its mask is built as the decode step builds it (position and lengths from the scalar cache length)."""
    q = jnp.zeros((BATCH, n_queries, N_HEADS, head_dim), jnp.float32)
    k = jnp.zeros((BATCH, n_keys, N_KV, head_dim), jnp.float32)
    length = jnp.asarray(n_keys, jnp.int32)

    def fn(q_, k_, v_, length_):
        if n_queries == 1:
            q_pos = jattn.query_positions(1, 1, None) + length_ - 1  # (1, 1) as kv_cache.step_core
        else:
            q_pos = jattn.query_positions(n_queries, n_keys, jnp.broadcast_to(length_, (BATCH,)))  # (B, T)
        return jattn.grouped_attention(q_, k_, v_, q_pos, jnp.arange(n_keys), jnp.broadcast_to(length_, (BATCH,)),
                                       causal=True, window=None, softcap=None, scale=0.5)[0]  # fmt: skip

    return xla_flops(fn, q, k, k, length)


def test_attention_layer_projection_flops_equal_xla_prefill():
    x = jnp.zeros((BATCH, PROMPT, D_MODEL), jnp.float32)
    length = jnp.asarray(PROMPT, jnp.int32)

    def layer(x_, p_, length_):
        lengths = jnp.broadcast_to(length_, (BATCH,))  # (B,)
        return jlayer.layer_core(x_, p_, lengths, n_heads=N_HEADS, n_kv_heads=N_KV, head_dim=HEAD_DIM, rope=None,
                                 causal=True, window=None, softcap=None, scale=0.5)  # fmt: skip

    projections = xla_flops(layer, x, _layer_params(), length) - _core(PROMPT, PROMPT, HEAD_DIM)
    expected = flops.attention_projection_flops(BATCH * PROMPT, D_MODEL, N_HEADS, N_KV, HEAD_DIM)
    assert projections == matmul_terms(expected)


def test_decode_step_projection_flops_equal_xla():
    cache = jkv.KVCache.empty(BATCH, CONTEXT, N_KV, HEAD_DIM)
    x = jnp.zeros((BATCH, 1, D_MODEL), jnp.float32)
    q = jnp.zeros((BATCH, 1, N_HEADS, HEAD_DIM), jnp.float32)
    kv_new = jnp.zeros((BATCH, 1, N_KV, HEAD_DIM), jnp.float32)

    def step(x_, p_, cache_):
        return jkv.step_core(x_, p_, cache_, n_heads=N_HEADS, n_kv_heads=N_KV, head_dim=HEAD_DIM, rope=None,
                             window=None, softcap=None, scale=0.5)[0]  # fmt: skip

    def step_without_projections(q_, kv_, cache_):
        """step_core minus its four projections: the cache write (index arithmetic) and the attention core."""
        q_pos = jattn.query_positions(1, 1, None) + cache_.length  # (1, 1)
        cache_ = jkv.append(cache_, kv_, kv_)
        lengths = jnp.broadcast_to(cache_.length, (BATCH,))  # (B,)
        return jattn.grouped_attention(q_, cache_.k, cache_.v, q_pos, jnp.arange(CONTEXT), lengths, causal=True,
                                       window=None, softcap=None, scale=0.5, fast_path=True)[0]  # fmt: skip

    projections = xla_flops(step, x, _layer_params(), cache) - xla_flops(step_without_projections, q, kv_new, cache)
    expected = flops.attention_projection_flops(BATCH, D_MODEL, N_HEADS, N_KV, HEAD_DIM)
    assert projections == matmul_terms(expected)


@pytest.mark.parametrize("n_queries,n_keys,causal", [(PROMPT, PROMPT, False), (1, CONTEXT, True)],
                         ids=["prefill (full rectangle)", "decode"])  # fmt: skip
def test_attention_core_matmul_flops_equal_xla(n_queries, n_keys, causal):
    small, large = HEAD_DIM // 2, HEAD_DIM
    delta = _core(n_queries, n_keys, large) - _core(n_queries, n_keys, small)
    core = {dh: flops.attention_core_flops(BATCH, n_queries, n_keys, N_HEADS, dh, causal=causal)
            for dh in (small, large)}  # fmt: skip
    per_output = BATCH * n_queries * N_HEADS * (large - small) * OUTPUT_ELEMENTWISE_OPS
    cleaning = _cleaning(n_queries, n_keys, large) - _cleaning(n_queries, n_keys, small)
    assert delta == matmul_terms(core[large]) - matmul_terms(core[small]) + per_output + cleaning
