"""gpt-oss's clamped SwiGLU ("swiglu_oss"): forward against the formula of Transformers' GptOssExperts written
out here, backward against finite differences with the clamps active, the gradient at the clamp boundaries
against torch autograd, and its options (alpha, limit)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refimpl import ffn_backward, ffn_forward, init_ffn_params
from refimpl.gradcheck import check_grads

ALPHA, LIMIT = 1.702, 7.0  # Transformers GptOssConfig: swiglu_alpha, swiglu_limit


def gpt_oss_formula(x, p, alpha=ALPHA, limit=LIMIT):
    """GptOssExperts._apply_gate: gate.clamp(max=limit), up.clamp(-limit, limit), gate*sigmoid(alpha*gate)*(up+1)."""
    gate = np.minimum(x @ p["w_gate"] + p["b_gate"], limit)
    up = np.clip(x @ p["w_up"] + p["b_up"], -limit, limit)
    return (gate / (1.0 + np.exp(-alpha * gate)) * (up + 1.0)) @ p["w_down"] + p["b_down"]


def test_forward_equals_the_gpt_oss_formula_with_clamps_active(rng):
    p = init_ffn_params(rng, 16, 24, "swiglu_oss", bias=True)
    x = 6.0 * rng.standard_normal((3, 5, 16))  # (B, T, D): pre-activations std ~6, many beyond +-7
    pre_gate, pre_up = x @ p["w_gate"] + p["b_gate"], x @ p["w_up"] + p["b_up"]
    assert np.mean(pre_gate > LIMIT) > 0.05 and np.mean(np.abs(pre_up) > LIMIT) > 0.1  # both clamps bite
    y, _ = ffn_forward(x, p, "swiglu_oss")
    np.testing.assert_allclose(y, gpt_oss_formula(x, p), rtol=1e-12, atol=1e-12)
    y_opts, _ = ffn_forward(x, p, "swiglu_oss", alpha=np.float32(1.0), limit=2)  # any real scalar
    np.testing.assert_allclose(y_opts, gpt_oss_formula(x, p, 1.0, 2.0), rtol=1e-12, atol=1e-12)
    assert not np.allclose(y_opts, y)


@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    d_model=st.integers(1, 5),
    d_ff=st.integers(1, 6),
    bias=st.booleans(),
    limit=st.sampled_from([0.5, 1.5, 7.0]),
    alpha=st.sampled_from([1.0, 1.702, 3.0]),
    seed=st.integers(0, 2**31),
)
def test_backward_matches_finite_differences_with_clamps(lead, d_model, d_ff, bias, limit, alpha, seed):
    rng = np.random.default_rng(seed)
    p = init_ffn_params(rng, d_model, d_ff, "swiglu_oss", bias=bias)
    x = 2.0 * rng.standard_normal((*lead, d_model))  # (..., D): with limit 0.5 or 1.5 the clamps are active
    x2 = x.reshape(-1, d_model)  # (M, D)
    a, b = x2 @ p["w_gate"] + p.get("b_gate", 0.0), x2 @ p["w_up"] + p.get("b_up", 0.0)  # (M, F) each
    # finite differences are meaningless at the clamps' kinks: keep every pre-activation 1e-3 away from them
    assume(np.min(np.abs(a - limit), initial=1.0) > 1e-3 and np.min(np.abs(np.abs(b) - limit), initial=1.0) > 1e-3)
    y, cache = ffn_forward(x, p, "swiglu_oss", alpha=alpha, limit=limit)
    dy = rng.standard_normal(y.shape)  # random upstream gradient, never ones
    grads = ffn_backward(dy, cache)

    def f(inputs):
        return ffn_forward(inputs["x"], {k: inputs[k] for k in p}, "swiglu_oss", alpha=alpha, limit=limit)[0]

    report = check_grads(f, {"x": x, **p}, grads, dy)
    assert report.max_rel_error <= 1e-7, report


def test_clamped_units_get_zero_gradient_and_equality_passes_it_as_torch_clamp(rng):
    """At g == limit and |u| == limit the clamp is the identity (gradient passes), as torch.clamp's backward;
    beyond, the gradient is exactly 0. Checked against the closed form and, when installed, torch autograd."""
    # one token, D = 1, x = 1: the pre-activations are the weights themselves
    w_gate = np.array([[7.0, 8.0, 6.0, 7.0, 2.0]])  # (1, F): g == limit, above, below, == limit, below
    w_up = np.array([[7.0, -7.0, 7.5, -9.0, 0.5]])  # (1, F): u == limit, == -limit, above, below, inside
    w_down = rng.standard_normal((5, 1))  # (F, D)
    p = {"w_gate": w_gate, "w_up": w_up, "w_down": w_down}
    x, dy = np.ones((1, 1)), np.array([[1.3]])  # (M, D)
    y, cache = ffn_forward(x, p, "swiglu_oss")
    g = ffn_backward(dy, cache)
    gate, up = np.minimum(w_gate[0], LIMIT), np.clip(w_up[0], -LIMIT, LIMIT)
    s = 1.0 / (1.0 + np.exp(-ALPHA * gate))
    dh = dy[0, 0] * w_down[:, 0]  # (F,)
    d_gate = dh * (up + 1.0) * (s + ALPHA * gate * s * (1.0 - s)) * (w_gate[0] <= LIMIT)  # passes at ==
    d_up = dh * gate * s * (np.abs(w_up[0]) <= LIMIT)
    np.testing.assert_allclose(g["w_gate"][0], d_gate, rtol=1e-13)
    np.testing.assert_allclose(g["w_up"][0], d_up, rtol=1e-13)
    assert g["w_gate"][0, 1] == 0.0 and g["w_up"][0, 2] == g["w_up"][0, 3] == 0.0  # active clamps: exactly 0
    assert g["w_gate"][0, 0] != 0.0 and g["w_up"][0, 0] != 0.0 and g["w_up"][0, 1] != 0.0  # equality: passes
    torch = pytest.importorskip("torch")
    gu = torch.tensor(np.stack([w_gate[0], w_up[0]], axis=-1).reshape(1, 10), requires_grad=True)  # interleaved
    gt, ut = gu[..., ::2].clamp(max=LIMIT), gu[..., 1::2].clamp(min=-LIMIT, max=LIMIT)
    out = (ut + 1) * (gt * torch.sigmoid(gt * ALPHA)) @ torch.tensor(w_down)
    (out * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(gu.grad.numpy()[0, ::2], g["w_gate"][0], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(gu.grad.numpy()[0, 1::2], g["w_up"][0], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(out.detach().numpy(), y, rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0.0), "alpha must be a positive finite real"),
        (dict(alpha=float("nan")), "alpha must be a positive finite real"),
        (dict(limit=-1.0), "limit must be a positive finite real"),
        (dict(limit=float("inf")), "limit must be a positive finite real"),
        (dict(limit=True), "limit must be a positive finite real"),
        (dict(alpha=np.array(1.0)), "alpha must be a positive finite real"),
        (dict(alpha="1.7"), "alpha must be a positive finite real"),
    ],
)
def test_bad_options_name_the_option(kwargs, match, rng):
    p = init_ffn_params(rng, 4, 3, "swiglu_oss")
    with pytest.raises(ValueError, match=match):
        ffn_forward(rng.standard_normal((2, 4)), p, "swiglu_oss", **kwargs)


@pytest.mark.parametrize("variant", ["swiglu", "geglu", "relu"])
def test_other_variants_refuse_alpha_and_limit(variant, rng):
    p = init_ffn_params(rng, 4, 3, variant)
    with pytest.raises(ValueError, match=f"limit does not apply to variant '{variant}'"):
        ffn_forward(rng.standard_normal((2, 4)), p, variant, limit=7.0)


def test_extreme_inputs_stay_finite_without_warnings(rng):
    p = init_ffn_params(rng, 8, 12, "swiglu_oss", bias=True)
    x = rng.standard_normal((5, 8)) * 1e150  # pre-activations up to ~1e150: every clamp saturates
    with np.errstate(divide="raise", over="raise", invalid="raise"):  # underflow to 0 is exact here
        y, cache = ffn_forward(x, p, "swiglu_oss", alpha=1e300)
        grads = ffn_backward(rng.standard_normal(y.shape), cache)
    assert np.isfinite(y).all() and all(np.isfinite(g).all() for g in grads.values())
