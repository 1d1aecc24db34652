"""Tensor types as they appear in StableHLO text (``tensor<2x8xf32>``), with sizes in bytes."""

from __future__ import annotations

import dataclasses
import math
import re

from perfjax._dtypes import MLIR_ELEMENTS, element_bits
from perfjax._errors import UnsupportedProgramError

# StableHLO element type -> NumPy-style name (one table, in perfjax._dtypes).
_ELEMENT_NAMES = MLIR_ELEMENTS

_TENSOR_RE = re.compile(r"^tensor<(?P<body>.*)>$")


@dataclasses.dataclass(frozen=True)
class TensorType:
    """Shape and element type of one value; ``dtype`` uses NumPy names (``float32``, ``bfloat16``).

    Example:
      >>> TensorType.parse("tensor<2x8xbf16>").nbytes
      32
    """

    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def bits(self) -> int:
        # (XLA stores a predicate in one byte.)
        return element_bits(self.dtype)

    @property
    def nbytes(self) -> int:
        """Bytes in memory; sub-byte types are packed, as XLA stores int4."""
        return (self.size * self.bits + 7) // 8

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"

    @staticmethod
    def parse(text: str) -> TensorType:
        """Parses an MLIR type; tokens and other non-tensor types become a 0-byte ``token``."""
        text = text.strip()
        m = _TENSOR_RE.match(text)
        if not m:
            return TensorType((), "token")
        body = m.group("body")
        # Drop an encoding such as `tensor<4xf32, #stablehlo.bounds<...>>`.
        depth = 0
        for i, ch in enumerate(body):
            depth += ch in "<("
            depth -= ch in ">)"
            if ch == "," and depth == 0:
                body = body[:i]
                break
        parts = body.split("x")
        # Element types never contain 'x' except complex<...>, handled by rejoining the tail.
        dims: list[int] = []
        for i, part in enumerate(parts):
            if part.isdigit():
                dims.append(int(part))
            elif part == "?":
                raise UnsupportedProgramError(
                    f"dynamic shape {text}: perfjax costs static shapes only; export the program "
                    "with concrete input shapes."
                )
            else:
                element = "x".join(parts[i:])
                break
        else:
            element = ""
        return TensorType(tuple(dims), _ELEMENT_NAMES.get(element, element))
