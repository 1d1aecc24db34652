"""Benchmark suites and host measurement (perfjax.calibrate._suites)."""

import datetime
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax
import perfjax.executor
from perfjax.calibrate import Measurements, Workload
from perfjax.calibrate._suites import NOISY_SPREAD, SIZES, SUITES, measure, suite
from perfjax.executor import TimeStats

NAMES = [n for n in SUITES if n != "all"]

#: The kinds each suite may contain.
SUITE_KINDS = {
    "matmul_sweep": {"matmul", "bmm"},
    "memory_bandwidth": {"memory"},
    "elementwise": {"elementwise", "transcendental"},
    "reductions": {"reduction"},
    "softmax_layernorm": {"softmax", "layernorm"},
    "conv2d_sweep": {"conv2d"},
    "attention": {"attention"},
    "kernel_chains": {"chain"},
    "programs": {"model"},
}

_TRANSCENDENTAL_OPS = ("exponential", "tanh", "logistic", "log", "sqrt", "erf")


def _ops(program) -> set[str]:
    return set(re.findall(r"stablehlo\.([a-z_]+)", program.stablehlo))


def _check_kind(w: Workload, text: str, ops: set[str]) -> None:
    """The traced program's operations agree with the workload's kind."""
    transcendental = ops & set(_TRANSCENDENTAL_OPS)
    if w.kind == "matmul":
        assert "dot_general" in ops and "batching_dims" not in text, w.id
    elif w.kind == "bmm":
        assert "dot_general" in ops and "batching_dims" in text, w.id
    elif w.kind == "conv2d":
        assert "convolution" in ops, w.id
    elif w.kind == "elementwise":
        assert not transcendental and "reduce" not in ops and "dot_general" not in ops, (w.id, ops)
    elif w.kind == "transcendental":
        assert transcendental, (w.id, ops)
    elif w.kind == "memory":
        assert ops & {"add", "multiply"} and not transcendental and "reduce" not in ops, (w.id, ops)
    elif w.kind == "reduction":
        assert "reduce" in ops and "dot_general" not in ops, (w.id, ops)
    elif w.kind == "softmax":
        assert {"reduce", "exponential"} <= ops, (w.id, ops)
    elif w.kind == "layernorm":
        assert "reduce" in ops and "rsqrt" in ops, (w.id, ops)
    elif w.kind == "attention":
        assert {"dot_general", "exponential"} <= ops, (w.id, ops)
    elif w.kind == "chain":
        assert ops & {"reduce", "dot_general"}, (w.id, ops)
    elif w.kind == "model":  # a whole program: arithmetic of more than one kind of op
        assert len(ops - {"constant", "broadcast_in_dim", "reshape", "convert"}) >= 2, (w.id, ops)
    else:
        raise AssertionError(f"unexpected kind {w.kind!r} in a suite")


def _working_set(w: Workload) -> int:
    """Bytes of inputs plus outputs, computed from shapes (independently of the suite code)."""
    fn, inputs = w.build()
    outs = jax.eval_shape(fn, *inputs)
    leaves = [*jax.tree_util.tree_leaves(inputs), *jax.tree_util.tree_leaves(outs)]
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves)


# ---------------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------------


def test_suite_names():
    assert set(NAMES) == set(SUITE_KINDS)
    assert "all" in SUITES
    assert SIZES == ("tiny", "default", "large")


@pytest.mark.parametrize("name", NAMES)
def test_tiny_suite_traces_with_the_right_kinds(name):
    ws = suite(name, size="tiny")
    assert 1 <= len(ws) <= 8
    assert len(set(ws)) == len(ws)
    assert {w.kind for w in ws} <= SUITE_KINDS[name]
    for w in ws:
        program = perfjax.trace(*w.build())
        _check_kind(w, program.stablehlo, _ops(program))
        # Cheap enough for a few milliseconds per call on a small CPU (depthwise conv is slow
        # per flop on XLA:CPU, so its bound is the tighter flop count of these layers).
        g = perfjax.analyze(*w.build())
        assert g.flops <= 2e7, (w.id, g.flops)
        assert g.bytes <= 2 * 1024**2, (w.id, g.bytes)


