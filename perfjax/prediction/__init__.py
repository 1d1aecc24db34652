"""Predictions: device models applied to a traced program (``predict``, ``compare``,
``sensitivity``), with per-kernel breakdowns, intervals, host timing and peak memory."""

from perfjax.prediction._memory import (
    OPTIMIZER_WORDS,
    PARAMETER_WORDS,
    MemoryEstimate,
    classify_arguments,
)
from perfjax.prediction._predict import (
    DEFAULT_COMPARE,
    TIMINGS,
    Comparison,
    KernelRow,
    Prediction,
    as_host_timed,
    compare,
    host_timing,
    lowering_platform,
    memory_estimate,
    predict,
    sensitivity,
    spec_gradient,
)

__all__ = [
    "DEFAULT_COMPARE",
    "OPTIMIZER_WORDS",
    "PARAMETER_WORDS",
    "TIMINGS",
    "Comparison",
    "KernelRow",
    "MemoryEstimate",
    "Prediction",
    "as_host_timed",
    "classify_arguments",
    "compare",
    "host_timing",
    "lowering_platform",
    "memory_estimate",
    "predict",
    "sensitivity",
    "spec_gradient",
]
