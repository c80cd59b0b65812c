"""`glugqa accuracy` and `glugqa calibrate`, the accuracy of the default estimate on the shipped development set,
and calibration predicting points it was not fitted on."""

import json
import math
import random

import pytest
from click.testing import CliRunner

import costmodel as cm
from costmodel.accuracy import counted, evaluate, parse_points, shipped_points, summarize
from costmodel.cli import cli

pytest.importorskip("scipy")
from costmodel.accuracy.calibrate import calibrate, fit  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, list(args), prog_name="glugqa")


def counted_points():
    return [p.point for p in counted(evaluate(shipped_points()))]


def test_default_estimate_on_the_development_set():
    """The issue's targets on the shipped set (77 points, the serving model's continuous and offline-max points
    included): geometric-mean |error| <= 8%; the stricter log-based error well below the 41% of the estimate
    before these terms (observed: 5.8% and 11.3%). Not met: worst <= 25%. Five points lie beyond it, four beyond
    30%: ROCm vLLM's MI300X offline throughput (+52%; its source does not say whether it counts output or all
    tokens), TensorRT-LLM v0.9's Mixtral 8x7B at batch 32 on 2 A100s (-41%: 1602 tok/s decodes each step faster
    than streaming every expert once at the A100's peak bandwidth, which a uniform router of 32 independent
    sequences must do), its Mistral-7B at batch 896 on an H200 (+36%) and LMDeploy's Llama-2-70B on 4 A100s with
    64 clients at 2048/2048 (+35%, continuous batching through the serving model: its decode steps at batch 64
    come out faster than the same source measures, lmd-a100-l2-70b-tp4-b64-128-2048-tpot at -22%). This test
    guards that state."""
    s = summarize(evaluate(shipped_points()))
    assert s.n == 77
    assert s.geomean_abs_error <= 0.08
    assert s.log_error <= 0.12
    errors = sorted(abs(p.error) for p in counted(evaluate(shipped_points())))
    assert errors[-5] <= 0.30 and sum(e <= 0.25 for e in errors) >= 0.9 * len(errors)
    before = summarize(evaluate(shipped_points(), eff=cm.Efficiency(
        flops=0.7, hbm=0.9, link=1.0, collective_latency_s=0, attn_compute=1, attn_memory=1, dequant_int8=1,
        dequant_int4=1, wave_quantization=False)))  # fmt: skip
    assert before.log_error > 2 * s.log_error  # the new terms, not the efficiencies, did it


def test_calibrating_on_half_predicts_the_other_half_better():
    """Fit on a random half (seeds 0-2), predict the other half: the calibrated profile beats the default
    estimate on the log-based error (the one the fit minimises) summed over the splits. The default was set
    with the whole development set in view, so this is a hard baseline; benchmarks/calibration.py runs more
    splits and reports both error definitions. The points are those the single-step recipe prices (batch-1 and
    static batching): a continuous or offline-max point is simulated (about 0.7 s each), and a fit evaluates
    every point many times, which would take minutes here."""
    pts = [p for p in counted_points() if p.batching in ("batch-1", "static")]
    assert len(pts) == 60
    default, fitted = [], []
    for seed in range(3):
        idx = list(range(len(pts)))
        random.Random(seed).shuffle(idx)
        train, test = [pts[i] for i in idx[::2]], [pts[i] for i in idx[1::2]]
        eff = fit(train)[0]
        default.append(summarize(evaluate(test)).log_error)
        fitted.append(summarize(evaluate(test, eff=eff)).log_error)
    assert sum(fitted) < sum(default)


def user_points(n):
    """n measurements of one stack: Llama-2-7B decode on an H100 at several batches, made by a stack 25% slower
    than the default estimate in bandwidth (a user's own cluster)."""
    slow = cm.Efficiency(hbm=0.9 * 0.75)
    records = []
    for i, batch in enumerate([1, 4, 16, 64, 2, 8, 32, 128, 3, 24][:n]):
        step = cm.decode_latency(cm.MODELS["llama-2-7b"], "h100-sxm", batch=batch, context=1024, eff=slow)
        records.append(dict(id=f"p{i}", model_key="llama-2-7b", hardware_key="h100-sxm", tp=1, weight_dtype="bf16",
                            batch=batch, input_len=1024 - 50, output_len=100, batching="static",
                            metric="decode_ms_per_token", measured=step.total_s * 1e3))  # fmt: skip
    return parse_points(records)


def test_calibrate_recovers_a_slower_stack_and_predicts_unmeasured_shapes():
    cal = calibrate(user_points(10), params=["hbm", "flops"], folds=5)
    assert cal.fitted[0] == "hbm" and cal.efficiency.hbm == pytest.approx(0.675, rel=0.02)
    assert cal.in_sample.log_error < 0.01 and cal.cross_validated.log_error < 0.01
    assert cal.base_summary.log_error > 0.2  # the default estimate misses this stack by ~30%
    unmeasured = cm.decode_latency(cm.MODELS["llama-2-7b"], "h100-sxm", batch=48, context=3000, eff=cal.efficiency)
    truth = cm.decode_latency(cm.MODELS["llama-2-7b"], "h100-sxm", batch=48, context=3000,
                              eff=cm.Efficiency(hbm=0.675))  # fmt: skip
    assert unmeasured.total_s == pytest.approx(truth.total_s, rel=0.02)


