"""Tensor- and expert-parallel layouts on 8 host CPU devices. XLA_FLAGS=--xla_force_host_platform_device_count=8 must be
set before JAX starts, so tests/jax_sharding_check.py runs in a subprocess (once per session) and prints
one JSON row per check; the tests below judge those rows against formulas written out here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

SCRIPT = Path(__file__).with_name("jax_sharding_check.py")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=SCRIPT.parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def by_check(rows, name) -> list[dict]:
    found = [r for r in rows if r["check"] == name]
    assert found, f"no {name!r} rows"
    return found


def test_subprocess_sees_eight_devices(rows):
    assert by_check(rows, "devices")[0]["count"] == 8


def test_ffn_split_along_d_ff_equals_unsharded(rows):
    d_model, d_ff = 16, 32
    for r in by_check(rows, "ffn"):
        f_local = d_ff // r["tp"]
        shapes = r["shard_shapes"]
        assert shapes["w_up"] == [[d_model, f_local]] and shapes["w_down"] == [[f_local, d_model]]
        if "w_gate" in shapes:
            assert shapes["w_gate"] == [[d_model, f_local]]
        if r["bias"]:
            assert shapes["b_up"] == [[f_local]] and shapes["b_down"] == [[d_model]]  # b_down replicated
        assert r["vs_jax"] <= 1e-13 and r["vs_numpy"] <= 1e-12, r  # only the psum's summation order differs


def test_attention_split_by_query_heads_kv_heads_split_or_replicated(rows):
    n_heads, head_dim, d_model = 8, 4, 16
    for r in by_check(rows, "layer"):
        tp, n_kv = r["tp"], r["n_kv_heads"]
        kv_local = n_kv // tp if tp <= n_kv else 1  # replicated whole heads when TP > K
        shapes = r["shard_shapes"]
        assert shapes["w_q"] == [[d_model, n_heads // tp * head_dim]]
        assert shapes["w_o"] == [[n_heads // tp * head_dim, d_model]]
        assert shapes["w_k"] == shapes["w_v"] == [[d_model, kv_local * head_dim]]
        assert shapes["sinks"] == [[n_heads // tp]]  # the sink logits follow their query heads
        assert r["vs_jax"] <= 1e-13 and r["vs_numpy"] <= 1e-12, r


def test_sharded_decode_equals_full_forward_and_kv_bytes_per_device(rows):
    decode = by_check(rows, "decode")
    for i, r in enumerate(decode):
        batch, max_len, n_kv, head_dim = r["shape"]
        kv_local = n_kv // r["tp"] if r["tp"] <= n_kv else 1
        assert r["kv_bytes_per_device"] == 2 * batch * max_len * kv_local * head_dim * r["itemsize"]
        assert r["kv_bytes_total"] == 2 * batch * max_len * n_kv * head_dim * r["itemsize"]
        assert r["vs_numpy"] <= 1e-12 and r["cache_vs_numpy"] <= 1e-12, r
        assert r["compiles"] == 2 * (i + 1)  # per config: the prompt chunk and every single-token step


def test_kv_bytes_per_device_equal_the_cost_model(rows):
    costmodel = pytest.importorskip("costmodel")
    if not hasattr(costmodel, "kv_cache_bytes"):
        pytest.skip("costmodel.kv_cache_bytes not available")
    for r in by_check(rows, "decode"):
        batch, max_len, n_kv, head_dim = r["shape"]
        cfg = costmodel.ModelConfig(d_model=16, n_layers=1, n_heads=8, n_kv_heads=n_kv, head_dim=head_dim,
                                    d_ff=64, vocab_size=64)  # fmt: skip
        predicted = costmodel.kv_cache_bytes(cfg, batch=batch, context=max_len, kv_dtype="fp64", tp=r["tp"])
        assert predicted == r["kv_bytes_per_device"], (r, predicted)


def test_experts_split_over_the_expert_axis_equal_one_device(rows):
    d_model, d_ff = 16, 12
    for r in by_check(rows, "moe_ep"):
        assert r["w_up_shards"] == [[r["n_experts"] // r["devices"], d_model, d_ff]]  # E/n experts per device
        assert r["vs_jax"] <= 1e-13 and r["vs_numpy"] <= 1e-12, r  # only the psum's summation order differs
        assert "x" in r["grads_vs_numpy"] and max(r["grads_vs_numpy"].values()) <= 1e-10, r
