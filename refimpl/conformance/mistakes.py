"""The known mistakes the kit diagnoses, each with the reference computed *under* that mistake (attention's
references are in mistakes_attention.py).

A failing report is matched against this table (diagnosis.py): a candidate whose failing outputs equal the
reference computed under a mistake (within the rule's bound) almost certainly made it. Each entry gives the
cause to print, the pattern it leaves on the case kinds (the traps table of docs/conformance.md), where the
bug was reported (docs/references.md), and ``mistaken(case, cand)``: the main forward output (y / out, float64)
under the mistake, as a list of alternatives (the one nearest the candidate is used), empty when the
mistake cannot be told on that case. Shape legend: B, T, S, N, K, R = N / K, Dh; D, F, E, k.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..convert import pack_gate_up, unpack_gate_up
from ..ffn import ffn_forward
from ..router import route, select_experts, softmax
from ..variants import get_variant
from . import mistakes_attention as ma
from .baseline_moe import EXPERT_KEYS
from .cases import AttentionSpec, FFNSpec, MoESpec
from .cases_moe import nest


class Mistake(NamedTuple):
    key: str
    ops: tuple  # "ffn", "attention", "moe"
    cause: str  # printed as the likely cause
    signature: str  # the pattern it leaves (case kinds and tensors)
    applies: Callable  # applies(spec) -> bool
    mistaken: Callable  # mistaken(case, cand) -> list of float64 arrays (the main output under the mistake)


def _opts(spec) -> dict:
    return dict(spec.options)


# --- FFN and experts: the reference with transformed weights, another GELU, or the +1 dropped -------------


def _swap(p: dict) -> dict:
    p = dict(p)
    for g, u in (("w_gate", "w_up"), ("b_gate", "b_up")):
        if g in p:
            p[g], p[u] = p[u], p[g]
    return p


def _misread(written: str, read: str) -> Callable:
    """Gate and up packed in layout ``written``, unpacked as ``read`` (last axis F: weights and biases)."""

    def transform(p: dict) -> dict:
        p = dict(p)
        for g, u in (("w_gate", "w_up"), ("b_gate", "b_up")):
            if g in p:
                p[g], p[u] = unpack_gate_up(pack_gate_up(p[g], p[u], layout=written), layout=read)
        return p

    return transform


def _ffn_no_plus_one(x, p, opts) -> np.ndarray:
    """swiglu_oss with h = swish_alpha(min(a, limit)) * clip(b, -limit, limit): the up path's + 1 missing."""
    from ..activations import swish

    a = x @ p["w_gate"] + p.get("b_gate", 0.0)  # (M, F)
    b = x @ p["w_up"] + p.get("b_up", 0.0)  # (M, F)
    h = swish(np.minimum(a, opts["limit"]), opts["alpha"]) * np.clip(b, -opts["limit"], opts["limit"])  # (M, F)
    return h @ p["w_down"] + p.get("b_down", 0.0)  # (M, D)


def _ffn_runner(spec, *, gelu=None, no_plus_one=False) -> Callable:
    opts = _opts(spec)
    if no_plus_one:
        return lambda x, p: _ffn_no_plus_one(x, p, opts)
    return lambda x, p: ffn_forward(x, p, spec.variant, gelu=gelu or spec.gelu, **opts)[0]


def _moe(case, *, transform=None, weights=None, run=None, gate=True) -> np.ndarray:
    """refimpl.moe's forward, written out with hooks: ``transform`` the expert (and shared) weights,
    ``weights(logits) -> (selected, w)`` the routing, ``run(x, p)`` each FFN, ``gate`` the shared gate."""
    spec, flat = case.spec, ma.inputs64(case)
    x = flat.pop("x")
    p = nest(flat)
    transform = transform or (lambda q: q)
    run = run or _ffn_runner(spec)
    x2 = x.reshape(-1, x.shape[-1])  # (T, D)
    logits = x2 @ p["w_router"] + p.get("b_router", 0.0)  # (T, E)
    if weights is None:
        r = route(logits, spec.top_k, spec.routing, spec.normalize)
        selected, w = r.selected, r.weights  # (T, k) each
    else:
        selected, w = weights(logits)
    experts = transform({k: a for k, a in p.items() if k in EXPERT_KEYS})
    y = np.zeros_like(x2)  # (T, D)
    for e in range(logits.shape[1]):
        rows, slots = np.nonzero(selected == e)  # (n_e,) each
        if rows.size:
            np.add.at(y, rows, w[rows, slots, None] * run(x2[rows], {k: a[e] for k, a in experts.items()}))
    if "shared" in p:
        s = run(x2, transform(p["shared"]))  # (T, D)
        if gate and "w_shared_gate" in p:
            s = s / (1.0 + np.exp(-(x2 @ p["w_shared_gate"])))
        y += s
    return y.reshape(x.shape)


