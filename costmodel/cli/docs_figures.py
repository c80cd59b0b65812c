"""The figures of ``glugqa docs``: their data (pure Python, from the cost model) and their drawing.

Each figure is a JSON-ready dict (title, axes, series of x/y points, the settings that produced them),
written beside the PNG as ``<name>.json``. ``glugqa docs --check`` compares that data, not the PNG bytes:
PNGs drawn by different matplotlib/FreeType versions differ byte-wise while the data are plain IEEE-754
arithmetic in Python, the same on every machine. Numbers are rounded to ``SIGNIFICANT_DIGITS`` so the
files stay readable. matplotlib (the ``plot`` extra) is imported only to draw.
"""

from __future__ import annotations

from ..hardware import HARDWARE
from ..latency import IDEAL, decode_latency, prefill_latency
from ..memory import kv_cache_bytes
from ..models import MODELS

SIGNIFICANT_DIGITS = 6
GB = 1e9

# Figure 3 of Ainslie et al. 2023 plots time per sample against the number of GQA groups (T5-XXL); ours is
# Llama-2-70B decoding on one 8-device node (a common deployment: tp = 8 = its K).
FIG_KV_MODEL, FIG_KV_CHIPS = "llama-2-70b", ("a100-sxm-80gb", "h100-sxm", "h200-sxm")
FIG_KV_TP, FIG_KV_BATCH, FIG_KV_CONTEXT = 8, 32, 4096
FIG_CONTEXT_MODELS = ("llama-2-7b", "llama-2-70b", "llama-3-8b", "mistral-7b", "gemma-2b")
FIG_CONTEXTS = tuple(2**i for i in range(10, 18))  # 1k .. 128k tokens
FIG_ROOFLINE_CHIP, FIG_ROOFLINE_MODEL = "h100-sxm", "llama-3-8b"
FIG_ROOFLINE_DECODE_BATCHES = (1, 8, 64, 512)
FIG_ROOFLINE_PREFILL = 2048


def _r(x: float) -> float:
    return float(f"{float(x):.{SIGNIFICANT_DIGITS}g}")


def decode_vs_kv_heads() -> dict:
    cfg = MODELS[FIG_KV_MODEL]
    ks = [k for k in range(1, cfg.n_heads + 1) if cfg.n_heads % k == 0]
    series = []
    for chip in FIG_KV_CHIPS:
        ys = [
            decode_latency(
                cfg.with_(n_kv_heads=k), chip, batch=FIG_KV_BATCH, context=FIG_KV_CONTEXT, tp=FIG_KV_TP
            ).total_s
            * 1e3
            for k in ks
        ]
        series.append({"label": HARDWARE[chip].label, "x": ks, "y": [_r(y) for y in ys], "style": "line"})
    return {
        "title": f"Decode latency vs KV heads: {FIG_KV_MODEL}, tp={FIG_KV_TP}, batch {FIG_KV_BATCH}, "
        f"context {FIG_KV_CONTEXT}",
        "xlabel": "KV heads K (1 = MQA, 64 = MHA)",
        "ylabel": "decode latency per token (ms)",
        "xlog": True,
        "ylog": False,
        "caption": (
            "Like Figure 3 of Ainslie et al. 2023. Below K = tp = 8 every device still holds one "
            "whole KV head, so the latency stops falling: GQA-8 is the smallest useful K on 8 devices."
        ),
        "series": series,
    }


def kv_vs_context() -> dict:
    series = []
    for name in FIG_CONTEXT_MODELS:
        cfg = MODELS[name]
        ys = [kv_cache_bytes(cfg, batch=1, context=s, kv_dtype="bf16") / GB for s in FIG_CONTEXTS]
        series.append(
            {
                "label": f"{name} ({cfg.attention_kind})",
                "x": list(FIG_CONTEXTS),
                "y": [_r(y) for y in ys],
                "style": "line",
            }
        )
    h100 = HARDWARE["h100-sxm"].memory_bytes / GB
    series.append(
        {
            "label": "H100 memory (80 GiB)",
            "x": [FIG_CONTEXTS[0], FIG_CONTEXTS[-1]],
            "y": [_r(h100)] * 2,
            "style": "dashed",
        }
    )
    return {
        "title": "KV cache per sequence vs context (bf16)",
        "xlabel": "context (tokens)",
        "ylabel": "KV cache per sequence (GB)",
        "xlog": True,
        "ylog": True,
        "caption": (
            "KV bytes = 2 L K Dh bytes per token: GQA-8 cuts Llama-2-70B's cache 8x; Mistral's "
            "4096-token sliding window caps its cache."
        ),
        "series": series,
    }


