"""Chains of small kernels in one call: what each kernel costs among others, against a calibration.

    python benchmarks/host_small_chains.py --calibration FILE      # ~30 s on 2 cores

perfjax's calibration suite times mostly one-kernel programs, whose fixed costs (the call, the
thread pool's wake-up, the kernel's own launch) it must split between the call and the kernel.
Programs of many small kernels (transformers models at small sizes: loops and reductions over
hundreds of elements) pay the kernel's share once per kernel. This times perfjax's own
``chain`` workload (``Workload.of("chain", op="norm", n=N, length=K)``: per step a reduction
and an elementwise kernel the compiler cannot fuse) over N = 256, 1024, 4096 and 16384 floats
and K = 1, 4 and 16 steps, and fits a line to time against K: the slope is what a step costs
inside a call, the intercept what the call costs once; the same for the priors' and the given
calibration's predictions.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_small_chains.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import (  # noqa: E402
    interleaved_medians,
    options_parser,
    parse_options,
    result_csv,
    time_loop,
)
from host_gemm_chain import line_us  # noqa: E402

import perfjax  # noqa: E402
from perfjax.calibrate import Workload  # noqa: E402

ROUNDS = 5
SIZES = (256, 1024, 4096, 16384)
STEPS = (1, 4, 16)


def main() -> None:
    args, command = parse_options(
        options_parser(__doc__, "host_small_chains.csv", calibration=True), "host_small_chains.py"
    )
    name, cal = args.out, args.calibration
    rng = np.random.default_rng(0)
    cases = []
    for n in SIZES:
        for k in STEPS:
            fn, shapes = Workload.of("chain", op="norm", n=n, length=k).build()
            args_ = [rng.standard_normal(s.shape).astype(s.dtype) for s in shapes]
            f = jax.jit(fn)
            jax.block_until_ready(f(*args_))
            prior = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
            fitted = (
                perfjax.predict(fn, shapes, device="host", calibration=cal).time_s if cal else None
            )
            cases.append((n, k, f, args_, prior, fitted))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], c[3], min_s=0.05) for c in cases], ROUNDS
    )
    what = f"chain op=norm, fp32; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(["elements", "steps", "measured_us", "predicted_us"]
                    + (["calibrated_us"] if cal else []))  # fmt: skip
        for (n, k, _, _, prior, fitted), t in zip(cases, medians, strict=True):
            wr.writerow([n, k, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}"]
                        + ([f"{fitted * 1e6:.1f}"] if cal else []))  # fmt: skip
    print(f"{'elements':>9} {'call us (measured / predicted)':>31} {'per step us':>20}")
    for n in SIZES:
        for label, col in (("priors", 4), ("calibrated", 5)) if cal else (("priors", 4),):
            rows = [(c[1], t, c[col]) for c, t in zip(cases, medians, strict=True) if c[0] == n]
            k, t, p = zip(*rows, strict=True)
            (ti, ts), (pi, ps) = line_us(k, t), line_us(k, p)
            print(f"{n:>9} {ti:15.1f} / {pi:<14.1f} {ts:9.1f} / {ps:<9.1f} ({label})")


if __name__ == "__main__":
    main()
