"""Device models: specs and the catalog, the ``Calibration`` data type and the rule that picks a
device's parameters, and one differentiable time model per device family."""

from perfjax._dtypes import PRECISIONS
from perfjax.devicemodels._calibration import (
    Calibration,
    calibration_for,
    params_for,
    shipped_calibration,
)
from perfjax.devicemodels._catalog import device, devices, host_spec, register_device
from perfjax.devicemodels._models import PRIORS, default_params, kernel_times, pack, resolve
from perfjax.devicemodels._spec import FAMILIES, DeviceSpec, load_spec_file

__all__ = [
    "FAMILIES",
    "PRECISIONS",
    "PRIORS",
    "Calibration",
    "DeviceSpec",
    "calibration_for",
    "default_params",
    "device",
    "devices",
    "host_spec",
    "kernel_times",
    "load_spec_file",
    "pack",
    "params_for",
    "register_device",
    "resolve",
    "shipped_calibration",
]
