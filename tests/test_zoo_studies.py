"""Quick-mode checks of the zoo studies: experiments/zoo_{devices,batch,fusion,design}.py and the
README's "your own model" snippet (docs/zoo/your_model.py)."""

from __future__ import annotations

import itertools
import math
import pathlib
import runpy

import jax
import jax.numpy as jnp
import pandas as pd
import pytest
from experiment_modules import load_experiment

import perfjax

ROOT = pathlib.Path(__file__).resolve().parents[1]


_load = load_experiment


@pytest.fixture(scope="module")
def studies():
    return {n: _load(n) for n in ("zoo_devices", "zoo_batch", "zoo_fusion", "zoo_design")}


def test_devices_int8_rows_only_where_published(studies):
    mod = studies["zoo_devices"]
    devices = ("p100", "h100", "tpu-v3", "tpu-v5e", "epyc-7763", "xeon-8380", "edge-tpu")
    df = mod.run_predictions([("mlp", "tiny")], devices, batches=(2,), modes=("inference",))
    for prec in mod.PRECISIONS:
        have = set(df[df.precision == prec].device)
        assert have == {d for d in devices if mod.supports(d, prec)}, prec
    # p100, tpu-v3 and epyc-7763 publish no int8 peak; the Xeon's VNNI int8 peak is published.
    assert set(df[df.precision == "int8"].device) == {"h100", "tpu-v5e", "xeon-8380", "edge-tpu"}
    assert "p100" not in set(df[df.precision == "bf16"].device)
    assert "edge-tpu" not in set(df[df.precision == "fp32"].device)  # an int8-only NPU
    assert (df.time_s > 0).all() and (df.energy_per_sample_j > 0).all()
    assert (df.samples_per_s * df.time_per_sample_s).sub(1).abs().max() < 1e-9
    assert df[df.device == "h100"].calibration.str.contains("GPU calibration").all()


def test_batch_resnet18_h100_needs_a_large_batch(studies):
    mod = studies["zoo_batch"]
    batches = (1, 8, 64, 512)
    df = mod.sweep(("resnet18",), ("h100", "l4"), {"resnet18": batches})
    sat = mod.saturation(df).set_index("device").saturation_batch
    assert sat["h100"] > 1 and sat["h100"] > sat["l4"]
    h = df[df.device == "h100"].sort_values("batch")
    par = list(h.parallel_utilization)
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(par)), par
    assert par[0] < 0.5 < par[-1]
    # Per-sample time falls by far more than 10% from batch 1 to saturation.
    assert h.time_per_sample_s.iloc[0] > 3 * h.time_per_sample_s.min()


def test_fusion_reduces_kernels_and_bytes(studies):
    mod = studies["zoo_fusion"]
    fams = ("gpu", "tpu", "cpu", "npu")
    models = [(m, "tiny") for m in perfjax.models.names()]
    df = mod.run(models, modes=("inference",), families=fams, batch=2)
    train = mod.run([("mlp", "mnist")], modes=("training_step",), families=fams, batch=2)
    df = pd.concat([df, train], ignore_index=True)
    assert len(df) == (len(models) + 1) * len(fams)
    assert (df.kernels < df.ops).all()
    assert (df.fused_bytes <= df.unfused_bytes).all()
    assert (df.bytes_removed_pct >= 0).all() and (df.bytes_removed_pct < 100).all()
    # The CPU policy fuses no GEMM epilogue: at least as many kernels as the GPU policy.
    k = df.set_index(["model", "mode", "family"]).kernels
    for m, mode in set(zip(df.model, df["mode"], strict=True)):
        assert k[(m, mode, "cpu")] >= k[(m, mode, "gpu")]


def _check_route(mod, fn, inputs, device, expected_by_bound):
    summary, _rows = mod.design_case(fn, inputs, device)
    assert summary["best_field"] == expected_by_bound[summary["bottleneck"]], summary
    assert summary["confirmed"]
    t0 = summary["time_s"]
    spec = mod.scaled(perfjax.device(device), summary["best_field"], summary["k_found"])
    t = perfjax.predict(fn, inputs, device=spec, precision=mod.PRECISION).time_s
    assert t <= 0.5 * 1.01 * t0
    # Just below the found factor the time has not halved yet (the search found the threshold).
    spec = mod.scaled(perfjax.device(device), summary["best_field"], summary["k_found"] / 1.05)
    assert perfjax.predict(fn, inputs, device=spec, precision=mod.PRECISION).time_s > 0.5 * t0
    # The gradient's first-order factor is close for a route the bound says is nearly linear.
    assert math.isclose(summary["k_grad"], summary["k_found"], rel_tol=0.25)
    return summary


def test_design_route_follows_the_bottleneck(studies):
    mod = studies["zoo_design"]
    expected = {"memory": "memory_bytes_per_s", "launch": "launch_overhead_s"}
    fn, inputs = perfjax.models.build("mlp", batch=1).inference()
    s = _check_route(mod, fn, inputs, "h100", expected)
    assert s["bottleneck"] == "launch"
    x = jax.ShapeDtypeStruct((1 << 26,), jnp.float32)
    s = _check_route(mod, lambda a: a * 2.0 + 1.0, (x,), "h100", expected)
    assert s["bottleneck"] == "memory" and s["best_field"] == "memory_bytes_per_s"


def test_design_unreachable_route_is_reported(studies):
    mod = studies["zoo_design"]
    x = jax.ShapeDtypeStruct((1 << 26,), jnp.float32)
    k, _ = mod.find_factor(lambda k: 1.0 - 0.4 * (1 - 1 / k), 1.0)  # floors at 0.6 > 0.5
    assert k == math.inf
    assert mod.gradient_factor("memory_bytes_per_s", -1.0) == 2.0
    assert mod.gradient_factor("launch_overhead_s", -0.5) == math.inf  # wrong sign
    spec = mod.scaled(perfjax.device("h100"), "matrix_flops_per_s.bf16", 2.0)
    assert spec.matrix_flops_per_s["bf16"] == 2 * perfjax.device("h100").matrix_flops_per_s["bf16"]
    assert perfjax.predict(lambda a: a + 1.0, (x,), device=spec).time_s > 0


def test_readme_snippet_runs(tmp_path, monkeypatch):
    snippet = ROOT / "docs" / "zoo" / "your_model.py"
    code = [ln for ln in snippet.read_text().splitlines() if ln.strip()]
    assert len(code) <= 10
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(snippet), run_name="__main__")
    png = tmp_path / "cmp.png"
    assert png.exists() and png.stat().st_size > 1000
