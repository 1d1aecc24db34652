"""Kernels the device models cost apart from GEMMs and loops: solvers, FFTs, host callbacks;
loop fusion across producers (GELU); zero-size kernels; strict fp32."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax
import perfjax.ops as F
from perfjax.fusion import fuse
from perfjax.fusion._kernels import KINDS, solver_steps

S = jax.ShapeDtypeStruct


def _kernels(fn, inputs, policy="gpu", platform=None):
    return fuse(perfjax.analyze(fn, inputs), policy)


@pytest.mark.parametrize(
    "gelu",
    [
        F.gelu,
        lambda x: jax.nn.gelu(x, approximate=True),
        lambda x: jax.nn.gelu(x, approximate=False),
    ],
    ids=["flash", "tanh", "exact"],
)
def test_gelu_is_one_loop_fusion_on_gpus(gelu):
    # XLA's loop fusion takes both branches of x * 0.5 * (1 + tanh(...)): one kernel, reading x
    # once and writing the result once.
    x = S((1024, 1024), jnp.float32)
    k = _kernels(gelu, (x,))
    assert len(k) == 1
    assert k.bytes_read[0] == x.size * 4 and k.bytes_written[0] == x.size * 4


def test_a_shared_producer_is_not_merged_into_one_consumer():
    # y = exp(x) feeds two outputs: merging it into one consumer's kernel would lose the other.
    def f(x):
        y = jnp.exp(x)
        return y * 2.0, y + 1.0

    k = _kernels(f, (S((256, 256), jnp.float32),))
    assert sum(len(o) for o in k.ops) == 3
    assert len(k) >= 1


def test_solver_steps_grow_with_n_and_with_the_routine():
    assert solver_steps(dict(kind="solver", routine="potrf", n=0)) == 0
    assert solver_steps(dict(kind="gemm", n=100)) == 0
    assert solver_steps(dict(kind="solver", routine="potrf", n=256)) == 8
    assert solver_steps(dict(kind="solver", routine="syevd", n=256)) == 256
    assert solver_steps(dict(kind="solver", routine="getrf", n=33)) == 2


@pytest.mark.parametrize("device", ["h100", "tpu-v4"])
def test_a_solver_on_an_accelerator_is_not_a_gemm(device):
    # A Cholesky factorisation does n^3/3 multiply-adds, 1/6 of an n^3 GEMM's, yet on a GPU or a
    # TPU it takes longer at small n: its panels are dependent steps, each a launch.
    n = 256
    a = S((n, n), jnp.float32)
    chol = perfjax.predict(jnp.linalg.cholesky, (a,), device=device, calibration=False)
    gemm = perfjax.predict(lambda x: x @ x, (a,), device=device, calibration=False)
    assert chol.flops < gemm.flops
    assert chol.time_s > gemm.time_s
    eigh = perfjax.predict(jnp.linalg.eigh, (a,), device=device, calibration=False)
    assert eigh.time_s > 4 * chol.time_s  # n dependent steps, not n / 32


def test_a_host_callback_costs_a_round_trip():
    def f(x):
        y = jax.pure_callback(
            lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x
        )
        return y + 1.0

    x = S((16,), jnp.float32)
    plain = perfjax.predict(lambda v: v * 2.0 + 1.0, (x,), device="h100", calibration=False)
    cb = perfjax.predict(f, (x,), device="h100", calibration=False)
    assert cb.time_s > plain.time_s + 20e-6


@pytest.mark.parametrize("device", ["h100", "tpu-v5e", "host", "xeon-8480", "apple-m2-ane"])
def test_zero_size_programs_are_finite_and_have_finite_sensitivities(device):
    z = S((0, 64), jnp.float32)
    w = S((64, 32), jnp.float32)
    kw = {"precision": "int8"} if device.endswith("ane") else {}
    for fn, inputs in [
        (F.matmul, (z, w)),
        (lambda a: a.sum(axis=0), (z,)),
        (lambda a: jnp.exp(a), (z,)),
    ]:
        p = perfjax.predict(fn, inputs, device=device, **kw)
        assert math.isfinite(p.time_s) and p.time_s >= 0
        assert all(math.isfinite(r["time_s"]) and r["time_s"] >= 0 for r in p.kernels)
        e = perfjax.sensitivity(fn, inputs, device, **kw)
        assert e and all(math.isfinite(v) for v in e.values()), e


def test_precision_fp32_means_strict_fp32():
    # On an A100, an fp32 dot at DEFAULT precision runs on TF32 tensor cores (as XLA does);
    # precision="fp32" asks for strict fp32, 8x slower at peak.
    x = S((4096, 4096), jnp.float32)
    default = perfjax.predict(F.matmul, (x, x), device="a100-80gb", calibration=False)
    strict = perfjax.predict(
        F.matmul, (x, x), device="a100-80gb", precision="fp32", calibration=False
    )
    assert "tf32" in default.kernels[0]["unit"]
    assert "tf32" not in strict.kernels[0]["unit"]
    assert strict.time_s > 4 * default.time_s
    with jax.default_matmul_precision("highest"):
        highest = perfjax.predict(F.matmul, (x, x), device="a100-80gb", calibration=False)
    assert highest.time_s == pytest.approx(strict.time_s, rel=1e-6)


def test_kernel_kinds_unchanged():
    # Calibrations store one parameter per kernel class in this order.
    assert KINDS == ("gemm", "conv", "elementwise", "reduce", "other", "collective")
