"""Accelerators: dense peak FLOP/s, HBM bandwidth, memory, links within a node and the network between nodes,
and measured facts about what a part achieves, each with its source.

The presets live in ``costmodel/data/hardware.toml`` (see its header for the conventions: dense peaks,
SI units, per-direction links, GB vs GiB explicit). Users load their own file with :func:`load_hardware`.
Every number is checked against a physical range (a real number, finite, not a bool), so no time the cost
model derives from a chip is infinite or NaN; a file that is not a small UTF-8 regular file is refused
before it is read (``costmodel.accuracy.files.read_text_file``: a named pipe never blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .checks import is_int, number_in, show, unknown_name
from .textfile import read_text_file

GB = 10**9
GIB = 2**30
MAX_HARDWARE_FILE_BYTES = 1 << 20

# compute dtype -> the TOML key of its peak (fp16 runs at the bf16 rate on every chip listed)
_PEAK_KEYS = {"bf16": "flops_bf16", "fp16": "flops_bf16", "fp8": "flops_fp8", "int8": "ops_int8"}
_REQUIRED = ("label", "flops_bf16", "hbm_bandwidth", "source", "date_read")
_TEXT = ("label", "source", "date_read", "link", "network")
# key -> (lowest, highest accepted, unit): physical bounds, wide enough for any real part
_RANGES = {
    "flops_bf16": (1e9, 1e18, "FLOP/s"),
    "flops_fp8": (1e9, 1e18, "FLOP/s"),
    "ops_int8": (1e9, 1e18, "OP/s"),
    "hbm_bandwidth": (1e9, 1e15, "B/s"),
    "memory_gb": (0.001, 1e6, "GB"),
    "memory_gib": (0.001, 1e6, "GiB"),
    "link_bandwidth": (1e6, 1e14, "B/s"),
    "link_latency_s": (0.0, 1e-3, "s"),
    "network_bandwidth": (1e6, 1e14, "B/s"),
    "network_latency_s": (0.0, 1e-3, "s"),
    "hbm_efficiency_factor": (0.05, 2.0, ""),
    "flops_efficiency_factor": (0.05, 2.0, ""),
}
MAX_DEVICES_PER_NODE = 1 << 16
MAX_COMPUTE_UNITS = 1 << 20
_FLAGS = ("link_direct",)
_OPTIONAL = tuple(k for k in _RANGES if k not in _REQUIRED) + (
    "link", "network", "devices_per_node", "compute_units", *_FLAGS,
)  # fmt: skip


@dataclass(frozen=True)
class Hardware:
    """One accelerator. SI units: FLOP/s, bytes/s (links per direction, per device), bytes, seconds.

    ``devices_per_node``: devices one node's link (NVLink, Infinity Fabric, PCIe) joins; tensor parallelism
    beyond it runs its collectives over the network (None: no limit stated). ``link_latency_s`` /
    ``network_latency_s``: the latency of one step of a ring collective on that link. The efficiency factors
    scale the software efficiencies on this part (1: it reaches what the reference NVIDIA parts reach)."""

    name: str
    label: str
    peak_flops: dict  # compute dtype ("bf16", "fp16", "fp8", "int8") -> dense FLOP/s (OP/s for int8)
    hbm_bandwidth: float  # bytes/s
    memory_bytes: int
    link: str
    link_bandwidth: float | None  # bytes/s per direction; None when the vendor gives no per-direction figure
    source: str
    date_read: str
    devices_per_node: int | None = None
    link_latency_s: float = 0.0
    network: str = ""
    network_bandwidth: float | None = None  # bytes/s per direction per device between nodes
    network_latency_s: float = 0.0
    hbm_efficiency_factor: float = 1.0
    flops_efficiency_factor: float = 1.0
    compute_units: int | None = None  # SMs (AMD: CUs) a GEMM's tiles spread over; None: no tile quantization
    link_direct: bool = False  # the link joins every pair of a node's devices in one hop (NVSwitch, IF mesh)

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


def _number(key: str, chip: str, value) -> float:
    lo, hi, unit = _RANGES[key]
    return number_in(f"hardware {chip!r}: {key}", value, lo, hi, unit=unit)


def _count(d: dict, key: str, chip: str, most: int) -> int | None:
    value = d.get(key)
    if value is not None and (not is_int(value) or not 1 <= value <= most):
        raise ValueError(f"hardware {chip!r}: {key} must be an integer from 1 to {most}; got {show(value)}")
    return value


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
    for key in _TEXT:
        if key in d and not isinstance(d[key], str):
            raise ValueError(f"hardware {name!r}: {key} must be a string; got {show(d[key])}")
    for key in _FLAGS:
        if key in d and not isinstance(d[key], bool):
            raise ValueError(f"hardware {name!r}: {key} must be true or false; got {show(d[key])}")
    if ("memory_gb" in d) == ("memory_gib" in d):
        raise ValueError(f"hardware {name!r} needs exactly one of memory_gb or memory_gib")
    unit_key = "memory_gb" if "memory_gb" in d else "memory_gib"
    memory = round(_number(unit_key, name, d[unit_key]) * (GB if unit_key == "memory_gb" else GIB))
    num = {k: _number(k, name, d[k]) for k in _RANGES if k in d and k not in ("memory_gb", "memory_gib")}
    peaks = {dtype: num[key] for dtype, key in _PEAK_KEYS.items() if key in num}
    per_node = _count(d, "devices_per_node", name, MAX_DEVICES_PER_NODE)
    units = _count(d, "compute_units", name, MAX_COMPUTE_UNITS)
    return Hardware(
        name=name, label=d["label"], peak_flops=peaks, hbm_bandwidth=num["hbm_bandwidth"], memory_bytes=memory,
        link=d.get("link", ""), link_bandwidth=num.get("link_bandwidth"), source=d["source"],
        date_read=d["date_read"], devices_per_node=per_node, link_latency_s=num.get("link_latency_s", 0.0),
        network=d.get("network", ""), network_bandwidth=num.get("network_bandwidth"),
        network_latency_s=num.get("network_latency_s", 0.0),
        hbm_efficiency_factor=num.get("hbm_efficiency_factor", 1.0),
        flops_efficiency_factor=num.get("flops_efficiency_factor", 1.0), compute_units=units,
        link_direct=d.get("link_direct", False),
    )  # fmt: skip


def parse_hardware(text: str, *, where: str) -> dict[str, Hardware]:
    """Chips of TOML ``text``; ValueError naming ``where`` (the file) and the chip and field."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise ValueError(f"{where} is not valid TOML: {show(str(exc))}") from None
    try:
        return {name: hardware_from_dict(name, d) for name, d in data.items()}
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_hardware(path) -> dict[str, Hardware]:
    """Chips of a TOML file (one table per chip, fields as in costmodel/data/hardware.toml)."""
    text = read_text_file(path, what="hardware file", max_bytes=MAX_HARDWARE_FILE_BYTES)
    return parse_hardware(text, where=f"hardware file {str(path)!r}")


def _load_presets() -> dict[str, Hardware]:
    text = resources.files("costmodel").joinpath("data/hardware.toml").read_text(encoding="utf-8")
    return parse_hardware(text, where="costmodel/data/hardware.toml")


HARDWARE: dict[str, Hardware] = _load_presets()


def get_hardware(hw) -> Hardware:
    """A :class:`Hardware` as given, or the preset of that name (close names suggested otherwise)."""
    if isinstance(hw, Hardware):
        return hw
    if isinstance(hw, str) and hw in HARDWARE:
        return HARDWARE[hw]
    raise unknown_name("hardware", hw, HARDWARE)
