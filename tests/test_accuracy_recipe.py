"""The recipe against step-by-step calls of the cost model, the exact decode sum against the term-by-term sum, the
error statistics against hand computations, duplicates left out, and the predictor registry."""

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costmodel as cm
from costmodel.accuracy import PREDICTORS, evaluate, parse_points, register_predictor, report, summarize
from costmodel.accuracy.predict import NEEDS_SERVING_MODEL, Prediction
from costmodel.accuracy.series import sum_piecewise_affine

BASE = {
    "model_key": "llama-2-7b",
    "hardware_key": "h100-sxm",
    "tp": 2,
    "weight_dtype": "fp8",
    "kv_dtype": "fp16",
    "input_len": 300,
    "output_len": 40,
    "measured": 100.0,
}


def point(**kw):
    (p,) = parse_points([{**BASE, "id": "p", **kw}])
    return p


def pred(p, eff=cm.ESTIMATE):
    (out,) = evaluate([p], eff=eff)
    return out.predicted


KW = dict(tp=2, weight_dtype="fp8", kv_dtype="fp16")
CFG = cm.MODELS["llama-2-7b"]


def step_s(batch, context, eff=cm.ESTIMATE):
    return cm.decode_latency(CFG, "h100-sxm", batch=batch, context=context, eff=eff, **KW).total_s


def prefill_s(batch, prompt_len, eff=cm.ESTIMATE):
    return cm.prefill_latency(CFG, "h100-sxm", batch=batch, prompt_len=prompt_len, eff=eff, **KW).total_s


@pytest.mark.parametrize("eff", [cm.ESTIMATE, cm.IDEAL])
def test_recipe_equals_explicit_calls(eff):
    # one decode step at the middle context 300 + 40 // 2 = 320
    p = point(metric="decode_ms_per_token", batching="static", batch=8)
    assert pred(p, eff) == pytest.approx(step_s(8, 320, eff) * 1e3, rel=1e-12)
    p = point(metric="decode_tok_s_per_user", batching="batch-1", batch=1, output_len=41)
    assert pred(p, eff) == pytest.approx(1 / step_s(1, 320, eff), rel=1e-12)
    p = point(metric="ttft_ms", batching="static", batch=4)
    assert pred(p, eff) == pytest.approx(prefill_s(4, 300, eff) * 1e3, rel=1e-12)
    # e2e: prefill then the 39 decode steps at contexts 301 ... 339, summed one call at a time
    e2e = prefill_s(8, 300, eff) + sum(step_s(8, s, eff) for s in range(301, 340))
    assert pred(point(metric="e2e_ms", batching="static", batch=8), eff) == pytest.approx(e2e * 1e3, rel=1e-9)
    p = point(metric="output_tok_s_total", batching="static", batch=8)
    assert pred(p, eff) == pytest.approx(8 * 40 / e2e, rel=1e-9)


def test_long_generation_sum_matches_step_by_step():
    """2,000 steps crossing the attention op's memory/compute switch (batch 256) and, for Mistral-7B, its
    4,096-token sliding window: the closed-form pieces equal the term-by-term sum."""
    for model, batch, lo in (("llama-2-7b", 256, 100), ("mistral-7b", 3, 3000), ("llama-2-70b", 64, 1)):
        cfg = cm.MODELS[model]
        calls = []

        def f(s, cfg=cfg, batch=batch, calls=calls):
            calls.append(s)
            return cm.decode_latency(cfg, "h100-sxm", batch=batch, context=s, tp=4, weight_dtype="fp8").total_s

        fast = sum_piecewise_affine(f, lo, lo + 1999)
        assert len(calls) < 200
        slow = sum(cm.decode_latency(cfg, "h100-sxm", batch=batch, context=s, tp=4, weight_dtype="fp8").total_s
                   for s in range(lo, lo + 2000))  # fmt: skip
        assert fast == pytest.approx(slow, rel=1e-9)


