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
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from perfjax.lowering._program import Program, check_inputs, signature


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
            raise ValueError("no timing samples")
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
        from perfjax._display import fmt_time

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
        from perfjax._display import fmt_time

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


def _program_callable(program: Program, inputs: tuple[Any, ...]) -> tuple[Callable, float, bool]:
    """A callable for a Program read from StableHLO: flat arrays in, flat outputs out."""
    leaves = jax.tree_util.tree_leaves(inputs)
    if len(leaves) != len(program.in_types):
        raise ValueError(
            f"program {program.name!r} takes {len(program.in_types)} inputs "
            f"({', '.join(map(str, program.in_types))}), got {len(leaves)}."
        )
    for i, (x, t) in enumerate(zip(leaves, program.in_types, strict=True)):
        shape, dtype = tuple(np.shape(x)), str(np.dtype(x.dtype))
        if shape != t.shape or dtype != t.dtype:
            raise ValueError(
                f"input {i} of program {program.name!r} must be {t}, got {dtype}[{','.join(map(str, shape))}]."
            )
    cached = "compiled" in program.__dict__
    t0 = time.perf_counter()
    exe = program.compiled
    compile_s = 0.0 if cached else time.perf_counter() - t0
    device = jax.devices("cpu")[0]

    execute = exe.execute_sharded

    def call(*arrays):
        return [o[0] for o in execute(list(arrays)).disassemble_into_single_device_arrays()]

    del device

    return call, compile_s, cached


def materialize(inputs: tuple[Any, ...], seed: int = 0) -> tuple[Any, ...]:
    """Replaces each ``jax.ShapeDtypeStruct`` by deterministic random data of that shape and dtype.

    Floats are uniform in [-1, 1); integers in [0, 8) (valid indices for small tables); bools
    are fair coin flips.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> materialize((jax.ShapeDtypeStruct((2, 3), jnp.float32),))[0].shape
      (2, 3)
    """
    rng = np.random.default_rng(seed)

    def make(x):
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        dt = np.dtype(x.dtype)
        if dt == np.bool_:
            data = rng.random(x.shape) < 0.5
        elif np.issubdtype(dt, np.integer):
            data = rng.integers(0, 8, size=x.shape).astype(dt)
        else:
            data = rng.uniform(-1, 1, size=x.shape).astype(np.float32)
        return jax.device_put(np.asarray(data).astype(dt))

    return jax.tree_util.tree_map(
        make, inputs, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct)
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
) -> RunResult:
    """Compiles (once per input signature), runs on the CPU through XLA, and times the program.

    Args:
      fn_or_program: a JAX function, or a :class:`Program` (traced or read from StableHLO text).
      inputs: positional arguments; ``jax.ShapeDtypeStruct`` leaves are filled with
        deterministic random data (see :func:`materialize`).
      rtol: stop once the median's 95% CI half-width is below ``rtol`` of the median.
      min_repeats, max_repeats: bounds on the number of samples.
      max_time_s: time budget for the sampling phase.
      warmup_s: warm-up duration (at least one call).
      sample_s: target duration of one sample (calls per sample are chosen to reach it).
      time_it: ``False`` runs once and returns outputs with a single-sample ``TimeStats``.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> r = perfjax.run(lambda a, b: perfjax.ops.matmul(a, b), (jnp.ones((8, 8)), jnp.eye(8)), max_time_s=0.05)
      >>> float(r.outputs.sum()), r.time.repeats >= 3
      (64.0, True)
    """
    for name, v in (("rtol", rtol), ("max_time_s", max_time_s), ("sample_s", sample_s)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}.")
    if min_repeats < 1 or max_repeats < min_repeats:
        raise ValueError(
            f"need 1 <= min_repeats <= max_repeats, got {min_repeats} and {max_repeats}."
        )
    inputs = materialize(check_inputs(inputs))
    if isinstance(fn_or_program, Program) and fn_or_program.fn is not None:
        fn_or_program = fn_or_program.fn
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
    "clear_cache",
    "materialize",
    "program_inputs",
    "run",
    "time_callable",
]
