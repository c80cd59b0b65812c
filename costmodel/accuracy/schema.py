"""The measured-points format: every field with its kind, whether it is required, and what it means.

One point is one published (or your own) measurement of an LLM inference system. The format is documented for
users in docs/points-format.md (tests check that page lists exactly these fields). Kinds:

- ``text``: a string (may be empty);  ``name``: a non-empty string;
- ``count``: a positive integer up to MAX_COUNT (bools are not integers; 2.0 is not an integer);
- ``number``: a number (int or float, not bool) in MEASURED_RANGE;
- ``flag``: true or false (never "true", 1 or "");
- ``choice``: one string of ``choices``;  ``object``: a JSON object (in CSV: a cell holding JSON text).

``nullable`` fields accept null (JSON) or an empty cell (CSV).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DTYPES

MAX_COUNT = 2**40  # upper bound of every count field (as the CLI's counts): keeps float arithmetic finite
# bounds of a measured value in its unit (ms or tok/s): wide enough for any real system, and keeps every
# predicted / measured ratio and its logarithm finite
MEASURED_RANGE = (1e-6, 1e12)

# metric -> the unit every point of that metric must carry (whole-system throughput: per-GPU figures are
# multiplied by the number of GPUs before they enter a points file)
METRIC_UNITS = {
    "ttft_ms": "ms",
    "decode_ms_per_token": "ms",
    "decode_tok_s_per_user": "tok/s per user",
    "e2e_ms": "ms",
    "output_tok_s_total": "tok/s (whole system, output tokens)",
}
METRICS = tuple(METRIC_UNITS)
# time metrics: a smaller value is faster; the others are rates (a larger value is faster)
TIME_METRICS = ("ttft_ms", "decode_ms_per_token", "e2e_ms")

BATCHINGS = ("batch-1", "static", "offline-max", "continuous")
# Precisions a point may name: the cost model's own, plus those published systems use that it cannot price yet
# (a point with one of these is kept and reported as not computable).
KNOWN_DTYPES = DTYPES + ("fp4",)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    required: bool
    doc: str
    nullable: bool = False
    choices: tuple = ()


FIELDS: tuple[Field, ...] = (
    Field("id", "name", True, "unique id of the point within its file"),
    Field("source_short", "text", False, "the source family, e.g. `trtllm-0.9`, `gpt-fast`, `my-cluster` (default '')"),
    Field("model_key", "name", False, "a model preset (`glugqa models`) or a shipped extra config; "
          "exactly one of model_key and model_config"),
    Field("model_config", "object", False, "the model inline: ModelConfig keyword arguments (d_model, n_layers, "
          "n_heads, n_kv_heads, d_ff, vocab_size, ffn, ...); exactly one of model_key and model_config"),
    Field("model_name", "text", False, "the model as the source names it"),
    Field("moe", "flag", False, "true for mixture-of-experts models (default false)"),
    Field("hardware_key", "name", True, "a hardware preset (`glugqa hardware`); null when none fits "
          "(the point is then not computable)", nullable=True),
    Field("hardware_note", "text", False, "e.g. 'power-limited to 330 W', 'SKU not stated'"),
    Field("hardware_assumed", "flag", False, "true when the source did not state the exact part", nullable=True),
    Field("num_gpus", "count", False, "devices in the run; must equal tp · pp (default tp · pp)"),
    Field("tp", "count", True, "tensor-parallel degree"),
    Field("pp", "count", False, "pipeline-parallel degree (default 1)"),
    Field("weight_dtype", "choice", True, "weight precision", choices=KNOWN_DTYPES),
    Field("weight_assumed", "flag", False, "true when the source did not state the weight precision"),
    Field("weight_note", "text", False, "e.g. 'int4 weight-only, group size 32'"),
    Field("weight_group_size", "count", False, "grouped weight quantization: weights per scale (e.g. 32, 128)"),
    Field("weight_group_bytes", "number", False, "bytes stored per group: the scale (fp16: 2) plus a zero point if "
          "any (default 2; needs weight_group_size)"),
    Field("kv_dtype", "choice", False, "KV-cache precision (default: weight_dtype; bf16 for weight-only int8/int4)",
          choices=KNOWN_DTYPES),
    Field("kv_assumed", "flag", False, "true when the source did not state the KV-cache precision"),
    Field("kv_note", "text", False, "how the KV-cache precision was read (e.g. the stack's documented default)"),
    Field("batch", "count", True, "sequences served together (LMDeploy: client threads); null only for "
          "`offline-max`, whose batch the source does not report; 1 for `batch-1`", nullable=True),
    Field("input_len", "count", True, "prompt tokens per sequence"),
    Field("output_len", "count", True, "generated tokens per sequence (the first one comes from prefill)"),
    Field("lengths_assumed", "flag", False, "true when a length is a default, not stated by the source"),
    Field("lengths_note", "text", False, "how the lengths were read"),
    Field("batching", "choice", True, "`batch-1`; `static` (all prompts prefilled, then decoded together); "
          "`offline-max` (the stack's best throughput); `continuous` (fixed client concurrency)",
          choices=BATCHINGS),
    Field("metric", "choice", True, "what `measured` is (see the metric table)", choices=METRICS),
    Field("measured", "number", True, "the measured value, in the metric's unit (1e-6 to 1e12)"),
    Field("unit", "choice", False, "the metric's unit; if given it must be the metric's own",
          choices=tuple(dict.fromkeys(METRIC_UNITS.values()))),
    Field("serving_stack", "text", False, "the software and version"),
    Field("kv_read_per_query_head", "flag", False, "true when the stack has no grouped-query decode kernel and "
          "reads each KV head once per query head (a property of the software, from its release notes; "
          "default false)"),
    Field("implementation_note", "text", False, "the source of the implementation settings"),
    Field("measured_note", "text", False, "how the value was normalised (e.g. per-GPU x GPUs)"),
    Field("duplicate_of", "name", False, "id of another point of the same file this one repeats "
          "(kept and predicted, left out of every statistic)", nullable=True),
    Field("in_sample", "flag", False, "true when glugqa's defaults were tuned on this point", nullable=True),
    Field("original", "object", False, "the source as read: title, URL, quoted row, raw fields (kept, not used)"),
)  # fmt: skip
FIELD_BY_NAME = {f.name: f for f in FIELDS}
