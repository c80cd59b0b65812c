"""The mixture-of-experts cases: inputs in the candidate's format drawn without near-ties, golden results, baseline.

Steps 1-3 of the rule (policy.py) as for the FFN (cases.py), with refimpl.moe as the reference and
baseline_moe.py as the naive baseline. Parameters come from refimpl.init_moe_params (std 1/sqrt(fan_in)),
x and dy ~ N(0, 1), all rounded to the format. Shape legend: T tokens, D d_model, F d_ff, E experts, k top-k.

MoE kinds (x (1, T, D); T = n_tokens, default 113):
    random    x ~ N(0, 1).
    act-tail  x scaled as the FFN's act-tail (2.35; swiglu_oss 3.5: its clamps at 7 are active).
    skewed    x pushed along expert 0's router column (+2.5 on its logit): most tokens go to expert 0, the
              groups of a grouped matrix product are uneven, and small experts may get no token.
    few       T = max(1, (E - 1) // k) tokens: T k < E slots, so at least one expert receives no token (when
              k < E) -- a kernel must skip it, not index past its group.
    decode    T = 1.

The selection rule (why inputs are drawn without near-ties): which k experts a token uses is a step
function of the router logits, so a comparison is meaningful only if float64 and the candidate's format
select the same experts. Each token's gap between its k-th and (k+1)-th largest logit (float64, from the
rounded inputs) must be at least TIE_GAP_ULPS = 4 units in the last place of the format at
max(|l_k|, |l_k+1|, 1): a logit computed from format values and rounded correctly is off by at most half an
ulp (one ulp with a bias added in a second rounding), and a kernel that ranks the probabilities instead
(Transformers does) sees a relative gap of the same size, so the order survives either way. Tokens that miss
the gap are drawn again (from the same distribution); at fp8 the gap is a large part of the logits' range
and many draws are needed (at most MAX_DRAWS per token, else a ValueError).
"""

from __future__ import annotations

import numpy as np

from .._checks import flag, positive_int
from ..moe import check_moe_init, check_moe_options, init_moe_params, moe_backward, moe_forward
from .baseline_moe import naive_moe
from .cases import Case, MoESpec, baseline_errors, check_case_size, check_seeds, tail_std
from .dtypes import NumberFormat, cast, round_to, ulp

MOE_KINDS = ("random", "act-tail", "skewed", "few", "decode")
TIE_GAP_ULPS = 4.0  # least gap between the k-th and (k+1)-th logit, in ulps of the format (module docstring)
MAX_DRAWS = 20_000  # draws per token before giving up on a near-tie-free token
_SKEW = 2.5  # the skewed kind's push on expert 0's logit
_POOL = 64  # candidate rows drawn per missing token and round


def flatten(params: dict, prefix: str = "") -> dict:
    """{"w_up": a, "shared": {"w_up": b}} -> {prefix + "w_up": a, prefix + "shared.w_up": b}."""
    flat = {}
    for k, a in params.items():
        if isinstance(a, dict):
            flat.update({f"{prefix}{k}.{kk}": aa for kk, aa in a.items()})
        else:
            flat[prefix + k] = a
    return flat


def nest(flat: dict) -> dict:
    """The inverse of ``flatten`` (no prefix)."""
    params: dict = {}
    for k, a in flat.items():
        head, dot, tail = k.partition(".")
        if dot:
            params.setdefault(head, {})[tail] = a
        else:
            params[k] = a
    return params


def boundary_gap_ok(logits: np.ndarray, top_k: int, fmt: NumberFormat) -> np.ndarray:
    """(T,) bool: the k-th and (k+1)-th largest logit of each row (T, E) are TIE_GAP_ULPS ulps apart."""
    if top_k >= logits.shape[1]:
        return np.ones(logits.shape[0], dtype=bool)  # every expert is selected: no boundary
    top = -np.sort(-logits, axis=1)[:, top_k - 1 : top_k + 1]  # (T, 2) the k-th and (k+1)-th
    size = np.maximum(np.abs(top).max(axis=1), 1.0)  # (T,)
    return top[:, 0] - top[:, 1] >= TIE_GAP_ULPS * ulp(fmt, size)


