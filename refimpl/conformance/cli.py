"""``glugqa ref vectors`` and ``glugqa ref check``: conformance through files, for kernels outside Python.

    glugqa ref vectors --op swiglu --dtype bf16 --shape d_model=64,d_ff=203,n_tokens=113 -o swiglu.npz
    glugqa ref vectors --op moe --variant swiglu_oss --routing topk_softmax --bias --dtype bf16 -o oss.npz
    glugqa ref vectors --op attention --sinks --window 128 --dtype bf16 -o gpt_oss_attention.npz
    glugqa ref check swiglu.npz candidate.npz         # exit 0 conforms, 1 does not, 2 unusable input

An option that does not apply to the chosen op (OPTIONS: which ops each option applies to) is an error, never
ignored. Errors (bad options, sizes beyond the kit's bound, unreadable or mismatched files) are ValueErrors:
the ``glugqa`` root turns them into one line, "glugqa ref check: error: ...", and exit status 2.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from ..router import ROUTINGS
from ..variants import FFN_VARIANTS, get_variant
from .dtypes import FORMATS
from .policy import Rule

SIZES = {
    "ffn": {"d_model": 64, "d_ff": 203, "n_tokens": 113},
    "attention": {"n_heads": 8, "n_kv_heads": 2, "head_dim": 64, "seq_len": 113, "batch": 2},
    "moe": {"d_model": 64, "d_ff": 47, "n_tokens": 113, "n_experts": 8, "top_k": 2, "n_shared": 0, "shared_d_ff": None},
}
_MAX_DIGITS = 18  # a --shape value has at most this many digits (sizes are bounded again by the kit)


def _family(op: str) -> str:
    return op if op in ("attention", "moe") else "ffn"


def _activation(op: str, variant: str) -> str | None:
    """The experts' (or the FFN's) activation name; None for attention."""
    if op == "attention":
        return None
    return get_variant(variant if op == "moe" else op).activation


def _activation_of_oss(op: str, variant: str) -> bool:
    return op == "swiglu_oss" or (op == "moe" and variant == "swiglu_oss")


# option (click parameter name) -> (what it applies to, predicate(op, expert variant) -> bool)
OPTIONS = {
    "gelu": ("GELU variants (gelu, geglu; moe --variant gelu|geglu)", lambda op, v: _activation(op, v) == "gelu"),
    "alpha": ("swiglu_oss (and moe --variant swiglu_oss)", lambda op, v: _activation_of_oss(op, v)),
    "limit": ("swiglu_oss (and moe --variant swiglu_oss)", lambda op, v: _activation_of_oss(op, v)),
    "bias": ("FFN variants and moe", lambda op, v: op != "attention"),
    "variant": ("moe", lambda op, v: op == "moe"),
    "routing": ("moe", lambda op, v: op == "moe"),
    "normalize": ("moe", lambda op, v: op == "moe"),
    "router_bias": ("moe", lambda op, v: op == "moe"),
    "shared_gate": ("moe", lambda op, v: op == "moe"),
    "causal": ("attention", lambda op, v: op == "attention"),
    "window": ("attention", lambda op, v: op == "attention"),
    "softcap": ("attention", lambda op, v: op == "attention"),
    "scale": ("attention", lambda op, v: op == "attention"),
    "sinks": ("attention", lambda op, v: op == "attention"),
}  # fmt: skip


def _flag(param: click.Parameter) -> str:
    """"--window", or "--causal/--no-causal" for a flag pair."""
    return "/".join([max(param.opts, key=len), *param.secondary_opts])


def _check_applicable(ctx: click.Context, op: str, variant: str) -> None:
    """ValueError for an option given on the command line that does not apply to ``op``."""
    for param in ctx.command.params:
        if param.name in OPTIONS and ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT:
            applies_to, applies = OPTIONS[param.name]
            if not applies(op, variant):
                what = f"--op {op}" + (f" --variant {variant}" if op == "moe" else "")
                raise ValueError(f"{_flag(param)} does not apply to {what}; it applies to {applies_to}")


def _parse_shape(text: str | None, op: str) -> dict:
    allowed = SIZES[_family(op)]
    sizes: dict[str, int] = {}
    for item in (text or "").split(",") if text else []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in allowed:
            raise ValueError(f"--shape takes KEY=INT pairs with KEY one of {', '.join(allowed)} for --op {op}; "
                             f"got {item!r}")  # fmt: skip
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
            raise ValueError(f"--shape {key} must be an integer of at most {_MAX_DIGITS} digits; got {value!r:.40}")
        if key in sizes:
            raise ValueError(f"--shape gives {key} twice; give each size once")
        sizes[key] = int(value)
    return sizes


@click.command()
@click.option("--op", required=True, type=click.Choice(["attention", "moe", *FFN_VARIANTS]),
              help="An FFN variant, 'attention' (grouped-query) or 'moe' (mixture of experts).")
@click.option("--dtype", "dtype", required=True, type=click.Choice(list(FORMATS)),
              help="The candidate's number format; inputs are rounded to it.")
@click.option("--shape", default=None, metavar="KEY=INT,...",
              help="; ".join(f"{f}: {', '.join(s)}" for f, s in SIZES.items()))
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1, 100), help="Seeds 0..N-1.")
@click.option("--gelu", default="erf", show_default=True, type=click.Choice(["erf", "tanh"]),
              help="GELU variants: the GELU the candidate implements.")
@click.option("--alpha", default=None, type=click.FloatRange(min=0, min_open=True, max=1e6),
              help="swiglu_oss: sigmoid's alpha (default 1.702).")
@click.option("--limit", default=None, type=click.FloatRange(min=0, min_open=True, max=1e6),
              help="swiglu_oss: the clamp (default 7.0).")
@click.option("--bias", is_flag=True, help="FFN and moe: every matrix has a bias.")
@click.option("--variant", default="swiglu", show_default=True, type=click.Choice(list(FFN_VARIANTS)),
              help="moe: the experts' FFN variant.")
@click.option("--routing", default="softmax_topk", show_default=True, type=click.Choice(ROUTINGS),
              help="moe: softmax over E then top-k, or top-k then softmax (gpt-oss).")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="moe, softmax_topk: renormalise the top-k weights (Mixtral) or not.")
@click.option("--router-bias", is_flag=True, help="moe: the router has a bias.")
@click.option("--shared-gate", is_flag=True, help="moe: the shared experts are gated by sigmoid(x w).")
@click.option("--causal/--no-causal", default=True, show_default=True, help="Attention: causal (bottom-right).")
@click.option("--window", default=None, type=click.IntRange(min=1), help="Attention: sliding window.")
@click.option("--softcap", default=None, type=click.FloatRange(min=0, min_open=True), help="Attention: softcap.")
@click.option("--scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Attention: score scale (default 1/sqrt(head_dim)).")
@click.option("--sinks", is_flag=True, help="Attention: one sink logit per query head (gpt-oss).")
@click.option("--forward-only", is_flag=True, help="No upstream gradients or golden gradients.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The .npz file to write.")  # fmt: skip
@click.pass_context
def vectors(ctx, op, dtype, shape, seeds, forward_only, output, **options):
    """Write conformance test vectors: inputs, upstream gradients, golden results, baseline errors."""
    from ..outfile import check_output
    from .vectors import write_vectors

    check_output(output, what="--output")
    _check_applicable(ctx, op, options["variant"])
    family = _family(op)
    config = {**SIZES[family], **_parse_shape(shape, op)}
    config.update({k: options[k] for k, (_, applies) in OPTIONS.items() if applies(op, options["variant"])})
    if family == "moe" and config["n_shared"] == 0:
        config.pop("shared_d_ff")
        if config.pop("shared_gate"):
            raise ValueError("--shared-gate needs shared experts: --shape n_shared=N with N >= 1")
    meta = write_vectors(output, op, dtype=dtype, seeds=tuple(range(seeds)), backward=not forward_only, **config)
    tensors = ", ".join(meta["cases"][0]["tensors"])
    click.echo(f"wrote {output}: {op}, {dtype}, {len(meta['cases'])} cases (tensors {tensors}), "
               f"sha256 {meta['sha256'][:16]}")  # fmt: skip


@click.command()
@click.argument("vectors_file", type=click.Path(dir_okay=False))
@click.argument("candidate_file", type=click.Path(dir_okay=False))
@click.option("--no-baseline", is_flag=True, help="Judge by the absolute per-dtype backstop instead.")
def check(vectors_file, candidate_file, no_baseline):
    """Judge a candidate's results (CANDIDATE_FILE: <case>/<tensor> arrays) against VECTORS_FILE."""
    from .vectors import check_vectors

    report = check_vectors(vectors_file, candidate_file, rule=Rule(baseline=not no_baseline))
    click.echo(str(report))
    if not report.passed:
        raise SystemExit(1)
