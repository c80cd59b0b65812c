"""The command line on the models with differing layers and experts: layer patterns, total and active
parameters, KV and latency by layer kind, expert parallelism (--ep), and --hf-config errors naming the option."""

import json
import os

import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.cli import cli

M = cm.MODELS


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def run_json(*args: str) -> dict:
    return json.loads(run(*args, "--format", "json"))


def test_plan_shows_layers_active_parameters_ep_and_notes():
    data = run_json("plan", "-m", "mixtral-8x7b", "--tp", "2", "--ep", "2", "--context", "32768")
    cfg = M["mixtral-8x7b"]
    assert data["layers"] == "32 full" and data["experts"] == "8 x 14336 wide, top-2" and data["ep"] == 2
    assert data["params"] == cm.param_count(cfg)
    assert data["active_params_with_embeddings"] == cm.active_param_count(cfg) == 12_879_925_248
    p = cm.plan(cfg, "h100-sxm", context=32768, devices=2, ep=2)
    assert data["max_batch"] == p.max_batch and data["weight_bytes"] == cm.weight_bytes(cfg, tp=2, ep=2)
    assert any(n.startswith("MoE: a decode step") for n in data["notes"])
    card = run_json("plan", "-m", "mixtral-8x7b", "--tp", "2", "--ep", "2", "--active-convention",
                    "no_input_embedding")  # fmt: skip
    assert card["active_params_no_input_embedding"] == cm.active_param_count(cfg, convention="no_input_embedding")
    text = run("plan", "-m", "gemma-2-9b", "--context", "32768")
    assert "21 sliding (W=4096) + 21 full" in text
    assert "sliding window: 21 of 42 layers keep only the last 4,096 positions" in text.splitlines()[1]
    dense = run_json("plan")
    assert dense["layers"] == "32 full" and "active_params_with_embeddings" not in dense
    assert dense["notes"] == ["efficiency: default estimate"]  # no assumption beyond the efficiency profile


def test_params_total_and_active_by_convention():
    data = run_json("params", "-m", "qwen3-30b-a3b")
    rows = {r["component"]: r["params"] for r in data["rows"]}
    assert rows["total"] == cm.param_count(M["qwen3-30b-a3b"]) and data["layers"] == "48 full"
    assert rows["active per token (embeddings included), whole model"] == cm.active_param_count(M["qwen3-30b-a3b"])
    assert rows["moe/experts"] == 48 * 128 * 3 * 2048 * 768 and rows["moe/router"] == 48 * 2048 * 128
    ep = run_json("params", "-m", "mixtral-8x7b", "--ep", "2", "--active-convention", "no_input_embedding")
    rows = {r["component"]: r["params"] for r in ep["rows"]}
    assert rows["moe/experts"] == 32 * 4 * 3 * 4096 * 14336  # E/ep = 4 experts per device
    assert ep["active_convention"] == "no_input_embedding"
    assert "layers: 32 full" in run("params")  # dense models show their pattern too


def test_kv_breakdown_by_layer_kind():
    data = run_json("kv", "-m", "gemma-3-27b", "--breakdown", "--context", "32768", "--batch", "2")
    kinds = cm.kv_cache_breakdown(M["gemma-3-27b"], batch=2, context=32768)
    got = {}
    for row in data["rows"]:
        kind = row["cache"].rsplit(" ", 1)[0]
        got[kind] = got.get(kind, 0) + row["bytes"]
        assert row["per_layer"] * row["layers"] == row["bytes"]
    assert got == kinds and {r["layers"] for r in data["rows"]} == {52, 10}
    assert {r["positions"] for r in data["rows"]} == {1024, 32768}
    t5 = run_json("kv", "-m", "t5.1.1-xxl", "--breakdown")
    assert [r["cache"] for r in t5["rows"]] == ["self-attention K", "self-attention V", "cross-attention K",
                                                "cross-attention V"]  # fmt: skip


