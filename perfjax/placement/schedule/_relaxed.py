"""Gradient-based placement: a smooth makespan of soft assignments, optimised with optax.

Each kernel class (a kernel, or a colocation class) gets logits over devices; a (Gumbel-)softmax
with an annealed temperature gives probabilities ``P``. The smooth makespan is built from

* expected compute per kernel ``sum_k P_ik t_ik``;
* expected transfer per edge ``P_src^T C_e P_dst`` with ``C_e[k, l] = lat_kl + bytes_e / bw_kl``;
* a smooth longest path (log-sum-exp over each kernel's predecessors, evaluated level by level
  of the DAG with ``jax.lax.scan``) in which a kernel also waits for the expected work queued
  before it (in topological order) on its device, and
* a smooth maximum of the expected work per device (load) is taken with it, and
* a penalty for expected resident bytes above a device's capacity.

All restarts are optimised at once (``vmap``) with Adam. Each restart is then hardened (argmax),
repaired for memory, evaluated exactly with the list-scheduling simulator, and the best candidate
(HEFT's placement is one of them) is improved by a time-bounded local search (single-class moves
and swaps, first improvement per batch of candidates evaluated together with
:func:`~perfjax.placement.schedule._simulate.simulate_batch`). Starting the search from the best of
HEFT and the gradient solutions means the result is never worse than HEFT.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from perfjax.placement.schedule._heuristics import heft, upward_rank
from perfjax.placement.schedule._problem import PlacementProblem
from perfjax.placement.schedule._simulate import (
    MemoryCapacityError,
    _simulate_one,
    memory_ok,
    memory_use,
    prepared,
    priority_order,
    rank_order,
    simulate_batch,
)

_NEG = -1e9


def _bucket(x: int, lo: int = 4) -> int:
    """Next power of two (at least ``lo``): shapes padded so few programs need compiling."""
    return max(lo, 1 << max(0, int(x) - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class _Arrays:
    """Padded, normalised arrays of one problem (times in units of ``scale``)."""

    times: np.ndarray  # (n_pad, d) 0 where unsupported / padding
    mask: np.ndarray  # (G_pad, d) 0 or _NEG on logits
    group: np.ndarray  # (n_pad,) group of each kernel (padding -> a padded group)
    src: np.ndarray  # (e_pad,)
    dst: np.ndarray
    ebytes: np.ndarray  # (e_pad,) bytes / scale
    lat: np.ndarray  # (d, d) latency / scale
    inv_bw: np.ndarray  # (d, d)
    mem: np.ndarray  # (n_pad,) bytes / capacity scale
    cap: np.ndarray  # (d,) capacity / capacity scale (inf -> huge)
    lv_nodes: np.ndarray  # (L, W) node index (n_pad + 1 = sink for padding)
    lv_preds: np.ndarray  # (L, W, K) predecessor index (n_pad = "-inf" source for padding)
    lv_edges: np.ndarray  # (L, W, K) edge index (e_pad - 1 padding edge... any, masked)
    order: np.ndarray  # (n_pad,) topological order, padding last
    scale: float
    num_groups: int


def _arrays(problem: PlacementProblem, scale: float) -> _Arrays:
    n, d = problem.num_kernels, problem.num_devices
    g = problem.groups()
    G = int(g.max()) + 1
    n_pad, G_pad = _bucket(n, 16), _bucket(G, 16)
    e = len(problem.edges)
    e_pad = _bucket(e + 1, 32)
    T = problem.compute_time_s
    times = np.zeros((n_pad, d), np.float32)
    times[:n] = np.where(np.isfinite(T), T, 0.0) / scale
    sup = np.ones((G_pad, d), bool)
    for k in range(d):
        ok = np.ones(G, bool)
        np.logical_and.at(ok, g, np.isfinite(T[:, k]))
        sup[:G, k] = ok
    mask = np.where(sup, 0.0, _NEG).astype(np.float32)
    group = np.full(n_pad, G_pad - 1 if G_pad > G else 0, np.int64)
    group[:n] = g
    src = np.zeros(e_pad, np.int64)
    dst = np.zeros(e_pad, np.int64)
    src[:e], dst[:e] = problem.edges[:, 0], problem.edges[:, 1]
    eb = np.zeros(e_pad, np.float32)
    eb[:e] = problem.edge_bytes / scale
    lat, inv = problem.transfer_matrices()
    finite_cap = np.isfinite(problem.capacity_bytes)
    cap_scale = float(problem.capacity_bytes[finite_cap].max()) if finite_cap.any() else 1.0
    mem = np.zeros(n_pad, np.float32)
    mem[:n] = problem.memory_bytes / cap_scale
    cap = np.where(finite_cap, problem.capacity_bytes / cap_scale, 1e30).astype(np.float32)
    # Levels (longest hop distance from a source); one scan step per level.
    pr = prepared(problem)
    level = np.zeros(n, np.int64)
    for i in problem.order.tolist():
        if pr.preds[i]:
            level[i] = 1 + max(level[p] for p in pr.preds[i])
    L = int(level.max()) + 1 if n else 1
    W = int(np.bincount(level).max()) if n else 1
    K = max(1, max((len(p) for p in pr.preds), default=1))
    if L * W > 4 * n:  # a few wide levels among many narrow ones: one kernel per step instead
        level = np.empty(n, np.int64)
        level[problem.order] = np.arange(n)
        L, W = n, 1
    L_pad, W_pad, K_pad = _bucket(L, 8), _bucket(W, 8), _bucket(K, 4)
    lv_nodes = np.full((L_pad, W_pad), n_pad + 1, np.int64)
    lv_preds = np.full((L_pad, W_pad, K_pad), n_pad, np.int64)
    lv_edges = np.full((L_pad, W_pad, K_pad), e_pad - 1, np.int64)
    fill = np.zeros(L, np.int64)
    for i in problem.order.tolist():
        lv = level[i]
        w = fill[lv]
        fill[lv] += 1
        lv_nodes[lv, w] = i
        for q, (p, ed) in enumerate(zip(pr.preds[i], pr.pred_edges[i])):
            lv_preds[lv, w, q] = p
            lv_edges[lv, w, q] = ed
    order = np.concatenate([problem.order, np.arange(n, n_pad)])
    return _Arrays(times, mask, group, src, dst, eb, lat.astype(np.float32) / scale,
                   inv.astype(np.float32), mem, cap, lv_nodes, lv_preds, lv_edges, order, scale,
                   G)  # fmt: skip


def _smax(x: jax.Array, beta: jax.Array, axis: int = -1) -> jax.Array:
    return beta * jax.nn.logsumexp(x / beta, axis=axis)


def smooth_makespan(P: jax.Array, arr: dict, beta: jax.Array) -> jax.Array:
    """Smooth makespan (in units of the scale) of per-kernel device probabilities ``P (n_pad, d)``.

    ``arr`` holds the padded arrays of :class:`_Arrays` as jnp arrays.
    """
    times = arr["times"]
    ec = jnp.sum(P * times, axis=-1)  # expected compute per kernel
    Ps, Pd = P[arr["src"]], P[arr["dst"]]
    comm = jnp.sum((Ps @ arr["lat"]) * Pd, -1) + arr["ebytes"] * jnp.sum(
        (Ps @ arr["inv_bw"]) * Pd, -1
    )
    n_pad = times.shape[0]
    finish0 = jnp.zeros(n_pad + 2, P.dtype).at[n_pad].set(_NEG)
    # A kernel also waits for the expected work queued before it (in topological order) on its
    # device: exactly the device-free time of a list schedule in that order, in expectation.
    order = arr["order"]
    work = (P * times)[order]
    queued = jnp.cumsum(work, axis=0) - work
    queue = jnp.zeros(n_pad, P.dtype).at[order].set(jnp.sum(P[order] * queued, -1))
    queue = jnp.concatenate([queue, jnp.zeros(2, P.dtype)])

    def step(finish, xs):
        nodes, preds, edges = xs
        vals = finish[preds] + comm[edges]  # (W, K)
        vals = jnp.concatenate([queue[nodes][:, None], vals], -1)
        f = ec[jnp.minimum(nodes, n_pad - 1)] + _smax(vals, beta)
        return finish.at[nodes].set(f), None

    finish, _ = jax.lax.scan(step, finish0, (arr["lv_nodes"], arr["lv_preds"], arr["lv_edges"]))
    path = _smax(jnp.concatenate([finish[:n_pad], jnp.zeros(1, P.dtype)]), beta)
    load = _smax(jnp.sum(P * times, axis=0), beta)
    return _smax(jnp.stack([path, load]), beta)


def _objective(logits, key, tau, noise, beta, arr, mem_weight):
    g = jax.random.gumbel(key, logits.shape) * noise
    Pg = jax.nn.softmax((logits + arr["mask"] + g) / tau, axis=-1)
    P = Pg[arr["group"]]
    span = smooth_makespan(P, arr, beta)
    used = jnp.sum(P * arr["mem"][:, None], axis=0)
    over = jnp.sum(jax.nn.relu(used - arr["cap"]) / jnp.minimum(arr["cap"], 1e30))
    return span + mem_weight * over


_adam_cache: dict[float, Any] = {}


def _step_fn(lr: float):
    """One jitted Adam step on all restarts (a Python loop over steps compiles ~2x faster than a
    scan over them)."""
    if lr not in _adam_cache:
        opt = optax.adam(lr)
        grad_fn = jax.vmap(
            jax.value_and_grad(_objective), in_axes=(0, 0, None, None, None, None, None)
        )

        @jax.jit
        def step(logits, state, key, frac, tau0, tau1, beta, arr, mem_weight):
            tau = tau0 * (tau1 / tau0) ** frac
            key, sub = jax.random.split(key)
            keys = jax.random.split(sub, logits.shape[0])
            val, g = grad_fn(logits, keys, tau, 1.0 - frac, beta, arr, mem_weight)
            upd, state = opt.update(g, state, logits)
            return optax.apply_updates(logits, upd), state, key, val

        _adam_cache[lr] = (opt, step)
    return _adam_cache[lr]


def _optimise(logits0, key, arr, steps, lr, tau0, tau1, beta, mem_weight):
    """Adam on the smooth makespan of every restart; temperature annealed ``tau0 -> tau1`` and
    Gumbel noise from 1 to 0 over the steps. Returns (logits, loss per step and restart)."""
    opt, step = _step_fn(float(lr))
    logits, state, vals = logits0, opt.init(logits0), []
    for t in range(steps):
        frac = jnp.float32(t / max(steps - 1, 1))
        logits, state, key, val = step(logits, state, key, frac, jnp.float32(tau0),
                                       jnp.float32(tau1), beta, arr, mem_weight)  # fmt: skip
        vals.append(val)
    return logits, jnp.stack(vals) if vals else jnp.zeros((0, logits0.shape[0]))


def _jnp_arrays(a: _Arrays) -> dict:
    keys = ("times", "mask", "group", "src", "dst", "ebytes", "lat", "inv_bw", "mem", "cap",
            "lv_nodes", "lv_preds", "lv_edges", "order")  # fmt: skip
    return {k: jnp.asarray(getattr(a, k)) for k in keys}


# ---------------------------------------------------------------------------------------------
# hardening, repair, local search
# ---------------------------------------------------------------------------------------------


def repair_memory(problem: PlacementProblem, a: np.ndarray) -> np.ndarray:
    """Moves colocation classes off over-full devices (cheapest time increase first)."""
    a = a.copy()
    g = problem.groups()
    G = int(g.max()) + 1
    T = problem.compute_time_s
    cap = problem.capacity_bytes * (1 + 1e-9)
    gmem = np.bincount(g, problem.memory_bytes, minlength=G)
    gtime = np.zeros((G, problem.num_devices))
    np.add.at(gtime, g, np.where(np.isfinite(T), T, np.inf))
    for _ in range(G * problem.num_devices):
        used = memory_use(problem, a)
        over = np.flatnonzero(used > cap)
        if not len(over):
            return a
        k = int(over[0])
        ga = np.full(G, -1)
        ga[g] = a
        best = None
        for c in np.flatnonzero((ga == k) & (gmem > 0)):
            for j in range(problem.num_devices):
                if j != k and used[j] + gmem[c] <= cap[j] and np.isfinite(gtime[c, j]):
                    cost = gtime[c, j] - gtime[c, k]
                    if best is None or cost < best[0]:
                        best = (cost, c, j)
        if best is None:
            break
        a[g == best[1]] = best[2]
    raise MemoryCapacityError(
        "cannot fit the weights into the devices' memory (repair failed); the platform lacks "
        "memory for this program."
    )


def _harden(problem: PlacementProblem, logits: np.ndarray) -> np.ndarray:
    g = problem.groups()
    return np.argmax(logits[: int(g.max()) + 1], axis=-1)[g].astype(np.int64)


def evaluate(problem: PlacementProblem, a: np.ndarray) -> tuple[float, np.ndarray]:
    order = rank_order(problem, a)
    return float(simulate_batch(problem, a[None], order)[0]), order


def _shift_moves(problem: PlacementProblem, order: np.ndarray, rng, limit: int) -> list:
    """(kernel, new position) pairs that keep ``order`` topological."""
    pr = prepared(problem)
    n = problem.num_kernels
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    out = []
    for v in range(n):
        lo = max((pos[p] for p in pr.preds[v]), default=-1) + 1
        hi = min((pos[q] for q in pr.succs[v]), default=n) - 1
        out.extend((v, u) for u in range(lo, hi + 1) if u != pos[v])
    if len(out) > limit:
        out = [out[j] for j in rng.choice(len(out), limit, replace=False)]
    return out


def _critical(problem: PlacementProblem, a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Kernels on a critical chain of the list schedule (data or device predecessors that bind)."""

    start, finish = _simulate_one(problem, a, order)
    pr = prepared(problem)
    et = pr.edge_time
    n = problem.num_kernels
    prev_on_dev = np.full(n, -1)
    last = np.full(problem.num_devices, -1)
    for i in order.tolist():
        prev_on_dev[i] = last[a[i]]
        last[a[i]] = i
    span = finish.max(initial=0.0)
    tol = 1e-9 * max(span, 1e-30)
    stack = [int(i) for i in np.flatnonzero(finish >= span - tol)]
    crit = np.zeros(n, bool)
    while stack:
        i = stack.pop()
        if crit[i]:
            continue
        crit[i] = True
        j = prev_on_dev[i]
        if j >= 0 and finish[j] >= start[i] - tol:
            stack.append(int(j))
        for p, e in zip(pr.preds[i], pr.pred_edges[i]):
            if finish[p] + et[e, a[p], a[i]] >= start[i] - tol:
                stack.append(p)
    return np.flatnonzero(crit)


