"""One device group's forward passes priced op by op: a decode step, a prefill, or a continuous-batching
iteration (decodes at their own contexts beside prefill chunks), every setting validated once.

:class:`ForwardModel` builds the context every op needs (costmodel.latency_ops.Ctx: the chip's achieved rates
for this dtype and efficiency profile, the collective paths, heads per device) and the notes of what an
assumption changed; its methods assemble the ops of one pass. :func:`costmodel.decode_latency` and
:func:`costmodel.prefill_latency` are its decode and prefill; the serving model (costmodel.serving.step) prices
iterations with :meth:`ForwardModel.iteration`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from . import flops as F
from .checks import check_bool, nonneg_int, number_in, show
from .config import ModelConfig, check_cfg, dtype_bytes, positive_int, resolve_kv_dtype
from .hardware import get_hardware
from .latency_ops import Ctx, attention_ops, core_op, ffn_ops, head_ops, layer_ops, merge_ops, op_cost
from .parallel import check_ep, check_tp, collective_path, kv_heads_per_device
from .params import NORM_VECTORS
from .roofline import ESTIMATE, ROLE_STEP, Efficiency, LatencyBreakdown, OpCost

MAX_GROUP_BYTES = 64.0  # bytes stored per quantization group (scale and zero point): far above any format's


def _ctx(
    cfg, hw, *, tp, ep, weight_dtype, kv_dtype, act_dtype, compute_dtype, eff, link_latency_s, group_size,
    group_bytes,
) -> tuple[Ctx, tuple]:
    """The context every op needs, and the notes of what an assumption changed."""
    check_cfg(cfg)
    hw = get_hardware(hw)
    tp, ep = check_tp(cfg, tp), check_ep(cfg, ep)
    if not isinstance(eff, Efficiency):
        raise ValueError(f"eff must be an Efficiency (IDEAL, ESTIMATE or your own); got {type(eff).__name__}")
    if link_latency_s is not None:
        link_latency_s = number_in("link_latency_s", link_latency_s, 0.0, 1e-3, unit="s")
    wb = float(dtype_bytes(weight_dtype, "weight_dtype"))
    kb = float(dtype_bytes(resolve_kv_dtype(kv_dtype, weight_dtype, act_dtype), "kv_dtype"))
    ab = float(dtype_bytes(act_dtype, "act_dtype"))
    wm = wb
    if group_size is not None:
        per_group = number_in("group_bytes", group_bytes, 0.0, MAX_GROUP_BYTES, unit="B")
        wm += per_group / positive_int("group_size", group_size)
    notes = []
    if compute_dtype is None:
        compute_dtype = "fp8" if weight_dtype == "fp8" and "fp8" in hw.peak_flops else "bf16"
        if weight_dtype == "fp8" and compute_dtype == "bf16":
            notes.append(f"fp8 weights on {hw.name}, which has no fp8 peak: computed at the bf16 rate")
    peak = hw.flops_for(compute_dtype)
    gemm_eff = eff.flops_fp8 if compute_dtype == "fp8" else eff.flops
    dequant = {"int8": eff.dequant_int8, "int4": eff.dequant_int4}.get(weight_dtype, 1.0)
    if dequant < 1.0:
        notes.append(f"weight-only {weight_dtype} weights stream at {dequant:g} of the bandwidth (dequantisation, "
                     f"eff.dequant_{weight_dtype})")  # fmt: skip
    tp_path = collective_path(hw, tp, step_latency_s=link_latency_s) if tp > 1 else None
    ep_path = collective_path(hw, tp * ep, step_latency_s=link_latency_s) if ep > 1 else None
    notes += [p.note for p in (tp_path, ep_path) if p is not None and p.note]
    k_dev, n_dev = kv_heads_per_device(cfg.n_kv_heads, tp), cfg.n_heads // tp
    if eff.kv_read_per_query_head and n_dev > k_dev:
        notes.append(f"decode reads each KV head once per query head (no grouped decode kernel): cache bytes "
                     f"x {n_dev // k_dev}")  # fmt: skip
    chip_flops = hw.flops_efficiency_factor
    c = Ctx(
        cfg, hw, tp, ep, wb, wm, kb, ab, peak * gemm_eff * chip_flops,
        hw.flops_for("bf16") * eff.flops * eff.attn_compute * chip_flops,
        hw.hbm_bandwidth * eff.hbm * hw.hbm_efficiency_factor, dequant, eff, tp_path, ep_path,
        n_dev, k_dev, cfg.d_ff // tp, -(-cfg.vocab_size // tp), len({layer.window for layer in cfg.layers}) > 1,
    )  # fmt: skip
    return c, tuple(notes)


def _step_ops(c: Ctx) -> list[OpCost]:
    """The fixed cost of one forward pass (eff.step_overhead_s), as an op of its own (none when 0)."""
    s = c.eff.step_overhead_s
    return [OpCost("step_overhead", 1, 0.0, 0.0, 0.0, 0.0, 0.0, s, s, "overhead", ROLE_STEP)] if s > 0 else []


def _group_batch(batch: int, ep: int) -> int:
    """Sequences one of the ep groups serves: ceil(B/ep) (the busiest group)."""
    return -(-batch // ep)


class ForwardModel:
    """One device group's forward passes (tp devices; one of ``ep`` groups), priced op by op: every setting
    validated once, then :meth:`decode`, :meth:`prefill` and :meth:`iteration` price passes of any shape.
    Keywords as :func:`decode_latency`."""

    def __init__(
        self, cfg: ModelConfig, hw, *, tp: int = 1, weight_dtype: str = "bf16", kv_dtype: str | None = None,
        act_dtype: str = "bf16", compute_dtype: str | None = None, eff: Efficiency = ESTIMATE, ep: int = 1,
        link_latency_s: float | None = None, group_size: int | None = None, group_bytes: float = 2.0,
    ):  # fmt: skip
        self.c, self.notes = _ctx(
            cfg, hw, tp=tp, ep=ep, weight_dtype=weight_dtype, kv_dtype=kv_dtype, act_dtype=act_dtype,
            compute_dtype=compute_dtype, eff=eff, link_latency_s=link_latency_s, group_size=group_size,
            group_bytes=group_bytes,
        )  # fmt: skip
        self.cfg, self.hw, self.eff = cfg, self.c.hw, eff
        self.layer_groups = cfg.layer_groups  # (layer, how many like it): computed once, every pass reads it

    @property
    def ridge_point(self) -> float:
        """FLOP per byte where an op turns compute-bound: the GEMMs' achieved FLOP/s at whole tiles (peak of
        the compute dtype · eff.flops or eff.flops_fp8 · chip factor) over the streams' achieved bytes/s."""
        return self.c.flop_rate / self.c.bandwidth

    def _breakdown(self, phase, batch, q_len, context, ops) -> LatencyBreakdown:
        c = self.c
        return LatencyBreakdown(phase, self.cfg.name, c.hw.name, batch, q_len, context, c.tp, self.eff, tuple(ops),
                                self.notes)  # fmt: skip

    def _decoder(self, *, tokens, logits_rows, kernels, global_tokens) -> list[OpCost]:
        """A decoder-only forward pass: embedding, every layer group's ops (merged by name), head, step."""
        c = self.c
        embed, tail = head_ops(c, tokens=tokens, logits_tokens=logits_rows)
        groups = [layer_ops(c, layer, count, tokens=tokens, kernels=kernels, global_tokens=global_tokens)
                  for layer, count in self.layer_groups]  # fmt: skip
        return embed + (groups[0] if len(groups) == 1 else merge_ops(groups)) + tail + _step_ops(c)

    def _t5_decoder(self, *, batch, kv_len, encoder_len) -> list[OpCost]:
        """The decoder layers of an encoder-decoder: uniform, with cross-attention (T5)."""
        c, cfg = self.c, self.cfg
        L, layer = cfg.n_layers, cfg.layers[0]
        ops = attention_ops(c, "attn", L, tokens=batch, kernels=(("", ((batch, 1, kv_len),)),), causal=True,
                            window=layer.window, kv_proj=True)  # fmt: skip
        s_enc = positive_int("encoder_len", encoder_len if encoder_len is not None else kv_len)
        ops += attention_ops(c, "cross_attn", L, tokens=batch, kernels=(("", ((batch, 1, s_enc),)),), causal=False,
                             window=None, kv_proj=False)  # fmt: skip
        return ops + ffn_ops(c, L, batch)

    def decode(self, *, batch: int, context: int, encoder_len: int | None = None) -> LatencyBreakdown:
        """:func:`decode_latency` with this model's settings."""
        c = self.c
        b, s = positive_int("batch", batch), positive_int("context", context)
        b_dev = _group_batch(b, c.ep)
        if self.cfg.is_encoder_decoder:
            embed, tail = head_ops(c, tokens=b_dev, logits_tokens=b_dev)
            ops = embed + self._t5_decoder(batch=b_dev, kv_len=s, encoder_len=encoder_len) + tail + _step_ops(c)
        else:
            ops = self._decoder(tokens=b_dev, logits_rows=b_dev, kernels=(("", ((b_dev, 1, s),)),), global_tokens=b)
        return self._breakdown("decode", b, 1, s, ops)

    def prefill(self, *, batch: int, prompt_len: int) -> LatencyBreakdown:
        """:func:`prefill_latency` with this model's settings."""
        c, cfg = self.c, self.cfg
        b, t = positive_int("batch", batch), positive_int("prompt_len", prompt_len)
        b_dev = _group_batch(b, c.ep)
        if not cfg.is_encoder_decoder:
            ops = self._decoder(tokens=b_dev * t, logits_rows=b_dev, kernels=(("", ((b_dev, t, t),)),),
                                global_tokens=b * t)  # fmt: skip
            return self._breakdown("prefill", b, t, t, ops)
        embed, _ = head_ops(c, tokens=b * t, logits_tokens=b)
        d, kw = cfg.d_model, 2 * c.k_dev * cfg.head_dim
        enc = attention_ops(c, "enc_attn", cfg.n_encoder_layers, tokens=b * t, kernels=(("", ((b, t, t),)),),
                            causal=False, window=None, kv_proj=True)  # fmt: skip
        enc += [replace(o, name=f"enc_{o.name}") for o in ffn_ops(c, cfg.n_encoder_layers, b * t)]
        enc_norm = F.norm_flops(b * t, d, cfg.norm)
        enc.append(op_cost(c, "enc_final_norm", 1, enc_norm,
                           2 * b * t * d * c.ab + NORM_VECTORS[cfg.norm] * d * c.wb))  # fmt: skip
        cross_kv = op_cost(
            c, "cross_kv", cfg.n_layers, F.linear_flops(b * t, d, kw),
            d * kw * c.wm + b * t * (d * c.ab + kw * c.kb), weights=d * kw * c.wm, gemm=(b * t, kw, 1),
        )  # fmt: skip
        dec_embed, tail = head_ops(c, tokens=b, logits_tokens=b)
        dec = self._t5_decoder(batch=b, kv_len=1, encoder_len=t)
        ops = embed + enc + [cross_kv] + dec_embed + dec + tail + _step_ops(c)
        return self._breakdown("prefill", b, t, t, ops)

    def iteration(self, decode_contexts=(), chunks=()) -> LatencyBreakdown:
        """One continuous-batching iteration (decoder-only): a sequence at each of ``decode_contexts`` keys adds
        one token, and every prefill chunk of ``chunks`` = ((offset, tokens, last), ...) adds ``tokens`` prompt
        tokens after ``offset`` already in the cache (``last``: it ends its prompt and samples a first token).

        One forward pass over all n = decodes + chunk tokens: every token-driven op (norms, projections, FFN or
        experts, collectives, embedding) runs once over n tokens (its GEMMs tiled at M = n), the lm_head over
        the decodes and the last chunks, the step overhead once; the attention runs two fused kernels per layer
        (costmodel.latency_ops.core_op): one over the decodes (each at its own context), one over the chunks
        (each chunk's queries against its offset + tokens keys; their query tiles share the waves), named
        ``attn_core`` and ``attn_core_prefill`` when both run. No chunk: :meth:`decode` exactly; one chunk of
        a whole prompt and no decode: :meth:`prefill` of one sequence exactly. With ep > 1 the busiest group
        holds ceil(1/ep) of the tokens, rows and (longest) decodes, and every chunk's attention."""
        c, cfg = self.c, self.cfg
        if cfg.is_encoder_decoder:
            raise ValueError(f"an iteration covers decoder-only models; {cfg.name!r} is an encoder-decoder (its "
                             "prompt goes through the encoder, which servers do not chunk)")  # fmt: skip
        contexts = [positive_int("decode context", s) for s in decode_contexts]
        chunks = [_check_chunk(ch) for ch in chunks]
        if not contexts and not chunks:
            raise ValueError("an iteration needs a decode or a prefill chunk; got neither")
        n = len(contexts) + sum(t for _, t, _ in chunks)
        rows = len(contexts) + sum(last for _, _, last in chunks)
        decode, prefill = self.kernels(contexts, chunks)
        both = bool(decode and prefill)
        kernels = tuple((label, seqs) for label, seqs in (("", decode), ("prefill" if both else "", prefill)) if seqs)
        ops = self._decoder(tokens=_group_batch(n, c.ep), logits_rows=_group_batch(rows, c.ep), kernels=kernels,
                            global_tokens=n)  # fmt: skip
        longest = max([*contexts, *(o + t for o, t, _ in chunks)])
        return self._breakdown("iteration", len(contexts) + len(chunks), 1, longest, ops)

    def token_ops(self, tokens: int) -> list[OpCost]:
        """The ops of a decoder-only pass over ``tokens`` tokens that all sample (a decode step of that many
        sequences, this group's share), without its attention kernels: everything but the attention."""
        if self.cfg.is_encoder_decoder:
            raise ValueError(f"token_ops covers decoder-only models; {self.cfg.name!r} is an encoder-decoder")
        n = positive_int("tokens", tokens)
        n_dev = _group_batch(n, self.c.ep)
        return self._decoder(tokens=n_dev, logits_rows=n_dev, kernels=(), global_tokens=n)

    def kernels(self, decode_contexts, chunks) -> tuple[tuple, tuple]:
        """(decode kernel, prefill kernel) of an iteration on this group, each ((batch, q_len, kv_len), ...):
        the decodes grouped by context (with ep > 1 every ep-th, longest first: the busiest group's), one
        entry per chunk. Inputs trusted (:meth:`iteration` checks them)."""
        mine = sorted(decode_contexts, reverse=True)[:: self.c.ep]
        decode = tuple((k, 1, int(s)) for s, k in sorted(Counter(mine).items()))
        return decode, tuple((1, int(t), int(o) + int(t)) for o, t, _ in chunks)

    def attention_ops(self, seqs) -> list[OpCost]:
        """One fused attention kernel over ``seqs`` = ((batch, q_len, kv_len), ...) in every decoder layer
        group (one op per group; costmodel.latency_ops.core_op): the attention part of a pass, on its own."""
        c, cfg = self.c, self.cfg
        return [core_op(c, "attn_core", count, seqs, causal=True, window=layer.window,
                        sinks=cfg.attn_sinks) for layer, count in self.layer_groups]  # fmt: skip


def _check_chunk(chunk) -> tuple[int, int, bool]:
    try:
        offset, tokens, last = chunk
    except (TypeError, ValueError):
        raise ValueError(f"chunks must hold (offset, tokens, last) triples; got {show(chunk)}") from None
    return nonneg_int("chunk offset", offset), positive_int("chunk tokens", tokens), check_bool("chunk last", last)
