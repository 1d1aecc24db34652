"""The ``Calibration`` data type: fitted correction parameters of one device family, read,
validated and written as versioned JSON, and the one rule that says which parameters a
prediction uses for a device (:func:`params_for`).

Fitting lives in :mod:`perfjax.calibrate`; this module only holds and resolves the result.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
import math
import os
import pathlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from perfjax._display import pyplot, render
from perfjax._errors import CalibrationError, InputError
from perfjax._host import cpu_info
from perfjax._io import atomic_write_text, cache_dir
from perfjax.devicemodels._catalog import device as get_device
from perfjax.devicemodels._catalog import host_spec
from perfjax.devicemodels._models import PRIORS, default_params
from perfjax.devicemodels._spec import DeviceSpec

FORMAT = "perfjax-calibration"
VERSION = 1


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred / meas - 1.0)


@dataclasses.dataclass(frozen=True)
class Report:
    """Per-row predictions before and after fitting, and summaries on held-out programs."""

    rows: tuple[dict[str, Any], ...]
    #: Fraction of held-out points inside their interval (measured on a fold not used to set it).
    coverage: float
    interval_level: float
    fit_s: float
    featurize_s: float
    steps: int

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(list(self.rows))

    def summary(self, split: str = "heldout") -> dict[str, Any]:
        """Median and p90 absolute percentage error before/after, overall and per op kind."""
        df = self.to_dataframe()
        df = df[df.split == split] if split != "all" else df
        out: dict[str, Any] = {"points": len(df)}
        if not len(df):
            return out
        for when in ("before", "after"):
            ape = _ape(df[f"{when}_s"].to_numpy(), df.measured_s.to_numpy())
            out[f"median_ape_{when}"] = float(np.median(ape))
            out[f"p90_ape_{when}"] = float(np.percentile(ape, 90))
        out["per_kind"] = {}
        for kind, g in df.groupby("kind"):
            ape_b = _ape(g.before_s.to_numpy(), g.measured_s.to_numpy())
            ape_a = _ape(g.after_s.to_numpy(), g.measured_s.to_numpy())
            out["per_kind"][kind] = dict(points=len(g), median_ape_before=float(np.median(ape_b)),
                                         median_ape_after=float(np.median(ape_a)),
                                         p90_ape_after=float(np.percentile(ape_a, 90)))  # fmt: skip
        expected = df[df.expected_bound != ""]
        if len(expected):
            out["bottleneck_agreement"] = float(
                (expected.expected_bound == expected.bound_after).mean()
            )
        return out

    def table(self):
        from rich.table import Table

        t = Table(title="calibration report (held-out programs unless noted)")
        for col in (
            "split / kind",
            "points",
            "median APE before",
            "median APE after",
            "p90 APE after",
        ):
            t.add_column(col, justify="left" if col == "split / kind" else "right")
        for split in ("train", "heldout", "program"):
            s = self.summary(split)
            if s["points"]:
                t.add_row(split, str(s["points"]), f"{100 * s['median_ape_before']:.1f}%",
                          f"{100 * s['median_ape_after']:.1f}%", f"{100 * s['p90_ape_after']:.1f}%")  # fmt: skip
        for kind, k in self.summary("heldout").get("per_kind", {}).items():
            t.add_row(f"  heldout {kind}", str(k["points"]), f"{100 * k['median_ape_before']:.1f}%",
                      f"{100 * k['median_ape_after']:.1f}%", f"{100 * k['p90_ape_after']:.1f}%")  # fmt: skip
        t.caption = (f"{100 * self.interval_level:.0f}% interval coverage (two folds of the points that set it): {100 * self.coverage:.1f}%; "
                     f"fit {self.fit_s:.2f} s ({self.steps} steps), features {self.featurize_s:.1f} s")  # fmt: skip
        return t

    def __str__(self) -> str:

        return render(self.table())

    def plot(self, path: str, split: str = "heldout") -> str:
        """Predicted vs measured, log-log, coloured by op kind (before: hollow, after: filled)."""

        plt = pyplot()
        df = self.to_dataframe()
        df = df[df.split == split] if split != "all" else df
        fig, ax = plt.subplots(figsize=(6.5, 6))
        kinds = sorted(df.kind.unique())
        cmap = plt.get_cmap("tab10")
        for i, kind in enumerate(kinds):
            g = df[df.kind == kind]
            ax.scatter(
                g.measured_s,
                g.before_s,
                s=12,
                facecolors="none",
                edgecolors=cmap(i % 10),
                alpha=0.5,
            )
            ax.scatter(g.measured_s, g.after_s, s=12, color=cmap(i % 10), alpha=0.8, label=kind)
        lo = float(min(df.measured_s.min(), df.after_s.min(), df.before_s.min()))
        hi = float(max(df.measured_s.max(), df.after_s.max(), df.before_s.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured time (s)")
        ax.set_ylabel("predicted time (s)")
        s = self.summary(split)
        ax.set_title(f"{split}: median APE {100 * s.get('median_ape_before', 0):.0f}% -> "
                     f"{100 * s.get('median_ape_after', 0):.0f}% (hollow: before, filled: after)", fontsize=9)  # fmt: skip
        ax.legend(fontsize=7, markerscale=1.5)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------


def _catalog_spec(device: Any):
    """The catalog spec of ``device`` (a name, alias or spec), or None when it is not a catalog device."""
    if device is None:
        return None
    if not isinstance(device, str):
        return device if hasattr(device, "family") else None
    try:
        return get_device(device)
    except (KeyError, ValueError):
        return None


#: Published figures that place a device among others, each compared in log2 (doublings).
_DISTANCE_FIGURES = ("fp32 vector peak", "memory_bytes_per_s", "tdp_w", "process_nm", "num_cores")


def _figures(spec) -> np.ndarray:
    vec = spec.vector_flops_per_s.get("fp32") or spec.matrix_flops_per_s.get("fp32") or 1.0
    vals = (vec, spec.memory_bytes_per_s, spec.tdp_w, spec.process_nm, spec.num_cores)
    return np.log2(np.maximum(np.asarray(vals, np.float64), 1e-9))


def device_distance(spec, fitted: Sequence[str]) -> float:
    """How unlike ``spec`` is the nearest of the ``fitted`` devices: the root mean square of the
    log2 ratios of their published figures (fp32 vector peak, memory bandwidth, TDP, process node,
    cores), plus 1 when no fitted device shares its vendor. 0 for a fitted device.

    Example:
      >>> round(device_distance(get_device("v100"), ["v100-pcie"]), 2)  # same chip, 300 vs 250 W
      0.14
    """
    specs = [s for s in (_catalog_spec(d) for d in fitted) if s is not None]
    if not specs:
        return 1.0
    vendor = (spec.vendor or "").strip().lower()
    me = _figures(spec)
    best = min(float(np.sqrt(np.mean((me - _figures(s)) ** 2))) for s in specs)
    same_vendor = any((s.vendor or "").strip().lower() == vendor for s in specs)
    return best + (0.0 if same_vendor else 1.0)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Fitted correction parameters for one device family, with their held-out report.

    Use it with ``perfjax.predict(..., calibration=cal)``; save and load it as versioned JSON.
    """

    family: str
    devices: tuple[str, ...]
    params: Mapping[str, np.ndarray]
    prior: Mapping[str, np.ndarray]
    #: Quantiles of log(measured / predicted) on held-out programs: (low, high) for the interval.
    residual_log_quantiles: tuple[float, float]
    interval_level: float
    report: Report | None = None
    summary: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str = ""
    #: Per fitted device, parameters that replace the shared ones on that device (device effects:
    #: ``kind_time_log``, a time factor per kernel class), e.g. ``{"p100": {"kind_time_log": ...}}``.
    device_params: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    #: Per vendor fitted on its own (lowercase, e.g. ``"amd"``): its parameters, used on that
    #: vendor's devices instead of the shared ones (:meth:`with_vendor`).
    vendor_params: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    #: The devices each of ``vendor_params`` was fitted on.
    vendor_devices: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = _calibration_problem(self)
        if problem is not None:
            label = f"calibration {self.name!r}" if self.name else "calibration"
            err = CalibrationError(f"{label}: {problem}.")
            err.problem = problem  # what load() reports after the file's name
            raise err

    def vendors(self) -> tuple[str, ...]:
        """Vendors (lowercase) of the devices the shared ``params`` were fitted on."""
        out = set()
        for d in self.devices:
            spec = _catalog_spec(d)
            if spec is not None and spec.vendor:
                out.add(spec.vendor.strip().lower())
        return tuple(sorted(out))

    def jax_params(self, device: str | None = None) -> dict[str, jax.Array]:
        """The parameters to predict with on ``device``.

        The shared parameters serve devices of the vendors they were fitted on; a vendor fitted
        on its own (``vendor_params``) gets its own set; any other vendor gets the family's priors
        (a value fitted on NVIDIA GPUs is never applied to an AMD GPU). On a device the fit saw,
        its own factors (``device_params``) replace the shared ones.
        """
        base: Mapping[str, Any] = self.params
        spec = _catalog_spec(device) if device is not None else None
        if spec is not None and spec.family == self.family:
            vendor = (spec.vendor or "").strip().lower()
            fitted = self.vendors()
            if vendor in self.vendor_params:
                base = {**default_params(self.family, vendor), **self.vendor_params[vendor]}
            elif fitted and vendor not in fitted:
                base = default_params(self.family, vendor)
        out = {k: jnp.asarray(v, jnp.float32) for k, v in base.items()}
        for k, v in self.device_params.get(spec.name if spec is not None else device, {}).items():
            out[k] = jnp.asarray(v, jnp.float32)
        return out

    def covers(self, device: str) -> str:
        """How this calibration applies to ``device``: ``"fitted"`` (the fit saw it),
        ``"vendor"`` (its vendor's parameters were fitted, on other devices) or ``"prior"``."""
        spec = _catalog_spec(device)
        name = spec.name if spec is not None else device
        if name in self.devices or any(name in v for v in self.vendor_devices.values()):
            return "fitted"
        vendor = (spec.vendor or "").strip().lower() if spec is not None else ""
        if vendor in self.vendor_params or vendor in self.vendors() or not self.vendors():
            return "vendor"
        return "prior"

    def interval_log_bounds(
        self, device: str | None = None, kernel_class: str | None = None
    ) -> tuple[float, float]:
        """(low, high) log of measured / predicted at ``interval_level`` for ``device``.

        On a device the fit saw: the held-out programs' residual quantiles. On any other device,
        where the calibration carries them (``metadata["unseen_interval"]``), the quantiles of
        leave-one-device-out residuals of programs whose time is mostly ``kernel_class``
        (``gemm``, ``conv``, ``elementwise``, ``reduce``; all of them for another class or
        ``None``), widened in proportion to the device's distance from the fitted ones
        (:func:`device_distance`): a device unlike any fitted one gets a wider interval.
        """
        lo, hi = self.residual_log_quantiles
        unseen = (
            self.metadata.get("unseen_interval") if isinstance(self.metadata, Mapping) else None
        )
        if device is None or not unseen or self.covers(device) == "fitted":
            return float(lo), float(hi)
        spec = _catalog_spec(device)
        fitted = [*self.devices, *[x for v in self.vendor_devices.values() for x in v]]
        dist = device_distance(spec, fitted) if spec is not None else 1.0
        widen = 1.0 + float(unseen["widen_per_distance"]) * dist
        bounds = (unseen.get("by_class") or {}).get(kernel_class) or unseen
        return float(bounds["low"]) * widen, float(bounds["high"]) * widen

    def interval(
        self, time_s: float, device: str | None = None, kernel_class: str | None = None
    ) -> tuple[float, float]:
        lo, hi = self.interval_log_bounds(device, kernel_class)
        return float(time_s * math.exp(lo)), float(time_s * math.exp(hi))

    def __str__(self) -> str:
        return self.name or f"{self.family} calibration ({', '.join(self.devices)})"

    def to_dict(self) -> dict[str, Any]:
        return dict(
            format=FORMAT, version=VERSION, name=self.name, family=self.family, devices=list(self.devices),
            params={k: np.asarray(v).tolist() for k, v in self.params.items()},
            prior={k: np.asarray(v).tolist() for k, v in self.prior.items()},
            residual_log_quantiles=list(self.residual_log_quantiles), interval_level=self.interval_level,
            summary=dict(self.summary), metadata=dict(self.metadata),
            device_params={d: {k: np.asarray(v).tolist() for k, v in p.items()}
                           for d, p in self.device_params.items()},
            vendor_params={d: {k: np.asarray(v).tolist() for k, v in p.items()}
                           for d, p in self.vendor_params.items()},
            vendor_devices={v: list(d) for v, d in self.vendor_devices.items()},
        )  # fmt: skip

    def with_vendor(self, other: Calibration) -> Calibration:
        """This calibration plus ``other``'s parameters for the vendor ``other`` was fitted on
        (one vendor, same family), e.g. an NVIDIA calibration with an AMD one.

        Example:
          >>> import importlib.resources
          >>> cal = load(importlib.resources.files("perfjax.devicemodels") / "data/gpu_calibration.json")
          >>> cal.covers("mi355x"), cal.covers("h100")   # no AMD fit shipped: AMD keeps priors
          ('prior', 'vendor')
        """
        if other.family != self.family:
            raise InputError(
                f"cannot combine a {self.family} calibration with a {other.family} one."
            )
        vendors = other.vendors()
        if len(vendors) != 1:
            raise InputError(
                f"with_vendor needs a calibration fitted on one vendor; {other} has {list(vendors)}."
            )
        if vendors[0] in self.vendors():
            raise InputError(f"{self} already fits {vendors[0]} devices; fit each vendor once.")
        return dataclasses.replace(
            self,
            vendor_params={**self.vendor_params, vendors[0]: dict(other.params)},
            vendor_devices={**self.vendor_devices, vendors[0]: tuple(other.devices)},
            device_params={**self.device_params, **other.device_params},
        )

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes versioned JSON atomically: a crash never leaves a half-written calibration."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))


