"""What splitting a GEMM of few rows over the thread pool costs XLA:CPU: 4 rows, 2 cores vs 1.

    python benchmarks/host_gemm_split_rows.py        # ~1 min on 2 cores (Linux: taskset)

``x @ w`` with 4 rows of fp32 (a small batch through a dense layer), K = 64, 128 and 256, N =
256-2048 (64 KiB to 2 MiB of weights), timed in two fresh processes: one free to use every
core, one pinned to a single core with ``taskset -c 0`` (XLA:CPU's pool then has one core to
run on). Where XLA:CPU splits the GEMM over its pool, the free process pays the hand-off;
the pinned one shows the same arithmetic without it.

Reported per case: K, N, the weights' KiB, the FLOPs, both times (a plain ``jax.jit`` loop,
medians of 3 interleaved rounds) and perfjax's uncalibrated host prediction.

Writes benchmarks/results/host_gemm_split_rows.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

ROUNDS = 3
ROWS = 4
KS = (64, 128, 256)
NS = (256, 384, 512, 576, 640, 768, 1024, 1536, 2048)


def main() -> None:
    if sys.argv[1:] == ["--child"]:  # time every case, print the medians
        from _machine import print_matmul_medians

        print_matmul_medians([(ROWS, k, n) for k in KS for n in NS], ROUNDS)
        return
    from _machine import free_and_one_core, out_option, result_csv

    out, command = out_option(__doc__, "host_gemm_split_rows.py", "host_gemm_split_rows.csv")
    free, pinned = free_and_one_core(__file__)
    import jax
    import jax.numpy as jnp

    import perfjax

    S = jax.ShapeDtypeStruct
    with result_csv(out, command,
                    f"x @ w with {ROWS} rows of fp32, free (every core) and pinned to one core; "
                    f"medians of {ROUNDS} interleaved rounds per process; perfjax's "
                    "uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["k", "n", "weights_kib", "kflop", "free_us", "one_core_us", "predicted_us"])
        i = 0
        for k in KS:
            for n in NS:
                shapes = (S((ROWS, k), jnp.float32), S((k, n), jnp.float32))
                pred = perfjax.predict(lambda a, b: a @ b, shapes, device="host",
                                       calibration=False).time_s  # fmt: skip
                kflop = 2 * ROWS * k * n / 1e3
                wr.writerow([k, n, k * n * 4 // 1024, f"{kflop:.0f}", f"{free[i] * 1e6:.1f}",
                             f"{pinned[i] * 1e6:.1f}", f"{pred * 1e6:.1f}"])  # fmt: skip
                print(f"K {k:4d} N {n:5d} ({k * n * 4 // 1024:5d} KiB, {kflop:5.0f} KFLOP): "
                      f"free {free[i] * 1e6:6.1f} us, one core {pinned[i] * 1e6:6.1f} us, "
                      f"predicted {pred * 1e6:6.1f} us")  # fmt: skip
                i += 1


if __name__ == "__main__":
    main()
