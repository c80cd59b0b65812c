"""One continuous-batching iteration (costmodel.serving.step, ForwardModel.iteration) and its tables
(costmodel.serving.table)."""

from dataclasses import replace

import numpy as np
import pytest

import costmodel as cm
from costmodel.forward import ForwardModel
from costmodel.parallel import ALLREDUCES_PER_LAYER
from costmodel.roofline import ROLE_ATTENTION, ROLE_LOGITS, ROLE_STEP, ROLE_TOKENS
from costmodel.serving.replica import Replica, paged_kv_array
from costmodel.serving.step import Chunk, StepModel, time_by_role
from costmodel.serving.table import IterationTable, token_tables

M = cm.MODELS
MODELS = ["llama-3-8b", "gemma-2-9b", "mixtral-8x7b", "qwen3-30b-a3b"]  # dense, sliding/full, two MoE
ATTENTION_FLOPS = ("layers/attn/qk", "layers/attn/pv", "layers/attn/softmax")


@pytest.mark.parametrize("name", MODELS)
def test_an_iteration_without_chunks_is_a_decode_step_and_a_lone_prompt_is_a_prefill(name):
    step = StepModel(M[name], "h100-sxm", tp=2, kv_dtype="fp8")
    for d, s in ((1, 1), (7, 300), (64, 5000)):
        exact = cm.decode_latency(M[name], "h100-sxm", batch=d, context=s, tp=2, kv_dtype="fp8").total_s
        assert step.iteration_s(d, s) == pytest.approx(exact, rel=1e-12)
    for p in (1, 100, 3000):
        exact = cm.prefill_latency(M[name], "h100-sxm", batch=1, prompt_len=p, tp=2, kv_dtype="fp8").total_s
        assert step.iteration_s(0, 1, [Chunk(0, p, True)]) == pytest.approx(exact, rel=1e-12)


def test_a_chunk_attends_its_offset_and_reads_the_whole_cache():
    """The prefill kernel of a chunk of c tokens at offset o: the FLOPs of c queries against o + c keys (the
    FLOP counter's forward over q_len = c, kv_len = o + c) and the KV cache of o + c positions (the memory
    model's), for full and sliding-window layers; the chunks of a prompt add up to its attention FLOPs."""
    for name in ("llama-3-8b", "gemma-2-9b"):
        step = StepModel(M[name], "h100-sxm")
        for o, c in ((0, 700), (2048, 2048), (4096, 904), (6000, 1)):
            ops = [op for op in step.iteration([], [(o, c, True)]).ops if op.role == ROLE_ATTENTION]
            fl = cm.forward_flops(M[name], batch=1, q_len=c, kv_len=o + c).items
            assert sum(op.flops for op in ops) == sum(fl[k] for k in ATTENTION_FLOPS)
            cache = cm.kv_cache_bytes(M[name], batch=1, context=o + c)
            queries = 2 * c * M[name].n_heads * M[name].head_dim * 2 * M[name].n_layers  # q read, output written
            assert sum(op.bytes for op in ops) == pytest.approx(cache + queries, rel=1e-12)
        chunks = step.chunks_of(5000, 2048)
        assert [tuple(c) for c in chunks] == [(0, 2048, False), (2048, 2048, False), (4096, 904, True)]
        flops = sum(op.flops for c in chunks for op in step.iteration([], [c]).ops if op.role == ROLE_ATTENTION)
        whole = cm.prefill_flops(M[name], batch=1, prompt_len=5000).items
        assert flops == sum(whole[k] for k in ATTENTION_FLOPS)


