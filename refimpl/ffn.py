"""Feed-forward networks of Shazeer 2020 ("GLU Variants Improve Transformer"), forward and backward.

Shape legend: M = product of the leading (batch) dims of x, D d_model, F d_ff.

    ungated (relu, gelu, swish):   b = x W_up + b_up,  h = act(b),                y = h W_down + b_down
    gated (glu, bilinear, reglu,   a = x W_gate + b_gate,  b = x W_up + b_up,
           geglu, swiglu):         h = act(a) * b,                                 y = h W_down + b_down
    swiglu_oss (gpt-oss):          h = swish_alpha(min(a, limit)) * (clip(b, -limit, limit) + 1)
                                   (alpha = 1.702, limit = 7.0 by default: keyword options ``alpha``, ``limit``)

Backward (dy given; nine matrix products in all for a gated variant, forward included):
    dW_down = h^T dy,  dh = dy W_down^T
    gated:   db = dh * act(a),  da = dh * b * act'(a),  dW_gate = x^T da,  dW_up = x^T db,
             dx = da W_gate^T + db W_up^T
    ungated: db = dh * act'(b),  dW_up = x^T db,  dx = db W_up^T
Biases (Dauphin et al. 2017's GLU has them; the paper's runs do not) receive the row sums.
swiglu_oss: act = swish_alpha(a'), val = clip(b) + 1 replace act(a) and b above, with the clamps' derivatives:
    act'(a) = swish_alpha'(a') [a <= limit],   dval/db = [-limit <= b <= limit]
i.e. the gradient is 0 where a clamp is active (a > limit, |b| > limit); at equality (a == limit, |b| == limit)
the clamp is the identity and passes the gradient, as torch.clamp's backward does (gpt-oss's Transformers code).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import choice, flag, float_array, float_dtype, param_keys, positive_int, positive_real
from .activations import GELU_APPROXIMATIONS, activation_value_and_grad, swish_value_and_grad
from .variants import FFNVariant, get_variant, variant_options

_BIAS_OF = {"w_gate": "b_gate", "w_up": "b_up", "w_down": "b_down"}


def _param_names(v: FFNVariant) -> tuple[tuple[str, ...], tuple[str, ...]]:
    weights = v.param_names
    return weights, tuple(_BIAS_OF[w] for w in weights)


def init_ffn_params(
    rng: np.random.Generator, d_model: int, d_ff: int, variant: str, *, bias: bool = False, dtype=np.float64
) -> dict:
    """Weights with std 1/sqrt(fan_in) (so activations stay O(1)); biases, when asked, likewise.

    ``dtype`` must be a floating dtype (an integer one would round the weights to zeros); ``bias`` a bool.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    d_model, d_ff = positive_int("d_model", d_model), positive_int("d_ff", d_ff)
    v = get_variant(variant)
    bias, dtype = flag("bias", bias), float_dtype("dtype", dtype)
    shapes = {"w_gate": (d_model, d_ff), "w_up": (d_model, d_ff), "w_down": (d_ff, d_model)}
    params = {}
    for w in v.param_names:
        fan_in = shapes[w][0]
        params[w] = (rng.standard_normal(shapes[w]) / math.sqrt(fan_in)).astype(dtype)  # (D, F) or (F, D)
        if bias:
            params[_BIAS_OF[w]] = (rng.standard_normal(shapes[w][1]) / math.sqrt(fan_in)).astype(dtype)  # (F,) or (D,)
    return params


