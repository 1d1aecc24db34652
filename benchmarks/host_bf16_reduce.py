"""What XLA:CPU pays for a sum that accumulates in bf16 (a bias gradient of a bf16 layer).

    python benchmarks/host_bf16_reduce.py        # ~1 min on 2 cores

``jnp.sum`` of a bf16 array accumulates in fp32, and XLA:CPU hands that reduction to a YNNPACK
kernel. The gradient of a broadcast (``x @ w + b``: the gradient of ``b`` sums the output's
gradient over the batch) is a ``stablehlo.reduce`` that accumulates in bf16 itself. XLA:CPU
does not hand that one to YNNPACK: it runs its own scalar loop, over a tree of windows of 32
elements when the reduced dimension is longer than 32. fp16 sums run as a loop of XLA's
without the tree, fast over rows.

Measured: for each shape and reduced axis, the bf16-accumulating sum (``lax.reduce`` with a bf16
zero: what autodiff emits), the same sum through ``jnp.sum`` (fp32 accumulation), and the fp16
bf16-accumulating form as a control; a plain ``jax.jit`` loop, medians of 5 interleaved rounds;
and perfjax's uncalibrated host prediction of the first two. The extra time per element reduced
is reported separately for sums over rows (a reduced dimension other than the minor one: a
column sum, as a bias gradient is) and over the minor dimension.

Writes benchmarks/results/host_bf16_reduce.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
#: (shape, reduced axis)
GRID = [
    ((16, 1024), 0), ((64, 256), 0), ((64, 1024), 0), ((256, 256), 0), ((256, 1024), 0),
    ((1024, 64), 0), ((1024, 1024), 0), ((4096, 128), 0), ((4096, 512), 0),
    ((64, 4096), 1), ((256, 1024), 1), ((1024, 1024), 1), ((4096, 256), 1),
]  # fmt: skip


def _own_sum(dt, axis: int):
    """A sum accumulating in ``dt`` (``lax.reduce`` with a zero of that dtype)."""
    return jax.jit(lambda x: lax.reduce(x, np.zeros((), dt), lax.add, (axis,)))


def main() -> None:
    out, command = out_option(__doc__, "host_bf16_reduce.py", "host_bf16_reduce.csv")
    cases = []
    for shape, axis in GRID:
        xb, xh = jnp.ones(shape, jnp.bfloat16), jnp.ones(shape, jnp.float16)
        runs = [
            (_own_sum(jnp.bfloat16, axis), (xb,)),
            (jax.jit(lambda x, a=axis: jnp.sum(x, axis=a)), (xb,)),
            (_own_sum(jnp.float16, axis), (xh,)),
        ]
        for f, a in runs:
            jax.block_until_ready(f(*a))
        predicted = [
            perfjax.predict(f, a, device="host", calibration=False).time_s for f, a in runs[:2]
        ]
        cases.append((shape, axis, runs, predicted))
    medians = interleaved_medians(
        [lambda f=f, a=a: time_loop(f, a) for *_, runs, _ in cases for f, a in runs], ROUNDS
    )
    extra: dict[str, list[float]] = {"rows": [], "minor": []}
    with result_csv(out, command,
                    f"sum accumulating in bf16 (lax.reduce), jnp.sum of bf16 (fp32 accumulation) "
                    f"and the fp16 lax.reduce; medians of {ROUNDS} interleaved rounds; perfjax's "
                    "uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["shape", "axis", "elements", "bf16_sum_ms", "fp32_accumulated_ms",
                     "fp16_sum_ms", "extra_ns_per_element", "predicted_bf16_sum_ms",
                     "predicted_fp32_accumulated_ms"])  # fmt: skip
        for i, (shape, axis, _, (p_own, p_up)) in enumerate(cases):
            t_own, t_up, t_half = medians[3 * i : 3 * i + 3]
            n = int(np.prod(shape))
            ns = (t_own - t_up) / n * 1e9
            extra["minor" if axis == len(shape) - 1 else "rows"].append(ns)
            wr.writerow(["x".join(map(str, shape)), axis, n, f"{t_own * 1e3:.4f}",
                         f"{t_up * 1e3:.4f}", f"{t_half * 1e3:.4f}", f"{ns:.3f}",
                         f"{p_own * 1e3:.4f}", f"{p_up * 1e3:.4f}"])  # fmt: skip
            print(f"{'x'.join(map(str, shape)):>10s} axis {axis}: bf16 sum {t_own * 1e3:7.3f} ms, "
                  f"fp32-accumulated {t_up * 1e3:7.3f}, fp16 sum {t_half * 1e3:7.3f}; "
                  f"+{ns:.2f} ns/element; predicted {p_own * 1e3:7.3f} / {p_up * 1e3:7.3f} ms")  # fmt: skip
    for where, ns in extra.items():
        if ns:
            print(f"bf16 sums over {where}: median +{statistics.median(ns):.2f} ns per element")


if __name__ == "__main__":
    main()
