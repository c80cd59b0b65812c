"""Which physical term moved the error on the shipped development set: the terms switched on one after another.

Starts from the roofline with kipply's two efficiencies and the per-kernel cost (the estimate before the
collective, tile, attention, quantization and implementation terms), adds one term per row, and prints the
geometric-mean |error| and the log-based error of every step (both definitions, docs/accuracy.md).
Run: python benchmarks/accuracy_terms.py
"""

from __future__ import annotations

import dataclasses

from costmodel import ESTIMATE, HARDWARE, Efficiency
from costmodel.accuracy import evaluate, shipped_points, summarize

# the efficiency parameters the new terms introduced, at their "off" value
OFF = dict(link=1.0, flops_fp8=ESTIMATE.flops, collective_latency_s=0.0, attn_compute=1.0, attn_memory=1.0,
           dequant_int8=1.0, dequant_int4=1.0, wave_quantization=False)  # fmt: skip


def _hardware(**chip_fields) -> dict:
    """The presets with the new per-chip facts at their "off" value, except those named (a field's value: True
    for every chip, or the names of the chips that keep it)."""
    off = dict(link_latency_s=0.0, link_direct=False, hbm_efficiency_factor=1.0, compute_units=None)
    out = {}
    for name, hw in HARDWARE.items():
        keep = {k for k, v in chip_fields.items() if v is True or name in v}
        out[name] = dataclasses.replace(hw, **{k: v for k, v in off.items() if k not in keep})
    return out


def _strip(points, *fields):
    """The points without the implementation settings / power-limit mapping named."""
    out = []
    for p in points:
        changes = {}
        if "kv_read" in fields:
            changes["kv_read_per_query_head"] = False
        if "groups" in fields:
            changes.update(weight_group_size=None, weight_group_bytes=None)
        if "power" in fields and p.hardware_key == "a100-sxm-80gb-330w":
            changes["hardware_key"] = "a100-sxm-80gb"
        out.append(dataclasses.replace(p, **changes))
    return out


def main() -> None:
    pts = shipped_points()
    steps = [
        ("before: roofline, kipply 0.7 / 0.9, 3.25 us per kernel", {}, {}, ("kv_read", "groups", "power")),
        ("+ collectives: start-up, steps, link efficiency",
         dict(link=ESTIMATE.link, collective_latency_s=ESTIMATE.collective_latency_s),
         dict(link_latency_s=True, link_direct=True), ("kv_read", "groups", "power")),
        ("+ fp8 compute efficiency 0.5", dict(flops_fp8=ESTIMATE.flops_fp8), {}, ("kv_read", "groups", "power")),
        ("+ power-limited A100 (gpt-fast's 330 W)", {}, dict(hbm_efficiency_factor=("a100-sxm-80gb-330w",)),
         ("kv_read", "groups")),
        ("+ int8/int4 dequantisation, group scales",
         dict(dequant_int8=ESTIMATE.dequant_int8, dequant_int4=ESTIMATE.dequant_int4), {}, ("kv_read",)),
        ("+ KV read per query head (TRT-LLM < 0.8, gpt-fast)", {}, {}, ()),
        ("+ tile and wave quantization", dict(wave_quantization=True), dict(compute_units=True), ()),
        ("+ attention efficiencies (0.85 compute, 0.9 reads)",
         dict(attn_compute=ESTIMATE.attn_compute, attn_memory=ESTIMATE.attn_memory), {}, ()),
        ("+ MI300X bandwidth factor 0.9 = the default estimate", {}, dict(hbm_efficiency_factor=True), ()),
    ]  # fmt: skip
    eff_on, chip_on = {}, {}
    for label, eff_kw, chip_kw, stripped in steps:
        eff_on.update(eff_kw)
        chip_on.update(chip_kw)
        eff = Efficiency(**{**OFF, **eff_on})
        s = summarize(evaluate(_strip(pts, *stripped), eff=eff, hardware=_hardware(**chip_on)))
        print(f"{label:58s} n={s.n}  geo-mean |error| {s.geomean_abs_error:6.1%}  log-based {s.log_error:6.1%}  "
              f"worst {s.worst.error:+6.1%} ({s.worst.point.id})")
    final = summarize(evaluate(pts))
    print(f"{'check: ESTIMATE':58s} n={final.n}  geo-mean |error| {final.geomean_abs_error:6.1%}  log-based "
          f"{final.log_error:6.1%}")


if __name__ == "__main__":
    main()
