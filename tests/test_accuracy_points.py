"""Points files: every bad file, point and field gives a ValueError naming them; CSV and JSON agree; the shipped set
loads and resolves."""

import csv
import json
import os
import re
from pathlib import Path

import pytest

from costmodel.accuracy import FIELDS, load_points, shipped_points
from costmodel.accuracy import points as points_mod
from costmodel.accuracy.predict import evaluate

GOOD = {
    "id": "h100-b8",
    "model_key": "llama-2-7b",
    "hardware_key": "h100-sxm",
    "tp": 1,
    "weight_dtype": "fp8",
    "batch": 8,
    "input_len": 128,
    "output_len": 128,
    "batching": "static",
    "metric": "output_tok_s_total",
    "measured": 3000.0,
}


def write_json(tmp_path, data, name="pts.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def one(tmp_path, **changes):
    """Load a file holding GOOD with ``changes`` (value None-sentinel ``DROP`` removes the field)."""
    point = {**GOOD, **changes}
    point = {k: v for k, v in point.items() if v is not DROP}
    return load_points(write_json(tmp_path, [point]))


DROP = object()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"tp": DROP}, "tp", "is required"),
        ({"hardware_key": DROP}, "hardware_key", "is required"),
        ({"speed": 3}, "speed", "unknown field"),
        ({"tp": "2"}, "tp", "positive integer"),
        ({"tp": True}, "tp", "positive integer"),
        ({"tp": 2.0}, "tp", "positive integer"),
        ({"tp": 0}, "tp", "positive integer"),
        ({"batch": 2**41}, "batch", "positive integer"),
        ({"measured": "1"}, "measured", "must be a number from 1e-06 to 1e+12"),
        ({"measured": True}, "measured", "must be a number from"),
        ({"measured": -3.0}, "measured", "must be a number from"),
        ({"measured": 0}, "measured", "must be a number from"),
        ({"measured": 10**400}, "measured", "must be a number from"),
        ({"measured": 1e-300}, "measured", "must be a number from"),
        ({"moe": "false"}, "moe", "true or false"),
        ({"moe": 0}, "moe", "true or false"),
        ({"weight_dtype": "fp9"}, "weight_dtype", "unknown value 'fp9'"),
        ({"metric": "ttft"}, "metric", "did you mean ttft_ms"),
        ({"hardware_key": "h100"}, "hardware_key", "unknown hardware"),
        ({"model_key": "llama-9"}, "model_key", "unknown model"),
        ({"model_key": DROP}, "model_key", "exactly one"),
        ({"model_config": {"d_model": 64}}, "model_key", "exactly one"),
        ({"id": ""}, "id", "non-empty"),
        ({"id": 7}, "id", "must be a string"),
        ({"batch": None}, "batch", "only for batching 'offline-max'"),
        ({"batching": "batch-1"}, "batch", "must be 1"),
        ({"unit": "ms"}, "unit", "is in 'tok/s (whole system, output tokens)'"),
        ({"num_gpus": 2}, "num_gpus", "tp · pp = 1"),
        ({"duplicate_of": "h100-b8"}, "duplicate_of", "cannot duplicate itself"),
        ({"original": [1, 2]}, "original", "must be an object"),
        ({"kv_dtype": None}, "kv_dtype", "must not be null"),
    ],
)
def test_bad_point_names_file_point_and_field(tmp_path, changes, field, message):
    with pytest.raises(ValueError) as exc:
        one(tmp_path, **changes)
    text = str(exc.value)
    assert "pts.json" in text and "point 1" in text and f"field {field!r}" in text and message in text, text


