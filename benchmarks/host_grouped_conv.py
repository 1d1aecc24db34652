"""Grouped and depthwise convolutions: XLA:CPU's time per output element.

    python benchmarks/host_grouped_conv.py        # ~1 min on 2 cores

XLA:CPU (jax 0.10) hands grouped convolutions to YNNPACK, which runs them far below its dense
rate: a depthwise 3x3 convolution costs about as much per output element whatever its size.
perfjax prices a grouped convolution as the dense model (an implicit GEMM per group, its output
features padded to the vector tile) times a rate factor, ``PRIORS["cpu"]["grouped"]``
(``grouped_log``, fitted by a calibration). This measures:

* depthwise 3x3 convolutions over 11 shapes (8-56 pixels square, 16-512 features, batch 1-8,
  stride 1 and 2);
* 128-feature 3x3 convolutions over 28 x 28 with 1-64 features per group, a 5x5 depthwise one
  and 1x1 grouped ones.

Reported per case: the library XLA:CPU calls (from the compiled HLO), the measured time (a
plain ``jax.jit`` loop, medians of 5 interleaved rounds), ns per output element, GFLOP/s and
perfjax's uncalibrated host prediction over the measured time.

Writes benchmarks/results/host_grouped_conv.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402
from host_conv_channels import _library  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
S = jax.ShapeDtypeStruct
#: (side, features, batch, stride, features per group, taps)
DEPTHWISE = [(56, 16, 1, 1), (56, 32, 1, 1), (28, 96, 1, 1), (28, 128, 1, 1), (14, 512, 1, 1),
             (8, 96, 4, 1), (16, 144, 2, 1), (32, 32, 2, 1), (28, 256, 1, 2), (14, 96, 8, 1),
             (56, 32, 8, 1)]  # fmt: skip
CASES = [(*d, 1, 3) for d in DEPTHWISE] + [
    *[(28, 128, 1, 1, g, 3) for g in (2, 4, 8, 16, 32, 64)],
    (28, 128, 1, 1, 1, 5),
    (28, 128, 1, 1, 8, 1),
]


def _grouped(stride: int, groups: int):
    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )  # fmt: skip

    return conv


def main() -> None:
    out, command = out_option(__doc__, "host_grouped_conv.py", "host_grouped_conv.csv")
    cases = []
    for side, feats, batch, stride, per_group, taps in CASES:
        fn = _grouped(stride, feats // per_group)
        shapes = (S((batch, side, side, feats), jnp.float32),
                  S((taps, taps, per_group, feats), jnp.float32))  # fmt: skip
        args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
        f = jax.jit(fn)
        jax.block_until_ready(f(*args))
        outputs = batch * (-(-side // stride)) ** 2 * feats
        flops = 2.0 * outputs * taps * taps * per_group
        pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        cases.append(((side, feats, batch, stride, per_group, taps), outputs, flops,
                      _library(f, args), f, args, pred))  # fmt: skip
    medians = interleaved_medians([lambda f=c[4], a=c[5]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    f"grouped fp32 convolutions (SAME); medians of {ROUNDS} interleaved rounds; "
                    "the library XLA:CPU calls; perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["side", "features", "batch", "stride", "features_per_group", "taps",
                     "library", "measured_us", "ns_per_output", "gflop_per_s",
                     "predicted_over_measured"])  # fmt: skip
        for (key, outputs, flops, lib, _, _, pred), t in zip(cases, medians, strict=True):
            side, feats, batch, stride, per_group, taps = key
            wr.writerow([side, feats, batch, stride, per_group, f"{taps}x{taps}", lib,
                         f"{t * 1e6:.1f}", f"{t / outputs * 1e9:.2f}", f"{flops / t / 1e9:.2f}",
                         f"{pred / t:.2f}"])  # fmt: skip
            print(f"{batch}x{side}x{side}x{feats} s{stride} {per_group:2d}/group {taps}x{taps} "
                  f"({lib:7s}): {t * 1e6:8.1f} us, {t / outputs * 1e9:6.2f} ns/output, "
                  f"predicted {pred / t:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
