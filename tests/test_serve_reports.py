"""What `glugqa serve` and `glugqa sweep rate` say about their inputs and results: a lognormal's cap and the
mean it leaves, one saturation rate for one setup, simulated percentiles against the SLOs, and short reasons
in the table with the long one in a note."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from costmodel.cli import cli
from costmodel.serving.workload import Lengths


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="glugqa")


def run_json(*args):
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


SETUP = ["--hardware", "h100-sxm", "--tp", "1", "--kv-dtype", "bf16", "--weight-dtype", "bf16", "--prompt", "2000",
         "--output", "300"]  # fmt: skip


def test_a_lognormal_cap_below_the_mean_is_refused():
    with pytest.raises(ValueError, match="the lognormal cap must be at least the mean 1500; got 10"):
        Lengths("lognormal", 1500.0, 0.8, 10)
    for cmd in (["sweep", "rate", "--rates", "1,10"], ["serve"]):
        result = invoke(*cmd, "--output", "lognormal:1500,0.8,10")
        assert result.exit_code == 2 and "'--output'" in result.stderr and "at least the mean 1500" in result.stderr


@pytest.mark.parametrize("text", ["lognormal:1500,0.8,1500", "lognormal:1000,1", "lognormal:3,1.5,10"])
def test_the_capped_mean_is_the_mean_of_the_draws(text):
    lengths = Lengths.parse(text)
    draws = lengths.draw(np.random.default_rng(0), 1_000_000)
    assert lengths.capped_mean == pytest.approx(draws.mean(), rel=0.01)  # rounding to integers left out


def test_titles_show_the_cap_and_the_mean_it_leaves():
    serve = run_json("serve", "--hardware", "h100-sxm", "--tp", "1", "--prompt", "lognormal:1500,0.8,1500")
    assert "prompts lognormal mean 1500, sigma 0.8, cap 1500 (mean 1034 after the cap)" in serve["title"]
    sweep = run_json("sweep", "rate", "--rates", "1", "--output", "lognormal:300,0.8,400")
    assert "outputs lognormal mean 300, sigma 0.8, cap 400 (mean 234.7 after the cap)" in sweep["title"]
    assert "prompts 2000 tokens" in sweep["title"]


def test_serve_and_the_rate_sweep_report_one_saturation_rate():
    serve = run_json("serve", *SETUP)
    sweep = run_json("sweep", "rate", *SETUP)
    assert serve["rows"][0]["saturation_rate"] == sweep["saturation_rate"]


def test_simulated_percentiles_that_miss_their_slo_are_marked():
    args = ["serve", "--rate", "5", "--tpot-ms", "30", "--percentile", "90", "--hardware", "h200-sxm", "--tp", "1",
            "--kv-dtype", "fp8", "--simulate", "500"]  # fmt: skip
    for seed, misses in ((0, []), (9, ["TPOT"])):  # seed 9 draws a sample whose p90 TPOT is above 30 ms
        data = run_json(*args, "--seed", seed)
        assert data["simulated_misses"] == misses
        assert (data["simulated_tpot_s"] > 0.030) == bool(misses) and data["simulated_ttft_s"] <= 1.0
        assert data["rows"][0]["tpot_s"] <= 0.030  # the analytic model, which ranks, meets it
        note = next(n for n in data["notes"] if n.startswith("Simulated"))
        assert ("MISSES the 30 ms SLO" in note) == bool(misses)
        assert ("The ranking uses the analytic model" in note) == bool(misses)


def test_a_chip_without_a_link_gets_a_short_reason_and_one_note(tmp_path):
    chip = tmp_path / "chip.toml"
    chip.write_text('[rtx-4090]\nlabel = "NVIDIA RTX 4090"\nflops_bf16 = 165e12\nhbm_bandwidth = 1.008e12\n'
                    'memory_gb = 24\nsource = "datasheet"\ndate_read = "2025-01-01"\n')  # fmt: skip
    data = run_json("serve", "-m", "qwen2.5-7b", "--hardware-file", chip, "--hardware", "rtx-4090", "--tp", "1,2")
    tp2 = [r for r in data["rows"] if r["tp"] == 2]
    assert len(tp2) == 2 and all(r["limit"] == "invalid: no link for 2 devices" for r in tp2)
    notes = [n for n in data["notes"] if "link_bandwidth" in n]
    assert notes == ["no link for 2 devices: link_bandwidth must be a positive number of bytes/s for 2 devices; "
                     "rtx-4090 has none (give link_bandwidth in a hardware file)"]
    table = invoke("serve", "-m", "qwen2.5-7b", "--hardware-file", chip, "--hardware", "rtx-4090", "--tp", "1,2")
    assert max(len(line) for line in table.stdout.splitlines()[3:]) < 160  # no 135-character cell
