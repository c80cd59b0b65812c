"""Check a candidate mixture-of-experts layer against refimpl.moe, in the candidate's own format.

``check_moe(fn, variant, *, n_experts, top_k, routing, normalize, dtype, backward=None, ...)``::

    fn(x, params) -> y                    x (B, T, D); params as refimpl.init_moe_params: "w_router" (D, E),
                                          ["b_router" (E,)], experts stacked on a leading E axis: "w_gate"
                                          (E, D, F) [gated variants], "w_up" (E, D, F), "w_down" (E, F, D),
                                          ["b_gate" (E, F), "b_up" (E, F), "b_down" (E, D)], ["shared": an FFN
                                          params dict (check_ffn's names)], ["w_shared_gate" (D, 1)]
    backward(x, params, dy) -> grads      {"x", "w_router", ..., "shared": {...}, ...}: params' keys (nested for
                                          "shared"), the gradients of <dy, y>

The candidate computes the convention it declares: ``routing`` "softmax_topk" (softmax over all E, then
top-k; ``normalize`` renormalises the k weights: Mixtral, Qwen3 with norm_topk_prob) or "topk_softmax"
(softmax over the k selected logits: gpt-oss); ties between logits go to the lowest expert index, and the
cases are drawn so that no token is within TIE_GAP_ULPS of a tie at the candidate's format (cases_moe.py:
otherwise float64 and the format could select different experts, and no comparison would mean anything).
The selection is piecewise constant: the gradient flows through the combine weights of the selected
experts only (as autograd through torch.topk). Experts are any registry FFN variant (``swiglu_oss`` with
``alpha``, ``limit``; gpt-oss stores gate and up interleaved in one matrix: unpack with
refimpl.unpack_gate_up, or pack the kit's separate matrices with refimpl.pack_gate_up).
"""

from __future__ import annotations

from collections.abc import Callable

from .._checks import flag
from .cases_moe import flatten, moe_cases, nest
from .check import DEFAULT_SEEDS, candidate_grads, check_callables, check_rule, copies, judge_all
from .dtypes import number_format, to_float64
from .policy import Rule
from .report import ConformanceReport


def run_moe_candidate(case, fn: Callable, backward: Callable | None) -> dict:
    """Call the candidate on one MoE case; its results as {tensor: float64 array} (gradients flat)."""
    params = nest({k: a for k, a in case.inputs.items() if k != "x"})
    outputs = {"y": to_float64("fn()", fn(case.inputs["x"].copy(), copies(params)))}
    if backward is not None:
        grads = backward(case.inputs["x"].copy(), copies(params), case.douts["y"].copy())
        outputs.update(candidate_grads("backward", grads, ["x", *flatten(params)]))
    return outputs


def check_moe(
    fn: Callable,
    variant: str,
    *,
    n_experts: int,
    top_k: int,
    routing: str,
    normalize: bool,
    dtype,
    backward: Callable | None = None,
    gelu: str = "erf",
    alpha=None,
    limit=None,
    bias: bool = False,
    router_bias: bool = False,
    n_shared: int = 0,
    shared_d_ff: int | None = None,
    shared_gate: bool = False,
    d_model: int = 64,
    d_ff: int = 47,
    n_tokens: int = 113,
    seeds=DEFAULT_SEEDS,
    rule: Rule | None = None,
) -> ConformanceReport:
    """Check a candidate MoE layer with ``variant`` experts computing in ``dtype`` (module docstring).

    Cases are cases_moe.MOE_KINDS per seed: 113 tokens (N(0, 1), scaled into the activation's tail, skewed
    towards one expert), a few tokens so that some experts receive none, and one token (decode).
    """
    check_callables(fn, backward)
    fmt, rule = number_format(dtype), check_rule(rule)
    cases = moe_cases(variant, fmt, n_experts=n_experts, top_k=top_k, routing=routing, normalize=normalize,
                      d_model=d_model, d_ff=d_ff, n_tokens=n_tokens, seeds=seeds, gelu=gelu, alpha=alpha,
                      limit=limit, bias=bias, router_bias=router_bias, n_shared=n_shared, shared_d_ff=shared_d_ff,
                      shared_gate=shared_gate, backward=backward is not None)  # fmt: skip
    spec = cases[0].spec
    extras = [f"{routing}" + ("" if routing == "topk_softmax" else f", normalize={spec.normalize}")]
    extras += [f"gelu={gelu}"] if "gelu" in variant else []
    extras += [f"{k}={x:g}" for k, x in spec.options]
    extras += [name for name, on in (("bias", bias), ("router bias", router_bias)) if flag(name, on)]
    if n_shared:
        extras.append(f"{n_shared} shared" + (" gated" if shared_gate else ""))
    subject = f"{spec.variant} MoE (D={d_model}, F={d_ff}, E={n_experts}, k={top_k}, T={n_tokens}, {', '.join(extras)})"
    return judge_all(subject, cases, lambda c: run_moe_candidate(c, fn, backward), fmt, rule)