def _expert_mistake(*, transform=None, gelu=None, no_plus_one=False) -> Callable:
    def mistaken(case, cand) -> list:
        spec = case.spec
        run = _ffn_runner(spec, gelu=gelu and gelu(spec), no_plus_one=no_plus_one)
        if isinstance(spec, MoESpec):
            return [_moe(case, transform=transform, run=run)]
        p = ma.inputs64(case)
        x = p.pop("x")
        y = run(x.reshape(-1, x.shape[-1]), transform(p) if transform else p)  # (M, D)
        return [y.reshape(x.shape)]

    return mistaken


def _gated(spec) -> bool:
    return isinstance(spec, (FFNSpec, MoESpec)) and get_variant(spec.variant).gated


def _other_gelu(spec) -> str:
    return "erf" if spec.gelu == "tanh" else "tanh"


# --- MoE routing ----------------------------------------------------------------------------------------


def _weights_unnormalised(spec) -> Callable:
    def weights(logits):
        selected = select_experts(logits, spec.top_k)  # (T, k)
        return selected, np.take_along_axis(softmax(logits), selected, axis=-1)

    return weights


def _weights_normalised(spec) -> Callable:
    def weights(logits):
        selected, w = _weights_unnormalised(spec)(logits)  # (T, k) each
        return selected, w / w.sum(axis=-1, keepdims=True)

    return weights


def _weights_token_axis(spec) -> Callable:
    """softmax over the tokens (axis 0) instead of the experts: softmax_topk ranks these probabilities."""

    def weights(logits):
        if spec.routing == "topk_softmax":
            selected = select_experts(logits, spec.top_k)  # (T, k)
            return selected, softmax(np.take_along_axis(logits, selected, axis=-1).T).T
        probs = softmax(logits.T).T  # (T, E) columns sum to 1
        selected = select_experts(probs, spec.top_k)  # (T, k)
        w = np.take_along_axis(probs, selected, axis=-1)  # (T, k)
        return selected, w / w.sum(axis=-1, keepdims=True) if spec.normalize else w

    return weights


def _routing_mistake(weights_of: Callable) -> Callable:
    return lambda case, cand: [_moe(case, weights=weights_of(case.spec))]


def _is(kind) -> Callable:
    return lambda spec: isinstance(spec, kind)


