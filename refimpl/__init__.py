"""glugqa's float64 NumPy reference: GLU-variant FFNs, mixture-of-experts layers and grouped-query attention
with manual backprop.

Ops load lazily (module-level ``__getattr__``) so ``import refimpl.variants`` stays cheap for the cost
model and the CLI.
"""

from __future__ import annotations

import importlib

from .variants import FFN_VARIANTS, PAPER_VARIANTS, FFNVariant, get_variant

# public name -> submodule that defines it
_LAZY = {
    "sigmoid": "activations",
    "relu": "activations",
    "gelu": "activations",
    "swish": "activations",
    "identity": "activations",
    "init_ffn_params": "ffn",
    "ffn_forward": "ffn",
    "ffn_backward": "ffn",
    "matched_d_ff": "ffn",
    "init_moe_params": "moe",
    "moe_forward": "moe",
    "moe_backward": "moe",
    "load_balancing_loss": "router",
    "load_balancing_loss_backward": "router",
    "pack_gate_up": "convert",
    "unpack_gate_up": "convert",
    "check_grads": "gradcheck",
    "assert_grads_close": "gradcheck",
    "GradCheckReport": "gradcheck",
    "attention_forward": "attention",
    "attention_backward": "attention",
    "rope_forward": "rope",
    "rope_backward": "rope",
    "init_attention_params": "layer",
    "attention_layer_forward": "layer",
    "attention_layer_backward": "layer",
    "KVCache": "kv_cache",
    "decode_step": "kv_cache",
    "mean_pool_kv_heads": "convert",
    "expand_kv_heads": "convert",
    "convert_rope_layout": "convert",
    "attention_mask": "masks",
    "Rope": "rope",
    "rope_permutation": "rope",
}

__all__ = ["FFN_VARIANTS", "PAPER_VARIANTS", "FFNVariant", "get_variant", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
