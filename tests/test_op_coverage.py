"""Every op JAX can emit has a cost rule (or a written reason why not), and the counts are right.

References: XLA's own HloCostAnalysis of the unoptimized module (for elementwise and CHLO special
functions), LAPACK Working Note 41 / Golub & Van Loan operation counts written out here in their
published form (for linear algebra), and the 5·N·log2(N) FFT convention.
"""

from __future__ import annotations

import functools
import math
import random
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax._src import config as jax_config
from jax._src import xla_bridge
from jax._src.lib import _jax
from jaxlib.mlir.dialects import chlo, stablehlo

import perfjax
from perfjax._errors import UnsupportedOpError
from perfjax.lowering import _graph, _rules

S = jax.ShapeDtypeStruct
f32, c64 = jnp.float32, jnp.complex64
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def dialect_ops() -> set[str]:
    names = set()
    for mod in (stablehlo, chlo):
        for attr in dir(mod):
            name = getattr(getattr(mod, attr), "OPERATION_NAME", None)
            if isinstance(name, str):
                names.add(name)
    return names


def xla_unoptimized(text: str) -> dict[str, float]:
    """XLA's HloCostAnalysis of a StableHLO module, before any optimization (what
    ``jax.jit(f).lower(...).cost_analysis()`` does for a traced function)."""
    comp = _jax.mlir.mlir_module_to_xla_computation(text, use_tuple_args=False)
    return _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), comp.as_hlo_module())


def one_op_module(op: str, in_types: list[str], out_type: str, attrs: str = "") -> str:
    args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(in_types))
    operands = ", ".join(f"%a{i}" for i in range(len(in_types)))
    return (
        f"module @m {{\n  func.func public @main({args}) -> {out_type} {{\n"
        f'    %0 = "{op}"({operands}){attrs} : ({", ".join(in_types)}) -> {out_type}\n'
        f"    return %0 : {out_type}\n  }}\n}}"
    )


@functools.cache
def lowered_text(name: str, platform: str) -> str | None:
    fn, args = CROSS_PLATFORM[name]
    try:
        return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()
    except NotImplementedError:
        return None
    except Exception as e:  # JAX has no lowering of this primitive for this platform
        if "not found for platform" in str(e) or "is different from the lowering platform" in str(
            e
        ):
            return None
        raise


def custom_call_targets(text: str) -> set[str]:
    return set(re.findall(r"custom_call @([A-Za-z0-9_.$]+)", text))


def op_flops(graph, name_part: str) -> float:
    return sum(o.flops * o.executions for o in graph.ops if name_part in o.name)


def op_features(graph, name_part: str) -> dict:
    return next(dict(o.features) for o in graph.ops if name_part in o.name)


# ---------------------------------------------------------------------------------------------
# 1. coverage of the dialects, and the exclusion table
# ---------------------------------------------------------------------------------------------


def test_every_stablehlo_and_chlo_op_has_a_rule_or_a_written_exclusion():
    ops = dialect_ops()
    assert len(ops) > 150, "the dialect bindings should list well over 150 ops"
    missing = sorted(n for n in ops if _rules.lookup(n) is None and n not in _rules.EXCLUDED_OPS)
    assert not missing, f"ops with neither a cost rule nor an EXCLUDED_OPS entry: {missing}"


def test_exclusions_are_real_ops_without_rules_and_give_a_reason():
    ops = dialect_ops()
    for name, reason in _rules.EXCLUDED_OPS.items():
        assert name in ops, f"{name} is not an op of the stablehlo/chlo dialects"
        assert _rules.lookup(name) is None, f"{name} is excluded but also has a rule"
        assert len(reason) > 20


def test_structural_exclusions_are_handled_by_the_walker():
    structural = {n for n, r in _rules.EXCLUDED_OPS.items() if r.startswith("structural")}
    assert structural == {
        "stablehlo.while",
        "stablehlo.case",
        "stablehlo.if",
        "stablehlo.composite",
    }
    assert "stablehlo.return" in _graph._TERMINATORS


