"""The attention cases: grouped-query attention inputs in the candidate's format, golden results, baseline errors.

Steps 1-3 of the rule (policy.py), as for the FFN (cases.py): q, k, v and dout ~ N(0, 1) rounded to the
format, golden results by refimpl.attention from the rounded inputs, the naive baseline (baseline.py) on them.

Attention kinds (q (B, T, N, Dh), k and v (B, S, K, Dh); S = seq_len, default 113, B = batch, default 2):
    prefill   T = S.
    chunk     T = S // 3 (37) queries against S keys: top-left causal alignment fails (ours: bottom-right).
    decode    T = 1 against S keys (under causal, top-left would show it one key instead of all).
    padded    T = S // 3 with kv_lengths = [S, T // 2] (causal: the first T - T // 2 query rows of batch row 1
              see no key) or [S, 0] (not causal: batch row 1 is fully masked). Fully masked rows must give
              output 0 and zero gradients (with sinks: output 0, lse = the sink logit).
    ortho-v   T = S = S // 3 with each KV head's values along its own orthonormal direction (plus 10% noise),
              so every query head's output points at its KV head's direction: a strided head map
              (n -> n % K instead of n // R) is off by O(1) in every element. Needs Dh >= K.

Sinks (``sinks=True``, gpt-oss): every case also draws one sink logit per query head,
z_n = log(S) + U(-1, 1), so the sink takes about 15-75% of a full row's mass (scores are ~N(0, 1), a row's
sum about S e^(1/2): 1 / (1 + e^(1/2 - u))) and all of a fully masked row's: a kernel that ignores the sink,
or gives it a value, is off by O(1). The sinks are an input (``inputs["sinks"]``, also ``spec.sinks``) with a
gradient ("dsinks").
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import flag, positive_int
from ..masks import check_window
from .baseline import naive_attention
from .cases import AttentionSpec, Case, baseline_errors, check_case_size, check_seeds
from .dtypes import NumberFormat, cast, round_to

ATTENTION_KINDS = ("prefill", "chunk", "decode", "padded", "ortho-v")
_ORTHO_NOISE = 0.1
_SINK_SPREAD = 1.0  # sink logits log(S) + U(-1, 1)


def _attention_shapes(kind: str, seq_len: int, causal: bool) -> tuple[int, int, list | None]:
    """(T, S, kv_lengths) of a case kind."""
    chunk = max(1, seq_len // 3)
    if kind == "prefill":
        return seq_len, seq_len, None
    if kind == "chunk":
        return chunk, seq_len, None
    if kind == "decode":
        return 1, seq_len, None
    if kind == "padded":
        return chunk, seq_len, [seq_len, chunk // 2 if causal else 0]
    return chunk, chunk, None  # ortho-v


def _ortho_values(rng, batch: int, n_keys: int, n_kv: int, head_dim: int) -> np.ndarray:
    """v[b, s, g] = sqrt(Dh) u_g + noise with u_g orthonormal: each KV head's values point its own way."""
    basis, _ = np.linalg.qr(rng.standard_normal((head_dim, head_dim)))  # (Dh, Dh) orthogonal
    directions = math.sqrt(head_dim) * basis[:, :n_kv].T  # (K, Dh) rows orthogonal, entries O(1)
    noise = _ORTHO_NOISE * rng.standard_normal((batch, n_keys, n_kv, head_dim))  # (B, S, K, Dh)
    return directions[None, None] + noise  # (B, S, K, Dh)


def check_attention_sizes(n_heads, n_kv_heads, head_dim, seq_len, batch) -> tuple[int, ...]:
    """The sizes checked and bounded (cases.MAX_CASE_BYTES): (N, K, Dh, S, B)."""
    n_heads, n_kv_heads, head_dim = (
        positive_int(n, x) for n, x in (("n_heads", n_heads), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim))
    )
    seq_len, batch = positive_int("seq_len", seq_len), positive_int("batch", batch)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads must divide n_heads={n_heads}; got {n_kv_heads}")
    if seq_len < 4:
        raise ValueError(f"seq_len must be at least 4 (so that T = seq_len // 3 differs from S); got {seq_len}")
    if batch < 2:
        raise ValueError(f"batch must be at least 2 (the padded case pads batch row 1); got {batch}")
    rows = batch * seq_len  # B * S: the largest T and S of a case
    what = f"an attention case of N={n_heads}, K={n_kv_heads}, Dh={head_dim}, S={seq_len}, B={batch}"
    check_case_size(12 * rows * (n_heads + n_kv_heads) * head_dim + 8 * rows * seq_len * n_heads, what)
    return n_heads, n_kv_heads, head_dim, seq_len, batch


