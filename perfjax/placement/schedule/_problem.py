"""The placement problem as plain arrays, built from a perfjax program or a published graph file.

A :class:`PlacementProblem` is everything the placement algorithms need and nothing else: a DAG of
``n`` kernels, the time of each kernel on each of ``d`` devices, the bytes on each edge, the
device-to-device bandwidth and latency matrices, and memory (bytes resident per kernel, capacity
per device). ``problem_from`` builds one from a JAX function, Program or Graph and a platform;
``load_fiddle`` reads the public msr-fiddle device-placement graphs.
"""

from __future__ import annotations

import collections
import dataclasses
import graphlib
import gzip
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from perfjax._errors import InputError
from perfjax.devicemodels._calibration import calibration_for, params_for
from perfjax.devicemodels._models import pack_numpy, program_times_jit, resolve
from perfjax.fusion._kernels import fuse
from perfjax.lowering._graph import Graph
from perfjax.lowering._staging import graph_for, program_for
from perfjax.placement.comm._platform import platform as get_platform

#: Nominal link bandwidth used to turn the fiddle files' transfer *times* into bytes.
FIDDLE_LINK_BYTES_PER_S = 1e9
_FIDDLE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "fiddle")


def _arr(x: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class PlacementProblem:
    """A kernel DAG to place on devices, as arrays (seconds, bytes, bytes/s).

    Attributes:
      names: kernel names (``n``), unique.
      compute_time_s: ``(n, d)`` time of kernel ``i`` on device ``j``; ``inf`` = unsupported there.
      edges: ``(e, 2)`` int, ``src -> dst`` kernel indices (the DAG must be acyclic).
      edge_bytes: ``(e,)`` bytes moved along each edge when its ends are on different devices.
      bandwidth_bytes_per_s: ``(d, d)``; the diagonal is ignored (same device: no transfer).
      latency_s: ``(d, d)``; the diagonal is ignored.
      memory_bytes: ``(n,)`` bytes resident on the kernel's device (its weights).
      capacity_bytes: ``(d,)`` memory per device (``inf`` = unlimited).
      device_names: ``d`` names.
      colocate: optional ``(n,)`` int class per kernel; kernels of one class share a device.
      name: a label for tables and plots.

    Example:
      >>> import numpy as np
      >>> p = PlacementProblem(names=("a", "b"), compute_time_s=np.array([[1.0, 2.0], [1.0, 2.0]]),
      ...     edges=np.array([[0, 1]]), edge_bytes=np.array([1e9]),
      ...     bandwidth_bytes_per_s=np.full((2, 2), 1e9), latency_s=np.zeros((2, 2)),
      ...     memory_bytes=np.zeros(2), capacity_bytes=np.full(2, np.inf), device_names=("x", "y"))
      >>> p.lower_bound_s()
      2.0
    """

    names: tuple[str, ...]
    compute_time_s: np.ndarray
    edges: np.ndarray
    edge_bytes: np.ndarray
    bandwidth_bytes_per_s: np.ndarray
    latency_s: np.ndarray
    memory_bytes: np.ndarray
    capacity_bytes: np.ndarray
    device_names: tuple[str, ...]
    colocate: np.ndarray | None = None
    name: str = "problem"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("names", tuple(str(s) for s in self.names))
        set_("device_names", tuple(str(s) for s in self.device_names))
        n, d = len(self.names), len(self.device_names)
        t = _arr(self.compute_time_s)
        if t.shape != (n, d):
            raise InputError(
                f"compute_time_s has shape {t.shape}; expected (n kernels, d devices) = ({n}, {d})."
            )
        if np.isnan(t).any() or (t < 0).any():
            bad = np.argwhere(np.isnan(t) | (t < 0))[:5].tolist()
            raise InputError(
                f"compute_time_s must be >= 0 (inf = unsupported); bad entries at {bad}."
            )
        unsupported = np.isinf(t).all(axis=1)
        if unsupported.any():
            names = [self.names[i] for i in np.flatnonzero(unsupported)[:5]]
            raise InputError(
                f"kernels {names} are unsupported (inf time) on every device; add a device that "
                "runs them."
            )
        e = (
            _arr(self.edges, np.int64).reshape(-1, 2)
            if np.size(self.edges)
            else np.zeros((0, 2), np.int64)
        )
        if len(e) and (e.min() < 0 or e.max() >= n):
            raise InputError(f"edges name kernel indices outside [0, {n}).")
        if len(e) and (e[:, 0] == e[:, 1]).any():
            raise InputError("edges contain a self-loop (a cycle); the graph must be a DAG.")
        b = _arr(self.edge_bytes).reshape(-1)
        if b.shape != (len(e),):
            raise InputError(f"edge_bytes has {b.size} entries; expected one per edge ({len(e)}).")
        if (b < 0).any() or np.isnan(b).any():
            raise InputError("edge_bytes must be >= 0.")
        bw, lat = _arr(self.bandwidth_bytes_per_s), _arr(self.latency_s)
        if bw.shape != (d, d) or lat.shape != (d, d):
            raise InputError(
                f"bandwidth_bytes_per_s {bw.shape} and latency_s {lat.shape} must be ({d}, {d})."
            )
        off = ~np.eye(d, dtype=bool)
        if (bw[off] <= 0).any() or (lat[off] < 0).any():
            raise InputError("bandwidths must be > 0 and latencies >= 0 between distinct devices.")
        mem, cap = _arr(self.memory_bytes).reshape(-1), _arr(self.capacity_bytes).reshape(-1)
        if mem.shape != (n,) or cap.shape != (d,):
            raise InputError(
                f"memory_bytes {mem.shape} must be ({n},) and capacity_bytes {cap.shape} ({d},)."
            )
        if len(set(self.names)) != n:
            raise InputError("kernel names must be unique.")
        if len(set(self.device_names)) != d:
            raise InputError("device names must be unique.")
        col = None
        if self.colocate is not None:
            col = _arr(self.colocate, np.int64).reshape(-1)
            if col.shape != (n,):
                raise InputError(f"colocate has {col.size} entries; expected {n}.")
            _, col = np.unique(col, return_inverse=True)
        for k, v in dict(compute_time_s=t, edges=e, edge_bytes=b, bandwidth_bytes_per_s=bw,
                         latency_s=lat, memory_bytes=mem, capacity_bytes=cap).items():  # fmt: skip
            v.setflags(write=False)
            set_(k, v)
        if col is not None:
            col.setflags(write=False)
        set_("colocate", col)
        set_("_order", _topological_order(n, e, self.names))

    # ---- sizes and structure --------------------------------------------------------------

    @property
    def num_kernels(self) -> int:
        return len(self.names)

    @property
    def num_devices(self) -> int:
        return len(self.device_names)

    @property
    def order(self) -> np.ndarray:
        """A topological order of the kernels (the given order when it already is one)."""
        return self._order

    def groups(self) -> np.ndarray:
        """Colocation class of each kernel (each kernel its own class when none are given)."""
        return self.colocate if self.colocate is not None else np.arange(self.num_kernels)

    def edge_time_s(self) -> np.ndarray:
        """``(e, d, d)`` transfer time of each edge between each device pair (0 on the diagonal)."""
        d = self.num_devices
        off = ~np.eye(d, dtype=bool)
        with np.errstate(divide="ignore"):
            inv = np.where(off, 1.0 / self.bandwidth_bytes_per_s, 0.0)
        lat = np.where(off, self.latency_s, 0.0)
        return lat[None] + self.edge_bytes[:, None, None] * inv[None]

    def transfer_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(latency, 1/bandwidth)`` with zero diagonals: transfer = lat + bytes * inv_bw."""
        d = self.num_devices
        off = ~np.eye(d, dtype=bool)
        with np.errstate(divide="ignore"):
            inv = np.where(off, 1.0 / self.bandwidth_bytes_per_s, 0.0)
        return np.where(off, self.latency_s, 0.0), inv

    # ---- bounds ---------------------------------------------------------------------------

    def lower_bound_s(self) -> float:
        """max(critical path at each kernel's fastest device without transfers, min work / d)."""
        fastest = self.compute_time_s.min(axis=1)
        finish = np.zeros(self.num_kernels)
        preds = predecessor_lists(self)
        for i in self.order:
            finish[i] = fastest[i] + max((finish[p] for p in preds[i]), default=0.0)
        cp = float(finish.max(initial=0.0))
        return max(cp, float(fastest.sum()) / self.num_devices)

    def __repr__(self) -> str:
        return (
            f"PlacementProblem({self.name!r}: {self.num_kernels} kernels, {len(self.edges)} edges, "
            f"devices {list(self.device_names)})"
        )


def _topological_order(n: int, edges: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """A topological order of ``n`` kernels: ``0..n-1`` when every edge already points forward,
    else depth first (the kernel made ready last runs next; sources in index order)."""
    if len(edges) == 0 or (edges[:, 0] < edges[:, 1]).all():
        return np.arange(n)
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for i in range(n):
        sorter.add(i)
    for s, t in edges.tolist():
        sorter.add(t, s)
    try:
        sorter.prepare()
    except graphlib.CycleError:
        pass  # the kernels before the cycle still come out; the error below names the rest
    stack = list(sorter.get_ready())[::-1]
    order = []
    while stack:
        i = stack.pop()
        order.append(i)
        sorter.done(i)
        stack.extend(sorter.get_ready())
    if len(order) != n:
        placed = set(order)
        cyc = [names[i] for i in range(n) if i not in placed][:5]
        raise InputError(
            f"the kernel graph has a cycle (through {cyc}); placement needs a DAG: unroll loops "
            "or drop back edges."
        )
    return np.asarray(order)


def predecessor_lists(problem: PlacementProblem) -> list[list[int]]:
    preds: list[list[int]] = [[] for _ in range(problem.num_kernels)]
    for s, t in problem.edges:
        preds[t].append(int(s))
    return preds


# ---------------------------------------------------------------------------------------------
# From a perfjax program
# ---------------------------------------------------------------------------------------------


def _resolve_platform(platform: Any) -> Any:
    if isinstance(platform, (str, os.PathLike)):
        return get_platform(platform)
    for attr in ("device_names", "specs", "bandwidth_matrix_bytes_per_s", "latency_matrix_s"):
        if not hasattr(platform, attr):
            raise TypeError(
                f"platform must be a perfjax.placement.Platform or its name; got "
                f"{type(platform).__name__} (no {attr!r})."
            )
    return platform


def _graph_of(x: Any, inputs: Any) -> Any:

    if isinstance(x, Graph):
        return x
    return graph_for(program_for(x, inputs, None))


def problem_from(
    fn_or_program_or_graph: Any,
    inputs: Sequence[Any] | None = None,
    *,
    platform: Any,
    policy: str = "gpu",
) -> PlacementProblem:
    """Builds the placement problem of a JAX program on a platform.

    Kernels come from **one** fusion policy for every device (``"gpu"`` by default: GEMM
    epilogues and loop fusions, as XLA's GPU and TPU compilers do), so the same kernel exists on
    every device; a CPU would fuse a little less, which flatters it slightly. Each kernel's time on
    each device comes from that device's model (vectorised over kernels, priors or the saved host
    calibration), times its execution count. An edge joins two kernels when one reads a value
    the other produces (looking through free ops such as reshape/broadcast); its bytes are the
    produced values' sizes. Memory per kernel is its weights' bytes (program inputs or constants
    read as a GEMM/conv operand); program inputs are taken as already resident where needed.
    Kernels on a cycle (a loop body's carried values) are merged into one kernel, which then
    runs on one device.

    Args:
      fn_or_program_or_graph: a function (with ``inputs``), a ``Program`` or a ``Graph``.
      inputs: positional arguments of a function (arrays or ``jax.ShapeDtypeStruct``).
      platform: a ``perfjax.placement.Platform`` or a built-in platform name.
      policy: the common fusion policy (``"gpu"``, ``"cpu"``, ``"none"`` ...).
    """

    plat = _resolve_platform(platform)
    graph = _graph_of(fn_or_program_or_graph, inputs)
    kernels = fuse(graph, policy)
    if len(kernels) == 0:
        raise InputError(f"program {graph.name!r} has no kernels to place (it only moves views).")
    times = _kernel_times(kernels, plat)
    edges, ebytes = _kernel_edges(graph, kernels)
    names, times, edges, ebytes, weights = _merge_cycles(
        _unique_names(kernels.names), times, edges, ebytes, np.asarray(kernels.weight_bytes, float)
    )
    mem = getattr(plat, "memory_bytes", None)
    cap = np.asarray(mem if mem is not None else [s.memory_bytes for s in plat.specs], float)
    bw = np.asarray(plat.bandwidth_matrix_bytes_per_s(), float)
    np.fill_diagonal(bw, np.inf)
    return PlacementProblem(
        names=tuple(names),
        compute_time_s=times,
        edges=edges,
        edge_bytes=ebytes,
        bandwidth_bytes_per_s=bw,
        latency_s=np.asarray(plat.latency_matrix_s(), float),
        memory_bytes=weights,
        capacity_bytes=cap,
        device_names=tuple(plat.device_names),
        name=f"{graph.name} on {getattr(plat, 'name', 'platform')}",
    )


def _kernel_times(kernels: Any, plat: Any) -> np.ndarray:
    """``(n, d)`` time of each kernel on each device of ``plat`` times its execution count; a
    device that cannot run the program's precision gets an ``inf`` column."""
    times = np.full((len(kernels), len(plat.device_names)), np.inf)
    arrays = kernels.arrays()
    for j, spec in enumerate(plat.specs):
        try:
            res = resolve(kernels, spec, None)
        except ValueError:
            continue  # the device cannot run this program's precision: inf column
        params = params_for(spec, calibration_for(spec))
        out, _ = program_times_jit(arrays, pack_numpy(spec), params, res.arrays(), spec.family)
        times[:, j] = np.asarray(out.time_s, np.float64) * kernels.executions
    return times


def _kernel_edges(graph: Graph, kernels: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, bytes)`` between kernels, sorted: kernel p -> k when k reads a value an op of p
    produces, resolving operands through ops outside kernels (free ops, views); the bytes are
    the produced values' sizes, each value counted once per edge."""
    op_kernel = np.full(len(graph.ops), -1)
    for k, members in enumerate(kernels.ops):
        op_kernel[list(members)] = k
    cache: dict[int, tuple[int, ...]] = {}

    def producers(src: int) -> tuple[int, ...]:
        """Ops inside kernels whose values flow into operand ``src`` (through free ops)."""
        if src < 0:
            return ()
        if op_kernel[src] >= 0:
            return (src,)
        if src not in cache:
            cache[src] = ()
            cache[src] = tuple(
                dict.fromkeys(p for s in graph.ops[src].sources for p in producers(s))
            )
        return cache[src]

    edge_vals: dict[tuple[int, int], dict[int, float]] = {}
    for k, members in enumerate(kernels.ops):
        for i in members:
            for s in graph.ops[i].sources:
                for p in producers(s):
                    kp = int(op_kernel[p])
                    if kp != k:
                        nbytes = float(sum(r.nbytes for r in graph.ops[p].results))
                        edge_vals.setdefault((kp, k), {})[p] = nbytes
    pairs = sorted(edge_vals)
    edges = np.asarray(pairs, np.int64).reshape(-1, 2)
    ebytes = np.asarray([sum(edge_vals[pq].values()) for pq in pairs], np.float64)
    return edges, ebytes


def _unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeated ones numbered in order (``add#1``, ``add#2``)."""
    counts = collections.Counter(names)
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        seen[nm] = seen.get(nm, 0) + 1
        out.append(nm if counts[nm] == 1 else f"{nm}#{seen[nm]}")
    return out


def _merge_cycles(names, times, edges, ebytes, weights):
    """Contracts each cycle of kernels (loop-carried values, fusion across a loop body) into one
    kernel: a cycle runs serially on one device, so its kernels' times and weights add up."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    n = len(names)
    if len(edges) == 0:
        return names, times, edges, ebytes, weights
    graph = coo_array((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    k, label = connected_components(graph, directed=True, connection="strong")
    if k == n:
        return names, times, edges, ebytes, weights
    # Number the components in order of their first kernel.
    first = np.full(k, n)
    np.minimum.at(first, label, np.arange(n))
    rank = np.empty(k, np.int64)
    rank[np.argsort(first)] = np.arange(k)
    label = rank[label]
    sizes = np.bincount(label, minlength=k)
    new_names = []
    for c in range(k):
        members = np.flatnonzero(label == c)
        nm = names[members[0]]
        new_names.append(nm if sizes[c] == 1 else f"{nm} (+{sizes[c] - 1} in a cycle)")
    new_times = np.zeros((k, times.shape[1]))
    np.add.at(new_times, label, times)
    new_w = np.bincount(label, weights, minlength=k)
    src, dst = label[edges[:, 0]], label[edges[:, 1]]
    keep = src != dst
    pairs: dict[tuple[int, int], float] = {}
    for a, b, nb in zip(src[keep].tolist(), dst[keep].tolist(), ebytes[keep].tolist()):
        pairs[(a, b)] = pairs.get((a, b), 0.0) + nb
    keys = sorted(pairs)
    e = np.asarray(keys, np.int64).reshape(-1, 2)
    return new_names, new_times, e, np.asarray([pairs[q] for q in keys]), new_w


# ---------------------------------------------------------------------------------------------
# msr-fiddle graphs
# ---------------------------------------------------------------------------------------------


def fiddle_files() -> list[str]:
    """Names of the msr-fiddle graphs shipped with perfjax (for :func:`load_fiddle`)."""
    out = []
    for root, _, files in os.walk(_FIDDLE_DIR):
        for f in files:
            if f.endswith(".json.gz") and "expert" not in f:
                rel = os.path.relpath(os.path.join(root, f), _FIDDLE_DIR)
                out.append(rel[: -len(".json.gz")].replace(os.sep, "/"))
    return sorted(out)


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        shipped = os.path.join(_FIDDLE_DIR, path if path.endswith(".gz") else path + ".json.gz")
        if os.path.exists(shipped):
            path = shipped
        else:
            raise FileNotFoundError(
                f"no fiddle graph {path!r}; give a path to a msr-fiddle JSON file or one of the "
                f"shipped names {fiddle_files()}."
            )
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def load_fiddle(
    path: str,
    *,
    accelerators: int | None = None,
    cpus: int | None = 1,
    time_unit_s: float = 1e-3,
    colocate: bool = True,
) -> PlacementProblem:
    """Reads a msr-fiddle (dnn-partitioning, NeurIPS 2020) device-placement input.

    Devices are ``k`` accelerators (``maxFPGAs``, each with ``maxSizePerFPGA`` bytes) followed by
    CPU cores (``cpuLatency`` times, unlimited memory). Latencies are taken as milliseconds
    (``time_unit_s``). A node's ``cost`` is the time to move its output between an accelerator
    and CPU memory; perfjax models every pair of distinct devices with that one cost (a uniform
    link: edge bytes = cost x :data:`FIDDLE_LINK_BYTES_PER_S`, zero latency), and counts it per
    edge that crosses devices (links contention-free). Nodes with ``supportedOnFpga = 0`` get an
    infinite accelerator time. ``colorClass`` (same class, same device) becomes ``colocate``.

    Args:
      path: a file path, or a shipped name such as ``"latency/LayerGraphs/bert24_inference"``
        (see :func:`fiddle_files`).
      accelerators: override ``maxFPGAs``.
      cpus: CPU cores as devices (default 1; ``None`` = ``maxCPUs``).
      time_unit_s: seconds per time unit of the file.
      colocate: honour ``colorClass``.
    """
    data = _read_json(path)
    nodes, raw_edges = data["nodes"], data["edges"]
    ids = [int(v["id"]) for v in nodes]
    index = {v: i for i, v in enumerate(ids)}
    k = int(data.get("maxFPGAs", 1) if accelerators is None else accelerators)
    c = int(data.get("maxCPUs", 1) if cpus is None else cpus)
    if k + c < 1:
        raise InputError("need at least one device (accelerators + cpus >= 1).")
    acc = np.array([float(v["fpgaLatency"]) for v in nodes]) * time_unit_s
    acc[np.array([not v.get("supportedOnFpga", 1) for v in nodes], bool)] = np.inf
    cpu = np.array([float(v["cpuLatency"]) for v in nodes]) * time_unit_s
    times = np.concatenate([np.repeat(acc[:, None], k, 1), np.repeat(cpu[:, None], c, 1)], 1)
    e = np.array(
        [[index[int(x["sourceId"])], index[int(x["destId"])]] for x in raw_edges], np.int64
    )
    cost = np.array([float(x["cost"]) for x in raw_edges]) * time_unit_s
    # Put nodes in a topological order so that kernel i only feeds kernels after it.
    n = len(nodes)
    order = _topological_order(n, e, [str(i) for i in ids])
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    d = k + c
    bw = np.full((d, d), FIDDLE_LINK_BYTES_PER_S)
    np.fill_diagonal(bw, np.inf)
    size = np.array([float(v.get("size", 0.0)) for v in nodes])
    cls = None
    if colocate and any("colorClass" in v for v in nodes):
        cls = np.array([int(v.get("colorClass", -1 - i)) for i, v in enumerate(nodes)])[order]
    name = os.path.basename(str(path)).split(".")[0]
    return PlacementProblem(
        names=tuple(str(nodes[i].get("name", ids[i])) for i in order),
        compute_time_s=times[order],
        edges=pos[e] if len(e) else np.zeros((0, 2), np.int64),
        edge_bytes=cost * FIDDLE_LINK_BYTES_PER_S,
        bandwidth_bytes_per_s=bw,
        latency_s=np.zeros((d, d)),
        memory_bytes=np.where(np.isinf(acc), 0.0, size)[order],
        capacity_bytes=np.array([float(data.get("maxSizePerFPGA", math.inf))] * k + [math.inf] * c),
        device_names=tuple([f"acc{j}" for j in range(k)] + [f"cpu{j}" for j in range(c)]),
        colocate=cls,
        name=name,
    )


def fiddle_node_ids(path: str) -> dict[int, str]:
    """Node id -> kernel name of a fiddle file (expert splits list node ids)."""
    data = _read_json(path)
    return {int(v["id"]): str(v.get("name", v["id"])) for v in data["nodes"]}


# ---------------------------------------------------------------------------------------------
# Random layered DAGs (Topcuoglu et al. 2002's generator, in simplified form)
# ---------------------------------------------------------------------------------------------


def random_problem(
    num_kernels: int,
    num_devices: int = 3,
    *,
    ccr: float = 1.0,
    heterogeneity: float = 0.5,
    shape: float = 1.0,
    out_degree: int = 3,
    seed: int = 0,
    capacity_factor: float | None = None,
) -> PlacementProblem:
    """A random layered DAG, as in the HEFT paper's experiments.

    Layers: about ``sqrt(n) / shape`` of them, widths drawn around ``shape * sqrt(n)``. Each kernel
    (after the first layer) gets 1..``out_degree`` inputs from earlier layers (mostly the previous
    one). Mean compute ``w_i ~ U(0, 2)`` (seconds); on device j it is
    ``w_i * U(1 - h/2, 1 + h/2)`` for heterogeneity ``h`` in [0, 2). Edge transfer times average
    ``ccr`` times the mean compute (communication-to-computation ratio), on unit-bandwidth links
    (``edge_bytes`` = seconds at 1 byte/s). ``capacity_factor`` gives each device
    ``factor * total memory / d`` bytes (random weights per kernel); ``None`` = unlimited.
    """
    rng = np.random.default_rng(seed)
    n, d = int(num_kernels), int(num_devices)
    if n < 1 or d < 1:
        raise InputError("need at least one kernel and one device.")
    if not 0 <= heterogeneity < 2:
        raise InputError(f"heterogeneity must be in [0, 2); got {heterogeneity}.")
    mean_width = max(1.0, shape * math.sqrt(n))
    layers: list[int] = []
    left = n
    while left > 0:
        w = int(min(left, max(1, round(rng.uniform(0.5, 1.5) * mean_width))))
        layers.append(w)
        left -= w
    layer_of = np.repeat(np.arange(len(layers)), layers)
    first = np.concatenate([[0], np.cumsum(layers)])
    edges = set()
    for i in range(layers[0], n):
        lv = layer_of[i]
        k = int(rng.integers(1, out_degree + 1))
        for _ in range(k):
            src_layer = lv - 1 if rng.random() < 0.8 or lv == 1 else int(rng.integers(0, lv - 1))
            s = int(rng.integers(first[src_layer], first[src_layer + 1]))
            edges.add((s, i))
    # Every non-sink kernel of a non-last layer feeds someone (no dangling kernels).
    has_out = {s for s, _ in edges}
    for i in range(first[-2] if len(layers) > 1 else 0):
        if i not in has_out:
            lv = layer_of[i]
            edges.add((i, int(rng.integers(first[lv + 1], first[lv + 2]))))
    e = np.asarray(sorted(edges), np.int64).reshape(-1, 2)
    w = rng.uniform(0.0, 2.0, n)
    times = w[:, None] * rng.uniform(1 - heterogeneity / 2, 1 + heterogeneity / 2, (n, d))
    ebytes = rng.uniform(0.0, 2.0 * ccr, len(e)) * float(times.mean())
    bw = np.ones((d, d))
    np.fill_diagonal(bw, np.inf)
    mem = rng.uniform(0.0, 2.0, n)
    cap = (
        np.full(d, np.inf)
        if capacity_factor is None
        else np.full(d, capacity_factor * mem.sum() / d)
    )
    return PlacementProblem(
        names=tuple(f"k{i}" for i in range(n)),
        compute_time_s=times,
        edges=e,
        edge_bytes=ebytes,
        bandwidth_bytes_per_s=bw,
        latency_s=np.zeros((d, d)),
        memory_bytes=mem,
        capacity_bytes=cap,
        device_names=tuple(f"dev{j}" for j in range(d)),
        name=f"random n={n} d={d} ccr={ccr:g} h={heterogeneity:g} seed={seed}",
    )


def fiddle_expert(name: str, graph: str) -> dict[str, str]:
    """A published human-expert split as an assignment (kernel name -> device) of the graph
    read by ``load_fiddle(graph)``: expert accelerator ``j`` becomes ``acc{j}``, CPU ``j``
    becomes ``cpu{j}``.

    Args:
      name: an expert file (path, or shipped name such as ``"human-experts/bert24_inference_expert"``).
      graph: the graph file the split refers to (maps node ids to names).
    """
    data = _read_json(name)
    ids = fiddle_node_ids(graph)
    out: dict[str, str] = {}
    for kind, prefix in (("fpgas", "acc"), ("cpus", "cpu")):
        for j, dev in enumerate(data.get(kind, [])):
            for v in dev["nodes"]:
                if int(v) not in ids:
                    raise InputError(
                        f"the expert split {name!r} names node {v}, absent from {graph!r}."
                    )
                out[ids[int(v)]] = f"{prefix}{j}"
    missing = [v for v in ids.values() if v not in out]
    if missing:
        raise InputError(f"the expert split {name!r} misses nodes {missing[:5]} of {graph!r}.")
    return out