def test_exclusions_of_ops_jax_never_emits_hold_for_the_programs_below():
    never = {n for n, r in _rules.EXCLUDED_OPS.items() if "never" in r or "JAX emits" in r}
    assert never
    for name in CROSS_PLATFORM:
        for platform in PLATFORMS:
            text = lowered_text(name, platform)
            if text is not None:
                assert not any(f'"{n}"' in text or f"{n} " in text for n in never), (name, platform)


def test_unknown_custom_call_target_still_raises():
    text = """module @m {
  func.func public @main(%a: tensor<4xf32>) -> tensor<4xf32> {
    %0 = stablehlo.custom_call @my_secret_kernel(%a) : (tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}"""
    with pytest.raises(UnsupportedOpError, match="my_secret_kernel"):
        perfjax.analyze(text)


# ---------------------------------------------------------------------------------------------
# 2. custom-call targets and ops JAX emits on every platform
# ---------------------------------------------------------------------------------------------

A = S((3, 8, 8), f32)
R = S((3, 8, 6), f32)
V = S((3, 8, 2), f32)
X = S((4, 16), f32)


def _key(impl):
    return jax.random.key(0, impl=impl)


CROSS_PLATFORM = {
    "cholesky": (jnp.linalg.cholesky, (A,)),
    "cholesky_c64": (jnp.linalg.cholesky, (S((2, 4, 4), c64),)),
    "qr": (jnp.linalg.qr, (R,)),
    "eigh": (jnp.linalg.eigh, (A,)),
    "eigvalsh": (jnp.linalg.eigvalsh, (A,)),
    "eig": (jnp.linalg.eig, (A,)),
    "eigvals": (jnp.linalg.eigvals, (A,)),
    "svd": (jnp.linalg.svd, (R,)),
    "svd_thin": (lambda a: jnp.linalg.svd(a, full_matrices=False), (R,)),
    "svdvals": (lambda a: jnp.linalg.svd(a, compute_uv=False), (R,)),
    "lu": (jax.scipy.linalg.lu, (S((8, 8), f32),)),
    "lu_factor": (jax.scipy.linalg.lu_factor, (A,)),
    "solve": (jnp.linalg.solve, (A, V)),
    "inv": (jnp.linalg.inv, (A,)),
    "det": (jnp.linalg.det, (A,)),
    "slogdet": (jnp.linalg.slogdet, (A,)),
    "solve_triangular": (jax.scipy.linalg.solve_triangular, (A, V)),
    "schur": (jax.scipy.linalg.schur, (S((8, 8), f32),)),
    "hessenberg": (lax.linalg.hessenberg, (A,)),
    "tridiagonal": (lax.linalg.tridiagonal, (A,)),
    "tridiagonal_solve": (lax.linalg.tridiagonal_solve, (S((3, 8), f32),) * 3 + (V,)),
    "householder_product": (lambda a, t: lax.linalg.householder_product(a, t), (R, S((3, 6), f32))),
    "fft": (jnp.fft.fft, (S((4, 16), c64),)),
    "rfft": (jnp.fft.rfft, (X,)),
    "irfft": (jnp.fft.irfft, (S((4, 9), c64),)),
    "fft2": (jnp.fft.fft2, (S((2, 8, 16), c64),)),
    "fftn": (jnp.fft.fftn, (S((2, 4, 8), c64),)),
    "top_k": (lambda x: lax.top_k(x, 3), (X,)),
    "approx_max_k": (lambda x: lax.approx_max_k(x, 3), (X,)),
    "sort": (jnp.sort, (X,)),
    "argsort": (jnp.argsort, (X,)),
    "cumsum": (lambda x: jnp.cumsum(x, axis=1), (X,)),
    "pure_callback": (lambda x: jax.pure_callback(np.sin, S((4,), f32), x), (S((4,), f32),)),
    "debug_print": (lambda x: (jax.debug.print("{}", x), x + 1)[1], (S((4,), f32),)),
    "ragged_dot": (lax.ragged_dot, (S((16, 8), f32), S((3, 8, 4), f32), S((3,), jnp.int32))),
    "gelu_exact": (lambda x: jax.nn.gelu(x, approximate=False), (X,)),
    "special": (lambda x: jax.scipy.special.gammaln(x) + jax.scipy.special.digamma(x), (X,)),
    **{
        f"random_{impl}": (
            lambda x, impl=impl: jax.random.normal(_key(impl), (16,)) + x,
            (S((16,), f32),),
        )
        for impl in ("threefry2x32", "rbg", "unsafe_rbg")
    },
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_everything_jax_emits_for_these_functions_has_a_rule(platform):
    lowered = 0
    for name in CROSS_PLATFORM:
        text = lowered_text(name, platform)
        if text is None:
            continue
        lowered += 1
        for target in custom_call_targets(text):
            assert _rules.lookup(f"stablehlo.custom_call@{target}") is not None, (name, target)
        graph = perfjax.analyze(text)  # raises on any op without a rule
        assert graph.flops >= 0 and not graph.unmodeled_ops, name
    assert lowered >= 25


def test_threefry_gpu_kernel_has_a_rule_and_matches_the_stablehlo_expansion():
    def f(x):
        return jax.random.bits(jax.random.key(0), (4096,)) ^ x

    spec = (S((4096,), jnp.uint32),)
    with jax_config.threefry_gpu_kernel_lowering(True):
        text = jax.jit(f).trace(*spec).lower(lowering_platforms=("cuda",)).as_text()
    assert "threefry2x32" in " ".join(custom_call_targets(text))
    kernel = perfjax.analyze(text)
    expanded = perfjax.analyze(f, spec)  # CPU: the same algorithm as StableHLO integer ops
    assert abs(kernel.flops / expanded.flops - 1) < 0.05


# ---------------------------------------------------------------------------------------------
# 3. elementwise and CHLO special functions against XLA's unoptimized cost analysis
# ---------------------------------------------------------------------------------------------

N = 64
# op -> (number of operands, operand kind, result kind, attributes); kind "f": float, "i": int32,
# "p": predicate, "c": complex of the float type.
_STABLEHLO_CASES = {
    **{
        n: (1, "f", "f", "")
        for n in (
            "abs ceil floor negate sign exponential exponential_minus_one log log_plus_one logistic "
            "sqrt cbrt rsqrt tanh sine cosine tan round_nearest_afz round_nearest_even"
        ).split()
    },
    **{
        n: (2, "f", "f", "")
        for n in "add subtract multiply divide maximum minimum remainder power atan2".split()
    },
    **{
        n: (2, "i", "i", "")
        for n in "and or xor shift_left shift_right_arithmetic shift_right_logical".split()
    },
    **{n: (1, "i", "i", "") for n in "not popcnt count_leading_zeros".split()},
    "is_finite": (1, "f", "p", ""),
    "compare": (2, "f", "p", " {comparison_direction = #stablehlo<comparison_direction LT>}"),
    "complex": (2, "f", "c", ""),
    "real": (1, "c", "f", ""),
    "imag": (1, "c", "f", ""),
    "convert": (1, "f", "i", ""),
    "bitcast_convert": (1, "f", "u", ""),
    "select": (3, "pff", "f", ""),
    "reduce_precision": (1, "f", "f", " {exponent_bits = 5 : i32, mantissa_bits = 10 : i32}"),
    "clamp": (3, "f", "f", ""),
}
_CHLO_CASES = {
    **{n: (1, "f", "f", "") for n in (
        "acos acosh asin asinh atan atanh bessel_i1e cosh digamma erf erf_inv erfc lgamma sinh "
        "square tan"
    ).split()},
    **{n: (2, "f", "f", "") for n in "next_after polygamma zeta".split()},
    **{n: (1, "f", "p", "") for n in "is_inf is_neg_inf is_pos_inf".split()},
    "conj": (1, "c", "c", ""),
    "mulhi": (2, "i", "i", ""),
    "broadcast_select": (3, "pff", "f", ""),
    **{f"broadcast_{n}": (2, "f", "f", "") for n in (
        "add subtract multiply divide maximum minimum remainder power atan2 next_after polygamma "
        "zeta"
    ).split()},
    **{f"broadcast_{n}": (2, "i", "i", "") for n in (
        "and or xor shift_left shift_right_arithmetic shift_right_logical"
    ).split()},
    "broadcast_complex": (2, "f", "c", ""),
    "broadcast_compare": (2, "f", "p", " {comparison_direction = #chlo<comparison_direction GT>}"),
}  # fmt: skip
ELEMENTWISE = [(f"stablehlo.{k}", v) for k, v in _STABLEHLO_CASES.items()] + [
    (f"chlo.{k}", v) for k, v in _CHLO_CASES.items()
]


def test_the_elementwise_table_covers_every_elementwise_rule():
    tested = {name for name, _ in ELEMENTWISE}
    elementwise_rules = {
        n
        for n in _rules.registered_ops()
        if _rules.lookup(n) in (_rules._elementwise, _rules._transcendental, _rules._chlo_expanded)
    }
    # chlo._asin_acos_kernel is an internal helper of complex asin/acos, tested with them below.
    untested = elementwise_rules - tested - {"chlo._asin_acos_kernel"}
    assert not untested, sorted(untested)


def _element(kind: str, dtype: str) -> str:
    bits = re.search(r"\d+", dtype).group(0)
    return {"f": dtype, "i": "i32", "u": f"i{bits}", "p": "i1", "c": f"complex<{dtype}>"}[kind]


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("op,case", ELEMENTWISE, ids=[n for n, _ in ELEMENTWISE])
def test_elementwise_counts_match_xla_unoptimized(op, case, dtype):
    nin, kin, kout, attrs = case
    kinds = kin if len(kin) == nin else kin * nin
    if dtype == "bf16" and not {"f", "c"} & set(kinds + kout):
        pytest.skip("integer op: no float dtype")
    if dtype == "bf16" and "c" in kinds + kout:
        pytest.skip("no complex<bf16>")
    in_t = [f"tensor<{N}x{_element(k, dtype)}>" for k in kinds]
    out_t = f"tensor<{N}x{_element(kout, dtype)}>"
    text = one_op_module(op, in_t, out_t, attrs)
    ref = xla_unoptimized(text)
    graph = perfjax.analyze(text)
    ref_flops, ref_trans = ref.get("flops", 0.0), ref.get("transcendentals", 0.0)
    assert graph.flops == pytest.approx(ref_flops, rel=0.05, abs=0.5), (graph.flops, ref_flops)
    assert graph.transcendentals == pytest.approx(ref_trans, rel=0.05, abs=0.5)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("gelu exact", lambda x: jax.nn.gelu(x, approximate=False)),
        ("lgamma", lax.lgamma),
        ("digamma", lax.digamma),
        ("erf_inv", lax.erf_inv),
        ("erfc", lax.erfc),
        (
            "random.normal rbg",
            lambda x: jax.random.normal(jax.random.key(0, impl="rbg"), x.shape) + x,
        ),
    ],
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_jax_functions_match_xla_unoptimized(name, fn, dtype):
    spec = S((8, 32), dtype)
    ref = jax.jit(fn).lower(spec).cost_analysis()
    graph = perfjax.analyze(fn, (spec,))
    assert graph.flops == pytest.approx(ref.get("flops", 0.0), rel=0.05)
    assert graph.transcendentals == pytest.approx(ref.get("transcendentals", 0.0), rel=0.05)


