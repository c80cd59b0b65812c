"""Hardware files, efficiency profiles and sweep rates are checked before they are trusted (issue 12, kinds 3
and 4): every number finite and in a stated range, files read only when they are small UTF-8 regular files,
every error naming the file (and the option on the command line) and the field."""

import math
import os
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.cli import cli

CHIP = '[c]\nlabel = "X"\nflops_bf16 = 1e15\nhbm_bandwidth = 2e12\nmemory_gb = 64\nsource = "s"\ndate_read = "d"\n'


def run(*args):
    return CliRunner().invoke(cli, list(args), prog_name="glugqa")


@pytest.mark.parametrize(
    "line,field",
    [
        ("hbm_bandwidth = inf", "hbm_bandwidth must be a number from 1e+09"),
        ("flops_bf16 = inf", "flops_bf16 must be a number from 1e+09"),
        ("flops_bf16 = nan", "flops_bf16"),
        ("flops_bf16 = -1e12", "flops_bf16"),
        ("memory_gb = 1e300", "memory_gb must be a number from 0.001 GB to 1e+06 GB"),
        ("flops_bf16 = true", "flops_bf16"),
        ('flops_bf16 = "1e15"', "flops_bf16"),
        ("devices_per_node = 8.0", "devices_per_node must be an integer"),
        ("devices_per_node = true", "devices_per_node must be an integer"),
        ('link_direct = "true"', "link_direct must be true or false"),
        ("link_latency_s = 5", "link_latency_s must be a number from 0 s to 0.001 s"),
        ("hbm_efficiency_factor = 0", "hbm_efficiency_factor"),
        ("label = 3", "label must be a string"),
    ],
)
def test_hardware_numbers_are_finite_and_in_range(tmp_path, line, field):
    """Each example of issue 12 with its right error: inf peaks, memory_gb = 1e300 (not "cannot convert float
    infinity to integer"), strings and bools for numbers, out-of-range facts."""
    key = line.split(" = ")[0]
    text = "\n".join(ln for ln in CHIP.splitlines() if not ln.startswith(key + " ")) + "\n" + line + "\n"
    path = tmp_path / "chip.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="hardware file .*chip.toml.*hardware 'c': " + field.split(" ")[0]) as e:
        cm.load_hardware(path)
    assert field in str(e.value) and "cannot convert" not in str(e.value)
    result = run("plan", "--hardware-file", str(path))
    assert result.exit_code == 2 and result.stderr.startswith("glugqa plan: error: --hardware-file: hardware file")
    assert "Traceback" not in result.output


def test_a_5000_digit_integer_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text(CHIP.replace("memory_gb = 64", "memory_gb = " + "9" * 5000))
    with pytest.raises(ValueError, match="hardware file .*chip.toml.* is not valid TOML") as e:
        cm.load_hardware(path)
    assert len(str(e.value)) < 400
    path.write_text("[efficiency]\nflops = " + "9" * 5000 + "\n")
    with pytest.raises(ValueError, match="efficiency profile .*chip.toml.* is not valid TOML"):
        cm.load_efficiency(path)


@pytest.mark.parametrize("content", [b"\xff\xfe[\x00c\x00]\x00", b"\x00\x01\x02binary", b"\x89PNG\r\n\x1a\n"])
def test_binary_and_utf16_hardware_files_name_the_file_and_option(tmp_path, content):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="hardware file .*bad.toml"):
        cm.load_hardware(path)
    result = run("hardware", "list", "--hardware-file", str(path))
    assert result.exit_code == 2 and "--hardware-file: hardware file" in result.stderr and "bad.toml" in result.stderr
    assert "codec" not in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_is_refused_without_reading(tmp_path):
    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe)  # nobody writes to it: reading would block forever
    with pytest.raises(ValueError, match="not a regular file"):
        cm.load_hardware(pipe)
    with pytest.raises(ValueError, match="not a regular file"):
        cm.load_efficiency(pipe)
    for args in (["plan", "--hardware-file", str(pipe)], ["plan", "--efficiency-file", str(pipe)]):
        result = run(*args)
        assert result.exit_code == 2 and "not a regular file" in result.stderr