def _shifted(order: np.ndarray, v: int, u: int) -> np.ndarray:
    o = order[order != v]
    return np.insert(o, u, v)


def _class_moves(
    problem: PlacementProblem,
    a: np.ndarray,
    ga: np.ndarray,
    order: np.ndarray,
    supported: np.ndarray,
    rng: np.random.Generator,
) -> list[tuple[str, int, int]]:
    """Candidate moves of colocation classes (``ga``: the device of each class): ``("m", class,
    device)`` moves a class, ``("s", c1, c2)`` swaps two classes' devices (all pairs up to 64
    classes, else a random sample). Moves touching the critical chain come first (only they can
    shorten the makespan directly), each group in random order."""
    g = problem.groups()
    G, d = len(ga), problem.num_devices
    cands = [("m", c, k) for c in range(G) for k in range(d) if k != ga[c] and supported[c, k]]

    def ok_swap(c1: int, c2: int) -> bool:
        return ga[c1] != ga[c2] and supported[c1, ga[c2]] and supported[c2, ga[c1]]

    if G <= 64:
        cands += [("s", c1, c2) for c1 in range(G) for c2 in range(c1 + 1, G) if ok_swap(c1, c2)]
    else:
        pairs = rng.integers(G, size=(4 * G, 2))
        cands += [("s", int(x), int(y)) for x, y in pairs if ok_swap(x, y)]
    crit_classes = set(g[_critical(problem, a, order)].tolist())
    key = [0 if (c[1] in crit_classes or (c[0] == "s" and c[2] in crit_classes)) else 1
           for c in cands]  # fmt: skip
    perm = rng.permutation(len(cands))
    return [cands[j] for j in sorted(perm, key=lambda j: key[j])]


