"""A model is a list of layers: each with its attention kind (full, or sliding with a window) and its FFN
(dense, or routed experts). Uniform models are the special case. Also the mixture-of-experts block and the
RoPE scaling a config carries.

Shape legend: D d_model, F d_ff, E experts, k experts per token (top-k), L layers, W sliding window.

Pure Python: no NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .checks import check_bool, nonneg_int, one_of, positive_float, positive_int, show

ATTENTION_KINDS = ("full", "sliding")
FFN_KINDS = ("dense", "moe")
# Hugging Face's per-layer names (Transformers 5 writes ``layer_types`` into config.json) -> ours
HF_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


class Layer(NamedTuple):
    """One decoder layer: ``attention`` "full" or "sliding" (``window`` W keys per query, the query's own
    position included, as Hugging Face's sliding mask and Mistral), ``ffn`` "dense" or "moe"."""

    attention: str
    window: int | None
    ffn: str

    def positions(self, context: int) -> int:
        """Keys this layer holds (and a decode step at ``context`` attends): context, or min(context, W)."""
        return context if self.window is None else min(context, self.window)

    @property
    def attention_label(self) -> str:
        """'full' or 'sliding (W=128)'."""
        return "full" if self.window is None else f"sliding (W={self.window})"


@dataclass(frozen=True)
class MoE:
    """A mixture-of-experts FFN block (Shazeer et al. 2017; Switch/GShard; Mixtral, Qwen-MoE, gpt-oss).

    Every expert is the model's registry FFN variant (``ModelConfig.ffn``, with ``ModelConfig.ffn_bias``):
    ``n_experts`` E routed experts of width ``d_ff`` (F_e), of which each token uses ``top_k`` k; a router
    W_router (D, E) (+ a bias of E when ``router_bias``, gpt-oss); ``n_shared`` shared experts of width
    ``shared_d_ff`` (default ``d_ff``) that every token uses; ``shared_gate``: Qwen2-MoE scales the shared
    expert's output by sigmoid(x·w) with w (D, 1).
    """

    n_experts: int
    top_k: int
    d_ff: int
    n_shared: int = 0
    shared_d_ff: int | None = None
    shared_gate: bool = False
    router_bias: bool = False

    def __post_init__(self):
        for f in ("n_experts", "top_k", "d_ff"):
            object.__setattr__(self, f, positive_int(f"moe.{f}", getattr(self, f)))
        if self.top_k > self.n_experts:
            raise ValueError(f"moe.top_k must be <= moe.n_experts={self.n_experts}; got {self.top_k}")
        object.__setattr__(self, "n_shared", nonneg_int("moe.n_shared", self.n_shared))
        if self.shared_d_ff is not None:
            object.__setattr__(self, "shared_d_ff", positive_int("moe.shared_d_ff", self.shared_d_ff))
            if self.n_shared == 0:
                raise ValueError("moe.shared_d_ff needs moe.n_shared >= 1")
        for f in ("shared_gate", "router_bias"):
            check_bool(f"moe.{f}", getattr(self, f))
        if self.shared_gate and self.n_shared == 0:
            raise ValueError("moe.shared_gate needs moe.n_shared >= 1")

    @property
    def shared_width(self) -> int:
        """Width of each shared expert (``shared_d_ff``, else ``d_ff``)."""
        return self.d_ff if self.shared_d_ff is None else self.shared_d_ff


class RopeScaling(NamedTuple):
    """A config's RoPE scaling, carried for notes (it costs nothing): ``kind`` as Hugging Face names it
    ("llama3", "yarn", "linear", "longrope", ...), ``factor``, ``original_max_position`` (0: not given)."""

    kind: str
    factor: float
    original_max_position: int = 0

    def check(self) -> RopeScaling:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"rope_scaling.kind must be a non-empty string; got {show(self.kind)}")
        factor = positive_float("rope_scaling.factor", self.factor)
        original = nonneg_int("rope_scaling.original_max_position", self.original_max_position)
        return RopeScaling(self.kind, factor, original)


def check_layer_types(value, n_layers: int) -> tuple[str, ...] | None:
    """``layer_types`` as a tuple of "full"/"sliding" of length ``n_layers`` (Hugging Face's
    "full_attention"/"sliding_attention" accepted); None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"layer_types must be a sequence of 'full'/'sliding', one per layer; got {show(value)}")
    kinds = tuple(value)
    out = []
    for i, kind in enumerate(kinds):
        kind = HF_LAYER_TYPES.get(kind, kind) if isinstance(kind, str) else kind
        out.append(one_of(f"layer_types[{i}]", kind, ATTENTION_KINDS))
    if len(out) != n_layers:
        raise ValueError(
            f"layer_types must have one entry per layer (n_layers={n_layers}); got {len(out)} entries"
        )
    return tuple(out)


def check_layer_indices(name: str, value, n_layers: int) -> tuple[int, ...]:
    """Sorted distinct layer indices in [0, n_layers)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of layer indices; got {show(value)}")
    out = set()
    for i in tuple(value):
        if not (hasattr(i, "__index__") and not isinstance(i, bool)) or not 0 <= int(i) < n_layers:
            raise ValueError(f"{name} must hold layer indices in [0, {n_layers}); got {show(i)}")
        out.add(int(i))
    return tuple(sorted(out))


def build_layers(
    n_layers: int, layer_types, sliding_window, moe, dense_layers: tuple[int, ...]
) -> tuple[Layer, ...]:
    """The per-layer list: layer i is sliding (window W) when ``layer_types[i] == "sliding"``, or, with no
    ``layer_types``, when a ``sliding_window`` is set (Mistral: every layer windowed); its FFN is "moe" when
    the model has a MoE block and i is not in ``dense_layers``."""
    kinds = layer_types or ("sliding" if sliding_window is not None else "full",) * n_layers
    dense = set(dense_layers)
    return tuple(
        Layer(kind, sliding_window if kind == "sliding" else None, "moe" if moe and i not in dense else "dense")
        for i, kind in enumerate(kinds)
    )


def group_layers(layers) -> tuple[tuple[Layer, int], ...]:
    """(layer, count) for each distinct layer, in order of first appearance; costs are summed per group."""
    counts: dict[Layer, int] = {}
    for layer in layers:
        counts[layer] = counts.get(layer, 0) + 1
    return tuple(counts.items())


def attention_pattern(layers) -> str:
    """One line: '18 sliding (W=128) + 18 full', or '32 full' for a uniform model."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.attention_label] = counts.get(layer.attention_label, 0) + 1
    return " + ".join(f"{n} {label}" for label, n in counts.items())
