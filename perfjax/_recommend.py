"""``recommend``: rank (device, precision) pairs for one program by latency, throughput or energy."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax

from perfjax._display import fmt_count, fmt_energy, fmt_time, pyplot, render
from perfjax._dtypes import PRECISIONS
from perfjax._errors import InputError, PrecisionCastError
from perfjax.devicemodels._calibration import calibration_for, load_calibration
from perfjax.devicemodels._catalog import device as get_device
from perfjax.devicemodels._catalog import devices as list_devices
from perfjax.devicemodels._spec import DeviceSpec
from perfjax.lowering._program import Program, abstractify, check_inputs
from perfjax.lowering._staging import program_for
from perfjax.prediction._predict import KernelRow, Prediction, predict

#: What ``recommend`` can rank by, and whether a larger value is better.
OBJECTIVES = {"latency": False, "throughput": True, "energy": False}
DEFAULT_PRECISIONS = ("fp32", "bf16", "int8")
_METRIC = {"latency": "time_s", "throughput": "samples_per_s", "energy": "energy_j_per_sample"}
_COLORS = {"compute": "tab:red", "memory": "tab:blue", "launch": "tab:gray"}
#: Two results closer than this relative difference are reported as "about the same".
_SAME = 0.03

# Predictions cached per Program object: (device, precision, calibration) -> (spec, cal, Prediction).
_cache: weakref.WeakKeyDictionary[Program, dict[tuple, tuple]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecommendationRow:
    """One ranked (device, precision) pair, with the numbers behind its rank."""

    rank: int
    device: str
    family: str
    #: ``None``: the program's own dtypes.
    precision: str | None
    #: Samples per call (the leading dimension of the batched input).
    batch: int
    time_s: float
    samples_per_s: float
    energy_j_per_sample: float
    #: ``compute``, ``memory`` or ``launch``, as ``Prediction.bottleneck``.
    bound: str
    #: ``Prediction.utilization``: achieved over peak FLOP/s, time-weighted.
    utilization: float
    #: The unit most of the time is spent on, e.g. ``bf16 tensor cores``.
    unit: str
    #: How many times worse than the first row on the objective (1.0 for the first).
    vs_best: float
    #: How many times better than the next row on the objective (``None`` for the last).
    vs_next: float | None
    #: One line, built from the numbers: the bound, the precision's effect, the lead over the next.
    reason: str
    interval_s: tuple[float, float] | None = None
    prediction: Prediction | None = dataclasses.field(default=None, repr=False, compare=False)
    #: Per-device peak memory of one call (``Prediction.peak_memory_bytes``).
    peak_memory_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "prediction"
        }


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A (device, precision) pair, or one of its batch sizes, that was not ranked, and why (no
    peak for the precision, a program the device cannot run, a peak memory larger than the
    device's)."""

    device: str
    precision: str | None
    reason: str
    #: The batch size skipped (``None``: every batch tried).
    batch: int | None = None


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Ranked (device, precision) choices for one program; ``rows[0]`` is the recommendation.

    Prints as a table; ``to_dataframe()``, ``to_dict()`` and ``plot(path)`` for the rest.
    """

    program: str
    objective: str
    rows: tuple[RecommendationRow, ...]
    #: Pairs not ranked: the device has no peak for the precision, cannot run the program, or
    #: has less memory than the program's predicted peak (per batch size, with ``batch_sizes``).
    skipped: tuple[Skipped, ...] = ()
    #: Batch sizes tried (one per call when ``batch_sizes`` was not given).
    batch_sizes: tuple[int, ...] = ()
    #: Rows dropped by ``top``.
    truncated: int = 0

    @property
    def best(self) -> RecommendationRow:
        return self.rows[0]

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.rows])

    def to_dict(self) -> dict[str, Any]:
        return dict(
            program=self.program,
            objective=self.objective,
            batch_sizes=list(self.batch_sizes),
            rows=[r.to_dict() for r in self.rows],
            skipped=[dataclasses.asdict(s) for s in self.skipped],
            truncated=self.truncated,
        )

    def table(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        batches = sorted({r.batch for r in self.rows})
        batch_txt = (
            f"best of batch {', '.join(map(str, self.batch_sizes))}"
            if len(self.batch_sizes) > 1
            else f"batch {batches[0]}"
            if batches
            else ""
        )
        t = Table(
            title=f"perfjax.recommend: {self.program} by {self.objective} ({batch_txt})",
            caption=None,
        )
        cols = ["#", "device", "precision"]
        if len(self.batch_sizes) > 1:
            cols.append("batch")
        cols += ["time", "samples/s", "J/sample", "memory", "bound", "util", "vs best", "vs next",
                 "reason"]  # fmt: skip
        key = {"latency": "time", "throughput": "samples/s", "energy": "J/sample"}[self.objective]
        for col in cols:
            t.add_column(
                col,
                justify="left" if col in ("device", "precision", "bound", "reason") else "right",
                style="bold" if col == key else None,
                overflow="fold",
                min_width=30 if col == "reason" else None,
            )
        for r in self.rows:
            cells = [str(r.rank), r.device, r.precision or "as traced"]
            if len(self.batch_sizes) > 1:
                cells.append(str(r.batch))
            cells += [
                fmt_time(r.time_s),
                fmt_count(r.samples_per_s),
                fmt_energy(r.energy_j_per_sample),
                "?" if r.peak_memory_bytes is None else f"{fmt_count(r.peak_memory_bytes)}B",
                r.bound,
                f"{100 * r.utilization:.0f}%",
                f"{r.vs_best:.2f}x",
                "-" if r.vs_next is None else f"{r.vs_next:.2f}x",
                r.reason,
            ]
            t.add_row(*cells)
        parts: list[Any] = [t]
        if self.truncated:
            parts.append(Text(f"{self.truncated} more rows not shown (top={len(self.rows)})."))
        if self.skipped:
            parts.append(Text("not ranked: " + _skipped_summary(self.skipped)))
        return Group(*parts)

    def __str__(self) -> str:

        return render(self.table(), width=140)

    def plot(self, path: str) -> str:
        """Writes a horizontal bar chart PNG of the objective per row (log scale), coloured by
        bound, best at the top, each bar labelled with its value."""
        from matplotlib.ticker import FuncFormatter

        plt = pyplot()
        rows = self.rows
        labels = [
            f"{r.device} {r.precision or 'as traced'}"
            + (f" (batch {r.batch})" if len(self.batch_sizes) > 1 else "")
            for r in rows
        ]
        fmt, xlabel = {
            "latency": (fmt_time, "predicted time per call"),
            "throughput": (lambda v: f"{fmt_count(v)}/s", "predicted throughput (samples/s)"),
            "energy": (fmt_energy, "predicted energy per sample"),
        }[self.objective]
        values = [getattr(r, _METRIC[self.objective]) for r in rows]
        finite = [v for v in values if v > 0 and math.isfinite(v)] or [1.0]
        lo, hi = min(finite), max(finite)
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(rows) + 1.2)))
        # Bars start half a decade below the smallest value, so their lengths compare on the log axis.
        left = lo / 10**0.5
        ax.barh(
            range(len(rows)),
            [v - left for v in values],
            left=left,
            color=[_COLORS[r.bound] for r in rows],
        )
        for i, v in enumerate(values):
            ax.text(v, i, f" {fmt(v)}", va="center", fontsize=6)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(left, hi * 10**0.6)
        ticks = FuncFormatter(lambda v, _: fmt(v))
        ax.xaxis.set_major_formatter(ticks)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel(xlabel + (" (longer is better)" if OBJECTIVES[self.objective] else
                                " (shorter is better)"))  # fmt: skip
        ax.set_title(f"perfjax.recommend: {self.program} by {self.objective}")
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _COLORS.values()]
        ax.legend(handles, [f"{k}-bound" for k in _COLORS], fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _skipped_summary(skipped: Sequence[Skipped]) -> str:
    groups: dict[str, list[str]] = {}
    for s in skipped:
        at = "" if s.batch is None else f" at batch {s.batch}"
        groups.setdefault(s.reason, []).append(f"{s.device} {s.precision or 'as traced'}{at}")
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in groups.items())


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _check_objective(objective: Any) -> str:
    if objective not in OBJECTIVES:
        close = difflib.get_close_matches(str(objective), list(OBJECTIVES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"unknown objective {objective!r}; expected one of {tuple(OBJECTIVES)}.{hint}"
        )
    return objective


def _check_devices(devices: Any) -> list[DeviceSpec]:
    if devices is None:
        names: Iterable[Any] = [d for d in list_devices() if d != "host"]
    elif isinstance(devices, str) and devices.strip().lower() == "all":
        names = list_devices()
    elif isinstance(devices, (str, DeviceSpec)):
        names = [devices]
    else:
        names = list(devices)
        if not names:
            raise InputError(
                "devices is empty; pass device names (perfjax.devices() lists them), 'all', or "
                "None for the whole catalog."
            )
    specs: dict[str, DeviceSpec] = {}
    for n in names:
        spec = get_device(n)  # unknown names raise, listing the closest known ones
        specs.setdefault(spec.name, spec)
    return list(specs.values())


def _check_precisions(precisions: Any) -> tuple[str | None, ...]:
    if precisions is None or isinstance(precisions, str):
        precisions = (precisions,)
    out = tuple(dict.fromkeys(precisions))
    if not out:
        raise InputError(f"precisions is empty; pass some of {PRECISIONS}.")
    for p in out:
        if p is not None and p not in PRECISIONS:
            raise InputError(
                f"unknown precision {p!r}; expected one of {PRECISIONS} (or None: as traced)."
            )
    return out


def _positive_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and int(x) > 0


def _check_batch_sizes(batch_sizes: Any) -> tuple[int, ...] | None:
    if batch_sizes is None:
        return None
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Iterable):
        batch_sizes = [batch_sizes]
    sizes = list(batch_sizes)
    bad = [b for b in sizes if not _positive_int(b)]
    if bad or not sizes:
        raise InputError(
            f"batch_sizes must be a non-empty list of positive integers, got {sizes!r}"
            + (f" ({', '.join(repr(b) for b in bad)} not allowed)" if bad else "")
            + "; e.g. batch_sizes=[1, 8, 64]."
        )
    return tuple(sorted({int(b) for b in sizes}))


# ---------------------------------------------------------------------------------------------
# batch handling
# ---------------------------------------------------------------------------------------------


def _default_batch_argnum(inputs: tuple[Any, ...]) -> int | None:
    """The first positional argument that is an array with a leading dimension."""
    for i, x in enumerate(inputs):
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) >= 1:
            return i
    return None


def _batch_argnums(inputs: tuple[Any, ...], batch_argnums: Any) -> tuple[int, ...]:
    if batch_argnums is None:
        i = _default_batch_argnum(inputs)
        return () if i is None else (i,)
    nums = (batch_argnums,) if isinstance(batch_argnums, numbers.Integral) else tuple(batch_argnums)
    for i in nums:
        if not isinstance(i, numbers.Integral) or not -len(inputs) <= i < len(inputs):
            raise InputError(
                f"batch_argnums {nums!r} must index the {len(inputs)} positional inputs."
            )
    return tuple(int(i) % len(inputs) for i in nums)


def _leading_dim(arg: Any, where: str) -> int:
    leaves = jax.tree_util.tree_leaves(abstractify((arg,)))
    dims = {leaf.shape[0] for leaf in leaves if len(leaf.shape) >= 1}
    if not leaves or any(len(leaf.shape) == 0 for leaf in leaves) or len(dims) != 1:
        raise InputError(
            f"{where} has no common leading (batch) dimension (shapes "
            f"{[tuple(leaf.shape) for leaf in leaves]}); pass batch_argnums= naming the batched "
            "inputs, or batch=N."
        )
    return int(dims.pop())


def _with_batch(inputs: tuple[Any, ...], argnums: tuple[int, ...], batch: int) -> tuple[Any, ...]:
    out = list(abstractify(inputs))
    for i in argnums:
        _leading_dim(out[i], f"input {i}")
        out[i] = jax.tree_util.tree_map(
            lambda s: jax.ShapeDtypeStruct((batch, *s.shape[1:]), s.dtype), out[i]
        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# predictions (cached per program)
# ---------------------------------------------------------------------------------------------


def _cal_key(calibration: Any) -> Any:
    if calibration is None or calibration is False:
        return calibration
    if isinstance(calibration, (str, bytes)) or hasattr(calibration, "__fspath__"):
        return ("path", str(calibration))
    return ("object", id(calibration))


def _cached_predict(
    program: Program, spec: DeviceSpec, precision: str | None, calibration: Any
) -> Prediction:
    if spec.name == "host" and calibration is None:
        # The saved host calibration may change between calls (perfjax calibrate): no caching.
        return predict(program, None, device=spec, precision=precision, calibration=None)
    table = _cache.setdefault(program, {})
    key = (spec.name, precision, _cal_key(calibration))
    hit = table.get(key)
    if hit is not None and hit[0] is spec and hit[1] is calibration:
        return hit[2]
    pred = predict(program, None, device=spec, precision=precision, calibration=calibration)
    table[key] = (spec, calibration, pred)
    return pred


def _unsupported(spec: DeviceSpec, precision: str | None) -> str | None:
    if precision is None or precision in spec.precisions():
        return None
    return f"no {precision} peak"


# ---------------------------------------------------------------------------------------------
# reasons, generated from the numbers
# ---------------------------------------------------------------------------------------------


def _dominant_unit(pred: Prediction) -> KernelRow | None:
    """The kernel row of the unit (label) that takes most of the prediction's time."""
    per_unit: dict[str, float] = {}
    first: dict[str, KernelRow] = {}
    for k in pred.kernels:
        per_unit[k.unit] = per_unit.get(k.unit, 0.0) + k.time_s * k.executions
        first.setdefault(k.unit, k)
    if not per_unit:
        return None
    return first[max(per_unit, key=per_unit.get)]


