"""``recommend``: ranking equals independent ``predict`` calls; precisions only where supported."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

import perfjax
import perfjax.ops as F
from perfjax._recommend import Recommendation, recommend

SDS = jax.ShapeDtypeStruct
DEVICES = ("h100", "a100-80gb", "v100", "tpu-v4", "xeon-8480", "edge-tpu")


def mlp(params, x):
    h = F.relu(F.bias_add(F.matmul(x, params["w1"]), params["b1"]))
    return F.bias_add(F.matmul(h, params["w2"]), params["b2"])


def mlp_inputs(batch, d=784, h=128, o=10):
    f32 = jnp.float32
    params = dict(w1=SDS((d, h), f32), b1=SDS((h,), f32), w2=SDS((h, o), f32), b2=SDS((o,), f32))
    return params, SDS((batch, d), f32)


def big_mlp(x, w1, w2):
    """GEMM-bound: 8192 x 8192 x 8192 twice."""
    return F.matmul(F.relu(F.matmul(x, w1)), w2)


BIG = (SDS((8192, 8192), jnp.float32),) * 3


@pytest.fixture(scope="module")
def small() -> Recommendation:
    return recommend(mlp, mlp_inputs(64), devices=DEVICES)


def _metric(objective, pred, batch):
    return {
        "latency": pred.time_s,
        "throughput": -batch / pred.time_s,
        "energy": pred.energy_j / batch,
    }[objective]


@pytest.mark.parametrize("objective", ["latency", "throughput", "energy"])
def test_order_equals_independent_predictions(objective):
    inputs = mlp_inputs(256)
    rec = recommend(mlp, inputs, objective=objective, devices=DEVICES)
    expected = []
    for d in DEVICES:
        spec = perfjax.device(d)
        for p in ("fp32", "bf16", "int8"):
            if p not in spec.precisions():
                continue
            pred = perfjax.predict(mlp, inputs, device=d, precision=p)
            expected.append((_metric(objective, pred, 256), d, p, pred))
    # Ties (none expected) are broken by device name, then the order of `precisions`.
    order = {"fp32": 0, "bf16": 1, "int8": 2}
    expected.sort(key=lambda e: (e[0], e[1], order[e[2]]))
    assert [(r.device, r.precision) for r in rec.rows] == [(d, p) for _, d, p, _ in expected]
    for row, (_, _, _, pred) in zip(rec.rows, expected, strict=True):
        assert row.time_s == pytest.approx(pred.time_s, rel=1e-9)
        assert row.energy_j_per_sample == pytest.approx(pred.energy_j / 256, rel=1e-9)
        assert row.samples_per_s == pytest.approx(256 / pred.time_s, rel=1e-9)
        assert row.bound == pred.bottleneck
        assert row.utilization == pytest.approx(pred.utilization)
    assert rec.best is rec.rows[0]
    assert [r.rank for r in rec.rows] == list(range(1, len(rec.rows) + 1))
    # vs_best and vs_next are >= 1 and chain: vs_best of row k = product of vs_next before it.
    assert rec.rows[0].vs_best == 1.0 and rec.rows[-1].vs_next is None
    for a, b in zip(rec.rows, rec.rows[1:], strict=False):
        assert a.vs_next >= 1.0
        assert b.vs_best == pytest.approx(a.vs_best * a.vs_next, rel=1e-9)


def test_bf16_beats_fp32_on_h100_for_gemm_bound_mlp():
    rec = recommend(big_mlp, BIG, devices=["h100"], precisions=("fp32", "bf16"))
    by = {r.precision: r for r in rec.rows}
    assert rec.best.precision == "bf16"
    assert by["bf16"].bound == by["fp32"].bound == "compute"
    assert by["fp32"].time_s / by["bf16"].time_s > 1.5  # 989 vs 495 TFLOP/s (bf16 vs tf32)
    assert "compute-bound" in by["bf16"].reason
    assert "faster than fp32" in by["bf16"].reason


def test_precisions_only_where_the_spec_has_a_peak(small):
    ranked = {(r.device, r.precision) for r in small.rows}
    skipped = {(s.device, s.precision): s.reason for s in small.skipped}
    for d in DEVICES:
        spec = perfjax.device(d)
        for p in ("fp32", "bf16", "int8"):
            if p in spec.precisions():
                assert (d, p) in ranked
            else:
                assert (d, p) not in ranked
                assert skipped[d, p] == f"no {p} peak"
    # V100 has no bf16 (Volta), edge-tpu only int8: both named in the table.
    assert ("v100", "bf16") in skipped and ("edge-tpu", "fp32") in skipped
    assert ("h100", "int8") in ranked and ("edge-tpu", "int8") in ranked
    text = str(small)
    assert "not ranked" in text and "v100 bf16" in text and "no bf16 peak" in text


def test_reasons_name_the_predicted_bound(small):
    for r in small.rows:
        assert r.reason.startswith(f"{r.bound}-bound"), r.reason
        assert r.bound == r.prediction.bottleneck
    # The next-row clause names the next device and the factor shown in vs_next.
    first, second = small.rows[0], small.rows[1]
    if first.vs_next > 1.03:
        assert f"{first.vs_next:.3g}x ahead of {second.device}" in first.reason


def test_memory_bound_reason_quotes_bandwidth():
    x = SDS((1 << 26,), jnp.float32)
    rec = recommend(lambda a: a * 2.0, (x,), devices=["h100", "a100-80gb"], precisions="fp32")
    assert [r.device for r in rec.rows] == ["h100", "a100-80gb"]
    assert all(r.bound == "memory" for r in rec.rows)
    assert "memory bandwidth" in rec.best.reason
    from perfjax._display import fmt_count

    bw = [perfjax.device(d).memory_bytes_per_s for d in ("h100", "a100-80gb")]
    shown = (
        f"{bw[0] / bw[1]:.3g}x its memory bandwidth: {fmt_count(bw[0])}B/s vs {fmt_count(bw[1])}B/s"
    )
    assert shown in rec.best.reason


def test_throughput_over_batch_sizes():
    sizes = [1, 16, 256]
    rec = recommend(
        mlp,
        mlp_inputs(1),
        objective="throughput",
        devices=["h100", "tpu-v4"],
        precisions=("bf16",),
        batch_sizes=sizes,
    )
    assert rec.batch_sizes == tuple(sizes)
    for r in rec.rows:
        assert r.batch in sizes and r.batch >= min(sizes)
        assert r.samples_per_s == pytest.approx(r.batch / r.time_s, rel=1e-12)
        # The chosen batch is the best of those tried, as predict says independently.
        best = max(
            b / perfjax.predict(mlp, mlp_inputs(b), device=r.device, precision="bf16").time_s
            for b in sizes
        )
        assert r.samples_per_s == pytest.approx(best, rel=1e-9)
    # A tiny MLP is launch-bound at batch 1: a bigger batch wins on throughput.
    assert rec.best.batch > 1
    assert "better than batch 1" in rec.best.reason
    assert "batch" in rec.to_dataframe().columns


def test_top_and_tables(small, tmp_path):
    rec = recommend(mlp, mlp_inputs(64), devices=DEVICES, top=3)
    assert len(rec.rows) == 3 and rec.truncated == len(small.rows) - 3
    assert [(r.device, r.precision) for r in rec.rows] == [
        (r.device, r.precision) for r in small.rows[:3]
    ]
    df = small.to_dataframe()
    assert list(df["device"]) == [r.device for r in small.rows]
    assert {"time_s", "samples_per_s", "energy_j_per_sample", "bound", "reason"} <= set(df.columns)
    d = small.to_dict()
    assert d["objective"] == "latency" and len(d["rows"]) == len(small.rows)
    assert "prediction" not in d["rows"][0]
    text = str(small)
    assert "perfjax.recommend" in text and small.best.device in text
    path = small.plot(str(tmp_path / "rec.png"))
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "rec.png").stat().st_size > 1000


def test_program_and_batch_inference():
    program = perfjax.trace(mlp, mlp_inputs(32))
    rec = recommend(program, devices=["h100"], precisions="bf16", objective="throughput")
    assert rec.best.batch == 32
    assert rec.best.time_s == pytest.approx(
        perfjax.predict(mlp, mlp_inputs(32), device="h100", precision="bf16").time_s
    )
    rec = recommend(mlp, mlp_inputs(32), devices="h100", precisions="bf16", batch=4)
    assert rec.best.batch == 4
    assert rec.best.samples_per_s == pytest.approx(4 / rec.best.time_s)


def test_stablehlo_text_keeps_its_dtypes():
    text = jax.jit(big_mlp).lower(*BIG).as_text()
    rec = recommend(text, devices=["h100"], precisions=(None, "bf16", "int8"))
    assert {r.precision for r in rec.rows} == {None, "int8"}
    (why,) = [s.reason for s in rec.skipped]
    assert "read from StableHLO text" in why


def test_default_devices_are_the_catalog_without_host():
    rec = recommend(mlp, mlp_inputs(8), precisions="fp32", top=1)
    seen = {r.device for r in rec.rows} | {s.device for s in rec.skipped}
    total = rec.truncated + len(rec.rows) + len(rec.skipped)
    assert total == len(perfjax.devices()) - 1
    assert "host" not in seen


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(objective="speed"),
            ValueError,
            r"unknown objective 'speed'.*'latency', 'throughput'",
        ),
        (dict(objective="latncy"), ValueError, r"Did you mean 'latency'"),
        (dict(devices=["h100", "h1000"]), ValueError, r"unknown device 'h1000'.*Did you mean"),
        (dict(devices=[]), ValueError, r"devices is empty"),
        (dict(precisions=("bf16", "fp4")), ValueError, r"unknown precision 'fp4'.*'fp32'"),
        (dict(precisions=()), ValueError, r"precisions is empty"),
        (dict(batch_sizes=[0, 8]), ValueError, r"positive integers.*0 not allowed"),
        (dict(batch_sizes=[2.5]), ValueError, r"positive integers"),
        (dict(batch_sizes=[]), ValueError, r"non-empty list of positive integers"),
        (dict(batch_sizes=[True]), ValueError, r"positive integers"),
        (dict(top=0), ValueError, r"top must be a positive integer"),
        (dict(batch=-1), ValueError, r"batch must be a positive integer"),
        (dict(batch=2, batch_sizes=[1, 2]), ValueError, r"either batch= .* or batch_sizes="),
        (dict(batch_argnums=5), ValueError, r"batch_argnums .* must index the 2 positional"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        recommend(mlp, mlp_inputs(4), **{"devices": ["h100"], **kwargs})


def test_error_when_nothing_can_run():
    with pytest.raises(
        ValueError, match=r"no \(device, precision\) pair.*v100 bf16 \(no bf16 peak\)"
    ):
        recommend(mlp, mlp_inputs(4), devices=["v100"], precisions="bf16")


def test_batch_needed_for_throughput_of_scalar_inputs():
    s = SDS((), jnp.float32)
    with pytest.raises(ValueError, match=r"cannot tell the batch size.*pass batch=N"):
        recommend(lambda a: a + 1.0, (s,), objective="throughput", devices=["h100"])
    rec = recommend(lambda a: a + 1.0, (s,), objective="throughput", devices=["h100"], batch=1)
    assert rec.best.batch == 1 and math.isfinite(rec.best.samples_per_s)


def test_batch_sizes_trace_failure_names_the_batch():
    def fixed(x):  # rejects every batch but 4
        if x.shape[0] != 4:
            raise TypeError(f"needs batch 4, got {x.shape[0]}")
        return x * 2.0

    with pytest.raises(TypeError, match="needs batch 4") as info:
        recommend(fixed, (SDS((4, 8), jnp.float32),), devices=["h100"], batch_sizes=[4, 8])
    assert any("tracing at batch 8" in n for n in getattr(info.value, "__notes__", []))


def test_docstring_example_runs(monkeypatch):
    import doctest

    import perfjax._recommend

    monkeypatch.setattr(perfjax, "recommend", recommend, raising=False)
    result = doctest.testmod(perfjax._recommend, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_all_adds_host_and_aliases_dedupe():
    rec = recommend(mlp, mlp_inputs(8), devices="all", precisions="fp32")
    assert "host" in {r.device for r in rec.rows}
    rec = recommend(mlp, mlp_inputs(8), devices=["nvidia-a100", "a100-80gb"], precisions="fp32")
    assert [r.device for r in rec.rows] == ["a100-80gb"]