def local_search(
    problem: PlacementProblem,
    a: np.ndarray,
    order: np.ndarray | None = None,
    *,
    time_limit_s: float = 5.0,
    seed: int = 0,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """First-improvement local search; returns (assignment, order, makespan, accepted moves).

    Neighbourhood: move one colocation class to another device, swap the devices of two classes
    (all pairs up to 64 classes, else a random sample), and shift one kernel to another valid
    position of the priority order (all shifts up to 64 kernels, else a sample). Up to 64
    kernels, each move is tried under three orders (the incumbent's, the candidate's own rank
    order, and HEFT's static rank order). Candidates are
    evaluated in batches with :func:`simulate_batch`; the best of the first batch that improves
    is taken, and after each move the rank order of the new assignment replaces the order when
    it is no worse.
    """
    t_end = time.perf_counter() + time_limit_s
    rng = np.random.default_rng(seed)
    n, d = problem.num_kernels, problem.num_devices
    g = problem.groups()
    G = int(g.max()) + 1
    members = np.zeros((G, n), bool)
    members[g, np.arange(n)] = True
    supported = np.ones((G, d), bool)
    for k in range(d):
        np.logical_and.at(supported[:, k], g, np.isfinite(problem.compute_time_s[:, k]))
    a = a.copy()
    if order is None:
        order = rank_order(problem, a)
    order = np.asarray(order, np.int64)
    best = float(simulate_batch(problem, a[None], order)[0])
    chunk = chunk or int(np.clip(200_000 // max(n, 1), 16, 1024))
    multi_order = n <= 64
    if multi_order:
        static = priority_order(problem, -upward_rank(problem))
    accepted = 0
    improved = True
    while improved and time.perf_counter() < t_end:
        improved = False
        ga = np.full(G, -1)
        ga[g] = a
        cands = _class_moves(problem, a, ga, order, supported, rng)
        shifts = _shift_moves(problem, order, rng, limit=4 * n if n > 64 else n * n)
        shifts = [("o", v, u) for v, u in shifts]
        batches = [cands[j : j + chunk] for j in range(0, len(cands), chunk)]
        batches += [shifts[j : j + chunk] for j in range(0, len(shifts), chunk)]
        for batch in batches:
            if time.perf_counter() > t_end:
                break
            A = np.repeat(a[None], len(batch), 0)
            if batch[0][0] == "o":
                orders = np.stack([_shifted(order, v, u) for _, v, u in batch])
            else:
                orders = order
                for r, (kind, x, y) in enumerate(batch):
                    if kind == "m":
                        A[r, members[x]] = y
                    else:
                        A[r, members[x]], A[r, members[y]] = ga[y], ga[x]
                if multi_order:
                    # Small graphs: also try each candidate under its own rank order and under
                    # HEFT's static order, since the best order changes with the assignment.
                    B = len(batch)
                    orders = np.concatenate([np.repeat(order[None], B, 0),
                                        np.stack([rank_order(problem, x) for x in A]),
                                        np.repeat(static[None], B, 0)])  # fmt: skip
                    A = np.concatenate([A, A, A])
            spans = simulate_batch(problem, A, orders)
            r = int(np.argmin(spans))
            if spans[r] < best * (1 - 1e-9):
                a, best = A[r], float(spans[r])
                if orders.ndim == 2:
                    order = orders[r]
                else:
                    new_order = rank_order(problem, a)
                    new_span = float(simulate_batch(problem, a[None], new_order)[0])
                    if new_span <= best:
                        order, best = new_order, new_span
                accepted += 1
                improved = True
                break
    return a, order, best, accepted


@dataclasses.dataclass(frozen=True)
class RelaxedResult:
    assignment: np.ndarray
    order: np.ndarray
    makespan_s: float
    #: Best hardened gradient solution before local search (no HEFT start), and HEFT's.
    gradient_makespan_s: float
    heft_makespan_s: float
    #: The gradient restart started from HEFT's placement, hardened, before local search.
    gradient_from_heft_makespan_s: float
    #: Where the final solution started: ``"gradient"`` or ``"heft"``.
    start: str
    local_moves: int
    wall_s: float
    loss_curve: np.ndarray


def _hardened(
    problem: PlacementProblem, logits: np.ndarray
) -> list[tuple[float, int, np.ndarray, np.ndarray]]:
    """``(makespan, restart, assignment, order)`` of each restart's logits hardened to an
    assignment and repaired to fit memory; restarts that cannot fit are left out."""
    cands = []
    for r in range(len(logits)):
        a = _harden(problem, logits[r])
        try:
            a = repair_memory(problem, a)
        except MemoryCapacityError:
            continue
        span, order = evaluate(problem, a)
        cands.append((span, r, a, order))
    return cands


def _iterated_local_search(
    problem: PlacementProblem,
    a1: np.ndarray,
    o1: np.ndarray,
    span1: float,
    rng: np.random.Generator,
    *,
    rounds: int,
    t_end: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Perturbs the best solution (a few random class moves; every other round also a random
    priority order), searches again, and keeps improvements, for ``rounds`` rounds or until
    ``t_end``; returns (assignment, order, makespan, accepted local-search moves)."""
    d = problem.num_devices
    g = problem.groups()
    G = int(g.max()) + 1
    moves = 0
    for it in range(rounds):
        if time.perf_counter() > t_end:
            break
        a2 = a1.copy()
        for c in rng.integers(G, size=int(rng.integers(1, 4))):
            a2[g == c] = int(rng.integers(d))
        if (
            not memory_ok(problem, a2)
            or not np.isfinite(problem.compute_time_s[np.arange(problem.num_kernels), a2]).all()
        ):
            continue
        o2 = None
        if it % 2:
            o2 = priority_order(problem, rng.random(problem.num_kernels))
        a2, o2, span2, m2 = local_search(
            problem, a2, o2, time_limit_s=max(t_end - time.perf_counter(), 0.01), seed=seed + it
        )
        moves += m2
        if span2 < span1 * (1 - 1e-9):
            a1, o1, span1 = a2, o2, span2
    return a1, o1, span1, moves


def relaxed(
    problem: PlacementProblem,
    *,
    seed: int = 0,
    restarts: int | None = None,
    steps: int | None = None,
    lr: float = 0.1,
    time_limit_s: float = 10.0,
    local_search_s: float | None = None,
    ils_rounds: int = 50,
) -> RelaxedResult:
    """Relaxed gradient placement + hardening + local search (see the module docstring).

    Args:
      seed: random seed of the initial logits and the Gumbel noise.
      restarts: random restarts optimised together, plus one started from HEFT's placement
        (default 8, or 4 above 300 kernels).
      steps: Adam steps, temperature annealed from 1 to 0.05 (default 300, or 150 above 300
        kernels).
      time_limit_s: overall budget; local search gets what is left (or ``local_search_s``).
      ils_rounds: perturb-and-search rounds after the first local search (iterated local
        search), within the budget.
    """
    t0 = time.perf_counter()
    d = problem.num_devices
    big = problem.num_kernels > 300
    restarts = restarts if restarts is not None else (4 if big else 8)
    steps = steps if steps is not None else (150 if big else 300)
    try:
        a_heft, o_heft, _ = heft(problem)
        span_heft, _ = evaluate(problem, a_heft)
        span_heft = min(span_heft, float(simulate_batch(problem, a_heft[None], o_heft)[0]))
    except MemoryCapacityError:
        a_heft, o_heft, span_heft = None, None, np.inf
    scale = problem.lower_bound_s() or 1.0
    arrs = _arrays(problem, scale)
    G_pad = arrs.mask.shape[0]
    rng = np.random.default_rng(seed)
    logits0 = rng.normal(0.0, 0.5, (restarts + 1, G_pad, d)).astype(np.float32)
    if a_heft is not None:
        gh = np.zeros(G_pad, np.int64)
        gh[problem.groups()] = a_heft
        logits0[-1] = 3.0 * np.eye(d, dtype=np.float32)[gh]
    logits, vals = _optimise(
        jnp.asarray(logits0), jax.random.PRNGKey(seed), _jnp_arrays(arrs), steps, lr, 1.0, 0.05,
        jnp.float32(0.02), jnp.float32(10.0),
    )  # fmt: skip
    cands = _hardened(problem, np.asarray(logits))
    grad_only = min((c[0] for c in cands if c[1] < restarts), default=np.inf)
    from_heft = min((c[0] for c in cands if c[1] == restarts), default=np.inf)
    pool = sorted(cands, key=lambda c: c[0])
    if a_heft is not None:
        o = o_heft if simulate_batch(problem, a_heft[None], o_heft)[0] <= span_heft else None
        pool.append((span_heft, -1, a_heft, o if o is not None else rank_order(problem, a_heft)))
        pool.sort(key=lambda c: c[0])
    if not pool:
        raise MemoryCapacityError("no feasible placement found: the weights do not fit.")
    span0, r0, a0, o0 = pool[0]
    # Local search gets what is left of the budget, and at least a quarter of it.
    now = time.perf_counter()
    t_end = max(t0 + time_limit_s, now + 0.25 * time_limit_s)
    if local_search_s is not None:
        t_end = now + local_search_s
    a1, o1, span1, moves = local_search(
        problem, a0, o0, time_limit_s=max(t_end - time.perf_counter(), 0.05), seed=seed
    )
    if span1 > span0:
        a1, o1, span1 = a0, o0, span0
    a1, o1, span1, more = _iterated_local_search(
        problem, a1, o1, span1, rng, rounds=ils_rounds, t_end=t_end, seed=seed
    )
    moves += more
    return RelaxedResult(
        assignment=a1, order=o1, makespan_s=span1, gradient_makespan_s=float(grad_only),
        heft_makespan_s=float(span_heft),
        gradient_from_heft_makespan_s=float(from_heft), start="heft" if r0 == -1 or r0 == restarts else "gradient",
        local_moves=moves, wall_s=time.perf_counter() - t0, loss_curve=np.asarray(vals).mean(axis=1),
    )  # fmt: skip
