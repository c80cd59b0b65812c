"""What a new user found the outputs leaving unsaid or saying wrongly: the efficiency profile behind every time,
the KV dtype of weight-only quantized models, a config.json's quantization_config, a plan that does not fit,
KV per token beside sliding windows, shares that mixed per-device and whole-model counts, names and keys."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.cli import cli

M = cm.MODELS
HF = json.loads((Path(__file__).parent / "data" / "hf_configs.json").read_text())
# openai/gpt-oss-20b's config.json (huggingface.co/openai/gpt-oss-20b/blob/main/config.json) states this
MXFP4 = {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                    "lm_head"], "quant_method": "mxfp4"}  # fmt: skip


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="glugqa")
    assert result.exit_code == code, result.output
    return result.stdout


def run_json(*args: str, code: int = 0) -> dict:
    return json.loads(run(*args, "--format", "json", code=code))


def notes_of(text: str) -> list[str]:
    """The lines between a human report's title and its table."""
    return text.split("\n\n")[0].splitlines()[1:]


@pytest.fixture
def gpt_oss_20b(tmp_path):
    """gpt-oss-20b's config.json as downloaded: no _name_or_path, with its quantization_config."""
    config = {k: v for k, v in HF["gpt-oss-20b"]["config"].items() if k != "_name_or_path"}
    path = tmp_path / "gpt-oss-20b.json"
    path.write_text(json.dumps({**config, "quantization_config": MXFP4}))
    return str(path)


# --- 1. the efficiency profile --------------------------------------------------------------------------
def test_every_timed_command_names_its_efficiency_profile(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text("[efficiency]\nflops = 0.696524\nstep_overhead_s = 0.0012\nattn_memory = 0.8\n")
    data = run_json("plan", "--efficiency-file", str(profile))
    note = f"efficiency: profile {profile} (differs from the default estimate in flops 0.6965, step_overhead_s 1.2 ms, "
    assert data["notes"][-1] == note + "attn_memory 0.8)"
    assert data["efficiency"] == {"profile": "file", "file": str(profile),
                                  "changed": {"flops": 0.696524, "step_overhead_s": 0.0012, "attn_memory": 0.8}}
    assert run_json("plan", "--ideal")["efficiency"] == {"profile": "ideal"}
    ideal = "efficiency: ideal roofline (every efficiency 1, no overheads or latencies)"
    assert notes_of(run("plan", "--ideal"))[-1] == ideal
    hbm = run_json("plan", "--hbm-eff", "0.5", "--overhead-us", "0")
    assert hbm["notes"][-1] == "efficiency: default estimate, except hbm 0.5, kernel_overhead_s 0 us"
    assert hbm["efficiency"] == {"profile": "estimate", "changed": {"hbm": 0.5, "kernel_overhead_s": 0.0}}
    for args in (["serve", "--hardware", "h100-sxm", "--tp", "1"], ["sweep", "rate", "--rates", "1,2"],
                 ["table", "gqa"], ["latency"], ["sweep", "batch", "--values", "1,2"]):  # fmt: skip
        data = run_json(*args, "--hbm-eff", "0.5")
        assert data["efficiency"]["changed"] == {"hbm": 0.5}, args
        assert "efficiency: default estimate, except hbm 0.5" in data["notes"], args
    latency = run("latency", "--efficiency-file", str(profile))
    assert "efficiency flops" not in latency.splitlines()[0] and notes_of(latency)[-1].startswith(note)


def test_calibrate_prints_latencies_at_their_bound_as_zero():
    from costmodel.cli.accuracy import _param_text
    from costmodel.notes import param_text, seconds_text

    assert _param_text(2.03e-18, "s") == "0 us"  # scipy's answer at the lower bound 0 was shown as 2.03e-12 us
    assert [seconds_text(s) for s in (3.25e-6, 1.2e-3, 14e-6, 0.0)] == ["3.25 us", "1.2 ms", "14 us", "0 us"]
    assert param_text("flops", 0.696524) == "0.6965" and param_text("kv_read_per_query_head", True) == "on"


# --- 2. the KV dtype of weight-only quantized weights ---------------------------------------------------
@pytest.mark.parametrize("weight_dtype, kv_dtype", [("int4", "bf16"), ("int8", "bf16"), ("fp8", "fp8"),
                                                    ("fp16", "fp16"), ("fp32", "fp32")])  # fmt: skip
def test_weight_only_quantization_keeps_a_bf16_kv_cache(gpt_oss_20b, weight_dtype, kv_dtype):
    data = run_json("plan", "--hf-config", gpt_oss_20b, "--weight-dtype", weight_dtype, "--hw", "h200-sxm")
    assert data["kv_dtype"] == kv_dtype
    # gpt-oss-20b: 24 layers, 8 KV heads of 64: K and V per token, at the KV dtype's bytes
    assert data["kv_bytes_per_token"] == 2 * 24 * 8 * 64 * float(cm.dtype_bytes(kv_dtype))
    said = [n for n in data["notes"] if n.startswith("KV cache in bf16")]
    assert said == ([f"KV cache in bf16: {weight_dtype} is weight-only quantization (activations stay bf16, as "
                     "vLLM's kv_cache_dtype 'auto'); --kv-dtype sets it"] if kv_dtype != weight_dtype else [])
    asked = run_json("plan", "--hf-config", gpt_oss_20b, "--weight-dtype", weight_dtype, "--kv-dtype", "int4",
                     "--hw", "h200-sxm")
    assert asked["kv_dtype"] == "int4" and not [n for n in asked["notes"] if n.startswith("KV cache in")]
    assert f"KV {kv_dtype}" in run("latency", "--weight-dtype", weight_dtype).splitlines()[0]


def test_kv_dtype_default_is_in_the_help():
    assert "bf16 for int8/int4 weights" in " ".join(run("plan", "--help").split())


# --- 3. a config.json's quantization_config -------------------------------------------------------------
def test_a_stated_quantization_is_noted_and_not_applied(gpt_oss_20b):
    data = run_json("plan", "--hf-config", gpt_oss_20b)
    assert data["weight_dtype"] == "bf16" and data["weight_bytes"] == 2 * 20_914_757_184  # 41.83 GB, unchanged
    assert ("config.json's quantization_config: mxfp4; this plan counts every weight at bf16 (2 bytes; "
            "--weight-dtype sets it); ~4-bit weights: --weight-dtype int4 (0.5 byte per weight, group scales not "
            "counted)") in data["notes"]  # fmt: skip
    int4 = run_json("plan", "--hf-config", gpt_oss_20b, "--weight-dtype", "int4")
    assert int4["weight_bytes"] == 20_914_757_184 // 2  # 0.5 byte per weight: no group scales
    assert ("config.json's quantization_config: mxfp4; this plan counts every weight at int4 (0.5 byte per weight, "
            "group scales not counted)") in int4["notes"]  # fmt: skip
    assert any(n.startswith("config.json's quantization_config: mxfp4") for n in run_json("latency", "--hf-config",
                                                                                          gpt_oss_20b)["notes"])
    assert any("mxfp4" in n for n in run_json("plan", "-m", "gpt-oss-120b", code=1)["notes"])  # its preset too


# --- 4. a plan that does not fit --------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("-m", "gpt-oss-120b"), ("-m", "qwen3-30b-a3b", "--hardware", "l4"),
                                  ("--batch", "100",)])  # fmt: skip
