"""Running programs for real on this machine's CPU through XLA, and timing them honestly.

Timing protocol (``run``):

1. compile once per input signature (cached; ``compile_s`` is reported apart);
2. warm up: at least one call, more until ``warmup_s`` has passed;
3. sample: each sample times ``number`` back-to-back calls, each call blocked until its outputs
   are ready (so nothing is hidden by asynchronous dispatch). ``number`` is chosen so one sample
   lasts about ``sample_s``, which keeps the clock's resolution out of microsecond-scale results;
4. stop when the 95% confidence interval of the median (from order statistics) is within
   ``rtol`` of the median, after at least ``min_repeats`` samples, or when ``max_time_s`` is spent.
   ``TimeStats.stable`` says which one ended it.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from perfjax._display import fmt_time
from perfjax._errors import HostCallbackError, InputError, InputMemoryError
from perfjax.lowering._program import Program, check_inputs, signature, trace


@dataclasses.dataclass(frozen=True)
class TimeStats:
    """Wall-clock time per call, over ``repeats`` samples of ``number`` calls each.

    Example:
      >>> s = TimeStats.from_samples([1e-3, 2e-3, 3e-3], number=1)
      >>> s.median_s, s.min_s
      (0.002, 0.001)
    """

    median_s: float
    min_s: float
    p90_s: float
    mean_s: float
    std_s: float
    repeats: int
    #: Calls per sample (each sample's time is divided by it).
    number: int
    #: Half-width of the median's 95% confidence interval, relative to the median.
    rel_ci: float
    #: True when the stopping rule was met, False when the time budget ran out first.
    stable: bool
    samples_s: tuple[float, ...] = dataclasses.field(repr=False, default=())

    @staticmethod
    def from_samples(samples_s: Sequence[float], number: int = 1, stable: bool = True) -> TimeStats:
        x = np.sort(np.asarray(samples_s, dtype=np.float64))
        if x.size == 0:
            raise InputError("no timing samples")
        return TimeStats(
            median_s=float(np.median(x)),
            min_s=float(x[0]),
            p90_s=float(np.percentile(x, 90)),
            mean_s=float(x.mean()),
            std_s=float(x.std(ddof=1)) if x.size > 1 else 0.0,
            repeats=int(x.size),
            number=int(number),
            rel_ci=_median_rel_ci(x),
            stable=bool(stable),
            samples_s=tuple(float(v) for v in samples_s),
        )

    def __str__(self) -> str:

        flag = "" if self.stable else " (not stable: time budget reached)"
        return (
            f"median {fmt_time(self.median_s)} (min {fmt_time(self.min_s)}, p90 {fmt_time(self.p90_s)}, "
            f"±{100 * self.rel_ci:.1f}% 95% CI; {self.repeats} samples x {self.number} calls){flag}"
        )


def _median_rel_ci(sorted_x: np.ndarray) -> float:
    """Relative half-width of a distribution-free 95% CI of the median (order statistics)."""
    n = sorted_x.size
    if n < 3:
        return math.inf
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half))
    med = float(np.median(sorted_x))
    return float(sorted_x[hi] - sorted_x[lo]) / (2 * med) if med > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outputs and timing of one ``perfjax.run``.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> r = perfjax.run(lambda x: x * 2, (jnp.ones(3),), max_time_s=0.05)
      >>> r.outputs.tolist(), r.time.median_s > 0
      ([2.0, 2.0, 2.0], True)
    """

    outputs: Any
    time: TimeStats
    #: XLA compile time for this signature (0 when it came from the cache).
    compile_s: float
    #: Tracing + lowering time (0 when cached).
    lower_s: float
    cached: bool
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        t = self.time
        return dict(
            name=self.name,
            median_s=t.median_s,
            min_s=t.min_s,
            p90_s=t.p90_s,
            mean_s=t.mean_s,
            std_s=t.std_s,
            repeats=t.repeats,
            number=t.number,
            rel_ci=t.rel_ci,
            stable=t.stable,
            compile_s=self.compile_s,
            lower_s=self.lower_s,
            cached=self.cached,
        )

    def __str__(self) -> str:

        src = "cache" if self.cached else f"compiled in {fmt_time(self.compile_s)}"
        return f"perfjax.run {self.name}: {self.time} ({src})"


# ---------------------------------------------------------------------------------------------
# compilation cache
# ---------------------------------------------------------------------------------------------

_CACHE_SIZE = 64
_cache: collections.OrderedDict[Any, tuple[Callable, Any]] = collections.OrderedDict()


