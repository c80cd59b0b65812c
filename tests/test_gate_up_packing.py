"""pack_gate_up / unpack_gate_up: exact round trips in both layouts, and the layouts Transformers reads
(GptOssExperts interleaved, MixtralExperts concatenated)."""

import numpy as np
import pytest

from refimpl import ffn_forward, init_moe_params, pack_gate_up, unpack_gate_up


@pytest.mark.parametrize("layout", ["interleaved", "concat"])
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 4, 5)])  # biases (F,), (E, F); weights (E, D, F)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_round_trip_is_exact_and_keeps_dtype(layout, shape, dtype, rng):
    w_gate, w_up = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    packed = pack_gate_up(w_gate, w_up, layout=layout)
    assert packed.shape == (*shape[:-1], 2 * shape[-1]) and packed.dtype == dtype
    gate, up = unpack_gate_up(packed, layout=layout)
    assert np.array_equal(gate, w_gate) and np.array_equal(up, w_up) and gate.dtype == dtype
    assert np.array_equal(pack_gate_up(gate, up, layout=layout), packed)  # and back


def test_layouts_place_columns_as_documented():
    gate, up = np.array([[1.0, 2.0, 3.0]]), np.array([[10.0, 20.0, 30.0]])  # (D, F)
    np.testing.assert_array_equal(pack_gate_up(gate, up), [[1, 10, 2, 20, 3, 30]])  # gpt-oss: 0::2, 1::2
    np.testing.assert_array_equal(pack_gate_up(gate, up, layout="concat"), [[1, 2, 3, 10, 20, 30]])  # [gate | up]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pack_gate_up(np.ones((2, 3)), np.ones((2, 4))), "w_up must have w_gate's shape"),
        (lambda: pack_gate_up(np.ones(3), np.ones(3, np.float32)), "w_up must have w_gate's shape .* and dtype"),
        (lambda: pack_gate_up(np.ones(3), np.ones(3), layout="blocked"), "layout must be one of"),
        (lambda: pack_gate_up(np.arange(3), np.arange(3)), "w_gate must be a NumPy floating-point array"),
        (lambda: pack_gate_up(np.float64(1.0), np.ones(1)), "w_gate must be a NumPy floating-point array"),
        (lambda: unpack_gate_up(np.ones((2, 5))), r"gate_up must have an even last axis \(2F\)"),
        (lambda: unpack_gate_up([1.0, 2.0]), "gate_up must be a NumPy floating-point array"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_interleaved_is_what_gpt_oss_experts_read(rng):
    """GptOssExperts._apply_gate on our packed pre-activations, then w_down, equals our swiglu_oss expert."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts

    d_model, d_ff = 6, 5
    config = transformers.GptOssConfig(hidden_size=d_model, intermediate_size=d_ff, num_local_experts=1,
                                       experts_implementation="eager")  # fmt: skip
    p = {k: a[0] for k, a in init_moe_params(rng, d_model, d_ff, 1, "swiglu_oss", bias=True).items() if k[0] in "wb"
         and k not in ("w_router", "b_router")}  # fmt: skip  expert 0's FFN params
    x = 5.0 * rng.standard_normal((7, d_model))  # (T, D): pre-activations beyond the clamps too
    gate_up = x @ pack_gate_up(p["w_gate"], p["w_up"]) + pack_gate_up(p["b_gate"], p["b_up"])  # (T, 2F)
    hidden = GptOssExperts(config)._apply_gate(torch.tensor(gate_up)).numpy()  # (T, F)
    expected = hidden @ p["w_down"] + p["b_down"]  # (T, D)
    np.testing.assert_allclose(ffn_forward(x, p, "swiglu_oss")[0], expected, rtol=1e-13, atol=1e-13)
    # de-interleaving with the wrong layout mixes gate and up columns: an O(1) different expert
    gate_wrong, up_wrong = unpack_gate_up(pack_gate_up(p["w_gate"], p["w_up"]), layout="concat")
    wrong = {"w_gate": gate_wrong, "w_up": up_wrong}
    assert np.max(np.abs(ffn_forward(x, {**p, **wrong}, "swiglu_oss")[0] - expected)) > 0.1