def _finite_array(key: str, value: Any) -> tuple[np.ndarray | None, str | None]:
    """``value`` as a float32 array, or a description of why it is not finite numbers."""
    try:
        arr = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        return None, f"{key} = {value!r} (expected finite numbers)"
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        at = f"[{', '.join(map(str, bad[0]))}]" if arr.ndim else ""
        return None, f"{key}{at} = {float(arr[tuple(bad[0])])!r} (expected a finite number)"
    return arr, None


def _params_problem(
    key: str, params: Any, expected: Mapping[str, Any], family: str, *, complete: bool
) -> str | None:
    if not isinstance(params, Mapping):
        return f"{key} must be a mapping of parameter name -> numbers, got {type(params).__name__}"
    unknown = sorted(set(params) - set(expected))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(expected), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return (
            f"{key} has unknown parameter(s) {', '.join(hints)} for the {family} model; "
            f"known: {', '.join(sorted(expected))}"
        )
    missing = sorted(set(expected) - set(params))
    if complete and missing:
        return (
            f"{key} is missing parameter(s) {', '.join(map(repr, missing))} of the {family} model"
        )
    for k, v in params.items():
        arr, problem = _finite_array(f"{key}.{k}", v)
        if problem is not None:
            return problem
        if arr.shape != np.shape(expected[k]):
            return (
                f"{key}.{k} has shape {arr.shape}; the {family} model expects "
                f"{np.shape(expected[k])}"
            )
    return None