# ---------------------------------------------------------------------------------------------
# 4. FFT, sort, top-k
# ---------------------------------------------------------------------------------------------


def test_fft_counts_5_n_log2_n_per_transform_and_half_for_real_transforms():
    def fl(fn, spec):
        g = perfjax.analyze(fn, (spec,))
        return op_flops(g, "stablehlo.fft"), op_features(g, "stablehlo.fft")

    flops, feats = fl(jnp.fft.fft, S((4, 16), c64))
    assert flops == 4 * 5 * 16 * 4  # 4 transforms of 16 points, log2(16) = 4
    assert feats["kind"] == "fft" and feats["n"] == 16 and feats["batch"] == 4
    assert fl(jnp.fft.ifft, S((4, 16), c64))[0] == flops
    assert fl(jnp.fft.rfft, S((4, 16), f32))[0] == flops / 2
    assert fl(jnp.fft.irfft, S((4, 9), c64))[0] == flops / 2  # 16-point real output
    # 2-D: 8·16 = 128 points, 5·128·log2(128) each, 2 of them.
    assert fl(jnp.fft.fft2, S((2, 8, 16), c64))[0] == 2 * 5 * 128 * 7
    assert fl(jnp.fft.fft, S((0, 16), c64))[0] == 0


def test_sort_keeps_xla_convention_and_has_features():
    spec = S((4, 16), f32)
    g = perfjax.analyze(jnp.sort, (spec,))
    ref = jax.jit(jnp.sort).lower(spec).cost_analysis()["flops"]
    assert op_flops(g, "sort") == ref == 64 * 6
    feats = op_features(g, "sort")
    assert (feats["kind"], feats["n"], feats["batch"]) == ("sort", 16, 4)
    assert perfjax.analyze(jnp.sort, (S((0,), f32),)).flops == 0