MISTAKES: tuple[Mistake, ...] = (
    Mistake("top-left-causal", ("attention",),
            "causal mask aligned top-left (torch SDPA is_causal=True, jax.nn.dot_product_attention) where the "
            "kit's is bottom-right: query t sits at position L_b - T + t",
            "T = S kinds (prefill, ortho-v) pass; chunk, decode and padded fail",
            lambda s: isinstance(s, AttentionSpec) and s.causal, ma.top_left),
    Mistake("tiled-head-map", ("attention",),
            "grouped-query head map tiled: query head n reads KV head n % K instead of n // R (np.tile / "
            "Tensor.repeat where repeat_interleave was needed)",
            "every kind fails, ortho-v by O(1) in every element; dk, dv fail",
            lambda s: isinstance(s, AttentionSpec), ma.tiled),
    Mistake("sinks-ignored", ("attention",), "attention sinks ignored: the sink logit is not in the softmax "
            "denominator", "every kind fails; fully masked rows of padded pass (output 0 either way)",
            lambda s: isinstance(s, AttentionSpec) and s.sinks is not None, ma.sinks_ignored),
    Mistake("sink-with-value", ("attention",),
            "the sink is added to the numerator: it receives a value (its probability times a vector is "
            "added to the output) instead of only enlarging the denominator",
            "every kind fails; the error of each row is proportional to its sink probability exp(z_n - lse)",
            lambda s: isinstance(s, AttentionSpec) and s.sinks is not None, ma.sink_value),
    Mistake("fully-masked-rows", ("attention",),
            "fully masked query rows (no visible key) give NaN or the mean of V instead of 0",
            "only padded fails (the rows of batch row 1 that see no key); out and dv",
            lambda s: isinstance(s, AttentionSpec), ma.empty_rows),
    Mistake("softcap-ignored", ("attention",), "softcap not applied (scores not passed through c tanh(s / c))",
            "every kind fails, out and lse", lambda s: isinstance(s, AttentionSpec) and s.softcap is not None,
            ma.softcap_ignored),
    Mistake("swapped-gate-up", ("ffn", "moe"), "gate and up swapped: the activation is applied to x W_up "
            "(a [gate; up] matrix read as [up; gate])", "every kind fails by O(1), y and all gradients",
            lambda s: _gated(s) and s.variant != "bilinear", _expert_mistake(transform=_swap)),
    Mistake("interleaved-read-as-concat", ("ffn", "moe"),
            "gate/up de-interleaved wrongly: a gate_up matrix interleaved as gpt-oss stores it (gate = columns "
            "0::2, up = 1::2) read as concatenated [gate | up]", "every kind fails by O(1)",
            _gated, _expert_mistake(transform=_misread("interleaved", "concat"))),
    Mistake("concat-read-as-interleaved", ("ffn", "moe"),
            "gate/up packing mixed up: a concatenated [gate | up] matrix (Mixtral, Qwen) read as interleaved "
            "(gate = 0::2, up = 1::2)", "every kind fails by O(1)",
            _gated, _expert_mistake(transform=_misread("concat", "interleaved"))),
    Mistake("gelu-flavour", ("ffn", "moe"), "the other GELU: the tanh approximation computed where erf was "
            "declared, or the reverse (differs by up to 4.7e-4, invisible in bf16)",
            "fails in fp32/fp64, act-tail worst (its inputs sit where the two differ most)",
            lambda s: isinstance(s, (FFNSpec, MoESpec)) and get_variant(s.variant).activation == "gelu",
            _expert_mistake(gelu=_other_gelu)),
    Mistake("missing-plus-one", ("ffn", "moe"), "gpt-oss SwiGLU without the + 1 on the up path: h = "
            "swish(g') * clip(u) instead of swish(g') * (clip(u) + 1)", "every kind fails by O(1)",
            lambda s: isinstance(s, (FFNSpec, MoESpec)) and "limit" in _opts(s),
            _expert_mistake(no_plus_one=True)),
    Mistake("missing-renormalisation", ("moe",), "top-k weights not renormalised: softmax over all E, top-k, "
            "and no division by their sum (Mixtral and Qwen3 with norm_topk_prob renormalise; top-k-then-"
            "softmax sums to 1)", "every kind fails; y and dw_router",
            lambda s: isinstance(s, MoESpec) and s.normalize, _routing_mistake(_weights_unnormalised)),
    Mistake("extra-renormalisation", ("moe",), "top-k weights renormalised where the convention keeps them as "
            "they are (Qwen2/3-MoE with norm_topk_prob=False)", "every kind fails; y and dw_router",
            lambda s: isinstance(s, MoESpec) and not s.normalize, _routing_mistake(_weights_normalised)),
    Mistake("router-softmax-axis", ("moe",), "router softmax over the wrong axis: normalised over the tokens "
            "(dim=0) instead of the experts", "every kind fails by O(1) (decode: all experts tie)",
            _is(MoESpec), _routing_mistake(_weights_token_axis)),
    Mistake("shared-gate-ignored", ("moe",), "the shared expert's sigmoid gate not applied (Qwen2-MoE's "
            "shared_expert_gate)", "every kind fails; y and the shared expert's gradients",
            lambda s: isinstance(s, MoESpec), lambda case, cand: [_moe(case, gate=False)]
            if "w_shared_gate" in case.inputs else []),
)  # fmt: skip
