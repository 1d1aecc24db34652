"""Device specifications: published facts about a device, as a frozen pytree dataclass.

Numeric fields are pytree leaves, so ``jax.grad`` of a predicted time with respect to a
``DeviceSpec`` returns a ``DeviceSpec`` of gradients. Descriptive fields (name, family, source
...) are static metadata. Units are in the field names.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from perfjax._dtypes import PRECISIONS
from perfjax._errors import DeviceSpecError
from perfjax._io import read_mapping

#: Device families, each with its own model.
FAMILIES = ("gpu", "tpu", "cpu", "npu")


def _static(**kw: Any) -> Any:
    return dataclasses.field(metadata=dict(static=True), **kw)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """Published figures for one device (dense peaks, no sparsity). See ``perfjax.devices()``.

    Example:
      >>> spec = DeviceSpec(name="toy", family="gpu", matrix_flops_per_s={"bf16": 1e12},
      ...                   vector_flops_per_s={"fp32": 1e11}, memory_bytes_per_s=1e11)
      >>> spec.peak_flops_per_s("bf16")
      1000000000000.0
    """

    name: str = _static()
    family: str = _static()
    #: Peak of the matrix unit (tensor cores, MXU, AMX, NPU MAC array) per precision.
    matrix_flops_per_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: Peak of the vector / SIMD units per precision.
    vector_flops_per_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: Main memory (HBM / DRAM) bandwidth and capacity.
    memory_bytes_per_s: float = 0.0
    memory_bytes: float = 0.0
    #: Last on-chip cache level (GPU L2, TPU VMEM/CMEM, CPU L3, NPU SRAM) size and bandwidth.
    cache_bytes: float = 0.0
    cache_bytes_per_s: float = 0.0
    #: Parallel units: SMs / CUs (GPU), TensorCores (TPU), cores (CPU), MAC tiles (NPU).
    num_cores: float = 1.0
    clock_hz: float = 1e9
    #: Fixed cost per kernel: GPU launch, TPU step overhead, CPU dispatch.
    launch_overhead_s: float = 5e-6
    #: Board power (TDP) and idle power.
    tdp_w: float = 0.0
    idle_w: float = 0.0
    #: Manufacturing process (nm, the foundry's node name): GPUs whose published peak needs more
    #: power than the board may draw run slower (see the GPU model's power cap). 0 = not modelled.
    process_nm: float = 0.0
    #: Link to the host (PCIe / USB): used for weight streaming on edge devices.
    host_link_bytes_per_s: float = 16e9
    #: Matrix unit tile: TPU MXU side (128 or 256); GPU/CPU GEMM tile edge used for padding waves.
    matrix_tile: int = _static(default=128)
    vendor: str = _static(default="")
    description: str = _static(default="")
    source: str = _static(default="", repr=False)
    aliases: tuple[str, ...] = _static(default=())
    #: True where ``memory_bytes_per_s`` is an estimate, not a published figure (this machine's
    #: CPU, ``"host"``): a calibration of the CPU model measures it (``bandwidth_log``).
    #: :meth:`replace` with a new ``memory_bytes_per_s`` clears it.
    memory_bandwidth_estimated: bool = _static(default=False, repr=False)

    # ---- queries --------------------------------------------------------------------------

    def precisions(self) -> tuple[str, ...]:
        """Precisions with a published peak on either unit, widest first."""
        have = set(self.matrix_flops_per_s) | set(self.vector_flops_per_s)
        return tuple(p for p in PRECISIONS if p in have)

    def peak_flops_per_s(self, precision: str) -> float:
        """The best peak for ``precision`` over both units; raises if the device lacks it."""
        vals = [
            u[precision]
            for u in (self.matrix_flops_per_s, self.vector_flops_per_s)
            if precision in u
        ]
        if not vals:
            raise DeviceSpecError(
                f"device {self.name!r} has no published {precision} peak; it supports "
                f"{', '.join(self.precisions())}."
            )
        return max(float(v) for v in vals)

    @property
    def ridge_flops_per_byte(self) -> float:
        """Roofline ridge point at the best floating-point peak of 16 bits or more (bf16/fp16 on
        accelerators, fp32 on most CPUs): the intensity a kernel needs to be compute-bound."""
        floats = ("bf16", "fp16", "tf32", "fp32", "fp64")
        best = max((float(v) for u in (self.matrix_flops_per_s, self.vector_flops_per_s)
                    for p, v in u.items() if p in floats), default=0.0)  # fmt: skip
        if not best:
            best = max(
                float(v)
                for u in (self.matrix_flops_per_s, self.vector_flops_per_s)
                for v in u.values()
            )
        return best / self.memory_bytes_per_s if self.memory_bytes_per_s else math.inf

    def numeric_fields(self) -> dict[str, Any]:
        """Field name -> value for every differentiable (non-static) field."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.metadata.get("static", False)
        }

    def replace(self, **changes: Any) -> DeviceSpec:
        """A copy with some fields changed (validated).

        Example:
          >>> import perfjax
          >>> faster = perfjax.device("h100").replace(memory_bytes_per_s=6e12)
          >>> faster.memory_bytes_per_s
          6000000000000.0
        """
        if "memory_bytes_per_s" in changes:
            changes.setdefault("memory_bandwidth_estimated", False)
        out = dataclasses.replace(self, **changes)
        validate(out)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["matrix_flops_per_s"] = {k: float(v) for k, v in self.matrix_flops_per_s.items()}
        d["vector_flops_per_s"] = {k: float(v) for k, v in self.vector_flops_per_s.items()}
        d["aliases"] = list(self.aliases)
        return d


