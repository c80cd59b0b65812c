"""Parity in float64 with Transformers' gpt-oss attention (``GptOssAttention`` with its eager attention and
``module.sinks``), torch CPU, weights copied: a sliding-window layer and a full layer, outputs and every
gradient (torch autograd). Also how HF's ``sliding_window`` maps onto our ``window``. Skipped without torch
or transformers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gpt_oss = pytest.importorskip("transformers.models.gpt_oss.modeling_gpt_oss")
masking = pytest.importorskip("transformers.masking_utils")

from refimpl import attention_layer_backward, attention_layer_forward, attention_mask  # noqa: E402
from refimpl.rope import Rope  # noqa: E402

D_MODEL, N_HEADS, N_KV, HEAD_DIM, WINDOW, THETA = 16, 4, 2, 8, 3, 10000.0
B, T = 2, 7


def _config():
    config = gpt_oss.GptOssConfig(
        hidden_size=D_MODEL, num_attention_heads=N_HEADS, num_key_value_heads=N_KV, head_dim=HEAD_DIM,
        sliding_window=WINDOW, num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"],
        attention_bias=True,
    )  # fmt: skip
    config._attn_implementation = "eager"
    return config


def _hf_mask(config, x, layer_type: str):
    sliding = layer_type == "sliding_attention"
    make = masking.create_sliding_window_causal_mask if sliding else masking.create_causal_mask
    return make(config=config, inputs_embeds=x, attention_mask=None, cache=None,
                position_ids=torch.arange(x.shape[1])[None])  # fmt: skip


def _cos_sin(n_tokens: int):
    """Rotary tables in float64 from the definition (HF's own rotary module computes them in float32)."""
    inv_freq = THETA ** (-np.arange(0, HEAD_DIM, 2) / HEAD_DIM)  # (Dh/2,)
    angles = np.arange(n_tokens)[:, None] * inv_freq[None, :]  # (T, Dh/2)
    shape = (B, n_tokens, HEAD_DIM // 2)
    return tuple(torch.from_numpy(np.broadcast_to(f(angles), shape).copy()) for f in (np.cos, np.sin))


def _rel(got, ref) -> float:
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("layer_idx", [0, 1])  # 0: sliding_attention (window 3), 1: full_attention
def test_gpt_oss_attention_outputs_and_gradients_match(layer_idx):
    config = _config()
    torch.manual_seed(layer_idx)
    module = gpt_oss.GptOssAttention(config, layer_idx).double()
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn_like(param) * 0.5)  # sinks included: O(1) logits
    layer_type = config.layer_types[layer_idx]
    assert module.sliding_window == (WINDOW if layer_type == "sliding_attention" else None)

    rng = np.random.default_rng(layer_idx)
    x = rng.standard_normal((B, T, D_MODEL))  # (B, T, D)
    dy = rng.standard_normal((B, T, D_MODEL))  # random upstream gradient
    x_t = torch.from_numpy(x).requires_grad_()
    y_t, _ = module(x_t, position_embeddings=_cos_sin(T), attention_mask=_hf_mask(config, x_t, layer_type))
    y_t.backward(torch.from_numpy(dy))

    proj = {"q": module.q_proj, "k": module.k_proj, "v": module.v_proj, "o": module.o_proj}
    params = {f"w_{n}": m.weight.detach().numpy().T.copy() for n, m in proj.items()}  # (in, out)
    params |= {f"b_{n}": m.bias.detach().numpy().copy() for n, m in proj.items()}
    params["sinks"] = module.sinks.detach().numpy().copy()  # (N,)
    window = module.sliding_window  # HF's sliding_window W is our window=W
    y, cache = attention_layer_forward(x, params, n_heads=N_HEADS, n_kv_heads=N_KV, rope=Rope("half", theta=THETA),
                                       window=window)  # fmt: skip
    grads = attention_layer_backward(dy, cache)

    assert _rel(y, y_t.detach().numpy()) <= 1e-12
    hf_grads = {"x": x_t.grad.numpy(), "sinks": module.sinks.grad.numpy()}
    hf_grads |= {f"w_{n}": m.weight.grad.numpy().T for n, m in proj.items()}
    hf_grads |= {f"b_{n}": m.bias.grad.numpy() for n, m in proj.items()}
    assert sorted(hf_grads) == sorted(grads)
    floor = 1e-6 * max(np.abs(g).max() for g in hf_grads.values())  # b_k: analytically ~0 with rope
    for name, g in hf_grads.items():
        assert np.max(np.abs(grads[name] - g)) / max(np.abs(g).max(), floor) <= 1e-10, name


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 20])
def test_hf_sliding_window_w_is_our_window_w(window):
    """HF's mask for sliding_window=W (kv_idx > q_idx - W and kv_idx <= q_idx): each query sees W keys,
    itself included. Ours for window=W is the same matrix, for windows shorter and longer than T."""
    config = _config()
    config.sliding_window = window
    hf = _hf_mask(config, torch.zeros(1, 8, D_MODEL, dtype=torch.float64), "sliding_attention")
    visible = (hf[0, 0] == 0).numpy()  # additive mask: 0 visible, dtype min hidden
    np.testing.assert_array_equal(visible, attention_mask(8, 8, window=window)[0])
    assert visible.sum(axis=1).tolist() == [min(t + 1, window) for t in range(8)]
