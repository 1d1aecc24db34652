"""Fitting a device family's correction parameters to measured timings with optax.

Loss: mean squared log error between predicted and measured times over the training programs,
plus ``prior_weight`` x the mean squared distance of every (unconstrained) parameter from its
prior. Programs, never repeats of one program, are split between training and held-out data; all
reported errors are on held-out programs. The spread of held-out log residuals gives each
calibrated prediction an interval (split-conformal, or cross-conformal with ``interval_folds``);
its coverage is measured by splitting those residuals in two folds, each scored with the interval
of the other. With several devices, ``device_effects`` gives each a time factor per kernel class
under a Laplace prior (the shared parameters then fit the median device), and
``harness_effects`` gives each op kind a factor on the fixed costs of the measuring harness.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from perfjax._errors import CalibrationError
from perfjax.calibrate._measurements import Measurements, Row
from perfjax.devicemodels import device as get_device
from perfjax.devicemodels._kernels import KINDS
from perfjax.devicemodels._models import (
    PRIORS,
    default_params,
    kernel_times,
    pack_numpy,
    program_overhead,
    resolve,
)
from perfjax.devicemodels._predict import kernels_for, program_for
from perfjax.devicemodels._spec import PRECISIONS

FORMAT = "perfjax-calibration"
VERSION = 1
_BOUNDS = ("compute", "memory", "launch")


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Batch:
    """All kernels of a set of measurement rows, concatenated, with per-kernel device fields."""

    arrays: dict[str, np.ndarray]
    dev: dict[str, np.ndarray]
    res: dict[str, np.ndarray]
    row_of_kernel: np.ndarray
    n_rows: int


_KERNELS: dict[tuple[str, str], Any] = {}


#: The JAX platform each family's workloads are lowered for (NPUs have none: the CPU's).
_FAMILY_PLATFORM = {"gpu": "cuda", "tpu": "tpu", "cpu": "cpu", "npu": "cpu"}


def workload_kernels(workload, family: str):
    """Kernel features of a workload's program under a family's fusion (cached per workload id)."""
    key = (workload.id, family)
    if key not in _KERNELS:
        fn, inputs = workload.build()
        # Lowered as predict lowers it for the family's devices (GPUs: XLA's CUDA pipeline).
        platform = _FAMILY_PLATFORM.get(family, "cpu")
        _KERNELS[key] = kernels_for(program_for(fn, inputs, None, platform), family)
    return _KERNELS[key]


def _features(
    rows: Sequence[Row], family: str, progress: Callable[[int], None] | None = None
) -> _Batch:
    arrays: dict[str, list] = {}
    dev: dict[str, list] = {}
    res: dict[str, list] = {}
    row_ids: list[np.ndarray] = []
    packed: dict[str, dict] = {}
    resolved: dict[tuple[str, str], Any] = {}
    for i, row in enumerate(rows):
        spec = get_device(row.device)
        kernels = workload_kernels(row.workload, family)
        key = (row.program, row.device)
        if key not in resolved:
            resolved[key] = resolve(kernels, spec, None)
        r = resolved[key]
        if row.device not in packed:
            packed[row.device] = pack_numpy(spec)
        n = len(kernels)
        for k, v in kernels.arrays().items():
            arrays.setdefault(k, []).append(v)
        for k, v in packed[row.device].items():
            dev.setdefault(k, []).append(np.broadcast_to(v, (n, *np.shape(v))))
        for k, v in dict(unit=r.unit, precision=r.precision, passes=r.passes, vector_precision=r.vector_precision,
                         bytes_scale=r.bytes_scale, upcast=r.upcast).items():  # fmt: skip
            res.setdefault(k, []).append(v)
        row_ids.append(np.full(n, i, np.int32))
        if progress is not None:
            progress(i)

    def cat(d):
        return {k: np.concatenate(v) for k, v in d.items()}

    return _Batch(cat(arrays), cat(dev), cat(res), np.concatenate(row_ids), len(rows))


def _row_parts(
    params, batch: _Batch, family: str, body_log: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Per row: (time of the kernels' work, fixed costs: launches and the call's overhead).
    ``body_log``: a log factor per kernel on its work (device effects)."""
    out = kernel_times(batch.arrays, batch.dev, params, batch.res, family)
    ex = batch.arrays["executions"]
    used = jnp.where(ex > 0, out["pool_use"], 0.0)
    pool = jax.ops.segment_max(used, batch.row_of_kernel, num_segments=batch.n_rows)

    def per_row(x):
        return jax.ops.segment_sum(x * ex, batch.row_of_kernel, num_segments=batch.n_rows)

    fixed = per_row(out["launch_s"]) + program_overhead(params, jnp.maximum(pool, 0.0), family)
    body = out["time_s"] - out["launch_s"]
    if body_log is not None:
        body = body * jnp.exp(body_log)
    return per_row(body), fixed


