"""Whether a reduction after a convolution lets XLA:CPU split it over the batch: dense vs grouped.

    python benchmarks/host_grouped_conv_split.py        # ~1 min on 2 cores
    python benchmarks/host_grouped_conv_split.py --out host_grouped_conv_split_epyc.csv

XLA:CPU's YNNPACK fusions split a dense convolution over its cores only in blocks of weights,
or, when reductions alone consume its result (pooling, a sum), over the batch in pairs of
images: the convolution and its reduction are then one YNNPACK fusion. A batch normalisation
also reads the convolution's output elementwise, so the two stay apart and the convolution is
not split (``perfjax/fusion/_kernels.py``, module notes). Depthwise (grouped)
convolutions do not take the second path: with the statistics of a batch normalisation after
them they take as long as alone, on one core, while perfjax used to halve them, pricing
MobileNet-V2's depthwise layers at half their time.

Measured: 3x3 convolutions (NHWC, fp32, SAME padding) over a grid of batch, size and features,
depthwise and dense, each alone, followed by ``y - mean(y, axis=(0, 1, 2))`` (the statistics
and an elementwise consumer) and by ``mean(y, axis=(0, 1, 2))`` alone (the statistics only); a
plain ``jax.jit`` loop, medians of 5 interleaved rounds.

Writes benchmarks/results/host_grouped_conv_split.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import statistics
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

ROUNDS = 5
#: (batch, height = width, features, stride)
GRID = [(4, 16, 48, 2), (8, 16, 48, 1), (16, 8, 96, 1)]
GRID += [(8, 28, 32, 1), (4, 14, 64, 1), (8, 8, 144, 1)]


def conv(x, w, stride: int, groups: int):
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )  # fmt: skip


def with_batch_statistics(x, w, stride: int, groups: int):
    y = conv(x, w, stride, groups)
    return y - jnp.mean(y, axis=(0, 1, 2))


def statistics_only(x, w, stride: int, groups: int):
    return jnp.mean(conv(x, w, stride, groups), axis=(0, 1, 2))


def main() -> None:
    out, command = out_option(__doc__, "host_grouped_conv_split.py", "host_grouped_conv_split.csv")
    cases = []
    for b, hw, c, s in GRID:
        for groups in (c, 1):
            x = jnp.ones((b, hw, hw, c), jnp.float32)
            w = jnp.ones((3, 3, c // groups, c), jnp.float32)
            fs = [jax.jit(lambda x, w, f=f, s=s, g=groups: f(x, w, s, g))
                  for f in (conv, with_batch_statistics, statistics_only)]  # fmt: skip
            for f in fs:
                jax.block_until_ready(f(x, w))
            cases.append(((b, hw, c, s, "depthwise" if groups > 1 else "dense"), fs, (x, w)))
    medians = interleaved_medians(
        [lambda f=f, a=a: time_loop(f, a) for _, fs, a in cases for f in fs], ROUNDS
    )
    ratios: dict[str, list[tuple[float, float]]] = {}
    with result_csv(out, command,
                    f"3x3 convolutions alone, with batch statistics after them and with the "
                    f"statistics only; medians of {ROUNDS} interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["batch", "hw", "features", "stride", "conv", "alone_ms", "with_stats_ms",
                     "ratio", "stats_only_ms", "stats_only_ratio"])  # fmt: skip
        for ((b, hw, c, s, kind), _, _), t0, t1, t2 in zip(
            cases, medians[0::3], medians[1::3], medians[2::3], strict=True
        ):
            wr.writerow([b, hw, c, s, kind, f"{t0 * 1e3:.4f}", f"{t1 * 1e3:.4f}", f"{t1 / t0:.3f}",
                         f"{t2 * 1e3:.4f}", f"{t2 / t0:.3f}"])  # fmt: skip
            ratios.setdefault(kind, []).append((t1 / t0, t2 / t0))
            print(f"{kind:9s} b{b:3d} {hw:3d}x{hw:<3d}x{c:4d} s{s}: alone {t0 * 1e3:7.3f} ms, "
                  f"with statistics {t1 * 1e3:7.3f} ms  x{t1 / t0:.2f}, statistics only "
                  f"{t2 * 1e3:7.3f} ms  x{t2 / t0:.2f}")  # fmt: skip
    for kind, r in ratios.items():
        print(
            f"{kind}: / alone, median x{statistics.median(a for a, _ in r):.2f} with statistics,"
            f" x{statistics.median(b for _, b in r):.2f} statistics only"
        )


if __name__ == "__main__":
    main()
