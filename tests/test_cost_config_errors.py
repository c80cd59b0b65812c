"""Issue 12 in the cost model's config loading: files and config values are checked before they are trusted,
numbers are in range, and every public function given something that is not a ModelConfig says so with a
ValueError naming the argument -- never a TypeError, AttributeError, RecursionError or OverflowError."""

import json
import os
import sys

import pytest

import costmodel as cm

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 128, "vocab_size": 100}  # fmt: skip
T5 = {"model_type": "t5", "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_heads": 4}


def _file(tmp_path, content, name="config.json") -> str:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return str(p)


@pytest.mark.parametrize("text", ["[]", "null", "42", '"x"'])
def test_top_level_that_is_not_an_object(tmp_path, text):
    path = _file(tmp_path, text)
    with pytest.raises(ValueError, match=r"config file '.*config.json': the top level must be a JSON object"):
        cm.load_hf_config(path)


@pytest.mark.parametrize(
    "config,key,expected",
    [
        ({**LLAMA, "hidden_act": ["silu"]}, "hidden_act", "a string"),
        ({**T5, "feed_forward_proj": 5}, "feed_forward_proj", "a string"),
        ({**T5, "feed_forward_proj": "gated-gelu-x"}, "feed_forward_proj", "relu, gelu, gated-gelu"),
        ({**LLAMA, "tie_word_embeddings": "false"}, "tie_word_embeddings", "true or false"),
        ({**LLAMA, "tie_word_embeddings": 0}, "tie_word_embeddings", "true or false"),
        ({**LLAMA, "num_key_value_heads": 0}, "num_key_value_heads", "an integer >= 1"),
        ({**LLAMA, "hidden_size": 64.0}, "hidden_size", "an integer"),
        ({**LLAMA, "hidden_size": True}, "hidden_size", "an integer"),
        ({**LLAMA, "hidden_size": 10**300}, "hidden_size", "at most 2\\*\\*53"),
        ({**LLAMA, "model_type": "mixtral", "num_local_experts": 2, "num_experts_per_tok": 3},
         "num_experts_per_tok", "at most num_local_experts=2"),  # fmt: skip
        ({**LLAMA, "model_type": "qwen3_moe", "mlp_only_layers": "0"}, "mlp_only_layers", "a list of integers"),
        ({**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": "32"}}, "factor", "finite positive number"),
        ({**LLAMA, "model_type": "gemma2", "attn_logit_softcapping": -1}, "attn_logit_softcapping", "positive"),
        ({**LLAMA, "model_type": "gemma2", "layer_types": ["full_attention"]}, "layer_types", "a list of 2"),
        ({"model_type": "gemma3"}, "text_config", "the language model"),
    ],
)
def test_wrong_type_is_an_error_naming_key_and_file(tmp_path, config, key, expected):
    path = _file(tmp_path, json.dumps(config))
    with pytest.raises(ValueError, match=f"config file '{tmp_path}.*'{key}'.*{expected}"):
        cm.load_hf_config(path)
    with pytest.raises(ValueError, match=key):  # the same from the parsed dict
        cm.load_hf_config(config)


def test_true_tie_word_embeddings_still_read():
    """The example of the issue: Llama-3-8B is 8.03 B untied (7.50 B if "false" had been read as true)."""
    llama3 = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256}  # fmt: skip
    assert cm.param_count(cm.load_hf_config({**llama3, "tie_word_embeddings": False})) == 8_030_261_248
    assert cm.param_count(cm.load_hf_config({**llama3, "tie_word_embeddings": True})) == 7_504_924_672


def test_deeply_nested_file(tmp_path):
    path = _file(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        cm.load_hf_config(path)


def test_huge_integers_name_the_file_not_python_internals(tmp_path):
    text = json.dumps({**LLAMA, "hidden_size": 0}).replace('"hidden_size": 0', '"hidden_size": ' + "9" * 5000)
    path = _file(tmp_path, text)
    with pytest.raises(ValueError, match="'hidden_size' must be an integer .*; got an integer of 5000 digits") as err:
        cm.load_hf_config(path)
    assert "set_int_max_str_digits" not in str(err.value)
    with pytest.raises(ValueError, match="hidden_size") as err:
        cm.load_hf_config({**LLAMA, "hidden_size": 10**5000 - 1})
    assert "set_int_max_str_digits" not in str(err.value) and "about 5000 digits" in str(err.value)
    with pytest.raises(ValueError, match="'hidden_size' .* got NaN"):
        cm.load_hf_config(_file(tmp_path, json.dumps({**LLAMA, "hidden_size": float("nan")}), "nan.json"))


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\xff\xfe{\x00}\x00", "is not UTF-8 text"),  # UTF-16 with a BOM
        (bytes(range(256)), "is not UTF-8 text"),
        (b"{", "is not valid JSON"),
    ],
)
def test_binary_and_broken_files(tmp_path, content, message):
    with pytest.raises(ValueError, match=f"config file .*{message}"):
        cm.load_hf_config(_file(tmp_path, content))


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        cm.load_hf_config(fifo)


