"""Sharded programs on TPU pods that are not here: per-chip compute and ICI/DCN collectives.

How ``predict_pod`` gets the per-chip program without the hardware:

1. The function is traced and lowered for an ``AbstractMesh`` of the pod's size (no device
   needed), giving StableHLO with Shardy sharding annotations.
2. A child process with that many emulated CPU devices (``--xla_force_host_platform_device_count``)
   compiles it — compile only, nothing is allocated or run — and XLA's own SPMD partitioner
   (the one TPU compilation uses) writes the partitioned per-chip module: per-chip shapes, the
   collectives it inserted and their replica groups.
3. That module, converted back to StableHLO, is predicted by the device model of the pod's chip
   (its collective kernels left out); each collective is timed on the pod's ICI torus or DCN
   (:mod:`perfjax.placement.pods._pods`).

An all-reduce whose every use is a dynamic-slice of the chip's own part is counted as the
reduce-scatter XLA's TPU pipeline turns it into (``ReduceScatterCreator``). When the pod has more
chips than are worth emulating (``max_emulated``, 512 by default), the data-parallel axes that
cross DCN are compiled at 2 and the batch dimensions sharded over them scaled with them: every
chip's program is the same for any number of data-parallel replicas, only the size of the
groups along those axes changes, and they are timed at their true size.

Overlap (``overlap=True``, the default): XLA's TPU flags for asynchronous collective fusion
(MaxText sets them) let a collective run while the kernels of the same loop iteration compute.
Kernels and collectives are grouped by how often they run per step (a scanned layer's ops run
once per layer); each group takes the longer of its compute and its communication. With
``overlap=False`` they add up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax._src.interpreters import mlir as jax_mlir
from jax._src.lib import _jax
from jax._src.lib.mlir import ir
from jax._src.mesh import use_abstract_mesh

from perfjax._display import fmt_count, fmt_time, render
from perfjax._errors import InputError, PlatformError
from perfjax.lowering import Program
from perfjax.lowering._staging import graph_for
from perfjax.placement.pods._pods import Pod
from perfjax.placement.pods._pods import pod as get_pod
from perfjax.placement.sharded._sharded import _group_axes, parse_collectives
from perfjax.prediction._predict import Prediction, predict

_CHILD = pathlib.Path(__file__).with_name("_child.py")
_CACHE: dict[tuple[str, int, bool], tuple[str, bytes, dict[str, int]]] = {}


@dataclasses.dataclass(frozen=True)
class PodCollective:
    """One collective of the per-chip program, timed on the pod's network."""

    name: str
    kind: str
    #: Mesh axes its groups span, and on which network: ``ici``, ``dcn`` or ``ici+dcn``.
    axes: tuple[str, ...]
    network: str
    #: Chips per group on the pod (true sizes, also for folded axes).
    group_size: int
    #: Operand bytes per chip (the gathered shard for all-gather).
    operand_bytes: float
    executions: int
    #: Seconds per execution.
    time_s: float


