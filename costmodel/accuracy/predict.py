"""Predict each measured point's metric with the cost model (the recipe, per metric and batching).

The recipe (what a published figure means in terms of prefill and decode steps, on one of ``tp`` devices):

- ``ttft_ms``: one prefill of ``batch`` prompts of ``input_len`` tokens (time to the first token's logits).
- ``decode_ms_per_token`` and ``decode_tok_s_per_user``: one decode step of ``batch`` sequences at the mean
  context of the generation, ``input_len + output_len // 2`` (ms, or 1 / step time).
- ``e2e_ms``: the prefill, then the ``output_len − 1`` decode steps at contexts ``input_len + 1`` …
  ``input_len + output_len − 1`` (the first output token comes from the prefill). The sum over steps is exact
  (:func:`costmodel.accuracy.series.sum_piecewise_affine`), not the mid-context step times the step count.
- ``output_tok_s_total`` with ``batch-1`` or ``static`` batching: ``batch · output_len / e2e``.
- ``offline-max`` and ``continuous`` batching: the throughput of a server that admits and retires requests
  every step (continuous batching) is not a single prefill plus decode; these are not computable until a serving
  model is registered for them (:func:`register_predictor`).

Predictors are looked up in :data:`PREDICTORS` by (metric, batching): a function of a :class:`Setup` returning
the predicted value in the metric's unit, or a string saying why that pair cannot be predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import DTYPES, ModelConfig
from ..hardware import HARDWARE, Hardware
from ..latency import ESTIMATE, Efficiency, decode_latency, prefill_latency
from .points import MeasuredPoint, all_models
from .schema import BATCHINGS, METRICS, TIME_METRICS
from .series import sum_piecewise_affine

MS = 1e3  # ms per s
DEFAULT_GROUP_BYTES = 2.0  # one fp16 scale per group


@dataclass(frozen=True)
class Setup:
    """One point resolved for the cost model: its model, chip and efficiency; step times in seconds."""

    point: MeasuredPoint
    cfg: ModelConfig
    hw: Hardware
    eff: Efficiency

    def latency_kwargs(self) -> dict:
        """Keywords for decode_latency / prefill_latency: tp, dtypes, the efficiency with the point's
        implementation settings applied, and its weight groups (a serving model pricing steps uses these)."""
        p = self.point
        eff = replace(self.eff, kv_read_per_query_head=True) if p.kv_read_per_query_head else self.eff
        kw = dict(tp=p.tp, weight_dtype=p.weight_dtype, kv_dtype=p.kv_dtype, eff=eff)
        if p.weight_group_size is not None:
            kw.update(group_size=p.weight_group_size, group_bytes=p.weight_group_bytes or DEFAULT_GROUP_BYTES)
        return kw

    def prefill_s(self, batch: int, prompt_len: int) -> float:
        kw = self.latency_kwargs()
        return prefill_latency(self.cfg, self.hw, batch=batch, prompt_len=prompt_len, **kw).total_s

    def decode_s(self, batch: int, context: int) -> float:
        return decode_latency(self.cfg, self.hw, batch=batch, context=context, **self.latency_kwargs()).total_s

    def generate_s(self, batch: int, input_len: int, output_len: int) -> float:
        """Prefill, then decode steps at contexts input_len + 1 … input_len + output_len − 1 (exact sum)."""
        steps = sum_piecewise_affine(lambda s: self.decode_s(batch, s), input_len + 1, input_len + output_len - 1)
        return self.prefill_s(batch, input_len) + steps


def _ttft_ms(s: Setup) -> float:
    return s.prefill_s(s.point.batch, s.point.input_len) * MS


def _mid_step_s(s: Setup) -> float:
    p = s.point
    return s.decode_s(p.batch, p.input_len + p.output_len // 2)


def _e2e_s(s: Setup) -> float:
    p = s.point
    return s.generate_s(p.batch, p.input_len, p.output_len)


ROOFLINE_PREDICTORS = {
    "ttft_ms": _ttft_ms,
    "decode_ms_per_token": lambda s: _mid_step_s(s) * MS,
    "decode_tok_s_per_user": lambda s: 1.0 / _mid_step_s(s),
    "e2e_ms": lambda s: _e2e_s(s) * MS,
    "output_tok_s_total": lambda s: s.point.batch * s.point.output_len / _e2e_s(s),
}
NEEDS_SERVING_MODEL = (
    "needs a serving model: continuous batching admits and retires requests every step, which a single "
    "prefill plus decode steps does not describe"
)

# (metric, batching) -> predictor(Setup) -> value in the metric's unit, or the reason it is not computable
PREDICTORS: dict[tuple[str, str], object] = {}
for _m, _fn in ROOFLINE_PREDICTORS.items():
    PREDICTORS[(_m, "batch-1")] = _fn
    PREDICTORS[(_m, "static")] = _fn
    PREDICTORS[(_m, "offline-max")] = NEEDS_SERVING_MODEL
    PREDICTORS[(_m, "continuous")] = NEEDS_SERVING_MODEL


def register_predictor(metric: str, batching: str, predictor) -> None:
    """Use ``predictor(setup) -> value`` (or a reason string) for points of this metric and batching (e.g. a
    serving model for ``offline-max`` / ``continuous``)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}; got {batching!r}")
    if not (callable(predictor) or isinstance(predictor, str)):
        raise ValueError(f"predictor must be callable or a reason string; got {type(predictor).__name__}")
    PREDICTORS[(metric, batching)] = predictor


