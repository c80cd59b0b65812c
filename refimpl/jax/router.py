"""The MoE router in JAX, mirroring ``refimpl.router``: selection (ties to the lowest expert index), the
routing conventions "softmax_topk" (normalize or not) and "topk_softmax", and the Switch/Mixtral
load-balancing loss E sum_e f_e P_e (f_e counts top-k assignments over T).

NOTE(jax): no hand-written backward: gradients are ``jax.vjp``/``jax.grad``. The selection is integer-valued
(an argsort), so autodiff holds it fixed, exactly as the NumPy backward does. Softmaxes run in at least
float32 (``stats_dtype``) and the weights are rounded once to the logits' dtype.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ..router import ROUTINGS, check_router_logits, check_routing  # noqa: F401  (the NumPy rules)
from ._checks import float_array, stats_dtype


def select_experts(logits, top_k: int):
    """(T, k) expert indices of the k largest logits per row, descending; ties -> lowest index (stable sort)."""
    return jnp.argsort(-logits, axis=-1, stable=True)[:, :top_k]  # (T, k)


def route(logits, top_k: int, routing: str, normalize: bool):
    """(selected (T, k), weights (T, k)) of checked logits (T, E); weights in the logits' dtype."""
    selected = select_experts(logits, top_k)  # (T, k)
    acc = logits.astype(stats_dtype(logits.dtype))  # (T, E)
    if routing == "topk_softmax":
        weights = jax.nn.softmax(jnp.take_along_axis(acc, selected, axis=-1), axis=-1)  # (T, k)
    else:
        weights = jnp.take_along_axis(jax.nn.softmax(acc, axis=-1), selected, axis=-1)  # (T, k)
        if normalize:
            weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return selected, weights.astype(logits.dtype)


@partial(jax.jit, static_argnames=("top_k",))
def load_balancing_loss(router_logits, top_k: int):
    """E sum_e f_e P_e of router logits (..., E), as ``refimpl.load_balancing_loss`` (a 0-d array).

    NOTE(jax): returns the loss alone (no cache); the logits' finiteness is not checked (values are traced).
    """
    logits = check_router_logits(router_logits, top_k, as_array=float_array)
    n_experts = logits.shape[-1]
    l2 = logits.reshape(-1, n_experts)  # (T, E)
    probs = jax.nn.softmax(l2.astype(stats_dtype(l2.dtype)), axis=-1)  # (T, E)
    counts = jnp.bincount(select_experts(l2, top_k).reshape(-1), length=n_experts)  # (E,)
    fraction = counts.astype(probs.dtype) / l2.shape[0]  # (E,)
    return (n_experts * jnp.sum(fraction * jnp.mean(probs, axis=0))).astype(logits.dtype)


@partial(jax.jit, static_argnames=("top_k",))
def load_balancing_loss_backward(dloss, router_logits, top_k: int) -> dict:
    """{"router_logits": (..., E)} by ``jax.vjp``. NOTE(jax): takes the logits instead of a cache."""
    _, vjp = jax.vjp(lambda l_: load_balancing_loss(l_, top_k), router_logits)
    return {"router_logits": vjp(jnp.asarray(dloss, router_logits.dtype))[0]}
