"""check_moe: the routing conventions, shared experts, biases, clamped SwiGLU; inputs without near-ties; correct
PyTorch MoE layers (Mixtral / Qwen2-MoE style and gpt-oss style, written as Transformers' modules compute them)
conform in fp32 and bf16."""

import numpy as np
import pytest
from conformance_candidates import moe, one_torch_thread  # noqa: F401  (a fixture)

from refimpl.conformance import TIE_GAP_ULPS, assert_conforms, check_moe, moe_cases, number_format, round_to, ulp
from refimpl.router import select_experts

SMALL = dict(d_model=16, d_ff=12, n_tokens=24, seeds=(0,))


@pytest.mark.parametrize("variant, routing, normalize, extra", [
    ("swiglu", "softmax_topk", True, {}),
    ("swiglu", "softmax_topk", False, dict(n_shared=1, shared_gate=True)),
    ("geglu", "softmax_topk", True, dict(n_shared=2, shared_d_ff=5, gelu="tanh")),
    ("swiglu_oss", "topk_softmax", True, dict(bias=True, router_bias=True, alpha=1.5, limit=5.0)),
    ("relu", "topk_softmax", True, dict(bias=True, n_shared=1)),
])  # fmt: skip
def test_correct_candidates_conform_for_every_convention(variant, routing, normalize, extra):
    opts = {k: extra[k] for k in ("alpha", "limit") if k in extra}
    if variant == "relu" or opts:  # the test's own MoE knows gpt-oss's defaults only: the reference, rounded
        fn = _reference_candidate("fp16", variant, routing, normalize, opts)
    else:  # written from the formulas (tests/conformance_candidates.py)
        fn = moe("fp16", variant, top_k=2, routing=routing, normalize=normalize, gelu=extra.get("gelu", "erf"))
    report = check_moe(fn, variant, n_experts=5, top_k=2, routing=routing, normalize=normalize, dtype="fp16",
                       **extra, **SMALL)  # fmt: skip
    assert_conforms(report)
    assert report.kinds() == ["random", "act-tail", "skewed", "few", "decode"]


def _reference_candidate(dtype, variant, routing, normalize, opts, backward=False):
    import refimpl

    def run(x, p):
        return refimpl.moe_forward(x.astype(np.float64), _f64(p), variant, top_k=2, routing=routing,
                                   normalize=normalize, **opts)  # fmt: skip

    def fn(x, p):
        return round_to(run(x, p)[0], dtype).astype(np.float32)

    def bwd(x, p, dy):
        grads = refimpl.moe_backward(dy.astype(np.float64), run(x, p)[1])
        return {k: ({kk: round_to(g, dtype) for kk, g in v.items()} if isinstance(v, dict) else round_to(v, dtype))
                for k, v in grads.items()}  # fmt: skip

    return (fn, bwd) if backward else fn


def _f64(p):
    return {k: _f64(v) if isinstance(v, dict) else v.astype(np.float64) for k, v in p.items()}


def test_gradients_of_every_parameter_are_judged():
    fn, bwd = _reference_candidate("bf16", "swiglu_oss", "topk_softmax", True, {}, backward=True)
    report = check_moe(fn, "swiglu_oss", n_experts=4, top_k=2, routing="topk_softmax", normalize=True,
                       dtype="bf16", backward=bwd, bias=True, router_bias=True, n_shared=1, shared_gate=True,
                       **SMALL)  # fmt: skip
    assert_conforms(report)
    assert set(report.tensors()) == {"y", "dx", "dw_router", "db_router", "dw_gate", "dw_up", "dw_down", "db_gate",
                                     "db_up", "db_down", "dshared.w_gate", "dshared.w_up", "dshared.w_down",
                                     "dshared.b_gate", "dshared.b_up", "dshared.b_down", "dw_shared_gate"}  # fmt: skip


