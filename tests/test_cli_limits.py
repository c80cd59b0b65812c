"""Sizes whose work grows with the value are bounded where they are validated; list options take each value
once and no empty item; an option that does not apply to what the command does is an error.

Each bad input exits 2 with one line naming the option (or the file key); each bound is run at the bound.
"""

import json

import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.budget import MAX_BATCHED_TOKENS, ServerConfig
from costmodel.checks import MAX_HEADS, MAX_LAYERS
from costmodel.cli import cli
from costmodel.plan import divisors


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="glugqa")


def error_line(*args) -> str:
    """The one stderr line of a refused invocation (exit 2, nothing on stdout, no traceback)."""
    result = invoke(*args)
    assert result.exit_code == 2, (args, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def run_json(*args):
    result = invoke(*args, "--format", "json")
    assert result.exit_code in (0, 1), result.output  # 1: the plan does not fit (still a report)
    return json.loads(result.stdout)


# --- layers and heads ---------------------------------------------------------------------------------------
def test_layer_count_is_bounded_in_the_config_the_option_the_hf_reader_and_points(tmp_path):
    base = dict(d_model=64, n_heads=4, d_ff=128, vocab_size=100)
    with pytest.raises(ValueError, match="n_layers must be an integer from 1 to 4,096; got 4097"):
        cm.ModelConfig(n_layers=MAX_LAYERS + 1, **base)
    with pytest.raises(ValueError, match="n_encoder_layers must be an integer from 0 to 4,096"):
        cm.ModelConfig(n_layers=2, n_encoder_layers=10**9, **base)
    assert "'--layers': '1000000000' is not a positive integer up to 4,096" in error_line("plan", "--layers", 10**9)
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 10**9, "hidden_size": 4096,
                              "num_attention_heads": 32, "intermediate_size": 14336}))  # fmt: skip
    line = error_line("plan", "--hf-config", hf)
    assert "--hf-config" in line and "'num_hidden_layers' must be an integer >= 1 (at most 4,096)" in line
    t5 = tmp_path / "t5.json"
    t5.write_text(json.dumps({"model_type": "t5", "num_layers": 10**9, "d_model": 64, "num_heads": 2, "d_kv": 32,
                              "d_ff": 128}))  # fmt: skip
    assert "'num_layers' must be an integer >= 1 (at most 4,096)" in error_line("kv", "--hf-config", t5)
    points = tmp_path / "p.json"
    points.write_text(json.dumps([{
        "id": "p", "model_config": {"n_layers": 10**9, **base}, "hardware_key": "h100-sxm", "tp": 1,
        "weight_dtype": "bf16", "batch": 1, "input_len": 10, "output_len": 10, "batching": "batch-1",
        "metric": "e2e_ms", "measured": 5.0}]))  # fmt: skip
    line = error_line("accuracy", points)
    assert "field 'model_config': n_layers must be an integer from 1 to 4,096; got 1000000000" in line


def test_head_count_is_bounded_and_the_gqa_commands_run_at_the_bound():
    with pytest.raises(ValueError, match="n_heads must be an integer from 1 to 65,536"):
        cm.ModelConfig(d_model=64, n_layers=1, n_heads=MAX_HEADS + 1, d_ff=64, vocab_size=10, head_dim=1)
    for cmd in (["table", "gqa"], ["sweep", "kv-heads"]):
        line = error_line(*cmd, "--heads", 2**40, "--head-dim", 1, "--d-model", 1)
        assert "'--heads': '1099511627776' is not a positive integer up to 65,536" in line
    # at the bound: 55,440 has 120 divisors (the most of any N <= 65,536), each K one row
    rows = run_json("table", "gqa", "--heads", 55440, "--head-dim", 1, "--d-model", 1)["rows"]
    assert [r["n_kv_heads"] for r in rows] == [k for k in range(55440, 0, -1) if 55440 % k == 0]
    assert len(run_json("sweep", "kv-heads", "--heads", MAX_HEADS, "--head-dim", 1)["rows"]) == 17
    assert run_json("plan", "--layers", MAX_LAYERS)["layers"] == "4096 full"


