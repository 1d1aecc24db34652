"""Exceptions raised by perfjax.

Every one derives from :class:`PerfjaxError` (catch that for anything perfjax refuses) and from
the built-in type it stands for, so ``except ValueError`` still works. Each message names what was
expected, what was given, and the fix.
"""

from __future__ import annotations


class PerfjaxError(Exception):
    """Base class of every error perfjax raises on purpose."""


class InputError(PerfjaxError, ValueError):
    """An argument has a bad value: an unknown precision, fusion policy, objective or device
    name, a negative size, inputs that do not match the function."""


class PlatformError(PerfjaxError, ValueError):
    """A platform (built-in name, file or mapping) is unknown or malformed: a missing device, a
    link with a non-positive bandwidth, an unknown topology."""


class StableHLOParseError(PerfjaxError, ValueError):
    """The text given is not a StableHLO/MLIR module that can be parsed."""


class UnsupportedOpError(PerfjaxError, ValueError):
    """The module contains ops without a cost rule (listed with their locations)."""

    def __init__(self, message: str, ops: list[tuple[str, str]]):
        super().__init__(message)
        #: ``(op name, location)`` pairs.
        self.ops = ops


class UnsupportedProgramError(PerfjaxError, ValueError):
    """The module is valid but uses a feature perfjax cannot cost (e.g. dynamic shapes)."""


class DeviceSpecError(PerfjaxError, ValueError):
    """A device spec (built in code, read from a file or given to ``predict``) has a bad value:
    a negative, zero, NaN or infinite rate, size or latency. The message names every bad field,
    its value and what is expected."""


class CalibrationError(PerfjaxError, ValueError):
    """A calibration (built in code or read from a file) is malformed: a missing key, an unknown
    parameter, a non-finite value, an inverted interval. The message names the file, the key and
    the value."""


class HostCallbackError(UnsupportedProgramError):
    """The module calls back into Python (``jax.pure_callback``, ``jax.debug.print`` ...); a module
    read from text has no Python function to call, so it cannot be run."""


class InputMemoryError(PerfjaxError, MemoryError):
    """The random inputs asked for do not fit in the memory available on this machine."""


class PrecisionCastError(PerfjaxError, ValueError):
    """Re-tracing a function with its floating inputs cast to a precision failed in JAX."""
