"""XLA:CPU's one-kernel attention by batch, sequence and head size: time, page faults, model.

    python benchmarks/host_attention_fused.py        # ~3 min on 2 cores
    python benchmarks/host_attention_fused.py --out host_attention_fused_epyc.csv

Attention written as two einsums around a softmax (the held-out generator's attention block,
``experiments/host_generalization.py``) compiles, from a batch of 2 on, to one YNNPACK fusion
holding q·kᵀ, the softmax and ·v; at a batch of 1 XLA:CPU splits it (the scores between
kernels). Each configuration (float32, 8 heads) is timed in two child processes that run the
whole grid in order, as a long-running program would:

* ``default``: the C library's allocator as it comes;
* ``pinned``: ``MALLOC_MMAP_THRESHOLD_=1 GiB``, ``MALLOC_TRIM_THRESHOLD_=4 GiB`` and
  ``MALLOC_TOP_PAD_=256 MiB`` (nothing mapped afresh, the heap never trimmed: no page faults
  from the fusion's scratch).

Recorded per configuration: the median of 3 rounds of a plain ``jax.jit`` loop (at least 0.1 s
each), the minor page faults and system time per call (``getrusage`` over 20 calls), and
perfjax's uncalibrated prediction (``calibration=False``); ``extra_ns_per_score`` is the pinned
time above the prediction per score element (b x h x t x t).

Writes benchmarks/results/host_attention_fused.csv (``--out``: another name there).
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

HEADS = 8
GRID = list(itertools.product((1, 2, 4, 8), (64, 128, 256, 384, 512), (32, 64, 128)))
STATES = ("default", "pinned")
PINNED = {
    "MALLOC_MMAP_THRESHOLD_": str(2**30),
    "MALLOC_TRIM_THRESHOLD_": str(2**32),
    "MALLOC_TOP_PAD_": str(2**28),
}


def _attention(d: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    def fwd(q, k, v):
        s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d)
        return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)

    return fwd


def _child() -> None:
    """Times the grid in this process; one JSON line per configuration."""
    import resource

    import jax
    from _machine import time_loop

    for b, t, d in GRID:
        f = jax.jit(_attention(d))
        x = jax.random.normal(jax.random.key(0), (b, t, HEADS, d)) * 0.1
        args = (x, x, x)
        for _ in range(2):
            jax.block_until_ready(f(*args))
        time_s = statistics.median(time_loop(f, args) for _ in range(3))
        calls = 20
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(calls):
            jax.block_until_ready(f(*args))
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({
            "config": [b, t, d], "time_s": time_s,
            "faults": (r1.ru_minflt - r0.ru_minflt) / calls,
            "sys_s": (r1.ru_stime - r0.ru_stime) / calls,
        }), flush=True)  # fmt: skip


def main() -> None:
    import jax
    import jax.numpy as jnp
    from _machine import out_option, result_csv

    import perfjax

    out, command = out_option(__doc__, "host_attention_fused.py", "host_attention_fused.csv")
    runs: dict[str, dict[tuple[int, ...], dict]] = {}
    for state in STATES:
        env = dict(os.environ)
        if state == "pinned":
            env.update(PINNED)
        run = subprocess.run([sys.executable, __file__, "--child"], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        runs[state] = {tuple(r["config"]): r for r in rows}
    with result_csv(out, command,
                    "float32, 8 heads; per allocator state one process timing the grid in "
                    "order; medians of 3 rounds; faults and system time per call over 20 calls"
                    ) as w:  # fmt: skip
        w.writerow(["batch", "seq", "head_dim", "scores_mib", "predicted_ms",
                    *[f"{s}_{c}" for s in STATES for c in ("ms", "faults", "sys_ms")],
                    "pinned_over_predicted", "extra_ns_per_score"])  # fmt: skip
        for b, t, d in GRID:
            x = jax.ShapeDtypeStruct((b, t, HEADS, d), jnp.float32)
            pred_s = perfjax.predict(_attention(d), (x, x, x), device="host",
                                     calibration=False).time_s  # fmt: skip
            scores = b * HEADS * t * t
            vals = []
            for s in STATES:
                r = runs[s][(b, t, d)]
                vals += [
                    f"{r['time_s'] * 1e3:.3f}",
                    f"{r['faults']:.0f}",
                    f"{r['sys_s'] * 1e3:.2f}",
                ]
            pinned_s = runs["pinned"][(b, t, d)]["time_s"]
            w.writerow([b, t, d, f"{scores * 4 / 2**20:.2f}", f"{pred_s * 1e3:.3f}", *vals,
                        f"{pinned_s / pred_s:.2f}",
                        f"{(pinned_s - pred_s) / scores * 1e9:.2f}"])  # fmt: skip
            print(f"b{b} t{t:4d} d{d:4d} predicted {pred_s * 1e3:8.3f} ms  default "
                  f"{runs['default'][(b, t, d)]['time_s'] * 1e3:8.3f} ms "
                  f"({runs['default'][(b, t, d)]['faults']:6.0f} faults)  pinned "
                  f"{pinned_s * 1e3:8.3f} ms  ({pinned_s / pred_s:.2f}x predicted)")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child()
    else:
        main()
