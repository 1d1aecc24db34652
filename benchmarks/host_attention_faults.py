"""Page faults of a fused attention's scratch, on sizes the rule was not made from.

    python benchmarks/host_attention_faults.py        # ~1.5 min on 2 cores
    python benchmarks/host_attention_faults.py --out host_attention_faults_epyc.csv

perfjax's CPU policy takes a fused attention's score-sized scratch of 64 MiB or more to fault
page by page on every call (``FusionPolicy.scratch_fault_min_bytes``: glibc hands the top of its
heap back to the system once more than its trim threshold, at most 64 MiB, is free there). The
rule was read off attention with 8 heads (``host_attention_fused.py``,
``host_attention_scratch.py``). This times Flax's ``nn.dot_product_attention`` in float32 with
12 heads (BERT-base's) and 16, head size 64, in five child processes, each of which frees a
32 MiB block first (its thresholds at their largest: the state the model assumes) and times the
whole grid: the median of 3 rounds of a plain ``jax.jit`` loop and the minor page faults per
call (``getrusage`` over 10 calls). How much glibc trims differs from process to process, so
the CSV holds the median over the processes (the faults' range too), the policy's scratch and
whether it faults, and perfjax's uncalibrated prediction with the rule and without it.

Writes benchmarks/results/host_attention_faults.csv (``--out``: another name there).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: (batch, tokens, heads, head size), float32.
GRID = [
    (2, 256, 16, 64), (4, 256, 12, 64), (4, 256, 16, 64), (8, 256, 12, 64), (8, 256, 16, 64),
    (8, 128, 16, 64), (16, 128, 12, 64), (32, 128, 12, 64),
]  # fmt: skip
ROUNDS, MIN_S, FAULT_CALLS, PROCESSES = 3, 0.2, 10, 5


def _raise_thresholds() -> None:
    """Frees a block just under 32 MiB through the C library: glibc's mmap threshold rises to
    it (and its trim threshold to twice that), as in a process that has run larger programs."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(32 * 2**20 - 8192))


def _child() -> None:
    """Times the grid in this process, its thresholds raised first; one JSON line per
    configuration: the median of the rounds and the minor page faults per call."""
    _raise_thresholds()
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from _machine import interleaved_medians, time_loop

    ready = []
    for b, t, h, d in GRID:
        x = jnp.full((b, t, h, d), 0.1, jnp.float32)
        f = jax.jit(nn.dot_product_attention)
        for _ in range(2):
            jax.block_until_ready(f(x, x, x))
        ready.append((f, (x, x, x)))
    medians = interleaved_medians(
        [lambda f=f, a=a: time_loop(f, a, min_s=MIN_S, min_calls=3) for f, a in ready], ROUNDS
    )
    for (f, args), median_s in zip(ready, medians, strict=True):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(FAULT_CALLS):
            jax.block_until_ready(f(*args))
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / FAULT_CALLS
        print(json.dumps({"time_s": median_s, "faults": faults}), flush=True)


def main() -> None:
    from _machine import out_option, result_csv

    out, command = out_option(__doc__, "host_attention_faults.py", "host_attention_faults.csv")
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    import perfjax
    from perfjax.devicemodels import default_params, pack, resolve
    from perfjax.devicemodels._models import total_time
    from perfjax.fusion import fuse
    from perfjax.fusion._kernels import POLICIES

    spec = perfjax.device("host")
    off = dataclasses.replace(POLICIES["cpu"], scratch_fault_min_bytes=0)

    def predict(g, policy) -> float:
        k = fuse(g, policy)
        return float(total_time(k.arrays(), pack(spec), default_params("cpu"),
                                resolve(k, spec).arrays(), "cpu"))  # fmt: skip

    # Each process's allocator trims differently (partial trims): the median over processes.
    runs = []
    for p in range(PROCESSES):
        done = subprocess.run([sys.executable, __file__, "--child"], capture_output=True,
                              text=True, check=True)  # fmt: skip
        runs.append([json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")])
        print(f"process {p + 1}/{PROCESSES} timed")
    with result_csv(out, command,
                    f"float32 Flax dot_product_attention, head size 64; {PROCESSES} processes, "
                    "each with glibc's thresholds raised first: median over them of the median "
                    f"of {ROUNDS} rounds, and of the faults per call over {FAULT_CALLS} calls "
                    "(min and max too); predictions uncalibrated") as w:  # fmt: skip
        w.writerow(["batch", "seq", "heads", "head_dim", "scratch_mib", "model_faulting",
                    "measured_ms", "faults_per_call", "faults_min", "faults_max",
                    "predicted_ms", "predicted_without_rule_ms"])  # fmt: skip
        for i, (b, t, h, d) in enumerate(GRID):
            time_s = statistics.median(run[i]["time_s"] for run in runs)
            faults = [run[i]["faults"] for run in runs]
            s = jax.ShapeDtypeStruct((b, t, h, d), jnp.float32)
            g = perfjax.analyze(nn.dot_product_attention, (s, s, s))
            k = fuse(g, "cpu")
            w.writerow([b, t, h, d, f"{float(k.scratch_bytes.sum()) / 2**20:.0f}",
                        int(float(k.fresh_scratch_bytes.sum()) > 0), f"{time_s * 1e3:.3f}",
                        f"{statistics.median(faults):.0f}", f"{min(faults):.0f}", f"{max(faults):.0f}",
                        f"{predict(g, 'cpu') * 1e3:.3f}", f"{predict(g, off) * 1e3:.3f}"])  # fmt: skip
            print(f"b{b} t{t} h{h}: {time_s * 1e3:.1f} ms, {statistics.median(faults):.0f} "
                  "faults/call")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child()
    else:
        main()