def _short_unit(row: KernelRow | None) -> str:
    return row.unit.split(" (")[0] if row is not None else "-"


def _unit_peak(spec: DeviceSpec, row: KernelRow | None) -> float:
    """Published peak FLOP/s of the unit a kernel runs on, at the precision it runs at."""
    if row is None:
        return 0.0
    table = spec.matrix_flops_per_s if row.on_matrix_unit else spec.vector_flops_per_s
    if row.unit_precision in table:
        return float(table[row.unit_precision])
    try:
        return spec.peak_flops_per_s(row.unit_precision)
    except ValueError:
        return 0.0


def _bound_kernels(pred: Prediction, bound: str) -> list[KernelRow]:
    return [k for k in pred.kernels if k.bound == bound]


def _bound_clause(pred: Prediction, spec: DeviceSpec) -> str:

    share = pred.bound_shares.get(pred.bottleneck, 0.0)
    head = f"{pred.bottleneck}-bound ({100 * share:.0f}% of time)"
    if pred.bottleneck == "compute":
        ks = _bound_kernels(pred, "compute")
        t = sum(k.time_s * k.executions for k in ks)
        util = sum(k.utilization * k.time_s * k.executions for k in ks) / t if t else 0.0
        unit = _short_unit(_dominant_unit(pred))
        return f"{head} at {100 * util:.0f}% of {unit} peak"
    if pred.bottleneck == "memory":
        ks = _bound_kernels(pred, "memory")
        t = sum(k.time_s * k.executions for k in ks)
        moved = sum(k.bytes * k.executions for k in ks)
        bw = spec.memory_bytes_per_s
        if not t or not bw:
            return head
        frac = moved / t / bw
        if frac > 1.0:
            return f"{head} at {frac:.2g}x the {fmt_count(bw)}B/s memory bandwidth (cache-resident)"
        return f"{head} at {100 * frac:.0f}% of {fmt_count(bw)}B/s memory bandwidth"
    launches = sum(k.executions for k in pred.kernels)
    launch_s = sum(k.launch_s * k.executions for k in pred.kernels)
    return (
        f"{head}: {launches:.0f} kernels x {fmt_time(launch_s / max(launches, 1.0))} launch = "
        f"{fmt_time(launch_s)} of {fmt_time(pred.time_s)}"
    )


