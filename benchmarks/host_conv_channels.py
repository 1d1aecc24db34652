"""Convolutions from a few input channels: XLA:CPU's rate against the output channels.

    python benchmarks/host_conv_channels.py        # ~45 s on 2 cores

XLA:CPU (jax 0.10) hands a dense convolution to YNNPACK unless it has at most 16 input and 16
output features (then Eigen, or a dot for a 1x1 window at stride 1; perfjax marks those
``fallback``). Inside YNNPACK, a 3x3 or 5x5 filter over an odd number of input channels (3: an
RGB image) runs at a fraction of its usual rate into 24 or 32 output channels, not into 48 or
more: a step the convolution model (an implicit GEMM whose efficiency rises with K = taps x
input channels) cannot follow, so perfjax marks those ``fallback`` too. This measures the grid:
3x3 and 5x5 filters at stride 1 over 2 x 56 x 56 images with 3-8 input channels and 16-128
output channels, fp32.

Reported per case: which library runs it (from the compiled HLO), the measured time (a plain
``jax.jit`` loop, medians of 5 interleaved rounds), GFLOP/s, and perfjax's uncalibrated host
prediction and whether perfjax marks it ``fallback``.

Writes benchmarks/results/host_conv_channels.csv (``--out``: another name there).
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

import perfjax  # noqa: E402

ROUNDS = 5
BATCH, SIDE = 2, 56
S = jax.ShapeDtypeStruct


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip


def _library(f, args) -> str:
    entry = f.lower(*args).compile().as_text().split("ENTRY", 1)[-1]
    if "__ynn_fusion" in entry:
        return "ynnpack"
    if "convolution(" in entry:
        return "eigen"
    return "dot" if " dot(" in entry else "other"


def main() -> None:
    out, command = out_option(__doc__, "host_conv_channels.py", "host_conv_channels.csv")
    from perfjax.fusion import fuse

    cases = []
    for taps in (3, 5):
        for cin in (3, 4, 5, 6, 7, 8):
            for cout in (16, 24, 32, 48, 64, 128):
                shapes = (S((BATCH, SIDE, SIDE, cin), jnp.float32),
                          S((taps, taps, cin, cout), jnp.float32))  # fmt: skip
                args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
                f = jax.jit(_conv)
                jax.block_until_ready(f(*args))
                flops = 2.0 * BATCH * SIDE * SIDE * cout * taps * taps * cin
                pred = perfjax.predict(_conv, shapes, device="host", calibration=False).time_s
                kernels = fuse(perfjax.analyze(_conv, shapes), "cpu")
                fallback = int(kernels.fallback.max())
                cases.append((taps, cin, cout, flops, _library(f, args), f, args, pred, fallback))
    medians = interleaved_medians([lambda f=c[5], a=c[6]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    f"3x3 and 5x5 convolutions (stride 1, SAME) over {BATCH}x{SIDE}x{SIDE} fp32 "
                    f"images, 3-8 input and 16-128 output channels; medians of {ROUNDS} "
                    "interleaved rounds; the library XLA:CPU calls; perfjax's uncalibrated "
                    "host predictions") as wr:  # fmt: skip
        wr.writerow(["taps", "in_channels", "out_channels", "mflop", "library", "measured_us",
                     "gflop_per_s", "predicted_us", "fallback"])  # fmt: skip
        for (taps, cin, cout, flops, lib, _, _, pred, fb), t in zip(cases, medians, strict=True):
            wr.writerow([f"{taps}x{taps}", cin, cout, f"{flops / 1e6:.1f}", lib,
                         f"{t * 1e6:.1f}", f"{flops / t / 1e9:.1f}", f"{pred * 1e6:.1f}", fb])  # fmt: skip
            print(f"{taps}x{taps} {cin:2d} -> {cout:3d} ({lib:7s}): {t * 1e6:7.1f} us, "
                  f"{flops / t / 1e9:5.1f} GFLOP/s; predicted {pred * 1e6:7.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