def _row_times(params, batch: _Batch, family: str) -> jax.Array:
    body, fixed = _row_parts(params, batch, family)
    return body + fixed


def _row_bounds(params, batch: _Batch, family: str) -> np.ndarray:
    out = kernel_times(batch.arrays, batch.dev, params, batch.res, family)
    parts = np.stack(
        [
            np.asarray(out[k]) * batch.arrays["executions"]
            for k in ("compute_s", "memory_s", "launch_s")
        ]
    )
    sums = np.zeros((3, batch.n_rows))
    for b in range(3):
        np.add.at(sums[b], batch.row_of_kernel, parts[b])
    return sums.argmax(axis=0)


def _row_classes(params, batch: _Batch, family: str) -> np.ndarray:
    """Per row, the index (into ``KINDS``) of the kernel class that takes most of its time."""
    out = kernel_times(batch.arrays, batch.dev, params, batch.res, family)
    t = np.asarray(out["time_s"]) * batch.arrays["executions"]
    sums = np.zeros((batch.n_rows, len(KINDS)))
    np.add.at(sums, (batch.row_of_kernel, np.asarray(batch.arrays["kind"])), t)
    return sums.argmax(axis=1)


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
        for split in ("train", "heldout"):
            s = self.summary(split)
            if s["points"]:
                t.add_row(split, str(s["points"]), f"{100 * s['median_ape_before']:.1f}%",
                          f"{100 * s['median_ape_after']:.1f}%", f"{100 * s['p90_ape_after']:.1f}%")  # fmt: skip
        for kind, k in self.summary("heldout").get("per_kind", {}).items():
            t.add_row(f"  heldout {kind}", str(k["points"]), f"{100 * k['median_ape_before']:.1f}%",
                      f"{100 * k['median_ape_after']:.1f}%", f"{100 * k['p90_ape_after']:.1f}%")  # fmt: skip
        t.caption = (f"{100 * self.interval_level:.0f}% interval coverage on held-out points: {100 * self.coverage:.1f}%; "
                     f"fit {self.fit_s:.2f} s ({self.steps} steps), features {self.featurize_s:.1f} s")  # fmt: skip
        return t

    def __str__(self) -> str:
        from perfjax._display import render

        return render(self.table())

    def plot(self, path: str, split: str = "heldout") -> str:
        """Predicted vs measured, log-log, coloured by op kind (before: hollow, after: filled)."""
        from perfjax._display import pyplot

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
      0.12
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
          >>> cal = load(importlib.resources.files("perfjax.calibrate") / "data/gpu_calibration.json")
          >>> cal.covers("mi355x"), cal.covers("h100")
          ('fitted', 'vendor')
        """
        if other.family != self.family:
            raise ValueError(
                f"cannot combine a {self.family} calibration with a {other.family} one."
            )
        vendors = other.vendors()
        if len(vendors) != 1:
            raise ValueError(
                f"with_vendor needs a calibration fitted on one vendor; {other} has {list(vendors)}."
            )
        if vendors[0] in self.vendors():
            raise ValueError(f"{self} already fits {vendors[0]} devices; fit each vendor once.")
        return dataclasses.replace(
            self,
            vendor_params={**self.vendor_params, vendors[0]: dict(other.params)},
            vendor_devices={**self.vendor_devices, vendors[0]: tuple(other.devices)},
            device_params={**self.device_params, **other.device_params},
        )

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes versioned JSON atomically: a crash never leaves a half-written calibration."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        return path


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


def load(path: str | os.PathLike) -> Calibration:
    """Reads a calibration saved by :meth:`Calibration.save`, checking its format, version and
    every value (known family and parameter names, finite numbers, an interval with low <= high).

    Errors are :class:`~perfjax._errors.CalibrationError` (a ``ValueError``) naming the file, the
    key and the value; a missing file is a ``FileNotFoundError``.

    Example:
      >>> import importlib.resources
      >>> cal = load(importlib.resources.files("perfjax.calibrate") / "data/gpu_calibration.json")
      >>> cal.family, cal.interval(1.0)[0] <= cal.interval(1.0)[1]
      ('gpu', True)
    """
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
_ADDED_PARAMS = ("kind_time_log", "precision_eff_log", "matrix_unit_eff_log")


def _conformal_bounds(resid: np.ndarray, alpha: float) -> tuple[float, float]:
    """Split-conformal interval of log residuals: the order statistics that keep a new point
    inside with probability >= 1 - 2 alpha for any n (plain quantiles fall short for small n)."""
    r = np.sort(np.asarray(resid, np.float64))
    n = len(r)
    k_lo = min(max(int(np.floor((n + 1) * alpha)) - 1, 0), n - 1)
    k_hi = min(max(int(np.ceil((n + 1) * (1 - alpha))) - 1, 0), n - 1)
    return float(r[k_lo]), float(r[k_hi])


#: A harness's per-op cost before fitting (harness_effects): small next to a kernel launch.
_HARNESS_PRIOR_S = 1e-6

#: Sources whose rows were timed by another harness than the default one (one per data set):
#: their fixed costs get factors of their own.
_HARNESS_PREFIXES = ("xla:", "deepbench:")


def _harness_group(row: Row) -> str:
    """The harness-effect group of a row: its op kind, prefixed by its data set where that set
    was timed by its own harness (XLA's CUPTI kernel times, DeepBench's host loops)."""
    for prefix in _HARNESS_PREFIXES:
        if row.source.startswith(prefix):
            return f"{prefix[:-1]}/{row.kind}"
    return row.kind


def _fold(program: str, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) per program (the split never depends on row order)."""
    return int(hashlib.sha256((salt + program).encode()).hexdigest()[:8], 16) / 2**32


