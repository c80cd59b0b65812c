"""ModelConfig (frozen, validated on construction) and dtype byte sizes.

Shape legend (as everywhere in glugqa): B batch, T query length, S key/value length, D d_model, F d_ff,
N query heads (the GQA paper's H), K key/value heads (the paper's G), R = N/K, Dh head dim, V vocab, L layers,
E experts, k experts per token, W sliding window.

Pure Python: importing this module pulls in neither NumPy nor JAX (only ``refimpl.variants``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from refimpl.variants import FFN_VARIANTS, FFNVariant

from .checks import (  # noqa: F401  (re-exported: the historical home of these names)
    MAX_COUNT,
    MAX_HEADS,
    MAX_LAYERS,
    bounded_int,
    check_bool,
    closest_names,
    fraction_in_unit,
    nonneg_int,
    one_of,
    positive_float,
    positive_int,
    show,
    suggest,
    unknown_name,
)
from .layers import (
    Layer,
    MoE,
    RopeScaling,
    attention_pattern,
    build_layers,
    check_layer_indices,
    check_layer_types,
    group_layers,
)

# Bytes per element. Sub-byte types are exact fractions (never //): int4 packs two values per byte.
DTYPE_BYTES: dict[str, Fraction] = {
    "fp64": Fraction(8),
    "fp32": Fraction(4),
    "bf16": Fraction(2),
    "fp16": Fraction(2),
    "fp8": Fraction(1),
    "int8": Fraction(1),
    "int4": Fraction(1, 2),
}
DTYPES = tuple(DTYPE_BYTES)
NORM_KINDS = ("rmsnorm", "layernorm", "none")
POSITION_KINDS = ("rope", "learned", "relative", "none")


def dtype_bytes(name: str, field_name: str = "dtype") -> Fraction:
    """Bytes per element of ``name`` (exact Fraction: int4 -> 1/2). ValueError naming ``field_name``."""
    return DTYPE_BYTES[one_of(field_name, name, DTYPES)]


# weight-only quantization (GPTQ/AWQ-style int8/int4): the weights are dequantized in the kernel and every
# activation, the KV cache included, stays in the activation dtype
WEIGHT_ONLY_DTYPES = ("int8", "int4")


def resolve_kv_dtype(kv_dtype: str | None, weight_dtype: str, act_dtype: str = "bf16") -> str:
    """The KV cache dtype: ``kv_dtype`` when given; else the activation dtype for weight-only quantized
    weights (int8/int4), else the weight dtype. As vLLM's ``kv_cache_dtype="auto"``, which keeps the cache
    in the model's activation dtype (int4 weights with bf16 compute keep a bf16 cache)."""
    if kv_dtype is not None:
        return kv_dtype
    return act_dtype if weight_dtype in WEIGHT_ONLY_DTYPES else weight_dtype


def as_number(x: Fraction | int):
    """An exact count as int when whole, else float (only sub-byte dtypes give fractional bytes)."""
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


