"""Requests to serve: arrival times, prompt and output lengths, from a trace file or drawn at random.

- :class:`Lengths`: a length distribution, ``fixed``, ``uniform`` (integers lo..hi) or ``lognormal``
  (arithmetic ``mean`` and log-space ``sigma``, rounded, clipped to [1, ``cap``], a cap of at least the mean,
  8 x the mean by default; :attr:`Lengths.capped_mean` is the mean after the clip); written on the command line
  as ``2000``, ``uniform:1000,3000`` or ``lognormal:2000,0.8[,cap]``.
- :func:`poisson_workload` (Poisson arrivals at a rate, lengths drawn from a seeded ``np.random.Generator``),
  :func:`offline_workload` (every request at t = 0).
- :func:`read_trace`: JSON lines (one object per line) or CSV with a header, fields ``arrival_s``,
  ``prompt_tokens``, ``output_tokens``; read with the safe reader of costmodel.accuracy.files (regular files
  only, size bounded, UTF-8); every problem a ValueError naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from ..accuracy.files import parse_json, read_text_file
from ..checks import positive_float, positive_int, show

TRACE_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
MAX_TRACE_BYTES = 64 * 2**20
MAX_REQUESTS = 10**6
MAX_LENGTH = 2**24  # tokens per prompt or output (16.8 M): beyond any model's context
MAX_ARRIVAL_S = 1e9  # ~32 years of trace
LOGNORMAL_CAP = 8  # default clip of a lognormal: this many times its mean
KINDS = ("fixed", "uniform", "lognormal")


@dataclass(frozen=True)
class Lengths:
    """A distribution of token counts (see the module docstring)."""

    kind: str
    a: float  # fixed: the value; uniform: lo; lognormal: mean
    b: float = 0.0  # uniform: hi; lognormal: sigma
    cap: int = 0  # lognormal: the largest value drawn

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"length kind must be one of {', '.join(KINDS)}; got {show(self.kind)}")
        if self.kind in ("fixed", "uniform"):
            positive_int("length", self.a)
            if self.kind == "uniform" and not (isinstance(self.b, int) and self.a <= self.b <= MAX_LENGTH):
                raise ValueError(f"uniform lengths need integers 1 <= lo <= hi <= {MAX_LENGTH}; got {self.a}, {self.b}")
        else:
            positive_float("lognormal mean", self.a)
            positive_float("lognormal sigma", self.b)
            if self.b > 4:
                raise ValueError(f"lognormal sigma must be at most 4; got {self.b:g}")
            if self.a > MAX_LENGTH:
                raise ValueError(f"the lognormal mean must be at most {MAX_LENGTH}; got {self.a:g}")
            cap = self.cap or min(MAX_LENGTH, max(1, math.ceil(LOGNORMAL_CAP * self.a)))
            object.__setattr__(self, "cap", positive_int("lognormal cap", cap))
            if self.cap < self.a:  # a cap below the mean would make "mean" a number no draw comes near
                raise ValueError(f"the lognormal cap must be at least the mean {self.a:g}; got {self.cap}")
        if self.high > MAX_LENGTH:
            raise ValueError(f"lengths must be at most {MAX_LENGTH}; got {self.high}")

    @property
    def high(self) -> int:
        """The largest length this distribution gives."""
        return int(self.a) if self.kind == "fixed" else int(self.b) if self.kind == "uniform" else self.cap

    @property
    def mean(self) -> float:
        """The mean before clipping (exact for fixed and uniform)."""
        return float(self.a) if self.kind != "uniform" else (self.a + self.b) / 2

    @property
    def capped_mean(self) -> float:
        """The mean of the lengths drawn: for a lognormal, clipped to [1, cap] (rounding to integers ignored),
        E[clip(X, 1, c)] = P(X < 1) + E[X; 1 <= X < c] + c·P(X >= c), with E[X; X < y] = mean·Φ((ln y - μ - σ²)/σ)
        and μ = ln(mean) - σ²/2; the plain mean for fixed and uniform lengths."""
        if self.kind != "lognormal":
            return self.mean
        s = self.b
        mu = math.log(self.a) - s * s / 2

        def phi(y: float, shift: float) -> float:  # Φ((ln y - μ - shift)/σ)
            return 0.5 * math.erfc(-(math.log(y) - mu - shift) / (s * math.sqrt(2)))

        below = phi(1.0, 0.0) + self.a * (phi(self.cap, s * s) - phi(1.0, s * s))
        return below + self.cap * (1.0 - phi(self.cap, 0.0))

    def describe(self) -> str:
        """The distribution in words for titles: '2000 tokens', 'uniform 1000-3000', 'lognormal mean 2000,
        sigma 0.8, cap 16000', with the mean after the cap when the cap changes it (at 4 digits)."""
        if self.kind == "fixed":
            return f"{int(self.a)} tokens"
        if self.kind == "uniform":
            return f"uniform {int(self.a)}-{int(self.b)}"
        text = f"lognormal mean {self.a:g}, sigma {self.b:g}, cap {self.cap}"
        capped = self.capped_mean
        return text + (f" (mean {capped:.4g} after the cap)" if f"{capped:.4g}" != f"{self.a:.4g}" else "")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths, int64."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
        n = positive_int("n", n)
        if self.kind == "fixed":
            return np.full(n, int(self.a), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(int(self.a), int(self.b), endpoint=True, size=n)
        mu = math.log(self.a) - self.b**2 / 2  # so that the mean is a
        return np.clip(np.rint(rng.lognormal(mu, self.b, size=n)), 1, self.cap).astype(np.int64)

    @classmethod
    def parse(cls, text: str, *, what: str = "length") -> Lengths:
        """``2000``, ``uniform:1000,3000`` or ``lognormal:2000,0.8`` (optionally ``,cap``)."""
        kind, _, args = str(text).partition(":")
        try:
            if not args:
                return cls("fixed", int(kind))
            values = [float(x) for x in args.split(",")]
            if kind == "uniform" and len(values) == 2 and all(v.is_integer() for v in values):
                return cls("uniform", int(values[0]), int(values[1]))
            if kind == "lognormal" and len(values) in (2, 3):
                cap = values[2] if len(values) == 3 else 0
                if not float(cap).is_integer():
                    raise ValueError("the cap must be an integer")
                return cls("lognormal", values[0], values[1], int(cap))
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{what} {text!r}: {exc}") from None
        raise ValueError(f"{what} {text!r}: expected N, uniform:LO,HI or lognormal:MEAN,SIGMA[,CAP]")


@dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival: ``arrival_s`` (n,) seconds, ``prompt`` and ``output`` (n,) tokens."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray

    def __post_init__(self):
        a = np.asarray(self.arrival_s, dtype=float)
        p, o = (np.asarray(x) for x in (self.prompt, self.output))
        if not (a.ndim == p.ndim == o.ndim == 1 and a.size == p.size == o.size and 1 <= a.size <= MAX_REQUESTS):
            raise ValueError(f"a workload needs 1 to {MAX_REQUESTS} requests, as three arrays of one length")
        if not (np.all(np.isfinite(a)) and np.all(a >= 0) and np.all(np.diff(a) >= 0)):
            raise ValueError("arrival times must be finite, >= 0 and non-decreasing")
        for name, x in (("prompt", p), ("output", o)):
            if x.dtype.kind not in "iu" or x.min() < 1 or x.max() > MAX_LENGTH:
                raise ValueError(f"{name} lengths must be integers in [1, {MAX_LENGTH}]")
        object.__setattr__(self, "arrival_s", a)
        object.__setattr__(self, "prompt", p.astype(np.int64))
        object.__setattr__(self, "output", o.astype(np.int64))

    def __len__(self) -> int:
        return int(self.arrival_s.size)


def poisson_workload(rate: float, n: int, prompt: Lengths, output: Lengths, rng: np.random.Generator) -> Workload:
    """``n`` requests arriving as a Poisson process of ``rate`` requests/s (the first at its first
    exponential gap), lengths drawn from ``prompt`` and ``output``."""
    rate, n = positive_float("rate", rate), positive_int("n", n)
    if n > MAX_REQUESTS:
        raise ValueError(f"n must be at most {MAX_REQUESTS}; got {n}")
    gaps = rng.exponential(1.0 / rate, size=n)  # (n,)
    return Workload(np.cumsum(gaps), prompt.draw(rng, n), output.draw(rng, n))


def offline_workload(n: int, prompt: Lengths, output: Lengths, rng: np.random.Generator) -> Workload:
    """``n`` requests all waiting at t = 0 (an offline batch job: the server's best throughput)."""
    n = positive_int("n", n)
    return Workload(np.zeros(n), prompt.draw(rng, n), output.draw(rng, n))


def _field(where: str, name: str, value, *, integer: bool):
    if value is None or value == "":
        raise ValueError(f"{where}: {name} is missing")
    if isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be a number; got {show(value)}")
    try:
        v = float(value) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{where}: {name} must be a number; got {show(value)}") from None
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: {name} must be a finite number; got {show(value)}")
    if integer:
        if not float(v).is_integer() or not 1 <= v <= MAX_LENGTH:
            raise ValueError(f"{where}: {name} must be an integer in [1, {MAX_LENGTH}]; got {show(value)}")
        return int(v)
    if not 0 <= v <= MAX_ARRIVAL_S:
        raise ValueError(f"{where}: {name} must be in [0, {MAX_ARRIVAL_S:g}] seconds; got {show(value)}")
    return float(v)


def _records(text: str, name: str):
    """(line number, dict) per request, JSON lines or CSV (chosen by the first non-blank character)."""
    first = text.lstrip()[:1]
    if first == "{":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                obj = parse_json(line, where=f"trace {name!r} line {i}")
                if not isinstance(obj, dict):
                    raise ValueError(f"trace {name!r} line {i}: expected a JSON object; got {type(obj).__name__}")
                yield i, obj
        return
    reader = csv.reader(io.StringIO(text))
    try:  # the csv module's own errors (a field over its 131072-character limit, ...) name the line too
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        missing = [f for f in TRACE_FIELDS if f not in header]
        if missing:
            needs = ", ".join(TRACE_FIELDS)
            raise ValueError(f"trace {name!r} line 1: CSV header lacks {', '.join(missing)} (needs {needs})")
        for i, row in enumerate(reader, 2):
            if row and any(cell.strip() for cell in row):
                if len(row) != len(header):
                    raise ValueError(f"trace {name!r} line {i}: {len(row)} cells for {len(header)} columns")
                yield i, dict(zip(header, (c.strip() for c in row), strict=True))
    except csv.Error as exc:
        raise ValueError(f"trace {name!r} line {reader.line_num}: not CSV ({exc}); a trace is CSV or JSON lines "
                         "(one object per line)") from None  # fmt: skip


def read_trace(path) -> Workload:
    """A request trace: JSON lines or CSV with ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (other
    fields ignored); arrivals must not decrease."""
    text = read_text_file(path, what="trace", max_bytes=MAX_TRACE_BYTES)
    name = str(path)
    rows, last = [], 0.0
    for i, rec in _records(text, name):
        where = f"trace {name!r} line {i}"
        unknown_missing = [f for f in TRACE_FIELDS if f not in rec]
        if unknown_missing:
            raise ValueError(f"{where}: {', '.join(unknown_missing)} missing (needs {', '.join(TRACE_FIELDS)})")
        a = _field(where, "arrival_s", rec["arrival_s"], integer=False)
        if a < last:
            raise ValueError(f"{where}: arrival_s {a:g} is before the previous line's {last:g}")
        rows.append((a, _field(where, "prompt_tokens", rec["prompt_tokens"], integer=True),
                     _field(where, "output_tokens", rec["output_tokens"], integer=True)))  # fmt: skip
        last = a
        if len(rows) > MAX_REQUESTS:
            raise ValueError(f"trace {name!r}: more than {MAX_REQUESTS} requests")
    if not rows:
        raise ValueError(f"trace {name!r}: no requests")
    a, p, o = zip(*rows, strict=True)
    return Workload(np.array(a), np.array(p, dtype=np.int64), np.array(o, dtype=np.int64))