def _expected_bound(row: Row) -> str:
    # STREAM-style kernels are memory-bound by construction.
    return "memory" if row.kind == "memory" else ""


def fit(
    measurements: Measurements,
    device: str | None = None,
    *,
    holdout: float | Mapping[str, Sequence[str]] = 0.25,
    steps: int = 400,
    learning_rate: float = 0.05,
    prior_weight: float = 0.05,
    loss: str = "msle",
    huber_delta: float = 0.25,
    freeze: Sequence[str] = (),
    interval_level: float = 0.8,
    seed: str = "perfjax",
    name: str = "",
    progress: bool = False,
    refit: bool = False,
    device_effects: bool = False,
    effect_threshold: float = 0.1,
    harness_effects: bool = False,
    interval_folds: int = 0,
) -> Calibration:
    """Fits the correction parameters of one device family to measured timings.

    Args:
      measurements: timings (:func:`measure` or a loader of public data).
      device: restrict to one device (name); by default every device in ``measurements``, which
        must all belong to one family.
      holdout: fraction of *programs* held out (split by a hash of the program id), or a mapping
        ``{"devices": [...]}`` / ``{"kinds": [...]}`` holding out whole devices or op kinds.
      steps, learning_rate: Adam on the unconstrained parameters.
      prior_weight: weight of the squared distance to the priors.
      loss: ``"msle"`` (mean squared log error) or ``"huber"`` (Huber loss on the log error,
        quadratic within ``huber_delta`` and linear beyond: a few pathological timings pull the
        fit less).
      interval_level: central coverage of ``Prediction.interval_s``.
      interval_folds: 0: the interval comes from the held-out split's residuals. K >= 2:
        cross-conformal: K more fits, each without one K-th of the programs, give every row a
        residual from a fit that did not see it; the interval (and its two-fold coverage
        estimate) use all of them: K times fewer points are wasted than with the split alone.
      freeze: parameters kept at their priors: a name (``"launch_log"``) or one kind of a
        per-kind parameter (``"memory_eff_logit:gemm"``), for what the data cannot identify.
      refit: after scoring the held-out split, fit again on every row and return those
        parameters; the report, summary and interval stay the held-out split's.
      device_effects: fit, beside the shared parameters, a time factor per (training device,
        kernel class) and a factor on each device's fixed costs (launch and call overhead), with a
        Laplace (L1) prior. They absorb what no spec explains about one device (its host, driver,
        library version, cooling), so that one unusual device does not bend the shared
        parameters: these fit the typical device (a median, not a mean). Predictions on a device
        the fit saw use its time factors (``Calibration.device_params``); any other device gets
        the shared parameters. The fixed-cost factors (often the measuring harness's) are only
        reported, with the rest, in ``metadata["device_effects"]``. Useful with three or more
        devices.
      effect_threshold: the log error a (device, kernel class) group must exceed before its
        effect departs from 1 (the L1 prior's weight, scaled by the group's weight in the loss).
      harness_effects: fit a cost in seconds per op kind (and data set, for XLA and DeepBench
        rows) added to every row's fixed costs, shared by every device: the per-op cost of the
        harness that took the measurements (NeuSight times each PyTorch op with its Python call:
        a layer norm's floor is ~1.8x an add's on every GPU). The shared launch and call costs
        then stay at their priors (device time). The report (held-out rows too: same harness)
        includes them; ``params`` do not, since a compiled program does not pay them. Costs in
        seconds in ``metadata["harness_effects"]``.

    Example:
      >>> from perfjax.calibrate import Measurements, Workload, fit
      >>> rows = [dict(workload=Workload.of("matmul", m=n, k=n, n=n), device="h100", time_s=3e-12 * n**3 + 6e-6)
      ...         for n in (256, 512, 1024, 2048, 4096, 8192)]
      >>> cal = fit(Measurements.from_rows(rows), holdout=0.3, steps=50)
      >>> cal.family
      'gpu'
    """
    if loss not in ("msle", "huber"):
        raise ValueError(f"Unknown loss: {loss!r}. It needs to be one of ['msle', 'huber'].")
    rows = [r for r in measurements if device is None or r.device == get_device(device).name]
    if not rows:
        raise ValueError(f"no measurements for device {device!r}; have {measurements.devices()}.")
    families = {get_device(r.device).family for r in rows}
    if len(families) != 1:
        raise ValueError(
            f"measurements span several device families {sorted(families)}; fit one family at a time."
        )
    family = families.pop()
    vendors = sorted({(get_device(r.device).vendor or "").strip().lower() for r in rows})
    if len(vendors) > 1:
        raise ValueError(
            f"measurements span several vendors {vendors}; fit one vendor at a time (a GEMM "
            "efficiency fitted on one vendor's library says nothing of another's) and combine the "
            "calibrations with Calibration.with_vendor()."
        )
    vendor = get_device(rows[0].device).vendor

    if isinstance(holdout, Mapping):
        unknown = set(holdout) - {"devices", "kinds"}
        if unknown:
            raise ValueError(
                f"holdout keys must be 'devices' and/or 'kinds', got {sorted(unknown)}."
            )
        held_devices = {get_device(d).name for d in holdout.get("devices", ())}
        held_kinds = set(holdout.get("kinds", ()))
        is_held = [r.device in held_devices or r.kind in held_kinds for r in rows]
    else:
        if not 0.0 < float(holdout) < 1.0:
            raise ValueError(f"holdout must be a fraction in (0, 1) or a mapping, got {holdout!r}.")
        is_held = [_fold(r.program, seed) < holdout for r in rows]
    train = [r for r, h in zip(rows, is_held, strict=True) if not h]
    held = [r for r, h in zip(rows, is_held, strict=True) if h]
    if not train or not held:
        raise ValueError(
            f"the split left {len(train)} training and {len(held)} held-out points; both must be > 0."
        )

    t0 = time.perf_counter()
    all_batch = _features(rows, family)
    featurize_s = time.perf_counter() - t0
    idx_train = np.array([i for i, h in enumerate(is_held) if not h])
    measured = np.array([r.time_s for r in rows])
    log_meas = jnp.asarray(np.log(measured), jnp.float32)
    # Each op kind weighs the same in the loss, however many rows it has (so plentiful cheap ops
    # cannot buy their accuracy with the GEMMs').

    def kind_weights(idx: np.ndarray) -> jax.Array:
        mask = np.zeros(len(rows), np.float32)
        mask[idx] = 1.0
        counts: dict[str, int] = {}
        for i in idx:
            counts[rows[i].kind] = counts.get(rows[i].kind, 0) + 1
        weight = np.array([1.0 / counts.get(r.kind, 1) for r in rows], np.float32) * mask
        return jnp.asarray(weight / weight.sum())

    mask = kind_weights(idx_train)

    prior = default_params(family, vendor)
    # A frozen entry is a parameter name, or "name:kind" for one kind of a per-kind parameter.
    keep = {k: np.ones(np.shape(v), np.float32) for k, v in prior.items()}
    unknown_frozen = []
    for entry in freeze:
        pname, _, kind = entry.partition(":")
        labels = PRECISIONS if pname == "precision_eff_log" else KINDS
        if pname not in prior or (kind and (np.ndim(prior[pname]) != 1 or kind not in labels)):
            unknown_frozen.append(entry)
        elif kind:
            keep[pname][labels.index(kind)] = 0.0
        else:
            keep[pname][...] = 0.0
    if unknown_frozen:
        raise ValueError(
            f"cannot freeze {unknown_frozen}: the {family} model's parameters are {sorted(prior)} "
            f"(per-kind ones also as 'name:kind', kind in {list(KINDS)}; "
            f"precision_eff_log as 'precision_eff_log:bf16', precision in {list(PRECISIONS)})."
        )
    # kind_time_log is the device effects' slot: shared, it would only duplicate the efficiencies.
    keep["kind_time_log"][...] = 0.0
    if harness_effects:
        # The fixed costs then belong to the harnesses (a factor per data set and op kind on the
        # priors): the shared per-kernel launch and per-call costs stay the device's, so a data
        # set timed on the device (CUPTI) is not charged another's Python dispatch.
        keep["launch_log"][...] = 0.0
        keep["dispatch_log"][...] = 0.0
    keep = {k: jnp.asarray(v) for k, v in keep.items()}
    batch = all_batch
    if not isinstance(interval_folds, int) or interval_folds < 0 or interval_folds == 1:
        raise ValueError(
            f"interval_folds must be 0 (off) or an integer >= 2, got {interval_folds!r}."
        )
    if interval_folds and len(rows) < 10 * interval_folds:
        raise ValueError(
            f"interval_folds={interval_folds} needs at least {10 * interval_folds} measurements "
            f"(10 per fold), got {len(rows)}."
        )
    if effect_threshold <= 0:
        raise ValueError(f"effect_threshold must be > 0 (a log error), got {effect_threshold!r}.")
    effect_devices = sorted({r.device for r in rows})
    effect_kinds = sorted({_harness_group(r) for r in rows})
    dev_of_row = jnp.asarray([effect_devices.index(r.device) for r in rows])
    kind_of_row = jnp.asarray([effect_kinds.index(_harness_group(r)) for r in rows])
    n_dev, n_kind = len(effect_devices), len(effect_kinds)
    # Device effects act on kernels (per device and kernel class), so a calibration can apply
    # them to any program run on a device it was fitted on.
    dev_of_kernel = jnp.asarray(np.asarray(dev_of_row)[batch.row_of_kernel])
    kind_of_kernel = jnp.asarray(batch.arrays["kind"])
    no_effects = dict(
        speed=jnp.zeros((n_dev, len(KINDS))),
        fixed=jnp.zeros((n_dev,)),
        kind_fixed=jnp.zeros((n_kind,)),
    )

    # A harness's per-op cost is additive (its Python call, event records, synchronisation),
    # per group; a group without training rows has none that the fit could know (0 s).
    trained_group = np.zeros(n_kind, np.float32)
    for r, h in zip(rows, is_held, strict=True):
        if not h:
            trained_group[effect_kinds.index(_harness_group(r))] = 1.0
    trained_group = jnp.asarray(trained_group)

    def harness_s(eff):
        return _HARNESS_PRIOR_S * jnp.exp(eff["kind_fixed"]) * trained_group

    def predict_rows(params, eff):
        """Row times with the effects in use (device effects where fitted, harness effects)."""
        if not (device_effects or harness_effects):
            return _row_times(params, batch, family)
        body_log = eff["speed"][dev_of_kernel, kind_of_kernel] if device_effects else None
        body, fixed = _row_parts(params, batch, family, body_log)
        if harness_effects:
            fixed = fixed + harness_s(eff)[kind_of_row]
        if device_effects:
            # (the device's fixed costs: its launches, and the host its harness ran on)
            fixed = fixed * jnp.exp(eff["fixed"][dev_of_row])
        return body + fixed

    kernels_per_row = jnp.asarray(
        np.bincount(batch.row_of_kernel, minlength=len(rows)), jnp.float32
    )

    def l1(x):  # |x|, smooth within 0.01 of 0 (Adam's steps stay small near the kink)
        return jnp.sqrt(x * x + 1e-4)

    def loss_fn(theta, mask):
        params, eff = theta["model"], theta["effects"]
        pred = predict_rows(params, eff)
        if loss == "msle":
            err = (jnp.log(pred) - log_meas) ** 2
        else:  # "huber": squared near zero, linear beyond `huber_delta` (outliers pull less)
            err = 2.0 * optax.losses.huber_loss(jnp.log(pred), log_meas, delta=huber_delta)
        data = jnp.sum(err * mask)
        reg = sum(jnp.mean((params[k] - prior[k]) ** 2) for k in prior) / len(prior)
        # (harness costs span 0 to ~100 us: a weak pull towards the 1 us prior)
        out = data + prior_weight * reg + 1e-3 * prior_weight * jnp.mean(eff["kind_fixed"] ** 2)
        if device_effects:
            # Weight of each group in the data term: an effect stays at 0 until the group's
            # mean log error exceeds effect_threshold (the L1 subgradient bound).
            # (a kernel class's weight on a device: its rows' weights, counted once per row)
            w_kernel = mask[batch.row_of_kernel] / kernels_per_row[batch.row_of_kernel]
            w_group = jax.ops.segment_sum(
                w_kernel, dev_of_kernel * len(KINDS) + kind_of_kernel, n_dev * len(KINDS)
            )
            w_dev = jax.ops.segment_sum(mask, dev_of_row, n_dev)
            out = out + 2.0 * effect_threshold * (
                jnp.sum(w_group * l1(eff["speed"].reshape(-1))) + jnp.sum(w_dev * l1(eff["fixed"]))
            )
        return out

    tx = optax.adam(learning_rate)

    @jax.jit
    def run(params, mask):
        def step(carry, _):
            theta, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(theta, mask)
            grads = dict(grads, model={k: g * keep[k] for k, g in grads["model"].items()})
            updates, state = tx.update(grads, state, theta)
            return (optax.apply_updates(theta, updates), state), loss

        theta = dict(model=params, effects=no_effects)
        (theta, _), losses = jax.lax.scan(step, (theta, tx.init(theta)), None, length=steps)
        return theta["model"], theta["effects"], losses

    t1 = time.perf_counter()
    fitted, effects, losses = run(prior, mask)
    fitted = jax.block_until_ready(fitted)
    fit_s = time.perf_counter() - t1
    if not bool(jnp.all(jnp.isfinite(losses))):
        raise FloatingPointError(
            "the fit diverged (non-finite loss); lower learning_rate or check the measurements."
        )

    before = np.asarray(_row_times(prior, batch, family), np.float64)

    # What a user of the calibration gets: the shared parameters and, on a device it was fitted
    # on, that device's time factors (a held-out device has none); the harness's per-op costs
    # where fitted (the held-out rows were timed by the same harness); never the device's fixed
    # costs (harness-specific).
    def as_used(eff):
        return dict(no_effects, speed=eff["speed"], kind_fixed=eff["kind_fixed"])

    after = np.asarray(predict_rows(fitted, as_used(effects)), np.float64)
    bound_after = _row_bounds(fitted, batch, family)
    row_class = _row_classes(fitted, batch, family)

    # Interval: quantiles of held-out log residuals on fold A; coverage measured on fold B.
    resid = np.log(measured / after)
    held_idx = np.array([i for i, h in enumerate(is_held) if h])
    fold_a = np.array([i for i in held_idx if _fold(rows[i].program, seed + "/interval") < 0.5])
    fold_b = np.array([i for i in held_idx if i not in set(fold_a.tolist())])
    interval_source = (
        "split-conformal quantiles of all held-out residuals; coverage: two folds, each scored "
        "with the other's quantiles"
    )
    alpha = (1.0 - interval_level) / 2
    if len(fold_a) < 5 or len(fold_b) < 5:
        fold_a = fold_b = held_idx
        interval_source = "all held-out residuals (too few for two folds)"
    if len(held_idx) < 10:
        # Too few held-out points to place an interval: use every residual, and say so.
        fold_a = fold_b = held_idx = np.arange(len(rows))
        interval_source = "all residuals, training included (fewer than 10 held-out points)"
    if interval_folds:
        # Cross-conformal: each row's residual from the fit without its fold.
        fold_of = np.array([min(int(_fold(r.program, seed + "/cv") * interval_folds), interval_folds - 1)
                            for r in rows])  # fmt: skip
        for f in range(interval_folds):
            out_idx = np.flatnonzero(fold_of == f)
            if not len(out_idx):
                continue
            p_f, e_f, l_f = run(prior, kind_weights(np.flatnonzero(fold_of != f)))
            if not bool(jnp.all(jnp.isfinite(l_f))):
                raise FloatingPointError(f"the fit without interval fold {f} diverged.")
            pred_f = np.asarray(predict_rows(p_f, as_used(e_f)))
            resid[out_idx] = np.log(measured[out_idx] / pred_f[out_idx])
        held_idx = np.arange(len(rows))
        fold_a = np.array([i for i in held_idx if _fold(rows[i].program, seed + "/interval") < 0.5])
        fold_b = np.array([i for i in held_idx if i not in set(fold_a.tolist())])
        interval_source = (
            f"cross-conformal: quantiles of every row's residual from the {interval_folds} fits "
            "without its fold; coverage: two folds, each scored with the other's quantiles"
        )
    lo, hi = _conformal_bounds(resid[held_idx], alpha)
    if fold_a is fold_b:
        coverage = float(np.mean((resid[fold_b] >= lo) & (resid[fold_b] <= hi)))
    else:
        covered = 0
        for fit_on, score_on in ((fold_a, fold_b), (fold_b, fold_a)):
            a, b = _conformal_bounds(resid[fit_on], alpha)
            covered += int(np.sum((resid[score_on] >= a) & (resid[score_on] <= b)))
        coverage = covered / (len(fold_a) + len(fold_b))

    report_rows = tuple(
        dict(program=r.program, kind=r.kind, device=r.device, split="heldout" if h else "train",
             measured_s=float(measured[i]), before_s=float(before[i]), after_s=float(after[i]),
             bound_after=_BOUNDS[bound_after[i]], expected_bound=_expected_bound(r),
             kernel_class=KINDS[row_class[i]])
        for i, (r, h) in enumerate(zip(rows, is_held, strict=True))
    )  # fmt: skip
    report = Report(report_rows, coverage, interval_level, fit_s, featurize_s, steps)
    devices = tuple(sorted({r.device for r in train}))
    if refit:
        # The report and the interval keep the held-out split's numbers; the parameters come
        # from a second fit on every row (what a user should predict with).
        refitted, refit_effects, refit_losses = run(prior, kind_weights(np.arange(len(rows))))
        if bool(jnp.all(jnp.isfinite(refit_losses))):
            fitted, effects = jax.block_until_ready((refitted, refit_effects))
            devices = tuple(sorted({r.device for r in rows}))
    meta = dict(measurements.metadata)
    meta.update(created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                train_points=len(train), heldout_points=len(held), holdout=str(holdout),
                final_loss=float(losses[-1]), interval_source=interval_source,
                interval_points=len(held_idx),
                refit="every row" if refit else "no")  # fmt: skip
    device_params = {}
    if device_effects:
        fitted_devices = set(devices)
        meta["device_effects"] = {
            d: {**{k: round(float(np.exp(effects["speed"][i, j])), 4) for j, k in enumerate(KINDS)},
                "fixed_costs": round(float(np.exp(effects["fixed"][i])), 4)}
            for i, d in enumerate(effect_devices) if d in fitted_devices
        }  # fmt: skip
        device_params = {
            d: {"kind_time_log": np.asarray(effects["speed"][i], np.float32)}
            for i, d in enumerate(effect_devices) if d in fitted_devices
        }  # fmt: skip
    if harness_effects:
        cost = np.asarray(harness_s(effects))
        meta["harness_effects"] = {k: float(f"{cost[j]:.4g}") for j, k in enumerate(effect_kinds)}
    return Calibration(
        family=family, devices=devices, params={k: np.asarray(v) for k, v in fitted.items()},
        prior={k: np.asarray(v) for k, v in prior.items()}, residual_log_quantiles=(lo, hi),
        interval_level=interval_level, report=report, summary=report.summary("heldout"), metadata=meta,
        name=name or f"{family} calibration on {', '.join(devices)}", device_params=device_params,
    )  # fmt: skip


