"""Collective time models: hand-derived values, platform glue, gradients and monotonicity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from perfjax.placement import (
    algorithm_times_s,
    all_gather_time_s,
    all_reduce_time_s,
    all_to_all_time_s,
    best_algorithm,
    broadcast_time_s,
    collective_time_s,
    from_mapping,
    platform,
    reduce_scatter_time_s,
    ring_parameters,
    send_recv_time_s,
    smooth_min,
    torus_time_s,
)

N, B, A = 1e6, 1e9, 1e-6  # 1 MB, 1 GB/s, 1 us


@pytest.mark.parametrize(
    "fn, algorithm, p, expected",
    [
        # ring all-reduce: 2(p-1)/p n/B + 2(p-1) alpha
        (all_reduce_time_s, "ring", 4, 2 * 3 / 4 * 1e-3 + 6e-6),
        # recursive doubling: lg p (alpha + n/B)
        (all_reduce_time_s, "recursive_doubling", 8, 3 * (1e-6 + 1e-3)),
        # Rabenseifner: 2 lg p alpha + 2(p-1)/p n/B
        (all_reduce_time_s, "halving_doubling", 8, 6e-6 + 2 * 7 / 8 * 1e-3),
        # non power of two: ceil(lg 6) = 3 steps
        (all_reduce_time_s, "recursive_doubling", 6, 3 * (1e-6 + 1e-3)),
        (all_gather_time_s, "ring", 4, 3 * (1e-6 + 1e-3)),
        (all_gather_time_s, "recursive_doubling", 4, 2e-6 + 3e-3),
        (reduce_scatter_time_s, "ring", 4, 3 * (1e-6 + 0.25e-3)),
        (reduce_scatter_time_s, "recursive_halving", 4, 2e-6 + 0.75e-3),
        (all_to_all_time_s, "pairwise", 4, 3 * (1e-6 + 0.25e-3)),
        (all_to_all_time_s, "bruck", 4, 2 * (1e-6 + 0.5e-3)),
        (broadcast_time_s, "binomial_tree", 8, 3 * (1e-6 + 1e-3)),
        (broadcast_time_s, "scatter_allgather", 8, (3 + 7) * 1e-6 + 2 * 7 / 8 * 1e-3),
    ],
)
def test_formulas_match_hand_values(fn, algorithm, p, expected):
    assert float(fn(N, p, B, A, algorithm)) == pytest.approx(expected, rel=1e-6)


def test_point_to_point_and_torus_hand_values():
    assert float(send_recv_time_s(N, B, A)) == pytest.approx(1e-3 + 1e-6)
    # (4, 4) torus, 16 MB: dim 1 moves 3/4 * 16 MB over 2 directions, dim 2 3/4 * 4 MB: x2 for RS+AG.
    t = torus_time_s("all_reduce", 16e6, (4, 4), 1e9, 0.0)
    assert float(t) == pytest.approx(2 * (3 / 4 * 16e6 / 2e9 + 3 / 4 * 4e6 / 2e9))
    # Size-2 dims have one link, no second direction: (2,2,2) = single ring at bandwidth B.
    t = torus_time_s("all_reduce", 8e6, (2, 2, 2), 1e9, 1e-6)
    assert float(t) == pytest.approx(2 * (0.5 * 8e6 + 0.5 * 4e6 + 0.5 * 2e6) / 1e9 + 6e-6)
    # All-gather grows the block: (p-1) n / B overall for 2x2x2.
    assert float(torus_time_s("all_gather", 1e6, (2, 2, 2), 1e9, 0.0)) == pytest.approx(7e-3)
    # All-to-all on an 8-ring: 8n/4 bytes over 2 links each way -> n/B.
    assert float(torus_time_s("all_to_all", 1e6, (8,), 1e9, 0.0)) == pytest.approx(1e-3)


def test_on_builtin_platforms():
    n = 1e9
    # These check the alpha-beta formulas: on NVLink the default (fit="auto") is the calibrated
    # model (tests/test_collectives_xla.py), so the alpha-beta model is asked for with fit=None.
    ring = collective_time_s("all_reduce", n, "8xh100-nvlink", algorithm="ring", fit=None)
    # Each GPU's NVSwitch port carries one ring hop each way: 450 GB/s, 2 us per step.
    assert float(ring) == pytest.approx(2 * 7 / 8 * n / 450e9 + 14 * 2e-6, rel=1e-6)
    for fit in (None, "auto"):  # "auto" is the minimum over the algorithms under either model
        times = algorithm_times_s("all_reduce", n, "8xh100-nvlink", fit=fit)
        assert float(collective_time_s("all_reduce", n, "8xh100-nvlink", fit=fit)) == pytest.approx(
            min(float(t) for t in times.values()), rel=1e-6
        )
    assert best_algorithm("all_reduce", 1e3, "8xh100-nvlink", fit=None) == "recursive_doubling"
    assert best_algorithm("all_reduce", 1e9, "8xh100-nvlink", fit=None) == "halving_doubling"
    # PCIe tree: every ring hop uses its own up- and down-link: 25 GB/s, 2 us per step.
    pcie = collective_time_s("all_reduce", n, "4xa100-pcie", algorithm="ring")
    assert float(pcie) == pytest.approx(1.5 * n / 25e9 + 6 * 2e-6, rel=1e-6)
    # Subgroup of 2.
    two = collective_time_s(
        "all_gather", 1e6, "4xa100-pcie", group=["gpu1", "gpu3"], algorithm="ring"
    )
    assert float(two) == pytest.approx(1e6 / 25e9 + 2e-6, rel=1e-6)
    # Torus algorithm appears only for the whole torus.
    assert "torus" in algorithm_times_s("all_reduce", n, "tpu-v4-2x2x2")
    assert "torus" not in algorithm_times_s("all_reduce", n, "tpu-v4-2x2x2", group=[0, 1])
    t = collective_time_s("all_reduce", 8e6, "tpu-v4-2x2x2", algorithm="torus")
    assert float(t) == pytest.approx(2 * 7e6 / 45e9 + 6e-6, rel=1e-6)
    h = collective_time_s("send_recv", 25e9, "host+a100-pcie", group=("host", "gpu0"))
    assert float(h) == pytest.approx(1 + 5e-6)
    assert float(collective_time_s("all_reduce", 1e9, "8xh100-nvlink", group=[3])) == 0.0
    assert float(collective_time_s("all_reduce", 1e9, "8xh100-nvlink", [3], fit=None)) == 0.0


def test_ring_contention_and_permute_contention():
    # A 4-chip torus ring: the group's order 0,1,2,3 uses each link once per direction.
    ring4 = from_mapping(
        {
            "name": "r",
            "devices": {"t": {"device": "tpu-v4", "count": 4}},
            "topology": {
                "kind": "torus",
                "dims": [4],
                "bandwidth_bytes_per_s": 1e9,
                "latency_s": 1e-6,
            },
        }
    )
    assert ring_parameters(ring4) == (1e9, 1e-6)
    # The order 0,2,1,3 would cross links twice; the greedy re-ordering recovers the real ring.
    assert ring_parameters(ring4, [0, 2, 1, 3]) == (1e9, 1e-6)
    # A 2x2x2 torus: the snake (Gray code) order closes into a ring of single hops.
    assert ring_parameters(platform("tpu-v4-2x2x2")) == (45e9, 1e-6)
    ring = collective_time_s("all_reduce", 8e6, "tpu-v4-2x2x2", algorithm="ring")
    assert float(ring) == pytest.approx(2 * 7 / 8 * 8e6 / 45e9 + 14e-6, rel=1e-6)
    # Two flows into gpu0 share its PCIe down-link: alpha + 2 n / B.
    t = collective_time_s("collective_permute", 1e6, "4xa100-pcie", group=[(1, 0), (2, 0)])
    assert float(t) == pytest.approx(2e-6 + 2 * 1e6 / 25e9, rel=1e-6)
    shift = collective_time_s(
        "collective_permute", 1e6, ring4, group=[(i, (i + 1) % 4) for i in range(4)]
    )
    assert float(shift) == pytest.approx(1e-6 + 1e6 / 1e9, rel=1e-6)


def test_smooth_min_bounds():
    t = jnp.array([1e-3, 2e-3, 5e-4])
    s = float(smooth_min(t))
    assert 5e-4 * 3 ** (-1 / 50) - 1e-12 <= s <= 5e-4
    g = jax.grad(lambda x: smooth_min(x))(t)
    assert np.all(np.asarray(g) > 0)  # every algorithm gets a gradient
    # Three alpha-beta algorithms (fit=None): the smooth minimum is within 3**(1/50) of the exact one.
    smooth = collective_time_s("all_reduce", 1e6, "8xh100-nvlink", algorithm="smooth", fit=None)
    hard = collective_time_s("all_reduce", 1e6, "8xh100-nvlink", fit=None)
    assert float(hard) * 0.97 <= float(smooth) <= float(hard)


def test_gradients():
    for fn, alg in [
        (all_reduce_time_s, "ring"),
        (all_reduce_time_s, "halving_doubling"),
        (all_gather_time_s, "ring"),
        (reduce_scatter_time_s, "recursive_halving"),
        (all_to_all_time_s, "bruck"),
    ]:
        check_grads(
            lambda n, b, a, fn=fn, alg=alg: fn(n, 8, b, a, alg),
            (1e6, 1e9, 1e-6),
            order=1,
            modes=["rev"],
            rtol=2e-2,
        )
    check_grads(
        lambda n, b: torus_time_s("all_reduce", n, (2, 4), b, 1e-6),
        (1e6, 1e9),
        order=1,
        modes=["rev"],
        rtol=2e-2,
    )
    for fit in (None, "auto"):  # alpha-beta; the calibrated model (the default on NVLink)
        check_grads(
            lambda n, fit=fit: collective_time_s(
                "all_reduce", n, "8xh100-nvlink", algorithm="smooth", fit=fit
            ),
            (1e6,),
            order=1,
            modes=["rev"],
            rtol=2e-2,
        )
    # d time / d bandwidth is negative, d time / d bytes positive (ring, 8 GPUs): exact values.
    g = jax.grad(lambda n, b: all_reduce_time_s(n, 8, b, 1e-6), argnums=(0, 1))(1e6, 1e9)
    assert float(g[0]) == pytest.approx(2 * 7 / 8 / 1e9, rel=1e-5)
    assert float(g[1]) == pytest.approx(-2 * 7 / 8 * 1e6 / 1e18, rel=1e-5)
    # jit + vmap over sizes.
    sizes = jnp.array([1e3, 1e6, 1e9])
    out = jax.jit(jax.vmap(lambda n: all_reduce_time_s(n, 8, 450e9, 2e-6)))(sizes)
    assert out.shape == (3,) and np.all(np.diff(np.asarray(out)) > 0)


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(
        ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "collective_broadcast"]
    ),
    plat=st.sampled_from(["8xh100-nvlink", "4xa100-pcie", "tpu-v4-2x2x2", "8xmi300x"]),
    n=st.floats(1.0, 1e10),
    factor=st.floats(1.01, 100.0),
    fit=st.sampled_from(["auto", None]),
)
def test_monotone_in_bytes(kind, plat, n, factor, fit):
    small = float(collective_time_s(kind, n, plat, fit=fit))
    big = float(collective_time_s(kind, n * factor, plat, fit=fit))
    # Non-decreasing (float32: a few bytes vanish next to microseconds of latency), strictly
    # increasing once the bandwidth term is visible.
    assert big >= small > 0
    if n >= 1e5:
        assert big > small


@settings(max_examples=30, deadline=None)
@given(
    p=st.integers(2, 64),
    n=st.floats(1.0, 1e10),
    b=st.floats(1e8, 1e12),
    alg=st.sampled_from(["ring", "recursive_doubling", "halving_doubling"]),
)
def test_faster_links_never_slower(p, n, b, alg):
    slow = float(all_reduce_time_s(n, p, b, 1e-6, alg))
    fast = float(all_reduce_time_s(n, p, 2 * b, 1e-6, alg))
    assert fast < slow
    # All-reduce = reduce-scatter + all-gather of the shard (ring): the decomposition is exact.
    rs = float(reduce_scatter_time_s(n, p, b, 1e-6, "ring"))
    ag = float(all_gather_time_s(n / p, p, b, 1e-6, "ring"))
    assert float(all_reduce_time_s(n, p, b, 1e-6, "ring")) == pytest.approx(rs + ag, rel=1e-5)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown collective kind 'allreduc'"):
        collective_time_s("allreduc", 1e6, "8xh100-nvlink")
    with pytest.raises(ValueError, match=r"unknown all_reduce algorithm 'tree'.*ring"):
        collective_time_s("all_reduce", 1e6, "8xh100-nvlink", algorithm="tree")
    with pytest.raises(ValueError, match=r"'torus' does not apply here"):
        collective_time_s("all_reduce", 1e6, "8xh100-nvlink", algorithm="torus")
    with pytest.raises(ValueError, match=r"send_recv needs group=\(src, dst\)"):
        collective_time_s("send_recv", 1e6, "8xh100-nvlink")
    with pytest.raises(ValueError, match=r"lists a device twice"):
        collective_time_s("all_reduce", 1e6, "8xh100-nvlink", group=[0, 0])
