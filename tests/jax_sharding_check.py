"""Run by tests/test_jax_sharding.py in a subprocess with 8 host CPU devices (XLA_FLAGS must be set before
JAX starts, so this cannot run inside the pytest process). Prints one JSON object per check, one per line.

Each check compares a sharded result with the *unsharded JAX port* and with the *NumPy reference*, in
float64, and reports the per-device shard shapes and KV-cache bytes actually held.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import refimpl  # noqa: E402
from refimpl.jax import ffn as jffn  # noqa: E402
from refimpl.jax import kv_cache as jkv  # noqa: E402
from refimpl.jax import layer as jlayer  # noqa: E402
from refimpl.jax import moe as jmoe  # noqa: E402
from refimpl.jax import sharding as sh  # noqa: E402
from refimpl.rope import Rope  # noqa: E402


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def ffn_checks(rng) -> None:
    for tp, variant, bias in ((8, "swiglu", True), (4, "gelu", False), (2, "glu", True)):
        params = refimpl.init_ffn_params(rng, 16, 32, variant, bias=bias)
        x = rng.standard_normal((3, 5, 16))  # (B, T, D)
        mesh = sh.tp_mesh(tp)
        y_tp = sh.ffn_forward_tp(x, params, variant, mesh=mesh)
        sharded = sh.shard(params, sh.ffn_param_specs(params), mesh)
        shard_shapes = {k: sorted({tuple(s.data.shape) for s in a.addressable_shards}) for k, a in sharded.items()}
        emit(check="ffn", tp=tp, variant=variant, bias=bias, shard_shapes=shard_shapes,
             vs_jax=rel(y_tp, jffn.ffn_forward(x, params, variant)),
             vs_numpy=rel(y_tp, refimpl.ffn_forward(x, params, variant)[0]))  # fmt: skip


def layer_checks(rng) -> None:
    n_heads, head_dim, d_model = 8, 4, 16
    cases = ((2, 8, None), (4, 2, Rope("half")), (8, 2, Rope("interleaved")), (8, 1, None), (4, 4, None))
    for tp, n_kv, rope in cases:
        params = refimpl.init_attention_params(rng, d_model, n_heads, n_kv, head_dim, bias=True, sinks=True)
        x = rng.standard_normal((2, 6, d_model))  # (B, T, D)
        kw = dict(n_heads=n_heads, n_kv_heads=n_kv, rope=rope, kv_lengths=np.array([6, 4]), window=4, softcap=5.0)
        mesh = sh.tp_mesh(tp, n_kv)
        y_tp = sh.attention_layer_forward_tp(x, params, mesh=mesh, **kw)
        y_np, _ = refimpl.attention_layer_forward(x, params, **kw)
        sharded = sh.shard(params, sh.attention_param_specs(params), mesh)
        shard_shapes = {k: sorted({tuple(s.data.shape) for s in a.addressable_shards}) for k, a in sharded.items()}
        emit(check="layer", tp=tp, n_kv_heads=n_kv, shard_shapes=shard_shapes,
             vs_jax=rel(y_tp, jlayer.attention_layer_forward(x, params, **kw)), vs_numpy=rel(y_tp, y_np))  # fmt: skip


def decode_checks(rng) -> None:
    n_heads, head_dim, d_model, batch, max_len, prompt, steps = 8, 4, 16, 2, 12, 5, 4
    for tp, n_kv in ((2, 4), (8, 2), (4, 1)):
        rope = Rope("half", offset=3)
        params = refimpl.init_attention_params(rng, d_model, n_heads, n_kv, head_dim, bias="qkv", sinks=tp == 8)
        x = rng.standard_normal((batch, prompt + steps, d_model))  # (B, T, D)
        kw = dict(n_heads=n_heads, n_kv_heads=n_kv, rope=rope)
        mesh = sh.tp_mesh(tp, n_kv)
        cache = sh.shard_kv_cache(jkv.KVCache.empty(batch, max_len, n_kv, head_dim, dtype=np.float64), mesh)
        outs = []
        y, cache = sh.decode_step_tp(x[:, :prompt], params, cache, mesh=mesh, **kw)  # prefill chunk
        outs.append(np.asarray(y))
        for t in range(prompt, prompt + steps):
            y, cache = sh.decode_step_tp(x[:, t], params, cache, mesh=mesh, **kw)
            outs.append(np.asarray(y)[:, None])
        y_full, _ = refimpl.attention_layer_forward(x, params, **kw)  # the causal forward of the whole sequence
        cache_np = refimpl.KVCache.empty(batch, max_len, n_kv, head_dim)
        refimpl.decode_step(x, params, cache_np, **kw)
        emit(check="decode", tp=tp, n_kv_heads=n_kv, vs_numpy=rel(np.concatenate(outs, axis=1), y_full),
             cache_vs_numpy=max(rel(cache.k, cache_np.k), rel(cache.v, cache_np.v)),
             cache_spec=str(cache.k.sharding.spec), kv_bytes_per_device=sh.kv_cache_bytes_per_device(cache),
             kv_bytes_total=int(cache.nbytes), itemsize=cache.k.dtype.itemsize,
             shape=[batch, max_len, n_kv, head_dim],
             compiles=sh._decode_step_tp._cache_size())  # fmt: skip


def moe_checks(rng) -> None:
    """Expert parallelism: experts split over an ("expert",) mesh; forward and gradients against one device."""
    d_model, d_ff = 16, 12
    cases = ((8, 8, "swiglu", "softmax_topk", {}), (4, 8, "swiglu_oss", "topk_softmax", dict(bias=True,
             router_bias=True)), (2, 6, "geglu", "softmax_topk", dict(n_shared=1, shared_gate=True)))  # fmt: skip
    for n_devices, n_experts, variant, routing, init_kw in cases:
        params = refimpl.init_moe_params(rng, d_model, d_ff, n_experts, variant, **init_kw)
        x = 2.0 * rng.standard_normal((3, 5, d_model))  # (B, T, D)
        dy = rng.standard_normal(x.shape)  # (B, T, D)
        kw = dict(top_k=2, routing=routing)
        mesh = sh.ep_mesh(n_devices)
        y_ep = sh.moe_forward_ep(x, params, variant, mesh=mesh, **kw)
        y_np, cache = refimpl.moe_forward(x, params, variant, **kw)
        g_np = refimpl.moe_backward(dy, cache)

        def loss(x_, p_, dy=dy, variant=variant, mesh=mesh, kw=kw):
            return jax.numpy.sum(dy * sh.moe_forward_ep(x_, p_, variant, mesh=mesh, **kw))

        dx, dp = jax.grad(loss, argnums=(0, 1))(x, params)
        grads = {"x": dx, **dp}
        flat = [(k, grads[k], g_np[k]) for k in g_np if k != "shared"]
        flat += [(f"shared.{k}", grads["shared"][k], g_np["shared"][k]) for k in g_np.get("shared", {})]
        placed = jax.device_put(params["w_up"], sh.NamedSharding(mesh, sh.P(sh.EP_AXIS)))
        emit(check="moe_ep", devices=n_devices, n_experts=n_experts, variant=variant,
             w_up_shards=sorted({tuple(s.data.shape) for s in placed.addressable_shards}),
             vs_jax=rel(y_ep, jmoe.moe_forward(x, params, variant, **kw)), vs_numpy=rel(y_ep, y_np),
             grads_vs_numpy={k: rel(g, ref) for k, g, ref in flat})  # fmt: skip


if __name__ == "__main__":
    emit(check="devices", count=jax.device_count())
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    ffn_checks(rng)
    layer_checks(rng)
    decode_checks(rng)
    moe_checks(rng)