def evaluate(calibration: Calibration, measurements: Measurements) -> Report:
    """Scores a calibration on measurements it was not fitted on (every row is held out).

    Example:
      >>> from perfjax.calibrate import Measurements, Workload, fit, evaluate
      >>> rows = [dict(workload=Workload.of("matmul", m=n, k=n, n=n), device="h100", time_s=3e-12 * n**3 + 6e-6)
      ...         for n in (256, 512, 1024, 2048, 4096, 8192)]
      >>> cal = fit(Measurements.from_rows(rows), holdout=0.3, steps=20)
      >>> evaluate(cal, Measurements.from_rows(rows)).summary()["points"]
      6
    """
    rows = list(measurements)
    families = {get_device(r.device).family for r in rows}
    if families != {calibration.family}:
        raise ValueError(
            f"calibration is for {calibration.family} devices; measurements are {sorted(families)}."
        )
    t0 = time.perf_counter()
    batch = _features(rows, calibration.family)
    featurize_s = time.perf_counter() - t0
    # Each device with the parameters a prediction on it uses (its vendor's, its own factors
    # where fitted); "before" is the device's vendor priors.
    fam = calibration.family
    n = len(rows)
    before, after = np.zeros(n), np.zeros(n)
    bounds = np.zeros(n, np.int64)
    classes = np.zeros(n, np.int64)
    lo, hi = np.zeros(n), np.zeros(n)
    for dev in sorted({r.device for r in rows}):
        idx = np.array([i for i, r in enumerate(rows) if r.device == dev])
        spec = get_device(dev)
        prior = default_params(fam, spec.vendor)
        before[idx] = np.asarray(_row_times(prior, batch, fam), np.float64)[idx]
        params = calibration.jax_params(dev)
        body_log = jnp.asarray(np.asarray(params["kind_time_log"])[batch.arrays["kind"]])
        shared = dict(params, kind_time_log=jnp.zeros_like(params["kind_time_log"]))
        body, fixed = _row_parts(shared, batch, fam, body_log)
        after[idx] = np.asarray(body + fixed, np.float64)[idx]
        bounds[idx] = _row_bounds(params, batch, fam)[idx]
        classes[idx] = _row_classes(params, batch, fam)[idx]
        for i in idx:
            lo[i], hi[i] = calibration.interval_log_bounds(dev, KINDS[classes[i]])
    measured = np.array([r.time_s for r in rows])
    resid = np.log(measured / after)
    coverage = float(np.mean((resid >= lo) & (resid <= hi)))
    report_rows = tuple(
        dict(program=r.program, kind=r.kind, device=r.device, split="heldout", measured_s=float(measured[i]),
             before_s=float(before[i]), after_s=float(after[i]), bound_after=_BOUNDS[bounds[i]],
             kernel_class=KINDS[classes[i]],
             expected_bound=_expected_bound(r))
        for i, r in enumerate(rows)
    )  # fmt: skip
    return Report(report_rows, coverage, calibration.interval_level, 0.0, featurize_s, 0)
