"""Transcendental functions over few elements in one XLA:CPU loop: what they cost by length.

    python benchmarks/host_small_transcendentals.py        # ~1 min on 2 cores

Programs are full of loops of a handful of transcendentals: an optimizer's bias correction
(``1 - b1 ** count``, one float), a softmax over ten logits, a GELU over one token. This times
tanh, exp, a power, a sine and a chain exp(tanh(sin(x))) over 1 to 32768 fp32 floats (inputs
0.5) against perfjax's uncalibrated host prediction. Below a few thousand elements a loop costs
its call and little more, whatever its functions (a one-float power ~6 us, like a one-float
multiply), and grows with its elements from there:
``TRANSCENDENTAL_LINEAR_ELEMENTS`` in ``perfjax/devicemodels/_common.py``.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_small_transcendentals.csv (``--out``: another name there).
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
ELEMENTS = (1, 16, 256, 1024, 4096, 32768)
FUNCTIONS = {
    "multiply": lambda x: x * 2.0,
    "tanh": jnp.tanh,
    "exp": jnp.exp,
    "power": lambda x: x**x,
    "sin": jnp.sin,
    "exp_tanh_sin": lambda x: jnp.exp(jnp.tanh(jnp.sin(x))),
}


def main() -> None:
    name, command = out_option(__doc__, "host_small_transcendentals.py",
                               "host_small_transcendentals.csv")  # fmt: skip
    cases = []
    for n in ELEMENTS:
        x = jnp.full((n,), 0.5, jnp.float32)
        for fname, fn in FUNCTIONS.items():
            f = jax.jit(fn)
            jax.block_until_ready(f(x))
            prior = perfjax.predict(fn, (x,), device="host", calibration=False).time_s
            cases.append((n, fname, f, x, prior))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], (c[3],), min_s=0.05) for c in cases], ROUNDS
    )
    what = f"fp32 floats of 0.5; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(
            ["elements", "function", "measured_us", "predicted_us", "predicted_vs_measured"]
        )
        rows = []
        for (n, fname, _, _, prior), t in zip(cases, medians, strict=True):
            rows.append((n, fname, t, prior))
            wr.writerow([n, fname, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}", f"{prior / t:.2f}"])
    print(f"{'elements':>8} {'function':>13} {'measured us':>12} {'predicted us':>13} {'ratio':>6}")
    for n, fname, t, prior in rows:
        print(f"{n:8d} {fname:>13} {t * 1e6:12.1f} {prior * 1e6:13.1f} {prior / t:6.2f}")
    small = [p / t for n, _, t, p in rows if n <= 1024]
    print(f"predicted / measured at <= 1024 elements: median {np.median(small):.2f}, "
          f"max {max(small):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
