"""Check someone else's FFN or attention implementation against the reference, fairly, in its own dtype.

    from refimpl.conformance import check_ffn, assert_conforms
    assert_conforms(check_ffn(my_swiglu, "swiglu", dtype="bf16", backward=my_swiglu_backward))

The rule is flash-attention's (policy.py): inputs rounded to the candidate's format, float64 golden results
from those rounded inputs, a naive same-format baseline, and per tensor
max|cand - gold| <= k max|base - gold| + 2 ulp (k = 2 forward, 3 backward). See docs/conformance.md.
Test-vector files (vectors.py) carry the same cases to kernels outside Python.
"""

from __future__ import annotations

from .cases import ATTENTION_KINDS, FFN_KINDS, AttentionSpec, Case, attention_cases, ffn_cases
from .check import check_attention, check_ffn
from .dtypes import FORMATS, NumberFormat, cast, number_format, round_to, ulp
from .policy import ABSOLUTE_ULPS, Rule, TensorResult
from .report import ConformanceReport, assert_conforms

__all__ = [
    "ABSOLUTE_ULPS",
    "ATTENTION_KINDS",
    "FFN_KINDS",
    "FORMATS",
    "AttentionSpec",
    "Case",
    "ConformanceReport",
    "NumberFormat",
    "Rule",
    "TensorResult",
    "assert_conforms",
    "attention_cases",
    "cast",
    "check_attention",
    "check_ffn",
    "ffn_cases",
    "number_format",
    "round_to",
    "ulp",
]
