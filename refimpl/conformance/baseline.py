"""The naive low-precision baseline: the reference's math in the candidate's format, rounding after each op.

Its error against the float64 golden values measures how much a straightforward implementation in that
format must lose; the pass rule (policy.py) allows a candidate a small multiple of it. "One op" is what a
framework's single kernel does (a matrix product, a product of two tensors, a softmax, its backward):
computed from format-valued operands in the format's accumulator precision -- float32, or float64 for fp64
-- as GPU tensor cores, CPU BLAS and PyTorch's reduced-precision kernels do, and the result rounded once to
the format. For fp32 this is plain float32 NumPy, every elementwise step and reduction rounding; for
bf16/fp16/fp8 the float32 internals are far finer than the format and only the final rounding shows.
Activations are evaluated in float64 and rounded once. This mirrors flash-attention's
``attention_ref(..., upcast=False)`` baseline (PyTorch ops in the test dtype).

FFN (refimpl/ffn.py's formulas; every line one rounding):
    a = r(x Wg)   b = r(x Wu)   g = r(act(a))   h = r(g * b)   y = r(h Wd)
    dWd = r(h^T dy)   dh = r(dy Wd^T)   db = r(dh * g)   da = r(r(dh * b) * r(act'(a)))
    dWg = r(x^T da)   dWu = r(x^T db)   dx = r(r(da Wg^T) + r(db Wu^T))          (ungated: act on b)
Attention (refimpl/attention.py's formulas, per KV-head group):
    s = r(r(q k^T) * scale)   [softcap c: u = s, s = r(c tanh(u / c))]
    p = r(softmax(s masked))   out = r(p v)   lse = r(logsumexp(s masked))
    dP = r(dO v^T)   D = r(rowsum(dO * out))   dS = r(p * (dP - D))     (D as the reference and flash-attn)
    [softcap: dS = r(dS * r(1 - tanh^2(u / c)))]   dS = r(dS * scale)
    dq = r(dS k)   dk = r(dS^T q)   dv = r(p^T dO)
The constants scale and c multiply or divide in float64, and tanh and its derivative are evaluated in float64
and rounded once, like the activations: any positive finite scale or softcap (1e-300, 1e300) is then
warning-free, where holding it in float32 would turn it into 0 or inf.
Fully masked rows follow the reference: p = 0, out = 0, lse = -inf, zero gradients. So do masked slots
holding garbage (NaN, inf): masked scores and probabilities are set by selection, non-finite q, k, v entries
are replaced by 0 before any product, and a row that sees a non-finite entry gets NaN output and lse and sends
no gradient (the reference's rule, refimpl/attention_blocks.py).
"""

from __future__ import annotations

import numpy as np

from ..activations import activation, activation_grad
from ..attention_blocks import cleaned
from ..variants import get_variant
from .dtypes import NumberFormat, round_to


class _Naive:
    """Arithmetic in one format: each op from format values, in the accumulator dtype, rounded once."""

    def __init__(self, fmt: NumberFormat):
        self.fmt = fmt
        self.acc = fmt.accumulator.type

    def a(self, x: np.ndarray) -> np.ndarray:
        """Operands in the accumulator dtype (exact: format values are representable there)."""
        return np.asarray(x).astype(self.acc)

    def r(self, x: np.ndarray) -> np.ndarray:
        """The result of one op rounded to the format (float64 holding format values)."""
        return round_to(np.asarray(x, dtype=np.float64), self.fmt)

    def dot(self, subscripts: str, *operands: np.ndarray) -> np.ndarray:
        """A contraction accumulated in the accumulator dtype, then rounded."""
        return self.r(np.einsum(subscripts, *(self.a(op) for op in operands), optimize=True))

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.r(self.a(x) * self.a(y))