def roofline() -> dict:
    hw, cfg = HARDWARE[FIG_ROOFLINE_CHIP], MODELS[FIG_ROOFLINE_MODEL]
    peak, bw = hw.peak_flops["bf16"], hw.hbm_bandwidth
    xs = [0.1 * 2**i for i in range(17)]
    series = [
        {
            "label": f"{hw.label} roofline (bf16)",
            "x": [_r(x) for x in xs],
            "y": [_r(min(peak, bw * x) / 1e12) for x in xs],
            "style": "plain",
        }
    ]
    runs = [
        (f"decode, batch {b}", decode_latency(cfg, hw, batch=b, context=4096, eff=IDEAL))
        for b in FIG_ROOFLINE_DECODE_BATCHES
    ]
    runs.append(
        (
            f"prefill, {FIG_ROOFLINE_PREFILL} tokens",
            prefill_latency(cfg, hw, batch=1, prompt_len=FIG_ROOFLINE_PREFILL, eff=IDEAL),
        )
    )
    for label, lat in runs:
        series.append(
            {
                "label": label,
                "x": [_r(lat.flops / lat.bytes)],
                "y": [_r(lat.flops / lat.total_s / 1e12)],
                "style": "points",
            }
        )
    return {
        "title": f"Roofline: {FIG_ROOFLINE_MODEL} on {hw.label} (pure bound, context 4096)",
        "xlabel": "arithmetic intensity (FLOP per HBM byte)",
        "ylabel": "attained TFLOP/s",
        "xlog": True,
        "ylog": True,
        "caption": (
            f"Ridge point {peak / bw:.0f} FLOP/byte. Batching amortises the weights, but every "
            f"sequence's KV cache is read once per decode step (attention: about N/K = {cfg.group_size} "
            "FLOP/byte), so decode at this context stays bandwidth-bound at any batch; prefill is "
            "compute-bound."
        ),
        "series": series,
    }


def accuracy() -> dict:
    """Predicted against measured for every counted point of the shipped development set (ESTIMATE)."""
    from ..accuracy import counted, evaluate, shipped_points  # noqa: PLC0415 -- only this figure needs it

    preds = counted(evaluate(shipped_points()))
    series = []
    for metric in sorted({p.point.metric for p in preds}):
        ps = [p for p in preds if p.point.metric == metric]
        series.append({
            "label": f"{metric} ({ps[0].point.unit})", "x": [_r(p.point.measured) for p in ps],
            "y": [_r(p.predicted) for p in ps], "style": "points",
        })  # fmt: skip
    values = [v for s in series for v in s["x"] + s["y"]]
    lo, hi = min(values) / 2, max(values) * 2
    for factor, label, style in ((1.0, "y = x", "plain"), (1.1, "+10%", "dashed"), (0.9, "-10%", "dashed")):
        series.append({"label": label, "x": [_r(lo), _r(hi)], "y": [_r(lo * factor), _r(hi * factor)], "style": style})
    return {
        "title": "Predicted vs measured: the shipped development set (default estimate)",
        "xlabel": "measured (ms or tok/s, as published)",
        "ylabel": "predicted (same unit)",
        "xlog": True,
        "ylog": True,
        "caption": (
            "Each point is one published measurement (costmodel/data/measured), priced by the default "
            "estimate; the dashed lines are +-10%. docs/accuracy.md lists every point and the errors by "
            "source, hardware and metric."
        ),
        "series": series,
    }


FIGURES = {
    "decode-latency-vs-kv-heads": decode_vs_kv_heads,
    "kv-cache-vs-context": kv_vs_context,
    "roofline": roofline,
    "accuracy": accuracy,
}


def draw(data: dict, path) -> None:
    """Draw ``data`` to a PNG at ``path`` with matplotlib's Agg backend; no timestamps or version metadata."""
    import matplotlib  # noqa: PLC0415 -- the `plot` extra, only when drawing

    from .plots import save_png  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=100)
    try:
        for s in data["series"]:
            if s["style"] == "points":
                ax.plot(s["x"], s["y"], marker="o", linestyle="none", label=s["label"])
            else:
                ax.plot(
                    s["x"],
                    s["y"],
                    linestyle="--" if s["style"] == "dashed" else "-",
                    marker="." if s["style"] == "line" else None,
                    label=s["label"],
                )  # "plain", "dashed": no markers
        if data["xlog"]:
            ax.set_xscale("log", base=2 if all(isinstance(x, int) for x in data["series"][0]["x"]) else 10)
        if data["ylog"]:
            ax.set_yscale("log")
        ax.set_xlabel(data["xlabel"])
        ax.set_ylabel(data["ylabel"])
        ax.set_title(data["title"], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, path, what="figure")
    finally:
        plt.close(fig)
