"""The ops (kernels) of one layer, one op each: its FLOPs and bytes on one device, and its roofline time.

``costmodel.latency`` sums these over the layers of a model (one call per distinct layer, times its count).
Each op takes max(compute, memory) + eff.kernel_overhead_s (costmodel.roofline gives the rates: weight-only
quantized weights stream at eff.dequant_int8/int4 of the bandwidth, an attention kernel reads the KV cache at
eff.attn_memory of it and computes at eff.attn_compute of the 16-bit rate); a collective takes its α–β time
(costmodel.parallel) plus one kernel overhead. To add a physical term or a serving effect, add an op here or
change :func:`op_cost`; the sums stay as they are.

Shape legend: B batch (per device group), T query length, S key/value length, D d_model, N_dev / K_dev query /
KV heads per device, Dh head dim, F_dev d_ff per device, E experts, k top-k, F_e expert width.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import flops as F
from .config import ModelConfig
from .hardware import Hardware
from .layers import Layer
from .memory import LOGITS_BYTES
from .moe import COMBINE_FLOPS_PER_ELEMENT, ROUTE_FLOPS_PER_LOGIT, expected_experts
from .parallel import CollectivePath, allreduce_time, alltoall_time, ring_allreduce_latency
from .params import NORM_VECTORS
from .roofline import (
    ROLE_ATTENTION,
    ROLE_LOGITS,
    ROLE_TOKENS,
    Efficiency,
    OpCost,
    gemm_tile_efficiency,
    varlen_attention_tile_efficiency,
)


@dataclass(frozen=True)
class Ctx:
    """What every op needs: the model, the chip, the parallel layout, byte sizes (per element) and rates."""

    cfg: ModelConfig
    hw: Hardware
    tp: int
    ep: int
    wb: float  # bytes per element of weight vectors (norms, biases) and the embedding table
    wm: float  # bytes per element of weight matrices: wb + group bytes / group size for grouped quantization
    kb: float  # KV cache bytes per element
    ab: float  # activation bytes per element
    flop_rate: float  # achieved FLOP/s of GEMMs: peak(compute dtype) · eff · chip factor
    attn_rate: float  # achieved FLOP/s of the attention core: 16-bit peak · eff.flops · eff.attn_compute · chip
    bandwidth: float  # achieved bytes/s of streams: hbm_bandwidth · eff.hbm · chip factor
    dequant: float  # weight-matrix bandwidth factor: eff.dequant_int8 / int4 for weight-only int8 / int4, else 1
    eff: Efficiency
    tp_path: CollectivePath | None  # where the tp all-reduces run (None for tp = 1)
    ep_path: CollectivePath | None  # where the ep all-to-alls run (None for ep = 1)
    n_dev: int  # query heads per device
    k_dev: int  # KV heads per device
    f_dev: int  # dense d_ff per device
    v_dev: int  # vocabulary rows per device
    split_core: bool  # name attention-core ops by layer kind (the model mixes kinds)


def op_cost(
    c: Ctx, name, count, flops, nbytes, *, weights=0.0, cache=0.0, attention=None, gemm=None, role=ROLE_TOKENS
) -> OpCost:
    """One op: ``nbytes`` in all, of which ``weights`` are weight-matrix bytes (streamed at eff.dequant of the
    bandwidth when quantized) and ``cache`` KV-cache bytes read by attention (at eff.attn_memory). A GEMM
    (``gemm=(m, n, groups)``: its output rows, columns and how many such GEMMs run together) or a fused
    attention (``attention=((heads, q_len), ...)``, one pair per sequence group) loses the unused part of its
    last wave of tiles when eff.wave_quantization (costmodel.roofline). Times are for ``count`` repeats;
    ``role``: what the op's cost follows (costmodel.roofline.ROLES)."""
    rest = nbytes - weights - cache
    rate = c.flop_rate if attention is None else c.attn_rate
    units = c.hw.compute_units
    if c.eff.wave_quantization and units:
        if gemm is not None:
            rate *= gemm_tile_efficiency(gemm[0], gemm[1], units, groups=gemm[2])
        elif attention is not None and max(q for _, q in attention) > 1:  # decode attention splits the keys
            rate *= varlen_attention_tile_efficiency(attention, units)
    compute = count * flops / rate
    memory = count * (rest + weights / c.dequant + cache / c.eff.attn_memory) / c.bandwidth
    overhead = count * c.eff.kernel_overhead_s
    bound = "compute" if compute >= memory else "memory"
    return OpCost(
        name, count, count * flops, count * nbytes, compute, memory, 0.0, overhead, max(compute, memory) + overhead,
        bound, role,
    )  # fmt: skip


