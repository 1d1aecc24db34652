"""XLA's measured collective table, and the fit of the calibrated collective model to it.

The table (``data/xla_collectives.csv.gz``, Apache-2.0, OpenXLA authors; provenance in
``data/xla_collectives.LICENSE.md``) holds PjRt executable times of single collectives on 8-GPU HGX
B200, GB200 and GB300 NVL72 racks (groups of 4 to 72 GPUs) and an 8-GPU AMD CDNA4 (gfx950, MI355X
class) board. ``xla_collectives`` returns its rows in perfjax's byte convention; ``fit_collectives``
fits ``CollectiveFit`` parameters (optax Adam on a robust log error) for one vendor family;
``predict_xla`` predicts the rows with a fit.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from perfjax._errors import InputError
from perfjax.placement.comm._collectives import (
    CALIBRATED_KINDS,
    FIT_FAMILIES,
    FIT_PARAMETERS,
    CollectiveFit,
    _permute_bandwidth,
    _switch_bandwidth,
    calibrated_time_s,
    collective_fit,
    injection_bandwidth_bytes_per_s,
    prior_fit,
)
from perfjax.placement.comm._platform import platform as get_platform

#: XLA device key -> the built-in platform it was measured on.
XLA_ARCH_PLATFORMS = {
    "sm_100_B200": "8xb200-nvlink",
    "sm_100_GB200": "gb200-nvl72",
    "sm_103": "gb300-nvl72",
    "gfx950": "8xmi355x",
}
#: XLA device key -> vendor family (each family has its own fitted parameters).
XLA_ARCH_FAMILIES = {
    "sm_100_B200": "nvidia-nvlink",
    "sm_100_GB200": "nvidia-nvlink",
    "sm_103": "nvidia-nvlink",
    "gfx950": "amd-infinity-fabric",
}
#: XLA device key -> kind of machine; the fit weights machines equally (GB200 and GB300 NVL72
#: racks are one kind of machine, so they share the weight of the 8-GPU HGX board).
XLA_ARCH_SYSTEMS = {
    "sm_100_B200": "hgx-8gpu",
    "sm_100_GB200": "nvl72",
    "sm_103": "nvl72",
    "gfx950": "amd-8gpu",
}
#: Rows of XLA's table kept out of this copy (H100 and MI300X: held out to judge predictions).
WITHHELD_ARCHS = ("sm_90", "gfx942")
#: XLA runs collective-permute inside a loop of this many iterations and divides by it.
PERMUTE_LOOP_ITERATIONS = 100
#: Rows left out of *fitting* (they are still scored): NVL72 collective-permutes from 1 MiB to
#: 256 MiB reach at most ~22 GB/s up to 8 MiB and then sit on a flat ~0.5 ms per iteration up to
#: 256 MiB, a regime that no link model (nor the same op on the 8-GPU boards) shows.
FIT_EXCLUDED = {
    "archs": ("sm_100_GB200", "sm_103"),
    "kind": "collective_permute",
    "tensor_size_bytes": (2**20, 2**28),
}
_OPCODES = {
    "all-reduce": "all_reduce",
    "all-gather": "all_gather",
    "reduce-scatter": "reduce_scatter",
    "all-to-all": "all_to_all",
    "collective-permute": "collective_permute",
}
_DATA = "xla_collectives.csv.gz"
#: Huber threshold on the log of predicted / measured time (0.1 ~ 10 %): quadratic inside,
#: linear outside, so a few outlying rows (arrival skew at 1 KiB) do not pull the fit.
_HUBER_DELTA = 0.1


@functools.lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    with importlib.resources.as_file(
        importlib.resources.files("perfjax.placement") / "data" / _DATA
    ) as path:
        raw = pd.read_csv(path)
    raw = raw.dropna(subset=["time_s"])  # 2 rows without a throughput in XLA's table
    kind = raw.opcode.map(_OPCODES)
    permute = kind == "collective_permute"
    pairs = raw.source_target_pairs.fillna("")
    devices = pairs.map(
        lambda s: len({d for pair in s.split(";") if pair for d in pair.split("->")})
    )
    group = np.where(permute, devices, raw.num_devices_per_group.fillna(0)).astype(int)
    groups = np.where(permute, 1, raw.num_replica_groups.fillna(1)).astype(int)
    size = raw.tensor_size_bytes.astype(float)
    # tensor_size_bytes is the larger per-device buffer; perfjax's nbytes is the operand: the
    # gathered output of an all-gather is p shards, every other kind's operand is the buffer.
    nbytes = np.where(kind == "all_gather", size / np.maximum(group, 1), size)
    out = pd.DataFrame(
        {
            "arch": raw.arch,
            "platform": raw.arch.map(XLA_ARCH_PLATFORMS),
            "family": raw.arch.map(XLA_ARCH_FAMILIES),
            "kind": kind,
            "dtype": raw.dtype,
            "nbytes": nbytes,
            "tensor_size_bytes": raw.tensor_size_bytes.astype(np.int64),
            "out_bytes": raw.out_bytes.astype(np.int64),
            "group_size": group,
            "num_groups": groups,
            "permute_pattern": raw.permute_pattern.fillna(""),
            "source_target_pairs": pairs,
            "time_s": raw.time_s.astype(float),
        }
    )
    return out.reset_index(drop=True)


def xla_collectives(arch: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of XLA's measured collective table, in perfjax's conventions.

    Columns: ``arch`` (XLA's device key), ``platform`` (built-in platform name), ``family``
    (vendor family), ``kind`` (perfjax collective name), ``dtype``, ``nbytes`` (operand bytes per
    device, as ``collective_time_s``: the shard of an all-gather, the full buffer or input of the
    others), ``tensor_size_bytes`` and ``out_bytes`` (XLA's), ``group_size`` (devices per replica
    group; for a collective-permute the devices in its pairs), ``num_groups`` (groups running at
    once), ``permute_pattern`` and ``source_target_pairs`` (permutes only, ``"0->1;1->2"``),
    ``time_s`` (median executable time; permutes: per loop iteration).

    Args:
      arch: one XLA device key or a list of them (``XLA_ARCH_PLATFORMS``); default all.

    Example:
      >>> rows = xla_collectives("sm_100_B200")
      >>> ag = rows[(rows.kind == "all_gather") & (rows.group_size == 8)].iloc[0]
      >>> int(ag["nbytes"]) * 8 == int(ag.tensor_size_bytes), ag.platform
      (True, '8xb200-nvlink')
    """
    table = _table()
    if arch is None:
        return table.copy()
    wanted = [arch] if isinstance(arch, str) else list(arch)
    for a in wanted:
        if a not in XLA_ARCH_PLATFORMS:
            note = (
                " (its rows are withheld from this copy of the table to judge predictions)"
                if a in WITHHELD_ARCHS
                else ""
            )
            raise InputError(f"unknown XLA arch {a!r}{note}; valid: {sorted(XLA_ARCH_PLATFORMS)}.")
    return table[table.arch.isin(wanted)].reset_index(drop=True)


