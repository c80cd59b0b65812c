"""Options shared by the ``glugqa`` commands and how they become a ModelConfig, a Hardware and an Efficiency.

Model: a preset (``--model``, default Llama-3-8B) or a Hugging Face config.json (``--hf-config``), then any
raw dimension given replaces the base's (``--kv-heads 4`` on Llama-3-8B is Llama-3-8B with GQA-4).
Hardware: a preset (``--hardware``, default H100 SXM) or a chip of a TOML file (``--hardware-file``).
"""

from __future__ import annotations

import functools
from dataclasses import replace

import click

from refimpl.variants import FFN_VARIANTS

from ..config import DTYPES, ModelConfig, suggest
from ..hardware import HARDWARE, Hardware, get_hardware, load_hardware
from ..latency import DEFAULT_FLOPS_EFF, DEFAULT_HBM_EFF, DEFAULT_KERNEL_OVERHEAD_S, ESTIMATE, IDEAL, Efficiency
from ..models import MODELS, get_model
from ..notes import efficiency_profile
from .formats import FORMATS, render
from .param_types import (  # noqa: F401 -- re-exported
    BATCH_OR_MAX,
    COUNT,
    EFFICIENCY,
    FRACTION,
    HEADS,
    LAYERS,
    NONNEG,
    OVERHEAD_US,
    UTILIZATION,
    IntList,
    count_up_to,
)

DEFAULT_MODEL = "llama-3-8b"
DEFAULT_HARDWARE = "h100-sxm"
DEFAULT_CONTEXT = 8192

# option name -> ModelConfig field, for the raw dimensions
DIMENSION_OPTIONS = {
    "d_model": "d_model",
    "layers": "n_layers",
    "heads": "n_heads",
    "kv_heads": "n_kv_heads",
    "head_dim": "head_dim",
    "d_ff": "d_ff",
    "ffn": "ffn",
    "vocab": "vocab_size",
}


def _complete(names):
    def complete(ctx, param, incomplete):
        return [n for n in names if n.startswith(incomplete)]

    return complete


def check_name(kind: str, name: str, known, list_command: str) -> str:
    """``name`` if known, else ValueError suggesting the closest names and the command listing them all."""
    if name in known:
        return name
    raise ValueError(f"unknown {kind} {name!r}{suggest(name, known)}; `{list_command}` lists all {len(known)}")


def format_option(f):
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table/github/markdown/latex: human units (GB, ms); csv/json: raw SI numbers.",
    )(f)


