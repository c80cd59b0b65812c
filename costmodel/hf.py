"""ModelConfig from a Hugging Face ``config.json`` (llama, mistral, gemma, qwen2, t5).

Each family's implicit facts (what its modelling code does that its config does not say):
- llama / mistral: SwiGLU MLP (gate_proj, up_proj, down_proj), RMSNorm, RoPE; ``attention_bias`` adds biases to
  q, k, v *and* o; ``mlp_bias`` to the three MLP matrices; ``head_dim`` optional (defaults to D/N).
- qwen2: q, k, v projections carry biases although config.json never mentions them; o_proj has none.
- gemma: GeGLU MLP (tanh GELU), ``head_dim`` 256 independent of D/N, embeddings tied (GemmaConfig's default).
- t5: encoder-decoder, relative-position bias table (buckets x heads) in the first layer of each stack,
  bias-free RMS-style T5LayerNorm; ``feed_forward_proj`` "relu" (T5 v1.0) or "gated-gelu" (T5.1.1, GeGLU);
  ``tie_word_embeddings`` defaults to True (T5.1.1 configs set it false).
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import ModelConfig

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "gemma", "qwen2", "t5")
_ACT_TO_VARIANT = {
    "silu": "swish",
    "swish": "swish",
    "gelu": "gelu",
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",
    "relu": "relu",
    "sigmoid": "sigmoid",
}
_GATED = {"swish": "swiglu", "gelu": "geglu", "relu": "reglu", "sigmoid": "glu"}


def _read(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        return path_or_dict
    path = Path(path_or_dict)
    if path.is_dir():
        path = path / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"path_or_dict: cannot read {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"path_or_dict: {str(path)!r} is not valid JSON: {exc}") from None


def _need(cfg: dict, key: str, model_type: str):
    if key not in cfg:
        raise ValueError(f"config.json ({model_type}) is missing {key!r}")
    return cfg[key]


def _gated_variant(act: str, field: str) -> str:
    if act not in _ACT_TO_VARIANT or _ACT_TO_VARIANT[act] not in _GATED:
        raise ValueError(f"{field} {act!r} is not supported; known: {', '.join(_ACT_TO_VARIANT)}")
    return _GATED[_ACT_TO_VARIANT[act]]


def _decoder_only(c: dict, mt: str, name: str) -> ModelConfig:
    n = _need(c, "num_attention_heads", mt)
    act = c.get("hidden_activation") or c.get("hidden_act") or "silu"
    if mt == "gemma":
        act = (
            "gelu_pytorch_tanh" if act == "gelu" else act
        )  # Gemma's "gelu" is the tanh form (transformers #29402)
    attention_bias = bool(c.get("attention_bias", False))
    window = c.get("sliding_window") if mt == "mistral" else None
    if mt == "qwen2" and c.get("use_sliding_window", False):
        window = c.get("sliding_window")
    return ModelConfig(
        d_model=_need(c, "hidden_size", mt),
        n_layers=_need(c, "num_hidden_layers", mt),
        n_heads=n,
        n_kv_heads=c.get("num_key_value_heads") or n,
        head_dim=c.get("head_dim"),
        d_ff=_need(c, "intermediate_size", mt),
        vocab_size=_need(c, "vocab_size", mt),
        ffn=_gated_variant(act, "hidden_act"),
        tied_embeddings=bool(c.get("tie_word_embeddings", mt == "gemma")),
        qkv_bias=attention_bias or mt == "qwen2",
        out_bias=attention_bias and mt != "qwen2",
        ffn_bias=bool(c.get("mlp_bias", False)),
        norm="rmsnorm",
        position="rope",
        sliding_window=window,
        name=name,
        source=str(c.get("_name_or_path", "config.json")),
    )


def _t5(c: dict, name: str) -> ModelConfig:
    proj = c.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act = proj.split("-", 1)[1] if gated else proj
    if act not in _ACT_TO_VARIANT:
        raise ValueError(
            f"feed_forward_proj {proj!r} is not supported; expected relu, gelu, gated-gelu, gated-silu"
        )
    variant = _gated_variant(act, "feed_forward_proj") if gated else _ACT_TO_VARIANT[act]
    layers = _need(c, "num_layers", "t5")
    return ModelConfig(
        d_model=_need(c, "d_model", "t5"),
        n_layers=c.get("num_decoder_layers") or layers,
        n_encoder_layers=layers,
        n_heads=_need(c, "num_heads", "t5"),
        head_dim=_need(c, "d_kv", "t5"),
        d_ff=_need(c, "d_ff", "t5"),
        vocab_size=_need(c, "vocab_size", "t5"),
        ffn=variant,
        tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        norm="rmsnorm",
        position="relative",
        relative_buckets=c.get("relative_attention_num_buckets", 32),
        name=name,
        source=str(c.get("_name_or_path", "config.json")),
    )


def load_hf_config(path_or_dict, *, name: str | None = None) -> ModelConfig:
    """ModelConfig from a config.json path (file or model directory) or its parsed dict."""
    c = _read(path_or_dict)
    mt = c.get("model_type")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"model_type {mt!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    name = name or str(c.get("_name_or_path") or mt)
    return _t5(c, name) if mt == "t5" else _decoder_only(c, mt, name)
