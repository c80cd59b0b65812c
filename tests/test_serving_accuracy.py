"""The development set's continuous and offline-max points through the serving model (the accuracy harness's
predictors registered by costmodel.serving.accuracy)."""

import math

import numpy as np
import pytest

from costmodel.accuracy import PREDICTORS, evaluate, shipped_points
from costmodel.accuracy.predict import Setup
from costmodel.serving.accuracy import ROUNDS, simulate_point

SERVING = ("continuous", "offline-max")


@pytest.fixture(scope="module")
def predictions():
    return evaluate([p for p in shipped_points() if p.batching in SERVING])


def test_every_serving_point_is_priced_or_says_why(predictions):
    assert len(predictions) == 22
    priced = [p for p in predictions if p.computable]
    assert len(priced) == 17  # the mixture-of-experts point (Mixtral-8x7B fp8 on 2 H100s) included
    for p in priced:
        assert math.isfinite(p.predicted) and p.predicted > 0
        assert -0.9 < p.error < 3.0, (p.point.id, p.error)  # within a factor the model can be trusted to
    reasons = {p.reason.split(":")[0] for p in predictions if not p.computable}
    assert reasons == {
        "weight_dtype 'fp4' is not one of the cost model's dtypes",
        "no hardware preset for this part (A100 PCIe 80GB",
        "no hardware preset for this part (GB200 (NVL72)",
    }
    assert all(callable(PREDICTORS[(m, b)]) for m, b in PREDICTORS if b in SERVING)


def test_continuous_is_a_closed_loop_of_the_points_concurrency(predictions):
    pred = next(p for p in predictions if p.point.id == "lmd-a100-l2-7b-b64-128-2048-tput")
    from costmodel.accuracy import all_models
    from costmodel.hardware import HARDWARE
    from costmodel.latency import ESTIMATE

    point = pred.point
    result = simulate_point(Setup(point, all_models()[point.model_key], HARDWARE[point.hardware_key], ESTIMATE))
    assert len(result.output) == 64 * ROUNDS
    assert 0.9 * 64 < result.mean_concurrency <= 64  # 64 clients, fewer only while the last round drains
    assert pred.predicted == pytest.approx(result.throughput_tok_s, rel=1e-12)
    assert np.all(result.output == 2048) and np.all(result.prompt == 128)


def test_a_serving_point_prices_its_steps_with_its_own_settings():
    """The serving predictor's replica times an iteration exactly as the single-step recipe (Setup.decode_s,
    Setup.prefill_s) does for the same point: its KV-read setting, weight groups and power-limited chip."""
    from dataclasses import replace

    from costmodel.accuracy import all_models
    from costmodel.budget import ServerConfig
    from costmodel.hardware import HARDWARE
    from costmodel.latency import ESTIMATE
    from costmodel.serving.accuracy import replica_for
    from costmodel.serving.step import Chunk

    base = next(p for p in shipped_points() if p.id == "lmd-a100-l2-7b-b64-128-2048-tput")
    point = replace(base, kv_read_per_query_head=True, weight_dtype="int4", weight_group_size=32,
                    weight_group_bytes=4.0, hardware_key="a100-sxm-80gb-330w")  # fmt: skip
    cfg = all_models()[point.model_key].with_(n_kv_heads=8)  # GQA: the KV-read setting matters
    setup = Setup(point, cfg, HARDWARE[point.hardware_key], ESTIMATE)
    step = replica_for(setup, ServerConfig()).step
    for d, s in ((1, 129), (64, 1000)):
        assert step.iteration_s(d, s) == pytest.approx(setup.decode_s(d, s), rel=1e-12)
    assert step.iteration_s(0, 1, [Chunk(0, 128, True)]) == pytest.approx(setup.prefill_s(1, 128), rel=1e-12)
    grouped = Setup(replace(point, kv_read_per_query_head=False), cfg, setup.hw, ESTIMATE)  # a grouped kernel
    assert replica_for(grouped, ServerConfig()).step.iteration_s(64, 1000) < step.iteration_s(64, 1000)
