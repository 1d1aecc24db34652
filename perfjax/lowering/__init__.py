"""From a JAX function (or StableHLO text) to a costed graph of StableHLO ops.

``trace`` lowers a function to a :class:`Program`; ``analyze`` walks its StableHLO into a
:class:`Graph` through one registry of cost rules keyed by StableHLO op name.
"""

from perfjax.lowering._graph import Graph, Op, analyze, build_graph
from perfjax.lowering._program import Program, trace
from perfjax.lowering._rules import Cost, OpView, lookup, register_cost_rule, registered_ops
from perfjax.lowering._types import TensorType

__all__ = [
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
