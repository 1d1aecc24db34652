"""Predicting SPMD programs: per-device compute plus the collectives XLA's partitioner inserted.

``predict_sharded`` compiles a function sharded over a ``jax.sharding.Mesh`` (``jax.jit`` with
``NamedSharding`` in/out shardings, or ``shard_map``), reads the collectives of the partitioned
per-device HLO (``compiled.as_text()``: all-reduce, all-gather, reduce-scatter, all-to-all,
collective-permute, collective-broadcast, with their replica groups and shapes), times each with the
collective models on a platform, and adds the per-device compute predicted by the device models.

Two byte counts per collective:

* ``operand_bytes``: the operand on each device (the convention of ``collective_time_s`` and of
  the ``stablehlo.*`` cost rules' ``bytes`` feature);
* ``link_bytes``: bytes over each device's busiest link, in the convention of
  ``jax.experimental.roofline`` (``ici_bytes``), so that the two can be compared exactly: ring
  algorithms over the mesh axes of the group (all-reduce ``2(p-1)/p n``, all-gather ``(p-1) n``,
  reduce-scatter ``(p-1)/p n``), all-to-all as half the data over the bisection of the smallest
  axis, collective-permute as the shard times the largest number of transfers sharing one mesh link
  (shortest way round each axis). ``link_bytes_by_axis`` sums them per mesh axis like roofline does.

Running the program needs as many devices as the mesh (emulate them on a CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before jax is imported).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from perfjax._display import fmt_count, fmt_time, render
from perfjax._dtypes import element_bits
from perfjax._errors import InputError
from perfjax.lowering._staging import graph_for, program_for
from perfjax.placement.comm._collectives import CollectiveFit, algorithm_times_s, choose_fit
from perfjax.placement.comm._platform import Platform
from perfjax.placement.comm._platform import platform as get_platform
from perfjax.prediction._predict import predict

_HLO_KINDS = {
    "all-reduce": "all_reduce",
    "all-gather": "all_gather",
    "reduce-scatter": "reduce_scatter",
    "all-to-all": "all_to_all",
    "collective-permute": "collective_permute",
    "collective-broadcast": "collective_broadcast",
}
_LINE = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<type>\(.*?\)|[\w]+\[[^\]]*\](?:\{[^}]*\})?)\s+"
    r"(?P<op>all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute|collective-broadcast)"
    r"(?P<start>-start)?\((?P<rest>.*)$"
)
_SHAPE = re.compile(r"\b([a-z]+\d*(?:e\d+m\d+\w*)?)\[([\d,]*)\]")


def _shape_bytes(type_text: str) -> list[float]:
    out = []
    for dtype, dims in _SHAPE.findall(type_text):
        size = math.prod(int(d) for d in dims.split(",") if d) if dims else 1
        width = element_bits(dtype) / 8
        if not width:
            raise InputError(f"unknown HLO element type {dtype!r} in {type_text!r}.")
        out.append(size * width)
    return out


def _braces(text: str, start: int) -> str:
    """The balanced ``{...}`` starting at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    raise InputError(f"unbalanced braces in {text[start : start + 80]!r}")


def _device_ids(text: str | None, n: int) -> np.ndarray:
    """The device at each mesh position: ``[2,256]T(1,0)`` (an iota, reshaped and
    transposed), an explicit list, or ``None`` (position i is device i)."""
    if text is None:
        return np.arange(n)
    iota = re.fullmatch(r"\[([\d,]+)\](?:T\(([\d,]+)\))?", text.strip())
    if iota:
        dims = [int(x) for x in iota.group(1).split(",")]
        ids = np.arange(math.prod(dims)).reshape(dims)
        if iota.group(2):
            ids = ids.transpose([int(x) for x in iota.group(2).split(",")])
        return ids.reshape(-1)
    return np.array([int(x) for x in text.split(",") if x.strip()])