def draw_tokens(rng, n_tokens: int, kind: str, params: dict, fmt: NumberFormat, top_k: int, std: float):
    """x (n_tokens, D) rounded to fmt, every token clear of near-ties (module docstring)."""
    d_model = params["w_router"].shape[0]
    shift = np.zeros(d_model)  # (D,)
    if kind == "skewed":
        w0 = params["w_router"][:, 0]  # (D,)
        shift = _SKEW * w0 / np.dot(w0, w0)  # raises expert 0's logit by _SKEW
    rows, draws = [], 0
    while sum(len(r) for r in rows) < n_tokens:
        missing = n_tokens - sum(len(r) for r in rows)
        if draws >= MAX_DRAWS * n_tokens:
            raise ValueError(f"cannot draw {n_tokens} tokens whose k-th and (k+1)-th router logits are "
                             f"{TIE_GAP_ULPS:g} {fmt.name} ulps apart in {MAX_DRAWS} draws each (top_k={top_k}, "
                             f"E={params['w_router'].shape[1]}): use fewer experts or a finer format")  # fmt: skip
        pool = round_to(std * rng.standard_normal((missing * _POOL, d_model)) + shift, fmt)  # (m, D)
        draws += len(pool)
        logits = pool @ params["w_router"] + params.get("b_router", 0.0)  # (m, E)
        rows.append(pool[boundary_gap_ok(logits, top_k, fmt)][:missing])
    return np.concatenate(rows)  # (T, D)


def _tokens(kind: str, n_tokens: int, n_experts: int, top_k: int) -> int:
    if kind == "few":
        return max(1, (n_experts - 1) // top_k)
    return 1 if kind == "decode" else n_tokens


def moe_cases(variant: str, fmt: NumberFormat, *, n_experts: int, top_k: int, routing: str, normalize: bool,
              d_model: int, d_ff: int, n_tokens: int, seeds, gelu: str = "erf", alpha=None, limit=None,
              bias: bool = False, router_bias: bool = False, n_shared: int = 0, shared_d_ff=None,
              shared_gate: bool = False, backward: bool = True) -> list[Case]:  # fmt: skip
    """The MoE cases (kinds MOE_KINDS, one per seed each) in format ``fmt`` (options as refimpl.moe_forward
    and refimpl.init_moe_params)."""
    d_model, d_ff, n_experts, v, n_shared, shared_d_ff, _ = check_moe_init(
        d_model, d_ff, n_experts, variant, bias, router_bias, n_shared, shared_d_ff, shared_gate, np.float64)
    opts = check_moe_options(v, n_experts, top_k, routing, normalize, gelu, alpha, limit)
    n_tokens, backward = positive_int("n_tokens", n_tokens), flag("backward", backward)
    check_case_size(12 * n_tokens * top_k * (d_model + d_ff) + 8 * n_experts * d_model * d_ff
                    + 8 * n_tokens * (n_shared * shared_d_ff + n_experts),
                    f"an MoE case of D={d_model}, F={d_ff}, E={n_experts}, T={n_tokens}")  # fmt: skip
    spec = MoESpec(v.name, int(top_k), routing, bool(normalize), gelu, tuple(opts.items()))
    init_kw = dict(bias=bias, router_bias=router_bias, n_shared=n_shared, shared_gate=shared_gate,
                   shared_d_ff=shared_d_ff if n_shared else None)  # fmt: skip
    run_kw = dict(top_k=int(top_k), routing=routing, normalize=bool(normalize), gelu=gelu, **opts)
    cases = []
    for seed in check_seeds(seeds):
        for idx, kind in enumerate(MOE_KINDS):
            rng = np.random.default_rng([seed, idx])
            params = init_moe_params(rng, d_model, d_ff, n_experts, v.name, **init_kw)
            flat = {k: round_to(a, fmt) for k, a in flatten(params).items()}
            params = nest(flat)
            std = tail_std(opts) if kind == "act-tail" else 1.0
            tokens = _tokens(kind, n_tokens, n_experts, int(top_k))
            x = draw_tokens(rng, tokens, kind, params, fmt, int(top_k), std)[None]  # (1, T, D)
            dy = round_to(rng.standard_normal(x.shape), fmt) if backward else None  # (1, T, D)
            y, cache = moe_forward(x, params, v.name, **run_kw)
            golden = {"y": y}
            if backward:
                golden.update(flatten(moe_backward(dy, cache), prefix="d"))
            base = naive_moe(x, params, v.name, fmt, dy=dy, **run_kw)
            worst, mean = baseline_errors(golden, base, fmt)
            inputs = {"x": cast(x, fmt), **{k: cast(a, fmt) for k, a in flat.items()}}
            douts = {"y": cast(dy, fmt)} if backward else {}
            cases.append(Case(f"{kind}.s{seed}", inputs, douts, golden, worst, mean, spec))
    return cases
