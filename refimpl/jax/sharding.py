"""Tensor-parallel layouts (Megatron-LM, Shoeybi et al. 2019) of the FFN, the attention layer and the KV cache.

The mesh has two axes, ``("kv", "rep")`` of sizes (min(TP, K), TP / min(TP, K)), TP devices in all:

* FFN: d_ff split TP ways over both axes: w_gate and w_up (D, F) by columns, w_down (F, D) by rows (b_gate,
  b_up likewise); each device computes its F/TP slice of h, multiplies by its rows of w_down, and one
  all-reduce (psum) sums the partial outputs; b_down is added once, after it.
* Attention: query heads split TP ways over both axes (w_q, b_q by head columns; w_o by head rows).
  KV heads are split along "kv": with TP <= K each device holds K/TP KV heads; with TP > K the "kv" axis
  has size K, so each device holds exactly the one KV head its N/TP query heads read, replicated across
  the TP/K devices of "rep" (KV heads per device = max(K/TP, 1); vLLM and Megatron replicate alike).
  This works because query head n reads KV head n // (N/K): device (i, j) owns query-head chunk
  i * rep + j, whose heads all read KV heads of chunk i.
* KV cache: k, v (B, S_max, K, Dh) split along K over "kv", exactly like w_k / w_v; length replicated.

The sharded functions are ``jax.shard_map`` programs: each device runs the unsharded code of
``refimpl.jax`` on its local heads / columns, so the tests' "sharded equals unsharded" also checks the
head-to-device map. Shape legend: B batch, T tokens, D d_model, F d_ff, N, K heads, Dh head dim.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..ffn import ffn_options
from ..layer import check_heads
from ..variants import get_variant
from ._checks import choice, float_array, positive_int
from .activations import GELU_APPROXIMATIONS
from .ffn import _check_params as _check_ffn_params
from .ffn import _ffn
from .kv_cache import KVCache, _check_step, check_cache, step_core
from .layer import check_layer, layer_core
from .moe import EXPERT_KEYS, check_moe, routed_experts, router_logits, shared_experts
from .router import route

TP_AXES = ("kv", "rep")  # PartitionSpec entry splitting a dimension over all TP devices
KV_CACHE_SPECS = KVCache(P(None, None, "kv", None), P(None, None, "kv", None), P())


def kv_heads_per_device(n_kv_heads: int, tp: int) -> int:
    """max(K / TP, 1): K/TP heads when TP <= K (K % TP == 0), one replicated head when TP > K (TP % K == 0)."""
    n_kv_heads, tp = positive_int("n_kv_heads", n_kv_heads), positive_int("tp", tp)
    if tp <= n_kv_heads and n_kv_heads % tp:
        raise ValueError(f"tp must divide n_kv_heads when tp <= n_kv_heads; got tp={tp}, n_kv_heads={n_kv_heads}")
    if tp > n_kv_heads and tp % n_kv_heads:
        raise ValueError(f"n_kv_heads must divide tp when tp > n_kv_heads; got tp={tp}, n_kv_heads={n_kv_heads}")
    return max(n_kv_heads // tp, 1)


def tp_mesh(tp: int, n_kv_heads: int | None = None, *, devices=None) -> Mesh:
    """A ("kv", "rep") mesh of ``tp`` devices (the first ``tp`` of ``devices`` or ``jax.devices()``).

    n_kv_heads None (an FFN-only mesh): shape (tp, 1).
    """
    tp = positive_int("tp", tp)
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) < tp:
        raise ValueError(f"tp must be at most the number of devices ({len(devices)}); got {tp}")
    if n_kv_heads is not None:
        kv_heads_per_device(n_kv_heads, tp)  # validates the pair
    n_kv = tp if n_kv_heads is None else min(tp, n_kv_heads)
    return Mesh(np.array(devices[:tp]).reshape(n_kv, tp // n_kv), TP_AXES)


def _tp(mesh: Mesh) -> int:
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != TP_AXES:
        raise ValueError(f"mesh must be a jax.sharding.Mesh with axes {TP_AXES} (see tp_mesh); got {mesh!r}")
    return mesh.size


def ffn_param_specs(params: dict) -> dict:
    """PartitionSpecs of an FFN's parameters: d_ff split over all TP devices."""
    specs = {"w_gate": P(None, TP_AXES), "w_up": P(None, TP_AXES), "w_down": P(TP_AXES, None),
             "b_gate": P(TP_AXES), "b_up": P(TP_AXES), "b_down": P()}  # fmt: skip
    return {k: specs[k] for k in params}


