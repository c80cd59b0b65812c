"""The `glugqa` commands: defaults, numbers checked against formulas written out here, JSON == table."""

import io
import json
import re

import pytest
from click.testing import CliRunner

import costmodel
from costmodel.cli import cli
from costmodel.cli.formats import FORMATS
from costmodel.cli.sweep import PROGRESS_MIN_POINTS, progress

GIB = 2**30
# the human units a table may show, in SI base units (written out independently of cli_format)
UNIT_SCALE = {
    "B": 1,
    "kB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "GiB": 2**30,
    "s": 1,
    "ms": 1e-3,
    "us": 1e-6,
    "ns": 1e-9,
    "FLOP": 1,
    "kFLOP": 1e3,
    "MFLOP": 1e6,
    "GFLOP": 1e9,
    "TFLOP": 1e12,
    "PFLOP": 1e15,
    "TFLOP/s": 1e12,
    "PFLOP/s": 1e15,
    "GB/s": 1e9,
    "TB/s": 1e12,
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "trillion": 1e12,
    "%": 0.01,
    "x": 1,
    "tok/s": 1,
    "FLOP/B": 1,
}


def run(*args):
    result = CliRunner().invoke(cli, list(args), prog_name="glugqa")
    assert result.exit_code == 0, result.output
    return result.stdout


def parse_number(text: str) -> float:
    return float(text.replace(",", ""))


def kv_table(text: str) -> dict[str, str]:
    """label -> value text of a key/value table (format 'table'): two columns split by 2+ spaces."""
    rows = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 2 and not set(line.strip()) <= {"-", " "}:
            rows[parts[0]] = parts[1]
    return rows


def human_value(text: str) -> float:
    """'16.06 GB' -> 1.606e10; '8.030 billion (8,030,261,248)' -> 8030261248; '100.0%' -> 1.0."""
    exact = re.search(r"\(([\d,]+)\)$", text)
    if exact:
        return parse_number(exact.group(1))
    m = re.fullmatch(r"([-\d,.]+)\s*(\S*)", text)
    number, unit = m.group(1), m.group(2)
    return parse_number(number) * UNIT_SCALE.get(unit, 1)


def test_plan_default_is_llama3_8b_on_h100_with_independent_numbers():
    data = json.loads(run("plan", "--format", "json"))
    assert (data["model"], data["hardware"], data["context"]) == ("llama-3-8b", "h100-sxm", 8192)  # keys, as kv/latency
    assert (data["weight_dtype"], data["kv_dtype"], data["devices"]) == ("bf16", "bf16", 1)
    # Llama-3-8B (HF config): D 4096, L 32, N 32, K 8, Dh 128, F 14336, V 128256, untied, RMSNorm
    d, layers, n, k, dh, f, v = 4096, 32, 32, 8, 128, 14336, 128256
    per_layer = d * n * dh + 2 * d * k * dh + n * dh * d + 3 * d * f + 2 * d
    params = 2 * v * d + layers * per_layer + d
    assert data["params"] == params == 8_030_261_248
    assert data["weight_bytes"] == 2 * params
    assert data["kv_bytes_per_token"] == 2 * layers * k * dh * 2 == 131072
    assert data["kv_bytes_per_sequence"] == 131072 * 8192
    # the memory budget (vLLM's defaults): 0.9 of 80 GiB; runtime 1.79 GiB (vLLM's non-torch memory on an H100)
    # + 1 GiB of CUDA graphs; the activations of one 8192-token chunk (2D + (N + 2K)Dh + N·Dh + 2F + D per
    # token, bf16) and the fp32 logits of 1024 sequences; KV in blocks of 16 tokens (8192 is a multiple)
    usable = int(0.9 * 80 * GIB)
    reserve = round(1.79 * GIB) + GIB
    acts = 8192 * (2 * d + (n + 2 * k) * dh + n * dh + 2 * f + d) * 2 + 1024 * v * 4
    assert (data["usable_bytes"], data["runtime_reserve_bytes"], data["activation_bytes"]) == (usable, reserve, acts)
    pool = usable - reserve - 2 * params - acts
    assert data["kv_pool_bytes"] == pool and data["max_batch"] == pool // (131072 * 8192) == 52
    assert data["batch"] == 52 and data["kv_cache_bytes"] == 52 * 131072 * 8192
    terms = ("headroom_bytes", "runtime_reserve_bytes", "weight_bytes", "activation_bytes", "kv_cache_bytes",
             "kv_free_bytes")
    assert sum(data[t] for t in terms) == data["device_bytes"] == 80 * GIB
    assert data["used_bytes"] <= usable and data["fits"] is True
    assert data["bound"] == "HBM bandwidth"
    assert data["tokens_per_s"] == pytest.approx(data["batch"] / data["decode_s"])


