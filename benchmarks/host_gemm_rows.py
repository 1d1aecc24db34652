"""What a GEMM with few rows costs XLA:CPU: ``x @ w`` with M = 1-128 rows of fp32 weights.

    python benchmarks/host_gemm_rows.py        # ~1 min on 2 cores

With fewer than 8 rows (a micro-kernel's rows), XLA:CPU's GEMM reads the weights as they are:
M = 1, 2 and 4 cost the same, the time of streaming the weights once. From 8 rows on, the
weights are first copied (packed) into panels, an extra read and write of them, before the
arithmetic. perfjax's CPU model charges the packing from M = 8 on
(``perfjax.devicemodels._cpu.packing_time``).

Times are medians of 3 interleaved rounds of a plain ``jax.jit`` loop of at least 0.15 s.
Writes benchmarks/results/host_gemm_rows.csv (time, and time relative to M = 1).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, result_csv, time_loop  # noqa: E402

ROUNDS = 3
SHAPES = ((1024, 1024), (2048, 2048), (512, 2048))
ROWS = (1, 2, 4, 8, 16, 32, 64, 128)


def main() -> None:
    rng = np.random.default_rng(0)
    f = jax.jit(lambda x, w: x @ w)
    cases = []
    for k, n in SHAPES:
        w = jnp.asarray(rng.random((k, n), np.float32))
        for m in ROWS:
            x = jnp.asarray(rng.random((m, k), np.float32))
            jax.block_until_ready(f(x, w))
            cases.append(((k, n, m), (x, w)))
    medians = interleaved_medians(
        [lambda args=args: time_loop(f, args, min_s=0.15) for _, args in cases], ROUNDS
    )
    with result_csv("host_gemm_rows.csv", "python benchmarks/host_gemm_rows.py",
                    f"x @ w, float32; medians of {ROUNDS} interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["k", "n", "m", "time_us", "vs_m1"])
        base = {}
        for ((k, n, m), _), t in zip(cases, medians, strict=True):
            base.setdefault((k, n), t)
            wr.writerow([k, n, m, f"{t * 1e6:.1f}", f"{t / base[(k, n)]:.2f}"])
            print(f"K={k:5d} N={n:5d} M={m:4d}: {t * 1e6:9.1f} us  ({t / base[(k, n)]:5.2f} x M=1)")


if __name__ == "__main__":
    main()