def _link_op(name, count, comm, c: Ctx) -> OpCost:
    overhead = count * c.eff.kernel_overhead_s
    return OpCost(name, count, 0.0, 0.0, 0.0, 0.0, comm, overhead, comm + overhead, "link")


def allreduce_ops(c: Ctx, name, count, tokens) -> list[OpCost]:
    """A ring all-reduce of the (tokens, D) activations over the tp devices (none for tp = 1): α =
    eff.collective_latency_s + 2(tp-1) ring steps (costmodel.parallel.ring_allreduce_latency), β = 2(tp-1)/tp
    of the message over the link (or the network, past one node) at eff.link of its bandwidth."""
    if c.tp == 1:
        return []
    alpha = ring_allreduce_latency(c.tp, c.tp_path, base_s=c.eff.collective_latency_s)
    comm = count * allreduce_time(
        tokens * c.cfg.d_model * c.ab, c.tp, c.tp_path.bandwidth, latency_s=alpha, efficiency=c.eff.link
    )
    return [_link_op(name, count, comm, c)]


def alltoall_ops(c: Ctx, name, count, tokens) -> list[OpCost]:
    """An all-to-all over the ep groups sending each of ``tokens`` tokens to its k experts' groups: every
    device sends its 1/tp share of the (tokens·k, D) copies (none for ep = 1); α = eff.collective_latency_s +
    one step latency per message."""
    if c.ep == 1:
        return []
    path = c.ep_path
    message = tokens * c.cfg.moe.top_k * c.cfg.d_model * c.ab / c.tp
    step = path.network_step_latency_s if path.nodes > 1 else path.step_latency_s
    comm = count * (
        c.eff.collective_latency_s
        + alltoall_time(message, c.ep, path.bandwidth, latency_s=step, efficiency=c.eff.link)
    )
    return [_link_op(name, count, comm, c)]


def norm_op(c: Ctx, name, count, tokens, *, residual: bool = True) -> OpCost:
    """Norm (fused with the residual add when ``residual``): reads x (and the residual), writes the result."""
    d = c.cfg.d_model
    fl = F.norm_flops(tokens, d, c.cfg.norm) + (F.RESIDUAL_FLOPS_PER_ELEMENT * tokens * d if residual else 0)
    return op_cost(c, name, count, fl, (2 + residual) * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb)


