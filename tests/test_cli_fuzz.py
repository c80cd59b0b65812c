"""Property-based fuzz of the whole `glugqa` command line (issue 12, "Must show").

Argument lists are drawn from the REAL option grammar: the click command tree is walked from the root group
(groups, commands, the lazily registered `ref ...` commands), and each parameter's click type decides what is
drawn for it, so a new option or command is fuzzed without editing this file. Each option gets a valid value
(kept cheap: small counts, one chip, one op) or junk: negative, zero, 10**400, a 5000-digit integer, inf, nan,
1e-320, empty and unicode strings, a wrong choice, an option repeated or from another command, a missing value,
and files of every awkward kind (empty, binary, UTF-16, 100,000 nested brackets, a named pipe, a directory, a
missing path, .npy/.npz headers claiming 10**15 elements).

Every run, in-process through click's CliRunner with the working directory a scratch folder (files written
there are removed after each example), must: exit 0, 1 (a check that did not pass) or 2; raise nothing but
SystemExit; print no traceback; on exit 2 print nothing on stdout and exactly one line on stderr,
"glugqa ...: error: ..."; on exit 0 or 1 print no inf or nan; and finish within HANG_S seconds (SIGALRM: a
read of the named pipe that blocked would fail here, not hang the suite).
"""

import json
import os
import re
import shutil
import signal
import struct
import zipfile
from collections import Counter

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.cli import cli
from costmodel.cli.param_types import BoundedFloat, IntList, _BatchOrMax, _Count
from costmodel.config import DTYPES
from costmodel.hardware import HARDWARE
from costmodel.models import MODELS
from costmodel.roofline import PARAMS

EXAMPLES = 500  # ~7 s here; the property test's share of the CI budget is 30 s
HANG_S = 15  # one invocation longer than this is a hang


def command_tree(group: click.Group = cli) -> dict[tuple[str, ...], click.Command]:
    """Command path -> command, for every group (invoked alone too) and every command under ``group``."""
    tree: dict[tuple[str, ...], click.Command] = {}

    def walk(cmd, path, ctx):
        tree[path] = cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                walk(sub, (*path, name), click.Context(sub, parent=ctx, info_name=name))

    walk(group, (), click.Context(group, info_name="glugqa"))
    return tree


TREE = command_tree()
LEAVES = [" ".join(p) for p, c in TREE.items() if not isinstance(c, click.Group)]
OPTION_PARAM = {o: p for c in TREE.values() for p in c.params if isinstance(p, click.Option) for o in p.opts}
ALL_OPTIONS = sorted(OPTION_PARAM)

# --- the scratch folder: every file kind, by the relative name an argument uses ---
HUGE = (10**15,)  # the shape a crafted header claims


