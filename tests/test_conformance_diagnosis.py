"""The diagnosis of failing reports: each planted bug gets its own diagnosis and no other, a correct kernel none.

The candidates (tests/conformance_candidates.py) are written from the formulas in the test, not with the kit's
mistaken references, so a match is evidence that the kit's probe recognises the mistake, not itself.
"""

import numpy as np
import pytest
from conformance_candidates import attention, ffn, moe

from refimpl.conformance import MISTAKES, check_attention, check_ffn, check_moe, round_to

FFN_SMALL = dict(d_model=16, d_ff=23, n_tokens=13, seeds=(0, 1))
ATTN = dict(n_heads=4, n_kv_heads=2, head_dim=16, seq_len=20, causal=True, seeds=(0,))
MOE_SMALL = dict(d_model=16, d_ff=12, n_tokens=20, n_experts=6, seeds=(0,))
MIXTRAL = dict(top_k=2, routing="softmax_topk", normalize=True)
QWEN3 = dict(top_k=2, routing="softmax_topk", normalize=False)
OSS = dict(top_k=2, routing="topk_softmax", normalize=True)

# (bug, check): check(bug) runs the kit on a candidate with that bug planted (None: the correct candidate)
CHECKS = {
    "swiglu": lambda bug: check_ffn(ffn("bf16", "swiglu", bug=bug), "swiglu", dtype="bf16", **FFN_SMALL),
    "geglu fp32": lambda bug: check_ffn(ffn("fp32", "geglu", bug=bug), "geglu", dtype="fp32", **FFN_SMALL),
    "swiglu_oss bias": lambda bug: check_ffn(ffn("bf16", "swiglu_oss", bug=bug), "swiglu_oss", dtype="bf16",
                                             bias=True, **FFN_SMALL),
    "attention": lambda bug: check_attention(attention("bf16", bug=bug), dtype="bf16", **ATTN),
    "attention softcap": lambda bug: check_attention(attention("bf16", bug=bug), dtype="bf16", softcap=2.0, **ATTN),
    "attention sinks": lambda bug: check_attention(attention("bf16", bug=bug), dtype="bf16", sinks=True, window=7,
                                                   **ATTN),
    "mixtral": lambda bug: check_moe(moe("bf16", "swiglu", bug=bug, **MIXTRAL), "swiglu", dtype="bf16", **MIXTRAL,
                                     **MOE_SMALL),
    "qwen3 unnormalised": lambda bug: check_moe(moe("bf16", "swiglu", bug=bug, **QWEN3), "swiglu", dtype="bf16",
                                                **QWEN3, **MOE_SMALL),
    "qwen2 shared gate": lambda bug: check_moe(moe("bf16", "swiglu", bug=bug, **QWEN3), "swiglu", dtype="bf16",
                                               n_shared=1, shared_gate=True, **QWEN3, **MOE_SMALL),
    "gpt-oss": lambda bug: check_moe(moe("bf16", "swiglu_oss", bug=bug, **OSS), "swiglu_oss", dtype="bf16",
                                     bias=True, router_bias=True, **OSS, **MOE_SMALL),
}  # fmt: skip

MATRIX = [
    ("swapped-gate-up", "swiglu"),
    ("interleaved-read-as-concat", "swiglu"),
    ("concat-read-as-interleaved", "swiglu"),
    ("gelu-flavour", "geglu fp32"),
    ("missing-plus-one", "swiglu_oss bias"),
    ("interleaved-read-as-concat", "swiglu_oss bias"),
    ("top-left-causal", "attention"),
    ("tiled-head-map", "attention"),
    ("fully-masked-rows", "attention"),
    ("softcap-ignored", "attention softcap"),
    ("sinks-ignored", "attention sinks"),
    ("sink-with-value", "attention sinks"),
    ("top-left-causal", "attention sinks"),
    ("missing-renormalisation", "mixtral"),
    ("router-softmax-axis", "mixtral"),
    ("swapped-gate-up", "mixtral"),
    ("extra-renormalisation", "qwen3 unnormalised"),
    ("shared-gate-ignored", "qwen2 shared gate"),
    ("interleaved-read-as-concat", "gpt-oss"),
    ("missing-plus-one", "gpt-oss"),
    ("missing-renormalisation", "gpt-oss"),
    ("router-softmax-axis", "gpt-oss"),
]


def test_every_known_mistake_is_planted_somewhere():
    assert {m.key for m in MISTAKES} == {bug for bug, _ in MATRIX}


@pytest.mark.parametrize("bug, config", MATRIX)
def test_planted_bug_gets_its_own_diagnosis_and_no_other(bug, config):
    report = CHECKS[config](bug)
    assert not report.passed
    assert report.likely_causes == (bug,), str(report)
    text = str(report)
    cause = next(m.cause for m in MISTAKES if m.key == bug)
    assert f"likely cause: {cause}" in text and "evidence:" in text and text.count("likely cause:") == 1


@pytest.mark.parametrize("config", list(CHECKS))
def test_correct_candidate_passes_with_no_diagnosis(config):
    report = CHECKS[config](None)
    assert report.passed and report.diagnosis is None and "likely cause" not in str(report), str(report)


def test_top_left_diagnosis_names_the_pattern_of_kinds():
    text = str(CHECKS["attention"]("top-left-causal"))
    assert "diagnosis: failing kinds chunk, decode, padded (passing prefill, ortho-v)" in text
    assert "T = S kinds (prefill, ortho-v) pass; chunk, decode and padded fail" in text
    assert "torch SDPA is_causal=True" in text


def test_doing_nothing_and_answering_another_case_are_diagnosed():
    zeros = check_ffn(lambda x, p: np.zeros(x.shape, np.float32), "swiglu", dtype="bf16", **FFN_SMALL)
    assert zeros.likely_causes == ("constant-output",)
    golden = {}  # a candidate that answers each seed with the other seed's golden output (same shape)

    def record(x, p):
        return golden[x.tobytes()]

    from refimpl.conformance import ffn_cases, number_format

    cases = ffn_cases("swiglu", number_format("bf16"), **{k: v for k, v in FFN_SMALL.items()}, backward=False)
    by_name = {c.name: c for c in cases}
    for c in cases:
        kind, seed = c.name.split(".s")
        golden[c.inputs["x"].tobytes()] = round_to(by_name[f"{kind}.s{1 - int(seed)}"].golden["y"], "bf16")
    swapped = check_ffn(record, "swiglu", dtype="bf16", **FFN_SMALL)
    assert swapped.likely_causes == ("other-case-output",), str(swapped)


def test_unknown_bugs_get_no_known_cause_and_backward_bugs_say_so():
    scaled = check_ffn(lambda x, p: ffn("fp32", "swiglu")(x, p) * 1.01, "swiglu", dtype="fp32", **FFN_SMALL)
    assert scaled.likely_causes == () and "no known mistake matches" in str(scaled)
    from conformance_candidates import ffn_apply

    def backward(x, p, dy):  # dx scaled by 1.01: the forward is right
        import refimpl

        grads = refimpl.ffn_backward(dy.astype(np.float64), refimpl.ffn_forward(x.astype(np.float64), p, "swiglu")[1])
        grads["x"] = grads["x"] * 1.01
        return grads

    assert ffn_apply is not None
    report = check_ffn(ffn("fp32", "swiglu"), "swiglu", dtype="fp32", backward=backward, **FFN_SMALL)
    assert report.likely_causes == ()
    assert "failing tensors dx; y passes in every case: the mistake is in the backward pass" in str(report)