@pytest.mark.parametrize("name", NAMES)
def test_sizes_grow_and_kinds_hold(name):
    tiny, default, large = (suite(name, size=s) for s in SIZES)
    assert len(tiny) < len(default) <= len(large)
    for ws in (default, large):
        assert len(set(ws)) == len(ws), "duplicate workloads"
        assert {w.kind for w in ws} <= SUITE_KINDS[name]
        for w in ws:
            w.build()  # every recipe's parameters are valid
            assert Workload.from_json(w.to_json()) == w  # and survive a CSV round trip


def test_all_is_the_union_without_duplicates():
    for size in ("tiny", "default"):
        everything = suite("all", size=size)
        assert len(set(everything)) == len(everything)
        union = set().union(*(suite(n, size=size) for n in NAMES))
        assert set(everything) == union
        assert {w.kind for w in everything} == set().union(*SUITE_KINDS.values())


def test_default_all_is_a_few_hundred_workloads():
    n = len(suite("all"))
    assert 100 <= n <= 340, n


def test_programs_suite_draws_every_family_the_same_way_each_time():
    from perfjax.calibrate._programs import BLOCK_FAMILIES

    ws = suite("programs")
    assert ws == suite("programs")  # a fixed seed: every calibration measures the same ones
    assert len(ws) == len(set(ws)) >= 30
    families = [dict(w.params)["family"] for w in ws]
    assert {f: families.count(f) for f in BLOCK_FAMILIES} == {
        f: len(ws) // 6 for f in BLOCK_FAMILIES
    }
    assert {w.kind for w in ws} == {"model"}
    # Sizes spread over orders of magnitude, none too slow for a 2-minute calibration.
    flops = [
        perfjax.analyze(*w.build()).flops for w in ws if dict(w.params)["family"] != "elementwise"
    ]
    assert max(flops) <= 2e9 and max(flops) / min(flops) > 100


def test_matmul_sweep_contents():
    ws = suite("matmul_sweep")
    p = [dict(w.params) for w in ws]
    for d in p:
        assert "precision" in d and d["precision"] is None
    for dt in ("float32", "bfloat16"):
        square = sorted(
            d["m"] for d in p if d["m"] == d["k"] == d["n"] and not d.get("b") and d["dtype"] == dt
        )
        assert square == [2**i for i in range(4, 12)], (dt, square)
        skinny = [d for d in p if d["m"] <= 64 and d["k"] == d["n"] >= 1024 and d["dtype"] == dt]
        assert {d["m"] for d in skinny} >= {1, 64} and {d["k"] for d in skinny} == {1024, 2048}
    batched = [w for w in ws if w.kind == "bmm"]
    assert batched and all(4 <= dict(w.params)["b"] <= 32 for w in batched)
    assert {dict(w.params)["dtype"] for w in batched} == {"float32", "bfloat16"}
    assert max(d["m"] for d in p if d["dtype"] == "float32") == 2048
    assert (
        max(d["m"] for d in (dict(w.params) for w in suite("matmul_sweep", size="large"))) == 4096
    )


def test_memory_bandwidth_spans_l1_to_beyond_the_last_level_cache():
    cache = perfjax.device("host").cache_bytes
    assert cache > 0
    ws = suite("memory_bandwidth")
    for pattern in ("copy", "scale", "add", "triad"):
        sets = sorted(_working_set(w) for w in ws if dict(w.params)["pattern"] == pattern)
        assert len(sets) >= 8, pattern
        assert 4 * 1024 <= sets[0] <= 8 * 1024, (pattern, sets[0])
        assert sets[-1] >= 4 * cache, (pattern, sets[-1], cache)
        assert sets[-1] <= 16 * cache, "the largest working set is needlessly large"
        ratios = np.diff(np.log2(sets))
        assert np.all(ratios > 0.5) and np.all(ratios < 1.5), "not about an octave apart"


def test_elementwise_kinds_follow_the_op():
    ws = suite("elementwise")
    ops = {dict(w.params)["op"]: w.kind for w in ws}
    assert set(ops) >= {
        "add",
        "mul",
        "relu",
        "div",
        "gelu",
        "tanh",
        "exp",
        "sigmoid",
        "log",
        "sqrt",
    }
    for op, kind in ops.items():
        expected = (
            "transcendental"
            if op in ("exp", "tanh", "gelu", "sigmoid", "log", "sqrt", "erf", "sin", "pow")
            else "elementwise"
        )
        assert kind == expected, (op, kind)
    assert len({dict(w.params)["shape"] for w in ws}) >= 3


