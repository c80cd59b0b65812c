"""The pass rule and the naive baseline it leans on."""

import math

import numpy as np
import pytest

from refimpl import FFN_VARIANTS, attention_backward, attention_forward, ffn_backward, ffn_forward
from refimpl.conformance import ABSOLUTE_ULPS, Rule, attention_cases, ffn_cases, number_format, round_to, ulp
from refimpl.conformance.baseline import naive_attention, naive_ffn
from refimpl.conformance.policy import judge
from refimpl.conformance.report import ConformanceReport, assert_conforms

FP32 = number_format("fp32")
ULP_FP32_AT_3 = 2.0**-22  # fp32 numbers in [2, 4) are spaced 2^(1 - 23)


def _judge(cand, gold, tensor="y", base=1e-3, rule=None, fmt=FP32):
    return judge(
        "random.s0",
        tensor,
        np.asarray(cand, float),
        np.asarray(gold, float),
        baseline_error=base,
        fmt=fmt,
        rule=Rule() if rule is None else rule,
    )


@pytest.mark.parametrize("tensor, k", [("y", 2.0), ("out", 2.0), ("lse", 2.0), ("dx", 3.0), ("dw_up", 3.0)])
def test_bound_is_k_baseline_plus_two_ulps_at_scale(tensor, k):
    bound = k * 1e-3 + 2 * ULP_FP32_AT_3
    at_bound = _judge([bound, 3.0], [0.0, 3.0], tensor)
    assert at_bound.passed and at_bound.tolerance == bound and at_bound.max_error == bound
    past = _judge([bound * (1 + 1e-9), 3.0], [0.0, 3.0], tensor)
    assert not past.passed
    assert past.ratio == pytest.approx(bound / 1e-3)
    assert past.mean_error == pytest.approx(bound / 2)


def test_exact_baseline_still_allows_two_ulps():
    r = _judge([3.0 + ULP_FP32_AT_3], [3.0], base=0.0)
    assert r.passed and math.isinf(r.ratio)
    assert _judge([3.0], [3.0], base=0.0).ratio == 0.0
    assert not _judge([3.0 + 3 * ULP_FP32_AT_3], [3.0], base=0.0).passed


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_where_gold_is_finite_always_fails(bad):
    r = _judge([bad, 1.0], [0.5, 1.0], rule=Rule(k_forward=1e300, c_ulp=1e300))
    assert not r.passed and r.nonfinite == 1 and math.isinf(r.max_error)


def test_positions_where_gold_is_infinite_are_skipped():
    r = _judge([np.inf, 1.0], [-np.inf, 1.0], tensor="lse")  # flash-attn's +inf lse for an empty row
    assert r.passed and r.skipped == 1 and r.max_error == 0.0


def test_absolute_backstop_without_baseline():
    bf16 = number_format("bf16")
    r = _judge([1.5 + 0.06, -1.5], [1.5, -1.5], base=10.0, rule=Rule(baseline=False), fmt=bf16)
    assert r.tolerance == ABSOLUTE_ULPS["bf16"] * 2.0**-7  # ulp(bf16, 1.5) = 2^-7; the baseline is ignored
    assert r.passed
    assert not _judge([1.5 + 0.07, -1.5], [1.5, -1.5], base=10.0, rule=Rule(baseline=False), fmt=bf16).passed
    small = _judge([0.01], [0.001], base=0.0, rule=Rule(baseline=False), fmt=bf16)  # scale < 1 uses ulp(1)
    assert small.tolerance == ABSOLUTE_ULPS["bf16"] * 2.0**-7


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp8_e4m3"])
def test_backstop_sits_above_the_baseline_on_default_cases(name):
    """ABSOLUTE_ULPS leaves the naive baseline at least a factor 2 of headroom on the kit's own cases."""
    fmt = number_format(name)
    cases = ffn_cases("swiglu", fmt, d_model=64, d_ff=203, n_tokens=113, seeds=(0,))
    cases += attention_cases(
        fmt, n_heads=8, n_kv_heads=2, head_dim=64, seq_len=113, batch=2, causal=True, seeds=(0,)
    )
    for c in cases:
        for tensor, err in c.baseline_max.items():
            gold = c.golden[tensor]
            scale = np.max(np.abs(gold[np.isfinite(gold)]))
            assert err <= ABSOLUTE_ULPS[name] / 2 * ulp(fmt, max(scale, 1.0)), (c.name, tensor)


def test_report_table_and_assert_conforms():
    good = _judge([3.0], [3.0])
    bad = judge(
        "chunk.s1", "dq", np.array([np.nan]), np.array([1.0]), baseline_error=0.1, fmt=FP32, rule=Rule()
    )
    report = ConformanceReport("test subject", FP32, Rule(), (good, bad))
    assert not report.passed and report.failures == (bad,)
    assert report.result("chunk.s1", "dq") is bad
    text = str(report)
    assert "FAIL (NaN/Inf)" in text and "DOES NOT CONFORM: 1 of 2" in text and "test subject" in text
    with pytest.raises(AssertionError, match="chunk"):
        assert_conforms(report)
    ok = ConformanceReport("ok", FP32, Rule(), (good,))
    assert assert_conforms(ok) is ok and "CONFORMS" in str(ok)
    with pytest.raises(ValueError, match="report must be"):
        assert_conforms("not a report")