@pytest.mark.parametrize("n", [1, 2, 12, 36, 97, 720, 55440, 65536])
def test_divisors_are_every_divisor_descending(n):
    assert divisors(n) == [k for k in range(n, 0, -1) if n % k == 0]


def test_batched_tokens_are_bounded():
    with pytest.raises(ValueError, match="max_num_batched_tokens must be an integer from 1 to 65,536"):
        ServerConfig(max_num_batched_tokens=MAX_BATCHED_TOKENS + 1)
    with pytest.raises(ValueError, match="max_num_seqs must be an integer from 1 to 65,536"):
        ServerConfig(max_num_seqs=2**40)
    for opt in ("--max-num-batched-tokens", "--max-num-seqs"):
        line = error_line("plan", opt, MAX_BATCHED_TOKENS + 1)
        assert f"'{opt}': '65537' is not a positive integer up to 65,536" in line


def test_a_huge_context_plan_runs_with_every_prefill_chunk_priced():
    """16.8 M prompt tokens in chunks of 16: a million chunks, summed in closed form (serving.step)."""
    data = run_json("plan", "--context", 2**24, "--batch", 1, "--max-num-batched-tokens", 16, "--max-num-seqs", 1)
    assert data["prompt"] == 2**24 and 0 < data["ttft_s"] < float("inf")


# --- accuracy: why nothing could be predicted ------------------------------------------------------------------
def test_accuracy_says_why_no_point_could_be_predicted(tmp_path):
    point = {"model_key": "llama-3-8b", "hardware_key": "h100-sxm", "tp": 3, "weight_dtype": "bf16", "batch": 8,
             "input_len": 1000, "output_len": 100, "batching": "static", "metric": "output_tok_s_total",
             "measured": 1000.0}  # fmt: skip
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{**point, "id": f"p{i}"} for i in range(5)]))
    for view in (["--view", "points"], ["--format", "json"], []):
        line = error_line("accuracy", path, *view)
        assert "no point could be predicted: p0: the cost model refused it: tp must divide n_heads=32; got tp=3; " \
               "p1: " in line and line.rstrip().endswith("; and 2 more")
    big = {**point, "id": "big", "tp": 1, "batching": "continuous", "batch": 2**40}
    path.write_text(json.dumps([big]))
    assert "big: the cost model refused it: batch 1,099,511,627,776 clients" in error_line("accuracy", path)


# --- list options ----------------------------------------------------------------------------------------------
LISTS = [
    (["serve", "--tp"], "1,{}2", "'--tp'"),
    (["serve", "--hardware"], "h100-sxm,{}b200", "--hardware:"),
    (["serve", "--kv-dtype"], "bf16,{}fp8", "--kv-dtype:"),
    (["serve", "--weight-dtype"], "bf16,{}fp8", "--weight-dtype:"),
    (["sweep", "rate", "--rates"], "1,{}2", "'--rates'"),
    (["sweep", "batch", "--values"], "1,{}2", "'--values'"),
]


@pytest.mark.parametrize("cmd, value, name", LISTS, ids=[" ".join(c) for c, _, _ in LISTS])
def test_list_options_refuse_empty_items_and_repeated_values(cmd, value, name):
    for bad in (value.format(","), value.format("") + ",", ","):
        line = error_line(*cmd, bad)
        assert name in line and "has an empty item" in line, line
    first = value.split(",")[0]
    line = error_line(*cmd, value.format(first + ","))
    assert name in line and f"'{first}' is given twice" in line, line


def test_repeated_values_compare_as_values_and_every_list_option_follows_the_rule(tmp_path):
    assert "'01' is given twice (as '1')" in error_line("serve", "--tp", "1,01")
    assert "'1.0' is given twice (as '1')" in error_line("sweep", "rate", "--rates", "1,1.0")
    assert "--params: 'flops' is given twice" in error_line("calibrate", "x.csv", "-o", tmp_path / "o", "--params",
                                                            "flops,flops")  # fmt: skip
    assert "--shape gives d_model twice" in error_line("ref", "vectors", "--op", "swiglu", "--dtype", "fp32",
                                                       "--shape", "d_model=4,d_model=8", "-o", tmp_path / "v.npz")
    assert "at most 1000 values" in error_line("sweep", "batch", "--values", "1:2000:1")


