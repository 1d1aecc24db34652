"""Convolutions on XLA:CPU's slow paths: their rate against K and the output features.

    python benchmarks/host_conv_fallback.py        # ~2 min on 2 cores

perfjax marks ``fallback`` the dense convolutions XLA:CPU (jax 0.10) leaves to a slower path
(``perfjax.fusion`` explains which): Eigen's for at most 16 input and 16 output features,
YNNPACK's from an odd number of input features into 17-32 output features, and a window wider
than its input. Their rate is not the implicit-GEMM rate of the other convolutions scaled by one
factor: it rises much more slowly with K (taps x input features), and 8 output features run at
about half the rate of 16. This measures the grid:

* narrow (Eigen): 1, 3, 8 or 16 into 8 or 16 features, 3x3 and 5x5 filters, stride 1 and 2,
  2 and 8 images of 56 x 56;
* odd (YNNPACK): 3, 5 or 9 into 24 or 32 features, 3x3 and 5x5, stride 1, 2 and 8 images;
* small: 3x3 and 5x5 filters over 2 x 2 and 4 x 4 maps of 32 or 128 features, 1 and 8 images.

Reported per case: the library (from the compiled HLO), the measured time (a plain ``jax.jit``
loop, medians of 5 interleaved rounds), GFLOP/s, and perfjax's uncalibrated host prediction.

Writes benchmarks/results/host_conv_fallback.csv (``--out``: another name there).
"""

from __future__ import annotations

import itertools
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


def _conv(stride: int, groups: int = 1):
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=groups)  # fmt: skip

    return conv


def _cases() -> list[tuple[str, int, int, int, int, int, int]]:
    """(path, in features, out features, taps, images, side, stride)."""
    out = [("narrow", cin, cout, taps, b, 56, s)
           for cin, cout, taps, b, s in itertools.product((1, 3, 8, 16), (8, 16), (3, 5), (2, 8), (1, 2))]  # fmt: skip
    out += [("odd", cin, cout, taps, b, 56, 1)
            for cin, cout, taps, b in itertools.product((3, 5, 9), (24, 32), (3, 5), (2, 8))]  # fmt: skip
    out += [("small", c, c, taps, b, side, 1)
            for side, c, taps, b in itertools.product((2, 4), (32, 128), (3, 5), (1, 8)) if taps > side]  # fmt: skip
    return out


def main() -> None:
    out, command = out_option(__doc__, "host_conv_fallback.py", "host_conv_fallback.csv")
    from perfjax.fusion import fuse

    cases = []
    for path, cin, cout, taps, b, side, stride in _cases():
        shapes = (S((b, side, side, cin), jnp.float32), S((taps, taps, cin, cout), jnp.float32))
        args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
        fn = _conv(stride)
        f = jax.jit(fn)
        jax.block_until_ready(f(*args))
        side_out = -(-side // stride)
        flops = 2.0 * b * side_out * side_out * cout * taps * taps * cin
        pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        fallback = int(fuse(perfjax.analyze(fn, shapes), "cpu").fallback.max())
        cases.append((path, cin, cout, taps, b, side, stride, flops, _library(f, args), f, args,
                      pred, fallback))  # fmt: skip
    medians = interleaved_medians([lambda f=c[9], a=c[10]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    "dense convolutions (SAME) on XLA:CPU's slow paths, fp32; medians of "
                    f"{ROUNDS} interleaved rounds; the library XLA:CPU calls; perfjax's "
                    "uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["path", "in_channels", "out_channels", "taps", "batch", "side", "stride",
                     "k", "mflop", "library", "measured_us", "gflop_per_s", "predicted_us",
                     "fallback"])  # fmt: skip
        for c, t in zip(cases, medians, strict=True):
            path, cin, cout, taps, b, side, stride, flops, lib, _, _, pred, fb = c
            wr.writerow([path, cin, cout, f"{taps}x{taps}", b, side, stride, cin * taps * taps,
                         f"{flops / 1e6:.2f}", lib, f"{t * 1e6:.1f}", f"{flops / t / 1e9:.1f}",
                         f"{pred * 1e6:.1f}", fb])  # fmt: skip
            print(f"{path:6s} {cin:3d} -> {cout:3d} {taps}x{taps} b{b} {side}x{side} s{stride} "
                  f"({lib:7s}): {t * 1e6:8.1f} us, {flops / t / 1e9:6.1f} GFLOP/s; "
                  f"predicted {pred * 1e6:8.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
