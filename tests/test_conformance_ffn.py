"""check_ffn: correct implementations conform (a real PyTorch module among them), planted bugs are caught."""

import numpy as np
import pytest
from conformance_candidates import one_torch_thread  # noqa: F401  (a fixture)

from refimpl import FFN_VARIANTS, ffn_backward, ffn_forward
from refimpl.conformance import assert_conforms, check_ffn, round_to

SMALL = dict(d_model=24, d_ff=37, n_tokens=13, seeds=(0, 1))


def numpy_ffn(variant, dtype, *, gelu="erf", swap_gate_up=False, bug=None):
    """A candidate: the float64 reference on the given inputs, results rounded to ``dtype``.

    ``swap_gate_up`` reads the packed [gate; up] matrix as [up; gate]; ``bug`` plants "wrong-row" (dx of token
    0 replaced by token 1's) or "dx-scale" (dx times 1.01).
    """

    def weights(params):
        p = {k: a.astype(np.float64) for k, a in params.items()}
        if swap_gate_up:
            p["w_gate"], p["w_up"] = p["w_up"], p["w_gate"]
        return p

    def fn(x, params):
        y, _ = ffn_forward(x.astype(np.float64), weights(params), variant, gelu=gelu)
        return round_to(y, dtype).astype(np.float32)

    def backward(x, params, dy):
        _, cache = ffn_forward(x.astype(np.float64), weights(params), variant, gelu=gelu)
        grads = ffn_backward(dy.astype(np.float64), cache)
        if swap_gate_up:
            grads["w_gate"], grads["w_up"] = grads["w_up"], grads["w_gate"]
        dx = grads["x"]
        if bug == "wrong-row":
            dx[..., 0, :] = dx[..., 1, :] if dx.shape[-2] > 1 else 0.0
        if bug == "dx-scale":
            grads["x"] = dx * 1.01
        return {k: round_to(g, dtype).astype(np.float32) for k, g in grads.items()}

    return fn, backward


@pytest.mark.parametrize("variant", sorted(FFN_VARIANTS))  # the paper's eight and gpt-oss's clamped SwiGLU
def test_rounded_reference_conforms_in_bf16(variant):
    fn, backward = numpy_ffn(variant, "bf16")
    report = assert_conforms(check_ffn(fn, variant, dtype="bf16", backward=backward, **SMALL))
    assert set(report.tensors()) == {"y", "dx", "dw_up", "dw_down"} | (
        {"dw_gate"} if "w_gate" in FFN_VARIANTS[variant].param_names else set()
    )
    assert report.kinds() == ["random", "act-tail", "decode"]


@pytest.mark.parametrize("variant, dtype", [("swiglu", "bf16"), ("geglu", "fp32"), ("reglu", "fp16")])
def test_swapped_gate_up_packing_is_caught(variant, dtype):
    fn, backward = numpy_ffn(variant, dtype, swap_gate_up=True)
    report = check_ffn(fn, variant, dtype=dtype, backward=backward, **SMALL)
    assert not report.passed
    assert all(not r.passed for r in report.results if r.tensor == "y")  # O(1) wrong in every case
    assert report.worst("random", "y").max_error > 0.1


@pytest.mark.parametrize("variant", ["gelu", "geglu"])
def test_tanh_gelu_declared_as_erf_is_caught_in_fp32(variant):
    fn, backward = numpy_ffn(variant, "fp32", gelu="tanh")
    report = check_ffn(fn, variant, dtype="fp32", backward=backward, gelu="erf", **SMALL)
    tail = report.worst("act-tail", "y")
    assert not tail.passed and 1e-5 < tail.max_error < 1e-2 and tail.ratio > 100
    honest = check_ffn(fn, variant, dtype="fp32", backward=backward, gelu="tanh", **SMALL)
    assert honest.passed, honest


def test_tanh_gelu_is_below_bf16_resolution():
    """The 4.7e-4 erf/tanh gap is a fraction of a bf16 ulp: the rule (rightly) cannot see it there."""
    fn, backward = numpy_ffn("geglu", "bf16", gelu="tanh")
    assert check_ffn(fn, "geglu", dtype="bf16", backward=backward, gelu="erf", **SMALL).passed


