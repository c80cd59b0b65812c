"""The meta of a vectors file, written and read back field by field (vectors.py describes the file).

Reading trusts nothing, even under a valid checksum (anyone can recompute one): every field has its type
checked, every listed array must exist with a floating dtype, the inputs must hold the format's values and
pass the reference's own parameter checks, and every golden tensor and upstream gradient must have the
shape of what it belongs to. Errors are VectorFileError messages without the file name (the caller adds it).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import is_float_dtype
from ..activations import GELU_APPROXIMATIONS
from ..attention import check_options, check_qkv
from ..ffn import check_ffn_params, ffn_options
from ..masks import check_kv_lengths
from ..moe import check_moe_params
from ..router import check_routing
from ..variants import get_variant
from .cases import AttentionSpec, Case, FFNSpec, MoESpec
from .cases_moe import nest
from .dtypes import NumberFormat, number_format, round_to
from .npzfile import VectorFileError


def _json_error(x) -> float | None:
    """A baseline error for JSON: None where it is not finite (JSON has no infinity)."""
    return float(x) if math.isfinite(x) else None


def _spec_json(spec) -> dict:
    if isinstance(spec, FFNSpec):
        return {"kind": "ffn", "variant": spec.variant, "gelu": spec.gelu, "options": dict(spec.options)}
    if isinstance(spec, MoESpec):
        return {"kind": "moe", "variant": spec.variant, "top_k": spec.top_k, "routing": spec.routing,
                "normalize": spec.normalize, "gelu": spec.gelu, "options": dict(spec.options)}  # fmt: skip
    lengths = None if spec.kv_lengths is None else [int(x) for x in spec.kv_lengths]
    return {"kind": "attention", "causal": spec.causal, "scale": spec.scale, "kv_lengths": lengths,
            "window": spec.window, "softcap": spec.softcap, "sinks": spec.sinks is not None}  # fmt: skip


def case_meta(c: Case) -> dict:
    """One case's entry of the meta."""
    return {"name": c.name, "inputs": list(c.inputs), "douts": list(c.douts), "tensors": list(c.golden),
            "baseline_max": {k: _json_error(x) for k, x in c.baseline_max.items()},
            "baseline_mean": {k: _json_error(x) for k, x in c.baseline_mean.items()},
            "spec": _spec_json(c.spec)}  # fmt: skip


def _field(d: dict, key: str, kinds, where: str, *, optional: bool = False):
    """d[key], checked to be one of ``kinds`` (bool is never an int); VectorFileError otherwise."""
    if key not in d:
        if optional:
            return None
        raise VectorFileError(f"malformed meta: {where} has no {key!r}")
    value = d[key]
    if optional and value is None:
        return None
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise VectorFileError(f"malformed meta: {where}[{key!r}] must be {names}; got {value!r:.60}")
    return value


def _names(d: dict, key: str, where: str) -> list:
    names = _field(d, key, (list,), where)
    if not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise VectorFileError(f"malformed meta: {where}[{key!r}] must list array names; got {names!r:.60}")
    return names


def check_meta(meta: dict, ops: tuple) -> NumberFormat:
    """The file-level fields; returns the format."""
    op = _field(meta, "op", (str,), "meta")
    if op not in ops or (op == "moe" and meta["version"] < 2):
        raise VectorFileError(f"malformed meta: op must be one of {', '.join(ops)}; got {op!r}")
    try:
        fmt = number_format(_field(meta, "dtype", (str,), "meta"))
    except ValueError as exc:
        raise VectorFileError(f"malformed meta: {exc}") from None
    _field(meta, "backward", (bool,), "meta")
    seeds = _field(meta, "seeds", (list,), "meta")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise VectorFileError(f"malformed meta: meta['seeds'] must list non-negative ints; got {seeds!r:.60}")
    _field(meta, "config", (dict,), "meta")
    cases = _field(meta, "cases", (list,), "meta")
    if not cases or not all(isinstance(c, dict) for c in cases):
        raise VectorFileError("malformed meta: meta['cases'] must be a non-empty list of cases; nothing to check")
    return fmt


def _errors(c: dict, key: str, tensors: list, where: str) -> dict:
    errors = _field(c, key, (dict,), where)
    if sorted(errors) != sorted(tensors):
        raise VectorFileError(f"malformed meta: {where}[{key!r}] must have one entry per tensor {tensors}")
    out = {}
    for t, x in errors.items():
        if x is not None and not (isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf):
            raise VectorFileError(f"malformed meta: {where}[{key!r}][{t!r}] must be a non-negative number or null")
        out[t] = math.inf if x is None else float(x)
    return out


def _options(s: dict, v, where: str) -> tuple:
    options = _field(s, "options", (dict,), where)
    try:
        return tuple(ffn_options(v, **{k: options[k] for k in options}).items())
    except (ValueError, TypeError) as exc:
        raise VectorFileError(f"malformed meta: {where}['options']: {exc}") from None