def attention_cases(
    fmt: NumberFormat,
    *,
    n_heads: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int,
    causal: bool,
    seeds,
    scale=None,
    window=None,
    softcap=None,
    sinks: bool = False,
    backward: bool = True,
) -> list[Case]:
    """The attention cases (kinds ATTENTION_KINDS, one per seed each) in format ``fmt``; ``sinks``: draw a sink
    logit per query head (module docstring)."""
    from ..attention import attention_backward, attention_forward, check_options
    from ..masks import attention_mask

    n_heads, n_kv_heads, head_dim, seq_len, batch = check_attention_sizes(n_heads, n_kv_heads, head_dim,
                                                                          seq_len, batch)  # fmt: skip
    causal, window, softcap, scale = check_options(causal, check_window(window), softcap, scale, head_dim)
    sinks, backward = flag("sinks", sinks), flag("backward", backward)
    cases = []
    for seed in check_seeds(seeds):
        for idx, kind in enumerate(ATTENTION_KINDS):
            if kind == "ortho-v" and head_dim < n_kv_heads:
                continue  # no K orthogonal directions in Dh < K dimensions
            rng = np.random.default_rng([seed, idx])
            n_q, n_k, lengths = _attention_shapes(kind, seq_len, causal)
            q = round_to(rng.standard_normal((batch, n_q, n_heads, head_dim)), fmt)  # (B, T, N, Dh)
            k = round_to(rng.standard_normal((batch, n_k, n_kv_heads, head_dim)), fmt)  # (B, S, K, Dh)
            if kind == "ortho-v":
                v = round_to(_ortho_values(rng, batch, n_k, n_kv_heads, head_dim), fmt)  # (B, S, K, Dh)
            else:
                v = round_to(rng.standard_normal(k.shape), fmt)  # (B, S, K, Dh)
            dout = round_to(rng.standard_normal(q.shape), fmt) if backward else None  # (B, T, N, Dh)
            z = None
            if sinks:
                z = round_to(math.log(n_k) + rng.uniform(-_SINK_SPREAD, _SINK_SPREAD, n_heads), fmt)  # (N,)
            kv_lengths = None if lengths is None else np.array(lengths, dtype=np.int64)  # (B,)
            if kv_lengths is not None and batch > 2:
                kv_lengths = np.concatenate([kv_lengths, np.full(batch - 2, n_k, dtype=np.int64)])  # (B,)
            mask = attention_mask(n_q, n_k, causal=causal, kv_lengths=kv_lengths, window=window,
                                  batch=batch)  # (B, T, S)  # fmt: skip
            inputs = {"q": cast(q, fmt), "k": cast(k, fmt), "v": cast(v, fmt)}
            if z is not None:
                inputs["sinks"] = cast(z, fmt)
            spec = AttentionSpec(causal, scale, kv_lengths, mask, window, softcap, inputs.get("sinks"))
            opts = dict(causal=causal, kv_lengths=kv_lengths, window=window, softcap=softcap, scale=scale)
            out, cache = attention_forward(q, k, v, sinks=z, **opts)
            golden = {"out": out, "lse": cache.lse}
            if backward:
                golden.update({"d" + n: g for n, g in attention_backward(dout, cache).items()})
            base = naive_attention(q, k, v, mask, scale, fmt, dout=dout, softcap=softcap, sinks=z)
            worst, mean = baseline_errors(golden, base, fmt)
            douts = {"out": cast(dout, fmt)} if backward else {}
            cases.append(Case(f"{kind}.s{seed}", inputs, douts, golden, worst, mean, spec))
    return cases