def _x(ratio: float) -> str:
    return f"{ratio:.3g}x"


def _better(objective: str, a: float, b: float) -> float:
    """How many times ``a`` is better than ``b`` on the objective (>1: better)."""
    if OBJECTIVES[objective]:
        return a / b if b else math.inf
    return b / a if a else math.inf


def _ratio_words(objective: str, ratio: float) -> str:
    if abs(ratio - 1.0) < _SAME:
        return "about the same as"
    if objective == "latency":
        return f"{_x(ratio)} faster than" if ratio > 1 else f"{_x(1 / ratio)} slower than"
    if objective == "throughput":
        return f"{_x(ratio)} the samples/s of"
    return f"{_x(ratio)} less energy than" if ratio > 1 else f"{_x(1 / ratio)} more energy than"


def _precision_clause(row: dict, ref: dict, objective: str) -> str:
    pred, rpred = row["pred"], ref["pred"]
    ratio = _better(objective, row["value"], ref["value"])
    name, other = row["precision"] or "as traced", ref["precision"] or "as traced"
    text = f"{name} {_ratio_words(objective, ratio)} {other} here"
    if pred.bottleneck == "memory" and rpred.bytes:
        text += f" (moves {_x(pred.bytes / rpred.bytes)} the bytes)"
    elif pred.bottleneck == "compute":
        peak, rpeak = _unit_peak(row["spec"], row["unit"]), _unit_peak(ref["spec"], ref["unit"])
        if peak and rpeak:
            unit, runit = _short_unit(row["unit"]), _short_unit(ref["unit"])
            text += f" ({unit}: {_x(peak / rpeak)} the peak of {runit})"
    return text


