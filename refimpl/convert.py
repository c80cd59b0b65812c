"""Attention-layer checkpoint conversion: MHA -> GQA (Ainslie et al. 2023, sec. 2.1), GQA -> MHA, rope layout.

Shape legend: D d_model, N query heads, K_in / K key/value heads before / after, G = K_in / K source heads
pooled into one, R = N / K, Dh head dim. Weights are head-major: column h*Dh + d of w_k is head h, dim d.

MHA -> GQA (``mean_pool_kv_heads``): target KV head g takes the contiguous source heads g*G .. g*G + G - 1
(the query heads that read them, n // R_in, all land in group g: the head map n // R is kept), and

    method="mean"    W_k[:, g] = (1/G) sum_i W_k_in[:, g*G + i]   (likewise W_v, b_k, b_v): the paper's choice
    method="first"   W_k[:, g] = W_k_in[:, g*G]                   (ablation: first head of each group)
    method="random"  W_k[:, g] ~ N(0, 1/D)                        (ablation: "initialises heads from scratch")

w_q, w_o and their biases are kept. Paper ablation (T5-Large -> MQA, uptrained at alpha = 0.05): mean 55.6 >
first 55.1 > random 54.6. The source may itself be GQA (K_in < N): GQA-8 -> GQA-4 pools pairs.

GQA -> MHA (``expand_kv_heads``): query head n gets a copy of KV head n // R; the expanded MHA layer gives
the same outputs exactly (each query head reads the same keys and values as before).

FFN gate/up packing (``pack_gate_up`` / ``unpack_gate_up``): checkpoints store w_gate and w_up as one matrix
of 2F columns, in one of two layouts (GATE_UP_LAYOUTS); both act on the last axis, so they serve weights
(..., D, F) and biases (..., F) alike, stacked experts included.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import choice, is_float_dtype
from .layer import check_heads, check_params
from .rope import rope_permutation

POOL_METHODS = ("mean", "first", "random")
GATE_UP_LAYOUTS = ("interleaved", "concat")
_KV_PARAMS = ("w_k", "w_v", "b_k", "b_v")


def _kv_heads_of(params: dict, n_heads: int) -> tuple[dict, int, int]:
    """Validated float64 copy of params, the head dim and the number of KV heads w_k holds."""
    if not isinstance(params, dict) or "w_q" not in params or "w_k" not in params:
        raise ValueError("params must be an attention layer's parameter dict with 'w_q' and 'w_k'")
    w_q, w_k = np.shape(params["w_q"]), np.shape(params["w_k"])
    if len(w_q) != 2 or len(w_k) != 2 or w_q[1] % n_heads or w_q[1] == 0:
        raise ValueError(f"params['w_q'] must have shape (D, N*Dh) with N={n_heads}; got {w_q}")
    head_dim = w_q[1] // n_heads
    if w_k[1] == 0 or w_k[1] % head_dim or n_heads % (w_k[1] // head_dim):
        raise ValueError(f"params['w_k'] must have K*Dh columns (Dh={head_dim}, K | N={n_heads}); got {w_k}")
    k_in = w_k[1] // head_dim
    p, _ = check_params(params, n_heads, k_in)
    return p, head_dim, k_in


def _cast_like(new: dict, original: dict) -> dict:
    return {k: np.asarray(v).astype(np.asarray(original[k]).dtype, copy=True) for k, v in new.items()}


def mean_pool_kv_heads(params: dict, n_heads: int, n_kv_heads: int, *, method="mean", rng=None) -> dict:
    """Convert a layer with K_in KV heads (MHA: K_in = N) to n_kv_heads by pooling contiguous groups.

    Returns a new dict (arrays copied, each in its source dtype); ``rng`` (numpy Generator) is required
    for method="random" only.
    """
    choice("method", method, POOL_METHODS)
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    p, head_dim, k_in = _kv_heads_of(params, n_heads)
    if k_in % n_kv_heads:
        raise ValueError(f"n_kv_heads must divide the source's {k_in} KV heads; got n_kv_heads={n_kv_heads}")
    if method == "random" and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator for method='random'; got {rng!r}")
    pooled_size = k_in // n_kv_heads
    d_model = p["w_q"].shape[0]
    out = {k: v for k, v in p.items() if k not in _KV_PARAMS}
    for name in _KV_PARAMS:
        if name not in p:
            continue
        lead = p[name].shape[:-1]  # (D,) for weights, () for biases
        heads = p[name].reshape(*lead, n_kv_heads, pooled_size, head_dim)  # (..., K, G, Dh)
        if method == "mean":
            new = heads.mean(axis=-2)  # (..., K, Dh)
        elif method == "first":
            new = heads[..., 0, :]  # (..., K, Dh)
        else:
            new = rng.standard_normal((*lead, n_kv_heads, head_dim)) / math.sqrt(d_model)  # (..., K, Dh)
        out[name] = new.reshape(*lead, n_kv_heads * head_dim)  # (D, K*Dh) or (K*Dh,)
    return _cast_like({k: out[k] for k in p}, params)


def expand_kv_heads(params: dict, n_heads: int, n_kv_heads: int) -> dict:
    """GQA -> MHA: repeat each KV head's columns R = N/K times (query head n gets KV head n // R). Exact."""
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    p, head_dim, k_in = _kv_heads_of(params, n_heads)
    if k_in != n_kv_heads:
        raise ValueError(f"n_kv_heads must equal the {k_in} KV heads params['w_k'] holds; got {n_kv_heads}")
    n_groups = n_heads // n_kv_heads
    out = dict(p)
    for name in _KV_PARAMS:
        if name in p:
            lead = p[name].shape[:-1]
            heads = p[name].reshape(*lead, n_kv_heads, head_dim)  # (..., K, Dh)
            out[name] = np.repeat(heads, n_groups, axis=-2).reshape(*lead, n_heads * head_dim)  # (..., N*Dh)
    return _cast_like(out, params)


