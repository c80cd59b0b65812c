"""Test-vector files: the kit's cases as a portable .npz, and a candidate's results judged from a second .npz.

A vectors file (``write_vectors``) holds, per case (names as "<kind>.s<seed>", e.g. "chunk.s1"):

    input/<case>/<name>     the inputs (x, w_*, b_* / q, k, v, sinks / x, w_router, ..., shared.w_up);
                            float32 holding values exactly representable in the candidate's format (float64
                            for fp64): cast, don't round
    dout/<case>/<output>    upstream gradients (y / out), same storage, absent when forward-only
    golden/<case>/<tensor>  float64 golden results (y, dx, dw_* / out, lse, dq, dk, dv, dsinks / ...)
    mask/<case>             attention: (B, T, S) bool, True where query t may attend key s
    meta                    a JSON string: schema, version, op, format, sizes, per-case inputs, tensors and
                            spec (FFN: variant, gelu, options; attention: causal, scale, kv_lengths, window,
                            softcap, sinks; MoE: variant, top_k, routing, normalize, gelu, options), the naive
                            baseline's max and mean errors (null where the baseline overflowed), and the
                            SHA-256 of everything else

Schema version 2 (this writer) added MoE, sinks, swiglu_oss's options and FFN biases; version 1 files
(paper FFN variants and attention) are still read, every new field taking its old meaning. Other versions
are refused, saying which versions this reader knows.

A candidate file holds the candidate's results as ``<case>/<tensor>`` ("chunk.s1/out", "random.s0/dw_up"):
every forward output of every case (``lse`` optional, all cases or none) and, if any gradient, all of them.
Both files are read by npzfile.read_npz (no pickle, shapes checked against sizes before allocating) and
their meta checked field by field; an unusable file raises VectorFileError (a ValueError) saying which
file, what is wrong, and what it should be.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable

import numpy as np

from ..outfile import check_output, write_output
from ..variants import FFN_VARIANTS
from .cases import ffn_cases, pool_baselines
from .cases_attention import attention_cases
from .cases_moe import moe_cases
from .check import judge_case, report_of, run_attention_candidate, run_ffn_candidate
from .check_moe import run_moe_candidate
from .dtypes import NumberFormat, number_format
from .npzfile import VectorFileError, read_npz
from .policy import Rule
from .report import ConformanceReport
from .vectors_meta import case_from_meta, case_meta, check_meta

SCHEMA = "glugqa-conformance-vectors"
VERSION = 2
READS = (1, 2)  # schema versions this reader knows
OPS = ("attention", "moe", *FFN_VARIANTS)
_VECTORS = "an .npz of test vectors written by 'glugqa ref vectors' (refimpl.conformance.vectors.write_vectors)"
_CANDIDATE = "an .npz of the candidate's results named <case>/<tensor> (numpy.savez)"

__all__ = ["OPS", "SCHEMA", "VERSION", "VectorFileError", "candidate_outputs", "check_vectors", "load_candidate",
           "load_vectors", "write_vectors"]  # fmt: skip


def _checksum(meta: dict, arrays: dict) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _storage(fmt: NumberFormat) -> np.dtype:
    return np.dtype(np.float64 if fmt.name == "fp64" else np.float32)


def make_cases(op: str, fmt: NumberFormat, seeds, backward: bool, config: dict) -> list:
    """The cases of ``op`` ("attention", "moe" with config["variant"], or an FFN variant) for ``config``."""
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}; got {op!r}")
    config = dict(config)
    try:
        if op == "attention":
            return attention_cases(fmt, seeds=seeds, backward=backward, **config)
        if op == "moe":
            return moe_cases(config.pop("variant", None), fmt, seeds=seeds, backward=backward, **config)
        return ffn_cases(op, fmt, seeds=seeds, backward=backward, **config)
    except TypeError as exc:  # an unknown or missing size keyword
        raise ValueError(f"config for op {op!r}: {exc}") from None


def write_vectors(path, op: str, *, dtype, seeds=(0, 1, 2), backward: bool = True, **config) -> dict:
    """Generate the cases of ``op`` ("attention", "moe" or an FFN variant name) and write them to ``path``.

    ``config`` takes check_ffn's sizes and options (d_model, d_ff, n_tokens, gelu, bias, alpha, limit),
    check_attention's (n_heads, n_kv_heads, head_dim, seq_len, batch, causal, scale, window, softcap, sinks)
    or check_moe's (variant, n_experts, top_k, routing, normalize, d_model, d_ff, n_tokens, gelu, alpha,
    limit, bias, router_bias, n_shared, shared_d_ff, shared_gate). Returns the file's meta dict.
    """
    check_output(path, what="path")  # before the cases are made: never a pipe, a device or a missing folder
    fmt = number_format(dtype)
    config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}  # JSON-ready
    cases = make_cases(op, fmt, seeds, backward, config)
    store = _storage(fmt)
    arrays = {}
    for c in cases:
        arrays.update({f"input/{c.name}/{k}": a.astype(store) for k, a in c.inputs.items()})
        arrays.update({f"dout/{c.name}/{k}": a.astype(store) for k, a in c.douts.items()})
        arrays.update({f"golden/{c.name}/{k}": a for k, a in c.golden.items()})
        if hasattr(c.spec, "mask"):
            arrays[f"mask/{c.name}"] = c.spec.mask
    meta = {"schema": SCHEMA, "version": VERSION, "op": op, "dtype": fmt.name, "backward": bool(backward),
            "seeds": [int(s) for s in seeds], "config": config, "cases": [case_meta(c) for c in cases]}  # fmt: skip
    meta["sha256"] = _checksum(meta, arrays)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    write_output(path, buf.getvalue(), what="path")
    return meta


def _meta(arrays: dict, name: str) -> dict:
    raw = arrays.pop("meta", None)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise VectorFileError(f"vectors file {name}: no 'meta' entry; not {_VECTORS}")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise VectorFileError(f"vectors file {name}: 'meta' is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise VectorFileError(f"vectors file {name}: 'meta' is nested too deeply to be a vectors file") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise VectorFileError(f"vectors file {name}: not a {SCHEMA} file; expected {_VECTORS}")
    version = meta.get("version")
    if isinstance(version, bool) or version not in READS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        raise VectorFileError(f"vectors file {name}: schema version {version!r}; this reader reads versions "
                              f"{', '.join(map(str, READS))}" + (" (update glugqa)" if newer else ""))  # fmt: skip
    return meta


def load_vectors(path) -> tuple[dict, NumberFormat, list]:
    """Read a vectors file: (meta, format, cases); the checksum, the meta and every listed entry are verified."""
    arrays = read_npz(path, "vectors file", _VECTORS)
    name = os.fspath(path)
    meta = _meta(arrays, name)
    stored = meta.pop("sha256", None)
    if stored != _checksum(meta, arrays):
        raise VectorFileError(f"vectors file {name}: checksum mismatch; the file was modified or corrupted")
    try:
        fmt = check_meta(meta, OPS)
        cases = [case_from_meta(c, meta, fmt, arrays) for c in meta["cases"]]
    except VectorFileError as exc:
        raise VectorFileError(f"vectors file {name}: {exc}") from None
    return meta, fmt, cases


def load_candidate(path, cases: list) -> dict:
    """Read a candidate file written for ``cases``: {case name: {tensor: float64 array}}."""
    name = os.fspath(path)
    arrays = read_npz(path, "candidate file", _CANDIDATE)
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
            raise VectorFileError(f"candidate file {name}: has some {optional} entries but lacks {missing[:3]}")
    missing = sorted(k for k in known if not _is_optional(k, "lse") and not _is_optional(k, "grad") and k not in arrays)
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
            if a.dtype.kind != "f":
                raise VectorFileError(f"candidate file {name}: {key} has dtype {a.dtype}; expected floats "
                                      "(float16/32/64; write bfloat16 and fp8 results as float32)")  # fmt: skip
            if a.shape != gold.shape:
                raise VectorFileError(f"candidate file {name}: {key} has shape {a.shape}; expected {gold.shape}")
            outputs[c.name][t] = a.astype(np.float64)
    return outputs


def _is_optional(key: str, what: str) -> bool:
    tensor = key.rsplit("/", 1)[1]
    return tensor == "lse" if what == "lse" else tensor.startswith("d")


def check_vectors(vectors_path, candidate_path, *, rule: Rule | None = None) -> ConformanceReport:
    """Judge a candidate file against a vectors file with the rule (default: the baseline rule); a failing
    report carries the diagnosis (diagnosis.py), computed from the two files alone."""
    if rule is not None and not isinstance(rule, Rule):
        raise ValueError(f"rule must be a refimpl.conformance.Rule; got {type(rule).__name__}")
    meta, fmt, cases = load_vectors(vectors_path)
    outputs = load_candidate(candidate_path, cases)
    results = []
    for c in pool_baselines(cases):
        results += judge_case(c, outputs[c.name], fmt, rule or Rule())
    sizes = ", ".join(f"{k}={v}" for k, v in meta["config"].items())
    subject = f"{meta['op']} from {os.path.basename(os.fspath(vectors_path))} ({sizes})"
    return report_of(subject, cases, outputs, tuple(results), fmt, rule or Rule())


def candidate_outputs(vectors_path, fn: Callable, backward: Callable | None = None) -> dict:
    """Run a Python candidate (check_ffn / check_attention / check_moe's calling convention) on a vectors file's
    cases. Returns {"<case>/<tensor>": array}, ready for ``numpy.savez(candidate_path, **outputs)``."""
    meta, _, cases = load_vectors(vectors_path)
    run = {"attention": run_attention_candidate, "moe": run_moe_candidate}.get(meta["op"], run_ffn_candidate)
    outputs = {}
    for c in cases:
        use_backward = backward if c.douts else None
        outputs.update({f"{c.name}/{t}": a for t, a in run(c, fn, use_backward).items()})
    return outputs

