"""Each Hugging Face family's facts: what its modelling code builds that its config.json does not say.

Read from ``transformers/models/<family>/modeling_<family>.py`` and ``configuration_<family>.py`` of
Transformers 5.24 (the table with sources: docs/hf-families.md). A flag the config carries but the modelling
code ignores adds nothing (Mistral hard-codes ``bias=False`` whatever ``attention_bias`` says). Defaults are
the config class's own (``Qwen3Config.head_dim`` 128, ``GemmaConfig.tie_word_embeddings`` True, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig
from .hf_read import ConfigReader
from .layers import HF_LAYER_TYPES, MoE, RopeScaling

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
_MLA = (
    "uses multi-head latent attention (MLA: K and V are compressed into a shared latent of kv_lora_rank "
    "dimensions and decompressed per head), not grouped-query attention; its KV cache and projections are "
    "not the N/K/Dh ones this cost model describes"
)
_LINEAR = (
    "is a hybrid of linear-attention (or state-space) layers and attention layers; a linear-attention layer "
    "keeps a fixed-size recurrent state instead of a KV cache, which this grouped-query cost model does not "
    "describe"
)
NOT_GQA = {
    "deepseek_v2": _MLA, "deepseek_v3": _MLA, "deepseek_v32": _MLA, "kimi_k2": _MLA,
    "qwen3_next": _LINEAR, "qwen3_5": _LINEAR, "qwen3_5_moe": _LINEAR, "jamba": _LINEAR, "falcon_h1": _LINEAR,
    "bamba": _LINEAR, "nemotron_h": _LINEAR, "granitemoehybrid": _LINEAR, "zamba": _LINEAR, "zamba2": _LINEAR,
    "recurrent_gemma": _LINEAR, "minimax": _LINEAR, "lfm2": _LINEAR, "mamba": _LINEAR, "mamba2": _LINEAR,
}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One model_type. Bias entries: a config key (read with ``bias_default``) or a hard-coded bool.
    ``windows``: "none" (no sliding window in the code), "all" (``sliding_window`` on every layer),
    "from_max_window_layers" (layers i >= max_window_layers, when use_sliding_window), "qwen2_moe" (even i
    below max_window_layers, when use_sliding_window), "alternate" (even i), "gemma3" (all but every
    ``sliding_window_pattern``-th). ``layer_types``: the config class has the field (then it is the truth)."""

    qkv_bias: str | bool
    out_bias: str | bool
    vocab_default: int
    act_key: str | None = "hidden_act"  # None: the FFN is fixed (fixed_ffn)
    act_default: str = "silu"
    bias_default: bool = False
    mlp_bias: str | bool = False
    kv_heads_default: int | None = None  # None: N
    head_dim_default: int | None = None  # None: D / N (or the config's head_dim)
    tied_default: bool = False
    windows: str = "none"
    layer_types: bool = False
    window_flag: str | None = None  # "use_sliding_window" where the window needs it
    window_default: int | None = None  # the config class's sliding_window when the key is absent
    moe: str | None = None
    qk_norm: bool = False
    post_norms: bool = False
    sinks: bool = False
    softcaps: tuple | None = None  # (attn, final) defaults of Gemma 2's softcapping keys
    fixed_ffn: str | None = None