def clear_cache() -> None:
    """Forgets every compiled executable."""
    _cache.clear()


def _compile_fn(fn: Callable, inputs: tuple[Any, ...]) -> tuple[Callable, float, float, bool]:
    key = (fn, signature(inputs))
    try:
        hit = _cache.get(key)
    except TypeError:  # unhashable callable: no caching
        hit, key = None, None
    if hit is not None:
        _cache.move_to_end(key)
        return hit[0], 0.0, 0.0, True
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    lowered = jitted.lower(*inputs)
    t1 = time.perf_counter()
    lowered.compile()  # fills jit's own cache, so the timed calls below reuse this executable
    t2 = time.perf_counter()
    if key is not None:
        _cache[key] = (jitted, None)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return jitted, t2 - t1, t1 - t0, False


#: custom_call targets that call back into the Python interpreter (jax.pure_callback, io_callback,
#: jax.debug.print/callback, host_callback): they look up a Python function registered when jax
#: lowered the module, which a module read from text does not have.
_CALLBACK_TARGET = re.compile(
    r"""(?:@|call_target_name\s*=\s*"|custom_call_target\s*=\s*")"""
    r"""(xla_(?:ffi_)?python_(?:cpu|gpu|tpu)_callback|[\w.]*python[\w.]*callback[\w.]*)"""
)


def host_callbacks(stablehlo: str) -> list[str]:
    """Names of the Python host-callback custom_call targets used by a StableHLO module.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> def f(x):
      ...     jax.debug.print("{x}", x=x)
      ...     return x + 1
      >>> host_callbacks(jax.jit(f).lower(jnp.ones(3)).as_text())
      ['xla_ffi_python_cpu_callback']
      >>> host_callbacks(jax.jit(lambda x: x + 1).lower(jnp.ones(3)).as_text())
      []
    """
    return sorted(set(_CALLBACK_TARGET.findall(stablehlo)))


def check_runnable(program: Program) -> None:
    """Refuses, before compiling, a program read from text that calls back into Python.

    The callback's Python function lives only in the process that lowered the module; XLA would
    call a missing function and crash the interpreter. (Running the *function* works: jax keeps
    its callbacks.) Raises :class:`~perfjax._errors.HostCallbackError`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> text = jax.jit(lambda x: x + 1).lower(jnp.ones(3)).as_text()
      >>> check_runnable(Program.from_stablehlo(text)) is None
      True
    """
    if program.fn is not None or program.lowered is not None:
        return
    targets = host_callbacks(program.stablehlo)
    if targets:
        raise HostCallbackError(
            f"program {program.name!r} calls back into Python (custom_call {', '.join(targets)}: "
            "jax.pure_callback, jax.debug.print or io_callback), and a module read from StableHLO "
            "text has no Python function to call, so it cannot be run. Run the JAX function itself "
            "(perfjax.run(fn, inputs)), or export the module without callbacks; analyze and "
            "predict still work on it."
        )


def _program_callable(program: Program, inputs: tuple[Any, ...]) -> tuple[Callable, float, bool]:
    """A callable for a Program read from StableHLO: flat arrays in, flat outputs out."""
    check_runnable(program)
    leaves = jax.tree_util.tree_leaves(inputs)
    if len(leaves) != len(program.in_types):
        raise InputError(
            f"program {program.name!r} takes {len(program.in_types)} inputs "
            f"({', '.join(map(str, program.in_types))}), got {len(leaves)}."
        )
    for i, (x, t) in enumerate(zip(leaves, program.in_types, strict=True)):
        shape, dtype = tuple(np.shape(x)), str(np.dtype(x.dtype))
        if shape != t.shape or dtype != t.dtype:
            raise InputError(
                f"input {i} of program {program.name!r} must be {t}, got {dtype}[{','.join(map(str, shape))}]."
            )
    cached = "compiled" in program.__dict__
    t0 = time.perf_counter()
    exe = program.compiled
    compile_s = 0.0 if cached else time.perf_counter() - t0
    if isinstance(exe, jax.stages.Compiled):
        # A program from jax.stages.Lowered: JAX's own executable takes the flat arrays.
        def call_compiled(*arrays):
            return jax.tree_util.tree_leaves(exe(*arrays))

        return call_compiled, compile_s, cached
    execute = exe.execute_sharded

    def call(*arrays):
        return [o[0] for o in execute(list(arrays)).disassemble_into_single_device_arrays()]

    return call, compile_s, cached