def test_transcendental_chains_run_in_the_functions_domain_and_weigh_by_function():
    """Chained workloads keep their values where every function is defined (no NaN, which
    would time a library routine's early exit), and XLA:CPU's fusion weighs a scalar library
    call (sin) above a vectorised polynomial (exp) while counting one transcendental each."""
    from perfjax.fusion import fuse

    chains = {dict(w.params)["op"]: w for w in suite("elementwise") if "chain" in dict(w.params)}
    assert {"exp", "sin", "pow", "mul"} <= set(chains)
    work = {}
    for op in ("exp", "sin", "pow", "log"):
        fn, inputs = chains[op].build()
        x = np.linspace(-1.0, 0.999, inputs[0].shape[0], dtype=np.float32)
        assert np.isfinite(np.asarray(fn(x))).all(), op
        k = fuse(perfjax.analyze(fn, inputs), "cpu")
        assert k.transcendentals.sum() == 8 * inputs[0].shape[0]
        work[op] = k.transcendental_work.sum()
        g = fuse(perfjax.analyze(fn, inputs), "gpu")
        assert g.transcendental_work.sum() == g.transcendentals.sum()
    assert work["sin"] > 1.5 * work["exp"] and work["pow"] > 4 * work["exp"]
    with pytest.raises(perfjax.InputError, match="chain > 1 needs a unary op"):
        Workload.of("elementwise", op="add", shape=(8,), chain=2).build()


def test_cpu_transcendental_weights_are_the_middle_of_two_measured_cpus():
    """``XLA_CPU_TRANSCENDENTALS`` is the geometric mean of the weights
    ``benchmarks/host_transcendentals.py`` measured on an Intel Xeon and an AMD EPYC (within
    rounding), and every weight lies between the two machines' (a third CPU is likelier in the
    middle than at either end: the two differ by up to 1.8x, for sqrt)."""
    import csv
    import math
    import pathlib

    from perfjax.fusion._kernels import XLA_CPU_TRANSCENDENTALS

    results = pathlib.Path(__file__).parents[1] / "benchmarks" / "results"

    def weights(name):
        lines = (line for line in open(results / name) if not line.startswith("#"))
        return {r["op"]: float(r["weight"]) for r in csv.DictReader(lines)}

    xeon, epyc = weights("host_transcendentals.csv"), weights("host_transcendentals_epyc.csv")
    table = dict(XLA_CPU_TRANSCENDENTALS)
    assert set(table) == set(xeon) == set(epyc)
    for op, w in table.items():
        middle = math.sqrt(xeon[op] * epyc[op])
        assert abs(w / middle - 1) < 0.05, (op, w, middle)
        lo, hi = sorted((xeon[op], epyc[op]))
        assert lo * 0.97 <= w <= hi * 1.03, (op, w, lo, hi)


def test_conv_attention_reductions_and_norms_cover_their_grids():
    convs = [dict(w.params) for w in suite("conv2d_sweep")]
    assert any(d["kh"] == 1 for d in convs) and any(d["kh"] == 3 for d in convs)
    assert any(d["groups"] == d["c"] == d["o"] > 1 for d in convs), "no depthwise layer"
    assert any(d["stride"] == 2 for d in convs)
    assert {d["batch"] for d in convs} >= {1, 8}
    att = [dict(w.params) for w in suite("attention")]
    assert {d["causal"] for d in att} == {True, False}
    assert len({(d["b"], d["t"], d["h"], d["d"]) for d in att}) >= 4
    red = [dict(w.params) for w in suite("reductions")]
    assert {d["op"] for d in red} == {"sum", "max", "mean"}
    assert {d["axis"] for d in red} == {0, -1}
    norms = suite("softmax_layernorm")
    for kind in ("softmax", "layernorm"):
        grid = [dict(w.params) for w in norms if w.kind == kind]
        assert len({d["b"] for d in grid}) >= 3 and len({d["h"] for d in grid}) >= 3


def test_unknown_suite_or_size_is_an_error():
    with pytest.raises(ValueError, match="unknown suite 'matmul'") as e:
        suite("matmul")
    for name in SUITES:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="tiny"):
        suite("attention", size="huge")
    with pytest.raises(ValueError, match="memory_bandwidth"):
        measure("nope", progress=False)


