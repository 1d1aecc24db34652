"""What a calibration does on GPUs it never saw: vendor scoping, unseen-device intervals, host
timing, XLA's GEMM table loader and the per-precision tensor-core efficiency."""

from __future__ import annotations

import dataclasses
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax
from perfjax import calibrate
from perfjax.calibrate import Measurements, Workload
from perfjax.calibrate._public import load_xla_matmul, xla_dtype_precision
from perfjax.devicemodels import default_params
from perfjax.devicemodels import device as get_device
from perfjax.devicemodels._calibration import device_distance, load

SHIPPED = pathlib.Path(perfjax.devicemodels.__file__).with_name("data") / "gpu_calibration.json"


@pytest.fixture(scope="module")
def shipped():
    return load(SHIPPED)


def _square(n=4096, dtype=jnp.bfloat16):
    x = jax.ShapeDtypeStruct((n, n), dtype)
    return perfjax.ops.matmul, (x, x)


# --- vendor scoping --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amd_fit():
    """A small AMD calibration on XLA's CDNA4 GEMM table (3 shapes per dtype)."""
    return calibrate.fit(
        load_xla_matmul(archs=["gfx950"], max_rows_per_group=3), holdout=0.3, steps=30
    )


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_nvidia_fit_never_reaches_amd(shipped, amd_fit):
    # The shipped calibration's shared parameters are NVIDIA's; an AMD GPU gets the AMD fit where
    # one is combined in (vendor_params), else the AMD priors: never the NVIDIA GEMM efficiency.
    nvidia_only = dataclasses.replace(shipped, vendor_params={}, vendor_devices={})
    assert nvidia_only.covers("h100") == "vendor" and nvidia_only.covers("b200") == "fitted"
    assert nvidia_only.covers("mi300x") == "prior"
    both = nvidia_only.with_vendor(amd_fit)
    assert both.covers("mi300x") == "vendor" and both.covers("mi355x") == "fitted"
    nv, amd = both.jax_params("h100"), both.jax_params("mi300x")
    assert not np.allclose(
        np.asarray(nv["compute_eff_logit"]), np.asarray(amd["compute_eff_logit"])
    )
    for k, v in amd_fit.params.items():
        np.testing.assert_allclose(np.asarray(amd[k]), np.asarray(v), err_msg=k)
    # NVIDIA GPUs are unaffected by the AMD part.
    for k, v in nvidia_only.jax_params("h100").items():
        np.testing.assert_allclose(np.asarray(nv[k]), np.asarray(v), err_msg=k)


def test_calibration_without_a_vendor_gives_its_priors(shipped):
    nvidia_only = dataclasses.replace(shipped, vendor_params={}, vendor_devices={})
    got = nvidia_only.jax_params("mi300x")
    want = default_params("gpu", "AMD")
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)
    # ... and the prediction says so.
    fn, args = _square()
    p = perfjax.predict(fn, args, device="mi300x", calibration=nvidia_only)
    assert p.calibration.startswith("priors") and "AMD" in p.calibration
    assert p.time_s == pytest.approx(
        perfjax.predict(fn, args, device="mi300x", calibration=False).time_s
    )


def test_fit_refuses_two_vendors():
    w = Workload.of("matmul", m=512, k=512, n=512, dtype="bfloat16")
    rows = [dict(workload=w, device=d, time_s=1e-5) for d in ("h100", "mi300x")] * 6
    with pytest.raises(ValueError, match="several vendors.*with_vendor"):
        calibrate.fit(Measurements.from_rows(rows), steps=2)


def test_with_vendor_checks_its_input(shipped):
    with pytest.raises(ValueError, match="already fits nvidia"):
        shipped.with_vendor(dataclasses.replace(shipped, vendor_params={}, vendor_devices={}))


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_vendor_params_round_trip(tmp_path, shipped, amd_fit):
    both = dataclasses.replace(shipped, vendor_params={}, vendor_devices={}).with_vendor(amd_fit)
    back = load(both.save(tmp_path / "cal.json"))
    assert set(back.vendor_params) == {"amd"} and back.vendor_devices == {"amd": ("mi355x",)}
    np.testing.assert_allclose(np.asarray(back.jax_params("mi355x")["precision_eff_log"]),
                               np.asarray(both.jax_params("mi355x")["precision_eff_log"]))  # fmt: skip


def test_amd_tf32_request_runs_plain_fp32():
    # XLA keeps f32 dots in F32 on ROCm (TF32 is a CUDA choice), even where the GPU lists xf32.
    fn, args = _square(1024, jnp.float32)
    k = perfjax.predict(fn, args, device="mi300x", calibration=False).kernels
    assert any("fp32" in r["unit"] for r in k) and not any("tf32" in r["unit"] for r in k)
    k = perfjax.predict(fn, args, device="h100", calibration=False).kernels
    assert any("tf32" in r["unit"] for r in k)


# --- intervals on unseen devices ------------------------------------------------------------


def test_device_distance_orders_devices():
    fitted = ["p4", "p100", "t4", "v100-pcie", "a100-pcie-40gb"]
    assert device_distance(get_device("t4"), fitted) == 0.0
    near = device_distance(get_device("a100-40gb"), fitted)
    far = device_distance(get_device("b200"), fitted)
    other_vendor = device_distance(get_device("mi300x"), fitted)
    assert near < far and other_vendor > 1.0


