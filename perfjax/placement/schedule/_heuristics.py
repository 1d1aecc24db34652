"""List-scheduling heuristics: best single device, greedy earliest finish, and HEFT.

HEFT follows Topcuoglu, Hariri and Wu, "Performance-effective and low-complexity task scheduling
for heterogeneous computing", IEEE TPDS 13(3), 2002: upward rank with mean compute costs (over the
devices that support the kernel) and mean transfer costs (over ordered pairs of distinct
devices), kernels taken by decreasing rank, each put on the device giving its earliest finish
time, with insertion into idle gaps. perfjax adds two constraints: a device whose memory would
overflow is skipped, and kernels of a colocation class follow the first one placed.
"""

from __future__ import annotations

import bisect

import numpy as np

from perfjax._errors import InputError
from perfjax.placement.schedule._problem import PlacementProblem
from perfjax.placement.schedule._simulate import MemoryCapacityError, memory_ok, prepared


def _no_device(problem: PlacementProblem, i: int) -> MemoryCapacityError:
    return MemoryCapacityError(
        f"no device can hold kernel {problem.names[i]!r} ({problem.memory_bytes[i]:.4g} bytes) "
        "with the kernels already placed; the platform lacks memory for this program."
    )


def single(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray]:
    """Everything on the one device that runs it fastest (and holds it). Returns (assignment, order)."""
    totals = problem.compute_time_s.sum(axis=0)
    fits = problem.memory_bytes.sum() <= problem.capacity_bytes * (1 + 1e-9)
    totals = np.where(fits, totals, np.inf)
    if not np.isfinite(totals).any():
        raise MemoryCapacityError(
            "no single device both supports every kernel and holds all the weights "
            f"({problem.memory_bytes.sum():.4g} bytes); use a multi-device method such as 'heft'."
        )
    j = int(np.argmin(totals))
    return np.full(problem.num_kernels, j, np.int64), problem.order.copy()


def upward_rank(problem: PlacementProblem) -> np.ndarray:
    """HEFT's rank_u: mean compute + max over successors of (mean transfer + their rank)."""
    t = problem.compute_time_s
    mean_t = np.where(np.isinf(t), np.nan, t)
    mean_t = np.nanmean(mean_t, axis=1)
    d = problem.num_devices
    if d > 1:
        et = problem.edge_time_s()
        mean_c = et.sum(axis=(1, 2)) / (d * (d - 1))
    else:
        mean_c = np.zeros(len(problem.edges))
    pr = prepared(problem)
    rank = np.zeros(problem.num_kernels)
    for i in problem.order[::-1].tolist():
        best = 0.0
        for j, e in zip(pr.succs[i], pr.succ_edges[i]):
            best = max(best, mean_c[e] + rank[j])
        rank[i] = mean_t[i] + best
    return rank


def _rank_order(problem: PlacementProblem, rank: np.ndarray) -> np.ndarray:
    pos = np.empty(problem.num_kernels, np.int64)
    pos[problem.order] = np.arange(problem.num_kernels)
    return np.lexsort((pos, -rank))


def _eft_schedule(problem: PlacementProblem, order: np.ndarray, insertion: bool):
    """Earliest-finish-time placement of kernels in ``order``; returns (assignment, start, finish)."""
    n, d = problem.num_kernels, problem.num_devices
    pr = prepared(problem)
    t, et = pr.times_list, pr.edge_time_list
    a = [-1] * n
    start = [0.0] * n
    finish = [0.0] * n
    # Per device: sorted busy intervals (start, finish) for insertion; the last finish otherwise.
    busy_s: list[list[float]] = [[] for _ in range(d)]
    busy_f: list[list[float]] = [[] for _ in range(d)]
    used = np.zeros(d)
    cap = problem.capacity_bytes * (1 + 1e-9)
    mem = problem.memory_bytes
    groups = problem.groups()
    group_dev: dict[int, int] = {}
    group_mem = np.bincount(groups, mem)
    for i in order.tolist():
        g = int(groups[i])
        if g in group_dev:
            candidates = [group_dev[g]]
        else:
            candidates = [j for j in range(d) if used[j] + group_mem[g] <= cap[j]]
            if not candidates:
                raise _no_device(problem, i)
        best = (np.inf, np.inf, -1)
        for j in candidates:
            w = t[i][j]
            if w == np.inf:
                continue
            ready = 0.0
            for p, e in zip(pr.preds[i], pr.pred_edges[i]):
                v = finish[p] + et[e][a[p]][j]
                if v > ready:
                    ready = v
            s = _earliest_slot(busy_s[j], busy_f[j], ready, w, insertion)
            if s + w < best[0] - 1e-15:
                best = (s + w, s, j)
        if best[2] < 0:
            raise InputError(
                f"kernel {problem.names[i]!r} has no supporting device among those allowed "
                "(its colocation class forces a device that cannot run it)."
            )
        f, s, j = best
        a[i], start[i], finish[i] = j, s, f
        k = bisect.bisect_left(busy_s[j], s)
        busy_s[j].insert(k, s)
        busy_f[j].insert(k, f)
        if g not in group_dev:
            group_dev[g] = j
            used[j] += group_mem[g]
    return np.asarray(a, np.int64), np.asarray(start), np.asarray(finish)


def _earliest_slot(
    bs: list[float], bf: list[float], ready: float, w: float, insertion: bool
) -> float:
    if not bs:
        return ready
    if not insertion:
        return max(ready, bf[-1])
    prev_end = 0.0
    for s, f in zip(bs, bf):
        cand = max(ready, prev_end)
        if cand + w <= s + 1e-12:
            return cand
        prev_end = max(prev_end, f)
    return max(ready, prev_end)


def greedy(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray]:
    """Kernels in topological order, each on the device where it finishes first (no insertion)."""
    a, _start, _ = _eft_schedule(problem, problem.order, insertion=False)
    return a, problem.order.copy()


def heft(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray, float]:
    """HEFT; returns (assignment, order by start time, HEFT's own insertion-schedule makespan)."""
    order = _rank_order(problem, upward_rank(problem))
    a, start, finish = _eft_schedule(problem, order, insertion=True)
    if not memory_ok(problem, a):  # pragma: no cover - guarded during placement
        raise _no_device(problem, int(order[-1]))
    # Replaying the schedule in start-time order never finishes later (list scheduling, no delay).
    pos = np.empty(problem.num_kernels, np.int64)
    pos[order] = np.arange(problem.num_kernels)
    replay = np.lexsort((pos, start))
    return a, replay, float(finish.max(initial=0.0))