def _calibration_problem(cal: Calibration) -> str | None:
    """What is wrong with a calibration's fields (the first problem found), or None."""
    if cal.family not in PRIORS:
        close = difflib.get_close_matches(str(cal.family), sorted(PRIORS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"family = {cal.family!r}{hint}; expected one of {sorted(PRIORS)}"
    expected = default_params(cal.family)
    if isinstance(cal.devices, (str, bytes)) or not all(isinstance(d, str) for d in cal.devices):
        return f"devices = {cal.devices!r}; expected a list of device names"
    for key, params in (("params", cal.params), ("prior", cal.prior)):
        problem = _params_problem(key, params, expected, cal.family, complete=True)
        if problem is not None:
            return problem
    for key, what, tables in (("device_params", "device", cal.device_params),
                              ("vendor_params", "vendor", cal.vendor_params)):  # fmt: skip
        if not isinstance(tables, Mapping):
            return f"{key} must map {what} names to parameter tables, got {type(tables).__name__}"
        for name, params in tables.items():
            problem = _params_problem(f"{key}.{name}", params, expected, cal.family, complete=False)
            if problem is not None:
                return problem
    q = cal.residual_log_quantiles
    try:
        lo, hi = (float(v) for v in q)
    except (TypeError, ValueError):
        return (
            f"residual_log_quantiles = {q!r}; expected two numbers [low, high] "
            "(log of measured / predicted)"
        )
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"residual_log_quantiles = {[lo, hi]!r}; expected two finite numbers [low, high]"
    if lo > hi:
        return (
            f"residual_log_quantiles = {[lo, hi]!r} is inverted: low must be <= high "
            "(the interval would have its low end above its high end)"
        )
    level = cal.interval_level
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, float, np.floating))
        or not 0 < float(level) < 1
    ):
        return f"interval_level = {level!r}; expected a number in (0, 1) such as 0.8"
    return None


