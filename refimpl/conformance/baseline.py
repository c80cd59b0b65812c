"""The naive low-precision baseline: the reference's math in the candidate's format, rounding after each op.

Its error against the float64 golden values measures how much a straightforward implementation in that
format must lose; the pass rule (policy.py) allows a candidate a small multiple of it. "One op" is what a
framework's single kernel does (a matrix product, a product of two tensors, a softmax, its backward):
computed from format-valued operands in the format's accumulator precision -- float32, or float64 for fp64
-- as GPU tensor cores, CPU BLAS and PyTorch's reduced-precision kernels do, and the result rounded once to
the format. For fp32 this is plain float32 arithmetic, every elementwise step and every addition of a sum
rounding (sums accumulate term after term, as a loop does: arith.py); for bf16/fp16/fp8 the float32
internals are far finer than the format and only the final rounding shows. Activations are evaluated in
float64 and rounded once. This mirrors flash-attention's
``attention_ref(..., upcast=False)`` baseline (PyTorch ops in the test dtype).

FFN (refimpl/ffn.py's formulas; every line one rounding; a bias joins its matrix product in one op, as
torch's addmm does):
    a = r(x Wg + bg)   b = r(x Wu + bu)   g = r(act(a))   h = r(g * b)   y = r(h Wd + bd)
    dWd = r(h^T dy)   dh = r(dy Wd^T)   db = r(dh * g)   da = r(r(dh * b) * r(act'(a)))
    dWg = r(x^T da)   dWu = r(x^T db)   dx = r(r(da Wg^T) + r(db Wu^T))   db_* = r(column sums)
    (ungated: act on b). swiglu_oss (gpt-oss): g' = r(min(a, limit)), g = r(swish_alpha(g')),
    val = r(r(clip(b, -limit, limit)) + 1) in place of b; act'(a) = r(swish_alpha'(g')) [a <= limit] and
    db = r(dh * g) [|b| <= limit] (the clamps pass no gradient, as refimpl.ffn).
Attention (refimpl/attention.py's formulas, per KV-head group):
    s = r(r(q k^T) * scale)   [softcap c: u = s, s = r(c tanh(u / c))]
    p = r(softmax(s masked))   out = r(p v)   lse = r(logsumexp(s masked))
    [sinks z: the softmax and lse take exp(z_n) into each row's denominator; p_sink = r(exp(z_n - lse))]
    dP = r(dO v^T)   D = r(rowsum(dO * out))   dS = r(p * (dP - D))     (D as the reference and flash-attn)
    [softcap: dS = r(dS * r(1 - tanh^2(u / c)))]   dS = r(dS * scale)
    dq = r(dS k)   dk = r(dS^T q)   dv = r(p^T dO)   [dz_n = r(-sum over rows of r(p_sink * D))]
The constants scale and c multiply or divide in float64, and tanh and its derivative are evaluated in float64
and rounded once, like the activations: any positive finite scale or softcap (1e-300, 1e300) is then
warning-free, where holding it in float32 would turn it into 0 or inf. Scores beyond the format's range
round to +-inf, as they would in a real kernel, and the softmax then gives NaN: the baseline's error is then
infinite and the rule falls back to the absolute backstop for those tensors (policy.py).
Fully masked rows follow the reference: p = 0, out = 0, lse = -inf (with sinks: lse = z_n, all mass on the
sink), zero gradients. So do masked slots holding garbage (NaN, inf): masked scores and probabilities are set
by selection, non-finite q, k, v entries are replaced by 0 before any product, and a row that sees a
non-finite entry gets NaN output and lse and sends no gradient (the reference's rule,
refimpl/attention_blocks.py).
The MoE baseline (baseline_moe.py) is built from naive_ffn.
"""

from __future__ import annotations

import numpy as np

from ..activations import activation, activation_grad, swish, swish_grad
from ..attention_blocks import cleaned
from ..ffn import ffn_options
from ..variants import get_variant
from .arith import Naive
from .dtypes import NumberFormat


def _hidden(nv: Naive, a, b, v, opts: dict, gelu: str) -> tuple:
    """Forward hidden h = r(act(a) * val) and what the backward needs: (h, act, val, dact, dval_mask)."""
    if "limit" in opts:  # swiglu_oss
        alpha, limit = opts["alpha"], opts["limit"]
        gate = nv.r(np.minimum(a, limit))  # (M, F) the clamped gate, one op
        act = nv.r(swish(gate, alpha))  # (M, F)
        dact = nv.r(swish_grad(gate, alpha) * (a <= limit))  # (M, F) the clamp passes no gradient
        val = nv.r(nv.a(nv.r(np.clip(b, -limit, limit))) + 1)  # (M, F) clip, then + 1: two ops
        return nv.mul(act, val), act, val, dact, np.abs(b) <= limit
    act = nv.r(activation(v.activation, a, gelu_approximate=gelu))  # (M, F)
    dact = nv.r(activation_grad(v.activation, a, gelu_approximate=gelu))  # (M, F)
    return nv.mul(act, b), act, b, dact, None


