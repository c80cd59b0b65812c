"""The iteration-level simulator (costmodel.serving.simulate) and request workloads (costmodel.serving.workload)."""

import json
import os

import numpy as np
import pytest

import costmodel as cm
from costmodel.serving.replica import Replica
from costmodel.serving.workload import Lengths, Workload, offline_workload, poisson_workload, read_trace

M = cm.MODELS


@pytest.fixture(scope="module")
def llama():
    return Replica(M["llama-3-8b"], "h100-sxm")


def test_littles_law_holds_in_the_simulation(llama):
    """Mean concurrency (integrated by the event loop) = throughput × mean latency: exactly over the whole run,
    within 1% over a steady window (the requests finishing between the 10% and 90% arrivals)."""
    w = poisson_workload(8.0, 4000, Lengths.parse("uniform:500,2500"), Lengths.parse("lognormal:300,0.6"),
                         np.random.default_rng(3))  # fmt: skip
    r = llama.simulate(w)
    whole = r.request_rate * float(r.e2e_s.mean())
    assert r.mean_concurrency == pytest.approx(whole, rel=1e-9)
    concurrency, little = r.window_little()
    assert concurrency == pytest.approx(little, rel=0.01)
    assert 10 < concurrency < 200


def test_every_request_is_served_in_order_of_its_lifecycle(llama):
    w = poisson_workload(12.0, 1500, Lengths.parse("uniform:1,6000"), Lengths.parse("uniform:1,400"),
                         np.random.default_rng(4))  # fmt: skip
    r = llama.simulate(w)
    assert np.all(np.isfinite(r.finish_s)) and np.all(r.first_token_s >= r.arrival_s)
    assert np.all(r.finish_s >= r.first_token_s)
    one = w.output == 1
    assert np.all(r.finish_s[one] == r.first_token_s[one])  # a one-token answer ends with its first token
    # a request alone on the server: TTFT is its chunks, TPOT one decode step at a time
    single = llama.simulate(Workload(np.zeros(1), np.array([3000]), np.array([3])))
    step = llama.step
    ttft = step.ttft_s(3000, budget=8192)
    assert single.ttft_s[0] == pytest.approx(ttft, rel=5e-3)
    two_steps = step.iteration_s(1, 3001) + step.iteration_s(1, 3002)
    assert single.finish_s[0] - single.first_token_s[0] == pytest.approx(two_steps, rel=5e-3)


def test_admission_holds_the_kv_of_whole_requests_and_max_num_seqs(llama):
    w = offline_workload(1000, Lengths.parse("4000"), Lengths.parse("200"), np.random.default_rng(0))
    r = llama.simulate(w)
    fits = llama.capacity(4000, 200)
    assert r.kv_occupancy <= 1 and r.mean_concurrency <= len(w)
    # at most `fits` requests run at once: the (fits+1)-th starts only after the first finishes
    order = np.sort(r.first_token_s)
    assert order[fits] >= np.sort(r.finish_s)[0]
    few = Replica(M["llama-3-8b"], "h100-sxm", server=cm.ServerConfig(max_num_seqs=4))
    r = few.simulate(offline_workload(20, Lengths.parse("100"), Lengths.parse("50"), np.random.default_rng(0)))
    starts, ends = np.sort(r.first_token_s), np.sort(r.finish_s)
    assert all(starts[i + 4] >= ends[i] for i in range(16))


def test_closed_loop_keeps_the_concurrency(llama):
    w = offline_workload(64 * 3, Lengths.parse("128"), Lengths.parse("512"), np.random.default_rng(0))
    r = llama.simulate(w, clients=64)
    assert r.mean_concurrency == pytest.approx(64, rel=0.02)
    assert np.all(r.arrival_s[64:] > 0) and np.all(r.arrival_s[:64] == 0)


def test_too_long_a_request_is_refused_up_front(llama):
    w = Workload(np.zeros(1), np.array([500_000]), np.array([1]))
    with pytest.raises(ValueError, match="needs .* bytes of KV cache; the KV pool holds"):
        llama.simulate(w)