def convert_rope_layout(params: dict, n_heads: int, n_kv_heads: int, *, src: str, dst: str) -> dict:
    """Permute w_q, w_k (and b_q, b_k) columns within each head so rope layout ``dst`` reproduces ``src``.

    E.g. Meta's interleaved Llama checkpoint -> HF's half-split layout: src="interleaved", dst="half".
    The converted layer's outputs are identical (see refimpl.rope.rope_permutation).
    """
    n_heads, n_kv_heads = check_heads(n_heads, n_kv_heads)
    p, head_dim = check_params(params, n_heads, n_kv_heads)
    out = dict(p)
    for name, heads in (("w_q", n_heads), ("b_q", n_heads), ("w_k", n_kv_heads), ("b_k", n_kv_heads)):
        if name in p:
            out[name] = p[name][..., rope_permutation(head_dim, heads, src=src, dst=dst)]  # same shape
    return _cast_like(out, params)


def _float_input(name: str, value) -> np.ndarray:
    if not isinstance(value, np.ndarray) or not is_float_dtype(value.dtype) or value.ndim == 0:
        raise ValueError(f"{name} must be a NumPy floating-point array with at least one axis; got {value!r:.80}")
    return value


def pack_gate_up(w_gate: np.ndarray, w_up: np.ndarray, *, layout: str = "interleaved") -> np.ndarray:
    """One (..., 2F) array holding w_gate (..., F) and w_up (..., F) along the last axis.

    layout="interleaved": gate in columns 0::2, up in 1::2 -- gpt-oss (Transformers ``GptOssExperts``:
        ``gate_up_proj`` (E, D, 2F) and ``gate_up_proj_bias`` (E, 2F), read as ``gate_up[..., ::2]``,
        ``gate_up[..., 1::2]``).
    layout="concat": [gate | up], gate in columns :F -- Mixtral, Qwen2/3-MoE (Transformers ``MixtralExperts``:
        ``gate_up_proj`` (E, 2F, D) applied by ``F.linear`` and split by ``chunk(2)``: pass its transpose over
        the last two axes, (E, D, 2F)).
    The result has the inputs' dtype; ``unpack_gate_up`` inverts it exactly.
    """
    choice("layout", layout, GATE_UP_LAYOUTS)
    w_gate, w_up = _float_input("w_gate", w_gate), _float_input("w_up", w_up)
    if w_up.shape != w_gate.shape or w_up.dtype != w_gate.dtype:
        raise ValueError(f"w_up must have w_gate's shape {w_gate.shape} and dtype {w_gate.dtype}; "
                         f"got {w_up.shape} {w_up.dtype}")  # fmt: skip
    if layout == "concat":
        return np.concatenate([w_gate, w_up], axis=-1)  # (..., 2F)
    return np.stack([w_gate, w_up], axis=-1).reshape(*w_gate.shape[:-1], 2 * w_gate.shape[-1])  # (..., 2F)


def unpack_gate_up(gate_up: np.ndarray, *, layout: str = "interleaved") -> tuple[np.ndarray, np.ndarray]:
    """(w_gate, w_up), each (..., F), from a packed (..., 2F) array in ``layout`` (see ``pack_gate_up``).

    Returns copies in the input's dtype; an odd last axis is a ``ValueError``.
    """
    choice("layout", layout, GATE_UP_LAYOUTS)
    gate_up = _float_input("gate_up", gate_up)
    if gate_up.shape[-1] % 2:
        raise ValueError(f"gate_up must have an even last axis (2F); got shape {gate_up.shape}")
    d_ff = gate_up.shape[-1] // 2
    if layout == "concat":
        return gate_up[..., :d_ff].copy(), gate_up[..., d_ff:].copy()  # (..., F) each
    return gate_up[..., 0::2].copy(), gate_up[..., 1::2].copy()  # (..., F) each
