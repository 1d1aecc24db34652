"""What a fresh output buffer costs XLA:CPU on this machine, by size.

    python benchmarks/host_first_touch.py        # ~1 min on 2 cores

XLA:CPU allocates every output of a call with the C library's ``malloc``. glibc serves blocks of
32 MiB and more (its largest mmap threshold) with a fresh ``mmap`` and returns them to the
operating system when freed, so such an output's pages are new on every call: each page pays a
page fault, and the kernel zeroes it, the first time the program writes it. Smaller blocks come
back from the heap already mapped.

Measured: ``x * 1.5`` over float32 arrays of 2-128 MiB, (a) as written, a fresh output every
call, and (b) with the input donated (``donate_argnums=0``), so that the output reuses the
input's buffer and no page is new. The difference per 4 KiB page is the first-touch cost that
perfjax's CPU model charges per byte of fresh output (``Kernels.fresh_bytes``,
``first_touch_s_per_byte`` in ``perfjax.devicemodels.PRIORS["cpu"]``, fitted by a calibration).
Times are medians of 5 interleaved rounds of 15 calls each.

Writes benchmarks/results/host_first_touch.csv.
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import result_csv  # noqa: E402

SIZES_MIB = (2, 4, 8, 16, 24, 31, 33, 40, 48, 64, 96, 128)
ROUNDS = 5
CALLS = 15
PAGE = 4096


def time_fresh(fn, x) -> float:
    fn(x).block_until_ready()
    ts = []
    for _ in range(CALLS):
        t = time.perf_counter()
        y = fn(x)
        y.block_until_ready()
        ts.append(time.perf_counter() - t)
        del y
    return float(np.median(ts))


def time_donated(fn, x) -> float:
    x = fn(jnp.array(x))
    ts = []
    for _ in range(CALLS):
        t = time.perf_counter()
        x = fn(x)
        x.block_until_ready()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    fresh_fn = jax.jit(lambda x: x * 1.5)
    donated_fn = jax.jit(lambda x: x * 1.5, donate_argnums=0)
    rng = np.random.default_rng(0)
    arrays = {mib: jnp.asarray(rng.random(mib * 2**20 // 4, np.float32)) for mib in SIZES_MIB}
    fresh: dict[int, list[float]] = {m: [] for m in SIZES_MIB}
    donated: dict[int, list[float]] = {m: [] for m in SIZES_MIB}
    for r in range(ROUNDS):
        for mib in SIZES_MIB if r % 2 == 0 else SIZES_MIB[::-1]:
            fresh[mib].append(time_fresh(fresh_fn, arrays[mib]))
            donated[mib].append(time_donated(donated_fn, arrays[mib]))
    with result_csv("host_first_touch.csv", "python benchmarks/host_first_touch.py",
                    f"x * 1.5 over float32; medians of {ROUNDS} rounds of {CALLS} calls") as w:  # fmt: skip
        w.writerow(["output_mib", "fresh_ms", "donated_ms", "extra_ms", "extra_us_per_page"])
        for mib in SIZES_MIB:
            f, d = float(np.median(fresh[mib])), float(np.median(donated[mib]))
            per_page = (f - d) / (mib * 2**20 / PAGE) * 1e6
            w.writerow([mib, f"{f * 1e3:.3f}", f"{d * 1e3:.3f}", f"{(f - d) * 1e3:.3f}",
                        f"{per_page:.3f}"])  # fmt: skip
            print(f"{mib:4d} MiB  fresh {f * 1e3:8.3f} ms  donated {d * 1e3:8.3f} ms  "
                  f"extra {per_page:6.3f} us/page")  # fmt: skip


if __name__ == "__main__":
    main()