def attention_param_specs(params: dict) -> dict:
    """PartitionSpecs of an attention layer's parameters: query heads over all devices, KV heads over "kv"
    (the per-head sink logits follow their query heads)."""
    specs = {"w_q": P(None, TP_AXES), "w_k": P(None, "kv"), "w_v": P(None, "kv"), "w_o": P(TP_AXES, None),
             "b_q": P(TP_AXES), "b_k": P("kv"), "b_v": P("kv"), "b_o": P(), "sinks": P(TP_AXES)}  # fmt: skip
    return {k: specs[k] for k in params}


def shard(tree, specs, mesh: Mesh):
    """``jax.device_put`` each leaf of ``tree`` with the NamedSharding of its spec."""
    _tp(mesh)
    return jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), tree, specs)


def shard_kv_cache(cache: KVCache, mesh: Mesh) -> KVCache:
    """The cache laid out like w_k / w_v: K split over "kv" (one replicated head per device when TP > K)."""
    check_cache(cache)
    kv_heads_per_device(cache.n_kv_heads, _tp(mesh))
    if mesh.shape["kv"] != min(mesh.size, cache.n_kv_heads):
        raise ValueError(f"mesh must have kv axis of size min(tp, K) = {min(mesh.size, cache.n_kv_heads)}; "
                         f"got {mesh.shape['kv']} (use tp_mesh(tp, n_kv_heads))")  # fmt: skip
    return shard(cache, KV_CACHE_SPECS, mesh)


def kv_cache_bytes_per_device(cache: KVCache) -> int:
    """Bytes of the cache's k and v buffers held by the busiest device (from the arrays' actual shards)."""
    per_device: dict = {}
    for arr in (cache.k, cache.v):
        for s in arr.addressable_shards:
            per_device[s.device] = per_device.get(s.device, 0) + s.data.nbytes
    return max(per_device.values())


def _check_mesh_heads(mesh: Mesh, n_heads: int, n_kv_heads: int) -> int:
    tp = _tp(mesh)
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    kv_heads_per_device(n_kv_heads, tp)
    if n_heads % tp:
        raise ValueError(f"tp must divide n_heads; got tp={tp}, n_heads={n_heads}")
    if mesh.shape["kv"] != min(tp, n_kv_heads):
        raise ValueError(f"mesh must have kv axis of size min(tp, K) = {min(tp, n_kv_heads)}; got "
                         f"{mesh.shape['kv']} (use tp_mesh(tp, n_kv_heads))")  # fmt: skip
    return tp


# ---- FFN ------------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("variant", "gelu", "opts", "mesh"))
def _ffn_tp(x, p, *, variant, gelu, opts, mesh):
    v = get_variant(variant)
    specs = ffn_param_specs(p)

    def body(x_, p_):
        local = {k: a for k, a in p_.items() if k != "b_down"}
        y = jax.lax.psum(_ffn(x_, local, v, gelu, dict(opts)), TP_AXES)  # (..., D) all-reduce of partial outputs
        return y + p_["b_down"] if "b_down" in p_ else y

    return jax.shard_map(body, mesh=mesh, in_specs=(P(), specs), out_specs=P())(x, p)


