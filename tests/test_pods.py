"""TPU pods: the ICI/DCN collective model, sharded programs predicted on abstract meshes (XLA's
SPMD partitioner over emulated CPU devices, compile only), checked against XLA's own per-device
counts and ``jax.experimental.roofline``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest
from jax.experimental import roofline
from jax.sharding import AbstractMesh, NamedSharding
from jax.sharding import PartitionSpec as P

import perfjax
from perfjax._errors import InputError
from perfjax.placement.pods import Pod, pod, pods, predict_pod

D, H = 512, 1024
BATCH_PER_CHIP = 16


# ---------------------------------------------------------------------------------------------
# the pod model
# ---------------------------------------------------------------------------------------------


def test_builtin_generations_and_names():
    assert pods() == ["tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"]
    p = pod("v5e-256x32")
    assert (p.slice_shape, p.num_slices, p.num_chips) == ((16, 16), 32, 8192)
    assert p.spec.name == "tpu-v5e"
    assert pod("tpu-v4-64").slice_shape == (4, 4, 4)
    assert pod("v5p-128").slice_shape == (8, 4, 4)
    assert pod("v6e", slices=2).num_chips == 512
    # Every figure is positive and the HBM capacity comes from the device catalog.
    for name in pods():
        q = pod(name)
        assert q.ici_bytes_per_s > 0 and q.dcn_bytes_per_s > 0 and q.spec.memory_bytes > 0
        # DCN is much slower than one ICI link on every generation.
        assert q.dcn_bytes_per_s < q.ici_bytes_per_s / 4


@pytest.mark.parametrize(
    "bad, match",
    [("v7x-256", "unknown TPU pod"), ("v5e-3", "powers of two"), ("v5e-512", "outside")],
)
def test_bad_pod_names(bad, match):
    with pytest.raises(InputError, match=match):
        pod(bad)


def test_bad_slices_and_fields():
    with pytest.raises(InputError, match="slices must be a positive integer"):
        pod("v5e-256", slices=0)
    with pytest.raises(InputError, match="unknown Pod field"):
        pod("v5e-256", ici_bandwith=1.0)


def test_mesh_axes_map_onto_the_torus():
    p = pod("v5e-256")
    assert p.ici_axis_dims([256]) == [(16, 16)]
    assert p.ici_axis_dims([16, 16]) == [(16,), (16,)]
    assert p.ici_axis_dims([64, 4]) == [(16, 4), (4,)]
    with pytest.raises(InputError, match="hold 128 chips"):
        p.ici_axis_dims([128])
    with pytest.raises(InputError, match="does not tile"):
        pod("v5e", slice_shape=(12, 4)).ici_axis_dims([8, 6])


def test_ici_collectives_follow_the_torus_formula():
    p = pod("v5e-256")
    n, bw = 1e6, p.ici_bytes_per_s
    # Full 16x16 slice: both dimensions wrap around, 4 links in use.
    t = p.ici_time_s("all_gather", n, (16, 16))
    assert t == pytest.approx(255 * n / (4 * bw) + 30 * p.ici_latency_s)
    # A 4-chip sub-ring of a 16-chip dimension has no wraparound: one direction.
    t4 = p.ici_time_s("reduce_scatter", n, (4,))
    assert t4 == pytest.approx(3 / 4 * n / bw + 3 * p.ici_latency_s)
    assert p.ici_time_s("all_reduce", n, (4,)) == pytest.approx(2 * t4)
    assert p.ici_time_s("all_gather", n, ()) == 0.0


def test_hierarchical_and_dcn_collectives():
    p = pod("v5e-256", slices=8)
    n = 64e6
    both = p.collective_time_s("all_reduce", n, (16, 16), dcn_slices=8)
    parts = (
        p.ici_time_s("reduce_scatter", n, (16, 16))
        + p.dcn_time_s("all_reduce", n / 256, 8)
        + p.ici_time_s("all_gather", n / 256, (16, 16))
    )
    assert both == pytest.approx(parts)
    # More slices: more DCN time for the same per-chip operand, bounded by twice the bytes.
    times = [p.dcn_time_s("all_reduce", n, s) for s in (2, 4, 8, 32)]
    assert times == sorted(times)
    assert times[-1] < 2 * n / p.dcn_bytes_per_s + 64 * p.dcn_latency_s


# ---------------------------------------------------------------------------------------------
# predict_pod on an FSDP + data-parallel step
# ---------------------------------------------------------------------------------------------


def _loss(w1, w2, x):
    h = jax.nn.relu(x @ w1.astype(x.dtype))
    return jnp.mean((h @ w2.astype(x.dtype)).astype(jnp.float32) ** 2)


def _step(w1, w2, x):
    g1, g2 = jax.grad(_loss, argnums=(0, 1))(w1, w2, x)
    return w1 - 1e-3 * g1, w2 - 1e-3 * g2


def _inputs(mesh):
    fsdp = NamedSharding(mesh, P("fsdp", None))
    batch = BATCH_PER_CHIP * mesh.size
    return (
        jax.ShapeDtypeStruct((D, H), jnp.float32, sharding=fsdp),
        jax.ShapeDtypeStruct((H, D), jnp.float32, sharding=fsdp),
        jax.ShapeDtypeStruct((batch, D), jnp.bfloat16,
                             sharding=NamedSharding(mesh, P(("data", "fsdp"), None))),
    )  # fmt: skip


@pytest.fixture(scope="module")
def fsdp_pred():
    mesh = AbstractMesh((2, 4), ("data", "fsdp"))
    return predict_pod(_step, _inputs(mesh), pod="v5e-4x2", donate_argnums=(0, 1))


def test_per_chip_flops_match_xla_on_the_whole_program(fsdp_pred):
    # Pure data parallelism in compute: each chip does 1/8 of the unsharded program's work.
    args = [
        jax.ShapeDtypeStruct(a.shape, a.dtype)
        for a in _inputs(AbstractMesh((2, 4), ("data", "fsdp")))
    ]
    whole = jax.jit(_step).lower(*args).compile().cost_analysis()
    whole = whole[0] if isinstance(whole, (list, tuple)) else whole
    assert fsdp_pred.flops_per_chip == pytest.approx(whole["flops"] / 8, rel=0.05)


def dcn_rows(rows):
    return [c for c in rows if c.network == "dcn"]


def test_collectives_of_fsdp_and_data_parallelism(fsdp_pred):
    rows = fsdp_pred.collectives
    gathers = [c for c in rows if c.kind == "all_gather"]
    # Forward all-gathers each weight's shard over the 4 FSDP chips, in bf16 (cast first).
    assert gathers and all(c.axes == ("fsdp",) and c.network == "ici" for c in gathers)
    assert sum(c.operand_bytes == D * H * 2 / 4 for c in gathers) == 2
    # Gradients: reduce-scattered over FSDP (all-reduce + dynamic-slice in XLA's partitioned
    # module, which XLA:TPU turns into a reduce-scatter) and all-reduced across the slices.
    scatters = [c for c in rows if c.kind == "reduce_scatter"]
    assert {c.axes for c in scatters} == {("fsdp",)}
    assert sorted(c.operand_bytes for c in scatters) == [D * H * 2] * 2
    assert all(c.kind == "all_reduce" and c.operand_bytes == D * H * 2 / 4 for c in dcn_rows(rows))
    dcn = [c for c in rows if c.network == "dcn"]
    assert dcn and all(c.axes == ("data",) and c.group_size == 2 for c in dcn)
    assert fsdp_pred.dcn_axes == ("data",)
    total = sum(c.time_s * c.executions for c in rows)
    assert fsdp_pred.communication_s == pytest.approx(total)


def test_overlap_is_switchable(fsdp_pred):
    mesh = AbstractMesh((2, 4), ("data", "fsdp"))
    serial = predict_pod(_step, _inputs(mesh), pod="v5e-4x2", donate_argnums=(0, 1), overlap=False)
    assert serial.step_time_s == pytest.approx(serial.compute_s + serial.communication_s)
    assert fsdp_pred.compute_s <= fsdp_pred.step_time_s <= serial.step_time_s
    assert fsdp_pred.exposed_communication_s <= fsdp_pred.communication_s
    assert "exposed" in str(fsdp_pred) and "dcn" in str(fsdp_pred)


def test_folded_dcn_axes_give_the_same_prediction():
    # 8 slices of 4 chips compiled at full size and with the DCN axis folded to 2.
    mesh = AbstractMesh((8, 4), ("data", "fsdp"))
    full = predict_pod(_step, _inputs(mesh), pod="v5e-4x8", max_emulated=64)
    folded = predict_pod(_step, _inputs(mesh), pod="v5e-4x8", max_emulated=8)
    assert any("folded" in n for n in folded.notes) and not full.notes
    assert folded.flops_per_chip == pytest.approx(full.flops_per_chip, rel=1e-6)
    key = lambda c: (c.kind, c.axes, c.group_size, c.operand_bytes, c.executions)
    assert sorted(map(key, folded.collectives)) == sorted(map(key, full.collectives))
    assert folded.step_time_s == pytest.approx(full.step_time_s, rel=1e-6)
    assert max(c.group_size for c in folded.collectives if c.network == "dcn") == 8


def test_bad_meshes_are_named():
    mesh = AbstractMesh((2, 4), ("data", "fsdp"))
    with pytest.raises(InputError, match="has 8 chips; the pod tpu-v5e-4x4 has 16"):
        predict_pod(_step, _inputs(mesh), pod="v5e-4x4")
    with pytest.raises(InputError, match="dcn_axes"):
        predict_pod(_step, _inputs(mesh), pod="v5e-4x2", dcn_axes=("fsdp",))
    plain = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in _inputs(mesh)]
    with pytest.raises(InputError, match="no mesh"):
        predict_pod(_step, plain, pod="v5e-4x2")


def test_shard_map_program_agrees_with_jax_roofline():
    # An explicit per-chip program (shard_map): per-chip flops and the all-reduce's bytes as
    # jax.experimental.roofline counts them.
    mesh = AbstractMesh((4,), ("fsdp",))
    specs = (P(None, "fsdp"), P("fsdp", None))

    def body(x, w):
        return jax.lax.psum(x @ w, "fsdp")

    x = jax.ShapeDtypeStruct((256, 512), jnp.float32)
    w = jax.ShapeDtypeStruct((512, 128), jnp.float32)
    _, ref = roofline.roofline(body, mesh=mesh, in_specs=specs, out_specs=P())(x, w)
    fn = jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P())
    xs = jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, specs[0]))
    ws = jax.ShapeDtypeStruct(w.shape, w.dtype, sharding=NamedSharding(mesh, specs[1]))
    pred = predict_pod(fn, (xs, ws), pod="v5e-4")
    matmul_flops = 2 * 256 * (512 // 4) * 128
    assert ref.unfused_flops == pytest.approx(matmul_flops, rel=0.05)
    assert pred.flops_per_chip == pytest.approx(ref.unfused_flops, rel=0.05)
    (ar,) = [c for c in pred.collectives if c.kind == "all_reduce"]
    assert ar.operand_bytes == 256 * 128 * 4
    # roofline's ici_bytes for a ring all-reduce: 2 (p - 1) / p of the operand per link.
    assert sum(ref.ici_bytes.values()) == pytest.approx(2 * 3 / 4 * ar.operand_bytes, rel=0.01)


def test_pod_object_and_fits(fsdp_pred):
    assert isinstance(fsdp_pred.pod, Pod)
    assert fsdp_pred.peak_memory_bytes and fsdp_pred.peak_memory_bytes < 64e6
    assert fsdp_pred.fits is True
    # The donated weight shards are reused by the updated weights on every chip.
    assert fsdp_pred.chip.memory.aliased_bytes == 2 * D * H * 4 // 4
    flops = 6.0 * (2 * D * H) * BATCH_PER_CHIP
    assert fsdp_pred.tflops_per_chip(flops) == pytest.approx(flops / fsdp_pred.step_time_s / 1e12)
    peak = perfjax.devicemodels.device("tpu-v5e").peak_flops_per_s("bf16")
    assert fsdp_pred.mfu(flops) == pytest.approx(flops / fsdp_pred.step_time_s / peak)
    assert math.isfinite(fsdp_pred.step_time_s)


def test_cli_pod(capsys):
    import json

    from perfjax._cli import main

    assert main(["pod", "tiny", "--pod", "v5e-4x2", "--batch-per-chip", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pod"] == "tpu-v5e-4x2" and out["mesh_shape"] == [2, 4]
    assert out["step_time_s"] >= out["compute_s"] > 0
    assert {c["network"] for c in out["collectives"]} >= {"ici"}
    assert out["tflops_per_chip"] == pytest.approx(
        out["model_flops_per_chip"] / out["step_time_s"] / 1e12
    )
    assert main(["pod", "gpt-9"]) == 2
    assert "unknown model 'gpt-9'" in capsys.readouterr().err
    assert main(["pod", "tiny", "--pod", "v9"]) != 0
    assert "unknown TPU pod 'v9'" in capsys.readouterr().err