def naive_ffn(
    x: np.ndarray,
    params: dict,
    variant: str,
    fmt: NumberFormat,
    *,
    dy: np.ndarray | None,
    gelu: str = "erf",
    alpha=None,
    limit=None,
) -> dict:
    """Baseline tensors {"y"} (+ {"dx", "dw_*", "db_*"} when ``dy`` is given), float64 holding format values.

    params: refimpl.ffn's names (biases optional); alpha, limit: swiglu_oss's options (None: defaults).
    """
    v = get_variant(variant)
    opts = ffn_options(v, alpha=alpha, limit=limit)
    nv = Naive(fmt)
    x2 = x.reshape(-1, x.shape[-1])  # (M, D)
    b = nv.affine(x2, params["w_up"], params.get("b_up"))  # (M, F)
    if v.gated:
        a = nv.affine(x2, params["w_gate"], params.get("b_gate"))  # (M, F)
        h, act, val, dact, dval = _hidden(nv, a, b, v, opts, gelu)  # (M, F) each
    else:
        h = nv.r(activation(v.activation, b, gelu_approximate=gelu))  # (M, F)
    y = nv.affine(h, params["w_down"], params.get("b_down"))  # (M, D)
    out = {"y": y.reshape(x.shape)}
    if dy is None:
        return out
    dy2 = dy.reshape(-1, dy.shape[-1])  # (M, D)
    grads = {"w_down": nv.dot("mf,md->fd", h, dy2), "b_down": dy2}  # (F, D); b_down summed below
    dh = nv.dot("md,fd->mf", dy2, params["w_down"])  # (M, F)
    if v.gated:
        db = nv.mul(dh, act)  # (M, F)
        if dval is not None:
            db = np.where(dval, db, 0.0)  # (M, F) the up clamp passes no gradient (selection: exact)
        da = nv.mul(nv.mul(dh, val), dact)  # (M, F)
        grads.update(w_gate=nv.dot("md,mf->df", x2, da), b_gate=da)  # (D, F)
        dx = nv.r(
            nv.a(nv.dot("mf,df->md", da, params["w_gate"])) + nv.a(nv.dot("mf,df->md", db, params["w_up"]))
        )  # (M, D)
    else:
        db = nv.mul(dh, nv.r(activation_grad(v.activation, b, gelu_approximate=gelu)))  # (M, F)
        dx = nv.dot("mf,df->md", db, params["w_up"])  # (M, D)
    grads.update(w_up=nv.dot("md,mf->df", x2, db), b_up=db)  # (D, F)
    out["dx"] = dx.reshape(x.shape)
    for name, g in grads.items():
        if name.startswith("w_"):
            out["d" + name] = g
        elif name in params:
            out["d" + name] = nv.r(nv.sum(g, axis=0))  # (F,) or (D,): the column sum, one op
    return out


