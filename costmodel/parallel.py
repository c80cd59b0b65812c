"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): what one of ``tp`` devices holds and communicates.

- Query heads split evenly: N % tp == 0 or ValueError (n_heads).
- KV heads: K/tp per device when tp <= K; when tp > K each device keeps one whole KV head, replicated
  tp/K times (K/tp would be a fraction of a head). vLLM's rule: K % tp == 0 or tp % K == 0.
- FFN columns split: F % tp == 0; embeddings and lm_head are vocab-parallel (ceil(V/tp) rows, padded);
  norms, the output/down biases and position tables are replicated.
- Two all-reduces of the (B, T, D) activations per layer (after attention and after the FFN); a ring
  all-reduce moves 2(tp-1)/tp of the message over each link (Patarasuk & Yuan 2009; NCCL's ring).
"""

from __future__ import annotations

from .config import ModelConfig, positive_int
from .params import param_breakdown

ALLREDUCES_PER_LAYER = 2  # one after the attention output projection, one after the FFN down projection


def check_tp(cfg: ModelConfig, tp: int) -> int:
    """``tp`` validated against the model: divides n_heads and d_ff; K % tp == 0 or tp % K == 0."""
    tp = positive_int("tp", tp)
    if cfg.n_heads % tp:
        raise ValueError(f"tp must divide n_heads={cfg.n_heads}; got tp={tp}")
    if cfg.d_ff % tp:
        raise ValueError(f"tp must divide d_ff={cfg.d_ff}; got tp={tp}")
    k = cfg.n_kv_heads
    if k % tp and tp % k:
        raise ValueError(f"tp must divide n_kv_heads={k} or be a multiple of it; got tp={tp}")
    return tp


def kv_heads_per_device(n_kv_heads: int, tp: int) -> int:
    """max(K/tp, 1): K/tp when tp <= K, else 1 (each device keeps a whole, replicated KV head)."""
    k, tp = positive_int("n_kv_heads", n_kv_heads), positive_int("tp", tp)
    if k % tp and tp % k:
        raise ValueError(f"tp must divide n_kv_heads={k} or be a multiple of it; got tp={tp}")
    return max(k // tp, 1)


def per_device_param_breakdown(cfg: ModelConfig, tp: int = 1) -> dict[str, int]:
    """param_breakdown for one of ``tp`` devices (tp=1: the whole model)."""
    tp = check_tp(cfg, tp)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    out = {}
    for key, n in param_breakdown(cfg).items():
        leaf = key.rsplit("/", 1)[-1]
        if leaf in ("w_q", "w_o", "b_q", "w_gate", "w_up", "w_down", "b_gate", "b_up"):
            out[key] = n // tp
        elif leaf in ("w_k", "w_v", "b_k", "b_v"):
            out[key] = n // cfg.n_kv_heads * k_dev
        elif key in ("embed", "lm_head"):
            out[key] = -(-cfg.vocab_size // tp) * cfg.d_model
        else:  # norms, b_o, b_down, pos_embed, rel_bias: replicated
            out[key] = n
    return out


def ring_allreduce_bytes(message_bytes: float, tp: int) -> float:
    """Bytes each device sends (and receives) in a ring all-reduce: 2(tp-1)/tp · message."""
    tp = positive_int("tp", tp)
    return 2 * (tp - 1) / tp * message_bytes


def allreduce_time(
    message_bytes: float, tp: int, link_bandwidth: float, *, latency_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """2(tp-1)/tp · bytes / (link_bandwidth · efficiency) + latency_s; 0 for tp = 1."""
    tp = positive_int("tp", tp)
    if tp == 1:
        return 0.0
    if link_bandwidth is None or not link_bandwidth > 0:
        raise ValueError(
            f"link_bandwidth must be a positive number of bytes/s for tp > 1; got {link_bandwidth!r}"
        )
    return ring_allreduce_bytes(message_bytes, tp) / (link_bandwidth * efficiency) + latency_s
