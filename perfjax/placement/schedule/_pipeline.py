"""Pipeline partitioning: contiguous stages of a topological order, one device per stage.

The throughput of a pipeline is set by its slowest stage. A stage's **load** (as in the
max-load objective of Tarnawski et al., NeurIPS 2020, whose msr-fiddle inputs perfjax ships) is

    compute of its kernels on its device
    + in:  each distinct kernel outside the stage whose output a kernel of the stage reads
    + out: each kernel of the stage whose output is read outside it,

each transfer counted once per producing kernel (its largest out-edge's bytes), over the slowest
link between the stage's device and the other devices of the pipeline (``bytes / bw + latency``).
A stage whose weights exceed its device's memory is infeasible.

``pipeline_dp`` finds the exact optimum over contiguous splits of the kernels' topological order
(``O(S n^2)``, vectorised); ``pipeline_relaxed`` relaxes the stage boundaries into continuous
positions with sigmoid memberships, minimises a smooth max of the stage loads with Adam, and
rounds the boundaries (then moves each boundary while that helps). ``max_load`` evaluates any
assignment (contiguous or not, e.g. a human expert's split) under the same objective.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from perfjax._errors import InputError
from perfjax.placement.schedule._problem import PlacementProblem
from perfjax.placement.schedule._simulate import MemoryCapacityError, check_assignment, prepared


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """A split of the kernels into pipeline stages."""

    method: str
    #: Device name of each stage (stages may be empty).
    devices: tuple[str, ...]
    #: Stage s holds kernels ``order[boundaries[s]:boundaries[s+1]]``.
    boundaries: tuple[int, ...]
    stages: tuple[tuple[str, ...], ...]
    stage_time_s: tuple[float, ...]
    #: The slowest stage: time per sample in steady state (1 / throughput).
    bottleneck_s: float
    optimal: bool | None
    wall_s: float

    @property
    def assignment(self) -> dict[str, str]:
        return {k: dev for dev, st in zip(self.devices, self.stages) for k in st}

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(
            dict(stage=range(len(self.stages)), device=self.devices,
                 kernels=[len(s) for s in self.stages], time_s=self.stage_time_s)
        )  # fmt: skip

    def __str__(self) -> str:
        rows = "\n".join(
            f"  stage {s}: {dev:<12} {len(st):5d} kernels  {t * 1e3:10.4g} ms"
            for s, (dev, st, t) in enumerate(zip(self.devices, self.stages, self.stage_time_s))
        )
        return (
            f"Pipeline ({self.method}): bottleneck {self.bottleneck_s * 1e3:.4g} ms per sample"
            + (" (optimal)" if self.optimal else "")
            + f"\n{rows}"
        )


def _no_colocation(problem: PlacementProblem) -> None:
    g = problem.colocate
    if g is not None and len(np.unique(g)) < len(g):
        raise InputError(
            f"{problem.name!r} has colocation classes (kernels that must share a device), which a "
            "contiguous pipeline split cannot honour; drop them to split anyway, e.g. "
            "dataclasses.replace(problem, colocate=None) or load_fiddle(..., colocate=False)."
        )


def _device_indices(problem: PlacementProblem, devices: Sequence | None) -> np.ndarray:
    if devices is None:
        return np.arange(problem.num_devices)
    out = []
    for dv in devices:
        if isinstance(dv, (int, np.integer)):
            out.append(int(dv))
        elif dv in problem.device_names:
            out.append(problem.device_names.index(dv))
        else:
            raise InputError(
                f"unknown device {dv!r}; the devices are {list(problem.device_names)}."
            )
    if len(set(out)) != len(out):
        raise InputError("each pipeline stage needs its own device; a device is listed twice.")
    return np.asarray(out, np.int64)


def _link(problem: PlacementProblem, devs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stage device: seconds per byte and latency of its slowest link within the pipeline."""
    lat, inv = problem.transfer_matrices()
    if len(devs) < 2:
        return np.zeros(len(devs)), np.zeros(len(devs))
    sub_inv = np.maximum(inv[np.ix_(devs, devs)], inv[np.ix_(devs, devs)].T)
    sub_lat = np.maximum(lat[np.ix_(devs, devs)], lat[np.ix_(devs, devs)].T)
    return sub_inv.max(axis=1), sub_lat.max(axis=1)


def _node_bytes(problem: PlacementProblem) -> np.ndarray:
    """Bytes of each kernel's output (its largest out-edge)."""
    out = np.zeros(problem.num_kernels)
    if len(problem.edges):
        np.maximum.at(out, problem.edges[:, 0], problem.edge_bytes)
    return out


