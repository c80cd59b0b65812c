"""The serving model as the accuracy harness's predictor of ``continuous`` and ``offline-max`` points.

Registered into :data:`costmodel.accuracy.PREDICTORS` on import (``costmodel.accuracy`` imports this module):

- ``continuous`` (a benchmark holding a fixed client concurrency, e.g. LMDeploy's ``profile_generation``):
  the simulator in closed loop, ``batch`` clients each sending its next request the moment the previous one
  finishes, ``ROUNDS`` requests per client, with ``vllm serve``'s defaults (``max_num_seqs`` raised to the
  concurrency when below it).
- ``offline-max`` (the stack's best throughput: every request queued at once, e.g. trtllm-bench, vLLM's
  ``benchmark_throughput``): the simulator with all requests at t = 0, vLLM's offline (``LLM`` class)
  defaults, ``OFFLINE_WAVES`` times as many requests as fit at once.

Each metric from the simulated requests: ``output_tok_s_total`` = output tokens / makespan; ``ttft_ms`` and
``e2e_ms`` their means; ``decode_ms_per_token`` the median of the per-request TPOT (LMDeploy reports the
50th percentile of per-token latencies); ``decode_tok_s_per_user`` = 1 / mean TPOT.
"""

from __future__ import annotations

import numpy as np

from ..accuracy.predict import register_predictor
from ..accuracy.schema import METRICS
from ..budget import MAX_BATCHED_TOKENS, ServerConfig

ROUNDS = 4  # requests per client in a closed-loop run
OFFLINE_WAVES = 4  # an offline run holds this many times the requests that fit at once
OFFLINE_MIN, OFFLINE_MAX = 256, 20_000  # requests in an offline run


def replica_for(setup, server: ServerConfig):
    """The point's replica, priced with its own settings exactly as the single-step recipe prices a step
    (Setup.latency_kwargs: tp, dtypes, the efficiency with the point's implementation settings, weight
    groups; setup.hw is the point's chip, a power-limited variant where the point says so)."""
    from .replica import Replica  # noqa: PLC0415 -- costmodel.accuracy imports this module: keep it light

    return Replica(setup.cfg, setup.hw, server=server, **setup.latency_kwargs())


def _fixed(n: int, setup):
    from .workload import Workload  # noqa: PLC0415

    p = setup.point
    return Workload(np.zeros(n), np.full(n, p.input_len, dtype=np.int64), np.full(n, p.output_len, dtype=np.int64))


def simulate_point(setup):
    """The simulated run a point's batching describes (see the module docstring)."""
    p = setup.point
    if p.batching == "continuous":
        clients = int(p.batch)
        if clients > MAX_BATCHED_TOKENS:  # checked before the workload (clients x ROUNDS requests) is made
            raise ValueError(f"batch {clients:,} clients is beyond the simulator's {MAX_BATCHED_TOKENS:,} running "
                             "sequences (max_num_seqs)")  # fmt: skip
        rep = replica_for(setup, ServerConfig())
        if rep.server.max_num_seqs < clients:
            tokens = max(clients, rep.server.max_num_batched_tokens)
            rep = replica_for(setup, ServerConfig(max_num_seqs=clients, max_num_batched_tokens=tokens))
        return rep.simulate(_fixed(clients * ROUNDS, setup), clients=clients)
    rep = replica_for(setup, ServerConfig(usage="offline"))
    n = min(max(OFFLINE_WAVES * rep.capacity(p.input_len, p.output_len), OFFLINE_MIN), OFFLINE_MAX)
    return rep.simulate(_fixed(n, setup))


def _metric(result, metric: str) -> float:
    if metric == "output_tok_s_total":
        return result.throughput_tok_s
    if metric == "ttft_ms":
        return float(result.ttft_s.mean()) * 1e3
    if metric == "e2e_ms":
        return float(result.e2e_s.mean()) * 1e3
    if metric == "decode_ms_per_token":
        return float(np.median(result.tpot_s)) * 1e3
    return 1.0 / float(result.tpot_s.mean())  # decode_tok_s_per_user


def _predictor(metric: str):
    def predict(setup) -> float:
        return _metric(simulate_point(setup), metric)

    predict.__name__ = f"serving_{metric}"
    return predict


for _metric_name in METRICS:
    for _batching in ("continuous", "offline-max"):
        register_predictor(_metric_name, _batching, _predictor(_metric_name))