@given(
    st.integers(1, 5000),
    st.integers(0, 3000),
    st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-5, 5)), min_size=2, max_size=3),
    st.integers(1, 6000),
)
def test_sum_of_piecewise_affine_is_exact(lo, length, pieces, window):
    """max of affine functions of min(s, window), plus an affine term: the kinds of kinks a roofline has."""

    def f(s):
        w = min(s, window)
        return max(a + b * w for a, b in pieces) + 0.5 * s + 7.0

    exact = sum(f(s) for s in range(lo, lo + length))
    assert sum_piecewise_affine(f, lo, lo + length - 1) == pytest.approx(exact, rel=1e-9, abs=1e-9)


def test_sum_of_empty_range():
    assert sum_piecewise_affine(lambda s: 1.0, 5, 4) == 0.0


def fake(ratio, *, id="x", dup=None, metric="ttft_ms", source="s"):
    p = point(metric=metric, batching="batch-1", batch=1, source_short=source)
    p = replace(p, id=id, duplicate_of=dup)
    return Prediction(p, ratio * p.measured)


def test_statistics_by_hand():
    preds = [fake(2.0, id="a"), fake(0.5, id="b"), fake(1.25, id="c", source="t")]
    s = summarize(preds)
    # e = +1, -0.5, +0.25 -> geometric mean of |e| = (1 · 0.5 · 0.25)^(1/3) = 0.5 (the headline);
    # |ln r| = ln 2, ln 2, ln 1.25 -> exp(mean) - 1 (log-based); bias: exp((ln 2 - ln 2 + ln 1.25) / 3) - 1
    assert s.n == 3
    assert s.geomean_abs_error == pytest.approx(0.5, rel=1e-12)
    assert s.log_error == pytest.approx(math.exp((2 * math.log(2) + math.log(1.25)) / 3) - 1, rel=1e-12)
    assert s.bias == pytest.approx(1.25 ** (1 / 3) - 1, rel=1e-12)
    assert s.worst.point.id == "a" and s.worst.error == pytest.approx(1.0)
    assert preds[1].error == pytest.approx(-0.5) and preds[1].optimism == pytest.approx(1.0)  # a time, halved
    r = report(preds)
    assert set(r["source"]) == {"s", "t"} and r["source"]["t"].n == 1 and r["metric"]["ttft_ms"].n == 3


def test_duplicates_and_not_computable_are_left_out():
    preds = [fake(2.0, id="a"), fake(9.0, id="b", dup="a"), Prediction(fake(1.0).point, None, "why")]
    r = report(preds)
    assert r["overall"].n == 1 and r["overall"].geomean_abs_error == pytest.approx(1.0)
    assert [p.point.id for p in r["duplicates"]] == ["b"] and len(r["not_computable"]) == 1
    assert summarize(preds[2:]) is None


def test_serving_model_plugs_in():
    p = point(metric="output_tok_s_total", batching="offline-max", batch=None)
    (out,) = evaluate([p])  # costmodel.serving.accuracy registered the serving model on import
    assert out.predicted is not None and out.predicted > 0 and NEEDS_SERVING_MODEL not in out.reason
    old = PREDICTORS[("output_tok_s_total", "offline-max")]
    try:
        register_predictor("output_tok_s_total", "offline-max", lambda s: 64 / s.decode_s(64, s.point.input_len))
        (out,) = evaluate([p])
        assert out.predicted == pytest.approx(64 / step_s(64, 300), rel=1e-12)
    finally:
        register_predictor("output_tok_s_total", "offline-max", old)
    with pytest.raises(ValueError, match="batching must be one of"):
        register_predictor("ttft_ms", "dynamic", old)
    with pytest.raises(ValueError, match="predictor must be callable"):
        register_predictor("ttft_ms", "static", 3)


def test_reasons_and_refusals():
    cases = {
        "hw": (dict(hardware_key=None), "no hardware preset"),
        "fp4": (dict(weight_dtype="fp4", kv_dtype="fp4"), "weight_dtype 'fp4'"),
        "pp": (dict(pp=2), "pipeline parallelism"),
        "tp": (dict(tp=3), "the cost model refused it: tp must divide n_heads=32"),
    }
    for kw, reason in cases.values():
        (out,) = evaluate([point(metric="ttft_ms", batching="batch-1", batch=1, **kw)])
        assert out.predicted is None and reason in out.reason
    with pytest.raises(ValueError, match="eff must be an Efficiency"):
        evaluate([point(metric="ttft_ms", batching="batch-1", batch=1)], eff=0.7)
