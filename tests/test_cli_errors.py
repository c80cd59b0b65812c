"""Every bad invocation of `glugqa` prints ONE line on stderr and exits 2 -- never a traceback.

Over 100 bad command lines run through click's CliRunner (built from bad option values x commands), plus
the messages a user needs: closest names for typos, the argument at fault, the file at fault.
"""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from costmodel.cli import cli

# commands taking the model options (and which of the other option families each takes)
MODEL_COMMANDS = {
    "plan": {"hardware", "tp", "dtype", "eff", "batch", "context"},
    "params": {"tp"},
    "flops": {"batch", "context"},
    "kv": {"hardware", "tp", "batch", "context"},
    "latency": {"hardware", "tp", "dtype", "eff", "batch", "context"},
    "sweep kv-heads": {"hardware", "tp", "dtype", "eff", "context"},
    "table gqa": {"hardware", "tp", "dtype", "eff", "batch", "context"},
}

BAD_MODEL_ARGS = [
    ["--model", "llama3-8b"],
    ["--model", ""],
    ["--heads", "0"],
    ["--heads", "-4"],
    ["--heads", "x"],
    ["--kv-heads", "3"],
    ["--kv-heads", "64"],
    ["--d-model", "4097"],
    ["--d-ff", "0"],
    ["--vocab", "1.5"],
    ["--ffn", "swiglu2"],
    ["--layers", "99999999999999999"],
    ["--hf-config", "missing.json"],
    ["--hf-config", "{bad_json}"],
    ["--hf-config", "{gpt2_json}"],
    ["--hf-config", "{incomplete_json}"],
    ["--hf-config", "{bad_heads_json}"],
    ["--model", "llama-2-7b", "--hf-config", "{gpt2_json}"],
    ["--no-such-option"],
    ["stray-argument"],
]
BAD_FAMILY_ARGS = {
    "hardware": [
        ["--hardware", "h100"],
        ["--hardware", "H100-SXM"],
        ["--hardware-file", "missing.toml"],
        ["--hardware-file", "{bad_toml}"],
        ["--hardware-file", "{incomplete_toml}"],
        ["--hardware-file", "{negative_toml}"],
        ["--hardware-file", "{two_chips_toml}"],
    ],
    "tp": [["--tp", "3"], ["--tp", "0"], ["--devices", "-1"], ["--tp", "64"]],
    "dtype": [["--weight-dtype", "fp7"], ["--kv-dtype", "bfloat16"]],
    "eff": [
        ["--flops-eff", "0"],
        ["--flops-eff", "1.5"],
        ["--hbm-eff", "nan"],
        ["--hbm-eff", "inf"],
        ["--overhead-us", "-1"],
        ["--link-eff", "x"],
        ["--ideal", "--flops-eff", "0.5"],
    ],
    "batch": [["--batch", "0"], ["--batch", "two"]],
    "context": [["--context", "0"], ["--context", "1e3"]],
}
OTHER_BAD = [
    [],
    ["plann"],
    ["--bogus"],
    ["plan", "--format", "xml"],
    ["params", "--format", "yaml"],
    ["sweep"],
    ["sweep", "heads"],
    ["sweep", "kv-heads", "--values", "3"],
    ["sweep", "kv-heads", "--values", "x"],
    ["sweep", "batch", "--batch", "4"],
    ["sweep", "context", "--values", "8..2"],
    ["sweep", "batch", "--values", "0"],
    ["sweep", "context", "--values", "1:10:0"],
    ["sweep", "d-ff", "--batch", "maxi"],
    ["table"],
    ["table", "mqa"],
    ["table", "ffn", "--d-ff", "0"],
    ["table", "ffn", "--multiple-of", "x"],
    ["hardware"],
    ["hardware", "show"],
    ["hardware", "show", "h100"],
    ["hardware", "show", "a100"],
    ["hardware", "list", "--hardware-file", "{bad_toml}"],
    ["models", "show", "lama-2-7b"],
    ["models", "show"],
    ["models", "list", "extra"],
    ["flops", "--phase", "train"],
    ["latency", "--phase", "all"],
    ["latency", "--prompt", "0"],
    ["docs", "--root", "{bad_json}"],
    ["sweep", "batch", "--values", "1:100000:1"],  # at most 1000 values (100,000 plans took minutes)
    ["sweep", "context", "--values", ",".join(["1"] * 1001)],
    ["plan", "--layers", "1048576"],  # one Layer each: 2**40 was a MemoryError, 2**20 a minute
    ["ref", "nope"],
]


def _bad_invocations() -> list[list[str]]:
    out = []
    for command, families in MODEL_COMMANDS.items():
        out += [[*command.split(), *args] for args in BAD_MODEL_ARGS]
        for family in sorted(families):
            out += [[*command.split(), *args] for args in BAD_FAMILY_ARGS[family]]
    return out + OTHER_BAD