# --- options that do not apply ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["latency", "--phase", "decode", "--prompt", "100"], "--prompt applies to --phase prefill"),
    (["latency", "--phase", "prefill", "-c", "100"], "--context applies to --phase decode"),
    (["latency", "-m", "t5.1.1-base", "--phase", "prefill", "--encoder-len", "5"],
     "--encoder-len applies to --phase decode"),
    (["flops", "--phase", "decode", "--prompt", "100"], "--prompt applies to --phase prefill"),
    (["plan", "--active-convention", "no_input_embedding"], "--active-convention applies to mixture-of-experts"),
    (["params", "--active-convention", "with_embeddings"], "--active-convention applies to mixture-of-experts"),
    (["plan", "--ep", "2"], "ep applies to mixture-of-experts models"),
    (["table", "gqa", "--kv-heads", "4"], "'--kv-heads': the table has a row for every K dividing N"),
    (["sweep", "kv-heads", "--kv-heads", "4"], "sweeping kv-heads: drop --kv-heads"),
    (["sweep", "context", "--context", "100"], "sweeping context: drop --context"),
    (["sweep", "d-ff", "--d-ff", "1024", "--values", "1024,2048"], "sweeping d-ff: drop --d-ff (--values sets it)"),
])  # fmt: skip
def test_an_option_that_does_not_apply_is_an_error(args, message):
    assert message in error_line(*args)


def test_what_applies_is_accepted_and_only_that_is_echoed():
    prefill = run_json("latency", "--phase", "prefill", "--prompt", 100)
    assert "prompt 100" in prefill["title"] and "context" not in prefill["title"]
    assert prefill["prompt"] == 100 and "context" not in prefill
    decode = run_json("latency", "--phase", "decode", "-c", 100)
    assert "context 100" in decode["title"] and "prompt" not in decode["title"] and "prompt" not in decode
    both = run_json("latency", "--prompt", 100, "-c", 200)
    assert (both["prompt"], both["context"]) == (100, 200)
    assert run_json("flops", "--phase", "prefill", "-c", 100)["prompt"] == 100  # -c: the prompt, as it always was
    moe = run_json("params", "-m", "gpt-oss-20b", "--active-convention", "no_input_embedding")
    assert moe["active_convention"] == "no_input_embedding"
    assert run_json("sweep", "d-ff", "--d-ff", 1024)["rows"]  # without --values, --d-ff is what the points scale


def test_calibrate_says_why_no_point_could_be_used(tmp_path):
    from costmodel.accuracy.stats import none_counted

    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"id": "p", "model_key": "llama-3-8b", "hardware_key": "h100-sxm", "tp": 3,
                                 "weight_dtype": "bf16", "batch": 8, "input_len": 1000, "output_len": 100,
                                 "batching": "static", "metric": "output_tok_s_total", "measured": 1000.0}]))
    line = error_line("calibrate", path, "-o", tmp_path / "o.toml")
    assert "points: no point could be predicted: p: the cost model refused it: tp must divide n_heads=32" in line
    assert none_counted([]) == "no point could be predicted: there are none"


def test_a_simulation_needing_too_many_prefill_chunks_is_refused():
    """Iterations with a prefill chunk are simulated one by one: 10 prompts of 1 M tokens in chunks of 16 would be
    625,000 of them (most of an hour); the simulator refuses more than MAX_PREFILL_CHUNKS before it starts."""
    line = error_line("sweep", "rate", "--rates", "0.0001", "--simulate", 10, "--prompt", 10**6, "--output", 2,
                      "--max-num-batched-tokens", 16, "--max-num-seqs", 1, "--layers", 1, "--d-model", 128,
                      "--heads", 1, "--kv-heads", 1, "--d-ff", 128, "--vocab", 128)  # fmt: skip
    assert "the prompts need at least 625,000 prefill chunks of max_num_batched_tokens=16" in line
