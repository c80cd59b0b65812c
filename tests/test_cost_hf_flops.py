"""Decode FLOPs and KV bytes against what Transformers actually does (test-only oracle, CPU, float32).

FLOPs: torch.utils.flop_counter.FlopCounterMode counts the matrix products (mm, bmm, addmm: 2·M·N·K, a
fused bias add not included) of one decode step of the Transformers model (eager attention and experts).
It equals our FlopsBreakdown.matmul exactly. The terms it does not count are our elementwise ones, which the
comparison therefore leaves out: "softmax", "act", "bias" (including gpt-oss's router bias), "norm" and
"qk_norm", "residual", "sinks", MoE "route", "combine" and "shared_gate_act".

KV: the keys and values each layer's DynamicCache hands to attention during a decode step at context S
(stored tokens + the new one) are exactly what kv_cache_breakdown counts per layer kind: S on a full layer,
min(S, W) on a sliding one. Between steps a sliding layer stores one token fewer (W - 1: the new token's
K/V is appended inside the step), which the test also checks.
"""

import pytest
from hf_oracle import TINY, hf_model, torch

import costmodel as cm

BATCH, PROMPT = 3, 5
FLOP_CASES = [
    ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    ("qwen2_moe", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                   "shared_expert_intermediate_size": 48, "decoder_sparse_step": 2}),  # fmt: skip
    ("qwen3_moe", {"num_experts": 8, "num_experts_per_tok": 3, "moe_intermediate_size": 32, "head_dim": 8}),
    ("gpt_oss", {"num_local_experts": 4, "num_experts_per_tok": 2, "head_dim": 16, "sliding_window": 3}),
    ("gemma2", {"head_dim": 16, "sliding_window": 3}),
    ("llama", {"attention_bias": True, "mlp_bias": True}),
]


def _prefill_then_decode(config, count_flops):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = hf_model(config, meta=False, eager=True).float().eval()
    seen = {}

    def spy(i, update):
        def wrapped(key_states, value_states, *args, **kwargs):
            k, v = update(key_states, value_states, *args, **kwargs)
            seen[i] = (k.numel() + v.numel()) * k.element_size()  # what attention reads this step
            return k, v

        return wrapped

    with torch.no_grad():
        cache = model(torch.randint(0, 101, (BATCH, PROMPT)), use_cache=True).past_key_values
        for i, layer in enumerate(cache.layers):
            layer.update = spy(i, layer.update)
        with FlopCounterMode(display=False) as counter:
            model(torch.randint(0, 101, (BATCH, 1)), cache=cache, use_cache=True)
    stored = [(layer.keys.numel() + layer.values.numel()) * 4 for layer in cache.layers]
    return counter.get_total_flops(), [seen[i] for i in range(len(stored))], stored


@pytest.mark.parametrize("model_type,keys", FLOP_CASES)
def test_decode_matmul_flops_equal_torch_flop_counter(model_type, keys):
    config = {"model_type": model_type, **TINY, **keys}
    counted, _, _ = _prefill_then_decode(config, True)
    ours = cm.decode_flops(cm.load_hf_config(config), batch=BATCH, context=PROMPT + 1)
    assert ours.matmul == counted
    assert ours.total > ours.matmul  # the elementwise terms the counter leaves out exist


@pytest.mark.parametrize(
    "model_type,keys",
    [
        ("gemma2", {"head_dim": 16, "sliding_window": 3}),  # alternating sliding (W=3) / full
        ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 2}),  # layers 2, 3 slide
        ("mistral", {"sliding_window": 2}),  # every layer windowed
        pytest.param("gpt_oss", {"num_local_experts": 4, "num_experts_per_tok": 2, "head_dim": 16,
                                 "sliding_window": 3}),  # fmt: skip
    ],
)
def test_kv_bytes_per_layer_kind_equal_transformers_cache(model_type, keys):
    config = {"model_type": model_type, **TINY, **keys}
    cfg = cm.load_hf_config(config)
    _, read, stored = _prefill_then_decode(config, False)
    context = PROMPT + 1
    per_kind = cm.kv_cache_breakdown(cfg, batch=BATCH, context=context, kv_dtype="fp32")
    by_kind = {}
    for layer, nbytes, kept in zip(cfg.layers, read, stored, strict=True):
        by_kind[layer.attention_label] = by_kind.get(layer.attention_label, 0) + nbytes
        one_token = nbytes // min(context, layer.window or context)
        assert kept == nbytes - (one_token if layer.window and context >= layer.window else 0)
    assert by_kind == per_kind
    assert sum(read) == cm.kv_cache_bytes(cfg, batch=BATCH, context=context, kv_dtype="fp32")
    assert len(per_kind) == len({layer.window for layer in cfg.layers})