def _spec(s, meta: dict, where: str, inputs: dict, arrays: dict, name: str):
    """The case's spec, validated against its inputs (ValueError from the reference's checks is re-raised)."""
    if s is None and meta["version"] == 1 and meta["op"] != "attention":  # version 1 FFN: from the config
        s = {"kind": "ffn", "variant": meta["op"], "gelu": meta["config"].get("gelu", "erf"), "options": {}}
    if not isinstance(s, dict):
        raise VectorFileError(f"malformed meta: {where}['spec'] must be an object; got {s!r:.60}")
    kind = s.get("kind", "attention" if meta["version"] == 1 else None)
    expected = {"attention": "attention", "moe": "moe"}.get(meta["op"], "ffn")
    if kind != expected:
        raise VectorFileError(f"malformed meta: {where}['spec']['kind'] must be {expected!r}; got {kind!r}")
    if kind == "attention":
        q, k, v = check_qkv(inputs.get("q"), inputs.get("k"), inputs.get("v"))
        causal, window, softcap, scale = check_options(s.get("causal"), s.get("window"), s.get("softcap"),
                                                       s.get("scale"), q.shape[3])  # fmt: skip
        lengths = s.get("kv_lengths")
        lengths = check_kv_lengths(None if lengths is None else np.array(lengths), q.shape[0], k.shape[1])
        mask = arrays.get(f"mask/{name}")
        if mask is None or mask.dtype != bool or mask.shape != (q.shape[0], q.shape[1], k.shape[1]):
            raise VectorFileError(f"entry 'mask/{name}' must be a (B, T, S) bool array")
        has_sinks = s.get("sinks", False)
        if has_sinks not in (True, False) or has_sinks != ("sinks" in inputs) or (
                has_sinks and inputs["sinks"].shape != q.shape[2:3]):  # fmt: skip
            raise VectorFileError(f"malformed meta: {where}: 'sinks' must be true exactly when the case has an "
                                  "input 'sinks' of shape (N,)")  # fmt: skip
        return AttentionSpec(causal, scale, lengths, mask, window, softcap, inputs.get("sinks"))
    v = get_variant(_field(s, "variant", (str,), where))
    gelu = _field(s, "gelu", (str,), where)
    if gelu not in GELU_APPROXIMATIONS:
        raise VectorFileError(f"malformed meta: {where}['gelu'] must be one of {GELU_APPROXIMATIONS}")
    options = _options(s, v, where)
    x = inputs.get("x")
    if x is None or x.ndim != 3:
        raise VectorFileError(f"input 'x' of case {name} must be (B, T, D)")
    params = nest({k: a for k, a in inputs.items() if k != "x"})
    if kind == "ffn":
        check_ffn_params(params, v, x.shape[-1])
        return FFNSpec(v.name, gelu, options)
    p = check_moe_params(params, v, x.shape[-1])
    top_k, routing = _field(s, "top_k", (int,), where), _field(s, "routing", (str,), where)
    normalize = _field(s, "normalize", (bool,), where)
    check_routing(p["w_router"].shape[1], top_k, routing, normalize)
    return MoESpec(v.name, top_k, routing, normalize, gelu, options)


def _shape_of(tensor: str, inputs: dict, main: str, where: str) -> tuple:
    if tensor == main:
        return inputs["q" if main == "out" else "x"].shape
    if tensor == "lse" and main == "out":
        return inputs["q"].shape[:3]
    if tensor.startswith("d") and tensor[1:] in inputs:
        return inputs[tensor[1:]].shape
    raise VectorFileError(f"malformed meta: {where} lists tensor {tensor!r}, which is neither an output nor the "
                          "gradient of an input")  # fmt: skip


def case_from_meta(c: dict, meta: dict, fmt: NumberFormat, arrays: dict) -> Case:
    """One case, its meta entry and arrays checked (module docstring)."""
    name = _field(c, "name", (str,), "a case")
    where = f"case {name!r}"
    listed = {part: _names(c, part, where) for part in ("inputs", "douts", "tensors")}
    found = {}
    for part, prefix in (("inputs", "input"), ("douts", "dout"), ("tensors", "golden")):
        found[part] = {}
        for k in listed[part]:
            a = arrays.get(f"{prefix}/{name}/{k}")
            if a is None:
                raise VectorFileError(f"entry '{prefix}/{name}/{k}' is missing")
            if not is_float_dtype(a.dtype) or (part == "tensors" and a.dtype != np.float64):
                raise VectorFileError(f"entry '{prefix}/{name}/{k}' has dtype {a.dtype}; expected floats")
            if part != "tensors" and not np.array_equal(round_to(a, fmt), a.astype(np.float64)):
                raise VectorFileError(f"entry '{prefix}/{name}/{k}' holds values not in {fmt.name}")
            found[part][k] = a
    inputs = {k: a.astype(fmt.dtype) for k, a in found["inputs"].items()}
    try:
        spec = _spec(c.get("spec"), meta, where, {k: a.astype(np.float64) for k, a in found["inputs"].items()},
                     arrays, name)  # fmt: skip
    except VectorFileError:
        raise
    except ValueError as exc:
        raise VectorFileError(f"{where}: {str(exc).splitlines()[0]}") from None
    if isinstance(spec, AttentionSpec) and spec.sinks is not None:
        spec = spec._replace(sinks=inputs["sinks"])  # in the candidate's dtype
    main = "out" if isinstance(spec, AttentionSpec) else "y"
    for t, a in (*found["tensors"].items(), *found["douts"].items()):
        if a.shape != _shape_of(t, inputs, main, where):
            raise VectorFileError(f"{where}: {t} has shape {a.shape}; expected {_shape_of(t, inputs, main, where)}")
    if main not in found["tensors"] or sorted(found["douts"]) not in ([], [main]):
        raise VectorFileError(f"malformed meta: {where} must list the output {main!r} (and its dout, if any)")
    douts = {k: a.astype(fmt.dtype) for k, a in found["douts"].items()}
    baseline_max = _errors(c, "baseline_max", listed["tensors"], where)
    baseline_mean = _errors(c, "baseline_mean", listed["tensors"], where)
    return Case(name, inputs, douts, found["tensors"], baseline_max, baseline_mean, spec)
