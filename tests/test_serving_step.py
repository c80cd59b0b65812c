"""One continuous-batching iteration (costmodel.serving.step) and its tables (costmodel.serving.table)."""

import numpy as np
import pytest

import costmodel as cm
from costmodel.serving.replica import Replica, paged_kv_array
from costmodel.serving.step import Chunk, StepModel
from costmodel.serving.table import IterationTable

M = cm.MODELS
MODELS = ["llama-3-8b", "gemma-2-9b", "mixtral-8x7b", "qwen3-30b-a3b"]  # dense, sliding/full, two MoE


@pytest.mark.parametrize("name", MODELS)
def test_an_iteration_without_chunks_is_a_decode_step_and_a_lone_prompt_is_a_prefill(name):
    step = StepModel(M[name], "h100-sxm", tp=2, kv_dtype="fp8")
    for d, s in ((1, 1), (7, 300), (64, 5000)):
        exact = cm.decode_latency(M[name], "h100-sxm", batch=d, context=s, tp=2, kv_dtype="fp8").total_s
        assert step.iteration_s(d, s) == pytest.approx(exact, rel=1e-12)
    for p in (1, 100, 3000):
        exact = cm.prefill_latency(M[name], "h100-sxm", batch=1, prompt_len=p, tp=2, kv_dtype="fp8").total_s
        assert step.iteration_s(0, 1, [Chunk(0, p, True)]) == pytest.approx(exact, rel=1e-12)


def test_chunks_of_a_prompt_add_its_attention_once_and_share_the_weights():
    step = StepModel(M["llama-3-8b"], "h100-sxm")
    chunks = step.chunks_of(5000, 2048)
    assert [(c.offset, c.tokens, c.last) for c in chunks] == [(0, 2048, False), (2048, 2048, False), (4096, 904, True)]
    # the attention of the three chunks telescopes to the whole prompt's
    pre = sum(step.prefill_core_s(c.offset + c.tokens) - step.prefill_core_s(c.offset) for c in chunks)
    assert pre == pytest.approx(step.prefill_core_s(5000), rel=1e-12)
    # decodes beside a chunk cost far less than a separate decode step (the weights are read once)
    alone = step.iteration_s(0, 1, [Chunk(0, 64, True)]) + step.iteration_s(32, 2000)
    together = step.iteration_s(32, 2000, [Chunk(0, 64, True)])
    assert together < 0.7 * alone
    with pytest.raises(ValueError, match="needs a decode or a prefill chunk"):
        step.iteration_s(0, 1)
    with pytest.raises(ValueError, match="encoder-decoder"):
        StepModel(M["t5.1.1-base"], "h100-sxm")


@pytest.mark.parametrize("name", MODELS)
def test_the_tables_match_the_exact_iteration(name):
    """Interpolated lin, logits, u and core_pre against StepModel at points off the grids: within 0.5%."""
    step = StepModel(M[name], "h200-sxm", tp=2)
    table = IterationTable(step, max_tokens=8192, max_context=20000, max_prompt=6000)
    rng = np.random.default_rng(0)
    for _ in range(25):
        d = int(rng.integers(1, 400))
        contexts = rng.integers(1, 20000, d)
        offset, tokens = int(rng.integers(0, 3000)), int(rng.integers(1, 3000))
        chunk = (offset, tokens, bool(rng.integers(0, 2)))
        got = table.iteration_s(contexts, [chunk])
        exact = step.iteration_s(0, 1, [Chunk(*chunk)]) - step.linear_s(tokens) - step.logits_s(int(chunk[2]))
        exact += step.linear_s(d + tokens) + step.logits_s(d + int(chunk[2]))
        exact += sum(step.decode_core_s(1, int(s)) for s in contexts) - (d - 1) * table.core_overhead_s
        assert got == pytest.approx(exact, rel=5e-3), (name, d, chunk)


def test_paged_kv_of_many_requests_at_once_matches_the_library():
    for name in ("llama-3-8b", "gemma-2-9b", "mixtral-8x7b"):
        contexts = np.array([1, 15, 16, 17, 4095, 4096, 4097, 4111, 4112, 16385, 100_000])
        got = paged_kv_array(M[name], contexts, kv_dtype="fp8", tp=2, block_size=16)
        want = [cm.paged_kv_bytes(M[name], batch=1, context=int(s), kv_dtype="fp8", tp=2) for s in contexts]
        assert got.tolist() == want


def test_a_replica_holds_what_the_plan_budget_leaves():
    r = Replica(M["llama-3-8b"], "h100-sxm")
    b = cm.memory_budget(M["llama-3-8b"], "h100-sxm", batch=0, context=1)
    assert r.kv_pool == b.kv_pool
    assert r.capacity(2000, 300) == b.kv_pool // cm.paged_kv_bytes(M["llama-3-8b"], batch=1, context=2299)
