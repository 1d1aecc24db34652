"""Typed stage records: the kernel table is defined once, predictions carry typed rows, and
each device family's time model is its own module."""

from __future__ import annotations

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import pytest

import perfjax
from perfjax.devicemodels import _common, _cpu, _gpu, _models, _npu, _tpu
from perfjax.fusion import Kernels, fuse
from perfjax.prediction import KernelRow

S = jax.ShapeDtypeStruct


def _mlp(x, w):
    return jax.nn.relu(x @ w) * 2.0


ARGS = (S((64, 256), jnp.bfloat16), S((256, 128), jnp.bfloat16))


def test_kernel_features_are_declared_once_and_are_what_the_arrays_hold():
    g = perfjax.analyze(_mlp, ARGS)
    k = fuse(g, "gpu")
    feats = Kernels.features()
    assert set(k.arrays()) == set(feats)
    assert k.arrays()["kind"].dtype == jnp.int32
    # every feature column is in the dataframe, next to the names and requests
    df = k.to_dataframe()
    assert set(feats) - {"kind"} <= set(df.columns) and len(df) == len(k)
    # nothing outside the declared features reaches the models
    fields = {f.name for f in dataclasses.fields(Kernels)}
    assert set(feats) < fields and "names" not in feats and "requests" not in feats


def test_each_family_has_its_own_model_module():
    assert _models.FAMILY_MODELS == {
        "gpu": _gpu.kernel_times,
        "tpu": _tpu.kernel_times,
        "cpu": _cpu.kernel_times,
        "npu": _npu.kernel_times,
    }
    for mod in (_gpu, _tpu, _cpu, _npu):
        src = inspect.getsource(mod.kernel_times)
        assert "family" not in src, f"{mod.__name__}.kernel_times branches on the family"
    for fn in (_common.rates, _common.tiled_gemm, _common.matrix_time, _common.memory_time):
        assert "family" not in inspect.getsource(fn)
    with pytest.raises(ValueError, match="unknown device family 'fpga'"):
        _models.kernel_times({}, {}, {}, {}, "fpga")


@pytest.mark.parametrize("device", ["h100", "tpu-v5e", "xeon-8480"])
def test_prediction_rows_are_typed_and_say_their_precision(device):
    pred = perfjax.predict(_mlp, ARGS, device=device, calibration=False)
    assert pred.kernels and all(isinstance(r, KernelRow) for r in pred.kernels)
    gemm = next(r for r in pred.kernels if r.kind == "gemm")
    # the precision is a value, the same one the label shows
    assert gemm.unit.split()[0] == gemm.unit_precision
    assert gemm.on_matrix_unit == ("vector" not in gemm.unit)
    # rows still read by name, and only by their own names
    assert gemm["time_s"] == gemm.time_s
    with pytest.raises(KeyError):
        gemm["no_such_field"]
    df = pred.to_dataframe()
    assert list(df.columns) == list(KernelRow.__dataclass_fields__)
    assert df.time_s.sum() == pytest.approx(sum(r.time_s for r in pred.kernels))


def test_kernel_times_is_a_typed_pytree_that_differentiates():
    spec = perfjax.device("h100")
    k = fuse(perfjax.analyze(_mlp, ARGS), "gpu")
    res = perfjax.devicemodels.resolve(k, spec).arrays()
    params = perfjax.devicemodels.default_params("gpu")

    def total(p):
        out = _models.kernel_times(k.arrays(), perfjax.devicemodels.pack(spec), p, res, "gpu")
        assert isinstance(out, _common.KernelTimes)
        return jnp.sum(out.time_s * k.arrays()["executions"])

    g = jax.grad(jax.jit(total))(params)  # (jitted: one compile, not one per eager op)
    assert float(jnp.abs(g["memory_eff_logit"]).sum()) > 0
