"""Programs are costed as JAX lowers them for the target device's platform, and predictions say
what they could not cost (notes, unmodeled ops) instead of returning silent wrong numbers."""

from __future__ import annotations

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import perfjax
from perfjax import PrecisionCastError, Program
from perfjax.prediction import lowering_platform

S = jax.ShapeDtypeStruct
f32 = jnp.float32
X = S((64, 1024), f32)
KEY = S((2,), jnp.uint32)


def dropout(x, key):
    keep = jax.random.bernoulli(key, 0.9, x.shape)
    return jnp.where(keep, x / 0.9, 0.0)


def _jax_text(fn, inputs, platform):
    """JAX's own lowering of ``fn`` for ``platform`` (the reference perfjax must cost)."""
    return jax.jit(fn).trace(*inputs).lower(lowering_platforms=(platform,)).as_text()


# ---- 1. lowering for the target platform ----------------------------------------------------


@pytest.mark.parametrize("platform", ["cpu", "cuda", "rocm", "tpu"])
def test_trace_lowers_for_the_platform_as_jax_does(platform):
    p = perfjax.trace(dropout, (X, KEY), platform=platform)
    assert p.platform == platform
    assert p.stablehlo == _jax_text(dropout, (X, KEY), platform)
    # JAX rolls threefry into a while loop on the CPU only.
    assert ("stablehlo.while" in p.stablehlo) == (platform == "cpu")


def test_trace_rejects_an_unknown_platform():
    with pytest.raises(ValueError, match=r"unknown platform 'gpu'.*'cuda'"):
        perfjax.trace(dropout, (X, KEY), platform="gpu")


@pytest.mark.parametrize(
    "device, platform, noted",
    [("h100", "cuda", False), ("a100-80gb", "cuda", False), ("mi300x", "rocm", False),
     ("tpu-v4", "tpu", False), ("xeon-8480", "cpu", False), ("epyc-9654", "cpu", False),
     ("host", "cpu", False), ("edge-tpu", "cpu", True), ("apple-m1-ane", "cpu", True),
     ("apple-m2", "cuda", True)],
)  # fmt: skip
def test_each_device_lowers_for_its_platform(device, platform, noted):
    got, notes = lowering_platform(device)
    assert got == platform
    # NPUs and GPUs without a JAX platform of their own say which lowering stands in.
    assert bool(notes) == noted


def test_dropout_is_costed_without_the_cpu_rng_loop():
    pred = perfjax.predict(dropout, (X, KEY), device="h100")
    assert pred.platform == "cuda" and pred.notes == ()
    # The same device on the CPU lowering (read back from text, so it is costed as is).
    cpu_text = perfjax.Program.from_stablehlo(_jax_text(dropout, (X, KEY), "cpu"))
    on_cpu_lowering = perfjax.predict(cpu_text, device="h100")
    assert any("read from StableHLO text" in n for n in on_cpu_lowering.notes)
    assert on_cpu_lowering.platform is None
    assert pred.time_s < on_cpu_lowering.time_s / 3
    assert len(pred.kernels) < len(on_cpu_lowering.kernels)
    tpu = perfjax.predict(dropout, (X, KEY), device="tpu-v4")
    assert tpu.platform == "tpu" and tpu.to_dict()["platform"] == "tpu"


def test_a_traced_program_is_relowered_for_the_device():
    p = perfjax.trace(dropout, (X, KEY))
    assert p.platform == "cpu"
    pred = perfjax.predict(p, device="h100")
    direct = perfjax.predict(dropout, (X, KEY), device="h100")
    assert pred.platform == "cuda" and pred.time_s == pytest.approx(direct.time_s, rel=1e-6)
    # for_platform keeps the trace-time jaxpr and caches the lowering.
    assert p.for_platform("cuda") is p.for_platform("cuda")
    assert p.for_platform("cuda").stablehlo == _jax_text(dropout, (X, KEY), "cuda")


def test_npu_uses_the_cpu_lowering_and_says_so():
    pred = perfjax.predict(dropout, (X, KEY), device="edge-tpu")
    assert pred.platform == "cpu"
    assert any("no platform for NPUs" in n for n in pred.notes)
    assert "notes" in pred.to_dict() and pred.to_dict()["notes"] == list(pred.notes)


