"""`glugqa serve`, `glugqa sweep rate`, the plan's serving lines and notes, --plot, and one name per quantity."""

import json

import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="glugqa")


def run_json(*args):
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_serve_ranks_candidates_by_devices_with_a_reason_each():
    data = run_json("serve", "--hardware", "h100-sxm,a100-sxm-80gb", "--tp", "1,2,3", "--kv-dtype", "bf16,fp8")
    rows = data["rows"]
    assert len(rows) == 2 * 3 * 2
    feasible = [r for r in rows if r["rank"] is not None]
    assert [r["rank"] for r in feasible] == list(range(1, len(feasible) + 1))
    assert [r["devices"] for r in feasible] == sorted(r["devices"] for r in feasible)
    for r in feasible:
        assert r["devices"] == r["replicas"] * r["tp"] and r["replicas"] * r["replica_rate"] >= 20
        assert r["ttft_s"] <= 1.0 and r["tpot_s"] <= 0.040
        assert r["limit"] in ("SLO: TTFT p99", "SLO: TPOT p99", "memory", "compute", "bandwidth")
        assert r["replica_rate"] <= r["saturation_rate"]
    tp3 = [r for r in rows if r["tp"] == 3]
    assert tp3 and all(r["rank"] is None and r["limit"].startswith("invalid: tp must divide") for r in tp3)


def test_serve_exits_1_when_no_candidate_meets_the_slos(tmp_path):
    result = invoke("serve", "--hardware", "l4", "--tp", "1", "--tpot-ms", "1")
    assert result.exit_code == 1
    assert result.stderr.strip() == "glugqa serve: no candidate meets the SLOs"
    assert "SLO: TPOT p99" in result.stdout and "at the lowest load" in result.stdout


def test_serve_with_a_trace_and_a_moe_and_a_sliding_window_model(tmp_path):
    trace = tmp_path / "t.csv"
    lines = "".join(f"{i / 4},{500 + 37 * i % 900},{100 + i % 50}\n" for i in range(400))
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + lines)
    for model in ("mixtral-8x7b", "gemma-2-9b"):
        data = run_json("serve", "-m", model, "--hardware", "h200-sxm", "--tp", "2,4", "--trace", str(trace))
        assert data["rate"] == pytest.approx(399 / 99.75)
        assert any(r["rank"] == 1 for r in data["rows"])
    clash = invoke("serve", "--trace", str(trace), "--rate", "3")
    assert clash.exit_code == 2 and "--trace gives the rate; drop --rate" in clash.stderr


def test_serve_simulate_prints_the_simulators_percentiles():
    result = invoke("serve", "--hardware", "h100-sxm", "--tp", "2", "--kv-dtype", "fp8", "--simulate", "500")
    assert result.exit_code == 0 and "Simulated (500 requests at" in result.stdout


def test_sweep_rate_and_plots(tmp_path):
    data = run_json("sweep", "rate", "-m", "llama-3-8b", "--rates", "1,4,8,1000")
    rows = data["rows"]
    assert [r["rate"] for r in rows] == [1, 4, 8, 1000]
    assert rows[-1]["throughput_tok_s"] is None  # beyond saturation
    assert rows[0]["tpot_mean_s"] < rows[1]["tpot_mean_s"] < rows[2]["tpot_mean_s"]
    assert rows[2]["throughput_tok_s"] == pytest.approx(8 * 300)
    pytest.importorskip("matplotlib")
    for args in (("sweep", "rate", "--rates", "1,2"), ("sweep", "context", "--values", "1024,2048"),
                 ("serve", "--hardware", "h100-sxm", "--tp", "1,2")):  # fmt: skip
        png = tmp_path / f"{args[1]}.png"
        assert invoke(*args, "--plot", str(png)).exit_code == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = invoke("sweep", "rate", "--plot", str(tmp_path / "x.svg"))
    assert bad.exit_code == 2 and "must end in .png" in bad.stderr


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = invoke("sweep", "batch", "--values", "1,2", "--plot", str(tmp_path / "a.png"))
    assert result.exit_code == 2
    assert result.stderr.strip() == "glugqa sweep batch: error: --plot needs matplotlib: pip install 'glugqa[plot]'"


def test_plan_shows_ttft_tpot_and_the_ridge_the_bound_was_decided_with():
    data = run_json("plan", "-m", "llama-2-70b", "--hw", "h200-sxm", "--tp", "2", "--kv-dtype", "fp8",
                    "--context", "4096")  # fmt: skip
    p = cm.plan(cm.MODELS["llama-2-70b"], "h200-sxm", context=4096, devices=2, kv_dtype="fp8")
    assert data["ttft_s"] == pytest.approx(p.ttft_s) and data["decode_s"] == pytest.approx(p.decode.total_s)
    # bf16 compute (the weights are bf16): the H200's 989e12 FLOP/s · eff.flops over 4.8e12 B/s · eff.hbm
    eff = cm.ESTIMATE
    assert data["ridge_point_used"] == pytest.approx(989e12 * eff.flops / (4.8e12 * eff.hbm), rel=1e-9)
    assert data["ridge_point"] == pytest.approx(989e12 / 4.8e12)
    fp8 = run_json("plan", "-m", "llama-2-70b", "--hw", "h200-sxm", "--tp", "2", "--weight-dtype", "fp8")
    assert fp8["ridge_point_used"] == pytest.approx(1979e12 * eff.flops_fp8 / (4.8e12 * eff.hbm), rel=1e-9)


