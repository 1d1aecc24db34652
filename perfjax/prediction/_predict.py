"""``predict``, ``compare`` and ``sensitivity``: device models applied to a traced program."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.stages
import numpy as np

from perfjax._display import fmt_count, fmt_time, pyplot, render
from perfjax._dtypes import PRECISIONS, check_precision
from perfjax._errors import InputError, UnsupportedProgramError
from perfjax.devicemodels._calibration import (
    calibration_for,
    calibration_label,
    load_calibration,
    params_for,
)
from perfjax.devicemodels._catalog import device as get_device
from perfjax.devicemodels._catalog import devices as list_devices
from perfjax.devicemodels._common import KernelTimes
from perfjax.devicemodels._models import (
    dispatch_time,
    pack,
    pack_numpy,
    program_times_jit,
    resolve,
    total_time,
)
from perfjax.devicemodels._spec import DeviceSpec
from perfjax.fusion._kernels import KINDS, fusion_policy, kernels_for
from perfjax.lowering._graph import check_loop_trips
from perfjax.lowering._program import Program
from perfjax.lowering._staging import graph_for, program_for
from perfjax.prediction._memory import MemoryEstimate, estimate

_BOUNDS = ("compute", "memory", "launch")


def lowering_platform(device: str | DeviceSpec) -> tuple[str, tuple[str, ...]]:
    """The JAX platform a program is lowered for to be costed on ``device``, with notes.

    NVIDIA GPUs lower for ``cuda``, AMD GPUs for ``rocm`` (other GPUs for ``cuda``, XLA's GPU
    pipeline, with a note), TPUs for ``tpu``, CPUs and ``host`` for ``cpu``; NPUs have no JAX
    platform and are costed as lowered for ``cpu`` (with a note).

    Example:
      >>> lowering_platform("h100")[0], lowering_platform("mi300x")[0], lowering_platform("tpu-v4")[0]
      ('cuda', 'rocm', 'tpu')
    """
    spec = get_device(device)
    family, vendor = spec.family, (spec.vendor or "").strip().lower()
    if family == "gpu":
        if vendor in ("nvidia", ""):
            return "cuda", ()
        if vendor in ("amd", "ati"):
            return "rocm", ()
        return "cuda", (
            f"JAX has no lowering for {spec.vendor} GPUs: {spec.name} is costed on the program "
            "as JAX lowers it for CUDA (XLA's GPU pipeline).",
        )
    if family == "tpu":
        return "tpu", ()
    if family == "cpu":
        return "cpu", ()
    return "cpu", (
        f"JAX has no platform for {family.upper()}s: {spec.name} is costed on the program as JAX "
        "lowers it for the CPU (e.g. RNG as rolled loops, linalg as LAPACK calls).",
    )


def _check_fusion(fusion: str | None) -> None:
    # Checked before any device is tried (compare would list a bad name as every device's error).
    if fusion is not None:
        fusion_policy(fusion)


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelRow:
    """One kernel of a :class:`Prediction`: where it runs, its time and why.

    Fields read as attributes (``row.time_s``) or, like the mapping rows of earlier releases,
    by name (``row["time_s"]``, ``row.items()``).
    """

    kernel: str
    #: Kernel class: ``gemm``, ``conv``, ``elementwise``, ``reduce``, ``other``, ``collective``.
    kind: str
    #: The unit its main work runs on, as a label (``"tf32 tensor cores"``, ``"fp32 vector units"``).
    unit: str
    #: The precision that unit runs at (``"tf32"``, ``"bf16"`` ...), and whether it is the
    #: device's matrix unit (tensor cores, MXU, AMX, MAC array) rather than its vector units.
    unit_precision: str
    on_matrix_unit: bool
    #: Seconds per execution, and its parts.
    time_s: float
    compute_s: float
    memory_s: float
    launch_s: float
    bound: str
    utilization: float
    parallel_utilization: float
    flops: float
    bytes: float
    intensity: float
    executions: float
    #: Energy of all its executions.
    energy_j: float

    def __getitem__(self, name: str) -> Any:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Read like the mapping rows of earlier releases.
    def keys(self) -> tuple[str, ...]:
        return tuple(self.__dataclass_fields__)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.keys())

    def items(self) -> tuple[tuple[str, Any], ...]:
        return tuple((k, getattr(self, k)) for k in self.keys())


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted time of a program on a device, with a per-kernel breakdown.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((4096, 4096), jnp.bfloat16)
      >>> p = perfjax.predict(perfjax.ops.matmul, (x, x), device="h100")
      >>> p.bottleneck, 0.5 < p.utilization < 1.0
      ('compute', True)
    """

    program: str
    device: str
    family: str
    precision: str | None
    time_s: float
    energy_j: float
    #: Achieved FLOP/s over the peak of the unit each kernel runs on, time-weighted.
    utilization: float
    #: Share of the device's parallel units kept busy (SMs, cores, MXU rows), time-weighted.
    parallel_utilization: float
    #: The resource that binds most of the time: ``compute``, ``memory`` or ``launch``.
    bottleneck: str
    #: Share of time per bound.
    bound_shares: Mapping[str, float]
    kernels: tuple[KernelRow, ...] = dataclasses.field(repr=False)
    flops: float = 0.0
    bytes: float = 0.0
    #: Fixed cost of calling the program once: dispatch, and on CPUs the thread pool's wake-up
    #: and the handing over of its input and output arrays (part of ``time_s``, not of any
    #: kernel).
    dispatch_s: float = 0.0
    #: The calibration used (its name; "... (with <device>'s own factors)" where it was fitted on
    #: this device and applies that device's time factors); ``None``: published specs and priors.
    calibration: str | None = None
    #: (low, high) seconds from calibration residuals; ``None`` when uncalibrated.
    interval_s: tuple[float, float] | None = None
    spec: DeviceSpec | None = dataclasses.field(default=None, repr=False)
    #: The fusion policy the kernels were formed with (the family's, or ``predict(fusion=...)``).
    fusion: str = ""
    #: The JAX platform the program was costed as lowered for (``cuda``, ``rocm``, ``tpu``,
    #: ``cpu``; ``None``: a module read from text, as its exporter lowered it).
    platform: str | None = None
    #: What the reader must know about this number: the lowering used when it is not the
    #: device's own, loops whose trip count was not static, precision casts not applied ...
    notes: tuple[str, ...] = ()
    #: ``(op name, location)`` of ops without a cost rule, not counted (``on_unsupported="warn"``).
    unmodeled_ops: tuple[tuple[str, str], ...] = ()
    #: What ``time_s`` measures: ``"device"`` (kernel time, as a profiler sees it) or ``"host"``
    #: (an eager harness's synchronised wall time; ``predict(timing=...)``).
    timing: str = "device"
    #: Computes :attr:`memory` when first asked (predictions are made in tight loops).
    _memory_source: Callable[[], MemoryEstimate] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @functools.cached_property
    def memory(self) -> MemoryEstimate | None:
        """Peak memory of one call on one device, with its breakdown (parameters, optimizer
        state, other inputs, outputs, activations kept for the backward pass, temporaries);
        see :class:`MemoryEstimate`. Computed on first access; ``None`` when the prediction was
        not made from a program."""
        return self._memory_source() if self._memory_source is not None else None

    @property
    def peak_memory_bytes(self) -> int | None:
        """Per-device peak memory of one call (``memory.peak_bytes``).

        Example:
          >>> import jax, jax.numpy as jnp, perfjax
          >>> x = jax.ShapeDtypeStruct((4096, 4096), jnp.bfloat16)
          >>> p = perfjax.predict(perfjax.ops.matmul, (x, x), device="h100")
          >>> p.peak_memory_bytes // 2**20, p.fits  # MiB: two inputs, one output
          (96, True)
        """
        return self.memory.peak_bytes if self.memory is not None else None

    @property
    def fits(self) -> bool | None:
        """Whether the peak memory fits in the device's memory (``DeviceSpec.memory_bytes``);
        ``None`` when the capacity or the peak is unknown."""
        if self.memory is None or self.spec is None:
            return None
        return self.memory.fits(self.spec.memory_bytes)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(
            [r.to_dict() for r in self.kernels], columns=list(KernelRow.__dataclass_fields__)
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(
            program=self.program, device=self.device, family=self.family, precision=self.precision,
            time_s=self.time_s, energy_j=self.energy_j, utilization=self.utilization,
            parallel_utilization=self.parallel_utilization, bottleneck=self.bottleneck,
            bound_shares=dict(self.bound_shares), flops=self.flops, bytes=self.bytes, num_kernels=len(self.kernels),
            calibration=self.calibration, interval_s=self.interval_s, fusion=self.fusion,
            platform=self.platform, notes=list(self.notes), unmodeled_ops=[list(u) for u in self.unmodeled_ops],
            timing=self.timing, peak_memory_bytes=self.peak_memory_bytes, fits=self.fits,
        )  # fmt: skip

    def table(self, max_rows: int = 25):
        from rich.console import Group
        from rich.table import Table

        head = Table(
            title=f"perfjax.predict: {self.program} on {self.device}", show_header=False, box=None
        )
        head.add_column(style="bold")
        head.add_column()
        head.add_row("time", fmt_time(self.time_s))
        head.add_row(
            "bottleneck",
            f"{self.bottleneck} ("
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in self.bound_shares.items())
            + " of time)",
        )
        head.add_row(
            "utilization",
            f"{100 * self.utilization:.1f}% of peak; parallel units "
            f"{100 * self.parallel_utilization:.0f}% busy",
        )
        head.add_row("energy", f"{self.energy_j:.3g} J")
        head.add_row(
            "work",
            f"{fmt_count(self.flops)}FLOP, {fmt_count(self.bytes)}B across kernel boundaries",
        )
        if self.memory is not None:
            head.add_row("peak memory", _memory_line(self.memory, self.spec))
        head.add_row("calibration", self.calibration or "none (published specs and priors)")
        if self.fusion and self.fusion != self.family:
            head.add_row("fusion", f"{self.fusion} policy (not the {self.family} compiler's)")
        if self.platform:
            head.add_row("lowered for", self.platform)
        for note in self.notes:
            head.add_row("note", note)
        if self.unmodeled_ops:
            names = sorted({n for n, _ in self.unmodeled_ops})
            head.add_row(
                "not counted",
                f"{len(self.unmodeled_ops)} ops without a cost rule: {', '.join(names)}",
            )
        t = Table(
            title=f"kernels (slowest {min(max_rows, len(self.kernels))} of {len(self.kernels)})"
        )
        for col in (
            "kernel",
            "kind",
            "runs on",
            "time",
            "bound",
            "util",
            "FLOP",
            "bytes",
            "FLOP/B",
        ):
            t.add_column(
                col, justify="left" if col in ("kernel", "kind", "runs on", "bound") else "right"
            )
        ranked = sorted(self.kernels, key=lambda r: -r.time_s * r.executions)[:max_rows]
        for r in ranked:
            t.add_row(
                r.kernel,
                r.kind,
                r.unit,
                fmt_time(r.time_s * r.executions),
                r.bound,
                f"{100 * r.utilization:.0f}%",
                fmt_count(r.flops),
                fmt_count(r.bytes),
                f"{r.intensity:.3g}",
            )
        return Group(head, t)

    def __str__(self) -> str:

        return render(self.table())

    def plot_roofline(self, path: str) -> str:
        """Writes a roofline PNG: kernels at (intensity, achieved FLOP/s) under the device's roofs."""

        plt = pyplot()

        rows = [r for r in self.kernels if r.flops > 0 and r.bytes > 0]
        fig, ax = plt.subplots(figsize=(7, 5))
        spec = self.spec
        xs = np.logspace(-2, 4, 200)
        if spec is not None:
            bw = spec.memory_bytes_per_s
            used = {r.unit_precision for r in self.kernels}
            peaks = [
                ("matrix", p, float(v)) for p, v in spec.matrix_flops_per_s.items() if p in used
            ]
            peaks += [
                ("vector", p, float(v))
                for p, v in spec.vector_flops_per_s.items()
                if p in used or p == "fp32"
            ]
            for u, p, v in peaks:
                ax.plot(xs, np.minimum(v, bw * xs), lw=1, label=f"{p} {u} roof")
        colors = {"compute": "tab:red", "memory": "tab:blue", "launch": "tab:gray"}
        for bound in _BOUNDS:
            sel = [r for r in rows if r.bound == bound]
            if sel:
                ax.scatter([r.intensity for r in sel], [r.flops / r.time_s for r in sel],
                           s=[10 + 200 * r.time_s * r.executions / self.time_s for r in sel],
                           c=colors[bound], alpha=0.7, label=f"{bound}-bound kernels")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP / byte)")
        ax.set_ylabel("achieved FLOP/s")
        ax.set_title(f"{self.program} on {self.device}: {self.time_s * 1e3:.3g} ms predicted")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _memory_line(memory: MemoryEstimate, spec: DeviceSpec | None) -> str:
    """``"1.2 GB (fits in 80 GB)"``, with the largest parts of the peak."""
    parts = sorted(memory.breakdown.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k.replace('_', ' ')} {fmt_count(v)}B" for k, v in parts[:3] if v > 0)
    line = f"{fmt_count(memory.peak_bytes)}B per device ({shown})"
    capacity = spec.memory_bytes if spec is not None else 0
    if capacity:
        verb = "fits in" if memory.peak_bytes <= capacity else "does NOT fit in"
        line += f"; {verb} {fmt_count(capacity)}B"
    return line