def _parse_groups(rest: str, mesh_shape: tuple[int, ...], num_partitions: int) -> list[list[int]]:
    """Replica groups of an HLO collective, as lists of partition ids (all formats XLA prints)."""
    m = re.search(r"replica_groups=", rest)
    if m is None:
        return [list(range(num_partitions))]
    text = rest[m.end() :]
    if text.startswith("{"):
        body = _braces(text, 0)
        groups = [
            [int(x) for x in g.split(",") if x.strip()]
            for g in re.findall(r"\{([\d,\s]*)\}", body[1:-1])
        ]
        groups = [g for g in groups if g]
        return groups or [list(range(num_partitions))]
    iota = re.match(r"\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", text)
    if iota:
        shape = [int(x) for x in iota.group(1).split(",")]
        dims = [int(x) for x in iota.group(2).split(",")]
        ids = np.arange(math.prod(dims)).reshape(dims)
        if iota.group(3):
            ids = ids.transpose([int(x) for x in iota.group(3).split(",")])
        return ids.reshape(shape).tolist()
    mesh = re.match(
        r"mesh\[([^\]]*)\](?:,\s*device_ids=\((\[[\d,]+\](?:T\([\d,]+\))?|[\d,\s]+)\))?"
        r"\s*\{([^}]*)\}",
        text,
    )
    if mesh:
        axes = [
            (a.strip().strip("'\""), int(s))
            for a, s in re.findall(r"'?([\w]+)'?\s*=\s*(\d+)", mesh.group(1))
        ]
        chosen = [a.strip().strip("'\"") for a in mesh.group(3).split(",") if a.strip()]
        if any(":" in c or "(" in c for c in chosen):
            raise InputError(f"sub-axis replica groups are not supported yet: {text[:120]!r}")
        names = [a for a, _ in axes]
        sizes = [s for _, s in axes]
        ids = _device_ids(mesh.group(2), math.prod(sizes)).reshape(sizes)
        keep = [names.index(c) for c in chosen]
        rest_axes = [i for i in range(len(sizes)) if i not in keep]
        ids = ids.transpose(rest_axes + keep)
        return ids.reshape(-1, math.prod(sizes[i] for i in keep) if keep else 1).tolist()
    raise InputError(f"cannot parse replica_groups in {text[:120]!r}")


@dataclasses.dataclass(frozen=True)
class CollectiveRow:
    """One collective of the per-device program."""

    name: str
    kind: str
    #: Operand bytes on each device (``collective_time_s`` convention).
    operand_bytes: float
    group_size: int
    num_groups: int
    #: Mesh axes the groups span (empty for collective-permute pairs that stay put).
    axes: tuple[str, ...]
    #: Bytes over each device's busiest link, jax.experimental.roofline's ``ici_bytes`` convention.
    link_bytes: int
    #: Link hops on the critical path, roofline's ``ici_latency`` convention.
    hops: int
    time_s: float
    algorithm: str
    groups: tuple[tuple[int, ...], ...] = dataclasses.field(repr=False, default=())
    pairs: tuple[tuple[int, int], ...] = dataclasses.field(repr=False, default=())
    #: Collective model: ``"calibrated (<family> fit)"`` or ``"alpha-beta"`` (``collective_time_s``).
    model: str = ""


def parse_collectives(hlo_text: str, mesh_shape: Sequence[int]) -> list[dict[str, Any]]:
    """The collectives of an (SPMD-partitioned) HLO module text.

    Returns dicts with ``name, kind, operand_bytes, groups`` (partition ids) and, for
    collective-permute, ``pairs``. Collectives inside loop bodies are listed once.
    """
    mesh_shape = tuple(int(s) for s in mesh_shape)
    n = math.prod(mesh_shape)
    out = []
    for line in hlo_text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        kind = _HLO_KINDS[m.group("op")]
        sizes = _shape_bytes(m.group("type"))
        rest = m.group("rest")
        if m.group("start"):
            # Async start ops return (operands..., results..., [scratch]): the operand is first.
            sizes = sizes[:1]
        result = float(sum(sizes))
        row: dict[str, Any] = {
            "name": m.group("name"),
            "kind": kind,
            "arrays": _SHAPE.findall(m.group("type"))[: len(sizes)],
        }
        if kind == "collective_permute":
            pm = re.search(r"source_target_pairs=", rest)
            body = _braces(rest, pm.end())
            row["pairs"] = [
                tuple(int(x) for x in p.split(",")) for p in re.findall(r"\{(\d+,\d+)\}", body)
            ]
            row["groups"] = []
            row["operand_bytes"] = result
        else:
            groups = _parse_groups(rest, mesh_shape, n)
            p = len(groups[0])
            row["groups"] = groups
            row["operand_bytes"] = {
                "all_gather": result / p if not m.group("start") else result,
                "reduce_scatter": result * p,
            }.get(kind, result)
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
# roofline's link-byte convention (jax/experimental/roofline/rooflines.py), reproduced exactly
# ---------------------------------------------------------------------------------------------


