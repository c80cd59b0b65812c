"""Test-vector files through the CLI: round trips, and one-line errors (exit 2) for unusable files."""

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from costmodel.cli import cli
from refimpl import attention_forward, ffn_backward, ffn_forward
from refimpl.conformance import round_to
from refimpl.conformance.vectors import candidate_outputs, load_vectors

FFN_SHAPE = "d_model=16,d_ff=23,n_tokens=11"
ATTN_SHAPE = "n_heads=4,n_kv_heads=2,head_dim=8,seq_len=13,batch=2"


def _run(*args):
    return CliRunner().invoke(cli, ["ref", *map(str, args)], prog_name="glugqa")


def _assert_one_line_error(result, *fragments, command="check"):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"glugqa ref {command}: error: "), result.stderr
    assert any(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.output


def _ffn_candidate(dtype, *, dx_factor=1.0):
    def fn(x, params):
        return round_to(ffn_forward(x, params, "swiglu")[0], dtype).astype(np.float32)

    def backward(x, params, dy):
        _, cache = ffn_forward(x, params, "swiglu")
        grads = ffn_backward(dy, cache)
        grads["x"] = grads["x"] * dx_factor
        return {k: round_to(g, dtype).astype(np.float32) for k, g in grads.items()}

    return fn, backward


@pytest.fixture(scope="module")
def ffn_vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("vectors") / "swiglu_bf16.npz"
    result = _run(
        "vectors", "--op", "swiglu", "--dtype", "bf16", "--shape", FFN_SHAPE, "--seeds", 2, "-o", path
    )
    assert result.exit_code == 0, result.output
    assert "6 cases" in result.output
    return path


def test_vectors_file_holds_rounded_inputs_and_golden_results_from_them(ffn_vectors):
    with np.load(ffn_vectors, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        x, w_gate = z["input/random.s0/x"], z["input/random.s0/w_gate"]
        params = {k: z[f"input/random.s0/{k}"] for k in ("w_gate", "w_up", "w_down")}
        dy, golden_dx = z["dout/random.s0/y"], z["golden/random.s0/dx"]
    assert meta["version"] == 2 and meta["dtype"] == "bf16" and len(meta["sha256"]) == 64
    assert x.dtype == np.float32 and w_gate.shape == (16, 23) and x.shape == (1, 11, 16)
    np.testing.assert_array_equal(round_to(x, "bf16"), x)  # stored exactly, already in bf16
    _, cache = ffn_forward(x.astype(np.float64), params, "swiglu")  # gold is the reference on these inputs
    np.testing.assert_array_equal(ffn_backward(dy, cache)["x"], golden_dx)
    assert all(e > 0 for c in meta["cases"] for e in c["baseline_max"].values())


def test_cli_round_trip_correct_passes_buggy_fails(ffn_vectors, tmp_path):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    np.savez(good, **candidate_outputs(ffn_vectors, *_ffn_candidate("bf16")))
    np.savez(bad, **candidate_outputs(ffn_vectors, *_ffn_candidate("bf16", dx_factor=-1.0)))
    passed = _run("check", ffn_vectors, good)
    assert passed.exit_code == 0 and "CONFORMS: all 30 tensor checks passed" in passed.output
    failed = _run("check", ffn_vectors, bad)
    assert failed.exit_code == 1 and "DOES NOT CONFORM: 6 of 30" in failed.output and "dx" in failed.output
    forward_only = tmp_path / "fwd.npz"
    np.savez(forward_only, **candidate_outputs(ffn_vectors, _ffn_candidate("bf16", dx_factor=-1.0)[0]))
    assert _run("check", ffn_vectors, forward_only).exit_code == 0  # gradients are optional, all or none


def test_attention_round_trip_forward_only_with_lse(tmp_path):
    vectors, good, bad = tmp_path / "attn.npz", tmp_path / "good.npz", tmp_path / "bad.npz"
    result = _run(
        "vectors",
        "--op",
        "attention",
        "--dtype",
        "fp16",
        "--shape",
        ATTN_SHAPE,
        "--seeds",
        1,
        "--forward-only",
        "-o",
        vectors,
    )
    assert result.exit_code == 0, result.output

    def candidate(causal_override=None):
        def fn(q, k, v, spec):
            causal = spec.causal if causal_override is None else causal_override
            out, cache = attention_forward(
                q, k, v, causal=causal, kv_lengths=spec.kv_lengths, scale=spec.scale
            )
            return round_to(out, "fp16").astype(np.float16), round_to(cache.lse, "fp16").astype(np.float32)

        return fn

    np.savez(good, **candidate_outputs(vectors, candidate()))
    np.savez(bad, **candidate_outputs(vectors, candidate(causal_override=False)))
    passed = _run("check", vectors, good)
    assert passed.exit_code == 0 and "lse" in passed.output
    assert _run("check", vectors, bad).exit_code == 1
    meta, fmt, cases = load_vectors(vectors)
    assert fmt.name == "fp16" and [c.name for c in cases][:2] == ["prefill.s0", "chunk.s0"]
    assert cases[3].spec.kv_lengths.tolist() == [13, 2] and cases[3].spec.mask.shape == (2, 4, 13)


def test_no_baseline_option_uses_the_backstop(ffn_vectors, tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, **candidate_outputs(ffn_vectors, *_ffn_candidate("bf16")))
    result = _run("check", "--no-baseline", ffn_vectors, good)
    assert result.exit_code == 0 and "(no baseline)" in result.output


def test_truncated_file(ffn_vectors, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(ffn_vectors.read_bytes()[: ffn_vectors.stat().st_size // 2])
    _assert_one_line_error(_run("check", cut, cut), "truncated or corrupted")


def test_corrupted_data_fails_the_crc_or_the_checksum(ffn_vectors, tmp_path):
    data = bytearray(ffn_vectors.read_bytes())
    with zipfile.ZipFile(ffn_vectors) as zf:  # flip a byte inside golden/random.s0/y's array data
        info = zf.getinfo("golden/random.s0/y.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[offset] ^= 0xFF
    broken = tmp_path / "broken.npz"
    broken.write_bytes(bytes(data))
    _assert_one_line_error(_run("check", broken, broken), "truncated or corrupted", "checksum mismatch")


def test_edited_golden_values_fail_the_checksum(ffn_vectors, tmp_path):
    with np.load(ffn_vectors, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["golden/random.s0/y"] = arrays["golden/random.s0/y"] + 1e-3  # a valid zip, a different file
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    _assert_one_line_error(_run("check", edited, edited), "checksum mismatch")


def test_other_schema_version_and_foreign_files(ffn_vectors, tmp_path):
    with np.load(ffn_vectors, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 3
    future = tmp_path / "future.npz"
    np.savez(future, **{**arrays, "meta": np.array(json.dumps(meta))})
    _assert_one_line_error(_run("check", future, future), "schema version 3; this reader reads versions 1, 2 (update")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    _assert_one_line_error(_run("check", foreign, foreign), "no 'meta' entry")
    _assert_one_line_error(_run("check", tmp_path / "absent.npz", foreign), "no such file")


def test_mismatched_candidates(ffn_vectors, tmp_path):
    good = candidate_outputs(ffn_vectors, *_ffn_candidate("bf16"))
    cand = tmp_path / "cand.npz"
    np.savez(cand, **{k: v for k, v in good.items() if k != "random.s1/y"})
    _assert_one_line_error(_run("check", ffn_vectors, cand), "missing ['random.s1/y']")
    np.savez(cand, **{k: v for k, v in good.items() if k != "decode.s0/dw_up"})
    _assert_one_line_error(_run("check", ffn_vectors, cand), "has some grad entries but lacks")
    np.savez(cand, **{**good, "random.s0/y": good["random.s0/y"][..., :-1]})
    _assert_one_line_error(_run("check", ffn_vectors, cand), "has shape (1, 11, 15); expected (1, 11, 16)")
    np.savez(cand, **{**good, "prefill.s0/out": np.zeros(3)})  # written for attention vectors
    _assert_one_line_error(_run("check", ffn_vectors, cand), "match no case/tensor")
    np.savez(cand, **{**good, "random.s0/y": np.array([object()] * 3)})  # needs pickle to read: refused
    _assert_one_line_error(_run("check", ffn_vectors, cand), "unreadable")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--op", "swiglu", "--dtype", "bf16", "--shape", "d_model=0"], "d_model must be a positive integer"),
        (["--op", "swiglu", "--dtype", "bf16", "--shape", "heads=2"], "--shape takes KEY=INT pairs"),
        (
            ["--op", "attention", "--dtype", "bf16", "--shape", "n_heads=6,n_kv_heads=4"],
            "n_kv_heads must divide",
        ),
        (["--op", "swiglu", "--dtype", "bf16", "--shape", "d_ff=x"], "--shape d_ff must be an integer"),
    ],
)
def test_bad_vectors_options(args, fragment, tmp_path):
    _assert_one_line_error(_run("vectors", *args, "-o", tmp_path / "v.npz"), fragment, command="vectors")


# --- schema 2: MoE, sinks and swiglu_oss through files; version 1 files still read -------------------------


def test_moe_vectors_round_trip_with_a_diagnosis_from_the_files_alone(tmp_path):
    from conformance_candidates import moe

    vectors, good, bad = tmp_path / "moe.npz", tmp_path / "good.npz", tmp_path / "bad.npz"
    result = _run("vectors", "--op", "moe", "--variant", "swiglu_oss", "--routing", "topk_softmax", "--bias",
                  "--dtype", "bf16", "--shape", "d_model=16,d_ff=12,n_tokens=20,n_experts=6", "--seeds", 1,
                  "--forward-only", "-o", vectors)  # fmt: skip
    assert result.exit_code == 0, result.output
    opts = dict(top_k=2, routing="topk_softmax", normalize=True)
    np.savez(good, **candidate_outputs(vectors, moe("bf16", "swiglu_oss", **opts)))
    np.savez(bad, **candidate_outputs(vectors, moe("bf16", "swiglu_oss", bug="interleaved-read-as-concat", **opts)))
    assert _run("check", vectors, good).exit_code == 0
    failed = _run("check", vectors, bad)
    assert failed.exit_code == 1
    assert "likely cause: gate/up de-interleaved wrongly" in failed.output


def test_attention_with_sinks_vectors_round_trip(tmp_path):
    from conformance_candidates import attention

    vectors, good = tmp_path / "att.npz", tmp_path / "good.npz"
    result = _run("vectors", "--op", "attention", "--sinks", "--window", 5, "--dtype", "fp16", "--shape", ATTN_SHAPE,
                  "--seeds", 1, "--forward-only", "-o", vectors)  # fmt: skip
    assert result.exit_code == 0, result.output
    meta, fmt, cases = load_vectors(vectors)
    assert all(c.spec.sinks is not None and c.spec.sinks.dtype == np.float16 for c in cases)
    np.savez(good, **candidate_outputs(vectors, attention("fp16")))
    assert _run("check", vectors, good).exit_code == 0
    np.savez(good, **candidate_outputs(vectors, attention("fp16", bug="sink-with-value")))
    failed = _run("check", vectors, good)
    assert failed.exit_code == 1 and "likely cause: the sink is added to the numerator" in failed.output


def _rewrite(path, out, edit):
    """Load a vectors file, ``edit(meta, arrays)``, recompute the checksum as a forger would, write ``out``."""
    from refimpl.conformance.vectors import _checksum

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.pop("sha256")
    edit(meta, arrays)
    meta["sha256"] = _checksum(meta, arrays)
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
    return out


def test_version_1_files_are_still_read(ffn_vectors, tmp_path):
    """A version-1 file (no spec for an FFN, no sinks flag) is judged exactly as the version-2 file it came from."""

    def to_v1(meta, arrays):
        meta["version"] = 1
        for c in meta["cases"]:
            c["spec"] = None

    old = _rewrite(ffn_vectors, tmp_path / "v1.npz", to_v1)
    good = tmp_path / "good.npz"
    np.savez(good, **candidate_outputs(ffn_vectors, *_ffn_candidate("bf16")))
    new_out, old_out = _run("check", ffn_vectors, good), _run("check", old, good)
    assert old_out.exit_code == 0 and old_out.output.splitlines()[2:] == new_out.output.splitlines()[2:]


@pytest.mark.parametrize("edit, fragment", [
    (lambda m, a: m.update(cases=[]), "meta['cases'] must be a non-empty list of cases; nothing to check"),
    (lambda m, a: m.update(config=[]), "meta['config'] must be dict"),
    (lambda m, a: m.update(op="moe", version=1), "op must be one of"),
    (lambda m, a: m["cases"][0].update(tensors=["y", "nonsense"]), "entry 'golden/random.s0/nonsense' is missing"),
    (lambda m, a: m["cases"][0]["baseline_max"].update(y=-1), "must be a non-negative number or null"),
    (lambda m, a: m["cases"][0]["spec"].update(gelu=["erf"]), "['gelu'] must be str"),
    (lambda m, a: a.update({"input/random.s0/w_up": a["input/random.s0/w_up"].T.copy()}),
     "params['w_up'] must have shape"),
    (lambda m, a: a.update({"golden/random.s0/dx": a["golden/random.s0/dx"][..., :-1].copy()}),
     "dx has shape (1, 11, 15); expected (1, 11, 16)"),
])  # fmt: skip
def test_forged_files_with_a_recomputed_checksum_are_refused_clearly(ffn_vectors, tmp_path, edit, fragment):
    forged = _rewrite(ffn_vectors, tmp_path / "forged.npz", edit)
    _assert_one_line_error(_run("check", forged, forged), fragment)


def test_an_overflowing_baseline_travels_as_null_and_the_backstop_bounds_it(tmp_path):
    """scale = 1e300 overflows fp32 scores: the naive baseline is NaN, stored as null, read back as infinite,
    and a correct candidate is held to the finite backstop (issue 12, kind 4)."""
    vectors, good = tmp_path / "big_scale.npz", tmp_path / "good.npz"
    result = _run("vectors", "--op", "attention", "--scale", "1e300", "--dtype", "fp32", "--shape",
                  "n_heads=2,n_kv_heads=1,head_dim=4,seq_len=8", "--seeds", 1, "--forward-only",
                  "-o", vectors)  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(vectors, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["cases"][0]["baseline_max"]["out"] is None

    def fn(q, k, v, spec):
        out, cache = attention_forward(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64),
                                       causal=spec.causal, kv_lengths=spec.kv_lengths, scale=spec.scale)  # fmt: skip
        return round_to(out, "fp32"), round_to(cache.lse, "fp32")

    np.savez(good, **candidate_outputs(vectors, fn))
    checked = _run("check", vectors, good)
    assert checked.exit_code == 0 and "the absolute backstop bounds those tensors" in checked.output
