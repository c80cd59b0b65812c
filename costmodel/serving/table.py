"""The iteration time tabulated, so a simulator can time 100,000 iterations in a second.

:class:`~costmodel.serving.step.StepModel` prices an iteration with one pass through the cost model (~0.1 ms).
Its terms are tabulated once per replica, each as exactly as the cost model's structure allows:

- **tokens(n) and logits(n) at every n up to the token budget**, exact to TOKEN_RTOL. Tile and wave
  quantization make them steps, not lines: a GEMM whose M grows by one token can need another wave of tiles
  (Llama-3-8B on an H100: +37% from 64 to 65 tokens). Between two GEMM tile breaks
  (costmodel.roofline.gemm_tile_breaks: 17, 33, 65, 129, then every 128 tokens) every op of a dense or
  sliding-window model has its compute, memory, link and overhead times affine in n (FLOPs and bytes are
  affine in the tokens; a GEMM's compute is the work of its issued tiles, constant there), so every integer's
  time follows, op by op, as max(compute, memory) + link + overhead: from two passes (n = 1, 2: the lines, and
  which ops' compute is a GEMM's) and one pass per interval (its GEMMs' compute, and a check of the rest).
  Where an op is not affine (a MoE layer's expected distinct experts, an expert GEMM's own tile breaks at
  M = n·k/E) each interval gets passes at both ends and the midpoint, and is halved where they disagree, down
  to single token counts.
- **Decode attention**: per layer group, one sequence's compute and memory time at context S (affine between
  a sliding window's kinks, so exact on a grid holding them), the kernel's constant bytes (sink logits) and
  its overhead. A kernel over contexts S_1 … S_d takes max(Σ c(S_i) + c0, Σ m(S_i) + m0) + overhead: the sum
  the cost model's fused kernel makes. When every sequence is memory-bound at every context (the usual case)
  that is overhead + m0 + Σ u(S_i), one lookup per sequence.
- **Prefill attention** (the chunks' varlen kernel): from the cost model (~20 µs a call), remembered per set
  of chunks (fixed-length workloads repeat theirs) and per lone prompt.

tests/test_serving_step.py checks the tables against the exact iteration (to 1e-9) for dense, sliding-window
and MoE models.
"""

from __future__ import annotations

import numpy as np

from ..checks import positive_int
from ..roofline import ROLE_LOGITS, gemm_tile_breaks
from .step import StepModel

DENSE = 32  # every integer up to here
CONTEXT_RATIO = 1.5  # decode attention grid: affine between a sliding window's kinks
TOKEN_RTOL = 1e-9  # an op's time rebuilt from two passes agrees with the pass at the midpoint to this
CHUNK_CACHE = 1 << 14  # prefill-attention results remembered per table


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


def _token_pass(step: StepModel, n: int):
    """(op names, lm_head mask, (ops, 5) seconds: compute, memory, link, overhead, time) of the non-attention
    ops of a pass over n tokens."""
    ops = step.forward.token_ops(n)
    parts = np.array([[op.compute_s, op.memory_s, op.comm_s, op.overhead_s, op.time_s] for op in ops])
    return tuple(op.name for op in ops), np.array([op.role == ROLE_LOGITS for op in ops]), parts