def naive_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    scale: float,
    fmt: NumberFormat,
    *,
    dout: np.ndarray | None,
    softcap: float | None = None,
    sinks: np.ndarray | None = None,
) -> dict:
    """Baseline tensors {"out", "lse"} (+ {"dq", "dk", "dv"} (+ "dsinks") when ``dout`` is given).

    q (B, T, N, Dh), k and v (B, S, K, Dh), mask (B, T, S) True where the key is visible, sinks (N,) or None;
    head n reads KV head n // R. Non-finite results (scores beyond the format's range) are returned as they
    come: the caller counts them as an infinite baseline error.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing scores give NaN here, reported as such
        return _naive_attention(q, k, v, mask, scale, Naive(fmt), dout, softcap, sinks)


def _naive_attention(q, k, v, mask, scale, nv: Naive, dout, softcap, sinks) -> dict:
    acc = nv.acc
    batch, n_q, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    group = n_heads // n_kv
    (q, q_bad), (k, k_bad), (v, v_bad) = map(cleaned, (q, k, v))  # garbage out of every product
    qg = q.reshape(batch, n_q, n_kv, group, head_dim)  # (B, T, K, R, Dh)
    qh = nv.a(qg.transpose(0, 2, 3, 1, 4))  # (B, K, R, T, Dh) heads first: batched matrix products
    kh, vh = (nv.a(a.transpose(0, 2, 1, 3)[:, :, None]) for a in (k, v))  # (B, K, 1, S, Dh) each
    s = nv.r(nv.dot("bkrtd,bkxsd->bkrts", qh, kh, lambda: qh @ kh.swapaxes(-1, -2)) * scale)  # (B, K, R, T, S)
    if softcap is not None:  # |u / c| beyond float64: tanh is +-1 there exactly
        tanh_u = np.tanh(s / softcap)  # (B, K, R, T, S) float64
        s = nv.r(softcap * tanh_u)  # (B, K, R, T, S) capped scores, one op
    visible = mask[:, None, None, :, :]  # (B, 1, 1, T, S)
    any_visible = visible.any(axis=-1, keepdims=True)  # (B, 1, 1, T, 1)
    sa = nv.a(s)  # (B, K, R, T, S)
    m = np.where(visible, sa, -np.inf).max(axis=-1, keepdims=True)  # (B, K, R, T, 1)
    z = None if sinks is None else nv.a(sinks).reshape(1, n_kv, group, 1, 1)  # (1, K, R, 1, 1)
    if z is not None:
        m = np.maximum(m, z)  # (B, K, R, T, 1) the sink is one more score of the row
    m = np.where(any_visible | (z is not None), m, acc(0))  # (B, K, R, T, 1) fully masked rows: 0, not -inf
    e = np.where(visible, np.exp(np.where(visible, sa - m, acc(0))), acc(0))  # (B, K, R, T, S)
    total = np.where(any_visible, nv.sum(e, -1, keepdims=True), acc(0 if z is not None else 1))  # (B, K, R, T, 1)
    if z is not None:
        e_sink = np.exp(z - m)  # (B, K, R, T, 1) the sink's term: in the denominator, no value
        total = total + e_sink
    p = nv.r(e / total)  # (B, K, R, T, S) softmax, one op
    lse = np.where(any_visible | (z is not None), m + np.log(total), -np.inf)  # (B, K, R, T, 1)
    out = nv.dot("bkrts,bkxsd->bkrtd", p, vh, lambda: nv.a(p) @ vh).transpose(0, 3, 1, 2, 4)  # (B, T, K, R, Dh)
    seen = np.einsum("bts,bsk->bkt", mask.astype(np.float64), (k_bad | v_bad).astype(np.float64))  # (B, K, T)
    q_bad_g = q_bad.reshape(batch, n_q, n_kv, group).transpose(0, 2, 3, 1)  # (B, K, R, T)
    poisoned = ((q_bad_g & any_visible[..., 0]) | (seen > 0)[:, :, None, :])[..., None]  # (B, K, R, T, 1)
    out = np.where(poisoned.transpose(0, 3, 1, 2, 4), np.nan, out)  # (B, T, K, R, Dh)
    lse = np.where(poisoned, np.nan, lse)  # (B, K, R, T, 1)
    result = {
        "out": out.reshape(q.shape),
        "lse": nv.r(lse[..., 0].transpose(0, 3, 1, 2).reshape(batch, n_q, n_heads)),  # (B, T, N)
    }
    if dout is None:
        return result
    dog = np.where(poisoned.transpose(0, 3, 1, 2, 4), 0.0, dout.reshape(qg.shape))  # (B, T, K, R, Dh)
    p = np.where(poisoned, 0.0, p)  # (B, K, R, T, S) poisoned rows send no gradient
    dog_h = nv.a(dog.transpose(0, 2, 3, 1, 4))  # (B, K, R, T, Dh)
    dp = nv.a(nv.dot("bkrtd,bkxsd->bkrts", dog_h, vh, lambda: dog_h @ vh.swapaxes(-1, -2)))  # (B, K, R, T, S)
    pa = nv.a(p)  # (B, K, R, T, S)
    out_live = np.where(poisoned.transpose(0, 3, 1, 2, 4), 0.0, out)  # (B, T, K, R, Dh)
    delta = nv.dot("btkrd,btkrd->bkrt", dog, out_live)[..., None]  # (B, K, R, T, 1) dO . o
    ds = nv.r(pa * (dp - nv.a(delta)))  # (B, K, R, T, S) dS = p (dP - D)
    if softcap is not None:
        ds = nv.mul(ds, nv.r(1.0 - tanh_u * tanh_u))  # (B, K, R, T, S) through the cap, one op
    ds = np.where(visible, nv.r(ds * scale), 0.0)  # (B, K, R, T, S) masked: 0 by selection
    ds_a, p_a = nv.a(ds), nv.a(p)  # (B, K, R, T, S) each
    dq = nv.dot("bkrts,bkxsd->bkrtd", ds_a, kh, lambda: ds_a @ kh)  # (B, K, R, T, Dh)
    result["dq"] = dq.transpose(0, 3, 1, 2, 4).reshape(q.shape)  # (B, T, N, Dh)
    result["dk"] = nv.dot("bkrts,bkrtd->bskd", ds_a, qh,
                          lambda: (ds_a.swapaxes(-1, -2) @ qh).sum(axis=2).transpose(0, 2, 1, 3))  # (B, S, K, Dh)
    result["dv"] = nv.dot("bkrts,bkrtd->bskd", p_a, dog_h,
                          lambda: (p_a.swapaxes(-1, -2) @ dog_h).sum(axis=2).transpose(0, 2, 1, 3))  # (B, S, K, Dh)
    if z is not None:
        p_sink = np.where(poisoned, 0.0, nv.r(e_sink / total))  # (B, K, R, T, 1) the sink's probability
        per_row = nv.mul(p_sink, delta)  # (B, K, R, T, 1) p_sink D, one op per row
        result["dsinks"] = nv.r(-nv.sum(per_row, (0, 3, 4))).reshape(n_heads)  # (N,) head k*R + r
    return result
