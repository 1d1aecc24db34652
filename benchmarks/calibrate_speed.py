"""Wall time of a default ``perfjax calibrate`` on this machine, and the noise it reported.

    python benchmarks/calibrate_speed.py            # 3 runs, ~5 minutes on 2 cores
    python benchmarks/calibrate_speed.py --runs 1

Each run is the command a user types, ``perfjax calibrate``, in a fresh process (imports,
measuring, features, fit and saving included), writing its calibration and timings to a
temporary directory so the one in the cache directory is untouched. The runs share that
directory, as calibrations of one machine share the cache: the first is fitted alone, every
later one with the previous run's timings too (the default, ``--pool``). Goal (issue 17): at
most 2 minutes on a 2-core machine. Also recorded per run: the measurement noise the command printed
(how far each point's two closest timings lie apart, median and p90 over points, and the share
of points with no two within 10%) and its held-out median error.

Writes benchmarks/results/calibrate_speed.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import machine_info  # noqa: E402


def one_run(tmp: str) -> dict:
    from perfjax.calibrate import Measurements, load

    # the timings go next to the calibration (host_measurements.csv), the previous run's
    # to host_measurements_previous.csv
    csv, save = pathlib.Path(tmp) / "host_measurements.csv", pathlib.Path(tmp) / "host.json"
    cmd = [sys.executable, "-m", "perfjax", "calibrate", "--save", str(save)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    meta = Measurements.from_csv(csv).metadata
    cal = load(save)
    return {
        "wall_s": round(wall, 1),
        "pooled": "pooled_with" in cal.metadata,
        "measure_wall_s": float(meta["wall_s"]),
        "points": int(meta["workloads"]),
        "noise_median": float(meta["noise_median"]),
        "noise_p90": float(meta["noise_p90"]),
        "noise_untrusted": float(meta["noise_untrusted"]),
        "warned_noisy": "too noisy" in proc.stderr,
        "heldout_median_ape": cal.summary.get("median_ape_after"),
        "heldout_p90_ape": cal.summary.get("p90_ape_after"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(one_run(tmp))
            print(f"run {i + 1}/{args.runs}: {json.dumps(runs[-1])}", flush=True)
    walls = [r["wall_s"] for r in runs]
    out = {
        "command": "python benchmarks/calibrate_speed.py"
        + (f" --runs {args.runs}" if args.runs != 3 else ""),
        "goal_s": 120,
        "wall_s_median": statistics.median(walls),
        "wall_s_max": max(walls),
        "runs": runs,
        "machine": machine_info(),
    }
    path = ROOT / "benchmarks" / "results" / "calibrate_speed.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"median wall {out['wall_s_median']:.1f} s (max {out['wall_s_max']:.1f} s); wrote {path}")


if __name__ == "__main__":
    main()
