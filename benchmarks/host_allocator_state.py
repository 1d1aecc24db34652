"""How a process's allocation history moves XLA:CPU timings: the C library's allocator state.

    python benchmarks/host_allocator_state.py        # ~1.5 min on 2 cores

XLA:CPU allocates every output (and a fused kernel's scratch) with glibc's ``malloc``. glibc
serves blocks above its mmap threshold with a fresh ``mmap`` and unmaps them when freed, so
their pages fault again on every call. The threshold starts at 128 KiB and rises, up to 32 MiB,
to the size of the largest mapped block the process has freed. So whether a program writing a
16 MiB output pays a page fault per 4 KiB page on every call depends on what the process ran
before: perfjax's model assumes outputs below 32 MiB reuse memory
(``FusionPolicy.fresh_output_min_bytes``), a long-running process's state.

Each case is timed in new processes (a plain ``jax.jit`` loop, two warm-up calls, medians of 5
rounds of at least 0.1 s; the median over 3 processes), in three states:

* ``fresh``: nothing run before the program;
* ``after_32mib``: a 32 MiB block allocated and freed first (``ctypes``), as any program with
  such a buffer would leave it;
* ``pinned``: ``MALLOC_MMAP_THRESHOLD_=1 GiB`` and ``MALLOC_TRIM_THRESHOLD_=4 GiB`` in the
  environment (nothing below 1 GiB is mapped afresh, the heap is never trimmed).

Writes benchmarks/results/host_allocator_state.csv (``--out``: another name there).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

PROCESSES = 3
STATES = ("fresh", "after_32mib", "pinned")
CASES = {
    "sigmoid 4M fp32 (16 MiB out)": "sigmoid",
    "x * 1.5 4M fp32 (16 MiB out)": "scale",
    "sigmoid 1M fp32 (4 MiB out)": "sigmoid_small",
    "attention b4 t128 h8 d32 (one fused kernel)": "attention",
}


def _child(state: str, case: str) -> None:
    """Times one case in this process and prints the median seconds as JSON."""
    if state == "after_32mib":
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free(libc.malloc(32 * 2**20 - 8192))
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _machine import time_loop

    key = jax.random.key(0)
    if case in ("sigmoid", "scale", "sigmoid_small"):
        n = 1 << (20 if case == "sigmoid_small" else 22)
        fn = jax.nn.sigmoid if case != "scale" else (lambda x: x * 1.5)
        args = (jax.random.normal(key, (n,), jnp.float32),)
    else:
        b, t, h, d = 4, 128, 8, 32

        def fn(q, k, v):
            s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d)
            return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)

        x = jax.random.normal(key, (b, t, h, d), jnp.float32) * 0.1
        args = (x, x, x)
    f = jax.jit(fn)
    for _ in range(2):
        jax.block_until_ready(f(*args))
    print(json.dumps(statistics.median(time_loop(f, args) for _ in range(5))))


def main() -> None:
    from _machine import out_option, result_csv

    out, command = out_option(__doc__, "host_allocator_state.py", "host_allocator_state.csv")
    results: dict[tuple[str, str], list[float]] = {}
    for p in range(PROCESSES):
        for name, case in CASES.items():
            for state in STATES if p % 2 == 0 else STATES[::-1]:
                env = dict(os.environ)
                if state == "pinned":
                    env.update(MALLOC_MMAP_THRESHOLD_=str(2**30), MALLOC_TRIM_THRESHOLD_=str(2**32))
                run = subprocess.run(
                    [sys.executable, __file__, "--child", state, case],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                results.setdefault((name, state), []).append(float(run.stdout.strip()))
    with result_csv(out, command,
                    f"medians of 5 rounds per process, median over {PROCESSES} processes per "
                    "allocator state") as w:  # fmt: skip
        w.writerow(["case", *[f"{s}_ms" for s in STATES], "fresh_over_pinned"])
        for name in CASES:
            ms = [statistics.median(results[name, s]) * 1e3 for s in STATES]
            w.writerow([name, *[f"{m:.3f}" for m in ms], f"{ms[0] / ms[2]:.2f}"])
            print(f"{name:45s} " + "  ".join(f"{s} {m:8.3f} ms" for s, m in zip(STATES, ms)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