def test_a_plan_that_does_not_fit_shows_its_shortfall_not_negative_memory(args):
    data = run_json("plan", *args, code=1)
    terms = ("headroom_bytes", "runtime_reserve_bytes", "weight_bytes", "activation_bytes", "kv_cache_bytes",
             "kv_free_bytes")  # fmt: skip
    assert min(data[t] for t in (*terms, "kv_pool_bytes", "shortfall_bytes")) >= 0 and data["kv_free_bytes"] == 0
    assert sum(data[t] for t in terms) - data["shortfall_bytes"] == data["device_bytes"]
    assert data["shortfall_bytes"] == data["used_bytes"] - (data["usable_bytes"])  # what the usable memory lacks
    text = run("plan", *args, code=1)
    assert not re.search(r"\s-\d", text), "a negative number in the table"
    short = re.search(r"^- short by \(the plan does not fit\)\s+([\d.]+) GB$", text, flags=re.M)
    assert short and float(short.group(1)) == pytest.approx(data["shortfall_bytes"] / 1e9, rel=1e-3)
    if args[1] == "gpt-oss-120b":  # bf16 weights alone: 233.7 GB of the 77.31 GB usable
        assert data["shortfall_bytes"] == pytest.approx(160.8e9, rel=1e-3) and data["kv_pool_bytes"] == 0
    assert "shortfall_bytes" not in run_json("plan")


