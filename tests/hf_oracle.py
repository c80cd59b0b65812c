"""Transformers as an independent oracle (test-only): build a family's model from a config dict on the meta
device (no memory, no weights) or on CPU, the same way for every test file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PRESET_CONFIGS = json.loads((Path(__file__).parent / "data" / "hf_configs.json").read_text())
# a small decoder every family accepts; each test adds its family's keys
TINY = dict(
    hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
    vocab_size=101, pad_token_id=0,
)  # fmt: skip


def hf_model(config: dict, *, meta: bool = True, eager: bool = False):
    """The model Transformers builds for ``config`` (a config.json dict): CausalLM classes; the multimodal
    gemma3 config's language model (Gemma3ForCausalLM of its text_config); T5ForConditionalGeneration."""
    from transformers import AutoConfig, AutoModelForCausalLM, T5Config, T5ForConditionalGeneration
    from transformers.models.gemma3 import Gemma3ForCausalLM, Gemma3TextConfig

    d = dict(config)
    mt = d.pop("model_type")
    impl = dict(attn_implementation="eager", experts_implementation="eager") if eager else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mt == "t5":
            cls, cfg = T5ForConditionalGeneration, T5Config(**d)
        elif mt == "gemma3":
            cls, cfg = Gemma3ForCausalLM, Gemma3TextConfig(**d["text_config"], **impl)
        else:
            cls, cfg = None, AutoConfig.for_model(mt, **d, **impl)
        with torch.device("meta" if meta else "cpu"):
            return cls(cfg) if cls else AutoModelForCausalLM.from_config(cfg)


def hf_param_count(config: dict) -> int:
    """sum(p.numel()) of the meta-device model (tied weights counted once, as model.parameters() yields)."""
    return sum(p.numel() for p in hf_model(config).parameters())
