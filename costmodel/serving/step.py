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
        sequences at ``context`` decoding beside it: its chunks of ``budget - decodes`` tokens, one
        iteration each."""
        q = positive_int("max_num_batched_tokens", budget) - nonneg_int("decodes", decodes)
        if q < 1:
            raise ValueError(f"no room for a prefill chunk: {decodes} decodes fill the {budget}-token budget")
        return sum(self.iteration_s(decodes, context, [c]) for c in self.chunks_of(prompt, q))