def test_per_step_terms_once_per_iteration_per_token_terms_per_token():
    """An iteration of 32 decodes and two chunks: the step overhead once, one all-reduce latency per
    all-reduce (2 a layer), the tokens' ops those of one pass over all 32 + 600 tokens, the lm_head over the
    33 rows that sample, and one attention kernel per layer for the decodes and one for the chunks."""
    cfg, L = M["llama-3-8b"], M["llama-3-8b"].n_layers
    base = cm.Efficiency(step_overhead_s=0.0, collective_latency_s=0.0, kernel_overhead_s=0.0)
    chunks = [(0, 400, False), (1500, 200, True)]

    def it(**kw):
        return StepModel(cfg, "h100-sxm", tp=2, eff=replace(base, **kw)).iteration([2000] * 32, chunks)

    assert it(step_overhead_s=5e-3).total_s - it().total_s == pytest.approx(5e-3, rel=1e-9)
    assert it(collective_latency_s=1e-5).total_s - it().total_s == pytest.approx(ALLREDUCES_PER_LAYER * L * 1e-5)
    kernels = sum(op.count for op in it().ops)  # every op a kernel, repeated once per layer
    assert sum(op.role == ROLE_ATTENTION for op in it().ops) == 2  # a decode kernel and a prefill kernel
    assert it(kernel_overhead_s=3e-6).total_s - it().total_s == pytest.approx(kernels * 3e-6, rel=1e-9)
    step = StepModel(cfg, "h100-sxm", tp=2)
    roles = time_by_role(step.iteration([2000] * 32, chunks).ops)
    tokens, logits = step.tokens_and_logits_s(32 + 600)
    assert roles[ROLE_TOKENS] + roles.get(ROLE_STEP, 0.0) == pytest.approx(tokens, rel=1e-12)
    assert roles[ROLE_LOGITS] == pytest.approx(step.tokens_and_logits_s(33)[1], rel=1e-12)
    assert roles[ROLE_ATTENTION] == pytest.approx(step.attention_s([2000] * 32, chunks), rel=1e-12)


def test_a_chunk_beside_decodes_shares_the_pass():
    """Decodes beside a chunk cost less than a separate pass: while the pass stays memory-bound (16 decodes
    and a 16-token chunk) the saving is the weights streamed once more (their bytes from the memory model at
    the achieved bandwidth) plus the per-pass costs (kernel launches), no more; a larger chunk (32 decodes,
    64 tokens: 96-row GEMMs in 128-row tiles, compute-bound in whole waves) still shares the weights."""
    cfg, hw = M["llama-3-8b"], cm.get_hardware("h100-sxm")
    eff = cm.ESTIMATE
    step = StepModel(cfg, hw)
    alone = step.iteration_s(0, 1, [Chunk(0, 16, True)]) + step.iteration_s(16, 2000)
    together = step.iteration_s(16, 2000, [Chunk(0, 16, True)])
    stream = float(cm.weight_bytes(cfg, "bf16")) / (hw.hbm_bandwidth * eff.hbm * hw.hbm_efficiency_factor)
    launches = sum(op.count for op in step.iteration([2000] * 16).ops) * eff.kernel_overhead_s
    assert stream < alone - together < stream + launches
    assert together < 0.6 * alone
    alone = step.iteration_s(0, 1, [Chunk(0, 64, True)]) + step.iteration_s(32, 2000)
    together = step.iteration_s(32, 2000, [Chunk(0, 64, True)])
    assert max(step.iteration_s(32, 2000), step.iteration_s(0, 1, [Chunk(0, 64, True)])) < together < 0.8 * alone
    with pytest.raises(ValueError, match="needs a decode or a prefill chunk"):
        step.iteration_s(0, 1)
    with pytest.raises(ValueError, match="encoder-decoder"):
        StepModel(M["t5.1.1-base"], "h100-sxm")
    with pytest.raises(ValueError, match="chunk last"):
        step.iteration([5], [(0, 3, 1)])


@pytest.mark.parametrize("name", ["llama-3-8b", "qwen3-30b-a3b"])
def test_the_token_tables_are_exact_at_every_token_count(name):
    """tokens(n) and logits(n) from passes at the tile breaks (and, for MoE, wherever the ops are not affine)
    against a pass at every n: to 1e-9, steps of wave quantization included."""
    step = StepModel(M[name], "h100-sxm")
    lin, logits, passes = token_tables(step, 1024, check=M[name].moe is not None)
    exact = np.array([step.tokens_and_logits_s(n) for n in range(1, 1025)])  # (1024, 2)
    assert np.abs(lin / exact[:, 0] - 1).max() < 1e-9 and np.abs(logits / exact[:, 1] - 1).max() < 1e-12
    assert passes < 1024 / 2
    if M[name].moe is None:
        assert exact[64, 0] > 1.2 * exact[63, 0]  # 65 tokens: 128-row tiles, a step the tables must not smooth