def _with_callback(x):
    y = jax.pure_callback(lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return jnp.sin(y)


def test_a_program_jax_cannot_lower_for_the_device_falls_back_to_cpu_with_a_note():
    x = S((16,), f32)
    with pytest.raises(ValueError, match="cuda"):
        perfjax.trace(_with_callback, (x,), platform="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = perfjax.predict(_with_callback, (x,), device="h100", on_unsupported="warn")
    assert pred.platform == "cpu"
    assert any("could not lower" in n and "cuda" in n for n in pred.notes)


def test_compare_lowers_once_per_platform_and_traces_once():
    calls = []

    def f(x):
        calls.append(1)
        return jnp.tanh(x) * 2.0

    c = perfjax.compare(
        f, (S((256, 256), f32),), ["h100", "a100-80gb", "tpu-v4", "tpu-v5e", "xeon-8480"]
    )
    assert len(calls) == 1  # one trace, lowered for cuda, tpu and cpu
    assert {p.device: p.platform for p in c.predictions} == {
        "h100": "cuda", "a100-80gb": "cuda", "tpu-v4": "tpu", "tpu-v5e": "tpu", "xeon-8480": "cpu",
    }  # fmt: skip


def test_linalg_lowers_to_the_platforms_solver():
    a = S((32, 32), f32)
    assert "lapack" in perfjax.trace(jnp.linalg.cholesky, (a,)).stablehlo
    assert "cusolver" in perfjax.trace(jnp.linalg.cholesky, (a,), platform="cuda").stablehlo
    assert "hipsolver" in perfjax.trace(jnp.linalg.cholesky, (a,), platform="rocm").stablehlo


def test_host_stages_of_a_non_cpu_program_use_its_cpu_lowering(tmp_path):
    f = lambda a, b: jnp.tanh(a @ b)
    ins = (S((32, 64), f32), S((64, 16), f32))
    p = perfjax.trace(f, ins, platform="tpu")
    xla = jax.jit(f).lower(*ins).compile().cost_analysis()
    assert p.cost_analysis()["flops"] == xla["flops"]
    assert "HloModule" in p.hlo
    # A Lowered for another platform cannot be re-lowered: a clear error, not a crash in XLA.
    lowered = jax.jit(f).trace(*ins).lower(lowering_platforms=("cuda",))
    q = perfjax.trace(lowered)
    assert q.platform == "cuda"
    with pytest.raises(perfjax.UnsupportedProgramError, match="lowered for 'cuda'"):
        _ = q.hlo
    # save() of a non-CPU program writes no host HLO; load() restores the platform.
    folder = p.save(tmp_path / "tpu_prog")
    assert {x.name for x in folder.iterdir()} == {"program.mlir", "program.jaxpr"}
    back = Program.load(folder)
    assert back.platform == "tpu" and back.in_types == p.in_types and back.jaxpr == p.jaxpr
    assert perfjax.analyze(back).flops == perfjax.analyze(p).flops
    q.save(tmp_path / "cuda.mlir")
    assert Program.load(tmp_path / "cuda.mlir").platform == "cuda"


# ---- 2. the trace cache key ------------------------------------------------------------------


def _gemm(a, b):
    return a @ b


def test_trace_cache_follows_default_matmul_precision():
    big = (S((8192, 8192), f32), S((8192, 8192), f32))
    default = perfjax.predict(_gemm, big, device="a100-80gb").time_s
    with jax.default_matmul_precision("highest"):
        highest = perfjax.predict(_gemm, big, device="a100-80gb").time_s
        fresh = perfjax.predict(lambda a, b: a @ b, big, device="a100-80gb").time_s
    assert highest > 2 * default  # fp32 on CUDA cores, not TF32 tensor cores
    assert highest == fresh
    # ... and the other way round: back outside the block, the default again.
    assert perfjax.predict(_gemm, big, device="a100-80gb").time_s == default
    assert perfjax.predict(lambda a, b: a @ b, big, device="a100-80gb").time_s == default


def test_trace_cache_follows_x64():
    def f(x):
        return x + jnp.arange(4096.0)  # float64 under x64

    x = (S((4096,), f32),)
    narrow = perfjax.predict(f, x, device="h100")
    with jax.enable_x64(True):
        wide = perfjax.predict(f, x, device="h100")
    assert wide.bytes > narrow.bytes
    assert perfjax.predict(f, x, device="h100").bytes == narrow.bytes


# ---- 3. precision casts that JAX rejects ------------------------------------------------------


def _conv_with_f32_filter(x):
    return lax.conv(x, jnp.ones((8, 3, 3, 3), f32), (1, 1), "SAME")


def test_quantized_precision_keeps_the_program_when_bf16_retrace_fails():
    x = (S((1, 3, 32, 32), f32),)
    pred = perfjax.predict(_conv_with_f32_filter, x, device="h100", precision="int8")
    assert any("could not be re-traced with bf16" in n and "conv" in n for n in pred.notes)
    assert pred.time_s > 0 and pred.flops > 0
    as_traced = perfjax.predict(_conv_with_f32_filter, x, device="h100")
    assert pred.flops == as_traced.flops


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_float_precision_cast_that_jax_rejects_is_a_clear_error(precision):
    with pytest.raises(PrecisionCastError, match=rf"precision='{precision}'.*conv_general_dilated"):
        perfjax.predict(
            _conv_with_f32_filter, (S((1, 3, 8, 8), f32),), device="h100", precision=precision
        )
    with pytest.raises(ValueError, match=r"precision='bf16'.*RFFT"):
        perfjax.predict(jnp.fft.rfft, (S((64,), f32),), device="h100", precision="bf16")


def test_fp64_without_x64_is_an_error_not_a_silent_fp32():
    with pytest.raises(PrecisionCastError, match="jax_enable_x64"):
        perfjax.predict(
            _gemm, (S((64, 64), f32), S((64, 64), f32)), device="h100", precision="fp64"
        )


# ---- 4. notes, unmodeled ops, loop trip counts -----------------------------------------------


def _dynamic_loop(x, n):
    return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, jnp.tanh(c[1] @ c[1])), (0, x))[
        1
    ]


