"""The cost model's counts against the arrays the NumPy reference actually allocates.

param_count / attention_param_breakdown / ffn_param_breakdown vs refimpl.init_attention_params and
refimpl.init_ffn_params (every FFN variant, biases, GQA); kv_cache_bytes vs refimpl.KVCache.empty(...).nbytes.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import costmodel as cm
import refimpl
from refimpl.variants import FFN_VARIANTS


def _sizes(params: dict) -> dict:
    return {k: v.size for k, v in params.items()}


@pytest.mark.parametrize("variant", list(FFN_VARIANTS))
@pytest.mark.parametrize("bias", [False, True])
def test_ffn_breakdown_equals_reference_arrays(rng, variant, bias):
    ref = refimpl.init_ffn_params(rng, 12, 20, variant, bias=bias)
    assert cm.ffn_param_breakdown(12, 20, variant, bias=bias) == _sizes(ref)


@given(
    st.sampled_from([1, 2, 3, 4, 6, 12]),
    st.sampled_from([False, True, "qkv"]),
    st.integers(1, 9),
    st.integers(1, 24),
)
def test_attention_breakdown_equals_reference_arrays(k, bias, dh, d):
    n = 12
    ref = refimpl.init_attention_params(np.random.default_rng(0), d, n, k, dh, bias=bias)
    got = cm.attention_param_breakdown(d, n, k, dh, qkv_bias=bias is not False, out_bias=bias is True)
    assert got == _sizes(ref)


@pytest.mark.parametrize("variant", list(FFN_VARIANTS))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("k", [1, 2, 6])
def test_param_count_equals_reference_model(rng, variant, bias, k):
    """A whole small decoder-only model: layers of reference attention + FFN arrays, norms, embeddings."""
    d, n, dh, f, layers, vocab = 16, 6, 4, 24, 3, 50
    cfg = cm.ModelConfig(
        d_model=d,
        n_layers=layers,
        n_heads=n,
        n_kv_heads=k,
        head_dim=dh,
        d_ff=f,
        vocab_size=vocab,
        ffn=variant,
        qkv_bias=bias,
        out_bias=bias,
        ffn_bias=bias,
        norm="layernorm",
    )
    total = 0
    for _ in range(layers):
        total += sum(a.size for a in refimpl.init_attention_params(rng, d, n, k, dh, bias=bias).values())
        total += sum(a.size for a in refimpl.init_ffn_params(rng, d, f, variant, bias=bias).values())
        total += 2 * 2 * d  # two LayerNorms (scale + shift) per layer
    total += 2 * d + 2 * vocab * d  # final LayerNorm, embedding, untied lm_head
    assert cm.param_count(cfg) == total


@pytest.mark.parametrize("variant", list(FFN_VARIANTS))
@pytest.mark.parametrize("d_ff,multiple_of", [(3072, 1), (16384, 256), (7, 1), (1000, 64)])
def test_matched_d_ff_equals_reference(variant, d_ff, multiple_of):
    assert cm.matched_d_ff(d_ff, variant, multiple_of=multiple_of) == refimpl.matched_d_ff(
        d_ff, variant, multiple_of=multiple_of
    )


@pytest.mark.parametrize("dtype,np_dtype", [("fp64", np.float64), ("fp32", np.float32), ("fp16", np.float16)])
@given(st.integers(1, 4), st.integers(1, 33), st.sampled_from([1, 2, 4]), st.integers(1, 16))
def test_kv_cache_bytes_equals_reference_nbytes(dtype, np_dtype, batch, max_len, k, dh):
    layers = 3
    cfg = cm.ModelConfig(
        d_model=64, n_layers=layers, n_heads=4, n_kv_heads=k, head_dim=dh, d_ff=8, vocab_size=10
    )
    ref = refimpl.KVCache.empty(batch, max_len, k, dh, dtype=np_dtype).nbytes * layers
    assert cm.kv_cache_bytes(cfg, batch=batch, context=max_len, kv_dtype=dtype) == ref
