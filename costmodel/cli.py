"""The ``glugqa`` command line (click).

Sub-groups that need the reference, JAX or the conformance kit load lazily, so ``glugqa plan`` and
``glugqa --help`` import neither JAX nor the reference's ops.
"""

from __future__ import annotations

import importlib

import click

# `glugqa ref <name>` -> ("module:attribute" of a click command, short help); imported only when it runs
_REF_COMMANDS = {
    "verify": ("refimpl.jax.cli:verify", "Check the JAX port against the NumPy reference on this backend."),
    "vectors": ("refimpl.conformance.cli:vectors", "Write conformance test vectors (inputs, golden results)."),
    "check": ("refimpl.conformance.cli:check", "Judge a candidate's outputs against a test-vector file."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx, name):
        if name not in self._lazy:
            return super().get_command(ctx, name)
        target, _ = self._lazy[name]
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # an optional extra (jax) is missing
            raise click.UsageError(f"'{name}' needs {exc.name}: pip install 'glugqa[jax]'") from None

    def format_commands(self, ctx, formatter):
        """List the lazy commands from their stored help, importing nothing."""
        rows = [(name, self._lazy[name][1]) for name in sorted(self._lazy)]
        rows += [(name, self.commands[name].get_short_help_str()) for name in sorted(self.commands)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="glugqa", prog_name="glugqa")
def cli() -> None:
    """glugqa: a float64 reference for GLU-variant FFNs and grouped-query attention, and a cost model."""


@cli.group(cls=LazyGroup, lazy=_REF_COMMANDS)
def ref() -> None:
    """The reference's tools: JAX parity check, conformance test vectors and checks."""


def main() -> None:
    cli()
