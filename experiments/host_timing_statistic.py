"""Which timing statistic repeats on a shared host: one seed's programs timed in two passes.

    python experiments/host_timing_statistic.py            # 60 programs of seed 555, ~4 min

Each pass times every program as ``host_generalization.py`` does (3 interleaved rounds of a
plain ``jax.jit`` loop, at least 0.1 s and 5 calls a round: ``host_generalization.call_times``)
but keeps every call's time. Each statistic of a program's samples is computed per pass, and
the two passes are scored against
each other as if one predicted the other (absolute percentage error, median and p90 over
programs): the smaller, the less a measurement by that statistic depends on when it was taken.
Also reported: each statistic's value relative to the median of the rounds' medians (the
statistic ``host_generalization.py`` and ``perfjax calibrate`` use).

Other processes on a shared machine only ever add time to a call, so a low quantile of the
calls is the time least moved by them; this measures how much steadier it is here.

Writes docs/calibration/host_timing_statistic.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import host_generalization as hg

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration"


#: Statistics of one program's rounds (a list of per-round call times).
STATISTICS: dict[str, Callable[[list[list[float]]], float]] = {
    "median of round medians": lambda r: statistics.median(statistics.median(x) for x in r),
    "min of round medians": lambda r: min(statistics.median(x) for x in r),
    "median of round p25": lambda r: statistics.median(float(np.percentile(x, 25)) for x in r),
    "median of round p10": lambda r: statistics.median(float(np.percentile(x, 10)) for x in r),
    "p10 of all calls": lambda r: float(np.percentile(np.concatenate(r), 10)),
    "fastest call": lambda r: float(np.min(np.concatenate(r))),
}


def compare(passes: list[list[list[list[float]]]]) -> dict[str, dict[str, float]]:
    """Per statistic: the two passes' APE against each other (median, p90) and the statistic's
    median ratio to the median of round medians (first pass)."""
    first, second = passes
    base = np.array([STATISTICS["median of round medians"](r) for r in first])
    out = {}
    for name, stat in STATISTICS.items():
        a = np.array([stat(r) for r in first])
        b = np.array([stat(r) for r in second])
        ape = np.abs(b / a - 1)
        out[name] = {
            "between_passes_median": float(np.median(ape)),
            "between_passes_p90": float(np.percentile(ape, 90)),
            "ratio_to_median": float(np.median(a / base)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=555)
    ap.add_argument("--n", type=int, default=60, help="the first N programs of the seed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ready = []
    for _, label, fn, inputs in hg.generate(args.seed, args.n):
        try:
            if fn is None:
                raise RuntimeError(label)
            ready.append((label, *hg.prepare(fn, inputs)))
        except Exception as e:  # a program JAX rejects: left out, said so
            print(f"{label}: {type(e).__name__}", flush=True)
    passes = []
    for p in range(2):
        rounds: list[list[list[float]]] = [[] for _ in ready]
        for r in range(args.rounds):
            order = range(len(ready)) if r % 2 == 0 else reversed(range(len(ready)))
            for k in order:
                rounds[k].append(hg.call_times(ready[k][1], ready[k][2]))
        passes.append(rounds)
        print(f"pass {p + 1}/2 timed ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {
        "command": f"python experiments/host_timing_statistic.py --seed {args.seed} --n {args.n}",
        "programs": len(ready),
        "rounds": args.rounds,
        "statistics": compare(passes),
        "wall_s": time.perf_counter() - t0,
        "jax": jax.__version__,
    }
    for name, s in summary["statistics"].items():
        print(f"{name:24s} passes apart: median {s['between_passes_median']:6.1%}, p90 "
              f"{s['between_passes_p90']:6.1%}; x{s['ratio_to_median']:.2f} the median")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_timing_statistic.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
