"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): what one of ``tp`` devices holds and communicates.

- Query heads split evenly: N % tp == 0 or ValueError (n_heads).
- KV heads: K/tp per device when tp <= K; when tp > K each device keeps one whole KV head, replicated
  tp/K times (K/tp would be a fraction of a head). vLLM's rule: K % tp == 0 or tp % K == 0.
- FFN columns split: F % tp == 0; embeddings and lm_head are vocab-parallel (ceil(V/tp) rows, padded);
  norms, the output/down biases and position tables are replicated.
- Two all-reduces of the (B, T, D) activations per layer (after attention and after the FFN); a ring
  all-reduce moves 2(tp-1)/tp of the message over each link (Patarasuk & Yuan 2009; NCCL's ring).

Expert parallelism (GShard, Lepikhin et al. 2020; DeepSpeed-MoE, Rajbhandari et al. 2022): ``ep`` groups of
``tp`` devices (tp·ep devices in all). Each group serves 1/ep of the batch with its own copy of the
attention and dense weights, holds E/ep whole experts (each split over the group's tp devices like a dense
FFN), and every MoE layer sends each token to the groups of its k experts and back: two all-to-alls
(dispatch and combine), costed with the α–β model below.
"""

from __future__ import annotations

from .config import ModelConfig, check_cfg, positive_int, show
from .params import param_breakdown

ALLREDUCES_PER_LAYER = 2  # one after the attention output projection, one after the FFN down projection


def check_tp(cfg: ModelConfig, tp: int) -> int:
    """``tp`` validated against the model: divides n_heads and every FFN width it shards (d_ff when a layer
    has a dense FFN, the expert and shared-expert widths of a MoE block); K % tp == 0 or tp % K == 0."""
    tp = positive_int("tp", tp)
    if check_cfg(cfg).n_heads % tp:
        raise ValueError(f"tp must divide n_heads={cfg.n_heads}; got tp={tp}")
    widths = {}
    if cfg.n_moe_layers < cfg.n_layers or cfg.is_encoder_decoder:
        widths["d_ff"] = cfg.d_ff
    if cfg.moe is not None:
        widths["moe.d_ff"] = cfg.moe.d_ff
        if cfg.moe.n_shared:
            widths["moe.shared_d_ff"] = cfg.moe.shared_width
    for name, width in widths.items():
        if width % tp:
            raise ValueError(f"tp must divide {name}={width}; got tp={tp}")
    k = cfg.n_kv_heads
    if k % tp and tp % k:
        raise ValueError(f"tp must divide n_kv_heads={k} or be a multiple of it; got tp={tp}")
    return tp


def check_ep(cfg: ModelConfig, ep: int) -> int:
    """``ep`` validated: 1, or (for a MoE model) a divisor of the number of experts E."""
    ep = positive_int("ep", ep)
    if ep > 1:
        if check_cfg(cfg).moe is None:
            raise ValueError(f"ep applies to mixture-of-experts models; {cfg.name!r} has no experts (ep=1)")
        if cfg.moe.n_experts % ep:
            raise ValueError(f"ep must divide the number of experts {cfg.moe.n_experts}; got ep={ep}")
    return ep


def kv_heads_per_device(n_kv_heads: int, tp: int) -> int:
    """max(K/tp, 1): K/tp when tp <= K, else 1 (each device keeps a whole, replicated KV head)."""
    k, tp = positive_int("n_kv_heads", n_kv_heads), positive_int("tp", tp)
    if k % tp and tp % k:
        raise ValueError(f"tp must divide n_kv_heads={k} or be a multiple of it; got tp={tp}")
    return max(k // tp, 1)


_TP_SPLIT = frozenset({"w_q", "w_o", "b_q", "sinks", "w_gate", "w_up", "w_down", "b_gate", "b_up"})
_KV_SPLIT = frozenset({"w_k", "w_v", "b_k", "b_v"})


def per_device_param_breakdown(cfg: ModelConfig, tp: int = 1, *, ep: int = 1) -> dict[str, int]:
    """param_breakdown for one of ``tp`` x ``ep`` devices (tp=1, ep=1: the whole model). Routed experts are
    split over the ``ep`` groups (E/ep whole experts each), then every matrix over the ``tp`` devices of a
    group like the dense layers."""
    tp, ep = check_tp(cfg, tp), check_ep(cfg, ep)
    k_dev = kv_heads_per_device(cfg.n_kv_heads, tp)
    out = {}
    for key, n in param_breakdown(cfg).items():
        leaf = key.rsplit("/", 1)[-1]
        if leaf in _TP_SPLIT:
            n //= tp
        elif leaf in _KV_SPLIT:
            n = n // cfg.n_kv_heads * k_dev
        elif key in ("embed", "lm_head"):
            n = -(-cfg.vocab_size // tp) * cfg.d_model
        # else: norms, q/k norms, b_o, b_down, the router, pos_embed, rel_bias: replicated
        out[key] = n // ep if "/moe/experts/" in f"/{key}" else n
    return out


def alpha_beta_time(
    bytes_sent: float, link_bandwidth: float, *, alpha_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """alpha_s + bytes_sent / (link_bandwidth · efficiency): the latency-bandwidth (α–β) cost of a
    collective whose busiest link carries ``bytes_sent`` (Hockney 1994; Thakur, Rabenseifner & Gropp 2005
    give each collective's α and β multiples). ``alpha_s`` is the collective's total start-up latency."""
    if link_bandwidth is None or isinstance(link_bandwidth, bool) or not link_bandwidth > 0:
        raise ValueError(f"link_bandwidth must be a positive number of bytes/s; got {show(link_bandwidth)}")
    if not alpha_s >= 0:
        raise ValueError(f"latency_s must be >= 0; got {show(alpha_s)}")
    return bytes_sent / (link_bandwidth * efficiency) + alpha_s


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
    return alpha_beta_time(
        ring_allreduce_bytes(message_bytes, tp), link_bandwidth, alpha_s=latency_s, efficiency=efficiency
    )


def alltoall_bytes(message_bytes: float, ep: int) -> float:
    """Bytes each device sends in an all-to-all of ``message_bytes`` spread evenly over ``ep`` devices:
    the (ep-1)/ep that leaves the device."""
    ep = positive_int("ep", ep)
    return (ep - 1) / ep * message_bytes


def alltoall_time(
    message_bytes: float, ep: int, link_bandwidth: float, *, latency_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """(ep-1)/ep · bytes / (link_bandwidth · efficiency) + (ep-1) · latency_s: a pairwise all-to-all sends
    one message to each of the other ep-1 devices (Thakur et al. 2005). 0 for ep = 1."""
    ep = positive_int("ep", ep)
    if ep == 1:
        return 0.0
    return alpha_beta_time(
        alltoall_bytes(message_bytes, ep), link_bandwidth, alpha_s=(ep - 1) * latency_s, efficiency=efficiency
    )