def test_gradient_written_to_the_wrong_row_is_caught_in_bf16():
    fn, backward = numpy_ffn("swiglu", "bf16", bug="wrong-row")
    report = check_ffn(fn, "swiglu", dtype="bf16", backward=backward, **SMALL)
    failed = {(r.case.split(".")[0], r.tensor) for r in report.failures}
    assert failed == {(kind, "dx") for kind in ("random", "act-tail", "decode")}


def test_dx_scaled_by_1_01_is_caught_in_fp32():
    fn, backward = numpy_ffn("swiglu", "fp32", bug="dx-scale")
    report = check_ffn(fn, "swiglu", dtype="fp32", backward=backward, **SMALL)
    assert {r.tensor for r in report.failures} == {"dx"}
    assert min(r.ratio for r in report.failures) > 100
    with pytest.raises(AssertionError, match=r"dx .*FAIL"):
        assert_conforms(report)


def test_forward_only_checks_y_alone():
    fn, _ = numpy_ffn("relu", "fp16")
    report = check_ffn(fn, "relu", dtype="fp16", **SMALL)
    assert report.passed and report.tensors() == ["y"] and len(report.results) == 3 * 2


def test_sizes_default_to_non_block_multiples():
    seen = {}

    def fn(x, params):
        seen["x"], seen["w_up"] = x.shape, params["w_up"].shape
        return np.zeros(x.shape, np.float32)

    check_ffn(fn, "swiglu", dtype="fp32", seeds=(0,))
    assert seen["w_up"] == (64, 203) and seen["x"][-1] == 64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="swigloo"), "variant must be one of"),
        (dict(dtype="int8"), "dtype must be one of"),
        (dict(fn=None), "fn must be a callable"),
        (dict(gelu="exact"), "gelu must be one of"),
        (dict(d_ff=0), "d_ff must be a positive integer"),
        (dict(seeds=()), "seeds must be"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    fn, _ = numpy_ffn("swiglu", "fp32")
    args = dict(fn=fn, variant="swiglu", dtype="fp32", **SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        check_ffn(args.pop("fn"), args.pop("variant"), **args)


def test_bad_candidate_results_are_reported_clearly():
    with pytest.raises(ValueError, match=r"candidate's 'y' .* must have shape"):
        check_ffn(lambda x, p: np.zeros(3, np.float32), "swiglu", dtype="fp32", **SMALL)
    with pytest.raises(ValueError, match="fn\\(\\) must be a NumPy array"):
        check_ffn(lambda x, p: x.tolist(), "swiglu", dtype="fp32", **SMALL)
    fn, _ = numpy_ffn("swiglu", "fp32")
    with pytest.raises(ValueError, match=r"missing \['w_gate'\]"):
        check_ffn(
            fn, "swiglu", dtype="fp32", backward=lambda x, p, dy: {"x": x, "w_up": 1, "w_down": 1}, **SMALL
        )


# --- a real peer: a PyTorch SwiGLU module (LLaMA's layout, nn.Linear weights stored (out, in)) ------------


def _torch_swiglu(torch_dtype):
    torch = pytest.importorskip("torch")

    class SwiGLU(torch.nn.Module):
        def __init__(self, d_model, d_ff):
            super().__init__()
            self.w1 = torch.nn.Linear(d_model, d_ff, bias=False)  # gate
            self.w3 = torch.nn.Linear(d_model, d_ff, bias=False)  # up
            self.w2 = torch.nn.Linear(d_ff, d_model, bias=False)  # down

        def forward(self, x):
            return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))

    def tensor(a):  # exact: the values are representable in torch_dtype
        return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch_dtype)

    def module(params):
        d_model, d_ff = params["w_up"].shape
        m = SwiGLU(d_model, d_ff).to(torch_dtype)
        with torch.no_grad():
            for lin, key in ((m.w1, "w_gate"), (m.w3, "w_up"), (m.w2, "w_down")):
                lin.weight.copy_(tensor(params[key]).T)
        return m

    def fn(x, params):
        with torch.no_grad():
            return module(params)(tensor(x)).float().numpy()

    def backward(x, params, dy):
        m, xt = module(params), tensor(x).requires_grad_(True)
        m(xt).backward(tensor(dy))
        grads = {"w_gate": m.w1.weight.grad, "w_up": m.w3.weight.grad, "w_down": m.w2.weight.grad}
        return {"x": xt.grad.float().numpy(), **{k: g.T.float().numpy() for k, g in grads.items()}}

    return fn, backward


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.usefixtures("one_torch_thread")
def test_pytorch_swiglu_module_conforms(dtype):
    torch = pytest.importorskip("torch")
    fn, backward = _torch_swiglu(
        {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    )
    report = assert_conforms(
        check_ffn(fn, "swiglu", dtype=dtype, backward=backward)
    )  # default sizes, 3 seeds
    assert len(report.results) == 3 * 3 * 5
    # PyTorch computes each op in float32 and rounds once, like the baseline: same error, ratio near 1
    assert max(r.ratio for r in report.results) < 3.0


def test_act_tail_case_covers_the_band_where_erf_and_tanh_gelu_differ():
    from refimpl.conformance import ffn_cases, number_format

    case = ffn_cases("geglu", number_format("fp32"), d_model=64, d_ff=203, n_tokens=113, seeds=(0,))[1]
    assert case.name == "act-tail.s0"
    a = case.inputs["x"].astype(np.float64) @ case.inputs["w_gate"].astype(np.float64)  # (1, T, F)
    band = np.mean((np.abs(a) >= 2.0) & (np.abs(a) <= 2.7))
    assert 0.10 < band < 0.20  # N(0, 2.35^2): 2 (Phi(2.7 / 2.35) - Phi(2 / 2.35)) = 0.144


# --- gpt-oss's clamped SwiGLU and biases ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_swiglu_oss_with_biases_conforms_and_its_clamps_are_exercised(dtype):
    from conformance_candidates import ffn

    def backward(x, p, dy):  # the reference's gradients, rounded (the forward is the test's own formulas)
        _, cache = ffn_forward(x.astype(np.float64), {k: a.astype(np.float64) for k, a in p.items()}, "swiglu_oss")
        return {k: round_to(g, dtype) for k, g in ffn_backward(dy.astype(np.float64), cache).items()}

    report = assert_conforms(check_ffn(ffn(dtype, "swiglu_oss"), "swiglu_oss", dtype=dtype, backward=backward,
                                       bias=True, **SMALL))  # fmt: skip
    assert set(report.tensors()) == {"y", "dx", "dw_gate", "dw_up", "dw_down", "db_gate", "db_up", "db_down"}
    from refimpl.conformance import ffn_cases, number_format

    case = ffn_cases("swiglu_oss", number_format(dtype), d_model=64, d_ff=203, n_tokens=113, seeds=(0,))[1]
    x, w_gate = (case.inputs[k].astype(np.float64) for k in ("x", "w_gate"))
    assert case.name == "act-tail.s0" and 0.01 < np.mean(x @ w_gate > 7.0) < 0.05  # the gate clamp is active


def test_swiglu_oss_options_reach_the_golden_values():
    from conformance_candidates import ffn

    # the helper computes gpt-oss's defaults: against alpha=1.0, limit=3.0 it must fail by O(1)
    report = check_ffn(ffn("fp32", "swiglu_oss"), "swiglu_oss", dtype="fp32", alpha=1.0, limit=3.0, **SMALL)
    assert not report.passed and "alpha=1, limit=3" in report.subject
    with pytest.raises(ValueError, match="alpha does not apply to variant 'swiglu'"):
        check_ffn(ffn("fp32", "swiglu"), "swiglu", dtype="fp32", alpha=1.0, **SMALL)
    with pytest.raises(ValueError, match="limit must be a positive finite real number"):
        check_ffn(ffn("fp32", "swiglu_oss"), "swiglu_oss", dtype="fp32", limit=-1.0, **SMALL)