_QWEN_WINDOW = dict(layer_types=True, window_flag="use_sliding_window", window_default=4096)
_ATTN_BIAS = dict(qkv_bias="attention_bias", out_bias="attention_bias")
_NO_BIAS = dict(qkv_bias=False, out_bias=False)
FAMILIES = {
    "llama": Family(**_ATTN_BIAS, mlp_bias="mlp_bias", vocab_default=32000),
    "mistral": Family(**_NO_BIAS, kv_heads_default=8, vocab_default=32000, windows="all", window_default=4096),
    "mixtral": Family(**_NO_BIAS, kv_heads_default=8, vocab_default=32000, windows="all", moe="mixtral"),
    "qwen2": Family(qkv_bias=True, out_bias=False, kv_heads_default=32, vocab_default=151936,
                    windows="from_max_window_layers", **_QWEN_WINDOW),
    "qwen2_moe": Family(qkv_bias="qkv_bias", out_bias=False, bias_default=True, kv_heads_default=16,
                        vocab_default=151936, windows="qwen2_moe", **_QWEN_WINDOW, moe="qwen2_moe"),
    "qwen3": Family(**_ATTN_BIAS, kv_heads_default=32, head_dim_default=128, vocab_default=151936,
                    windows="from_max_window_layers", **_QWEN_WINDOW, qk_norm=True),
    "qwen3_moe": Family(**_ATTN_BIAS, kv_heads_default=4, vocab_default=151936, windows="all",
                        window_flag="use_sliding_window", window_default=4096, moe="qwen_moe", qk_norm=True),
    "gemma": Family(**_ATTN_BIAS, act_default="gelu_pytorch_tanh", kv_heads_default=16, head_dim_default=256,
                    tied_default=True, vocab_default=256000),
    "gemma2": Family(**_ATTN_BIAS, act_key="hidden_activation", act_default="gelu_pytorch_tanh",
                     kv_heads_default=4, head_dim_default=256, tied_default=True, vocab_default=256000,
                     windows="alternate", layer_types=True, window_default=4096, post_norms=True,
                     softcaps=(50.0, 30.0)),
    "gemma3_text": Family(**_ATTN_BIAS, act_key="hidden_activation", act_default="gelu_pytorch_tanh",
                          kv_heads_default=4, head_dim_default=256, tied_default=True, vocab_default=262208,
                          windows="gemma3", layer_types=True, window_default=4096, qk_norm=True, post_norms=True),
    "phi3": Family(**_NO_BIAS, vocab_default=32064, windows="all"),
    "gpt_oss": Family(**_ATTN_BIAS, act_key=None, bias_default=True, kv_heads_default=8, head_dim_default=64,
                      vocab_default=201088, windows="alternate", layer_types=True, window_default=128,
                      moe="gpt_oss", sinks=True, fixed_ffn="swiglu_oss"),
}  # fmt: skip
# the first five in the order this loader gained them; "gemma3" is the multimodal config around gemma3_text
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "gemma", "qwen2", "t5", "mixtral", "qwen2_moe", "qwen3", "qwen3_moe",
                         "gemma2", "gemma3", "gemma3_text", "phi3", "gpt_oss")  # fmt: skip


def _variant(r: ConfigReader, key: str, act: str) -> str:
    if act not in _ACT_TO_VARIANT or _ACT_TO_VARIANT[act] not in _GATED:
        raise r.error(key, f"one of {', '.join(_ACT_TO_VARIANT)}", act)
    return _GATED[_ACT_TO_VARIANT[act]]


def _bias(r: ConfigReader, spec, default: bool) -> bool:
    return spec if isinstance(spec, bool) else r.bool(spec, default)


def _window_kinds(r: ConfigReader, fam: Family, n_layers: int) -> tuple[tuple[str, ...], int | None]:
    """(per-layer "full"/"sliding", the window) as the family's modelling code decides them."""
    # absent: the class default; null: no window (Mistral-7B-v0.3 writes "sliding_window": null)
    window = r.int("sliding_window", None) if "sliding_window" in r.data else fam.window_default
    window = None if fam.windows == "none" else window
    if fam.window_flag and not r.bool(fam.window_flag, False):
        window = None  # Qwen: sliding_window only counts with use_sliding_window (configuration_qwen*.py)
    given = r.str_list("layer_types")
    if given is not None and fam.layer_types:
        if len(given) != n_layers:
            raise r.error("layer_types", f"a list of {n_layers} layer types (num_hidden_layers)", list(given))
        for i, kind in enumerate(given):
            if kind not in HF_LAYER_TYPES:
                why = "a linear-attention or other non-GQA layer" if "attention" in kind or "linear" in kind else ""
                raise r.error(f"layer_types[{i}]", f"full_attention or sliding_attention {why}".strip(), kind)
        kinds = tuple(HF_LAYER_TYPES[k] for k in given)
        if window is None and "sliding" in kinds and fam.window_flag is None:
            raise r.error("sliding_window", "a window size when layer_types has sliding_attention layers", None)
    else:
        rule = {
            "none": lambda i: False,
            "all": lambda i: True,
            "from_max_window_layers": lambda i: i >= r.int("max_window_layers", 28, minimum=0),
            "qwen2_moe": lambda i: i % 2 == 0 and i < r.int("max_window_layers", 28, minimum=0),
            "alternate": lambda i: i % 2 == 0,
            "gemma3": lambda i: (i + 1) % r.int("sliding_window_pattern", 6) != 0,
        }[fam.windows]
        kinds = tuple("sliding" if rule(i) else "full" for i in range(n_layers))
    if window is None:
        return ("full",) * n_layers, None
    if given is not None and not fam.layer_types and len(set(given)) > 1:
        raise r.error("layer_types", "absent: this family's code windows every layer alike", list(given))
    return kinds, (window if "sliding" in kinds else None)