#: Environment variable that caps the memory (bytes) random inputs may take, e.g. for tests or
#: shared machines; without it the limit is the memory the OS reports as available.
MEMORY_LIMIT_ENV = "PERFJAX_MEMORY_LIMIT_BYTES"


def available_memory_bytes() -> float:
    """Memory random inputs may use: ``$PERFJAX_MEMORY_LIMIT_BYTES`` if set, else the OS's
    available memory (``MemAvailable`` of ``/proc/meminfo``, or ``sysconf``), else ``inf``.

    Example:
      >>> available_memory_bytes() > 0
      True
    """
    env = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if env:
        try:
            value = float(env)
        except ValueError:
            value = math.nan
        if not (value >= 0 and math.isfinite(value)):
            raise InputError(
                f"${MEMORY_LIMIT_ENV} must be a number of bytes >= 0 (e.g. 8e9), got {env!r}."
            )
        return value
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _gib(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``74.5 GiB``, ``3.81 MiB``)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"


def _draw_bytes(dt: np.dtype, size: int) -> int:
    """Peak bytes to draw ``size`` random values of ``dt`` (the result plus a float32 draw when
    the dtype has no generator of its own, as bfloat16 and float8 do not)."""
    native = dt == np.bool_ or np.issubdtype(dt, np.integer) or dt in (np.float32, np.float64)
    return size * dt.itemsize + (0 if native else size * 4 * (2 if dt.kind == "c" else 1))


def _random(rng: np.random.Generator, shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """Random data drawn directly in ``dt`` (no float64 intermediate)."""
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape, dtype=np.bool_)
    if np.issubdtype(dt, np.integer):
        return rng.integers(0, 8, size=shape, dtype=dt)
    if dt in (np.float32, np.float64):
        data = rng.random(shape, dtype=dt)
    else:  # float16, bfloat16, float8, complex: draw float32 then cast
        data = rng.random(shape, dtype=np.float32)
    data *= 2
    data -= 1
    return data.astype(dt, copy=False)


def materialize(
    inputs: tuple[Any, ...], seed: int = 0, *, memory_limit_bytes: float | None = None
) -> tuple[Any, ...]:
    """Replaces each ``jax.ShapeDtypeStruct`` by deterministic random data of that shape and dtype.

    Floats are uniform in [-1, 1); integers in [0, 8) (valid indices for small tables); bools
    are fair coin flips. Data is drawn in the target dtype (bfloat16 and float8 via float32), and
    inputs that would not fit in ``memory_limit_bytes`` (default: :func:`available_memory_bytes`)
    are refused with :class:`~perfjax._errors.InputMemoryError` before anything is allocated.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> materialize((jax.ShapeDtypeStruct((2, 3), jnp.float32),))[0].shape
      (2, 3)
      >>> try:
      ...     materialize((jax.ShapeDtypeStruct((1000, 1000), jnp.float32),), memory_limit_bytes=1e6)
      ... except MemoryError as e:
      ...     print(str(e).split(" but")[0])
      random inputs need 3.81 MiB (4000000 bytes)
    """
    is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct)
    structs = [x for x in jax.tree_util.tree_leaves(inputs, is_leaf=is_struct) if is_struct(x)]
    if not structs:
        return inputs
    sizes = [math.prod(x.shape) for x in structs]
    need = sum(n * np.dtype(x.dtype).itemsize for n, x in zip(sizes, structs, strict=True))
    # The largest input also needs its float32 draw while it is cast (bf16, fp16, float8).
    peak = need + max(
        _draw_bytes(np.dtype(x.dtype), n) - n * np.dtype(x.dtype).itemsize
        for n, x in zip(sizes, structs, strict=True)
    )
    limit = available_memory_bytes() if memory_limit_bytes is None else float(memory_limit_bytes)
    if peak > limit:
        big = max(
            zip(sizes, structs, strict=True), key=lambda t: t[0] * np.dtype(t[1].dtype).itemsize
        )
        shape = ",".join(map(str, big[1].shape))
        source = (
            f"${MEMORY_LIMIT_ENV}"
            if memory_limit_bytes is None and os.environ.get(MEMORY_LIMIT_ENV, "").strip()
            else "memory_limit_bytes"
            if memory_limit_bytes is not None
            else "available memory"
        )
        raise InputMemoryError(
            f"random inputs need {_gib(peak)} ({peak} bytes) but only {_gib(limit)} "
            f"({int(limit)} bytes) is available ({source}); the largest is "
            f"{np.dtype(big[1].dtype).name}[{shape}] ({_gib(big[0] * np.dtype(big[1].dtype).itemsize)}). "
            "Use smaller shapes, or pass real arrays."
        )
    rng = np.random.default_rng(seed)

    def make(x):
        if not is_struct(x):
            return x
        return jax.device_put(_random(rng, tuple(x.shape), np.dtype(x.dtype)))

    return jax.tree_util.tree_map(make, inputs, is_leaf=is_struct)