def _npy_claiming(shape) -> bytes:
    header = repr({"descr": "<f8", "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"  # the whole preamble a multiple of 64 bytes
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(8)


def _zip(members: dict[str, bytes]) -> bytes:
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


JUNK_FILES = {
    "empty.json": b"", "empty.npz": b"", "binary.bin": bytes(range(256)) * 4, "binary.npz": b"\xff\xfe\x00" * 99,
    "utf16.json": '{"model_type": "llama"}'.encode("utf-16"), "utf16.toml": "[x]\na = 1\n".encode("utf-16"),
    "nested.json": b"[" * 100_000 + b"]" * 100_000, "text.npz": b"arrival_s,prompt_tokens\n1,2\n",
    "huge.npy": _npy_claiming(HUGE), "huge.npz": _zip({"meta.npy": _npy_claiming(HUGE), "x.npy": _npy_claiming(HUGE)}),
}  # fmt: skip
PIPES = ("pipe", "pipe.png", "pipe.npz", "pipe.toml", "pipe.json")
FOLDERS = ("folder", "folder.png", "folder.npz")
JUNK_PATHS = [*PIPES, *FOLDERS, "missing.json", "missing/x.npz", "missing/x.png", *JUNK_FILES, "vec_huge.npz",
              "cand_huge.npz"]  # fmt: skip

_RECORD = dict(model_key="llama-2-7b", hardware_key="h100-sxm", tp=1, weight_dtype="bf16", input_len=974,
               output_len=100, batching="static", metric="decode_ms_per_token")  # fmt: skip
VALID_FILES = {  # name -> text; what each file-reading option is given on its valid branch
    "hf.json": None,  # written from tests/data/hf_configs.json
    "hw.toml": '[mychip]\nlabel="My chip"\nflops_bf16=1e15\nhbm_bandwidth=4e12\nmemory_gb=96\nsource="s"\n'
    'date_read="2025-01-01"\n',
    "eff.toml": "[efficiency]\nflops = 0.7\nhbm = 0.8\n",
    "trace.csv": "arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.5,300,20\n1.25,50,5\n",
    "points.json": json.dumps([dict(_RECORD, id=f"p{i}", batch=b, measured=5.0 + i) for i, b in enumerate((1, 4, 16))]),
}
VALID_PATH = {  # click parameter name -> names of valid files (absent: the option is only given junk)
    "hf_config": ["hf.json"], "hardware_file": ["hw.toml"], "efficiency_file": ["eff.toml"], "trace": ["trace.csv"],
    "points": ["points.json"], "vectors_file": ["vec.npz"], "candidate_file": ["cand.npz"],
    "plot": ["new.png"], "output": ["new.npz", "new.toml"],
}  # fmt: skip


def _write_vectors(folder) -> None:
    """vec.npz (tiny relu vectors, fp32) and cand.npz (a conforming candidate's outputs)."""
    from refimpl import ffn_backward, ffn_forward  # noqa: PLC0415
    from refimpl.conformance import round_to  # noqa: PLC0415
    from refimpl.conformance.vectors import candidate_outputs  # noqa: PLC0415

    args = ["ref", "vectors", "--op", "relu", "--dtype", "fp32", "--shape", "d_model=4,d_ff=6,n_tokens=3",
            "--seeds", "1", "-o", str(folder / "vec.npz")]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0

    def fn(x, params):
        return round_to(ffn_forward(x, params, "relu")[0], "fp32").astype(np.float32)

    def backward(x, params, dy):
        grads = ffn_backward(dy, ffn_forward(x, params, "relu")[1])
        return {k: round_to(g, "fp32").astype(np.float32) for k, g in grads.items()}

    np.savez(folder / "cand.npz", **candidate_outputs(folder / "vec.npz", fn, backward))
    for name in ("vec", "cand"):  # the same files with their first array's header claiming 10**15 elements
        with zipfile.ZipFile(folder / f"{name}.npz") as z:
            members = {info.filename: z.read(info) for info in z.infolist()}
        first = next(m for m in members if m != "meta.npy")
        (folder / f"{name}_huge.npz").write_bytes(_zip({**members, first: _npy_claiming(HUGE)}))


def build_scratch(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in JUNK_FILES.items():
        (folder / name).write_bytes(data)
    for name in PIPES:
        os.mkfifo(folder / name)
    for name in FOLDERS:
        (folder / name).mkdir()
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "data", "hf_configs.json"), encoding="utf-8") as f:
        (folder / "hf.json").write_text(json.dumps(json.load(f)["llama-3.1-8b"]["config"]))
    for name, text in VALID_FILES.items():
        if text is not None:
            (folder / name).write_text(text)
    _write_vectors(folder)


def snapshot(folder) -> set:
    """(path, kind, size, mtime) of everything under ``folder``: a change means an example wrote there."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st_ = os.lstat(os.path.join(dirpath, name))
            out.add((os.path.relpath(os.path.join(dirpath, name), folder), st_.st_mode, st_.st_size, st_.st_mtime_ns))
    return out


def restore(folder, before: set) -> None:
    """Remove what an example added under ``folder``; rebuild it if the example changed a file it held."""
    now = snapshot(folder)
    if now == before:
        return
    known = {entry[0] for entry in before}
    for rel in sorted((e[0] for e in now if e[0] not in known), key=len):
        path = folder / rel
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    if snapshot(folder) != before:
        shutil.rmtree(folder)
        build_scratch(folder)
        before.clear()
        before.update(snapshot(folder))


# --- values: valid (cheap) and junk, by click type ---
BIG_INT, LONG_INT = str(10**400), "9" * 5000
JUNK_TEXT = ["", " ", "-1", "0", "-0", "1.5", "x", "1e-320", "1e308", "inf", "-inf", "nan", BIG_INT, LONG_INT,
             "-" + BIG_INT, "0x10", "1,,2", "ünïcødé ☃", "\u202e1", "a\nb", "--format", "=", "1..0", "1:0:1",
             "1:100000:1", "uniform:1,0", "lognormal:1e12,9"]  # fmt: skip
JUNK = st.sampled_from(JUNK_TEXT + JUNK_PATHS)
CHEAP_MAX = {"simulate": 16, "seeds": 2, "folds": 3}  # IntRange options whose valid values cost time
VALID_TEXT = {  # STRING parameters (by name, or by command path and name): what they name
    "model": st.sampled_from(sorted(MODELS)),
    "hardware": st.sampled_from(sorted(HARDWARE)),  # serve: one chip, so a valid run stays cheap
    "kv_dtype": st.sampled_from(DTYPES),
    "weight_dtype": st.sampled_from(DTYPES),
    "params": st.sampled_from([p.name for p in PARAMS] + ["flops,hbm"]),
    "shape": st.sampled_from(["d_model=8,d_ff=12,n_tokens=5", "n_heads=2,n_kv_heads=1,head_dim=4,seq_len=5,batch=2",
                              "d_model=8,d_ff=6,n_tokens=4,n_experts=4,top_k=2"]),  # fmt: skip
    "only": st.sampled_from(["ffn relu", "ffn swish"]),  # one op of `ref verify` (the suite takes 25 s)
    ("hardware", "show", "name"): st.sampled_from(sorted(HARDWARE)),
    ("models", "show", "name"): st.sampled_from(sorted(MODELS)),
}
# a command whose defaults are slow starts from these (the drawn arguments follow and may override them)
PINNED = {
    ("serve",): ["--hardware", "h100-sxm", "--tp", "1", "--kv-dtype", "bf16"],
    ("ref", "verify"): ["--only", "ffn relu"],
    ("docs",): ["--check"],  # `glugqa docs` writes the whole docs folder: only --check is fuzzed
}
# `ref verify --only TEXT` runs the ops whose name holds TEXT: " ", "x" or "1.5" is a 25 s valid run, not junk
JUNK_FOR = {"only": st.sampled_from(["zz-no-such-op", "FFN RELU", "ünïcødé ☃", BIG_INT, "--format"])}
NO_VALID = {("docs", "root")}  # a real docs folder takes 4 s to check: --root gets junk only
# `ref vectors` without --shape uses these sizes (113 tokens, 64-wide heads: 3 s an op); tiny ones here
TINY_SIZES = {
    "ffn": {"d_model": 8, "d_ff": 12, "n_tokens": 5},
    "attention": {"n_heads": 2, "n_kv_heads": 1, "head_dim": 4, "seq_len": 5, "batch": 2},
    "moe": {"d_model": 8, "d_ff": 6, "n_tokens": 4, "n_experts": 4, "top_k": 2, "n_shared": 0, "shared_d_ff": None},
}


def valid_value(param: click.Parameter, path: tuple) -> st.SearchStrategy[str]:
    t, name = param.type, param.name
    if (path, name) in NO_VALID or (path[:1], name) in NO_VALID:
        return JUNK
    if isinstance(t, click.Choice):
        return st.sampled_from([str(c) for c in t.choices])
    if isinstance(t, click.Path):
        return st.sampled_from(VALID_PATH.get(name, ["new.out"]))
    if isinstance(t, _Count):  # mostly powers of two: head counts, tp and widths then divide each other
        powers = st.integers(0, 13).map(lambda k: 2**k)
        edges = st.sampled_from([2**20, t.maximum // 2 + 1, t.maximum])
        return st.one_of(powers, powers, st.integers(1, 100), edges).map(str)
    if isinstance(t, _BatchOrMax):
        return st.one_of(st.just("max"), st.integers(1, 256).map(str))
    if isinstance(t, IntList):
        return st.sampled_from(["1", "2", "1,2", "1..4", "8:16:8"])
    if isinstance(t, click.IntRange):
        lo = t.min if t.min is not None else 0
        hi = min(t.max if t.max is not None else 2**31, lo + CHEAP_MAX.get(name, 2**31))
        return st.integers(lo + bool(t.min_open), hi - bool(t.max_open)).map(str)
    if isinstance(t, click.FloatRange):
        lo, hi = t.min if t.min is not None else -1e6, t.max if t.max is not None else 1e6
        return st.floats(lo, hi, exclude_min=t.min_open, exclude_max=t.max_open).map(repr)
    if isinstance(t, BoundedFloat):
        hi = min(t.high, 1e12)
        return st.one_of(st.floats(t.low, hi, exclude_min=t.open_low), st.sampled_from([hi])).map(repr)
    if t is click.INT:
        return st.integers(0, 1000).map(str)
    if t is click.FLOAT:
        return st.floats(-1e6, 1e6).map(repr)
    if (*path, name) in VALID_TEXT or name in VALID_TEXT:
        return VALID_TEXT.get((*path, name), VALID_TEXT.get(name))
    if t.name == "LENGTHS":
        return st.sampled_from(["100", "uniform:10,300", "lognormal:200,0.5", "lognormal:200,0.5,400"])
    if t.name == "RATES":
        return st.sampled_from(["1", "0.5,2"])
    return st.text(max_size=8)


def junk_value(param: click.Parameter) -> st.SearchStrategy[str]:
    if param.name in JUNK_FOR:
        return JUNK_FOR[param.name]
    if isinstance(param.type, click.Choice):
        wrong = [str(c).upper() + "x" for c in param.type.choices][:3]
        return st.one_of(JUNK, st.sampled_from(wrong))
    if isinstance(param.type, click.Path):  # mostly the awkward files
        return st.one_of(st.sampled_from(JUNK_PATHS), JUNK)
    return JUNK


@st.composite
def param_tokens(draw, param: click.Parameter, path: tuple, ok: bool) -> list[str]:
    """The tokens giving ``param`` a valid value (``ok``) or junk: "--opt VALUE", "--opt=VALUE", a flag (junk:
    "--flag=x"), or an argument's value."""
    if isinstance(param, click.Argument):
        return [draw(valid_value(param, path) if ok else junk_value(param))]
    opt = draw(st.sampled_from([*param.opts, *param.secondary_opts]))
    if param.is_flag or param.count:
        return [opt] if ok else [f"{opt}=x"]
    value = draw(valid_value(param, path) if ok else junk_value(param))
    return [f"{opt}={value}"] if opt.startswith("--") and draw(st.integers(0, 7)) == 0 else [opt, value]


MODES = ("valid", "one junk", "mixed")  # every value valid; exactly one junk; three in four valid, more junk


@st.composite
def invocations(draw) -> list[str]:
    """A command path and its arguments. "valid": options of the command only, required ones and arguments
    always given; "one junk": the same with exactly one parameter's value junk (the fault a user makes);
    "mixed": three values in four valid, options of other commands, a missing value, a stray argument."""
    path = draw(st.sampled_from(sorted(TREE)))
    cmd = TREE[path]
    mode = draw(st.sampled_from(MODES))
    mixed = mode == "mixed"
    options = [p for p in cmd.params if isinstance(p, click.Option)]
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    files = [p for p in cmd.params if isinstance(p.type, click.Path)]  # half the single faults: a file
    bad = None
    if mode == "one junk" and cmd.params:
        bad = draw(st.sampled_from(files if files and draw(st.booleans()) else cmd.params))

    def ok(param) -> bool:
        return draw(st.integers(0, 3)) > 0 if mixed else param is not bad

    chosen = [p for p in options if p.required and (not mixed or draw(st.integers(0, 5)))]
    if options:
        chosen += [draw(st.sampled_from(options)) for _ in range(draw(st.integers(0, 5 if mixed else 3)))]
    if bad is not None and isinstance(bad, click.Option) and bad not in chosen:
        chosen.insert(draw(st.integers(0, len(chosen))), bad)
    argv = [*path, *PINNED.get(path, [])]
    for param in chosen:
        if mixed and not draw(st.integers(0, 6)):  # an option of another command (or of this one) with junk
            other = draw(st.sampled_from(ALL_OPTIONS))
            argv += [other, draw(junk_value(OPTION_PARAM[other]))]
        else:
            argv += draw(param_tokens(param, path, ok(param)))
    for arg in arguments:  # given always (accuracy's default is the whole shipped set: 1.4 s)
        argv += draw(param_tokens(arg, path, ok(arg)))
    tail = draw(st.integers(0, 15)) if mixed else 2
    if tail == 0 and options:  # the last option given no value
        argv.append(draw(st.sampled_from(options)).opts[0])
    elif tail == 1:
        argv.append(draw(JUNK))  # a stray argument
    return argv


# Python's inf/nan (f"{x:g}", f"{x:.1%}") and JSON's Infinity/NaN as values ("Infinity Fabric" is a link's name)
NON_FINITE = re.compile(r"(?<![\w.-])[-+]?(inf|nan|NaN)(?!\w)|(?<![\w.-])-?Infinity(?=\s*[,\]}]|\s*$)", re.M)


class Hang(BaseException):
    """Raised by SIGALRM; a BaseException so that no `except Exception` in the code turns it into an error."""


def _alarm(signum, frame):
    raise Hang(f"no answer within {HANG_S} s")


def run_guarded(argv):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        return CliRunner().invoke(cli, argv, prog_name="glugqa")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_invocation(argv):
    """The properties every invocation must have (see the module docstring)."""
    try:
        result = run_guarded(argv)
    except Hang:
        pytest.fail(f"glugqa {argv!r} hung (no answer within {HANG_S} s)")
    shown = f"glugqa {argv!r}\nexit {result.exit_code}\nstdout: {result.stdout[:2000]}\nstderr: {result.stderr}"
    assert result.exit_code in (0, 1, 2), shown
    assert result.exception is None or isinstance(result.exception, SystemExit), (shown, result.exc_info)
    assert "Traceback" not in result.output, shown
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert result.stdout == "" and len(lines) == 1 and lines[0].startswith("glugqa"), shown
        assert ": error: " in lines[0] and "Usage:" not in lines[0], shown  # not a help text squeezed in
    elif not {"-h", "--help"} & set(argv):  # help text is prose, not answers
        answers = result.stdout
        for arg in sorted(argv, key=len, reverse=True):  # what the user typed may come back (`-o inf`: "wrote inf")
            answers = answers.replace(arg, "") if NON_FINITE.search(arg) else answers
        assert not NON_FINITE.search(answers), shown
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    from refimpl.conformance import cli as vectors_cli  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("fuzz") / "cwd"
    build_scratch(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vectors_cli, "SIZES", TINY_SIZES)
            yield folder, snapshot(folder)
    finally:
        os.chdir(cwd)


def command_of(argv) -> str:
    """The command path an argument list starts with ("" for the root group alone)."""
    return " ".join(max((p for p in TREE if tuple(argv[: len(p)]) == p), key=len))


def test_every_invocation_exits_0_1_or_2_with_one_line_errors(scratch):
    """EXAMPLES invocations, derandomized (the same ones on every run). Beyond the properties, the mix is
    checked: at least a tenth exit 0 and a fifth exit 2, and three commands in four ran to the end at least
    once (a grammar that only ever produced usage errors would test little)."""
    folder, before = scratch
    codes: Counter = Counter()  # (command path, exit code) -> runs

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(argv=invocations())
    def run(argv):
        try:
            result = check_invocation(argv)
            codes[command_of(argv), result.exit_code] += 1
        finally:  # undo whatever the example wrote, so every example sees the same files
            os.chdir(folder)
            restore(folder, before)

    run()
    ok = {path for (path, code), n in codes.items() if code == 0}
    assert sum(n for (_, code), n in codes.items() if code == 0) >= EXAMPLES // 10  # not all junk
    assert sum(n for (_, code), n in codes.items() if code == 2) >= EXAMPLES // 5
    assert len(ok) >= len(LEAVES) * 3 // 4, sorted(set(LEAVES) - ok)  # most commands ran to the end


def test_the_grammar_covers_every_command():
    """The walk found the lazy `ref` commands and every command's options (new ones are fuzzed unasked)."""
    assert {("ref", "verify"), ("ref", "vectors"), ("ref", "check"), ("sweep", "rate"), ("plan",)} <= set(TREE)
    assert len(TREE) >= 25 and len(ALL_OPTIONS) >= 80


# --- regressions: what the fuzzer found (each kind fixed where it lives; the tests of its subject hold the rest) ---
WRITERS = {  # a command line writing to PATH, and the option that names it
    "ref vectors": (["ref", "vectors", "--op", "relu", "--dtype", "fp32", "-o", "{}"], "--output"),
    "calibrate": (["calibrate", "points.json", "--folds", "2", "-o", "{}"], "--output"),
    "sweep --plot": (["sweep", "batch", "--values", "1,2", "--plot", "{}"], "--plot"),
    "serve --plot": (["serve", *PINNED[("serve",)], "--plot", "{}"], "--plot"),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_an_output_that_is_not_a_regular_file_is_refused_at_once(scratch, writer):
    """`-o pipe.npz` and `calibrate -o pipe.toml` blocked forever in open(path, "w") (a named pipe with no
    reader); `--plot pipe.png` printed its report, then "File or stream is not seekable", exit 2. Every output
    is checked before the work (refimpl.outfile): one line naming the option, nothing on stdout."""
    args, option = WRITERS[writer]
    folder, before = scratch
    os.symlink(os.devnull, "null.png")  # a device, by a name --plot accepts
    try:
        for path, why in (("pipe.png", "a named pipe"), ("null.png", "a device"), ("missing/x.png", "does not exist")):
            result = check_invocation([a.format(path) for a in args])
            assert result.exit_code == 2 and result.stdout == "", result.output
            assert f"error: {option} '{path}': " in result.stderr and why in result.stderr, result.stderr
    finally:
        os.chdir(folder)
        restore(folder, before)


def test_write_output_refuses_a_pipe_without_blocking(tmp_path):
    from refimpl.conformance.vectors import write_vectors  # noqa: PLC0415
    from refimpl.outfile import write_output  # noqa: PLC0415

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dir").mkdir()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        for name, why in (("pipe", "a named pipe"), ("dir", "a directory"), ("no/x", "does not exist")):
            with pytest.raises(ValueError, match=f"out '{tmp_path / name}': .*{why}"):
                write_output(tmp_path / name, b"x", what="out")
        with pytest.raises(ValueError, match="path .*: a named pipe"):
            write_vectors(tmp_path / "pipe", "relu", dtype="fp32", seeds=(0,), d_model=4, d_ff=4, n_tokens=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    (tmp_path / "f.txt").write_text("an older, longer text")
    write_output(tmp_path / "f.txt", "ünï", what="out")  # replaced, UTF-8
    assert (tmp_path / "f.txt").read_bytes() == "ünï".encode()