def _next_clause(row: dict, nxt: dict, objective: str) -> str:

    lead = _better(objective, row["value"], nxt["value"])
    who = f"{nxt['spec'].name} {nxt['precision'] or 'as traced'}"
    if abs(lead - 1.0) < _SAME:
        return f"ties with {who}"
    text = f"{_x(lead)} ahead of {who}"
    pred, npred = row["pred"], nxt["pred"]
    if objective == "energy":
        return text + (
            f" ({pred.energy_j / pred.time_s:.3g} W for {fmt_time(pred.time_s)} vs "
            f"{npred.energy_j / npred.time_s:.3g} W for {fmt_time(npred.time_s)} per call)"
        )
    if row["spec"].name == nxt["spec"].name:
        return text
    return f"{text} ({_why_ahead(row, nxt)})"


def _why_ahead(row: dict, nxt: dict) -> str:
    """What explains why ``row`` beats ``nxt`` on another device: more of the binding resource,
    more of another one, better use of it, or the kind of kernel whose time differs most."""

    spec, nspec, pred, npred = row["spec"], nxt["spec"], row["pred"], nxt["pred"]
    peak, npeak = _unit_peak(spec, row["unit"]), _unit_peak(nspec, nxt["unit"])
    bw, nbw = spec.memory_bytes_per_s, nspec.memory_bytes_per_s
    launch, nlaunch = spec.launch_overhead_s, nspec.launch_overhead_s
    # bound -> (resource, how many times more of it this row has, the two values shown).
    resources = {
        "compute": (
            "peak",
            peak / npeak if peak and npeak else 1.0,
            f"{fmt_count(peak)}FLOP/s {_short_unit(row['unit'])} vs {fmt_count(npeak)}FLOP/s",
        ),
        "memory": (
            "memory bandwidth",
            bw / nbw if bw and nbw else 1.0,
            f"{fmt_count(bw)}B/s vs {fmt_count(nbw)}B/s",
        ),
        "launch": (
            "launch rate",
            nlaunch / launch if launch and nlaunch else 1.0,
            f"{fmt_time(launch)} vs {fmt_time(nlaunch)} per launch",
        ),
    }
    name, ratio, shown = resources[pred.bottleneck]
    if ratio >= 1.0 + _SAME:
        return f"{_x(ratio)} its {name}: {shown}"
    prefix = f"same {name}" if ratio > 1.0 - _SAME else f"{_x(ratio)} its {name}"
    others = [r for b, r in resources.items() if b != pred.bottleneck and r[1] >= 1.0 + _SAME]
    if others:
        oname, oratio, oshown = max(others, key=lambda r: r[1])
        return f"{prefix}, but {_x(oratio)} its {oname}: {oshown}"
    if pred.utilization > npred.utilization * (1.0 + _SAME):
        return (
            f"{prefix}, but {100 * pred.utilization:.0f}% vs {100 * npred.utilization:.0f}% "
            "of peak used"
        )
    kinds: dict[str, list[float]] = {}
    for p, i in ((pred, 0), (npred, 1)):
        for k in p.kernels:
            kinds.setdefault(k.kind, [0.0, 0.0])[i] += k.time_s * k.executions
    kind, (t, nt) = max(kinds.items(), key=lambda kv: kv[1][1] - kv[1][0])
    return f"{prefix}, but its {kind} kernels take {fmt_time(t)} vs {fmt_time(nt)}"


