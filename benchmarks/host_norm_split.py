"""Where XLA:CPU splits a normalisation over its pool: by what its reductions read.

    python benchmarks/host_norm_split.py        # ~30 s on 2 cores
    python benchmarks/host_norm_split.py --out host_norm_split_epyc.csv

A row sum, ``x - mean(x)``, an RMS norm, a layer norm and a softmax over 8 rows of 2048-8192
float32 columns (16384-65536 elements, 64-256 KiB). XLA:CPU runs each reduction as a YNNPACK
fusion and an elementwise pass between two reductions as its own loop (compiled HLO: the layer
norm's ``x - mean`` is a loop whose output the variance's reduction reads). A call jumps by
the pool's wake-up where a reduction is split over the pool: between 32768 and 40960 elements
(128-160 KiB read) for the sum, ``x - mean``, the RMS norm and the layer norm alike. The
softmax's time rises from fewer elements on, less sharply: YNNPACK runs its max, subtraction
and exponential as one fusion that writes the whole tensor.

perfjax's fusion puts a loop between two reductions into the reduction that reads its output
(one kernel reading x and writing ``x - mean``). Its CPU model splits a reduction by the bytes
it reads (a quarter of a loop's), such a fused output like a loop by the bytes it moves, and a
reduction with exponentials fused into it (the softmax's) by all the bytes it moves: the
``model_split`` column (the largest share of a kernel split over the pool, uncalibrated).

Times: medians of 7 interleaved rounds of the median call of a plain ``jax.jit`` loop of at
least 0.1 s (the held-out programs' timing, ``experiments/host_generalization.py``), and
perfjax's uncalibrated prediction (``calibration=False``).

Writes benchmarks/results/host_norm_split.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 7
ROWS = 8
COLUMNS = (2048, 3072, 4096, 5120, 6144, 8192)


def _mean(x):
    return x.mean(-1, keepdims=True)


def _layernorm(x):
    d = x - _mean(x)
    return d * jax.lax.rsqrt(_mean(d * d) + 1e-5)


#: The programs, each over the last axis of an 8-row float32 matrix.
PROGRAMS = {
    "row sum": lambda x: x.sum(-1),
    "x - mean": lambda x: x - _mean(x),
    "rmsnorm": lambda x: x * jax.lax.rsqrt(_mean(x * x) + 1e-6),
    "layernorm": lambda x: _layernorm(x),
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
}


def main() -> None:
    out, command = out_option(__doc__, "host_norm_split.py", "host_norm_split.csv")
    from perfjax.devicemodels import default_params
    from perfjax.devicemodels._catalog import device
    from perfjax.devicemodels._cpu import pool_use
    from perfjax.fusion._kernels import kernels_for
    from perfjax.lowering._staging import program_for
    from perfjax.prediction._predict import lowering_platform

    params = default_params("cpu")
    platform = lowering_platform(device("host"))[0]
    cases = []
    for name, fn in PROGRAMS.items():
        for cols in COLUMNS:
            spec = (jax.ShapeDtypeStruct((ROWS, cols), jnp.float32),)
            x = jax.random.normal(jax.random.key(0), (ROWS, cols), jnp.float32)
            f = jax.jit(fn)
            jax.block_until_ready(f(x))
            jax.block_until_ready(f(x))
            pred = perfjax.predict(fn, spec, device="host", calibration=False).time_s
            # The kernels the prediction prices (the host's lowering and fusion).
            k = kernels_for(program_for(fn, spec, None, platform), "cpu")
            use = float(max(pool_use(k.arrays(), params)))
            cases.append((name, cols, f, x, pred, use))
    times = interleaved_medians([lambda f=f, x=x: time_loop(f, (x,)) for _, _, f, x, _, _ in cases],
                                ROUNDS)  # fmt: skip
    with result_csv(out, command,
                    f"float32, {ROWS} rows; medians of {ROUNDS} interleaved rounds of a plain jax.jit "
                    "loop's median call; predicted: perfjax's uncalibrated model; model_split: "
                    "its largest pool share of a kernel") as w:  # fmt: skip
        w.writerow(["program", "elements", "kib", "measured_us", "predicted_us", "model_split"])
        for (name, cols, _, _, pred, use), t in zip(cases, times, strict=True):
            n = ROWS * cols
            w.writerow([name, n, n * 4 // 1024, f"{t * 1e6:.1f}", f"{pred * 1e6:.1f}",
                        f"{use:.2f}"])  # fmt: skip
            print(f"{name:10s} {n:6d} elements: measured {t * 1e6:7.1f} us, "
                  f"predicted {pred * 1e6:7.1f}, model split {use:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
