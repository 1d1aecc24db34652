"""Dense convolutions of few input features: XLA:CPU's time per output against K.

    python benchmarks/host_conv_k.py        # ~1 min on 2 cores

An implicit-GEMM convolution contracts K = taps x input features per output element. perfjax's
convolution model reaches half its rate at ``k_half`` (``PRIORS["cpu"]["k_half"]``, fitted by a
calibration), which prices a convolution at 2 x (K + k_half) FLOPs per output: the cost per
output element stays above a floor however few the input features. This measures that floor:
1x1 and 3x3 filters at stride 1 over 4 x 56 x 56 fp32 images, from 1-128 input features into
32 or 128 output features (weights small enough that YNNPACK keeps each on one core), and
the time per output element, GFLOP/s and the library XLA:CPU calls.

Reported per case: the measured time (a plain ``jax.jit`` loop, medians of 5 interleaved
rounds), ns per output element, GFLOP/s, and perfjax's uncalibrated host prediction.

Writes benchmarks/results/host_conv_k.csv (``--out``: another name there).
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
from host_conv_channels import _conv, _library  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
BATCH, SIDE = 4, 56
S = jax.ShapeDtypeStruct


def main() -> None:
    out, command = out_option(__doc__, "host_conv_k.py", "host_conv_k.csv")
    cases = []
    for taps in (1, 3):
        for cin in (1, 2, 3, 4, 8, 16, 32, 64, 128):
            for cout in (32, 128):
                shapes = (S((BATCH, SIDE, SIDE, cin), jnp.float32),
                          S((taps, taps, cin, cout), jnp.float32))  # fmt: skip
                args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
                f = jax.jit(_conv)
                jax.block_until_ready(f(*args))
                outputs = BATCH * SIDE * SIDE * cout
                flops = 2.0 * outputs * taps * taps * cin
                pred = perfjax.predict(_conv, shapes, device="host", calibration=False).time_s
                cases.append((taps, cin, cout, outputs, flops, _library(f, args), f, args, pred))
    medians = interleaved_medians([lambda f=c[6], a=c[7]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    f"1x1 and 3x3 convolutions (stride 1, SAME) over {BATCH}x{SIDE}x{SIDE} fp32 "
                    f"images, 1-128 input and 32 or 128 output features; medians of {ROUNDS} "
                    "interleaved rounds; the library XLA:CPU calls; perfjax's uncalibrated "
                    "host predictions") as wr:  # fmt: skip
        wr.writerow(["taps", "in_channels", "out_channels", "k", "library", "measured_us",
                     "ns_per_output", "gflop_per_s", "predicted_us"])  # fmt: skip
        for (taps, cin, cout, outputs, flops, lib, _, _, pred), t in zip(
            cases, medians, strict=True
        ):
            wr.writerow([f"{taps}x{taps}", cin, cout, taps * taps * cin, lib, f"{t * 1e6:.1f}",
                         f"{t / outputs * 1e9:.3f}", f"{flops / t / 1e9:.1f}",
                         f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"{taps}x{taps} {cin:3d} -> {cout:3d} ({lib:7s}): {t * 1e6:8.1f} us, "
                  f"{t / outputs * 1e9:6.3f} ns/output, {flops / t / 1e9:5.1f} GFLOP/s; "
                  f"predicted {pred * 1e6:8.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