@pytest.mark.parametrize(
    "text, kind, mean",
    [("2000", "fixed", 2000), ("uniform:10,30", "uniform", 20), ("lognormal:300,0.5", "lognormal", 300)],
)
def test_length_distributions(text, kind, mean):
    d = Lengths.parse(text)
    x = d.draw(np.random.default_rng(0), 200_000)
    assert d.kind == kind and x.min() >= 1 and x.max() <= d.high
    assert x.mean() == pytest.approx(mean, rel=0.01)


@pytest.mark.parametrize(
    "text", ["0", "-5", "x", "uniform:5", "uniform:30,10", "uniform:1.5,3", "lognormal:100", "lognormal:100,9",
             "lognormal:nan,1", "normal:1,2", "99999999999"],
)  # fmt: skip
def test_bad_lengths_say_what_was_expected(text):
    with pytest.raises(ValueError, match="length"):
        Lengths.parse(text)


def test_poisson_arrivals_have_the_rate():
    w = poisson_workload(5.0, 50_000, Lengths.parse("10"), Lengths.parse("10"), np.random.default_rng(1))
    assert len(w) / w.arrival_s[-1] == pytest.approx(5.0, rel=0.02)


def test_traces_in_json_lines_and_csv(tmp_path):
    rows = [(0.0, 100, 20), (0.5, 2000, 1), (0.5, 7, 300)]
    jl = tmp_path / "t.jsonl"
    keys = ("arrival_s", "prompt_tokens", "output_tokens")
    jl.write_text("\n".join(json.dumps(dict(zip(keys, r, strict=True))) for r in rows))
    cs = tmp_path / "t.csv"
    cs.write_text("prompt_tokens,arrival_s,output_tokens,user\n" + "".join(f"{p},{a},{o},x\n" for a, p, o in rows))
    for path in (jl, cs):
        w = read_trace(path)
        assert w.arrival_s.tolist() == [0.0, 0.5, 0.5] and w.prompt.tolist() == [100, 2000, 7]
        assert w.output.tolist() == [20, 1, 300]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 5}\n{"arrival_s": 1, "prompt_tokens": 0, '
         '"output_tokens": 5}', "line 2: prompt_tokens must be an integer in"),
        ('{"arrival_s": 1, "prompt_tokens": 5, "output_tokens": 5}\n{"arrival_s": 0.5, "prompt_tokens": 5, '
         '"output_tokens": 5}', "line 2: arrival_s 0.5 is before"),
        ('{"arrival_s": -1, "prompt_tokens": 5, "output_tokens": 5}', "line 1: arrival_s must be in"),
        ('{"arrival_s": 0, "prompt_tokens": 5.5, "output_tokens": 5}', "prompt_tokens must be an integer"),
        ('{"arrival_s": 0, "prompt_tokens": true, "output_tokens": 5}', "prompt_tokens must be a number"),
        ('{"arrival_s": 0, "prompt_tokens": 5}', "line 1: output_tokens missing"),
        ('{"arrival_s": NaN, "prompt_tokens": 5, "output_tokens": 5}', "line 1"),
        ("[1, 2]", "CSV header lacks"),
        ('{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 5}\n[1]', "line 2: expected a JSON object"),
        ("arrival_s,prompt_tokens,output_tokens\n0,5\n", "line 2: 2 cells for 3 columns"),
        ("arrival_s,prompt_tokens,output_tokens\n0,5,inf\n", "line 2: output_tokens must be a finite number"),
        ("arrival_s,prompt_tokens,output_tokens\n", "no requests"),
        ("", "no requests"),
        ("[" * 100_000 + "]" * 100_000, "line 1: not CSV (field larger than field limit"),  # was a csv.Error
    ],
)
def test_bad_traces_name_the_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "trace.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as err:
        read_trace(path)
    assert "trace.jsonl" in str(err.value)


def test_traces_that_are_not_regular_utf8_files_are_refused(tmp_path):
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "u16").write_text("arrival_s,prompt_tokens,output_tokens\n", encoding="utf-16")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = ((tmp_path / "bin", "not UTF-8"), (tmp_path / "u16", "not UTF-8"), (fifo, "not a regular file"),
             (tmp_path, "not a regular file"), (tmp_path / "missing", "cannot open"))  # fmt: skip
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            read_trace(path)