BAD = _bad_invocations()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    llama = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
    }
    contents = {
        "bad_json": "{not json",
        "gpt2_json": json.dumps({"model_type": "gpt2"}),
        "incomplete_json": json.dumps({"model_type": "llama", "hidden_size": 64}),
        "bad_heads_json": json.dumps({**llama, "num_key_value_heads": 3}),
        "bad_toml": "x = [",
        "incomplete_toml": '[chip]\nlabel = "x"\n',
        "negative_toml": '[chip]\nlabel="x"\nflops_bf16=-1\nhbm_bandwidth=1e12\nmemory_gb=80\n'
        'source="s"\ndate_read="d"\n',
        "two_chips_toml": "".join(
            f'[{n}]\nlabel="x"\nflops_bf16=1e14\nhbm_bandwidth=1e12\nmemory_gb=80\n'
            f'source="s"\ndate_read="d"\n'
            for n in ("a", "b")
        ),
    }
    paths = {}
    for key, text in contents.items():
        path = d / f"{key}.{key.rsplit('_', 1)[1]}"
        path.write_text(text)
        paths[key] = str(path)
    return paths


def test_enough_bad_invocations():
    assert len(BAD) >= 100
    assert len({tuple(a) for a in BAD}) == len(BAD)


def _run(args):
    return CliRunner().invoke(cli, args, prog_name="glugqa")


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) or "<none>" for a in BAD])
def test_bad_invocation_is_one_line_exit_2(args, files):
    args = [a.format(**files) for a in args]
    result = _run(args)
    assert result.exit_code == 2, (args, result.output)
    assert isinstance(result.exception, SystemExit), (args, result.exception)  # not an uncaught exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, (args, result.stderr)
    assert lines[0].startswith("glugqa") and ": error: " in lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["plan", "--model", "llama3-8b"], "did you mean llama-3-8b"),
        (["plan", "--hardware", "h100"], "did you mean h100-sxm, h100-pcie"),
        (["hardware", "show", "a100"], "did you mean a100-sxm-40gb"),
        (["models", "show", "mistral"], "did you mean mistral-7b"),
        (["plann"], "Did you mean 'plan'"),
        (["plan", "--modle", "x"], "'--model'"),
        (["plan", "--kv-heads", "3"], "n_kv_heads must divide n_heads=32; got n_kv_heads=3"),
        (["plan", "--tp", "3"], "tp must divide n_heads=32; got tp=3"),
        (["plan", "--batch", "0"], "'--batch'"),
        (["plan", "--flops-eff", "1.5"], "'--flops-eff': '1.5' is not in [0.01, 1]"),
        (["plan", "--hf-config", "missing.json"], "'missing.json' does not exist"),
        (["plan", "--hf-config", "{bad_json}"], "is not valid JSON"),
        (["plan", "--hf-config", "{incomplete_json}"], "is missing 'num_attention_heads'"),
        (["plan", "--hf-config", "{gpt2_json}"], "model_type 'gpt2' is not supported"),
        (["plan", "--hardware-file", "{bad_toml}"], "is not valid TOML"),
        (["plan", "--hardware-file", "{negative_toml}"], "flops_bf16 must be a number from 1e+09"),
        (["plan", "--hardware-file", "{two_chips_toml}"], "defines a, b; pick one with --hardware"),
        (["table", "gqa", "--model", "nope"], "glugqa table gqa: error: unknown model 'nope'"),
        (["plan", "--hf-config"], "glugqa plan: error: Option '--hf-config' requires an argument. (see 'glugqa plan"),
        (["ref", "vectors", "-o"], "glugqa ref vectors: error: Option '-o' requires"),  # was "glugqa: error: ..."
        ([], "glugqa: error: missing command: one of plan, serve, params,"),  # was the whole help on one line
        (["sweep"], "glugqa sweep: error: missing command: one of kv-heads, d-ff, batch, context, rate (see"),
        (["ref"], "glugqa ref: error: missing command: one of check, vectors, verify (see 'glugqa ref --help')"),
    ],
)
def test_error_messages_name_the_fault(args, expected, files):
    result = _run([a.format(**files) for a in args])
    assert result.exit_code == 2
    assert expected in result.stderr, result.stderr


def test_a_user_hardware_file_works(files, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        '[mychip]\nlabel="My chip"\nflops_bf16=1e15\nhbm_bandwidth=4e12\nmemory_gb=96\n'
        'source="my datasheet"\ndate_read="2025-01-01"\n'
    )
    result = _run(["plan", "--hardware-file", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["hardware"] == "mychip" and " x My chip," in data["title"]  # the key in JSON, the label in titles
    result = _run(["plan", "--hardware-file", files["two_chips_toml"], "--hardware", "b", "--format", "json"])
    assert result.exit_code == 0, result.output


def test_console_script_error_is_one_line():
    """The installed entry point (real stderr, real exit status), not only CliRunner."""
    argv = ["glugqa", "plan", "--model", "llama3-8b"]
    code = f"import sys; from costmodel.cli import main; sys.argv = {argv!r}; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "did you mean llama-3-8b" in proc.stderr