# --- 5. KV per token beside sliding windows ---------------------------------------------------------------
def test_kv_per_token_says_it_counts_every_layer_as_full(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HF["gemma-3-27b"]["config"]))
    text = run("kv", "--hf-config", str(path))
    # Gemma-3-27B: 62 layers of 16 KV heads x 128, bf16: 8,192 bytes per layer and position; 52 sliding layers
    # keep 1,024 positions, 10 full ones all 8,192: (52 x 1024 + 10 x 8192) x 8192 / 8192 = 135,168 B per token
    assert "KV per token, all layers full (kB)" in text and " 508 " in text
    assert notes_of(text)[0] == ("sliding window: 52 of 62 layers keep only the last 1,024 positions of the "
                                 "8,192-token context (135.2 kB per token on average)")  # fmt: skip
    plain = run("kv")  # Llama-3-8B: every layer full, the per-token figure needs no qualifier
    assert "KV per token (kB)" in plain and "all layers full" not in plain and "sliding" not in plain
    assert "KV cache per token, all layers full" in run("plan", "-m", "gemma-2-9b")
    listed = run("models", "list")
    assert "KV/token bf16, all layers full" in listed and "counts every layer as full attention" in listed
    assert "counts every layer as full attention" in run("models", "show", "gemma-3-27b")


# --- 6. shares of per-device and whole-model counts --------------------------------------------------------
def test_params_share_is_never_of_the_whole_model_beside_per_device_counts():
    rows = run_json("params", "-m", "qwen3-30b-a3b", "--tp", "4", "--ep", "2", "--breakdown")["rows"]
    total, active = rows[-2], rows[-1]
    assert total["component"] == "total" and total["share"] == 1.0
    assert sum(r["share"] for r in rows[:-2]) == pytest.approx(1.0)
    assert active["params"] == cm.active_param_count(M["qwen3-30b-a3b"]) and active["share"] is None
    whole = run_json("params", "-m", "qwen3-30b-a3b")["rows"][-1]  # one device: per device is the whole model
    assert whole["share"] == pytest.approx(whole["params"] / cm.param_count(M["qwen3-30b-a3b"]))


# --- 8. names, keys, labels, int8 peaks ----------------------------------------------------------------------
def test_hf_outputs_are_named_after_the_model_and_json_names_hardware_by_key(gpt_oss_20b, tmp_path):
    assert run("plan", "--hf-config", gpt_oss_20b).startswith("Capacity plan: gpt-oss-20b on 1 x NVIDIA H100 SXM")
    folder = tmp_path / "Llama-3.1-8B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HF["llama-3.1-8b"]["config"]))
    assert cm.load_hf_config(folder).name == cm.load_hf_config(folder / "config.json").name == "Llama-3.1-8B"
    named = {**HF["llama-3.1-8b"]["config"], "_name_or_path": "meta-llama/Llama-3.1-8B"}
    (folder / "config.json").write_text(json.dumps(named))
    assert cm.load_hf_config(folder).name == "meta-llama/Llama-3.1-8B"  # the config's own name first
    assert cm.load_hf_config(HF["llama-3.1-8b"]["config"]).name == "llama"  # a dict: its model_type
    for command in ("plan", "kv", "latency"):
        assert run_json(command, "--hw", "h200-sxm")["hardware"] == "h200-sxm", command


def test_the_runtime_row_names_no_vendor():
    text = run("plan", "--hw", "tpu-v5e", "-m", "gemma-2b", "--context", "1024")
    (label,) = [ln for ln in text.splitlines() if "runtime" in ln]
    assert label.startswith("+ runtime (driver, collective buffers, graphs)") and "CUDA" not in label


def test_int8_peaks_are_the_datasheets_dense_figures():
    # vendor datasheets give int8 WITH 2:4 sparsity for NVIDIA parts (dense is half); AMD and Google give dense
    sparse = {"a100-sxm-40gb": 1248e12, "a100-sxm-80gb": 1248e12, "h100-sxm": 3958e12, "h100-pcie": 3026e12,
              "h200-sxm": 3958e12, "b200": 72e15 / 8, "l4": 485e12, "l40s": 1466e12}  # fmt: skip
    dense = {"mi300x": 2614.9e12, "tpu-v4": 275e12, "tpu-v5e": 394e12, "tpu-v5p": 918e12}
    for name, ops in {**{k: v / 2 for k, v in sparse.items()}, **dense}.items():
        assert cm.HARDWARE[name].flops_for("int8") == pytest.approx(ops, rel=1e-3), name
    assert run_json("hardware", "show", "h100-sxm")["ops_int8"] == 3958e12 / 2


def test_a_longest_context_beyond_the_models_positions_says_so():
    """gpt-oss-20b keeps 131,072 positions; on one H100 at batch 1 memory holds far more (half its layers
    slide over 128 tokens), and the plan must not let that read as the model's limit."""
    out = run_json("plan", "-m", "gpt-oss-20b", "-c", "131072", "--batch", "1")
    assert out["max_context"] > cm.get_model("gpt-oss-20b").max_position == 131072
    assert any("max_position_embeddings 131,072" in n for n in out["notes"])
    assert not any("max_position_embeddings" in n for n in run_json("plan")["notes"])
