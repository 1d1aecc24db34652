"""The public surface named in DESIGN.md is importable from the top-level package."""

import doctest

import pytest

import perfjax
import perfjax.executor
import perfjax.lowering
import perfjax.lowering._rules
import perfjax.ops


def test_public_names():
    for name in [
        "run",
        "trace",
        "analyze",
        "Program",
        "Graph",
        "Op",
        "RunResult",
        "TimeStats",
        "ops",
        "register_cost_rule",
        "UnsupportedOpError",
        "StableHLOParseError",
    ]:
        assert hasattr(perfjax, name), name
        assert name in perfjax.__all__
    for name in [
        "matmul",
        "add",
        "relu",
        "conv2d",
        "softmax",
        "layernorm",
        "rmsnorm",
        "gelu",
        "attention",
        "mul",
        "bias_add",
    ]:
        assert callable(getattr(perfjax.ops, name)), name
        assert f"flash.{name}" in perfjax.ops.OP_NAMES


@pytest.mark.parametrize(
    "module",
    [
        perfjax,
        perfjax.ops._ops,
        perfjax.lowering._program,
        perfjax.lowering._graph,
        perfjax.lowering._rules,
        perfjax.lowering._types,
        perfjax.executor,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