@pytest.mark.parametrize("name", MODELS)
def test_the_tables_match_the_exact_iteration(name):
    """The tabulated iteration (decodes at their own contexts, up to three chunks) against the cost model's
    pass: within 1e-9."""
    step = StepModel(M[name], "h200-sxm", tp=2)
    table = IterationTable(step, max_tokens=8192, max_context=20000)
    rng = np.random.default_rng(0)
    for _ in range(12):
        d = int(rng.integers(0, 400))
        contexts = rng.integers(1, 20000, d)
        chunks = [(int(rng.integers(0, 3000)), int(rng.integers(1, 2000)), bool(rng.integers(0, 2)))
                  for _ in range(int(rng.integers(0 if d else 1, 4)))]  # fmt: skip
        exact = step.iteration(contexts.tolist(), chunks).total_s
        assert table.iteration_s(contexts, chunks) == pytest.approx(exact, rel=1e-9), (name, d, chunks)
    ctx = rng.integers(1, 20000, (50, 7))  # 50 decodes over 7 iterations
    steps = table.decode_attention_steps(ctx)
    assert steps == pytest.approx([step.attention_s(ctx[:, j].tolist()) for j in range(7)], rel=1e-9)


def test_iteration_inputs_are_checked():
    fm = ForwardModel(M["llama-3-8b"], "h100-sxm")
    for bad, match in ((([0], []), "decode context"), (([], [(0, 0, True)]), "chunk tokens"),
                       (([], [(-1, 3, True)]), "chunk offset"), (([], [(0, 3)]), "triples"),
                       (([], [5]), "triples"), (([], []), "neither")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            fm.iteration(*bad)
    with pytest.raises(ValueError, match="ep=1"):
        IterationTable(StepModel(M["mixtral-8x7b"], "h100-sxm", ep=2), max_tokens=16, max_context=16)


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


@pytest.mark.parametrize("name", ["llama-3-8b", "gemma-2-9b", "gemma-3-27b", "gpt-oss-20b", "mixtral-8x7b"])
@pytest.mark.parametrize("eff", [cm.ESTIMATE, cm.IDEAL], ids=["estimate", "ideal"])
def test_ttft_in_closed_form_is_the_sum_of_its_chunk_iterations(name, eff):
    """StepModel.ttft_s sums the prefill-attention kernels over the chunks in closed form; here the prompt's
    iterations one by one (chunks_of, iteration_s). Sliding windows (Gemma 2/3, gpt-oss: W = 4096, 1024, 128)
    are crossed mid-prompt, chunks are compute- or memory-bound, and some prompts end in a partial chunk."""
    step = StepModel(M[name], "h100-sxm", tp=2, kv_dtype="fp8", eff=eff)
    for prompt, budget, decodes, context in ((5000, 2048, 0, 1), (4096, 2048, 0, 1), (30001, 512, 3, 9000),
                                             (20000, 16, 0, 1), (1, 8, 0, 1), (9000, 9000, 0, 1)):  # fmt: skip
        chunks = step.chunks_of(prompt, budget - decodes)
        one_by_one = sum(step.iteration_s(decodes, context, [c]) for c in chunks)
        assert step.ttft_s(prompt, budget=budget, decodes=decodes, context=context) == pytest.approx(one_by_one,
                                                                                                     rel=1e-9)


def test_sum_of_max_of_two_lines_in_closed_form(rng):
    """_sum_of_max against the sum term by term: lines crossing anywhere (or nowhere) in 1 … 50 points."""
    from costmodel.serving.step import _sum_of_max

    for _ in range(300):
        n = int(rng.integers(1, 50))
        ca, ma, cb, mb = rng.uniform(0.0, 1.0, 4)
        x = np.arange(n) / max(n - 1, 1)  # (n,)
        want = np.maximum(ca + (cb - ca) * x, ma + (mb - ma) * x).sum()
        assert _sum_of_max(ca, ma, cb, mb, n) == pytest.approx(want, rel=1e-12)
