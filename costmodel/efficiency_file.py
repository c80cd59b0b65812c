"""Efficiency profiles as TOML files: what ``glugqa calibrate`` writes and every command reads
(``--efficiency-file``). Format (docs/accuracy.md, "Efficiency profiles")::

    # glugqa efficiency profile
    [efficiency]            # any parameter of costmodel.roofline.PARAMS; absent ones keep their default
    flops = 0.72
    hbm = 0.86
    kv_read_per_query_head = false

    [calibration]           # optional, informational: what produced the profile (never read back as values)
    points = 10
    fitted = ["flops", "hbm"]
    in_sample_error = 0.041

Unknown tables or keys, values of the wrong type (a string or a bool for a number, a number for a setting)
and values outside a parameter's range are errors naming the file and the key.
"""

from __future__ import annotations

from dataclasses import replace

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .roofline import ESTIMATE, PARAM_BY_NAME, PARAMS, SETTINGS, Efficiency
from .textfile import read_text_file

MAX_PROFILE_BYTES = 1 << 20
HEADER = "# glugqa efficiency profile (docs/accuracy.md, 'Efficiency profiles')"


def parse_efficiency(text: str, *, where: str = "efficiency profile", base: Efficiency = ESTIMATE) -> Efficiency:
    """The profile in TOML ``text``: ``base`` with the values of its ``[efficiency]`` table."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise ValueError(f"{where} is not valid TOML: {str(exc)[:200]}") from None
    extra = sorted(set(data) - {"efficiency", "calibration"})
    if extra or "efficiency" not in data:
        raise ValueError(f"{where}: needs an [efficiency] table (and optionally [calibration]); got {sorted(data)}")
    table = data["efficiency"]
    if not isinstance(table, dict):
        raise ValueError(f"{where}: efficiency must be a table")
    if not isinstance(data.get("calibration", {}), dict):
        raise ValueError(f"{where}: calibration must be a table")
    known = [p.name for p in PARAMS] + list(SETTINGS)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown efficiency keys {unknown}; known: {', '.join(known)}")
    try:
        return replace(base, **table)
    except ValueError as exc:  # Efficiency names the key and its range
        raise ValueError(f"{where}: {exc}") from None


def load_efficiency(path, *, base: Efficiency = ESTIMATE) -> Efficiency:
    """The profile of a TOML file (see :func:`parse_efficiency`)."""
    text = read_text_file(path, what="efficiency profile", max_bytes=MAX_PROFILE_BYTES)
    return parse_efficiency(text, where=f"efficiency profile {str(path)!r}", base=base)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} to a profile")


def dump_efficiency(eff: Efficiency, *, calibration: dict | None = None) -> str:
    """TOML text of ``eff`` (every parameter, with its unit and meaning as a comment) and an optional
    ``[calibration]`` table; :func:`parse_efficiency` reads it back to an equal Efficiency."""
    lines = [HEADER, "", "[efficiency]"]
    for name, value in eff.values().items():
        doc = PARAM_BY_NAME[name].doc if name in PARAM_BY_NAME else SETTINGS[name][2]
        unit = PARAM_BY_NAME[name].unit if name in PARAM_BY_NAME else ""
        lines.append(f"{name} = {_toml_value(value)}  # {unit + ': ' if unit else ''}{doc}")
    if calibration:
        lines += ["", "[calibration]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in calibration.items()]
    return "\n".join(lines) + "\n"
