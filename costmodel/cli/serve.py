"""``glugqa serve``: the devices a request rate needs under TTFT/TPOT SLOs, for every candidate, ranked."""

from __future__ import annotations

import click

from ..config import DTYPES
from ..hardware import HARDWARE, load_hardware
from .formats import Column, Report
from .groups import CheckFailed
from .options import IntList, check_name, efficiency_options, emit, format_option, model_options, server_options
from .param_types import check_distinct, list_items
from .plots import check_path, draw_bars, plot_option
from .serve_options import POSITIVE, no_trace_conflict, slo_options, workload_options

DEFAULT_CHIPS = "a100-sxm-80gb,h100-sxm,h200-sxm,b200"
SAMPLE = 256  # lengths drawn to stand for --prompt/--output

SERVE_COLUMNS = [
    Column("rank", "#", "int"),
    Column("hardware", "hardware"),
    Column("tp", "tp", "int"),
    Column("weight_dtype", "weights"),
    Column("kv_dtype", "KV"),
    Column("replicas", "replicas", "int"),
    Column("devices", "devices", "int"),
    Column("replica_rate", "req/s each", ""),
    Column("ttft_s", "TTFT", "s"),
    Column("tpot_s", "TPOT", "s"),
    Column("limit", "limited by"),
    Column("saturation_rate", "saturates at", ""),
]


def _names(text: str, known, what: str) -> list[str]:
    """The names of a list option, each known and given once (an empty item is an error)."""
    try:
        out = list_items(text)
        check_distinct(out, out)
        return [check_name(what, x, known, "glugqa hardware list" if what == "hardware" else "--help") for x in out]
    except ValueError as exc:
        raise ValueError(f"--{what}: {exc}") from None


def _rows(options, slo) -> list[dict]:
    rows = []
    for i, o in enumerate(options, 1):
        c = o.candidate
        rows.append({
            "rank": i if o.feasible else None, "hardware": c.hardware.name, "tp": c.tp, "weight_dtype": c.weight_dtype,
            "kv_dtype": c.kv_dtype, "replicas": o.replicas or None, "devices": o.devices or None,
            "replica_rate": o.replica_rate or None, "ttft_s": o.ttft_s if o.feasible else None,
            "tpot_s": o.tpot_s if o.feasible else None, "limit": o.limit,
            "saturation_rate": o.saturation_rate or None,
        })  # fmt: skip
    return rows


@click.command("serve", short_help="Devices a request rate needs under TTFT/TPOT SLOs, per candidate, ranked.")
@model_options
@click.option("--hardware", "--hw", "hardware", default=DEFAULT_CHIPS, show_default=True, metavar="LIST",
              help="Chips to consider, comma-separated (presets or chips of --hardware-file).")
@click.option("--hardware-file", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="A TOML file of chips (fields as in costmodel/data/hardware.toml), added to the presets.")
@click.option("--tp", type=IntList(), default="1,2,4,8", show_default=True,
              help="Tensor-parallel degrees to consider (those the model allows).")
@click.option("--kv-dtype", default="bf16,fp8", show_default=True, metavar="LIST", help="KV-cache dtypes.")
@click.option("--weight-dtype", default="bf16", show_default=True, metavar="LIST", help="Weight dtypes.")
@click.option("--rate", type=POSITIVE, default=20.0, show_default=True, help="Requests per second to serve.")
@workload_options
@slo_options
@efficiency_options
@server_options
@click.option("--simulate", type=click.IntRange(0, 100_000), default=0, show_default=True, metavar="N",
              help="Check the best candidate with the simulator: N Poisson requests at its rate per replica.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the length draws and of --simulate.")
