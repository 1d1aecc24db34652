"""perfjax: see, run and cost tensor programs written in JAX.

Example:
  >>> import jax.numpy as jnp, perfjax
  >>> f = lambda x, w: perfjax.ops.relu(perfjax.ops.matmul(x, w))
  >>> perfjax.analyze(f, (jnp.ones((4, 8)), jnp.ones((8, 2)))).flops
  136.0
"""

from perfjax import ops
from perfjax._errors import (
    CalibrationError,
    DeviceSpecError,
    HostCallbackError,
    InputError,
    InputMemoryError,
    PerfjaxError,
    PlatformError,
    PrecisionCastError,
    StableHLOParseError,
    UnsupportedOpError,
    UnsupportedProgramError,
)
from perfjax._recommend import Recommendation, recommend
from perfjax._version import __version__
from perfjax.devicemodels import DeviceSpec, device, devices
from perfjax.executor import RunResult, TimeStats, materialize, run
from perfjax.lowering import Graph, Op, Program, TensorType, analyze, register_cost_rule, trace
from perfjax.prediction import (
    Comparison,
    MemoryEstimate,
    Prediction,
    compare,
    memory_estimate,
    predict,
    sensitivity,
)


def __getattr__(name: str):
    # perfjax.models imports flax (~1 s) and perfjax.placement optax and pandas: loaded on
    # first use.
    if name in ("models", "placement"):
        import importlib

        return importlib.import_module(f"perfjax.{name}")
    raise AttributeError(f"module 'perfjax' has no attribute {name!r}")


__all__ = [
    "CalibrationError",
    "Comparison",
    "DeviceSpec",
    "DeviceSpecError",
    "Graph",
    "HostCallbackError",
    "InputError",
    "InputMemoryError",
    "MemoryEstimate",
    "Op",
    "PerfjaxError",
    "PlatformError",
    "PrecisionCastError",
    "Prediction",
    "Program",
    "Recommendation",
    "RunResult",
    "StableHLOParseError",
    "TensorType",
    "TimeStats",
    "UnsupportedOpError",
    "UnsupportedProgramError",
    "__version__",
    "analyze",
    "compare",
    "device",
    "devices",
    "materialize",
    "memory_estimate",
    "models",
    "ops",
    "placement",
    "predict",
    "recommend",
    "register_cost_rule",
    "run",
    "sensitivity",
    "trace",
]