def _group_axes(
    groups: list[list[int]], mesh_shape: tuple[int, ...], axis_names
) -> tuple[str, ...]:
    coords = np.array([np.unravel_index(g, mesh_shape) for g in groups[0]]).reshape(
        len(groups[0]), -1
    )
    return tuple(axis_names[i] for i in range(len(mesh_shape)) if len(set(coords[:, i])) > 1)


def _ring_link_bytes(nbytes: float, sizes: list[int], is_reduce: bool) -> tuple[int, int]:
    # roofline's _ring_collective_roofline: the slowest axis first, one phase per axis with a
    # shard of 1/num_axes of the data; reductions start from the reduced shard.
    shard = float(nbytes)
    if is_reduce:
        shard /= math.prod(sizes)
    order = sorted(sizes, reverse=True)
    shard //= len(order)
    total = 0.0
    for size in order:
        total += shard * (size - 1)
        shard *= size
    return int(total), int(order[0] * len(order))


def link_bytes(kind: str, nbytes: float, axis_sizes: Sequence[int], pairs=None, mesh_dims=None):
    """``(link_bytes, hops)`` of a collective over mesh axes of the given sizes, in
    ``jax.experimental.roofline``'s convention (see the module docstring)."""
    sizes = [int(s) for s in axis_sizes]
    if kind != "collective_permute" and math.prod(sizes) <= 1:
        return 0, 0
    if kind == "all_reduce":
        b, h = _ring_link_bytes(nbytes, sizes, True)
        return 2 * b, 2 * h
    if kind == "reduce_scatter":
        return _ring_link_bytes(nbytes, sizes, True)
    if kind == "all_gather":
        return _ring_link_bytes(nbytes, sizes, False)
    if kind == "all_to_all":
        total = nbytes * math.prod(sizes)
        smallest = min(sizes)
        bisection = smallest ** (len(sizes) - 1)
        if smallest > 2:
            bisection *= 2  # wraparound
        return int(total / 2 / bisection), int(sum(s / 2 for s in sizes))
    if kind == "collective_permute":
        dims = list(mesh_dims)
        contention: dict[tuple, int] = {}
        hops = 0
        for src, dst in pairs:
            if src == dst:
                continue
            a = list(np.unravel_index(src, dims))
            b = list(np.unravel_index(dst, dims))
            dist = 0
            for i, size in enumerate(dims):
                if a[i] == b[i]:
                    continue
                cw, ccw = (b[i] - a[i]) % size, (a[i] - b[i]) % size
                step = 1 if cw <= ccw else -1
                pos = a[i]
                while pos != b[i]:
                    cur = tuple(int(x) for x in [*a[:i], pos, *a[i + 1 :]])
                    nxt_pos = (pos + step) % size
                    nxt = tuple(int(x) for x in [*a[:i], nxt_pos, *a[i + 1 :]])
                    key = tuple(sorted([cur, nxt]))
                    contention[key] = contention.get(key, 0) + 1
                    pos = nxt_pos
                dist += min(cw, ccw)
            hops = max(hops, dist)
        return int(nbytes * max(contention.values(), default=0)), int(hops)
    return 0, 0


