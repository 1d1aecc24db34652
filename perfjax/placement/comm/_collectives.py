"""Time of collective communication: differentiable alpha-beta models, and their use on a platform.

Conventions (the same as the ``stablehlo.*`` collective cost rules' ``bytes`` feature):

* ``nbytes`` is the size of the **operand on each device**: the full buffer of an all-reduce, the
  local shard of an all-gather (its result is ``p * nbytes``), the full input of a reduce-scatter
  (its result is ``nbytes / p``), the whole send buffer of an all-to-all (``nbytes / p`` goes to each
  peer), the buffer of a send / collective-permute.
* ``p`` is the group size, ``bandwidth_bytes_per_s`` the bandwidth of one link in one direction
  (links are full duplex) and ``latency_s`` the latency of one step (alpha).

The formulas are the alpha-beta costs of Thakur, Rabenseifner and Gropp, "Optimization of
Collective Communication Operations in MPICH", IJHPCA 19(1), 2005 (Table 1; the reduction compute
term gamma is left out: it runs at memory speed and is small next to the link time). In NCCL's
terms (NCCL docs, "Performance reported by NCCL tests": bus bandwidth), a ring all-reduce moves
``2 (p-1)/p * nbytes`` over each device's busiest link, which is the busbw factor.

Every function is pure ``jnp``: ``jax.grad`` works with respect to bytes, bandwidth and latency,
and ``jax.vmap`` over message sizes.

Two models share these conventions:

* ``fit=None``: the alpha-beta formulas above on the platform's published link figures, with no
  overhead and the full link bandwidth (a lower bound on real libraries).
* ``fit="xla"`` (or a ``CollectiveFit``): the *calibrated* model of NCCL / RCCL-style collectives
  (``calibrated_time_s``): a per-launch and a per-execution overhead, a latency per algorithm step,
  an achievable share of the link that depends on the algorithm and the group size, and the
  pipelining ramp between the latency and the bandwidth regimes. Its parameters were fitted to
  XLA's measured collective table (``perfjax.placement.xla_collectives``), separately for NVIDIA
  NVLink/NVSwitch and AMD Infinity Fabric platforms (``collective_fit``).

The default, ``fit="auto"`` (``collective_time_s``, ``algorithm_times_s``, ``best_algorithm``,
``predict_sharded``), takes the calibrated model with the fitted parameters of the group's vendor
family wherever that fit applies (``fitted_family``: every device of the group a GPU of one fitted
vendor, joined only by the links the fit was made on, each pair directly or through one switch:
NVIDIA GPUs on NVLink / NVSwitch, AMD GPUs on fully connected Infinity Fabric) and the kind is one
it covers; everywhere else (TPUs, CPUs, PCIe-only GPU servers, mixed host + GPU groups, NVLink
rings relaying through other GPUs, ``collective_broadcast``, or an ``algorithm`` that only the
alpha-beta model has) it keeps the alpha-beta model. Held out by architecture, the fitted model
beats the alpha-beta one on every NVIDIA machine of XLA's table (median error for messages of at
least 1 MiB: B200 65.8 % -> 23.3 %, GB200 38.2 % -> 10.2 %, GB300 37.8 % -> 10.3 %;
``benchmarks/collectives_vs_xla.py``). ``fit=None`` forces the alpha-beta model.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from perfjax._errors import InputError
from perfjax.placement.comm._platform import platform as get_platform

#: Collective kinds and their accepted aliases (StableHLO / HLO / jax.lax names).
KINDS = {
    "all_reduce": ("all_reduce", "all-reduce", "allreduce", "psum"),
    "all_gather": ("all_gather", "all-gather", "allgather"),
    "reduce_scatter": ("reduce_scatter", "reduce-scatter", "psum_scatter"),
    "all_to_all": ("all_to_all", "all-to-all", "alltoall"),
    "collective_permute": ("collective_permute", "collective-permute", "ppermute"),
    "collective_broadcast": ("collective_broadcast", "collective-broadcast", "broadcast"),
    "send_recv": ("send_recv", "send", "recv", "p2p"),
}
#: Algorithms per kind (``collective_time_s(algorithm=...)``); "torus" needs a torus topology.
ALGORITHMS = {
    "all_reduce": ("ring", "recursive_doubling", "halving_doubling", "torus"),
    "all_gather": ("ring", "recursive_doubling", "torus"),
    "reduce_scatter": ("ring", "recursive_halving", "torus"),
    "all_to_all": ("pairwise", "bruck", "torus"),
    "collective_broadcast": ("binomial_tree", "scatter_allgather"),
    "collective_permute": ("direct",),
    "send_recv": ("direct",),
}
#: Sharpness of ``smooth_min`` (in log-time): the result is at most k**(1/q) below the true minimum
#: of k times (2.2 % for 3 algorithms at q = 50) and every algorithm gets a non-zero gradient.
SMOOTH_MIN_SHARPNESS = 50.0


def _kind(kind: str) -> str:
    key = str(kind).strip().lower().replace("stablehlo.", "")
    for name, aliases in KINDS.items():
        if key in aliases:
            return name
    valid = sorted({a for al in KINDS.values() for a in al})
    raise InputError(f"unknown collective kind {kind!r}; valid: {valid}.")


def _lg(p: Any) -> Any:
    """Number of recursive doubling/halving steps: ceil(log2 p) (exact for powers of two)."""
    return math.ceil(math.log2(p)) if isinstance(p, (int, np.integer)) else jnp.ceil(jnp.log2(p))


def _values(x: Any) -> np.ndarray | None:
    """Concrete values of ``x`` as float64 (None while traced by jit/grad/vmap: checked outside)."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, bool) or isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"expected a number, got {type(x).__name__} {x!r}")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"expected a number, got {type(x).__name__} {x!r}") from None
    return arr


def _check(where: str, name: str, x: Any, *, positive: bool | None, unit: str) -> None:
    """Raises ``ValueError`` unless every concrete value of ``x`` is finite and > 0 (``positive``),
    >= 0 (``positive=False``) or any sign (``None``), naming the argument, what was expected and
    the value given."""
    sign = {True: " > 0", False: " >= 0", None: ""}[positive]
    want = f"a finite number{sign} ({unit})"
    try:
        arr = _values(x)
    except TypeError as e:
        raise TypeError(f"{where}: {name} must be {want}; {e}.") from None
    if arr is None:
        return
    bad = ~np.isfinite(arr)
    if positive is not None:
        bad |= (arr <= 0) if positive else (arr < 0)
    if bad.any():
        shown = float(arr[bad].flat[0])
        raise InputError(f"{where}: {name} must be {want}, got {shown!r}.")


def _check_group_size(where: str, p: Any) -> None:
    arr = _values(p) if not isinstance(p, (str, bytes, bool)) and p is not None else False
    if arr is False:
        raise TypeError(f"{where}: group_size must be an integer >= 1 (devices), got {p!r}.")
    if arr is None:
        return
    bad = ~np.isfinite(arr) | (arr < 1) | (arr != np.round(arr))
    if bad.any():
        raise InputError(
            f"{where}: group_size must be an integer >= 1 (devices), got {float(arr[bad].flat[0])!r}."
        )


def _check_args(where: str, nbytes: Any, group_size: Any, bandwidth: Any, latency: Any) -> None:
    _check(where, "nbytes", nbytes, positive=False, unit="bytes per device")
    if group_size is not None:
        _check_group_size(where, group_size)
    _check(where, "bandwidth_bytes_per_s", bandwidth, positive=True, unit="bytes/s")
    # Only finite here: finite-difference gradient checks probe latencies just below 0, and the
    # latencies of a platform are checked >= 0 when it is built.
    _check(where, "latency_s", latency, positive=None, unit="seconds")


