"""ModelConfig from a Hugging Face ``config.json`` (llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe,
gemma, gemma2, gemma3, phi3, gpt_oss, t5).

The file is checked before it is trusted (costmodel.hf_read): a regular UTF-8 JSON file of bounded size whose
top level is an object; every value is read with its type checked, so a wrong type is a ValueError naming the
key and the file, never coerced by truthiness. What each family's modelling code builds -- the facts its
config does not say, and the flags it ignores -- is in costmodel.hf_families and docs/hf-families.md.
"""

from __future__ import annotations

from .checks import show
from .config import ModelConfig
from .hf_families import NOT_GQA, SUPPORTED_MODEL_TYPES, build  # noqa: F401  (re-exported)
from .hf_read import ConfigReader, read_config_file


def load_hf_config(path_or_dict, *, name: str | None = None) -> ModelConfig:
    """ModelConfig from a config.json path (file or model directory) or its parsed dict.

    Supported model_type values: :data:`SUPPORTED_MODEL_TYPES`. Architectures that are not grouped-query
    attention (DeepSeek's multi-head latent attention, linear-attention hybrids) are refused with the reason.
    Errors are ValueError naming the key and the file.
    """
    data, where = read_config_file(path_or_dict)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the top level must be a JSON object {{...}}; got {type(data).__name__}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string; got {show(name)}")
    return build(ConfigReader(data, where), name)