def _evaluate(
    program: Program,
    spec: DeviceSpec,
    precision: str | None,
    params: Mapping | None,
    fusion: str | None = None,
    graph_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    kernels = kernels_for(program, spec.family, fusion, **(graph_options or {}))
    res = resolve(kernels, spec, precision)
    params = params_for(spec, None, params)
    arrays = kernels.arrays()
    if len(kernels) == 0:
        out = {k: np.zeros(0) for k in KernelTimes._fields}
        overhead = float(dispatch_time(params))
    else:
        n = len(kernels)
        arrays, res_arrays = _pad_kernels(arrays, n), _pad_kernels(res.arrays(), n)
        times, overhead = program_times_jit(
            arrays, pack_numpy(spec), params, res_arrays, spec.family
        )
        overhead = float(overhead)
        out = {k: np.asarray(v, np.float64)[:n] for k, v in times._asdict().items()}
    return dict(kernels=kernels, res=res, out=out, dispatch_s=overhead)


def _pad_kernels(arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Pads the kernel axis to a power of two (at least 16) with copies of the first kernel that
    execute zero times, so the compiled model is reused across programs of similar size instead
    of recompiled for every kernel count."""
    size = max(16, 1 << (n - 1).bit_length())
    out = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        out[k] = np.concatenate([v, np.repeat(v[:1], size - n, axis=0)]) if size > n else v
    if "executions" in out and size > n:
        out["executions"] = out["executions"].copy()
        out["executions"][n:] = 0
    return out


def predict(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    *,
    device: str | DeviceSpec,
    precision: str | None = None,
    calibration: Any = None,
    params: Mapping[str, Any] | None = None,
    fusion: str | None = None,
    on_unsupported: str = "error",
    loop_trips: int | None = None,
    timing: str = "device",
) -> Prediction:
    """Predicts how long ``fn_or_program`` takes on ``device``, and why.

    The program is costed as JAX lowers it for the device's platform (NVIDIA GPUs: ``cuda``, AMD
    GPUs: ``rocm``, TPUs: ``tpu``, CPUs: ``cpu``), not as it lowers for this machine: threefry
    RNG is a rolled loop on CPU only, linalg calls LAPACK on CPU and cuSOLVER on CUDA. NPUs have
    no JAX platform and use the CPU lowering; a program JAX cannot lower for the device's platform
    (a host callback, a CPU-only custom call) falls back to the CPU lowering. Both are stated in
    ``Prediction.notes``, as are loops whose trip count is not static (also a ``UserWarning``).

    Args:
      fn_or_program: a JAX function (with ``inputs``), a traced :class:`Program` (works without
        allocating anything: inputs may be ``jax.ShapeDtypeStruct``), or StableHLO text/path.
      inputs: positional arguments when a function is given.
      device: a catalog name (``perfjax.devices()``), an alias, ``"host"``, or a ``DeviceSpec``.
      precision: ``None`` keeps the program's dtypes (an fp32 dot with DEFAULT precision runs as
        TF32 on Ampere+ tensor cores and as one bf16 pass on TPUs, as XLA does); ``fp32``,
        ``bf16``, ``fp16``, ``fp64`` re-trace with floating inputs cast; ``int8``, ``fp8``,
        ``int4`` run every GEMM/conv at that precision with bf16 elsewhere (a quantized
        deployment).
      calibration: a :class:`perfjax.calibrate.Calibration` or the path of a saved one; ``None``
        uses the host calibration saved in the user's cache directory for ``device="host"`` (see
        ``perfjax.calibrate.host_calibration_path``), else the family's priors; ``False`` forces
        the priors. A calibrated prediction carries ``interval_s``.
      params: correction parameters (overrides ``calibration``).
      fusion: how ops are grouped into kernels: ``None`` as the device family's compiler does
        (XLA); ``"eager"`` as an eager framework runs the program (PyTorch without
        ``torch.compile``: every elementwise op a kernel, softmax and layer norm one kernel
        each); ``"none"`` one kernel per op; or another family's policy
        (``perfjax.fusion.POLICIES``).
      on_unsupported: ``"error"`` (default) raises :class:`perfjax.UnsupportedOpError` for ops
        without a cost rule; ``"warn"`` warns, costs them as zero and lists them in
        ``Prediction.unmodeled_ops``.
      loop_trips: the trip count of every while loop whose count is not static (bounded by a
        traced value); ``None`` counts such a body once, with a note and a warning.
      timing: what the time means. ``"device"`` (default): the device's busy time from the first
        kernel's start to the last one's end, as a kernel profiler (CUPTI, XProf) sees a compiled
        program, launches between kernels included. ``"host"``: the wall time an eager harness
        sees on the host for one synchronised call, where every kernel is dispatched from Python:
        each kernel costs at least the host's per-op dispatch, plus one synchronisation
        (:func:`host_timing`; from the calibration's fitted harness costs where it has them).

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((1 << 24,), jnp.float32)
      >>> perfjax.predict(lambda a: a * 2.0, (x,), device="a100-80gb").bottleneck
      'memory'
      >>> f = lambda a: jnp.tanh(a * 2.0 + 1.0)
      >>> eager = perfjax.predict(f, (x,), device="a100-80gb", fusion="eager")
      >>> eager.time_s > perfjax.predict(f, (x,), device="a100-80gb").time_s  # 3 kernels, not 1
      True
    """
    check_precision(precision)
    _check_fusion(fusion)
    _check_timing(timing)
    options = _graph_options(on_unsupported, loop_trips)
    spec = get_device(device)
    platform, notes = lowering_platform(spec)
    program = program_for(fn_or_program, inputs, precision, platform)
    cal = calibration_for(spec, calibration)
    pred = _predict_program(program, spec, precision, cal, params, fusion, notes=notes, **options)
    return pred if timing == "device" else as_host_timed(pred, cal)


def memory_estimate(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    *,
    device: str | DeviceSpec,
    precision: str | None = None,
    fusion: str | None = None,
    on_unsupported: str = "error",
    loop_trips: int | None = None,
) -> MemoryEstimate:
    """Peak memory of one call of ``fn_or_program`` on one ``device``, with its breakdown.

    The program is lowered and fused as :func:`predict` does for the device (the same kernels),
    then its buffers are followed through the kernel order (see :class:`MemoryEstimate`):
    arguments, outputs (less the donated buffers they reuse, ``donate_argnums``) and the largest
    set of intermediates live at once (loops, remat and in-place updates respected).
    ``predict(...).memory`` gives the same estimate.

    Args:
      fn_or_program, inputs, device, precision, fusion, on_unsupported, loop_trips: as in
        :func:`predict`.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> w = jax.ShapeDtypeStruct((1024, 1024), jnp.float32)
      >>> step = jax.jit(lambda w, x: w - 0.1 * x.T @ jnp.tanh(x @ w), donate_argnums=0)
      >>> m = perfjax.prediction.memory_estimate(step, (w, jax.ShapeDtypeStruct((64, 1024), jnp.float32)), device="h100")
      >>> m.parameters_bytes // 2**20, m.outputs_bytes, m.aliased_bytes // 2**20  # MiB; w updated in place
      (4, 0, 4)
    """
    check_precision(precision)
    _check_fusion(fusion)
    options = _graph_options(on_unsupported, loop_trips)
    spec = get_device(device)
    platform, _ = lowering_platform(spec)
    program = program_for(fn_or_program, inputs, precision, platform)
    graph = graph_for(program, **options)
    return estimate(program, graph, kernels_for(program, spec.family, fusion, **options))


TIMINGS = ("device", "host")

#: An eager harness's costs on the host when no calibration gives them: Python dispatch of one
#: op (PyTorch/JAX eager op dispatch is ~5-20 us; assumed 10 us) and one synchronisation.
_HOST_TIMING_PRIORS = {
    "gpu": dict(per_kernel_s=10e-6, per_call_s=10e-6),
    "tpu": dict(per_kernel_s=20e-6, per_call_s=30e-6),
    "npu": dict(per_kernel_s=50e-6, per_call_s=50e-6),
    "cpu": dict(per_kernel_s=2e-6, per_call_s=2e-6),
}


def _check_timing(timing: str) -> None:
    if timing not in TIMINGS:
        raise InputError(f"timing must be one of {TIMINGS}, got {timing!r}.")


def host_timing(spec: DeviceSpec | str, calibration: Any = None) -> dict[str, float]:
    """Per-kernel and per-call host costs of an eager, synchronised harness on ``spec``.

    From ``calibration.metadata["host_timing"]`` where the calibration fitted them (the shipped
    GPU calibration does, on NeuSight's PyTorch timings), else priors.

    Example:
      >>> sorted(host_timing("h100", calibration=False))
      ['per_call_s', 'per_kernel_s', 'source']
    """
    spec = get_device(spec)
    cal = calibration_for(spec, calibration)
    fitted = cal.metadata.get("host_timing") if cal is not None else None
    if isinstance(fitted, Mapping) and {"per_kernel_s", "per_call_s"} <= set(fitted):
        return dict(per_kernel_s=float(fitted["per_kernel_s"]), per_call_s=float(fitted["per_call_s"]),
                    source=str(fitted.get("source", cal)))  # fmt: skip
    return dict(**_HOST_TIMING_PRIORS[spec.family], source="prior (assumed eager dispatch costs)")


def as_host_timed(pred: Prediction, calibration: Any = None) -> Prediction:
    """``pred`` (device time) as an eager, synchronised host harness sees it: every kernel costs
    at least the per-kernel dispatch (the host issues kernels no faster), plus one per-call cost."""
    spec = pred.spec if pred.spec is not None else get_device(pred.device)
    costs = host_timing(spec, calibration if calibration is not None else False)
    per_kernel, per_call = costs["per_kernel_s"], costs["per_call_s"]
    kernel_s = np.array([r.time_s for r in pred.kernels])
    execs = np.array([r.executions for r in pred.kernels])
    host_kernels = float(np.sum(np.maximum(kernel_s, per_kernel) * execs))
    time_s = host_kernels + max(pred.dispatch_s, per_call)
    scale = time_s / pred.time_s if pred.time_s > 0 else 1.0
    interval = None
    if pred.interval_s is not None:
        interval = (pred.interval_s[0] * scale, pred.interval_s[1] * scale)
    note = (f"timing='host': {1e6 * per_kernel:.3g} us per kernel dispatched and {1e6 * per_call:.3g} us "
            f"per call ({costs['source']}); device time {pred.time_s:.4g} s.")  # fmt: skip
    return dataclasses.replace(pred, time_s=time_s, interval_s=interval, timing="host",
                               notes=(*pred.notes, note))  # fmt: skip


def _graph_options(on_unsupported: str, loop_trips: Any) -> dict[str, Any]:
    if on_unsupported not in ("error", "warn"):
        raise InputError(f"on_unsupported must be 'error' or 'warn', got {on_unsupported!r}.")
    return dict(on_unsupported=on_unsupported, loop_trips=check_loop_trips(loop_trips))


def _predict_program(
    program: Program,
    spec: DeviceSpec,
    precision: str | None,
    cal: Any,
    params: Any = None,
    fusion: str | None = None,
    *,
    notes: tuple[str, ...] = (),
    on_unsupported: str = "error",
    loop_trips: int | None = None,
) -> Prediction:
    params = params_for(spec, cal, params)
    options = dict(on_unsupported=on_unsupported, loop_trips=loop_trips)
    graph = graph_for(program, **options)
    ev = _evaluate(program, spec, precision, params, fusion, options)
    pred = _prediction(program, spec, precision, ev, cal)
    all_notes = (*notes, *program.notes, *graph.notes)
    if graph.assumed_loops:
        all_notes += (
            f"loop_trips={graph.loop_trips}: {graph.assumed_loops} while loop(s) without a static "
            "trip count counted that many times.",
        )
    pred = dataclasses.replace(
        pred, platform=program.platform, notes=all_notes, unmodeled_ops=graph.unmodeled_ops,
        _memory_source=functools.partial(estimate, program, graph, ev["kernels"]),
    )  # fmt: skip
    for note in graph.notes:
        warnings.warn(
            f"perfjax.predict({program.name}, {spec.name}): {note}", UserWarning, stacklevel=3
        )
    if graph.unmodeled_ops:
        kinds = sorted({n for n, _ in graph.unmodeled_ops})
        warnings.warn(
            f"perfjax.predict({program.name}, {spec.name}): {len(graph.unmodeled_ops)} op(s) without "
            f"a cost rule are not counted: {', '.join(kinds)} (listed in Prediction.unmodeled_ops).",
            UserWarning,
            stacklevel=3,
        )
    if cal is not None:
        pred = dataclasses.replace(
            pred, interval_s=cal.interval(pred.time_s, spec.name, _dominant_class(pred))
        )
    return pred


def _dominant_class(pred: Prediction) -> str | None:
    """The kernel class that takes most of a prediction's time (``gemm``, ``conv``, ...)."""
    shares: dict[str, float] = {}
    for r in pred.kernels:
        shares[r.kind] = shares.get(r.kind, 0.0) + r.time_s * r.executions
    return max(shares, key=shares.get) if shares else None


def _prediction(
    program: Program, spec: DeviceSpec, precision: str | None, ev: dict, calibration: Any
) -> Prediction:
    kernels, res, out = ev["kernels"], ev["res"], ev["out"]
    execs = kernels.executions
    times = out["time_s"] * execs
    kernel_total = float(times.sum())
    total = kernel_total + ev["dispatch_s"]
    parts = np.stack([out["compute_s"], out["memory_s"], out["launch_s"]])
    bound_idx = parts.argmax(axis=0) if len(kernels) else np.zeros(0, int)
    # Shares of kernel time (the program's dispatch is reported apart, in dispatch_s).
    shares = {
        b: float(times[bound_idx == i].sum() / kernel_total) if kernel_total > 0 else 0.0
        for i, b in enumerate(_BOUNDS)
    }
    flops = kernels.matrix_flops + kernels.vector_flops
    bytes_ = kernels.bytes * res.bytes_scale
    bad = ~np.isfinite(out["time_s"]) | (out["time_s"] < 0)
    if bad.any():
        names = [kernels.names[i] for i in np.flatnonzero(bad)[:5]]
        raise UnsupportedProgramError(
            f"the {spec.family} model gave a non-finite or negative time for {int(bad.sum())} kernel(s) "
            f"of {program.name} on {spec.name} (first: {', '.join(names)}); this is a perfjax bug, "
            "please report it with the program."
        )
    # A kernel that does no work (zero-size arrays) has no utilisation (0, not 0/0).
    busy = np.where(np.isfinite(out["utilization"]), np.clip(out["utilization"], 0.0, 1.0), 0.0)
    util = float((busy * times).sum() / total) if total > 0 else 0.0
    par = np.where(np.isfinite(out["parallel_util"]), np.clip(out["parallel_util"], 0.0, 1.0), 0.0)
    par_util = float((par * times).sum() / total) if total > 0 else 0.0
    rows = tuple(
        KernelRow(
            kernel=kernels.names[i], kind=KINDS[kernels.kind[i]], unit=res.labels[i],
            unit_precision=PRECISIONS[int(res.precision[i])], on_matrix_unit=bool(res.unit[i] == 0),
            time_s=float(out["time_s"][i]),
            compute_s=float(out["compute_s"][i]), memory_s=float(out["memory_s"][i]),
            launch_s=float(out["launch_s"][i]), bound=_BOUNDS[bound_idx[i]], utilization=float(busy[i]),
            parallel_utilization=float(par[i]), flops=float(flops[i]), bytes=float(bytes_[i]),
            intensity=_intensity(flops[i], bytes_[i]), executions=float(execs[i]),
            energy_j=float(out["energy_j"][i] * execs[i]),
        )
        for i in range(len(kernels))
    )  # fmt: skip
    return Prediction(
        program=program.name, device=spec.name, family=spec.family, precision=precision, time_s=total,
        energy_j=float((out["energy_j"] * execs).sum()), utilization=util, parallel_utilization=par_util,
        bottleneck=max(shares, key=shares.get) if kernel_total > 0 else "launch", bound_shares=shares, kernels=rows,
        flops=float((flops * execs).sum()), bytes=float((bytes_ * execs).sum()),
        dispatch_s=float(ev["dispatch_s"]),
        calibration=calibration_label(calibration, spec), spec=spec, fusion=kernels.policy,
    )  # fmt: skip


def _intensity(flops: float, bytes_: float) -> float:
    """FLOP per byte: ``inf`` for compute on no memory traffic, 0 for a kernel with no work."""
    if bytes_ > 0:
        return float(flops / bytes_)
    return math.inf if flops > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

#: Devices compared when none are named: one or two per family.
DEFAULT_COMPARE = ("v100", "a100-80gb", "h100", "h200", "l4", "mi300x", "tpu-v4", "tpu-v5e", "tpu-v6e", "xeon-8480",
                   "epyc-9654", "apple-m2", "host")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Predictions of one program on several devices."""

    program: str
    precision: str | None
    predictions: tuple[Prediction, ...]
    #: device -> why it could not be predicted (e.g. a precision it lacks).
    errors: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dataframe(self):
        import pandas as pd

        rows = [p.to_dict() for p in self.predictions]
        rows += [dict(device=d, error=e) for d, e in self.errors.items()]
        return pd.DataFrame(rows)

    def fastest(self) -> Prediction:
        return min(self.predictions, key=lambda p: p.time_s)

    def table(self):
        from rich.table import Table

        t = Table(
            title=f"perfjax.compare: {self.program}"
            + (f" at {self.precision}" if self.precision else "")
        )
        for col in (
            "device",
            "family",
            "time",
            "vs fastest",
            "bottleneck",
            "util",
            "parallel",
            "energy",
        ):
            t.add_column(
                col, justify="left" if col in ("device", "family", "bottleneck") else "right"
            )
        best = self.fastest().time_s if self.predictions else 1.0
        for p in sorted(self.predictions, key=lambda p: p.time_s):
            t.add_row(
                p.device,
                p.family,
                fmt_time(p.time_s),
                f"{p.time_s / best:.2f}x",
                p.bottleneck,
                f"{100 * p.utilization:.0f}%",
                f"{100 * p.parallel_utilization:.0f}%",
                f"{p.energy_j:.3g} J",
            )
        for d, e in self.errors.items():
            t.add_row(d, "", "-", "-", f"not predicted: {e}", "", "", "")
        return t

    def __str__(self) -> str:

        return render(self.table())

    def plot(self, path: str) -> str:
        """Bar chart of predicted time per device (log scale), coloured by bottleneck."""

        plt = pyplot()

        preds = sorted(self.predictions, key=lambda p: p.time_s)
        colors = {"compute": "tab:red", "memory": "tab:blue", "launch": "tab:gray"}
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(preds) + 2), 4.5))
        ax.bar([p.device for p in preds], [p.time_s * 1e3 for p in preds],
               color=[colors[p.bottleneck] for p in preds])  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylabel("predicted time (ms)")
        ax.set_title(f"{self.program}" + (f" ({self.precision})" if self.precision else ""))
        ax.tick_params(axis="x", rotation=60)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
        ax.legend(handles, [f"{k}-bound" for k in colors], fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def compare(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    devices: Sequence[str | DeviceSpec] | str | None = None,
    *,
    precision: str | None = None,
    calibration: Any = None,
    fusion: str | None = None,
    on_unsupported: str = "error",
    loop_trips: int | None = None,
) -> Comparison:
    """Predicts one program on several devices (``devices="all"`` for the whole catalog).

    A device that cannot run the program (e.g. fp8 on a V100) is listed in ``errors``. Each
    device uses the calibration :func:`predict` would use by default; ``calibration=False``
    forces the priors everywhere, and a given calibration applies to the devices of its family.
    ``fusion``, ``on_unsupported`` and ``loop_trips`` as in :func:`predict` (``None``: each
    device family's own policy). The program is lowered once per platform the devices need
    (``cuda``, ``rocm``, ``tpu``, ``cpu``), as :func:`predict` lowers it.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((2048, 2048), jnp.bfloat16)
      >>> c = perfjax.compare(perfjax.ops.matmul, (x, x), ["a100-80gb", "h100"])
      >>> c.fastest().device
      'h100'
    """
    check_precision(precision)
    _check_fusion(fusion)
    if devices is None:
        devices = DEFAULT_COMPARE
    elif devices == "all":
        devices = list_devices()
    elif isinstance(devices, (str, DeviceSpec)):
        devices = [devices]
    options = _graph_options(on_unsupported, loop_trips)
    specs = [get_device(d) for d in devices]
    calibration = load_calibration(calibration)
    # One lowering per platform (program_for's cache also covers unhashable functions here).
    programs: dict[str, Program] = {}
    name = None
    preds, errors = [], {}
    for spec in specs:
        platform, notes = lowering_platform(spec)
        if platform not in programs:
            programs[platform] = program_for(fn_or_program, inputs, precision, platform)
        program = programs[platform]
        name = name or program.name
        try:
            # A given calibration serves its own family; other devices keep their defaults.
            cal = calibration_for(spec, calibration, other_family="auto")
            preds.append(
                _predict_program(
                    program, spec, precision, cal, fusion=fusion, notes=notes, **options
                )
            )
        except ValueError as e:
            errors[spec.name] = str(e)
    return Comparison(
        program=name or "", precision=precision, predictions=tuple(preds), errors=errors
    )


# ---------------------------------------------------------------------------------------------
# sensitivity
# ---------------------------------------------------------------------------------------------

_grad_cache: dict[str, Callable] = {}


def _time_and_grad(family: str) -> Callable:
    if family not in _grad_cache:

        def f(spec, arrays, params, res):
            return total_time(arrays, pack(spec), params, res, family)

        _grad_cache[family] = jax.jit(jax.value_and_grad(f))
    return _grad_cache[family]


def spec_gradient(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    *,
    device: str | DeviceSpec,
    precision: str | None = None,
    calibration: Any = None,
    loop_trips: int | None = None,
) -> tuple[float, DeviceSpec]:
    """Predicted time and its gradient with respect to every numeric field of the spec.

    The program is lowered for the device's platform, as :func:`predict` does; ``loop_trips`` as
    in :func:`predict`.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((1 << 22,), jnp.float32)
      >>> t, g = spec_gradient(lambda a: a + 1.0, (x,), device="h100")
      >>> float(g.memory_bytes_per_s) < 0  # more bandwidth, less time
      True
    """
    check_precision(precision)
    spec = get_device(device)
    loop_trips = check_loop_trips(loop_trips)
    program = program_for(fn_or_program, inputs, precision, lowering_platform(spec)[0])
    kernels = kernels_for(program, spec.family, loop_trips=loop_trips)
    res = resolve(kernels, spec, precision)
    cal = calibration_for(spec, calibration)
    params = params_for(spec, cal)
    t, g = _time_and_grad(spec.family)(spec, kernels.arrays(), params, res.arrays())
    return float(t), g


def sensitivity(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    device: str | DeviceSpec = "h100",
    *,
    precision: str | None = None,
    calibration: Any = None,
    loop_trips: int | None = None,
) -> dict[str, float]:
    """Elasticities ``d log(time) / d log(field)`` for every numeric spec field, via ``jax.grad``.

    ``-1`` means time is inversely proportional to the field (fully bound by it); ``0`` means
    it does not matter. Peaks appear as ``matrix_flops_per_s.bf16`` etc. ``calibration`` and
    ``loop_trips`` as in :func:`predict` (by default the same calibration ``predict`` uses); the
    program is lowered for the device's platform.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((1 << 24,), jnp.float32)
      >>> e = perfjax.sensitivity(lambda a: a * 2.0, (x,), "h100")
      >>> e["memory_bytes_per_s"] < -0.8
      True
    """
    spec = get_device(device)
    t, g = spec_gradient(
        fn_or_program, inputs, device=spec, precision=precision, calibration=calibration,
        loop_trips=loop_trips,
    )  # fmt: skip
    out: dict[str, float] = {}
    for name, value in spec.numeric_fields().items():
        grad = getattr(g, name)
        if isinstance(value, Mapping):
            for p, v in value.items():
                if float(v):
                    out[f"{name}.{p}"] = float(grad[p]) * float(v) / t
        elif float(value):
            out[name] = float(grad) * float(value) / t
    return dict(sorted(out.items(), key=lambda kv: kv[1]))
