"""Parity with Transformers' own MoE blocks in float64 on torch CPU, weights copied: outputs and the gradients
of x and every weight by torch autograd against refimpl.moe_forward / moe_backward.

Transformers computes the router softmax in float32 even for float64 modules: Mixtral's router calls
``router_logits.float()``, Qwen2/3-MoE's ``softmax(..., dtype=torch.float)``. The ``float64_router`` fixture
makes those two casts keep float64 for the call (so the comparison is exact, <= 1e-12); a test checks that
without it Mixtral differs by the float32 rounding of its routing weights (~1e-8), and no more.
gpt-oss's router keeps the logits' dtype. Transformers' modules are the oracle; skipped without torch or it.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP  # noqa: E402
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock, load_balancing_loss_func  # noqa: E402
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock  # noqa: E402
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock  # noqa: E402

from refimpl import (  # noqa: E402
    init_moe_params,
    load_balancing_loss,
    load_balancing_loss_backward,
    moe_backward,
    moe_forward,
    pack_gate_up,
    unpack_gate_up,
)

D, F, E, K = 12, 10, 6, 2  # d_model, expert d_ff, experts, top-k


@pytest.fixture
def float64_router(monkeypatch):
    """Make Transformers' float32 casts of the router logits keep float64 (they are exact otherwise)."""
    real_float, real_softmax = torch.Tensor.float, torch.nn.functional.softmax
    keep64 = lambda t, *a, **k: t if t.dtype == torch.float64 else real_float(t, *a, **k)  # noqa: E731
    monkeypatch.setattr(torch.Tensor, "float", keep64)

    def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002  (torch's argument name)
        keep = dtype == torch.float32 and input.dtype == torch.float64
        return real_softmax(input, dim=dim, dtype=None if keep else dtype)

    monkeypatch.setattr(torch.nn.functional, "softmax", softmax)


def _set(param, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(np.ascontiguousarray(value)))


def mixtral_layout(block, p, router):
    """Mixtral / Qwen-MoE storage: router weight (E, D); gate_up_proj (E, 2F, D) = [gate; up] applied by
    F.linear (x W^T); down_proj (E, D, F). Returns a function reading the torch grads in our layout."""
    _set(router.weight, p["w_router"].T)
    _set(block.experts.gate_up_proj, pack_gate_up(p["w_gate"], p["w_up"], layout="concat").transpose(0, 2, 1))
    _set(block.experts.down_proj, p["w_down"].transpose(0, 2, 1))

    def grads():
        gate, up = unpack_gate_up(block.experts.gate_up_proj.grad.numpy().transpose(0, 2, 1), layout="concat")
        return {"w_router": router.weight.grad.numpy().T, "w_gate": gate, "w_up": up,
                "w_down": block.experts.down_proj.grad.numpy().transpose(0, 2, 1)}  # fmt: skip

    return grads


def mixtral(p, **_):
    config = transformers.MixtralConfig(hidden_size=D, intermediate_size=F, num_local_experts=E, num_experts_per_tok=K,
                                        experts_implementation="eager")  # fmt: skip
    block = MixtralSparseMoeBlock(config).double().eval()
    return block, mixtral_layout(block, p, block.gate)


def qwen3(p, norm_topk_prob):
    config = transformers.Qwen3MoeConfig(hidden_size=D, moe_intermediate_size=F, num_experts=E, num_experts_per_tok=K,
                                         norm_topk_prob=norm_topk_prob, experts_implementation="eager")  # fmt: skip
    block = Qwen3MoeSparseMoeBlock(config).double().eval()
    return block, mixtral_layout(block, p, block.gate)


def qwen2(p, norm_topk_prob):
    s = p["shared"]
    config = transformers.Qwen2MoeConfig(hidden_size=D, moe_intermediate_size=F, num_experts=E, num_experts_per_tok=K,
                                         shared_expert_intermediate_size=s["w_up"].shape[1],
                                         norm_topk_prob=norm_topk_prob, experts_implementation="eager")  # fmt: skip
    block = Qwen2MoeSparseMoeBlock(config).double().eval()
    routed = mixtral_layout(block, p, block.gate)
    mlp = block.shared_expert
    for name, w in (("gate_proj", "w_gate"), ("up_proj", "w_up"), ("down_proj", "w_down")):
        _set(getattr(mlp, name).weight, s[w].T)  # nn.Linear stores (out, in)
    _set(block.shared_expert_gate.weight, p["w_shared_gate"].T)

    def grads():
        shared = {w: getattr(mlp, name).weight.grad.numpy().T
                  for name, w in (("gate_proj", "w_gate"), ("up_proj", "w_up"), ("down_proj", "w_down"))}  # fmt: skip
        return {**routed(), "shared": shared, "w_shared_gate": block.shared_expert_gate.weight.grad.numpy().T}

    return block, grads


def gpt_oss(p, **_):
    """GptOssMLP: router weight (E, D) + bias; gate_up_proj (E, D, 2F) and its bias (E, 2F) interleaved
    (gate 0::2, up 1::2), applied as x W; down_proj (E, F, D) and bias (E, D)."""
    config = transformers.GptOssConfig(hidden_size=D, intermediate_size=F, num_local_experts=E, num_experts_per_tok=K,
                                       experts_implementation="eager")  # fmt: skip
    block = GptOssMLP(config).double().eval()
    ex = block.experts
    _set(block.router.weight, p["w_router"].T)
    _set(block.router.bias, p["b_router"])
    _set(ex.gate_up_proj, pack_gate_up(p["w_gate"], p["w_up"]))
    _set(ex.gate_up_proj_bias, pack_gate_up(p["b_gate"], p["b_up"]))
    _set(ex.down_proj, p["w_down"])
    _set(ex.down_proj_bias, p["b_down"])

    def grads():
        w_gate, w_up = unpack_gate_up(ex.gate_up_proj.grad.numpy())
        b_gate, b_up = unpack_gate_up(ex.gate_up_proj_bias.grad.numpy())
        return {"w_router": block.router.weight.grad.numpy().T, "b_router": block.router.bias.grad.numpy(),
                "w_gate": w_gate, "w_up": w_up, "b_gate": b_gate, "b_up": b_up, "w_down": ex.down_proj.grad.numpy(),
                "b_down": ex.down_proj_bias.grad.numpy()}  # fmt: skip

    return block, grads


# name -> (builder, our variant, init options, moe_forward options, input scale)
BLOCKS = {
    "mixtral": (mixtral, "swiglu", {}, dict(routing="softmax_topk", normalize=True), 1.0),
    "qwen3 norm_topk_prob": (qwen3, "swiglu", {}, dict(routing="softmax_topk", normalize=True), 1.0),
    "qwen3": (qwen3, "swiglu", {}, dict(routing="softmax_topk", normalize=False), 1.0),
    "qwen2 shared expert": (qwen2, "swiglu", dict(n_shared=1, shared_d_ff=14, shared_gate=True),
                            dict(routing="softmax_topk", normalize=False), 1.0),
    "gpt-oss": (gpt_oss, "swiglu_oss", dict(bias=True, router_bias=True), dict(routing="topk_softmax"), 4.0),
}  # fmt: skip


def rel(got, ref) -> float:
    return float(np.max(np.abs(np.asarray(got) - ref)) / np.max(np.abs(ref)))


def run_both(name, rng):
    build, variant, init_kw, fwd_kw, scale = BLOCKS[name]
    p = init_moe_params(rng, D, F, E, variant, **init_kw)
    block, torch_grads = build(p, norm_topk_prob=fwd_kw.get("normalize", True))
    x = scale * rng.standard_normal((2, 9, D))  # (B, T, D); gpt-oss: pre-activations beyond the clamps
    dy = rng.standard_normal(x.shape)  # random upstream gradient
    y, cache = moe_forward(x, p, variant, top_k=K, **fwd_kw)
    grads = moe_backward(dy, cache)
    x_t = torch.tensor(x, requires_grad=True)
    out = block(x_t)
    y_t = out[0] if isinstance(out, tuple) else out  # GptOssMLP returns (hidden, router_scores)
    (y_t * torch.tensor(dy)).sum().backward()
    return y, grads, y_t.detach().numpy(), {"x": x_t.grad.numpy(), **torch_grads()}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_outputs_and_gradients_equal_transformers(name, rng, float64_router):
    y, grads, y_hf, grads_hf = run_both(name, rng)
    assert rel(y, y_hf) <= 1e-12
    assert sorted(grads_hf) == sorted(grads)  # every weight compared
    for k, g in grads_hf.items():
        for sub, ours in (grads[k].items() if k == "shared" else [(None, grads[k])]):
            assert rel(ours, g[sub] if sub else g) <= 1e-12, (k, sub)


def test_mixtral_router_casts_to_float32_without_the_fixture(rng):
    y, _, y_hf, _ = run_both("mixtral", rng)
    assert 1e-12 < rel(y, y_hf) <= 1e-6  # float32 routing weights (softmax of .float() logits), nothing more


def test_load_balancing_loss_equals_transformers(rng, float64_router):
    """Transformers divides the top-k counts by T in float32: T = 32 keeps f_e = count / T exact."""
    logits = 2.0 * rng.standard_normal((32, E))  # (T, E)
    loss, cache = load_balancing_loss(logits, K)
    l_t = torch.tensor(logits, requires_grad=True)
    loss_hf = load_balancing_loss_func((l_t,), num_experts=E, top_k=K)
    loss_hf.backward()
    assert loss == pytest.approx(loss_hf.item(), rel=1e-14)
    assert rel(load_balancing_loss_backward(1.0, cache)["router_logits"], l_t.grad.numpy()) <= 1e-12