@dataclass(frozen=True)
class Prediction:
    """A point and the cost model's value for it (None, with ``reason``, when not computable)."""

    point: MeasuredPoint
    predicted: float | None
    reason: str = ""

    @property
    def computable(self) -> bool:
        return self.predicted is not None

    @property
    def ratio(self) -> float:
        """predicted / measured."""
        return self.predicted / self.point.measured

    @property
    def error(self) -> float:
        """Signed error of the published quantity: predicted / measured − 1 (a time < 0 or a rate > 0 is
        optimistic)."""
        return self.ratio - 1.0

    @property
    def optimism(self) -> float:
        """predicted speed / measured speed − 1 whatever the metric: > 0 when the model is too optimistic."""
        return 1.0 / self.ratio - 1.0 if self.point.metric in TIME_METRICS else self.ratio - 1.0


def _why_not(p: MeasuredPoint, models, hardware) -> tuple[ModelConfig | None, Hardware | None, str]:
    cfg = p.model_config if p.model_config is not None else models.get(p.model_key)
    if not isinstance(cfg, ModelConfig):
        return None, None, f"model {p.model_key!r}: {cfg or 'unknown'}"
    if p.hardware_key is None:
        return (
            None,
            None,
            "no hardware preset for this part"
            + (f" ({p.notes['hardware_note']})" if p.notes.get("hardware_note") else ""),
        )
    if p.hardware_key not in hardware:
        return None, None, f"unknown hardware {p.hardware_key!r}"
    for field in ("weight_dtype", "kv_dtype"):
        if getattr(p, field) not in DTYPES:
            return None, None, f"{field} {getattr(p, field)!r} is not one of the cost model's dtypes"
    if p.pp > 1:
        return None, None, "pipeline parallelism is not modelled"
    return cfg, hardware[p.hardware_key], ""


def predict_point(point: MeasuredPoint, *, eff=ESTIMATE, models=None, hardware=None, predictors=None) -> Prediction:
    """The cost model's value for one point, or the reason it has none."""
    if not isinstance(eff, Efficiency):
        raise ValueError(f"eff must be an Efficiency (IDEAL, ESTIMATE or your own); got {type(eff).__name__}")
    models = all_models() if models is None else models
    hardware = HARDWARE if hardware is None else hardware
    predictors = PREDICTORS if predictors is None else predictors
    cfg, hw, reason = _why_not(point, models, hardware)
    if reason:
        return Prediction(point, None, reason)
    predictor = predictors.get((point.metric, point.batching), f"no predictor for {point.metric}/{point.batching}")
    if isinstance(predictor, str):
        return Prediction(point, None, predictor)
    try:
        value = float(predictor(Setup(point, cfg, hw, eff)))
    except ValueError as exc:  # e.g. tp that does not divide the model's heads
        return Prediction(point, None, f"the cost model refused it: {exc}")
    return Prediction(point, value)


def evaluate(points, *, eff=ESTIMATE, models=None, hardware=None, predictors=None) -> list[Prediction]:
    """:func:`predict_point` for every point, in order."""
    models = all_models() if models is None else models
    return [predict_point(p, eff=eff, models=models, hardware=hardware, predictors=predictors) for p in points]