def _moe(r: ConfigReader, fam: Family, n_layers: int) -> tuple[MoE | None, tuple[int, ...]]:
    if fam.moe is None:
        return None, ()
    if fam.moe in ("mixtral", "gpt_oss"):  # every layer routed; the expert width is intermediate_size
        e = r.int("num_local_experts", 8 if fam.moe == "mixtral" else 128)
        k = r.int("num_experts_per_tok", 2 if fam.moe == "mixtral" else 4)
        if k > e:
            raise r.error("num_experts_per_tok", f"at most num_local_experts={e}", k)
        return MoE(e, k, r.int("intermediate_size"), router_bias=fam.moe == "gpt_oss"), ()
    qwen2 = fam.moe == "qwen2_moe"
    e = r.int("num_experts", 60 if qwen2 else 128, minimum=0)
    step = r.int("decoder_sparse_step", 1)
    only_mlp = set(r.int_list("mlp_only_layers"))
    r.bool("norm_topk_prob", False)  # routing detail, no cost; checked for its type
    if e == 0:
        return None, ()
    k = r.int("num_experts_per_tok", 4 if qwen2 else 8)
    if k > e:
        raise r.error("num_experts_per_tok", f"at most num_experts={e}", k)
    dense = tuple(i for i in range(n_layers) if i in only_mlp or (i + 1) % step)  # modeling_qwen*_moe.py
    shared = dict(n_shared=1, shared_d_ff=r.int("shared_expert_intermediate_size", 5632), shared_gate=True)
    moe = MoE(e, k, r.int("moe_intermediate_size", 1408 if qwen2 else 768), **(shared if qwen2 else {}))
    if len(dense) == n_layers:
        return None, ()
    return moe, dense


def _rope_scaling(r: ConfigReader, fam_default: dict | None) -> RopeScaling | None:
    d = r.dict("rope_scaling") or r.dict("rope_parameters") or fam_default
    if d is None:
        return None
    if isinstance(d.get("full_attention"), dict):  # Gemma 3 in Transformers 5: one entry per layer type
        d = d["full_attention"]
    sub = ConfigReader(d, f"{r.where}: 'rope_scaling'")
    kind = sub.str("rope_type", None) or sub.str("type", "default")
    if kind == "default":
        return None
    original = sub.int("original_max_position_embeddings", 0, minimum=0) or r.int(
        "original_max_position_embeddings", 0, minimum=0
    )
    factor = sub.number("factor", None)
    if factor is None:  # Phi-3's longrope gives per-dimension factors: the context ratio is the factor
        max_pos = r.int("max_position_embeddings", 0, minimum=0)
        factor = max_pos / original if original and max_pos else 1.0
    return RopeScaling(kind, factor, original)


def _softcap(r: ConfigReader, key: str, default):
    return r.number(key, None) if key in r.data else default


_GPT_OSS_ROPE = {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096}  # its __post_init__


