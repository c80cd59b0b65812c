"""Candidates for the conformance tests, written here from the formulas (not with refimpl's ops): correct ones
and ones with a planted bug, each the float64 computation rounded to the candidate's format at the end.

``ffn(dtype, variant, bug=...)``, ``attention(dtype, bug=...)`` and ``moe(dtype, bug=...)`` return a forward
``fn`` in the kit's calling convention (refimpl.conformance.check); ``bug`` is a key of
refimpl.conformance.MISTAKES or one of "zeros", "other-case", "scaled-output". Shape legend as refimpl's.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from refimpl.conformance import round_to


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (restored after): on a busy machine torch's spinning worker threads
    make these small products 10-20 times slower."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def _out(y, dtype):
    return round_to(y, dtype).astype(np.float32)


def _act(name, a, *, gelu="erf", alpha=1.702, limit=7.0, plus_one=True, b=None):
    """h for a gated pair (a, b) or act(a) alone (b None)."""
    if name == "swish":
        g = a / (1.0 + np.exp(-a))
    elif name == "gelu":
        if gelu == "erf":
            g = 0.5 * a * (1.0 + erf(a / np.sqrt(2.0)))
        else:
            g = 0.5 * a * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (a + 0.044715 * a**3)))
    elif name == "oss":
        gate = np.minimum(a, limit)
        g = gate / (1.0 + np.exp(-alpha * gate))
        return g * (np.clip(b, -limit, limit) + (1.0 if plus_one else 0.0))
    else:
        raise ValueError(name)
    return g if b is None else g * b


def _unpack(w_gate, w_up, written, read):
    """Gate and up packed as ``written`` ("interleaved": gate 0::2, up 1::2; "concat": [gate | up]), split as
    ``read`` (last axis)."""
    packed = (np.stack([w_gate, w_up], axis=-1).reshape(*w_gate.shape[:-1], -1) if written == "interleaved"
              else np.concatenate([w_gate, w_up], axis=-1))  # fmt: skip
    half = packed.shape[-1] // 2
    return (packed[..., 0::2], packed[..., 1::2]) if read == "interleaved" else (packed[..., :half], packed[..., half:])


def ffn_apply(x, p, variant, *, gelu="erf", bug=None):
    """y = FFN(x) (x (M, D)), float64, with ``bug`` planted. Biases when present."""
    p = {k: a.astype(np.float64) for k, a in p.items()}
    zero = 0.0
    if bug == "swapped-gate-up":
        p["w_gate"], p["w_up"] = p["w_up"], p["w_gate"]
        if "b_gate" in p:
            p["b_gate"], p["b_up"] = p["b_up"], p["b_gate"]
    for layouts, key in ((("interleaved", "concat"), "interleaved-read-as-concat"),
                         (("concat", "interleaved"), "concat-read-as-interleaved")):  # fmt: skip
        if bug == key:
            p["w_gate"], p["w_up"] = _unpack(p["w_gate"], p["w_up"], *layouts)
            if "b_gate" in p:
                p["b_gate"], p["b_up"] = _unpack(p["b_gate"], p["b_up"], *layouts)
    a = x @ p["w_gate"] + p.get("b_gate", zero)  # (M, F)
    b = x @ p["w_up"] + p.get("b_up", zero)  # (M, F)
    if bug == "gelu-flavour":
        gelu = "tanh" if gelu == "erf" else "erf"
    name = {"swiglu": "swish", "geglu": "gelu", "swiglu_oss": "oss"}[variant]
    h = _act(name, a, gelu=gelu, b=b, plus_one=bug != "missing-plus-one")  # (M, F)
    return h @ p["w_down"] + p.get("b_down", zero)  # (M, D)


def ffn(dtype, variant, *, gelu="erf", bug=None):
    def fn(x, params):
        return _out(ffn_apply(x.astype(np.float64).reshape(-1, x.shape[-1]), params, variant, gelu=gelu,
                              bug=bug).reshape(x.shape), dtype)  # fmt: skip

    return fn


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def moe_apply(x, p, variant, *, top_k, routing, normalize, gelu="erf", bug=None):
    """y = MoE(x) (x (T, D)), float64, token-by-token routing written out, with ``bug`` planted."""
    logits = x @ p["w_router"].astype(np.float64) + p.get("b_router", np.zeros(1)).astype(np.float64)  # (T, E)
    n_tokens = len(x)
    y = np.zeros_like(x)  # (T, D)
    if bug == "router-softmax-axis":
        probs_all = _softmax(logits, axis=0)  # over tokens
    for t in range(n_tokens):
        if routing == "topk_softmax":
            chosen = sorted(range(logits.shape[1]), key=lambda e: (-logits[t, e], e))[:top_k]
            if bug == "missing-renormalisation":
                w = _softmax(logits[t])[chosen]
            elif bug == "router-softmax-axis":
                top = np.stack([logits[s][sorted(range(logits.shape[1]), key=lambda e: (-logits[s, e], e))[:top_k]]
                                for s in range(n_tokens)])  # (T, k)  # fmt: skip
                w = _softmax(top, axis=0)[t]
            else:
                w = _softmax(logits[t, chosen])
        else:
            probs = probs_all[t] if bug == "router-softmax-axis" else _softmax(logits[t])
            chosen = sorted(range(len(probs)), key=lambda e: (-probs[e], e))[:top_k]
            w = probs[chosen]
            renorm = normalize != (bug in ("missing-renormalisation", "extra-renormalisation"))
            w = w / w.sum() if renorm else w
        for wj, e in zip(w, chosen, strict=True):
            expert = {k: a[e] for k, a in p.items() if k[0] in "wb" and k not in ("w_router", "b_router",
                                                                                 "w_shared_gate")}  # fmt: skip
            y[t] += wj * ffn_apply(x[t : t + 1], expert, variant, gelu=gelu, bug=bug)[0]
    if "shared" in p:
        s = ffn_apply(x, p["shared"], variant, gelu=gelu, bug=bug)  # (T, D)
        if "w_shared_gate" in p and bug != "shared-gate-ignored":
            s = s / (1.0 + np.exp(-(x @ p["w_shared_gate"].astype(np.float64))))
        y += s
    return y


def moe(dtype, variant, *, top_k, routing, normalize, gelu="erf", bug=None):
    def fn(x, params):
        y = moe_apply(x.astype(np.float64).reshape(-1, x.shape[-1]), params, variant, top_k=top_k,
                      routing=routing, normalize=normalize, gelu=gelu, bug=bug)  # fmt: skip
        return _out(y.reshape(x.shape), dtype)

    return fn


def attention_apply(q, k, v, spec, *, bug=None):
    """out (B, T, N, Dh), float64, K/V repeated to N heads (fine in a test), with ``bug`` planted."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    batch, n_q, n_heads, _ = q.shape
    n_keys, n_kv = k.shape[1], k.shape[2]
    heads = [n % n_kv if bug == "tiled-head-map" else n // (n_heads // n_kv) for n in range(n_heads)]
    s = spec.scale * np.einsum("btnd,bsnd->bnts", q, k[:, :, heads])  # (B, N, T, S)
    if spec.softcap is not None and bug != "softcap-ignored":
        s = spec.softcap * np.tanh(s / spec.softcap)
    mask = spec.mask  # (B, T, S)
    if bug == "top-left-causal":  # query t sees keys j <= t, as torch's is_causal; padding kept
        lengths = np.full(batch, n_keys) if spec.kv_lengths is None else spec.kv_lengths
        j, t = np.arange(n_keys)[None, None, :], np.arange(n_q)[None, :, None]
        mask = (j <= t) & (j < lengths[:, None, None]) & (j > t - (spec.window or n_keys))  # (B, T, S)
    s = np.where(mask[:, None], s, -np.inf)  # (B, N, T, S)
    z = None  # (1, N, 1) sink logits
    if spec.sinks is not None and bug != "sinks-ignored":
        z = spec.sinks.astype(np.float64)[None, :, None]
    m = s.max(axis=-1) if z is None else np.maximum(s.max(axis=-1), z)  # (B, N, T)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m[..., None])  # (B, N, T, S)
    den = e.sum(axis=-1) + (0.0 if z is None else np.exp(z - m))  # (B, N, T)
    num = np.einsum("bnts,bsnd->btnd", e, v[:, :, heads])  # (B, T, N, Dh)
    if bug == "sink-with-value":
        num = num + np.exp(z - m).transpose(0, 2, 1)[..., None]  # the sink's value: a vector of ones
    empty = den.transpose(0, 2, 1) == 0  # (B, T, N)
    out = num / np.where(empty, 1.0, den.transpose(0, 2, 1))[..., None]
    if bug == "fully-masked-rows":
        out = np.where(empty[..., None], v[:, :, heads].mean(axis=1)[:, None], out)  # the mean of V, as JAX
    return out


def attention(dtype, *, bug=None):
    def fn(q, k, v, spec):
        return _out(attention_apply(q, k, v, spec, bug=bug), dtype)

    return fn