def max_load(
    problem: PlacementProblem, assignment, devices: Sequence | None = None
) -> tuple[float, np.ndarray]:
    """The max-load (pipeline bottleneck) of any assignment; returns (max, load per device)."""
    a = check_assignment(problem, assignment)
    devs = _device_indices(problem, devices)
    inv_k, lat_k = np.zeros(problem.num_devices), np.zeros(problem.num_devices)
    used = np.unique(a)
    pipeline_devs = np.union1d(devs, used) if devices is not None else used
    iv, lt = _link(problem, pipeline_devs)
    inv_k[pipeline_devs], lat_k[pipeline_devs] = iv, lt
    T = problem.compute_time_s
    n = problem.num_kernels
    load = np.bincount(a, T[np.arange(n), a], minlength=problem.num_devices)
    c = _node_bytes(problem)
    # out: per (source, device) whether some consumer sits on another device; in: per (source,
    # consumer device) pairs, each distinct source counted once per reading device.
    if len(problem.edges):
        s, t = problem.edges[:, 0], problem.edges[:, 1]
        cross = a[s] != a[t]
        sends = np.unique(s[cross])
        for u in sends:
            k = a[u]
            load[k] += c[u] * inv_k[k] + lat_k[k]
        recv = np.unique(np.stack([s[cross], a[t[cross]]], 1), axis=0)
        for u, k in recv:
            load[k] += c[u] * inv_k[k] + lat_k[k]
    mem = np.bincount(a, problem.memory_bytes, minlength=problem.num_devices)
    load = np.where(mem <= problem.capacity_bytes * (1 + 1e-9), load, np.inf)
    return float(load.max()), load


