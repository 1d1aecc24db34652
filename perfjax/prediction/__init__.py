"""Predictions: device models applied to a traced program (``predict``, ``compare``,
``sensitivity``), with per-kernel breakdowns, intervals and host timing."""

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
    predict,
    sensitivity,
    spec_gradient,
)

__all__ = [
    "DEFAULT_COMPARE",
    "TIMINGS",
    "Comparison",
    "KernelRow",
    "Prediction",
    "as_host_timed",
    "compare",
    "host_timing",
    "lowering_platform",
    "predict",
    "sensitivity",
    "spec_gradient",
]