def _static_loop(x):
    return lax.fori_loop(0, 10, lambda i, y: jnp.tanh(y @ y), x)


def test_unknown_trip_count_is_a_note_and_a_warning():
    ins = (S((128, 128), f32), S((), jnp.int32))
    with pytest.warns(UserWarning, match="trip count not static"):
        once = perfjax.predict(_dynamic_loop, ins, device="h100")
    assert any("trip count not static" in n for n in once.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stated trip count warns nothing
        ten = perfjax.predict(_dynamic_loop, ins, device="h100", loop_trips=10)
    assert any("loop_trips=10" in n for n in ten.notes)
    assert not any("not static" in n for n in ten.notes)
    static = perfjax.predict(_static_loop, ins[:1], device="h100")
    body_flops = 2 * 128**3 + 128 * 128
    assert ten.flops == pytest.approx(10 * body_flops, rel=0.01)
    assert ten.flops == pytest.approx(static.flops, rel=0.01)
    assert ten.time_s > 5 * once.time_s
    g = perfjax.analyze(_dynamic_loop, ins, loop_trips=10)
    assert g.flops == pytest.approx(perfjax.analyze(_static_loop, ins[:1]).flops, rel=0.01)
    with pytest.raises(ValueError, match="loop_trips must be >= 0"):
        perfjax.predict(_dynamic_loop, ins, device="h100", loop_trips=-1)
    with pytest.raises(TypeError, match="loop_trips must be an integer"):
        perfjax.analyze(_dynamic_loop, ins, loop_trips=2.5)


_CUSTOM = """
func.func @main(%arg0: tensor<256x256xf32>) -> tensor<256x256xf32> {
  %0 = stablehlo.custom_call @my_vendor_kernel(%arg0) : (tensor<256x256xf32>) -> tensor<256x256xf32>
  %1 = stablehlo.tanh %0 : tensor<256x256xf32>
  return %1 : tensor<256x256xf32>
}
"""


def test_unmodeled_ops_error_or_are_listed_with_a_warning():
    with pytest.raises(perfjax.UnsupportedOpError, match="my_vendor_kernel"):
        perfjax.predict(_CUSTOM, device="h100")
    with pytest.raises(ValueError, match="on_unsupported must be"):
        perfjax.predict(_CUSTOM, device="h100", on_unsupported="ignore")
    for _ in range(2):  # warned on every call, not only when the graph is first built
        with pytest.warns(UserWarning, match="my_vendor_kernel"):
            pred = perfjax.predict(_CUSTOM, device="h100", on_unsupported="warn")
    assert [n for n, _ in pred.unmodeled_ops] == ["stablehlo.custom_call@my_vendor_kernel"]
    assert pred.to_dict()["unmodeled_ops"][0][0] == "stablehlo.custom_call@my_vendor_kernel"
    tanh_only = perfjax.predict(
        _CUSTOM.replace(
            "%0 = stablehlo.custom_call @my_vendor_kernel(%arg0) : "
            "(tensor<256x256xf32>) -> tensor<256x256xf32>\n",
            "",
        ).replace("tanh %0", "tanh %arg0"),
        device="h100",
    )
    assert pred.flops == tanh_only.flops  # the custom call adds nothing: it is not counted
    assert "not counted" in str(pred)


# ---- 5. constants folded as XLA folds them ---------------------------------------------------


_TABLE = np.arange(1000, dtype=np.float32) / 1000


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: jnp.exp(jnp.asarray(_TABLE)) + x,  # constant: folded
        lambda x: jnp.exp(jnp.zeros(1000)) * 3.0 + x,  # broadcast constant: folded
        lambda x: jnp.exp(jnp.arange(1000.0)) + x,  # iota: XLA computes it at run time
        lambda x: jnp.sin(jnp.asarray(_TABLE)) ** 2 @ jnp.ones((1000, 1000)) + x,
    ],
)
def test_constant_subexpressions_are_counted_as_xla_counts_them(fn):
    x = jnp.ones(1000, f32)
    g = perfjax.analyze(fn, (x,))
    xla = jax.jit(fn).lower(x).compile().cost_analysis()
    assert g.flops == xla.get("flops", 0.0)
    assert g.transcendentals == xla.get("transcendentals", 0.0)
    for op in g.ops:
        if op.features.get("folded"):
            assert op.flops == op.transcendentals == op.bytes == 0