_REQUIRED = ("name", "family", "memory_bytes_per_s")
_FLOAT_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(DeviceSpec)
    if not f.metadata.get("static", False)
    and f.name not in ("matrix_flops_per_s", "vector_flops_per_s")
)


#: Fields that are rates or sizes: finite and > 0.
_POSITIVE_FIELDS = ("memory_bytes_per_s", "num_cores", "clock_hz", "host_link_bytes_per_s")
#: Fields where 0 means "none" or "not modelled" (no device DRAM, no cache model, no launch cost,
#: no power figure, process node unknown): finite and >= 0.
_NONNEGATIVE_FIELDS = (
    "memory_bytes",
    "cache_bytes",
    "cache_bytes_per_s",
    "launch_overhead_s",
    "tdp_w",
    "idle_w",
    "process_nm",
)


def _concrete(value: Any) -> Any:
    """``value`` as a NumPy array when it is a concrete number or array, ``None`` for a value
    traced by a JAX transformation (it is checked where it was concrete), ``False`` when it is
    not numeric at all."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool) or isinstance(value, (str, bytes)) or value is None:
        return False
    try:
        arr = np.asarray(value)
    except Exception:
        return False
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    ):
        return False
    return arr


def _problem(field: str, value: Any, positive: bool) -> str | None:
    """A description of what is wrong with ``value`` for ``field``, or None when it is fine."""
    want = "a finite number > 0" if positive else "a finite number >= 0"
    arr = _concrete(value)
    if arr is None:
        return None
    if arr is False:
        return f"{field} = {value!r} ({type(value).__name__}; expected {want})"
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if not bad.any():
        return None
    shown = float(arr[bad].flat[0]) if arr.ndim else float(arr)
    return f"{field} = {shown!r} (expected {want})"


def validate(spec: DeviceSpec, where: str = "") -> DeviceSpec:
    """Checks a spec's family, precisions and every numeric field; returns it unchanged.

    Rates and sizes (peaks, ``memory_bytes_per_s``, ``num_cores``, ``clock_hz``,
    ``host_link_bytes_per_s``) must be finite and > 0; capacities, latencies and powers that may
    be 0 (``memory_bytes``, ``cache_*``, ``launch_overhead_s``, ``tdp_w``, ``idle_w``,
    ``process_nm``) finite and >= 0. Values traced by ``jax.grad``/``jit`` are skipped. Raises
    :class:`~perfjax._errors.DeviceSpecError` (a ``ValueError``) naming every bad field, its
    value and what is expected.

    Example:
      >>> spec = DeviceSpec(name="toy", family="gpu", matrix_flops_per_s={"bf16": 1e12},
      ...                   memory_bytes_per_s=-1e11)
      >>> try:
      ...     validate(spec)
      ... except ValueError as e:
      ...     print(e)
      device 'toy': invalid spec: memory_bytes_per_s = -100000000000.0 (expected a finite number > 0).
    """
    if not isinstance(spec, DeviceSpec):
        raise TypeError(f"expected a DeviceSpec, got {type(spec).__name__} {spec!r}.")
    at = f" ({where})" if where else ""
    if spec.family not in FAMILIES:
        raise DeviceSpecError(
            f"device {spec.name!r}{at}: family must be one of {FAMILIES}, got {spec.family!r}."
        )
    problems: list[str] = []
    for unit in ("matrix_flops_per_s", "vector_flops_per_s"):
        table = getattr(spec, unit)
        if not isinstance(table, Mapping):
            raise DeviceSpecError(
                f"device {spec.name!r}{at}: {unit} must be a mapping of precision -> FLOP/s, "
                f"got {type(table).__name__} {table!r}."
            )
        for prec, value in table.items():
            if prec not in PRECISIONS:
                close = difflib.get_close_matches(str(prec), PRECISIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DeviceSpecError(
                    f"device {spec.name!r}{at}: {unit} has unknown precision {prec!r}{hint}; valid: {PRECISIONS}."
                )
            problems.append(_problem(f"{unit}.{prec}", value, positive=True))
    if not spec.matrix_flops_per_s and not spec.vector_flops_per_s:
        raise DeviceSpecError(
            f"device {spec.name!r}{at}: give at least one peak in matrix_flops_per_s or vector_flops_per_s."
        )
    for name in _POSITIVE_FIELDS:
        problems.append(_problem(name, getattr(spec, name), positive=True))
    for name in _NONNEGATIVE_FIELDS:
        problems.append(_problem(name, getattr(spec, name), positive=False))
    found = [p for p in problems if p is not None]
    if found:
        raise DeviceSpecError(f"device {spec.name!r}{at}: invalid spec: {'; '.join(found)}.")
    if (
        isinstance(spec.matrix_tile, bool)
        or not isinstance(spec.matrix_tile, int)
        or spec.matrix_tile < 1
    ):
        raise DeviceSpecError(
            f"device {spec.name!r}{at}: matrix_tile must be a positive int, got {spec.matrix_tile!r}."
        )
    return spec


def spec_from_mapping(data: Mapping[str, Any], where: str = "") -> DeviceSpec:
    """Builds and validates a spec from a mapping (one entry of a TOML/JSON/YAML file)."""
    at = f" ({where})" if where else ""
    if not isinstance(data, Mapping):
        raise DeviceSpecError(
            f"device entry{at} must be a table/mapping, got {type(data).__name__}."
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DeviceSpecError(
            f"device entry{at} is missing required field(s) {missing}; required: {list(_REQUIRED)}."
        )
    fields = {f.name: f for f in dataclasses.fields(DeviceSpec)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        hints = {k: difflib.get_close_matches(k, list(fields), n=1) for k in unknown}
        text = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items()
        )
        raise DeviceSpecError(f"device {data.get('name')!r}{at}: unknown field(s) {text}.")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("matrix_flops_per_s", "vector_flops_per_s"):
            if not isinstance(value, Mapping):
                raise DeviceSpecError(
                    f"device {data['name']!r}{at}: {key} must be a table of precision -> FLOP/s."
                )
            kwargs[key] = {
                str(p): _number(data["name"], f"{key}.{p}", v, at) for p, v in value.items()
            }
        elif key == "aliases":
            kwargs[key] = tuple(str(a) for a in value)
        elif key in ("name", "family", "vendor", "description", "source"):
            if not isinstance(value, str):
                raise DeviceSpecError(
                    f"device {data.get('name')!r}{at}: {key} must be a string, got {value!r}."
                )
            kwargs[key] = value
        elif key == "matrix_tile":
            if isinstance(value, bool) or not isinstance(value, int):
                raise DeviceSpecError(
                    f"device {data['name']!r}{at}: matrix_tile must be an integer, got {value!r}."
                )
            kwargs[key] = value
        else:
            kwargs[key] = _number(data["name"], key, value, at)
    return validate(DeviceSpec(**kwargs), where)


def _number(device: str, field: str, value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DeviceSpecError(
            f"device {device!r}{at}: {field} must be a number, got {type(value).__name__} {value!r}."
        )
    return float(value)


def load_spec_file(path: str | pathlib.Path) -> list[DeviceSpec]:
    """Reads device specs from a TOML, JSON or YAML file: one table per device.

    The file holds either one device (top-level fields) or several (``[name]`` tables in TOML,
    a top-level mapping of name -> fields in JSON/YAML).

    Example:
      >>> import tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "npu.toml"
      >>> _ = p.write_text('name = "my-npu"\\nfamily = "npu"\\nmemory_bytes_per_s = 2e10\\n'
      ...                  '[matrix_flops_per_s]\\nint8 = 4e12\\n')
      >>> load_spec_file(p)[0].peak_flops_per_s("int8")
      4000000000000.0
    """
    path = pathlib.Path(path)
    data = read_mapping(path, what="device spec file")
    if "name" in data or any(not isinstance(v, Mapping) for v in data.values()):
        # One device described by top-level fields.
        return [spec_from_mapping(data, str(path))]
    specs = []
    for key, entry in data.items():
        if isinstance(entry, Mapping):
            entry = {"name": key, **entry}
        specs.append(spec_from_mapping(entry, f"{path.name}: [{key}]"))
    return specs