def _decoder(r: ConfigReader, mt: str, name: str) -> ModelConfig:
    fam = FAMILIES[mt]
    if r.bool("use_bidirectional_attention", False):
        raise r.error("use_bidirectional_attention", "false: a bidirectional model has no decode step", True)
    n, layers = r.heads("num_attention_heads"), r.layers("num_hidden_layers")
    d = r.int("hidden_size")
    kinds, window = _window_kinds(r, fam, layers)
    moe, dense = _moe(r, fam, layers)
    if fam.fixed_ffn:
        ffn = fam.fixed_ffn  # GptOssExperts: clamped SwiGLU with biases whatever hidden_act says
    else:
        key = fam.act_key
        act = r.str(key, fam.act_default)
        ffn = _variant(r, key, "gelu_pytorch_tanh" if mt == "gemma" and act == "gelu" else act)  # #29402
    softcaps = (None, None) if fam.softcaps is None else fam.softcaps
    return ModelConfig(
        d_model=d,
        n_layers=layers,
        n_heads=n,
        n_kv_heads=r.int("num_key_value_heads", fam.kv_heads_default or n),
        head_dim=r.int("head_dim", fam.head_dim_default),
        d_ff=r.int("intermediate_size"),
        vocab_size=r.int("vocab_size", fam.vocab_default),
        ffn=ffn,
        tied_embeddings=r.bool("tie_word_embeddings", fam.tied_default),
        qkv_bias=_bias(r, fam.qkv_bias, fam.bias_default),
        out_bias=_bias(r, fam.out_bias, fam.bias_default),
        ffn_bias=True if fam.fixed_ffn else _bias(r, fam.mlp_bias, False),
        max_position=r.int("max_position_embeddings", 0),  # 0: not given (the class default is not a fact)
        sliding_window=window,
        layer_types=kinds if window is not None else None,
        moe=moe,
        dense_layers=dense,
        attn_sinks=fam.sinks,
        qk_norm=fam.qk_norm,
        post_norms=fam.post_norms,
        attn_softcap=_softcap(r, "attn_logit_softcapping", softcaps[0]),
        final_softcap=_softcap(r, "final_logit_softcapping", softcaps[1]),
        rope_scaling=_rope_scaling(r, _GPT_OSS_ROPE if mt == "gpt_oss" else None),
        name=name,
        source=r.str("_name_or_path", "config.json"),
    )


def _t5(r: ConfigReader, name: str) -> ModelConfig:
    proj = r.str("feed_forward_proj", "relu")
    parts = proj.split("-")
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "gated")) or parts[-1] not in _ACT_TO_VARIANT:
        raise r.error("feed_forward_proj", "relu, gelu, gated-gelu or gated-silu (T5Config)", proj)
    variant = _variant(r, "feed_forward_proj", parts[-1]) if len(parts) == 2 else _ACT_TO_VARIANT[parts[-1]]
    layers = r.layers("num_layers")
    return ModelConfig(
        d_model=r.int("d_model"),
        n_layers=r.layers("num_decoder_layers", layers),
        n_encoder_layers=layers,
        n_heads=r.heads("num_heads"),
        head_dim=r.int("d_kv"),
        d_ff=r.int("d_ff"),
        vocab_size=r.int("vocab_size", 32128),
        ffn=variant,
        tied_embeddings=r.bool("tie_word_embeddings", True),  # the checkpoint's layout (see docs/hf-families.md)
        norm="rmsnorm",
        position="relative",
        relative_buckets=r.int("relative_attention_num_buckets", 32),
        name=name,
        source=r.str("_name_or_path", "config.json"),
    )


def build(r: ConfigReader, name: str | None) -> ModelConfig:
    """The ModelConfig of a checked config (costmodel.hf.load_hf_config)."""
    mt = r.str("model_type", None)
    if mt in NOT_GQA:
        raise ValueError(f"{r.where}: model_type {mt!r} {NOT_GQA[mt]}")
    if mt == "gemma3":  # the multimodal config: the language model is its text_config (Gemma3ForCausalLM)
        text = r.dict("text_config")
        if text is None:
            raise ValueError(f"{r.where}: model_type 'gemma3' needs its 'text_config' (the language model)")
        inner = ConfigReader({"model_type": "gemma3_text", **text}, f"{r.where}: 'text_config'")
        return build(inner, name or r.str("_name_or_path", None) or "gemma3")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{r.where}: model_type {mt!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    name = name or r.str("_name_or_path", None) or mt
    return _t5(r, name) if mt == "t5" else _decoder(r, mt, name)
