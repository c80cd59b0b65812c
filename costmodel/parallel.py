"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): what one of ``tp`` devices holds and communicates.

- Query heads split evenly: N % tp == 0 or ValueError (n_heads).
- KV heads: K/tp per device when tp <= K; when tp > K each device keeps one whole KV head, replicated
  tp/K times (K/tp would be a fraction of a head). vLLM's rule: K % tp == 0 or tp % K == 0.
- FFN columns split: F % tp == 0; embeddings and lm_head are vocab-parallel (ceil(V/tp) rows, padded);
  norms, the output/down biases and position tables are replicated.
- Two all-reduces of the (B, T, D) activations per layer (after attention and after the FFN); a ring
  all-reduce moves 2(tp-1)/tp of the message over each link (Patarasuk & Yuan 2009; NCCL's ring).
- Collective latency (NCCL's own model, src/graph/tuning.cc): a ring all-reduce takes 2(tp-1) steps, each with
  the link's step latency (NVLink 0.6 µs, PCIe 1.0 µs, network 2.7 µs: the hardware file), after a start-up
  latency (software: ``eff.collective_latency_s``). On a fabric that joins every pair of a node's devices
  directly (NVSwitch, AMD's fully connected Infinity Fabric: ``link_direct`` in the hardware file) inference
  stacks run a two-shot all-reduce instead (a reduce-scatter and an all-gather, one step each: TensorRT-LLM's
  and vLLM's custom all-reduce, Meta's RCCLX "direct data access"): the same 2(tp-1)/tp bytes in 2 steps.
  Devices of one node (``devices_per_node``) talk over the link; tensor parallelism across nodes runs rings
  over the network: 2(nodes-1) of the steps cross it and the bandwidth is the network's per device
  (:func:`collective_path`).

Expert parallelism (GShard, Lepikhin et al. 2020; DeepSpeed-MoE, Rajbhandari et al. 2022): ``ep`` groups of
``tp`` devices (tp·ep devices in all). Each group serves 1/ep of the batch with its own copy of the
attention and dense weights, holds E/ep whole experts (each split over the group's tp devices like a dense
FFN), and every MoE layer sends each token to the groups of its k experts and back: two all-to-alls
(dispatch and combine), costed with the α–β model below.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import number_in
from .config import ModelConfig, check_cfg, positive_int, show
from .hardware import Hardware
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


MAX_MESSAGE_BYTES = 1e18  # bounds every message size: keeps the times finite


class NoLinkError(ValueError):
    """A collective needs a link (or an inter-node network) the hardware does not give. ``short``: the same
    in a few words, for a table cell (the message says what to add)."""

    def __init__(self, message: str, short: str):
        super().__init__(message)
        self.short = short


@dataclass(frozen=True)
class CollectivePath:
    """Where a collective over ``devices`` devices runs: bandwidth per direction per device, the latency of one
    ring step within a node and across nodes, the number of nodes, and a note when it leaves the node."""

    bandwidth: float
    step_latency_s: float
    network_step_latency_s: float
    nodes: int
    note: str = ""
    direct: bool = False  # every pair of devices one hop apart (two-shot all-reduce: 2 steps)


def collective_path(hw: Hardware, devices: int, *, step_latency_s: float | None = None) -> CollectivePath:
    """The link of ``hw`` when ``devices`` fit in one node (``hw.devices_per_node``; None: no limit), else the
    inter-node network (ValueError when the hardware gives none). ``step_latency_s`` overrides the link's."""
    devices = positive_int("devices", devices)
    step = hw.link_latency_s
    if step_latency_s is not None:
        step = number_in("link_latency_s", step_latency_s, 0.0, 1e-3, unit="s")
    per_node = hw.devices_per_node
    if per_node is None or devices <= per_node:
        if hw.link_bandwidth is None:
            raise NoLinkError(
                f"link_bandwidth must be a positive number of bytes/s for {devices} devices; {hw.name} has none "
                "(give link_bandwidth in a hardware file)",
                f"no link for {devices} devices",
            )
        return CollectivePath(hw.link_bandwidth, step, hw.network_latency_s, 1, direct=hw.link_direct)
    nodes = -(-devices // per_node)
    if hw.network_bandwidth is None:
        raise NoLinkError(
            f"{devices} devices span {nodes} nodes of {per_node} {hw.name}; the hardware gives no network_bandwidth "
            "between nodes (give network_bandwidth in a hardware file)",
            f"no network for {devices} devices",
        )
    note = (
        f"{devices} devices exceed one node's {per_node}: collectives are timed on the inter-node network "
        f"({hw.network or 'network'}, {hw.network_bandwidth / 1e9:g} GB/s per device), not the {hw.link or 'link'}"
    )
    return CollectivePath(hw.network_bandwidth, step, hw.network_latency_s, nodes, note)


TWO_SHOT_STEPS = 2  # a reduce-scatter and an all-gather, each one hop on a directly connected fabric


def ring_allreduce_latency(tp: int, path: CollectivePath, *, base_s: float = 0.0) -> float:
    """The α of an all-reduce over ``tp`` devices on ``path``: base_s + (2(tp-1) - 2(nodes-1)) · step +
    2(nodes-1) · network step for a ring (NCCL's model, src/graph/tuning.cc, ncclTopoTuneModel); base_s +
    2 · step for a two-shot all-reduce on a direct fabric within one node; 0 for tp = 1."""
    tp = positive_int("tp", tp)
    if tp == 1:
        return 0.0
    if path.direct and path.nodes == 1:
        return base_s + min(TWO_SHOT_STEPS, 2 * (tp - 1)) * path.step_latency_s
    inter = 2 * (path.nodes - 1)
    return base_s + (2 * (tp - 1) - inter) * path.step_latency_s + inter * path.network_step_latency_s


def alpha_beta_time(
    bytes_sent: float, link_bandwidth: float, *, alpha_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """alpha_s + bytes_sent / (link_bandwidth · efficiency): the latency-bandwidth (α–β) cost of a
    collective whose busiest link carries ``bytes_sent`` (Hockney 1994; Thakur, Rabenseifner & Gropp 2005
    give each collective's α and β multiples). ``alpha_s`` is the collective's total start-up latency.
    Every argument is checked (finite, in range), so the time is finite."""
    if link_bandwidth is None or isinstance(link_bandwidth, bool) or not isinstance(link_bandwidth, (int, float)) \
            or not 0 < link_bandwidth < float("inf"):
        raise ValueError(f"link_bandwidth must be a positive number of bytes/s; got {show(link_bandwidth)}")
    bytes_sent = number_in("bytes_sent", bytes_sent, 0.0, MAX_MESSAGE_BYTES, unit="B")
    alpha_s = number_in("latency_s", alpha_s, 0.0, 1.0, unit="s")
    efficiency = number_in("efficiency", efficiency, 0.01, 1.0)
    return bytes_sent / (link_bandwidth * efficiency) + alpha_s


def ring_allreduce_bytes(message_bytes: float, tp: int) -> float:
    """Bytes each device sends (and receives) in a ring all-reduce: 2(tp-1)/tp · message."""
    tp = positive_int("tp", tp)
    return 2 * (tp - 1) / tp * number_in("message_bytes", message_bytes, 0.0, MAX_MESSAGE_BYTES, unit="B")


def allreduce_time(
    message_bytes: float, tp: int, link_bandwidth: float, *, latency_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """2(tp-1)/tp · bytes / (link_bandwidth · efficiency) + latency_s (the whole α, e.g.
    :func:`ring_allreduce_latency`); 0 for tp = 1."""
    tp = positive_int("tp", tp)
    if tp == 1:
        return 0.0
    if link_bandwidth is None:
        raise ValueError("link_bandwidth must be a positive number of bytes/s for tp > 1; got None")
    return alpha_beta_time(
        ring_allreduce_bytes(message_bytes, tp), link_bandwidth, alpha_s=latency_s, efficiency=efficiency
    )


def alltoall_bytes(message_bytes: float, ep: int) -> float:
    """Bytes each device sends in an all-to-all of ``message_bytes`` spread evenly over ``ep`` devices:
    the (ep-1)/ep that leaves the device."""
    ep = positive_int("ep", ep)
    return (ep - 1) / ep * number_in("message_bytes", message_bytes, 0.0, MAX_MESSAGE_BYTES, unit="B")


def alltoall_time(
    message_bytes: float, ep: int, link_bandwidth: float, *, latency_s: float = 0.0, efficiency: float = 1.0
) -> float:
    """(ep-1)/ep · bytes / (link_bandwidth · efficiency) + (ep-1) · latency_s: a pairwise all-to-all sends
    one message to each of the other ep-1 devices (Thakur et al. 2005). 0 for ep = 1."""
    ep = positive_int("ep", ep)
    if ep == 1:
        return 0.0
    latency_s = number_in("latency_s", latency_s, 0.0, 1.0, unit="s")
    return alpha_beta_time(
        alltoall_bytes(message_bytes, ep), link_bandwidth, alpha_s=(ep - 1) * latency_s, efficiency=efficiency
    )