# ---------------------------------------------------------------------------------------------
# measure
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured():
    ws = [
        Workload.of("matmul", m=32, k=32, n=32),
        Workload.of("memory", pattern="triad", n=4096),
        Workload.of("reduction", op="sum", shape=(64, 64), axis=0),
    ]
    return ws, measure(ws, max_time_s=0.05, progress=False)


def test_measure_times_are_positive_and_finite(measured):
    ws, ms = measured
    assert isinstance(ms, Measurements)
    assert [r.workload for r in ms.rows] == ws
    for r in ms.rows:
        assert r.device == "host"
        assert math.isfinite(r.time_s) and 0 < r.time_s < 0.05, (r.program, r.time_s)
        assert r.repeats >= 3
        assert math.isfinite(r.rel_spread) and r.rel_spread >= 0
        assert r.source.startswith("perfjax.measure")


def test_measure_metadata(measured):
    _, ms = measured
    md = ms.metadata
    for key in (
        "cpu",
        "cores",
        "jax",
        "jaxlib",
        "perfjax",
        "date",
        "suites",
        "remeasured",
        "loadavg_end",
    ):
        assert md.get(key), key
    assert float(md["loadavg_start"]) >= 0 and float(md["wall_s"]) > 0
    assert md["cpuidle"] == perfjax._host.idle_policy()  # (may be "": not every OS says)
    assert int(md["cores"]) == len(os.sched_getaffinity(0))
    assert md["jax"] == jax.__version__ and md["perfjax"] == perfjax.__version__
    date = datetime.datetime.fromisoformat(md["date"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - date).total_seconds()) < 3600
    assert 0 <= int(md["remeasured"]) <= 3
    assert md["suites"] == "custom"
    assert md["device"] == "host"


def test_measure_csv_round_trip(measured, tmp_path):
    ws, _ = measured
    path = tmp_path / "sub" / "host.csv"
    ms = measure(ws[:1], max_time_s=0.02, progress=False, out=str(path))
    assert path.exists() and not (tmp_path / "sub" / "host.csv.tmp").exists()
    back = Measurements.from_csv(path)
    assert len(back) == len(ms) == 1
    a, b = ms.rows[0], back.rows[0]
    assert b.workload == a.workload and b.kind == a.kind == "matmul"
    assert b.time_s == a.time_s and b.repeats == a.repeats and b.source == a.source
    assert math.isclose(b.rel_spread, a.rel_spread) or (
        math.isnan(a.rel_spread) and math.isnan(b.rel_spread)
    )
    assert dict(back.metadata) == dict(ms.metadata)


@pytest.mark.parametrize("device", ["h100", "gpu", "cpu:1", "v5e"])
def test_measure_other_devices_is_an_error(device):
    with pytest.raises(ValueError, match="only runs on this machine's CPU") as e:
        measure([Workload.of("matmul", m=8, k=8, n=8)], device, progress=False)
    assert "files" in str(e.value) and repr(device) in str(e.value)


class _FakeResult:
    def __init__(self, time):
        self.time = time


def test_noisy_points_are_remeasured_and_the_remeasurement_kept(monkeypatch):
    calls = []
    noisy = TimeStats.from_samples([1e-3, 1e-3, 5e-3, 1e-3, 9e-3, 1e-3, 1e-3], stable=True)
    p10, p90 = np.percentile(noisy.samples_s, [10, 90])
    assert (p90 - p10) / noisy.median_s > NOISY_SPREAD
    unstable = TimeStats.from_samples([2e-3] * 7, stable=False)
    good = TimeStats.from_samples([3e-3] * 7, stable=True)
    first = {"matmul": noisy, "memory": unstable, "reduction": good}

    def fake_run(fn, inputs, *, max_time_s, rtol):
        calls.append(max_time_s)
        kind = kinds[len(calls_by_kind)]
        calls_by_kind.append(kind)
        return _FakeResult(first[kind] if calls_by_kind.count(kind) == 1 else good)

    ws = [
        Workload.of("matmul", m=8, k=8, n=8),
        Workload.of("memory", pattern="copy", n=64),
        Workload.of("reduction", op="sum", shape=(8, 8)),
    ]
    kinds = ["matmul", "matmul", "memory", "memory", "reduction"]
    calls_by_kind: list[str] = []
    monkeypatch.setattr(perfjax.executor, "run", fake_run)
    ms = measure(ws, max_time_s=0.1, progress=False)
    assert len(calls) == 5  # two re-measurements
    assert calls[1] > 0.1 and calls[3] > 0.1 and calls[0] == calls[2] == calls[4] == 0.1
    assert ms.metadata["remeasured"] == "2"
    assert [r.time_s for r in ms.rows] == [3e-3, 3e-3, 3e-3]
    assert [r.source for r in ms.rows][:2] == ["perfjax.measure (re-measured)"] * 2
    assert ms.rows[2].source == "perfjax.measure"

    calls.clear()
    calls_by_kind.clear()
    kinds[:] = ["matmul", "memory", "reduction"]
    ms = measure(ws, max_time_s=0.1, progress=False, remeasure_noisy=False)
    assert len(calls) == 3 and ms.metadata["remeasured"] == "0"
    assert [r.time_s for r in ms.rows] == [noisy.median_s, 2e-3, 3e-3]


