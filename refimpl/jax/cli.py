"""``glugqa ref verify``: the JAX port's parity suite on whatever backend JAX finds, as a per-op table."""

from __future__ import annotations

import json

import click


@click.command("verify")
@click.option("--dtype", "dtype", type=click.Choice(["float64", "float32", "bfloat16"]), default="float64",
              show_default=True, help="Precision of the JAX run (float64 enables jax_enable_x64).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--only", default=None, help="Keep ops whose name contains this text (e.g. 'ffn', 'decode').")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random inputs.")
def verify(dtype: str, fmt: str, only: str | None, seed: int) -> None:
    """Check the JAX port against the float64 NumPy reference on this backend.

    float64: error <= 1e-12 forward, 1e-10 gradients. float32 / bfloat16: error <= 2x (forward) or 3x
    (gradients) the error of a naive same-dtype computation, measured in the same run. Exit status 1 when
    a row fails, 2 on bad arguments.
    """
    try:
        import jax
    except ImportError:
        raise click.UsageError("glugqa ref verify needs JAX: pip install 'glugqa[jax]'") from None

    from .verify import parity_rows

    try:
        rows = parity_rows(dtype, seed=seed, only=only)
    except ValueError as exc:
        raise click.UsageError(str(exc).splitlines()[0]) from None
    backend = f"{jax.default_backend()} ({jax.devices()[0].device_kind})"
    records = [r._asdict() for r in rows]
    if fmt == "json":
        click.echo(json.dumps({"backend": backend, "rows": records}, indent=2))
    elif fmt == "csv":
        click.echo(",".join(records[0]))
        for r in records:
            click.echo(",".join("" if v is None else str(v) for v in r.values()))
    else:
        from tabulate import tabulate

        table = [(r.op, r.kind, r.dtype, f"{r.max_rel_error:.2e}", f"{r.tolerance:.2e}",
                  "" if r.naive_error is None else f"{r.naive_error:.2e}", "pass" if r.passed else "FAIL")
                 for r in rows]  # fmt: skip
        click.echo(f"backend: {backend}")
        headers = ["op", "kind", "dtype", "max rel error", "tolerance", "naive error", ""]
        click.echo(tabulate(table, headers=headers, disable_numparse=True))
        click.echo(f"{sum(r.passed for r in rows)}/{len(rows)} passed")
    if not all(r.passed for r in rows):
        raise SystemExit(1)