def test_a_user_chip_with_network_and_facts(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(CHIP + "link_bandwidth = 100e9\ndevices_per_node = 4\nnetwork_bandwidth = 25e9\n"
                    "link_direct = true\ncompute_units = 100\n")  # fmt: skip
    chip = cm.load_hardware(path)["c"]
    assert (chip.devices_per_node, chip.network_bandwidth, chip.link_direct, chip.compute_units) == (4, 25e9, True, 100)
    d = cm.decode_latency(cm.MODELS["llama-2-7b"], chip, batch=1, context=8, tp=8)
    assert any("8 devices exceed one node's 4" in n for n in d.notes)


def test_sweep_rates_must_be_positive_and_finite():
    kw = dict(d_model=64, n_layers=2, n_heads=8, n_kv_heads=8, d_ff=64, vocab_size=10, batch=1, context=4)
    for peak, bw in ((-1e12, -1e12), (0.0, 1e12), (1e12, 0.0), (math.inf, 1e12), (1e12, np.array([1e12, -1.0]))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no divide-by-zero warning on the way to the error
            with pytest.raises(ValueError, match="peak_flops|hbm_bandwidth"):
                cm.sweep_decode(**kw, peak_flops=peak, hbm_bandwidth=bw)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--flops-eff", "1e-320"], "'--flops-eff': '1e-320' is not in [0.01, 1]"),
        (["--hbm-eff", "nan"], "'--hbm-eff': 'nan' is not in [0.01, 1]"),
        (["--overhead-us", "1e308"], "'--overhead-us': '1e308' is not in [0, 1000] µs"),
        (["--link-eff", "inf"], "'--link-eff': 'inf' is not in [0.01, 1]"),
    ],
)
def test_efficiency_flags_are_bounded(args, message):
    result = run("plan", *args)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_extreme_valid_efficiencies_print_finite_answers():
    data = run("plan", "--flops-eff", "0.01", "--hbm-eff", "0.01", "--link-eff", "0.01", "--overhead-us", "1000",
               "--format", "json").stdout  # fmt: skip
    import json

    values = [v for v in json.loads(data).values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert values and all(math.isfinite(v) for v in values)
    assert "nan" not in run("plan", "--flops-eff", "0.01", "--overhead-us", "1000").stdout


def test_profiles_round_trip_and_are_checked(tmp_path):
    eff = cm.Efficiency(flops=0.61, hbm=0.83, collective_latency_s=2.5e-5, kv_read_per_query_head=True)
    text = cm.dump_efficiency(eff, calibration={"points": "mine.csv", "n": 10, "fitted": ["flops", "hbm"]})
    assert cm.parse_efficiency(text) == eff
    path = tmp_path / "p.toml"
    for body, message in (
        ("[efficiency]\nflops = 0.5\nfoo = 1\n", "unknown efficiency keys \\['foo'\\]"),
        ("[efficiency]\nflops = \"0.5\"\n", "eff.flops must be a number"),
        ("[efficiency]\nflops = true\n", "eff.flops must be a number"),
        ("[efficiency]\nhbm = 2.0\n", "eff.hbm must be a number from 0.01 to 1"),
        ("[efficiency]\nkernel_overhead_s = inf\n", "eff.kernel_overhead_s"),
        ("[efficiency]\nkv_read_per_query_head = 1\n", "eff.kv_read_per_query_head must be true or false"),
        ("[tuning]\nflops = 0.5\n", "needs an \\[efficiency\\] table"),
        ("[efficiency\n", "not valid TOML"),
    ):
        path.write_text(body)
        with pytest.raises(ValueError, match=message):
            cm.load_efficiency(path)
        result = run("latency", "--efficiency-file", str(path))
        assert result.exit_code == 2 and result.stderr.startswith("glugqa latency: error: --efficiency-file:")
    path.write_text("[efficiency]\nflops = 0.5\n")
    assert cm.load_efficiency(path) == cm.Efficiency(flops=0.5)
