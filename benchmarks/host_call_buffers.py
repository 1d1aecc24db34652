"""What a jitted call costs per input and output array on the host, beyond its kernels.

    python benchmarks/host_call_buffers.py        # ~1 min on 2 cores

A model's parameters reach ``jax.jit`` as dozens to hundreds of arrays, and a training step
hands back as many: every one is checked, wrapped and handed to the executable on every call.
This times programs whose kernels do almost nothing over 1 to 256 arrays of 16 fp32 floats:

* ``inputs``: ``sum(x[0] for x in xs) + 1`` of N positional arrays (one small loop);
* ``inputs_dict``: the same over a dict of N arrays (a parameter pytree);
* ``unused_inputs``: ``xs[0][0] + 1`` of N positional arrays: ``jax.jit`` prunes the N - 1 it
  does not read from the compiled program, but the call still checks and flattens them;
* ``outputs``: ``[x[0] + i for i in range(N)]`` from one array: N scalars, each its own loop
  (XLA:CPU has no multi-output loops).

and fits the time's slope in N (least squares over N): microseconds per array. The slope of
``outputs`` includes each output's loop. perfjax's uncalibrated host prediction is printed
beside each case: ``CALL_INPUT_S`` and ``CALL_OUTPUT_S`` in ``perfjax/devicemodels/_cpu.py``.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_call_buffers.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
COUNTS = (1, 4, 16, 64, 128, 256)


def _inputs(n: int):
    xs = tuple(jnp.full((16,), float(i), jnp.float32) for i in range(n))
    return (lambda *a: sum(x[0] for x in a) + 1.0), xs


def _inputs_dict(n: int):
    params = {f"w{i}": jnp.full((16,), float(i), jnp.float32) for i in range(n)}
    return (lambda p: sum(x[0] for x in p.values()) + 1.0), (params,)


def _unused_inputs(n: int):
    xs = tuple(jnp.full((16,), float(i), jnp.float32) for i in range(n))
    return (lambda *a: a[0][0] + 1.0), xs


def _outputs(n: int):
    return (lambda x: [x[0] + float(i) for i in range(n)]), (jnp.ones((16,), jnp.float32),)


CASES = {"inputs": _inputs, "inputs_dict": _inputs_dict, "unused_inputs": _unused_inputs,
         "outputs": _outputs}  # fmt: skip


def slope_us(counts, times_s) -> float:
    """Least-squares slope of time (us) in the array count."""
    return float(np.polyfit(np.asarray(counts, float), np.asarray(times_s) * 1e6, 1)[0])


def timed_cases(builds, counts) -> tuple[list[tuple], list[float]]:
    """Every ``builds[case](n)`` (a function and its arguments) for ``n`` in ``counts``, jitted
    and run once, as ``(case, n, jitted, arguments, uncalibrated host prediction)``, and their
    medians of :data:`ROUNDS` interleaved rounds of at least 0.05 s (seconds)."""
    cases = []
    for case, build in builds.items():
        for n in counts:
            fn, args = build(n)
            f = jax.jit(fn)
            jax.block_until_ready(f(*args))
            prior = perfjax.predict(fn, args, device="host", calibration=False).time_s
            cases.append((case, n, f, args, prior))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], c[3], min_s=0.05) for c in cases], ROUNDS
    )
    return cases, medians


def main() -> None:
    name, command = out_option(__doc__, "host_call_buffers.py", "host_call_buffers.csv")
    cases, medians = timed_cases(CASES, COUNTS)
    what = f"arrays of 16 fp32 floats; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(["case", "arrays", "measured_us", "predicted_us", "predicted_vs_measured"])
        for (case, n, _, _, prior), t in zip(cases, medians, strict=True):
            wr.writerow([case, n, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}", f"{prior / t:.2f}"])
    print(f"{'case':>12} {'arrays':>6} {'measured us':>12} {'predicted us':>13} {'ratio':>6}")
    for (case, n, _, _, prior), t in zip(cases, medians, strict=True):
        print(f"{case:>12} {n:6d} {t * 1e6:12.1f} {prior * 1e6:13.1f} {prior / t:6.2f}")
    for case in CASES:
        rows = [(c[1], t, c[4]) for c, t in zip(cases, medians, strict=True) if c[0] == case]
        n, t, p = zip(*rows, strict=True)
        print(f"{case}: {slope_us(n, t):.2f} us per array measured, "
              f"{slope_us(n, p):.2f} predicted")  # fmt: skip


if __name__ == "__main__":
    main()
