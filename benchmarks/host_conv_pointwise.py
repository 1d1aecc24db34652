"""What XLA:CPU's 1x1 convolutions cost against the same product written as ``x @ w``.

    python benchmarks/host_conv_pointwise.py        # ~1 min on 2 cores

A 1x1 convolution at stride 1 over NHWC images computes the product of the images' pixels
(``batch x side x side`` rows of ``cin`` features) by the ``cin x cout`` weights. XLA:CPU
runs it through YNNPACK's convolution, not its GEMM. Timed here, both ways, over 3136 and 12544
pixels (4 images of 28 x 28 and 56 x 56), 16-256 input and 16-128 output features, and, as a
control, 3x3 convolutions from 32 and 128 features into as many outputs. Reported per case: the
form (``pointwise``, ``dot``, ``3x3``), rows (pixels), input and output features, the GFLOP,
the time (a plain ``jax.jit`` loop, medians of 5 interleaved rounds), the GFLOP/s and perfjax's
uncalibrated host prediction.

Writes benchmarks/results/host_conv_pointwise.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys
import warnings

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
BATCH = 4
SIDES = (28, 56)
CIN = (16, 64, 128, 256)
COUT = (16, 32, 64, 128)


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip


def cases() -> list[tuple[str, int, int, int]]:
    """(form, image side, input features, output features) of every case, in timing order."""
    out = []
    for side in SIDES:
        for cin in CIN:
            for cout in COUT:
                out += [("pointwise", side, cin, cout), ("dot", side, cin, cout)]
        for cin in (32, 128):
            out += [("3x3", side, cin, cout) for cout in COUT]
    return out


def main() -> None:
    out, command = out_option(__doc__, "host_conv_pointwise.py", "host_conv_pointwise.csv")
    S = jax.ShapeDtypeStruct
    built = []
    for form, side, cin, cout in cases():
        rows = BATCH * side * side
        if form == "dot":
            fn, shapes = (lambda x, w: x @ w), (S((rows, cin), jnp.float32),
                                                S((cin, cout), jnp.float32))  # fmt: skip
            taps = 1
        else:
            taps = 1 if form == "pointwise" else 3
            fn = conv
            shapes = (S((BATCH, side, side, cin), jnp.float32),
                      S((taps, taps, cin, cout), jnp.float32))  # fmt: skip
        f = jax.jit(fn)
        args = perfjax.materialize(shapes)
        jax.block_until_ready(f(*args))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        gflop = 2.0 * rows * taps * taps * cin * cout / 1e9
        built.append(((form, rows, cin, cout), f, args, pred, gflop))
    medians = interleaved_medians([lambda c=c: time_loop(c[1], c[2], min_s=0.05) for c in built],
                                  ROUNDS)  # fmt: skip
    with result_csv(out, command,
                    f"1x1 convolutions (stride 1) against x @ w over as many rows, and 3x3 "
                    f"convolutions, fp32, {BATCH} images; medians of {ROUNDS} interleaved "
                    "rounds; perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["form", "rows", "in_features", "out_features", "gflop", "measured_us",
                     "gflop_per_s", "predicted_us"])  # fmt: skip
        for (key, _, _, pred, gflop), t in zip(built, medians, strict=True):
            wr.writerow([*key, f"{gflop:.4f}", f"{t * 1e6:.1f}", f"{gflop / t:.1f}",
                         f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"{key}: {t * 1e6:8.1f} us measured ({gflop / t:5.1f} GFLOP/s), "
                  f"{pred * 1e6:8.1f} predicted")  # fmt: skip


if __name__ == "__main__":
    main()
