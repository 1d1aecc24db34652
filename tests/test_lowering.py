"""Hand-derived counts, control flow, Programs from StableHLO text, and bad input."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import perfjax
import perfjax.ops as F
from perfjax.lowering import Cost, TensorType, register_cost_rule, registered_ops

S = jax.ShapeDtypeStruct
f32 = jnp.float32


# ---- exact counts derived by hand -------------------------------------------------------------


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (64, 128, 32)])
def test_matmul_flops_are_2mnk(m, k, n):
    g = perfjax.analyze(F.matmul, (S((m, k), f32), S((k, n), f32)))
    (dot,) = [o for o in g.ops if o.short_name == "dot_general"]
    assert dot.flops == 2 * m * n * k
    assert dot.bytes_read == 4 * (m * k + k * n) and dot.bytes_written == 4 * m * n
    assert (
        dict(dot.features)["m"] == m
        and dict(dot.features)["n"] == n
        and dict(dot.features)["k"] == k
    )
    assert dot.origin == "flash.matmul"


def test_batched_matmul_features():
    g = perfjax.analyze(F.matmul, (S((6, 3, 5), f32), S((6, 5, 7), f32)))
    (dot,) = [o for o in g.ops if o.short_name == "dot_general"]
    assert (dot.features["batch"], dot.features["m"], dot.features["n"], dot.features["k"]) == (
        6,
        3,
        7,
        5,
    )
    assert g.flops == 2 * 6 * 3 * 7 * 5


def test_conv_valid_flops_by_hand():
    # VALID, stride 1: every tap is real. Out 6x6, 3x3 taps, C=2, O=4, N=1 -> 2·36·9·2·4 flops.
    g = perfjax.analyze(
        lambda x, w: F.conv2d(x, w, padding="VALID"), (S((1, 8, 8, 2), f32), S((3, 3, 2, 4), f32))
    )
    assert g.flops == 2 * 36 * 9 * 2 * 4


def test_conv_same_padding_counts_only_real_taps():
    # SAME on 5 with a 3-tap filter: per dimension 4 + 5 + 4 = 13 (output, tap) pairs hit real input.
    g = perfjax.analyze(F.conv2d, (S((1, 5, 5, 2), f32), S((3, 3, 2, 4), f32)))
    assert g.flops == 2 * 13 * 13 * 2 * 4


def test_elementwise_and_transcendental_split():
    g = perfjax.analyze(lambda x: jnp.exp(x) * 2.0, (S((10, 10), f32),))
    assert g.transcendentals == 100
    assert g.flops == 100


def test_reduce_counts_s_minus_r():
    g = perfjax.analyze(lambda x: x.sum(axis=1), (S((7, 9), f32),))
    assert g.flops == 7 * 9 - 7


def test_bf16_and_int8_bytes():
    g = perfjax.analyze(F.matmul, (S((4, 8), jnp.bfloat16), S((8, 2), jnp.bfloat16)))
    assert g.bytes_read == 2 * (32 + 16) and g.bytes_written == 2 * 8
    g8 = perfjax.analyze(F.matmul, (S((4, 8), jnp.int8), S((8, 2), jnp.int8)))
    dot = next(o for o in g8.ops if o.short_name == "dot_general")
    assert dot.bytes_read == 32 + 16 and dot.bytes_written == 4 * 8  # int32 result
    assert dot.results[0].dtype == "int32"


def test_precision_attribute_is_recorded():
    g = perfjax.analyze(
        lambda a, b: F.matmul(a, b, precision="highest"), (S((4, 4), f32), S((4, 4), f32))
    )
    assert (
        next(o for o in g.ops if o.short_name == "dot_general").features["precision"] == "HIGHEST"
    )


# ---- structure ----------------------------------------------------------------------------


def test_flash_origin_survives_grad_and_vmap():
    def loss(w, x):
        return F.softmax(F.relu(F.matmul(x, w))).sum()

    g = perfjax.analyze(jax.grad(loss), (S((8, 4), f32), S((2, 8), f32)))
    origins = {o.origin for o in g.ops}
    assert {"flash.matmul", "flash.relu", "flash.softmax"} <= origins
    gv = perfjax.analyze(jax.vmap(F.matmul), (S((3, 2, 8), f32), S((3, 8, 4), f32)))
    assert {o.origin for o in gv.ops if o.short_name == "dot_general"} == {"flash.matmul"}
    assert gv.flops == 3 * 2 * 2 * 4 * 8


def test_stages_and_critical_path():
    def f(x, w):
        a = F.matmul(x, w)  # branch 1: heavy
        b = F.relu(x)  # branch 2: light, parallel to a
        return a.sum() + b.sum()

    g = perfjax.analyze(f, (S((16, 16), f32), S((16, 16), f32)))
    dot = next(o.index for o in g.ops if o.short_name == "dot_general")
    relu = next(o.index for o in g.ops if o.short_name == "maximum")
    levels = g.levels()
    assert any(dot in s and relu in s for s in g.stages()) or levels[dot] != levels[relu]
    path = g.critical_path()
    assert dot in path and relu not in path
    for a, b in itertools.pairwise(path):
        assert a in g.ops[b].inputs
    assert g.critical_path("ops")
    with pytest.raises(ValueError, match="unknown weight"):
        g.critical_path("seconds")


def test_while_loop_is_multiplied_by_static_trip_count():
    def f(x):
        return lax.fori_loop(0, 10, lambda i, y: y * 2.0 + 1.0, x)

    x = S((100,), f32)
    g = perfjax.analyze(f, (x,))
    once = perfjax.analyze(f, (x,), count_loop_trips=False)
    body = perfjax.analyze(lambda y: y * 2.0 + 1.0, (x,))
    # 10 trips of the body (200 flops each) plus the counter increment and 11 compares.
    assert g.flops == pytest.approx(10 * body.flops + 10 + 11)
    # Counted once, perfjax equals XLA's own analysis (which ignores trip counts).
    assert once.flops == jax.jit(f).lower(x).cost_analysis()["flops"]
    assert not g.notes


def test_scan_trip_count():
    def f(x):
        return lax.scan(lambda c, _: (jnp.tanh(c), None), x, None, length=7)[0]

    g = perfjax.analyze(f, (S((32,), f32),))
    assert g.transcendentals == 7 * 32


def test_dynamic_while_is_reported_not_guessed():
    def f(x):
        return lax.while_loop(lambda y: y.sum() < 100.0, lambda y: y * 2.0, x)

    g = perfjax.analyze(f, (S((4,), f32),))
    assert len(g.notes) == 1 and "trip count not static" in g.notes[0]


def test_cond_counts_most_expensive_branch_like_xla():
    def f(p, x):
        return lax.cond(p, lambda x: F.matmul(x, x), lambda x: x + 1.0, x)

    ins = (S((), jnp.bool_), S((8, 8), f32))
    g = perfjax.analyze(f, ins)
    assert (
        g.flops == 2 * 8 * 8 * 8 + 1
    )  # the matmul branch, plus converting the predicate to an index
    assert any(o.executions == 0 for o in g.ops)  # the cheap branch is kept, with 0 executions
    assert g.flops == jax.jit(f).lower(*ins).cost_analysis()["flops"]


def test_dataframe_and_printing():
    g = perfjax.analyze(lambda x, w: F.relu(F.matmul(x, w)), (S((4, 8), f32), S((8, 2), f32)))
    df = g.to_dataframe()
    assert {"op", "origin", "flops", "bytes_read", "bytes_written", "stage", "executions"} <= set(
        df.columns
    )
    assert df["flops"].sum() == g.flops
    text = str(g)
    assert "flash.matmul" in text and "dot_general" in text
    d = g.to_dict()
    assert d["flops"] == g.flops and d["num_ops"] == len(g.ops)


# ---- Programs -----------------------------------------------------------------------------


def test_trace_shows_every_stage_without_allocating():
    big = S((4096, 4096), f32)  # 64 MiB each if allocated
    p = perfjax.trace(F.matmul, (big, big))
    assert "flash.matmul" in p.jaxpr
    assert "@flash.matmul" in p.stablehlo and "stablehlo.dot_general" in p.stablehlo
    assert p.in_types == (TensorType((4096, 4096), "float32"),) * 2
    assert "HloModule" in p.hlo


def test_program_from_stablehlo_text_and_file(tmp_path):
    def f(x, w):
        return jnp.tanh(x @ w).sum(axis=0)

    ins = (S((16, 32), f32), S((32, 8), f32))
    text = jax.jit(f).lower(*ins).as_text()  # produced by "another framework": no perfjax ops
    p = perfjax.Program.from_stablehlo(text)
    assert p.jaxpr is None and p.in_types[0].shape == (16, 32)
    g = perfjax.analyze(p)
    assert g.flops == jax.jit(f).lower(*ins).cost_analysis()["flops"]
    path = tmp_path / "f.mlir"
    path.write_text(text)
    assert perfjax.analyze(str(path)).flops == g.flops
    folder = perfjax.trace(f, ins).save(tmp_path / "saved")
    assert {q.name for q in folder.iterdir()} == {"program.mlir", "program.jaxpr", "program.hlo"}
    assert perfjax.Program.from_stablehlo(folder / "program.mlir").out_types == p.out_types


def test_generic_mlir_syntax_is_accepted():
    text = """
    module {
      func.func @main(%a: tensor<4x8xf32>, %b: tensor<8x2xf32>) -> tensor<4x2xf32> {
        %0 = "stablehlo.dot_general"(%a, %b) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>} : (tensor<4x8xf32>, tensor<8x2xf32>) -> tensor<4x2xf32>
        %1 = "stablehlo.exponential"(%0) : (tensor<4x2xf32>) -> tensor<4x2xf32>
        func.return %1 : tensor<4x2xf32>
      }
    }"""
    g = perfjax.analyze(perfjax.Program.from_stablehlo(text))
    assert g.flops == 2 * 4 * 2 * 8 and g.transcendentals == 8


# ---- bad input ----------------------------------------------------------------------------

_UNKNOWN_OP = """
module {
  func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {
    %0 = stablehlo.custom_call @my_secret_kernel(%a) : (tensor<4xf32>) -> tensor<4xf32>
    %1 = stablehlo.add %0, %0 : tensor<4xf32>
    return %1 : tensor<4xf32>
  }
}"""


def test_unknown_op_is_an_error_naming_it():
    with pytest.raises(
        perfjax.UnsupportedOpError, match=r"stablehlo.custom_call@my_secret_kernel \(x1"
    ) as e:
        perfjax.analyze(_UNKNOWN_OP)
    assert e.value.ops[0][0] == "stablehlo.custom_call@my_secret_kernel"


def test_unknown_op_warn_mode_lists_it_and_never_costs_it_silently():
    with pytest.warns(UserWarning, match="my_secret_kernel"):
        g = perfjax.analyze(_UNKNOWN_OP, on_unsupported="warn")
    assert [n for n, _ in g.unmodeled_ops] == ["stablehlo.custom_call@my_secret_kernel"]
    assert not next(o for o in g.ops if "custom_call" in o.name).modeled
    assert "NOT COUNTED" in str(g)
    assert g.flops == 4  # only the add


def test_registering_a_rule_makes_the_op_costable_and_refuses_duplicates():
    @register_cost_rule("stablehlo.custom_call@my_secret_kernel_2")
    def _rule(op):
        return Cost(flops=10.0 * op.results[0].size, **op.io_bytes())

    assert "stablehlo.custom_call@my_secret_kernel_2" in registered_ops()
    g = perfjax.analyze(_UNKNOWN_OP.replace("my_secret_kernel", "my_secret_kernel_2"))
    assert g.flops == 40 + 4
    with pytest.raises(ValueError, match="already registered.*overwrite=True"):
        register_cost_rule("stablehlo.add")(_rule)


def test_malformed_stablehlo_is_a_clear_error():
    with pytest.raises(perfjax.StableHLOParseError, match="could not parse the StableHLO module"):
        perfjax.Program.from_stablehlo("module { func.func @main( this is not mlir }")
    with pytest.raises(perfjax.StableHLOParseError, match="empty"):
        perfjax.Program.from_stablehlo("   ")
    with pytest.raises(FileNotFoundError, match="no StableHLO file"):
        perfjax.Program.from_stablehlo("does/not/exist.mlir")


def test_dynamic_shapes_are_refused():
    text = """
    module {
      func.func @main(%a: tensor<?x4xf32>) -> tensor<?x4xf32> {
        %0 = stablehlo.add %a, %a : tensor<?x4xf32>
        return %0 : tensor<?x4xf32>
      }
    }"""
    with pytest.raises(perfjax.UnsupportedProgramError, match="dynamic shape"):
        perfjax.Program.from_stablehlo(text)


@pytest.mark.parametrize(
    "inputs, match",
    [
        ("abc", "tuple of positional arguments"),
        (np.ones(3), "single ndarray.*inputs=\\(x,\\)"),
        (("abc",), r"inputs\[0\]: expected an array.*got str"),
        (({"w": object()},), r"inputs\[0\]\['w'\]: expected an array"),
    ],
)
def test_non_array_inputs_are_clear_errors(inputs, match):
    with pytest.raises(TypeError, match=match):
        perfjax.analyze(lambda x: x, inputs)


def test_bad_options():
    with pytest.raises(ValueError, match="on_unsupported must be"):
        perfjax.analyze(lambda x: x + 1, (S((2,), f32),), on_unsupported="ignore")
    with pytest.raises(TypeError, match="callable or a Program"):
        perfjax.trace(42, ())