def test_measure_resolves_suite_names_and_skips_failures(monkeypatch):
    seen = []

    def fake_run(fn, inputs, *, max_time_s, rtol):
        seen.append(inputs)
        if len(seen) == 2:
            raise RuntimeError("boom")
        return _FakeResult(TimeStats.from_samples([1e-4] * 7))

    monkeypatch.setattr(perfjax.executor, "run", fake_run)
    names = ["reductions", "attention", "reductions"]
    with pytest.warns(UserWarning, match="failed: RuntimeError: boom"):
        ms = measure(names, size="tiny", progress=False)
    expected = suite("reductions", size="tiny") + suite("attention", size="tiny")
    assert len(seen) == len(expected)
    assert [r.workload for r in ms.rows] == expected[:1] + expected[2:]
    assert ms.metadata["failed"] == expected[1].id
    assert ms.metadata["suites"] == "reductions,attention"
    assert ms.metadata["size"] == "tiny"

    def always_fails(fn, inputs, *, max_time_s, rtol):
        raise RuntimeError("broken")

    monkeypatch.setattr(perfjax.executor, "run", always_fails)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="every workload failed"):
        measure("attention", size="tiny", progress=False)


def test_measure_rejects_bad_arguments():
    with pytest.raises(TypeError, match="suite name"):
        measure(42, progress=False)
    with pytest.raises(ValueError, match="no workloads"):
        measure([], progress=False)
    with pytest.raises(ValueError, match="max_time_s"):
        measure("attention", size="tiny", max_time_s=0, progress=False)


def test_kernel_chains_add_kernels_with_length():
    """A chain of L steps is L times the kernels of one step (what separates per-call from
    per-kernel costs), and bad chains are clear errors."""
    from perfjax.fusion import kernels_for
    from perfjax.lowering._staging import program_for

    for op, extra in (("norm", {}), ("matmul", {}), ("matmul", {"rows": 16})):
        counts = [
            len(
                kernels_for(
                    program_for(
                        *Workload.of("chain", op=op, n=64, length=n, **extra).build(), None
                    ),
                    "cpu",
                )
            )
            for n in (1, 4, 16)
        ]
        per_step = (counts[2] - counts[1]) / 12
        assert per_step >= 1 and counts[1] - counts[0] == 3 * per_step, (op, extra, counts)
    # A layer chain multiplies its rows by one square weight: the output keeps the rows.
    fn, (x, w) = Workload.of("chain", op="matmul", n=32, length=3, rows=4).build()
    out = fn(jnp.ones(x.shape, x.dtype), jnp.eye(32, dtype=w.dtype) * 2.0)
    assert out.shape == (4, 32) and float(out[0, 0]) == 8.0
    with pytest.raises(ValueError, match="unknown chain op 'sort'"):
        Workload.of("chain", op="sort", n=8, length=2).build()
    with pytest.raises(ValueError, match="chain length must be a positive integer, got 0"):
        Workload.of("chain", op="norm", n=8, length=0).build()
    with pytest.raises(ValueError, match="chain rows apply to op 'matmul' only"):
        Workload.of("chain", op="norm", n=8, length=2, rows=4).build()
    with pytest.raises(ValueError, match="non-negative integer"):
        Workload.of("chain", op="matmul", n=8, length=2, rows=-1).build()


