"""What a loop fusion pays on XLA:CPU for reading an operand through a transpose.

    python benchmarks/host_strided_loops.py        # ~1 min on 2 cores

XLA:CPU emits a transpose alone with a tiled kernel, and a transpose that only a GEMM reads as
the GEMM's operand layout. Fused into a loop with other elementwise work (``x * 2 + y.T``, an
SGD update of a bf16 weight by its gradient), the transposed operand is read element by
element across rows once it no longer fits the core's cache: each element costs a cache line.
Permutations that keep the minor dimension (``bthd -> bhtd``) read whole rows and cost nothing
extra.

Measured: for each shape and permutation, ``x * 2 + transpose(y)``, the same loop without the
transpose (``x * 2 + y``) and the transpose alone, fp32 and bf16; a plain ``jax.jit`` loop,
medians of 5 interleaved rounds; and perfjax's uncalibrated host prediction of the first two.

Writes benchmarks/results/host_strided_loops.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import statistics
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
#: (shape of the result, permutation applied to the transposed operand)
GRID = [
    ((256, 256), (1, 0)), ((512, 512), (1, 0)), ((1024, 1024), (1, 0)), ((2048, 1024), (1, 0)),
    ((4096, 64), (1, 0)), ((64, 4096), (1, 0)), ((8, 256, 8, 64), (0, 2, 3, 1)),
    ((8, 256, 8, 64), (0, 2, 1, 3)), ((64, 64, 64, 4), (1, 0, 2, 3)),
]  # fmt: skip


def main() -> None:
    out, command = out_option(__doc__, "host_strided_loops.py", "host_strided_loops.csv")
    cases = []
    for shape, perm in GRID:
        y_shape = tuple(shape[i] for i in np.argsort(perm))
        for dt in (jnp.float32, jnp.bfloat16):
            x, y = jnp.ones(shape, dt), jnp.ones(y_shape, dt)
            fused = jax.jit(lambda x, y, p=perm: x * 2 + jnp.transpose(y, p))
            plain = jax.jit(lambda x, y: x * 2 + y)
            alone = jax.jit(lambda y, p=perm: jnp.transpose(y, p))
            runs = [(fused, (x, y)), (plain, (x, x)), (alone, (y,))]
            for f, a in runs:
                jax.block_until_ready(f(*a))
            predicted = [
                perfjax.predict(f, a, device="host", calibration=False).time_s for f, a in runs[:2]
            ]
            cases.append((shape, perm, jnp.dtype(dt).name, runs, predicted))
    medians = interleaved_medians(
        [lambda f=f, a=a: time_loop(f, a) for *_, runs, _ in cases for f, a in runs], ROUNDS
    )
    extra = []
    with result_csv(out, command,
                    f"x * 2 + transpose(y), x * 2 + y and transpose(y) alone; medians of {ROUNDS} "
                    f"interleaved rounds; perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["shape", "perm", "dtype", "elements", "transposed_ms", "plain_ms", "alone_ms",
                     "extra_ns_per_element", "predicted_transposed_ms", "predicted_plain_ms"])  # fmt: skip
        for i, (shape, perm, dt, _, (p_fused, p_plain)) in enumerate(cases):
            t_fused, t_plain, t_alone = medians[3 * i : 3 * i + 3]
            n = int(np.prod(shape))
            ns = (t_fused - t_plain) / n * 1e9
            wr.writerow(["x".join(map(str, shape)), "".join(map(str, perm)), dt, n,
                         f"{t_fused * 1e3:.4f}", f"{t_plain * 1e3:.4f}", f"{t_alone * 1e3:.4f}",
                         f"{ns:.3f}", f"{p_fused * 1e3:.4f}", f"{p_plain * 1e3:.4f}"])  # fmt: skip
            minor_moved = perm[-1] != len(perm) - 1
            if minor_moved and n * jnp.dtype(dt).itemsize >= 1 << 20:
                extra.append(ns)
            print(f"{'x'.join(map(str, shape)):>14s} perm {''.join(map(str, perm))} {dt:8s}: "
                  f"transposed {t_fused * 1e3:7.3f} ms, plain {t_plain * 1e3:7.3f}, alone "
                  f"{t_alone * 1e3:7.3f}; +{ns:.2f} ns/element; predicted {p_fused * 1e3:7.3f} "
                  f"/ {p_plain * 1e3:7.3f} ms")  # fmt: skip
    if extra:
        print(f"minor dimension moved, operands of 1 MiB or more: median +{statistics.median(extra):.2f}"
              " ns per element")  # fmt: skip


if __name__ == "__main__":
    main()
