"""Chains mixing transcendental functions in one XLA:CPU loop, against the functions alone.

    python benchmarks/host_chain_mixed.py        # ~1 min on 2 cores

Companion of ``host_chain_depth.py``: there a chain repeats one function; here it mixes them
(tanh, sigmoid, exp(-|x|), log1p(|x|), sqrt(|x|), sin, a multiply), over 1M fp32 floats. For
each chain, ``vs_alone`` is its time over the sum of its functions' times alone, measured and as
perfjax's uncalibrated host model has it: above 1 where chaining costs more than the functions
do alone. A sine mixed into a chain of polynomial functions (exp, tanh, sigmoid, log1p) grows
it like another of them; a square root adds about its own time.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_chain_mixed.csv (``--out``: another name there).
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
from host_chain_depth import ELEMENTS, FUNCTIONS  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
STEPS = {**FUNCTIONS, "mul": lambda x: x * 1.5}
CHAINS = (
    "sin.tanh", "sigmoid.sin.tanh", "sin.sin.tanh.tanh", "log1p_abs.sin", "tanh.sigmoid.sin",
    "sin.mul.exp_neg_abs.sigmoid", "sqrt_abs.tanh", "exp_neg_abs.sqrt_abs.tanh.sigmoid",
    "sqrt_abs.sqrt_abs.exp_neg_abs", "sqrt_abs.exp_neg_abs.exp_neg_abs.sqrt_abs.sin",
)  # fmt: skip


def chain(steps: str):
    """The functions named in ``steps`` (dot-separated), applied in order."""
    fs = [STEPS[s] for s in steps.split(".")]

    def fn(x):
        for f in fs:
            x = f(x)
        return x

    return fn


def main() -> None:
    name, command = out_option(__doc__, "host_chain_mixed.py", "host_chain_mixed.csv")
    x = jax.random.normal(jax.random.key(0), (ELEMENTS,), jnp.float32) * 0.1
    singles = sorted({s for c in CHAINS for s in c.split(".")})
    cases = []
    for steps in [*singles, *CHAINS]:
        fn = chain(steps)
        f = jax.jit(fn)
        jax.block_until_ready(f(x))
        prior = perfjax.predict(fn, (x,), device="host", calibration=False).time_s
        cases.append((steps, f, prior))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[1], (x,), min_s=0.05) for c in cases], ROUNDS
    )
    alone = {c[0]: (t, c[2]) for c, t in zip(cases, medians, strict=True) if c[0] in singles}
    what = f"{ELEMENTS} fp32 floats; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(["chain", "measured_us", "predicted_us", "measured_vs_alone",
                     "predicted_vs_alone"])  # fmt: skip
        for (steps, _, prior), t in zip(cases, medians, strict=True):
            parts = steps.split(".")
            m = t / sum(alone[s][0] for s in parts)
            p = prior / sum(alone[s][1] for s in parts)
            wr.writerow([steps, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}", f"{m:.2f}", f"{p:.2f}"])
            print(f"{steps:44s} {t * 1e6:8.1f} us ({m:4.2f}x alone), predicted "
                  f"{prior * 1e6:8.1f} us ({p:4.2f}x)")  # fmt: skip
    errors = [
        np.log(float(p) / float(m))
        for (steps, _, _), m, p in [
            (c, t / sum(alone[s][0] for s in c[0].split(".")),
             c[2] / sum(alone[s][1] for s in c[0].split(".")))
            for c, t in zip(cases, medians, strict=True) if c[0] in CHAINS
        ]
    ]  # fmt: skip
    print(f"model / measured growth: median {np.exp(np.median(errors)):.2f}, "
          f"spread {np.std(errors):.2f} (log)")  # fmt: skip


if __name__ == "__main__":
    main()
