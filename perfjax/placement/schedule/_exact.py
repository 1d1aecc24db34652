"""Exact placement of small graphs: a mixed-integer program solved by HiGHS (scipy.optimize.milp).

Variables: ``x[i, k]`` (kernel i on device k, binary), ``s[i]`` (start time), ``y[i, j]`` (i
before j, binary, one per pair not ordered by the DAG) and the makespan ``C``. With
``f_i = s_i + sum_k t[i, k] x[i, k]`` and ``M`` an upper bound (HEFT's makespan plus the largest
compute and transfer time):

* assignment: ``sum_k x[i, k] = 1``; ``x[i, k] = 0`` where kernel i cannot run on k;
  colocation: ``x[i, k] = x[r, k]`` for the class representative r;
* precedence with transfers, for each edge (i, j) and device pair (k, l), k != l:
  ``s_j >= f_i + c[e, k, l] - M (2 - x[i, k] - x[j, l])``, and ``s_j >= f_i`` always;
* no overlap on one device, for each unordered pair and device k:
  ``s_j >= f_i - M (1 - y) - M (2 - x[i, k] - x[j, k])`` and the symmetric one with ``y``;
* memory: ``sum_i mem_i x[i, k] <= cap_k``;  ``C >= f_i``;  ``C <= M``; minimise ``C``.

The model has O(n^2 d) constraints; it is meant for graphs up to a few dozen kernels.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from perfjax.placement.schedule._heuristics import heft
from perfjax.placement.schedule._problem import PlacementProblem
from perfjax.placement.schedule._simulate import (
    MemoryCapacityError,
    makespan,
    prepared,
    priority_order,
)


@dataclasses.dataclass(frozen=True)
class ExactResult:
    assignment: np.ndarray
    order: np.ndarray
    makespan_s: float
    optimal: bool
    #: Best lower bound HiGHS proved (equal to the makespan when optimal).
    bound_s: float
    wall_s: float
    status: str


def _ancestors(problem: PlacementProblem) -> np.ndarray:
    n = problem.num_kernels
    reach = np.zeros((n, n), bool)  # reach[i, j]: i is an ancestor of j
    pr = prepared(problem)
    for j in problem.order.tolist():
        for p in pr.preds[j]:
            reach[:, j] |= reach[:, p]
            reach[p, j] = True
    return reach


@dataclasses.dataclass
class _Rows:
    """Sparse constraint rows ``lo <= A x <= hi`` of a linear program, added one at a time."""

    rows: list[int] = dataclasses.field(default_factory=list)
    cols: list[int] = dataclasses.field(default_factory=list)
    vals: list[float] = dataclasses.field(default_factory=list)
    lo: list[float] = dataclasses.field(default_factory=list)
    hi: list[float] = dataclasses.field(default_factory=list)

    def add(self, coefs: dict[int, float], lb: float, ub: float) -> None:
        r = len(self.lo)
        for c, v in coefs.items():
            self.rows.append(r)
            self.cols.append(c)
            self.vals.append(v)
        self.lo.append(lb)
        self.hi.append(ub)


def _constraints(
    problem: PlacementProblem,
    Tz: np.ndarray,
    et: np.ndarray,
    M: float,
    pairs: list[tuple[int, int]],
) -> _Rows:
    """The MILP's constraints (see the module docstring), in units of the upper bound: ``Tz``
    compute times (0 where unsupported), ``et`` edge transfer times, ``M`` the big-M, ``pairs``
    the kernel pairs the DAG leaves unordered."""
    n, d = problem.num_kernels, problem.num_devices
    supported = np.isfinite(problem.compute_time_s)
    # variable layout: x (n*d) | s (n) | y (P) | C
    nx = n * d
    ix = lambda i, k: i * d + k
    isv = lambda i: nx + i
    iy = lambda p: nx + n + p
    iC = nx + n + len(pairs)
    model = _Rows()
    add = model.add

    def finish(i: int, sign: float, out: dict[int, float]) -> None:
        """Adds sign * f_i to ``out``."""
        out[isv(i)] = out.get(isv(i), 0.0) + sign
        for k in range(d):
            if Tz[i, k]:
                out[ix(i, k)] = out.get(ix(i, k), 0.0) + sign * Tz[i, k]

    for i in range(n):
        add({ix(i, k): 1.0 for k in range(d)}, 1.0, 1.0)
        c: dict[int, float] = {iC: 1.0}
        finish(i, -1.0, c)
        add(c, 0.0, np.inf)  # C - f_i >= 0
    for e, (i, j) in enumerate(problem.edges.tolist()):
        c = {isv(j): 1.0}
        finish(i, -1.0, c)
        add(c, 0.0, np.inf)  # s_j - f_i >= 0
        for k in range(d):
            for m in range(d):
                if k == m or et[e, k, m] <= 0 or not (supported[i, k] and supported[j, m]):
                    continue
                # s_j - f_i - M x_ik - M x_jm >= c - 2M
                c = {isv(j): 1.0}
                finish(i, -1.0, c)
                c[ix(i, k)] = c.get(ix(i, k), 0.0) - M
                c[ix(j, m)] = c.get(ix(j, m), 0.0) - M
                add(c, et[e, k, m] - 2 * M, np.inf)
    for p, (i, j) in enumerate(pairs):
        for k in range(d):
            if not (supported[i, k] and supported[j, k]):
                continue
            # i before j on k: s_j - f_i + M(1 - y) + M(2 - x_ik - x_jk) >= 0
            c = {isv(j): 1.0}
            finish(i, -1.0, c)
            c[iy(p)] = -M
            c[ix(i, k)] = c.get(ix(i, k), 0.0) - M
            c[ix(j, k)] = c.get(ix(j, k), 0.0) - M
            add(c, -3 * M, np.inf)
            # j before i on k: s_i - f_j + M y + M(2 - x_ik - x_jk) >= 0
            c = {isv(i): 1.0}
            finish(j, -1.0, c)
            c[iy(p)] = M
            c[ix(i, k)] = c.get(ix(i, k), 0.0) - M
            c[ix(j, k)] = c.get(ix(j, k), 0.0) - M
            add(c, -2 * M, np.inf)
    for k in range(d):
        if np.isfinite(problem.capacity_bytes[k]) and problem.memory_bytes.any():
            add({ix(i, k): problem.memory_bytes[i] for i in range(n)}, -np.inf,
                problem.capacity_bytes[k] * (1 + 1e-9))  # fmt: skip
    if problem.colocate is not None:
        g = problem.colocate
        rep: dict[int, int] = {}
        for i in range(n):
            if int(g[i]) in rep:
                for k in range(d):
                    add({ix(i, k): 1.0, ix(rep[int(g[i])], k): -1.0}, 0.0, 0.0)
            else:
                rep[int(g[i])] = i
    return model


def exact(problem: PlacementProblem, *, time_limit_s: float = 60.0) -> ExactResult:
    """Solves the placement MILP; ``optimal`` is False when the time limit stopped HiGHS."""
    t0 = time.perf_counter()
    n, d = problem.num_kernels, problem.num_devices
    T = problem.compute_time_s
    supported = np.isfinite(T)
    Tz = np.where(supported, T, 0.0)
    try:
        a0, o0, _ = heft(problem)
        ub = makespan(problem, a0, o0)
    except MemoryCapacityError:
        a0 = None
        ub = float(
            Tz.max(axis=1).sum() + problem.edge_time_s().max(initial=0.0) * len(problem.edges)
        )
    # Work in units of the upper bound so HiGHS's absolute tolerances mean the same at any scale.
    scale = ub if ub > 0 else 1.0
    Tz = Tz / scale
    et = problem.edge_time_s() / scale
    ub_scaled = ub / scale
    M = ub_scaled + float(Tz.max(initial=0.0)) + float(et.max(initial=0.0))
    reach = _ancestors(problem)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if not (reach[i, j] or reach[j, i])]
    P = len(pairs)
    # variable layout: x (n*d) | s (n) | y (P) | C
    nx = n * d
    iC = nx + n + P
    nv = iC + 1
    model = _constraints(problem, Tz, et, M, pairs)
    # scipy (its MILP solver takes ~0.3 s to import) is loaded only when a placement is solved.
    from scipy import optimize, sparse

    A = sparse.csr_array((model.vals, (model.rows, model.cols)), shape=(len(model.lo), nv))
    lb = np.zeros(nv)
    ubs = np.full(nv, np.inf)
    ubs[:nx] = supported.reshape(-1).astype(float)
    ubs[nx + n : iC] = 1.0
    ubs[nx : nx + n] = M
    ubs[iC] = ub_scaled * (1 + 1e-6)
    integrality = np.zeros(nv)
    integrality[:nx] = 1
    integrality[nx + n : iC] = 1
    cost = np.zeros(nv)
    cost[iC] = 1.0
    for attempt in range(2):
        res = optimize.milp(
            cost,
            constraints=optimize.LinearConstraint(A, np.asarray(model.lo), np.asarray(model.hi)),
            integrality=integrality,
            bounds=optimize.Bounds(lb, ubs),
            options=dict(
                time_limit=max(float(time_limit_s) - (time.perf_counter() - t0), 0.1),
                mip_rel_gap=1e-7,
                disp=False,
            ),
        )
        if res.status in (0, 1) or attempt:
            break
        ubs[iC] = np.inf  # a numerical failure at the tight HEFT bound: retry without it
    wall = time.perf_counter() - t0
    bound = float(getattr(res, "mip_dual_bound", np.nan) or np.nan) * scale
    if res.x is None:
        if a0 is None:
            if res.status == 2:
                raise MemoryCapacityError(
                    "no placement fits the devices' memory (the MILP is infeasible); the platform "
                    "lacks memory for this program."
                )
            raise MemoryCapacityError(
                f"the MILP found no feasible placement within {time_limit_s} s ({res.message})."
            )
        return ExactResult(a0, o0, ub, False, bound, wall, str(res.message))
    x = res.x[:nx].reshape(n, d)
    a = np.argmax(x, axis=1).astype(np.int64)
    s = res.x[nx : nx + n]
    order = priority_order(problem, s)
    span = makespan(problem, a, order)
    if a0 is not None and ub < span:  # the time limit stopped HiGHS above HEFT
        a, order, span = a0, o0, ub
    optimal = res.status == 0
    return ExactResult(a, order, span, optimal, span if optimal else bound, wall, str(res.message))
