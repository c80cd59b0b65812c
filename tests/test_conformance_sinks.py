"""check_attention with sinks (gpt-oss): the naive baseline equals the reference in fp64 under every mask, the
rounded reference conforms, and a PyTorch attention with sinks written as Transformers' gpt-oss eager attention
(sink column concatenated to the scores, softmax, dropped) conforms in fp32 and bf16 on full and sliding layers."""

import math

import numpy as np
import pytest
from conformance_candidates import one_torch_thread  # noqa: F401  (a fixture)

from refimpl import attention_backward, attention_forward
from refimpl.conformance import assert_conforms, check_attention, number_format, round_to
from refimpl.conformance.baseline import naive_attention
from refimpl.masks import attention_mask

HEADS = dict(n_heads=4, n_kv_heads=2, head_dim=16)
MASKS = [
    dict(causal=True),
    dict(causal=False),
    dict(causal=True, window=5),
    dict(causal=False, window=3, softcap=1.5),
    dict(causal=True, softcap=2.0, window=4),
]


@pytest.mark.parametrize("mask", MASKS)
def test_baseline_with_sinks_in_fp64_is_the_reference(mask, rng):
    q = rng.standard_normal((2, 5, 6, 8))  # (B, T, N, Dh)
    k = rng.standard_normal((2, 11, 3, 8))  # (B, S, K, Dh)
    v, z = rng.standard_normal(k.shape), rng.standard_normal(6)  # (B, S, K, Dh), (N,)
    dout = rng.standard_normal(q.shape)  # (B, T, N, Dh)
    lengths = np.array([11, 0])  # batch row 1 fully masked: all mass on the sink
    out, cache = attention_forward(q, k, v, sinks=z, kv_lengths=lengths, **mask)
    gold = {"out": out, "lse": cache.lse, **{"d" + n: g for n, g in attention_backward(dout, cache).items()}}
    full = attention_mask(5, 11, causal=mask["causal"], kv_lengths=lengths, window=mask.get("window"))  # (B, T, S)
    base = naive_attention(q, k, v, full, 1 / math.sqrt(8), number_format("fp64"), dout=dout,
                           softcap=mask.get("softcap"), sinks=z)  # fmt: skip
    assert set(base) == set(gold) and "dsinks" in gold
    np.testing.assert_array_equal(base["lse"][1], np.broadcast_to(z, (5, 6)))  # empty rows: lse = z_n
    for name in gold:
        np.testing.assert_allclose(base[name], gold[name], rtol=1e-12, atol=1e-12, err_msg=name)


def _rounded_reference(dtype):
    def run(q, k, v, spec):
        return attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=spec.causal,
                                 kv_lengths=spec.kv_lengths, window=spec.window, softcap=spec.softcap,
                                 scale=spec.scale, sinks=spec.sinks.astype(np.float64))  # fmt: skip

    def fn(q, k, v, spec):
        out, cache = run(q, k, v, spec)
        return round_to(out, dtype), round_to(cache.lse, dtype)

    def backward(q, k, v, spec, dout):
        grads = attention_backward(dout.astype(np.float64), run(q, k, v, spec)[1])
        return {n: round_to(g, dtype) for n, g in grads.items()}

    return fn, backward


@pytest.mark.parametrize("mask", MASKS)
def test_rounded_reference_with_sinks_conforms_under_every_mask(mask):
    fn, backward = _rounded_reference("bf16")
    report = check_attention(fn, **HEADS, dtype="bf16", backward=backward, seq_len=20, seeds=(0,), sinks=True,
                             **mask)  # fmt: skip
    assert_conforms(report)
    assert report.tensors() == ["out", "lse", "dq", "dk", "dv", "dsinks"] and "sinks=yes" in report.subject
    padded = report.result("padded.s0", "lse")
    assert padded.skipped == 0  # with sinks a fully masked row's lse is z_n: finite, judged


def test_sinks_take_a_sizable_share_of_each_row():
    from refimpl.conformance import attention_cases

    case = attention_cases(number_format("fp32"), **HEADS, seq_len=30, batch=2, causal=False, seeds=(0,),
                           sinks=True)[0]  # fmt: skip
    p_sink = np.exp(case.inputs["sinks"].astype(np.float64) - case.golden["lse"])  # (B, T, N)
    assert 0.1 < p_sink.min() and p_sink.max() < 0.8  # ignoring or mis-valuing the sink is O(1) wrong


def _torch_sinks(torch_dtype):
    torch = pytest.importorskip("torch")

    def forward(q, k, v, sinks, spec):
        """Transformers' gpt-oss eager attention: (B, N, T, Dh) layout, repeat_interleave for GQA."""
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, N, S, Dh)
        scores = (q @ k.transpose(-1, -2)) * spec.scale  # (B, N, T, S)
        if spec.softcap is not None:
            scores = spec.softcap * torch.tanh(scores / spec.softcap)
        scores = scores.masked_fill(~torch.from_numpy(spec.mask)[:, None], float("-inf"))
        sink = sinks.reshape(1, -1, 1, 1).expand(q.shape[0], -1, q.shape[2], 1)  # (B, N, T, 1)
        combined = torch.cat([scores, sink], dim=-1)
        combined = combined - combined.max(dim=-1, keepdim=True).values
        probs = torch.softmax(combined, dim=-1, dtype=combined.dtype)[..., :-1]  # drop the sink's column
        return probs @ v  # (B, N, T, Dh)

    def tensors(q, k, v, spec):
        t = [torch.from_numpy(a.astype(np.float32)).to(torch_dtype).transpose(1, 2) for a in (q, k, v)]
        z = torch.from_numpy(spec.sinks.astype(np.float32)).to(torch_dtype)
        return [a.requires_grad_(True) for a in (*t, z)]

    def fn(q, k, v, spec):
        with torch.no_grad():
            return forward(*tensors(q, k, v, spec), spec).transpose(1, 2).float().numpy()

    def backward(q, k, v, spec, dout):
        qt, kt, vt, zt = tensors(q, k, v, spec)
        out = forward(qt, kt, vt, zt, spec)
        out.backward(torch.from_numpy(dout.astype(np.float32)).to(torch_dtype).transpose(1, 2))
        grads = {n: t.grad.transpose(1, 2).float().numpy() for n, t in zip("qkv", (qt, kt, vt), strict=True)}
        return {**grads, "sinks": zt.grad.float().numpy()}

    return fn, backward


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("window", [None, 16], ids=["full", "sliding"])
@pytest.mark.usefixtures("one_torch_thread")
def test_torch_gpt_oss_attention_with_sinks_conforms(dtype, window):
    torch = pytest.importorskip("torch")
    fn, backward = _torch_sinks({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
    report = check_attention(fn, **HEADS, dtype=dtype, causal=True, backward=backward, seq_len=50, sinks=True,
                             window=window, seeds=(0, 1))  # fmt: skip
    assert_conforms(report)
    assert report.tensors() == ["out", "dq", "dk", "dv", "dsinks"]
