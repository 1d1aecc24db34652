"""Normalisations XLA:CPU fuses into one kernel, against the same sizes run as several kernels.

    python benchmarks/host_fused_norm.py        # ~1 min on 2 cores

XLA:CPU (jax 0.10) fuses a layer norm, an RMS norm or a softmax over the last axis into one
YNNPACK kernel when it has 4096 rows or more, and leaves fewer rows as separate reduction and
loop kernels. One fused kernel could read its input and write its output once; this measures
whether it does. For each op and row length, ``fused`` is 4096 rows and ``split`` the same
elements as 2048 rows of twice the length (several kernels). Reported per case: XLA's kernel
count (compiled HLO), the measured time (a plain ``jax.jit`` loop, medians of 5 interleaved
rounds), and perfjax's uncalibrated host prediction two ways: as it prices the fused kernel
(its passes over the rows, one call: ``FusionPolicy.normalization_passes``) and as one pass
over the input and output (``one_pass_us``).

Writes benchmarks/results/host_fused_norm.csv (``--out``: another name there).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402
from perfjax.devicemodels._calibration import params_for  # noqa: E402
from perfjax.devicemodels._catalog import device  # noqa: E402
from perfjax.devicemodels._models import pack_numpy, resolve, total_time  # noqa: E402
from perfjax.fusion import fuse  # noqa: E402
from perfjax.fusion._kernels import POLICIES, xla_cpu_kernel_count  # noqa: E402

ROUNDS = 5
ROWS = 4096
COLS = (64, 256, 512, 768, 1024, 1536)


def _layernorm(x):
    m = x.mean(-1, keepdims=True)
    return (x - m) * jax.lax.rsqrt(((x - m) ** 2).mean(-1, keepdims=True) + 1e-5)


def _rmsnorm(x):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)


OPS = {"layernorm": _layernorm, "rmsnorm": _rmsnorm, "softmax": lambda x: jax.nn.softmax(x, -1)}


def one_pass_s(fn, x) -> float:
    """The uncalibrated host prediction with a fused normalisation priced as one pass."""
    policy = dataclasses.replace(POLICIES["cpu"], normalization_passes=False)
    k = fuse(perfjax.analyze(fn, (x,)), policy)
    spec = device("host")
    res = resolve(k, spec, None).arrays()
    return float(total_time(k.arrays(), pack_numpy(spec), params_for(spec, None), res, "cpu"))


def main() -> None:
    name, command = out_option(__doc__, "host_fused_norm.py", "host_fused_norm.csv")
    cases = []
    for op, fn in OPS.items():
        f = jax.jit(fn)
        for cols in COLS:
            for path, shape in (("fused", (ROWS, cols)), ("split", (ROWS // 2, 2 * cols))):
                x = jax.random.normal(jax.random.key(0), shape, jnp.float32) * 0.1
                jax.block_until_ready(f(x))
                kernels = xla_cpu_kernel_count(f.lower(x).compile().as_text())
                prior = perfjax.predict(fn, (x,), device="host", calibration=False).time_s
                cases.append((op, path, shape, f, x, kernels, prior, one_pass_s(fn, x)))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[3], (c[4],), min_s=0.05) for c in cases], ROUNDS
    )
    with result_csv(name, command, f"float32; medians of {ROUNDS} interleaved rounds") as wr:
        wr.writerow(["op", "path", "rows", "cols", "mbytes", "xla_kernels", "time_us",
                     "predicted_us", "one_pass_us"])  # fmt: skip
        for (op, path, (rows, cols), _, _, kernels, prior, one), t in zip(
            cases, medians, strict=True
        ):
            wr.writerow([op, path, rows, cols, f"{rows * cols * 4 / 1e6:.1f}", kernels,
                         f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}", f"{one * 1e6:.1f}"])  # fmt: skip
            print(f"{op:9s} {path:5s} {rows:5d} x {cols:4d}: {kernels} kernels, {t * 1e6:7.1f} us "
                  f"(predicted {prior * 1e6:7.1f}, one pass {one * 1e6:7.1f})")  # fmt: skip
    # Fused over split (the same elements), measured and as each pricing has it.
    ratios = {"measured": [], "passes": [], "one pass": []}
    for i in range(0, len(cases), 2):
        (fused, split), (t_f, t_s) = cases[i : i + 2], medians[i : i + 2]
        for key, a, b in (("measured", t_f, t_s), ("passes", fused[6], split[6]),
                          ("one pass", fused[7], split[7])):  # fmt: skip
            ratios[key].append(a / b)
    for key, r in ratios.items():
        print(f"fused / split, {key:8s}: {min(r):.2f}-{max(r):.2f} (median {np.median(r):.2f})")


if __name__ == "__main__":
    main()
