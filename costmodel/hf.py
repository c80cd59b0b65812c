"""ModelConfig from a Hugging Face ``config.json`` (llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe,
gemma, gemma2, gemma3, phi3, gpt_oss, t5).

The file is checked before it is trusted (costmodel.hf_read): a regular UTF-8 JSON file of bounded size whose
top level is an object; every value is read with its type checked, so a wrong type is a ValueError naming the
key and the file, never coerced by truthiness. What each family's modelling code builds -- the facts its
config does not say, and the flags it ignores -- is in costmodel.hf_families and docs/hf-families.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from .checks import show
from .config import ModelConfig
from .hf_families import NOT_GQA, SUPPORTED_MODEL_TYPES, build  # noqa: F401  (re-exported)
from .hf_read import ConfigReader, read_config_file


def load_hf_config(path_or_dict, *, name: str | None = None) -> ModelConfig:
    """ModelConfig from a config.json path (file or model directory) or its parsed dict.

    Supported model_type values: :data:`SUPPORTED_MODEL_TYPES`. Architectures that are not grouped-query
    attention (DeepSeek's multi-head latent attention, linear-attention hybrids) are refused with the reason.
    The model's name: ``name``, else the config's ``_name_or_path``, else the file's name (its directory's for
    a file called config.json), else its ``model_type``. A ``quantization_config`` is carried as
    ``ModelConfig.quantization`` (for notes: the weight dtype of a plan stays the caller's choice).
    Errors are ValueError naming the key and the file.
    """
    data, where = read_config_file(path_or_dict)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the top level must be a JSON object {{...}}; got {type(data).__name__}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string; got {show(name)}")
    r = ConfigReader(data, where)
    if name is None and data.get("_name_or_path") is None:
        name = _file_name(path_or_dict)
    quantization = _quantization(r)
    cfg = build(r, name)
    return cfg.with_(quantization=quantization) if quantization else cfg


def _file_name(path_or_dict) -> str | None:
    """'gpt-oss-20b' for gpt-oss-20b.json, 'Llama-3-8B' for Llama-3-8B/ or Llama-3-8B/config.json; None for a
    dict."""
    if not isinstance(path_or_dict, (str, os.PathLike)):
        return None
    path = Path(path_or_dict)
    if path.is_dir():
        return path.resolve().name or None
    if path.stem == "config":
        return path.resolve().parent.name or None
    return path.stem or None


def _quantization(r: ConfigReader) -> str:
    """The weight quantization a ``quantization_config`` states: its ``quant_method`` with its bits when given
    ('mxfp4', 'awq, 4-bit', 'bitsandbytes, 4-bit'); '' when the config has none."""
    config = r.dict("quantization_config")
    if config is None:
        return ""
    q = ConfigReader(config, f"{r.where}: 'quantization_config'")
    method = q.str("quant_method", "unnamed method")
    bits = q.int("bits", 0, minimum=0) or (4 if q.bool("load_in_4bit", False) else 8 if q.bool("load_in_8bit", False)
                                           else 0)  # fmt: skip
    return f"{method}, {bits}-bit" if bits else method
