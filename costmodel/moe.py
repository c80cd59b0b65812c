"""Mixture-of-experts costs: how many experts a step touches, and the FLOPs of one MoE block.

Shape legend: B batch, T query length, D d_model, E experts, k experts per token (top-k), F_e expert width.

**Which experts a step reads.** Assume each of the n = B·T tokens of a step picks its k experts uniformly at
random, independently of the other tokens (no load imbalance, no correlation between tokens). One token
picks a given expert with probability k/E, so the expert is untouched by all n tokens with probability
(1 - k/E)^n and the expected number of distinct experts read is

    E_touched(n) = E · (1 - (1 - k/E)^n)                                   (exact expectation)

n = 1 gives k (a batch-1 decode step reads k experts); as n grows it tends to E (a large batch reads every
expert, so decode turns from "read k experts" into "read all E" well before the batch is large: Mixtral,
E = 8, k = 2, reads 7.6 of 8 experts at n = 8). Real routers are not uniform; a skewed router touches fewer.
tests/test_cost_moe.py checks the formula against a Monte Carlo of random top-k routing (mean within 1%).

**FLOPs.** Each token runs exactly k routed experts (plus the shared ones) and the router:
    router   2·n·D·E  (the router bias, n·E, is elementwise: "router_bias")
    experts  n·k · (FLOPs of one FFN of width F_e on one token)
Routing bookkeeping (softmax/top-k over E, weighting and summing the k outputs) is elementwise and kept
under its own names ("route", "combine") so comparisons with counters of matrix products can drop it: the
matrix products of a decode step equal torch's FlopCounterMode on Transformers' forward exactly
(tests/test_cost_hf_flops.py).
"""

from __future__ import annotations

import math

from .checks import positive_int
from .config import ModelConfig
from .flops_blocks import ACTIVATION_FLOPS, ffn_flops, linear_flops

ROUTE_FLOPS_PER_LOGIT = 5  # softmax over E logits (scale, max, subtract, sum, divide; exp transcendental)
COMBINE_FLOPS_PER_ELEMENT = 2  # weight each of the k expert outputs and add it in: 1 multiply + 1 add


def expected_experts(n_experts: int, top_k: int, tokens: int) -> float:
    """E · (1 - (1 - k/E)^tokens): expected distinct experts that ``tokens`` tokens, each routed to k of E
    experts uniformly at random, read together (k for one token, -> E for many). Finite for every input."""
    e, k, n = positive_int("n_experts", n_experts), positive_int("top_k", top_k), positive_int("tokens", tokens)
    if k > e:
        raise ValueError(f"top_k must be <= n_experts={e}; got {k}")
    if k == e:
        return float(e)
    # (1 - k/E)^n via exp(n·log1p(-k/E)): exact to rounding, no overflow or underflow warning for huge n
    return e * -math.expm1(n * math.log1p(-k / e))


def expert_tokens(tokens: int, top_k: int) -> int:
    """Token-expert pairs a step computes: every token runs exactly k routed experts."""
    return positive_int("tokens", tokens) * positive_int("top_k", top_k)


def moe_flops(cfg: ModelConfig, tokens: int) -> dict[str, int]:
    """One MoE block over ``tokens`` tokens: {"router" (2·t·D·E), "router_bias" (t·E, gpt-oss), "route"
    (softmax/top-k over E), "experts/gate", "experts/up", "experts/down", "experts/act", "experts/bias" (t·k
    token-expert pairs), "combine", "shared/...", "shared_gate" (2·t·D), "shared_gate_act"}."""
    moe, d, t = cfg.moe, cfg.d_model, positive_int("tokens", tokens)
    out = {"router": linear_flops(t, d, moe.n_experts)}
    if moe.router_bias:
        out["router_bias"] = t * moe.n_experts
    out["route"] = ROUTE_FLOPS_PER_LOGIT * t * moe.n_experts
    routed = expert_tokens(t, moe.top_k)
    experts = ffn_flops(routed, d, moe.d_ff, cfg.ffn, bias=cfg.ffn_bias)
    out.update({f"experts/{k}": v for k, v in experts.items()})
    out["combine"] = COMBINE_FLOPS_PER_ELEMENT * routed * d
    if moe.n_shared:
        shared = ffn_flops(t * moe.n_shared, d, moe.shared_width, cfg.ffn, bias=cfg.ffn_bias)
        out.update({f"shared/{k}": v for k, v in shared.items()})
    if moe.shared_gate:  # sigmoid(x·w) (D, 1) scales the shared output: 1 matmul column, sigmoid, D multiplies
        out["shared_gate"] = linear_flops(t, d, 1)
        out["shared_gate_act"] = t * (ACTIVATION_FLOPS["sigmoid"] + d)
    return out
