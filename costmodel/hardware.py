"""Accelerators: dense peak FLOP/s, HBM bandwidth, memory and link bandwidth, each with its source.

The presets live in ``costmodel/data/hardware.toml`` (see its header for the conventions: dense peaks,
SI units, per-direction links, GB vs GiB explicit). Users load their own file with :func:`load_hardware`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .config import unknown_name

GB = 10**9
GIB = 2**30

# compute dtype -> the TOML key of its peak (fp16 runs at the bf16 rate on every chip listed)
_PEAK_KEYS = {"bf16": "flops_bf16", "fp16": "flops_bf16", "fp8": "flops_fp8", "int8": "ops_int8"}
_REQUIRED = ("label", "flops_bf16", "hbm_bandwidth", "source", "date_read")
_OPTIONAL = ("flops_fp8", "ops_int8", "link", "link_bandwidth", "memory_gb", "memory_gib")


@dataclass(frozen=True)
class Hardware:
    """One accelerator. SI units: FLOP/s, bytes/s (links per direction), bytes."""

    name: str
    label: str
    peak_flops: dict  # compute dtype ("bf16", "fp16", "fp8", "int8") -> dense FLOP/s (OP/s for int8)
    hbm_bandwidth: float  # bytes/s
    memory_bytes: int
    link: str
    link_bandwidth: float | None  # bytes/s per direction; None when the vendor gives no per-direction figure
    source: str
    date_read: str

    def flops_for(self, dtype: str) -> float:
        """Dense peak for ``dtype``; ValueError naming compute_dtype when this chip has no such figure."""
        if dtype not in self.peak_flops:
            raise ValueError(
                f"compute_dtype {dtype!r} has no peak on {self.name}; available: {', '.join(self.peak_flops)}"
            )
        return self.peak_flops[dtype]

    @property
    def ridge_point(self) -> float:
        """bf16 FLOP per HBM byte at which a kernel turns compute-bound (Williams et al. 2009, roofline)."""
        return self.peak_flops["bf16"] / self.hbm_bandwidth


def _positive(name: str, chip: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"hardware {chip!r}: {name} must be a positive number; got {value!r}")
    return float(value)


def hardware_from_dict(name: str, d: dict) -> Hardware:
    """Build one :class:`Hardware` from a TOML table; ValueError naming the chip and the field."""
    if not isinstance(d, dict):
        raise ValueError(f"hardware {name!r} must be a table of fields; got {type(d).__name__}")
    missing = [k for k in _REQUIRED if k not in d]
    extra = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if missing:
        raise ValueError(f"hardware {name!r} is missing {missing}")
    if extra:
        raise ValueError(
            f"hardware {name!r} has unknown fields {extra}; allowed: {sorted(_REQUIRED + _OPTIONAL)}"
        )
    if ("memory_gb" in d) == ("memory_gib" in d):
        raise ValueError(f"hardware {name!r} needs exactly one of memory_gb or memory_gib")
    if "memory_gb" in d:
        memory = round(_positive("memory_gb", name, d["memory_gb"]) * GB)
    else:
        memory = round(_positive("memory_gib", name, d["memory_gib"]) * GIB)
    peaks = {}
    for dtype, key in _PEAK_KEYS.items():
        if key in d:
            peaks[dtype] = _positive(key, name, d[key])
    link_bw = d.get("link_bandwidth")
    return Hardware(
        name=name,
        label=str(d["label"]),
        peak_flops=peaks,
        hbm_bandwidth=_positive("hbm_bandwidth", name, d["hbm_bandwidth"]),
        memory_bytes=memory,
        link=str(d.get("link", "")),
        link_bandwidth=None if link_bw is None else _positive("link_bandwidth", name, link_bw),
        source=str(d["source"]),
        date_read=str(d["date_read"]),
    )


def load_hardware(path) -> dict[str, Hardware]:
    """Chips of a TOML file (one table per chip, fields as in costmodel/data/hardware.toml)."""
    try:
        with open(Path(path), "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"path: cannot read hardware file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"path: {str(path)!r} is not valid TOML: {exc}") from None
    return {name: hardware_from_dict(name, d) for name, d in data.items()}


def _load_presets() -> dict[str, Hardware]:
    text = resources.files("costmodel").joinpath("data/hardware.toml").read_text(encoding="utf-8")
    return {name: hardware_from_dict(name, d) for name, d in tomllib.loads(text).items()}


HARDWARE: dict[str, Hardware] = _load_presets()


def get_hardware(hw) -> Hardware:
    """A :class:`Hardware` as given, or the preset of that name (close names suggested otherwise)."""
    if isinstance(hw, Hardware):
        return hw
    if isinstance(hw, str) and hw in HARDWARE:
        return HARDWARE[hw]
    raise unknown_name("hardware", hw, HARDWARE)
