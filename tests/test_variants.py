"""The registry holds the paper's eight variants and stays importable without NumPy."""

import subprocess
import sys

import pytest

from refimpl.variants import ACTIVATIONS, FFN_VARIANTS, get_variant


def test_registry_matches_the_paper():
    # Shazeer 2020, Table 1 rows; gated variants have three weight matrices.
    gated = {"glu", "bilinear", "reglu", "geglu", "swiglu"}
    assert set(FFN_VARIANTS) == {"relu", "gelu", "swish"} | gated
    for name, v in FFN_VARIANTS.items():
        assert v.gated == (name in gated) and v.n_matrices == (3 if v.gated else 2)
        assert v.activation in ACTIVATIONS
    assert FFN_VARIANTS["swiglu"].log_ppl_524k == 1.636 and FFN_VARIANTS["geglu"].log_ppl_524k == 1.633


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(ValueError, match="variant must be one of relu, gelu"):
        get_variant("swigly")


def test_variants_import_pulls_in_no_numpy():
    code = "import sys, refimpl.variants; print(sorted(m for m in ('numpy', 'scipy', 'jax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
