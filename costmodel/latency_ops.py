"""The ops (kernels) of one layer, one op each: its FLOPs and bytes on one device, and its roofline time.

``costmodel.latency`` sums these over the layers of a model (one call per distinct layer, times its count).
Each op takes max(FLOPs / (peak · eff.flops), bytes / (hbm_bandwidth · eff.hbm)) + eff.kernel_overhead_s; a
collective takes its α–β time (costmodel.parallel) plus one kernel overhead. To add a physical term (issue
16) or a serving effect (issue 13), add an op here or change :func:`op_cost`; the sums stay as they are.

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
from .parallel import allreduce_time, alltoall_time
from .params import NORM_VECTORS
from .roofline import Efficiency, OpCost


@dataclass(frozen=True)
class Ctx:
    """What every op needs: the model, the chip, the parallel layout and byte sizes (per element)."""

    cfg: ModelConfig
    hw: Hardware
    tp: int
    ep: int
    wb: float  # weight bytes per element
    kb: float  # KV cache bytes per element
    ab: float  # activation bytes per element
    peak: float  # FLOP/s of the compute dtype
    eff: Efficiency
    link_latency_s: float  # α per message of a collective
    n_dev: int  # query heads per device
    k_dev: int  # KV heads per device
    f_dev: int  # dense d_ff per device
    v_dev: int  # vocabulary rows per device
    split_core: bool  # name attention-core ops by layer kind (the model mixes kinds)


def op_cost(c: Ctx, name, count, flops, nbytes) -> OpCost:
    compute = count * flops / (c.peak * c.eff.flops)
    memory = count * nbytes / (c.hw.hbm_bandwidth * c.eff.hbm)
    overhead = count * c.eff.kernel_overhead_s
    bound = "compute" if compute >= memory else "memory"
    return OpCost(
        name, count, count * flops, count * nbytes, compute, memory, 0.0, overhead, max(compute, memory) + overhead,
        bound,
    )  # fmt: skip


def _link_op(name, count, comm, c: Ctx) -> OpCost:
    overhead = count * c.eff.kernel_overhead_s
    return OpCost(name, count, 0.0, 0.0, 0.0, 0.0, comm, overhead, comm + overhead, "link")


def allreduce_ops(c: Ctx, name, count, tokens) -> list[OpCost]:
    """A ring all-reduce of the (tokens, D) activations over the tp devices (none for tp = 1)."""
    if c.tp == 1:
        return []
    alpha = 2 * (c.tp - 1) * c.link_latency_s  # a ring all-reduce sends 2(tp-1) messages
    comm = count * allreduce_time(
        tokens * c.cfg.d_model * c.ab, c.tp, c.hw.link_bandwidth, latency_s=alpha, efficiency=c.eff.link
    )
    return [_link_op(name, count, comm, c)]


def alltoall_ops(c: Ctx, name, count, tokens) -> list[OpCost]:
    """An all-to-all over the ep groups sending each of ``tokens`` tokens to its k experts' groups: every
    device sends its 1/tp share of the (tokens·k, D) copies (none for ep = 1)."""
    if c.ep == 1:
        return []
    message = tokens * c.cfg.moe.top_k * c.cfg.d_model * c.ab / c.tp
    comm = count * alltoall_time(
        message, c.ep, c.hw.link_bandwidth, latency_s=c.link_latency_s, efficiency=c.eff.link
    )
    return [_link_op(name, count, comm, c)]


def norm_op(c: Ctx, name, count, tokens, *, residual: bool = True) -> OpCost:
    """Norm (fused with the residual add when ``residual``): reads x (and the residual), writes the result."""
    d = c.cfg.d_model
    fl = F.norm_flops(tokens, d, c.cfg.norm) + (F.RESIDUAL_FLOPS_PER_ELEMENT * tokens * d if residual else 0)
    return op_cost(c, name, count, fl, (2 + residual) * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb)


def attention_ops(
    c: Ctx, pre, count, *, batch, q_len, kv_len, causal, window, kv_proj, cache_read, layer=None
) -> list[OpCost]:
    """norm, qkv (or q) projection, core (QK^T, softmax, P·V fused; reads the cache once), out projection,
    [post-norm], all-reduce."""
    cfg, d, dh = c.cfg, c.cfg.d_model, c.cfg.head_dim
    tokens = batch * q_len
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
            qkv_w * c.wb + tokens * (d + width) * c.ab + new_kv,
        ),
    ]
    core = F.attention_core_flops(batch, q_len, kv_len, c.n_dev, dh, causal=causal, window=window)
    sinks = tokens * c.n_dev if cfg.attn_sinks and self_attn else 0
    cache = batch * cache_read * 2 * c.k_dev * dh * c.kb
    kind = "full" if layer is None or layer.window is None else f"sliding W={layer.window}"
    name = f"{pre}_core ({kind})" if c.split_core and layer is not None else f"{pre}_core"
    core_bytes = cache + 2 * tokens * c.n_dev * dh * c.ab + (c.n_dev * c.wb if sinks else 0)  # + sink logits
    ops.append(op_cost(c, name, count, sum(core.values()) + sinks, core_bytes))
    o_w = c.n_dev * dh * d + (d if cfg.out_bias else 0)
    ops.append(
        op_cost(c, f"{pre}_out", count, proj["o"] + out_bias, o_w * c.wb + tokens * (c.n_dev * dh + d) * c.ab)
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
    w_in = (n_in * d * width + (n_in * width if cfg.ffn_bias else 0)) * c.wb * weight_copies
    w_down = (width * d + (d if cfg.ffn_bias else 0)) * c.wb * weight_copies
    return [
        op_cost(c, f"{pre}_in", count, tokens * (per_token.get("gate", 0) + per_token["up"] + in_bias),
                w_in + tokens * (d + n_in * width) * c.ab),  # fmt: skip
        op_cost(c, f"{pre}_act", count, tokens * per_token["act"], tokens * (n_in + 1) * width * c.ab),
        op_cost(c, f"{pre}_down", count, tokens * (per_token["down"] + per_token["bias"] - in_bias) + extra_down_flops,
                w_down + tokens * (width + d) * c.ab + extra_down_bytes),  # fmt: skip
    ]


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


def layer_ops(c: Ctx, layer: Layer, count, *, batch, q_len, kv_len, global_tokens) -> list[OpCost]:
    """Every op of ``count`` decoder layers like ``layer`` (self-attention and its FFN; decoder-only)."""
    cache_read = layer.positions(kv_len)
    ops = attention_ops(
        c, "attn", count, batch=batch, q_len=q_len, kv_len=kv_len, causal=True, window=layer.window,
        kv_proj=True, cache_read=cache_read, layer=layer,
    )  # fmt: skip
    tokens = batch * q_len
    return ops + (moe_ops(c, count, tokens, global_tokens) if layer.ffn == "moe" else ffn_ops(c, count, tokens))


def head_ops(c: Ctx, *, tokens, logits_tokens) -> tuple[list[OpCost], list[OpCost]]:
    """(embedding gather, [final norm, lm_head]): lookup is 0 FLOPs and reads only the B·T rows used."""
    d = c.cfg.d_model
    embed = [op_cost(c, "embed", 1, 0, tokens * d * (c.wb + c.ab))]
    fn = F.norm_flops(tokens, d, c.cfg.norm)
    tail = [
        op_cost(c, "final_norm", 1, fn, 2 * tokens * d * c.ab + NORM_VECTORS[c.cfg.norm] * d * c.wb),
        op_cost(
            c,
            "lm_head",
            1,
            F.linear_flops(logits_tokens, d, c.v_dev),
            c.v_dev * d * c.wb + logits_tokens * (d * c.ab + c.v_dev * LOGITS_BYTES),
        ),
    ]
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
                m.comm_s + op.comm_s, m.overhead_s + op.overhead_s, m.time_s + op.time_s, bound,
            )  # fmt: skip
    return [merged[name] for name in order]