def naive_ffn(
    x: np.ndarray, params: dict, variant: str, fmt: NumberFormat, *, dy: np.ndarray | None, gelu: str = "erf"
) -> dict:
    """Baseline tensors {"y"} (+ {"dx", "dw_*"} when ``dy`` is given), float64 holding format values."""
    v = get_variant(variant)
    nv = _Naive(fmt)
    x2 = x.reshape(-1, x.shape[-1])  # (M, D)
    b = nv.dot("md,df->mf", x2, params["w_up"])  # (M, F)
    if v.gated:
        a = nv.dot("md,df->mf", x2, params["w_gate"])  # (M, F)
        g = nv.r(activation(v.activation, a, gelu_approximate=gelu))  # (M, F)
        h = nv.mul(g, b)  # (M, F)
    else:
        h = nv.r(activation(v.activation, b, gelu_approximate=gelu))  # (M, F)
    y = nv.dot("mf,fd->md", h, params["w_down"])  # (M, D)
    out = {"y": y.reshape(x.shape)}
    if dy is None:
        return out
    dy2 = dy.reshape(-1, dy.shape[-1])  # (M, D)
    out["dw_down"] = nv.dot("mf,md->fd", h, dy2)  # (F, D)
    dh = nv.dot("md,fd->mf", dy2, params["w_down"])  # (M, F)
    if v.gated:
        db = nv.mul(dh, g)  # (M, F)
        da = nv.mul(nv.mul(dh, b), nv.r(activation_grad(v.activation, a, gelu_approximate=gelu)))  # (M, F)
        out["dw_gate"] = nv.dot("md,mf->df", x2, da)  # (D, F)
        dx = nv.r(
            nv.a(nv.dot("mf,df->md", da, params["w_gate"])) + nv.a(nv.dot("mf,df->md", db, params["w_up"]))
        )  # (M, D)
    else:
        db = nv.mul(dh, nv.r(activation_grad(v.activation, b, gelu_approximate=gelu)))  # (M, F)
        dx = nv.dot("mf,df->md", db, params["w_up"])  # (M, D)
    out["dw_up"] = nv.dot("md,mf->df", x2, db)  # (D, F)
    out["dx"] = dx.reshape(x.shape)
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
) -> dict:
    """Baseline tensors {"out", "lse"} (+ {"dq", "dk", "dv"} when ``dout`` is given).

    q (B, T, N, Dh), k and v (B, S, K, Dh), mask (B, T, S) True where the key is visible; head n reads
    KV head n // R.
    """
    nv = _Naive(fmt)
    acc = nv.acc
    batch, n_q, n_heads, head_dim = q.shape
    n_kv = k.shape[2]
    group = n_heads // n_kv
    (q, q_bad), (k, k_bad), (v, v_bad) = map(cleaned, (q, k, v))  # garbage out of every product
    qg = q.reshape(batch, n_q, n_kv, group, head_dim)  # (B, T, K, R, Dh)
    with np.errstate(over="ignore", invalid="ignore"):  # huge finite garbage behind the mask may overflow q.k;
        s = nv.r(np.asarray(nv.dot("btkrd,bskd->bkrts", qg, k)) * scale)  # (B, K, R, T, S)  masked below
        if softcap is not None:  # |u / c| beyond float64: tanh is +-1 there exactly
            tanh_u = np.tanh(s / softcap)  # (B, K, R, T, S) float64
            s = nv.r(softcap * tanh_u)  # (B, K, R, T, S) capped scores, one op
    visible = mask[:, None, None, :, :]  # (B, 1, 1, T, S)
    any_visible = visible.any(axis=-1, keepdims=True)  # (B, 1, 1, T, 1)
    sa = nv.a(s)  # (B, K, R, T, S)
    m = np.where(visible, sa, -np.inf).max(axis=-1, keepdims=True)  # (B, K, R, T, 1)
    m = np.where(any_visible, m, acc(0))  # (B, K, R, T, 1) fully masked rows: 0, not -inf
    e = np.where(visible, np.exp(np.where(visible, sa - m, acc(0))), acc(0))  # (B, K, R, T, S)
    total = np.where(any_visible, e.sum(axis=-1, keepdims=True), acc(1))  # (B, K, R, T, 1)
    p = nv.r(e / total)  # (B, K, R, T, S) softmax, one op
    lse = np.where(any_visible, m + np.log(total), -np.inf)  # (B, K, R, T, 1)
    out = nv.dot("bkrts,bskd->btkrd", p, v)  # (B, T, K, R, Dh)
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
    dp = nv.a(nv.dot("btkrd,bskd->bkrts", dog, v))  # (B, K, R, T, S)
    pa = nv.a(p)  # (B, K, R, T, S)
    out_live = np.where(poisoned.transpose(0, 3, 1, 2, 4), 0.0, out)  # (B, T, K, R, Dh)
    delta = nv.r(np.einsum("btkrd,btkrd->bkrt", nv.a(dog), nv.a(out_live)))[..., None]  # (B, K, R, T, 1) dO . o
    ds = nv.r(pa * (dp - nv.a(delta)))  # (B, K, R, T, S) dS = p (dP - D)
    if softcap is not None:
        ds = nv.mul(ds, nv.r(1.0 - tanh_u * tanh_u))  # (B, K, R, T, S) through the cap, one op
    ds = np.where(visible, nv.r(ds * scale), 0.0)  # (B, K, R, T, S) masked: 0 by selection
    result["dq"] = nv.dot("bkrts,bskd->btkrd", ds, k).reshape(q.shape)  # (B, T, N, Dh)
    result["dk"] = nv.dot("bkrts,btkrd->bskd", ds, qg)  # (B, S, K, Dh)
    result["dv"] = nv.dot("bkrts,btkrd->bskd", p, dog)  # (B, S, K, Dh)
    return result
