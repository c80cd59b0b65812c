"""The iteration time tabulated, so a simulator can time 100,000 iterations in a second.

:class:`~costmodel.serving.step.StepModel` costs an iteration with a few calls to the cost model (~0.1 ms
each). Its four terms are smooth, piecewise-linear functions of one integer each, so this module samples
each once on a grid (dense for small arguments, then geometric, with every sliding window's kink added) and
interpolates linearly (numpy.interp):

- lin(n), logits(r) for n, r up to the token budget (one decode_latency(n, 1) call per grid point gives both);
- u(S) = core_dec(1, S) - overhead: one decode sequence's attention at context S (the core ops' kernel
  overhead is paid once per iteration, whatever the batch: core_dec(d, S) = overhead + d·u(S), exact while
  every sequence's core op is bound the same way);
- core_pre(T) for prompts up to the longest.

tests/test_serving_step.py checks the tables against the exact StepModel (within 0.2%).
"""

from __future__ import annotations

import numpy as np

from ..checks import positive_int
from .step import CORE_MARK, StepModel, split_ops

DENSE = 32  # every integer up to here
TOKEN_RATIO = 1.1  # then grid points grow by this factor: lin and logits
CONTEXT_RATIO = 1.5  # u(S): affine between a sliding window's kinks
PROMPT_RATIO = 1.15  # core_pre(T): quadratic (causal attention), so a finer grid


def grid(top: int, ratio: float, extra=()) -> np.ndarray:
    """1, 2, ..., DENSE, then ceil-geometric by ``ratio`` up to ``top`` (always included), plus ``extra``
    points inside [1, top]; sorted, unique, int64."""
    top = positive_int("top", top)
    points = set(range(1, min(DENSE, top) + 1))
    x = float(DENSE)
    while x < top:
        x = max(x * ratio, x + 1)
        points.add(min(int(np.ceil(x)), top))
    points.update(int(e) for e in extra if 1 <= e <= top)
    points.add(top)
    return np.array(sorted(points), dtype=np.int64)


class IterationTable:
    """lin, logits, u and core_pre of a :class:`StepModel` on grids up to ``max_tokens`` tokens per
    iteration, ``max_context`` keys per decode and ``max_prompt`` prompt tokens."""

    def __init__(self, step: StepModel, *, max_tokens: int, max_context: int, max_prompt: int):
        if not isinstance(step, StepModel):
            raise ValueError(f"step must be a StepModel; got {type(step).__name__}")
        self.step = step
        n = grid(max_tokens, TOKEN_RATIO)
        parts = [split_ops(step.decode(int(k), 1)) for k in n]
        self.n = n.astype(float)
        self.lin_s = np.array([rest for _, _, rest in parts])  # (n,)
        self.logits_s = np.array([lm for _, lm, _ in parts])  # (n,)
        kinks = [lay.window + k for lay in step.cfg.layers if lay.window for k in (-1, 0, 1)]
        s = grid(max_context, CONTEXT_RATIO, kinks)
        cores = [step.decode(1, int(c)) for c in s]
        self.core_overhead_s = sum(op.overhead_s for op in cores[0].ops if CORE_MARK in op.name)
        self.s = s.astype(float)
        self.u_s = np.array([split_ops(lat)[0] for lat in cores]) - self.core_overhead_s  # (S,)
        t = grid(max_prompt, PROMPT_RATIO)
        self.t = np.concatenate([[0.0], t.astype(float)])
        self.pre_s = np.concatenate([[0.0], [step.prefill_core_s(int(k)) for k in t]])  # (T + 1,)
        self.max_tokens, self.max_context, self.max_prompt = int(n[-1]), int(s[-1]), int(t[-1])

    def lin(self, tokens):
        """lin(n) (n >= 1; arrays allowed)."""
        return np.interp(tokens, self.n, self.lin_s)

    def logits(self, rows):
        """logits(r), 0 for r = 0."""
        return np.where(np.asarray(rows) > 0, np.interp(rows, self.n, self.logits_s), 0.0)

    def u(self, context):
        """One decoding sequence's attention time at ``context`` keys (without the per-kernel overhead)."""
        return np.interp(context, self.s, self.u_s)

    def pre(self, tokens):
        """core_pre(T): the attention of a T-token prompt's prefill (0 for T = 0)."""
        return np.interp(tokens, self.t, self.pre_s)

    def iteration_s(self, decode_contexts, chunks=()) -> float:
        """One iteration (as StepModel.iteration_s, from the tables): the decodes at ``decode_contexts``
        (array of keys per sequence) and ``chunks`` of (offset, tokens, last)."""
        ctx = np.asarray(decode_contexts, dtype=float)
        d = ctx.size
        p = sum(c for _, c, _ in chunks)
        f = sum(bool(last) for _, _, last in chunks)
        t = float(self.lin(d + p) + self.logits(d + f))
        if d:
            t += self.core_overhead_s + float(self.u(ctx).sum())
        for offset, tokens, _ in chunks:
            t += float(self.pre(offset + tokens) - self.pre(offset))
        return t