def test_paths_and_other_inputs(tmp_path):
    with pytest.raises(ValueError, match="cannot read it"):
        cm.load_hf_config(tmp_path)  # a directory without config.json
    with pytest.raises(ValueError, match="config must be a path to a config.json .* or a dict; got int"):
        cm.load_hf_config(42)
    with pytest.raises(ValueError, match="name must be a string"):
        cm.load_hf_config(LLAMA, name=["x"])
    with pytest.raises(ValueError) as err:
        cm.load_hf_config(str(tmp_path / "absent.json"))
    assert "path_or_dict" not in str(err.value) and "absent.json" in str(err.value)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(ffn=["x"]), "ffn"),
        (dict(norm=["rmsnorm"]), "norm"),
        (dict(position={}), "position"),
        (dict(name=3), "name"),
        (dict(d_model=10**300), "d_model"),
        (dict(d_model=10**5000 - 1), "d_model"),
        (dict(sliding_window=2.5), "sliding_window"),
        (dict(tied_embeddings="false"), "tied_embeddings"),
    ],
)
def test_model_config_values_of_the_wrong_type(kwargs, field):
    base = dict(d_model=64, n_layers=2, n_heads=4, d_ff=128, vocab_size=100)
    with pytest.raises(ValueError, match=field):
        cm.ModelConfig(**{**base, **kwargs})


CFG_FUNCTIONS = [
    lambda c: cm.param_breakdown(c),
    lambda c: cm.param_count(c),
    lambda c: cm.active_param_count(c),
    lambda c: cm.moe_param_breakdown(c),
    lambda c: cm.decode_flops(c, batch=1, context=8),
    lambda c: cm.prefill_flops(c, batch=1, prompt_len=8),
    lambda c: cm.forward_flops(c, batch=1, q_len=1, kv_len=8),
    lambda c: cm.layer_flops(c, batch=1, q_len=1, kv_len=8),
    lambda c: cm.encoder_flops(c, batch=1, src_len=8),
    lambda c: cm.training_flops(c, batch=1, seq_len=8),
    lambda c: cm.kv_bytes_per_token(c),
    lambda c: cm.kv_cache_bytes(c, batch=1, context=8),
    lambda c: cm.kv_cache_breakdown(c, batch=1, context=8),
    lambda c: cm.weight_bytes(c),
    lambda c: cm.workspace_bytes(c, batch=1),
    lambda c: cm.check_tp(c, 1),
    lambda c: cm.check_ep(c, 2),
    lambda c: cm.per_device_param_breakdown(c, 1),
    lambda c: cm.decode_latency(c, "h100-sxm", batch=1, context=8),
    lambda c: cm.prefill_latency(c, "h100-sxm", batch=1, prompt_len=8),
    lambda c: cm.plan(c, "h100-sxm", context=8),
    lambda c: cm.max_batch(c, "h100-sxm", context=8),
    lambda c: cm.choose_kv_heads(c, "h100-sxm", context=8),
    lambda c: cm.gqa_rows(c, "h100-sxm", batch=1, context=8),
]


@pytest.mark.parametrize("call", CFG_FUNCTIONS)
@pytest.mark.parametrize("bad", [{}, None, "llama-3-8b", ["x"]])
def test_every_cfg_argument_is_checked(call, bad):
    with pytest.raises(ValueError, match="cfg must be a costmodel.ModelConfig"):
        call(bad)


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda: cm.kv_cache_bytes(cm.MODELS["llama-3-8b"], batch=1, context=10**300), "context"),
        (lambda: cm.decode_latency(cm.MODELS["llama-3-8b"], "h100-sxm", batch=10**300, context=8), "batch"),
        (lambda: cm.decode_latency(cm.MODELS["mixtral-8x7b"], "h100-sxm", batch=1, context=8, ep=True), "ep"),
        (lambda: cm.decode_latency(cm.MODELS["llama-3-8b"], "h100-sxm", batch=1, context=8, link_latency_s=-1),
         "link_latency_s"),  # fmt: skip
        (lambda: cm.kv_cache_bytes(cm.MODELS["llama-3-8b"], batch=1, context=8, kv_dtype=["bf16"]), "kv_dtype"),
        (lambda: cm.get_model(["llama-3-8b"]), "model"),
    ],
)
def test_numbers_in_range_and_names_of_the_argument(call, field):
    with pytest.raises(ValueError, match=field):
        call()
