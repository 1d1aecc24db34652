"""Precisions and element types: the one table every layer reads.

A *precision* names the arithmetic a device model prices (``fp32``, ``bf16``, ``int8`` ...); an
*element type* is a NumPy-style dtype name as programs carry it (``float32``, ``bfloat16``).

Example:
  >>> DTYPE_PRECISION["bfloat16"], PRECISION_BITS["fp8"]
  ('bf16', 8)
"""

from __future__ import annotations

from perfjax._errors import InputError

#: Precisions a device spec may list peaks for, widest first.
PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")

#: Precisions a ``precision=`` override applies at the model level (a quantized deployment).
QUANTIZED = ("fp8", "int8", "int4")

#: Bits per element of each precision.
PRECISION_BITS = {
    "fp64": 64,
    "fp32": 32,
    "tf32": 32,
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "int8": 8,
    "int4": 4,
}

#: Element type (NumPy-style name) -> the precision its arithmetic runs at.
DTYPE_PRECISION = {
    "float64": "fp64", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int8": "int8", "uint8": "int8",
    "int4": "int4", "uint4": "int4", "tensorfloat32": "tf32",
}  # fmt: skip

#: Floating precisions a program can be re-traced at (its floating inputs cast): precision -> dtype.
CAST_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64"}


def check_precision(precision: str | None) -> None:
    """Raises ``ValueError`` naming the choices when ``precision`` is not ``None`` or one of
    :data:`PRECISIONS`.

    Example:
      >>> check_precision("bf16")
      >>> check_precision("fp12")
      Traceback (most recent call last):
      ...
      perfjax._errors.InputError: unknown precision 'fp12'; expected one of ('fp64', 'fp32', 'tf32', 'bf16', 'fp16', 'fp8', 'int8', 'int4') (or None: as traced).
    """
    if precision is not None and precision not in PRECISIONS:
        raise InputError(
            f"unknown precision {precision!r}; expected one of {PRECISIONS} (or None: as traced)."
        )
