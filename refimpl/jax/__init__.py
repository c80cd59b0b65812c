"""The reference as jit-compiled JAX, mirroring ``refimpl`` file for file (activations, ffn, router, moe, masks,
attention, rope, layer, kv_cache), plus tensor- and expert-parallel layouts (sharding) and the parity suite
(verify).

Same function names and formulas as the NumPy package; differences are marked ``# NOTE(jax)`` in the code
(forward functions return outputs without caches, ``*_backward`` helpers are ``jax.vjp``, arrays keep their
dtype, the KV cache is an immutable pytree). Checked against NumPy by ``glugqa ref verify`` / tests.
Ops load lazily, like ``refimpl``'s.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "activation": "activations",
    "activation_grad": "activations",
    "init_ffn_params": "ffn",
    "ffn_forward": "ffn",
    "ffn_backward": "ffn",
    "matched_d_ff": "ffn",
    "init_moe_params": "moe",
    "moe_forward": "moe",
    "moe_backward": "moe",
    "load_balancing_loss": "router",
    "load_balancing_loss_backward": "router",
    "attention_mask": "masks",
    "attention_forward": "attention",
    "attention_backward": "attention",
    "rope_forward": "rope",
    "rope_backward": "rope",
    "init_attention_params": "layer",
    "attention_layer_forward": "layer",
    "attention_layer_backward": "layer",
    "KVCache": "kv_cache",
    "decode_step": "kv_cache",
    "tp_mesh": "sharding",
    "shard": "sharding",
    "shard_kv_cache": "sharding",
    "ffn_forward_tp": "sharding",
    "attention_layer_forward_tp": "sharding",
    "decode_step_tp": "sharding",
    "kv_cache_bytes_per_device": "sharding",
    "ep_mesh": "sharding",
    "moe_forward_ep": "sharding",
    "parity_rows": "verify",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refimpl.jax' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