@pytest.mark.parametrize("dtype", ["bf16", "fp8_e5m2"])
def test_inputs_have_no_near_ties_and_some_experts_receive_no_token(dtype):
    fmt = number_format(dtype)
    cases = moe_cases("swiglu", fmt, n_experts=8, top_k=2, routing="softmax_topk", normalize=True, d_model=16,
                      d_ff=12, n_tokens=40, seeds=(0,), router_bias=True)  # fmt: skip
    for c in cases:
        x, w, b = (c.inputs[k].astype(np.float64) for k in ("x", "w_router", "b_router"))
        logits = x[0] @ w + b  # (T, E) float64, from the rounded inputs
        top = -np.sort(-logits, axis=1)
        gap = top[:, 1] - top[:, 2]  # k-th minus (k+1)-th
        assert np.all(gap >= TIE_GAP_ULPS * ulp(fmt, np.maximum(np.abs(top[:, 1:3]).max(axis=1), 1.0)))
        # the format's own logits (float32 products, each rounded once, bias added in a second rounding) select
        # the same experts, and so do their softmax probabilities rounded to the format
        low = round_to(round_to(x[0].astype(np.float32) @ w.astype(np.float32), fmt) + b, fmt)
        same = np.sort(select_experts(logits, 2), axis=1)
        np.testing.assert_array_equal(np.sort(select_experts(low, 2), axis=1), same)
        if c.name.startswith("few"):
            assert len(np.unique(select_experts(logits, 2))) < 8  # T k < E: some expert gets no token
        if c.name.startswith("skewed"):
            assert np.mean(np.any(select_experts(logits, 2) == 0, axis=1)) > 0.8  # most tokens use expert 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(top_k=9), "top_k must be at most"),
    (dict(routing="topk_softmax", normalize=False), "normalize=False applies to routing='softmax_topk' only"),
    (dict(routing="softmax"), "routing must be one of"),
    (dict(normalize="yes"), "normalize must be True or False"),
    (dict(n_experts=0), "n_experts must be a positive integer"),
    (dict(alpha=1.0), "alpha does not apply to variant 'swiglu'"),
    (dict(shared_gate=True), "shared_d_ff and shared_gate apply only with n_shared >= 1"),
    (dict(d_model=10**12), "the conformance kit's bound is 2147483648 bytes"),
])  # fmt: skip
def test_bad_arguments_name_themselves(kwargs, match):
    args = dict(n_experts=8, top_k=2, routing="softmax_topk", normalize=True, dtype="bf16", **SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        check_moe(lambda x, p: x, "swiglu", **args)


# --- PyTorch MoE layers, written as Transformers' modules compute them (weights copied in) -------------------


def _torch_moe(torch_dtype, *, style, top_k, normalize=True, limit=7.0, alpha=1.702):
    """Mixtral/Qwen2-MoE (``style="mixtral"``: softmax in float32 over E, top-k, renormalise if asked,
    loop over experts adding into the output rows (Transformers' index_add_; index_put with accumulate here,
    as torch's CPU index_add is slow in bf16); shared expert gated by sigmoid) or gpt-oss (``style="gpt-oss"``:
    top-k logits, softmax over k, experts stored as one interleaved gate_up_proj (E, D, 2F) with biases)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def tensor(a):
        return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch_dtype).requires_grad_(True)

    def expert(x, p, e):
        if style == "gpt-oss":
            gate_up = x @ p["gate_up_proj"][e] + p["gate_up_proj_bias"][e]  # (n, 2F) interleaved
            gate, up = gate_up[..., ::2].clamp(max=limit), gate_up[..., 1::2].clamp(-limit, limit)
            return ((up + 1) * gate * torch.sigmoid(gate * alpha)) @ p["w_down"][e] + p["b_down"][e]
        return (F.silu(x @ p["w_gate"][e]) * (x @ p["w_up"][e])) @ p["w_down"][e]

    def forward(x, p):
        x2 = x.reshape(-1, x.shape[-1])  # (T, D)
        logits = x2 @ p["w_router"] + (p["b_router"] if "b_router" in p else 0)  # (T, E)
        if style == "gpt-oss":
            top, selected = torch.topk(logits, top_k, dim=-1)
            weights = F.softmax(top, dim=1, dtype=top.dtype)
        else:
            weights, selected = torch.topk(F.softmax(logits, dim=1, dtype=torch.float), top_k, dim=-1)
            if normalize:
                weights = weights / weights.sum(dim=-1, keepdim=True)
            weights = weights.to(x2.dtype)
        y = torch.zeros_like(x2)
        for e in range(logits.shape[1]):
            rows, slots = torch.where(selected == e)
            if rows.numel():
                y = y.index_put((rows,), expert(x2[rows], p, e) * weights[rows, slots, None], accumulate=True)
        if "shared" in p:
            s = p["shared"]
            shared = (F.silu(x2 @ s["w_gate"]) * (x2 @ s["w_up"])) @ s["w_down"]
            y = y + (torch.sigmoid(x2 @ p["w_shared_gate"]) * shared if "w_shared_gate" in p else shared)
        return y.reshape(x.shape)

    def load(params):
        params = dict(params)
        if style == "gpt-oss":  # pack the kit's separate matrices the way the checkpoint stores them
            for packed, (g, u) in (("gate_up_proj", ("w_gate", "w_up")), ("gate_up_proj_bias", ("b_gate", "b_up"))):
                gate, up = params.pop(g), params.pop(u)  # (E, D, F) or (E, F)
                params[packed] = np.stack([gate, up], axis=-1).reshape(*gate.shape[:-1], -1)  # gate 0::2, up 1::2
        return {k: ({kk: tensor(a) for kk, a in v.items()} if isinstance(v, dict) else tensor(v))
                for k, v in params.items()}  # fmt: skip

    def fn(x, params):
        with torch.no_grad():
            return forward(tensor(x), load(params)).float().numpy()

    def backward(x, params, dy):
        xt, p = tensor(x), load(params)
        forward(xt, p).backward(torch.from_numpy(dy.astype(np.float32)).to(torch_dtype))
        grads = {k: ({kk: t.grad.float().numpy() for kk, t in v.items()} if isinstance(v, dict)
                     else v.grad.float().numpy()) for k, v in p.items()}  # fmt: skip
        if style == "gpt-oss":  # the packed gradients, de-interleaved: gate = 0::2, up = 1::2
            gu, gub = grads.pop("gate_up_proj"), grads.pop("gate_up_proj_bias")
            grads.update(w_gate=gu[..., 0::2], w_up=gu[..., 1::2], b_gate=gub[..., 0::2], b_up=gub[..., 1::2])
        return {"x": xt.grad.float().numpy(), **grads}

    return fn, backward


TORCH_SIZES = dict(d_model=32, d_ff=24, n_tokens=32, seeds=(0, 1))
TORCH_CASES = {  # style, the kit's options
    "mixtral": ("mixtral", dict(variant="swiglu", n_experts=8, routing="softmax_topk", normalize=True)),
    "qwen2-moe": ("mixtral", dict(variant="swiglu", n_experts=6, routing="softmax_topk", normalize=False, n_shared=1,
                                  shared_gate=True)),
    "gpt-oss": ("gpt-oss", dict(variant="swiglu_oss", n_experts=6, routing="topk_softmax", normalize=True, bias=True,
                                router_bias=True)),
}  # fmt: skip


@pytest.mark.parametrize("model, dtype", [("mixtral", "fp32"), ("mixtral", "bf16"), ("qwen2-moe", "bf16"),
                                          ("gpt-oss", "fp32"), ("gpt-oss", "bf16")])  # fmt: skip
@pytest.mark.usefixtures("one_torch_thread")
def test_torch_moe_layers_conform(model, dtype):
    torch = pytest.importorskip("torch")
    style, options = TORCH_CASES[model]
    options = dict(options)
    variant = options.pop("variant")
    fn, backward = _torch_moe({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype], style=style, top_k=2,
                              normalize=options["normalize"])  # fmt: skip
    report = check_moe(fn, variant, top_k=2, dtype=dtype, backward=backward, **options, **TORCH_SIZES)
    assert_conforms(report)
    assert report.worst("few", "dw_down").passed  # experts without a token: zero gradients
