"""check_attention: real peers (torch SDPA, jax.nn.dot_product_attention) and planted bugs."""

import numpy as np
import pytest
from conformance_candidates import one_torch_thread  # noqa: F401  (a fixture)

from refimpl import attention_backward, attention_forward
from refimpl.conformance import assert_conforms, check_attention, round_to

HEADS = dict(n_heads=4, n_kv_heads=2, head_dim=16)  # R = 2 query heads per KV head


def numpy_attention(dtype, *, strided=False, lse=True, nan_when_empty=False, ignore_softcap=False):
    """A candidate: the float64 reference on the given inputs, results rounded to ``dtype``.

    ``strided`` plants the strided head map (query head n reads KV head n % K, as np.tile repeats heads);
    ``nan_when_empty`` returns NaN for fully masked rows (a plain softmax's 0/0).
    """

    def run(q, k, v, spec):
        q, k, v = (a.astype(np.float64) for a in (q, k, v))
        group = q.shape[2] // k.shape[2]
        if strided:
            k, v = np.tile(k, (1, 1, group, 1)), np.tile(v, (1, 1, group, 1))  # heads h0, h1, h0, h1
        out, cache = attention_forward(
            q,
            k,
            v,
            causal=spec.causal,
            kv_lengths=spec.kv_lengths,
            window=spec.window,
            softcap=None if ignore_softcap else spec.softcap,
            scale=spec.scale,
        )
        return out, cache, group

    def fn(q, k, v, spec):
        out, cache, _ = run(q, k, v, spec)
        if nan_when_empty:
            out = np.where(np.isneginf(cache.lse)[..., None], np.nan, out)  # (B, T, N, Dh)
        out = round_to(out, dtype).astype(np.float32)
        return (out, round_to(cache.lse, dtype).astype(np.float32)) if lse else out

    def backward(q, k, v, spec, dout):
        _, cache, group = run(q, k, v, spec)
        grads = attention_backward(dout.astype(np.float64), cache)
        if strided:  # fold the tiled heads back: KV head g received the gradient of copies g, g + K, ...
            for n in ("k", "v"):
                b, s, _, d = grads[n].shape
                grads[n] = grads[n].reshape(b, s, group, -1, d).sum(axis=2)
        return {n: round_to(g, dtype).astype(np.float32) for n, g in grads.items()}

    return fn, backward


def _failed_kinds(report, tensor=None):
    return {r.case.split(".")[0] for r in report.failures if tensor is None or r.tensor == tensor}


@pytest.mark.parametrize("dtype, causal", [("bf16", True), ("fp32", False), ("fp8_e4m3", True)])
def test_rounded_reference_conforms(dtype, causal):
    fn, backward = numpy_attention(dtype)
    report = assert_conforms(
        check_attention(fn, **HEADS, dtype=dtype, causal=causal, backward=backward, seq_len=20, seeds=(0, 1))
    )
    assert report.kinds() == ["prefill", "chunk", "decode", "padded", "ortho-v"]
    assert report.tensors() == ["out", "lse", "dq", "dk", "dv"]
    assert report.result("padded.s0", "lse").skipped > 0  # fully masked rows: lse -inf is not compared


def test_window_and_softcap_are_checked():
    fn, backward = numpy_attention("fp32")
    kw = dict(
        **HEADS, dtype="fp32", causal=True, backward=backward, seq_len=20, seeds=(0,), window=5, softcap=2.0
    )
    assert check_attention(fn, **kw).passed
    fn, backward = numpy_attention("fp32", ignore_softcap=True)
    assert {r.tensor for r in check_attention(fn, **kw).failures} >= {"out", "lse"}


def test_strided_head_map_is_caught_by_O1_errors():
    fn, backward = numpy_attention("bf16", strided=True)
    report = check_attention(
        fn, **HEADS, dtype="bf16", causal=True, backward=backward, seq_len=20, seeds=(0,)
    )
    ortho = report.result("ortho-v.s0", "out")
    assert not ortho.passed and ortho.max_error > 1.0  # each head's values point their own way: O(1) off
    assert not report.result("prefill.s0", "dk").passed


def test_nan_for_fully_masked_rows_fails_even_where_tolerances_are_loose():
    fn, _ = numpy_attention("fp8_e5m2", nan_when_empty=True, lse=False)
    report = check_attention(fn, **HEADS, dtype="fp8_e5m2", causal=True, seq_len=20, seeds=(0,))
    assert _failed_kinds(report) == {"padded"} and report.likely_causes == ("fully-masked-rows",)
    assert report.result("padded.s0", "out").nonfinite > 0 and "FAIL (NaN/Inf)" in report.table()


def test_bad_arguments_name_themselves():
    fn, _ = numpy_attention("fp32")
    with pytest.raises(ValueError, match="n_kv_heads must divide"):
        check_attention(fn, n_heads=4, n_kv_heads=3, dtype="fp32", causal=True)
    with pytest.raises(ValueError, match="causal must be a bool"):
        check_attention(fn, **HEADS, dtype="fp32", causal="yes")
    with pytest.raises(ValueError, match="seq_len must be at least 4"):
        check_attention(fn, **HEADS, dtype="fp32", causal=True, seq_len=3)
    with pytest.raises(ValueError, match=r"must return out or \(out, lse\)"):
        check_attention(lambda q, k, v, s: (q, q, q), **HEADS, dtype="fp32", causal=True, seq_len=8)


