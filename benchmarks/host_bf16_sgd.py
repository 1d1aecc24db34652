"""What an SGD step of one bf16 layer costs on XLA:CPU, next to the same step in fp32.

    python benchmarks/host_bf16_sgd.py        # ~2 min on 2 cores

JAX writes a weight gradient as ``dot_general(dy, x)`` and a transpose. XLA:CPU folds the
transpose into an fp32 dot (it swaps the operands); a bf16 dot is computed in fp32, its result
converted to bf16 first, and the SGD update's loop reads that result transposed, element by
element, at every size (perfjax's ``strided_elements``; an operand transposed by the program
costs that only beyond ~1 MiB, ``host_strided_loops.py``).

Measured: ``w - 1e-3 * grad(sum((x @ w) ** 2))`` for a grid of batch x K x N, bf16 and fp32;
a plain ``jax.jit`` loop, medians of 5 interleaved rounds; and perfjax's uncalibrated host
prediction of each. Reported: each dtype's measured / predicted time; the medians for weights
below and from 1 MiB of bf16.

Writes benchmarks/results/host_bf16_sgd.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import statistics
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
BATCHES = (4, 16, 64)
#: (K, N) of the weight.
WEIGHTS = ((128, 128), (256, 256), (512, 512), (256, 1024), (1024, 256), (1024, 1024), (2048, 512))


def step(w, x):
    """One SGD step of a bias-free linear layer on a squared-output loss."""
    g = jax.grad(lambda w: jnp.sum((x @ w).astype(jnp.float32) ** 2))(w)
    return w - 1e-3 * g.astype(w.dtype)


def main() -> None:
    out, command = out_option(__doc__, "host_bf16_sgd.py", "host_bf16_sgd.csv")
    f = jax.jit(step)
    cases = []
    for b in BATCHES:
        for k, n in WEIGHTS:
            for dt in (jnp.bfloat16, jnp.float32):
                args = (jnp.full((k, n), 0.01, dt), jnp.full((b, k), 0.1, dt))
                jax.block_until_ready(f(*args))
                predicted = perfjax.predict(step, args, device="host", calibration=False).time_s
                cases.append((b, k, n, jnp.dtype(dt).name, args, predicted))
    medians = interleaved_medians([lambda a=args: time_loop(f, a) for *_, args, _ in cases], ROUNDS)
    ratios: dict[str, list[float]] = {"below": [], "from": []}
    with result_csv(out, command,
                    f"SGD step of one linear layer, bf16 and fp32; medians of {ROUNDS} interleaved "
                    "rounds; perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["batch", "k", "n", "dtype", "measured_ms", "predicted_ms"])
        for (b, k, n, dt, _, p), t in zip(cases, medians, strict=True):
            wr.writerow([b, k, n, dt, f"{t * 1e3:.4f}", f"{p * 1e3:.4f}"])
            if dt == "bfloat16":
                ratios["below" if k * n * 2 < 1 << 20 else "from"].append(t / p)
            print(f"b{b:<3d} {k:5d} x {n:<5d} {dt:8s}: measured {t * 1e3:7.3f} ms, "
                  f"predicted {p * 1e3:7.3f} ({t / p:.2f}x)")  # fmt: skip
    for where, r in ratios.items():
        print(
            f"bf16 weights {where} 1 MiB: measured / predicted, median {statistics.median(r):.2f}"
        )


if __name__ == "__main__":
    main()