def ffn_forward_tp(x, params: dict, variant: str, *, mesh: Mesh, gelu: str = "erf", alpha=None, limit=None):
    """``ffn_forward`` with d_ff split over the mesh (params are moved to their layout if they are not)."""
    v = get_variant(variant)
    choice("gelu", gelu, GELU_APPROXIMATIONS)
    opts = tuple(ffn_options(v, alpha=alpha, limit=limit).items())
    x = float_array("x", x, min_ndim=1)
    p = _check_ffn_params(params, v, x.shape[-1])
    tp = _tp(mesh)
    if p["w_up"].shape[1] % tp:
        raise ValueError(f"tp must divide d_ff; got tp={tp}, d_ff={p['w_up'].shape[1]}")
    return _ffn_tp(x, shard(p, ffn_param_specs(p), mesh), variant=variant, gelu=gelu, opts=opts, mesh=mesh)


# ---- attention layer and decode step ---------------------------------------------------------------------


def _local_static(static: dict, tp: int) -> dict:
    n_heads, n_kv_heads = static["n_heads"], static["n_kv_heads"]
    return {**static, "n_heads": n_heads // tp, "n_kv_heads": kv_heads_per_device(n_kv_heads, tp)}


def _without_b_o(p: dict) -> dict:
    return {k: a for k, a in p.items() if k != "b_o"}


def _add_b_o(y, p: dict):
    return y + p["b_o"] if "b_o" in p else y


@partial(jax.jit, static_argnames=("static", "mesh"))
def _layer_tp(x, p, kv_lengths, *, static, mesh):
    local = _local_static(dict(static), mesh.size)

    def body(x_, p_, lengths_):
        y = layer_core(x_, _without_b_o(p_), lengths_, **local)  # (B, T, D) this device's heads' share
        return _add_b_o(jax.lax.psum(y, TP_AXES), p_)

    specs = attention_param_specs(p)
    return jax.shard_map(body, mesh=mesh, in_specs=(P(), specs, P()), out_specs=P())(x, p, kv_lengths)


def attention_layer_forward_tp(x, params: dict, *, mesh: Mesh, n_heads: int, n_kv_heads: int, rope=None,
                               causal=True, kv_lengths=None, window=None, softcap=None, scale=None):  # fmt: skip
    """``attention_layer_forward`` with query heads split over the mesh and KV heads split or replicated."""
    x, p, lengths, static = check_layer(x, params, n_heads, n_kv_heads, rope, causal, kv_lengths, window, softcap,
                                        scale)  # fmt: skip
    _check_mesh_heads(mesh, n_heads, n_kv_heads)
    if lengths is None:
        lengths = jnp.full((x.shape[0],), x.shape[1], jnp.int32)  # (B,) no padding: every key valid
    p = shard(p, attention_param_specs(p), mesh)
    return _layer_tp(x, p, lengths, static=tuple(sorted(static.items())), mesh=mesh)


@partial(jax.jit, static_argnames=("static", "mesh"), donate_argnames=("cache",))
def _decode_step_tp(x, p, cache, *, static, mesh):
    local = _local_static(dict(static), mesh.size)

    def body(x_, p_, cache_):
        y, new_cache = step_core(x_, _without_b_o(p_), cache_, **local)
        return _add_b_o(jax.lax.psum(y, TP_AXES), p_), new_cache

    specs = attention_param_specs(p)
    fn = jax.shard_map(body, mesh=mesh, in_specs=(P(), specs, KV_CACHE_SPECS), out_specs=(P(), KV_CACHE_SPECS))
    return fn(x, p, cache)


def decode_step_tp(x_t, params: dict, cache: KVCache, *, mesh: Mesh, n_heads: int, n_kv_heads: int, rope=None,
                   window=None, softcap=None, scale=None):  # fmt: skip
    """``decode_step`` on a sharded cache (see shard_kv_cache): returns (y_t, new sharded cache).

    The cache is donated, as in ``decode_step``; overflow is checked the same way.
    """
    x, p, single, static = _check_step(x_t, params, cache, n_heads, n_kv_heads, rope, window, softcap, scale,
                                       overflow=True)  # fmt: skip
    _check_mesh_heads(mesh, n_heads, n_kv_heads)
    p = shard(p, attention_param_specs(p), mesh)
    y, cache = _decode_step_tp(x, p, cache, static=tuple(sorted(static.items())), mesh=mesh)
    return (y[:, 0] if single else y), cache


# ---- MoE: expert parallelism ---------------------------------------------------------------------------------
# Mesh ("expert",) of n devices: the stacked expert weights (E, ...) are split along E, E/n experts per device;
# the router, the shared experts and the tokens are replicated. Each device routes every token (the same
# selection everywhere), runs its own experts on the slots routed to them (refimpl.jax.moe.routed_experts with
# its expert offset) and one all-reduce (psum) over "expert" sums the partial outputs; the shared experts are
# added once, after it. GShard-style all-to-all dispatch of sharded tokens is not modelled: same math, and
# "sharded equals unsharded" checks the expert-to-device map.

EP_AXIS = "expert"


def ep_mesh(n_devices: int, *, devices=None) -> Mesh:
    """A one-axis ("expert",) mesh of the first ``n_devices`` of ``devices`` (default ``jax.devices()``)."""
    n_devices = positive_int("n_devices", n_devices)
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) < n_devices:
        raise ValueError(f"n_devices must be at most the number of devices ({len(devices)}); got {n_devices}")
    return Mesh(np.array(devices[:n_devices]), (EP_AXIS,))


