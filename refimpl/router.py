"""The router of a mixture-of-experts layer: expert selection, the routing conventions, and the
load-balancing loss, each beside its backward. Used by refimpl.moe.

Shape legend: T tokens, E experts, k top-k; logits l (T, E).

    selection       S_t = the k experts with the largest l_t, by descending logit; ties go to the lowest
                    expert index (a stable sort). S is piecewise constant in l: its derivative is 0 almost
                    everywhere and undefined at ties, so backward holds it fixed (as autograd through
                    torch.topk does). Inputs for finite differences must avoid near-ties.
    weights w (T, k) of the selected experts, by ``routing``:
      "softmax_topk"  p = softmax(l) over all E, w = p[S]; normalize=True: w = p[S] / sum p[S]
                      (Mixtral always; Qwen2/3-MoE when ``norm_topk_prob``, False in Transformers' configs
                      but True in Qwen3-30B-A3B's config.json); normalize=False: w = p[S] (weights sum < 1).
                      Transformers ranks p instead of l: the same selection, p being monotone in l.
      "topk_softmax"  w = softmax(l[S]) over the k (gpt-oss). Mathematically equal to softmax_topk with
                      normalize=True (exp(l_i) / sum_S exp(l_j)); they differ in rounding, and in what a
                      kernel computes. normalize=False does not apply (ValueError).
Backward, dw (T, k) given:
    softmax_topk:   dp[S] = (dw - <dw, w>) / sum p[S] (normalize) or dw (not), 0 off S;  dl = p (dp - <dp, p>)
    topk_softmax:   dl[S] = w (dw - <dw, w>), 0 off S

Load-balancing loss (Switch Transformer, Fedus et al. 2021, eq. 4-6, as Transformers'
``load_balancing_loss_func`` in modeling_mixtral computes it): L = E sum_e f_e P_e with
f_e = (number of tokens whose top-k holds e) / T -- so sum_e f_e = k, and L = k for uniform routing --
and P_e = mean_t softmax(l_t)_e; f is piecewise constant and held fixed in backward.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ._checks import choice, flag, float_array, positive_int

ROUTINGS = ("softmax_topk", "topk_softmax")


def check_routing(n_experts: int, top_k, routing, normalize) -> None:
    """Validate the routing options against E (shared by the JAX port)."""
    choice("routing", routing, ROUTINGS)
    if not flag("normalize", normalize) and routing == "topk_softmax":
        raise ValueError("normalize=False applies to routing='softmax_topk' only (top-k softmax weights sum to 1)")
    if positive_int("top_k", top_k) > n_experts:
        raise ValueError(f"top_k must be at most the number of experts E={n_experts}; got {top_k}")


def softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax over the last axis, shifted by the row max (no overflow)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # same shape as z
    e /= e.sum(axis=-1, keepdims=True)
    return e


def select_experts(logits: np.ndarray, top_k: int) -> np.ndarray:
    """(T, k) expert indices of the k largest logits per row, descending; ties -> lowest index."""
    return np.argsort(-logits, axis=-1, kind="stable")[:, :top_k]  # (T, k)


class Routing(NamedTuple):
    routing: str
    normalize: bool
    selected: np.ndarray  # (T, k) expert indices, by descending logit
    weights: np.ndarray  # (T, k) combine weights w
    probs: np.ndarray  # (T, E) softmax over all E (softmax_topk) | (T, k) = weights (topk_softmax)
    n_experts: int


def route(logits: np.ndarray, top_k: int, routing: str, normalize: bool) -> Routing:
    """Selection and combine weights of checked logits (T, E) (module docstring)."""
    selected = select_experts(logits, top_k)  # (T, k)
    if routing == "topk_softmax":
        weights = softmax(np.take_along_axis(logits, selected, axis=-1))  # (T, k)
        return Routing(routing, normalize, selected, weights, weights, logits.shape[1])
    probs = softmax(logits)  # (T, E)
    weights = np.take_along_axis(probs, selected, axis=-1)  # (T, k)
    if normalize:
        weights /= weights.sum(axis=-1, keepdims=True)
    return Routing(routing, normalize, selected, weights, probs, logits.shape[1])


def route_backward(dw: np.ndarray, r: Routing) -> np.ndarray:
    """d logits (T, E) from d weights (T, k), the selection held fixed."""
    centred = dw - np.sum(dw * r.weights, axis=-1, keepdims=True)  # (T, k) dw - <dw, w>
    if r.routing == "topk_softmax":
        dl = np.zeros((dw.shape[0], r.n_experts))  # (T, E)
        np.put_along_axis(dl, r.selected, r.weights * centred, axis=-1)
        return dl
    if r.normalize:
        dw = centred / np.take_along_axis(r.probs, r.selected, axis=-1).sum(axis=-1, keepdims=True)  # (T, k)
    dp = np.zeros_like(r.probs)  # (T, E)
    np.put_along_axis(dp, r.selected, dw, axis=-1)
    return r.probs * (dp - np.sum(dp * r.probs, axis=-1, keepdims=True))  # (T, E)


class LoadBalancingCache(NamedTuple):
    probs: np.ndarray  # (T, E) softmax of the router logits
    fraction: np.ndarray  # (E,) f_e: tokens whose top-k holds e, over T
    shape: tuple  # the router logits' shape (..., E)


def check_router_logits(router_logits, top_k, *, as_array=float_array):
    """router_logits (..., E) with at least one token and expert, top_k <= E; converted by ``as_array``
    (shared with the JAX port, whose converter keeps the dtype)."""
    logits = as_array("router_logits", router_logits, min_ndim=1)
    if logits.size == 0:
        raise ValueError(f"router_logits must hold at least one token and one expert; got shape {logits.shape}")
    if positive_int("top_k", top_k) > logits.shape[-1]:
        raise ValueError(f"top_k must be at most the number of experts E={logits.shape[-1]}; got {top_k}")
    return logits


def load_balancing_loss(router_logits: np.ndarray, top_k: int) -> tuple[float, LoadBalancingCache]:
    """The Switch/Mixtral auxiliary loss E sum_e f_e P_e of router logits (..., E) (module docstring).

    Equals Transformers' ``load_balancing_loss_func`` (modeling_mixtral) for one layer without attention
    mask; for padding, pass only the real tokens' rows. Returns (loss as a float, cache).
    """
    logits = check_router_logits(router_logits, top_k)
    n_experts = logits.shape[-1]
    l2 = logits.reshape(-1, n_experts)  # (T, E)
    if not np.isfinite(l2).all():
        raise ValueError("router_logits must be finite")
    probs = softmax(l2)  # (T, E)
    counts = np.bincount(select_experts(l2, top_k).ravel(), minlength=n_experts)  # (E,)
    fraction = counts / l2.shape[0]  # (E,)
    loss = n_experts * float(fraction @ probs.mean(axis=0))
    return loss, LoadBalancingCache(probs, fraction, logits.shape)


def load_balancing_loss_backward(dloss, cache: LoadBalancingCache) -> dict:
    """{"router_logits": (..., E)}: dL/dl_te = p_te (g_e - sum_e' p_te' g_e'), g = dloss E f / T.

    ``dloss``: a finite real number (a 0-d float array is accepted too)."""
    if not isinstance(cache, LoadBalancingCache):
        raise ValueError(f"cache must be the LoadBalancingCache of load_balancing_loss; got {type(cache).__name__}")
    if isinstance(dloss, np.ndarray) and dloss.ndim == 0 and dloss.dtype.kind == "f":
        dloss = float(dloss)
    if isinstance(dloss, (bool, np.bool_)) or not isinstance(dloss, numbers.Real) or not math.isfinite(dloss):
        raise ValueError(f"dloss must be a finite real number; got {dloss!r}")
    n_tokens, n_experts = cache.probs.shape
    g = float(dloss) * n_experts / n_tokens * cache.fraction  # (E,)
    g -= g.mean()  # the softmax ignores a constant shift of g: centred, a balanced f gives exactly 0, not rounding
    dl = cache.probs * (g - cache.probs @ g[:, None])  # (T, E)
    return {"router_logits": dl.reshape(cache.shape)}