def test_plan_ideal_decode_is_the_bandwidth_roofline():
    """Pope et al. 2022: a memory-bound step reads the weights and every sequence's KV cache once (of the
    embedding table only the batch's rows: the lookup is a gather)."""
    data = json.loads(run("plan", "--ideal", "--batch", "16", "--format", "json"))
    embedding_table = 128256 * 4096 * 2
    bytes_read = data["weight_bytes"] - embedding_table + 16 * data["kv_bytes_per_sequence"]
    floor = bytes_read / 3.35e12
    assert floor <= data["decode_s"] <= 1.03 * floor  # activations and logits add < 3%


def test_plan_matches_library_and_options_reach_it():
    data = json.loads(
        run(
            "plan",
            "-m",
            "llama-2-70b",
            "--hw",
            "h200-sxm",
            "--tp",
            "2",
            "--kv-dtype",
            "fp8",
            "--context",
            "4096",
            "--format",
            "json",
        )
    )
    p = costmodel.plan(costmodel.MODELS["llama-2-70b"], "h200-sxm", context=4096, devices=2, kv_dtype="fp8")
    assert data["max_batch"] == p.max_batch and data["decode_s"] == pytest.approx(p.decode.total_s)
    assert data["kv_bytes_per_token"] == 2 * 80 * (8 // 2) * 128 * 1  # per device, fp8


def test_plan_table_and_json_carry_the_same_numbers():
    data = json.loads(run("plan", "--format", "json"))
    table = kv_table(run("plan"))
    from costmodel.cli.plan import PLAN_COLUMNS

    checked = 0
    for col in PLAN_COLUMNS:
        value = data.get(col.key)  # shortfall_bytes: only when the plan does not fit
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = human_value(table[col.label])
            assert shown == pytest.approx(value, rel=6e-4, abs=1e-12), col.key
            checked += 1
    assert checked >= 14


def table_columns(text: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a 'github' table."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return split[0], split[2:]


@pytest.mark.parametrize(
    "args",
    [
        ["table", "gqa"],
        ["table", "ffn"],
        ["sweep", "context", "--values", "1024,8192,65536"],
        ["sweep", "kv-heads", "-m", "llama-2-7b", "--batch", "4"],
        ["latency", "--breakdown"],
        ["params"],
        ["flops", "--breakdown"],
        ["kv", "-m", "llama-2-70b", "--tp", "8"],
        ["hardware", "list"],
        ["models", "list"],
    ],
)
def test_table_and_json_carry_the_same_numbers(args):
    rows = json.loads(run(*args, "--format", "json"))["rows"]
    headers, cells = table_columns(run(*args, "--format", "github"))
    assert len(cells) == len(rows)
    keys = list(rows[0])
    for j, header in enumerate(headers):
        unit = re.search(r"\(([^()]*)\)$", header)
        for row, row_cells in zip(rows, cells, strict=True):
            value, cell = row[keys[j]], row_cells[j]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            shown = parse_number(cell) * (UNIT_SCALE.get(unit.group(1), 1) if unit else 1)
            tol = 10 ** -len(cell.split(".")[1]) if "." in cell else 1.0  # one unit of the last digit shown
            tol *= UNIT_SCALE.get(unit.group(1), 1) if unit else 1
            assert abs(shown - value) <= tol * 0.5 + 1e-12 * abs(value), (args, header, cell, value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "args",
    [
        ["plan"],
        ["params", "--breakdown"],
        ["flops", "--phase", "prefill"],
        ["kv", "--breakdown", "-m", "t5.1.1-xxl"],
        ["latency"],
        ["sweep", "batch", "--values", "1,2"],
        ["table", "gqa", "-m", "gemma-7b"],
        ["table", "ffn"],
        ["hardware", "show", "h200-sxm"],
        ["models", "show", "gemma-2b"],
    ],
)
def test_every_format_renders(args, fmt):
    out = run(*args, "--format", fmt)
    assert out.strip()
    if fmt == "json":
        json.loads(out)
    if fmt == "latex":
        assert "\\begin{tabular}" in out


def test_gqa_table_rows_follow_the_paper():
    rows = json.loads(run("table", "gqa", "--model", "llama-2-70b", "--tp", "8", "--format", "json"))["rows"]
    assert [r["label"] for r in rows] == ["MHA", "GQA-32", "GQA-16", "GQA-8", "GQA-4", "GQA-2", "MQA"]
    per_token = {r["n_kv_heads"]: r["kv_bytes_per_token"] for r in rows}
    # per device under tp=8: max(K/8, 1) heads of 2 x 80 layers x 128 x 2 bytes
    assert per_token == {k: 2 * 80 * max(k // 8, 1) * 128 * 2 for k in per_token}
    assert rows[0]["speedup"] == 1.0 and all(r["speedup"] >= 1.0 for r in rows)


def test_ffn_table_matches_shazeer_2020():
    rows = json.loads(run("table", "ffn", "--format", "json"))["rows"]
    assert len(rows) == 8 and {r["params"] for r in rows} == {2 * 768 * 3072}  # 4,718,592 each (paper Sec. 3)
    assert {r["variant"]: r["log_ppl_65k"] for r in rows}["swiglu"] == 1.944
    assert {r["variant"]: r["d_ff"] for r in rows} == {
        **dict.fromkeys(["relu", "gelu", "swish"], 3072),
        **dict.fromkeys(["glu", "bilinear", "reglu", "geglu", "swiglu"], 2048),
    }


def test_raw_dimensions_replace_the_base():
    data = json.loads(run("params", "--kv-heads", "4", "--format", "json"))
    assert data["attention"] == "GQA-4" and data["model"].startswith("llama-3-8b (kv-heads=4)")
    mha = json.loads(run("plan", "-m", "llama-2-7b", "--heads", "16", "--format", "json"))
    assert mha["attention"] == "MHA"  # an MHA base stays MHA; head_dim becomes D/N = 256
    assert mha["kv_bytes_per_token"] == 2 * 32 * 16 * 256 * 2


def test_hf_config_is_read(tmp_path):
    cfg = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    a = json.loads(run("plan", "--hf-config", str(tmp_path), "--format", "json"))
    b = json.loads(run("plan", "--format", "json"))
    assert a["params"] == b["params"] and a["max_batch"] == b["max_batch"]


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_for_long_sweeps():
    items = list(range(PROGRESS_MIN_POINTS))
    tty, pipe = _TTY(), io.StringIO()
    for file in (tty, pipe):
        with progress(items, label="sweeping", file=file) as it:
            assert list(it) == items
    assert "sweeping" in tty.getvalue() and "100%" in tty.getvalue()
    assert pipe.getvalue() == ""
    short = _TTY()
    with progress(items[:3], label="sweeping", file=short) as it:
        assert list(it) == items[:3]
    assert short.getvalue() == ""


def test_long_sweep_piped_has_no_bar():
    result = CliRunner().invoke(cli, ["sweep", "context", "--values", "1024:131072:1024", "--format", "csv"])
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 128 and lines[0].startswith("context,")


def test_help_lists_every_command():
    out = run("--help")
    for name in (
        "plan",
        "params",
        "flops",
        "kv",
        "latency",
        "sweep",
        "table",
        "hardware",
        "models",
        "docs",
        "ref",
    ):
        assert re.search(rf"^\s+{name}\s", out, flags=re.M), name
    for sub in (["table"], ["hardware"], ["models"], ["ref"]):
        assert "Commands:" in run(*sub, "--help")


def test_plan_that_does_not_fit_exits_1_and_suggests_a_tensor_parallel_degree_that_does():
    result = CliRunner().invoke(cli, ["plan", "-m", "llama-2-70b", "--hw", "l4"], prog_name="glugqa")
    assert result.exit_code == 1  # a check that did not pass: the report, then one line on stderr
    assert result.stderr.strip() == (
        "glugqa plan: does not fit: not even one sequence of 8192 tokens fits beside the weights"
    )
    suggested = re.search(r"try --tp (\d+) \(fits (\d+) sequences\)", result.stdout)
    tp, n = int(suggested.group(1)), int(suggested.group(2))
    data = json.loads(CliRunner().invoke(cli, ["plan", "-m", "llama-2-70b", "--hw", "l4", "--format", "json"]).stdout)
    assert data["max_batch"] == 0 and data["fits"] is False and "decode_s" not in data
    assert data["weight_bytes"] == 2 * data["params"] > data["usable_bytes"]  # 69B bf16 weights > one L4
    cfg = costmodel.MODELS["llama-2-70b"]
    assert costmodel.max_batch(cfg, "l4", context=8192, devices=tp) == n >= 1
    for smaller in (2, 4, 8):  # every valid tp below the suggestion still fits nothing
        if smaller < tp:
            assert costmodel.max_batch(cfg, "l4", context=8192, devices=smaller) == 0
