"""Serving: from one decode step to a service (continuous batching, chunked prefill, request rates).

Modules: ``step`` (one iteration's time from the cost model), ``table`` (that time tabulated), ``workload``
(requests: traces, Poisson arrivals, length distributions), ``replica`` (one copy of a model on tp devices:
memory, KV per request), ``simulate`` (iteration-level simulator), ``steady`` (analytic steady state; its
iterations and their expectations over the decoders' spread in ``mix``, its probability pieces in
``queueing``, its percentiles in ``percentiles``),
``capacity`` (devices a request rate needs under SLOs), ``accuracy`` (predictors of measured serving points).
docs/serving.md has the model, its formulas and sources. ``step`` is pure Python; the rest use NumPy.
"""
