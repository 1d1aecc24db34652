"""Chains of transcendental functions in one XLA:CPU loop: what each function costs by depth.

    python benchmarks/host_chain_depth.py        # ~1 min on 2 cores

XLA:CPU fuses ``f(f(...f(x)))`` over a vector into one loop. This times chains of depth 1, 2, 3
and 5 of six functions over 1M fp32 floats (inputs ~0.1 in size; a loop that size is split
over the cores) and compares how the time grows with depth against perfjax's uncalibrated host
prediction. A function alone is bound by the memory it moves; in a chain, each polynomial
function (tanh, sigmoid, exp, log1p) costs more the deeper the chain (``_CHAIN_EXPONENT`` in
``perfjax/devicemodels/_cpu.py``: chains of 5 take ~2.15x the time of chains of 3), square
roots and sines alone about the same each (1.56x).

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_chain_depth.csv (``--out``: another name there).
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
ELEMENTS = 1 << 20
DEPTHS = (1, 2, 3, 5)
FUNCTIONS = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "exp_neg_abs": lambda x: jnp.exp(-jnp.abs(x)),
    "log1p_abs": lambda x: jnp.log1p(jnp.abs(x)),
    "sqrt_abs": lambda x: jnp.sqrt(jnp.abs(x)),
    "sin": jnp.sin,
}


def chain(name: str, depth: int):
    """``FUNCTIONS[name]`` applied ``depth`` times."""
    f = FUNCTIONS[name]

    def fn(x):
        for _ in range(depth):
            x = f(x)
        return x

    return fn


def main() -> None:
    name, command = out_option(__doc__, "host_chain_depth.py", "host_chain_depth.csv")
    x = jax.random.normal(jax.random.key(0), (ELEMENTS,), jnp.float32) * 0.1
    cases = []
    for fname in FUNCTIONS:
        for depth in DEPTHS:
            fn = chain(fname, depth)
            f = jax.jit(fn)
            jax.block_until_ready(f(x))
            prior = perfjax.predict(fn, (x,), device="host", calibration=False).time_s
            cases.append((fname, depth, f, prior))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], (x,), min_s=0.05) for c in cases], ROUNDS
    )
    what = f"{ELEMENTS} fp32 floats; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(["function", "depth", "measured_us", "predicted_us", "measured_vs_depth1",
                     "predicted_vs_depth1"])  # fmt: skip
        first = {}
        for (fname, depth, _, prior), t in zip(cases, medians, strict=True):
            first.setdefault(fname, (t, prior))
            m, p = t / first[fname][0], prior / first[fname][1]
            wr.writerow([fname, depth, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}", f"{m:.2f}",
                         f"{p:.2f}"])  # fmt: skip
            print(f"{fname:12s} depth {depth}: {t * 1e6:8.1f} us ({m:4.2f}x depth 1), "
                  f"predicted {prior * 1e6:8.1f} us ({p:4.2f}x)")  # fmt: skip
    ratios = [np.log(t / c[3]) for c, t in zip(cases, medians, strict=True)]
    print(f"measured / predicted: median {np.exp(np.median(ratios)):.2f}")


if __name__ == "__main__":
    main()