def core_op(c: Ctx, name, count, seqs, *, causal, window, sinks) -> OpCost:
    """One fused attention kernel (QK^T, softmax, P·V) over the sequence groups ``seqs`` = ((batch, q_len,
    kv_len), ...): each group's ``batch`` sequences add ``q_len`` queries against ``kv_len`` keys (the queries
    are the last q_len positions), reading the cache positions the layer holds, min(kv_len, window), once; a
    decoding query (q_len = 1) reads each KV head once per query head when eff.kv_read_per_query_head. FLOPs
    and bytes add over the groups; the query tiles of every group share the waves (op_cost). ``sinks``: one
    sink logit per query head (read once per kernel)."""
    dh = c.cfg.head_dim
    flops, cache, tokens = 0, 0.0, 0
    for b, q_len, kv_len in seqs:
        flops += sum(F.attention_core_flops(b, q_len, kv_len, c.n_dev, dh, causal=causal, window=window).values())
        read = b * (kv_len if window is None else min(kv_len, window)) * 2 * c.k_dev * dh * c.kb
        if c.eff.kv_read_per_query_head and q_len == 1:  # no grouped decode kernel: each KV head per query head
            read *= c.n_dev / c.k_dev
        cache, tokens = cache + read, tokens + b * q_len
    sink_flops = tokens * c.n_dev if sinks else 0
    core_bytes = cache + 2 * tokens * c.n_dev * dh * c.ab + (c.n_dev * c.wb if sinks else 0)  # + sink logits
    return op_cost(c, name, count, flops + sink_flops, core_bytes, cache=cache,
                   attention=tuple((b * c.n_dev, q_len) for b, q_len, _ in seqs), role=ROLE_ATTENTION)  # fmt: skip


def attention_ops(c: Ctx, pre, count, *, tokens, kernels, causal, window, kv_proj, layer=None) -> list[OpCost]:
    """norm, qkv (or q) projection over ``tokens`` tokens, the core (one fused kernel per entry of
    ``kernels`` = ((label, seqs), ...), :func:`core_op`; named ``{pre}_core[_label]``), out projection,
    [post-norm], all-reduce."""
    cfg, d, dh = c.cfg, c.cfg.d_model, c.cfg.head_dim
    proj = F.attention_projection_flops(
        tokens, d, c.n_dev, c.k_dev, dh, qkv_bias=cfg.qkv_bias, out_bias=cfg.out_bias, kv=kv_proj
    )
    self_attn = pre in ("attn", "enc_attn")
    qk_norm = F.NORM_FLOPS_PER_ELEMENT[cfg.norm] * tokens * (c.n_dev + c.k_dev) * dh if cfg.qk_norm and self_attn else 0
    out_bias = tokens * d if cfg.out_bias else 0
    width = (c.n_dev + 2 * c.k_dev * kv_proj) * dh
    qkv_w = d * width + (width if cfg.qkv_bias else 0) + (2 * dh if qk_norm else 0)
    new_kv = tokens * 2 * c.k_dev * dh * c.kb if kv_proj else 0  # appended to the cache
    ops = [
        norm_op(c, f"{pre}_norm", count, tokens),
        op_cost(
            c,
            f"{pre}_qkv" if kv_proj else f"{pre}_q",
            count,
            proj["q"] + proj.get("k", 0) + proj.get("v", 0) + proj["bias"] - out_bias + qk_norm,
            qkv_w * c.wm + tokens * (d + width) * c.ab + new_kv,
            weights=qkv_w * c.wm,
            gemm=(tokens, width, 1),
        ),
    ]
    kind = "full" if layer is None or layer.window is None else f"sliding W={layer.window}"
    for label, seqs in kernels:
        name = f"{pre}_core_{label}" if label else f"{pre}_core"
        name = f"{name} ({kind})" if c.split_core and layer is not None else name
        ops.append(core_op(c, name, count, seqs, causal=causal, window=window,
                           sinks=cfg.attn_sinks and self_attn))  # fmt: skip
    o_w = (c.n_dev * dh * d + (d if cfg.out_bias else 0)) * c.wm
    ops.append(
        op_cost(c, f"{pre}_out", count, proj["o"] + out_bias, o_w + tokens * (c.n_dev * dh + d) * c.ab, weights=o_w,
                gemm=(tokens, d, 1))
    )
    if cfg.post_norms and self_attn:
        ops.append(norm_op(c, f"{pre}_post_norm", count, tokens, residual=False))
    return ops + allreduce_ops(c, f"{pre}_allreduce", count, tokens)


