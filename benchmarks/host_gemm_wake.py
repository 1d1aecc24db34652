"""What a GEMM split over XLA:CPU's thread pool pays at the split, next to a loop.

    python benchmarks/host_gemm_wake.py        # ~1 min on 2 cores

XLA:CPU splits a loop that moves more than ~450 KB into tasks for its thread pool, and the
first split loop of a call wakes the pool: tens of microseconds on a VM, a jump in the loop's
time at the split (``wake_log`` in perfjax's CPU model, on top of the per-kernel hand-off
``fork_log``). A matrix-vector product or a GEMM is split too (``perfjax.devicemodels._cpu
.pool_use``), by the library kernel that runs it. Does it pay the same wake-up?

Measured, on either side of where the model splits each: ``x * 1.5 + 1`` over 32K-96K floats
(a loop), ``tanh(x @ w)`` with one row (a matrix-vector product, 0.26-4 MB of weights), and
``x @ w`` with 16 and 64 rows; a plain ``jax.jit`` loop, medians of 5 interleaved rounds; and
perfjax's uncalibrated host prediction with the model's share of the kernel split
(``pool_use``). Reported: each case's time against the unsplit size before it.

Writes benchmarks/results/host_gemm_wake.csv (``--out``: another name there).
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
S = jax.ShapeDtypeStruct


def _cases():
    for n in (16384, 32768, 40960, 49152, 65536, 98304):
        yield "loop", 1, n, (lambda x: x * 1.5 + 1.0), (S((n,), jnp.float32),)
    for n in (256, 362, 400, 450, 512, 724, 1024):
        yield (
            "matvec",
            1,
            n,
            (lambda x, w: jnp.tanh(x @ w)),
            (S((1, n), jnp.float32), S((n, n), jnp.float32)),
        )
    for m, ns in ((16, (128, 192, 256, 320)), (64, (64, 80, 96, 112, 128, 160))):
        for n in ns:
            yield (
                "gemm",
                m,
                n,
                (lambda x, w: x @ w),
                (S((m, n), jnp.float32), S((n, n), jnp.float32)),
            )


def main() -> None:
    out, command = out_option(__doc__, "host_gemm_wake.py", "host_gemm_wake.csv")
    cases = []
    for kind, m, n, fn, shapes in _cases():
        f = jax.jit(fn)
        args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
        jax.block_until_ready(f(*args))
        pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        cases.append((kind, m, n, f, args, pred))
    medians = interleaved_medians([lambda f=f, a=a: time_loop(f, a) for _, _, _, f, a, _ in cases],
                                  ROUNDS)  # fmt: skip
    from perfjax.devicemodels import default_params
    from perfjax.devicemodels._cpu import pool_use
    from perfjax.fusion import fuse

    params = default_params("cpu")
    with result_csv(out, command,
                    f"x * 1.5 + 1 loops, tanh(x @ w) with one row, x @ w with 16 and 64 rows (fp32); "
                    f"medians of {ROUNDS} interleaved rounds; perfjax's uncalibrated host "
                    "predictions and the model's pool share of the largest kernel") as wr:  # fmt: skip
        wr.writerow(
            ["kind", "m", "n", "bytes_moved_kb", "measured_us", "predicted_us", "model_split"]
        )
        last: dict[tuple[str, int], float] = {}
        for (kind, m, n, f, args, pred), t in zip(cases, medians, strict=True):
            g = perfjax.analyze(f, args)
            k = fuse(g, "cpu")
            use = float(max(pool_use(k.arrays(), params)))
            moved = sum(int(a.size) * a.dtype.itemsize for a in args) / 1e3
            wr.writerow(
                [kind, m, n, f"{moved:.0f}", f"{t * 1e6:.1f}", f"{pred * 1e6:.1f}", f"{use:.2f}"]
            )
            step = f" ({t * 1e6 - last[kind, m]:+.1f} us)" if (kind, m) in last else ""
            print(f"{kind:6s} m={m:<3d} n={n:<6d} {moved:8.0f} KB: measured {t * 1e6:7.1f} us{step}, "
                  f"predicted {pred * 1e6:7.1f}, split {use:.2f}")  # fmt: skip
            last[kind, m] = t * 1e6


if __name__ == "__main__":
    main()
