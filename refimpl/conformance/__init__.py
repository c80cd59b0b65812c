"""Check someone else's FFN, attention or mixture-of-experts implementation against the reference, fairly,
in its own dtype.

    from refimpl.conformance import check_ffn, assert_conforms
    assert_conforms(check_ffn(my_swiglu, "swiglu", dtype="bf16", backward=my_swiglu_backward))

The rule is flash-attention's (policy.py): inputs rounded to the candidate's format, float64 golden results
from those rounded inputs, a naive same-format baseline, and per tensor
max|cand - gold| <= k max|base - gold| + 2 ulp (k = 2 forward, 3 backward), plus a no-op guard (the mean
error must stay below half the golden tensor's spread). A failing report carries a diagnosis: the known
mistake whose reference the candidate matches (diagnosis.py, mistakes.py). See docs/conformance.md.
Test-vector files (vectors.py) carry the same cases to kernels outside Python.
"""

from __future__ import annotations

from .cases import FFN_KINDS, MAX_CASE_BYTES, AttentionSpec, Case, FFNSpec, MoESpec, ffn_cases
from .cases_attention import ATTENTION_KINDS, attention_cases
from .cases_moe import MOE_KINDS, TIE_GAP_ULPS, moe_cases
from .check import check_attention, check_ffn
from .check_moe import check_moe
from .diagnosis import Diagnosis, Finding
from .dtypes import FORMATS, NumberFormat, cast, number_format, round_to, ulp
from .mistakes import MISTAKES
from .policy import ABSOLUTE_ULPS, SPREAD_FRACTION, Rule, TensorResult
from .report import ConformanceReport, assert_conforms

__all__ = [
    "ABSOLUTE_ULPS",
    "ATTENTION_KINDS",
    "FFN_KINDS",
    "FORMATS",
    "MAX_CASE_BYTES",
    "MISTAKES",
    "MOE_KINDS",
    "SPREAD_FRACTION",
    "TIE_GAP_ULPS",
    "AttentionSpec",
    "Case",
    "ConformanceReport",
    "Diagnosis",
    "FFNSpec",
    "Finding",
    "MoESpec",
    "NumberFormat",
    "Rule",
    "TensorResult",
    "assert_conforms",
    "attention_cases",
    "cast",
    "check_attention",
    "check_ffn",
    "check_moe",
    "ffn_cases",
    "moe_cases",
    "number_format",
    "round_to",
    "ulp",
]