def _parse_pairs(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in pair.split("->")) for pair in text.split(";") if pair]


def xla_features(rows: pd.DataFrame, fit: CollectiveFit | None = None) -> dict[str, np.ndarray]:
    """Inputs of ``calibrated_time_s`` for each row: kind code, bytes, group size, bandwidth
    (injection bandwidth of the first, contiguous group; a permute's slowest flow), NVLS port
    bandwidth (0 where NVLS does not apply under ``fit``) and the share of the per-execution
    overhead (1, or 1/100 for the looped permutes).

    Example:
      >>> f = xla_features(xla_collectives("gfx950").head(3))
      >>> sorted(f)
      ['bandwidth_bytes_per_s', 'execution_share', 'group_size', 'kind', 'nbytes', 'switch_bandwidth_bytes_per_s']
    """

    _check_rows(rows)
    cache: dict[tuple, tuple[float, float]] = {}
    bw = np.empty(len(rows))
    sw = np.empty(len(rows))
    for i, r in enumerate(
        rows[["platform", "family", "kind", "group_size", "source_target_pairs"]].itertuples(
            index=False
        )
    ):
        key = (r.platform, r.family, r.kind, int(r.group_size), r.source_target_pairs)
        if key not in cache:
            plat = get_platform(r.platform)
            if r.kind == "collective_permute":
                pairs = _parse_pairs(r.source_target_pairs)
                cache[key] = (_permute_bandwidth(plat, pairs), 0.0)
            else:
                idx = list(range(int(r.group_size)))
                rule = fit if fit is not None else prior_fit(r.family)
                cache[key] = (
                    injection_bandwidth_bytes_per_s(plat, idx),
                    _switch_bandwidth(plat, idx, rule),
                )
        bw[i], sw[i] = cache[key]
    permute = (rows.kind == "collective_permute").to_numpy()
    return {
        "kind": rows.kind.map(CALIBRATED_KINDS.index).to_numpy().astype(np.int32),
        "nbytes": rows["nbytes"].to_numpy(dtype=float),
        "group_size": np.where(permute, 2, rows.group_size.to_numpy()).astype(float),
        "bandwidth_bytes_per_s": bw,
        "switch_bandwidth_bytes_per_s": sw,
        "execution_share": np.where(permute, 1.0 / PERMUTE_LOOP_ITERATIONS, 1.0),
    }


