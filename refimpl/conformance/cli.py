"""``glugqa ref vectors`` and ``glugqa ref check``: conformance through files, for kernels outside Python.

    glugqa ref vectors --op swiglu --dtype bf16 --shape d_model=64,d_ff=203,n_tokens=113 -o swiglu.npz
    glugqa ref check swiglu.npz candidate.npz         # exit 0 conforms, 1 does not, 2 unusable input

Errors (bad options, unreadable or mismatched files) print one line and exit with status 2.
"""

from __future__ import annotations

import click

from ..variants import PAPER_VARIANTS
from .dtypes import FORMATS
from .policy import Rule

_FFN_SIZES = ("d_model", "d_ff", "n_tokens")
_ATTENTION_SIZES = ("n_heads", "n_kv_heads", "head_dim", "seq_len", "batch")


class _Unusable(click.ClickException):
    """One line on stderr ("Error: ..."), exit status 2."""

    exit_code = 2


def _parse_shape(text: str | None, allowed: tuple[str, ...]) -> dict:
    sizes: dict[str, int] = {}
    if not text:
        return sizes
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise _Unusable(f"--shape takes KEY=INT pairs with KEY one of {', '.join(allowed)}; got {item!r}")
        try:
            sizes[key] = int(value)
        except ValueError:
            raise _Unusable(f"--shape {key} must be an integer; got {value!r}") from None
    return sizes


@click.command()
@click.option(
    "--op",
    required=True,
    type=click.Choice(["attention", *PAPER_VARIANTS]),  # swiglu_oss: not covered by the kit yet
    help="An FFN variant, or 'attention' (grouped-query).",
)
@click.option(
    "--dtype",
    "dtype",
    required=True,
    type=click.Choice(list(FORMATS)),
    help="The candidate's number format; inputs are rounded to it.",
)
@click.option(
    "--shape",
    default=None,
    metavar="KEY=INT,...",
    help=f"FFN: {', '.join(_FFN_SIZES)}; attention: {', '.join(_ATTENTION_SIZES)}.",
)
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1, 100), help="Seeds 0..N-1.")
@click.option(
    "--gelu",
    default="erf",
    show_default=True,
    type=click.Choice(["erf", "tanh"]),
    help="FFN: the GELU the candidate implements.",
)
@click.option(
    "--causal/--no-causal", default=True, show_default=True, help="Attention: causal (bottom-right)."
)
@click.option("--window", default=None, type=click.IntRange(min=1), help="Attention: sliding window.")
@click.option(
    "--softcap", default=None, type=click.FloatRange(min=0, min_open=True), help="Attention: softcap."
)
@click.option("--forward-only", is_flag=True, help="No upstream gradients or golden gradients.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The .npz file to write.",
)
def vectors(op, dtype, shape, seeds, gelu, causal, window, softcap, forward_only, output):
    """Write conformance test vectors: inputs, upstream gradients, golden results, baseline errors."""
    from .vectors import write_vectors

    if op == "attention":
        config = {"n_heads": 8, "n_kv_heads": 2, "head_dim": 64, "seq_len": 113, "batch": 2}
        config.update(_parse_shape(shape, _ATTENTION_SIZES))
        config.update(causal=causal, window=window, softcap=softcap)
    else:
        config = {
            "d_model": 64,
            "d_ff": 203,
            "n_tokens": 113,
            **_parse_shape(shape, _FFN_SIZES),
            "gelu": gelu,
        }
    try:
        meta = write_vectors(
            output, op, dtype=dtype, seeds=tuple(range(seeds)), backward=not forward_only, **config
        )
    except (ValueError, OSError) as exc:
        raise _Unusable(str(exc).splitlines()[0]) from None
    tensors = ", ".join(meta["cases"][0]["tensors"])
    click.echo(
        f"wrote {output}: {op}, {dtype}, {len(meta['cases'])} cases (tensors {tensors}), "
        f"sha256 {meta['sha256'][:16]}"
    )


@click.command()
@click.argument("vectors_file", type=click.Path(dir_okay=False))
@click.argument("candidate_file", type=click.Path(dir_okay=False))
@click.option("--no-baseline", is_flag=True, help="Judge by the absolute per-dtype backstop instead.")
def check(vectors_file, candidate_file, no_baseline):
    """Judge a candidate's results (CANDIDATE_FILE: <case>/<tensor> arrays) against VECTORS_FILE."""
    from .vectors import check_vectors

    try:
        report = check_vectors(vectors_file, candidate_file, rule=Rule(baseline=not no_baseline))
    except (ValueError, OSError) as exc:
        raise _Unusable(str(exc).splitlines()[0]) from None
    click.echo(str(report))
    if not report.passed:
        raise SystemExit(1)
