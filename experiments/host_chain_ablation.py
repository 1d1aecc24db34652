"""What the calibration's layer-sized kernel chains do for programs nobody chose.

    python experiments/host_chain_ablation.py        # ~5 min on 2 cores, nothing timed

The default calibration's ``kernel_chains`` suite times chains at a transformer layer's sizes
(the normalisation step over 256 floats; GEMMs of 16 x 256 and 256 x 64 by a square weight,
``chain ... rows=M``). For each Zen 5 sitting of the protocol committed in
``docs/calibration/zen5/`` (calibration A fitted alone, B pooled with A's timings, three
held-out runs), this fits the sitting's timing files again without those chains' rows, as
``perfjax calibrate --from-csv`` fits them, and predicts the sitting's held-out runs with both:
the committed calibrations (the chains in) and the refits (the chains out). Same timings, same
programs: the difference is the chains'.

Writes docs/calibration/zen5/host_chain_ablation.json.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT))
from host_generalization import repredict  # noqa: E402

from perfjax import calibrate  # noqa: E402

ZEN5 = ROOT / "docs" / "calibration" / "zen5"
REFIT = ROOT / "docs" / "calibration" / "refit"

#: (A's timings, B's timings, A's calibration, B's calibration, runs predicted with A, with B).
SITTINGS = (
    ("host_20261207-172736.csv", "host_20261207-173350.csv", ZEN5 / "host_calibration_s826073008.json",
     ZEN5 / "host_calibration_s1802191509.json", (826073008, 891198519), (1802191509,)),
    ("host_20261207-175344.csv", "host_20261207-175942.csv", REFIT / "zen5_host_calibration_s134811259.json",
     REFIT / "zen5_host_calibration_s215577000.json", (134811259, 857564074), (215577000,)),
    ("host_20261207-181249.csv", "host_20261207-181905.csv", ZEN5 / "host_calibration_s76438605.json",
     ZEN5 / "host_calibration_s1967238708.json", (76438605, 1391491058), (1967238708,)),
    ("host_20261207-184421.csv", "host_20261207-185139.csv", ZEN5 / "host_calibration_s582075663.json",
     ZEN5 / "host_calibration_s1256777293.json", (582075663, 322549102), (1256777293,)),
)  # fmt: skip


def layer_chain(workload: calibrate.Workload) -> bool:
    """Whether ``workload`` is one of the layer-sized chains (a 256-float norm, a rows=M GEMM)."""
    p = dict(workload.params)
    return workload.builder == "chain" and bool(
        p.get("rows") or (p["op"] == "norm" and p["n"] == 256)
    )


def without_layer_chains(path: pathlib.Path) -> calibrate.Measurements:
    ms = calibrate.Measurements.from_csv(path)
    return calibrate.Measurements(
        tuple(r for r in ms.rows if not layer_chain(r.workload)), ms.metadata
    )


def main() -> None:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for a_csv, b_csv, cal_a, cal_b, runs_a, runs_b in SITTINGS:
            a = without_layer_chains(ZEN5 / a_csv)
            # As `perfjax calibrate --from-csv B --from-csv A` pools them.
            b = calibrate.pool(without_layer_chains(ZEN5 / b_csv), a)
            dropped = len(calibrate.Measurements.from_csv(ZEN5 / a_csv)) - len(a)
            refits = {}
            for name, ms in (("A", a), ("B", b)):
                refits[name] = pathlib.Path(tmp) / f"{name}.json"
                calibrate.fit(ms, refit=True).save(refits[name])
            for seeds, name, cal in ((runs_a, "A", cal_a), (runs_b, "B", cal_b)):
                for seed in seeds:
                    run = ZEN5 / f"host_generalization_s{seed}.csv"
                    with_chains = repredict(run, cal)
                    without = repredict(run, refits[name])
                    row = {
                        "run": with_chains["run"], "calibration": with_chains["calibration"],
                        "dropped_rows": dropped, "with_chains": with_chains["calibrated"],
                        "without_chains": without["calibrated"],
                        "better_than_priors": [with_chains["better_than_priors"],
                                               without["better_than_priors"]],
                        "interval_coverage": [with_chains["interval_coverage"],
                                              without["interval_coverage"]],
                    }  # fmt: skip
                    out.append(row)
                    w, wo = row["with_chains"], row["without_chains"]
                    print(f"s{seed} ({name}): with the chains {w['median']:.1%} / {w['p90']:.1%}, "
                          f"without {wo['median']:.1%} / {wo['p90']:.1%} (median / p90 APE)",
                          flush=True)  # fmt: skip
    lower = sum(r["with_chains"]["p90"] < r["without_chains"]["p90"] for r in out)
    print(f"p90 lower with the chains in {lower} of {len(out)} runs")
    text = json.dumps(
        {"command": "python experiments/host_chain_ablation.py", "runs": out}, indent=1
    )
    (ZEN5 / "host_chain_ablation.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