# ---------------------------------------------------------------------------------------------
# alpha-beta formulas (Thakur et al. 2005, Table 1), n = operand bytes per device
# ---------------------------------------------------------------------------------------------


def all_reduce_time_s(nbytes, group_size, bandwidth_bytes_per_s, latency_s, algorithm="ring"):
    """All-reduce time.

    * ring: reduce-scatter then all-gather around a ring, ``2(p-1)`` steps of ``n/p`` bytes:
      ``2(p-1)/p * n/B + 2(p-1) alpha`` (NCCL's busbw factor ``2(p-1)/p``).
    * recursive_doubling: ``lg p`` exchanges of the whole buffer: ``lg p * (alpha + n/B)``.
    * halving_doubling (Rabenseifner): recursive-halving reduce-scatter + recursive-doubling
      all-gather: ``2 lg p alpha + 2(p-1)/p * n/B``.

    Example:
      >>> float(all_reduce_time_s(8e9, 8, 1e9, 0.0))  # 2 * 7/8 * 8 GB / 1 GB/s
      14.0
    """
    _check_args("all_reduce_time_s", nbytes, group_size, bandwidth_bytes_per_s, latency_s)
    p, n, b, a = group_size, nbytes, bandwidth_bytes_per_s, latency_s
    if algorithm == "ring":
        return 2 * (p - 1) / p * n / b + 2 * (p - 1) * a
    if algorithm == "recursive_doubling":
        return _lg(p) * (a + n / b)
    if algorithm == "halving_doubling":
        return 2 * _lg(p) * a + 2 * (p - 1) / p * n / b
    raise InputError(_bad_algorithm("all_reduce", algorithm))


def all_gather_time_s(nbytes, group_size, bandwidth_bytes_per_s, latency_s, algorithm="ring"):
    """All-gather of an ``n``-byte shard per device (result ``p*n``).

    * ring: ``p-1`` steps forwarding one shard: ``(p-1) (alpha + n/B)``.
    * recursive_doubling: ``lg p alpha + (p-1) n/B`` (each step doubles the data held).
    """
    _check_args("all_gather_time_s", nbytes, group_size, bandwidth_bytes_per_s, latency_s)
    p, n, b, a = group_size, nbytes, bandwidth_bytes_per_s, latency_s
    if algorithm == "ring":
        return (p - 1) * (a + n / b)
    if algorithm == "recursive_doubling":
        return _lg(p) * a + (p - 1) * n / b
    raise InputError(_bad_algorithm("all_gather", algorithm))


def reduce_scatter_time_s(nbytes, group_size, bandwidth_bytes_per_s, latency_s, algorithm="ring"):
    """Reduce-scatter of an ``n``-byte buffer per device (result ``n/p``).

    * ring: ``p-1`` steps of ``n/p`` bytes: ``(p-1) (alpha + n/(p B))``.
    * recursive_halving: ``lg p alpha + (p-1)/p n/B``.
    """
    _check_args("reduce_scatter_time_s", nbytes, group_size, bandwidth_bytes_per_s, latency_s)
    p, n, b, a = group_size, nbytes, bandwidth_bytes_per_s, latency_s
    if algorithm == "ring":
        return (p - 1) * (a + n / (p * b))
    if algorithm == "recursive_halving":
        return _lg(p) * a + (p - 1) / p * n / b
    raise InputError(_bad_algorithm("reduce_scatter", algorithm))


def all_to_all_time_s(nbytes, group_size, bandwidth_bytes_per_s, latency_s, algorithm="pairwise"):
    """All-to-all of an ``n``-byte buffer per device (``n/p`` to each peer).

    * pairwise exchange: ``p-1`` steps of ``n/p`` bytes: ``(p-1)(alpha + n/(p B))`` (full bisection).
    * bruck: ``lg p`` steps of ``n/2`` bytes: ``lg p (alpha + n/(2B))`` (latency-optimal).
    """
    _check_args("all_to_all_time_s", nbytes, group_size, bandwidth_bytes_per_s, latency_s)
    p, n, b, a = group_size, nbytes, bandwidth_bytes_per_s, latency_s
    if algorithm == "pairwise":
        return (p - 1) * (a + n / (p * b))
    if algorithm == "bruck":
        return _lg(p) * (a + n / (2 * b))
    raise InputError(_bad_algorithm("all_to_all", algorithm))


def broadcast_time_s(
    nbytes, group_size, bandwidth_bytes_per_s, latency_s, algorithm="binomial_tree"
):
    """Broadcast of ``n`` bytes from one device.

    * binomial_tree: ``lg p (alpha + n/B)``.
    * scatter_allgather (van de Geijn): ``(lg p + p - 1) alpha + 2 (p-1)/p n/B``.
    """
    _check_args("broadcast_time_s", nbytes, group_size, bandwidth_bytes_per_s, latency_s)
    p, n, b, a = group_size, nbytes, bandwidth_bytes_per_s, latency_s
    if algorithm == "binomial_tree":
        return _lg(p) * (a + n / b)
    if algorithm == "scatter_allgather":
        return (_lg(p) + p - 1) * a + 2 * (p - 1) / p * n / b
    raise InputError(_bad_algorithm("collective_broadcast", algorithm))


def send_recv_time_s(nbytes, bandwidth_bytes_per_s, latency_s):
    """Point to point: ``alpha + n/B``.

    Example:
      >>> float(send_recv_time_s(1e9, 1e9, 1e-6))
      1.000001
    """
    _check_args("send_recv_time_s", nbytes, None, bandwidth_bytes_per_s, latency_s)
    return latency_s + nbytes / bandwidth_bytes_per_s


def _ring_factor(d: int) -> int:
    # A dimension of size > 2 has a wraparound link, so a bidirectional ring sends half the data
    # each way (2 links per chip per dimension); with size 2 both neighbours are the same chip
    # over one link, so there is no second direction to use.
    return 2 if d > 2 else 1


