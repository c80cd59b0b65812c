"""The registry holds the paper's eight variants plus gpt-oss's clamped SwiGLU (flagged as not from the
paper), stays importable without NumPy, and every consumer of it handles or deliberately excludes swiglu_oss."""

import subprocess
import sys

import numpy as np
import pytest

from refimpl.variants import ACTIVATIONS, FFN_VARIANTS, PAPER_VARIANTS, get_variant, variant_options


def test_registry_matches_the_paper():
    # Shazeer 2020, Table 1 rows; gated variants have three weight matrices.
    gated = {"glu", "bilinear", "reglu", "geglu", "swiglu"}
    assert PAPER_VARIANTS == ("relu", "gelu", "swish", "glu", "bilinear", "reglu", "geglu", "swiglu")
    for name in PAPER_VARIANTS:
        v = FFN_VARIANTS[name]
        assert v.paper and v.options == () and v.source.startswith("Shazeer 2020")
        assert v.gated == (name in gated) and v.n_matrices == (3 if v.gated else 2)
        assert v.activation in ACTIVATIONS
    assert FFN_VARIANTS["swiglu"].log_ppl_524k == 1.636 and FFN_VARIANTS["geglu"].log_ppl_524k == 1.633


def test_swiglu_oss_is_flagged_as_not_from_the_paper():
    v = FFN_VARIANTS["swiglu_oss"]
    assert set(FFN_VARIANTS) == {*PAPER_VARIANTS, "swiglu_oss"}
    assert not v.paper and v.log_ppl_65k is None and v.log_ppl_524k is None and "gpt-oss" in v.source
    assert v.gated and v.activation == "swish" and v.param_names == ("w_gate", "w_up", "w_down")
    assert dict(v.options) == {"alpha": 1.702, "limit": 7.0}  # Transformers GptOssConfig swiglu_alpha/_limit


def test_variant_options_fill_defaults_and_refuse_what_does_not_apply():
    oss = FFN_VARIANTS["swiglu_oss"]
    assert variant_options(oss, alpha=None, limit=None) == {"alpha": 1.702, "limit": 7.0}
    assert variant_options(oss, alpha=2.0, limit=None) == {"alpha": 2.0, "limit": 7.0}
    assert variant_options(FFN_VARIANTS["swiglu"], alpha=None, limit=None) == {}
    with pytest.raises(ValueError, match=r"alpha does not apply to variant 'swiglu' \(it takes no options\)"):
        variant_options(FFN_VARIANTS["swiglu"], alpha=1.0)
    with pytest.raises(ValueError, match="alpha and limit do not apply to variant 'gelu'"):
        variant_options(FFN_VARIANTS["gelu"], alpha=1.0, limit=2.0)


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(ValueError, match="variant must be one of relu, gelu"):
        get_variant("swigly")


def test_variants_import_pulls_in_no_numpy():
    code = "import sys, refimpl.variants; print(sorted(m for m in ('numpy', 'scipy', 'jax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_consumers_of_the_registry_handle_or_exclude_swiglu_oss():
    import costmodel as cm
    from refimpl.conformance import check_ffn

    # the paper's table lists the paper's eight only (README's `glugqa table ffn` output is unchanged)
    assert [r.variant for r in cm.ffn_rows()] == list(PAPER_VARIANTS)
    # the cost model counts it like any gated FFN: three D x F matrices (gpt-oss-20b: D = F = 2880)
    d = 2880
    assert cm.ffn_param_breakdown(d, d, "swiglu_oss", bias=True) == {
        "w_gate": d * d, "w_up": d * d, "w_down": d * d, "b_gate": d, "b_up": d, "b_down": d}  # fmt: skip
    # the conformance kit's naive baseline has gpt-oss's clamps and + 1 (tests/test_conformance_ffn.py checks it)
    report = check_ffn(lambda x, p: np.zeros(x.shape, np.float32), "swiglu_oss", dtype="bf16", seeds=(0,),
                       d_model=8, d_ff=5, n_tokens=3)  # fmt: skip
    assert not report.passed and "alpha=1.702, limit=7" in report.subject
