"""The ``glugqa`` command line (click)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="glugqa", prog_name="glugqa")
def cli() -> None:
    """glugqa: a float64 reference for GLU-variant FFNs and grouped-query attention, and a cost model."""


def main() -> None:
    cli()
