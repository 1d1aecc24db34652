"""Which convolutions XLA:CPU splits over its cores: pinned to one core against all of them.

    python benchmarks/host_conv_weight_split.py        # ~3 min on 2 cores
    python benchmarks/host_conv_weight_split.py --out host_conv_weight_split_epyc.csv

A dense convolution alone (no reduction after it) runs in one YNNPACK fusion that XLA:CPU
splits over its thread pool only by blocks of output features, and only once its weights are
large enough. ``perfjax/fusion/_kernels.py`` prices that as ``Kernels.parallel_units``: one
unit below the weight threshold, ``out_features // 64`` units above it.

Measured: NHWC fp32 convolutions (batch 4, 14 x 14, SAME padding, stride 1) with 1x1, 3x3 and
5x5 windows over a grid of input and output features (weights of 128 KiB to 4 MiB), each timed
by a plain ``jax.jit`` loop in a child process pinned to one core (``os.sched_setaffinity``
before jax starts its thread pool) and in one allowed every core; medians of 3 interleaved
rounds in each. The speed-up is the one-core time over the all-core time.

Writes benchmarks/results/host_conv_weight_split.csv (``--out``: another name there).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

ROUNDS = 3
BATCH, HW = 4, 14
#: (window, input features, output features): weights of 128 KiB to 4 MiB.
GRID = [
    (k, cin, cout)
    for k in (1, 3, 5)
    for cin in (32, 64, 96, 128, 256, 512)
    for cout in (32, 64, 128, 256)
    if 128 * 1024 <= k * k * cin * cout * 4 <= 4 * 2**20
]


def child(cores: int) -> None:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import jax
    import jax.numpy as jnp
    from _machine import interleaved_medians, time_loop

    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    f = jax.jit(conv)
    cases = []
    for k, cin, cout in GRID:
        args = (
            jnp.ones((BATCH, HW, HW, cin), jnp.float32),
            jnp.ones((k, k, cin, cout), jnp.float32),
        )
        jax.block_until_ready(f(*args))
        cases.append(args)
    medians = interleaved_medians([lambda a=a: time_loop(f, a) for a in cases], ROUNDS)
    print(json.dumps(medians))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        return
    from _machine import out_option, result_csv

    out, command = out_option(__doc__, "host_conv_weight_split.py", "host_conv_weight_split.csv")
    all_cores = len(os.sched_getaffinity(0))
    if all_cores < 2:
        raise SystemExit("host_conv_weight_split.py needs at least 2 cores to compare with one.")
    times = {}
    for cores in (1, all_cores):
        res = subprocess.run([sys.executable, __file__, "--child", str(cores)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        times[cores] = json.loads(res.stdout.strip().splitlines()[-1])
    split, kept = [], []
    with result_csv(out, command,
                    f"dense NHWC fp32 convolutions, batch {BATCH}, {HW}x{HW}, SAME, stride 1: "
                    f"one core vs {all_cores}; medians of {ROUNDS} interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["window", "in_features", "out_features", "weight_kib", "one_core_ms",
                     "all_cores_ms", "speedup"])  # fmt: skip
        for (k, cin, cout), t1, tn in zip(GRID, times[1], times[all_cores], strict=True):
            kib = k * k * cin * cout * 4 / 1024
            wr.writerow([k, cin, cout, f"{kib:.0f}", f"{t1 * 1e3:.4f}", f"{tn * 1e3:.4f}",
                         f"{t1 / tn:.3f}"])  # fmt: skip
            (split if t1 / tn > 1.4 else kept).append((kib, cout))
            print(f"{k}x{k} {cin:4d} -> {cout:4d} ({kib:5.0f} KiB): one core {t1 * 1e3:7.3f} ms, "
                  f"{all_cores} cores {tn * 1e3:7.3f} ms  x{t1 / tn:.2f}")  # fmt: skip
    print(f"split (x > 1.4): out_features >= {min(c for _, c in split)}, weights >= "
          f"{min(w for w, _ in split):.0f} KiB; not split with out_features >= 128 up to "
          f"{max((w for w, c in kept if c >= 128), default=0):.0f} KiB; median speed-up when "
          f"split x{statistics.median(t1 / tn for t1, tn in zip(times[1], times[all_cores]) if t1 / tn > 1.4):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
