"""Chains of GEMMs the thread pool splits: what a call costs once, and what each GEMM adds.

    python benchmarks/host_gemm_chain.py        # ~1 min on 2 cores

``x = tanh(x @ w)`` repeated K = 1, 2, 4, 8 times (fp32; two weights used in turn) for row
counts and widths whose GEMMs XLA:CPU's YNNPACK splits over the pool. A line fitted to time
against K separates the call's fixed cost (intercept) from each step's (slope); perfjax's
uncalibrated host prediction gets the same fit. A split loop or GEMM wakes the pool once per
call and hands later work to awake threads: whether the model prices the wake-up and the
per-kernel hand-off as the machine does shows in the intercept and the slope.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_gemm_chain.csv (``--out``: another name there); with
``--calibration FILE`` a ``calibrated_us`` column (that calibration's prediction) beside the
priors' ``predicted_us``.
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
from _machine import (  # noqa: E402
    interleaved_medians,
    options_parser,
    parse_options,
    result_csv,
    time_loop,
)

import perfjax  # noqa: E402

ROUNDS = 5
STEPS = (1, 2, 4, 8)
SHAPES = ((64, 256), (16, 512), (256, 128))


def chain(steps: int):
    def f(x, w0, w1):
        for i in range(steps):
            x = jnp.tanh(x @ (w0, w1)[i % 2])
        return x

    return f


def line_us(steps, times_s) -> tuple[float, float]:
    """(intercept, slope) in us of a least-squares line of time against the chain length."""
    slope, intercept = np.polyfit(np.asarray(steps, float), np.asarray(times_s) * 1e6, 1)
    return float(intercept), float(slope)


def main() -> None:
    ap = options_parser(__doc__, "host_gemm_chain.csv", calibration=True)
    ap.add_argument("--shapes", help="rows x width pairs, e.g. 16x256,64x512 (default: "
                    + ",".join(f"{m}x{n}" for m, n in SHAPES) + ")")  # fmt: skip
    args, command = parse_options(ap, "host_gemm_chain.py")
    name, cal = args.out, args.calibration
    shapes = SHAPES
    if args.shapes:
        try:
            shapes = tuple(tuple(int(v) for v in s.split("x")) for s in args.shapes.split(","))
        except ValueError:
            ap.error(f"--shapes wants ROWSxWIDTH pairs separated by commas, got {args.shapes!r}")
        if any(len(s) != 2 or min(s) < 1 for s in shapes):
            ap.error(f"--shapes wants ROWSxWIDTH pairs of positive integers, got {args.shapes!r}")
    rng = np.random.default_rng(0)
    cases = []
    for m, n in shapes:
        x = jnp.asarray(rng.standard_normal((m, n), np.float32) * 0.1)
        ws = [jnp.asarray(rng.standard_normal((n, n), np.float32) * 0.05) for _ in range(2)]
        for k in STEPS:
            fn = chain(k)
            f = jax.jit(fn)
            jax.block_until_ready(f(x, *ws))
            prior = perfjax.predict(fn, (x, *ws), device="host", calibration=False).time_s
            fitted = (
                perfjax.predict(fn, (x, *ws), device="host", calibration=cal).time_s
                if cal else None
            )  # fmt: skip
            cases.append((m, n, k, f, (x, *ws), prior, fitted))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[3], c[4], min_s=0.05) for c in cases], ROUNDS
    )
    what = f"fp32, tanh(x @ w) K times; medians of {ROUNDS} interleaved rounds"
    with result_csv(name, command, what) as wr:
        wr.writerow(["rows", "width", "steps", "measured_us", "predicted_us"]
                    + (["calibrated_us"] if cal else []))  # fmt: skip
        for (m, n, k, _, _, prior, fitted), t in zip(cases, medians, strict=True):
            wr.writerow([m, n, k, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}"]
                        + ([f"{fitted * 1e6:.1f}"] if cal else []))  # fmt: skip
    print(f"{'shape':>10} {'fixed us (measured / predicted)':>32} {'per step us':>20}")
    for m, n in shapes:
        for label, col in (("priors", 5), ("calibrated", 6)) if cal else (("priors", 5),):
            rows = [(c[2], t, c[col]) for c, t in zip(cases, medians, strict=True)
                    if c[:2] == (m, n)]  # fmt: skip
            k, t, p = zip(*rows, strict=True)
            (ti, ts), (pi, ps) = line_us(k, t), line_us(k, p)
            print(f"{m:>4}x{n:<5} {ti:15.1f} / {pi:<14.1f} {ts:9.1f} / {ps:<9.1f} ({label})")


if __name__ == "__main__":
    main()
