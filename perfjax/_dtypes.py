"""Precisions and element types: the one table every layer reads.

A *precision* names the arithmetic a device model prices (``fp32``, ``bf16``, ``int8`` ...); an
*element type* is a NumPy-style dtype name as programs carry it (``float32``, ``bfloat16``).

Example:
  >>> DTYPE_PRECISION["bfloat16"], PRECISION_BITS["fp8"]
  ('bf16', 8)
"""

from __future__ import annotations

import functools
import re

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


#: StableHLO's element types -> NumPy-style names.
MLIR_ELEMENTS = {
    "f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16", "tf32": "tensorfloat32",
    "i1": "bool",
    **{f"i{b}": f"int{b}" for b in (2, 4, 8, 16, 32, 64)},
    **{f"ui{b}": f"uint{b}" for b in (2, 4, 8, 16, 32, 64)},
    "complex<f32>": "complex64", "complex<f64>": "complex128",
}  # fmt: skip

#: Short element-type names as StableHLO (``i8``, ``ui8``, ``complex<f32>``), HLO text (``s8``,
#: ``u8``, ``pred``, ``c64``) and the command line (``f32``, ``i8``, ``bool``) write them ->
#: NumPy-style names.
SHORT_NAMES = {
    **MLIR_ELEMENTS,
    "pred": "bool", "bool": "bool", "c64": "complex64", "c128": "complex128",
    **{f"s{b}": f"int{b}" for b in (2, 4, 8, 16, 32, 64)},
    **{f"u{b}": f"uint{b}" for b in (2, 4, 8, 16, 32, 64)},
}  # fmt: skip

# Bits of the names whose width is not the number in their name (a predicate is one byte).
_ELEMENT_BITS = {"bfloat16": 16, "tensorfloat32": 32, "bool": 8, "complex64": 64, "complex128": 128}


def element_name(short: str) -> str:
    """The NumPy-style name of a short element-type name; other names as given.

    Example:
      >>> element_name("s8"), element_name("ui4"), element_name("pred"), element_name("float32")
      ('int8', 'uint4', 'bool', 'float32')
    """
    return SHORT_NAMES.get(short, short)


@functools.cache  # read for every tensor of every costed op
def element_bits(name: str) -> int:
    """Bits per element of a NumPy-style (or short) element type; 0 when unknown.

    Example:
      >>> element_bits("bfloat16"), element_bits("int4"), element_bits("f8e4m3fn"), element_bits("c64")
      (16, 4, 8, 64)
    """
    name = element_name(name)
    if name in _ELEMENT_BITS:
        return _ELEMENT_BITS[name]
    digits = re.search(r"(\d+)", name)
    return int(digits.group(1)) if digits else 0


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
