"""One continuous-batching iteration, timed by the cost model: decode tokens and prefill chunks in one step.

A server with iteration-level scheduling (Orca, Yu et al. OSDI 2022) and chunked prefill (Sarathi-Serve,
Agrawal et al. OSDI 2024; vLLM, SGLang, TensorRT-LLM) runs one forward pass per iteration over every scheduled
token: one new token for each of the d decoding sequences, plus prefill chunks of prompts. The weights are
read once for all of them, so the iteration is not a decode step plus a prefill. The cost model prices that
pass op by op (:meth:`costmodel.latency.ForwardModel.iteration`, with every physical term of a decode step):

    t_iter = tokens(d + p) + logits(d + f) + attn_dec(S_1 … S_d) + attn_pre(chunks)

- tokens(n): every op whose cost follows the tokens passing (role "tokens": norms, projections, FFN or
  experts, collectives, embedding) over n = d + p tokens, the GEMMs tiled and run in waves at M = n (the
  point of chunked prefill: a chunk fills the tiles the decodes leave empty), plus the step overhead once;
- logits(r): the lm_head over the r rows that sample (the d decodes and the f chunks that end their prompt);
- attn_dec: one fused attention kernel per layer over the decodes, each at its own context (bytes and FLOPs
  add, one kernel overhead);
- attn_pre: one fused (varlen) attention kernel per layer over the chunks, each chunk's queries against
  its offset + tokens keys, their query tiles sharing the waves.

No chunk: exactly :func:`costmodel.decode_latency`; one chunk of a whole prompt and no decode: exactly
:func:`costmodel.prefill_latency` of one sequence (tests/test_serving_step.py). Pure Python (plan imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ..checks import nonneg_int, positive_int
from ..config import ModelConfig, check_cfg
from ..forward import ForwardModel
from ..latency import ESTIMATE, Efficiency, LatencyBreakdown
from ..roofline import ROLE_ATTENTION, ROLE_LOGITS


def time_by_role(ops) -> dict[str, float]:
    """Seconds of ``ops`` by role (costmodel.roofline.ROLES)."""
    out: dict[str, float] = {}
    for op in ops:
        out[op.role] = out.get(op.role, 0.0) + op.time_s
    return out


class Chunk(NamedTuple):
    """``tokens`` prompt tokens at ``offset`` (tokens of that prompt already in the cache); ``last``: the
    chunk finishes the prompt (its sequence samples its first token in this iteration)."""

    offset: int
    tokens: int
    last: bool


@dataclass(frozen=True)
class StepModel:
    """The cost model's view of one device group (tp devices) for iteration timing. ``group_size`` /
    ``group_bytes``: grouped weight quantization, as :func:`costmodel.decode_latency`."""

    cfg: ModelConfig
    hw: object
    tp: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str | None = None
    eff: Efficiency = ESTIMATE
    ep: int = 1
    group_size: int | None = None
    group_bytes: float = 2.0
    forward: ForwardModel = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if check_cfg(self.cfg).is_encoder_decoder:
            raise ValueError(
                f"the serving model covers decoder-only models; {self.cfg.name!r} is an encoder-decoder "
                "(its prompt goes through the encoder, which servers do not chunk)"
            )
        fm = ForwardModel(
            self.cfg, self.hw, tp=self.tp, weight_dtype=self.weight_dtype, kv_dtype=self.kv_dtype, eff=self.eff,
            ep=self.ep, group_size=self.group_size, group_bytes=self.group_bytes,
        )  # fmt: skip
        object.__setattr__(self, "forward", fm)  # every setting validated once, up front

    def decode(self, batch: int, context: int) -> LatencyBreakdown:
        return self.forward.decode(batch=batch, context=context)

    def prefill(self, prompt: int) -> LatencyBreakdown:
        return self.forward.prefill(batch=1, prompt_len=prompt)

    def iteration(self, decode_contexts=(), chunks=()) -> LatencyBreakdown:
        """The iteration's breakdown: a decode at each of ``decode_contexts`` and every (offset, tokens, last)
        of ``chunks``."""
        return self.forward.iteration(decode_contexts, chunks)

    def iteration_s(self, decodes: int, context: int, chunks=()) -> float:
        """One iteration: ``decodes`` sequences at ``context`` keys each add a token, and every
        :class:`Chunk` of ``chunks`` is prefilled."""
        d, s = nonneg_int("decodes", decodes), positive_int("context", context)
        return self.iteration([s] * d, chunks).total_s

    def tokens_and_logits_s(self, tokens: int) -> tuple[float, float]:
        """(tokens(n), logits(n)): the token-driven ops with the step overhead, and the lm_head, of a pass over
        n tokens that all sample (a decode step of n sequences)."""
        roles = time_by_role(self.decode(positive_int("tokens", tokens), 1).ops)
        logits = roles.get(ROLE_LOGITS, 0.0)
        return sum(roles.values()) - roles.get(ROLE_ATTENTION, 0.0) - logits, logits

    def attention_s(self, decode_contexts=(), chunks=()) -> float:
        """attn_dec + attn_pre alone: the attention kernels of an iteration with these decodes and chunks
        ((offset, tokens, last) triples, trusted: the tables' fast path)."""
        fm = self.forward
        return sum(op.time_s for seqs in fm.kernels(decode_contexts, chunks) if seqs for op in fm.attention_ops(seqs))

    def chunks_of(self, prompt: int, budget: int) -> list[Chunk]:
        """A prompt cut into chunks of at most ``budget`` tokens (Sarathi-Serve's chunked prefill)."""
        prompt, budget = positive_int("prompt", prompt), positive_int("chunk budget", budget)
        return [Chunk(o, min(budget, prompt - o), o + budget >= prompt) for o in range(0, prompt, budget)]

    def ttft_s(self, prompt: int, *, budget: int, decodes: int = 0, context: int = 1) -> float:
        """Time to first token of one ``prompt`` when it has the server to itself but for ``decodes``
        sequences at ``context`` decoding beside it: its chunks of q = ``budget - decodes`` tokens, one
        iteration each (:meth:`chunks_of`).

        The iterations differ only in their prefill-attention kernel (the chunk's offset), so each distinct
        chunk shape's iteration is priced once and the kernels' times are summed by
        :func:`sum_attention_over_chunks`: the work does not grow with prompt / q."""
        prompt = positive_int("prompt", prompt)
        q = positive_int("max_num_batched_tokens", budget) - nonneg_int("decodes", decodes)
        if q < 1:
            raise ValueError(f"no room for a prefill chunk: {decodes} decodes fill the {budget}-token budget")
        full, last = divmod(prompt, q)
        shapes = [(q, full - (last == 0), False), (last or q, 1, True)]  # (chunk tokens, how many, ends prompt)
        total = 0.0
        for tokens, count, ends in shapes:
            if count:
                alone = Chunk(0, tokens, ends)
                total += count * (self.iteration_s(decodes, context, [alone]) - self.attention_s(chunks=[alone]))
        total += sum_attention_over_chunks(self, q, full - (last == 0))
        return total + self.attention_s(chunks=[Chunk(prompt - (last or q), last or q, True)])


ATTENTION_AFFINE_RTOL = 1e-9  # an interval whose midpoint lies on the chord to this is affine (see below)


def _affine_sum(lo: float, hi: float, n: int) -> float:
    """lo + ... + hi over n equally spaced values (0 for n = 0)."""
    return n * (lo + hi) / 2 if n > 0 else 0.0


def _sum_of_max(ca, ma, cb, mb, n: int) -> float:
    """Σ over the n points x = 0 … n-1 of max(c(x), m(x)), c and m affine from (ca, ma) at x = 0 to (cb, mb)
    at x = n - 1: exact, with the crossover found in closed form."""
    if n == 1:
        return max(ca, ma)
    c_step, m_step = (cb - ca) / (n - 1), (mb - ma) / (n - 1)
    d0, slope = ca - ma, c_step - m_step  # c - m, affine in x
    if slope == 0:
        return _affine_sum(ca, cb, n) if d0 >= 0 else _affine_sum(ma, mb, n)
    root = -d0 / slope  # c >= m beyond it (slope > 0) or before it (slope < 0)
    k = min(n, max(0, math.ceil(root))) if slope > 0 else min(n, max(0, math.floor(root) + 1))
    # slope > 0: x < k memory-bound, x >= k compute-bound; slope < 0: x < k compute-bound, the rest memory
    (a0, a_step), (b0, b_step) = ((ma, m_step), (ca, c_step)) if slope > 0 else ((ca, c_step), (ma, m_step))
    return _affine_sum(a0, a0 + a_step * (k - 1), k) + _affine_sum(b0 + b_step * k, b0 + b_step * (n - 1), n - k)


def sum_attention_over_chunks(step: StepModel, q: int, count: int) -> float:
    """Σ_{j<count} of the prefill-attention kernels' time of a chunk of ``q`` tokens at offset j·q (alone in
    its kernel), in O(log count) cost-model passes rather than ``count``.

    Each layer group's kernel takes max(compute(j), memory(j)) + overhead. Its FLOPs and cache bytes are
    affine in the chunk's offset under full attention and concave under a sliding window (the keys a query
    reads, min(position + 1, W), are concave), and a chunk of q queries runs the same tiles at every offset,
    so compute(j) and memory(j) are each affine or concave in j. For a concave function, a midpoint on the
    chord means affine on the whole interval (the gap to the chord is at most twice the midpoint's), so an
    interval whose midpoint agrees (to ATTENTION_AFFINE_RTOL) is summed in closed form (:func:`_sum_of_max`)
    and any other is halved; tests/test_serving_step.py checks the result against the chunk-by-chunk sum."""
    fm = step.forward

    def parts(j: int) -> list[tuple[float, float, float]]:
        return [(op.compute_s, op.memory_s, op.overhead_s) for op in fm.attention_ops(((1, q, j * q + q),))]

    def total(a: int, b: int, pa, pb) -> float:  # Σ over j in [a, b], pa and pb the parts at a and b
        n = b - a + 1
        if n <= 2:
            return sum(max(c, m) + o for c, m, o in pa) + (sum(max(c, m) + o for c, m, o in pb) if n == 2 else 0.0)
        mid = (a + b) // 2
        pm, w = parts(mid), (mid - a) / (b - a)
        if all(abs(x + (y - x) * w - z) <= ATTENTION_AFFINE_RTOL * abs(z)
               for ga, gb, gm in zip(pa, pb, pm, strict=True) for x, y, z in zip(ga[:2], gb[:2], gm[:2], strict=True)):
            return sum(_sum_of_max(ca, ma, cb, mb, n) + n * o for (ca, ma, o), (cb, mb, _) in zip(pa, pb, strict=True))
        return total(a, mid, pa, pm) + total(mid + 1, b, parts(mid + 1), pb)

    if count <= 0:
        return 0.0
    return total(0, count - 1, parts(0), parts(count - 1))