def test_tiny_inputs_fit_fewer_parameters_and_say_so():
    one = calibrate(user_points(1))
    assert len(one.fitted) == 1 and one.cross_validated is None and one.folds == 0
    assert any("no cross-validation" in n for n in one.notes()) and any("at most 1" in n for n in one.notes())
    assert "dequant_int4" in one.unidentified  # no int4 point: nothing to learn it from
    two = calibrate(user_points(2))
    assert len(two.fitted) == 1 and two.folds == 2 and two.cross_validated.n == 2
    with pytest.raises(ValueError, match="params: cannot fit"):
        calibrate(user_points(2), params=["wave_quantization"])
    with pytest.raises(ValueError, match="folds must be"):
        calibrate(user_points(2), folds=1)


def test_calibrate_command_writes_a_profile_every_command_reads(tmp_path):
    pts = tmp_path / "mine.json"
    pts.write_text(json.dumps([{k: getattr(p, k) for k in ("id", "tp", "weight_dtype", "batch", "input_len",
                                                          "output_len", "batching", "metric", "measured")}
                               | {"model_key": "llama-2-7b", "hardware_key": "h100-sxm"}
                               for p in user_points(6)]))  # fmt: skip
    profile = tmp_path / "mine.toml"
    result = run("calibrate", str(pts), "-o", str(profile), "--params", "hbm,flops", "--folds", "3",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 6 and data["folds"] == 3 and data["cross_validated_log_error"] < 0.01
    eff = cm.load_efficiency(profile)
    assert eff.hbm == pytest.approx(data["efficiency"]["hbm"]) and eff.hbm == pytest.approx(0.675, rel=0.02)
    for args in (["plan"], ["latency", "--phase", "decode"], ["table", "gqa"], ["sweep", "batch"]):
        with_profile = run(*args, "--efficiency-file", str(profile), "--format", "json")
        assert with_profile.exit_code == 0, (args, with_profile.output)
        assert with_profile.stdout != run(*args, "--format", "json").stdout
    plan = json.loads(run("plan", "--efficiency-file", str(profile), "--format", "json").stdout)
    assert plan["decode_s"] == pytest.approx(cm.plan(cm.MODELS["llama-3-8b"], "h100-sxm", context=8192,
                                                     eff=eff).decode.total_s)  # fmt: skip
    flag = json.loads(run("plan", "--efficiency-file", str(profile), "--hbm-eff", "0.9", "--format", "json").stdout)
    assert flag["decode_s"] < plan["decode_s"]  # a flag replaces one parameter of the profile
    bad = run("calibrate", str(pts), "-o", str(profile), "--params", "flops,nope")
    assert bad.exit_code == 2 and "cannot fit ['nope']" in bad.stderr


def test_accuracy_command_formats_and_views(tmp_path):
    table = run("accuracy")
    assert table.exit_code == 0 and "geo-mean |error|" in table.stdout and "Errors by source" in table.stdout
    data = json.loads(run("accuracy", "--format", "json").stdout)
    assert data["counted"] == 77 and len(data["rows"]) == 88 and data["groups"][0]["group"] == "overall"
    assert data["geomean_abs_error"] == pytest.approx(summarize(evaluate(shipped_points())).geomean_abs_error)
    assert "needs a serving model" in next(iter(data["reasons"].values())) or data["reasons"]
    csv = run("accuracy", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("id,source,model") and len(csv) == 89
    groups = run("accuracy", "--format", "csv", "--view", "groups").stdout.splitlines()
    assert groups[0].startswith("group,value,n") and groups[1].startswith("overall,all,77")
    both = run("accuracy", "--format", "csv", "--view", "both")
    assert both.exit_code == 2 and "--view points or --view groups" in both.stderr
    ideal = json.loads(run("accuracy", "--ideal", "--format", "json").stdout)
    assert ideal["log_error"] > 3 * data["log_error"]
    assert all(math.isfinite(r["predicted"]) for r in data["rows"] if r["predicted"] is not None)
    missing = run("accuracy", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and "POINTS: points file" in missing.stderr


def test_the_table_says_why_a_point_is_not_computable():
    """Found by a new user: the human table said only 'reason in the JSON output'."""
    from click.testing import CliRunner

    from costmodel.cli import cli

    out = CliRunner().invoke(cli, ["accuracy"], prog_name="glugqa").output
    assert "weight_dtype 'fp4' is not one of the cost model's dtypes" in out
    assert "no hardware preset for this part" in out
