"""Calibration: measure programs, fit device-model correction parameters with optax, validate.

Measurements come from this machine (:func:`measure`) or from files of other people's timings
(:mod:`perfjax.calibrate` loaders); :func:`fit` returns a :class:`Calibration` whose report is
computed on programs the fit did not see.
"""

from perfjax._io import cache_dir
from perfjax.calibrate import _programs  # noqa: F401  (registers the 'program' builder)
from perfjax.calibrate._fit import (
    HANDOFF_SPELL_S,
    QUIET_NOISE,
    evaluate,
    fit,
    handoff_excess_s,
    spread_weights,
)
from perfjax.calibrate._measurements import POOL_MAX_AGE_DAYS, Measurements, Row, pool, why_not_pool
from perfjax.calibrate._public import load_deepbench, load_neusight, load_neusight_models
from perfjax.calibrate._suites import SUITES, UNTRUSTED_CI, UNTRUSTED_SHARE, measure, suite
from perfjax.calibrate._workloads import KINDS, Workload, builders, register_builder
from perfjax.devicemodels._calibration import (
    Calibration,
    Report,
    host_calibration_path,
    load,
    machine_id,
    shipped_calibration,
)

__all__ = [
    "HANDOFF_SPELL_S",
    "KINDS",
    "POOL_MAX_AGE_DAYS",
    "QUIET_NOISE",
    "SUITES",
    "UNTRUSTED_CI",
    "UNTRUSTED_SHARE",
    "Calibration",
    "Measurements",
    "Report",
    "Row",
    "Workload",
    "builders",
    "cache_dir",
    "evaluate",
    "fit",
    "handoff_excess_s",
    "host_calibration_path",
    "load",
    "load_deepbench",
    "load_neusight",
    "load_neusight_models",
    "machine_id",
    "measure",
    "pool",
    "register_builder",
    "shipped_calibration",
    "spread_weights",
    "suite",
    "why_not_pool",
]