def test_unseen_interval_widens_with_distance(shipped):
    unseen = shipped.metadata["unseen_interval"]
    assert unseen["low"] < 0 < unseen["high"] and unseen["widen_per_distance"] >= 0
    lo_fit, hi_fit = shipped.interval_log_bounds("t4")
    assert (lo_fit, hi_fit) == pytest.approx(tuple(shipped.residual_log_quantiles))
    near = shipped.interval_log_bounds("a100-40gb")
    far = shipped.interval_log_bounds("l4")
    if unseen["widen_per_distance"] > 0:
        assert far[1] - far[0] >= near[1] - near[0]
    fn, args = _square()
    p = perfjax.predict(fn, args, device="h100")
    lo, hi = p.interval_s
    assert lo < p.time_s < hi
    d = device_distance(get_device("h100"), shipped.devices)
    s = 1 + unseen["widen_per_distance"] * d
    # A GEMM program: the GEMM rows' quantiles (they are wider than elementwise ones).
    gemm = unseen["by_class"]["gemm"]
    assert math.log(hi / p.time_s) == pytest.approx(gemm["high"] * s, rel=1e-5)
    assert math.log(lo / p.time_s) == pytest.approx(gemm["low"] * s, rel=1e-5)
    ew = unseen["by_class"]["elementwise"]
    assert gemm["high"] - gemm["low"] > ew["high"] - ew["low"]


# --- timing semantics ------------------------------------------------------------------------


def test_host_timing_adds_dispatch_floor():
    x = jax.ShapeDtypeStruct((64, 64), jnp.float32)

    def f(a):
        return jnp.tanh(a) * 2.0 + jnp.exp(a)

    dev = perfjax.predict(f, (x,), device="h100", fusion="eager")
    host = perfjax.predict(f, (x,), device="h100", fusion="eager", timing="host")
    costs = perfjax.prediction.host_timing("h100")
    n = sum(r["executions"] for r in dev.kernels)
    assert host.timing == "host" and dev.timing == "device"
    # Tiny kernels: the host issues them no faster than its per-kernel cost.
    assert host.time_s == pytest.approx(
        n * costs["per_kernel_s"] + max(dev.dispatch_s, costs["per_call_s"]), rel=1e-6
    )
    assert host.time_s > dev.time_s and any("timing='host'" in s for s in host.notes)
    # A large kernel hides the dispatch: host and device agree to within the per-call cost.
    fn, args = _square(8192)
    big_d = perfjax.predict(fn, args, device="h100")
    big_h = perfjax.predict(fn, args, device="h100", timing="host")
    assert big_h.time_s - big_d.time_s <= costs["per_call_s"] + 1e-12


def test_bad_timing_is_refused():
    fn, args = _square(64)
    with pytest.raises(ValueError, match=r"timing must be one of \('device', 'host'\), got 'wall'"):
        perfjax.predict(fn, args, device="h100", timing="wall")


def test_shipped_host_timing_is_fitted(shipped):
    h = shipped.metadata["host_timing"]
    # NeuSight's PyTorch harness: tens of microseconds per op, not the device's 5 us launch.
    assert 5e-6 < h["per_kernel_s"] + h["per_call_s"] < 2e-4


# --- XLA GEMM tables and precision efficiency --------------------------------------------------


def test_xla_matmul_loader():
    ms = load_xla_matmul(archs=["sm_100_B200"], dtypes=["tf32"])
    assert len(ms) == 375 and ms.devices() == ["b200"]
    r = ms.rows[0]
    p = dict(r.workload.params)
    assert p["dtype"] == "float32" and r.source.startswith("xla:")
    # time_s = 2 b m n k / flops_per_s: the best TF32 rate stays below B200's dense TF32 peak.
    rates = [2 * max(dict(x.workload.params).get("b", 0), 1) * dict(x.workload.params)["m"]
             * dict(x.workload.params)["n"] * dict(x.workload.params)["k"] / x.time_s for x in ms]  # fmt: skip
    assert 0.6e15 < max(rates) < get_device("b200").matrix_flops_per_s["tf32"]
    assert xla_dtype_precision("f8e4m3fnxf8e5m2->bf16") == "fp8"
    with pytest.raises(ValueError, match="unknown XLA arch"):
        load_xla_matmul(archs=["sm_90"])
    with pytest.raises(ValueError, match="unknown XLA dtype"):
        load_xla_matmul(dtypes=["int4"])


def test_precision_efficiency_acts_on_tensor_cores_only():
    params = default_params("gpu", "NVIDIA")
    slow = dict(
        params, precision_eff_log=params["precision_eff_log"].at[3].set(math.log(0.5))
    )  # bf16
    fn, args = _square(8192)
    a = perfjax.predict(fn, args, device="h100", params=params).time_s
    b = perfjax.predict(fn, args, device="h100", params=slow).time_s
    assert b / a == pytest.approx(2.0, rel=0.05)
    fn32, args32 = _square(2048, jnp.float32)
    # fp32 on CUDA cores (P100 has no tensor cores): untouched.
    c = perfjax.predict(fn32, args32, device="p100", params=params).time_s
    d = perfjax.predict(fn32, args32, device="p100", params=slow).time_s
    assert c == pytest.approx(d)


def test_fp8_workload_runs_on_fp8_tensor_cores():
    w = Workload.of("matmul", m=1024, k=1024, n=1024, dtype="float8_e4m3fn")
    rows = [dict(workload=w, device="b200", time_s=1e-5)]
    rep = calibrate.evaluate(load(SHIPPED), Measurements.from_rows(rows))
    assert rep.rows[0]["after_s"] > 0
    from perfjax.calibrate._fit import workload_kernels
    from perfjax.devicemodels import resolve

    labels = resolve(workload_kernels(w, "gpu"), get_device("b200")).labels
    assert labels == ("fp8 tensor cores",)