@dataclasses.dataclass(frozen=True)
class PodPrediction:
    """One step of a sharded program on a TPU pod, per chip.

    ``step_time_s`` = compute plus the communication not hidden behind it.
    """

    step_time_s: float
    compute_s: float
    communication_s: float
    exposed_communication_s: float
    overlap: bool
    pod: Pod
    mesh_shape: tuple[int, ...]
    axis_names: tuple[str, ...]
    dcn_axes: tuple[str, ...]
    collectives: tuple[PodCollective, ...]
    #: FLOPs each chip executes per step (rematerialised work included).
    flops_per_chip: float
    #: XLA:CPU's buffer assignment of the per-chip program (``xla_memory=True``): arguments,
    #: outputs, aliased (donated) and temporary bytes; empty otherwise.
    xla_memory: dict[str, int]
    #: The per-chip program's prediction on one chip (kernels, utilisation ...).
    chip: Prediction = dataclasses.field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def peak_memory_bytes(self) -> float | None:
        """Per-chip peak memory: the per-chip program's buffer liveness
        (``Prediction.peak_memory_bytes``)."""
        peak = self.chip.peak_memory_bytes
        return None if peak is None else float(peak)

    @property
    def xla_peak_memory_bytes(self) -> float | None:
        """XLA:CPU's buffer assignment of the per-chip program (arguments + outputs - donated
        + temporaries), with ``xla_memory=True``; XLA:TPU's differs (it keeps bf16 as bf16)."""
        m = self.xla_memory
        if not m:
            return None
        return float(
            m["argument_size_in_bytes"] + m["output_size_in_bytes"] - m["alias_size_in_bytes"]
            + m["temp_size_in_bytes"]
        )  # fmt: skip

    @property
    def fits(self) -> bool | None:
        """Whether the peak fits in the chip's HBM (None when its capacity is unknown)."""
        cap, peak = float(self.pod.spec.memory_bytes), self.peak_memory_bytes
        return None if cap <= 0 or peak is None else peak <= cap

    def tflops_per_chip(self, model_flops_per_chip: float) -> float:
        """Throughput in TFLOP/s per chip for a FLOP count per chip per step (e.g. MaxText's
        6·N·tokens + attention, see ``Decoder.model_flops_per_step``)."""
        return model_flops_per_chip / self.step_time_s / 1e12

    def mfu(self, model_flops_per_chip: float) -> float:
        """Model FLOPs utilisation: ``tflops_per_chip`` over the chip's bf16 peak."""
        peak = float(self.pod.spec.peak_flops_per_s("bf16"))
        return model_flops_per_chip / self.step_time_s / peak

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (JSON-ready): times, mesh, memory and one record per collective."""
        return {
            "step_time_s": self.step_time_s, "compute_s": self.compute_s,
            "communication_s": self.communication_s,
            "exposed_communication_s": self.exposed_communication_s, "overlap": self.overlap,
            "pod": self.pod.name, "mesh_shape": list(self.mesh_shape),
            "axis_names": list(self.axis_names), "dcn_axes": list(self.dcn_axes),
            "flops_per_chip": self.flops_per_chip, "peak_memory_bytes": self.peak_memory_bytes,
            "fits": self.fits, "notes": list(self.notes),
            "collectives": [dataclasses.asdict(c) for c in self.collectives],
        }  # fmt: skip

    def table(self):
        from rich.console import Group
        from rich.table import Table

        head = Table(title=f"perfjax.placement.predict_pod on {self.pod.name}", show_header=False,
                     box=None)  # fmt: skip
        head.add_column(style="bold")
        head.add_column()
        mesh = ", ".join(
            f"{a}={s}{' (dcn)' if a in self.dcn_axes else ''}"
            for a, s in zip(self.axis_names, self.mesh_shape)
        )
        head.add_row("mesh", mesh)
        head.add_row("step", fmt_time(self.step_time_s))
        head.add_row("compute", fmt_time(self.compute_s))
        head.add_row(
            "communication",
            f"{fmt_time(self.communication_s)} ({fmt_time(self.exposed_communication_s)} exposed, "
            f"overlap {'on' if self.overlap else 'off'})",
        )
        head.add_row("flops per chip", fmt_count(self.flops_per_chip))
        fits = {True: "fits", False: "does NOT fit", None: "capacity unknown"}[self.fits]
        if self.peak_memory_bytes is not None:
            head.add_row("peak memory per chip", f"{fmt_count(self.peak_memory_bytes)}B ({fits})")
        for note in self.notes:
            head.add_row("note", note)
        tab = Table(title=f"collectives ({len(self.collectives)})")
        for col in ("name", "kind", "axes", "network", "group", "operand", "runs", "time"):
            tab.add_column(
                col, justify="left" if col in ("name", "kind", "axes", "network") else "right"
            )
        for c in self.collectives:
            tab.add_row(c.name, c.kind, ",".join(c.axes), c.network, str(c.group_size),
                        fmt_count(c.operand_bytes) + "B", str(c.executions),
                        fmt_time(c.time_s))  # fmt: skip
        return Group(head, tab)

    def __str__(self) -> str:
        return render(self.table())


# ---------------------------------------------------------------------------------------------
# meshes
# ---------------------------------------------------------------------------------------------


def _abstract(mesh: Any) -> jax.sharding.AbstractMesh:
    if isinstance(mesh, jax.sharding.AbstractMesh):
        return mesh
    if isinstance(mesh, jax.sharding.Mesh):
        return mesh.abstract_mesh
    raise InputError(
        f"mesh must be a jax.sharding.AbstractMesh or Mesh, got {type(mesh).__name__}; e.g. "
        "jax.sharding.AbstractMesh((2, 256), ('data', 'fsdp'))."
    )


def _mesh_of(inputs: Any) -> jax.sharding.AbstractMesh | None:
    for leaf in jax.tree_util.tree_leaves(inputs):
        s = getattr(leaf, "sharding", None)
        if isinstance(s, jax.sharding.NamedSharding):
            return _abstract(s.mesh)
    return None


def _dcn_axes(mesh: jax.sharding.AbstractMesh, p: Pod, dcn_axes: Sequence[str] | None) -> tuple:
    names = tuple(mesh.axis_names)
    sizes = dict(zip(names, mesh.axis_sizes))
    if dcn_axes is None:
        # The leading axes whose sizes multiply to the number of slices (MaxText's layout:
        # DCN axes first, then ICI axes).
        chosen, prod = [], 1
        for a in names:
            if prod == p.num_slices:
                break
            chosen.append(a)
            prod *= sizes[a]
        if prod != p.num_slices:
            raise InputError(
                f"cannot tell which mesh axes cross DCN: the leading axes of {dict(sizes)} do not "
                f"multiply to the pod's {p.num_slices} slices; pass dcn_axes=."
            )
        dcn = tuple(chosen)
    else:
        dcn = tuple(dcn_axes)
        unknown = [a for a in dcn if a not in sizes]
        if unknown:
            raise InputError(f"dcn_axes {unknown} are not axes of the mesh {names}.")
        if math.prod(sizes[a] for a in dcn) != p.num_slices:
            raise InputError(
                f"dcn_axes {dcn} hold {math.prod(sizes[a] for a in dcn)} slices; the pod has "
                f"{p.num_slices}."
            )
    return tuple(a for a in names if a in dcn and sizes[a] > 1) or tuple(
        a for a in names if a in dcn
    )


def _folded(mesh, dcn: tuple[str, ...], max_emulated: int) -> jax.sharding.AbstractMesh:
    """The mesh compiled: DCN axes shrunk to 2 (the first) and 1 when the pod is too large."""
    if mesh.size <= max_emulated or not dcn:
        return mesh
    sizes, first = [], True
    for a, s in zip(mesh.axis_names, mesh.axis_sizes):
        if a in dcn and s > 1:
            sizes.append(2 if first else 1)
            first = False
        else:
            sizes.append(s)
    folded = jax.sharding.AbstractMesh(tuple(sizes), tuple(mesh.axis_names))
    if folded.size > max_emulated:
        raise InputError(
            f"the per-slice mesh has {folded.size // 2} chips, more than max_emulated="
            f"{max_emulated} can compile here; raise max_emulated."
        )
    return folded


def _remesh(inputs: Any, mesh, folded) -> Any:
    """Inputs on the folded mesh: shardings moved, dims sharded over folded axes scaled."""
    if folded is mesh:
        return inputs
    true = dict(zip(mesh.axis_names, mesh.axis_sizes))
    small = dict(zip(folded.axis_names, folded.axis_sizes))

    def leaf(x):
        s = getattr(x, "sharding", None)
        if not isinstance(s, jax.sharding.NamedSharding):
            return x
        shape = list(x.shape)
        for i, part in enumerate(s.spec):
            axes = () if part is None else (part if isinstance(part, tuple) else (part,))
            t = math.prod(true[a] for a in axes)
            f = math.prod(small[a] for a in axes)
            if t != f:
                if (shape[i] * f) % t:
                    raise InputError(
                        f"dimension {i} of an input of shape {tuple(x.shape)} cannot be scaled "
                        f"from {t} to {f} data-parallel shards; pass max_emulated >= "
                        f"{mesh.size} to compile the full mesh."
                    )
                shape[i] = shape[i] * f // t
        return jax.ShapeDtypeStruct(
            tuple(shape), x.dtype, sharding=jax.sharding.NamedSharding(folded, s.spec)
        )

    return jax.tree_util.tree_map(leaf, inputs)


def _to_shardings(tree: Any, mesh) -> Any:
    if tree is None:
        return None
    is_spec = lambda x: isinstance(x, (jax.sharding.PartitionSpec, jax.sharding.Sharding))

    def conv(s):
        if isinstance(s, jax.sharding.PartitionSpec):
            return jax.sharding.NamedSharding(mesh, s)
        if isinstance(s, jax.sharding.NamedSharding):
            return jax.sharding.NamedSharding(mesh, s.spec)
        return s

    return jax.tree_util.tree_map(conv, tree, is_leaf=is_spec)


# ---------------------------------------------------------------------------------------------
# compiling for N emulated chips
# ---------------------------------------------------------------------------------------------


def _partition(
    module_text: str, n: int, timeout_s: float, full: bool = False
) -> tuple[str, bytes, dict[str, int]]:
    """(partitioned per-chip HLO text, its HloModuleProto, XLA's memory stats or {}) from a
    child process compiling ``module_text`` for ``n`` emulated CPU devices (to the end with
    ``full``, else only until XLA has partitioned it)."""
    key = (hashlib.sha256(module_text.encode()).hexdigest(), n, full)
    if key in _CACHE:
        return _CACHE[key]
    with tempfile.TemporaryDirectory(prefix="perfjax-pod-") as tmp:
        path = pathlib.Path(tmp) / "module.mlir"
        path.write_text(module_text)
        dump = pathlib.Path(tmp) / "dump"
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
        try:
            proc = subprocess.run(
                [sys.executable, str(_CHILD), str(path), str(n), str(dump)]
                + (["--full"] if full else []),
                capture_output=True, text=True, timeout=timeout_s, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PlatformError(
                f"compiling the program for {n} emulated chips took over {timeout_s:.0f} s; "
                "raise timeout_s or predict a smaller mesh."
            ) from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise PlatformError(
                f"XLA could not partition the program for {n} chips: " + " | ".join(tail)[-800:]
            )
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        texts = sorted(dump.glob("*after_spmd-partitioning*.txt"))
        protos = sorted(dump.glob("*after_spmd-partitioning*.pb"))
        if not texts or not protos:
            raise PlatformError("XLA wrote no partitioned module (no SPMD partitioning pass ran).")
        out = (texts[0].read_text(), _module_proto(protos[0].read_bytes()), stats)
    _CACHE[key] = out
    return out


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        c = b[i]
        r |= (c & 0x7F) << shift
        i += 1
        shift += 7
        if c < 0x80:
            return r, i


def _module_proto(b: bytes) -> bytes:
    """The ``HloModuleProto`` (field 1) inside the ``HloProto`` XLA dumps."""
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            n, i = _varint(b, i)
            if field == 1:
                return b[i : i + n]
            i += n
        elif wire == 0:
            _, i = _varint(b, i)
        else:
            raise PlatformError(f"unexpected field in XLA's HLO dump (wire type {wire}).")
    raise PlatformError("XLA's HLO dump holds no module.")


_DONATED_ARG = re.compile(
    r"%arg(\d+): [^{]*\{[^}]*(?:jax\.buffer_donor = true|tf\.aliasing_output)"
)


def _main_line(text: str) -> tuple[int, int]:
    start = (
        text.index("func.func public @main(")
        if "func.func public @main(" in text
        else (text.index("func.func @main("))
    )
    return start, text.index("\n", start)


def _per_chip_program(proto: bytes, name: str, global_text: str) -> Program:
    """The partitioned module as a Program; the arguments the global program donates are
    marked donated again (XLA assigns aliases after partitioning, so the dump has none)."""
    bytecode = _jax.mlir.hlo_to_stablehlo(proto)
    with jax_mlir.make_ir_context():
        text = ir.Module.parse(bytecode).operation.get_asm(enable_debug_info=True)
    g0, g1 = _main_line(global_text)
    donated = {int(i) for i in _DONATED_ARG.findall(global_text[g0:g1])}
    if donated:
        s0, s1 = _main_line(text)
        header = re.sub(
            r"(%arg(\d+): [^{,)]*)(\{)?",
            lambda m: m.group(0) if int(m.group(2)) not in donated
            else m.group(1) + ("{jax.buffer_donor = true, " if m.group(3) else
                               "{jax.buffer_donor = true} "),
            text[s0:s1],
        )  # fmt: skip
        text = text[:s0] + header + text[s1:]
    program = Program.from_stablehlo(text)
    return dataclasses.replace(program, name=name)


# ---------------------------------------------------------------------------------------------
# collectives
# ---------------------------------------------------------------------------------------------


def _reduce_scatters(hlo: str) -> set[str]:
    """All-reduces whose every use is a dynamic-slice (XLA:TPU makes them reduce-scatters)."""
    out = set()
    for name in re.findall(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*\ball-reduce\(", hlo, re.M):
        uses = re.findall(rf"^.*[(,]\s*%{re.escape(name)}[,)].*$", hlo, re.M)
        uses = [u for u in uses if not re.match(rf"^\s*(?:ROOT\s+)?%?{re.escape(name)}\s*=", u)]
        if uses and all(" dynamic-slice(" in u for u in uses):
            out.add(name)
    return out


def _channel(hlo: str) -> dict[str, int]:
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?channel_id=(\d+)", hlo, re.M)
    }


def _collectives(hlo, graph, p: Pod, compiled_mesh, true_mesh, dcn) -> list[PodCollective]:
    names = tuple(true_mesh.axis_names)
    true = dict(zip(names, true_mesh.axis_sizes))
    ici_axes = [a for a in names if a not in dcn]
    ici_dims = dict(zip(ici_axes, p.ici_axis_dims([true[a] for a in ici_axes])))
    runs = {}
    for op in graph.ops:
        cid = op.features.get("channel_id") if op.features else None
        if cid is not None:
            runs[cid] = runs.get(cid, 0) + int(op.executions)
    channels = _channel(hlo)
    scatters = _reduce_scatters(hlo)
    out = []
    for c in parse_collectives(hlo, tuple(compiled_mesh.axis_sizes)):
        kind = c["kind"]
        if c["name"] in scatters:
            kind = "reduce_scatter"
        if kind == "collective_permute":
            axes: tuple[str, ...] = ()
            size = 2
        else:
            groups = c["groups"]
            axes = (
                _group_axes(groups, tuple(compiled_mesh.axis_sizes), names)
                if len(groups[0]) > 1
                else ()
            )
            size = math.prod(true[a] for a in axes) if axes else 1
        on_ici = [d for a in axes if a not in dcn for d in ici_dims[a]]
        slices = math.prod(true[a] for a in axes if a in dcn) if axes else 1
        network = "+".join(n for n, used in (("ici", bool(on_ici)), ("dcn", slices > 1)) if used)
        if kind == "collective_permute":
            network = "ici"
        nbytes = float(c["operand_bytes"])
        t = (
            p.collective_time_s(kind, nbytes, on_ici, slices)
            if size > 1 or kind == "collective_permute"
            else 0.0
        )
        execs = runs.get(channels.get(c["name"], -1), 1)
        out.append(PodCollective(
            name=c["name"], kind=kind, axes=axes, network=network or "none", group_size=size,
            operand_bytes=nbytes, executions=int(execs), time_s=float(t),
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# the prediction
# ---------------------------------------------------------------------------------------------


def predict_pod(
    fn: Callable,
    inputs: Sequence[Any],
    *,
    pod: Pod | str,
    mesh: Any = None,
    in_shardings: Any = None,
    out_shardings: Any = None,
    donate_argnums: int | Sequence[int] = (),
    dcn_axes: Sequence[str] | None = None,
    overlap: bool = True,
    max_emulated: int = 512,
    xla_memory: bool = False,
    timeout_s: float = 300.0,
) -> PodPrediction:
    """Predicts one step of a sharded program on a TPU pod, per chip, without the hardware.

    Args:
      fn: the step function (plain; it is jitted here with the shardings given).
      inputs: positional arguments as ``jax.ShapeDtypeStruct`` s (or arrays), with
        ``sharding=NamedSharding(mesh, spec)`` or with ``in_shardings`` given.
      pod: a :class:`Pod` or name: ``"v5e-256"``, ``"v5e-256x32"`` (32 slices) ...
      mesh: an ``AbstractMesh`` (or ``Mesh``) of the pod's size; default: the inputs' mesh.
      in_shardings / out_shardings: ``PartitionSpec`` s or shardings, as for ``jax.jit``.
      donate_argnums: as for ``jax.jit`` (donated buffers are reused for outputs).
      dcn_axes: mesh axes that cross slices (default: the leading axes whose sizes multiply to
        the number of slices).
      overlap: collectives run while the same loop iteration computes (XLA's asynchronous
        collective fusion on TPU); ``False`` adds them to compute.
      max_emulated: most CPU devices to compile for; larger pods fold their DCN axes.
      xla_memory: also compile to the end for XLA:CPU's buffer assignment of the per-chip
        program (slower: code generation for the whole program).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import AbstractMesh, NamedSharding, PartitionSpec as P
      >>> mesh = AbstractMesh((2, 4), ("data", "fsdp"))
      >>> w = jax.ShapeDtypeStruct((1024, 1024), jnp.float32,
      ...                          sharding=NamedSharding(mesh, P("fsdp", None)))
      >>> x = jax.ShapeDtypeStruct((64, 1024), jnp.bfloat16,
      ...                          sharding=NamedSharding(mesh, P(("data", "fsdp"), None)))
      >>> step = lambda w, x: jax.grad(lambda w: jnp.sum(x @ w.astype(x.dtype)))(w)
      >>> pred = predict_pod(step, (w, x), pod="v5e-4x2")
      >>> pred.step_time_s > 0, sorted({c.network for c in pred.collectives})
      (True, ['ici+dcn'])
    """
    p = get_pod(pod) if not isinstance(pod, Pod) else pod
    inputs = tuple(inputs)
    true_mesh = _abstract(mesh) if mesh is not None else _mesh_of(inputs)
    if true_mesh is None:
        raise InputError("no mesh: pass mesh= or inputs with NamedSharding(mesh, ...) shardings.")
    if true_mesh.size != p.num_chips:
        raise InputError(
            f"the mesh {dict(zip(true_mesh.axis_names, true_mesh.axis_sizes))} has "
            f"{true_mesh.size} chips; the pod {p.name} has {p.num_chips}."
        )
    dcn = _dcn_axes(true_mesh, p, dcn_axes)
    mesh_c = _folded(true_mesh, dcn, max_emulated)
    notes = []
    if mesh_c is not true_mesh:
        notes.append(
            f"compiled with DCN axes folded to {dict(zip(mesh_c.axis_names, mesh_c.axis_sizes))}; "
            "DCN collectives timed at their true group size"
        )
    args = _remesh(inputs, true_mesh, mesh_c)
    jitted = jax.jit(
        fn,
        in_shardings=_to_shardings(in_shardings, mesh_c),
        out_shardings=_to_shardings(out_shardings, mesh_c),
        donate_argnums=donate_argnums,
    )
    with use_abstract_mesh(mesh_c):  # sharding constraints inside fn follow the compiled mesh
        lowered = jitted.trace(*args).lower(lowering_platforms=("cpu",))
    # With locations: name scopes (``fused_kernel`` regions, forward/backward) reach the
    # partitioned module as XLA's op names.
    text = lowered.as_text(debug_info=True)
    hlo, proto, stats = _partition(text, mesh_c.size, timeout_s, xla_memory)
    name = getattr(fn, "__name__", "step")
    program = _per_chip_program(proto, f"{name} per chip", text)
    graph = graph_for(program)
    chip = predict(program, device=p.spec)
    collectives = _collectives(hlo, graph, p, mesh_c, true_mesh, dcn)
    return _assemble(
        chip, collectives, p, true_mesh, dcn, overlap, stats, float(graph.flops), notes
    )


def _assemble(chip, collectives, p, mesh, dcn, overlap, stats, flops, notes) -> PodPrediction:
    by_runs: dict[int, float] = {}
    on_chip = 0.0
    for k in chip.kernels:
        t = float(k.time_s) * float(k.executions)
        if k.kind == "collective":
            on_chip += t
            continue
        by_runs[int(k.executions)] = by_runs.get(int(k.executions), 0.0) + t
    compute = float(chip.time_s) - on_chip
    # The per-call cost outside kernels (dispatch) belongs to the top level.
    by_runs[1] = by_runs.get(1, 0.0) + compute - sum(by_runs.values())
    comm_by_runs: dict[int, float] = {}
    for c in collectives:
        comm_by_runs[c.executions] = comm_by_runs.get(c.executions, 0.0) + c.time_s * c.executions
    comm = float(sum(comm_by_runs.values()))
    if overlap:
        step = sum(
            max(by_runs.get(r, 0.0), comm_by_runs.get(r, 0.0))
            for r in set(by_runs) | set(comm_by_runs)
        )
    else:
        step = compute + comm
    return PodPrediction(
        step_time_s=float(step), compute_s=compute, communication_s=comm,
        exposed_communication_s=float(step - compute), overlap=bool(overlap), pod=p,
        mesh_shape=tuple(int(s) for s in mesh.axis_sizes), axis_names=tuple(mesh.axis_names),
        dcn_axes=dcn, collectives=tuple(collectives), flops_per_chip=flops, xla_memory=stats,
        chip=chip, notes=tuple(notes),
    )  # fmt: skip


__all__ = ["PodCollective", "PodPrediction", "predict_pod"]