@plot_option
@format_option
def serve_command(cfg, hardware, hardware_file, tp, kv_dtype, weight_dtype, rate, prompt, output, trace, ttft_ms,
                  tpot_ms, percentile, eff, server, simulate, seed, plot, fmt):  # fmt: skip
    """How many devices (replicas x tensor parallel) serve --rate requests/s of these lengths within the
    SLOs, for every candidate chip x tp x KV dtype x weight dtype, best first.

    Each replica is a continuous-batching server with chunked prefill and vLLM's memory defaults (see
    docs/serving.md); its rate is the highest at which the TTFT and TPOT percentiles stay within the limits.
    Ranked by devices, then the cheaper chip (dense bf16 peak as a price proxy), then the smaller tp, then
    spare capacity. With no options: Llama-3-8B, 20 req/s of 2000-token prompts and 300-token answers,
    TTFT 1 s and TPOT 40 ms at p99. Exit status 1 when no candidate meets the SLOs.
    """
    import numpy as np  # noqa: PLC0415 -- the serving model needs NumPy; `glugqa plan` starts without it

    from ..serving.capacity import SLO, Candidate, evaluate_candidate, rank  # noqa: PLC0415
    from ..serving.workload import read_trace  # noqa: PLC0415

    no_trace_conflict(("rate", "prompt", "output"))
    if plot:
        check_path(plot)
    chips = {**HARDWARE, **(load_hardware(hardware_file) if hardware_file else {})}
    names = _names(hardware, chips, "hardware")
    kvs, weights = _names(kv_dtype, DTYPES, "kv-dtype"), _names(weight_dtype, DTYPES, "weight-dtype")
    slo = SLO(ttft_ms / 1e3, tpot_ms / 1e3, percentile / 100)
    rng = np.random.default_rng(seed)
    if trace is not None:
        w = read_trace(trace)
        span = float(w.arrival_s[-1] - w.arrival_s[0])
        if len(w) < 2 or span <= 0:
            raise ValueError(f"--trace: {trace!r} needs two or more requests spread over time to give a rate")
        rate = (len(w) - 1) / span
        p, o = w.prompt, w.output
    else:
        p, o = prompt.draw(rng, SAMPLE), output.draw(rng, SAMPLE)
    cands = [Candidate(chips[h], t, kv, wd) for h in names for t in tp for kv in kvs for wd in weights]
    options = rank(
        evaluate_candidate(cfg, c, rate=rate, prompt=p, output=o, slo=slo, eff=eff, server=server)
        for c in cands  # fmt: skip
    )
    notes, simulated = [], {}
    for detail in dict.fromkeys(o.detail for o in options if o.detail):  # each long reason once
        short = next(o.limit for o in options if o.detail == detail).removeprefix("invalid: ")
        notes.append(f"{short}: {detail}")
    best = next((x for x in options if x.feasible), None)
    if simulate and best is not None:
        note, simulated = _simulated(cfg, best, eff, server, p, o, simulate, slo, rng)
        notes.append(note)
    lengths = "the trace's lengths" if trace else f"prompts {prompt.describe()}, outputs {output.describe()}"
    title = (
        f"Serving {cfg.name} at {rate:.4g} req/s ({lengths}) within TTFT {ttft_ms:g} ms and TPOT {tpot_ms:g} ms "
        f"at {slo.label}: devices per candidate, best first (rates in requests/s per replica)"
    )
    cols = [Column(c.key, c.label.replace("TTFT", f"TTFT {slo.label}").replace("TPOT", f"TPOT {slo.label}"),
                   c.unit) for c in SERVE_COLUMNS]  # fmt: skip
    meta = {"model": cfg.name, "rate": rate, "ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "quantile": slo.quantile,
            **simulated}
    emit(Report(title, cols, _rows(options, slo), meta=meta, notes=notes), fmt)
    if plot:
        feasible = [x for x in options if x.feasible]
        labels = [f"{x.candidate.hardware.name} tp{x.candidate.tp} {x.candidate.weight_dtype}/{x.candidate.kv_dtype}"
                  for x in feasible]  # fmt: skip
        draw_bars(plot, title, labels, [x.devices for x in feasible], [x.limit for x in feasible], "devices")
    if best is None:
        raise CheckFailed("no candidate meets the SLOs", click.get_current_context().command_path)


def _simulated(cfg, best, eff, server, p, o, n, slo, rng) -> tuple[str, dict]:
    """(one line, its figures for the JSON): the simulator's percentiles for the best candidate at its rate
    per replica, each that misses its SLO marked."""
    import numpy as np  # noqa: PLC0415

    from ..serving.replica import Replica  # noqa: PLC0415
    from ..serving.workload import Workload  # noqa: PLC0415

    c = best.candidate
    rep = Replica(cfg, c.hardware, tp=c.tp, weight_dtype=c.weight_dtype, kv_dtype=c.kv_dtype, eff=eff,
                  server=server)  # fmt: skip
    i = rng.integers(0, p.size, n)
    w = Workload(np.cumsum(rng.exponential(1 / best.replica_rate, n)), p[i], o[i])  # Poisson arrivals
    res = rep.simulate(w)
    q = 100 * slo.quantile
    got = {"TTFT": float(np.percentile(res.ttft_s, q)),
           "TPOT": float(np.percentile(res.tpot_s, q)) if res.tpot_s.size else 0.0}  # fmt: skip
    limits = {"TTFT": slo.ttft_s, "TPOT": slo.tpot_s}
    missed = [k for k in got if got[k] > limits[k]]
    shown = ", ".join(f"{k} {slo.label} {got[k] * 1e3:.4g} ms" + (
        f" (MISSES the {limits[k] * 1e3:g} ms SLO)" if k in missed else "") for k in got)  # fmt: skip
    text = (f"Simulated ({n} requests at {best.replica_rate:.4g} req/s on the best candidate): {shown} "
            f"(model: {best.ttft_s * 1e3:.4g} ms, {best.tpot_s * 1e3:.4g} ms).")  # fmt: skip
    if missed:
        text += (" The ranking uses the analytic model, which meets the SLOs at this rate, not the simulation: "
                 "leave headroom (a larger --simulate narrows the sampling noise).")  # fmt: skip
    return text, {"simulated_ttft_s": got["TTFT"], "simulated_tpot_s": got["TPOT"], "simulated_misses": missed}