def model_options(f):
    """--model/--hf-config and the raw dimensions; the command receives ``cfg: ModelConfig``."""
    options = [
        click.option(
            "--model",
            "-m",
            metavar="NAME",
            shell_complete=_complete(MODELS),
            help=f"Model preset (see `glugqa models list`). [default: {DEFAULT_MODEL}]",
        ),
        click.option(
            "--hf-config",
            type=click.Path(exists=True, dir_okay=True),
            metavar="PATH",
            help="A Hugging Face config.json (or its directory) instead of a preset.",
        ),
        click.option("--d-model", type=COUNT, help="Model width D."),
        click.option("--layers", type=LAYERS, help="Decoder layers L."),
        click.option("--heads", type=HEADS, help="Query heads N (an MHA base stays MHA)."),
        click.option("--kv-heads", type=HEADS, help="Key/value heads K (the GQA paper's G); must divide N."),
        click.option("--head-dim", type=COUNT, help="Head dimension Dh [default: D/N when D or N changes]."),
        click.option("--d-ff", type=COUNT, help="FFN hidden width F."),
        click.option("--ffn", type=click.Choice(list(FFN_VARIANTS)), help="FFN variant (Shazeer 2020)."),
        click.option("--vocab", type=COUNT, help="Vocabulary size V."),
    ]

    @functools.wraps(f)
    def wrapper(*args, model, hf_config, **kwargs):
        dims = {opt: kwargs.pop(opt) for opt in DIMENSION_OPTIONS}
        return f(*args, cfg=resolve_model(model, hf_config, dims), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def resolve_model(model: str | None, hf_config: str | None, dims: dict) -> ModelConfig:
    """The base (preset or config.json) with the given raw dimensions replaced; ValueError on conflicts."""
    if model is not None and hf_config is not None:
        raise ValueError("give either --model or --hf-config, not both")
    if hf_config is not None:
        from ..hf import load_hf_config  # noqa: PLC0415 -- only --hf-config needs the JSON reader

        try:
            base = load_hf_config(hf_config)
        except ValueError as exc:  # name the option the file came from (the message names the file and key)
            raise ValueError(f"--hf-config: {exc}") from None
    else:
        base = get_model(
            check_name("model", DEFAULT_MODEL if model is None else model, MODELS, "glugqa models list")
        )
    changes = {DIMENSION_OPTIONS[opt]: v for opt, v in dims.items() if v is not None}
    if not changes:
        return base
    if ("d_model" in changes or "n_heads" in changes) and "head_dim" not in changes:
        changes["head_dim"] = None  # derive D/N again
    if "n_heads" in changes and "n_kv_heads" not in changes and base.n_kv_heads == base.n_heads:
        changes["n_kv_heads"] = changes["n_heads"]  # MHA stays MHA
    given = ", ".join(f"{opt.replace('_', '-')}={v}" for opt, v in dims.items() if v is not None)
    return base.with_(name=f"{base.name} ({given})", **changes)


def hardware_options(f):
    """--hardware/--hardware-file; the command receives ``hw: Hardware``."""

    @functools.wraps(f)
    def wrapper(*args, hardware, hardware_file, **kwargs):
        return f(*args, hw=resolve_hardware(hardware, hardware_file), **kwargs)

    wrapper = click.option(
        "--hardware-file",
        type=click.Path(exists=True, dir_okay=False),
        metavar="PATH",
        help="A TOML file of chips (fields as in costmodel/data/hardware.toml).",
    )(wrapper)
    return click.option(
        "--hardware",
        "--hw",
        "hardware",
        metavar="NAME",
        shell_complete=_complete(HARDWARE),
        help=f"Accelerator preset or a chip of --hardware-file. [default: {DEFAULT_HARDWARE}]",
    )(wrapper)


def load_hardware_option(path: str) -> dict[str, Hardware]:
    """The chips of the --hardware-file ``path``; errors name the option (and the file, and the field)."""
    try:
        return load_hardware(path)
    except ValueError as exc:
        raise ValueError(f"--hardware-file: {exc}") from None


def resolve_hardware(name: str | None, path: str | None) -> Hardware:
    """A preset, or a chip of the user's TOML file (the only one, or the one ``name`` picks)."""
    if path is None:
        name = DEFAULT_HARDWARE if name is None else name
        return get_hardware(check_name("hardware", name, HARDWARE, "glugqa hardware list"))
    chips = load_hardware_option(path)
    if not chips:
        raise ValueError(f"--hardware-file: {path!r} defines no chip")
    if name is None:
        if len(chips) > 1:
            raise ValueError(f"--hardware-file: {path!r} defines {', '.join(chips)}; pick one with --hardware")
        return next(iter(chips.values()))
    if name in chips:
        return chips[name]
    return get_hardware(check_name("hardware", name, {**HARDWARE, **chips}, "glugqa hardware list"))


def dtype_options(f):
    f = click.option(
        "--kv-dtype",
        type=click.Choice(DTYPES),
        default=None,
        help="KV cache dtype. [default: the weight dtype; bf16 for int8/int4 weights (weight-only quantization)]",
    )(f)
    return click.option(
        "--weight-dtype",
        type=click.Choice(DTYPES),
        default="bf16",
        show_default=True,
        help="Weight dtype (int8/int4: weight-only quantization, bf16 compute).",
    )(f)


def tp_option(f):
    return click.option(
        "--tp",
        "--devices",
        "tp",
        type=COUNT,
        default=1,
        show_default=True,
        help="Tensor-parallel devices (Megatron split; KV heads replicated when tp > K).",
    )(f)


def ep_option(f):
    return click.option(
        "--ep",
        type=COUNT,
        default=1,
        show_default=True,
        help="Expert-parallel groups of --tp devices each (MoE models): each holds E/ep whole experts and "
        "serves batch/ep sequences; two all-to-alls per MoE layer.",
    )(f)


ACTIVE_LABELS = {
    "with_embeddings": "active parameters per token (embeddings included)",
    "no_input_embedding": "active parameters per token (input embedding left out)",
}


def active_convention_option(f):
    return click.option(
        "--active-convention",
        type=click.Choice(list(ACTIVE_LABELS)),
        default="with_embeddings",
        show_default=True,
        help="How MoE active parameters count embeddings: with_embeddings as the Mixtral and Qwen cards, "
        "no_input_embedding as the gpt-oss card.",
    )(f)


def given(ctx: click.Context, name: str) -> bool:
    """True when the user set option ``name`` (not its default)."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def check_active_convention(cfg) -> None:
    """--active-convention given for a dense model is an error, as --ep is: the commands show active
    parameters only for mixture-of-experts models, so it would change nothing."""
    if cfg.moe is None and given(click.get_current_context(), "active_convention"):
        raise ValueError(f"--active-convention applies to mixture-of-experts models; {cfg.name!r} has no experts "
                         "(every parameter is active)")  # fmt: skip


EFFICIENCY_FLAGS = {  # option -> (Efficiency field, CLI value -> field value)
    "flops_eff": ("flops", float),
    "hbm_eff": ("hbm", float),
    "link_eff": ("link", float),
    "overhead_us": ("kernel_overhead_s", lambda us: us * 1e-6),
}


def resolve_efficiency(*, ideal: bool, efficiency_file: str | None, **flags) -> Efficiency:
    """IDEAL (--ideal), else the profile of --efficiency-file or ESTIMATE, with each flag given replacing
    its parameter. ValueError naming the options for contradictions and the file for a bad profile."""
    given = {k: v for k, v in flags.items() if v is not None}
    if ideal:
        clash = [f"--{k.replace('_', '-')}" for k in given] + (["--efficiency-file"] if efficiency_file else [])
        if clash:
            raise ValueError(f"--ideal sets every efficiency to 1 and every overhead to 0; drop {', '.join(clash)}")
        return IDEAL
    base = ESTIMATE
    if efficiency_file is not None:
        from ..efficiency_file import load_efficiency  # noqa: PLC0415 -- only --efficiency-file reads TOML

        try:
            base = load_efficiency(efficiency_file)
        except ValueError as exc:
            raise ValueError(f"--efficiency-file: {exc}") from None
    return replace(base, **{EFFICIENCY_FLAGS[k][0]: EFFICIENCY_FLAGS[k][1](v) for k, v in given.items()})


EFFICIENCY_META = "glugqa.efficiency"  # click context meta: (note, summary) of the profile the options chose


def efficiency_options(f):
    """--efficiency-file --flops-eff --hbm-eff --link-eff --overhead-us --ideal; the command receives
    ``eff: Efficiency`` (ESTIMATE, a calibrated profile, or IDEAL; each flag replaces one parameter), and
    every report it emits names that profile (:func:`emit`)."""

    @functools.wraps(f)
    def wrapper(*args, flops_eff, hbm_eff, link_eff, overhead_us, ideal, efficiency_file, **kwargs):
        eff = resolve_efficiency(
            ideal=ideal, efficiency_file=efficiency_file, flops_eff=flops_eff, hbm_eff=hbm_eff,
            link_eff=link_eff, overhead_us=overhead_us,
        )  # fmt: skip
        click.get_current_context().meta[EFFICIENCY_META] = efficiency_profile(eff, file=efficiency_file)
        return f(*args, eff=eff, **kwargs)

    options = [
        click.option(
            "--efficiency-file",
            type=click.Path(dir_okay=False),
            metavar="PATH",
            help="An efficiency profile (TOML; `glugqa calibrate` writes one). [default: the sourced estimate]",
        ),
        click.option(
            "--flops-eff",
            type=EFFICIENCY,
            help=f"Achieved fraction of peak FLOP/s (16-bit GEMMs). [default: {DEFAULT_FLOPS_EFF}]",
        ),
        click.option(
            "--hbm-eff",
            type=EFFICIENCY,
            help=f"Achieved fraction of HBM bandwidth. [default: {DEFAULT_HBM_EFF}]",
        ),
        click.option(
            "--link-eff",
            type=EFFICIENCY,
            help=f"Achieved fraction of link bandwidth in collectives. [default: {ESTIMATE.link}]",
        ),
        click.option(
            "--overhead-us",
            type=OVERHEAD_US,
            help=f"Fixed cost per kernel, microseconds. [default: {DEFAULT_KERNEL_OVERHEAD_S * 1e6:g}]",
        ),
        click.option("--ideal", is_flag=True, help="Pure roofline: efficiencies 1, no overheads or latencies."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def encoder_len_option(f):
    """--encoder-len (encoder-decoder models only); the command receives ``encoder_len`` (None: the context)."""
    return click.option(
        "--encoder-len",
        type=COUNT,
        help="Encoder-decoder models: source tokens the cross-attention cache holds. [default: the context]",
    )(f)


def check_encoder_len(cfg, encoder_len) -> None:
    if encoder_len is not None and not cfg.is_encoder_decoder:
        raise ValueError(f"--encoder-len applies to encoder-decoder models; {cfg.name!r} is decoder-only")


MAX_RESERVE_GIB = 1e6  # a runtime reserve beyond any device (keeps byte counts exact integers)


def server_options(f):
    """The serving engine's memory and batching settings (vLLM's names and defaults); the command receives
    ``server: ServerConfig`` (defaults unresolved: they depend on the chip and tp)."""
    from ..budget import BLOCK_SIZE, MAX_BATCHED_TOKENS, MEMORY_UTILIZATION, ServerConfig  # noqa: PLC0415 -- light
    from ..hardware import GIB  # noqa: PLC0415

    @functools.wraps(f)
    def wrapper(*args, memory_utilization, block_size, max_num_batched_tokens, max_num_seqs, runtime_reserve_gib,
                **kwargs):  # fmt: skip
        if runtime_reserve_gib is not None and runtime_reserve_gib > MAX_RESERVE_GIB:
            raise ValueError(f"--runtime-reserve-gib must be at most {MAX_RESERVE_GIB:g}; got {runtime_reserve_gib:g}")
        server = ServerConfig(
            memory_utilization=memory_utilization,
            block_size=block_size,
            max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs,
            runtime_reserve_bytes=None if runtime_reserve_gib is None else round(runtime_reserve_gib * GIB),
        )
        return f(*args, server=server, **kwargs)

    options = [
        click.option("--memory-utilization", type=UTILIZATION, default=MEMORY_UTILIZATION, show_default=True,
                     help="Fraction of device memory the server may use (vLLM's gpu_memory_utilization)."),
        click.option("--block-size", type=COUNT, default=BLOCK_SIZE, show_default=True,
                     help="Tokens per KV-cache block (PagedAttention); each layer's cache is whole blocks."),
        click.option("--max-num-batched-tokens", type=count_up_to(MAX_BATCHED_TOKENS),
                     help="Tokens per iteration: the prefill chunk, whose activation peak is reserved. "
                     "[default: vLLM's, 8192 on >= 70 GiB chips but A100s, else 2048]"),
        click.option("--max-num-seqs", type=count_up_to(MAX_BATCHED_TOKENS),
                     help="Most sequences running at once. [default: vLLM's, 1024 on >= 70 GiB chips but A100s, "
                     "else 256]"),
        click.option("--runtime-reserve-gib", type=NONNEG,
                     help="GiB per device outside tensors: CUDA context, NCCL, CUDA graphs. "
                     "[default: 2.79, 4.58 with --tp > 1]"),
    ]  # fmt: skip
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def emit(report, fmt: str) -> None:
    """Print ``report`` in ``fmt``. A command with the efficiency options adds the profile its times come from:
    a note line and the JSON key "efficiency" (unless the report states its own "efficiency")."""
    ctx = click.get_current_context(silent=True)
    profile = ctx.meta.get(EFFICIENCY_META) if ctx is not None else None
    if profile is not None and "efficiency" not in report.meta:
        note, summary = profile
        report = replace(report, notes=[*report.notes, note], meta={**report.meta, "efficiency": summary})
    click.echo(render(report, fmt))