# --- the naive baseline ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(FFN_VARIANTS))  # the paper's eight and swiglu_oss
def test_ffn_baseline_in_fp64_is_the_reference(variant, rng):
    """In fp64 the baseline is an independent re-implementation of refimpl.ffn: they agree to rounding."""
    from refimpl import init_ffn_params

    x = 3.0 * rng.standard_normal((2, 7, 12))  # (B, T, D): swiglu_oss's clamps active in some units
    params = init_ffn_params(rng, 12, 19, variant, bias=variant in ("swiglu_oss", "relu"))
    dy = rng.standard_normal(x.shape)  # (B, T, D)
    y, cache = ffn_forward(x, params, variant, gelu="tanh")
    gold = {"y": y, **{"d" + k: g for k, g in ffn_backward(dy, cache).items()}}
    base = naive_ffn(x, params, variant, number_format("fp64"), dy=dy, gelu="tanh")
    assert set(base) == set(gold)
    for k in gold:
        np.testing.assert_allclose(base[k], gold[k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(causal=True),
        dict(causal=False),
        dict(causal=True, kv_lengths=[9, 2]),
        dict(causal=False, window=3),
        dict(causal=True, softcap=1.5, kv_lengths=[0, 11]),
    ],
)
def test_attention_baseline_in_fp64_is_the_reference(kwargs, rng):
    from refimpl.masks import attention_mask

    q = rng.standard_normal((2, 5, 6, 8))  # (B, T, N, Dh)
    k = rng.standard_normal((2, 11, 3, 8))  # (B, S, K, Dh)
    v = rng.standard_normal(k.shape)  # (B, S, K, Dh)
    dout = rng.standard_normal(q.shape)  # (B, T, N, Dh)
    out, cache = attention_forward(q, k, v, **kwargs)
    gold = {"out": out, "lse": cache.lse, **{"d" + n: g for n, g in attention_backward(dout, cache).items()}}
    mask_args = {a: kwargs[a] for a in ("kv_lengths", "window") if a in kwargs}
    mask = attention_mask(5, 11, causal=kwargs["causal"], batch=2, **mask_args)  # (B, T, S)
    base = naive_attention(
        q, k, v, mask, 1 / math.sqrt(8), number_format("fp64"), dout=dout, softcap=kwargs.get("softcap")
    )
    for name in gold:
        np.testing.assert_allclose(base[name], gold[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["bf16", "fp16", "fp8_e5m2"])
def test_low_precision_baseline_holds_format_values_with_format_sized_errors(name):
    fmt = number_format(name)
    cases = ffn_cases("geglu", fmt, d_model=16, d_ff=23, n_tokens=9, seeds=(0,))
    cases += attention_cases(
        fmt, n_heads=4, n_kv_heads=2, head_dim=8, seq_len=13, batch=2, causal=True, seeds=(0,)
    )
    for c in cases:
        for tensor, err in c.baseline_max.items():
            if c.name.startswith("ortho-v") and tensor in ("dq", "dk"):
                continue  # there dS = p (dP - D) cancels: small gradients carry the error of large dP
            gold = c.golden[tensor]
            scale = np.max(np.abs(gold[np.isfinite(gold)]))
            # one rounding at least (the output's), a few ulps at most at these sizes
            assert 0.1 * ulp(fmt, scale) <= err <= 8 * ulp(fmt, scale), (
                c.name,
                tensor,
                err / ulp(fmt, scale),
            )
        for arr in (*c.inputs.values(), *c.douts.values()):
            values = arr.astype(np.float64)
            np.testing.assert_array_equal(round_to(values, fmt), values)


@pytest.mark.parametrize("routing, normalize", [("softmax_topk", True), ("softmax_topk", False),
                                               ("topk_softmax", True)])  # fmt: skip
@pytest.mark.parametrize("variant, kw", [("swiglu", dict(n_shared=1, shared_gate=True)),
                                         ("swiglu_oss", dict(bias=True, router_bias=True)), ("gelu", {})])  # fmt: skip
def test_moe_baseline_in_fp64_is_the_reference(routing, normalize, variant, kw, rng):
    from refimpl import init_moe_params, moe_backward, moe_forward
    from refimpl.conformance.baseline_moe import naive_moe
    from refimpl.conformance.cases_moe import flatten

    p = init_moe_params(rng, 8, 5, 6, variant, **kw)
    x, dy = 3.0 * rng.standard_normal((2, 7, 8)), rng.standard_normal((2, 7, 8))  # (B, T, D) each
    opts = dict(top_k=2, routing=routing, normalize=normalize)
    y, cache = moe_forward(x, p, variant, **opts)
    gold = {"y": y, **flatten(moe_backward(dy, cache), prefix="d")}
    base = naive_moe(x, p, variant, number_format("fp64"), dy=dy, **opts)
    assert set(base) == set(gold)
    for k in gold:
        np.testing.assert_allclose(base[k], gold[k], rtol=1e-12, atol=1e-12, err_msg=k)
