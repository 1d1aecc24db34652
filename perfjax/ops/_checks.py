"""Trace-time argument checks shared by the Flash ops.

Every check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape or option)
with a message naming the op, the argument, what was expected, what was given, and a fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: Floating dtypes every Flash op accepts.
FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64)
#: Integer dtypes accepted by ``matmul`` and ``conv2d`` (accumulated in int32).
INT_DTYPES = (jnp.int8,)

_FLOAT_NAMES = "float32, bfloat16, float16 (float64 with jax_enable_x64)"


def as_array(op: str, name: str, x: Any) -> jax.Array:
    """Returns ``x`` as an array (or tracer), or raises a ``TypeError`` naming the argument."""
    if isinstance(x, (jax.Array, np.ndarray, np.generic)) or hasattr(x, "aval"):
        return x
    if isinstance(x, jax.ShapeDtypeStruct):
        raise TypeError(
            f"flash.{op}: argument '{name}' is a jax.ShapeDtypeStruct, which has no values. "
            "Call the op inside a traced function (perfjax.trace / perfjax.analyze / jax.jit) "
            "or pass a real array."
        )
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return jnp.asarray(x)
    raise TypeError(
        f"flash.{op}: argument '{name}' must be an array (jax.Array or numpy.ndarray), "
        f"got {type(x).__name__}: {x!r:.80}. Convert it with jnp.asarray(...)."
    )


def check_dtype(
    op: str, name: str, x: jax.Array, allowed: Iterable[Any], allowed_text: str = ""
) -> None:
    allowed = tuple(np.dtype(a) for a in allowed)
    if np.dtype(x.dtype) not in allowed:
        text = allowed_text or ", ".join(str(a) for a in allowed)
        raise TypeError(
            f"flash.{op}: argument '{name}' has dtype {x.dtype}; expected one of: {text}. "
            f"Cast it first, e.g. {name}.astype(jnp.{allowed[0].name})."
        )


def check_float(op: str, name: str, x: jax.Array) -> None:
    check_dtype(op, name, x, FLOAT_DTYPES, _FLOAT_NAMES)


def check_same_dtype(op: str, **arrays: jax.Array) -> None:
    dtypes = {n: np.dtype(a.dtype) for n, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        given = ", ".join(f"{n}: {d}" for n, d in dtypes.items())
        raise TypeError(
            f"flash.{op}: all arguments must have the same dtype, got {given}. "
            "Flash ops never promote silently; cast one of them with .astype(...)."
        )


def check_rank(op: str, name: str, x: jax.Array, ranks: Iterable[int], meaning: str = "") -> None:
    ranks = tuple(ranks)
    if x.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(
            f"flash.{op}: argument '{name}' must have rank {want}{extra}, "
            f"got rank {x.ndim} with shape {tuple(x.shape)}."
        )


def check_min_rank(op: str, name: str, x: jax.Array, min_rank: int, meaning: str = "") -> None:
    if x.ndim < min_rank:
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(
            f"flash.{op}: argument '{name}' must have rank >= {min_rank}{extra}, "
            f"got rank {x.ndim} with shape {tuple(x.shape)}."
        )


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"flash.{op}: axis must be an int, got {type(axis).__name__}: {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"flash.{op}: axis {axis} is out of range for an input of rank {ndim} "
            f"(valid: {-ndim} .. {ndim - 1})."
        )
    return int(axis) % ndim


def broadcast_shapes(
    op: str, a: jax.Array, b: jax.Array, names: tuple[str, str] = ("a", "b")
) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ValueError:
        raise ValueError(
            f"flash.{op}: shapes {tuple(a.shape)} ('{names[0]}') and {tuple(b.shape)} ('{names[1]}') "
            "do not broadcast (NumPy rules: trailing dimensions must be equal or 1)."
        ) from None


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def int_pair(value: Any) -> tuple[int, int]:
    """An int ``p`` as ``(p, p)``, or a pair of ints; floats or other lengths raise ValueError."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"expected an int or a pair of ints, got {value!r}")


def pair(op: str, name: str, value: Any) -> tuple[int, int]:
    """Expands an int or a pair of ints (stride, dilation) into a pair of positive ints."""
    try:
        h, w = int_pair(value)
    except ValueError:
        raise TypeError(
            f"flash.{op}: {name} must be an int or a pair of ints, got {value!r}."
        ) from None
    if h < 1 or w < 1:
        raise ValueError(f"flash.{op}: {name} must be positive, got {(h, w)}.")
    return h, w


def positive_float(op: str, name: str, value: Any) -> float:
    """A non-negative Python float from ``value`` (eps and scales), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(
            f"flash.{op}: {name} must be a number, got {type(value).__name__} {value!r}."
        )
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"flash.{op}: {name} must be a finite number >= 0, got {value!r}.")
    return float(value)
