"""The ``glugqa`` command line (click).

Sub-groups that need the reference, JAX or the conformance kit load lazily, so ``glugqa plan`` and
``glugqa --help`` import neither JAX nor the reference's ops. The cost-model commands live in
``cli_plan`` (plan), ``cli_model`` (params, flops, kv, latency), ``cli_tables`` (sweep, table), ``cli_info``
(hardware, models) and ``cli_docs`` (docs; figures in ``cli_figures``, the README tour in ``cli_tour``);
shared options in ``cli_options`` / ``cli_types``, output formatting in ``cli_format``, the click machinery
(LazyGroup, one-line errors) in ``cli_base``.

Errors: every ``ValueError`` / ``OSError`` / ``OverflowError`` from the cost model and every click usage
error becomes ONE line on stderr (``glugqa plan: error: ...``) and exit code 2 -- never a traceback.
"""

from __future__ import annotations

import click

from .cli_base import LazyGroup, RootGroup, UserError  # noqa: F401 -- public names

# `glugqa ref <name>` -> ("module:attribute" of a click command, short help); imported only when it runs
_REF_COMMANDS = {
    "verify": ("refimpl.jax.cli:verify", "Check the JAX port against the NumPy reference on this backend."),
    "vectors": (
        "refimpl.conformance.cli:vectors",
        "Write conformance test vectors (inputs, golden results).",
    ),
    "check": ("refimpl.conformance.cli:check", "Judge a candidate's outputs against a test-vector file."),
}


@click.group(
    cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="glugqa", prog_name="glugqa")
def cli() -> None:
    """glugqa: a float64 reference for GLU-variant FFNs and grouped-query attention, and a cost model.

    \b
    Start with `glugqa plan` (Llama-3-8B on one H100 SXM, bf16, 8192 context), then change what you
    need: `glugqa plan --model llama-2-70b --hardware h200-sxm --tp 2 --kv-dtype fp8`.
    Every command takes --format table|github|markdown|csv|json|latex and --help.
    """


@click.group(cls=LazyGroup, lazy=_REF_COMMANDS)
def ref() -> None:
    """Reference tools: JAX parity, conformance vectors, checks."""


def _register() -> None:
    from . import cli_docs, cli_info, cli_model, cli_plan, cli_tables  # noqa: PLC0415 -- after `cli` exists

    for module in (cli_plan, cli_model, cli_tables, cli_info, cli_docs):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(ref)


_register()


def main() -> None:
    cli()