def _check_timing(
    rtol: Any, min_repeats: Any, max_repeats: Any, max_time_s: Any, warmup_s: Any, sample_s: Any
) -> None:
    """Raises ``ValueError``/``TypeError`` naming a bad timing argument and what it must be."""
    for name, v in (("rtol", rtol), ("max_time_s", max_time_s), ("sample_s", sample_s)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must be a positive number, got {type(v).__name__} {v!r}.")
        if not (v > 0 and math.isfinite(v)):
            raise InputError(f"{name} must be a positive number (finite, > 0), got {v!r}.")
    if isinstance(warmup_s, bool) or not isinstance(warmup_s, (int, float)):
        raise TypeError(
            f"warmup_s must be a number of seconds >= 0, got {type(warmup_s).__name__} {warmup_s!r}."
        )
    if not (warmup_s >= 0 and math.isfinite(warmup_s)):
        raise InputError(f"warmup_s must be a finite number of seconds >= 0, got {warmup_s!r}.")
    for name, v in (("min_repeats", min_repeats), ("max_repeats", max_repeats)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer >= 1, got {type(v).__name__} {v!r}.")
    if min_repeats < 1 or max_repeats < min_repeats:
        raise InputError(
            f"need 1 <= min_repeats <= max_repeats, got min_repeats={min_repeats} and "
            f"max_repeats={max_repeats}."
        )


def run(
    fn_or_program: Callable | Program,
    inputs: Sequence[Any] = (),
    *,
    rtol: float = 0.02,
    min_repeats: int = 7,
    max_repeats: int = 1000,
    max_time_s: float = 2.0,
    warmup_s: float = 0.02,
    sample_s: float = 2e-4,
    time_it: bool = True,
    memory_limit_bytes: float | None = None,
) -> RunResult:
    """Compiles (once per input signature), runs on the CPU through XLA, and times the program.

    Args:
      fn_or_program: a JAX function, or a :class:`Program` (traced or read from StableHLO text).
      inputs: positional arguments; ``jax.ShapeDtypeStruct`` leaves are filled with
        deterministic random data (see :func:`materialize`).
      rtol: stop once the median's 95% CI half-width is below ``rtol`` of the median.
      min_repeats: the fewest samples taken.
      max_repeats: the most samples taken.
      max_time_s: time budget for the sampling phase.
      warmup_s: warm-up duration (at least one call).
      sample_s: target duration of one sample (calls per sample are chosen to reach it).
      time_it: ``False`` runs once and returns outputs with a single-sample ``TimeStats``.
      memory_limit_bytes: most memory the random inputs may take (default: ``$PERFJAX_MEMORY_LIMIT_BYTES``
        or the memory available); larger inputs are refused before anything is allocated.

    A program read from StableHLO text that calls back into Python (``jax.pure_callback``,
    ``jax.debug.print``) is refused with :class:`~perfjax._errors.HostCallbackError`; run the
    function itself instead.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> r = perfjax.run(lambda a, b: perfjax.ops.matmul(a, b), (jnp.ones((8, 8)), jnp.eye(8)), max_time_s=0.05)
      >>> float(r.outputs.sum()), r.time.repeats >= 3
      (64.0, True)
    """
    _check_timing(rtol, min_repeats, max_repeats, max_time_s, warmup_s, sample_s)
    if isinstance(fn_or_program, (jax.stages.Traced, jax.stages.Lowered)):
        fn_or_program = trace(fn_or_program)
    if isinstance(fn_or_program, Program) and fn_or_program.fn is not None:
        fn_or_program = fn_or_program.fn
    if isinstance(fn_or_program, Program):
        check_runnable(fn_or_program)  # before anything is allocated or compiled
    elif not callable(fn_or_program):
        raise TypeError(
            f"run expects a function or a perfjax.Program, got {type(fn_or_program).__name__}."
        )
    inputs = materialize(check_inputs(inputs), memory_limit_bytes=memory_limit_bytes)
    if isinstance(fn_or_program, Program):
        call, compile_s, cached = _program_callable(fn_or_program, inputs)
        device = jax.devices("cpu")[0]
        args = tuple(jax.device_put(a, device) for a in jax.tree_util.tree_leaves(inputs))
        lower_s, name = 0.0, fn_or_program.name
    elif callable(fn_or_program):
        call, compile_s, lower_s, cached = _compile_fn(fn_or_program, inputs)
        args = inputs
        name = getattr(fn_or_program, "__name__", type(fn_or_program).__name__)
    else:
        raise TypeError(
            f"run expects a function or a perfjax.Program, got {type(fn_or_program).__name__}."
        )

    t0 = time.perf_counter()
    outputs = jax.block_until_ready(call(*args))
    first_s = time.perf_counter() - t0
    if not time_it:
        return RunResult(
            outputs, TimeStats.from_samples([first_s]), compile_s, lower_s, cached, name
        )
    stats = time_callable(
        call,
        args,
        rtol=rtol,
        min_repeats=min_repeats,
        max_repeats=max_repeats,
        max_time_s=max_time_s,
        warmup_s=warmup_s,
        sample_s=sample_s,
    )
    return RunResult(outputs, stats, compile_s, lower_s, cached, name)


def time_callable(
    call: Callable,
    args: Sequence[Any] = (),
    *,
    rtol: float = 0.02,
    min_repeats: int = 7,
    max_repeats: int = 1000,
    max_time_s: float = 2.0,
    warmup_s: float = 0.02,
    sample_s: float = 2e-4,
) -> TimeStats:
    """Times ``call(*args)`` with the protocol of :func:`run` (see the module docstring).

    Works for any callable (NumPy code too); JAX outputs are blocked on before the clock stops.

    Example:
      >>> import numpy as np
      >>> s = time_callable(np.add, (np.ones(10), np.ones(10)), max_time_s=0.05)
      >>> s.median_s > 0
      True
    """
    _check_timing(rtol, min_repeats, max_repeats, max_time_s, warmup_s, sample_s)
    # Block on a single array directly: jax.block_until_ready flattens a pytree on every call
    # (~2.5 µs), which would be measured as the program's time.
    first = call(*args)
    if isinstance(first, jax.Array):

        def block(out):
            return out.block_until_ready()

    else:
        block = jax.block_until_ready
    block(first)
    calls, start = 0, time.perf_counter()
    while True:
        block(call(*args))
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= warmup_s or calls >= 1000:
            break
    per_call = elapsed / calls
    number = max(1, math.ceil(sample_s / max(per_call, 1e-9)))

    samples: list[float] = []
    perf = time.perf_counter
    deadline = perf() + max_time_s
    single = isinstance(first, jax.Array)
    # As timeit does: no cyclic garbage collection inside the timed loop.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _sample_loop(
            call,
            args,
            block,
            single,
            number,
            samples,
            perf,
            deadline,
            min_repeats,
            max_repeats,
            rtol,
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    stable = (
        bool(samples)
        and len(samples) >= min_repeats
        and _median_rel_ci(np.sort(np.asarray(samples))) <= rtol
    )
    return TimeStats.from_samples(samples, number, stable)


def _sample_loop(
    call, args, block, single, number, samples, perf, deadline, min_repeats, max_repeats, rtol
) -> None:
    while len(samples) < max_repeats:
        # The hot loop calls block_until_ready inline: no wrapper call is timed with the program.
        if single:
            s = perf()
            for _ in range(number):
                call(*args).block_until_ready()
            samples.append((perf() - s) / number)
        else:
            s = perf()
            for _ in range(number):
                block(call(*args))
            samples.append((perf() - s) / number)
        n = len(samples)
        if n >= min_repeats and (n % 4 == 0 or n == min_repeats):
            if _median_rel_ci(np.sort(np.asarray(samples))) <= rtol:
                return
        if perf() > deadline and n >= 3:
            return


def program_inputs(program: Program) -> tuple[jax.ShapeDtypeStruct, ...]:
    """``ShapeDtypeStruct`` inputs matching a program's entry signature."""
    import jax.numpy as jnp

    return tuple(jax.ShapeDtypeStruct(t.shape, jnp.dtype(t.dtype)) for t in program.in_types)


__all__ = [
    "RunResult",
    "TimeStats",
    "available_memory_bytes",
    "check_runnable",
    "clear_cache",
    "host_callbacks",
    "materialize",
    "program_inputs",
    "run",
    "time_callable",
]
