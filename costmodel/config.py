"""ModelConfig (frozen, validated on construction), dtype byte sizes and the shared input checks.

Shape legend (as everywhere in glugqa): B batch, T query length, S key/value length, D d_model, F d_ff,
N query heads (the GQA paper's H), K key/value heads (the paper's G), R = N/K, Dh head dim, V vocab, L layers.

Pure Python: importing this module pulls in neither NumPy nor JAX (only ``refimpl.variants``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from fractions import Fraction

from refimpl.variants import FFN_VARIANTS, FFNVariant

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


def closest_names(name: str, known) -> list[str]:
    """Up to 3 known names: those containing ``name`` (case-insensitive) first ("a100" -> the A100s),
    then difflib's close matches."""
    known, low = list(known), str(name).lower()
    hits = [k for k in known if low and low in k.lower()]
    hits += [k for k in difflib.get_close_matches(low, known, n=3, cutoff=0.5) if k not in hits]
    return hits[:3]


def suggest(name: str, known) -> str:
    """' (did you mean ...?)', or '' when nothing is close; used in every unknown-name error."""
    close = closest_names(name, known)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_name(field_name: str, name, known) -> ValueError:
    known = list(known)
    return ValueError(f"unknown {field_name} {name!r}{suggest(name, known)}; known: {', '.join(known)}")


def dtype_bytes(name: str, field_name: str = "dtype") -> Fraction:
    """Bytes per element of ``name`` (exact Fraction: int4 -> 1/2). ValueError naming ``field_name``."""
    if not isinstance(name, str) or name not in DTYPE_BYTES:
        raise unknown_name(field_name, name, DTYPES)
    return DTYPE_BYTES[name]


def positive_int(name: str, value) -> int:
    """``value`` as int if it is a positive integer (bools rejected, NumPy integers accepted)."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def fraction_in_unit(name: str, value, *, allow_zero: bool = False) -> float:
    """An efficiency in (0, 1] (or [0, 1] when ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}") from None
    if not (0.0 <= v <= 1.0) or (v == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
    return v


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

    head_dim defaults to d_model // n_heads but may differ (Gemma: 256 with d_model 3072 and 16 heads).
    Biases: ``qkv_bias`` (Qwen2), ``out_bias`` (attention output), ``ffn_bias`` (every FFN matrix).
    ``norm``: "rmsnorm" (weight only, D params), "layernorm" (weight and bias, 2D), "none".
    ``position``: "rope"/"none" (no parameters), "learned" (max_position x D table), "relative" (T5: a
    relative_buckets x N bias table in the first layer of each stack).
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

    def __post_init__(self):
        for f in ("d_model", "n_layers", "n_heads", "d_ff", "vocab_size"):
            object.__setattr__(self, f, positive_int(f, getattr(self, f)))
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
        if self.ffn not in FFN_VARIANTS:
            raise unknown_name("ffn", self.ffn, FFN_VARIANTS)
        for f in ("tied_embeddings", "qkv_bias", "out_bias", "ffn_bias"):
            if not isinstance(getattr(self, f), bool):
                raise ValueError(f"{f} must be a bool; got {getattr(self, f)!r}")
        if self.norm not in NORM_KINDS:
            raise unknown_name("norm", self.norm, NORM_KINDS)
        if self.position not in POSITION_KINDS:
            raise unknown_name("position", self.position, POSITION_KINDS)
        object.__setattr__(self, "max_position", nonneg_int("max_position", self.max_position))
        object.__setattr__(self, "relative_buckets", nonneg_int("relative_buckets", self.relative_buckets))
        if self.position == "learned" and self.max_position == 0:
            raise ValueError("max_position must be a positive integer when position='learned'; got 0")
        if self.position == "relative" and self.relative_buckets == 0:
            raise ValueError("relative_buckets must be a positive integer when position='relative'; got 0")
        if self.sliding_window is not None:
            object.__setattr__(self, "sliding_window", positive_int("sliding_window", self.sliding_window))
        object.__setattr__(self, "n_encoder_layers", nonneg_int("n_encoder_layers", self.n_encoder_layers))

    # --- derived facts -------------------------------------------------------------------------------
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
    def attention_kind(self) -> str:
        """'MHA' (K = N), 'MQA' (K = 1) or 'GQA-K'."""
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else f"GQA-{self.n_kv_heads}"

    def with_(self, **changes) -> ModelConfig:
        """A validated copy with fields replaced (e.g. ``cfg.with_(n_kv_heads=8)``)."""
        from dataclasses import replace

        return replace(self, **changes)