def test_folded_ops_are_kept_and_marked():
    g = perfjax.analyze(lambda x: jnp.exp(jnp.asarray(_TABLE)) + x, (S((1000,), f32),))
    assert [(o.short_name, bool(o.features.get("folded"))) for o in g.ops] == [
        ("constant", False), ("exponential", True), ("add", False),
    ]  # fmt: skip
    assert g.flops == 1000 and g.transcendentals == 0


def test_loop_carried_values_are_not_constants():
    def f(x):
        y = lax.fori_loop(0, 4, lambda i, c: jnp.exp(c), jnp.zeros(100))
        return y + x

    g = perfjax.analyze(f, (S((100,), f32),))
    assert g.transcendentals == 4 * 100


# ---- 6. input errors and the ways in -------------------------------------------------------


def test_missing_inputs_is_a_clear_error_but_zero_argument_functions_work():
    with pytest.raises(TypeError, match=r"takes positional argument\(s\) x.*inputs="):
        perfjax.predict(lambda x: x * 2, device="h100")
    pred = perfjax.predict(lambda: jnp.ones((4, 4)) @ jnp.ones((4, 4)), device="h100")
    assert math.isfinite(pred.time_s) and pred.time_s > 0


def test_bad_input_values_name_the_argument():
    with pytest.raises(TypeError, match=r"inputs\[1\].*got str"):
        perfjax.predict(lambda a, b: a, (S((2,), f32), "hello"), device="h100")
    with pytest.raises(ValueError, match=r"inputs\[0\].*\(4, -2\)"):
        perfjax.predict(lambda a: a, (S((4, -2), f32),), device="h100")
    with pytest.raises(ValueError, match=r"inputs\[0\]\['w'\].*\(-1,\)"):
        perfjax.trace(lambda p: p["w"], ({"w": S((-1,), f32)},))


def test_lowered_and_traced_stages_are_accepted():
    f = lambda a: jnp.tanh(a @ a)
    a = S((64, 64), f32)
    ref = perfjax.analyze(f, (a,))
    lowered = jax.jit(f).lower(a)
    traced = jax.jit(f).trace(a)
    assert perfjax.trace(lowered).stablehlo == lowered.as_text()
    assert perfjax.analyze(lowered).flops == ref.flops == perfjax.analyze(traced).flops
    p = perfjax.predict(traced, device="tpu-v4")
    assert p.platform == "tpu" and p.notes == ()
    q = perfjax.predict(lowered, device="tpu-v4")
    assert q.platform == "cpu" and any("given already lowered" in n for n in q.notes)
    assert (
        perfjax.trace(traced, platform="cuda").stablehlo
        == traced.lower(lowering_platforms=("cuda",)).as_text()
    )
    # A program from a Traced runs here and re-traces at a cast precision.
    x = jnp.full((64, 64), 0.01, f32)
    out = perfjax.run(perfjax.trace(traced), (x,)).outputs
    np.testing.assert_allclose(out, jnp.tanh(x @ x), rtol=1e-5)
    bf16 = perfjax.predict(traced, device="h100", precision="bf16")
    assert [k["unit"] for k in bf16.kernels if "tensor" in k["unit"]] == ["bf16 tensor cores"]


