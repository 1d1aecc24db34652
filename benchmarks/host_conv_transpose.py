"""Input gradients of strided convolutions on XLA:CPU: convolutions over a dilated input.

    python benchmarks/host_conv_transpose.py        # ~2 min on 2 cores

The gradient of a strided convolution with respect to its input is a convolution over the
output gradient dilated by the stride (``lhs_dilation``: XLA's ``convolution-base-dilated``),
stride 1. Only the taps that land on a real element do arithmetic (1/4 of them at stride 2),
and that is what perfjax counts as its FLOPs. XLA:CPU (jax 0.10) runs every such convolution
through Eigen's generic convolution, never YNNPACK, and Eigen does not skip the zeros. This
measures, for dense and depthwise (one group per feature) 3x3 and 5x5 convolutions, the forward
pass and the input gradient at stride 1 and 2, over 2 and 8 images of 16 x 16 and 32 x 32:

* ``flop_dilated``: the multiply-adds of every (output, tap) pair over the dilated input (the
  ones Eigen does);
* ``flop_valid``: those on real elements (XLA's ``cost_analysis`` and perfjax count these).

Reported per case: the library (from the compiled HLO), the measured time (a plain ``jax.jit``
loop, medians of 5 interleaved rounds), GFLOP/s over the dilated count, and perfjax's
uncalibrated host prediction.

Writes benchmarks/results/host_conv_transpose.csv (``--out``: another name there).
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
from host_conv_fallback import _conv  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
S = jax.ShapeDtypeStruct


def _input_grad(stride: int, groups: int):
    conv = _conv(stride, groups)

    def grad(x, w, g):
        return jax.vjp(lambda x: conv(x, w), x)[1](g)[0]

    return grad


def _cases() -> list[tuple[str, int, int, int, int, int]]:
    """(path, features, taps, images, side, stride)."""
    dense = [("dense", c, taps, b, side, s)
             for c, taps, b, side, s in itertools.product((32, 64), (3, 5), (2, 8), (16, 32), (1, 2))]  # fmt: skip
    depthwise = [("depthwise", c, taps, b, side, s)
                 for c, taps, b, side, s in itertools.product((16, 48), (3, 5), (2, 8), (16, 32), (1, 2))]  # fmt: skip
    return dense + depthwise


def main() -> None:
    out, command = out_option(__doc__, "host_conv_transpose.py", "host_conv_transpose.csv")
    cases = []
    for path, c, taps, b, side, stride in _cases():
        groups = c if path == "depthwise" else 1
        side_out = -(-side // stride)
        x = S((b, side, side, c), jnp.float32)
        w = S((taps, taps, c // groups, c), jnp.float32)
        g = S((b, side_out, side_out, c), jnp.float32)
        for which, fn, shapes in (("forward", _conv(stride, groups), (x, w)),
                                  ("input_grad", _input_grad(stride, groups), (x, w, g))):  # fmt: skip
            args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
            f = jax.jit(fn)
            jax.block_until_ready(f(*args))
            # Every (output, tap) pair: the forward's outputs, or the gradient's (the input's
            # positions) over the dilated output gradient.
            positions = b * (side_out if which == "forward" else side) ** 2
            dilated = 2.0 * positions * c * taps * taps * (c // groups)
            valid = f.lower(*args).compile().cost_analysis().get("flops", 0.0)
            pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
            cases.append((path, c, taps, b, side, stride, which, dilated, valid,
                          _library(f, args), f, args, pred))  # fmt: skip
    medians = interleaved_medians([lambda f=c[10], a=c[11]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    "dense and depthwise convolutions (SAME, fp32) and their input gradients on "
                    f"XLA:CPU; medians of {ROUNDS} interleaved rounds; the library XLA:CPU "
                    "calls; perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["path", "features", "taps", "batch", "side", "stride", "pass",
                     "mflop_dilated", "mflop_valid", "library", "measured_us",
                     "gflop_per_s_dilated", "predicted_us"])  # fmt: skip
        for cs, t in zip(cases, medians, strict=True):
            path, c, taps, b, side, stride, which, dilated, valid, lib, _, _, pred = cs
            wr.writerow([path, c, f"{taps}x{taps}", b, side, stride, which,
                         f"{dilated / 1e6:.3f}", f"{valid / 1e6:.3f}", lib, f"{t * 1e6:.1f}",
                         f"{dilated / t / 1e9:.2f}", f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"{path:9s} {c:3d} {taps}x{taps} b{b} {side}x{side} s{stride} {which:10s} "
                  f"({lib:7s}): {t * 1e6:8.1f} us, {dilated / t / 1e9:6.1f} GFLOP/s dilated; "
                  f"predicted {pred * 1e6:8.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
