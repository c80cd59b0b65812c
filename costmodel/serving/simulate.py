"""An iteration-level simulator of a continuous-batching server, for latency percentiles.

The scheduler is vLLM V1's, simplified (FCFS, chunked prefill, one token budget per iteration):

1. every running sequence past its prompt decodes one token (d tokens);
2. the remaining budget C - d goes to prompts: first the one(s) already being prefilled, in admission order,
   then waiting requests in arrival order, each admitted while fewer than ``max_num_seqs`` run and its KV
   cache fits (see below); a prompt longer than the budget left is cut into chunks;
3. the iteration takes :class:`~costmodel.serving.table.IterationTable`'s time for those tokens; a prompt's
   last chunk yields its first token (TTFT), each decode one more token.

Admission control instead of preemption: a request is admitted only when the KV blocks of its whole length
(prompt + output) are free, and holds them until it finishes, so nothing is ever evicted (TensorRT-LLM's
default ``GUARANTEED_NO_EVICT`` capacity policy). vLLM instead allocates blocks as sequences grow and preempts
the newest requests (recomputing them later) when blocks run out: it runs more sequences at once when
outputs end early, at the price of recomputation. With known output lengths the two coincide at full load.

The event loop is plain Python over NumPy arrays of the running sequences: a library (SimPy and the like)
would add a process per request and buy nothing, because every event happens at an iteration boundary.
Stretches of decode-only iterations are advanced in one vectorised step (until the next arrival, the next
completion or at most ``MAX_STRETCH_TOKENS`` sequence-steps), so light and heavy loads both run quickly
(benchmarks/serve_speed.py: 10,000 requests in well under a second).

Little's law is kept by construction of the bookkeeping, not assumed: the number in the system (arrived,
not finished) is integrated over time as the loop advances, and tests compare it with throughput × mean
latency (tests/test_serving_sim.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..checks import positive_int
from .table import IterationTable
from .workload import Workload

MAX_STRETCH_TOKENS = 1 << 18  # sequence-steps evaluated at once in a decode-only stretch
# Iterations with a prefill chunk are simulated one by one (~50 µs each): the prompts may need at most this
# many chunks of max_num_batched_tokens, so a run stays within seconds (16 M-token prompts in chunks of 16
# would take hours).
MAX_PREFILL_CHUNKS = 200_000


@dataclass
class SimResult:
    """Per-request times (seconds; NaN where not applicable) and run totals."""

    arrival_s: np.ndarray  # (n,) when each request arrived (closed loop: when its client sent it)
    first_token_s: np.ndarray  # (n,)
    finish_s: np.ndarray  # (n,)
    prompt: np.ndarray  # (n,)
    output: np.ndarray  # (n,)
    makespan_s: float  # first arrival .. last finish (from t = 0)
    iterations: int
    area: float  # integral over time of the requests in the system (arrived, not finished)
    kv_area: float  # integral over time of the KV bytes held
    kv_pool: float
    window: tuple = (0.0, 0.0)  # (t0, t1) over which window_area was integrated
    window_area: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> np.ndarray:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> np.ndarray:
        """(finish - first token) / (output - 1) per request with more than one output token."""
        many = self.output > 1
        return (self.finish_s[many] - self.first_token_s[many]) / (self.output[many] - 1)

    @property
    def throughput_tok_s(self) -> float:
        """Output tokens per second over the run."""
        return float(self.output.sum()) / self.makespan_s

    @property
    def request_rate(self) -> float:
        return len(self.output) / self.makespan_s

    @property
    def mean_concurrency(self) -> float:
        """Time-average of the requests in the system over the run (integrated by the event loop)."""
        return self.area / self.makespan_s

    @property
    def kv_occupancy(self) -> float:
        """Time-average fraction of the KV pool held."""
        return self.kv_area / self.makespan_s / self.kv_pool

    def tokens_between(self, t0: float, t1: float) -> float:
        """Output tokens emitted in [t0, t1): each request's first token at its first-token time, the other
        output - 1 spread evenly over (first token, finish] (each decode step emits one)."""
        first, end = self.first_token_s, self.finish_s
        n = ((first >= t0) & (first < t1)).sum()
        rest = self.output - 1
        span = np.maximum(end - first, 1e-300)
        overlap = np.clip(np.minimum(end, t1) - np.maximum(first, t0), 0.0, None)
        return float(n + (rest * overlap / span).sum())

    def window_little(self) -> tuple[float, float]:
        """(mean concurrency over the window, throughput × mean latency of the requests finishing in it)."""
        t0, t1 = self.window
        done = (self.finish_s >= t0) & (self.finish_s < t1)
        span = t1 - t0
        return self.window_area / span, done.sum() / span * float(self.e2e_s[done].mean())


def simulate(
    table: IterationTable,
    workload: Workload,
    *,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    kv_pool: float,
    kv_need: np.ndarray,
    clients: int | None = None,
    window: tuple[float, float] = (0.1, 0.9),
) -> SimResult:
    """Serve ``workload`` (open loop: its arrival times) or, with ``clients``, a closed loop of that many
    clients each sending its next request the moment the previous one finishes (arrival times ignored;
    request i goes to the i-th free client). ``kv_need``: (n,) bytes each request holds while admitted.
    ``window``: fractions of the arrivals between which the time-integral of the concurrency is also
    kept (open loop), for steady-state statistics."""
    n = len(workload)
    C, cap = positive_int("max_num_batched_tokens", max_num_batched_tokens), positive_int("max_num_seqs", max_num_seqs)
    need = np.asarray(kv_need, dtype=float)
    if need.shape != (n,) or not np.all(np.isfinite(need)) or need.min(initial=0) < 0:
        raise ValueError(f"kv_need must be {n} finite bytes >= 0, one per request")
    if need.max() > kv_pool:
        i = int(need.argmax())
        raise ValueError(f"request {i} needs {need[i]:.4g} bytes of KV cache; the KV pool holds {kv_pool:.4g}")
    P, O = workload.prompt, workload.output
    if (P + O).max() > table.max_context + 1:
        raise ValueError("the iteration table is too small for this workload's lengths")
    chunks = int((-(-P // C)).sum())  # the fewest prefill iterations the prompts take
    if chunks > MAX_PREFILL_CHUNKS:
        raise ValueError(f"the prompts need at least {chunks:,} prefill chunks of max_num_batched_tokens={C}; the "
                         f"simulator runs at most {MAX_PREFILL_CHUNKS:,} (fewer requests, or a larger budget)")
    if clients is not None:
        arr = np.full(n, np.inf)
        arr[: positive_int("clients", clients)] = 0.0
        w0 = w1 = 0.0
    else:
        arr = workload.arrival_s.copy()
        w0, w1 = (float(arr[min(int(f * n), n - 1)]) for f in window)
    first, finish = np.full(n, np.nan), np.full(n, np.nan)
    ids, ctx, rem = (np.zeros(cap, dtype=np.int64) for _ in range(3))
    nd = 0  # decoding sequences: ids/ctx/rem[:nd]
    waiting: deque = deque()
    prefill: deque = deque()  # [request, tokens done], admission order
    st = {"now": 0.0, "area": 0.0, "warea": 0.0, "kv": 0.0, "kvarea": 0.0, "nsys": 0, "iters": 0}
    sent = min(n, clients) if clients is not None else 0  # closed loop: the next request to send
    na = 0  # next request to arrive
    done = 0

    def advance(dt: float, steps: int) -> None:
        now = st["now"]
        st["area"] += st["nsys"] * dt
        st["warea"] += st["nsys"] * max(0.0, min(now + dt, w1) - max(now, w0))
        st["kvarea"] += st["kv"] * dt
        st["now"], st["iters"] = now + dt, st["iters"] + steps

    def leave(r: int) -> None:
        nonlocal done, sent
        finish[r] = st["now"]
        st["kv"] -= need[r]
        st["nsys"] -= 1
        done += 1
        if clients is not None and sent < n:  # its client sends the next request at once
            arr[sent] = st["now"]
            sent += 1

    while done < n:
        now = st["now"]
        while na < n and arr[na] <= now:  # arrivals up to now join the queue
            st["area"] += now - arr[na]
            st["warea"] += max(0.0, min(now, w1) - max(arr[na], w0))
            st["nsys"] += 1
            waiting.append(na)
            na += 1
        budget = C - nd
        chunks = []  # (offset, tokens, last), chunk i belongs to prefill[i]
        for r, got in prefill:
            if budget == 0:
                break
            take = min(int(P[r]) - got, budget)
            chunks.append((got, take, got + take == P[r]))
            budget -= take
        while budget > 0 and waiting and nd + len(prefill) < cap and st["kv"] + need[waiting[0]] <= kv_pool:
            r = waiting.popleft()
            prefill.append([r, 0])
            st["kv"] += need[r]
            take = min(int(P[r]), budget)
            chunks.append((0, take, take == P[r]))
            budget -= take
        if not chunks and nd == 0:  # idle until the next arrival
            st["now"] = max(now, arr[na])
            continue
        if chunks:
            advance(table.iteration_s(ctx[:nd], chunks), 1)
            ctx[:nd] += 1
            rem[:nd] -= 1
            for i, (_, c, _) in enumerate(chunks):  # chunk i is prefill[i]'s
                prefill[i][1] += c
            while prefill and prefill[0][1] == P[prefill[0][0]]:  # prompts done: first token now
                r = prefill.popleft()[0]
                first[r] = st["now"]
                if O[r] == 1:
                    leave(r)
                else:
                    ids[nd], ctx[nd], rem[nd] = r, P[r] + 1, O[r] - 1
                    nd += 1
        else:  # decode-only iterations until something changes
            k = int(min(rem[:nd].min(), max(1, MAX_STRETCH_TOKENS // nd)))
            steps = np.arange(k)  # (k,)
            per = (table.lin(nd) + table.logits(nd)) + table.decode_attention_steps(ctx[:nd, None] + steps[None, :])
            cum = np.cumsum(per)  # (k,)
            if not waiting and na < n and np.isfinite(arr[na]) and budget > 0 and nd + len(prefill) < cap and (
                st["kv"] + need[na] <= kv_pool
            ):  # the next arrival would be admitted at once: stop at the iteration it lands in
                k = min(k, int(np.searchsorted(now + cum, arr[na])) + 1)
            advance(float(cum[k - 1]), k)
            ctx[:nd] += k
            rem[:nd] -= k
        if nd and rem[:nd].min() == 0:  # finished sequences leave
            out = rem[:nd] == 0
            for r in ids[:nd][out]:
                leave(int(r))
            keep = ~out
            m = int(keep.sum())
            ids[:m], ctx[:m], rem[:m] = ids[:nd][keep], ctx[:nd][keep], rem[:nd][keep]
            nd = m
    return SimResult(
        arr.copy(), first, finish, P, O, st["now"], st["iters"], st["area"], st["kvarea"], float(kv_pool),
        (w0, w1), st["warea"],
    )  # fmt: skip
