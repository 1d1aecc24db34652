"""perfjax's counts against XLA's own HloCostAnalysis, for every case in cost_cases.cases().

Three references, all computed by XLA on the same program:
* ``lowered.cost_analysis()``: XLA's analysis of the unoptimized module, i.e. the same ops
  perfjax walks. Flops and transcendentals must agree to 0.1%.
* ``compiled.cost_analysis()``: after XLA's CPU optimizations. Flops must agree to 1%, except
  where the optimizer adds work (listed in COMPILED_EXCEPTIONS with the reason and the measured
  ratio); there the compiled count must exceed perfjax's, never the other way round.
* bytes: XLA's unoptimized module counts a transpose as free and a reshape as a copy (they are
  bitcasts or not before layout assignment); perfjax counts the reverse (in row-major memory a
  reshape is a relabelling and a transpose a copy). After moving those two op kinds to XLA's
  convention the totals must agree to 10%.
"""

from __future__ import annotations

import functools

import pytest
from cost_cases import cases, xla_counts

import perfjax

# case-name prefix -> (perfjax / compiled flops measured on jax 0.10.2, why XLA counts more)
COMPILED_EXCEPTIONS = {
    "layernorm": (
        0.875,
        "XLA's CPU fusion recomputes the centered input x - mean inside both consumer fusions "
        "(variance and output): one extra flop per element",
    ),
    "attention (2, 16, 4, 8) causal=False": (
        0.972,
        "at this tiny size XLA splits the softmax reductions and recomputes the shifted scores in "
        "two fusions",
    ),
}


@functools.cache
def _all():
    return cases()


@functools.cache
def _measure(name):
    fn, inputs = _all()[name]
    graph = perfjax.analyze(fn, inputs)
    compiled, lowered = xla_counts(fn, inputs)
    return graph, compiled, lowered


NAMES = list(_all())


def test_cases_cover_what_the_issue_names():
    names = " ".join(NAMES)
    for needed in [
        "matmul",
        "add",
        "relu",
        "conv2d",
        "softmax",
        "layernorm",
        "rmsnorm",
        "gelu",
        "attention",
        "MLP",
        "conv block",
        "transformer block",
        "flax.linen",
        "flax.nnx",
    ]:
        assert needed in names, needed
    # Each Flash op at several shapes.
    for op in ["matmul", "relu", "softmax", "layernorm", "conv2d", "attention"]:
        assert sum(n.startswith(op + " ") for n in NAMES) >= 3, op


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_flops_equal_xla_unoptimized(name):
    graph, _, lowered = _measure(name)
    assert _rel(graph.flops, lowered.get("flops", 0.0)) <= 1e-3, (graph.flops, lowered.get("flops"))
    assert _rel(graph.transcendentals, lowered.get("transcendentals", 0.0)) <= 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_flops_equal_xla_compiled(name):
    graph, compiled, _ = _measure(name)
    xla = compiled.get("flops", 0.0)
    exception = next((v for k, v in COMPILED_EXCEPTIONS.items() if name.startswith(k)), None)
    if exception is None:
        assert _rel(graph.flops, xla) <= 0.01, f"perfjax {graph.flops} vs XLA compiled {xla}"
    else:
        ratio, _why = exception
        # The optimizer only ever adds work here, by the documented amount.
        assert graph.flops < xla
        assert graph.flops / xla == pytest.approx(ratio, abs=0.01)
    assert _rel(graph.transcendentals, compiled.get("transcendentals", 0.0)) <= 0.01


@pytest.mark.parametrize("name", NAMES)
def test_bytes_match_xla_after_layout_convention(name):
    graph, _, lowered = _measure(name)
    transposes = sum(o.bytes * o.executions for o in graph.ops if o.short_name == "transpose")
    reshapes = sum(
        sum(t.nbytes for t in o.operands + o.results) * o.executions
        for o in graph.ops
        if o.short_name == "reshape"
    )
    # Ops on constants alone are folded (free), as XLA's optimizer folds them; the unoptimized
    # module still counts their operands and results.
    folded = sum(
        sum(t.nbytes for t in o.operands + o.results) * o.executions
        for o in graph.ops
        if o.features.get("folded")
    )
    adjusted = graph.bytes - transposes + reshapes + folded
    assert _rel(adjusted, lowered["bytes accessed"]) <= 0.10, (
        graph.bytes,
        adjusted,
        lowered["bytes accessed"],
    )