@pytest.mark.parametrize("k,per_row", [(1, 16), (4, 16 * 2), (8, 16 * 3)])
def test_top_k_counts_n_log2_k_per_row(k, per_row):
    g = perfjax.analyze(lambda x: lax.top_k(x, k), (S((5, 16), f32),))
    assert op_flops(g, "top_k") == 5 * per_row
    feats = op_features(g, "top_k")
    assert (feats["kind"], feats["k"], feats["n"], feats["batch"]) == ("sort", k, 16, 5)
    approx = perfjax.analyze(lambda x: lax.approx_max_k(x, k), (S((5, 16), f32),))
    assert op_flops(approx, "ApproxTopK") == 5 * per_row


# ---------------------------------------------------------------------------------------------
# 5. linear algebra: LAPACK Working Note 41 / Golub & Van Loan counts, on every platform
# ---------------------------------------------------------------------------------------------


# LAWN 41 Appendix C, written as (multiplications, additions) per matrix.
def lawn_potrf(n):
    return (n**3 / 6 + n**2 / 2 + n / 3) + (n**3 / 6 - n / 6)


def lawn_getrf(n):  # square
    return (n**3 / 3 - n / 3) + (n**3 / 3 - n**2 / 2 + n / 6)


def lawn_geqrf(m, n):  # m >= n
    return (m * n**2 - n**3 / 3 + m * n + n**2 / 2 + 23 * n / 6) + (
        m * n**2 - n**3 / 3 + n**2 / 2 + 5 * n / 6
    )


