"""Overhead of ``perfjax.run``'s timing path versus timing ``jax.jit(f)`` by hand.

What is measured
----------------
For a few small functions, where per-call overhead matters most:

* ``scale_shift_16``: ``x * 2 + 1`` on a (16,) float32 array (pure dispatch cost);
* ``tanh_256x256``: ``perfjax.ops.tanh`` on a (256, 256) float32 array;
* ``matmul_64``: ``perfjax.ops.matmul`` of two (64, 64) float32 arrays,

all in ONE process, in R interleaved rounds (default 15). Each round measures

(a) ``perfjax``: ``perfjax.run(f, args, max_time_s=T).time.median_s`` (defaults otherwise:
    20 ms warm-up, samples of ``number`` calls chosen for ~0.2 ms, adaptive stop on the 95% CI
    of the median, ``rtol=0.02``, at least 7 samples);
(b) ``direct``: a plain ``time.perf_counter()`` loop written here (no perfjax code) around
    ``jf(*args).block_until_ready()`` with ``jf = jax.jit(f)``, using the SAME number of calls per
    sample and the same number of samples as the latest ``perfjax.run`` of that function, after
    the same 20 ms warm-up; the median over samples of (time per sample / calls);
(c) ``direct_jbur`` (diagnostic): the same loop as (b) but blocking with
    ``jax.block_until_ready(out)``, the call perfjax's timing loop uses. (b) vs (c) isolates
    the cost of the blocking call itself from the rest of perfjax's loop.

The order of (a), (b), (c) rotates from round to round so no variant is always first or last.
Reported per function: the median over rounds of each variant's median, and the median and
p10-p90 spread over rounds of the per-round ratio perfjax/direct (goal: <= 1.05), plus the
same for perfjax/direct_jbur. The machine is shared and noisy, so only medians over rounds and
ratios of medians taken in the same round are quoted.

Regenerate ``benchmarks/results/run_overhead.json`` (from the repository root)::

    python benchmarks/run_overhead.py

``--quick`` is a few-second smoke test (3 rounds, short budgets); ``--rounds N`` changes R.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np
from _machine import machine_info

import perfjax
from perfjax import ops

RESULTS = Path(__file__).resolve().parent / "results"
WARMUP_S = 0.02  # perfjax.run's default warm-up; the direct loops use the same


def scale_shift(x):
    return x * 2 + 1


def tanh_fn(x):
    return ops.tanh(x)


def matmul_fn(a, b):
    return ops.matmul(a, b)


def workloads():
    rng = np.random.default_rng(0)

    def arr(*shape):
        return jax.device_put(rng.uniform(-1, 1, size=shape).astype(np.float32))

    return [
        ("scale_shift_16", scale_shift, (arr(16),)),
        ("tanh_256x256", tanh_fn, (arr(256, 256),)),
        ("matmul_64", matmul_fn, (arr(64, 64), arr(64, 64))),
    ]


def direct_time(jf, args, number: int, n_samples: int, use_jax_bur: bool) -> float:
    """Median seconds per call of ``jf(*args)``, blocked, timed with a bare perf_counter loop."""
    perf = time.perf_counter
    bur = jax.block_until_ready
    # Warm-up as long as perfjax's (at least one call).
    start = perf()
    while True:
        jf(*args).block_until_ready()
        if perf() - start >= WARMUP_S:
            break
    samples = []
    if use_jax_bur:
        for _ in range(n_samples):
            s = perf()
            for _ in range(number):
                bur(jf(*args))
            samples.append((perf() - s) / number)
    else:
        for _ in range(n_samples):
            s = perf()
            for _ in range(number):
                jf(*args).block_until_ready()
            samples.append((perf() - s) / number)
    return float(np.median(samples))


def pct(x, q):
    return float(np.percentile(np.asarray(x, dtype=np.float64), q))


def fmt_us(s: float) -> str:
    return f"{s * 1e6:.2f} µs"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 15; 3 with --quick)"
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="perfjax.run max_time_s (default 0.5; 0.1 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="fast smoke mode")
    p.add_argument("--out", type=Path, default=RESULTS / "run_overhead.json")
    a = p.parse_args(argv)
    rounds = a.rounds if a.rounds is not None else (3 if a.quick else 15)
    max_time = a.max_time if a.max_time is not None else (0.1 if a.quick else 0.5)
    if rounds < 1:
        p.error("--rounds must be >= 1")

    t_start = time.perf_counter()
    info = machine_info()
    cmd = " ".join(["python"] + [shlex.quote(x) for x in sys.argv])
    print(
        f"run_overhead: {rounds} rounds, perfjax.run max_time_s={max_time}; "
        f"{info['cpu_model'] or info['processor']} x{info['cpu_count']}, jax {info['jax']}"
    )

    results = []
    for name, f, args in workloads():
        jf = jax.jit(f)
        # Compile both paths and calibrate `number` / sample count (not recorded).
        jax.block_until_ready(jf(*args))
        ref = perfjax.run(f, args, max_time_s=max_time)
        np.testing.assert_allclose(
            np.asarray(ref.outputs), np.asarray(jf(*args)), rtol=1e-6, atol=1e-6
        )
        number, n_samples = ref.time.number, max(ref.time.repeats, 7)

        variants = ["perfjax", "direct", "direct_jbur"]
        per = {v: [] for v in variants}
        numbers, repeats, stables = [], [], []
        for r in range(rounds):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                if v == "perfjax":
                    res = perfjax.run(f, args, max_time_s=max_time)
                    per[v].append(res.time.median_s)
                    number, n_samples = res.time.number, max(res.time.repeats, 7)
                    numbers.append(number)
                    repeats.append(res.time.repeats)
                    stables.append(res.time.stable)
                else:
                    per[v].append(
                        direct_time(jf, args, number, n_samples, use_jax_bur=(v == "direct_jbur"))
                    )
        ratio = [p_ / d for p_, d in zip(per["perfjax"], per["direct"], strict=True)]
        ratio_j = [p_ / d for p_, d in zip(per["perfjax"], per["direct_jbur"], strict=True)]
        row = dict(
            function=name,
            shapes=[list(x.shape) for x in args],
            perfjax_median_s=float(np.median(per["perfjax"])),
            direct_median_s=float(np.median(per["direct"])),
            direct_jbur_median_s=float(np.median(per["direct_jbur"])),
            ratio_median=float(np.median(ratio)),
            ratio_p10=pct(ratio, 10),
            ratio_p90=pct(ratio, 90),
            ratio_vs_jbur_median=float(np.median(ratio_j)),
            ratio_vs_jbur_p10=pct(ratio_j, 10),
            ratio_vs_jbur_p90=pct(ratio_j, 90),
            goal_ratio=1.05,
            meets_goal=bool(np.median(ratio) <= 1.05),
            perfjax_number_per_round=numbers,
            perfjax_repeats_per_round=repeats,
            perfjax_stable_rounds=int(sum(stables)),
            per_round_s={v: per[v] for v in variants},
        )
        results.append(row)
        print(
            f"  {name}: perfjax {fmt_us(row['perfjax_median_s'])}, direct {fmt_us(row['direct_median_s'])}, "
            f"ratio {row['ratio_median']:.3f} [{row['ratio_p10']:.3f}, {row['ratio_p90']:.3f}]"
        )

    total = time.perf_counter() - t_start
    _print_table(results, rounds)
    out = dict(
        benchmark="run_overhead",
        description="perfjax.run timing path vs a bare perf_counter loop around jax.jit(f)(x).block_until_ready()",
        command=cmd,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        machine=info,
        config=dict(
            rounds=rounds,
            max_time_s=max_time,
            warmup_s=WARMUP_S,
            quick=a.quick,
            ratio="per-round perfjax median / direct median; median and p10-p90 over rounds",
        ),
        total_runtime_s=total,
        loadavg_at_end=os.getloadavg(),
        results=results,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out} (total runtime {total:.1f} s)")
    return 0


def _print_table(results, rounds: int) -> None:
    header = [
        "function",
        "perfjax",
        "direct",
        "perfjax/direct",
        "p10-p90",
        "direct(jax.bur)",
        "perfjax/direct(jax.bur)",
    ]
    rows = [
        [
            r["function"],
            fmt_us(r["perfjax_median_s"]),
            fmt_us(r["direct_median_s"]),
            f"{r['ratio_median']:.3f}",
            f"{r['ratio_p10']:.3f}-{r['ratio_p90']:.3f}",
            fmt_us(r["direct_jbur_median_s"]),
            f"{r['ratio_vs_jbur_median']:.3f}",
        ]
        for r in results
    ]
    title = f"perfjax.run overhead (medians over {rounds} rounds; goal perfjax/direct <= 1.05)"
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in header:
            t.add_column(h, justify="left" if h == "function" else "right")
        for row in rows:
            t.add_row(*row)
        Console(width=140).print(t)
    except ImportError:
        print(title)
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(header)))
        for row in rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)))


if __name__ == "__main__":
    sys.exit(main())
