"""Where XLA:CPU splits a reduction over its thread pool, against an elementwise loop.

    python benchmarks/host_reduce_split.py        # ~1 min on 2 cores

A kernel split into tasks over the pool pays the hand-off and the pool's wake-up, tens of
microseconds on a VM: the time of a small kernel jumps several-fold at the size where the
split switches on. This sweeps the input size of a row sum and a column sum of ``(N / 256,
256)`` fp32 and of an elementwise ``x * 1.5`` over the same input, and reports where each
kernel's time jumps. A reduction splits at about a quarter of the bytes the elementwise loop
does; perfjax's CPU model scales a reduction's bytes by ``_REDUCE_SPLIT_SCALE`` when it
decides which kernels are split (``perfjax.devicemodels._cpu.pool_use``), and the
``model_split`` column is that share (0..1) with the prior parameters.

Times are medians of 3 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_reduce_split.csv.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import perfjax
from perfjax.devicemodels import default_params
from perfjax.devicemodels._cpu import pool_use
from perfjax.fusion import fuse

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, result_csv, time_loop  # noqa: E402

ROUNDS = 3
COLS = 256
SIZES = tuple(range(16384, 86017, 4096))
OPS = {
    "row_sum": lambda x: x.sum(-1),
    "column_sum": lambda x: x.sum(0),
    "scale": lambda x: x * 1.5,
}


def model_split(fn, x) -> float:
    """The share of the program's largest kernel the CPU model splits over the pool (priors)."""
    k = fuse(perfjax.analyze(fn, (x,)), "cpu").arrays()
    return float(jnp.max(pool_use(k, default_params("cpu"))))


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for name, fn in OPS.items():
        f = jax.jit(fn)
        for n in SIZES:
            x = jnp.asarray(rng.random((n // COLS, COLS), np.float32))
            jax.block_until_ready(f(x))
            cases.append((name, n, f, x, model_split(fn, x)))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], (c[3],), min_s=0.05) for c in cases], ROUNDS
    )
    with result_csv("host_reduce_split.csv", "python benchmarks/host_reduce_split.py",
                    f"(N/{COLS}, {COLS}) float32; medians of {ROUNDS} interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["op", "elements", "input_kb", "time_us", "vs_smallest", "model_split"])
        for name in OPS:
            rows = [(c, t) for c, t in zip(cases, medians, strict=True) if c[0] == name]
            base = rows[0][1]
            for (_, n, _, _, split), t in rows:
                wr.writerow([name, n, n * 4 // 1024, f"{t * 1e6:.1f}", f"{t / base:.2f}",
                             f"{split:.2f}"])  # fmt: skip
                print(f"{name:10s} N={n:6d} ({n * 4 // 1024:4d} KB): {t * 1e6:7.1f} us "
                      f"({t / base:4.1f} x smallest)  model split {split:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