def token_tables(step: StepModel, top: int, *, check: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """(tokens(n), logits(n)) for n = 1 … top, (top,) seconds each, and the passes it took (module docstring).
    ``check`` False (dense and sliding-window models): every op's FLOPs are proportional to n and its bytes,
    link time and overhead affine in n everywhere, and a GEMM's compute is constant between tile breaks, so two
    passes (n = 1, 2) give the lines and one pass per interval its GEMMs' compute; that pass also checks the
    rebuilt times, and an interval that disagrees is filled as with ``check`` True: passes at both ends and
    the midpoint of each interval, halved where an op is not affine (a MoE layer)."""
    lin, logits = np.full(top, np.nan), np.full(top, np.nan)
    passes: dict = {}

    def get(n: int):
        if n not in passes:
            passes[n] = _token_pass(step, n)
        return passes[n]

    def put(a: int, b: int, lm, t) -> bool:
        """Store the rebuilt (ops, b - a + 1) times when they match every pass made inside [a, b]."""
        for n in range(a, b + 1):
            if n in passes and not np.all(np.abs(t[:, n - a] - passes[n][2][:, 4]) <= TOKEN_RTOL * passes[n][2][:, 4]):
                return False
        lin[a - 1 : b], logits[a - 1 : b] = t[~lm].sum(axis=0), t[lm].sum(axis=0)
        return True

    def fill(a: int, b: int) -> None:
        (na, lm, pa), (nb, _, pb) = get(a), get(b)
        if b - a <= 1:
            put(a, a, lm, pa[:, 4:5]), put(b, b, lm, pb[:, 4:5])
            return
        m = (a + b) // 2
        if na == nb == get(m)[0]:
            frac = (np.arange(a, b + 1) - a) / (b - a)  # (b - a + 1,)
            lines = pa[:, :4, None] + (pb - pa)[:, :4, None] * frac  # (ops, 4, b - a + 1)
            if put(a, b, lm, np.maximum(lines[:, 0], lines[:, 1]) + lines[:, 2] + lines[:, 3]):
                return
        fill(a, m), fill(m, b)

    edges = [1, *gemm_tile_breaks(top), top + 1]
    if not check and top >= 2:
        (n1, lm, p1), (_, _, p2) = get(1), get(2)
        slope = p2[:, :4] - p1[:, :4]  # (ops, 4) per token
        flat = np.isclose(p1[:, 0], p2[:, 0], rtol=1e-12, atol=0.0)  # GEMM-like: compute constant between breaks
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        b -= 1
        if check or top < 2 or get(b)[0] != n1:
            fill(a, b)
            continue
        x = np.arange(a, b + 1)  # (b - a + 1,)
        lines = (p1[:, :4] - slope)[:, :, None] + slope[:, :, None] * x  # (ops, 4, b - a + 1)
        lines[flat, 0, :] = get(b)[2][flat, 0, None]
        if not put(a, b, lm, np.maximum(lines[:, 0], lines[:, 1]) + lines[:, 2] + lines[:, 3]):
            fill(a, b)
    return lin, logits, len(passes)


class IterationTable:
    """tokens(n) and logits(n) up to ``max_tokens`` tokens per iteration, decode attention up to
    ``max_context`` keys per sequence, prefill attention from the cost model (a :class:`StepModel` with ep=1)."""

    def __init__(self, step: StepModel, *, max_tokens: int, max_context: int):
        if not isinstance(step, StepModel):
            raise ValueError(f"step must be a StepModel; got {type(step).__name__}")
        if step.ep != 1:
            raise ValueError(f"the iteration table covers one device group (ep=1); got ep={step.ep}")
        self.step = step
        top = positive_int("max_tokens", max_tokens)
        self.n = np.arange(1, top + 1, dtype=float)  # (top,)
        # dense and sliding-window layers: every token-driven op is affine between tile breaks (module docstring)
        affine = step.cfg.moe is None
        self.lin_s, self.logits_s, self.token_passes = token_tables(step, top, check=not affine)
        kinks = [lay.window + k for lay in step.cfg.layers if lay.window for k in (-1, 0, 1)]
        s = grid(max_context, CONTEXT_RATIO, kinks)
        one = [step.forward.attention_ops(((1, 1, int(c)),)) for c in s]  # one decode per context: an op per group
        two = step.forward.attention_ops(((2, 1, int(s[0])),))
        c1 = np.array([[op.compute_s for op in ops] for ops in one]).T  # (J, S): J layer groups
        m1 = np.array([[op.memory_s for op in ops] for ops in one]).T  # (J, S)
        self.c0 = 2 * c1[:, 0] - np.array([op.compute_s for op in two])  # (J,) the kernel's own, per layer group
        self.m0 = 2 * m1[:, 0] - np.array([op.memory_s for op in two])  # (J,) e.g. the sink logits
        self.c_s, self.m_s = c1 - self.c0[:, None], m1 - self.m0[:, None]  # (J, S) per sequence
        self.overhead = np.array([op.overhead_s for op in one[0]])  # (J,)
        self.decode_overhead_s = float(self.overhead.sum())
        self.s = s.astype(float)
        # memory-bound whatever the batch: both terms are affine between grid points, so the grid decides
        self.memory_bound = bool(np.all(self.c_s <= self.m_s) and np.all(self.c0 <= self.m0))
        self.u_s = self.m_s.sum(axis=0)  # (S,) one sequence's decode attention when memory-bound
        self.decode_fixed_s = float((self.m0 + self.overhead).sum())
        self.max_tokens, self.max_context = top, int(s[-1])
        self._prompts: dict[int, float] = {}
        self._chunks: dict[tuple, float] = {}

    def lin(self, tokens):
        """tokens(n): the token-driven ops and the step overhead of a pass over n >= 1 tokens (arrays allowed;
        between integers, linear)."""
        return np.interp(tokens, self.n, self.lin_s)

    def logits(self, rows):
        """logits(r), 0 for r = 0."""
        return np.where(np.asarray(rows) > 0, np.interp(rows, self.n, self.logits_s), 0.0)

    def per_sequence(self, contexts) -> tuple[np.ndarray, np.ndarray]:
        """(compute, memory) seconds one decoding sequence adds to its layer groups' attention kernels at each
        of ``contexts``: two (J, *contexts.shape) arrays."""
        x = np.asarray(contexts, dtype=float)
        c = np.stack([np.interp(x, self.s, row) for row in self.c_s])
        return c, np.stack([np.interp(x, self.s, row) for row in self.m_s])

    def kernels(self, c_sum, m_sum):
        """The decode attention kernels of sequences whose per-group compute and memory sum to ``c_sum`` and
        ``m_sum`` ((J, ...) arrays): Σ_groups max(c_sum + c0, m_sum + m0) + overhead."""
        c = np.asarray(c_sum) + self.c0.reshape((-1,) + (1,) * (np.ndim(c_sum) - 1))
        m = np.asarray(m_sum) + self.m0.reshape((-1,) + (1,) * (np.ndim(m_sum) - 1))
        return (np.maximum(c, m) + self.overhead.reshape((-1,) + (1,) * (np.ndim(c) - 1))).sum(axis=0)

    def decode_attention(self, contexts) -> float:
        """attn_dec of decodes at ``contexts`` (keys per sequence; 0 without decodes)."""
        x = np.asarray(contexts, dtype=float).ravel()
        if x.size == 0:
            return 0.0
        if self.memory_bound:
            return self.decode_fixed_s + float(np.interp(x, self.s, self.u_s).sum())
        c, m = self.per_sequence(x)  # (J, d)
        return float(self.kernels(c.sum(axis=1), m.sum(axis=1)))

    def decode_attention_steps(self, contexts) -> np.ndarray:
        """attn_dec of k iterations at once: ``contexts`` (d, k), column j the d decodes' keys in iteration j."""
        x = np.asarray(contexts, dtype=float)
        if self.memory_bound:
            return self.decode_fixed_s + np.interp(x, self.s, self.u_s).sum(axis=0)
        c, m = self.per_sequence(x)  # (J, d, k)
        return self.kernels(c.sum(axis=1), m.sum(axis=1))

    def prefill_attention(self, chunks) -> float:
        """attn_pre of ``chunks`` ((offset, tokens, last) triples): the cost model's varlen kernel, exact;
        remembered per set of (offset, tokens) (fixed-length workloads repeat theirs)."""
        if not len(chunks):
            return 0.0
        key = tuple((int(o), int(t)) for o, t, _ in chunks)
        if key not in self._chunks:
            if len(self._chunks) >= CHUNK_CACHE:
                self._chunks.clear()
            self._chunks[key] = self.step.attention_s(chunks=chunks)
        return self._chunks[key]

    def prompt_attention(self, prompts) -> np.ndarray:
        """attn_pre of each of ``prompts`` prefilled alone in one chunk (cached per distinct length)."""
        p = np.asarray(prompts, dtype=np.int64)
        values, inverse = np.unique(p, return_inverse=True)
        for v in values.tolist():
            if v not in self._prompts:
                self._prompts[v] = self.step.attention_s(chunks=((0, v, True),))
        return np.array([self._prompts[v] for v in values.tolist()])[inverse].reshape(p.shape)

    def iteration_s(self, decode_contexts, chunks=()) -> float:
        """One iteration (as StepModel.iteration, from the tables): the decodes at ``decode_contexts`` (array
        of keys per sequence) and ``chunks`` of (offset, tokens, last)."""
        ctx = np.asarray(decode_contexts, dtype=float)
        d = ctx.size
        p = sum(int(c) for _, c, _ in chunks)
        f = sum(bool(last) for _, _, last in chunks)
        t = float(self.lin(d + p) + self.logits(d + f))
        return t + float(self.decode_attention(ctx)) + self.prefill_attention(chunks)