def _batch_clause(row: dict, objective: str) -> str:
    tried = row["tried"]
    if len(tried) < 2:
        return ""
    first = tried[0]
    if first["batch"] == row["batch"]:
        return f"batch {row['batch']} best of {len(tried)} tried"
    ratio = _better(objective, row["value"], first["value"])
    return f"batch {row['batch']}: {_x(ratio)} better than batch {first['batch']}"


# ---------------------------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------------------------


def recommend(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    *,
    objective: str = "latency",
    devices: Sequence[str | DeviceSpec] | str | None = None,
    precisions: Sequence[str | None] | str | None = DEFAULT_PRECISIONS,
    batch_sizes: Iterable[int] | None = None,
    batch: int | None = None,
    batch_argnums: int | Sequence[int] | None = None,
    top: int | None = None,
    calibration: Any = None,
) -> Recommendation:
    """Ranks (device, precision) pairs for a program by predicted latency, throughput or energy.

    Every pair is a :func:`perfjax.predict` call (cached per traced program), so the ranking is
    exactly the order of the independently predicted numbers. A pair (or one of its batch sizes)
    whose predicted peak memory (``Prediction.peak_memory_bytes``) exceeds the device's memory is
    not ranked: it is listed in ``skipped`` with both sizes.

    Args:
      fn_or_program: a JAX function (with ``inputs``), a traced :class:`Program`, or StableHLO
        text/path (which keeps its dtypes: pass ``precisions=(None, "int8")``).
      inputs: positional arguments (arrays or ``jax.ShapeDtypeStruct``).
      objective: ``"latency"`` (time per call, lowest first), ``"throughput"`` (samples/s =
        batch / time, highest first) or ``"energy"`` (joules per sample, lowest first).
      devices: names or specs; ``None`` is the whole catalog except ``"host"`` (this machine, whose
        spec is detected and estimated rather than published); ``"all"`` adds ``"host"``.
      precisions: tried on each device whose spec has a peak for them (the other pairs are
        listed in ``skipped``); as in ``predict``: ``fp32``/``bf16``/``fp16``/``fp64`` re-trace
        with cast inputs, ``int8``/``fp8``/``int4`` quantize the GEMMs with bf16 elsewhere, and
        ``None`` keeps the program's dtypes (``precisions=None`` means ``(None,)``).
      batch_sizes: re-trace at each batch (the leading dimension of the batched inputs, which the
        function must accept at any size) and keep, per pair, the batch best on the objective.
      batch: samples per call, when it is not the leading dimension of the batched input.
      batch_argnums: positional inputs whose leading dimension is the batch (default: the first
        input that is an array with at least one dimension; pytrees have every leaf resized).
      top: keep only the best ``top`` rows.
      calibration: a :class:`perfjax.calibrate.Calibration` or a path, applied to the devices of
        its family; ``None``: as ``predict`` (priors, or the saved host calibration for
        ``"host"``); ``False`` forces the priors.

    Returns:
      A :class:`Recommendation`: ``.rows`` ranked best first (each with its bound, utilisation,
      speed-ups against the best and the next row, and a one-line reason), ``.best``,
      ``.skipped``, ``.to_dataframe()``, ``.plot(path)``.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((4096, 4096), jnp.float32)
      >>> r = perfjax.recommend(perfjax.ops.matmul, (x, x), devices=["a100-80gb", "h100"])
      >>> (r.best.device, r.best.precision, r.best.bound)
      ('h100', 'int8', 'compute')
    """
    objective = _check_objective(objective)
    specs = _check_devices(devices)
    precs = _check_precisions(precisions)
    sizes = _check_batch_sizes(batch_sizes)
    if top is not None and not _positive_int(top):
        raise InputError(f"top must be a positive integer or None, got {top!r}.")
    if batch is not None and not _positive_int(batch):
        raise InputError(f"batch must be a positive integer or None, got {batch!r}.")
    if batch is not None and sizes is not None:
        raise InputError(
            "pass either batch= (samples per call) or batch_sizes= (to try), not both."
        )
    calibration = load_calibration(calibration)

    fn, calls, batch = _calls(fn_or_program, inputs, objective, batch, sizes, batch_argnums)
    programs = _trace_all(fn, precs, calls)
    rows, skipped = _predict_all(specs, precs, calls, programs, calibration, objective)
    return _ranking(rows, skipped, precs, objective, top, sizes, batch)