def lawn_trsm_left(m, n):
    return n * m * (m + 1) / 2 + n * m * (m - 1) / 2


def platform_graph(name, platform):
    text = lowered_text(name, platform)
    return None if text is None else perfjax.analyze(text)


def solver_ops(graph):
    return [o for o in graph.ops if o.features.get("kind") == "solver"]


def test_cholesky_counts_lawn41_on_cpu_gpu_and_tpu():
    for platform in PLATFORMS:
        g = platform_graph("cholesky", platform)
        (op,) = [o for o in solver_ops(g) if o.features["routine"] == "potrf"]
        assert op.flops == pytest.approx(3 * lawn_potrf(8)), platform
        assert op.features["batch"] == 3 and op.features["n"] == 8
    # Complex: 4 real flops per complex flop.
    g = platform_graph("cholesky_c64", "cpu")
    assert solver_ops(g)[0].flops == pytest.approx(4 * 2 * lawn_potrf(4))


def test_complex_asin_acos_expand_as_xla_does():
    for fn in (jnp.arcsin, jnp.arccos):
        spec = S((64,), c64)
        ref = jax.jit(fn).lower(spec).cost_analysis()
        g = perfjax.analyze(fn, (spec,))
        assert g.flops == pytest.approx(ref["flops"], rel=0.05)
        assert g.transcendentals == pytest.approx(ref["transcendentals"], rel=0.05)


