"""Flash ops: named tensor operations that stay visible from the jaxpr to the StableHLO.

Each op checks shapes and dtypes when traced, lowers to StableHLO inside a private function named
``flash.<op>`` and differentiates (``jax.grad``) and batches (``jax.vmap``) through JAX's own rules.

Example:
  >>> import jax, jax.numpy as jnp, perfjax.ops as F
  >>> f = lambda x, w: F.relu(F.matmul(x, w))
  >>> "flash.matmul" in str(jax.make_jaxpr(f)(jnp.ones((2, 3)), jnp.ones((3, 4))))
  True
"""

from perfjax.ops._kernel import fused_kernel
from perfjax.ops._ops import (
    FLASH_PREFIX,
    OP_NAMES,
    add,
    attention,
    avg_pool2d,
    bias_add,
    conv2d,
    embedding,
    gelu,
    layernorm,
    matmul,
    max_pool2d,
    mul,
    relu,
    rmsnorm,
    sigmoid,
    silu,
    softmax,
    sub,
    tanh,
)

__all__ = [
    "FLASH_PREFIX",
    "OP_NAMES",
    "add",
    "attention",
    "avg_pool2d",
    "bias_add",
    "conv2d",
    "embedding",
    "fused_kernel",
    "gelu",
    "layernorm",
    "matmul",
    "max_pool2d",
    "mul",
    "relu",
    "rmsnorm",
    "sigmoid",
    "silu",
    "softmax",
    "sub",
    "tanh",
]
