"""The step in a call's time once its GEMMs add up to ~140 KFLOP, split or not.

    python benchmarks/host_call_wake.py        # ~1 min on 2 cores

A loop split over XLA:CPU's thread pool wakes the pool (``wake_log`` in perfjax's CPU model);
GEMMs are split by their library and pay no such wake-up at their split
(benchmarks/host_gemm_wake.py). They do pay a smaller step well before it: a 42^3 fp32 GEMM
takes twice a 40^3 one. The step follows the call's matrix FLOPs, not one GEMM's: a chain of
three 32^3 GEMMs (65 KFLOP each) pays it, one GEMM does not
(``perfjax.devicemodels._cpu.call_wake_share``). Near the step (131-170 KFLOP: a chain of two,
GEMMs of 42-44, matrix-vector products of 256-288) a case reads either side from run to run:
three runs agreed elsewhere within a few microseconds.

Measured (fp32; a plain ``jax.jit`` loop, medians of 7 interleaved rounds): square GEMMs of
32-48, matrix-vector products ``x @ w`` with 224-320 columns, chains ``x @ w @ w ...`` of 1-6
GEMMs of 32^3, two independent GEMMs of 32^3 and 40^3 in one call, bf16 GEMMs of 32 and 36
and 3x3 convolutions of 4 channels on 4x4 and 8x8 images; perfjax's uncalibrated
host prediction and the model's share of the pool's wake-up for the call. Reported: each case's
time against the one before it of its kind.

Writes benchmarks/results/host_call_wake.csv (``--out``: another name there).
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

ROUNDS = 7
S = jax.ShapeDtypeStruct
F32 = jnp.float32


def _chain(length: int):
    def f(x, w):
        for _ in range(length):
            x = x @ w
        return x

    return f


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip


def _cases():
    """(kind, size, matrix FLOPs, function, argument shapes)."""
    for n in (32, 36, 40, 42, 44, 48):
        yield "gemm", n, 2 * n**3, (lambda x, w: x @ w), (S((n, n), F32), S((n, n), F32))
    for n in (224, 256, 272, 288, 320):
        yield "matvec", n, 2 * n * n, (lambda x, w: x @ w), (S((1, n), F32), S((n, n), F32))
    for length in (1, 2, 3, 4, 6):
        shapes = (S((32, 32), F32), S((32, 32), F32))
        yield "chain32", length, 2 * 32**3 * length, _chain(length), shapes
    for n in (32, 40):
        shapes = (S((n, n), F32), S((n, n), F32), S((n, n), F32))
        yield "pair", n, 4 * n**3, (lambda x, y, w: (x @ w, y @ w)), shapes
    # Not modelled: bf16 GEMMs and Eigen's spatial convolutions step at fewer FLOPs.
    for n in (32, 36):
        shapes = (S((n, n), jnp.bfloat16), S((n, n), jnp.bfloat16))
        yield "gemm_bf16", n, 2 * n**3, (lambda x, w: x @ w), shapes
    for hw in (4, 8):
        shapes = (S((1, hw, hw, 4), F32), S((3, 3, 4, 4), F32))
        yield "conv3x3", hw, 2 * hw * hw * 9 * 16, _conv, shapes


def main() -> None:
    out, command = out_option(__doc__, "host_call_wake.py", "host_call_wake.csv")
    from perfjax.devicemodels import default_params, device, pack, resolve
    from perfjax.devicemodels._models import (
        executed_matrix_flops,
        kernel_times,
        wake_share,
        waking_pool_use,
    )
    from perfjax.fusion import fuse

    params, spec = default_params("cpu"), device("host")
    cases = []
    for kind, size, flops, fn, shapes in _cases():
        f = jax.jit(fn)
        args = tuple(jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
        jax.block_until_ready(f(*args))
        pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        k = fuse(perfjax.analyze(fn, shapes), "cpu")
        arrays = k.arrays()
        t = kernel_times(arrays, pack(spec), params, resolve(k, spec).arrays(), "cpu")
        share = wake_share(jnp.max(waking_pool_use(arrays, t)),
                           jnp.sum(executed_matrix_flops(arrays)), "cpu")  # fmt: skip
        cases.append((kind, size, flops, f, args, pred, float(share)))
    medians = interleaved_medians([lambda f=f, a=a: time_loop(f, a) for _, _, _, f, a, _, _ in cases],
                                  ROUNDS)  # fmt: skip
    with result_csv(out, command,
                    f"square GEMMs, matrix-vector products, chains of 32^3 GEMMs and pairs of "
                    f"independent GEMMs (fp32), bf16 GEMMs, 3x3 convolutions; medians of {ROUNDS} interleaved rounds; perfjax's "
                    "uncalibrated host predictions and the model's share of the pool's wake-up "
                    "for the call") as wr:  # fmt: skip
        wr.writerow(["kind", "size", "matrix_kflop", "measured_us", "predicted_us", "wake_share"])
        last: dict[str, float] = {}
        for (kind, size, flops, _, _, pred, share), t in zip(cases, medians, strict=True):
            wr.writerow([kind, size, f"{flops / 1e3:.1f}", f"{t * 1e6:.1f}", f"{pred * 1e6:.1f}",
                         f"{share:.2f}"])  # fmt: skip
            step = f" ({t * 1e6 - last[kind]:+.1f} us)" if kind in last else ""
            print(f"{kind:8s} {size:4d} {flops / 1e3:7.1f} KFLOP: measured {t * 1e6:6.1f} us{step}, "
                  f"predicted {pred * 1e6:6.1f}, wake share {share:.2f}")  # fmt: skip
            last[kind] = t * 1e6


if __name__ == "__main__":
    main()
