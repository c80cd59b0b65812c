"""FFN reference: backward vs finite differences, forward vs the paper's formulas written out here,
parameter matching (Shazeer 2020), and bad input. gpt-oss's clamped SwiGLU: tests/test_ffn_oss.py."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.special import erfc

from refimpl import FFN_VARIANTS, PAPER_VARIANTS, ffn_backward, ffn_forward, init_ffn_params, matched_d_ff
from refimpl.gradcheck import check_grads


def _phi(z):  # standard normal CDF, written independently of refimpl (no 1 + erf cancellation)
    return 0.5 * erfc(-z / math.sqrt(2.0))


def _tanh_gate(z):  # 0.5 (1 + tanh(sqrt(2/pi)(z + 0.044715 z^3)))
    return 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


# Shazeer 2020, section 2, with W1/W (gate) = w_gate (gated) or w_up (ungated), V = w_up, W2 = w_down.
PAPER = {
    "relu": lambda x, W, V, W2, g: np.maximum(x @ V, 0) @ W2,
    "gelu": lambda x, W, V, W2, g: (x @ V) * g(x @ V) @ W2,
    "swish": lambda x, W, V, W2, g: (x @ V) * _sig(x @ V) @ W2,
    "glu": lambda x, W, V, W2, g: (_sig(x @ W) * (x @ V)) @ W2,
    "bilinear": lambda x, W, V, W2, g: ((x @ W) * (x @ V)) @ W2,
    "reglu": lambda x, W, V, W2, g: (np.maximum(x @ W, 0) * (x @ V)) @ W2,
    "geglu": lambda x, W, V, W2, g: ((x @ W) * g(x @ W) * (x @ V)) @ W2,
    "swiglu": lambda x, W, V, W2, g: ((x @ W) * _sig(x @ W) * (x @ V)) @ W2,
}
GELU_GATE = {"erf": _phi, "tanh": _tanh_gate}


@pytest.mark.parametrize("variant", PAPER_VARIANTS)
@pytest.mark.parametrize("gelu", ["erf", "tanh"])
def test_forward_equals_paper_formula(variant, gelu, rng):
    params = init_ffn_params(rng, 16, 24, variant)
    x = rng.standard_normal((3, 5, 16))  # (B, T, D)
    y, _ = ffn_forward(x, params, variant, gelu=gelu)
    expected = PAPER[variant](x, params.get("w_gate"), params["w_up"], params["w_down"], GELU_GATE[gelu])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_biases_enter_as_in_dauphin_glu(rng):
    params = init_ffn_params(rng, 6, 9, "glu", bias=True)
    x = rng.standard_normal((4, 6))  # (M, D)
    gate = _sig(x @ params["w_gate"] + params["b_gate"])  # (M, F)
    expected = (gate * (x @ params["w_up"] + params["b_up"])) @ params["w_down"] + params["b_down"]  # (M, D)
    np.testing.assert_allclose(ffn_forward(x, params, "glu")[0], expected, rtol=1e-12)


@given(
    variant=st.sampled_from(sorted(FFN_VARIANTS)),
    gelu=st.sampled_from(["erf", "tanh"]),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    d_model=st.integers(1, 5),
    d_ff=st.integers(1, 6),
    bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_backward_matches_finite_differences(variant, gelu, lead, d_model, d_ff, bias, seed):
    rng = np.random.default_rng(seed)
    params = init_ffn_params(rng, d_model, d_ff, variant, bias=bias)
    x = rng.standard_normal((*lead, d_model))  # (..., D)
    if FFN_VARIANTS[variant].activation == "relu":  # finite differences are meaningless at the kink
        pre = x.reshape(-1, d_model) @ params["w_gate" if "w_gate" in params else "w_up"]
        assume(np.min(np.abs(pre + params.get("b_gate", params.get("b_up", 0.0))), initial=1.0) > 1e-3)
    y, cache = ffn_forward(x, params, variant, gelu=gelu)
    dy = rng.standard_normal(y.shape)  # random upstream gradient, never ones
    grads = ffn_backward(dy, cache)
    assert set(grads) == {"x", *params}

    def f(inputs):
        return ffn_forward(inputs["x"], {k: inputs[k] for k in params}, variant, gelu=gelu)[0]

    report = check_grads(f, {"x": x, **params}, grads, dy)
    assert report.max_rel_error <= 1e-7, report


def test_backward_large_shapes_vjp_inner_product(rng):
    params = init_ffn_params(rng, 48, 96, "swiglu", bias=True)
    x = rng.standard_normal((2, 33, 48))  # (B, T, D): above max_elements, so the VJP test runs
    y, cache = ffn_forward(x, params, "swiglu")
    dy = rng.standard_normal(y.shape)  # (B, T, D)
    grads = ffn_backward(dy, cache)
    f = lambda p: ffn_forward(p["x"], {k: p[k] for k in params}, "swiglu")[0]  # noqa: E731
    report = check_grads(f, {"x": x, **params}, grads, dy, max_elements=64, rng=rng)
    assert report.method["x"] == report.method["w_up"] == "vjp inner product"  # b_* are small enough for FD
    assert report.max_rel_error <= 1e-7, report


def test_shapes_and_dtype(rng):
    params = init_ffn_params(rng, 8, 12, "geglu", dtype=np.float32)
    for shape in [(8,), (5, 8), (2, 3, 8), (0, 8)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y, cache = ffn_forward(x, params, "geglu")
        assert y.shape == shape and y.dtype == np.float64  # float32 in, float64 reference out
        grads = ffn_backward(np.ones(shape), cache)
        assert grads["x"].shape == shape and grads["w_gate"].shape == (8, 12)


def test_matched_d_ff_follows_the_paper_and_llama():
    assert matched_d_ff(3072, "swiglu") == 2048  # Shazeer 2020, T5-base
    assert matched_d_ff(4 * 4096, "swiglu", multiple_of=256) == 11008  # LLaMA-7B
    assert matched_d_ff(3072, "relu") == 3072  # ungated variants keep d_ff
    assert matched_d_ff(10, "glu") == 7  # round(6.67)


@pytest.mark.parametrize("variant", sorted(FFN_VARIANTS))
def test_matched_variants_have_equal_parameter_counts(variant, rng):
    # Shazeer 2020: 2 * 768 * 3072 = 3 * 768 * 2048 = 4,718,592 weights per FFN in T5-base.
    params = init_ffn_params(rng, 768, matched_d_ff(3072, variant), variant)
    assert sum(p.size for p in params.values()) == 4_718_592


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, x: ffn_forward(x, p, "swigl"), "variant must be one of"),
        (lambda p, x: ffn_forward(x[:, :5], p, "swiglu"), r"params\['w_up'\] must have shape"),
        # issue 12: a transposed w_up is blamed on w_up (d_ff is read from it), not on w_gate
        (lambda p, x: ffn_forward(x, {**p, "w_up": p["w_up"].T.copy()}, "swiglu"), r"params\['w_up'\] must have"),
        (lambda p, x: ffn_forward(x, {**p, "w_down": p["w_down"].T.copy()}, "swiglu"), r"params\['w_down'\]"),
        (lambda p, x: ffn_forward(x.astype(int), p, "swiglu"), "x must have a floating-point dtype"),
        (lambda p, x: ffn_forward(x.tolist(), p, "swiglu"), "x must be a NumPy"),
        (lambda p, x: ffn_forward(x, {k: v for k, v in p.items() if k != "w_gate"}, "swiglu"), "missing"),
        (lambda p, x: ffn_forward(x, p, "relu"), "unexpected keys"),
        (lambda p, x: ffn_forward(x, {**p, "b_up": np.zeros(3)}, "swiglu"), r"params\['b_up'\]"),
        (lambda p, x: ffn_forward(x, p, "swiglu", gelu="fast"), "gelu must be one of"),
        (lambda p, x: ffn_backward(np.ones((2, 3)), ffn_forward(x, p, "swiglu")[1]), "dy must have shape"),
        (lambda p, x: ffn_backward(np.ones((4, 6)), {"x": x}), "cache must be the FFNCache"),
        (lambda p, x: init_ffn_params(np.random.default_rng(0), 6, 0, "swiglu"), "d_ff must be a positive"),
        (lambda p, x: init_ffn_params(np.random.default_rng(0), -1, 4, "swiglu"), "d_model must be a positive"),
        (lambda p, x: init_ffn_params(0, 6, 4, "swiglu"), "rng must be"),
        # issue 12: a dtype that is not one is a ValueError naming dtype; integer dtypes would give zero weights
        (lambda p, x: init_ffn_params(np.random.default_rng(0), 6, 4, "swiglu", dtype="foo"), "dtype must be a float"),
        (lambda p, x: init_ffn_params(np.random.default_rng(0), 6, 4, "swiglu", dtype=np.int32), "dtype must be a f"),
        (lambda p, x: init_ffn_params(np.random.default_rng(0), 6, 4, "swiglu", dtype=bool), "dtype must be a f"),
        (lambda p, x: init_ffn_params(np.random.default_rng(0), 6, 4, "swiglu", bias="no"), "bias must be True or"),
        (lambda p, x: ffn_forward(x, p, "swiglu", alpha=1.0), "alpha does not apply to variant 'swiglu'"),
        (lambda p, x: ffn_forward(x, p, "swiglu", out=np.empty((4, 6), np.float32)), "out must be a writeable"),
        (lambda p, x: ffn_forward(x, p, "swiglu", out=np.empty((6, 4)).T), "out must be a writeable C-contiguous"),
        (lambda p, x: ffn_backward(x, ffn_forward(x, p, "swiglu")[1], out={"w_q": x}), "out must be a dict"),
        (lambda p, x: ffn_backward(x, ffn_forward(x, p, "swiglu")[1], out={"x": x[:2]}), r"out\['x'\] must be"),
        (lambda p, x: matched_d_ff(0, "swiglu"), "d_ff must be a positive"),
        (lambda p, x: matched_d_ff(3072, "swiglu", multiple_of=0), "multiple_of"),
    ],
)
def test_bad_input_names_the_argument(call, match, rng):
    params = init_ffn_params(rng, 6, 4, "swiglu")
    x = rng.standard_normal((4, 6))  # (M, D)
    with pytest.raises(ValueError, match=match):
        call(params, x)


def test_extreme_inputs_stay_finite_without_warnings(rng):
    for variant in FFN_VARIANTS:
        params = init_ffn_params(rng, 8, 12, variant)
        x = rng.standard_normal((5, 8)) * 1e4  # pre-activations up to ~1e4
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            y, cache = ffn_forward(x, params, variant, gelu="tanh")
            grads = ffn_backward(rng.standard_normal(y.shape), cache)
        assert np.isfinite(y).all() and all(np.isfinite(g).all() for g in grads.values()), variant


def test_out_arrays_receive_the_results_in_place(rng):
    params = init_ffn_params(rng, 6, 5, "geglu", bias=True)
    x, dy = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 3, 6))  # (B, T, D) each
    y, cache = ffn_forward(x, params, "geglu")
    grads = ffn_backward(dy, cache)
    y_out = np.empty((2, 3, 6))  # (B, T, D)
    y2, cache2 = ffn_forward(x, params, "geglu", out=y_out)
    assert np.shares_memory(y2, y_out) and np.array_equal(y_out, y)
    out = {"x": np.empty((2, 3, 6)), "w_gate": np.empty((6, 5)), "b_down": np.empty(6)}  # a subset of the grads
    got = ffn_backward(dy, cache2, out=out)
    for k in grads:
        assert np.array_equal(got[k], grads[k]), k
    assert all(np.shares_memory(got[k], out[k]) for k in out)


def test_int_dtype_is_refused_not_rounded_to_zero_weights():
    """Issue 12: init_ffn_params(..., dtype=np.int32) used to return all-zero weights silently."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype; got int32"):
        init_ffn_params(rng, 6, 4, "swiglu", dtype=np.int32)
    p = init_ffn_params(rng, 6, 4, "swiglu", dtype="float16")
    assert all(a.dtype == np.float16 and np.any(a != 0) for a in p.values())