def _calls(
    fn_or_program: Any, inputs: Any, objective: str, batch: int | None,
    sizes: tuple[int, ...] | None, batch_argnums: Any,
) -> tuple[Any, list[tuple[int, Any]], int | None]:  # fmt: skip
    """The function (or Program) to trace, the (batch, inputs) calls to try, and the batch."""
    fn, args = fn_or_program, inputs
    if isinstance(fn, str):
        fn = Program.from_stablehlo(fn)
    if isinstance(fn, Program):
        if fn.fn is not None and fn.example_inputs is not None:
            fn, args = fn.fn, fn.example_inputs
        elif sizes is not None:
            raise InputError(
                f"batch_sizes re-traces the program, but {fn.name!r} was read from StableHLO text; "
                "pass the JAX function and its inputs instead."
            )
    if not isinstance(fn, Program):
        args = check_inputs(args)
    argnums = () if isinstance(fn, Program) else _batch_argnums(args, batch_argnums)

    if batch is None and sizes is None:
        if argnums:
            batch = _leading_dim(args[argnums[0]], f"input {argnums[0]}")
        elif isinstance(fn, Program) and fn.in_types and fn.in_types[0].shape:
            batch = int(fn.in_types[0].shape[0])
        elif objective == "latency":
            batch = 1
        else:
            raise InputError(
                f"cannot tell the batch size for objective={objective!r}: no positional input is "
                "an array with a leading dimension; pass batch=N."
            )
    if sizes is not None and not argnums:
        raise InputError(
            "batch_sizes needs an input with a leading batch dimension; none of the positional "
            "inputs is an array (pass batch_argnums= naming the batched inputs)."
        )
    calls = (
        [(batch, args)] if sizes is None else [(b, _with_batch(args, argnums, b)) for b in sizes]
    )

    return fn, calls, batch


