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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
    raise ValueError(f"unknown collective kind {kind!r}; valid: {valid}.")


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
        raise ValueError(f"{where}: {name} must be {want}, got {shown!r}.")


def _check_group_size(where: str, p: Any) -> None:
    arr = _values(p) if not isinstance(p, (str, bytes, bool)) and p is not None else False
    if arr is False:
        raise TypeError(f"{where}: group_size must be an integer >= 1 (devices), got {p!r}.")
    if arr is None:
        return
    bad = ~np.isfinite(arr) | (arr < 1) | (arr != np.round(arr))
    if bad.any():
        raise ValueError(
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
    raise ValueError(_bad_algorithm("all_reduce", algorithm))


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
    raise ValueError(_bad_algorithm("all_gather", algorithm))


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
    raise ValueError(_bad_algorithm("reduce_scatter", algorithm))


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
    raise ValueError(_bad_algorithm("all_to_all", algorithm))


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
    raise ValueError(_bad_algorithm("collective_broadcast", algorithm))


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
        raise ValueError(
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
    raise ValueError(
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
        raise ValueError(
            f"group is empty; list at least one device of platform {platform.name!r} "
            f"({', '.join(platform.device_names)}), or pass group=None for all of them."
        )
    idx = [platform.index(g) for g in group]
    if len(set(idx)) != len(idx):
        raise ValueError(f"group {list(group)!r} lists a device twice.")
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


def algorithm_times_s(kind: str, nbytes: Any, platform, group=None) -> dict[str, Any]:
    """Time of every algorithm that applies to ``kind`` on ``platform`` (name -> jnp scalar)."""
    from perfjax.placement._platform import platform as get_platform

    platform = get_platform(platform)
    kind = _kind(kind)
    _check(f"{kind} on platform {platform.name!r}", "nbytes", nbytes, positive=False,
           unit="operand bytes per device")  # fmt: skip
    if kind == "send_recv":
        if group is None or len(group) != 2:
            raise ValueError("send_recv needs group=(src, dst).")
        s, d = (platform.index(g) for g in group)
        if s == d:
            return {"direct": 0.0 * nbytes}
        return {
            "direct": send_recv_time_s(
                nbytes,
                float(platform.bandwidth_matrix_bytes_per_s()[s, d]),
                float(platform.latency_matrix_s()[s, d]),
            )
        }
    if kind == "collective_permute":
        if group is None:
            raise ValueError(
                "collective_permute needs group=[(src, dst), ...] source-target pairs."
            )
        pairs = [(platform.index(s), platform.index(d)) for s, d in group]
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
        return {"direct": worst}
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


def collective_time_s(kind: str, nbytes: Any, platform, group=None, algorithm: str = "auto") -> Any:
    """Time of one collective on a platform (a jnp scalar, differentiable in ``nbytes``).

    Args:
      kind: ``all_reduce``, ``all_gather``, ``reduce_scatter``, ``all_to_all``,
        ``collective_permute``, ``collective_broadcast`` or ``send_recv`` (HLO/lax aliases work).
      nbytes: operand bytes per device (see the module docstring).
      platform: a ``Platform`` or anything ``perfjax.placement.platform`` accepts.
      group: devices taking part (indices or names; default all); ``(src, dst)`` for send_recv;
        ``[(src, dst), ...]`` for collective_permute.
      algorithm: one of ``ALGORITHMS[kind]``, ``"auto"`` (the fastest, exact minimum) or
        ``"smooth"`` (``smooth_min`` over the algorithms: every one gets a gradient).

    Example:
      >>> from perfjax.placement import collective_time_s
      >>> t = collective_time_s("all_reduce", 1e9, "8xh100-nvlink")
      >>> round(float(t) * 1e3, 2)   # halving-doubling: 2*7/8 * 1 GB / 450 GB/s + 6 steps x 2 us
      3.9
    """
    times = algorithm_times_s(kind, nbytes, platform, group)
    if algorithm == "auto":
        return jnp.min(jnp.stack([jnp.asarray(t) for t in times.values()]))
    if algorithm == "smooth":
        if len(times) == 1:
            return next(iter(times.values()))
        return smooth_min(jnp.stack([jnp.asarray(t) for t in times.values()]))
    if algorithm not in times:
        k = _kind(kind)
        if algorithm in ALGORITHMS[k]:
            raise ValueError(
                f"{k} algorithm {algorithm!r} does not apply here (torus needs the group to be a whole "
                f"torus topology of the platform); available: {sorted(times)}."
            )
        raise ValueError(_bad_algorithm(k, algorithm))
    return times[algorithm]


def best_algorithm(kind: str, nbytes: float, platform, group=None) -> str:
    """Name of the fastest algorithm for this collective."""
    times = algorithm_times_s(kind, nbytes, platform, group)
    return min(times, key=lambda k: float(times[k]))
