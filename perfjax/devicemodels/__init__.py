"""Device models: specs, fusion into kernels, and differentiable per-family time models."""

from perfjax.devicemodels._catalog import device, devices, host_spec, register_device
from perfjax.devicemodels._kernels import KINDS, POLICIES, FusionPolicy, Kernels, fuse
from perfjax.devicemodels._models import PRIORS, default_params, kernel_times, pack, resolve
from perfjax.devicemodels._predict import (
    TIMINGS,
    Comparison,
    Prediction,
    as_host_timed,
    compare,
    host_timing,
    predict,
    sensitivity,
    spec_gradient,
)
from perfjax.devicemodels._spec import FAMILIES, PRECISIONS, DeviceSpec, load_spec_file

__all__ = [
    "FAMILIES",
    "KINDS",
    "POLICIES",
    "PRECISIONS",
    "PRIORS",
    "TIMINGS",
    "Comparison",
    "DeviceSpec",
    "FusionPolicy",
    "Kernels",
    "Prediction",
    "as_host_timed",
    "compare",
    "default_params",
    "device",
    "devices",
    "fuse",
    "host_spec",
    "host_timing",
    "kernel_times",
    "load_spec_file",
    "pack",
    "predict",
    "register_device",
    "resolve",
    "sensitivity",
    "spec_gradient",
]
