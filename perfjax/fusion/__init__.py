"""Fusion: from a costed op graph to the kernels a device family's compiler would launch.

Example:
  >>> import jax.numpy as jnp, perfjax
  >>> g = perfjax.analyze(lambda x: jnp.tanh(x * 2.0 + 1.0), (jnp.ones((128, 128)),))
  >>> len(fuse(g, "gpu")), len(fuse(g, "none"))   # one loop fusion, or one kernel per op
  (1, 3)
"""

from perfjax.fusion._kernels import (
    KINDS,
    POLICIES,
    FusionPolicy,
    Kernels,
    fuse,
    fusion_policy,
    kernels_for,
    op_class,
)

__all__ = [
    "KINDS",
    "POLICIES",
    "FusionPolicy",
    "Kernels",
    "fuse",
    "fusion_policy",
    "kernels_for",
    "op_class",
]
