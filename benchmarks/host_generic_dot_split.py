"""Which weight gradients XLA:CPU's generic dot splits over its thread pool: 2 cores vs 1.

    python benchmarks/host_generic_dot_split.py        # ~2 min on 2 cores (Linux: taskset)

JAX writes the weight gradient of ``x @ w`` as ``dot_general(x, dy)`` contracting both operands'
major dimension (the batch, K). XLA:CPU runs it as its generic ``dot`` (a plain ``dot`` in the
compiled HLO, not a YNNPACK fusion: Eigen's tensor contraction), which splits over the pool by
its own cost model, not by the YNNPACK GEMM's. Timed: ``dot_general(x, dy, (((0,), (0,)), ((),
())))`` in fp32 for K (the batch) 2-64 and M x N (the layer) 64 x 64 to 512 x 512, each in two
fresh processes, one free to use every core and one pinned to a single core with ``taskset -c
0``; where the dot is split, the free process pays the pool's wake-up (``free / one core``
above 1 for a small dot).

Reported per case: K, M, N, the multiply-adds (K x M x N), both times (a plain ``jax.jit``
loop, medians of 5 interleaved rounds), whether the compiled HLO runs it as a plain ``dot``, the
share of it perfjax's CPU model splits (uncalibrated, ``perfjax.devicemodels._cpu.pool_use``)
and perfjax's uncalibrated prediction.

Writes benchmarks/results/host_generic_dot_split.csv (``--out``: another name there).
"""

from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

ROUNDS = 5
BATCHES = (2, 4, 8, 16, 64)
LAYERS = ((64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512))


def cases() -> list[tuple[int, int, int]]:
    """(K, M, N) of every case, in the order they are timed."""
    return [(k, m, n) for k in BATCHES for m, n in LAYERS]


def gradient(x, dy):
    """The weight gradient ``xᵀ·dy`` as JAX's autodiff writes it."""
    import jax

    return jax.lax.dot_general(x, dy, (((0,), (0,)), ((), ())))


def _child() -> None:
    import jax
    import jax.numpy as jnp
    from _machine import interleaved_medians, time_loop

    timers = []
    for k, m, n in cases():
        x, dy = jnp.full((k, m), 0.01), jnp.full((k, n), 0.01)
        f = jax.jit(gradient)
        jax.block_until_ready(f(x, dy))
        timers.append(lambda f=f, x=x, dy=dy: time_loop(f, (x, dy)))
    print(json.dumps(interleaved_medians(timers, ROUNDS)))


def main() -> None:
    if sys.argv[1:] == ["--child"]:  # time every case, print the medians
        _child()
        return
    from _machine import free_and_one_core, out_option, result_csv, uncalibrated_split

    out, command = out_option(__doc__, "host_generic_dot_split.py", "host_generic_dot_split.csv")
    free, pinned = free_and_one_core(__file__)
    import jax
    import jax.numpy as jnp

    S = jax.ShapeDtypeStruct
    with result_csv(out, command,
                    "weight gradient dot_general(x, dy) contracting the batch, fp32, free (every "
                    f"core) and pinned to one core; medians of {ROUNDS} interleaved rounds per "
                    "process; whether XLA runs a plain dot; the model's split share and perfjax's "
                    "uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["k", "m", "n", "macs", "free_us", "one_core_us", "free_over_one_core",
                     "plain_dot", "model_split", "predicted_us"])  # fmt: skip
        for (k, m, n), t_free, t_one in zip(cases(), free, pinned, strict=True):
            shapes = (S((k, m), jnp.float32), S((k, n), jnp.float32))
            hlo = jax.jit(gradient).lower(*shapes).compile().as_text().split("ENTRY", 1)[1]
            plain = " dot(" in hlo and "__ynn_fusion" not in hlo
            pred, use = uncalibrated_split(gradient, shapes)
            wr.writerow([k, m, n, k * m * n, f"{t_free * 1e6:.1f}", f"{t_one * 1e6:.1f}",
                         f"{t_free / t_one:.2f}", int(plain), f"{use:.2f}",
                         f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"K {k:3d} x {m:4d} x {n:4d} ({k * m * n:8d} MACs): free {t_free * 1e6:7.1f} "
                  f"us, one core {t_one * 1e6:7.1f} us ({t_free / t_one:4.2f}x), plain dot "
                  f"{plain}, model split {use:.2f}, predicted {pred * 1e6:7.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
