"""Independent, deliberately naive attention, rope and layer for the tests (explicit loops, repeated K/V).

Only the gradient helper at the end imports refimpl: the mask rule, the head map, the rotary formula (as
complex multiplication, Su et al. 2021 / Meta's original code) and the projections are written out again
from their definitions. Slow by design; for tiny shapes only.
"""

from __future__ import annotations

import numpy as np

from refimpl.gradcheck import assert_grads_close


def naive_mask(batch, n_queries, n_keys, *, causal=True, kv_lengths=None, window=None) -> np.ndarray:
    """visible[b, t, j]: j < L_b, and j <= L_b - T + t if causal, and j > L_b - T + t - window if window."""
    visible = np.zeros((batch, n_queries, n_keys), dtype=bool)
    for b in range(batch):
        length = n_keys if kv_lengths is None else int(kv_lengths[b])
        for t in range(n_queries):
            q_pos = length - n_queries + t
            for j in range(n_keys):
                ok = j < length
                if causal:
                    ok = ok and j <= q_pos
                if window is not None:
                    ok = ok and j > q_pos - window
                visible[b, t, j] = ok
    return visible


def contiguous_map(n, n_heads, n_kv_heads):
    return n // (n_heads // n_kv_heads)


def naive_attention(q, k, v, *, causal=True, kv_lengths=None, window=None, softcap=None, scale=None,
                    head_map=contiguous_map, sinks=None):  # fmt: skip
    """Loops over batch, query head and query; K/V repeated to N heads with ``head_map``. Returns (out, lse).

    sinks (N,): head n's logit z_n joins the row's softmax as one more term with no value (gpt-oss), so a row
    with no visible key gives out 0 and lse z_n."""
    batch, n_queries, n_heads, head_dim = q.shape
    n_keys, n_kv = k.shape[1], k.shape[2]
    scale = 1.0 / np.sqrt(head_dim) if scale is None else scale
    kv_of = [head_map(n, n_heads, n_kv) for n in range(n_heads)]
    k_rep = k[:, :, kv_of]  # (B, S, N, Dh) repeated: allowed in tests only
    v_rep = v[:, :, kv_of]  # (B, S, N, Dh)
    visible = naive_mask(batch, n_queries, n_keys, causal=causal, kv_lengths=kv_lengths, window=window)
    out = np.zeros(q.shape)
    lse = np.full(q.shape[:3], -np.inf)
    for b in range(batch):
        for n in range(n_heads):
            for t in range(n_queries):
                keys = np.flatnonzero(visible[b, t])
                sink = [] if sinks is None else [sinks[n]]
                if keys.size == 0:
                    lse[b, t, n] = sink[0] if sink else -np.inf
                    continue
                logits = np.array([scale * np.dot(q[b, t, n], k_rep[b, j, n]) for j in keys])
                if softcap is not None:
                    logits = softcap * np.tanh(logits / softcap)
                top = max([logits.max(), *sink])
                weights = np.exp(logits - top)
                total = weights.sum() + sum(np.exp(z - top) for z in sink)
                out[b, t, n] = sum(w * v_rep[b, j, n] for w, j in zip(weights, keys, strict=True)) / total
                lse[b, t, n] = top + np.log(total)
    return out, lse


def naive_rope(x, positions, *, theta=10000.0, layout="half"):
    """Rotate pairs as complex numbers: z_i * exp(i * pos * theta^(-2i/Dh)); positions (T,) or (B, T)."""
    batch, seq, n_heads, head_dim = x.shape
    positions = np.broadcast_to(np.asarray(positions), (batch, seq))
    half = head_dim // 2
    if layout == "half":
        z = x[..., :half] + 1j * x[..., half:]
    else:
        z = x[..., 0::2] + 1j * x[..., 1::2]
    freqs = np.array([theta ** (-2.0 * i / head_dim) for i in range(half)])
    rot = np.exp(1j * positions[:, :, None, None] * freqs[None, None, None, :])
    z = z * rot
    y = np.empty(x.shape)
    if layout == "half":
        y[..., :half], y[..., half:] = z.real, z.imag
    else:
        y[..., 0::2], y[..., 1::2] = z.real, z.imag
    return y


def naive_layer(x, params, *, n_heads, n_kv_heads, rope=None, rope_offset=0, theta=10000.0, **mask_args):
    """Per-head weight slices: q_n = x W_q[:, n*Dh:(n+1)*Dh] + b, etc.; rope = None | "half" | "interleaved"."""
    batch, seq, d_model = x.shape
    head_dim = params["w_q"].shape[1] // n_heads

    def heads(w, b, count):
        out = np.zeros((batch, seq, count, head_dim))
        for h in range(count):
            cols = slice(h * head_dim, (h + 1) * head_dim)
            out[:, :, h] = x @ w[:, cols] + (0.0 if b is None else b[cols])
        return out

    q = heads(params["w_q"], params.get("b_q"), n_heads)
    k = heads(params["w_k"], params.get("b_k"), n_kv_heads)
    v = heads(params["w_v"], params.get("b_v"), n_kv_heads)
    if rope is not None:
        positions = rope_offset + np.arange(seq)
        q = naive_rope(q, positions, theta=theta, layout=rope)
        k = naive_rope(k, positions, theta=theta, layout=rope)
    a, _ = naive_attention(q, k, v, sinks=params.get("sinks"), **mask_args)
    y = sum(a[:, :, n] @ params["w_o"][n * head_dim : (n + 1) * head_dim] for n in range(n_heads))
    return y + params.get("b_o", 0.0)


def check_grads_or_independence(f, inputs, grads, dout, rng, *, rtol=1e-7, **kwargs):
    """Finite differences for every gradient that is not identically zero. A gradient that is zero up to
    rounding (e.g. dq when each query sees exactly one key, or inputs that are fully masked) has no relative
    error to speak of; for those, check instead that the output really does not move when the input does."""
    zero = {name for name, g in grads.items() if np.abs(g).max(initial=0.0) < 1e-10}
    live = {name: g for name, g in grads.items() if name not in zero}
    if live:
        assert_grads_close(f, inputs, live, dout, rtol=rtol, **kwargs)
    base = f(inputs)
    for name in zero:
        moved = f({**inputs, name: inputs[name] + 1e-3 * rng.standard_normal(inputs[name].shape)})
        assert np.abs(moved - base).max() < 1e-12, name
