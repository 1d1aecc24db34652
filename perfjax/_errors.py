"""Exceptions raised by perfjax. All derive from built-in types so ``except ValueError`` still works."""

from __future__ import annotations


class StableHLOParseError(ValueError):
    """The text given is not a StableHLO/MLIR module that can be parsed."""


class UnsupportedOpError(ValueError):
    """The module contains ops without a cost rule (listed with their locations)."""

    def __init__(self, message: str, ops: list[tuple[str, str]]):
        super().__init__(message)
        #: ``(op name, location)`` pairs.
        self.ops = ops


class UnsupportedProgramError(ValueError):
    """The module is valid but uses a feature perfjax cannot cost (e.g. dynamic shapes)."""