def test_plan_says_what_it_assumed():
    gemma = run_json("plan", "-m", "gemma-2-9b", "--context", "32768")
    assert any(n.startswith("sliding window: 21 of 42 layers") for n in gemma["notes"])
    t5 = run_json("plan", "-m", "t5.1.1-base", "--context", "1024")
    assert any("encoder length is taken as the context" in n for n in t5["notes"])
    t5_given = run_json("plan", "-m", "t5.1.1-base", "--context", "1024", "--encoder-len", "128")
    assert not any("encoder length" in n for n in t5_given.get("notes", []))
    assert t5_given["kv_bytes_per_sequence"] < t5["kv_bytes_per_sequence"]
    long = run_json("plan", "-m", "phi-3-mini", "--context", "8192")
    assert any("beyond the model's max_position_embeddings 4,096" in n for n in long["notes"])
    capped = run_json("plan", "-m", "llama-3-8b", "--context", "64")
    assert capped["batch"] == 1024 < capped["max_batch"]
    assert any("batch capped at max_num_seqs 1,024" in n for n in capped["notes"])
    wrong = invoke("plan", "--encoder-len", "100")
    assert wrong.exit_code == 2 and "--encoder-len applies to encoder-decoder models" in wrong.stderr


def test_a_plan_over_memory_exits_1():
    result = invoke("plan", "--batch", "100")
    assert result.exit_code == 1
    message = "glugqa plan: does not fit: batch 100 needs more memory than the 52 sequences that fit"
    assert result.stderr.strip() == message
    assert "fits                " in result.stdout and "no" in result.stdout


def test_memory_options_reach_the_plan_and_are_bounded():
    base = run_json("plan")
    more = run_json("plan", "--memory-utilization", "0.95", "--block-size", "32", "--max-num-batched-tokens", "2048",
                    "--max-num-seqs", "64", "--runtime-reserve-gib", "0")  # fmt: skip
    assert more["runtime_reserve_bytes"] == 0 and more["max_num_seqs"] == 64 and more["block_size"] == 32
    assert more["activation_bytes"] < base["activation_bytes"] and more["batch"] == min(64, more["max_batch"])
    for args, message in ((["--memory-utilization", "1e-320"], "is not in [0.01, 1]"),
                          (["--max-num-seqs", "10000"], "must be at least max_num_seqs"),
                          (["--runtime-reserve-gib", "1e300"], "--runtime-reserve-gib must be at most")):  # fmt: skip
        result = invoke("plan", *args)
        assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_prompt_length_is_prompt_in_every_command_and_c_still_works_in_flops():
    new = run_json("flops", "--phase", "prefill", "--prompt", "2048")
    old = run_json("flops", "--phase", "prefill", "-c", "2048")
    assert new["total_flops"] == old["total_flops"] and new["prompt"] == old["prompt"] == 2048
    assert run_json("flops", "--phase", "prefill")["prompt"] == run_json("latency")["prompt"] == 1024
    assert invoke("flops", "--prompt", "8").exit_code == 2  # a decode step has no prompt
    assert run_json("plan", "--prompt", "1000")["prompt"] == 1000
    for command in (["plan"], ["latency"], ["flops"], ["serve"], ["sweep", "rate"]):
        assert "--prompt" in invoke(*command, "--help").stdout


def test_encoder_len_in_kv_and_latency_and_their_notes():
    t5 = run_json("kv", "-m", "t5.1.1-base", "--context", "1024")
    assert any("encoder length is taken as the context (1,024 tokens)" in n for n in t5["notes"])
    given = run_json("kv", "-m", "t5.1.1-base", "--context", "1024", "--encoder-len", "128")
    cfg = cm.MODELS["t5.1.1-base"]
    assert given["rows"][0]["kv_bytes"] == cm.kv_cache_bytes(cfg, batch=1, context=1024, encoder_len=128)
    assert "notes" not in given
    lat = run_json("latency", "-m", "t5.1.1-base", "--phase", "decode", "--encoder-len", "128")
    want = cm.decode_latency(cfg, "h100-sxm", batch=1, context=8192, encoder_len=128).total_s
    assert lat["rows"][0]["time_s"] == pytest.approx(want)
    for command in ("kv", "latency"):
        result = invoke(command, "--encoder-len", "5")
        assert result.exit_code == 2 and "--encoder-len applies to encoder-decoder models" in result.stderr
