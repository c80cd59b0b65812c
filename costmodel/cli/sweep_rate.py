"""``glugqa sweep rate``: a continuous-batching server's throughput and latency against the request rate."""

from __future__ import annotations

import click

from .formats import Column, Report
from .options import (
    dtype_options,
    efficiency_options,
    emit,
    format_option,
    hardware_options,
    model_options,
    server_options,
    tp_option,
)
from .param_types import check_distinct, list_items
from .plots import check_path, draw_lines, plot_option
from .serve_options import PERCENTILE, no_trace_conflict, workload_options

DEFAULT_POINTS = 10
LOW, HIGH = 0.05, 0.95  # default rates: this span of the saturation rate
MAX_POINTS = 1000


class _RateList(click.ParamType):
    """``1,2,5.5``: requests per second, each > 0."""

    name = "RATES"

    def convert(self, value, param, ctx):
        import math  # noqa: PLC0415

        try:
            items = list_items(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        try:
            out = [float(x) for x in items]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if len(out) > MAX_POINTS or any(not (math.isfinite(x) and 0 < x <= 1e9) for x in out):
            self.fail(f"{value!r}: 1 to {MAX_POINTS} rates, each in (0, 1e9] requests/s", param, ctx)
        try:
            check_distinct(out, items)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return sorted(out)


def _columns(label: str, simulate: bool) -> list[Column]:
    cols = [
        Column("rate", "rate (req/s)", ""),
        Column("load", "of saturation", "%"),
        Column("throughput_tok_s", "throughput", "tok/s"),
        Column("ttft_mean_s", "TTFT mean", "s"),
        Column("ttft_q_s", f"TTFT {label}", "s"),
        Column("tpot_mean_s", "TPOT mean", "s"),
        Column("tpot_q_s", f"TPOT {label}", "s"),
        Column("decoding", "decoding (mean)", ""),
        Column("kv_occupancy", "KV pool held", "%"),
    ]
    if simulate:
        cols += [
            Column("sim_throughput_tok_s", "simulated throughput", "tok/s"),
            Column("sim_ttft_q_s", f"simulated TTFT {label}", "s"),
            Column("sim_tpot_q_s", f"simulated TPOT {label}", "s"),
        ]
    return cols


@click.command("rate", short_help="A server's throughput, TTFT and TPOT against the request rate.")
@click.option("--rates", type=_RateList(), help=f"Requests/s to evaluate, e.g. 1,2,5. [default: {DEFAULT_POINTS} "
              f"rates from {LOW:.0%} to {HIGH:.0%} of the saturation rate]")  # fmt: skip
@model_options
@hardware_options
@tp_option
@dtype_options
@workload_options
@click.option("--percentile", type=PERCENTILE, default=99.0, show_default=True, help="Percentile of the pXX columns.")
@efficiency_options
@server_options
@click.option("--simulate", type=click.IntRange(0, 100_000), default=0, show_default=True, metavar="N",
              help="Also simulate N Poisson requests at each rate (iteration-level simulator).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@plot_option
@format_option
def rate_command(rates, cfg, hw, tp, weight_dtype, kv_dtype, prompt, output, trace, percentile, eff, server, simulate,
                 seed, plot, fmt):  # fmt: skip
    """Throughput, time to first token and time per output token (mean and --percentile) of one replica
    (tp devices, continuous batching with chunked prefill, vLLM's defaults) against the request rate, from
    the analytic steady state (docs/serving.md); --simulate adds the simulator's figures."""
    import numpy as np  # noqa: PLC0415 -- the serving model needs NumPy; `glugqa plan` starts without it

    from ..serving.replica import Replica  # noqa: PLC0415
    from ..serving.steady import SteadyModel  # noqa: PLC0415
    from ..serving.workload import Workload, read_trace  # noqa: PLC0415

    no_trace_conflict(("prompt", "output"))
    if plot:
        check_path(plot)
    rng = np.random.default_rng(seed)
    if trace is not None:
        w = read_trace(trace)
        p, o = w.prompt, w.output
    else:
        p, o = prompt.draw(rng, 256), output.draw(rng, 256)
    rep = Replica(cfg, hw, tp=tp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, eff=eff, server=server)
    if not rep.fits or float(rep.kv_need(p, o).max()) > rep.kv_pool:
        raise ValueError(f"{cfg.name} on {tp} x {hw.label}: the KV pool cannot hold the longest request "
                         "(try a larger --tp or a smaller --kv-dtype)")  # fmt: skip
    model = SteadyModel(rep, p, o)
    sat, why = model.saturation()
    rates = rates or [sat * x for x in np.linspace(LOW, HIGH, DEFAULT_POINTS)]
    q = percentile / 100
    label = f"p{percentile:g}"
    rows = []
    for r in rates:
        s = model.at(r)
        ttft_q, tpot_q = model.percentiles(r, q) if s.stable else (None, None)
        ok = s.stable
        row = {"rate": r, "load": r / sat, "throughput_tok_s": s.throughput_tok_s if ok else None,
               "ttft_mean_s": s.ttft_s if ok else None, "ttft_q_s": ttft_q, "tpot_mean_s": s.tpot_s if ok else None,
               "tpot_q_s": tpot_q, "decoding": s.decoding if ok else None,
               "kv_occupancy": s.kv_occupancy if ok else None}  # fmt: skip
        if simulate:
            i = rng.integers(0, p.size, simulate)
            res = rep.simulate(Workload(np.cumsum(rng.exponential(1 / r, simulate)), p[i], o[i]))
            row.update(sim_throughput_tok_s=res.throughput_tok_s, sim_ttft_q_s=float(np.quantile(res.ttft_s, q)),
                       sim_tpot_q_s=float(np.quantile(res.tpot_s, q)) if res.tpot_s.size else None)  # fmt: skip
        rows.append(row)
    notes = [f"Saturates at {sat:.4g} req/s ({why}); rows beyond it are unstable (the queue grows without bound)."]
    unsteady = [row["rate"] for row in rows if row["rate"] < sat and row["throughput_tok_s"] is None]
    if unsteady:
        notes.append(
            f"No steady state at {', '.join(f'{r:.4g}' for r in unsteady)} req/s, below saturation: the decode "
            "batch's fluctuations (prompts arriving in clusters) grow without bound before the mean iteration "
            "balances, so the analytic model gives no figures there; --simulate shows what a server does."
        )
    title = (
        f"Rate sweep of {cfg.name} on {tp} x {hw.label} (weights {weight_dtype}, KV {rep.kv_dtype}): "
        f"{'trace lengths' if trace else f'prompts {prompt.describe()}, outputs {output.describe()}'}"
    )
    meta = {"sweep": "rate", "model": cfg.name, "hardware": hw.name, "tp": tp, "saturation_rate": sat,
            "saturation_limit": why}  # fmt: skip
    report = Report(title, _columns(label, bool(simulate)), rows, meta=meta, notes=notes)
    emit(report, fmt)
    if plot:
        ok = [r for r in rows if r["throughput_tok_s"] is not None]
        x = [r["rate"] for r in ok]

        def series(key, name):
            return {"label": name, "x": x, "y": [r[key] * 1e3 for r in ok]}

        panels = [
            {"ylabel": "throughput (tok/s)",
             "series": [{"label": "", "x": x, "y": [r["throughput_tok_s"] for r in ok]}]},
            {"ylabel": "TTFT (ms)", "series": [series("ttft_mean_s", "mean"), series("ttft_q_s", label)]},
            {"ylabel": "TPOT (ms)", "series": [series("tpot_mean_s", "mean"), series("tpot_q_s", label)]},
        ]  # fmt: skip
        draw_lines(plot, title, "request rate (req/s)", panels)