def _trace_all(
    fn: Any, precs: Sequence[str | None], calls: list[tuple[int, Any]]
) -> dict[tuple, Program | str]:
    """One trace per (precision, batch), or the one-line reason it could not be made."""
    # A trace error is the user's, except that a program
    # read from text cannot be re-traced at a cast precision, and a cast JAX rejects is skipped.
    # Each predict() lowers the trace for its device's platform (cuda/rocm/tpu/cpu).
    programs: dict[tuple, Program | str] = {}
    for p in precs:
        for b, call_args in calls:
            try:
                programs[p, b] = program_for(fn, None if isinstance(fn, Program) else call_args, p)
            except Exception as e:
                # A precision JAX cannot trace the function at (e.g. an FFT in bf16) is skipped.
                if isinstance(e, PrecisionCastError) or (
                    isinstance(fn, Program) and isinstance(e, ValueError)
                ):
                    programs[p, b] = str(e).split("\n")[0]
                    continue
                if len(calls) > 1:
                    e.add_note(f"(perfjax.recommend: tracing at batch {b})")
                raise

    return programs


def _predict_all(
    specs: Sequence[DeviceSpec], precs: Sequence[str | None], calls: list[tuple[int, Any]],
    programs: Mapping[tuple, Program | str], calibration: Any, objective: str,
) -> tuple[list[dict[str, Any]], list[Skipped]]:  # fmt: skip
    """Every (device, precision) pair predicted at each batch, keeping its best batch; the
    pairs that cannot be predicted or do not fit in the device's memory, with why."""
    rows, skipped = [], []
    for spec in specs:
        cal = calibration
        if calibration is not None and calibration is not False:
            cal = calibration_for(spec, calibration, other_family="auto")
        for p in precs:
            why = _unsupported(spec, p)
            if why is not None:
                skipped.append(Skipped(spec.name, p, why))
                continue
            tried, too_big = [], []
            try:
                for b, _ in calls:
                    program = programs[p, b]
                    if isinstance(program, str):
                        raise InputError(program)
                    pred = _cached_predict(program, spec, p, cal)
                    if pred.fits is False:
                        too_big.append(Skipped(spec.name, p, _too_big(pred, spec), b))
                        continue
                    value = {
                        "latency": pred.time_s,
                        "throughput": b / pred.time_s if pred.time_s else math.inf,
                        "energy": pred.energy_j / b,
                    }[objective]
                    tried.append(dict(batch=b, pred=pred, value=value))
            except ValueError as e:
                skipped.append(Skipped(spec.name, p, str(e).split("\n")[0]))
                continue
            if too_big and (len(calls) > 1 or not tried):
                if len(calls) == 1:
                    too_big = [dataclasses.replace(too_big[0], batch=None)]
                skipped.extend(too_big)
            if not tried:
                continue
            best = min(tried, key=lambda t: _cost(objective, t["value"]))
            pred = best["pred"]
            rows.append(
                dict(
                    spec=spec,
                    precision=p,
                    batch=best["batch"],
                    pred=pred,
                    value=best["value"],
                    time_s=pred.time_s,
                    unit=_dominant_unit(pred),
                    tried=tried,
                )
            )
    if not rows:
        raise InputError(
            "no (device, precision) pair could be predicted: " + _skipped_summary(skipped) + "."
        )
    return rows, skipped


