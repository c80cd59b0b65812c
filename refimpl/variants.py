"""The one registry of feed-forward variants (Shazeer 2020, "GLU Variants Improve Transformer").

Pure Python (no NumPy), so the cost model and the CLI can import it cheaply.

Ungated (two matrices):  FFN(x) = act(x W_up) W_down
Gated (three matrices):  FFN(x) = (act(x W_gate) * (x W_up)) W_down

Naming follows LLaMA: ``w_gate`` carries the activation, ``w_up`` the value, ``w_down`` projects back.
The paper's Table 1 log-perplexities on C4 (65,536 / 524,288 steps, T5-base) travel with each entry so
tables cite them beside our costs.
"""

from __future__ import annotations

from typing import NamedTuple

ACTIVATIONS = ("relu", "gelu", "swish", "sigmoid", "identity")


class FFNVariant(NamedTuple):
    name: str  # registry key
    gated: bool  # three matrices (w_gate, w_up, w_down) when True, else two (w_up, w_down)
    activation: str  # one of ACTIVATIONS
    label: str  # the paper's name
    formula: str  # the paper's formula, biases omitted as in the paper
    log_ppl_65k: float  # Shazeer 2020 Table 1, C4 log-perplexity after 65,536 steps
    log_ppl_524k: float  # Shazeer 2020 Table 1, C4 log-perplexity after 524,288 steps

    @property
    def n_matrices(self) -> int:
        return 3 if self.gated else 2

    @property
    def param_names(self) -> tuple[str, ...]:
        """Weight names in storage order."""
        return ("w_gate", "w_up", "w_down") if self.gated else ("w_up", "w_down")


FFN_VARIANTS: dict[str, FFNVariant] = {
    v.name: v
    for v in (
        FFNVariant("relu", False, "relu", "FFN_ReLU", "max(0, xW1) W2", 1.997, 1.677),
        FFNVariant("gelu", False, "gelu", "FFN_GELU", "GELU(xW1) W2", 1.983, 1.679),
        FFNVariant("swish", False, "swish", "FFN_Swish", "Swish_1(xW1) W2", 1.994, 1.683),
        FFNVariant("glu", True, "sigmoid", "FFN_GLU", "(sigmoid(xW) * xV) W2", 1.982, 1.663),
        FFNVariant("bilinear", True, "identity", "FFN_Bilinear", "(xW * xV) W2", 1.960, 1.648),
        FFNVariant("reglu", True, "relu", "FFN_ReGLU", "(max(0, xW) * xV) W2", 1.953, 1.645),
        FFNVariant("geglu", True, "gelu", "FFN_GEGLU", "(GELU(xW) * xV) W2", 1.942, 1.633),
        FFNVariant("swiglu", True, "swish", "FFN_SwiGLU", "(Swish_1(xW) * xV) W2", 1.944, 1.636),
    )
}


def get_variant(name: str) -> FFNVariant:
    """Look up a variant by name; ``ValueError`` listing the known names otherwise."""
    try:
        return FFN_VARIANTS[name]
    except (KeyError, TypeError):
        known = ", ".join(FFN_VARIANTS)
        raise ValueError(f"variant must be one of {known}; got {name!r}") from None