# ---------------------------------------------------------------------------------------------
# the prediction
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShardedPrediction:
    """Predicted time of one step of an SPMD program on a platform (compute + communication, no
    overlap assumed)."""

    time_s: float
    compute_s: float
    communication_s: float
    collectives: tuple[CollectiveRow, ...]
    platform: str
    mesh_shape: tuple[int, ...]
    axis_names: tuple[str, ...]
    #: Per-device flops and bytes accessed of the partitioned program (XLA's cost_analysis).
    flops_per_device: float
    bytes_per_device: float
    #: How compute was predicted: "perfjax.predict on per-device shapes" or "roofline on XLA counts".
    compute_model: str
    notes: tuple[str, ...] = ()
    hlo: str = dataclasses.field(default="", repr=False)

    @property
    def link_bytes_by_axis(self) -> dict[str, int]:
        """Link bytes summed per mesh axis (comparable with roofline's ``ici_bytes``)."""
        out: dict[str, int] = {}
        for row in self.collectives:
            for axis in row.axes:
                out[axis] = out.get(axis, 0) + row.link_bytes
        return out

    def to_dataframe(self):
        """One row per collective."""
        import pandas as pd

        rows = []
        for r in self.collectives:
            d = dataclasses.asdict(r)
            d.pop("groups")
            d.pop("pairs")
            d["axes"] = ",".join(r.axes)
            rows.append(d)
        return pd.DataFrame(
            rows,
            columns=[
                f.name
                for f in dataclasses.fields(CollectiveRow)
                if f.name not in ("groups", "pairs")
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("hlo")
        return d

    def table(self):
        from rich.console import Group
        from rich.table import Table

        head = Table(
            title=f"perfjax.placement.predict_sharded on {self.platform}",
            show_header=False,
            box=None,
        )
        head.add_column(style="bold")
        head.add_column()
        mesh = ", ".join(f"{a}={s}" for a, s in zip(self.axis_names, self.mesh_shape))
        head.add_row("mesh", mesh)
        head.add_row("time", fmt_time(self.time_s))
        head.add_row("compute", f"{fmt_time(self.compute_s)} ({self.compute_model})")
        head.add_row("communication", fmt_time(self.communication_s))
        head.add_row(
            "flops / bytes per device",
            f"{fmt_count(self.flops_per_device)} / {fmt_count(self.bytes_per_device)}B",
        )
        for note in self.notes:
            head.add_row("note", note)
        tab = Table(title=f"collectives ({len(self.collectives)})")
        for col in ("name", "kind", "axes", "group", "operand", "link bytes", "algorithm", "time"):
            tab.add_column(
                col,
                justify="right" if col in ("group", "operand", "link bytes", "time") else "left",
            )
        for r in self.collectives:
            tab.add_row(
                r.name,
                r.kind,
                ",".join(r.axes),
                f"{r.group_size} x{r.num_groups}",
                fmt_count(r.operand_bytes) + "B",
                fmt_count(r.link_bytes) + "B",
                r.algorithm,
                fmt_time(r.time_s),
            )
        return Group(head, tab)

    def __str__(self) -> str:

        return render(self.table())


def _find_mesh(compiled, mesh):
    if mesh is not None:
        return mesh
    flat = jax.tree_util.tree_leaves(
        (compiled.input_shardings, compiled.output_shardings),
        is_leaf=lambda x: isinstance(x, jax.sharding.Sharding),
    )
    for s in flat:
        if isinstance(s, jax.sharding.NamedSharding):
            return s.mesh
    raise InputError(
        "could not find the mesh of this program (no NamedSharding on its inputs or outputs); pass mesh=."
    )


_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float64": "fp64"}


def _precision_of(inputs) -> str:
    for leaf in jax.tree_util.tree_leaves(inputs):
        name = str(getattr(leaf, "dtype", ""))
        if name in _PRECISION:
            return _PRECISION[name]
    return "fp32"


def _roofline_compute_s(flops: float, nbytes: float, spec, precision: str) -> float:
    try:
        peak = spec.peak_flops_per_s(precision)
    except ValueError:
        peak = max(
            float(v) for u in (spec.matrix_flops_per_s, spec.vector_flops_per_s) for v in u.values()
        )
    t_c, t_m = flops / peak, nbytes / float(spec.memory_bytes_per_s)
    # Smooth max (p = 4 norm) of compute and memory time, plus one launch overhead.
    return float((t_c**4 + t_m**4) ** 0.25 + float(spec.launch_overhead_s))


def predict_sharded(
    fn: Callable,
    inputs: Sequence[Any],
    *,
    platform: Platform | str,
    mesh: jax.sharding.Mesh | None = None,
    in_shardings: Any = None,
    out_shardings: Any = None,
    device_map: Sequence[int | str] | None = None,
    compute: str = "auto",
    algorithm: str = "auto",
    fit: Any = "auto",
) -> ShardedPrediction:
    """Predicts one call of an SPMD program on a platform.

    Args:
      fn: a function jitted with ``NamedSharding`` in/out shardings (or containing ``shard_map``),
        or a plain function with ``in_shardings`` (``PartitionSpec``s over ``mesh`` or shardings).
      inputs: a tuple of positional arguments: arrays (already sharded) or ``ShapeDtypeStruct``s
        (with ``sharding=`` when ``fn`` does not fix its input shardings).
      platform: where it runs; partition i of the mesh runs on platform device ``device_map[i]``
        (default: device i).
      compute: ``"auto"`` (``perfjax.predict`` of ``fn`` traced at per-device shapes, falling back to
        a roofline on XLA's per-device counts when that trace disagrees with them), ``"predict"`` or
        ``"roofline"``.
      algorithm: collective algorithm (``"auto"`` picks the fastest per collective).
      fit: collective model, as ``collective_time_s``: ``"auto"`` (default) times each group with
        the calibrated model fitted to XLA's measurements where that fit covers it (NVIDIA GPUs on
        NVLink / NVSwitch, AMD GPUs on Infinity Fabric) and with the alpha-beta model on published
        link figures elsewhere; ``None`` forces alpha-beta, ``"xla"`` the calibrated model. The
        collectives are part of the program: no per-execution overhead (``standalone=False``).

    Example (on 8 devices, e.g. XLA_FLAGS=--xla_force_host_platform_device_count=8)::

        mesh = jax.make_mesh((8,), ("data",))
        step = jax.jit(grad_fn, in_shardings=(rep, rep, NamedSharding(mesh, P("data"))),
                       out_shardings=rep)
        pred = predict_sharded(step, (w1, w2, x), platform="8xh100-nvlink")
        print(pred)   # compute, communication, one row per all-reduce
    """
    plat = get_platform(platform)
    inputs = tuple(inputs)
    raw, lowered, compiled = _compile(fn, inputs, mesh, in_shardings, out_shardings)
    mesh = _find_mesh(compiled, mesh)
    mesh_shape = tuple(int(s) for s in mesh.devices.shape)
    axis_names = tuple(str(a) for a in mesh.axis_names)
    dev = _mesh_devices(plat, math.prod(mesh_shape), device_map)
    hlo = compiled.as_text()
    notes: list[str] = []
    # XLA:CPU computes bf16/f16 in f32 and so communicates f32 values where GPUs and TPUs send the
    # 16-bit ones. When every floating input and output of the program is 16-bit, f32 collectives
    # are taken to be such promotions and counted at the 16-bit width (noted in the result).
    half = _interface_half_precision(inputs, lowered)
    mesh_info = (mesh_shape, axis_names, dev)
    rows = [
        _collective_row(c, plat, mesh_info, half, algorithm, fit, notes)
        for c in parse_collectives(hlo, mesh_shape)
    ]
    if "while" in hlo and rows:
        notes.append("the program has loops: collectives inside loop bodies are counted once")
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    nbytes = float(cost.get("bytes accessed", 0.0)) if cost else 0.0
    specs = {plat.specs[i].name: plat.specs[i] for i in dev}
    compute_s, model = _compute_time(compute, raw, inputs, compiled, specs, flops, nbytes, notes)
    comm = float(sum(r.time_s for r in rows))
    return ShardedPrediction(
        time_s=float(compute_s + comm),
        compute_s=float(compute_s),
        communication_s=comm,
        collectives=tuple(rows),
        platform=plat.name,
        mesh_shape=mesh_shape,
        axis_names=axis_names,
        flops_per_device=flops,
        bytes_per_device=nbytes,
        compute_model=model,
        notes=tuple(notes),
        hlo=hlo,
    )


def _compile(
    fn: Callable, inputs: tuple[Any, ...], mesh: Any, in_shardings: Any, out_shardings: Any
) -> tuple[Callable, Any, Any]:
    """(the function as written, its lowering, its compiled SPMD program) for ``inputs``."""
    if in_shardings is not None:
        if mesh is None:
            raise InputError("in_shardings given as PartitionSpecs need mesh=.")

        def to_sharding(s):
            return (
                jax.sharding.NamedSharding(mesh, s)
                if isinstance(s, jax.sharding.PartitionSpec)
                else s
            )

        is_spec = lambda x: isinstance(x, (jax.sharding.PartitionSpec, jax.sharding.Sharding))
        ins = jax.tree_util.tree_map(to_sharding, in_shardings, is_leaf=is_spec)
        outs = (
            jax.tree_util.tree_map(to_sharding, out_shardings, is_leaf=is_spec)
            if out_shardings is not None
            else None
        )
        raw = fn
        jitted = jax.jit(fn, in_shardings=ins, out_shardings=outs)
    else:
        jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
        raw = getattr(fn, "__wrapped__", fn)
    needed = None
    if mesh is not None:
        needed = mesh.size
    if needed is not None and jax.device_count() < needed:
        raise RuntimeError(_too_few(needed))
    try:
        lowered = jitted.lower(*inputs)
        compiled = lowered.compile()
    except Exception as e:  # device count or sharding problems surface here
        if "devices" in str(e) and jax.device_count() < 8:
            raise RuntimeError(f"{_too_few(None)} (XLA said: {str(e)[:300]})") from None
        raise
    return raw, lowered, compiled


def _mesh_devices(plat: Platform, n: int, device_map: Sequence[int | str] | None) -> list[int]:
    """The platform device at each of the mesh's ``n`` positions."""
    if device_map is None:
        if plat.num_devices < n:
            raise InputError(
                f"the mesh has {n} devices but platform {plat.name!r} has {plat.num_devices}; use a "
                "larger platform or pass device_map= (one platform device per mesh position)."
            )
        dev = list(range(n))
    else:
        dev = [plat.index(d) for d in device_map]
        if len(dev) != n:
            raise InputError(f"device_map has {len(dev)} entries for a mesh of {n} devices.")
    return dev


def _collective_row(
    c: dict[str, Any], plat: Platform, mesh_info: tuple, half: str | None, algorithm: str,
    fit: Any, notes: list[str],
) -> CollectiveRow:  # fmt: skip
    """One collective of the partitioned program, timed on the platform's links (notes added
    to ``notes``)."""
    kind = c["kind"]
    arrays = c.pop("arrays")
    if half and any(dtype == "f32" for dtype, _ in arrays):
        full = _shape_bytes(" ".join(f"{d}[{s}]" for d, s in arrays))
        kept = sum(b / 2 if d == "f32" else b for b, (d, _) in zip(full, arrays))
        c["operand_bytes"] *= kept / sum(full)
        note = f"f32 collectives counted at 16 bits: the program's interface is {half} (XLA:CPU promotes to f32)"
        if note not in notes:
            notes.append(note)
    if kind == "collective_permute":
        times, models, axes, lb, hops = _permute_times(c, plat, mesh_info, algorithm, fit)
        moved = [p for p in c["pairs"] if p[0] != p[1]]
        groups, size, ngroups = (), 2, len(moved)
    else:
        times, models, axes, lb, hops = _group_times(c, plat, mesh_info, algorithm, fit)
        groups = c["groups"]
        size, ngroups = len(groups[0]), len(groups)
    for label in sorted(models):
        note = f"collectives on {plat.name}: {label}"
        if note not in notes:
            notes.append(note)
    if algorithm == "auto":
        alg = min(times, key=lambda k: float(times[k]))
    elif algorithm in times:
        alg = algorithm
    else:
        raise InputError(
            f"algorithm {algorithm!r} does not apply to {c['name']} ({kind}); available: {sorted(times)}."
        )
    return CollectiveRow(
        name=c["name"],
        kind=kind,
        operand_bytes=float(c["operand_bytes"]),
        group_size=size,
        num_groups=ngroups,
        axes=axes,
        link_bytes=int(lb),
        hops=int(hops),
        time_s=float(times[alg]),
        algorithm=alg,
        groups=tuple(tuple(g) for g in groups),
        pairs=tuple(c.get("pairs", ())),
        model=", ".join(sorted(models)),
    )


def _permute_times(
    c: dict[str, Any], plat: Platform, mesh_info: tuple, algorithm: str, fit: Any
) -> tuple[dict[str, float], set[str], tuple[str, ...], float, int]:
    """A collective-permute's time per algorithm, the collective models used, the mesh axes it
    moves along, and its link bytes and hops."""
    mesh_shape, axis_names, dev = mesh_info
    kind = c["kind"]
    pairs = [tuple(p) for p in c["pairs"]]
    moved = [p for p in pairs if p[0] != p[1]]
    axes = ()
    if moved:
        coords = [
            (np.unravel_index(s, mesh_shape), np.unravel_index(d, mesh_shape)) for s, d in moved
        ]
        axes = tuple(
            axis_names[i] for i in range(len(mesh_shape)) if any(a[i] != b[i] for a, b in coords)
        )
    # roofline linearises pairs over the permuted axes only.
    sub = [axis_names.index(a) for a in axes]
    sub_dims = [mesh_shape[i] for i in sub]
    local = (
        [
            (
                int(
                    np.ravel_multi_index(
                        [np.unravel_index(s, mesh_shape)[i] for i in sub], sub_dims
                    )
                ),
                int(
                    np.ravel_multi_index(
                        [np.unravel_index(d, mesh_shape)[i] for i in sub], sub_dims
                    )
                ),
            )
            for s, d in moved
        ]
        if sub
        else []
    )
    # The same permutation runs in every slice of the other axes, over disjoint links.
    local = sorted(set(local))
    lb, hops = link_bytes(kind, c["operand_bytes"], sub_dims, pairs=local, mesh_dims=sub_dims)
    models = set()
    if moved:
        group = [(dev[s], dev[d]) for s, d in moved]
        chosen = choose_fit(kind, plat, group, algorithm=algorithm, fit=fit)
        models.add(_model_label(chosen))
        times = algorithm_times_s(kind, c["operand_bytes"], plat, group, fit=chosen)
    else:
        times = {"direct": 0.0}
    return times, models, axes, lb, hops


def _group_times(
    c: dict[str, Any], plat: Platform, mesh_info: tuple, algorithm: str, fit: Any
) -> tuple[dict[str, float], set[str], tuple[str, ...], float, int]:
    """A grouped collective's time per algorithm (the slowest group's), the collective models
    used, the mesh axes its groups span, and its link bytes and hops."""
    mesh_shape, axis_names, dev = mesh_info
    kind = c["kind"]
    groups = c["groups"]
    size = len(groups[0])
    axes = _group_axes(groups, mesh_shape, axis_names) if size > 1 else ()
    lb, hops = link_bytes(kind, c["operand_bytes"], [mesh_shape[axis_names.index(a)] for a in axes])
    # Groups run at the same time; each is timed on its own devices (no contention between
    # groups is modelled), and the slowest sets the time. All groups use one algorithm:
    # those every group has (groups of one platform may fall under different models).
    per_group, models = [], set()
    for g in groups:
        if len(g) < 2:
            continue
        group = [dev[i] for i in g]
        chosen = choose_fit(kind, plat, group, algorithm=algorithm, fit=fit)
        models.add(_model_label(chosen))
        gt = algorithm_times_s(kind, c["operand_bytes"], plat, group, fit=chosen)
        per_group.append({k: float(v) for k, v in gt.items()})
    common = [k for k in per_group[0] if all(k in t for t in per_group)] if per_group else []
    times = {k: max(t[k] for t in per_group) for k in common}
    if per_group and not times:  # no algorithm shared: each group its fastest
        times = {"per_group": max(min(t.values()) for t in per_group)}
    if not times:
        times = {"none": 0.0}
    return times, models, axes, lb, hops


def _compute_time(
    compute: str, raw: Callable, inputs: tuple[Any, ...], compiled: Any,
    specs: dict[str, Any], flops: float, nbytes: float, notes: list[str],
) -> tuple[float, str]:  # fmt: skip
    """Per-device compute time and how it was made: the device models on the per-device shapes
    (``compute="predict"``, or ``"auto"`` where that works), else a roofline on XLA's counts."""
    precision = _precision_of(inputs)
    compute_s, model = None, "roofline on XLA per-device counts"
    if compute in ("auto", "predict"):
        compute_s, why = _predict_local(raw, inputs, compiled, specs, flops)
        if compute_s is not None:
            model = "perfjax.predict on per-device shapes"
        elif compute == "predict":
            raise InputError(f"compute='predict' failed: {why}")
        else:
            notes.append(f"compute from a roofline on XLA's counts: {why}")
    elif compute != "roofline":
        raise InputError(f"compute must be 'auto', 'predict' or 'roofline', got {compute!r}.")
    if compute_s is None:
        compute_s = max(_roofline_compute_s(flops, nbytes, s, precision) for s in specs.values())
    return compute_s, model


def _model_label(chosen: Any) -> str:
    """How ``collective_time_s`` times a group under the fit ``choose_fit`` returned."""
    if chosen is None:
        return "alpha-beta on published link figures"
    if isinstance(chosen, CollectiveFit):
        return f"calibrated model, {chosen.family} fit"
    return f"calibrated model, fit={chosen!r}"


def _interface_half_precision(inputs, lowered) -> str | None:
    """``"bf16"``/``"f16"`` when every floating input and output is of that type, else None."""
    leaves = [*jax.tree_util.tree_leaves(inputs), *jax.tree_util.tree_leaves(lowered.out_info)]
    floats = {str(x.dtype) for x in leaves if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)}
    if floats == {"bfloat16"}:
        return "bf16"
    if floats == {"float16"}:
        return "f16"
    return None


def _too_few(needed: int | None) -> str:
    want = needed or "the mesh's"
    return (
        f"this program needs {want} devices but jax sees {jax.device_count()}; to emulate them on a CPU "
        f"set XLA_FLAGS=--xla_force_host_platform_device_count={needed or 8} before importing jax"
    )


# Local-trace flops may differ from the partitioned program's by this factor before the local trace
# is considered unrepresentative (XLA counts a few extra elementwise ops, e.g. for the reductions).
_FLOPS_AGREEMENT = 1.25


def _predict_local(raw, inputs, compiled, specs, xla_flops) -> tuple[float | None, str]:
    """perfjax.predict of ``raw`` at per-device input shapes (the shard shapes of the compiled
    input shardings), or (None, reason)."""

    try:
        in_sh = jax.tree_util.tree_leaves(
            compiled.input_shardings[0], is_leaf=lambda x: isinstance(x, jax.sharding.Sharding)
        )
        leaves, tree = jax.tree_util.tree_flatten(inputs)
        if len(in_sh) != len(leaves):
            return None, "input shardings do not line up with the inputs"
        local = [
            jax.ShapeDtypeStruct(s.shard_shape(tuple(x.shape)), x.dtype)
            for s, x in zip(in_sh, leaves)
        ]
        local_inputs = jax.tree_util.tree_unflatten(tree, local)
        program = program_for(raw, local_inputs, None)
        local_flops = float(graph_for(program).flops)
    except Exception as e:  # shard_map bodies, global reshapes ... cannot run at local shapes
        return None, f"the function does not trace at per-device shapes ({type(e).__name__})"
    if xla_flops > 0 and not (
        xla_flops / _FLOPS_AGREEMENT <= local_flops <= xla_flops * _FLOPS_AGREEMENT
    ):
        return None, (
            f"its per-device trace counts {local_flops:.3g} flops but the partitioned program "
            f"{xla_flops:.3g}"
        )
    times = [float(predict(program, device=spec).time_s) for spec in specs.values()]
    return max(times), ""


__all__ = [
    "CollectiveRow",
    "ShardedPrediction",
    "link_bytes",
    "parse_collectives",
    "predict_sharded",
]
