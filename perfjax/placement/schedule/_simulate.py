"""Makespan of a placement: list scheduling of the kernel DAG on its assigned devices.

The model (used by every placement method, so they are compared on one yardstick):

* each device runs one kernel at a time, without preemption;
* kernels are taken in a **priority order** (a topological order; by default the upward rank of
  each kernel under the assignment's own compute and transfer times, as HEFT ranks them), and
  each starts as soon as its device is free (after the kernels it already took) and all its
  inputs have arrived;
* an edge between different devices costs ``latency + bytes / bandwidth`` of that device pair,
  and nothing on the same device; links are **contention-free** (any number of transfers at full
  bandwidth at once) and transfers overlap compute, so the makespan is optimistic when many
  tensors share a slow link;
* memory: the bytes resident on a device (its kernels' ``memory_bytes``) must fit its capacity;
  an assignment that does not fit is infeasible (an error, or ``inf`` in batched evaluation).

``simulate_batch`` evaluates many assignments at once (NumPy over the batch, one step per kernel),
which is what local search uses.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perfjax._errors import InputError
from perfjax.placement.schedule._problem import PlacementProblem


class MemoryCapacityError(ValueError):
    """An assignment puts more resident bytes on a device than it holds."""


@dataclasses.dataclass(frozen=True)
class _Prepared:
    preds: list[list[int]]
    pred_edges: list[list[int]]
    succs: list[list[int]]
    succ_edges: list[list[int]]
    pred_arr: list[np.ndarray]
    pred_edge_arr: list[np.ndarray]
    edge_time: np.ndarray  # (e, d, d)
    edge_time_list: list  # nested python lists for the scalar loop
    times_list: list


_cache: weakref.WeakKeyDictionary[PlacementProblem, _Prepared] = weakref.WeakKeyDictionary()


def prepared(problem: PlacementProblem) -> _Prepared:
    p = _cache.get(problem)
    if p is None:
        n = problem.num_kernels
        preds: list[list[int]] = [[] for _ in range(n)]
        pe: list[list[int]] = [[] for _ in range(n)]
        succs: list[list[int]] = [[] for _ in range(n)]
        se: list[list[int]] = [[] for _ in range(n)]
        for k, (s, t) in enumerate(problem.edges.tolist()):
            preds[t].append(s)
            pe[t].append(k)
            succs[s].append(t)
            se[s].append(k)
        et = problem.edge_time_s()
        p = _Prepared(
            preds, pe, succs, se,
            [np.asarray(x, np.int64) for x in preds], [np.asarray(x, np.int64) for x in pe],
            et, et.tolist(), problem.compute_time_s.tolist(),
        )  # fmt: skip
        _cache[problem] = p
    return p


# ---------------------------------------------------------------------------------------------
# checking assignments
# ---------------------------------------------------------------------------------------------


def _device_index(problem: PlacementProblem, dev: Any) -> int:
    names = problem.device_names
    if isinstance(dev, (int, np.integer)) and not isinstance(dev, bool):
        if not 0 <= int(dev) < len(names):
            raise InputError(f"device index {dev} out of range; there are {len(names)} devices.")
        return int(dev)
    if dev in names:
        return names.index(dev)
    import difflib

    close = difflib.get_close_matches(str(dev), names, n=3)
    raise InputError(
        f"unknown device {dev!r} in the assignment; the devices are {list(names)}"
        + (f" (did you mean {close}?)" if close else "")
        + "."
    )


def check_assignment(problem: PlacementProblem, assignment: Any) -> np.ndarray:
    """Device index per kernel from a mapping ``kernel -> device`` or a sequence (names or ints)."""
    n = problem.num_kernels
    if isinstance(assignment, Mapping):
        unknown = [k for k in assignment if k not in set(problem.names)]
        if unknown:
            raise InputError(
                f"the assignment names unknown kernels {unknown[:5]}; kernels are e.g. "
                f"{list(problem.names[:5])}."
            )
        missing = [k for k in problem.names if k not in assignment]
        if missing:
            raise InputError(
                f"the assignment misses {len(missing)} kernels, e.g. {missing[:5]}; give a device "
                "for every kernel."
            )
        a = np.array([_device_index(problem, assignment[k]) for k in problem.names], np.int64)
    else:
        arr = np.asarray(assignment)
        if arr.ndim != 1 or len(arr) != n:
            raise InputError(
                f"the assignment has shape {arr.shape}; expected one device per kernel ({n},)."
            )
        if arr.dtype.kind in "iu":
            a = np.array([_device_index(problem, int(x)) for x in arr], np.int64)
        else:
            a = np.array([_device_index(problem, x) for x in arr.tolist()], np.int64)
    unsup = np.isinf(problem.compute_time_s[np.arange(n), a])
    if unsup.any():
        i = int(np.flatnonzero(unsup)[0])
        raise InputError(
            f"kernel {problem.names[i]!r} cannot run on {problem.device_names[a[i]]!r} (no time "
            "there); assign it to a device that supports it."
        )
    if problem.colocate is not None:
        g = problem.colocate
        first = np.full(g.max() + 1, -1)
        first[g[::-1]] = a[::-1]
        bad = np.flatnonzero(first[g] != a)
        if len(bad):
            raise InputError(
                f"kernel {problem.names[bad[0]]!r} must share a device with the other kernels of "
                "its colocation class."
            )
    return a


def memory_use(problem: PlacementProblem, assignment: np.ndarray) -> np.ndarray:
    """Resident bytes per device."""
    return np.bincount(assignment, problem.memory_bytes, minlength=problem.num_devices)


def check_memory(problem: PlacementProblem, assignment: np.ndarray) -> None:
    used = memory_use(problem, assignment)
    over = np.flatnonzero(used > problem.capacity_bytes * (1 + 1e-9))
    if len(over):
        j = int(over[0])
        raise MemoryCapacityError(
            f"memory capacity exceeded on {problem.device_names[j]!r}: {used[j]:.4g} bytes "
            f"resident > {problem.capacity_bytes[j]:.4g} capacity; move kernels off it or use a "
            "device with more memory."
        )


def memory_ok(problem: PlacementProblem, assignment: np.ndarray) -> bool:
    return bool((memory_use(problem, assignment) <= problem.capacity_bytes * (1 + 1e-9)).all())


# ---------------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------------


def rank_order(problem: PlacementProblem, assignment: np.ndarray) -> np.ndarray:
    """Kernels by decreasing upward rank under this assignment (ties in topological order)."""
    pr = prepared(problem)
    t, et = pr.times_list, pr.edge_time_list
    a = assignment.tolist()
    rank = [0.0] * problem.num_kernels
    for i in problem.order[::-1].tolist():
        ai = a[i]
        best = 0.0
        for j, e in zip(pr.succs[i], pr.succ_edges[i]):
            v = et[e][ai][a[j]] + rank[j]
            if v > best:
                best = v
        rank[i] = t[i][ai] + best
    pos = np.empty(problem.num_kernels, np.int64)
    pos[problem.order] = np.arange(problem.num_kernels)
    return np.lexsort((pos, -np.asarray(rank)))


def priority_order(problem: PlacementProblem, key: np.ndarray) -> np.ndarray:
    """A topological order taking, among ready kernels, the one with the smallest ``key``."""
    import heapq

    pr = prepared(problem)
    n = problem.num_kernels
    indeg = [len(p) for p in pr.preds]
    k = np.asarray(key, float).tolist()
    heap = [(k[i], i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    out = []
    while heap:
        _, i = heapq.heappop(heap)
        out.append(i)
        for j in pr.succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (k[j], j))
    return np.asarray(out, np.int64)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Start and finish of every kernel under a list schedule."""

    assignment: np.ndarray
    order: np.ndarray
    start_s: np.ndarray
    finish_s: np.ndarray
    makespan_s: float
    memory_bytes: np.ndarray