def test_latency_by_layer_kind_and_expert_parallel_all_to_all():
    data = run_json("latency", "-m", "gemma-2-9b", "--phase", "decode", "--breakdown", "--context", "32768")
    ops = {r["op"]: r for r in data["rows"]}
    assert ops["attn_core (sliding W=4096)"]["count"] == ops["attn_core (full)"]["count"] == 21
    assert ops["attn_qkv"]["count"] == 42 and "attn_post_norm" in ops
    moe = run_json("latency", "-m", "mixtral-8x7b", "--tp", "2", "--ep", "4", "--batch", "32", "--phase",
                   "decode", "--breakdown")  # fmt: skip
    ops = {r["op"]: r for r in moe["rows"]}
    assert ops["moe_dispatch"]["bound"] == ops["moe_combine"]["bound"] == "link bandwidth"
    lat = cm.decode_latency(M["mixtral-8x7b"], "h100-sxm", batch=32, context=8192, tp=2, ep=4)
    assert moe["rows"][-1]["op"] == "lm_head" and sum(r["time_s"] for r in moe["rows"]) == pytest.approx(lat.total_s)


@pytest.mark.parametrize("name", ["gemma-2-9b", "qwen3-30b-a3b", "mixtral-8x22b", "phi-3-mini"])
def test_gqa_table_and_kv_heads_sweep_work_for_the_new_models(name):
    rows = run_json("table", "gqa", "-m", name, "--batch", "4", "--context", "4096")["rows"]
    assert rows[0]["label"] == "MHA" and rows[-1]["label"] == "MQA"
    assert rows[0]["kv_bytes_per_token"] > rows[-1]["kv_bytes_per_token"]
    sweep = run_json("sweep", "kv-heads", "-m", name, "--context", "4096", "--hardware", "h200-sxm", "--tp", "4")
    assert len(sweep["rows"]) >= 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["plan", "--ep", "2"], "ep applies to mixture-of-experts models"),
        (["plan", "-m", "mixtral-8x7b", "--ep", "3"], "ep must divide the number of experts 8"),
        (["latency", "-m", "mixtral-8x7b", "--ep", "0"], "--ep"),
        (["params", "-m", "qwen3-30b-a3b", "--tp", "5"], "tp must divide n_heads=32"),
        (["plan", "--active-convention", "card"], "--active-convention"),
        (["kv", "-m", "gemma-2-9b", "--layers", "41"], "layer_types must have one entry per layer"),
    ],
)
def test_bad_options_one_line_exit_2(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "content,message",
    [
        ("[]", "the top level must be a JSON object"),
        ("null", "the top level must be a JSON object"),
        ('"x"', "the top level must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"model_type": "t5", "d_model": 8, "num_layers": 1, "num_heads": 2, "d_kv": 4, "d_ff": 8,
                     "feed_forward_proj": 5}), "'feed_forward_proj' must be a string"),  # fmt: skip
        (json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "intermediate_size": 8, "tie_word_embeddings": "false"}), "'tie_word_embeddings' must be true"),
        (json.dumps({"model_type": "deepseek_v3"}), "multi-head latent attention"),
    ],
)
def test_hf_config_errors_name_the_option_and_the_file(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["plan", "--hf-config", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip()
    assert "\n" not in line and "plan: error: --hf-config: config file" in line and message in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_hf_config_named_pipe_does_not_hang(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    result = CliRunner().invoke(cli, ["params", "--hf-config", str(fifo)])
    assert result.exit_code == 2 and "is not a regular file" in result.output


def test_hf_config_qwen2_per_layer_window(tmp_path):
    """The issue's example through the CLI: the one layer below max_window_layers is full attention."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 1,
                                "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
                                "vocab_size": 101, "use_sliding_window": True, "sliding_window": 1,
                                "max_window_layers": 1}))  # fmt: skip
    data = run_json("kv", "--hf-config", str(path), "--context", "2", "--kv-dtype", "fp32")
    assert data["rows"][0]["kv_bytes"] == 512
