"""Files and options of `glugqa ref vectors|check` (issue 12, kinds 3 and 6): every unusable file is refused on
one line saying what the file was expected to be, before anything is allocated, and an option that does not
apply to the chosen op is an error."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from costmodel.cli import cli
from refimpl.conformance.cli import OPTIONS
from refimpl.conformance.npzfile import read_npz
from refimpl.conformance.vectors import OPS, VectorFileError, check_vectors

FFN_SHAPE = "d_model=8,d_ff=5,n_tokens=3"


def _run(*args):
    return CliRunner().invoke(cli, ["ref", *map(str, args)], prog_name="glugqa")


def _one_line(result, command, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"glugqa ref {command}: error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "v.npz"
    result = _run("vectors", "--op", "swiglu", "--dtype", "bf16", "--shape", FFN_SHAPE, "--seeds", 1, "-o", path)
    assert result.exit_code == 0, result.output
    return path


def _huge_header_npz(path):
    """A valid zip whose one .npy member claims shape (10**15,) float64 but holds 16 bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**15,)})
    member.write(b"\0" * 16)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.npy", member.getvalue())
    return path


@pytest.mark.parametrize("make, fragments", [
    (lambda p: np.save(p, np.zeros(3)) or p.with_suffix(".npy"),
     ["not an .npz archive; it is a single .npy array (numpy.save)", "expected an .npz of test vectors"]),
    (_huge_header_npz, ["claims shape (1000000000000000,) of float64 = 8000000000000000 bytes, but it holds 16"]),
    (lambda p: p.write_bytes(bytes(range(256))) and p, ["not an .npz archive; it is binary data beginning with 00 01"]),
    (lambda p: p.write_text("x = 1\n", encoding="utf-16") and p, ["it is UTF-16 text"]),
    (lambda p: p.write_text("hello, vectors\n") and p, ["it is text beginning 'hello, v'", "'glugqa ref vectors'"]),
    (lambda p: p.write_bytes(b"") or p, ["it is empty"]),
])  # fmt: skip
def test_unusable_vector_files_say_what_they_are_and_what_was_expected(tmp_path, make, fragments):
    path = make(tmp_path / "bad")
    _one_line(_run("check", path, path), "check", "vectors file", *fragments)


def test_deeply_nested_meta_is_refused(tmp_path):
    path = tmp_path / "nested.npz"
    np.savez(path, meta=np.array("[" * 100_000 + "]" * 100_000))
    _one_line(_run("check", path, path), "check", "nested too deeply")


def test_a_candidate_file_of_the_wrong_kind_names_its_role(vectors, tmp_path):
    npy = tmp_path / "cand.npy"
    np.save(npy, np.zeros(3))
    _one_line(_run("check", vectors, npy), "check", "candidate file", "single .npy array",
              "expected an .npz of the candidate's results")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_and_directory_are_refused_without_hanging(tmp_path):
    pipe = tmp_path / "pipe.npz"
    os.mkfifo(pipe)
    code = ("import sys; from costmodel.cli import main; "
            f"sys.argv = ['glugqa', 'ref', 'check', {str(pipe)!r}, {str(pipe)!r}]; main()")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "a named pipe; expected an .npz" in proc.stderr and proc.stderr.count("\n") == 1
    with pytest.raises(VectorFileError, match="a directory"):
        check_vectors(tmp_path, tmp_path)
    with pytest.raises(VectorFileError, match="the path must be a string"):
        read_npz(3, "vectors file", "an .npz")


def test_sizes_are_bounded_before_allocating(tmp_path):
    out = tmp_path / "v.npz"
    _one_line(_run("vectors", "--op", "swiglu", "--dtype", "bf16", "--shape", "d_model=99999999999999", "-o", out),
              "vectors", "the conformance kit's bound is 2147483648 bytes (2 GiB")  # fmt: skip
    _one_line(_run("vectors", "--op", "attention", "--dtype", "bf16", "--shape", "seq_len=10000000", "-o", out),
              "vectors", "would need about")  # fmt: skip
    _one_line(_run("vectors", "--op", "swiglu", "--dtype", "bf16", "--shape", "d_model=" + "9" * 5000, "-o", out),
              "vectors", "at most 18 digits")  # fmt: skip
    assert not out.exists()


# --- options that do not apply are errors (kind 6), generically from the option table ----------------------

