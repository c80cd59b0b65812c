"""The JAX port on CPU: SwiGLU forward+backward against its nine-matmul floor, and GQA attention against
the NumPy reference.

1. SwiGLU at T=512, D=1024, F=2816 (issue 4): ``jax.jit`` of ffn_forward + jax.vjp (refimpl.jax.ffn_backward)
   timed against a jitted function doing only the nine matrix products of the same shapes (3 forward,
   6 backward), both in the same dtype and the same run. Ratio = floor / port; goal >= 0.95.
2. GQA causal attention at B=1, T=S=1024, N=32, K=4, Dh=128 (a Llama-style GQA-4 shape), forward and
   forward+backward, the JAX port against refimpl.attention_forward/backward (float64, NumPy's BLAS).
   JAX runs in float64 (jax_enable_x64) for a like-for-like comparison, and in float32 for reference.

    python benchmarks/jax_cpu.py [--repeats 5] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)  # float64 runs need it; float32 arrays stay float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import refimpl  # noqa: E402
from refimpl.jax import attention as jattn  # noqa: E402
from refimpl.jax import ffn as jffn  # noqa: E402

T, D, F = 512, 1024, 2816
ATTN = dict(batch=1, seq=1024, n_heads=32, n_kv_heads=4, head_dim=128)


def best_of(fn, repeats: int) -> float:
    """Minimum wall time over ``repeats`` calls; fn must block until its result is ready."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def swiglu(repeats: int, dtype) -> None:
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(a, dtype) for k, a in refimpl.init_ffn_params(rng, D, F, "swiglu").items()}
    x, dy = (jnp.asarray(rng.standard_normal((T, D)), dtype) for _ in range(2))  # (T, D) each
    h, da, db = (jnp.asarray(rng.standard_normal((T, F)), dtype) for _ in range(3))  # (T, F) stand-ins

    @jax.jit
    def nine_matmuls(x, dy, h, da, db, w_gate, w_up, w_down):
        fwd = (x @ w_gate, x @ w_up, h @ w_down)
        bwd = (dy @ w_down.T, h.T @ dy, x.T @ da, x.T @ db, da @ w_gate.T, db @ w_up.T)
        return fwd + bwd

    @jax.jit
    def port(x, dy, params):
        y = jffn.ffn_forward(x, params, "swiglu")
        return y, jffn.ffn_backward(dy, x, params, "swiglu")

    floor_args = (x, dy, h, da, db, params["w_gate"], params["w_up"], params["w_down"])
    run_floor = lambda: jax.block_until_ready(nine_matmuls(*floor_args))  # noqa: E731
    run_port = lambda: jax.block_until_ready(port(x, dy, params))  # noqa: E731
    run_floor(), run_port()  # compile and warm up
    floor = ported = float("inf")
    for _ in range(repeats):  # interleaved: both see the same machine load
        floor = min(floor, best_of(run_floor, 1))
        ported = min(ported, best_of(run_port, 1))
    flops = 2 * 9 * T * D * F
    print(f"SwiGLU fwd+bwd T={T} D={D} F={F} {jnp.dtype(dtype).name}: nine matmuls {floor * 1e3:.1f} ms "
          f"({flops / floor / 1e9:.1f} GFLOP/s), JAX port {ported * 1e3:.1f} ms -> ratio floor/port "
          f"{floor / ported:.3f} (goal >= 0.95)")  # fmt: skip


def attention(repeats: int) -> None:
    b, s, n, k, dh = (ATTN[key] for key in ("batch", "seq", "n_heads", "n_kv_heads", "head_dim"))
    rng = np.random.default_rng(1)
    q = rng.standard_normal((b, s, n, dh))  # (B, T, N, Dh)
    kk, v = (rng.standard_normal((b, s, k, dh)) for _ in range(2))  # (B, S, K, Dh)
    dout = rng.standard_normal(q.shape)  # (B, T, N, Dh)

    def numpy_fwd():
        return refimpl.attention_forward(q, kk, v, causal=True)

    def numpy_fwd_bwd():
        refimpl.attention_backward(dout, numpy_fwd()[1])

    t_np_fwd, t_np_both = best_of(numpy_fwd, repeats), best_of(numpy_fwd_bwd, repeats)
    print(f"GQA causal B={b} T=S={s} N={n} K={k} Dh={dh}: NumPy reference (float64) forward "
          f"{t_np_fwd * 1e3:.0f} ms, forward+backward {t_np_both * 1e3:.0f} ms")  # fmt: skip
    for dtype in (jnp.float64, jnp.float32):
        t_fwd, t_both = _time_jax_attention([jnp.asarray(arr, dtype) for arr in (q, kk, v, dout)], repeats)
        print(f"  JAX port {jnp.dtype(dtype).name}: forward {t_fwd * 1e3:.0f} ms ({t_np_fwd / t_fwd:.2f}x NumPy), "
              f"forward+backward {t_both * 1e3:.0f} ms ({t_np_both / t_both:.2f}x NumPy)")  # fmt: skip


def _attention_out(q, k, v):
    return jattn.attention_forward(q, k, v, causal=True)[0]


@jax.jit
def _attention_fwd_bwd(q, k, v, dout):
    out, vjp = jax.vjp(_attention_out, q, k, v)
    return out, vjp(dout)


def _time_jax_attention(args: list, repeats: int) -> tuple[float, float]:
    """(forward, forward+backward) seconds of the jitted JAX port on args = [q, k, v, dout]."""
    fwd = jax.jit(_attention_out)
    run_fwd = lambda: jax.block_until_ready(fwd(*args[:3]))  # noqa: E731
    run_both = lambda: jax.block_until_ready(_attention_fwd_bwd(*args))  # noqa: E731
    run_fwd(), run_both()  # compile and warm up
    return best_of(run_fwd, repeats), best_of(run_both, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="SwiGLU dtype (default: both)")  # fmt: skip
    args = parser.parse_args()
    print(f"backend: {jax.default_backend()}, {jax.device_count()} device(s), jax {jax.__version__}")
    for dtype in [args.dtype] if args.dtype else ["float32", "float64"]:
        swiglu(args.repeats, jnp.dtype(dtype))
    attention(max(2, args.repeats // 2))


if __name__ == "__main__":
    main()