@pytest.mark.parametrize(
    "config, message",
    [
        ({"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100, "heads": 3}, "unknown keys"),
        ({"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 3, "d_ff": 128, "vocab_size": 100}, "divide"),
        ({"d_model": 64.0, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100}, "d_model"),
        ({"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100, "ffn": ["swiglu"]}, "ffn"),
        ({"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100, "qkv_bias": "no"}, "qkv_bias"),
        ({"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100, "name": 5}, "name"),
        ({"d_model": 2**50, "n_layers": 2, "n_heads": 4, "d_ff": 128, "vocab_size": 100}, "at most 2"),
    ],
)
def test_bad_inline_model_config(tmp_path, config, message):
    with pytest.raises(ValueError, match=rf"point 1 \(id 'h100-b8'\), field 'model_config': .*{message}"):
        one(tmp_path, model_key=DROP, model_config=config)


def test_inline_model_config_is_built(tmp_path):
    cfg = {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 128, "vocab_size": 100, "name": "t"}
    (p,) = one(tmp_path, model_key=DROP, model_config=cfg)
    assert p.model_config.n_kv_heads == 2 and p.model_label == "t" and p.kv_dtype == "fp8" and p.num_gpus == 1


def test_file_level_errors(tmp_path):
    base = {**GOOD}
    with pytest.raises(ValueError, match=r"point 2 \(id 'h100-b8'\), field 'id': 'h100-b8' repeats point 1"):
        load_points(write_json(tmp_path, [base, base]))
    for target in ("nope", "b"):
        pts = [base, {**base, "id": "b", "duplicate_of": "x"}, {**base, "id": "c", "duplicate_of": target}]
        if target == "b":
            pts[1]["duplicate_of"] = "h100-b8"
        else:
            pts = pts[:1] + pts[2:]
        with pytest.raises(ValueError, match=r"\(id 'c'\), field 'duplicate_of': .* not itself a duplicate"):
            load_points(write_json(tmp_path, pts))
    with pytest.raises(ValueError, match="non-empty list of points"):
        load_points(write_json(tmp_path, []))
    with pytest.raises(ValueError, match="non-empty list of points"):
        load_points(write_json(tmp_path, 3))
    with pytest.raises(ValueError, match="point 1: must be an object of fields; got list"):
        load_points(write_json(tmp_path, [[1]]))
    with pytest.raises(ValueError, match="must have 'points'"):
        load_points(write_json(tmp_path, {"pts": [base]}))
    assert len(load_points(write_json(tmp_path, {"points": [base], "description": "mine"}))) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, "nested 100000 deep", id="100000-deep"),
        ('[{"id": "a", "measured": NaN}]', "NaN"),
        ('[{"id": "a", "measured": 1e400}]', "not finite"),
        ('[{"id": "a", "id": "b"}]', "duplicate key 'id'"),
        ('[{"id": "a",]', "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_bad_json_text(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        load_points(path)
    assert "bad.json" in str(exc.value)


def test_bad_files(tmp_path, monkeypatch):
    good = write_json(tmp_path, [GOOD])
    with pytest.raises(ValueError, match="cannot open"):
        load_points(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not a regular file"):
        load_points(tmp_path)
    with pytest.raises(ValueError, match="the path must be a string"):
        load_points(3)
    (tmp_path / "latin1.json").write_bytes(b'[{"id": "caf\xe9"}]')
    with pytest.raises(ValueError, match=r"latin1.json.*not UTF-8 text \(bad byte at offset 12\)"):
        load_points(tmp_path / "latin1.json")
    (tmp_path / "nul.json").write_bytes(b"[\x00]")
    with pytest.raises(ValueError, match="NUL"):
        load_points(tmp_path / "nul.json")
    (tmp_path / "pts.txt").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown extension '.txt'"):
        load_points(tmp_path / "pts.txt")
    monkeypatch.setattr(points_mod, "MAX_POINTS_FILE_BYTES", 100)
    with pytest.raises(ValueError, match=r"bytes is over the limit of 100"):
        load_points(good)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        load_points(fifo)


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def test_csv_and_json_give_the_same_points(tmp_path):
    records = json.loads(points_mod._data_text("dev_points.json"))
    header = [f.name for f in FIELDS if any(f.name in r for r in records)]
    with open(tmp_path / "dev.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in records:
            w.writerow([_csv_cell(r.get(h)) for h in header])
    from_csv, from_json = load_points(tmp_path / "dev.csv"), shipped_points()
    assert from_csv == from_json and len(from_json) == 88
    assert [p.notes for p in from_csv] == [p.notes for p in from_json]


@pytest.mark.parametrize(
    "header, row, message",
    [
        ("id,model_key,tp", "a,llama-2-7b,2.0", "field 'tp': must be a positive integer"),
        ("id,model_key,tp", "a,llama-2-7b,-1", "field 'tp': must be a positive integer"),
        ("id,model_key,moe", "a,llama-2-7b,True", "field 'moe': must be true or false"),
        ("id,model_key,measured", "a,llama-2-7b,fast", "field 'measured': must be a number from"),
        ("id,model_key,measured", "a,llama-2-7b,nan", "field 'measured': must be a number from"),
        ("id,model_key,tp", "a,llama-2-7b,1,5", "has 4 cells; the header has 3"),
        ("id,model,tp", "a,llama-2-7b,1", "field 'model': unknown column (did you mean model_key"),
        ("id,tp,tp", "a,1,1", "header repeats columns ['tp']"),
        ("id,model_config", 'a,"{""d_model"": [[[1]]]', "not valid CSV"),
        ("id,model_config", 'a,"{""d_model"": 1,}"', "field 'model_config': not valid JSON"),
        ("id,model_key", "a,llama-2-7b", "field 'hardware_key': is required"),
    ],
)
def test_bad_csv(tmp_path, header, row, message):
    path = tmp_path / "pts.csv"
    path.write_text(f"{header}\n{row}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        load_points(path)
    assert "pts.csv" in str(exc.value)


def test_csv_empty_cells_and_bom(tmp_path):
    header = list(GOOD) + ["kv_dtype", "duplicate_of"]
    row = [_csv_cell(GOOD[k]) for k in GOOD] + ["", ""]
    path = tmp_path / "pts.csv"
    path.write_text("\ufeff" + ",".join(header) + "\n" + ",".join(row) + "\n\n", encoding="utf-8")
    (p,) = load_points(path)
    assert p.kv_dtype == "fp8" and p.duplicate_of is None and p.batch == 8 and p.measured == 3000.0
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty CSV"):
        load_points(path)


def test_shipped_set_loads_and_every_point_resolves_or_says_why():
    points = shipped_points()
    assert len(points) == 88 and len({p.id for p in points}) == 88
    preds = evaluate(points)
    reasons = {p.reason.split(":")[0] for p in preds if not p.computable}
    # every point is priced, or has one of these reasons (missing preset, fp4); MoE is priced, and the serving
    # model (costmodel.serving.accuracy) prices the continuous and offline-max points
    assert reasons == {
        "no hardware preset for this part (A100 PCIe 80GB",
        "no hardware preset for this part (GB200 (NVL72)",
        "weight_dtype 'fp4' is not one of the cost model's dtypes",
    }
    assert sum(p.computable for p in preds) == 83  # 88 less the 5 above
    for p in points:  # each point carries its source
        assert p.notes["original"]["source"]


def test_kv_precision_follows_the_stack_default_when_the_command_gives_none():
    """vLLM's --kv-cache-dtype defaults to 'auto', the model's dtype (vLLM engine arguments): the ROCm latency
    runs pass --dtype float16 and no --kv-cache-dtype, so their cache is fp16 (the throughput run passes fp8)."""
    rocm = [p for p in shipped_points() if p.source_short == "rocm-vllm-0.10"]
    latency = [p for p in rocm if "does NOT pass --kv-cache-dtype" in p.notes["original"]["notes"]]
    assert len(latency) == 5 and all(p.metric == "e2e_ms" for p in latency)
    for p in latency:
        assert "--dtype float16" in p.notes["original"]["notes"] and p.weight_dtype == "fp8"
        assert p.kv_dtype == "fp16" and "auto" in p.notes["kv_note"]
    (tput,) = [p for p in rocm if p not in latency]
    assert "--kv-cache-dtype fp8" in tput.notes["original"]["kv_dtype"] and tput.kv_dtype == "fp8"


def test_docs_list_every_field():
    text = (Path(__file__).parents[1] / "docs" / "points-format.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `(\w+)` \|", text.split("## Fields")[1].split("## Metrics")[0], flags=re.M)
    assert documented == [f.name for f in FIELDS]


def test_implementation_settings_groups_and_power_limits_are_read_and_checked():
    from costmodel.accuracy import parse_points

    base = dict(id="p", model_key="llama-2-70b", hardware_key="a100-sxm-80gb", tp=8, weight_dtype="int4",
                kv_dtype="bf16", batch=1, input_len=5, output_len=200, batching="batch-1",
                metric="decode_tok_s_per_user", measured=90.0)  # fmt: skip
    (plain,) = parse_points([base])
    assert plain.hardware_key == "a100-sxm-80gb" and not plain.kv_read_per_query_head
    (p,) = parse_points([{**base, "hardware_note": "power limited to 330 W", "kv_read_per_query_head": True,
                          "weight_group_size": 32, "weight_group_bytes": 4}])  # fmt: skip
    assert p.hardware_key == "a100-sxm-80gb-330w" and p.kv_read_per_query_head and p.weight_group_size == 32
    (other,) = parse_points([{**base, "hardware_key": "h100-sxm", "hardware_note": "power limited to 330 W"}])
    assert other.hardware_key == "h100-sxm"  # no such variant: the preset, note kept
    slow, fast = (evaluate([q])[0].predicted for q in (p, plain))
    assert slow < fast  # 330 W, per-head KV reads and group scales all cost time
    (noted,) = parse_points([{**base, "weight_note": "int4 weight-only, group size 128"}])
    assert noted.weight_group_size == 128 and noted.weight_group_bytes is None  # 2 bytes (an fp16 scale) priced
    (bf16,) = parse_points([{**base, "weight_dtype": "bf16", "weight_note": "group size 128"}])
    assert bf16.weight_group_size is None
    for bad, field in (({"kv_read_per_query_head": "true"}, "kv_read_per_query_head"),
                       ({"weight_group_bytes": 4}, "weight_group_bytes"),
                       ({"weight_group_size": 0}, "weight_group_size")):  # fmt: skip
        with pytest.raises(ValueError, match=f"field '{field}'"):
            parse_points([{**base, **bad}])