def test_lu_solve_and_qr_count_lawn41():
    for platform in PLATFORMS:
        g = platform_graph("lu_factor", platform)
        getrf = [o for o in solver_ops(g) if o.features["routine"] == "getrf"]
        assert sum(o.flops for o in getrf) == pytest.approx(3 * lawn_getrf(8)), platform
        g = platform_graph("qr", platform)
        geqrf = [o for o in solver_ops(g) if o.features["routine"] == "geqrf"]
        assert sum(o.flops for o in geqrf) == pytest.approx(3 * lawn_geqrf(8, 6)), platform
    g = platform_graph("solve_triangular", "cpu")
    (trsm,) = solver_ops(g)
    assert trsm.flops == 3 * lawn_trsm_left(8, 2)
    for platform in ("cuda", "tpu"):  # stablehlo.triangular_solve: the same count
        g = platform_graph("solve_triangular", platform)
        assert sum(o.flops for o in solver_ops(g)) == trsm.flops


def test_eigen_and_svd_modes_follow_golub_van_loan():
    n = 8
    eigh = solver_ops(platform_graph("eigh", "cpu"))[0]
    assert eigh.flops == 3 * 9 * n**3 and eigh.features["vectors"]
    eig = solver_ops(platform_graph("eig", "cpu"))[0]
    eigvals = solver_ops(platform_graph("eigvals", "cpu"))[0]
    assert (eig.flops, eigvals.flops) == (3 * 25 * n**3, 3 * 10 * n**3)
    assert solver_ops(platform_graph("eig", "cuda"))[0].flops == eig.flops
    m, n = 8, 6
    full = solver_ops(platform_graph("svd", "cpu"))[0].flops
    thin = solver_ops(platform_graph("svd_thin", "cpu"))[0].flops
    vals = solver_ops(platform_graph("svdvals", "cpu"))[0].flops
    assert full == 3 * (4 * m**2 * n + 8 * m * n**2 + 9 * n**3)
    assert thin == 3 * (14 * m * n**2 + 8 * n**3)
    assert vals == pytest.approx(3 * (4 * m * n**2 - 4 * n**3 / 3))
    assert solver_ops(platform_graph("svdvals", "cuda"))[0].flops == pytest.approx(vals)


def test_solver_features_name_the_routine():
    routines = {
        o.features["routine"]
        for name in (
            "cholesky",
            "qr",
            "eigh",
            "eig",
            "svd",
            "solve",
            "hessenberg",
            "tridiagonal",
            "tridiagonal_solve",
            "schur",
        )
        for o in solver_ops(platform_graph(name, "cpu"))
    }
    assert routines >= {"potrf", "geqrf", "orgqr", "syevd", "geev", "gesvd", "getrf", "trsm",
                        "gehrd", "sytrd", "gtsv", "gees"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 6. callbacks, ragged dot, opaque kernels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pure_callback", "debug_print"])
def test_python_callbacks_are_host_round_trips(name):
    g = platform_graph(name, "cpu")
    (cb,) = [o for o in g.ops if o.features.get("kind") == "host_callback"]
    assert cb.flops == 0 and cb.transcendentals == 0
    assert cb.features["bytes_to_host"] == sum(t.nbytes for t in cb.operands) > 0
    assert cb.bytes_read == cb.features["bytes_to_host"]


def test_tpu_callbacks_are_host_transfers():
    g = platform_graph("debug_print", "tpu")
    if g is None:
        pytest.skip("this JAX cannot lower callbacks for TPU without a TPU backend")
    assert any(o.features.get("kind") == "host_callback" for o in g.ops)


def test_ragged_dot_counts_like_one_dense_gemm_over_the_groups():
    g = platform_graph("ragged_dot", "cuda")
    (op,) = [o for o in g.ops if o.name == "chlo.ragged_dot"]
    assert op.flops == 2 * 16 * 8 * 4
    assert (op.features["kind"], op.features["m"], op.features["n"], op.features["k"]) == (
        "gemm", 16, 4, 8,
    )  # fmt: skip
    assert op.features["groups"] == 3


def test_pallas_style_custom_calls_are_opaque_not_zero_cost():
    text = """module @m {
  func.func public @main(%a: tensor<128xf32>) -> tensor<128xf32> {
    %0 = stablehlo.custom_call @tpu_custom_call(%a) {backend_config = "{}"} : (tensor<128xf32>) -> tensor<128xf32>
    return %0 : tensor<128xf32>
  }
}"""
    (op,) = perfjax.analyze(text).ops
    assert op.features["opaque"] is True and op.bytes == 2 * 128 * 4


# ---------------------------------------------------------------------------------------------
# 7. zero-size and huge shapes
# ---------------------------------------------------------------------------------------------

ZERO = {
    "sum over an empty axis": (lambda x: jnp.sum(x, axis=0), S((0, 4), f32)),
    "max over an empty array": (lambda x: jnp.max(x, initial=0.0), S((0,), f32)),
    "cumsum": (lambda x: jnp.cumsum(x, axis=0), S((0, 4), f32)),
    "reduce_window": (
        lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 3), (1, 1), "SAME"),
        S((0, 8), f32),
    ),
    "max_pool grad": (
        lambda x: jax.grad(
            lambda y: lax.reduce_window(y, -jnp.inf, lax.max, (2,), (2,), "VALID").sum()
        )(x),
        S((0,), f32),
    ),
    "sort": (jnp.sort, S((0,), f32)),
    "top_k": (lambda x: lax.top_k(x, 2), S((0, 8), f32)),
    "fft": (jnp.fft.fft, S((0, 8), c64)),
    "conv": (
        lambda x: lax.conv(x, jnp.ones((4, 3, 3, 3), f32), (1, 1), "SAME"),
        S((0, 3, 8, 8), f32),
    ),
    "cholesky": (jnp.linalg.cholesky, S((0, 4, 4), f32)),
    "matmul": (lambda x: x @ jnp.ones((0, 3), f32), S((4, 0), f32)),
}


