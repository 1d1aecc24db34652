"""Where this machine's host calibration lives, and when it is picked up automatically."""

from __future__ import annotations

import functools
import importlib.resources
import os
import pathlib

from perfjax.devicemodels import DeviceSpec, host_spec


def cache_dir() -> pathlib.Path:
    """``$PERFJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfjax``, else ``~/.cache/perfjax``."""
    if os.environ.get("PERFJAX_CACHE_DIR"):
        return pathlib.Path(os.environ["PERFJAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "perfjax"


def host_calibration_path() -> pathlib.Path:
    """The file ``perfjax calibrate`` writes for this machine and ``predict(device="host")`` reads."""
    return cache_dir() / "host_calibration.json"


def machine_id() -> str:
    spec = host_spec()
    return spec.description


#: Calibrations shipped with perfjax, used by default for every device of their family.
SHIPPED = {"gpu": "gpu_calibration.json"}


@functools.cache
def shipped_calibration(family: str):
    """The calibration shipped for ``family`` (``None`` if there is none).

    Example:
      >>> from perfjax.calibrate import shipped_calibration
      >>> shipped_calibration("gpu").family
      'gpu'
    """
    if family not in SHIPPED:
        return None
    from perfjax.calibrate._fit import load

    ref = importlib.resources.files("perfjax.calibrate") / "data" / SHIPPED[family]
    with importlib.resources.as_file(ref) as path:
        return load(path) if path.exists() else None


def auto_calibration(spec: DeviceSpec):
    """The calibration ``predict`` uses when none is given: for ``device="host"``, the one saved
    in the cache directory for this machine; for a GPU, the shipped GPU calibration; else none."""
    if spec.name != "host":
        return shipped_calibration(spec.family)
    path = host_calibration_path()
    if not path.exists():
        return None
    from perfjax.calibrate._fit import load

    try:
        cal = load(path)
    except ValueError:
        return None  # an unreadable or older file is ignored, never half-used
    if cal.metadata.get("machine") not in (None, machine_id()):
        return None
    return cal
