"""Programs as costed: traced at a precision, lowered for a platform, analysed into a graph.

Traces are cached per function, input signature, precision, platform and the JAX settings that
change a trace; graphs per program. A quantized precision (int8/fp8/int4) re-traces at bf16.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.stages
import numpy as np

from perfjax._dtypes import CAST_DTYPES, QUANTIZED
from perfjax._errors import InputError, PrecisionCastError
from perfjax.lowering._graph import Graph, build_graph
from perfjax.lowering._program import (
    Program,
    abstractify,
    check_inputs,
    check_platform,
    program_from_traced,
    signature,
    trace,
    trace_name,
    trace_stage,
)

_CAST = {p: jnp.dtype(d) for p, d in CAST_DTYPES.items()}

# Analyses are cached per Program object (and traces per function, signature, platform, config).
_graphs: weakref.WeakKeyDictionary[Program, dict[Any, Graph]] = weakref.WeakKeyDictionary()
_traces: collections.OrderedDict[Any, Program] = collections.OrderedDict()
# One trace (jax.stages.Traced) per function, signature, precision and config, lowered per platform.
_staged: collections.OrderedDict[Any, tuple] = collections.OrderedDict()
_TRACE_CACHE_SIZE = 64


def _config_key() -> tuple[Any, ...]:
    """JAX settings that change what a trace produces (a ``with jax.default_matmul_precision``
    block, x64 mode, the PRNG implementation ...): part of every trace-cache key."""
    from jax._src import config as jc

    names = ("default_matmul_precision", "enable_x64", "default_prng_impl",
             "threefry_partitionable", "numpy_dtype_promotion", "numpy_rank_promotion")  # fmt: skip
    out = []
    for n in names:
        state = getattr(jc, n, None)
        value = getattr(state, "value", None)
        out.append(value if isinstance(value, (str, int, float, bool, type(None))) else str(value))
    return tuple(out)


def _cast_inputs(inputs: tuple[Any, ...], precision: str) -> tuple[Any, ...]:
    dtype = _CAST[precision]

    def cast(x: Any) -> Any:
        if jnp.issubdtype(x.dtype, jnp.floating):
            return jax.ShapeDtypeStruct(x.shape, dtype)
        return x

    return jax.tree_util.tree_map(cast, abstractify(inputs))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().split("\n")[0]
    return f"{type(e).__name__}: {text[:300]}"


def program_for(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None,
    precision: str | None,
    platform: str | None = None,
) -> Program:
    """The program to cost: traced (cached per function, input signature, platform, precision and
    the JAX config that changes traces) and lowered for ``platform``.

    ``precision`` in fp32/bf16/fp16/fp64 re-traces with floating inputs cast; if JAX rejects the
    cast program (e.g. an FFT of bf16, a conv mixing dtypes), :class:`PrecisionCastError` names
    the precision and what JAX said (a prediction at a precision the program cannot run at
    would be wrong); fp64 needs ``jax_enable_x64`` (JAX would otherwise silently trace fp32). A
    quantized precision (int8/fp8/int4) re-traces at bf16 (quantized GEMMs, bf16 elsewhere, as
    quantized deployments run); if that bf16 re-trace fails, the program is kept as traced (the
    GEMMs are still costed at the quantized precision) and ``Program.notes`` says so.

    ``platform`` (``cpu``, ``cuda``, ``rocm``, ``tpu``; ``None``: as given, CPU for a function):
    a function or a traced Program is lowered for it; if JAX cannot lower the program for it
    (a CPU-only custom call or a host callback) the CPU lowering is used and ``Program.notes``
    says so. A Program read from text (or a ``jax.stages.Lowered``) is used as is.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.ShapeDtypeStruct((64, 1024), jnp.float32)
      >>> program_for(jnp.sin, (x,), "bf16", "tpu").in_types[0].dtype
      'bfloat16'
    """
    if platform is not None:
        platform = check_platform(platform)
    if isinstance(fn_or_program, str):
        fn_or_program = Program.from_stablehlo(fn_or_program)
    elif isinstance(fn_or_program, (jax.stages.Lowered, jax.stages.Traced)):
        fn_or_program = trace(fn_or_program)  # then re-lowered (Traced) or noted (Lowered) below
    if isinstance(fn_or_program, Program):
        return _program_for_program(fn_or_program, precision, platform)
    if not callable(fn_or_program):
        raise TypeError(
            f"expected a function, a Program, a jax.stages.Traced/Lowered or StableHLO text, got "
            f"{type(fn_or_program).__name__}."
        )
    if inputs is None:
        trace_stage(fn_or_program, None)  # a clear error when the function takes arguments
    inputs = check_inputs(inputs)
    platform = platform or "cpu"
    if precision == "fp64" and not jax.config.jax_enable_x64:
        raise PrecisionCastError(
            "precision='fp64' re-traces with float64 inputs, but jax_enable_x64 is off, so JAX "
            "would trace float32 instead; enable it with jax.config.update('jax_enable_x64', True)."
        )
    traced_inputs = inputs
    if precision in _CAST:
        traced_inputs = _cast_inputs(inputs, precision)
    elif precision in QUANTIZED:
        traced_inputs = _cast_inputs(inputs, "bf16")
    try:
        trace_key = (fn_or_program, signature(traced_inputs), precision, _config_key())
        hash(trace_key)
    except TypeError:
        trace_key = None
    key = None if trace_key is None else (*trace_key, platform)
    if key is not None and key in _traces:
        _traces.move_to_end(key)
        return _traces[key]
    staged = _staged.get(trace_key) if trace_key is not None else None
    if staged is None:
        staged = _stage(fn_or_program, inputs, traced_inputs, precision)
        if trace_key is not None:
            _staged[trace_key] = staged
            while len(_staged) > _TRACE_CACHE_SIZE:
                _staged.popitem(last=False)
    else:
        _staged.move_to_end(trace_key)
    program = _lower_with_fallback(*staged, trace_name(fn_or_program), platform)
    if key is not None:
        _traces[key] = program
        while len(_traces) > _TRACE_CACHE_SIZE:
            _traces.popitem(last=False)
    return program


def _stage(
    fn: Callable, inputs: tuple[Any, ...], traced_inputs: tuple[Any, ...], precision: str | None
) -> tuple[Callable, Any, tuple[Any, ...], tuple[str, ...]]:
    """Traces ``fn`` once (for every platform): ``(jitted, traced, abstract inputs, notes)``."""
    try:
        return (*trace_stage(fn, traced_inputs), ())
    except Exception as e:
        if precision in _CAST:
            raise PrecisionCastError(
                f"precision={precision!r} re-traces {trace_name(fn)} with every floating input "
                f"cast to {np.dtype(_CAST[precision]).name}, and JAX rejected that "
                f"({_first_line(e)}). Predict with precision=None (as traced), or trace the "
                "function at the dtypes it accepts."
            ) from e
        if precision not in QUANTIZED or traced_inputs is inputs:
            raise
        # The bf16 re-trace of a quantized precision failed: keep the program as traced.
        note = (
            f"precision={precision!r}: the program could not be re-traced with bf16 inputs "
            f"({_first_line(e)}); it is costed as traced, with GEMMs/convs at {precision}."
        )
        return (*trace_stage(fn, inputs), (note,))


def _lower_with_fallback(
    jitted: Callable, traced: Any, specs: tuple[Any, ...], notes: tuple[str, ...], name: str,
    platform: str,
) -> Program:  # fmt: skip
    """``traced`` lowered for ``platform``, or for the CPU (with a note) when JAX cannot."""
    try:
        return program_from_traced(jitted, traced, specs, name, platform, notes)
    except Exception as e:
        if platform == "cpu":
            raise
        note = _fallback_note(name, platform, e)
        return program_from_traced(jitted, traced, specs, name, "cpu", (*notes, note))


def _fallback_note(name: str, platform: str, e: BaseException) -> str:
    return (
        f"JAX could not lower {name} for {platform} ({_first_line(e)}); it is costed as lowered "
        "for the CPU."
    )


def _program_for_program(program: Program, precision: str | None, platform: str | None) -> Program:
    if precision in _CAST or precision in QUANTIZED:
        if program.fn is not None and program.example_inputs is not None:
            target = platform or program.platform
            return program_for(program.fn, program.example_inputs, precision, target)
        if precision in _CAST:
            raise InputError(
                f"precision={precision!r} re-traces the program with cast inputs, but this Program was "
                "read from StableHLO text (or given lowered); trace it at that precision yourself, or "
                f"pass a quantized precision ({', '.join(QUANTIZED)}) which applies at the model level."
            )
    if platform is None or platform == program.platform:
        return program
    cache = program._relowered
    if ("as costed", platform) in cache:
        return cache["as costed", platform]
    if program.traced is not None:
        try:
            out = program.for_platform(platform)
        except Exception as e:
            cpu = program.for_platform("cpu")
            out = dataclasses.replace(
                cpu, notes=(*cpu.notes, _fallback_note(program.name, platform, e))
            )
    else:
        source = "read from StableHLO text" if program.lowered is None else "given already lowered"
        where = f"for {program.platform}" if program.platform else "by its exporter"
        note = (
            f"{program.name} was {source} and is costed as lowered {where}, not re-lowered for "
            f"{platform}."
        )
        out = dataclasses.replace(program, notes=(*program.notes, note))
    cache["as costed", platform] = out
    return out


def graph_for(
    program: Program, *, on_unsupported: str = "error", loop_trips: int | None = None
) -> Graph:
    """The program's costed graph (cached per program, ``on_unsupported`` and ``loop_trips``)."""
    table = _graphs.setdefault(program, {})
    key = (on_unsupported, loop_trips)
    if key not in table:
        with warnings.catch_warnings():
            # predict reports unmodeled ops itself, on every call (a cached graph would not warn).
            warnings.simplefilter("ignore", UserWarning)
            table[key] = build_graph(program, on_unsupported=on_unsupported, loop_trips=loop_trips)
    return table[key]
