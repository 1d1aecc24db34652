"""Placement algorithms: simulator, heuristics, exact MILP, relaxed gradient search, pipelines."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from perfjax.placement.schedule import _heuristics as H
from perfjax.placement.schedule._exact import exact
from perfjax.placement.schedule._pipeline import (
    _stage_costs,
    max_load,
    pipeline_dp,
    pipeline_relaxed,
)
from perfjax.placement.schedule._place import place, simulate
from perfjax.placement.schedule._problem import (
    PlacementProblem,
    fiddle_expert,
    load_fiddle,
    problem_from,
    random_problem,
)
from perfjax.placement.schedule._relaxed import _arrays, _jnp_arrays, smooth_makespan
from perfjax.placement.schedule._simulate import (
    MemoryCapacityError,
    makespan,
    schedule,
    simulate_batch,
)


def _problem(
    times, edges, comm=None, *, bw=1.0, mem=None, cap=None, names=None
) -> PlacementProblem:
    times = np.asarray(times, float)
    n, d = times.shape
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    b = np.full((d, d), bw)
    np.fill_diagonal(b, np.inf)
    return PlacementProblem(
        names=names or tuple(f"k{i}" for i in range(n)),
        compute_time_s=times,
        edges=edges,
        edge_bytes=np.zeros(len(edges)) if comm is None else np.asarray(comm, float),
        bandwidth_bytes_per_s=b,
        latency_s=np.zeros((d, d)),
        memory_bytes=np.zeros(n) if mem is None else np.asarray(mem, float),
        capacity_bytes=np.full(d, np.inf) if cap is None else np.asarray(cap, float),
        device_names=tuple(f"d{j}" for j in range(d)),
    )


# ---- simulator vs hand-computed makespans ------------------------------------------------------


def test_chain_same_device_and_split():
    p = _problem([[1, 2], [2, 1], [3, 3]], [[0, 1], [1, 2]], comm=[10.0, 4.0], bw=2.0)
    assert makespan(p, [0, 0, 0]) == 6.0  # 1 + 2 + 3, no transfers
    # k0 on d0 (1), transfer 10 B / 2 B/s = 5, k1 on d1 (1), k2 on d1 (3): 1 + 5 + 1 + 3.
    assert makespan(p, ["d0", "d1", "d1"]) == 10.0
    # Latency adds per crossing edge.
    lat = np.array([[0.0, 0.5], [0.5, 0.0]])
    import dataclasses

    q = dataclasses.replace(p, latency_s=lat)
    assert makespan(q, [0, 1, 0]) == pytest.approx(1 + 5.5 + 1 + 2.5 + 3)


def test_fork_join_parallel_and_serialised():
    # a -> (b, c) -> d, unit times, 1 s transfers.
    p = _problem(np.ones((4, 2)), [[0, 1], [0, 2], [1, 3], [2, 3]], comm=[1, 1, 1, 1])
    assert makespan(p, [0, 0, 0, 0]) == 4.0  # serial on one device
    assert makespan(p, [0, 0, 1, 0]) == 5.0  # c remote: 1 + (1 + 1) + 1 + 1
    free = _problem(np.ones((4, 2)), [[0, 1], [0, 2], [1, 3], [2, 3]])  # free transfers
    assert makespan(free, [0, 0, 1, 0]) == 3.0  # b and c run in parallel


def test_batch_simulator_matches_scalar_one():
    p = random_problem(25, 3, ccr=2.0, seed=3)
    rng = np.random.default_rng(0)
    A = rng.integers(0, 3, (16, p.num_kernels))
    spans = simulate_batch(p, A, p.order)
    ref = [schedule(p, a, p.order).makespan_s for a in A]
    np.testing.assert_allclose(spans, ref, rtol=1e-12)
    # One order per row (random topological orders).
    from perfjax.placement.schedule._simulate import priority_order

    orders = np.stack([priority_order(p, rng.random(p.num_kernels)) for _ in range(16)])
    np.testing.assert_allclose(
        simulate_batch(p, A, orders), [schedule(p, a, o).makespan_s for a, o in zip(A, orders)]
    )


# ---- HEFT on the classic example ----------------------------------------------------------------

# Topcuoglu, Hariri and Wu (2002), Fig. 2: 10 tasks, 3 processors, computation costs and edge
# communication costs (all links equal).
_W = [[14, 16, 9], [13, 19, 18], [11, 13, 19], [13, 8, 17], [12, 13, 10], [13, 16, 9], [7, 15, 11],
      [5, 11, 14], [18, 12, 20], [21, 7, 16]]  # fmt: skip
_E = [(1, 2, 18), (1, 3, 12), (1, 4, 9), (1, 5, 11), (1, 6, 14), (2, 8, 19), (2, 9, 16), (3, 7, 23),
      (4, 8, 27), (4, 9, 23), (5, 9, 13), (6, 8, 15), (7, 10, 17), (8, 10, 11), (9, 10, 13)]  # fmt: skip


def _topcuoglu() -> PlacementProblem:
    return _problem(_W, [(a - 1, b - 1) for a, b, _ in _E], [c for *_, c in _E],
                    names=tuple(f"T{i}" for i in range(1, 11)))  # fmt: skip


def test_heft_reproduces_topcuoglu_2002():
    p = _topcuoglu()
    ranks = H.upward_rank(p)
    np.testing.assert_allclose(
        ranks, [108, 77, 80, 80, 69, 63.333, 42.667, 35.667, 44.333, 14.667], atol=1e-3
    )
    _a, _order, own = H.heft(p)
    assert own == 80.0  # the published HEFT makespan
    pl = place(p, method="heft")
    assert pl.makespan_s == 80.0
    assert simulate(p, pl) == 80.0
    ex = place(p, method="exact", time_limit_s=30)
    assert ex.optimal and ex.makespan_s <= 80.0 and ex.makespan_s >= p.lower_bound_s()


# ---- exact == brute force ----------------------------------------------------------------------


def _linear_extensions(p: PlacementProblem):
    n = p.num_kernels
    preds = [set() for _ in range(n)]
    for s, t in p.edges:
        preds[t].add(int(s))

    def rec(done, seq):
        if len(seq) == n:
            yield list(seq)
            return
        for i in range(n):
            if i not in done and preds[i] <= done:
                yield from rec(done | {i}, [*seq, i])

    yield from rec(frozenset(), [])


def _brute_force(p: PlacementProblem) -> float:
    best = np.inf
    orders = np.array(list(_linear_extensions(p)))
    for a in itertools.product(range(p.num_devices), repeat=p.num_kernels):
        a = np.array(a)
        if (np.bincount(a, p.memory_bytes, p.num_devices) > p.capacity_bytes).any():
            continue
        best = min(best, simulate_batch(p, np.repeat(a[None], len(orders), 0), orders).min())
    return float(best)


@pytest.mark.parametrize("seed", range(5))
def test_exact_equals_brute_force(seed):
    p = random_problem(5 + seed % 2, 2, ccr=[0.5, 2.0][seed % 2], heterogeneity=1.0, seed=seed,
                       capacity_factor=1.3 if seed == 4 else None)  # fmt: skip
    r = exact(p, time_limit_s=20)
    assert r.optimal
    assert r.makespan_s == pytest.approx(_brute_force(p), rel=1e-6)
    assert r.makespan_s == pytest.approx(makespan(p, r.assignment, r.order))


# ---- relaxed ------------------------------------------------------------------------------------


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_relaxed_not_worse_than_heft_and_close_to_exact():
    gaps = []
    for seed in range(4):
        # Two problem sizes (8 kernels on 2 devices, 9 on 3): the relaxation compiles once per size.
        p = random_problem(8 + seed % 2, 2 + seed % 2, ccr=[0.5, 1.0, 3.0, 1.0][seed], seed=seed)
        heft = place(p, method="heft").makespan_s
        rel = place(p, method="relaxed", seed=seed, time_limit_s=2.0)
        ex = place(p, method="exact", time_limit_s=20)
        assert rel.makespan_s <= heft * (1 + 1e-12)
        assert ex.makespan_s <= rel.makespan_s * (1 + 1e-9)
        gaps.append(rel.makespan_s / ex.makespan_s - 1)
        assert set(rel.details) >= {"gradient_only_s", "heft_s"}
    assert np.median(gaps) <= 0.02 and max(gaps) <= 0.1


def test_smooth_makespan_gradients_are_finite_and_correct():
    p = random_problem(9, 3, ccr=1.0, seed=1)
    arr = _jnp_arrays(_arrays(p, p.lower_bound_s()))
    logits = jax.random.normal(jax.random.PRNGKey(0), (arr["times"].shape[0], 3))

    @jax.jit  # (compiled once: check_grads evaluates it and its gradient several times)
    def f(z):
        return smooth_makespan(jax.nn.softmax(z, axis=-1), arr, jnp.float32(0.1))

    g = jax.grad(f)(logits)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).sum()) > 0
    check_grads(f, (logits,), order=1, modes=("rev",), atol=5e-2, rtol=5e-2, eps=1e-2)
    # The smooth makespan approaches the simulator's as the assignment hardens.
    a = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    P = jnp.zeros_like(logits).at[jnp.arange(9), a].set(1.0)
    soft = float(jax.jit(smooth_makespan)(P, arr, jnp.float32(1e-3))) * p.lower_bound_s()
    assert soft <= makespan(p, a) * 1.01  # a relaxation: never above the real schedule


# ---- pipelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_pipeline_dp_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, d = 7, 3
    edges = [(i, i + 1) for i in range(n - 1)] + [(0, 3), (2, 6)]
    p = _problem(rng.uniform(0.5, 2.0, (n, d)), edges, rng.uniform(0, 1, len(edges)),
                 mem=rng.uniform(0, 1, n), cap=[2.5, 2.5, 2.5])  # fmt: skip
    costs = _stage_costs(p, np.arange(d))
    best = np.inf
    for cuts in itertools.combinations_with_replacement(range(n + 1), d - 1):
        b = [0, *cuts, n]
        best = min(best, max(costs[s, b[s], b[s + 1]] for s in range(d)))
    r = pipeline_dp(p)
    assert r.bottleneck_s == pytest.approx(best)
    # The DP's stage loads agree with the general max-load evaluation of its assignment.
    assert max_load(p, r.assignment)[0] == pytest.approx(r.bottleneck_s)
    rounded, refined = pipeline_relaxed(p, steps=100, restarts=4)
    assert refined.bottleneck_s >= r.bottleneck_s * (1 - 1e-12)
    assert refined.bottleneck_s <= rounded.bottleneck_s


def test_fiddle_graphs_and_expert_split():
    p = load_fiddle("throughput/LayerGraphs/bert24_inference", colocate=False)
    assert p.num_kernels == 32 and p.device_names[-1] == "cpu0"
    expert = fiddle_expert(
        "human-experts/bert24_inference_expert", "throughput/LayerGraphs/bert24_inference"
    )
    accs = [f"acc{j}" for j in range(6)]
    ml, _ = max_load(p, expert)
    dp = pipeline_dp(p, devices=accs)
    assert 0 < dp.bottleneck_s <= ml  # contiguous DP is no worse than the expert split here
    lat = load_fiddle("latency/LayerGraphs/bert24_inference")
    assert lat.memory_bytes.sum() > lat.capacity_bytes[0]  # needs several accelerators
    pl = place(lat, method="heft")
    assert pl.makespan_s >= lat.lower_bound_s()


# ---- memory and input errors ------------------------------------------------------------------


def test_memory_limits():
    p = _problem(np.ones((3, 2)), [[0, 1], [1, 2]], mem=[2, 2, 2], cap=[4, 4])
    with pytest.raises(MemoryCapacityError, match="memory capacity exceeded on 'd0'"):
        simulate(p, [0, 0, 0])
    with pytest.raises(MemoryCapacityError, match="no single device"):
        place(p, method="single")
    for method in ("greedy", "heft", "exact"):
        pl = place(p, method=method)
        assert np.bincount(pl.device_index, minlength=2).max() <= 2
    tiny = _problem(np.ones((2, 2)), [[0, 1]], mem=[5, 5], cap=[4, 4])
    with pytest.raises(MemoryCapacityError, match="lacks memory"):
        place(tiny, method="heft")
    assert np.isinf(simulate_batch(p, np.zeros((1, 3), int))[0])


def test_bad_inputs():
    p = _problem(np.ones((3, 2)), [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"unknown device 'd0x'.*did you mean"):
        simulate(p, ["d0", "d0x", "d0"])
    with pytest.raises(ValueError, match=r"expected one device per kernel \(3,\)"):
        simulate(p, [0, 1])
    with pytest.raises(ValueError, match="misses 1 kernels"):
        simulate(p, {"k0": "d0", "k1": "d1"})
    with pytest.raises(ValueError, match="unknown kernels"):
        simulate(p, {"k0": "d0", "k1": "d1", "k2": "d0", "zz": "d0"})
    with pytest.raises(ValueError, match="has a cycle"):
        _problem(np.ones((3, 2)), [[0, 1], [1, 2], [2, 0]])
    with pytest.raises(ValueError, match=r"compute_time_s has shape"):
        PlacementProblem(("a",), np.ones((1, 2)), np.zeros((0, 2)), np.zeros(0), np.ones((1, 1)),
                         np.zeros((1, 1)), np.zeros(1), np.ones(1), ("x",))  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown placement method 'hft'.*'heft'"):
        place(p, method="hft")
    with pytest.raises(ValueError, match="needs platform="):
        place(lambda x: x, (jnp.ones(3),))
    with pytest.raises(ValueError, match="cannot run on"):
        simulate(_problem([[1.0, np.inf], [1.0, 1.0]], [[0, 1]]), [1, 1])
    with pytest.raises(ValueError, match="order is not topological"):
        schedule(p, [0, 0, 0], [2, 1, 0])


# ---- from a perfjax program -------------------------------------------------------------------


def test_problem_from_program_and_place(tmp_path):
    from perfjax.calibrate._programs import _transformer_block

    fn, inputs = _transformer_block(2, jnp.float32, d=128, seq=64)
    p = problem_from(fn, inputs, platform="host+a100-pcie")
    assert p.device_names == ("host", "gpu0")
    assert p.num_kernels >= 6 and len(p.edges) >= p.num_kernels - 1
    assert np.isfinite(p.compute_time_s).all() and (p.compute_time_s > 0).all()
    # Weights: 4 d^2 + 8 d^2 fp32 GEMM operands (qkv, o, fc1, fc2).
    assert p.memory_bytes.sum() == pytest.approx(4 * (3 + 1 + 4 + 4) * 128 * 128)
    assert (p.compute_time_s[:, 1].sum()) < p.compute_time_s[:, 0].sum()  # the A100 is faster
    pl = place(fn, inputs, platform="host+a100-pcie", method="heft")
    # HEFT is greedy: it may lose to the best single device (the A100 alone), not by much.
    assert pl.lower_bound_s * (1 - 1e-9) <= pl.makespan_s
    assert pl.makespan_s <= 1.25 * place(p, method="single").makespan_s
    assert simulate(fn, "host+a100-pcie", pl, inputs=inputs) == pytest.approx(pl.makespan_s)
    df = pl.to_dataframe()
    assert list(df.columns) == ["kernel", "device", "start_s", "finish_s", "compute_s"]
    assert "makespan" in str(pl)
    out = pl.plot(str(tmp_path / "gantt.png"))
    assert open(out, "rb").read(4) == b"\x89PNG"


def test_loop_bodies_become_one_kernel():
    import jax

    def fn(x, ws):
        def body(h, w):
            return jnp.tanh(h @ w), None

        return jax.lax.scan(body, x, ws)[0]

    inputs = (
        jax.ShapeDtypeStruct((8, 64), jnp.float32),
        jax.ShapeDtypeStruct((4, 64, 64), jnp.float32),
    )
    p = problem_from(fn, inputs, platform="4xa100-pcie")  # a cycle through the loop body: merged
    assert any("in a cycle" in nm for nm in p.names) or len(p.edges) < p.num_kernels
    pl = place(p, method="heft")
    assert pl.makespan_s >= p.lower_bound_s()
