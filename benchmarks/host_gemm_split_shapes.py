"""Which GEMMs XLA:CPU splits over its thread pool, and what the split costs: 2 cores vs 1.

    python benchmarks/host_gemm_split_shapes.py        # ~3 min on 2 cores (Linux: taskset)

``x @ w`` in fp32 over 66 shapes: square weights at 4, 16, 64, 256 and 2048 rows from ~150
KFLOP to ~3 MFLOP, and weights of one size in different shapes (784 x 128 against 128 x 784,
2048 x 64 against 512 x 256, ...) at 2, 4, 16 and 64 rows. Each timed in two fresh processes:
one free to use every core, one pinned to a single core with ``taskset -c 0`` (XLA:CPU's pool
then has one core). Where the library splits the GEMM over the pool, the free process pays
the pool's wake-up and hand-off (a small GEMM's split is a loss: ``free / one core`` > 1); the
pinned one shows the arithmetic without it.

Reported per case: M, K, N, the FLOPs, the split work perfjax's CPU model compares
(``perfjax.devicemodels._cpu.pool_use``: FLOPs / 32 + bytes / 12, scaled by the output tiles),
both times (a plain ``jax.jit`` loop, medians of 5 interleaved rounds), the model's share of
the GEMM split (uncalibrated) and its uncalibrated prediction.

Writes benchmarks/results/host_gemm_split_shapes.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

ROUNDS = 5
SQUARE_ROWS = (4, 16, 64, 256, 2048)
SQUARE_MKN = (150e3, 250e3, 350e3, 450e3, 600e3, 800e3, 1.1e6, 1.6e6)
SHAPES_SMALL = ((784, 128), (1568, 128), (784, 192), (784, 256), (128, 784), (256, 784),
                (512, 256), (256, 512), (128, 1024), (64, 2048), (2048, 64), (4096, 64))  # fmt: skip
SHAPES_LARGE = ((784, 128), (128, 784), (1024, 64), (64, 1024))


def cases() -> list[tuple[int, int, int]]:
    """(M, K, N) of every case, in the order they are timed."""
    out = []
    for m in SQUARE_ROWS:
        for mkn in SQUARE_MKN:
            k = max(round((mkn / m) ** 0.5 / 8) * 8, 8)
            if (m, k, k) not in out:
                out.append((m, k, k))
    out += [(m, k, n) for m in (2, 4) for k, n in SHAPES_SMALL]
    out += [(m, k, n) for m in (16, 64) for k, n in SHAPES_LARGE]
    return out


def main() -> None:
    if sys.argv[1:] == ["--child"]:  # time every case, print the medians
        from _machine import print_matmul_medians

        print_matmul_medians(cases(), ROUNDS)
        return
    from _machine import free_and_one_core, out_option, result_csv, uncalibrated_split

    out, command = out_option(__doc__, "host_gemm_split_shapes.py", "host_gemm_split_shapes.csv")
    free, pinned = free_and_one_core(__file__)
    import jax
    import jax.numpy as jnp

    S = jax.ShapeDtypeStruct
    with result_csv(out, command,
                    "x @ w in fp32, free (every core) and pinned to one core; medians of "
                    f"{ROUNDS} interleaved rounds per process; the model's split work and share "
                    "and perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["m", "k", "n", "kflop", "split_work", "free_us", "one_core_us",
                     "free_over_one_core", "model_split", "predicted_us"])  # fmt: skip
        for (m, k, n), t_free, t_one in zip(cases(), free, pinned, strict=True):
            shapes = (S((m, k), jnp.float32), S((k, n), jnp.float32))
            pred, use = uncalibrated_split(lambda a, b: a @ b, shapes)
            work = 2 * m * k * n / 32 + 4 * (m * k + k * n + m * n) / 12
            wr.writerow([m, k, n, f"{2 * m * k * n / 1e3:.0f}", f"{work:.0f}",
                         f"{t_free * 1e6:.1f}", f"{t_one * 1e6:.1f}", f"{t_free / t_one:.2f}",
                         f"{use:.2f}", f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"{m:5d} x {k:5d} x {n:5d} ({2 * m * k * n / 1e3:6.0f} KFLOP): free "
                  f"{t_free * 1e6:6.1f} us, one core {t_one * 1e6:6.1f} us "
                  f"({t_free / t_one:4.2f}x), model split {use:.2f}, predicted "
                  f"{pred * 1e6:6.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