def _check_rows(rows: Any) -> None:
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(
            f"rows must be a DataFrame from xla_collectives(), got {type(rows).__name__}."
        )
    need = {
        "arch",
        "platform",
        "family",
        "kind",
        "nbytes",
        "group_size",
        "source_target_pairs",
        "time_s",
    }
    missing = sorted(need - set(rows.columns))
    if missing:
        raise InputError(f"rows lack column(s) {missing}; pass rows from xla_collectives().")
    if len(rows) == 0:
        raise InputError("rows is empty; select at least one row of xla_collectives().")
    if (rows["nbytes"] < 0).any() or not np.isfinite(rows["nbytes"]).all():
        bad = rows["nbytes"][(rows["nbytes"] < 0) | ~np.isfinite(rows["nbytes"])].iloc[0]
        raise InputError(f"rows: nbytes must be finite and >= 0 (bytes per device), got {bad!r}.")


def _predict(feats: dict[str, Any], params: Any) -> Any:
    return calibrated_time_s(
        feats["kind"],
        feats["nbytes"],
        feats["group_size"],
        feats["bandwidth_bytes_per_s"],
        params,
        switch_bandwidth_bytes_per_s=feats["switch_bandwidth_bytes_per_s"],
        execution_share=feats["execution_share"],
    )


_predict_jit = jax.jit(_predict)


def predict_xla(rows: pd.DataFrame, fit: CollectiveFit | str = "xla") -> np.ndarray:
    """Predicted time (s) of each row with a calibrated fit (``"xla"``: the shipped fit of the
    row's family). Raises ``ValueError`` if a given fit's family differs from a row's.

    Example:
      >>> rows = xla_collectives("gfx950")
      >>> ratio = predict_xla(rows) / rows.time_s.to_numpy()
      >>> 0.8 < float(np.median(ratio)) < 1.25
      True
    """

    _check_rows(rows)
    out = np.empty(len(rows))
    for fam, part in rows.groupby("family", sort=False):
        if isinstance(fit, CollectiveFit):
            if fit.family != fam:
                raise InputError(
                    f"the fit is for {fit.family!r} but rows of {sorted(set(part.arch))} are "
                    f"{fam!r}; parameters are never shared between vendor families."
                )
            chosen = fit
        elif fit == "xla":
            chosen = collective_fit(fam)
        else:
            raise InputError(f"fit must be 'xla' or a CollectiveFit, got {fit!r}.")
        feats = xla_features(part, chosen)
        pos = rows.index.get_indexer(part.index)
        out[pos] = np.asarray(_predict_jit(feats, dict(chosen.params)), dtype=float)
    return out


def fit_mask(rows: pd.DataFrame) -> np.ndarray:
    """Which rows ``fit_collectives`` uses: all but ``FIT_EXCLUDED``."""
    lo, hi = FIT_EXCLUDED["tensor_size_bytes"]
    out = (
        rows.arch.isin(FIT_EXCLUDED["archs"])
        & (rows.kind == FIT_EXCLUDED["kind"])
        & rows.tensor_size_bytes.between(lo, hi)
    )
    return ~out.to_numpy()


def _weights(rows: pd.DataFrame) -> np.ndarray:
    """Each system equal, each arch equal within its system, each row equal within its arch."""
    system = rows.arch.map(XLA_ARCH_SYSTEMS)
    per_arch = rows.groupby("arch").arch.transform("size").to_numpy(dtype=float)
    archs_in_system = rows.groupby(system).arch.transform("nunique").to_numpy(dtype=float)
    w = 1.0 / (per_arch * archs_in_system * system.nunique())
    return w / w.sum()


