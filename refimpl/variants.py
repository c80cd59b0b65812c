"""The one registry of feed-forward variants: Shazeer 2020 ("GLU Variants Improve Transformer") plus the
clamped SwiGLU of gpt-oss.

Pure Python (no NumPy), so the cost model and the CLI can import it cheaply.

Ungated (two matrices):  FFN(x) = act(x W_up) W_down
Gated (three matrices):  FFN(x) = (act(x W_gate) * (x W_up)) W_down
gpt-oss ("swiglu_oss"):  g' = min(x W_gate, limit), u' = clip(x W_up, -limit, limit),
                         FFN(x) = (g' sigmoid(alpha g') * (u' + 1)) W_down     (biases as in gpt-oss: all four)

Naming follows LLaMA: ``w_gate`` carries the activation, ``w_up`` the value, ``w_down`` projects back.
The paper's Table 1 log-perplexities on C4 (65,536 / 524,288 steps, T5-base) travel with each of its eight
entries so tables cite them beside our costs; ``swiglu_oss`` is not from the paper (``paper`` is False, its
perplexities None). Variant options (``options``: name -> default) are keyword arguments of ``ffn_forward``
and ``moe_forward``; a variant without options refuses them.
"""

from __future__ import annotations

from typing import NamedTuple

ACTIVATIONS = ("relu", "gelu", "swish", "sigmoid", "identity")
SHAZEER_2020 = "Shazeer 2020, GLU Variants Improve Transformer"
# gpt-oss's constants: Transformers GptOssConfig swiglu_alpha / swiglu_limit (modeling_gpt_oss.GptOssExperts)
GPT_OSS_ALPHA = 1.702
GPT_OSS_LIMIT = 7.0


class FFNVariant(NamedTuple):
    name: str  # registry key
    gated: bool  # three matrices (w_gate, w_up, w_down) when True, else two (w_up, w_down)
    activation: str  # one of ACTIVATIONS (swiglu_oss: swish with beta = alpha, on the clamped gate)
    label: str  # the paper's (or the model's) name
    formula: str  # the paper's formula, biases omitted as in the paper
    log_ppl_65k: float | None  # Shazeer 2020 Table 1, C4 log-perplexity after 65,536 steps; None: not in the paper
    log_ppl_524k: float | None  # Shazeer 2020 Table 1, C4 log-perplexity after 524,288 steps
    source: str = SHAZEER_2020  # where the variant is defined
    options: tuple = ()  # ((name, default), ...): keyword options of ffn_forward / moe_forward

    @property
    def n_matrices(self) -> int:
        return 3 if self.gated else 2

    @property
    def param_names(self) -> tuple[str, ...]:
        """Weight names in storage order."""
        return ("w_gate", "w_up", "w_down") if self.gated else ("w_up", "w_down")

    @property
    def paper(self) -> bool:
        """True for the eight variants of Shazeer 2020 (the ones with its perplexities)."""
        return self.log_ppl_65k is not None


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
        FFNVariant("swiglu_oss", True, "swish", "gpt-oss SwiGLU",
                   "(g' sigmoid(alpha g') * (clip(xV, -limit, limit) + 1)) W2, g' = min(xW, limit)", None, None,
                   "gpt-oss (OpenAI 2025); Transformers GptOssExperts",
                   (("alpha", GPT_OSS_ALPHA), ("limit", GPT_OSS_LIMIT))),  # fmt: skip
    )
}
PAPER_VARIANTS = tuple(name for name, v in FFN_VARIANTS.items() if v.paper)  # Shazeer 2020's eight, in order


def get_variant(name: str) -> FFNVariant:
    """Look up a variant by name; ``ValueError`` listing the known names otherwise."""
    try:
        return FFN_VARIANTS[name]
    except (KeyError, TypeError):
        known = ", ".join(FFN_VARIANTS)
        raise ValueError(f"variant must be one of {known}; got {name!r}") from None


def variant_options(v: FFNVariant, **given) -> dict:
    """The variant's options with defaults filled in for the ones given as None.

    A non-None value for an option the variant does not have is a ``ValueError`` naming it (e.g. ``alpha``
    for ``"swiglu"``). Values are returned as given; their range is checked by the caller (refimpl.ffn).
    """
    known = dict(v.options)
    wrong = sorted(k for k, value in given.items() if value is not None and k not in known)
    if wrong:
        takes = f"its options are {', '.join(known)}" if known else "it takes no options"
        verb = "does" if len(wrong) == 1 else "do"
        raise ValueError(f"{' and '.join(wrong)} {verb} not apply to variant {v.name!r} ({takes})")
    return {k: default if given.get(k) is None else given[k] for k, default in known.items()}
