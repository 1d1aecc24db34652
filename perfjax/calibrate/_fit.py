"""Fitting a device family's correction parameters to measured timings with optax.

Loss: mean squared log error between predicted and measured times over the training programs
(CPUs: a robust variant, :data:`DEFAULT_LOSS`), plus ``prior_weight`` x the mean squared
distance of every (unconstrained) parameter from its prior. Programs, never repeats of one program, are split between training and held-out data; all
reported errors are on held-out programs. The spread of held-out log residuals gives each
calibrated prediction an interval (split-conformal, or cross-conformal with ``interval_folds``;
with 12 or more whole programs, the normal interval of their and the held-out rows' median and
MAD); its coverage is measured by splitting those residuals in two folds, each scored with the interval
of the other. With several devices, ``device_effects`` gives each a time factor per kernel class
under a Laplace prior (the shared parameters then fit the median device), and
``harness_effects`` gives each op kind a factor on the fixed costs of the measuring harness.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from perfjax._dtypes import PRECISIONS
from perfjax._errors import InputError
from perfjax.calibrate._measurements import Measurements, Row
from perfjax.devicemodels import _cpu
from perfjax.devicemodels import device as get_device
from perfjax.devicemodels._calibration import Calibration, Report
from perfjax.devicemodels._cpu import core_time_scale
from perfjax.devicemodels._models import (
    FROZEN,
    default_params,
    executed_body_s,
    executed_flops,
    executed_matrix_flops,
    kernel_times,
    pack_numpy,
    program_overhead,
    resolve,
    wake_share,
    waking_pool_use,
)
from perfjax.fusion._kernels import KINDS, kernels_for
from perfjax.lowering._staging import program_for

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
        for k, v in r.arrays().items():
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
    used = waking_pool_use(batch.arrays, out)
    pool = jax.ops.segment_max(used, batch.row_of_kernel, num_segments=batch.n_rows)
    flops = jax.ops.segment_sum(
        executed_matrix_flops(batch.arrays), batch.row_of_kernel, num_segments=batch.n_rows
    )

    def per_row(x):
        return jax.ops.segment_sum(x * ex, batch.row_of_kernel, num_segments=batch.n_rows)

    all_flops = jax.ops.segment_sum(
        executed_flops(batch.arrays), batch.row_of_kernel, num_segments=batch.n_rows
    )
    body_s = jax.ops.segment_sum(
        executed_body_s(batch.arrays, out), batch.row_of_kernel, num_segments=batch.n_rows
    )
    share = wake_share(
        jnp.maximum(pool, 0.0), flops, family, body_s, all_flops, core_time_scale(params)
    )
    zero = jnp.zeros_like(ex)
    inputs, outputs, pruned = (
        jnp.maximum(jax.ops.segment_max(batch.arrays.get(name, zero), batch.row_of_kernel,
                                        num_segments=batch.n_rows), 0.0)
        for name in ("program_inputs", "program_outputs", "pruned_inputs")
    )  # fmt: skip
    fixed = per_row(out.launch_s) + program_overhead(params, share, family, inputs, outputs, pruned)
    body = out.time_s - out.launch_s
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
            np.asarray(part) * batch.arrays["executions"]
            for part in (out.compute_s, out.memory_s, out.launch_s)
        ]
    )
    sums = np.zeros((3, batch.n_rows))
    for b in range(3):
        np.add.at(sums[b], batch.row_of_kernel, parts[b])
    return sums.argmax(axis=0)


def _row_classes(params, batch: _Batch, family: str) -> np.ndarray:
    """Per row, the index (into ``KINDS``) of the kernel class that takes most of its time."""
    out = kernel_times(batch.arrays, batch.dev, params, batch.res, family)
    t = np.asarray(out.time_s) * batch.arrays["executions"]
    sums = np.zeros((batch.n_rows, len(KINDS)))
    np.add.at(sums, (batch.row_of_kernel, np.asarray(batch.arrays["kind"])), t)
    return sums.argmax(axis=1)


def _conformal_bounds(resid: np.ndarray, alpha: float) -> tuple[float, float]:
    """Split-conformal interval of log residuals: the order statistics that keep a new point
    inside with probability >= 1 - 2 alpha for any n (plain quantiles fall short for small n)."""
    r = np.sort(np.asarray(resid, np.float64))
    n = len(r)
    k_lo = min(max(int(np.floor((n + 1) * alpha)) - 1, 0), n - 1)
    k_hi = min(max(int(np.ceil((n + 1) * (1 - alpha))) - 1, 0), n - 1)
    return float(r[k_lo]), float(r[k_hi])


def _robust_normal_bounds(resid: np.ndarray, alpha: float) -> tuple[float, float]:
    """The normal interval of log residuals with a robust centre and scale: median +- z x
    1.4826 x MAD (the MAD's normal-consistent scale), z the normal quantile of ``1 - alpha``.
    Order statistics of a hundred residuals sit on the few rows in their tails; this follows
    the bulk (see :func:`_interval`)."""
    r = np.asarray(resid, np.float64)
    centre = float(np.median(r))
    scale = 1.4826 * float(np.median(np.abs(r - centre)))
    z = statistics.NormalDist().inv_cdf(1.0 - alpha)
    return centre - z * scale, centre + z * scale


#: Loss weight of the ``chain`` kind against any other kind. Chains of 1, 4 and 16 kernels are
#: the only measurements that tell what a call costs once from what each further kernel costs;
#: with single-op rows alone the per-kernel launch absorbs the call's cost, and programs of a
#: hundred small kernels (transformers encoders) come out 1.5-1.9x too slow. Weights 1, 2, 4
#: and 8 on a 2-core EPYC: 22.7 / 21.9 / 21.0 / 20.4% median APE (p90 76 / 69 / 67 / 63%) on 120
#: programs nobody chose (seed 555, two calibrations); on another 120 (seed 876484169) 19.7 /
#: - / 18.7 / 19.5% (p90 61 / - / 49 / 49%).
_CHAIN_WEIGHT = 4.0
#: The op kind of whole programs (``Workload.of("model", ...)``, the ``programs`` suite): never
#: fitted, scored in the report's ``"program"`` split.
PROGRAM_KIND = "model"
_PROGRAM_SPLIT = "program"
#: Whole programs needed before the interval is theirs alone (fewer: held-out microbenchmarks).
MIN_INTERVAL_PROGRAMS = 12
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


def _noise_median(measurements: Measurements) -> float:
    """The measurements' own noise (``noise_median`` in their metadata); NaN without one."""
    try:
        return float(measurements.metadata.get("noise_median") or "nan")
    except (TypeError, ValueError):
        return float("nan")


#: A calibration whose calls handed to a worker thread took this much longer than calls run
#: on the caller's thread, both with under a microsecond of kernels, was timed while the
#: other cores were slow to take work up: idle ones waking slowly (a VM's halted cores) or
#: busy with other processes (:func:`handoff_excess_s`).
HANDOFF_SPELL_S = 3e-6
#: Rows whose kernels' work the priors put under this are "tiny" (:func:`handoff_excess_s`).
_TINY_BODY_S = 1e-6


def _worker_rows(rows: Sequence[Row], batch: _Batch) -> np.ndarray:
    """Per row: True where it was timed on this machine (device ``"host"``) and XLA:CPU runs
    the call on a worker (its FLOPs reach :data:`perfjax.devicemodels._cpu._INLINE_FLOPS`)."""
    flops = np.asarray(executed_flops(batch.arrays), np.float64)
    per_row = np.bincount(batch.row_of_kernel, weights=flops, minlength=batch.n_rows)
    host = np.array([r.device == "host" for r in rows], bool)
    return host & (per_row >= _cpu._INLINE_FLOPS)


def _handoff_excess(rows: Sequence[Row], batch: _Batch, prior_body_s: np.ndarray) -> float:
    """:func:`handoff_excess_s` of featurized ``rows``, whose kernels' work at the CPU priors
    takes ``prior_body_s`` (per row)."""
    host = np.array([r.device == "host" for r in rows], bool)
    tiny = host & (np.asarray(prior_body_s) < _TINY_BODY_S)
    worker = _worker_rows(rows, batch)
    times = np.array([r.time_s for r in rows])
    w, i = times[tiny & worker], times[tiny & ~worker]
    if len(w) < 3 or len(i) < 3:
        return float("nan")
    return float(np.median(w) - np.median(i))


def handoff_excess_s(measurements: Measurements) -> float:
    """How much longer, in seconds, this machine's tiny calls that XLA:CPU hands to a worker
    thread took than its tiny calls run on the caller's thread (median against median;
    "tiny": under a microsecond of kernels at the priors); NaN with fewer than three of
    either. :func:`fit` checks it against :data:`HANDOFF_SPELL_S`.

    On a 2-core EPYC VM the two differ by 0.35-1.4 us in 22 of 28 committed timing files, and
    by 3.5-35 us in five timed while the host woke the VM's idle cores slowly: the suite's
    small adds, triads and GEMMs, handed to a worker, then took 15-49 us where copies run
    inline took 4, and the same machine did not pay it minutes later
    (docs/calibration/zen5/README.md).

    Example:
      >>> from perfjax.calibrate import Measurements, Workload
      >>> rows = [dict(workload=Workload.of("memory", pattern=p, n=n), device="host", time_s=t)
      ...         for p, t in (("copy", 4e-6), ("triad", 40e-6)) for n in (512, 1024, 2048)]
      >>> round(handoff_excess_s(Measurements.from_rows(rows)) * 1e6, 1)
      36.0
    """
    rows = [r for r in measurements if r.device == "host"]
    if not rows:
        return float("nan")
    batch = _featurize(rows, "cpu", False)
    return _handoff_excess(rows, batch, _row_parts(default_params("cpu"), batch, "cpu")[0])


def _check_rows(measurements: Measurements, device: str | None) -> tuple[list[Row], str, str]:
    """The rows to fit (one device's, or all) with their one family and vendor."""
    rows = [r for r in measurements if device is None or r.device == get_device(device).name]
    if not rows:
        raise InputError(f"no measurements for device {device!r}; have {measurements.devices()}.")
    families = {get_device(r.device).family for r in rows}
    if len(families) != 1:
        raise InputError(
            f"measurements span several device families {sorted(families)}; fit one family at a time."
        )
    vendors = sorted({(get_device(r.device).vendor or "").strip().lower() for r in rows})
    if len(vendors) > 1:
        raise InputError(
            f"measurements span several vendors {vendors}; fit one vendor at a time (a GEMM "
            "efficiency fitted on one vendor's library says nothing of another's) and combine the "
            "calibrations with Calibration.with_vendor()."
        )
    return rows, families.pop(), get_device(rows[0].device).vendor


def _held_out(rows: Sequence[Row], holdout: Any, seed: str) -> list[bool]:
    """Per row, whether it is held out: a fraction of programs (by a hash of the program id, so
    never one repeat of a program on each side), or whole devices / op kinds."""
    if isinstance(holdout, Mapping):
        unknown = set(holdout) - {"devices", "kinds"}
        if unknown:
            raise InputError(
                f"holdout keys must be 'devices' and/or 'kinds', got {sorted(unknown)}."
            )
        held_devices = {get_device(d).name for d in holdout.get("devices", ())}
        held_kinds = set(holdout.get("kinds", ()))
        is_held = [r.device in held_devices or r.kind in held_kinds for r in rows]
    else:
        if not 0.0 < float(holdout) < 1.0:
            raise InputError(f"holdout must be a fraction in (0, 1) or a mapping, got {holdout!r}.")
        is_held = [_fold(r.program, seed) < holdout for r in rows]
    n_held = sum(is_held)
    if n_held == 0 or n_held == len(rows):
        raise InputError(
            f"the split left {len(rows) - n_held} training and {n_held} held-out points; both must be > 0."
        )
    return is_held


#: The fit's loss per device family where it is not the mean squared log error. A host's
#: timings include a few points caught in a slow state of the process for both rounds (a
#: small layer norm at 60-80 us where other calibrations read 13-25 us: the heap returned to
#: the system, the second vCPU asleep), and the fixed costs the squared loss then fits moved
#: the held-out error of one calibration to 22% / 61% median / p90 (seed 555), where the same
#: machine's other calibrations gave 16-18% / 44-48%. With the Huber loss (quadratic within
#: ``huber_delta``, linear beyond) that calibration gave 18.6% / 51% and the others
#: 16.3-16.4% / 44%.
DEFAULT_LOSS = {"cpu": "asymmetric"}
#: ``loss="asymmetric"``: where a timing is slower than predicted, a Cauchy loss of this scale
#: (log error) replaces Huber's linear arm. A slow spell of a shared machine only ever adds
#: time, and it often lasts through both visits of a run of neighbouring points (a block of
#: small GEMMs or layer norms at 1.5-6x): with Huber's constant pull, such a block moved the
#: fixed cost of a GEMM 3x between calibrations of one machine, and the transformers models'
#: predictions 1.5x with it. Refitting 62 calibrations of a 2-core EPYC and predicting the 11880
#: held-out programs of 99 committed ``host_generalization`` sets
#: (``experiments/host_fit_loss.py`` -> docs/calibration/host_fit_loss.csv): median / p90 APE
#: 14.3% / 40.2% on average with Huber, 14.3% / 39.6% with this loss at scale 0.5; of the
#: worst calibrations, median 20.0% -> 19.6% and p90 65.2% -> 62.9%.
SLOW_SCALE = 0.5
#: Noise (``noise_median`` of :func:`perfjax.calibrate.measure`: a point's two closest timings
#: apart, median over points) at or below which a machine counts as quiet, and the scale of
#: :func:`spread_weights` above it. A slow spell that lasts through one suite's points (a
#: 2-core EPYC VM: the memory suite 0.32 in log slower than the machine's median timings, the
#: GEMMs 0.08) widens their per-call samples as well (the memory suite's median rel_spread 0.54
#: there, 0.22-0.44 in the 24 quiet files), and the fixed costs it fits then carry the spell to
#: every program.
#: Refitting the 60 timing files of that machine (31 of them above this noise) and predicting
#: the 11520 held-out programs of 96 committed ``host_generalization`` sets
#: (``experiments/host_fit_loss.py``, ``asymmetric:0.5`` against ``asymmetric:0.5/unweighted``):
#: median / p90 APE 15.0% / 41.3% -> 14.8% / 40.7% on average, better than the priors
#: 65.8% -> 66.3%, coverage 81.3% -> 80.7%; the worst file's p90 61.3% -> 59.7%; the quiet
#: files' fits unchanged. With the model that prices the caller's wait (``_cpu.call_wait_share``;
#: 62 files, 11880 programs) the weights no longer help: 14.3% / 39.3% -> 14.3% / 39.6%, the
#: worst file's p90 58.7% -> 62.9%. In development refits (42 files, 7560 programs, an earlier
#: model) half the scale read the same (14.8 / 40.9% against 14.8 / 41.0%); the spread
#: weighed for every file alike (no gate, a fixed scale of 0.3 or 0.6) helped the noisy files as
#: much and cost the quiet ones ~1 point of p90; a spread relative to that of points of similar
#: time did not help.
QUIET_NOISE = 0.018
SPREAD_WEIGHT_SCALE = 0.006
LOSSES = ("msle", "huber", "asymmetric")


def _spread_scale(noise_median: float) -> float | None:
    """The ``s`` of :func:`spread_weights` for a machine this noisy; None for a quiet one."""
    if not (math.isfinite(noise_median) and noise_median > QUIET_NOISE):
        return None
    return SPREAD_WEIGHT_SCALE / (noise_median - QUIET_NOISE)


def spread_weights(rel_spreads: Sequence[float], noise_median: float) -> np.ndarray:
    """Per-point factors on a fit's loss weights for timings taken on a noisy machine: above
    :data:`QUIET_NOISE`, ``1 / (1 + rel_spread / s)`` with
    ``s = SPREAD_WEIGHT_SCALE / (noise_median - QUIET_NOISE)`` (the noisier the machine, the
    less a point whose per-call samples spread widely counts); ones for a quiet machine, an
    unknown noise (NaN) and points without a spread.

    Example:
      >>> spread_weights([0.1, 0.5, float("nan")], 0.042).round(2).tolist()
      [0.71, 0.33, 1.0]
      >>> spread_weights([0.1, 0.5], 0.01).tolist()
      [1.0, 1.0]
    """
    sp = np.asarray(rel_spreads, np.float64)
    out = np.ones(sp.shape)
    scale = _spread_scale(noise_median)
    if scale is None:
        return out
    ok = np.isfinite(sp) & (sp >= 0)
    out[ok] = 1.0 / (1.0 + sp[ok] / scale)
    return out


def _point_loss(
    loss: str, log_pred: jax.Array, log_meas: jax.Array, huber_delta: float
) -> jax.Array:
    """Each point's loss on its log error (:data:`LOSSES`; all are the squared log error near 0)."""
    if loss == "msle":
        return (log_pred - log_meas) ** 2
    # Huber: squared near zero, linear beyond `huber_delta` (outliers pull less).
    err = 2.0 * optax.losses.huber_loss(log_pred, log_meas, delta=huber_delta)
    if loss == "asymmetric":
        # Measured slower than predicted: a Cauchy loss, whose pull fades beyond SLOW_SCALE.
        slow = log_meas - log_pred
        cauchy = SLOW_SCALE**2 * jnp.log1p((slow / SLOW_SCALE) ** 2)
        err = jnp.where(slow > 0, cauchy, err)
    return err


def _check_options(loss: str, interval_folds: Any, effect_threshold: float, n_rows: int) -> None:
    if loss not in LOSSES:
        raise InputError(f"Unknown loss: {loss!r}. It needs to be one of {list(LOSSES)}.")
    if not isinstance(interval_folds, int) or interval_folds < 0 or interval_folds == 1:
        raise InputError(
            f"interval_folds must be 0 (off) or an integer >= 2, got {interval_folds!r}."
        )
    if interval_folds and n_rows < 10 * interval_folds:
        raise InputError(
            f"interval_folds={interval_folds} needs at least {10 * interval_folds} measurements "
            f"(10 per fold), got {n_rows}."
        )
    if effect_threshold <= 0:
        raise InputError(f"effect_threshold must be > 0 (a log error), got {effect_threshold!r}.")


def _trainable(
    prior: Mapping[str, jax.Array], freeze: Sequence[str], family: str, harness_effects: bool
) -> dict[str, jax.Array]:
    """Per parameter, 1 where the fit may move it and 0 where it stays at its prior. A frozen
    entry is a parameter name, or "name:kind" for one kind of a per-kind parameter."""
    keep = {k: np.ones(np.shape(v), np.float32) for k, v in prior.items()}
    unknown_frozen = []
    for entry in (*FROZEN.get(family, ()), *freeze):
        pname, _, kind = entry.partition(":")
        labels = PRECISIONS if pname == "precision_eff_log" else KINDS
        if pname not in prior or (kind and (np.ndim(prior[pname]) != 1 or kind not in labels)):
            unknown_frozen.append(entry)
        elif kind:
            keep[pname][labels.index(kind)] = 0.0
        else:
            keep[pname][...] = 0.0
    if unknown_frozen:
        raise InputError(
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
    return {k: jnp.asarray(v) for k, v in keep.items()}


def _l1(x: jax.Array) -> jax.Array:
    """|x|, smooth within 0.01 of 0 (Adam's steps stay small near the kink)."""
    return jnp.sqrt(x * x + 1e-4)


class _Objective:
    """The fit's loss over one batch of rows: the model's parameters, plus (optionally) a time
    factor per (device, kernel class) and fixed-cost factor per device (device effects), and a
    per-op cost per harness group (harness effects)."""

    def __init__(
        self, rows: Sequence[Row], is_held: Sequence[bool], batch: _Batch, family: str,
        prior: Mapping[str, jax.Array], *, loss: str, huber_delta: float, prior_weight: float,
        device_effects: bool, harness_effects: bool, effect_threshold: float,
        noise_median: float = float("nan"), handoff_s: float = 0.0,
    ):  # fmt: skip
        self.rows, self.batch, self.family, self.prior = list(rows), batch, family, prior
        # A calibration timed while hand-offs to a worker were slow (handoff_excess_s): every
        # call run on a worker paid a cost of that state, fitted beside the model (from
        # ``handoff_s``) so that the kernels' launch and the pool's wake-up do not take it up.
        self.handoff_s = float(handoff_s)
        self.worker_row = (
            jnp.asarray(_worker_rows(rows, batch), jnp.float32) if self.handoff_s > 0 else None
        )
        self.spread_factor = spread_weights([r.rel_spread for r in rows], noise_median)
        self.loss_name, self.huber_delta, self.prior_weight = loss, huber_delta, prior_weight
        self.device_effects, self.harness_effects = device_effects, harness_effects
        self.effect_threshold = effect_threshold
        self.log_meas = jnp.asarray(np.log([r.time_s for r in rows]), jnp.float32)
        self.effect_devices = sorted({r.device for r in rows})
        self.effect_kinds = sorted({_harness_group(r) for r in rows})
        self.dev_of_row = jnp.asarray([self.effect_devices.index(r.device) for r in rows])
        self.kind_of_row = jnp.asarray([self.effect_kinds.index(_harness_group(r)) for r in rows])
        # Device effects act on kernels (per device and kernel class), so a calibration can
        # apply them to any program run on a device it was fitted on.
        self.dev_of_kernel = jnp.asarray(np.asarray(self.dev_of_row)[batch.row_of_kernel])
        self.kind_of_kernel = jnp.asarray(batch.arrays["kind"])
        self.kernels_per_row = jnp.asarray(
            np.bincount(batch.row_of_kernel, minlength=len(rows)), jnp.float32
        )
        # A harness's per-op cost is additive (its Python call, event records, synchronisation),
        # per group; a group without training rows has none that the fit could know (0 s).
        trained = np.zeros(len(self.effect_kinds), np.float32)
        for r, h in zip(rows, is_held, strict=True):
            if not h:
                trained[self.effect_kinds.index(_harness_group(r))] = 1.0
        self.trained_group = jnp.asarray(trained)

    def no_effects(self) -> dict[str, jax.Array]:
        return dict(
            speed=jnp.zeros((len(self.effect_devices), len(KINDS))),
            fixed=jnp.zeros((len(self.effect_devices),)),
            kind_fixed=jnp.zeros((len(self.effect_kinds),)),
            handoff_log=jnp.asarray(math.log(max(self.handoff_s, 1e-9)), jnp.float32),
        )

    def as_used(self, eff: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """What a user of the calibration gets: on a device it was fitted on, that device's time
        factors (a held-out device has none); the harness's per-op costs where fitted (the
        held-out rows were timed by the same harness); never the device's fixed costs
        (harness-specific)."""
        return dict(
            self.no_effects(),
            speed=eff["speed"],
            kind_fixed=eff["kind_fixed"],
            handoff_log=eff["handoff_log"],
        )

    def kind_weights(self, idx: np.ndarray) -> jax.Array:
        """Loss weights of rows ``idx``: each op kind weighs the same, however many rows it has
        (so plentiful cheap ops cannot buy their accuracy with the GEMMs'), except chains of
        kernels, which weigh :data:`_CHAIN_WEIGHT` kinds; on a noisy machine, times
        :func:`spread_weights`."""
        mask = np.zeros(len(self.rows), np.float32)
        mask[idx] = 1.0
        counts: dict[str, int] = {}
        for i in idx:
            counts[self.rows[i].kind] = counts.get(self.rows[i].kind, 0) + 1
        weight = np.array(
            [(_CHAIN_WEIGHT if r.kind == "chain" else 1.0) / counts.get(r.kind, 1) for r in self.rows],
            np.float32,
        ) * mask * self.spread_factor  # fmt: skip
        return jnp.asarray(weight / weight.sum())

    def harness_s(self, eff: Mapping[str, jax.Array]) -> jax.Array:
        return _HARNESS_PRIOR_S * jnp.exp(eff["kind_fixed"]) * self.trained_group

    def predict_rows(
        self, params: Mapping[str, jax.Array], eff: Mapping[str, jax.Array]
    ) -> jax.Array:
        """Row times with the effects in use (device effects where fitted, harness effects, a
        slow hand-off's cost)."""
        handoff = jnp.exp(eff["handoff_log"]) * self.worker_row if self.handoff_s > 0 else 0.0
        if not (self.device_effects or self.harness_effects):
            return _row_times(params, self.batch, self.family) + handoff
        body_log = (
            eff["speed"][self.dev_of_kernel, self.kind_of_kernel] if self.device_effects else None
        )
        body, fixed = _row_parts(params, self.batch, self.family, body_log)
        if self.harness_effects:
            fixed = fixed + self.harness_s(eff)[self.kind_of_row]
        if self.device_effects:
            # (the device's fixed costs: its launches, and the host its harness ran on)
            fixed = fixed * jnp.exp(eff["fixed"][self.dev_of_row])
        return body + fixed + handoff

    def __call__(self, theta: Mapping[str, Any], mask: jax.Array) -> jax.Array:
        params, eff = theta["model"], theta["effects"]
        pred = self.predict_rows(params, eff)
        err = _point_loss(self.loss_name, jnp.log(pred), self.log_meas, self.huber_delta)
        prior = self.prior
        data = jnp.sum(err * mask)
        reg = sum(jnp.mean((params[k] - prior[k]) ** 2) for k in prior) / len(prior)
        # (harness costs span 0 to ~100 us: a weak pull towards the 1 us prior)
        out = (
            data
            + self.prior_weight * reg
            + 1e-3 * self.prior_weight * jnp.mean(eff["kind_fixed"] ** 2)
        )
        if self.device_effects:
            out = out + self._effects_penalty(eff, mask)
        return out

    def _effects_penalty(self, eff: Mapping[str, jax.Array], mask: jax.Array) -> jax.Array:
        """The Laplace prior of device effects, weighted by each group's weight in the data term:
        an effect stays at 0 until the group's mean log error exceeds ``effect_threshold`` (the L1
        subgradient bound). A kernel class's weight on a device: its rows' weights, counted once
        per row."""
        n_dev, row_of_kernel = len(self.effect_devices), self.batch.row_of_kernel
        w_kernel = mask[row_of_kernel] / self.kernels_per_row[row_of_kernel]
        w_group = jax.ops.segment_sum(
            w_kernel, self.dev_of_kernel * len(KINDS) + self.kind_of_kernel, n_dev * len(KINDS)
        )
        w_dev = jax.ops.segment_sum(mask, self.dev_of_row, n_dev)
        return (
            2.0
            * self.effect_threshold
            * (
                jnp.sum(w_group * _l1(eff["speed"].reshape(-1)))
                + jnp.sum(w_dev * _l1(eff["fixed"]))
            )
        )

    def optimizer(
        self, keep: Mapping[str, jax.Array], steps: int, learning_rate: float
    ) -> Callable[[Mapping[str, jax.Array], jax.Array], tuple[Any, Any, jax.Array]]:
        """A jitted run of ``steps`` Adam steps from given parameters and row weights, moving only
        the trainable entries (``keep``): ``(params, effects, losses)``."""
        tx = optax.adam(learning_rate)

        @jax.jit
        def run(params, mask):
            def step(carry, _):
                theta, state = carry
                value, grads = jax.value_and_grad(self)(theta, mask)
                grads = dict(grads, model={k: g * keep[k] for k, g in grads["model"].items()})
                updates, state = tx.update(grads, state, theta)
                return (optax.apply_updates(theta, updates), state), value

            theta = dict(model=params, effects=self.no_effects())
            (theta, _), losses = jax.lax.scan(step, (theta, tx.init(theta)), None, length=steps)
            return theta["model"], theta["effects"], losses

        return run


def _interval(
    resid: np.ndarray, rows: Sequence[Row], is_held: Sequence[bool], seed: str,
    interval_level: float, interval_folds: int, refit_without: Callable[[np.ndarray], np.ndarray],
    is_program: np.ndarray | None = None,
) -> tuple[tuple[float, float], float, int, str]:  # fmt: skip
    """The interval's log bounds (split- or cross-conformal over held-out residuals), its
    coverage (two folds, each scored with the other's bounds), the points it used, and how it
    was made. ``refit_without(idx)`` predicts every row from a fit without rows ``idx``.

    With :data:`MIN_INTERVAL_PROGRAMS` or more whole programs (``is_program``, never fitted),
    the interval is theirs and the held-out microbenchmarks' together (the programs' alone,
    36 in the default suites, set the lower bound at their third-smallest residual, which
    moved with the hour they were timed in), and it is the normal interval of their median
    and MAD (:func:`_robust_normal_bounds`), not their order statistics: those sat on a few
    rows that consistently come out 1.8-4.3x slower than predicted (the suite's cosine chains
    over unit-scale arguments, XLA's slow path; memory loops of 256 KiB; a bf16 GEMM of 32^3),
    which left the upper bound at +80% and +95% in two calibrations, where a program nobody
    chose is more than 42% slower than predicted one time in ten. On a 2-core EPYC, the 62
    saved timing files refitted alone, each scored on 11880 held-out programs: order
    statistics cover 84.2% on average (72.9-90.3%), 33 of 62 within 75-85%; median and MAD
    80.1% (63.0-90.3%), 39 of 62 within (docs/calibration/host_fit_loss.csv)."""
    alpha = (1.0 - interval_level) / 2
    programs = np.zeros(len(rows), bool) if is_program is None else np.asarray(is_program, bool)
    by_programs = int(programs.sum()) >= MIN_INTERVAL_PROGRAMS
    if by_programs:
        held_idx = np.flatnonzero(programs | np.asarray(is_held, bool))
        what = (f"the {int(programs.sum())} whole programs' and {len(held_idx) - int(programs.sum())} "
                "held-out microbenchmarks' residuals (never fitted)")  # fmt: skip
    else:
        held_idx = np.flatnonzero(np.asarray(is_held, bool) & ~programs)
        what = "all held-out residuals"
    bounds = _robust_normal_bounds if by_programs else _conformal_bounds
    fold_a = np.array([i for i in held_idx if _fold(rows[i].program, seed + "/interval") < 0.5])
    fold_b = np.setdiff1d(held_idx, fold_a)
    how = "median +- z x MAD" if by_programs else "split-conformal quantiles"
    source = f"{how} of {what}; coverage: two folds, each scored with the other's bounds"
    if len(fold_a) < 5 or len(fold_b) < 5:
        fold_a = fold_b = held_idx
        source = f"{what} (too few for two folds)"
    if len(held_idx) < 10:
        # Too few held-out points to place an interval: use every residual, and say so.
        fold_a = fold_b = held_idx = np.arange(len(rows))
        source = "all residuals, training included (fewer than 10 held-out points)"
    if interval_folds and not by_programs:  # (whole programs' residuals are out of fit already)
        # Cross-conformal: each row's residual from the fit without its fold.
        resid = resid.copy()
        measured = np.array([r.time_s for r in rows])
        fold_of = np.array([min(int(_fold(r.program, seed + "/cv") * interval_folds), interval_folds - 1)
                            for r in rows])  # fmt: skip
        for f in range(interval_folds):
            out_idx = np.flatnonzero(fold_of == f)
            if len(out_idx):
                pred_f = refit_without(out_idx)
                resid[out_idx] = np.log(measured[out_idx] / pred_f[out_idx])
        held_idx = np.arange(len(rows))
        fold_a = np.array([i for i in held_idx if _fold(rows[i].program, seed + "/interval") < 0.5])
        fold_b = np.array([i for i in held_idx if i not in set(fold_a.tolist())])
        source = (
            f"cross-conformal: quantiles of every row's residual from the {interval_folds} fits "
            "without its fold; coverage: two folds, each scored with the other's quantiles"
        )
    lo, hi = bounds(resid[held_idx], alpha)
    if fold_a is fold_b:
        coverage = float(np.mean((resid[fold_b] >= lo) & (resid[fold_b] <= hi)))
    else:
        covered = 0
        for fit_on, score_on in ((fold_a, fold_b), (fold_b, fold_a)):
            a, b = bounds(resid[fit_on], alpha)
            covered += int(np.sum((resid[score_on] >= a) & (resid[score_on] <= b)))
        coverage = covered / (len(fold_a) + len(fold_b))
    return (lo, hi), coverage, len(held_idx), source


def _featurize(rows: Sequence[Row], family: str, progress: bool) -> _Batch:
    """:func:`_features`, with a progress bar on stderr when asked (tracing every workload is
    most of a fit's time on a first run)."""
    if not progress:
        return _features(rows, family)
    from rich.progress import Progress  # rich is a dependency; the bar is only built when shown

    with Progress(transient=True) as bar:
        task = bar.add_task(f"tracing {len(rows)} measured programs", total=len(rows))
        return _features(rows, family, lambda i: bar.update(task, completed=i + 1))


def fit(
    measurements: Measurements,
    device: str | None = None,
    *,
    holdout: float | Mapping[str, Sequence[str]] = 0.25,
    steps: int = 400,
    learning_rate: float = 0.05,
    prior_weight: float = 0.05,
    loss: str | None = None,
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
      steps: Adam steps on the unconstrained parameters.
      learning_rate: Adam's learning rate.
      prior_weight: weight of the squared distance to the priors.
      loss: ``"msle"`` (mean squared log error), ``"huber"`` (Huber loss on the log error,
        quadratic within ``huber_delta`` and linear beyond: a few pathological timings pull the
        fit less) or ``"asymmetric"`` (Huber where a timing is faster than predicted, a Cauchy
        loss of scale :data:`SLOW_SCALE` where it is slower: a timing caught in a slow spell of
        the machine pulls less the slower it is); default: the family's
        (:data:`DEFAULT_LOSS`: asymmetric for CPUs, else MSLE). Measurements that record a
        noisy machine (``noise_median`` above :data:`QUIET_NOISE`, from
        :func:`perfjax.calibrate.measure`) weigh their points by :func:`spread_weights` too
        (the scale in ``metadata["spread_weight_scale"]``).
      interval_level: central coverage of ``Prediction.interval_s``.
      interval_folds: 0: the interval comes from the held-out split's residuals. K >= 2:
        cross-conformal: K more fits, each without one K-th of the programs, give every row a
        residual from a fit that did not see it; the interval (and its two-fold coverage
        estimate) use all of them: K times fewer points are wasted than with the split alone.
      freeze: parameters kept at their priors: a name (``"launch_log"``) or one kind of a
        per-kind parameter (``"memory_eff_logit:gemm"``), for what the data cannot identify
        (besides the family's own, ``perfjax.devicemodels._models.FROZEN``).
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
      name: the calibration's name (default: the family and devices).
      progress: show a progress bar while the measured programs are traced.
      harness_effects: fit a cost in seconds per op kind (and data set, for XLA and DeepBench
        rows) added to every row's fixed costs, shared by every device: the per-op cost of the
        harness that took the measurements (NeuSight times each PyTorch op with its Python call:
        a layer norm's floor is ~1.8x an add's on every GPU). The shared launch and call costs
        then stay at their priors (device time). The report (held-out rows too: same harness)
        includes them; ``params`` do not, since a compiled program does not pay them. Costs in
        seconds in ``metadata["harness_effects"]``.

    Host timings whose tiny calls run on a worker took more than :data:`HANDOFF_SPELL_S` longer
    than those run inline (:func:`handoff_excess_s`: the other cores were slow to take work
    up while they were taken) are fitted with a cost of their own on every call run on a worker,
    with a warning; it stays out of ``params`` (``metadata["handoff_spell_s"]``).

    Example:
      >>> from perfjax.calibrate import Measurements, Workload, fit
      >>> rows = [dict(workload=Workload.of("matmul", m=n, k=n, n=n), device="h100", time_s=3e-12 * n**3 + 6e-6)
      ...         for n in (256, 512, 1024, 2048, 4096, 8192)]
      >>> cal = fit(Measurements.from_rows(rows), holdout=0.3, steps=50)
      >>> cal.family
      'gpu'
    """
    rows, family, vendor = _check_rows(measurements, device)
    if loss is None:
        loss = DEFAULT_LOSS.get(family, "msle")
    _check_options(loss, interval_folds, effect_threshold, len(rows))
    is_held = _held_out(rows, holdout, seed)
    # Whole programs (kind "model") are never fitted: they are scored, and set the interval.
    is_program = np.array([r.kind == PROGRAM_KIND for r in rows], bool)
    if is_program.all():
        raise InputError(
            f"every row is a whole program (kind {PROGRAM_KIND!r}), and those are never fitted; "
            "add microbenchmark rows (perfjax.calibrate.suite names) to fit on."
        )
    is_held = [bool(h or p) for h, p in zip(is_held, is_program, strict=True)]
    if all(is_held):
        raise InputError(
            f"the split left no training point ({int(is_program.sum())} whole programs, never "
            f"fitted, and {len(rows) - int(is_program.sum())} held-out points); lower holdout."
        )
    fittable = np.flatnonzero(~is_program)
    train = [r for r, h in zip(rows, is_held, strict=True) if not h]
    t0 = time.perf_counter()
    batch = _featurize(rows, family, progress)
    featurize_s = time.perf_counter() - t0
    prior = default_params(family, vendor)
    keep = _trainable(prior, freeze, family, harness_effects)
    noise = _noise_median(measurements)
    prior_body, prior_fixed = (np.asarray(x, np.float64) for x in _row_parts(prior, batch, family))
    excess = _handoff_excess(rows, batch, prior_body) if family == "cpu" else float("nan")
    spell = math.isfinite(excess) and excess > HANDOFF_SPELL_S
    if spell:
        warnings.warn(
            f"tiny calls run on a worker thread took {excess * 1e6:.1f} us longer than those "
            f"run on the caller's thread in these timings (over {HANDOFF_SPELL_S * 1e6:.0f} "
            "us: the other cores were slow to take them up, idle ones waking slowly or busy "
            "with other work, a state that passes); the fit "
            "kept that cost out of the calibration's parameters. Calibrating again later "
            "checks it (`perfjax calibrate` keeps each program's faster timing of two runs).",
            stacklevel=2,
        )
    objective = _Objective(
        rows, is_held, batch, family, prior, loss=loss, huber_delta=huber_delta,
        prior_weight=prior_weight, device_effects=device_effects,
        harness_effects=harness_effects, effect_threshold=effect_threshold,
        noise_median=noise, handoff_s=excess if spell else 0.0,
    )  # fmt: skip
    run = objective.optimizer(keep, steps, learning_rate)
    idx_train = np.array([i for i, h in enumerate(is_held) if not h])

    t1 = time.perf_counter()
    fitted, effects, losses = run(prior, objective.kind_weights(idx_train))
    fitted = jax.block_until_ready(fitted)
    fit_s = time.perf_counter() - t1
    if not bool(jnp.all(jnp.isfinite(losses))):
        raise FloatingPointError(
            "the fit diverged (non-finite loss); lower learning_rate or check the measurements."
        )
    measured = np.array([r.time_s for r in rows])
    before = prior_body + prior_fixed
    after = np.asarray(objective.predict_rows(fitted, objective.as_used(effects)), np.float64)

    def refit_without(idx: np.ndarray) -> np.ndarray:
        p_f, e_f, l_f = run(prior, objective.kind_weights(np.setdiff1d(fittable, idx)))
        if not bool(jnp.all(jnp.isfinite(l_f))):
            raise FloatingPointError("a fit without one interval fold diverged.")
        return np.asarray(objective.predict_rows(p_f, objective.as_used(e_f)))

    (lo, hi), coverage, interval_points, interval_source = _interval(
        np.log(measured / after),
        rows,
        is_held,
        seed,
        interval_level,
        interval_folds,
        refit_without,
        is_program,
    )
    bound_after = _row_bounds(fitted, batch, family)
    row_class = _row_classes(fitted, batch, family)
    report_rows = tuple(
        dict(program=r.program, kind=r.kind, device=r.device,
             split=_PROGRAM_SPLIT if is_program[i] else "heldout" if h else "train",
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
        refitted, refit_effects, refit_losses = run(prior, objective.kind_weights(fittable))
        if bool(jnp.all(jnp.isfinite(refit_losses))):
            fitted, effects = jax.block_until_ready((refitted, refit_effects))
            devices = tuple(sorted({rows[i].device for i in fittable}))
    meta = dict(measurements.metadata)
    meta.update(created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                train_points=len(train), heldout_points=len(rows) - len(train) - int(is_program.sum()),
                program_points=int(is_program.sum()), holdout=str(holdout),
                final_loss=float(losses[-1]), interval_source=interval_source,
                interval_points=interval_points,
                refit="every row" if refit else "no")  # fmt: skip
    if math.isfinite(excess):
        meta["handoff_excess_s"] = f"{excess:.3g}"
    if spell:  # what every worker call paid in the fit, kept out of the parameters
        meta["handoff_spell_s"] = f"{float(jnp.exp(effects['handoff_log'])):.3g}"
    if (scale := _spread_scale(noise)) is not None:  # a noisy machine: spread_weights' scale
        meta["spread_weight_scale"] = round(scale, 4)
    device_params = _effects_metadata(objective, effects, set(devices), meta)
    return Calibration(
        family=family, devices=devices, params={k: np.asarray(v) for k, v in fitted.items()},
        prior={k: np.asarray(v) for k, v in prior.items()}, residual_log_quantiles=(lo, hi),
        interval_level=interval_level, report=report, summary=report.summary("heldout"), metadata=meta,
        name=name or f"{family} calibration on {', '.join(devices)}", device_params=device_params,
    )  # fmt: skip


def _effects_metadata(
    objective: _Objective, effects: Mapping[str, jax.Array], fitted_devices: set[str],
    meta: dict[str, Any],
) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """Records the fitted device and harness effects in ``meta``; returns the per-device
    parameters a calibration applies on the devices it was fitted on."""
    device_params = {}
    if objective.device_effects:
        devs = objective.effect_devices
        meta["device_effects"] = {
            d: {**{k: round(float(np.exp(effects["speed"][i, j])), 4) for j, k in enumerate(KINDS)},
                "fixed_costs": round(float(np.exp(effects["fixed"][i])), 4)}
            for i, d in enumerate(devs) if d in fitted_devices
        }  # fmt: skip
        device_params = {
            d: {"kind_time_log": np.asarray(effects["speed"][i], np.float32)}
            for i, d in enumerate(devs) if d in fitted_devices
        }  # fmt: skip
    if objective.harness_effects:
        cost = np.asarray(objective.harness_s(effects))
        meta["harness_effects"] = {
            k: float(f"{cost[j]:.4g}") for j, k in enumerate(objective.effect_kinds)
        }
    return device_params


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
        raise InputError(
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
