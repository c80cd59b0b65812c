"""``glugqa sweep``: a tradeoff along one dimension (kv-heads, d-ff, batch or context: each point a plan), or
along the request rate (``rate``, in ``sweep_rate.py``: a continuous-batching server's throughput and latency)."""

from __future__ import annotations

import sys

import click

from ..config import resolve_kv_dtype
from ..params import param_count
from ..plan import divisors, plan
from . import sweep_rate
from .formats import Column, Report
from .groups import LazyGroup
from .options import (
    BATCH_OR_MAX,
    COUNT,
    DEFAULT_CONTEXT,
    IntList,
    dtype_options,
    efficiency_options,
    emit,
    format_option,
    given,
    hardware_options,
    model_options,
    server_options,
    tp_option,
)
from .plan import bound_of
from .plots import check_path, draw_lines, plot_option

SWEEPS = ("kv-heads", "d-ff", "batch", "context")
PROGRESS_MIN_POINTS = 64  # sweeps this long show a progress bar (on a terminal only)
D_FF_FACTORS = ((1, 2), (2, 3), (1, 1), (4, 3), (3, 2), (2, 1))  # default d_ff sweep: F x these, rounded
D_FF_MULTIPLE = 256  # LLaMA's rounding of d_ff


def progress(items: list, *, label: str, file=None):
    """``items`` wrapped in a click progress bar when there are many and ``file`` (stderr) is a terminal."""
    file = file if file is not None else sys.stderr
    isatty = getattr(file, "isatty", lambda: False)
    if len(items) < PROGRESS_MIN_POINTS or not isatty():
        return _Plain(items)
    return click.progressbar(items, label=label, file=file)


class _Plain:
    """The no-bar stand-in for click.progressbar's context manager."""

    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return iter(self.items)

    def __exit__(self, *exc):
        return False


# what --values defaults to, in words (_default_values computes it)
DEFAULTS = {
    "kv-heads": "every divisor of the query heads that splits evenly over --tp",
    "d-ff": "the model's d_ff x 1/2, 2/3, 1, 4/3, 3/2 and 2, rounded up to a multiple of 256",
    "batch": "1..1024, doubling",
    "context": "512..131072, doubling",
}