def torus_time_s(kind, nbytes, dims, bandwidth_bytes_per_s, latency_s):
    """Collectives on a torus, one dimension after the other with bidirectional rings.

    An all-reduce is a reduce-scatter along each dimension in turn (the data shrinks by ``d_i``
    after each) followed by all-gathers in the reverse order; on dimension i with ``d_i`` chips,
    ``w_i = 2`` ring directions if ``d_i > 2``: ``sum_i 2 (d_i-1)/d_i * n_i/(w_i B) + 2(d_i-1) alpha``
    with ``n_i = n / prod_{j<i} d_j``. (Running the dimensions concurrently on slices of the buffer,
    as TPU runtimes can, is up to ``len(dims)`` times faster; this is the sequential bound.)
    All-to-all is bisection bound: ``p n / 4`` bytes cross the cut of the largest dimension D in
    each direction, over ``w_D p / D`` links.

    Example:
      >>> float(torus_time_s("all_reduce", 8e9, (8,), 1e9, 0.0))  # 2*7/8*8e9 / (2 * 1e9)
      7.0
    """
    kind = _kind(kind)
    _check_args("torus_time_s", nbytes, None, bandwidth_bytes_per_s, latency_s)
    if isinstance(dims, (str, bytes)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims
    ):
        raise InputError(
            f"torus_time_s: dims must be a sequence of integers >= 1 (chips per dimension), got {dims!r}."
        )
    dims = [int(d) for d in dims if int(d) > 1]
    p = math.prod(dims) if dims else 1
    n, b, a = nbytes, bandwidth_bytes_per_s, latency_s
    if p == 1:
        return 0.0 * n
    if kind in ("all_reduce", "reduce_scatter"):
        total, size = 0.0, n
        for d in dims:
            w = _ring_factor(d)
            total = total + (d - 1) / d * size / (w * b) + (d - 1) * a
            size = size / d
        return 2 * total if kind == "all_reduce" else total
    if kind == "all_gather":
        total, size = 0.0, n
        for d in dims:  # the gathered block grows by d_i after each dimension
            w = _ring_factor(d)
            total = total + (d - 1) * size / (w * b) + (d - 1) * a
            size = size * d
        return total
    if kind == "all_to_all":
        big = max(dims)
        links = _ring_factor(big) * p / big
        hops = sum(d // 2 for d in dims)
        return p * n / 4 / (links * b) + hops * a
    raise InputError(
        f"no torus model for {kind!r}; torus covers all_reduce, all_gather, "
        "reduce_scatter and all_to_all."
    )


def smooth_min(times: Any, sharpness: float = SMOOTH_MIN_SHARPNESS) -> Any:
    """A differentiable minimum of positive times: ``exp(-logsumexp(-q log t) / q)``, taken in
    log space so that it is scale free; never above the true minimum, at most ``k**(1/q)`` below."""
    t = jnp.asarray(times)
    return jnp.exp(-jax.nn.logsumexp(-sharpness * jnp.log(t)) / sharpness)


def _bad_algorithm(kind: str, algorithm: str) -> str:
    return (
        f"unknown {kind} algorithm {algorithm!r}; valid: {(*ALGORITHMS[kind], 'auto', 'smooth')}."
    )


# ---------------------------------------------------------------------------------------------
# on a platform
# ---------------------------------------------------------------------------------------------


def _link_loads(platform, pairs) -> dict[tuple[str, str], int]:
    loads: dict[tuple[str, str], int] = {}
    for s, d in pairs:
        if s == d:
            continue
        for hop in platform.route_links(s, d):
            loads[hop] = loads.get(hop, 0) + 1
    return loads


def _effective_bandwidth(platform, pairs) -> float:
    """Bandwidth each flow gets when all ``pairs`` send at once: the worst, over the directed links
    used, of the link bandwidth divided by the number of flows sharing it."""
    loads = _link_loads(platform, pairs)
    if not loads:
        return math.inf
    return min(platform.link(a, b).bandwidth_bytes_per_s / c for (a, b), c in loads.items())


def _greedy_ring(platform, group: list[int]) -> list[int]:
    lat = platform.latency_matrix_s()
    bw = platform.bandwidth_matrix_bytes_per_s()
    order, left = [group[0]], set(group[1:])
    while left:
        last = order[-1]
        nxt = min(sorted(left), key=lambda j: (-bw[last, j], lat[last, j]))
        order.append(nxt)
        left.remove(nxt)
    return order


def _snake(dims: Sequence[int]) -> list[tuple[int, ...]]:
    """Reflected mixed-radix Gray code: consecutive coordinates differ by one step in one dimension
    (a Hamiltonian path of the torus that also closes into a ring when the first dim is even)."""
    if not dims:
        return [()]
    rest = _snake(dims[1:])
    out = []
    for i in range(dims[0]):
        out.extend((i, *r) for r in (rest if i % 2 == 0 else rest[::-1]))
    return out


def ring_parameters(platform, group: Sequence[int | str] | None = None) -> tuple[float, float]:
    """``(bandwidth, step latency)`` of the best ring over ``group`` on ``platform``: the group's
    order, a greedy nearest-neighbour order, or (for a whole torus) the snake order, with link
    sharing between ring hops accounted."""
    idx = _group(platform, group)
    best = (0.0, math.inf)
    lat = platform.latency_matrix_s()
    orders = [idx, _greedy_ring(platform, idx)]
    torus = _torus_members(platform, idx)
    if torus is not None:
        members, dims = torus
        orders.append([members[int(np.ravel_multi_index(c, dims))] for c in _snake(dims)])
    for order in orders:
        pairs = list(zip(order, [*order[1:], order[0]]))
        bw = _effective_bandwidth(platform, pairs)
        alpha = max(float(lat[s, d]) for s, d in pairs)
        if (bw, -alpha) > (best[0], -best[1]):
            best = (bw, alpha)
    return best


def _group(platform, group) -> list[int]:
    if group is None:
        return list(range(platform.num_devices))
    if isinstance(group, (str, bytes)) or not isinstance(group, Sequence | np.ndarray):
        raise TypeError(
            f"group must be a sequence of device indices or names of platform {platform.name!r}, "
            f"got {type(group).__name__} {group!r}."
        )
    if len(group) == 0:
        raise InputError(
            f"group is empty; list at least one device of platform {platform.name!r} "
            f"({', '.join(platform.device_names)}), or pass group=None for all of them."
        )
    idx = [platform.index(g) for g in group]
    if len(set(idx)) != len(idx):
        raise InputError(f"group {list(group)!r} lists a device twice.")
    return idx


def _torus_members(platform, idx: list[int]) -> tuple[list[int], tuple[int, ...]] | None:
    names = {platform.device_names[i] for i in idx}
    for topo in platform.topologies:
        if topo.get("kind") == "torus" and set(topo["devices"]) == names:
            return [platform.index(d) for d in topo["devices"]], topo["dims"]
    return None


def _torus_dims(platform, idx: list[int]) -> tuple[tuple[int, ...], float, float] | None:
    names = {platform.device_names[i] for i in idx}
    for topo in platform.topologies:
        if topo.get("kind") == "torus" and set(topo["devices"]) == names:
            return topo["dims"], topo["bandwidth_bytes_per_s"], topo["latency_s"]
    return None


def algorithm_times_s(
    kind: str, nbytes: Any, platform, group=None, fit: Any = "auto", standalone: bool = False
) -> dict[str, Any]:
    """Time of every algorithm that applies to ``kind`` on ``platform`` (name -> jnp scalar).

    ``fit`` chooses the model as in ``collective_time_s``: with the default ``"auto"`` a group that
    the fitted model covers gets the calibrated algorithms (``CALIBRATED_ALGORITHMS``: the ring,
    pairwise or direct one, plus ``switch_reduction`` where NVLS applies), any other group the
    alpha-beta ones (``ALGORITHMS``); ``fit=None`` always gives the alpha-beta ones.

    Example:
      >>> sorted(algorithm_times_s("all_reduce", 1e9, "8xh100-nvlink"))
      ['ring']
      >>> sorted(algorithm_times_s("all_reduce", 1e9, "8xh100-nvlink", fit=None))
      ['halving_doubling', 'recursive_doubling', 'ring']
    """
    chosen = choose_fit(kind, platform, group, fit=fit)
    if chosen is not None:
        return _calibrated_times(kind, nbytes, platform, group, chosen, standalone)[0]
    return _alpha_beta_times(kind, nbytes, platform, group)


def _send_recv_time(nbytes: Any, platform, group) -> Any:
    """One message from ``group[0]`` to ``group[1]`` over their best route (0 to itself)."""
    if group is None or len(group) != 2:
        raise InputError("send_recv needs group=(src, dst).")
    s, d = (platform.index(g) for g in group)
    if s == d:
        return 0.0 * nbytes
    return send_recv_time_s(
        nbytes,
        float(platform.bandwidth_matrix_bytes_per_s()[s, d]),
        float(platform.latency_matrix_s()[s, d]),
    )


def _permute_time(nbytes: Any, platform, pairs) -> Any:
    """All ``(src, dst)`` messages at once: the slowest one, each link's bandwidth shared by the
    routes crossing it."""
    if pairs is None:
        raise InputError("collective_permute needs group=[(src, dst), ...] source-target pairs.")
    pairs = [(platform.index(s), platform.index(d)) for s, d in pairs]
    loads = _link_loads(platform, pairs)
    lat = platform.latency_matrix_s()
    worst = 0.0 * nbytes
    for s, d in pairs:
        if s == d:
            continue
        per_byte = max(
            loads[hop] / platform.link(*hop).bandwidth_bytes_per_s
            for hop in platform.route_links(s, d)
        )
        worst = jnp.maximum(worst, float(lat[s, d]) + nbytes * per_byte)
    return worst


def _alpha_beta_times(kind: str, nbytes: Any, platform, group=None) -> dict[str, Any]:
    """Alpha-beta time of every algorithm of ``ALGORITHMS[kind]`` that applies on ``platform``."""

    platform = get_platform(platform)
    kind = _kind(kind)
    _check(f"{kind} on platform {platform.name!r}", "nbytes", nbytes, positive=False,
           unit="operand bytes per device")  # fmt: skip
    if kind == "send_recv":
        return {"direct": _send_recv_time(nbytes, platform, group)}
    if kind == "collective_permute":
        return {"direct": _permute_time(nbytes, platform, group)}
    idx = _group(platform, group)
    p = len(idx)
    if p == 1:
        return {ALGORITHMS[kind][0]: 0.0 * nbytes}
    ring_bw, ring_alpha = ring_parameters(platform, idx)
    bw = platform.bandwidth_matrix_bytes_per_s()[np.ix_(idx, idx)]
    lat = platform.latency_matrix_s()[np.ix_(idx, idx)]
    # Tree-like algorithms talk to partners at many distances: slowest pair bandwidth, longest latency.
    pair_bw, pair_alpha = float(bw[~np.eye(p, dtype=bool)].min()), float(lat.max())
    torus = _torus_dims(platform, idx)
    out: dict[str, Any] = {}
    if kind == "all_reduce":
        out["ring"] = all_reduce_time_s(nbytes, p, ring_bw, ring_alpha, "ring")
        out["recursive_doubling"] = all_reduce_time_s(
            nbytes, p, pair_bw, pair_alpha, "recursive_doubling"
        )
        out["halving_doubling"] = all_reduce_time_s(
            nbytes, p, pair_bw, pair_alpha, "halving_doubling"
        )
    elif kind == "all_gather":
        out["ring"] = all_gather_time_s(nbytes, p, ring_bw, ring_alpha, "ring")
        out["recursive_doubling"] = all_gather_time_s(
            nbytes, p, pair_bw, pair_alpha, "recursive_doubling"
        )
    elif kind == "reduce_scatter":
        out["ring"] = reduce_scatter_time_s(nbytes, p, ring_bw, ring_alpha, "ring")
        out["recursive_halving"] = reduce_scatter_time_s(
            nbytes, p, pair_bw, pair_alpha, "recursive_halving"
        )
    elif kind == "all_to_all":
        # All p flows of each pairwise step share links: use the all-pairs contention bound.
        pairs = [(s, d) for s in idx for d in idx if s != d]
        shared = _effective_bandwidth(platform, pairs) * (p - 1)
        eff = min(pair_bw, shared)
        out["pairwise"] = all_to_all_time_s(nbytes, p, eff, pair_alpha, "pairwise")
        out["bruck"] = all_to_all_time_s(nbytes, p, eff, pair_alpha, "bruck")
    elif kind == "collective_broadcast":
        out["binomial_tree"] = broadcast_time_s(nbytes, p, pair_bw, pair_alpha, "binomial_tree")
        out["scatter_allgather"] = broadcast_time_s(
            nbytes, p, ring_bw, ring_alpha, "scatter_allgather"
        )
    if torus is not None and kind in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all"):
        dims, tb, ta = torus
        out["torus"] = torus_time_s(kind, nbytes, dims, tb, ta)
    return out


def collective_time_s(
    kind: str,
    nbytes: Any,
    platform,
    group=None,
    algorithm: str = "auto",
    fit: Any = "auto",
    standalone: bool = False,
) -> Any:
    """Time of one collective on a platform (a jnp scalar, differentiable in ``nbytes``).

    Args:
      kind: ``all_reduce``, ``all_gather``, ``reduce_scatter``, ``all_to_all``,
        ``collective_permute``, ``collective_broadcast`` or ``send_recv`` (HLO/lax aliases work).
      nbytes: operand bytes per device (see the module docstring).
      platform: a ``Platform`` or anything ``perfjax.placement.platform`` accepts.
      group: devices taking part (indices or names; default all); ``(src, dst)`` for send_recv;
        ``[(src, dst), ...]`` for collective_permute.
      algorithm: one of ``ALGORITHMS[kind]`` (alpha-beta) or ``CALIBRATED_ALGORITHMS[kind]``
        (calibrated), ``"auto"`` (the fastest, exact minimum) or ``"smooth"`` (``smooth_min`` over
        the algorithms: every one gets a gradient).
      fit: ``"auto"`` (default): the calibrated model with the fitted parameters of the group's
        vendor family where they apply (``fitted_family``: NVIDIA GPUs on NVLink / NVSwitch, AMD
        GPUs on fully connected Infinity Fabric; kinds of ``CALIBRATED_KINDS`` and send_recv), the
        alpha-beta model elsewhere (TPUs, CPUs, PCIe, mixed host + GPU groups,
        ``collective_broadcast``, or an ``algorithm`` only the alpha-beta model has, such as
        ``"halving_doubling"`` or ``"torus"``; ``"ring"`` exists in both and follows the
        group). ``None``: always the alpha-beta model on the platform's published link figures.
        ``"xla"``: the calibrated model, fitted parameters of the platform's vendor family
        (``collective_fit``; an error where no fit applies); or a ``CollectiveFit`` / family name.
      standalone: with the calibrated model, add the per-execution overhead, as when the
        collective is a whole program of its own (XLA's tables); ``False`` (default) for a
        collective inside a larger program. No effect on the alpha-beta model.

    Example:
      >>> from perfjax.placement import collective_time_s
      >>> t = collective_time_s("all_reduce", 1e9, "8xh100-nvlink", fit=None)
      >>> round(float(t) * 1e3, 2)   # halving-doubling: 2*7/8 * 1 GB / 450 GB/s + 6 steps x 2 us
      3.9
      >>> t = collective_time_s("all_reduce", 1e9, "8xh100-nvlink")   # fit="auto": the NVIDIA fit
      >>> 3.9e-3 < float(t) < 8e-3   # achievable share of the link, overheads, pipelining ramp
      True
      >>> float(t) == float(collective_time_s("all_reduce", 1e9, "8xh100-nvlink", fit="xla"))
      True
      >>> t = collective_time_s("all_reduce", 1e9, "4xa100-pcie")   # PCIe: no fit, alpha-beta
      >>> float(t) == float(collective_time_s("all_reduce", 1e9, "4xa100-pcie", fit=None))
      True
    """
    chosen = choose_fit(kind, platform, group, algorithm=algorithm, fit=fit)
    if chosen is not None:
        return calibrated_collective_time_s(
            kind, nbytes, platform, group, fit=chosen, algorithm=algorithm, standalone=standalone
        )
    times = _alpha_beta_times(kind, nbytes, platform, group)
    if algorithm == "auto":
        return jnp.min(jnp.stack([jnp.asarray(t) for t in times.values()]))
    if algorithm == "smooth":
        if len(times) == 1:
            return next(iter(times.values()))
        return smooth_min(jnp.stack([jnp.asarray(t) for t in times.values()]))
    if algorithm not in times:
        k = _kind(kind)
        if algorithm in ALGORITHMS[k]:
            raise InputError(
                f"{k} algorithm {algorithm!r} does not apply here (torus needs the group to be a whole "
                f"torus topology of the platform); available: {sorted(times)}."
            )
        raise InputError(_bad_algorithm(k, algorithm))
    return times[algorithm]


def best_algorithm(kind: str, nbytes: float, platform, group=None, fit: Any = "auto") -> str:
    """Name of the fastest algorithm for this collective (under ``fit``, as ``algorithm_times_s``).

    Example:
      >>> best_algorithm("all_reduce", 1e9, "8xh100-nvlink", fit=None)
      'halving_doubling'
      >>> best_algorithm("all_reduce", 2**30, "gb200-nvl72")   # NVLS on the 72-GPU switch
      'switch_reduction'
    """
    times = algorithm_times_s(kind, nbytes, platform, group, fit=fit)
    return min(times, key=lambda k: float(times[k]))


def _is_auto(fit: Any) -> bool:
    return isinstance(fit, str) and fit.strip().lower() == "auto"


def _check_fit(fit: Any) -> None:
    """Raises ``ValueError`` unless ``fit`` is one of the accepted values (before any other check,
    so that a misspelt fit is named as such)."""
    if fit is None or _is_auto(fit) or isinstance(fit, CollectiveFit):
        return
    if isinstance(fit, str) and (fit.strip().lower() == "xla" or fit in FIT_FAMILIES):
        return
    raise InputError(
        f"fit must be None, 'xla', 'auto', a family name {FIT_FAMILIES} or a CollectiveFit, "
        f"got {fit!r}."
    )


def _members(kind: str, platform, group) -> list[int] | None:
    """Indices of the devices that move data in this collective; None where the group is not
    given in the form the kind needs (the model then reports the problem)."""
    if kind in ("send_recv", "collective_permute"):
        if group is None or isinstance(group, (str, bytes)):
            return None
        try:
            pairs = [tuple(group)] if kind == "send_recv" else [tuple(g) for g in group]
        except TypeError:
            return None
        if any(len(pair) != 2 for pair in pairs):
            return None
        idx = [(platform.index(s), platform.index(d)) for s, d in pairs]
        return sorted({i for s, d in idx if s != d for i in (s, d)})
    return _group(platform, group)


def choose_fit(kind: str, platform, group=None, algorithm: str = "auto", fit: Any = "auto"):
    """The calibrated parameters ``collective_time_s(..., fit=fit)`` uses, or ``None`` for the
    alpha-beta model.

    ``fit="auto"``: the fitted parameters of the group's vendor family (``collective_fit``) when
    ``fitted_family`` covers the group (of at least 2 devices that move data), the kind is one the
    calibrated model has (``CALIBRATED_KINDS`` or send_recv) and ``algorithm`` is ``"auto"``,
    ``"smooth"`` or a calibrated algorithm; otherwise ``None``. ``fit=None``: ``None``. Any other
    ``fit`` is returned as given (the calibrated model checks it against the group).

    Example:
      >>> choose_fit("all_gather", "8xmi300x").family
      'amd-infinity-fabric'
      >>> [choose_fit("all_gather", p) for p in ("4xa100-pcie", "tpu-v4-2x2x2", "host+a100-pcie")]
      [None, None, None]
      >>> choose_fit("all_reduce", "8xh100-nvlink", algorithm="halving_doubling") is None
      True
    """

    _check_fit(fit)
    if fit is None:
        return None
    if not _is_auto(fit):
        return fit
    k = _kind(kind)
    covered = "collective_permute" if k == "send_recv" else k
    if covered not in CALIBRATED_KINDS:
        return None
    if algorithm not in ("auto", "smooth", *CALIBRATED_ALGORITHMS[covered]):
        return None
    platform = get_platform(platform)
    idx = _members(k, platform, group)
    if idx is None or len(idx) < 2:
        return None
    family = _fitted_family(platform, tuple(idx))[0]
    if family is None:
        # An algorithm only the calibrated model has (NVLS): let it explain why it cannot apply.
        return "xla" if algorithm not in ("auto", "smooth", *ALGORITHMS[k]) else None
    return collective_fit(family)


# ---------------------------------------------------------------------------------------------
# calibrated model: overheads, achievable link share, pipelining ramp (fitted to measured times)
# ---------------------------------------------------------------------------------------------

#: Kinds the calibrated model covers (those of XLA's collective table), in the order of their
#: integer codes in ``calibrated_time_s``.
CALIBRATED_KINDS = (
    "all_reduce",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
    "collective_permute",
)
#: Algorithms of the calibrated model: the menu of NCCL / RCCL inside one NVSwitch or fully
#: connected domain. ``switch_reduction`` is NVLink SHARP (NVLS): the switch adds the buffers.
CALIBRATED_ALGORITHMS = {
    "all_reduce": ("ring", "switch_reduction"),
    "all_gather": ("ring",),
    "reduce_scatter": ("ring",),
    "all_to_all": ("pairwise",),
    "collective_permute": ("direct",),
}
#: Vendor families with their own fitted parameters (never shared between families).
FIT_FAMILIES = ("nvidia-nvlink", "amd-infinity-fabric")
#: Parameters of the calibrated model (see ``calibrated_time_s``).
FIT_PARAMETERS = (
    "launch_s",
    "execution_overhead_s",
    "step_latency_s",
    "peer_latency_s",
    "chunk_overhead_s",
    "ring_efficiency",
    "all_to_all_efficiency",
    "group_size_offset",
    "switch_reduction_efficiency",
)
#: Floor under the pipelining term's square root (s^2): keeps d time / d bytes finite at 0 bytes
#: while adding at most 2 ns.
_RAMP_FLOOR_S2 = 1e-18
_FIT_FILE = "collectives_fit.json"


@dataclasses.dataclass(frozen=True)
class CollectiveFit:
    """Parameters of the calibrated collective model for one vendor family.

    ``params`` maps each name of ``FIT_PARAMETERS`` to a float:

    * ``launch_s``: fixed time of every collective (kernel launch, synchronisation).
    * ``execution_overhead_s``: added once per executable run (``standalone=True``): the PjRt
      execution overhead and the arrival skew between GPUs that XLA's tables include.
    * ``step_latency_s``: latency of one algorithm step (a ring hop, a switch round trip).
    * ``chunk_overhead_s``: per-chunk overhead of the pipelined transfer; it sets how slowly the
      bandwidth regime is reached (``2 sqrt(chunk_overhead_s * wire time)``).
    * ``ring_efficiency``, ``all_to_all_efficiency``: achievable share of a device's link
      bandwidth for large groups (ring-based all-reduce / all-gather / reduce-scatter and
      collective-permute; all-to-all).
    * ``group_size_offset``: the share for ``p`` devices is ``efficiency * p / (p + offset)``
      (positive: small groups reach less of the link, as NCCL's 2- and 4-GPU groups).
    * ``switch_reduction_efficiency``: share of the link for NVLS all-reduce (the switch reduces),
      used on NVSwitch domains of at least ``switch_reduction_min_devices`` GPUs.

    Example:
      >>> from perfjax.placement import collective_fit
      >>> fit = collective_fit("nvidia-nvlink")
      >>> 0.5 < fit.params["ring_efficiency"] < 1.0
      True
    """

    family: str
    params: Mapping[str, float]
    #: NVLS all-reduce applies on NVSwitch domains with at least this many devices (None: never).
    switch_reduction_min_devices: int | None = None
    #: How the parameters were made (data, loss, command).
    source: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.family not in FIT_FAMILIES:
            raise InputError(
                f"CollectiveFit: unknown family {self.family!r}; valid: {FIT_FAMILIES}."
            )
        missing = [k for k in FIT_PARAMETERS if k not in self.params]
        extra = sorted(set(self.params) - set(FIT_PARAMETERS))
        if missing or extra:
            raise InputError(
                f"CollectiveFit({self.family}): params must have exactly {FIT_PARAMETERS}; "
                f"missing {missing}, unknown {extra}."
            )
        for k in FIT_PARAMETERS:
            v = self.params[k]
            if isinstance(v, jax.core.Tracer):
                continue
            v = float(v)
            low = -1.5 if k == "group_size_offset" else 0.0
            if not math.isfinite(v) or v < low or (k.endswith("efficiency") and v <= 0):
                raise InputError(
                    f"CollectiveFit({self.family}): {k} must be a finite number "
                    f"{'> -1.5' if low < 0 else '> 0' if k.endswith('efficiency') else '>= 0'}"
                    f", got {v!r}."
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": {k: float(self.params[k]) for k in FIT_PARAMETERS},
            "switch_reduction_min_devices": self.switch_reduction_min_devices,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectiveFit:
        return cls(
            family=str(data["family"]),
            params={k: float(v) for k, v in dict(data["params"]).items()},
            switch_reduction_min_devices=data.get("switch_reduction_min_devices"),
            source=str(data.get("source", "")),
        )


def prior_fit(family: str) -> CollectiveFit:
    """The calibrated model's parameters from published figures only (the start of every fit).

    Example:
      >>> prior_fit("nvidia-nvlink").params["ring_efficiency"]
      0.82
    """
    if family not in FIT_FAMILIES:
        raise InputError(f"unknown family {family!r}; valid: {FIT_FAMILIES}.")
    params = {
        # Kernel launch ~4-6 us on recent GPUs (../shared/reference/device-specs.md).
        "launch_s": 5e-6,
        # XLA's own latency model charges 1-5 us per op; assumed 5 us per executable.
        "execution_overhead_s": 5e-6,
        # One GPU -> switch -> GPU route of the built-in platforms (2 x 1 us).
        "step_latency_s": 2e-6,
        # All-to-all posts one send and one receive per peer; assumed one route latency each.
        "peer_latency_s": 2e-6,
        # Assumed: one microsecond per pipelined chunk.
        "chunk_overhead_s": 1e-6,
        # NCCL all-reduce bus bandwidth on 8x H100, ~370 of 450 GB/s (device-specs.md "Measured").
        "ring_efficiency": 0.82,
        "all_to_all_efficiency": 0.82,
        "group_size_offset": 0.0,
        # Assumed: NVLS moves each byte once each way, at about half of the link.
        "switch_reduction_efficiency": 0.5,
    }
    return CollectiveFit(
        family=family,
        params=params,
        switch_reduction_min_devices=9 if family == "nvidia-nvlink" else None,
        source="published figures and assumptions (perfjax.placement.prior_fit)",
    )


@functools.lru_cache(maxsize=8)
def _load_fit_file(path: str | None) -> dict[str, Any]:
    if path is None:
        text = (importlib.resources.files("perfjax.placement") / "data" / _FIT_FILE).read_text()
    else:
        with open(path) as f:
            text = f.read()
    return json.loads(text)


def collective_fit(family: str = "nvidia-nvlink", path: str | None = None) -> CollectiveFit:
    """The fitted calibrated-model parameters of a vendor family (shipped in
    ``perfjax/placement/data/collectives_fit.json``, made by ``benchmarks/collectives_vs_xla.py``).

    Args:
      family: ``"nvidia-nvlink"`` or ``"amd-infinity-fabric"``, or a platform (its family).
      path: another fit file of the same layout.

    Example:
      >>> from perfjax.placement import collective_fit
      >>> collective_fit("8xmi300x").family
      'amd-infinity-fabric'
    """
    if not isinstance(family, str) or family not in FIT_FAMILIES:
        family = vendor_family(family)
    data = _load_fit_file(None if path is None else str(path))
    fams = data.get("families", {})
    if family not in fams:
        raise InputError(
            f"the fit file has no parameters for {family!r} (it has {sorted(fams)}); refit with "
            "benchmarks/collectives_vs_xla.py --write-fit."
        )
    return CollectiveFit.from_dict({"family": family, **fams[family]["fit"]})


def vendor_family(platform, group=None) -> str:
    """Which fitted family a platform's group belongs to: ``"nvidia-nvlink"`` (NVIDIA GPUs joined
    by NVLink / NVSwitch) or ``"amd-infinity-fabric"`` (AMD GPUs joined by Infinity Fabric); the
    rule is ``fitted_family``'s.

    Raises ``ValueError`` for anything else (PCIe, TPU ICI, CPUs, mixed vendors, GPUs that reach
    each other only through other GPUs): no fit covers them.

    Example:
      >>> vendor_family("8xb200-nvlink"), vendor_family("8xmi355x")
      ('nvidia-nvlink', 'amd-infinity-fabric')
    """

    platform = get_platform(platform)
    family, why = _fitted_family(platform, tuple(_group(platform, group)))
    if family is None:
        raise InputError(
            f"no fitted collective parameters for platform {platform.name!r} ({why}): the "
            "calibrated model covers NVIDIA GPUs on NVLink/NVSwitch and AMD GPUs on Infinity "
            "Fabric; use fit=None (alpha-beta on the link figures) instead."
        )
    return family


def fitted_family(platform, group=None) -> str | None:
    """The vendor family whose fitted parameters ``fit="auto"`` applies to a group, or ``None``
    (the alpha-beta model then applies).

    A group is covered when every device is a GPU (catalog ``family == "gpu"``) of one fitted
    vendor, every link from a member to another member or to a switch is of the kind that
    vendor's fit was made on (NVIDIA: ``nvlink`` / ``nvswitch``; AMD: ``infinity-fabric``), and
    every pair of members is joined directly or through one switch (an NVSwitch domain, or fully
    connected links as on MI300X / MI355X boards: the calibrated model takes a device's links into
    the group to be usable at once, one hop to any peer). A PCIe tree, TPU ICI, a CPU, a host +
    GPU group or an NVLink ring that relays through other GPUs is not covered.

    Example:
      >>> fitted_family("8xh100-nvlink"), fitted_family("8xmi300x", [0, 3])
      ('nvidia-nvlink', 'amd-infinity-fabric')
      >>> fitted_family("4xa100-pcie"), fitted_family("tpu-v4-2x2x2"), fitted_family("host+a100-pcie")
      (None, None, None)
    """

    platform = get_platform(platform)
    return _fitted_family(platform, tuple(_group(platform, group)))[0]


@functools.lru_cache(maxsize=256)
def _fitted_family(platform, idx: tuple[int, ...]) -> tuple[str | None, str]:
    """``(family, "")`` when a fit covers the group ``idx``, else ``(None, why)``."""
    specs = [platform.specs[i] for i in idx]
    not_gpu = sorted({s.name for s in specs if str(s.family).strip().lower() != "gpu"})
    vendors = {str(s.vendor).strip().lower() for s in specs}
    kinds = {link.kind for link in _member_links(platform, list(idx))}
    described = f"vendors {sorted(vendors)}, links {sorted(kinds)}"
    if not_gpu:
        return (
            None,
            f"{', '.join(not_gpu)} {'is' if len(not_gpu) == 1 else 'are'} not a GPU; {described}",
        )
    if vendors == {"nvidia"} and kinds and kinds <= {"nvlink", "nvswitch"}:
        family = "nvidia-nvlink"
    elif vendors == {"amd"} and kinds and kinds <= {"infinity-fabric"}:
        family = "amd-infinity-fabric"
    else:
        return None, described
    switches = set(platform.switches)
    for a, b in itertools.combinations(idx, 2):
        route = platform.route(a, b)
        if len(route) > 3 or (len(route) == 3 and route[1] not in switches):
            return None, (
                f"{described}, but {route[0]} reaches {route[-1]} only through "
                f"{', '.join(route[1:-1])} (the fit covers peers joined directly or by one switch)"
            )
    return family, ""


def _member_links(platform, idx: list[int]) -> list:
    """Links from each member to another member or to a switch (its ports into the group)."""
    members = {platform.device_names[i] for i in idx}
    reach = members | set(platform.switches)
    out = []
    for link in platform.links:
        if (link.src in members and link.dst in reach) or (
            link.dst in members and link.src in reach
        ):
            out.append(link)
    return out


def injection_bandwidth_bytes_per_s(platform, group=None) -> float:
    """Bandwidth one device can send into the group at once, per direction: the sum of its links
    to other members or to a switch, for the worst member. A switch port counts once (8x H100:
    450 GB/s); fully connected links add up (8x MI300X: 7 x 64 GB/s for the whole board, 64 GB/s
    for a pair).

    Example:
      >>> injection_bandwidth_bytes_per_s("8xmi300x") / 1e9, injection_bandwidth_bytes_per_s("8xmi300x", [0, 1]) / 1e9
      (448.0, 64.0)
    """

    platform = get_platform(platform)
    idx = _group(platform, group)
    links = _member_links(platform, idx)
    totals = []
    for i in idx:
        name = platform.device_names[i]
        totals.append(
            sum(link.bandwidth_bytes_per_s for link in links if name in (link.src, link.dst))
        )
    return float(min(totals)) if totals else math.inf


def _switch_bandwidth(platform, idx: list[int], fit: CollectiveFit) -> float:
    """Port bandwidth of an NVSwitch domain that holds the group and allows NVLS (0: none)."""
    if fit.switch_reduction_min_devices is None:
        return 0.0
    names = {platform.device_names[i] for i in idx}
    for topo in platform.topologies:
        if (
            topo.get("kind") == "nvswitch"
            and names <= set(topo["devices"])
            and len(topo["devices"]) >= fit.switch_reduction_min_devices
        ):
            return float(topo["bandwidth_bytes_per_s"])
    return 0.0


def _permute_bandwidth(platform, pairs: list[tuple[int, int]]) -> float:
    """Bandwidth of the slowest flow of a permutation, with flows sharing links."""
    loads = _link_loads(platform, pairs)
    worst = 0.0
    for s, d in pairs:
        if s == d:
            continue
        per_byte = max(
            loads[hop] / platform.link(*hop).bandwidth_bytes_per_s
            for hop in platform.route_links(s, d)
        )
        worst = max(worst, per_byte)
    return 1.0 / worst if worst > 0 else math.inf


def _kind_code(kind: Any) -> Any:
    if isinstance(kind, str):
        k = _kind(kind)
        if k == "send_recv":
            k = "collective_permute"
        if k not in CALIBRATED_KINDS:
            raise InputError(
                f"the calibrated model covers {CALIBRATED_KINDS} (and send_recv), not {k!r}; "
                "use fit=None for it."
            )
        return CALIBRATED_KINDS.index(k)
    return jnp.asarray(kind)


def calibrated_algorithm_times_s(
    kind: Any,
    nbytes: Any,
    group_size: Any,
    bandwidth_bytes_per_s: Any,
    params: Mapping[str, Any],
    *,
    switch_bandwidth_bytes_per_s: Any = 0.0,
    execution_share: Any = 0.0,
) -> tuple[Any, Any]:
    """Calibrated times of the main algorithm and of NVLS (``inf`` where it does not apply).

    Vectorised: ``kind`` may be an integer array of codes into ``CALIBRATED_KINDS`` and every other
    argument an array of the same shape (this is what the fit runs on). ``p`` is the group size,
    ``B`` the injection bandwidth of a device into its group (``injection_bandwidth_bytes_per_s``;
    for a permute, the bandwidth of its slowest flow), ``n`` the operand bytes per device:

    * bytes over a device's busiest port (NCCL's bus bytes): all-reduce ring ``2(p-1)/p n``,
      all-gather ``(p-1) n``, reduce-scatter and all-to-all ``(p-1)/p n``, permute ``n``;
    * steps: all-reduce ring ``2(p-1)``, all-gather / reduce-scatter ring ``p-1``, all-to-all and
      permute ``1`` (every peer at once);
    * wire time ``w = bus bytes / (eff * B)`` with ``eff = efficiency * p / (p + group_size_offset)``
      (ring: ``ring_efficiency``, all-to-all: ``all_to_all_efficiency``; permute: no p term);
    * time ``= launch_s + execution_share * execution_overhead_s + steps * step_latency_s + w
      + 2 sqrt(chunk_overhead_s * w)``. The last term is the pipelining ramp: with chunks of ``m``
      bytes the transfer costs ``w + (n/m) * chunk_overhead``, which at the best ``m`` exceeds the
      wire time by ``2 sqrt(chunk_overhead * w)`` (less than either term alone).
    * NVLS all-reduce (where ``switch_bandwidth_bytes_per_s > 0``): each GPU sends ``n`` to the
      switch, which reduces, and receives ``n``: ``w = n / (switch_reduction_efficiency * B_port)``,
      ``2 ceil(lg p)`` steps.

    ``execution_share`` is 1 for a standalone program, 0 inside a larger one, and 1/100 for XLA's
    collective-permute rows (a 100-iteration loop, time divided by 100).

    Example:
      >>> from perfjax.placement import collective_fit
      >>> ring, nvls = calibrated_algorithm_times_s("all_reduce", 1e9, 8, 900e9,
      ...                                           collective_fit("nvidia-nvlink").params)
      >>> 2 * 7 / 8 * 1e9 / 900e9 < float(ring) < 4e-3, float(nvls)
      (True, inf)
    """
    q = {k: jnp.asarray(params[k]) for k in FIT_PARAMETERS}
    code = _kind_code(kind)
    real = jnp.result_type(float)  # float32, or float64 under jax_enable_x64
    n = jnp.asarray(nbytes, dtype=real)
    p = jnp.maximum(jnp.asarray(group_size, dtype=real), 2.0)
    bw = jnp.asarray(bandwidth_bytes_per_s)
    ones = jnp.ones_like(p)
    bus = jnp.stack([2 * (p - 1) / p, p - 1, (p - 1) / p, (p - 1) / p, ones])
    steps = jnp.stack([2 * (p - 1), p - 1, p - 1, 0 * ones, ones])
    is_a2a = code == CALIBRATED_KINDS.index("all_to_all")
    eff = jnp.stack(
        [q["ring_efficiency"] * ones] * 3
        + [q["all_to_all_efficiency"] * ones, q["ring_efficiency"] * ones]
    )
    share = p / (p + q["group_size_offset"])
    pick = jax.nn.one_hot(code, len(CALIBRATED_KINDS), axis=0, dtype=p.dtype)
    bus_k, steps_k, eff_k = (jnp.sum(pick * x, axis=0) for x in (bus, steps, eff))
    is_permute = code == CALIBRATED_KINDS.index("collective_permute")
    eff_k = eff_k * jnp.where(is_permute, 1.0, share)
    base = q["launch_s"] + jnp.asarray(execution_share) * q["execution_overhead_s"]

    def ramp(wire):
        return wire + 2 * jnp.sqrt(q["chunk_overhead_s"] * wire + _RAMP_FLOOR_S2)

    peers = jnp.where(is_a2a, p - 1, 0.0) * q["peer_latency_s"]
    main = base + steps_k * q["step_latency_s"] + peers + ramp(bus_k * n / (eff_k * bw))
    sw = jnp.asarray(switch_bandwidth_bytes_per_s)
    nvls_ok = (code == 0) & (sw > 0)
    safe_sw = jnp.where(nvls_ok, sw, 1.0)
    nvls = (
        base
        + 2 * jnp.ceil(jnp.log2(p)) * q["step_latency_s"]
        + ramp(n / (q["switch_reduction_efficiency"] * safe_sw))
    )
    return main, jnp.where(nvls_ok, nvls, jnp.inf)


def calibrated_time_s(
    kind: Any,
    nbytes: Any,
    group_size: Any,
    bandwidth_bytes_per_s: Any,
    params: Mapping[str, Any],
    *,
    switch_bandwidth_bytes_per_s: Any = 0.0,
    execution_share: Any = 0.0,
) -> Any:
    """The faster of ``calibrated_algorithm_times_s`` (NCCL picks per size); pure ``jnp``.

    Example:
      >>> from perfjax.placement import collective_fit
      >>> q = collective_fit("nvidia-nvlink").params
      >>> small = calibrated_time_s("all_gather", 1024, 8, 450e9, q)
      >>> float(small) > q["launch_s"]   # the overhead dominates at 1 KiB
      True
    """
    main, nvls = calibrated_algorithm_times_s(
        kind,
        nbytes,
        group_size,
        bandwidth_bytes_per_s,
        params,
        switch_bandwidth_bytes_per_s=switch_bandwidth_bytes_per_s,
        execution_share=execution_share,
    )
    return jnp.minimum(main, nvls)


def _resolve_fit(fit: Any, family: str) -> CollectiveFit:
    _check_fit(fit)
    if isinstance(fit, CollectiveFit):
        chosen = fit
    elif isinstance(fit, str) and fit.strip().lower() in ("xla", "auto"):
        chosen = collective_fit(family)
    elif isinstance(fit, str) and fit in FIT_FAMILIES:
        chosen = collective_fit(fit)
    else:  # None
        raise InputError("the calibrated model needs a fit ('xla', a family or a CollectiveFit).")
    if chosen.family != family:
        raise InputError(
            f"the fit is for {chosen.family!r} but the platform's group is {family!r}; parameters "
            "are never shared between vendor families."
        )
    return chosen


def _calibrated_times(
    kind: str, nbytes: Any, platform, group, fit: Any, standalone: bool
) -> tuple[dict[str, Any], CollectiveFit | None, float, str]:
    """Calibrated time per algorithm (``{main: t}``, plus ``switch_reduction`` where NVLS applies),
    the fit used (None for a collective that moves nothing), the NVLS port bandwidth and a label."""

    _check_fit(fit)
    platform = get_platform(platform)
    k = _kind(kind)
    where = f"{k} on platform {platform.name!r}"
    _check(where, "nbytes", nbytes, positive=False, unit="operand bytes per device")
    if k == "send_recv":
        if group is None or len(group) != 2:
            raise InputError("send_recv needs group=(src, dst).")
        k, group = "collective_permute", [tuple(group)]
    if k not in CALIBRATED_KINDS:
        raise InputError(
            f"the calibrated model covers {CALIBRATED_KINDS} and send_recv, not {k!r}; use fit=None."
        )
    main_name = CALIBRATED_ALGORITHMS[k][0]
    if k == "collective_permute":
        if group is None:
            raise InputError(
                "collective_permute needs group=[(src, dst), ...] source-target pairs."
            )
        pairs = [(platform.index(s), platform.index(d)) for s, d in group]
        moving = [(s, d) for s, d in pairs if s != d]
        if not moving:
            return {main_name: 0.0 * nbytes}, None, 0.0, where
        idx = sorted({i for pair in moving for i in pair})
        chosen = _resolve_fit(fit, vendor_family(platform, idx))
        p, bw, sw = 2, _permute_bandwidth(platform, moving), 0.0
    else:
        idx = _group(platform, group)
        if len(idx) == 1:
            return {main_name: 0.0 * nbytes}, None, 0.0, where
        chosen = _resolve_fit(fit, vendor_family(platform, idx))
        p, bw = len(idx), injection_bandwidth_bytes_per_s(platform, idx)
        sw = _switch_bandwidth(platform, idx, chosen)
    main, nvls = calibrated_algorithm_times_s(
        k,
        nbytes,
        p,
        bw,
        chosen.params,
        switch_bandwidth_bytes_per_s=sw,
        execution_share=1.0 if standalone else 0.0,
    )
    times = {main_name: main}
    if sw > 0:
        times["switch_reduction"] = nvls
    return times, chosen, sw, where


def calibrated_collective_time_s(
    kind: str,
    nbytes: Any,
    platform,
    group=None,
    fit: Any = "xla",
    algorithm: str = "auto",
    standalone: bool = False,
) -> Any:
    """Calibrated time of one collective on a platform (``collective_time_s(..., fit=...)``):
    always the calibrated model (an error where no fit covers the group, see ``vendor_family``).

    Example:
      >>> t1k = calibrated_collective_time_s("all_gather", 1024, "8xmi300x", standalone=True)
      >>> t1g = calibrated_collective_time_s("all_gather", 2**30, "8xmi300x", standalone=True)
      >>> 10e-6 < float(t1k) < 1e-3 and float(t1g) > 7 * 2**30 / 448e9
      True
    """
    _check_fit(fit)
    k = _kind(kind)
    base = "collective_permute" if k == "send_recv" else k
    if base in CALIBRATED_KINDS and algorithm not in (
        *CALIBRATED_ALGORITHMS[base],
        "auto",
        "smooth",
    ):
        raise InputError(
            f"unknown calibrated {base} algorithm {algorithm!r}; valid: "
            f"{(*CALIBRATED_ALGORITHMS[base], 'auto', 'smooth')}."
        )
    times, chosen, sw, where = _calibrated_times(kind, nbytes, platform, group, fit, standalone)
    main = times[CALIBRATED_ALGORITHMS[base][0]]
    if chosen is None:  # nothing moves
        return main
    if algorithm == "switch_reduction":
        if sw <= 0:
            raise InputError(
                f"switch_reduction (NVLS) needs an NVSwitch domain of at least "
                f"{chosen.switch_reduction_min_devices} devices holding the group; {where} has none."
            )
        return times["switch_reduction"]
    if algorithm in ("ring", "pairwise", "direct") or sw <= 0:
        return main
    nvls = times["switch_reduction"]
    if algorithm == "smooth":
        return smooth_min(jnp.stack([main, nvls]))
    return jnp.minimum(main, nvls)
