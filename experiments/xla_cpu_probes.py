"""Probes of how XLA:CPU runs kernels on this machine: the measurements behind the CPU model's rules.

    python experiments/xla_cpu_probes.py            # ~1 minute on 2 cores

Each probe is one small jitted program, timed (median of 3 rounds of ``perfjax.run``) in a child
process pinned to one core and in one allowed every core (``os.sched_setaffinity`` before jax
starts its thread pool), with the path XLA chose read from the compiled HLO (a YNNPACK fusion, or
a bare ``convolution`` = Eigen). What the CPU model (``perfjax/devicemodels/_kernels.py``,
``_models.py``) takes from them:

* a convolution or batched matmul alone runs on one core: as fast pinned to one core as not;
  followed by a reduction (max-pool, softmax) it is split over the batch, and with enough
  weights over weight blocks (``Kernels.parallel_units``; for convolutions, blocks of 64 output
  features: ``benchmarks/host_conv_weight_split.py``);
* convolutions with <= 16 input and output features, or a window wider than the input, leave
  YNNPACK for Eigen and run far below peak (``Kernels.fallback``);
* the first loop kernel of a call with more than ~32K elements wakes the thread pool (~50 us
  here), and later ones cost little (``wake_log`` / ``fork_log``);
* bf16 matmuls without bf16 instructions convert their operands first (``upcast_*``).

Writes docs/calibration/xla_cpu_probes.csv and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration" / "xla_cpu_probes.csv"


def probes():
    """(name, fn, input shapes, dtype, FLOPs) of every probe."""
    import jax.numpy as jnp

    import perfjax.ops as F

    def conv(stride=1):
        return lambda x, w: F.conv2d(x, w, stride=stride)

    def chain(length):
        def f(x):
            for _ in range(length):
                x = F.mul(x, 1.0 / (1.0 + jnp.max(x)))
            return x

        return f

    def conv_flops(b, h, c, o, k):
        return 2.0 * b * h * h * c * o * k * k

    f32, bf16 = "float32", "bfloat16"
    return [
        ("conv 16x16x16x32 -> 64, 3x3 (72 KiB weights), alone", conv(),
         [(16, 16, 16, 32), (3, 3, 32, 64)], f32, conv_flops(16, 16, 32, 64, 3)),
        ("same convolution followed by relu + max-pool", lambda x, w: F.max_pool2d(F.relu(F.conv2d(x, w))),
         [(16, 16, 16, 32), (3, 3, 32, 64)], f32, conv_flops(16, 16, 32, 64, 3)),
        ("conv 2x14x14x64 -> 256, 3x3 (576 KiB weights)", conv(),
         [(2, 14, 14, 64), (3, 3, 64, 256)], f32, conv_flops(2, 14, 64, 256, 3)),
        ("conv 2x14x14x128 -> 256, 3x3 (1.1 MiB weights)", conv(),
         [(2, 14, 14, 128), (3, 3, 128, 256)], f32, conv_flops(2, 14, 128, 256, 3)),
        ("batched matmul 32 x 128^3, alone", lambda a, b: F.matmul(a, b),
         [(32, 128, 128), (32, 128, 128)], f32, 2.0 * 32 * 128**3),
        ("batched matmul 32 x 128^3, then softmax", lambda a, b: F.softmax(F.matmul(a, b)),
         [(32, 128, 128), (32, 128, 128)], f32, 2.0 * 32 * 128**3),
        ("matmul 1024^3 (2-D)", lambda a, b: F.matmul(a, b), [(1024, 1024), (1024, 1024)], f32, 2.0 * 1024**3),
        ("conv 8x28x28x1 -> 16, 3x3 (narrow)", conv(), [(8, 28, 28, 1), (3, 3, 1, 16)], f32,
         conv_flops(8, 28, 1, 16, 3)),
        ("conv 8x28x28x1 -> 32, 3x3", conv(), [(8, 28, 28, 1), (3, 3, 1, 32)], f32, conv_flops(8, 28, 1, 32, 3)),
        ("conv 1x2x2x128 -> 128, 3x3 (window wider than input)", conv(), [(1, 2, 2, 128), (3, 3, 128, 128)],
         f32, 2.0 * 4 * 4 * 128 * 128),  # 4 output pixels x 4 valid taps each
        ("conv 1x4x4x128 -> 128, 3x3", conv(), [(1, 4, 4, 128), (3, 3, 128, 128)], f32,
         2.0 * 100 * 128 * 128),  # (2 + 3 + 3 + 2)^2 valid (pixel, tap) pairs
        ("scale 32768 floats", lambda x: F.mul(x, 3.0), [(32768,)], f32, 32768.0),
        ("scale 65536 floats", lambda x: F.mul(x, 3.0), [(65536,)], f32, 65536.0),
        ("16 x (max, divide) over 65536 floats", chain(16), [(65536,)], f32, 16 * 2 * 65536.0),
        ("1 x (max, divide) over 65536 floats", chain(1), [(65536,)], f32, 2 * 65536.0),
        ("matmul 4 x 2048 x 2048 fp32", lambda a, b: F.matmul(a, b), [(4, 2048), (2048, 2048)], f32,
         2.0 * 4 * 2048**2),
        ("matmul 4 x 2048 x 2048 bf16", lambda a, b: F.matmul(a, b), [(4, 2048), (2048, 2048)], bf16,
         2.0 * 4 * 2048**2),
    ]  # fmt: skip


def child(cores: int) -> None:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import jax
    import jax.numpy as jnp
    import numpy as np

    from perfjax.executor import run

    out = []
    rng = np.random.default_rng(0)
    for name, fn, shapes, dtype, flops in probes():
        args = [jnp.asarray(rng.standard_normal(s), dtype) for s in shapes]
        hlo = jax.jit(fn).lower(*args).compile().as_text()
        entry = hlo.split("ENTRY", 1)[1]
        path = "Eigen convolution" if any(" convolution(" in ln for ln in entry.splitlines()) else (
            "YNNPACK fusion" if "__ynn_fusion" in entry else "XLA loop fusion")  # fmt: skip
        medians = [run(fn, args, max_time_s=0.3).time.median_s for _ in range(3)]
        out.append(
            dict(probe=name, cores=cores, time_s=float(np.median(medians)), flops=flops, path=path)
        )
    print(json.dumps(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    import pandas as pd

    all_cores = len(os.sched_getaffinity(0))
    rows = []
    for cores in sorted({1, all_cores}):
        res = subprocess.run([sys.executable, __file__, "--child", str(cores)], capture_output=True, text=True,
                             check=True)  # fmt: skip
        rows += json.loads(res.stdout.strip().splitlines()[-1])
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index="probe", columns="cores", values="time_s", sort=False)
    wide.columns = [f"time_s_{c}_core{'s' if c > 1 else ''}" for c in wide.columns]
    info = df.drop_duplicates("probe").set_index("probe")[["flops", "path"]]
    table = info.join(wide)
    if all_cores > 1:
        table["speedup_all_cores"] = table.iloc[:, 2] / table.iloc[:, 3]
        table["gflop_per_s_all_cores"] = table["flops"] / table.iloc[:, 3] / 1e9
    table["load1_after"] = os.getloadavg()[0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT, float_format="%.4g")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.drop(columns=["load1_after"]).to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
