"""What a small XLA:CPU loop costs by the arithmetic per element: its fixed cost does not grow.

    python benchmarks/host_loop_work.py        # ~30 s on 2 cores
    python benchmarks/host_loop_work.py --out host_loop_work_epyc.csv

Chains of ``depth`` multiply-adds per float32 element (``y = y * x + c``, 2 x depth FLOPs per
element, one loop kernel) over 256 and 768 elements, too few for XLA:CPU to split them over its
pool, beside a negation (one FLOP), ``erfc`` (an exact GELU's polynomials) and one
transcendental per element (inline polynomials: exp, tanh, the logistic function; math-library
calls: sin, log1p) of the same size.
A loop's time over the negation's is its arithmetic at the vector rate: 128 FLOPs per element
over 256 elements (33 KFLOP) take well under a microsecond more than one FLOP per element. A
small loop's fixed cost does not grow with its work per element, so perfjax's CPU model applies
its small-loop occupancy to the FLOPs by their count (``vector_time(work_occupancy=True)``),
not by the elements. Transcendentals keep the elements' occupancy, which prices one per element
over a few hundred floats at tens of microseconds uncalibrated where they take under 1.5 more
than the negation; over 4096 floats the held-out sets read ``log1p(|x|)`` at 24-25 us (4.5 ns
per element) and a sine of an exponential at 48 us (``docs/calibration/host_generalization*.csv``),
which the elements' occupancy follows.

Times: the median over 7 interleaved rounds of each round's fastest call (a plain ``jax.jit``
loop of at least 0.1 s: the fastest call, as these differ by microseconds on a machine whose
scheduling moves a call by more), and perfjax's uncalibrated prediction (``calibration=False``).

Writes benchmarks/results/host_loop_work.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 7
DEPTHS = (1, 4, 16, 64)
SIZES = (256, 768)


#: One transcendental per element: XLA:CPU's inline polynomials (exp, tanh, the logistic
#: function) and the math-library calls it makes per element (sin, log1p).
TRANSCENDENTALS = {
    "exp": jnp.exp,
    "tanh": jnp.tanh,
    "logistic": jax.nn.sigmoid,
    "sin": jnp.sin,
    "log1p": lambda x: jnp.log1p(jnp.abs(x)),
}


def polynomial(depth: int):
    """``depth`` multiply-adds per element: one loop kernel of 2 x depth FLOPs per element."""

    def f(x):
        y = x
        for i in range(depth):
            y = y * x + 0.1 * (i + 1)
        return y

    return f


def fastest_call(f, args, min_s: float = 0.1) -> float:
    """The fastest call of ``f(*args)`` (blocked on) over at least ``min_s`` seconds."""
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < min_s:
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    out, command = out_option(__doc__, "host_loop_work.py", "host_loop_work.csv")
    cases = [("negate", lambda x: -x, 1, n) for n in SIZES]
    cases += [(f"multiply-add x{d}", polynomial(d), 2 * d, n) for d in DEPTHS for n in SIZES]
    cases += [("erfc", lax.erfc, None, n) for n in SIZES]
    cases += [(name, fn, None, n) for name, fn in TRANSCENDENTALS.items() for n in SIZES]
    timers, rows = [], []
    for name, fn, flops, n in cases:
        x = jax.random.normal(jax.random.key(0), (n,), jnp.float32) * 0.1
        f = jax.jit(fn)
        jax.block_until_ready(f(x))
        timers.append(lambda f=f, x=x: fastest_call(f, (x,)))
        spec = (jax.ShapeDtypeStruct((n,), jnp.float32),)
        pred = perfjax.predict(fn, spec, device="host", calibration=False)
        rows.append((name, n, flops, pred.time_s))
    times = interleaved_medians(timers, ROUNDS)
    base = {n: t for (name, n, _, _), t in zip(rows, times, strict=True) if name == "negate"}
    pbase = {n: p for name, n, _, p in rows if name == "negate"}
    with result_csv(out, command,
                    f"float32; median over {ROUNDS} interleaved rounds of each round's fastest "
                    "call; predicted: perfjax's uncalibrated model") as w:  # fmt: skip
        w.writerow(["case", "elements", "flops_per_element", "time_us", "extra_us",
                    "predicted_us", "predicted_extra_us"])  # fmt: skip
        for (name, n, flops, pred_s), t in zip(rows, times, strict=True):
            w.writerow([name, n, "" if flops is None else flops, f"{t * 1e6:.2f}",
                        f"{(t - base[n]) * 1e6:.2f}", f"{pred_s * 1e6:.2f}",
                        f"{(pred_s - pbase[n]) * 1e6:.2f}"])  # fmt: skip
            print(f"{name:18s} {n:5d}  measured {t * 1e6:6.2f} us (+{(t - base[n]) * 1e6:5.2f})"
                  f"  predicted {pred_s * 1e6:6.2f} us (+{(pred_s - pbase[n]) * 1e6:5.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
