"""What XLA:CPU's slow path for convolutions from an odd number of input features costs, by window.

    python benchmarks/host_conv_odd_windows.py        # ~1 min on 2 cores

XLA:CPU runs a dense convolution from an odd number of input features (3: an RGB image) into
17-32 output features on a slow YNNPACK path (``benchmarks/host_conv_channels.py``). This
times that path over the windows people use on images: 1x1 to 7x7 at stride 1 and 2 (a stem),
and patch embeddings (a k x k window at stride k: ViT, ConvNeXt; over 32-224 pixel images), from 3 and 5 input features
into 32 (and 24 at 4x4), and the same layers from 4 input features (YNNPACK's fast path) as a
control. Reported per case: the window, stride, batch and image side, the GFLOP, the library in
the compiled HLO, the time (a plain ``jax.jit`` loop, medians of 5 interleaved rounds), the
GFLOP/s and perfjax's uncalibrated prediction. ``fallback`` is 1 where perfjax marks the
convolution as on the slow path.

Writes benchmarks/results/host_conv_odd_windows.csv (``--out``: another name there).
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
from host_conv_channels import _library  # noqa: E402

import perfjax  # noqa: E402
from perfjax.fusion import fuse  # noqa: E402

ROUNDS = 5
# (in features, out features, window, stride, batch, side)
CASES = [
    *[(c, 32, k, 1, 2, 56) for c in (3, 4) for k in (1, 3, 5, 7)],
    *[(c, 32, k, 2, 2, 56) for c in (3, 4) for k in (1, 3, 5, 7)],
    *[(c, 32, p, p, 2, 64) for c in (3, 4) for p in (2, 4, 8, 16)],
    *[(5, 32, k, 1, 2, 56) for k in (3, 5)],
    *[(c, 32, p, p, 2, 32) for c in (3, 4) for p in (4, 8)],
    *[(c, 32, 16, 16, 2, side) for c in (3, 4) for side in (64, 224)],
    (3, 32, 3, 1, 8, 28),
    (3, 32, 5, 1, 8, 28),
    (3, 24, 4, 4, 2, 64),
]


def conv(stride: int, padding: str):
    def fn(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip

    return fn


def main() -> None:
    out, command = out_option(__doc__, "host_conv_odd_windows.py", "host_conv_odd_windows.csv")
    built = []
    for cin, cout, k, s, b, side in CASES:
        padding = "VALID" if k == s and k > 1 else "SAME"
        fn = conv(s, padding)
        shapes = (jax.ShapeDtypeStruct((b, side, side, cin), jnp.float32),
                  jax.ShapeDtypeStruct((k, k, cin, cout), jnp.float32))  # fmt: skip
        f = jax.jit(fn)
        args = perfjax.materialize(shapes)
        library = _library(f, args)
        jax.block_until_ready(f(*args))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
            fallback = int(fuse(perfjax.analyze(fn, shapes), "cpu").fallback.max())
        out_side = side // s if padding == "SAME" else (side - k) // s + 1
        gflop = 2.0 * b * out_side * out_side * k * k * cin * cout / 1e9
        built.append(((cin, cout, k, s, b, side), f, args, library, pred, gflop, fallback))
    medians = interleaved_medians([lambda c=c: time_loop(c[1], c[2], min_s=0.1) for c in built],
                                  ROUNDS)  # fmt: skip
    with result_csv(out, command,
                    "dense convolutions into 24-32 features from 3, 4 or 5 (fp32); medians of "
                    f"{ROUNDS} interleaved rounds; the library XLA:CPU calls; perfjax's "
                    "uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["in_channels", "out_channels", "window", "stride", "batch", "side", "gflop",
                     "library", "measured_us", "gflop_per_s", "predicted_us", "fallback"])  # fmt: skip
        for (key, _, _, library, pred, gflop, fb), t in zip(built, medians, strict=True):
            wr.writerow([*key, f"{gflop:.4f}", library, f"{t * 1e6:.1f}", f"{gflop / t:.1f}",
                         f"{pred * 1e6:.1f}", fb])  # fmt: skip
            print(f"{key}: {library:8s} {t * 1e6:8.1f} us measured, {pred * 1e6:8.1f} predicted "
                  f"({gflop / t:5.1f} GFLOP/s){' fallback' if fb else ''}")  # fmt: skip


if __name__ == "__main__":
    main()