@dataclass(frozen=True)
class ModelConfig:
    """Dimensions of a (decoder-only or encoder-decoder) transformer; validated on construction.

    ``n_layers`` counts the decoder layers (all layers of a decoder-only model). ``n_encoder_layers > 0``
    makes it an encoder-decoder (T5): encoder layers have self-attention + FFN, decoder layers add
    cross-attention with its own KV cache (computed once from the encoder output).

    ``n_layers`` and ``n_encoder_layers`` are at most MAX_LAYERS (4096) and ``n_heads`` at most MAX_HEADS
    (65536): far above any real model, and they bound the per-layer and per-divisor work of every command.
    head_dim defaults to d_model // n_heads but may differ (Gemma: 256 with d_model 3072 and 16 heads).
    Biases: ``qkv_bias`` (Qwen2), ``out_bias`` (attention output), ``ffn_bias`` (every FFN matrix).
    ``norm``: "rmsnorm" (weight only, D params), "layernorm" (weight and bias, 2D), "none".
    ``position``: "rope"/"none" (no parameters), "learned" (max_position x D table), "relative" (T5: a
    relative_buckets x N bias table in the first layer of each stack). ``max_position`` is the learned table's
    length, and for other kinds the context the model was built for (0: unknown; carried for notes).

    Layers may differ (:attr:`layers`, one :class:`Layer` each):
    - ``sliding_window`` W with ``layer_types=None``: every layer is windowed (Mistral). With ``layer_types``
      (one "full"/"sliding" per decoder layer, as Hugging Face's ``layer_types``), only the "sliding" layers
      are, all with the same W (Gemma 2/3, gpt-oss, Qwen2 from ``max_window_layers``). A uniform
      ``layer_types`` is stored as None, so equal models compare equal however they were written.
    - ``moe``: a :class:`MoE` block replaces the FFN of every layer except ``dense_layers``.
    Carried per layer: ``attn_sinks`` (one learned logit per query head: N parameters, no KV; gpt-oss),
    ``qk_norm`` (an RMSNorm of Dh weights on q and on k; Qwen3, Gemma 3), ``post_norms`` (a norm after the
    attention and after the FFN as well as before each: 4 per layer; Gemma 2/3). Carried for notes only (no
    cost): ``attn_softcap``, ``final_softcap`` (tanh logit capping), ``rope_scaling``, and ``quantization``:
    the weight quantization the checkpoint's config.json states (e.g. "mxfp4"; the weight dtype of a plan is
    always chosen by the caller).
    """

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    vocab_size: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    ffn: str = "swiglu"
    tied_embeddings: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    ffn_bias: bool = False
    norm: str = "rmsnorm"
    position: str = "rope"
    max_position: int = 0
    relative_buckets: int = 0
    sliding_window: int | None = None
    n_encoder_layers: int = 0
    name: str = field(default="custom", compare=False)
    source: str = field(default="", compare=False)
    layer_types: tuple | None = None
    moe: MoE | None = None
    dense_layers: tuple = ()
    attn_sinks: bool = False
    qk_norm: bool = False
    post_norms: bool = False
    attn_softcap: float | None = None
    final_softcap: float | None = None
    rope_scaling: RopeScaling | None = None
    quantization: str = field(default="", compare=False)

    def __post_init__(self):
        for f in ("d_model", "d_ff", "vocab_size"):
            object.__setattr__(self, f, positive_int(f, getattr(self, f)))
        # a list of layers is built, and the GQA table plans every divisor of N: both bounded (checks.py)
        object.__setattr__(self, "n_layers", bounded_int("n_layers", self.n_layers, MAX_LAYERS))
        object.__setattr__(self, "n_heads", bounded_int("n_heads", self.n_heads, MAX_HEADS))
        n_kv = self.n_heads if self.n_kv_heads is None else positive_int("n_kv_heads", self.n_kv_heads)
        if self.n_heads % n_kv:
            raise ValueError(f"n_kv_heads must divide n_heads={self.n_heads}; got n_kv_heads={n_kv}")
        object.__setattr__(self, "n_kv_heads", n_kv)
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"head_dim must be given when n_heads={self.n_heads} does not divide d_model={self.d_model}"
                )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        else:
            object.__setattr__(self, "head_dim", positive_int("head_dim", self.head_dim))
        one_of("ffn", self.ffn, FFN_VARIANTS)
        for f in ("tied_embeddings", "qkv_bias", "out_bias", "ffn_bias", "attn_sinks", "qk_norm", "post_norms"):
            check_bool(f, getattr(self, f))
        one_of("norm", self.norm, NORM_KINDS)
        one_of("position", self.position, POSITION_KINDS)
        object.__setattr__(self, "max_position", nonneg_int("max_position", self.max_position))
        object.__setattr__(self, "relative_buckets", nonneg_int("relative_buckets", self.relative_buckets))
        if self.position == "learned" and self.max_position == 0:
            raise ValueError("max_position must be a positive integer when position='learned'; got 0")
        if self.position == "relative" and self.relative_buckets == 0:
            raise ValueError("relative_buckets must be a positive integer when position='relative'; got 0")
        if self.sliding_window is not None:
            object.__setattr__(self, "sliding_window", positive_int("sliding_window", self.sliding_window))
        object.__setattr__(self, "n_encoder_layers", bounded_int("n_encoder_layers", self.n_encoder_layers, MAX_LAYERS,
                                                                 low=0))
        for f in ("name", "source", "quantization"):
            if not isinstance(getattr(self, f), str):
                raise ValueError(f"{f} must be a string; got {show(getattr(self, f))}")
        self._check_layers()
        for f in ("attn_softcap", "final_softcap"):
            if getattr(self, f) is not None:
                object.__setattr__(self, f, positive_float(f, getattr(self, f)))
        if self.rope_scaling is not None:
            if not isinstance(self.rope_scaling, RopeScaling):
                raise ValueError(f"rope_scaling must be a RopeScaling or None; got {show(self.rope_scaling)}")
            object.__setattr__(self, "rope_scaling", self.rope_scaling.check())

    def _check_layers(self) -> None:
        kinds = check_layer_types(self.layer_types, self.n_layers)
        if kinds is not None and "sliding" in kinds and self.sliding_window is None:
            raise ValueError("sliding_window must be given when layer_types has 'sliding' layers")
        if kinds is not None and "sliding" not in kinds and self.sliding_window is not None:
            raise ValueError(
                f"sliding_window={self.sliding_window} applies to no layer: layer_types has no 'sliding' layer"
            )
        if kinds is not None and len(set(kinds)) == 1:
            kinds = None  # uniform: the canonical form is None (sliding_window alone says which)
        object.__setattr__(self, "layer_types", kinds)
        if self.moe is not None and not isinstance(self.moe, MoE):
            raise ValueError(f"moe must be a costmodel.MoE or None; got {show(self.moe)}")
        dense = check_layer_indices("dense_layers", self.dense_layers, self.n_layers)
        if dense and self.moe is None:
            raise ValueError("dense_layers applies only to a model with moe=MoE(...)")
        if self.moe is not None and self.n_encoder_layers:
            raise ValueError("moe is supported for decoder-only models (n_encoder_layers=0)")
        object.__setattr__(self, "dense_layers", dense)
        # derived, not fields (fields() and replace() see only what the user gives); computed once, since every
        # pass of the cost model reads them and each takes one look at every layer
        layers = build_layers(self.n_layers, kinds, self.sliding_window, self.moe, dense)
        object.__setattr__(self, "_layers", layers)
        object.__setattr__(self, "_layer_groups", group_layers(layers))
        object.__setattr__(self, "_layer_pattern", attention_pattern(layers))
        object.__setattr__(self, "_n_moe_layers", sum(layer.ffn == "moe" for layer in layers))

    # --- derived facts -------------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """One :class:`Layer` per decoder layer (attention kind and window, FFN kind)."""
        return self._layers

    @property
    def variant(self) -> FFNVariant:
        return FFN_VARIANTS[self.ffn]

    @property
    def gated(self) -> bool:
        return self.variant.gated

    @property
    def group_size(self) -> int:
        """R = N / K query heads per KV head."""
        return self.n_heads // self.n_kv_heads

    @property
    def is_encoder_decoder(self) -> bool:
        return self.n_encoder_layers > 0

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def layer_groups(self) -> tuple[tuple[Layer, int], ...]:
        """(layer, count) per distinct decoder layer, in order of first appearance."""
        return self._layer_groups

    @property
    def is_uniform(self) -> bool:
        """True when every decoder layer is the same (one attention kind, one FFN kind)."""
        return len(self.layer_groups) == 1

    @property
    def layer_pattern(self) -> str:
        """One line: '18 sliding (W=128) + 18 full' ('32 full' for a uniform model)."""
        return self._layer_pattern

    @property
    def n_moe_layers(self) -> int:
        return self._n_moe_layers

    @property
    def attention_kind(self) -> str:
        """'MHA' (K = N), 'MQA' (K = 1) or 'GQA-K'."""
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else f"GQA-{self.n_kv_heads}"

    def with_(self, **changes) -> ModelConfig:
        """A validated copy with fields replaced (e.g. ``cfg.with_(n_kv_heads=8)``)."""
        from dataclasses import replace

        if "layers" in changes:
            raise ValueError("layers is derived; change layer_types, sliding_window, moe or dense_layers")
        return replace(self, **changes)


def check_cfg(cfg, name: str = "cfg") -> ModelConfig:
    """``cfg`` if it is a ModelConfig; ValueError naming the argument otherwise (never AttributeError later)."""
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"{name} must be a costmodel.ModelConfig; got {type(cfg).__name__}")
    return cfg
