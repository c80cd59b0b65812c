"""Options of the serving commands (``glugqa serve``, ``glugqa sweep rate``): the workload and the SLOs."""

from __future__ import annotations

import click

from .options import given
from .param_types import PERCENTILE, POSITIVE  # noqa: F401 -- re-exported for the serving commands

DEFAULT_PROMPT, DEFAULT_OUTPUT = "2000", "300"


class _LengthsType(click.ParamType):
    """``2000``, ``uniform:1000,3000`` or ``lognormal:2000,0.8[,cap]``."""

    name = "LENGTHS"

    def convert(self, value, param, ctx):
        from ..serving.workload import Lengths  # noqa: PLC0415 -- NumPy: only when a serving command runs

        if isinstance(value, Lengths):
            return value
        try:
            return Lengths.parse(value, what="lengths")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


LENGTHS = _LengthsType()


def workload_options(f):
    """--prompt, --output (length distributions), --trace; the command receives ``prompt``, ``output``,
    ``trace``."""
    options = [
        click.option("--prompt", type=LENGTHS, default=DEFAULT_PROMPT, show_default=True,
                     help="Prompt tokens: N, uniform:LO,HI or lognormal:MEAN,SIGMA[,CAP]."),
        click.option("--output", type=LENGTHS, default=DEFAULT_OUTPUT, show_default=True,
                     help="Output tokens per request (the first comes from the prefill), same forms."),
        click.option("--trace", type=click.Path(dir_okay=False), metavar="PATH",
                     help="A request trace (JSON lines or CSV: arrival_s, prompt_tokens, output_tokens): its "
                     "lengths, and for `serve` its rate, replace --prompt/--output/--rate."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def slo_options(f):
    """--ttft-ms, --tpot-ms, --percentile."""
    options = [
        click.option("--ttft-ms", type=POSITIVE, default=1000.0, show_default=True,
                     help="Time-to-first-token limit, ms, at --percentile."),
        click.option("--tpot-ms", type=POSITIVE, default=40.0, show_default=True,
                     help="Time-per-output-token limit, ms, at --percentile."),
        click.option("--percentile", type=PERCENTILE, default=99.0, show_default=True,
                     help="The percentile both limits apply to."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def no_trace_conflict(names) -> None:
    """--trace replaces the options in ``names``: giving both is an error."""
    ctx = click.get_current_context()
    if ctx.params.get("trace") is None:
        return
    clash = [n for n in names if given(ctx, n)]
    if clash:
        raise ValueError(f"--trace gives the {', '.join(clash)}; drop {', '.join('--' + n for n in clash)}")

