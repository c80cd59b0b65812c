"""FLOPs of the blocks a transformer is built from, as exact integers from integers: linear layers, the
attention core (the causal and sliding-window masks counted exactly), FFNs of every registry variant, norms.
``costmodel.flops`` sums them over a model's layers; docs/cost-model.md has the formulas and sources.

FLOPs = 2 x multiply-accumulates for every matrix product. Elementwise terms count 1 FLOP per elementary
add/multiply/divide/max per element and 0 for exp/erf/tanh (XLA reports those as "transcendentals").
"""

from __future__ import annotations

from refimpl.variants import get_variant

from .checks import positive_int

SOFTMAX_FLOPS_PER_SCORE = 5  # x*scale, max, x - max, sum, / sum   (exp: transcendental)
# per element: relu max(x,0)=1; identity 0; sigmoid 1/(1+e^-x): neg, add, div = 3; swish x*sigmoid = 4;
# gelu (erf form) 0.5*x*(1+erf(x/sqrt2)): div, add, 2 mul = 4   (erf: transcendental)
ACTIVATION_FLOPS = {"relu": 1, "identity": 0, "sigmoid": 3, "swish": 4, "gelu": 4}
GATE_MULTIPLY_FLOPS = 1  # act(a) * b
# Registry variants whose activation is more than ACTIVATION_FLOPS[activation]: gpt-oss's clamped SwiGLU
# ("swiglu_oss"): min(g, 7) 1, clip(u, -7, 7) 2, 1.702·g 1, sigmoid 3, g·sigmoid 1, u + 1 1 = 9 per hidden
# element (the gate multiply counted apart, as for every gated variant)
VARIANT_ACTIVATION_FLOPS = {"swiglu_oss": 9}
# rmsnorm: square, sum, x*rsqrt, *weight = 4;  layernorm: sum, x-mean, square, sum, *rstd, *weight, +bias = 7
NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 7, "none": 0}
RESIDUAL_FLOPS_PER_ELEMENT = 1
BACKWARD_FORWARD_RATIO = 2  # backward = 2 x forward (gradients w.r.t. inputs and weights)
MATMUL_TERMS = frozenset(
    {"q", "k", "v", "o", "qk", "pv", "gate", "up", "down", "lm_head", "router", "shared_gate"}
)


def linear_flops(tokens: int, d_in: int, d_out: int) -> int:
    """2·tokens·d_in·d_out: one multiply and one add per weight per token."""
    return 2 * tokens * d_in * d_out


def _sum_min(lo: int, hi: int, w: int) -> int:
    """sum_{x=lo}^{hi} min(x, w) for 1 <= lo <= hi, exactly."""
    top = min(hi, w)
    below = (lo + top) * (top - lo + 1) // 2 if top >= lo else 0
    return below + max(0, hi - max(lo, w + 1) + 1) * w


def attention_pairs(q_len: int, kv_len: int, *, causal: bool = True, window: int | None = None) -> int:
    """Number of (query, key) pairs the mask allows, per batch row and head.

    Causal masks are bottom-right aligned (docs/design.md): query t sits at position p = t + S - T and sees keys
    max(0, p - window + 1) .. p, i.e. min(p + 1, window) keys. Sum over t:
        no window:  T·(S - T) + T·(T + 1)/2          (T = S: the triangle T(T+1)/2; T = 1: S)
    ``causal=False`` gives the full rectangle T·S (what a kernel computing every score then masking does).
    """
    t, s = positive_int("q_len", q_len), positive_int("kv_len", kv_len)
    if not causal:
        if window is not None:
            raise ValueError("window requires causal=True")
        return t * s
    if t > s:
        raise ValueError(f"q_len must be <= kv_len for a causal mask; got q_len={t}, kv_len={s}")
    w = s if window is None else positive_int("window", window)
    return _sum_min(s - t + 1, s, w)