@pytest.mark.parametrize("name", list(ZERO))
def test_zero_size_inputs_cost_zero_or_more_never_negative(name):
    fn, spec = ZERO[name]
    g = perfjax.analyze(fn, (spec,))
    for o in g.ops:
        for v in (o.flops, o.transcendentals, o.bytes_read, o.bytes_written):
            assert math.isfinite(v) and v >= 0, (name, o.name, v)


def test_reduce_over_an_empty_axis_is_zero_flops():
    # 0 input elements reduced to 4 outputs (the init values): no additions.
    assert perfjax.analyze(lambda x: jnp.sum(x, axis=0), (S((0, 4), f32),)).flops == 0


HUGE = 2**20  # (2^20, 2^20) = 2^40 elements, never allocated


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: jnp.exp(x) + 1,
        lambda x: jnp.sum(x, axis=1),
        lambda x: jax.nn.gelu(x, approximate=False),
        lambda x: jnp.fft.rfft(x),
        lambda x: lax.top_k(x, 8)[0],
        lambda x: jnp.sort(x, axis=1),
        lambda x: lax.conv_general_dilated(
            x[None, None], jnp.ones((1, 1, 3, 3), f32), (1, 1), "SAME"
        ),
    ],
    ids=["exp", "sum", "gelu", "rfft", "top_k", "sort", "conv"],
)
def test_huge_abstract_shapes_do_not_overflow(fn):
    g = perfjax.analyze(fn, (S((HUGE, HUGE), f32),))
    assert math.isfinite(g.flops) and g.flops >= HUGE * HUGE / 2


def test_huge_cholesky_batch():
    g = perfjax.analyze(jnp.linalg.cholesky, (S((2**24, 64, 64), f32),))
    assert math.isfinite(g.flops) and g.flops > 2**24 * 64**3 / 3


def test_valid_conv_positions_match_brute_force():
    def brute(in_size, k_size, out_size, pad_lo, stride, k_dil, in_dil):
        count = 0
        for o in range(out_size):
            for t in range(k_size):
                p = o * stride - pad_lo + t * k_dil
                count += p >= 0 and p % in_dil == 0 and p // in_dil < in_size
        return count

    rng = random.Random(0)
    for _ in range(400):
        args = (
            rng.randint(0, 9), rng.randint(0, 6), rng.randint(0, 10), rng.randint(-3, 5),
            rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 3),
        )  # fmt: skip
        assert _rules._valid_positions(*args) == brute(*args), args