def _ffn_matmuls(
    c: Ctx, pre, count, tokens, width, *, weight_copies=1, extra_down_flops=0, extra_down_bytes=0
) -> list[OpCost]:
    """in (gate and up, or up), act, down of an FFN of per-device ``width`` over ``tokens`` tokens (a float
    for expected counts), reading ``weight_copies`` copies of its weights (experts: the expected number a
    step touches). Every FFN FLOP term is linear in the tokens, so per-token counts times tokens are exact."""
    cfg, d = c.cfg, c.cfg.d_model
    per_token = F.ffn_flops(1, d, width, cfg.ffn, bias=cfg.ffn_bias)
    n_in = cfg.variant.n_matrices - 1
    in_bias = n_in * width if cfg.ffn_bias else 0  # per token
    w_in = (n_in * d * width + (n_in * width if cfg.ffn_bias else 0)) * c.wm * weight_copies
    w_down = (width * d + (d if cfg.ffn_bias else 0)) * c.wm * weight_copies
    rows = tokens / weight_copies  # tokens per weight copy (per expert): the GEMMs' M
    return [
        op_cost(c, f"{pre}_in", count, tokens * (per_token.get("gate", 0) + per_token["up"] + in_bias),
                w_in + tokens * (d + n_in * width) * c.ab, weights=w_in, gemm=(rows, n_in * width, weight_copies)),
        op_cost(c, f"{pre}_act", count, tokens * per_token["act"], tokens * (n_in + 1) * width * c.ab),
        op_cost(c, f"{pre}_down", count, tokens * (per_token["down"] + per_token["bias"] - in_bias) + extra_down_flops,
                w_down + tokens * (width + d) * c.ab + extra_down_bytes, weights=w_down,
                gemm=(rows, d, weight_copies)),
    ]  # fmt: skip


def ffn_ops(c: Ctx, count, tokens) -> list[OpCost]:
    """A dense FFN: norm, in, act, down, [post-norm], all-reduce."""
    ops = [norm_op(c, "ffn_norm", count, tokens)] + _ffn_matmuls(c, "ffn", count, tokens, c.f_dev)
    if c.cfg.post_norms:
        ops.append(norm_op(c, "ffn_post_norm", count, tokens, residual=False))
    return ops + allreduce_ops(c, "ffn_allreduce", count, tokens)


def moe_ops(c: Ctx, count, tokens, global_tokens) -> list[OpCost]:
    """A MoE block on one device of one of the ep groups: norm, router, [dispatch], the routed experts
    (FLOPs of the expected global_tokens·k/ep token-expert pairs that land on this group; weights of the
    expected distinct experts among this group's E/ep that the step touches, costmodel.moe.expected_experts;
    the weighted sum of the k outputs is fused into the down op), [combine], the shared experts (Qwen2-MoE's
    sigmoid gate fused into their down op), [post-norm], all-reduce over the group's tp devices."""
    cfg, d, moe = c.cfg, c.cfg.d_model, c.cfg.moe
    e = moe.n_experts
    router_w = (d * e + (e if moe.router_bias else 0)) * c.wb
    router_fl = F.linear_flops(tokens, d, e) + (tokens * e if moe.router_bias else 0)
    router_fl += ROUTE_FLOPS_PER_LOGIT * tokens * e
    ops = [
        norm_op(c, "ffn_norm", count, tokens),
        op_cost(c, "moe_router", count, router_fl, router_w + tokens * d * c.ab + tokens * e * LOGITS_BYTES),
    ]
    ops += alltoall_ops(c, "moe_dispatch", count, tokens)
    pairs = tokens * moe.top_k if c.ep == 1 else global_tokens * moe.top_k / c.ep  # exact when ep = 1
    touched = expected_experts(e, moe.top_k, global_tokens) / c.ep
    combine = COMBINE_FLOPS_PER_ELEMENT * pairs * d
    ops += _ffn_matmuls(c, "moe_experts", count, pairs, moe.d_ff // c.tp, weight_copies=touched,
                        extra_down_flops=combine)  # fmt: skip
    ops += alltoall_ops(c, "moe_combine", count, tokens)
    if moe.n_shared:
        gate_fl = F.linear_flops(tokens, d, 1) + tokens * (F.ACTIVATION_FLOPS["sigmoid"] + d) if moe.shared_gate else 0
        ops += _ffn_matmuls(c, "moe_shared", count, tokens * moe.n_shared, moe.shared_width // c.tp,
                            weight_copies=moe.n_shared, extra_down_flops=gate_fl,
                            extra_down_bytes=d * c.wb if moe.shared_gate else 0)  # fmt: skip
    if cfg.post_norms:
        ops.append(norm_op(c, "ffn_post_norm", count, tokens, residual=False))
    return ops + allreduce_ops(c, "ffn_allreduce", count, tokens)


