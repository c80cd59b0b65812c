"""Test-vector files: the kit's cases as a portable .npz, and a candidate's results judged from a second .npz.

A vectors file (``write_vectors``) holds, per case (names as "<kind>.s<seed>", e.g. "chunk.s1"):

    input/<case>/<name>     the inputs (x, w_gate, w_up, w_down / q, k, v); float32 holding values exactly
                            representable in the candidate's format (float64 for fp64): cast, don't round
    dout/<case>/<output>    upstream gradients (y / out), same storage, absent when forward-only
    golden/<case>/<tensor>  float64 golden results (y, dx, dw_* / out, lse, dq, dk, dv)
    mask/<case>             attention: (B, T, S) bool, True where query t may attend key s
    meta                    a JSON string: schema, version, op, format, sizes, per-case inputs, tensors,
                            attention spec (causal, scale, kv_lengths, window, softcap), the naive
                            baseline's max and mean errors, and the SHA-256 of everything else

A candidate file holds the candidate's results as ``<case>/<tensor>`` ("chunk.s1/out", "random.s0/dw_up"):
every forward output of every case (``lse`` optional, all cases or none) and, if any gradient, all of them.
Files are read with ``numpy.load(allow_pickle=False)``; a truncated, corrupted, foreign or mismatched file
raises VectorFileError (a ValueError) saying which and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from .cases import AttentionSpec, Case, attention_cases, ffn_cases
from .check import judge_case, run_attention_candidate, run_ffn_candidate
from .dtypes import NumberFormat, number_format, round_to
from .policy import Rule
from .report import ConformanceReport

SCHEMA = "glugqa-conformance-vectors"
VERSION = 1


class VectorFileError(ValueError):
    """A vectors or candidate file that cannot be used: unreadable, corrupted, foreign or mismatched."""


def _checksum(meta: dict, arrays: dict) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _storage(fmt: NumberFormat) -> np.dtype:
    return np.dtype(np.float64 if fmt.name == "fp64" else np.float32)


def _spec_json(spec: AttentionSpec | None) -> dict | None:
    if spec is None:
        return None
    lengths = None if spec.kv_lengths is None else [int(x) for x in spec.kv_lengths]
    return {
        "causal": spec.causal,
        "scale": spec.scale,
        "kv_lengths": lengths,
        "window": spec.window,
        "softcap": spec.softcap,
    }


def write_vectors(path, op: str, *, dtype, seeds=(0, 1, 2), backward: bool = True, **config) -> dict:
    """Generate the cases of ``op`` ("attention" or an FFN variant name) and write them to ``path``.

    ``config`` takes check_ffn's sizes (d_model, d_ff, n_tokens, gelu) or check_attention's (n_heads,
    n_kv_heads, head_dim, seq_len, batch, causal, scale, window, softcap). Returns the file's meta dict.
    """
    fmt = number_format(dtype)
    config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}  # JSON-ready
    try:
        if op == "attention":
            cases = attention_cases(fmt, seeds=seeds, backward=backward, **config)
        else:
            cases = ffn_cases(op, fmt, seeds=seeds, backward=backward, **config)
    except TypeError as exc:  # an unknown or missing size keyword
        raise ValueError(f"config for op {op!r}: {exc}") from None
    store = _storage(fmt)
    arrays, case_meta = {}, []
    for c in cases:
        arrays.update({f"input/{c.name}/{k}": a.astype(store) for k, a in c.inputs.items()})
        arrays.update({f"dout/{c.name}/{k}": a.astype(store) for k, a in c.douts.items()})
        arrays.update({f"golden/{c.name}/{k}": a for k, a in c.golden.items()})
        if c.spec is not None:
            arrays[f"mask/{c.name}"] = c.spec.mask
        case_meta.append(
            {
                "name": c.name,
                "inputs": list(c.inputs),
                "douts": list(c.douts),
                "tensors": list(c.golden),
                "baseline_max": c.baseline_max,
                "baseline_mean": c.baseline_mean,
                "spec": _spec_json(c.spec),
            }
        )
    meta = {
        "schema": SCHEMA,
        "version": VERSION,
        "op": op,
        "dtype": fmt.name,
        "backward": bool(backward),
        "seeds": [int(s) for s in seeds],
        "config": config,
        "cases": case_meta,
    }
    meta["sha256"] = _checksum(meta, arrays)
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return meta


def _read_npz(path, what: str) -> dict:
    """All arrays of an .npz file, read without pickle; VectorFileError on anything unreadable."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise VectorFileError(f"{what} {name}: no such file")
    try:
        with np.load(name, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise VectorFileError(f"{what} {name}: a single .npy array, not an .npz archive")
            return {k: z[k] for k in z.files}
    except VectorFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VectorFileError(f"{what} {name}: unreadable .npz (truncated or corrupted?): {reason}") from None


def _meta(arrays: dict, name: str) -> dict:
    raw = arrays.pop("meta", None)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise VectorFileError(f"vectors file {name}: no 'meta' entry; not a {SCHEMA} file")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise VectorFileError(f"vectors file {name}: 'meta' is not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise VectorFileError(f"vectors file {name}: not a {SCHEMA} file")
    if meta.get("version") != VERSION:
        raise VectorFileError(
            f"vectors file {name}: schema version {meta.get('version')!r}; this reader "
            f"reads version {VERSION}"
        )
    return meta


def _array(arrays: dict, key: str, name: str) -> np.ndarray:
    if key not in arrays:
        raise VectorFileError(f"vectors file {name}: entry {key!r} is missing")
    return arrays[key]


def load_vectors(path) -> tuple[dict, NumberFormat, list[Case]]:
    """Read a vectors file: (meta, format, cases); the checksum and every listed entry are verified."""
    name = os.fspath(path)
    arrays = _read_npz(path, "vectors file")
    meta = _meta(arrays, name)
    stored = meta.pop("sha256", None)
    if stored != _checksum(meta, arrays):
        raise VectorFileError(f"vectors file {name}: checksum mismatch; the file was modified or corrupted")
    try:
        fmt = number_format(meta["dtype"])
        cases = []
        for c in meta["cases"]:
            case = c["name"]
            inputs = {k: _array(arrays, f"input/{case}/{k}", name) for k in c["inputs"]}
            douts = {k: _array(arrays, f"dout/{case}/{k}", name) for k in c["douts"]}
            for key, a in (*inputs.items(), *douts.items()):
                if not np.array_equal(round_to(a, fmt), a.astype(np.float64)):
                    raise VectorFileError(f"vectors file {name}: {case}/{key} holds values not in {fmt.name}")
            golden = {k: _array(arrays, f"golden/{case}/{k}", name) for k in c["tensors"]}
            spec = None
            if c["spec"] is not None:
                s = c["spec"]
                lengths = None if s["kv_lengths"] is None else np.array(s["kv_lengths"], dtype=np.int64)
                spec = AttentionSpec(
                    bool(s["causal"]),
                    float(s["scale"]),
                    lengths,
                    _array(arrays, f"mask/{case}", name),
                    s["window"],
                    s["softcap"],
                )
            cases.append(
                Case(
                    case,
                    {k: a.astype(fmt.dtype) for k, a in inputs.items()},
                    {k: a.astype(fmt.dtype) for k, a in douts.items()},
                    golden,
                    dict(c["baseline_max"]),
                    dict(c["baseline_mean"]),
                    spec,
                )
            )
    except (KeyError, TypeError) as exc:
        raise VectorFileError(f"vectors file {name}: malformed meta ({type(exc).__name__}: {exc})") from None
    return meta, fmt, cases


def load_candidate(path, cases: list[Case]) -> dict:
    """Read a candidate file written for ``cases``: {case name: {tensor: float64 array}}."""
    name = os.fspath(path)
    arrays = _read_npz(path, "candidate file")
    known = {f"{c.name}/{t}" for c in cases for t in c.golden}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise VectorFileError(
            f"candidate file {name}: entries {unknown[:3]} match no case/tensor of the vectors "
            f"file (expected names like {sorted(known)[0]!r}); written for other vectors?"
        )
    for optional in ("lse", "grad"):
        wanted = [k for k in known if _is_optional(k, optional)]
        present = [k for k in wanted if k in arrays]
        if present and len(present) != len(wanted):
            missing = sorted(set(wanted) - set(present))
            raise VectorFileError(
                f"candidate file {name}: has some {optional} entries but lacks {missing[:3]}"
            )
    missing = sorted(
        k for k in known if not _is_optional(k, "lse") and not _is_optional(k, "grad") and k not in arrays
    )
    if missing:
        raise VectorFileError(f"candidate file {name}: missing {missing[:3]} ({len(missing)} entries in all)")
    outputs = {}
    for c in cases:
        outputs[c.name] = {}
        for t, gold in c.golden.items():
            key = f"{c.name}/{t}"
            if key not in arrays:
                continue
            a = arrays[key]
            if a.dtype.kind != "f" and not a.dtype.name.startswith(("bfloat16", "float8")):
                raise VectorFileError(f"candidate file {name}: {key} has dtype {a.dtype}; expected floats")
            if a.shape != gold.shape:
                raise VectorFileError(
                    f"candidate file {name}: {key} has shape {a.shape}; expected {gold.shape}"
                )
            outputs[c.name][t] = a.astype(np.float64)
    return outputs


def _is_optional(key: str, what: str) -> bool:
    tensor = key.rsplit("/", 1)[1]
    return tensor == "lse" if what == "lse" else tensor.startswith("d")


def check_vectors(vectors_path, candidate_path, *, rule: Rule | None = None) -> ConformanceReport:
    """Judge a candidate file against a vectors file with the rule (default: the baseline rule)."""
    meta, fmt, cases = load_vectors(vectors_path)
    outputs = load_candidate(candidate_path, cases)
    rule = Rule() if rule is None else rule
    results = []
    for c in cases:
        results += judge_case(c, outputs[c.name], fmt, rule)
    sizes = ", ".join(f"{k}={v}" for k, v in meta["config"].items())
    subject = f"{meta['op']} from {os.path.basename(os.fspath(vectors_path))} ({sizes})"
    return ConformanceReport(subject, fmt, rule, tuple(results))


def candidate_outputs(vectors_path, fn: Callable, backward: Callable | None = None) -> dict:
    """Run a Python candidate (check_ffn / check_attention's calling convention) on a vectors file's cases.

    Returns {"<case>/<tensor>": array}, ready for ``numpy.savez(candidate_path, **outputs)``.
    """
    meta, _, cases = load_vectors(vectors_path)
    run = run_attention_candidate if meta["op"] == "attention" else run_ffn_candidate
    outputs = {}
    for c in cases:
        use_backward = backward if c.douts else None
        outputs.update({f"{c.name}/{t}": a for t, a in run(c, fn, use_backward).items()})
    return outputs