def attention_projection_flops(
    tokens: int,
    d_model: int,
    n_heads: int,
    n_kv_heads: int,
    head_dim: int,
    *,
    qkv_bias: bool = False,
    out_bias: bool = False,
    kv: bool = True,
) -> dict[str, int]:
    """{"q", "k", "v", "o", "bias"} for ``tokens`` tokens; ``kv=False`` drops k and v (cached cross-attention).

    bias: tokens·(N + 2K)·Dh for q/k/v biases (only N·Dh when kv=False) plus tokens·D for the output bias.
    """
    t, d, n, k, dh = (
        positive_int(a, v)
        for a, v in (
            ("tokens", tokens),
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("n_kv_heads", n_kv_heads),
            ("head_dim", head_dim),
        )
    )
    out = {"q": linear_flops(t, d, n * dh)}
    if kv:
        out.update(k=linear_flops(t, d, k * dh), v=linear_flops(t, d, k * dh))
    out["o"] = linear_flops(t, n * dh, d)
    out["bias"] = (t * (n + 2 * k * kv) * dh if qkv_bias else 0) + (t * d if out_bias else 0)
    return out


def attention_core_flops(
    batch: int,
    q_len: int,
    kv_len: int,
    n_heads: int,
    head_dim: int,
    *,
    causal: bool = True,
    window: int | None = None,
) -> dict[str, int]:
    """{"qk": 2·B·N·Dh·pairs, "pv": 2·B·N·Dh·pairs, "softmax": SOFTMAX_FLOPS_PER_SCORE·B·N·pairs}.

    Independent of K: GQA shares K/V heads but every query head still scores every allowed key.
    """
    b, n, dh = (
        positive_int("batch", batch),
        positive_int("n_heads", n_heads),
        positive_int("head_dim", head_dim),
    )
    pairs = attention_pairs(q_len, kv_len, causal=causal, window=window)
    return {
        "qk": 2 * b * n * dh * pairs,
        "pv": 2 * b * n * dh * pairs,
        "softmax": SOFTMAX_FLOPS_PER_SCORE * b * n * pairs,
    }


def ffn_flops(tokens: int, d_model: int, d_ff: int, variant: str, *, bias: bool = False) -> dict[str, int]:
    """{"gate" (gated only), "up", "down", "act", "bias"} for ``tokens`` tokens (Shazeer 2020's FFNs).

    act: tokens·F·(ACTIVATION_FLOPS[activation] + GATE_MULTIPLY_FLOPS if gated).
    bias: tokens·(F per w_gate/w_up + D for w_down).
    """
    t, d, f = positive_int("tokens", tokens), positive_int("d_model", d_model), positive_int("d_ff", d_ff)
    v = get_variant(variant)
    out = {}
    if v.gated:
        out["gate"] = linear_flops(t, d, f)
    out["up"] = linear_flops(t, d, f)
    out["down"] = linear_flops(t, f, d)
    out["act"] = t * f * activation_flops(variant)
    out["bias"] = t * ((v.n_matrices - 1) * f + d) if bias else 0
    return out


def norm_flops(tokens: int, d_model: int, kind: str) -> int:
    """NORM_FLOPS_PER_ELEMENT[kind]·tokens·D for one norm layer."""
    return NORM_FLOPS_PER_ELEMENT[kind] * positive_int("tokens", tokens) * positive_int("d_model", d_model)


def activation_flops(variant: str) -> int:
    """Elementwise FLOPs per hidden element of an FFN variant: its activation, plus the gate multiply when
    gated (swiglu: swish 4 + 1 = 5; relu: 1)."""
    v = get_variant(variant)
    act = VARIANT_ACTIVATION_FLOPS.get(v.name, ACTIVATION_FLOPS.get(v.activation))
    if act is None:
        raise ValueError(f"variant {v.name!r}: no FLOP count for activation {v.activation!r}")
    return act + (GATE_MULTIPLY_FLOPS if v.gated else 0)
