"""The assumptions a result rests on, one line each: the notes ``glugqa`` prints under a report's title.

A note says what changed a number or what the number takes for granted: a sliding window that shortened the
KV cache, an encoder length taken as the context, a context beyond the model's trained length, the experts a
MoE decode step reads, the KV dtype a weight-only quantized model keeps, the quantization its checkpoint
states, and the efficiency profile every time comes from (:func:`efficiency_note`).
"""

from __future__ import annotations

from .config import WEIGHT_ONLY_DTYPES, ModelConfig, dtype_bytes
from .moe import expected_experts
from .roofline import ESTIMATE, IDEAL, PARAM_BY_NAME, Efficiency

SIGNIFICANT = 4  # digits of a parameter in a note
NANOSECOND = 1e-9  # a time shorter than this is shown as 0 (a fitted latency at its lower bound)


def seconds_text(value: float, digits: int = SIGNIFICANT) -> str:
    """A fixed latency for people: ``1.2 ms``, ``3.25 us``, and ``0 us`` below a nanosecond (a fitted latency
    at its lower bound of 0 comes out of the optimizer as 1e-18 s, not as 0)."""
    if value >= 1e-3:
        return f"{value * 1e3:.{digits}g} ms"
    return f"{value * 1e6:.{digits}g} us" if value >= NANOSECOND else "0 us"


def param_text(name: str, value) -> str:
    """One efficiency parameter or setting for people, at most 4 significant digits: fractions as they are
    (``0.6965``), times by :func:`seconds_text`, settings on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if name in PARAM_BY_NAME and PARAM_BY_NAME[name].unit == "s":
        return seconds_text(value)
    return f"{value:.{SIGNIFICANT}g}"


def efficiency_changes(eff: Efficiency, base: Efficiency = ESTIMATE) -> dict:
    """{name: value} of the parameters and settings of ``eff`` that differ from ``base``'s, in PARAMS order."""
    return {k: v for k, v in eff.values().items() if v != getattr(base, k)}


def efficiency_profile(eff: Efficiency, *, file: str | None = None) -> tuple[str, dict]:
    """(note, machine-readable summary) of the efficiency profile behind a result: the default estimate, the
    ideal roofline, or the profile read from ``file``, with every parameter that differs from the default
    estimate (the summary holds them at full precision, the note to 4 significant digits)."""
    if file is None and eff == IDEAL:
        return "efficiency: ideal roofline (every efficiency 1, no overheads or latencies)", {"profile": "ideal"}
    changed = efficiency_changes(eff)
    shown = ", ".join(f"{k} {param_text(k, v)}" for k, v in changed.items())
    if file is None:
        note = "efficiency: default estimate" + (f", except {shown}" if changed else "")
        return note, {"profile": "estimate", "changed": changed}
    differs = f"differs from the default estimate in {shown}" if changed else "same as the default estimate"
    return f"efficiency: profile {file} ({differs})", {"profile": "file", "file": file, "changed": changed}


def window_note(cfg: ModelConfig, *, context: int) -> list[str]:
    """The note of the sliding-window layers that hold fewer than ``context`` positions (none: [])."""
    windowed = [layer for layer in cfg.layers if layer.window is not None and layer.window < context]
    if not windowed:
        return []
    windows = sorted({layer.window for layer in windowed})
    return [
        f"sliding window: {len(windowed)} of {cfg.n_layers} layers keep only the last "
        f"{', '.join(f'{w:,}' for w in windows)} positions of the {context:,}-token context"
    ]


def encoder_note(cfg: ModelConfig, *, context: int, encoder_len: int | None) -> list[str]:
    """The note an encoder-decoder's cross-attention cache needs when its source length was not given."""
    if not cfg.is_encoder_decoder or encoder_len is not None:
        return []
    return [
        f"cross-attention cache: the encoder length is taken as the context ({context:,} tokens); "
        "give --encoder-len for your source length"
    ]


def kv_dtype_note(weight_dtype: str, kv_dtype: str | None, *, act_dtype: str = "bf16") -> list[str]:
    """The note of a KV dtype chosen for the user because the weights are weight-only quantized (none: [])."""
    if kv_dtype is not None or weight_dtype not in WEIGHT_ONLY_DTYPES:
        return []
    return [
        f"KV cache in {act_dtype}: {weight_dtype} is weight-only quantization (activations stay {act_dtype}, as "
        "vLLM's kv_cache_dtype 'auto'); --kv-dtype sets it"
    ]


def quantization_note(cfg: ModelConfig, *, weight_dtype: str) -> list[str]:
    """The note of a checkpoint whose config.json states a ``quantization_config``: what its weights are
    stored as, and what the plan counts instead (the weight dtype is always the user's choice)."""
    if not cfg.quantization:
        return []
    per = float(dtype_bytes(weight_dtype, "weight_dtype"))
    stated = f"config.json's quantization_config: {cfg.quantization}; this plan counts every weight at {weight_dtype}"
    if weight_dtype in WEIGHT_ONLY_DTYPES:
        return [f"{stated} ({per:g} byte per weight, group scales not counted)"]
    return [
        f"{stated} ({per:g} byte{'s' if per > 1 else ''}; --weight-dtype sets it); ~4-bit weights: --weight-dtype "
        "int4 (0.5 byte per weight, group scales not counted)"
    ]


def plan_notes(
    cfg: ModelConfig, *, context: int, batch: int, encoder_len: int | None = None, weight_dtype: str = "bf16"
) -> tuple[str, ...]:
    """The assumptions that changed a plan's numbers, one line each (empty for a dense decoder-only model
    with full attention inside its context and no stated quantization)."""
    notes = window_note(cfg, context=context)
    notes += encoder_note(cfg, context=context, encoder_len=encoder_len)
    if cfg.max_position and context > cfg.max_position:
        notes.append(f"context {context:,} is beyond the model's max_position_embeddings {cfg.max_position:,}")
    notes += quantization_note(cfg, weight_dtype=weight_dtype)
    if cfg.moe is not None and batch >= 1:
        touched = expected_experts(cfg.moe.n_experts, cfg.moe.top_k, batch)
        notes.append(
            f"MoE: a decode step of {batch} tokens reads ~{touched:.1f} of {cfg.moe.n_experts} experts per layer "
            f"(top-{cfg.moe.top_k}, tokens routed uniformly at random)"
        )
    return tuple(notes)