def _default_values(what: str, cfg, tp: int) -> list[int]:
    if what == "kv-heads":
        return [k for k in divisors(cfg.n_heads) if not (k % tp and tp % k)]
    if what == "d-ff":
        return sorted({-(-cfg.d_ff * a // b // D_FF_MULTIPLE) * D_FF_MULTIPLE for a, b in D_FF_FACTORS})
    if what == "batch":
        return [2**i for i in range(11)]
    return [2**i for i in range(9, 18)]  # context 512 .. 131072


SWEEP_COLUMNS = {
    "attention": Column("attention", "attention"),
    "params": Column("params", "params", "count"),
    "weight_bytes": Column("weight_bytes", "weights", "bytes"),
    "kv_bytes": Column("kv_bytes", "KV cache", "bytes"),
    "max_batch": Column("max_batch", "max batch", "int"),
    "batch": Column("batch", "batch", "int"),
    "fits": Column("fits", "fits"),
    "decode_s": Column("decode_s", "decode/token", "s"),
    "tokens_per_s": Column("tokens_per_s", "throughput", "tok/s"),
    "bound": Column("bound", "bound"),
}
# columns that cannot change along a sweep (the model is fixed for batch and context sweeps)
SWEEP_HIDDEN = {
    "kv-heads": (),
    "d-ff": ("attention",),
    "batch": ("attention", "params", "weight_bytes", "batch"),
    "context": ("attention", "params", "weight_bytes"),
}
SWEPT = {
    "kv-heads": Column("n_kv_heads", "K", "int"),
    "d-ff": Column("d_ff", "d_ff", "int"),
    "batch": Column("batch", "batch", "int"),
    "context": Column("context", "context", "int"),
}


@click.group("sweep", cls=LazyGroup, short_help="A tradeoff along kv-heads, d-ff, batch, context or request rate.")
def sweep_group() -> None:
    """A tradeoff along one dimension: kv-heads (K), d-ff, batch or context (each point a capacity plan),
    or rate (a continuous-batching server's throughput and latency against the request rate)."""


def _dimension_command(what: str):
    """``glugqa sweep WHAT`` for one of the plan dimensions."""

    @sweep_group.command(
        what,
        short_help=f"Capacity plans along {SWEPT[what].label}.",
        help=(
            f"Capacity plans along {what}: every point is a plan (`glugqa plan`) of the modified model: weights, "
            "KV cache, the largest batch that fits, decode latency and throughput at the evaluated batch."
        ),
    )
    @click.option(
        "--values", type=IntList(), help=f"1,2,4 or 512..8192 (doubling) or 1024:8192:1024. [default: {DEFAULTS[what]}]"
    )
    @model_options
    @hardware_options
    @tp_option
    @click.option(
        "--batch",
        "-b",
        type=BATCH_OR_MAX,
        default="max",
        show_default=True,
        help="Batch per point, or 'max': the largest that fits at that point.",
    )
    @click.option("--context", "-c", type=COUNT, default=DEFAULT_CONTEXT, show_default=True)
    @dtype_options
    @efficiency_options
    @server_options
    @plot_option
    @format_option
    def command(values, cfg, hw, tp, batch, context, weight_dtype, kv_dtype, eff, server, plot, fmt):
        if plot:
            check_path(plot)
        report = _sweep(what, values, cfg, hw, tp, batch, context, weight_dtype, kv_dtype, eff, server)
        emit(report, fmt)
        if plot:
            rows = [r for r in report.rows if "decode_s" in r]
            x = [r[SWEPT_KEY[what]] for r in rows]
            draw_lines(plot, report.title, SWEPT[what].label, [
                {"ylabel": "decode latency per token (ms)", "series": [{"label": "", "x": x,
                 "y": [r["decode_s"] * 1e3 for r in rows]}]},
                {"ylabel": "throughput (tok/s)",
                 "series": [{"label": "", "x": x, "y": [r["tokens_per_s"] for r in rows]}]},
            ], xlog=what in ("batch", "context"))  # fmt: skip

    return command


SWEPT_KEY = {what: col.key for what, col in SWEPT.items()}


SWEPT_OPTION = {"kv-heads": "kv_heads", "d-ff": "d_ff", "batch": "batch", "context": "context"}


def check_swept_option(what: str, *, values=None, batch=None) -> None:
    """The option of the swept dimension does not apply (every point sets it): an error when given. --d-ff
    applies when --values is not given (the default points scale it); --batch max is the default."""
    ctx = click.get_current_context()
    name = SWEPT_OPTION[what]
    if what == "d-ff" and values is None:
        return
    if (batch is not None) if what == "batch" else given(ctx, name):
        flag = "--" + name.replace("_", "-")
        why = "--values sets it" if what == "d-ff" else "the sweep sets it"
        raise click.BadParameter(f"sweeping {what}: drop {flag} ({why})", param_hint=f"'{flag}'")


def _sweep(what, values, cfg, hw, tp, batch, context, weight_dtype, kv_dtype, eff, server) -> Report:
    check_swept_option(what, values=values, batch=batch)
    values = values or _default_values(what, cfg, tp)
    rows = []
    with progress(values, label=f"sweeping {what}") as points:
        for v in points:
            c = cfg.with_(n_kv_heads=v) if what == "kv-heads" else cfg.with_(d_ff=v) if what == "d-ff" else cfg
            ctx_len = v if what == "context" else context
            b = v if what == "batch" else batch
            p = plan(c, hw, context=ctx_len, devices=tp, batch=b, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                     eff=eff, server=server)  # fmt: skip
            row = {
                SWEPT[what].key: v,
                "attention": c.attention_kind,
                "params": param_count(c),
                "weight_bytes": p.weight_bytes,
                "kv_bytes": p.batch * p.kv_bytes_per_sequence,
                "max_batch": p.max_batch,
                "batch": p.batch,
                "fits": p.fits,
            }
            if p.decode is not None:
                row.update(decode_s=p.decode.total_s, tokens_per_s=p.tokens_per_s, bound=bound_of(p.decode)[0])
            rows.append(row)
    keys = [k for k in SWEEP_COLUMNS if k not in SWEEP_HIDDEN[what] and not (k == "batch" and batch is not None)]
    cols = [SWEPT[what], *(SWEEP_COLUMNS[k] for k in keys)]
    fixed = [] if what == "context" else [f"context {context}"]
    if what != "batch":
        fixed.append("the largest batch that fits" if batch is None else f"batch {batch}")
    fixed.append(f"weights {weight_dtype}, KV {resolve_kv_dtype(kv_dtype, weight_dtype)}")
    title = f"Sweep of {what} for {cfg.name} on {tp} x {hw.label}: {', '.join(fixed)}"
    notes = []
    if not all(r["fits"] for r in rows):
        notes.append("Rows with fits = no exceed the device memory; their latency is shown as if they fit.")
    meta = {"sweep": what, "model": cfg.name, "hardware": hw.name, "tp": tp}
    return Report(title, cols, rows, meta=meta, notes=notes)


for _what in SWEEPS:
    _dimension_command(_what)
sweep_group.add_command(sweep_rate.rate_command)
