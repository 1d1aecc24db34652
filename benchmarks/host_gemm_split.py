"""Where XLA:CPU splits a GEMM of small K over its thread pool: by the bytes it writes, as a loop.

    python benchmarks/host_gemm_split.py        # ~40 s on 2 cores

A kernel split into tasks over the pool pays the hand-off and the pool's wake-up, tens of
microseconds on a VM: its time jumps at the size where the split switches on. This sweeps the
output size of ``(M, K) @ (K, N)`` fp32 GEMMs with K = 1 (an outer product: XLA rewrites it as
an elementwise loop), 2, 4 and 8, square-ish outputs from 16 KB to 2 MB, and of matrix-vector
products (M = 1, K = N) over 256 KB to 2 MB of weights. A GEMM of small K jumps where the loop
does, at 400-500 KB written, far below where its arithmetic alone would split it; a
matrix-vector product jumps at about 1.5x those bytes. perfjax's CPU model splits a GEMM by its
FLOPs or by its bytes (a matrix-vector product's scaled by ``_MATVEC_SPLIT_SCALE``), whichever
splits first (``perfjax.devicemodels._cpu.pool_use``); the ``model_split`` column is that share
(0..1) with the prior parameters.

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_gemm_split.csv.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import perfjax
from perfjax.devicemodels import default_params
from perfjax.devicemodels._cpu import pool_use
from perfjax.fusion import fuse

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, result_csv, time_loop  # noqa: E402

ROUNDS = 5
OUTPUTS = ((64, 64), (128, 128), (128, 256), (192, 256), (256, 256), (256, 320), (256, 384),
           (320, 384), (384, 384), (384, 448), (384, 512), (512, 512), (768, 512), (1024, 512))  # fmt: skip
KS = (1, 2, 4, 8)
MATVEC_N = (256, 300, 340, 362, 400, 450, 512, 600, 724)


def model_split(m: int, k: int, n: int) -> float:
    """The share of the GEMM's kernel the CPU model splits over the pool (priors)."""
    x = (jax.ShapeDtypeStruct((m, k), jnp.float32), jax.ShapeDtypeStruct((k, n), jnp.float32))
    arrays = fuse(perfjax.analyze(lambda a, b: a @ b, x), "cpu").arrays()
    return float(jnp.max(pool_use(jax.tree.map(jnp.asarray, arrays), default_params("cpu"))))


def cases() -> list[tuple[str, int, int, int]]:
    out = [(f"k{k}", m, k, n) for k in KS for m, n in OUTPUTS]
    return out + [("matvec", 1, n, n) for n in MATVEC_N]


def main() -> None:
    rng = np.random.default_rng(0)
    f = jax.jit(lambda a, b: a @ b)
    prepared = []
    for name, m, k, n in cases():
        a = jnp.asarray(rng.random((m, k), np.float32))
        b = jnp.asarray(rng.random((k, n), np.float32))
        jax.block_until_ready(f(a, b))
        prepared.append((name, m, k, n, a, b, model_split(m, k, n)))
    medians = interleaved_medians(
        [lambda c=c: time_loop(f, (c[4], c[5]), min_s=0.05) for c in prepared], ROUNDS
    )
    with result_csv("host_gemm_split.csv", "python benchmarks/host_gemm_split.py",
                    f"(M, K) @ (K, N) float32; medians of {ROUNDS} interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["case", "m", "k", "n", "written_kb", "weights_kb", "time_us", "vs_smallest",
                     "model_split"])  # fmt: skip
        for name in dict.fromkeys(c[0] for c in prepared):
            rows = [(c, t) for c, t in zip(prepared, medians, strict=True) if c[0] == name]
            base = rows[0][1]
            for (_, m, k, n, _, _, split), t in rows:
                wr.writerow([name, m, k, n, m * n * 4 // 1024, k * n * 4 // 1024, f"{t * 1e6:.1f}",
                             f"{t / base:.2f}", f"{split:.2f}"])  # fmt: skip
                print(f"{name:6s} {m:5d} x {k:4d} x {n:5d}: {t * 1e6:7.1f} us ({t / base:4.1f} x "
                      f"smallest)  model split {split:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