def matched_d_ff(d_ff: int, variant: str, *, multiple_of: int = 1) -> int:
    """d_ff giving a gated variant the parameters of an ungated FFN of width ``d_ff``.

    Three matrices of D x F' match two of D x F when F' = 2F/3 (Shazeer 2020: 3072 -> 2048 for T5-base);
    rounded to the nearest integer, then up to ``multiple_of`` (LLaMA: 2/3 * 4 * 4096 -> 11008 with 256).
    Ungated variants keep ``d_ff``.
    """
    d_ff, multiple_of = positive_int("d_ff", d_ff), positive_int("multiple_of", multiple_of)
    if not get_variant(variant).gated:
        return d_ff
    two_thirds = (2 * d_ff + 1) // 3  # round(2 d_ff / 3) in exact integer arithmetic
    return -(-two_thirds // multiple_of) * multiple_of


def ffn_options(v: FFNVariant, *, alpha=None, limit=None) -> dict:
    """The variant's options (registry defaults where None), each a positive finite real; ``ValueError``
    naming an option the variant does not take (``alpha``/``limit`` belong to ``swiglu_oss`` only)."""
    return {k: positive_real(k, value) for k, value in variant_options(v, alpha=alpha, limit=limit).items()}


class FFNCache(NamedTuple):
    """What backward needs. The activation's value and derivative are both computed in the forward (they
    share one sigmoid) and stored; the gated hidden h = act(a) * b is recomputed (one multiply)."""

    x: np.ndarray  # (M, D)
    b: np.ndarray  # (M, F) up (value) pre-activation; swiglu_oss: clip(b, -limit, limit) + 1
    act: np.ndarray  # (M, F) act(a) for gated variants, act(b) (= h) for ungated ones
    dact: np.ndarray  # (M, F) act'(a) for gated variants, act'(b) for ungated ones
    params: dict
    variant: FFNVariant
    lead_shape: tuple  # x.shape[:-1]
    dval: np.ndarray | None = None  # (M, F) bool, swiglu_oss only: [|b| <= limit], the up clamp's derivative


def check_ffn_params(params: dict, v: FFNVariant, d_model: int, *, as_array=float_array, name="params") -> dict:
    """Validate an FFN's parameters against ``v`` and d_model; return them converted by ``as_array``
    (float64 here; the JAX port passes its dtype-keeping converter, so both share one set of rules).
    Messages name the dict ``name`` (the MoE's shared expert: "params['shared']")."""
    weights, biases = _param_names(v)
    param_keys(name, params, weights, biases)
    # w_up first: d_ff is read from it, so a transposed w_up is blamed, not the weight checked against it
    p = {k: as_array(f"{name}[{k!r}]", params[k], ndim=2 if k.startswith("w_") else 1)
         for k in sorted(params, key=lambda k: k != "w_up")}  # fmt: skip
    d_ff = p["w_up"].shape[1]
    if d_ff == 0:
        raise ValueError(f"{name}['w_up'] must have d_ff >= 1 columns; got 0")
    expected = {"w_gate": (d_model, d_ff), "w_up": (d_model, d_ff), "w_down": (d_ff, d_model),
                "b_gate": (d_ff,), "b_up": (d_ff,), "b_down": (d_model,)}  # fmt: skip
    for k, arr in p.items():
        if arr.shape != expected[k]:
            raise ValueError(f"{name}[{k!r}] must have shape {expected[k]} (D={d_model}, F={d_ff}); got {arr.shape}")
    return p


def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
    out = np.matmul(x, w, out=out)  # (M, out)
    if b is not None:
        out += b
    return out


def _out_array(name: str, out, shape: tuple) -> np.ndarray | None:
    """``out`` (or None) checked: a writeable C-contiguous float64 array of ``shape``, written in place."""
    if out is None:
        return None
    if (not isinstance(out, np.ndarray) or out.dtype != np.float64 or out.shape != tuple(shape)
            or not out.flags.c_contiguous or not out.flags.writeable):  # fmt: skip
        raise ValueError(f"{name} must be a writeable C-contiguous float64 array of shape {tuple(shape)}; "
                         f"got {type(out).__name__} {getattr(out, 'shape', '')}")  # fmt: skip
    return out


def _clamped_swiglu(a: np.ndarray, b: np.ndarray, alpha: float, limit: float):
    """gpt-oss: (act, act', val, dval/db) with act = swish_alpha(min(a, limit)), val = clip(b, +-limit) + 1."""
    act, dact = swish_value_and_grad(np.minimum(a, limit), alpha)  # (M, F) each
    dact *= a <= limit  # the gate clamp passes the gradient up to and including a == limit
    val = np.clip(b, -limit, limit)  # (M, F)
    val += 1.0
    return act, dact, val, np.abs(b) <= limit  # dval: (M, F) bool, True at |b| == limit


def ffn_forward(
    x: np.ndarray, params: dict, variant: str, *, gelu: str = "erf", alpha=None, limit=None, out=None
) -> tuple[np.ndarray, FFNCache]:
    """y = FFN_variant(x) for x of shape (..., D). Returns (y, cache); y has x's shape, in float64.

    ``alpha``, ``limit``: swiglu_oss's options (None: gpt-oss's 1.702 and 7.0); other variants refuse them.
    ``out``: an optional writeable C-contiguous float64 array of x's shape that receives y (NumPy's ``out``
    convention; the MoE writes each expert's rows in place).
    """
    v = get_variant(variant)
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    opts = ffn_options(v, alpha=alpha, limit=limit)
    x = float_array("x", x, min_ndim=1)
    p = check_ffn_params(params, v, x.shape[-1])
    out = _out_array("out", out, x.shape)
    x2 = x.reshape(-1, x.shape[-1])  # (M, D)
    b = _affine(x2, p["w_up"], p.get("b_up"))  # (M, F)
    dval = None
    if v.gated:
        a = _affine(x2, p["w_gate"], p.get("b_gate"))  # (M, F)
        if "limit" in opts:
            act, dact, b, dval = _clamped_swiglu(a, b, opts["alpha"], opts["limit"])  # (M, F) each
        else:
            act, dact = activation_value_and_grad(v.activation, a, gelu_approximate=gelu)  # (M, F) each
        h = act * b  # (M, F)
    else:
        act, dact = activation_value_and_grad(v.activation, b, gelu_approximate=gelu)  # (M, F) each
        h = act  # (M, F)
    y = _affine(h, p["w_down"], p.get("b_down"), None if out is None else out.reshape(-1, x.shape[-1]))  # (M, D)
    return y.reshape(x.shape), FFNCache(x2, b, act, dact, p, v, x.shape[:-1], dval)


def ffn_backward(dy: np.ndarray, cache: FFNCache, *, out: dict | None = None) -> dict:
    """Gradients of <dy, y>: {"x": (..., D), "w_up": (D, F), ..., "b_*" when the forward had biases}.

    ``out``: an optional dict naming some of those gradients, each a writeable C-contiguous float64 array of
    the gradient's shape that receives it in place (the MoE writes straight into its stacked (E, ...) arrays).
    """
    if not isinstance(cache, FFNCache):
        raise ValueError(f"cache must be the FFNCache returned by ffn_forward; got {type(cache).__name__}")
    d_model = cache.x.shape[1]
    dy = float_array("dy", dy)
    if dy.shape != (*cache.lead_shape, d_model):
        raise ValueError(f"dy must have shape {(*cache.lead_shape, d_model)} (the output's); got {dy.shape}")
    p, v = cache.params, cache.variant
    shapes = {"x": (*cache.lead_shape, d_model), **{k: a.shape for k, a in p.items()}}
    if out is not None and (not isinstance(out, dict) or set(out) - set(shapes)):
        raise ValueError(f"out must be a dict with keys among {sorted(shapes)}; got {out!r:.80}")
    o = {k: _out_array(f"out[{k!r}]", a, shapes[k]) for k, a in (out or {}).items()}
    if "x" in o:
        o["x"] = o["x"].reshape(-1, d_model)  # (M, D) view: out is C-contiguous
    dy2 = dy.reshape(-1, d_model)  # (M, D)
    h = cache.act * cache.b if v.gated else cache.act  # (M, F)
    grads = {"w_down": np.matmul(h.T, dy2, out=o.get("w_down"))}  # (F, D)
    dh = dy2 @ p["w_down"].T  # (M, F)
    if v.gated:
        db = dh * cache.act  # (M, F)
        if cache.dval is not None:
            db *= cache.dval  # swiglu_oss: 0 where the up clamp is active
        da = dh  # (M, F) reuses dh's memory: da = dh * b * act'(a)
        da *= cache.b
        da *= cache.dact
        grads["w_gate"] = np.matmul(cache.x.T, da, out=o.get("w_gate"))  # (D, F)
        grads["w_up"] = np.matmul(cache.x.T, db, out=o.get("w_up"))  # (D, F)
        dx = np.matmul(da, p["w_gate"].T, out=o.get("x"))  # (M, D)
        dx += db @ p["w_up"].T
    else:
        db = dh  # (M, F) reuses dh's memory: db = dh * act'(b)
        db *= cache.dact
        grads["w_up"] = np.matmul(cache.x.T, db, out=o.get("w_up"))  # (D, F)
        dx = np.matmul(db, p["w_up"].T, out=o.get("x"))  # (M, D)
    for name, d in (("b_down", dy2), ("b_up", db), ("b_gate", da if v.gated else None)):
        if name in p:
            grads[name] = np.sum(d, axis=0, out=o.get(name))  # (D,) or (F,)
    return {"x": dx.reshape(*cache.lead_shape, d_model), **grads}