def _to_unconstrained(params: dict[str, float]) -> jnp.ndarray:
    vals = [
        math.log(params[k] + 1.5) if k == "group_size_offset" else math.log(max(params[k], 1e-12))
        for k in FIT_PARAMETERS
    ]
    return jnp.asarray(vals, dtype=jnp.float32)


def _from_unconstrained(theta: Any) -> dict[str, Any]:
    # Log space keeps times and shares positive; the offset is > -1.5 so that p + offset > 0.
    out = {k: jnp.exp(theta[i]) for i, k in enumerate(FIT_PARAMETERS)}
    out["group_size_offset"] = out["group_size_offset"] - 1.5
    return out


def fit_collectives(
    rows: pd.DataFrame,
    *,
    steps: int = 2000,
    learning_rate: float = 0.05,
    init: CollectiveFit | None = None,
    exclude_anomalies: bool = True,
) -> CollectiveFit:
    """Fits the calibrated model's parameters to rows of one vendor family.

    The loss is the weighted mean Huber loss (threshold 0.1) of ``log(predicted / measured)``;
    machines weigh equally (``XLA_ARCH_SYSTEMS``). Parameters live in log space (the group-size
    offset shifted by 1.5); optax Adam runs ``steps`` steps from ``init`` (default:
    ``prior_fit(family)``, published figures). Deterministic.

    Args:
      rows: rows of ``xla_collectives()``, all of one family.
      steps, learning_rate: Adam's.
      init: starting parameters (same family).
      exclude_anomalies: leave out ``FIT_EXCLUDED`` rows.

    Example:
      >>> fit = fit_collectives(xla_collectives("gfx950"), steps=200)
      >>> fit.family, 0.3 < fit.params["ring_efficiency"] < 1.2
      ('amd-infinity-fabric', True)
    """
    _check_rows(rows)
    families = sorted(set(rows.family))
    if len(families) != 1:
        raise InputError(
            f"rows mix vendor families {families}; fit each family on its own rows (parameters "
            "are never shared between families)."
        )
    family = families[0]
    if family not in FIT_FAMILIES:
        raise InputError(f"unknown family {family!r}; valid: {FIT_FAMILIES}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1, got {steps!r}.")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise InputError(f"learning_rate must be a number > 0, got {learning_rate!r}.")
    start = prior_fit(family) if init is None else init
    if start.family != family:
        raise InputError(f"init is for {start.family!r} but the rows are {family!r}.")
    used = rows[fit_mask(rows)] if exclude_anomalies else rows
    feats = {k: jnp.asarray(v) for k, v in xla_features(used, start).items()}
    weights = jnp.asarray(_weights(used), dtype=jnp.float32)
    log_measured = jnp.log(jnp.asarray(used.time_s.to_numpy(), dtype=jnp.float32))

    def loss(theta):
        pred = _predict(feats, _from_unconstrained(theta))
        err = jnp.log(pred) - log_measured
        return jnp.sum(weights * optax.losses.huber_loss(err, delta=_HUBER_DELTA))

    tx = optax.adam(learning_rate)
    theta0 = _to_unconstrained(dict(start.params))

    @jax.jit
    def run(theta):
        def step(carry, _):
            theta, state = carry
            value, grad = jax.value_and_grad(loss)(theta)
            updates, state = tx.update(grad, state)
            return (optax.apply_updates(theta, updates), state), value

        (theta, _), values = jax.lax.scan(step, (theta, tx.init(theta)), None, length=steps)
        return theta, values[-1], loss(theta)

    theta, _, final = run(theta0)
    params = {k: float(v) for k, v in _from_unconstrained(theta).items()}
    archs = ", ".join(sorted(set(used.arch)))
    return CollectiveFit(
        family=family,
        params=params,
        switch_reduction_min_devices=start.switch_reduction_min_devices,
        source=(
            f"fit_collectives on {len(used)} rows of XLA's collective table ({archs}); "
            f"Adam lr={learning_rate}, {steps} steps from {start.source.split(' (')[0]!r}; "
            f"weighted Huber(log pred/meas, {_HUBER_DELTA}) loss {float(final):.5f}"
        ),
    )