# --- torch.nn.functional.scaled_dot_product_attention (layout (B, N, T, Dh): transpose in and out) ---------


def _sdpa(torch_dtype, *, explicit_mask: bool):
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run(q, k, v, spec, dout=None):
        qt, kt, vt = (
            torch.from_numpy(a.astype(np.float32)).to(torch_dtype).transpose(1, 2).requires_grad_()
            for a in (q, k, v)
        )
        if explicit_mask:  # bottom-right causal and padding, resolved by the kit: (B, 1, T, S)
            out = sdpa(
                qt, kt, vt, attn_mask=torch.from_numpy(spec.mask)[:, None], scale=spec.scale, enable_gqa=True
            )
        else:  # torch's own causal flag: top-left aligned, and blind to kv_lengths
            out = sdpa(qt, kt, vt, is_causal=spec.causal, scale=spec.scale, enable_gqa=True)
        if dout is None:
            return out.transpose(1, 2).detach().float().numpy()
        out.backward(torch.from_numpy(dout.astype(np.float32)).to(torch_dtype).transpose(1, 2))
        return {n: t.grad.transpose(1, 2).float().numpy() for n, t in zip("qkv", (qt, kt, vt), strict=True)}

    return run, run


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.usefixtures("one_torch_thread")
def test_torch_sdpa_with_explicit_bottom_right_mask_conforms(dtype):
    torch = pytest.importorskip("torch")
    fn, backward = _sdpa({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype], explicit_mask=True)
    report = check_attention(fn, **HEADS, dtype=dtype, causal=True, backward=backward)  # S = 113, T = 37
    assert_conforms(report)
    assert report.tensors() == ["out", "dq", "dk", "dv"]  # SDPA offers no lse
    assert report.result("padded.s0", "out").passed  # torch >= 2.5 gives 0 for fully masked rows


@pytest.mark.usefixtures("one_torch_thread")
def test_torch_sdpa_is_causal_with_t_not_s_does_not_conform():
    torch = pytest.importorskip("torch")
    fn, backward = _sdpa(torch.float32, explicit_mask=False)
    report = check_attention(fn, **HEADS, dtype="fp32", causal=True, backward=backward, seeds=(0,))
    assert not report.passed
    assert _failed_kinds(report, "out") == {"chunk", "decode", "padded"}  # T != S (and padding)
    assert report.worst("chunk", "out").max_error > 0.1  # top-left alignment: O(1), not rounding
    assert report.worst("prefill", "out").passed and report.worst("ortho-v", "dq").passed  # T == S agrees
    # tried as a new user would: the report says why, not only which cases fail
    assert report.likely_causes == ("top-left-causal",)
    assert "likely cause: causal mask aligned top-left (torch SDPA is_causal=True" in str(report)


# --- jax.nn.dot_product_attention: softmax always in fp32; a fully masked row gives the mean of V ---------


def _jax_attention(jnp_dtype):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.jit
    def forward(q, k, v, mask, scale):
        return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=scale)

    @jax.jit
    def grads(q, k, v, mask, scale, dout):
        _, vjp = jax.vjp(lambda q, k, v: forward(q, k, v, mask, scale), q, k, v)
        return vjp(dout)

    def arr(a):
        return jnp.asarray(a.astype(np.float64), dtype=jnp_dtype)

    def fn(q, k, v, spec):
        return np.asarray(forward(arr(q), arr(k), arr(v), spec.mask[:, None], spec.scale)).astype(np.float64)

    def backward(q, k, v, spec, dout):
        g = grads(arr(q), arr(k), arr(v), spec.mask[:, None], spec.scale, arr(dout))
        return {n: np.asarray(t).astype(np.float64) for n, t in zip("qkv", g, strict=True)}

    return fn, backward


def test_jax_fully_masked_rows_show_up_as_mean_of_v():
    jax = pytest.importorskip("jax")
    fn, backward = _jax_attention(jax.numpy.float32)
    report = check_attention(
        fn, **HEADS, dtype="fp32", causal=True, backward=backward, seq_len=20, seeds=(0,)
    )
    assert _failed_kinds(report) == {"padded"}  # everything else conforms in fp32
    assert {r.tensor for r in report.failures} == {"out", "dv"}  # dv: the empty rows' uniform weights
    padded = report.result("padded.s0", "out")
    assert padded.max_error > 0.05 and padded.nonfinite == 0
    assert report.likely_causes == ("fully-masked-rows",)


def test_jax_fp32_softmax_shows_up_in_fp64():
    jax = pytest.importorskip("jax")
    fn, _ = _jax_attention(jax.numpy.float64)
    if hasattr(jax, "enable_x64"):
        x64 = jax.enable_x64(True)
    else:  # jax < 0.6
        from jax.experimental import enable_x64 as x64_context

        x64 = x64_context()
    with x64:
        report = check_attention(fn, **HEADS, dtype="fp64", causal=True, seq_len=20, seeds=(0,))
    prefill = report.result("prefill.s0", "out")
    assert not prefill.passed
    assert 1e-9 < prefill.max_error < 1e-5  # fp32-sized errors on fp64 inputs ...
    assert prefill.baseline_error < 1e-13  # ... where a naive fp64 implementation is exact to 1e-15
