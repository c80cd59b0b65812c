"""The root ``glugqa`` group: the command groups it carries, in the order ``glugqa --help`` lists them.

The cost-model groups are imported here (they are light: click, tabulate, the cost model); the reference's
commands are registered by name in :data:`REF_COMMANDS` and imported only when one runs, so ``glugqa plan``
and ``glugqa --help`` import neither JAX nor the reference's NumPy ops.

Errors: every ``ValueError`` / ``OSError`` / ``OverflowError`` from the cost model and every click usage
error becomes ONE line on stderr (``glugqa plan: error: ...``) and exit code 2 -- never a traceback
(:class:`~costmodel.cli.groups.RootGroup`).
"""

from __future__ import annotations

import click

from . import accuracy, docs, info, model, plan, serve, sweep, tables
from .groups import LazyGroup, RootGroup

# every module's COMMANDS, added in this order (the order of `glugqa --help`), then `ref`
COMMAND_MODULES = (plan, serve, model, sweep, tables, accuracy, info, docs)

# `glugqa ref <name>` -> ("module:attribute" of a click command, short help); imported only when it runs
REF_COMMANDS = {
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


@click.group(cls=LazyGroup, lazy=REF_COMMANDS)
def ref() -> None:
    """Reference tools: JAX parity, conformance vectors, checks."""


for _module in COMMAND_MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)
cli.add_command(ref)


def main() -> None:
    """The console script ``glugqa`` (pyproject: ``glugqa = "costmodel.cli:main"``)."""
    cli()
