"""A fixed-seed sample of the fuzzing benchmark (benchmarks/fuzz.py) in the default suite.

Random JAX programs (random dtypes, zero-size and 2^40-element abstract shapes, special functions,
loops, cond, RNG, linalg, FFT, sort, scatter, Flash ops, vmap/grad ...) through ``perfjax.predict``
on a GPU, a TPU and this CPU: no crash (an exception that is not a clear perfjax refusal) and no
NaN, infinite or negative time or energy. ``python benchmarks/fuzz.py`` runs 10,000 of them.
"""

from __future__ import annotations

import collections
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import fuzz

SEED, COUNT = 20240613, 60
DEVICES = ("h100", "tpu-v5e", "host")


@pytest.fixture(scope="module")
def outcomes():
    out = {}
    for i in range(COUNT):
        prog = fuzz.generate(SEED, i)
        out[prog.key] = (prog, fuzz.evaluate(prog, DEVICES, sensitivity=i % 10 == 0, timeout=60))
    return out


def test_generator_is_reproducible_and_varied():
    a, b = fuzz.generate(SEED, 7), fuzz.generate(SEED, 7)
    assert a.description == b.description and a.features == b.features
    assert [x.shape for x in a.inputs] == [x.shape for x in b.inputs]
    gens = {fuzz.generate(SEED, i).features[0] for i in range(COUNT)}
    assert len(gens) >= 10, gens


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_no_crash_and_no_nonfinite_result(outcomes):
    bad = [
        f"{key} [{' '.join(prog.features)}] {prog.description} on {d}: {o}: {detail}"
        for key, (prog, ev) in outcomes.items()
        for d, (o, detail) in ev["results"].items()
        if o in ("crash", "nonfinite", "timeout")
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_most_programs_predict(outcomes):
    # The generator makes few programs JAX rejects, and perfjax refuses few (with a clear error).
    counts = collections.Counter(fuzz.program_outcome(ev["results"]) for _, ev in outcomes.values())
    assert counts["jax_rejected"] <= COUNT // 10, counts
    assert counts["ok"] >= 0.8 * COUNT, counts


def test_classify_separates_refusals_from_crashes():
    prog = fuzz.generate(SEED, 0)
    err = ValueError("device 'x' cannot run fp8 matrix math")
    try:
        raise KeyError("oops")
    except KeyError as e:
        assert fuzz.classify(e, prog, "h100", {})[0] == "crash"
    assert fuzz.classify(err, prog, "h100", {})[0] == "crash"  # not raised in perfjax's code
    import perfjax

    with pytest.raises(ValueError) as info:
        perfjax.predict(lambda x: x, (fuzz.S((2,), fuzz.jnp.float32),), device="no-such-device")
    assert fuzz.classify(info.value, prog, "h100", {})[0] == "refused"
