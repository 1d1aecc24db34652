"""perfjax.run: real outputs, the compile cache, timing statistics, and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax
import perfjax.ops as F
from perfjax.executor import TimeStats, clear_cache, materialize, time_callable

FAST = dict(max_time_s=0.05, min_repeats=3)


def mlp(x, w1, w2):
    return F.matmul(F.relu(F.matmul(x, w1)), w2)


def _mlp_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return tuple(
        jnp.asarray(rng.standard_normal(s), jnp.float32) for s in [(8, 32), (32, 16), (16, 4)]
    )


def test_outputs_equal_numpy_and_jit():
    x, w1, w2 = _mlp_inputs()
    r = perfjax.run(mlp, (x, w1, w2), **FAST)
    ref = np.maximum(np.asarray(x) @ np.asarray(w1), 0) @ np.asarray(w2)
    np.testing.assert_allclose(np.asarray(r.outputs), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(r.outputs), np.asarray(jax.jit(mlp)(x, w1, w2)))


def test_compiles_once_per_signature():
    clear_cache()
    x, w1, w2 = _mlp_inputs()
    first = perfjax.run(mlp, (x, w1, w2), **FAST)
    again = perfjax.run(mlp, _mlp_inputs(1), **FAST)
    assert not first.cached and first.compile_s > 0 and first.lower_s > 0
    assert again.cached and again.compile_s == 0.0
    other = perfjax.run(mlp, (jnp.ones((2, 32)), w1, w2), **FAST)  # new batch size: new signature
    assert not other.cached


def test_time_stats_are_consistent():
    r = perfjax.run(lambda x: jnp.tanh(x) * 2, (jnp.ones((256, 256)),), **FAST)
    t = r.time
    assert 0 < t.min_s <= t.median_s <= t.p90_s
    assert t.repeats == len(t.samples_s) >= 3 and t.number >= 1
    assert np.isfinite(t.rel_ci) or t.repeats < 3


def test_time_stats_from_samples():
    s = TimeStats.from_samples([3.0, 1.0, 2.0, 5.0, 4.0] * 4, number=2)
    assert (s.median_s, s.min_s, s.repeats, s.number) == (3.0, 1.0, 20, 2)
    assert s.p90_s == pytest.approx(np.percentile([1, 2, 3, 4, 5] * 4, 90))
    with pytest.raises(ValueError, match="no timing samples"):
        TimeStats.from_samples([])


def test_adaptive_repeats_stop_when_stable():
    # A deterministic "clock" is not available, so check both exits of the rule on real calls:
    # a generous tolerance stops at min_repeats, a zero budget stops on time. (With 5 samples the
    # median's 95% CI spans all of them: one call slowed 30x by a busy machine is a half-width of
    # 15 medians, so "generous" has to be far wider than that.)
    loose = time_callable(lambda: None, (), rtol=1e9, min_repeats=5, max_time_s=5.0)
    assert loose.stable and loose.repeats == 5
    tight = time_callable(lambda: None, (), rtol=1e-12, min_repeats=3, max_time_s=0.01)
    assert not tight.stable and tight.repeats >= 3


def test_shape_dtype_struct_inputs_are_materialized_deterministically():
    spec = (jax.ShapeDtypeStruct((4, 8), jnp.float32), jax.ShapeDtypeStruct((3,), jnp.int32))
    a, b = materialize(spec), materialize(spec)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert a[0].shape == (4, 8) and a[1].dtype == jnp.int32
    r = perfjax.run(lambda x: x.sum(), (spec[0],), **FAST)
    assert np.isfinite(float(r.outputs))


def test_runs_a_program_read_from_stablehlo_text():
    x, w1, w2 = _mlp_inputs()
    text = perfjax.trace(mlp, (x, w1, w2)).stablehlo
    program = perfjax.Program.from_stablehlo(text)
    r = perfjax.run(program, (x, w1, w2), **FAST)
    np.testing.assert_allclose(
        np.asarray(r.outputs[0]), np.asarray(jax.jit(mlp)(x, w1, w2)), rtol=1e-6
    )
    with pytest.raises(
        ValueError, match=r"input 1 of program .* must be float32\[32,16\], got float32\[16,32\]"
    ):
        perfjax.run(program, (x, w1.T, w2), **FAST)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        perfjax.run(program, (x,), **FAST)


def test_runs_a_traced_program():
    x, w1, w2 = _mlp_inputs()
    r = perfjax.run(perfjax.trace(mlp, (x, w1, w2)), (x, w1, w2), **FAST)
    assert r.outputs.shape == (8, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rtol must be a positive number"):
        perfjax.run(lambda x: x, (jnp.ones(2),), rtol=0)
    with pytest.raises(ValueError, match="min_repeats <= max_repeats"):
        perfjax.run(lambda x: x, (jnp.ones(2),), min_repeats=5, max_repeats=2)
    with pytest.raises(TypeError, match="function or a perfjax.Program"):
        perfjax.run("not a function", ())
    with pytest.raises(TypeError, match=r"inputs\[0\]: expected an array"):
        perfjax.run(lambda x: x, ("text",))


def test_result_prints_and_converts():
    r = perfjax.run(lambda x: x + 1, (jnp.ones(4),), **FAST)
    assert "median" in str(r) and "compiled in" in str(r)
    d = r.to_dict()
    assert d["median_s"] == r.time.median_s and d["repeats"] == r.time.repeats