def _boundary_bytes(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In(a, b) and Out(a, b) bytes of the stage ``order[a:b]`` as (n+1, n+1) arrays; positions."""
    n = problem.num_kernels
    order = problem.order
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    c = _node_bytes(problem)[order]  # by position
    pr = prepared(problem)
    maxcons = np.full(n, -1)
    for u in range(n):
        if pr.succs[u]:
            maxcons[pos[u]] = max(pos[v] for v in pr.succs[u])
    b = np.arange(n + 1)
    # Out(a, b) = sum_{a <= u < b, maxcons(u) >= b} c_u
    w = np.where((maxcons[None, :] >= b[:, None]) & (np.arange(n)[None, :] < b[:, None]), c, 0.0)
    cs = np.concatenate([np.zeros((n + 1, 1)), np.cumsum(w, axis=1)], axis=1)  # (b, a)
    out = cs[b, b][None, :] - cs.T  # [a, b] = cs[b, b] - cs[b, a]
    # In(a, b) = sum_{u < a} c_u [next consumer at or after a is before b]
    if len(problem.edges):
        pu = pos[problem.edges[:, 0]]
        pv = pos[problem.edges[:, 1]]
    else:
        pu = pv = np.zeros(0, np.int64)
    inn = np.zeros((n + 1, n + 1))
    for a in range(1, n + 1):
        sel = (pu < a) & (pv >= a)
        if not sel.any():
            continue
        nxt = np.full(n, n + 1)
        np.minimum.at(nxt, pu[sel], pv[sel])
        has = nxt <= n
        hist = np.bincount(nxt[has] + 1, c[has], minlength=n + 2)[: n + 1]
        inn[a] = np.cumsum(hist)  # In(a, b): sources whose next consumer < b
    tri = b[:, None] <= b[None, :]
    return np.where(tri, inn, 0.0), np.where(tri, out, 0.0), pos


def _stage_costs(problem: PlacementProblem, devs: np.ndarray) -> np.ndarray:
    """(S, n+1, n+1) load of stage s holding positions [a, b) (inf where infeasible / a > b)."""
    n = problem.num_kernels
    inn, out, _ = _boundary_bytes(problem)
    order = problem.order
    inv, lat = _link(problem, devs)
    T = problem.compute_time_s[order]
    mem = np.concatenate([[0.0], np.cumsum(problem.memory_bytes[order])])
    mem_ab = mem[None, :] - mem[:, None]
    tri = np.arange(n + 1)[:, None] <= np.arange(n + 1)[None, :]
    costs = np.empty((len(devs), n + 1, n + 1))
    for s, k in enumerate(devs):
        with np.errstate(invalid="ignore"):
            pre = np.concatenate([[0.0], np.cumsum(T[:, k])])
            comp = pre[None, :] - pre[:, None]
            comp = np.where(np.isnan(comp), np.inf, comp)
        xfer = (inn + out) * inv[s] + lat[s] * ((inn > 0).astype(float) + (out > 0))
        cst = comp + xfer
        cst = np.where(mem_ab <= problem.capacity_bytes[k] * (1 + 1e-9), cst, np.inf)
        cst = np.where(tri, cst, np.inf)
        np.fill_diagonal(cst, 0.0)
        costs[s] = cst
    return costs


def _result(problem, method, devs, bounds, costs, optimal, wall) -> PipelineResult:
    order = problem.order
    times = tuple(float(costs[s, bounds[s], bounds[s + 1]]) for s in range(len(devs)))
    stages = tuple(
        tuple(problem.names[i] for i in order[bounds[s] : bounds[s + 1]]) for s in range(len(devs))
    )
    return PipelineResult(
        method=method, devices=tuple(problem.device_names[k] for k in devs),
        boundaries=tuple(int(b) for b in bounds), stages=stages, stage_time_s=times,
        bottleneck_s=max(times), optimal=optimal, wall_s=wall,
    )  # fmt: skip


def pipeline_dp(problem: PlacementProblem, devices: Sequence | None = None) -> PipelineResult:
    """Exact minimum bottleneck over contiguous splits of ``problem.order`` onto ``devices``
    (in that order; default all devices). Stages may be empty."""
    t0 = time.perf_counter()
    _no_colocation(problem)
    devs = _device_indices(problem, devices)
    costs = _stage_costs(problem, devs)
    n, S = problem.num_kernels, len(devs)
    F = np.full((S + 1, n + 1), np.inf)
    F[0, 0] = 0.0
    arg = np.zeros((S + 1, n + 1), np.int64)
    for s in range(1, S + 1):
        M = np.maximum(F[s - 1][:, None], costs[s - 1])  # [a, b]
        arg[s] = np.argmin(M, axis=0)
        F[s] = M[arg[s], np.arange(n + 1)]
    if not np.isfinite(F[S, n]):
        raise MemoryCapacityError(
            "no contiguous split fits the devices' memory; add devices or use larger ones."
        )
    bounds = [n]
    for s in range(S, 0, -1):
        bounds.append(int(arg[s, bounds[-1]]))
    bounds = bounds[::-1]
    return _result(problem, "dp", devs, bounds, costs, True, time.perf_counter() - t0)


def _soft_loads(z, arr, tau):
    """Soft stage loads. Positions live on a work axis ``u`` in [0, 1] (each kernel's share of the
    total mean compute, plus a little so zero-time kernels still have width): equal fractions
    ``softmax(z)`` mean balanced compute, and ``tau`` is a width on that axis. Transfers use
    products of memberships over each producer's consumers, equal to the exact in/out bytes
    when the memberships are 0/1."""
    frac = jax.nn.softmax(z)
    cuts = jnp.cumsum(frac)[:-1]  # S-1 interior boundaries on the work axis
    centre = arr["u"]
    n = centre.shape[0]
    left = jnp.concatenate([jnp.ones((n, 1)), jax.nn.sigmoid((centre[:, None] - cuts) / tau)], 1)
    right = jnp.concatenate([jax.nn.sigmoid((centre[:, None] - cuts) / tau), jnp.zeros((n, 1))], 1)
    m = left - right  # (n, S) membership
    comp = jnp.sum(m * arr["T"], axis=0)
    # Exact at hard memberships: a producer u pays "out" in its stage when some consumer is
    # elsewhere (1 - prod_v m_vs), and each other stage holding a consumer pays "in" once
    # ((1 - m_us)(1 - prod_v (1 - m_vs))).
    eps = 1e-7
    md = jnp.clip(m[arr["e_dst"]], eps, 1 - eps)  # (E, S)
    all_in = jnp.exp(jax.ops.segment_sum(jnp.log(md), arr["e_src"], num_segments=n))
    none_in = jnp.exp(jax.ops.segment_sum(jnp.log1p(-md), arr["e_src"], num_segments=n))
    c = arr["c"][:, None]
    xout = jnp.sum(c * m * (1 - all_in), axis=0)
    xin = jnp.sum(c * (1 - m) * (1 - none_in), axis=0)
    mem = jnp.sum(m * arr["mem"][:, None], axis=0)
    over = jnp.sum(jax.nn.relu(mem - arr["cap"]) / arr["cap"])
    return comp + (xin + xout) * arr["inv"], over


def _bottleneck(costs: np.ndarray, bounds: Sequence[int]) -> float:
    """The slowest stage's cost when stage ``s`` runs kernels ``bounds[s]:bounds[s + 1]``."""
    return max(costs[s, bounds[s], bounds[s + 1]] for s in range(len(bounds) - 1))


def _refine_bounds(costs: np.ndarray, bounds: Sequence[int]) -> list[int]:
    """Coordinate descent on stage boundaries: moves one boundary at a time to its best position
    between its neighbours (exact stage costs), until no move lowers the bottleneck."""
    bounds = list(bounds)
    S = len(bounds) - 1
    improved = True
    while improved:
        improved = False
        for s in range(1, S):
            lo, hi = bounds[s - 1], bounds[s + 1]
            cand = np.arange(lo, hi + 1)
            others = max(
                (costs[q, bounds[q], bounds[q + 1]] for q in range(S) if q not in (s - 1, s)),
                default=0.0,
            )
            total = np.maximum(np.maximum(costs[s - 1, lo, cand], costs[s, cand, hi]), others)
            if total.min() < _bottleneck(costs, bounds) * (1 - 1e-12):
                bounds[s] = int(cand[np.argmin(total)])
                improved = True
    return bounds


def pipeline_relaxed(
    problem: PlacementProblem,
    devices: Sequence | None = None,
    *,
    seed: int = 0,
    restarts: int = 8,
    steps: int = 400,
    lr: float = 0.05,
    refine: bool = True,
) -> tuple[PipelineResult, PipelineResult]:
    """Gradient descent on relaxed stage boundaries; returns (rounded, rounded + refined)."""
    t0 = time.perf_counter()
    _no_colocation(problem)
    devs = _device_indices(problem, devices)
    n, S = problem.num_kernels, len(devs)
    costs = _stage_costs(problem, devs)
    _inn, _out, pos = _boundary_bytes(problem)
    order = problem.order
    T = problem.compute_time_s[order][:, devs]
    scale = float(np.nanmax(np.where(np.isfinite(T), T, np.nan).sum(axis=0))) / S or 1.0
    pr = prepared(problem)
    maxcons = np.full(n, -1.0)
    for u in range(n):
        if pr.succs[u]:
            maxcons[pos[u]] = max(pos[v] for v in pr.succs[u])
    inv, _ = _link(problem, devs)
    cap = problem.capacity_bytes[devs]
    cap_scale = (
        float(np.nanmax(np.where(np.isfinite(cap), cap, np.nan))) if np.isfinite(cap).any() else 1.0
    )
    w = np.nanmean(np.where(np.isfinite(T), T, np.nan), axis=1)
    w = np.nan_to_num(w) + 0.05 * max(float(np.nanmean(w)), 1e-30)
    edges_u = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    u = (edges_u[:-1] + edges_u[1:]) / 2
    u_maxcons = np.where(maxcons >= 0, u[np.maximum(maxcons, 0).astype(int)], -1.0)
    arr = dict(
        T=jnp.asarray(np.where(np.isfinite(T), T, 1e3 * scale) / scale, jnp.float32),
        u=jnp.asarray(u, jnp.float32),
        u_maxcons=jnp.asarray(u_maxcons, jnp.float32),
        c=jnp.asarray(_node_bytes(problem)[order], jnp.float32),
        e_src=jnp.asarray(pos[problem.edges[:, 0]] if len(problem.edges) else np.zeros(0, int)),
        e_dst=jnp.asarray(pos[problem.edges[:, 1]] if len(problem.edges) else np.zeros(0, int)),
        inv=jnp.asarray(inv / scale, jnp.float32),
        mem=jnp.asarray(problem.memory_bytes[order] / cap_scale, jnp.float32),
        cap=jnp.asarray(np.where(np.isfinite(cap), cap / cap_scale, 1e30), jnp.float32),
    )
    opt = optax.adam(lr)

    def loss(z, tau, beta):
        loads, over = _soft_loads(z, arr, tau)
        return beta * jax.nn.logsumexp(loads / beta) + 10.0 * over

    @jax.jit
    def run(z0):
        def body(carry, t):
            z, st = carry
            frac = t / max(steps - 1, 1)
            tau0, tau1 = 0.5 / S, 0.3 / n
            tau = tau0 * (tau1 / tau0) ** frac
            beta = 0.05 * (0.2) ** frac
            v, g = jax.vmap(jax.value_and_grad(loss), in_axes=(0, None, None))(z, tau, beta)
            u, st = opt.update(g, st, z)
            return (optax.apply_updates(z, u), st), v.mean()

        (z, _), _vals = jax.lax.scan(body, (z0, opt.init(z0)), jnp.arange(steps, dtype=jnp.float32))
        return z

    rng = np.random.default_rng(seed)
    z0 = rng.normal(0, 0.5, (restarts, S)).astype(np.float32)
    z0[0] = 0.0  # equal stage lengths
    z = np.asarray(run(jnp.asarray(z0)))

    best = None
    for r in range(restarts):
        frac = np.exp(z[r] - z[r].max())
        frac /= frac.sum()
        cuts = np.searchsorted(edges_u, np.cumsum(frac)[:-1])
        cuts = np.clip(cuts, 0, n)
        bounds = [0, *np.maximum.accumulate(cuts).tolist(), n]
        c = _bottleneck(costs, bounds)
        if best is None or c < best[0]:
            best = (c, bounds)
    rounded = _result(problem, "relaxed", devs, best[1], costs, None, time.perf_counter() - t0)
    bounds = _refine_bounds(costs, best[1]) if refine else list(best[1])
    refined = _result(
        problem, "relaxed+refine", devs, bounds, costs, None, time.perf_counter() - t0
    )
    return rounded, refined