_REQUIRED_KEYS = (
    "family",
    "devices",
    "params",
    "prior",
    "residual_log_quantiles",
    "interval_level",
)


def _read_calibration_json(path: Any) -> dict[str, Any]:
    """The JSON object of a calibration file, checked for format, version and required keys."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"calibration path must be a str or os.PathLike, got {type(path).__name__} {path!r}."
        )
    path = pathlib.Path(path)
    where = f"calibration file {str(path)!r}"
    if not path.exists():
        raise FileNotFoundError(f"no calibration file at {str(path)!r}")
    if not path.is_file():
        raise CalibrationError(f"{where} is not a file.")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CalibrationError(
            f"{where} is not a perfjax calibration (invalid JSON: {e})."
        ) from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CalibrationError(
            f'{where} is not a perfjax calibration (no \'"format": "{FORMAT}"\').'
        )
    if d.get("version") != VERSION:
        raise CalibrationError(
            f"{where} has calibration format version {d.get('version')!r}; this perfjax reads {VERSION}."
        )
    missing = [k for k in _REQUIRED_KEYS if k not in d]
    if missing:
        raise CalibrationError(
            f"{where} is missing key(s) {', '.join(map(repr, missing))}; a calibration needs "
            f"{', '.join(_REQUIRED_KEYS)}."
        )
    return d


def load(path: str | os.PathLike) -> Calibration:
    """Reads a calibration saved by :meth:`Calibration.save`, checking its format, version and
    every value (known family and parameter names, finite numbers, an interval with low <= high).

    Errors are :class:`~perfjax._errors.CalibrationError` (a ``ValueError``) naming the file, the
    key and the value; a missing file is a ``FileNotFoundError``.

    Example:
      >>> import importlib.resources
      >>> cal = load(importlib.resources.files("perfjax.devicemodels") / "data/gpu_calibration.json")
      >>> cal.family, cal.interval(1.0)[0] <= cal.interval(1.0)[1]
      ('gpu', True)
    """
    path = pathlib.Path(path) if isinstance(path, (str, os.PathLike)) else path
    where = f"calibration file {str(path)!r}"
    d = _read_calibration_json(path)
    family = d["family"]
    if family not in PRIORS:
        raise CalibrationError(f"{where}: family = {family!r}; expected one of {sorted(PRIORS)}.")
    expected = default_params(family)
    for key in ("params", "prior"):
        if not isinstance(d[key], dict):
            raise CalibrationError(
                f"{where}: {key} must be a mapping of parameter name -> numbers, got {d[key]!r}."
            )
    nested = {}
    for key, what in (("device_params", "device"), ("vendor_params", "vendor")):
        tables = d.get(key, {})
        if not isinstance(tables, dict) or not all(isinstance(p, dict) for p in tables.values()):
            raise CalibrationError(
                f"{where}: {key} must map {what} names to parameter tables, got {tables!r}."
            )
        nested[key] = tables
    vendor_devices_in = d.get("vendor_devices", {})
    if not isinstance(vendor_devices_in, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v)
        for v in vendor_devices_in.values()
    ):
        raise CalibrationError(
            f"{where}: vendor_devices must map vendor names to lists of device names, got "
            f"{vendor_devices_in!r}."
        )
    for key, table in (
        ("params", d["params"]),
        ("prior", d["prior"]),
        *((f"{kind}.{name}", p) for kind, tables in nested.items() for name, p in tables.items()),
    ):
        for k, v in table.items():
            _, problem = _finite_array(f"{key}.{k}", v)
            if problem is not None:
                raise CalibrationError(f"{where}: {problem}.")
    params = {k: np.asarray(v, np.float32) for k, v in d["params"].items()}
    # Parameters added since the file was written (e.g. kind_time_log) take their priors.
    added = [k for k in _ADDED_PARAMS if k in expected and k not in params]
    for k in added:
        params[k] = np.asarray(expected[k])
    prior = {k: np.asarray(v, np.float32) for k, v in d["prior"].items()}
    prior.update({k: np.asarray(expected[k]) for k in added if k not in prior})
    device_params, vendor_params = (
        {
            name: {k: np.asarray(v, np.float32) for k, v in p.items()}
            for name, p in nested[key].items()
        }
        for key in ("device_params", "vendor_params")
    )
    devices = d["devices"]
    if isinstance(devices, (str, bytes)) or not isinstance(devices, list):
        raise CalibrationError(f"{where}: devices = {devices!r}; expected a list of device names.")
    quantiles = d["residual_log_quantiles"]
    if not isinstance(quantiles, list) or len(quantiles) != 2:
        raise CalibrationError(
            f"{where}: residual_log_quantiles = {quantiles!r}; expected two numbers [low, high]."
        )
    try:
        return Calibration(
            family=family, devices=tuple(devices), params=params, prior=prior,
            device_params=device_params, residual_log_quantiles=tuple(quantiles),
            vendor_params=vendor_params,
            vendor_devices={v: tuple(x) for v, x in vendor_devices_in.items()},
            interval_level=d["interval_level"], summary=d.get("summary", {}),
            metadata=d.get("metadata", {}), name=d.get("name", ""),
        )  # fmt: skip
    except CalibrationError as e:
        raise CalibrationError(f"{where}: {getattr(e, 'problem', e)}.") from None


#: Parameters newer than calibration format 1's first files: a file without them is read with
#: their priors.
_ADDED_PARAMS = (
    "kind_time_log",
    "precision_eff_log",
    "matrix_unit_eff_log",
    "first_touch_log",
    "transposed_rhs_log",
    "scalar_sum_log",
    "bandwidth_log",
)


# ---------------------------------------------------------------------------------------------
# which calibration, and which parameters, a prediction uses
# ---------------------------------------------------------------------------------------------


def host_calibration_path() -> pathlib.Path:
    """The file ``perfjax calibrate`` writes for this machine and ``predict(device="host")`` reads."""
    return cache_dir() / "host_calibration.json"


def machine_id() -> str:
    """What a host calibration records of the machine it was measured on (it is ignored elsewhere):
    the host's description and the processor's generation and caches, which a VM's model name
    alone ("AMD EPYC") does not tell apart."""
    ident = cpu_info().identity
    return host_spec().description + (f"; {ident}" if ident else "")


#: Calibrations shipped with perfjax, used by default for every device of their family.
SHIPPED = {"gpu": "gpu_calibration.json"}


@functools.cache
def shipped_calibration(family: str) -> Calibration | None:
    """The calibration shipped for ``family`` (``None`` if there is none).

    Example:
      >>> shipped_calibration("gpu").family
      'gpu'
    """
    if family not in SHIPPED:
        return None
    ref = importlib.resources.files("perfjax.devicemodels") / "data" / SHIPPED[family]
    with importlib.resources.as_file(ref) as path:
        return load(path) if path.exists() else None


def auto_calibration(spec: DeviceSpec) -> Calibration | None:
    """The calibration ``predict`` uses when none is given: for ``device="host"``, the one saved
    in the cache directory for this machine; for a GPU, the shipped GPU calibration; else none."""
    if spec.name != "host":
        return shipped_calibration(spec.family)
    path = host_calibration_path()
    if not path.exists():
        return None
    try:
        cal = load(path)
    except ValueError:
        return None  # an unreadable or older file is ignored, never half-used
    measured_on = cal.metadata.get("machine")
    if measured_on not in (None, machine_id()):
        _warn_other_machine(str(path), str(measured_on))
        return None
    return cal


#: (file, machine) pairs already warned about: the warning filters' own once-per-location
#: registry is reset whenever a ``warnings.catch_warnings`` block exits, as in every prediction.
_WARNED_OTHER_MACHINE: set[tuple[str, str]] = set()


def _warn_other_machine(path: str, measured_on: str) -> None:
    """Says once per process and file that a saved host calibration is passed over."""
    if (path, measured_on) in _WARNED_OTHER_MACHINE:
        return
    _WARNED_OTHER_MACHINE.add((path, measured_on))
    warnings.warn(
        f"perfjax: the saved host calibration {path} was measured on another machine "
        f"({measured_on}), not this one ({machine_id()}); host predictions use the uncalibrated "
        "priors until `perfjax calibrate` runs here.",
        UserWarning,
        stacklevel=3,
    )


def load_calibration(calibration: Any) -> Calibration | bool | None:
    """``None`` / ``False`` as given; a path loaded (:func:`load`); a :class:`Calibration` as is."""
    if calibration is None or calibration is False:
        return calibration
    if isinstance(calibration, (str, bytes)) or hasattr(calibration, "__fspath__"):
        calibration = load(calibration)
    if not isinstance(calibration, Calibration):
        raise TypeError(
            f"calibration must be a perfjax.calibrate.Calibration, a path to one, None or False; "
            f"got {type(calibration).__name__}."
        )
    return calibration


def calibration_for(
    spec: DeviceSpec, calibration: Any = None, *, other_family: str = "error"
) -> Calibration | None:
    """The calibration a prediction on ``spec`` uses (``None``: the family's priors).

    ``calibration`` is ``None`` (automatic: :func:`auto_calibration`), ``False`` (the priors), a
    :class:`Calibration` or the path of a saved one. A calibration of another device family
    raises ``ValueError`` (``other_family="error"``) or is passed over for the automatic choice
    (``other_family="auto"``, for studies over several families).

    Example:
      >>> calibration_for(get_device("h100")).family, calibration_for(get_device("tpu-v4"))
      ('gpu', None)
    """
    if other_family not in ("error", "auto"):
        raise InputError(f"other_family must be 'error' or 'auto', got {other_family!r}.")
    calibration = load_calibration(calibration)
    if calibration is False:
        return None
    if calibration is None:
        return auto_calibration(spec)
    if calibration.family != spec.family:
        if other_family == "auto":
            return auto_calibration(spec)
        raise InputError(
            f"calibration {calibration} is for {calibration.family} devices; {spec.name!r} is a {spec.family}."
        )
    return calibration


def params_for(
    spec: DeviceSpec, calibration: Calibration | None, params: Mapping[str, Any] | None = None
) -> dict[str, jax.Array]:
    """The correction parameters a prediction on ``spec`` uses: ``params`` when given, else the
    calibration's for this device (:meth:`Calibration.jax_params`), else the family's priors for
    the device's vendor. ``calibration`` is already resolved (:func:`calibration_for`).

    Example:
      >>> p = params_for(get_device("mi300x"), None)
      >>> sorted(p) == sorted(default_params("gpu", "amd"))
      True
    """
    if params is not None:
        return dict(params)
    if calibration is not None:
        return calibration.jax_params(spec.name)
    return default_params(spec.family, spec.vendor)


def calibration_label(calibration: Calibration | None, spec: DeviceSpec) -> str | None:
    """What ``Prediction.calibration`` says: the calibration, and whether it had this device's
    own factors (device effects fitted on its measurements)."""
    if calibration is None:
        return None
    if spec.name in calibration.device_params:
        return f"{calibration} (with {spec.name}'s own factors)"
    if calibration.covers(spec.name) == "prior":
        return f"priors ({calibration} fits no {spec.vendor} device)"
    return str(calibration)