def moe_param_specs(params: dict) -> dict:
    """PartitionSpecs of MoE parameters: expert weights and biases split along E; everything else replicated."""
    return {k: jax.tree.map(lambda _: P(), a) if k == "shared" else P(EP_AXIS) if k in EXPERT_KEYS else P()
            for k, a in params.items()}  # fmt: skip


@partial(jax.jit, static_argnames=("static", "mesh"))
def _moe_ep(x, p, *, static, mesh):
    s = dict(static)
    v, opts = get_variant(s["variant"]), dict(s["opts"])

    def body(x_, p_):
        x2 = x_.reshape(-1, x_.shape[-1])  # (T, D)
        selected, weights = route(router_logits(x2, p_), s["top_k"], s["routing"], s["normalize"])  # (T, k) each
        experts = {k: a for k, a in p_.items() if k in EXPERT_KEYS}  # (E/n, ...) this device's experts
        offset = jax.lax.axis_index(EP_AXIS) * experts["w_up"].shape[0]
        # NOTE(jax): JAX 0.10.2's sort drops the device-varying type ({V:expert}) of its result under shard_map,
        # so the token gather x2[order] was transposed as if every device had device 0's order (dx wrong,
        # found by tests/jax_sharding_check.py); marking x2 varying makes its cotangent the psum it must be.
        x_local = jax.lax.pcast(x2, EP_AXIS, to="varying")  # (T, D)
        y = routed_experts(x_local, experts, selected, weights, v, s["gelu"], opts, offset)  # (T, D) partial
        y = jax.lax.psum(y, EP_AXIS) + shared_experts(x2, p_, v, s["gelu"], opts)  # all-reduce, then shared
        return y.reshape(x_.shape)

    return jax.shard_map(body, mesh=mesh, in_specs=(P(), moe_param_specs(p)), out_specs=P())(x, p)


def moe_forward_ep(x, params: dict, variant: str, *, mesh: Mesh, top_k: int, routing: str = "softmax_topk",
                   normalize: bool = True, gelu: str = "erf", alpha=None, limit=None):  # fmt: skip
    """``moe_forward`` with the experts split over an ("expert",) mesh (see ep_mesh); differentiable."""
    x, p, _, opts = check_moe(x, params, variant, top_k, routing, normalize, gelu, alpha, limit)
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != (EP_AXIS,):
        raise ValueError(f"mesh must be a jax.sharding.Mesh with the one axis {EP_AXIS!r} (see ep_mesh); got {mesh!r}")
    if p["w_up"].shape[0] % mesh.size:
        raise ValueError(f"the mesh's {mesh.size} devices must divide the E={p['w_up'].shape[0]} experts")
    p = jax.tree.map(lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec)), p, moe_param_specs(p))
    static = dict(variant=variant, top_k=top_k, routing=routing, normalize=normalize, gelu=gelu,
                  opts=tuple(opts.items()))  # fmt: skip
    return _moe_ep(x, p, static=tuple(sorted(static.items())), mesh=mesh)
