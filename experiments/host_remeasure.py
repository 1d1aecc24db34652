"""The host's noise floor: one seed's programs measured by two runs of host_generalization.py.

    python experiments/host_generalization.py --seed 555 --out /tmp/a   # then, later:
    python experiments/host_generalization.py --seed 555 --out /tmp/b
    python experiments/host_remeasure.py /tmp/a/host_generalization.csv /tmp/b/host_generalization.csv

Each run times every program by its own plain ``jax.jit`` loop (3 interleaved rounds, median of
the rounds' medians). Scored as if the first run's measurement predicted the second's, it gives
the error a perfect model of the programs would show against one measurement on this machine at
that time: the floor under ``host_generalization.py``'s median and p90 APE. The calibrated
predictions (the first run's ``predicted_s``) are scored against each run and against the
geometric mean of both.

Writes docs/calibration/host_remeasure.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from host_generalization import _stats  # the same median / p90 summary as the runs compared

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration" / "host_remeasure.json"


def _rows(path: str) -> list[dict]:
    return [r for r in csv.DictReader(open(path)) if r.get("measured_s")]


def compare(first: str, second: str) -> dict:
    """Between-run and model errors over the programs both runs measured (matched by position
    and label: the same seed generates the same programs in the same order)."""
    a, b = _rows(first), _rows(second)
    if [r["program"] for r in a] != [r["program"] for r in b]:
        raise SystemExit(f"{first} and {second} do not hold the same programs (same --seed?).")
    m1 = np.array([float(r["measured_s"]) for r in a])
    m2 = np.array([float(r["measured_s"]) for r in b])
    pred = np.array([float(r["predicted_s"]) for r in a])
    both = np.sqrt(m1 * m2)
    return {
        "command": f"python experiments/host_remeasure.py {first} {second}",
        "programs": len(a),
        "between_runs": _stats(np.abs(m2 / m1 - 1)),
        "median_ratio_second_over_first": float(np.median(m2 / m1)),
        "log_ratio_sd": float(np.std(np.log(m2 / m1))),
        "model_vs_first": _stats(np.abs(pred / m1 - 1)),
        "model_vs_second": _stats(np.abs(pred / m2 - 1)),
        "model_vs_both": _stats(np.abs(pred / both - 1)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    summary = compare(args.first, args.second)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
