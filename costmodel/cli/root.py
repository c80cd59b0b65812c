"""The root ``glugqa`` group: the commands it carries, in the order ``glugqa --help`` lists them.

Every command is registered by name (:data:`COMMANDS`, :data:`REF_COMMANDS`) and its module is imported
only when that command runs: ``glugqa plan`` imports the plan command and the cost model it uses, not the
serving simulator, the accuracy report or the docs generator, and ``glugqa --help`` lists the commands from
their stored short help without importing any of them (``tests/test_cli_startup.py`` checks that each
stored help is the command's own). The reference's commands import neither JAX nor the reference's NumPy ops
until they run.

Errors: every ``ValueError`` / ``OSError`` / ``OverflowError`` from the cost model and every click usage
error becomes ONE line on stderr (``glugqa plan: error: ...``) and exit code 2 -- never a traceback
(:class:`~costmodel.cli.groups.RootGroup`).
"""

from __future__ import annotations

import click

from .groups import LazyGroup, RootGroup

# `glugqa <name>` -> ("module:attribute" of a click command, its short help); imported only when it runs.
# The order here is the order of `glugqa --help`.
COMMANDS = {
    "plan": (
        "costmodel.cli.plan:plan_command",
        "Capacity plan: largest batch that fits, TTFT, per-token time, tokens/s.",
    ),
    "serve": (
        "costmodel.cli.serve:serve_command",
        "Devices a request rate needs under TTFT/TPOT SLOs, per candidate, ranked.",
    ),
    "params": (
        "costmodel.cli.model:params_command",
        "Parameter count by component (per device with --tp); MoE: active too.",
    ),
    "flops": ("costmodel.cli.model:flops_command", "FLOPs of one decode step or one prefill, by component."),
    "kv": ("costmodel.cli.kv:kv_command", "KV cache size per device, against the same model as MHA."),
    "latency": (
        "costmodel.cli.model:latency_command",
        "Roofline latency of prefill and decode (per op: --breakdown).",
    ),
    "sweep": (
        "costmodel.cli.sweep:sweep_group",
        "A tradeoff along kv-heads, d-ff, batch, context or request rate.",
    ),
    "table": ("costmodel.cli.tables:table_group", "The papers' tables: GQA (MHA..MQA) and FFN variants."),
    "accuracy": (
        "costmodel.cli.accuracy:accuracy_command",
        "Predicted vs measured for published (or your) measurements.",
    ),
    "calibrate": (
        "costmodel.cli.accuracy:calibrate_command",
        "Fit the efficiency parameters to your measurements (k-fold checked).",
    ),
    "hardware": ("costmodel.cli.info:hardware_group", "Accelerator presets: peaks, bandwidth, memory, sources."),
    "models": ("costmodel.cli.info:models_group", "Model presets (dimensions only) and their sources."),
    "docs": ("costmodel.cli.docs:docs_command", "Regenerate docs/tables and docs/figures (--check)."),
}

# `glugqa ref <name>`, the same way (these need the reference, and `verify` needs JAX)
REF_COMMANDS = {
    "check": (
        "refimpl.conformance.cli:check",
        "Judge a candidate's results (CANDIDATE_FILE: <case>/<tensor> arrays) against VECTORS_FILE.",
    ),
    "vectors": (
        "refimpl.conformance.cli:vectors",
        "Write conformance test vectors: inputs, upstream gradients, golden results, baseline errors.",
    ),
    "verify": (
        "refimpl.jax.cli:verify",
        "Check the JAX port against the float64 NumPy reference on this backend.",
    ),
}


@click.group(
    cls=RootGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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


cli.add_command(ref)


def main() -> None:
    """The console script ``glugqa`` (pyproject: ``glugqa = "costmodel.cli:main"``)."""
    cli()