def layer_ops(c: Ctx, layer: Layer, count, *, tokens, kernels, global_tokens) -> list[OpCost]:
    """Every op of ``count`` decoder layers like ``layer`` (self-attention and its FFN; decoder-only) in a
    forward pass over ``tokens`` tokens whose attention runs the ``kernels`` of :func:`attention_ops`."""
    ops = attention_ops(
        c, "attn", count, tokens=tokens, kernels=kernels, causal=True, window=layer.window, kv_proj=True,
        layer=layer,
    )  # fmt: skip
    return ops + (moe_ops(c, count, tokens, global_tokens) if layer.ffn == "moe" else ffn_ops(c, count, tokens))


def head_ops(c: Ctx, *, tokens, logits_tokens) -> tuple[list[OpCost], list[OpCost]]:
    """(embedding gather, [final norm, lm_head]): lookup is 0 FLOPs and reads only the B·T rows used; no lm_head
    when no row samples (``logits_tokens`` 0: an iteration holding only a prompt's middle chunk)."""
    d = c.cfg.d_model
    embed = [op_cost(c, "embed", 1, 0, tokens * d * (c.wb + c.ab))]
    fn = F.norm_flops(tokens, d, c.cfg.norm)
    tail = [op_cost(c, "final_norm", 1, fn, 2 * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb)]
    if logits_tokens:
        tail.append(op_cost(
            c,
            "lm_head",
            1,
            F.linear_flops(logits_tokens, d, c.v_dev),
            c.v_dev * d * c.wm + logits_tokens * (d * c.ab + c.v_dev * LOGITS_BYTES),
            weights=c.v_dev * d * c.wm,
            gemm=(logits_tokens, c.v_dev, 1),
            role=ROLE_LOGITS,
        ))  # fmt: skip
    return embed, tail


def merge_ops(groups: list[list[OpCost]]) -> list[OpCost]:
    """The ops of every layer group, same-named ops summed into one row (their counts add), in layer order:
    a name first seen in a later group goes just before the next op of that group already placed
    ("attn_core (full)" right after "attn_core (sliding W=128)", before "attn_out")."""
    order: list[str] = []
    merged: dict[str, OpCost] = {}
    for ops in groups:
        names = [op.name for op in ops]
        for i, op in enumerate(ops):
            if op.name not in merged:
                later = [order.index(n) for n in names[i + 1 :] if n in merged]
                order.insert(min(later) if later else len(order), op.name)
                merged[op.name] = op
                continue
            m = merged[op.name]
            compute, memory = m.compute_s + op.compute_s, m.memory_s + op.memory_s
            bound = m.bound if m.bound == "link" else ("compute" if compute >= memory else "memory")
            merged[op.name] = OpCost(
                op.name, m.count + op.count, m.flops + op.flops, m.bytes + op.bytes, compute, memory,
                m.comm_s + op.comm_s, m.overhead_s + op.overhead_s, m.time_s + op.time_s, bound, m.role,
            )  # fmt: skip
    return [merged[name] for name in order]