def schedule(
    problem: PlacementProblem,
    assignment: Any,
    order: Sequence[int] | None = None,
    *,
    check: bool = True,
) -> Schedule:
    """List-schedules ``assignment`` (kernels taken in ``order``; default: rank order).

    Raises:
      MemoryCapacityError: when a device's resident bytes exceed its capacity.
      ValueError: for an invalid assignment or an order that is not topological.
    """
    a = check_assignment(problem, assignment) if check else np.asarray(assignment, np.int64)
    check_memory(problem, a)
    if order is None:
        order = rank_order(problem, a)
    else:
        order = np.asarray(order, np.int64)
        if check:
            _check_order(problem, order)
    start, finish = _simulate_one(problem, a, order)
    return Schedule(a, order, start, finish, float(finish.max(initial=0.0)), memory_use(problem, a))


def _check_order(problem: PlacementProblem, order: np.ndarray) -> None:
    n = problem.num_kernels
    if sorted(order.tolist()) != list(range(n)):
        raise InputError(f"order must be a permutation of the {n} kernel indices.")
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    if len(problem.edges) and (pos[problem.edges[:, 0]] >= pos[problem.edges[:, 1]]).any():
        raise InputError("order is not topological: a kernel comes before one of its inputs.")


def _simulate_one(
    problem: PlacementProblem, a: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pr = prepared(problem)
    t, et = pr.times_list, pr.edge_time_list
    al = a.tolist()
    free = [0.0] * problem.num_devices
    start = [0.0] * problem.num_kernels
    finish = [0.0] * problem.num_kernels
    for i in order.tolist():
        ai = al[i]
        ready = free[ai]
        for p, e in zip(pr.preds[i], pr.pred_edges[i]):
            v = finish[p] + et[e][al[p]][ai]
            if v > ready:
                ready = v
        start[i] = ready
        finish[i] = free[ai] = ready + t[i][ai]
    return np.asarray(start), np.asarray(finish)


def makespan(
    problem: PlacementProblem, assignment: Any, order: Sequence[int] | None = None
) -> float:
    """Makespan in seconds of an assignment (see :func:`schedule`)."""
    return schedule(problem, assignment, order).makespan_s


def simulate_batch(
    problem: PlacementProblem, assignments: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """Makespans of ``(B, n)`` device-index assignments.

    ``order`` is one priority order ``(n,)`` for all rows, or one per row ``(B, n)``. Vectorised
    over the batch (one NumPy step per kernel); infeasible rows (memory, unsupported kernels) give
    ``inf``. Rows are not validated: pass device indices in range and topological orders.
    """
    A = np.asarray(assignments, np.int64)
    if A.ndim == 1:
        A = A[None]
    B, n = A.shape
    d = problem.num_devices
    pr = prepared(problem)
    if order is None:
        order = problem.order
    order = np.asarray(order, np.int64)
    T = problem.compute_time_s
    et_flat = pr.edge_time.reshape(-1)
    rows = np.arange(B)
    free = np.zeros((B, d))
    finish = np.zeros((B, n + 1))
    if order.ndim == 1:
        for i in order.tolist():
            dev = A[:, i]
            ready = free[rows, dev]
            preds = pr.pred_arr[i]
            if len(preds):
                idx = (pr.pred_edge_arr[i] * (d * d))[None, :] + A[:, preds] * d + dev[:, None]
                ready = np.maximum(ready, (finish[:, preds] + et_flat[idx]).max(axis=1))
            fin = ready + T[i, dev]
            finish[:, i] = fin
            free[rows, dev] = fin
    else:
        # One order per row: gather each row's kernel, with predecessors padded to a dummy
        # kernel n (finish 0) over a dummy zero-time edge.
        pm, em = _padded_preds(problem)
        et_pad = np.concatenate([et_flat, np.zeros(d * d)])
        Apad = np.concatenate([A, np.zeros((B, 1), np.int64)], axis=1)
        for step in range(n):
            i = order[:, step]
            dev = A[rows, i]
            preds, eids = pm[i], em[i]  # (B, K)
            idx = eids * (d * d) + Apad[rows[:, None], preds] * d + dev[:, None]
            ready = np.maximum(
                free[rows, dev], (finish[rows[:, None], preds] + et_pad[idx]).max(axis=1)
            )
            fin = ready + T[i, dev]
            finish[rows, i] = fin
            free[rows, dev] = fin
    span = finish[:, :n].max(axis=1)
    if np.isfinite(problem.capacity_bytes).any() and problem.memory_bytes.any():
        used = np.zeros((B, d))
        np.add.at(used, (np.repeat(rows, n), A.reshape(-1)), np.tile(problem.memory_bytes, B))
        span = np.where((used <= problem.capacity_bytes * (1 + 1e-9)).all(axis=1), span, np.inf)
    return span


_padded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _padded_preds(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray]:
    if problem not in _padded:
        pr = prepared(problem)
        n, e = problem.num_kernels, len(problem.edges)
        K = max(1, max((len(p) for p in pr.preds), default=1))
        pm = np.full((n, K), n, np.int64)
        em = np.full((n, K), e, np.int64)
        for i in range(n):
            pm[i, : len(pr.preds[i])] = pr.preds[i]
            em[i, : len(pr.pred_edges[i])] = pr.pred_edges[i]
        _padded[problem] = (pm, em)
    return _padded[problem]