def test_rounds_take_the_median_of_round_medians(monkeypatch):
    """Three rounds alternate the order and keep the median of the rounds' medians: a slow
    round (another tenant on the machine) does not move the result."""
    medians = iter([1e-3, 9e-3, 1.1e-3])  # the second round is disturbed

    def fake_run(fn, inputs, max_time_s, rtol):
        m = next(medians)
        stats = TimeStats.from_samples([m, m])
        return type("R", (), {"time": stats})()

    monkeypatch.setattr(perfjax.executor, "run", fake_run)
    ms = measure([Workload.of("matmul", m=8, k=8, n=8)], rounds=3, progress=False)
    assert ms.rows[0].time_s == pytest.approx(1.1e-3)
    assert ms.rows[0].repeats == 6
    assert ms.metadata["rounds"] == "3"
    assert float(ms.metadata["round_spread_median"]) == pytest.approx(
        (9e-3 - 1e-3) / 1.1e-3, rel=1e-3
    )
    with pytest.raises(ValueError, match="rounds must be a positive integer, got 0"):
        measure([Workload.of("matmul", m=8, k=8, n=8)], rounds=0, progress=False)


def test_budgeted_measure_revisits_the_points_whose_rounds_disagree(monkeypatch):
    """With ``budget_s``, two rounds run first (never cut short); the point whose rounds
    disagree most gets a third round and keeps the median of three; a point with two rounds
    keeps the lower; the noise metadata say how far apart each point's closest rounds are."""
    timings = {
        "matmul": [1e-3, 3e-3, 1.1e-3],  # rounds disagree: a third round is added
        "memory": [2e-3, 2.02e-3],  # rounds agree within rtol: left alone
        "reduction": [5e-3, 4e-3, 4.1e-3],  # disagree less than matmul's
    }
    calls: list[str] = []

    def fake_run(fn, inputs, *, max_time_s, rtol):
        kind = next(k for k in timings if fn.__name__ == f"f_{k}")
        t = timings[kind][sum(c == kind for c in calls)]
        calls.append(kind)
        return _FakeResult(TimeStats.from_samples([t] * 9, stable=True))

    def build(kind):
        def f():
            pass

        f.__name__ = f"f_{kind}"
        return f

    ws = {
        "matmul": Workload.of("matmul", m=8, k=8, n=8),
        "memory": Workload.of("memory", pattern="copy", n=64),
        "reduction": Workload.of("reduction", op="sum", shape=(8, 8)),
    }
    monkeypatch.setattr(perfjax.executor, "run", fake_run)
    monkeypatch.setattr(Workload, "build", lambda self: (build(self.kind), ()))
    # A budget the rounds already spend: no third round.
    kw = dict(rounds=2, progress=False, max_time_s=1e-4, rtol=0.1)
    ms = measure(list(ws.values()), budget_s=1e-6, **kw)
    assert calls.count("matmul") == 2 and ms.metadata["remeasured"] == "0"
    assert [r.time_s for r in ms.rows] == [1e-3, 2e-3, 4e-3]  # the lower of two
    calls.clear()
    # Room for one more visit per point: matmul (3x apart) goes first, reduction next; memory
    # (1% apart) never.
    ms = measure(list(ws.values()), budget_s=30, **kw)
    assert calls[6:] == ["matmul", "reduction"]  # the least certain point first; memory never
    times = {r.kind: r.time_s for r in ms.rows}
    assert times == {"matmul": 1.1e-3, "memory": 2e-3, "reduction": 4.1e-3}  # medians of three
    assert ms.rows[0].source == "perfjax.measure (re-measured)"
    assert ms.rows[1].source == "perfjax.measure" and ms.metadata["remeasured"] == "2"
    # Noise: the closest two rounds of matmul 9% apart, memory's 1%, reduction's 2.4%.
    assert float(ms.metadata["noise_untrusted"]) == 0.0
    assert float(ms.metadata["noise_median"]) == pytest.approx(0.1 / 4.1, rel=1e-3)
    gaps = [0.1 / 1.1, 0.02 / 2.01, 0.1 / 4.1]
    assert float(ms.metadata["noise_p90"]) == pytest.approx(np.quantile(gaps, 0.9), rel=1e-3)
    with pytest.raises(ValueError, match="budget_s must be a positive number of seconds"):
        measure(list(ws.values()), budget_s=0, progress=False)