def _ranking(
    rows: list[dict[str, Any]], skipped: list[Skipped], precs: Sequence[str | None], objective: str,
    top: int | None, sizes: tuple[int, ...] | None, batch: int | None,
) -> Recommendation:  # fmt: skip
    """The rows ranked by the objective, each with the reasons for its rank."""
    order = {p: i for i, p in enumerate(precs)}
    rows.sort(key=lambda r: (_cost(objective, r["value"]), r["spec"].name, order[r["precision"]]))

    # reasons
    by_device: dict[str, dict[str | None, dict]] = {}
    for r in rows:
        by_device.setdefault(r["spec"].name, {})[r["precision"]] = r
    total = len(rows)
    keep = rows if top is None else rows[:top]
    out = []
    for i, r in enumerate(keep):
        nxt = rows[i + 1] if i + 1 < total else None
        ref = _reference(r, by_device[r["spec"].name])
        clauses = [_bound_clause(r["pred"], r["spec"])]
        if ref is not None:
            clauses.append(_precision_clause(r, ref, objective))
        if batch_clause := _batch_clause(r, objective):
            clauses.append(batch_clause)
        if nxt is not None:
            clauses.append(_next_clause(r, nxt, objective))
        pred = r["pred"]
        b = r["batch"]
        out.append(
            RecommendationRow(
                rank=i + 1,
                device=r["spec"].name,
                family=r["spec"].family,
                precision=r["precision"],
                batch=b,
                time_s=pred.time_s,
                samples_per_s=b / pred.time_s if pred.time_s else math.inf,
                energy_j_per_sample=pred.energy_j / b,
                bound=pred.bottleneck,
                utilization=pred.utilization,
                unit=_short_unit(r["unit"]),
                vs_best=_better(objective, rows[0]["value"], r["value"]),
                vs_next=None if nxt is None else _better(objective, r["value"], nxt["value"]),
                reason="; ".join(clauses),
                interval_s=pred.interval_s,
                prediction=pred,
                peak_memory_bytes=pred.peak_memory_bytes,
            )
        )
    return Recommendation(
        program=rows[0]["pred"].program,
        objective=objective,
        rows=tuple(out),
        skipped=tuple(skipped),
        batch_sizes=sizes if sizes is not None else (int(batch),),
        truncated=total - len(keep),
    )


def _too_big(pred: Prediction, spec: DeviceSpec) -> str:
    """Why a prediction is not ranked: its peak memory against the device's (in GiB)."""
    need, have = pred.peak_memory_bytes or 0, spec.memory_bytes
    return f"does not fit: peak memory {need / 2**30:.3g} GiB > {have / 2**30:.3g} GiB"


def _cost(objective: str, value: float) -> float:
    """Smaller is better."""
    if OBJECTIVES[objective]:
        return 1.0 / value if value else math.inf
    return value


def _reference(row: dict, same_device: Mapping[str | None, dict]) -> dict | None:
    """The same device's row at the nearest wider precision (bf16 -> fp32, int8 -> bf16)."""
    p = row["precision"]
    if p is None:
        return None
    wider = [q for q in PRECISIONS[: PRECISIONS.index(p)] if q in same_device]
    return same_device[wider[-1]] if wider else None


__all__ = ["OBJECTIVES", "Recommendation", "RecommendationRow", "Skipped", "recommend"]
