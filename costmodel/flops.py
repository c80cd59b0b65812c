"""Forward FLOPs per component: prefill (T tokens, the causal triangle counted exactly), one decode step at
context S, training (backward = 2x forward). FLOPs = 2 x multiply-accumulates for every matrix product.

Matrix products (the terms XLA's cost analysis also counts as 2·M·N·K):
    q, k, v, o projections   2·tokens·D·N·Dh, 2·tokens·D·K·Dh (x2), 2·tokens·N·Dh·D
    QK^T and P·V             2·B·N·Dh·pairs each, pairs = (query, key) pairs the mask allows
    FFN                      2·tokens·D·F per matrix (3 matrices gated, 2 ungated)
    lm_head                  2·V·D per token; the embedding lookup is 0 FLOPs
Elementwise terms are kept apart under their own names so a comparison can include or drop them; each counts
1 FLOP per elementary add/multiply/divide/max per element and 0 for exp/erf/tanh (XLA reports those as
"transcendentals"):
    "softmax"  SOFTMAX_FLOPS_PER_SCORE per allowed score: scale, running max, subtract, sum, divide
    "act"      ACTIVATION_FLOPS[activation] per hidden element, plus GATE_MULTIPLY_FLOPS when gated
    "bias"     1 per output element of every biased projection
    "norm"     NORM_FLOPS_PER_ELEMENT per element of each norm's input
    "residual" RESIDUAL_FLOPS_PER_ELEMENT per element, one add per sub-block
Sources: Kaplan et al. 2020 (arXiv:2001.08361) Table 1 for 2·N per token; Chinchilla (Hoffmann et al. 2022)
App. F for the attention terms; backward = 2x forward (Kaplan et al. 2020, Sec. 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.variants import get_variant

from .config import ModelConfig, positive_int

SOFTMAX_FLOPS_PER_SCORE = 5  # x*scale, max, x - max, sum, / sum   (exp: transcendental)
# per element: relu max(x,0)=1; identity 0; sigmoid 1/(1+e^-x): neg, add, div = 3; swish x*sigmoid = 4;
# gelu (erf form) 0.5*x*(1+erf(x/sqrt2)): div, add, 2 mul = 4   (erf: transcendental)
ACTIVATION_FLOPS = {"relu": 1, "identity": 0, "sigmoid": 3, "swish": 4, "gelu": 4}
GATE_MULTIPLY_FLOPS = 1  # act(a) * b
# rmsnorm: square, sum, x*rsqrt, *weight = 4;  layernorm: sum, x-mean, square, sum, *rstd, *weight, +bias = 7
NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 7, "none": 0}
RESIDUAL_FLOPS_PER_ELEMENT = 1
BACKWARD_FORWARD_RATIO = 2  # backward = 2 x forward (gradients w.r.t. inputs and weights)
MATMUL_TERMS = frozenset({"q", "k", "v", "o", "qk", "pv", "gate", "up", "down", "lm_head"})


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
    out["act"] = t * f * (ACTIVATION_FLOPS[v.activation] + (GATE_MULTIPLY_FLOPS if v.gated else 0))
    out["bias"] = t * ((v.n_matrices - 1) * f + d) if bias else 0
    return out


def norm_flops(tokens: int, d_model: int, kind: str) -> int:
    """NORM_FLOPS_PER_ELEMENT[kind]·tokens·D for one norm layer."""
    return NORM_FLOPS_PER_ELEMENT[kind] * positive_int("tokens", tokens) * positive_int("d_model", d_model)


def _attn_block(cfg, prefix, *, batch, q_len, kv_len, causal, window, kv_proj=True) -> dict[str, int]:
    tokens = batch * q_len
    proj = attention_projection_flops(
        tokens,
        cfg.d_model,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.head_dim,
        qkv_bias=cfg.qkv_bias,
        out_bias=cfg.out_bias,
        kv=kv_proj,
    )
    core = attention_core_flops(batch, q_len, kv_len, cfg.n_heads, cfg.head_dim, causal=causal, window=window)
    return {f"{prefix}/{k}": v for k, v in {**proj, **core}.items()}


def layer_flops(
    cfg: ModelConfig,
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    stack: str = "decoder",
    encoder_len: int | None = None,
) -> dict[str, int]:
    """FLOPs of ONE layer, keys "attn/q" ... "attn/softmax", "cross_attn/..." (decoder of an encoder-decoder:
    K/V of the encoder output are cached, so only q, o and the core), "ffn/...", "norm", "residual".

    ``stack="encoder"`` gives a bidirectional (non-causal) encoder layer with q_len = kv_len.
    """
    b, t = positive_int("batch", batch), positive_int("q_len", q_len)
    if stack not in ("decoder", "encoder"):
        raise ValueError(f"stack must be 'decoder' or 'encoder'; got {stack!r}")
    enc = stack == "encoder"
    out = _attn_block(
        cfg,
        "attn",
        batch=b,
        q_len=t,
        kv_len=kv_len,
        causal=not enc,
        window=None if enc else cfg.sliding_window,
    )
    n_blocks = 2
    if cfg.is_encoder_decoder and not enc:
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else kv_len)
        out.update(
            _attn_block(
                cfg, "cross_attn", batch=b, q_len=t, kv_len=s_enc, causal=False, window=None, kv_proj=False
            )
        )
        n_blocks = 3
    out.update(
        {
            f"ffn/{k}": v
            for k, v in ffn_flops(b * t, cfg.d_model, cfg.d_ff, cfg.ffn, bias=cfg.ffn_bias).items()
        }
    )
    out["norm"] = n_blocks * norm_flops(b * t, cfg.d_model, cfg.norm)
    out["residual"] = n_blocks * RESIDUAL_FLOPS_PER_ELEMENT * b * t * cfg.d_model
    return out


@dataclass(frozen=True)
class FlopsBreakdown:
    """FLOPs by component (totals over layers), slash keys as in param_breakdown; rows() for tables."""

    items: dict
    phase: str

    @property
    def total(self) -> int:
        return sum(self.items.values())

    @property
    def matmul(self) -> int:
        """Matrix-product FLOPs only (the leaf names in MATMUL_TERMS)."""
        return sum(v for k, v in self.items.items() if k.rsplit("/", 1)[-1] in MATMUL_TERMS)

    @property
    def elementwise(self) -> int:
        return self.total - self.matmul

    def rows(self) -> list[dict]:
        return [
            {"component": k, "flops": v, "share": v / self.total if self.total else 0.0}
            for k, v in self.items.items()
        ]


def _scaled(prefix: str, per_layer: dict, n: int) -> dict[str, int]:
    return {f"{prefix}layers/{k}": n * v for k, v in per_layer.items()}


def forward_flops(
    cfg: ModelConfig,
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    logits: str = "all",
    encoder_len: int | None = None,
    phase: str = "forward",
) -> FlopsBreakdown:
    """Decoder(-only) forward over ``q_len`` new tokens attending ``kv_len`` keys (keys include the new ones).

    logits: "all" (training: lm_head on every token) or "last" (generation: one token per sequence).
    Encoder-decoder models: only the decoder here (see :func:`prefill_flops` for the encoder).
    """
    if logits not in ("all", "last"):
        raise ValueError(f"logits must be 'all' or 'last'; got {logits!r}")
    b = positive_int("batch", batch)
    prefix = "decoder/" if cfg.is_encoder_decoder else ""
    items = {"embed": 0}
    items.update(
        _scaled(
            prefix,
            layer_flops(cfg, batch=b, q_len=q_len, kv_len=kv_len, encoder_len=encoder_len),
            cfg.n_layers,
        )
    )
    items[f"{prefix}final_norm"] = norm_flops(b * q_len, cfg.d_model, cfg.norm)
    items["lm_head"] = linear_flops(b * (q_len if logits == "all" else 1), cfg.d_model, cfg.vocab_size)
    return FlopsBreakdown(items, phase)


def encoder_flops(cfg: ModelConfig, *, batch: int, src_len: int) -> dict[str, int]:
    """Encoder stack over ``src_len`` tokens plus each decoder layer's cross-attention K/V projection of its
    output (computed once per sequence and cached)."""
    if not cfg.is_encoder_decoder:
        raise ValueError(f"cfg must be an encoder-decoder model (n_encoder_layers > 0); got {cfg.name!r}")
    b, s = positive_int("batch", batch), positive_int("src_len", src_len)
    items = _scaled(
        "encoder/", layer_flops(cfg, batch=b, q_len=s, kv_len=s, stack="encoder"), cfg.n_encoder_layers
    )
    items["encoder/final_norm"] = norm_flops(b * s, cfg.d_model, cfg.norm)
    kv_proj = 2 * linear_flops(b * s, cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
    items["decoder/layers/cross_attn/kv_cache"] = cfg.n_layers * kv_proj
    return items


def prefill_flops(cfg: ModelConfig, *, batch: int, prompt_len: int) -> FlopsBreakdown:
    """Process a ``prompt_len`` prompt and produce the first token's logits (lm_head on the last token only).

    Encoder-decoder: the encoder over the prompt, the cross K/V, and the decoder's first step (T = 1).
    """
    if cfg.is_encoder_decoder:
        dec = forward_flops(cfg, batch=batch, q_len=1, kv_len=1, logits="last", encoder_len=prompt_len)
        items = {**encoder_flops(cfg, batch=batch, src_len=prompt_len), **dec.items}
        items["decoder/layers/cross_attn/k"] = items.pop("decoder/layers/cross_attn/kv_cache") // 2
        items["decoder/layers/cross_attn/v"] = items["decoder/layers/cross_attn/k"]
        return FlopsBreakdown(items, "prefill")
    return forward_flops(
        cfg, batch=batch, q_len=prompt_len, kv_len=prompt_len, logits="last", phase="prefill"
    )


def decode_flops(
    cfg: ModelConfig, *, batch: int, context: int, encoder_len: int | None = None
) -> FlopsBreakdown:
    """One decode step: one new token per sequence attending ``context`` keys (the cache plus itself)."""
    return forward_flops(
        cfg, batch=batch, q_len=1, kv_len=context, logits="last", encoder_len=encoder_len, phase="decode"
    )


def training_flops(cfg: ModelConfig, *, batch: int, seq_len: int) -> int:
    """Forward (logits on every token) x (1 + BACKWARD_FORWARD_RATIO) for a decoder-only model."""
    if cfg.is_encoder_decoder:
        raise ValueError("training_flops supports decoder-only models; got an encoder-decoder cfg")
    fwd = forward_flops(cfg, batch=batch, q_len=seq_len, kv_len=seq_len, logits="all").total
    return (1 + BACKWARD_FORWARD_RATIO) * fwd