def test_saved_folder_reads_back(tmp_path):
    f = lambda x: jnp.exp(x) @ x.T
    p = perfjax.trace(f, (S((8, 16), f32),))
    folder = p.save(tmp_path / "prog")
    for q in (
        Program.from_stablehlo(folder),
        Program.from_stablehlo(str(folder)),
        Program.load(folder),
    ):
        assert q.in_types == p.in_types and q.out_types == p.out_types
        assert q.jaxpr == p.jaxpr and q.platform == "cpu"
        assert perfjax.analyze(q).flops == perfjax.analyze(p).flops
    assert Program.load(p.save(tmp_path / "p.mlir")).in_types == p.in_types
    with pytest.raises(FileNotFoundError, match="without program.mlir"):
        Program.from_stablehlo(tmp_path)
    with pytest.raises(FileNotFoundError, match="no program at"):
        Program.load(tmp_path / "missing")


# ---- 7. zero-size programs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, inputs",
    [
        (lambda x: jnp.sum(x, axis=0), (S((0, 8), f32),)),
        (lambda x: jnp.mean(x, axis=1), (S((4, 0), f32),)),
        (lambda a, b: a @ b, (S((0, 64), f32), S((64, 32), f32))),
        (lambda a, b: a @ b, (S((16, 0), f32), S((0, 32), f32))),
    ],
)
@pytest.mark.parametrize("device", ["h100", "tpu-v4", "xeon-8480", "edge-tpu"])
def test_zero_size_programs_have_finite_times_and_no_nan(fn, inputs, device):
    precision = "int8" if device == "edge-tpu" else None  # an int8-only NPU
    pred = perfjax.predict(fn, inputs, device=device, precision=precision)
    assert math.isfinite(pred.time_s) and pred.time_s >= 0
    assert 0 <= pred.utilization <= 1 and not math.isnan(pred.parallel_utilization)
    assert all(math.isfinite(v) and v >= 0 for v in pred.bound_shares.values())
    for row in pred.kernels:
        for k, v in row.items():
            if isinstance(v, float):
                assert not math.isnan(v), (k, row)
        assert math.isfinite(row["time_s"]) and row["time_s"] >= 0
    assert re.search(r"\d", str(pred))


def test_recommend_skips_a_precision_jax_cannot_trace_and_keeps_the_others():
    r = perfjax.recommend(_conv_with_f32_filter, (S((1, 3, 32, 32), f32),), devices=["h100"])
    assert {row.precision for row in r.rows} == {"fp32", "int8"}
    (skip,) = [s for s in r.skipped if s.precision == "bf16"]
    assert "conv_general_dilated" in skip.reason
    int8 = next(row for row in r.rows if row.precision == "int8")
    assert any("re-traced with bf16" in n for n in int8.prediction.notes)
    assert all(row.prediction.platform == "cuda" for row in r.rows)


def test_run_accepts_traced_and_lowered_stages():
    x = jnp.arange(4.0)
    f = jax.jit(lambda a: a * 2.0)
    for stage in (f.trace(x), f.trace(x).lower()):
        out = perfjax.run(stage, (x,), max_time_s=0.02).outputs
        np.testing.assert_allclose(
            np.asarray(jax.tree_util.tree_leaves(out)[0]), [0.0, 2.0, 4.0, 6.0]
        )


def test_huge_batched_solver_reads_back_despite_shardy_factor_sizes():
    # JAX prints the custom call's Shardy factor sizes, which its parser reads as 32-bit.
    a = jax.ShapeDtypeStruct((2**33, 8, 8), jnp.float32)
    p = perfjax.predict(jnp.linalg.eigh, (a,), device="h100", calibration=False)
    assert math.isfinite(p.time_s) and p.time_s > 1.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda a: a + 0.0,
        lambda a: a * 0.5 + 0,
        lambda a: 0.0 + a * 1.0,
        lambda a: a - 0.0,
        lambda a: a / 1.0,
        lambda a: a + 1.0,
        lambda a: a * 0.0,
        lambda a: 0.0 - a,
    ],
)
def test_neutral_elements_are_dropped_as_xla_drops_them(fn):
    # optax's AdamW adds eps_root = 0.0 once per parameter: XLA counts no work for it.
    x = jnp.ones(1000)
    xla = jax.jit(fn).lower(x).cost_analysis().get("flops", 0.0) or 0.0
    assert perfjax.analyze(fn, (x,)).flops == xla


def test_notes_name_the_users_code_not_perfjax(tmp_path):
    src = tmp_path / "user_model.py"
    src.write_text(
        "from jax import lax\n"
        "def f(x, n):\n"
        "    return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))[1]\n"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_model", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x, n = jax.ShapeDtypeStruct((8,), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32)
    with pytest.warns(UserWarning, match="user_model.py:3"):
        p = perfjax.predict(mod.f, (x, n), device="h100", calibration=False)
    assert any("user_model.py:3" in note for note in p.notes)