SAMPLES = {"gelu": ["--gelu", "tanh"], "alpha": ["--alpha", "1.5"], "limit": ["--limit", "5"], "bias": ["--bias"],
           "variant": ["--variant", "geglu"], "routing": ["--routing", "topk_softmax"], "normalize": ["--no-normalize"],
           "router_bias": ["--router-bias"], "shared_gate": ["--shared-gate"], "causal": ["--no-causal"],
           "window": ["--window", "4"], "softcap": ["--softcap", "2"], "scale": ["--scale", "0.5"],
           "sinks": ["--sinks"]}  # fmt: skip


def test_the_option_table_covers_every_op_specific_option():
    from refimpl.conformance.cli import vectors as command

    shared = {"op", "dtype", "shape", "seeds", "forward_only", "output"}
    assert set(OPTIONS) == set(SAMPLES) == {p.name for p in command.params} - shared


@pytest.mark.parametrize("op", OPS)
def test_every_option_that_does_not_apply_to_an_op_is_an_error(op, tmp_path):
    for name, (applies_to, applies) in OPTIONS.items():
        if applies(op, "swiglu"):
            continue
        result = _run("vectors", "--op", op, "--dtype", "bf16", *SAMPLES[name], "-o", tmp_path / "v.npz")
        _one_line(result, "vectors", SAMPLES[name][0], f" does not apply to --op {op}", f"it applies to {applies_to}")
    assert not (tmp_path / "v.npz").exists()


@pytest.mark.parametrize("op, variant, options", [
    ("attention", None, ["causal", "window", "softcap", "scale", "sinks"]),
    ("moe", "geglu", ["gelu", "bias", "routing", "router_bias"]),
    ("moe", "swiglu_oss", ["alpha", "limit", "bias", "normalize"]),
    ("swiglu_oss", None, ["alpha", "limit", "bias"]),
    ("geglu", None, ["gelu", "bias"]),
])  # fmt: skip
def test_options_that_apply_are_used(op, variant, options, tmp_path):
    shape = {"attention": "n_heads=2,n_kv_heads=1,head_dim=4,seq_len=8",
             "moe": "d_model=8,d_ff=5,n_tokens=6,n_experts=4"}
    args = ["vectors", "--op", op, "--dtype", "fp32", "--seeds", 1, "--forward-only", "-o", tmp_path / "v.npz",
            "--shape", shape.get(op, FFN_SHAPE), *(["--variant", variant] if variant else [])]  # fmt: skip
    for name in options:
        if name == "routing":
            args += ["--routing", "topk_softmax"]
        elif name != "normalize":
            args += SAMPLES[name]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    from refimpl.conformance.vectors import load_vectors

    meta, _, _ = load_vectors(tmp_path / "v.npz")
    assert {n for n in options if n in meta["config"]} == set(options) - {"variant"}
    if op == "attention":
        assert meta["config"]["window"] == 4 and meta["config"]["sinks"] is True and meta["config"]["causal"] is False


# --- a property: whatever the arguments, one line and 0, 1 or 2, never a traceback --------------------------

_JUNK = st.sampled_from(["", "x", "-1", "0", "nan", "inf", "1e308", "9" * 40, "d_model=0", "d_model=x", "=", ","])


@given(op=st.sampled_from(OPS), dtype=st.sampled_from(["bf16", "fp8_e5m2", "int8"]),
       extra=st.lists(st.sampled_from([*(tuple(v) for v in SAMPLES.values()), ("--shape",), ("--seeds",)]),
                      max_size=3),
       junk=st.lists(_JUNK, max_size=2))  # fmt: skip
def test_any_vectors_command_line_ends_cleanly(op, dtype, extra, junk, tmp_path_factory):
    out = tmp_path_factory.mktemp("prop") / "v.npz"
    args = ["vectors", "--op", op, "--dtype", dtype, "--seeds", "1", "--forward-only", "-o", str(out)]
    tiny = {"attention": "n_heads=2,n_kv_heads=1,head_dim=4,seq_len=6",
            "moe": "d_model=4,d_ff=3,n_tokens=4,n_experts=3"}
    args += ["--shape", tiny.get(op, "d_model=4,d_ff=3,n_tokens=2")]
    for option in extra:
        args += [*option, *junk[:1]] if len(option) == 1 and option[0] in ("--shape", "--seeds") else list(option)
    result = _run(*args, *junk[1:])
    assert result.exit_code in (0, 2), (args, result.output)
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None))), result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1 and ": error: " in result.stderr
