"""One continuous-batching iteration, timed by the cost model: decode tokens and prefill chunks in one step.

A server with iteration-level scheduling (Orca, Yu et al. OSDI 2022) and chunked prefill (Sarathi-Serve,
Agrawal et al. OSDI 2024; vLLM, SGLang, TensorRT-LLM) runs one forward per iteration over every scheduled
token: one new token for each of the d decoding sequences, plus prefill chunks of prompts. The weights are
read once for all of them, so the iteration is not a decode step plus a prefill: its time is composed from
the cost model's op breakdowns (:func:`costmodel.decode_latency`, :func:`costmodel.prefill_latency`):

    t_iter = lin(d + p) + logits(d + f) + core_dec(d, S) + sum over chunks [core_pre(o + c) - core_pre(o)]

- lin(n): every op of a decode step of n sequences at context 1 except the attention cores and lm_head: the
  ops whose cost depends only on how many tokens pass (norms, projections, FFN/experts, all-reduces, embed);
- logits(r): the lm_head op of a decode step of r sequences (r = the d decodes + the f chunks that finish
  their prompt and sample a first token);
- core_dec(d, S): the attention-core ops of a decode step of d sequences at context S;
- core_pre(T): the attention-core ops of a prefill of one T-token prompt; a chunk of c tokens at offset o
  costs core_pre(o + c) - core_pre(o) (the attention pairs it adds; exact in FLOPs).

Identities (tests/test_serving_step.py): no chunk gives decode_latency(d, S) exactly; one chunk of a
whole prompt and no decode gives prefill_latency(1, P) exactly. Pure Python (plan imports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import nonneg_int, positive_int, show
from ..config import ModelConfig, check_cfg
from ..latency import ESTIMATE, Efficiency, LatencyBreakdown, decode_latency, prefill_latency

CORE_MARK = "_core"  # the attention-core ops (attn_core, attn_core (sliding W=...)): their cost grows with S
LM_HEAD = "lm_head"


def split_ops(lat: LatencyBreakdown) -> tuple[float, float, float]:
    """(attention cores, lm_head, everything else) of a breakdown, in seconds."""
    core = sum(op.time_s for op in lat.ops if CORE_MARK in op.name)
    lm = sum(op.time_s for op in lat.ops if op.name == LM_HEAD)
    return core, lm, lat.total_s - core - lm


@dataclass(frozen=True)
class Chunk:
    """``tokens`` prompt tokens at ``offset`` (tokens of that prompt already in the cache); ``last``: the
    chunk finishes the prompt (its sequence samples its first token in this iteration)."""

    offset: int
    tokens: int
    last: bool


@dataclass(frozen=True)
class StepModel:
    """The cost model's view of one device group (tp devices) for iteration timing."""

    cfg: ModelConfig
    hw: object
    tp: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str | None = None
    eff: Efficiency = ESTIMATE
    ep: int = 1

    def __post_init__(self):
        if check_cfg(self.cfg).is_encoder_decoder:
            raise ValueError(
                f"the serving model covers decoder-only models; {self.cfg.name!r} is an encoder-decoder "
                "(its prompt goes through the encoder, which servers do not chunk)"
            )
        self.decode(1, 1)  # validate every setting once, up front

    def _kw(self) -> dict:
        return dict(tp=self.tp, weight_dtype=self.weight_dtype, kv_dtype=self.kv_dtype, eff=self.eff, ep=self.ep)

    def decode(self, batch: int, context: int) -> LatencyBreakdown:
        return decode_latency(self.cfg, self.hw, batch=batch, context=context, **self._kw())

    def prefill(self, prompt: int) -> LatencyBreakdown:
        return prefill_latency(self.cfg, self.hw, batch=1, prompt_len=prompt, **self._kw())

    def linear_s(self, tokens: int) -> float:
        """lin(n): the token-proportional ops of a forward over n tokens (0 for n = 0)."""
        return 0.0 if nonneg_int("tokens", tokens) == 0 else split_ops(self.decode(tokens, 1))[2]

    def logits_s(self, rows: int) -> float:
        """logits(r): lm_head over r sampled rows (0 for r = 0)."""
        return 0.0 if nonneg_int("rows", rows) == 0 else split_ops(self.decode(rows, 1))[1]

    def decode_core_s(self, batch: int, context: int) -> float:
        """core_dec(d, S): the attention cores of d decoding sequences at context S (0 for d = 0)."""
        return 0.0 if nonneg_int("batch", batch) == 0 else split_ops(self.decode(batch, context))[0]

    def prefill_core_s(self, tokens: int) -> float:
        """core_pre(T): the attention cores of prefilling one T-token prompt (0 for T = 0)."""
        return 0.0 if nonneg_int("tokens", tokens) == 0 else split_ops(self.prefill(tokens))[0]

    def iteration_s(self, decodes: int, context: int, chunks=()) -> float:
        """One iteration: ``decodes`` sequences at ``context`` keys each add a token, and every
        :class:`Chunk` of ``chunks`` is prefilled."""
        d = nonneg_int("decodes", decodes)
        chunks = tuple(chunks)
        for c in chunks:
            if not isinstance(c, Chunk):
                raise ValueError(f"chunks must hold Chunk objects; got {show(c)}")
            nonneg_int("chunk offset", c.offset), positive_int("chunk tokens", c.tokens)
        if d == 0 and not chunks:
            raise ValueError("an iteration needs a decode or a prefill chunk; got neither")
        p = sum(c.tokens for c in chunks)
        f = sum(c.last for c in chunks)
        pre = sum(self.prefill_core_s(c.offset + c.tokens) - self.prefill_core_s(c.offset) for c in chunks)
        return self.linear_s(d + p) + self.logits_s(d + f) + self.decode_core_s(d, context) + pre

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
