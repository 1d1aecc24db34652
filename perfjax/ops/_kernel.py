"""Marking a region of a program as one hand-written kernel (a Pallas/Triton kernel's stand-in)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import jax

from perfjax._errors import InputError

#: The JAX name scope that marks a region; ``fusion`` groups the region's ops into one kernel.
KERNEL_SCOPE = "perfjax_kernel"
#: Matches a scope path up to and including the marker (one kernel per distinct prefix).
KERNEL_SCOPE_RE = re.compile(rf"^(.*?{KERNEL_SCOPE}\[[\w.\-]+\])")
_NAME = re.compile(r"^[\w.\-]+$")


@contextlib.contextmanager
def fused_kernel(name: str) -> Iterator[None]:
    """Ops traced inside run as one kernel, as a hand-written (Pallas, Triton) kernel does:
    its work is the ops' work (loops included), its memory traffic only what enters and leaves
    the region. Written with ``jax.numpy``, the region still runs and differentiates as usual.

    Use it where the real program calls a fused kernel that XLA could not form from the ops
    (flash attention's score tiles stay on chip). Forward and backward passes of the region
    (and a rematerialised copy) are separate kernels.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> def f(q, k):
      ...     with perfjax.ops.fused_kernel("attention"):
      ...         return jax.nn.softmax(q @ k.T) @ k
      >>> x = jnp.ones((256, 64))
      >>> fused = perfjax.predict(f, (x, x), device="h100")
      >>> len(fused.kernels)
      1
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"fused_kernel name must be letters, digits, '_', '.' or '-', got {name!r}."
        )
    with jax.named_scope(f"{KERNEL_SCOPE}[{name}]"):
        yield


__all__ = ["KERNEL_SCOPE", "KERNEL_SCOPE_RE", "fused_kernel"]
