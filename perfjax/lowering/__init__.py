"""From a JAX function (or StableHLO text) to a costed graph of StableHLO ops.

``trace`` lowers a function to a :class:`Program` for a JAX platform (cpu, cuda, rocm, tpu); ``analyze`` walks its StableHLO into a
:class:`Graph` through one registry of cost rules keyed by StableHLO op name.
"""

from perfjax.lowering._graph import Graph, Op, analyze, build_graph
from perfjax.lowering._program import PLATFORMS, Program, trace
from perfjax.lowering._rules import (
    EXCLUDED_OPS,
    Cost,
    OpView,
    lookup,
    register_cost_rule,
    registered_ops,
)
from perfjax.lowering._types import TensorType

__all__ = [
    "EXCLUDED_OPS",
    "PLATFORMS",
    "Cost",
    "Graph",
    "Op",
    "OpView",
    "Program",
    "TensorType",
    "analyze",
    "build_graph",
    "lookup",
    "register_cost_rule",
    "registered_ops",
    "trace",
]
