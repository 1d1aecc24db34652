"""experiments/host_generalization.py: its generator and the re-prediction of a saved run."""

from __future__ import annotations

import csv
import json
import pathlib

import pytest
from experiment_modules import load_experiment

import perfjax

hg = load_experiment("host_generalization")
CAL = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration"


def test_the_generator_draws_the_families_in_turn_and_repeats_a_seed():
    a, b = hg.generate(7, 8), hg.generate(7, 8)
    assert [p[0] for p in a] == list(hg.FAMILIES)
    assert [p[1] for p in a] == [p[1] for p in b]
    assert [p[1] for p in hg.generate(8, 8)] != [p[1] for p in a]


def test_a_saved_run_is_predicted_again_from_its_seed_without_timing(tmp_path):
    """--repredict regenerates a saved run's programs from the seed in its JSON and scores the
    run's measurements with the calibration given: measurements 1.25x the calibrated prediction
    read 20% APE whatever the recorded figures were."""
    seed = 11
    calibration = CAL / "host_calibration_s623083024.json"
    cal = perfjax.calibrate.load(calibration)
    rows = []
    for family, label, fn, inputs in hg.generate(seed, 2):  # an MLP and its training step
        p = perfjax.predict(fn, inputs, device="host", calibration=cal)
        rows.append({"family": family, "program": label, "measured_s": 1.25 * p.time_s})
    run = tmp_path / "host_generalization_s11.csv"
    with run.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    recorded = {"calibrated": {"median": 0.5}, "better_than_priors": 0.0, "interval_coverage": 1.0}
    run.with_suffix(".json").write_text(json.dumps({"seed": seed, "programs": 2, **recorded}))
    out = hg.repredict(run, calibration)
    assert out["seed"] == seed and out["calibrated"]["n"] == 2
    assert out["calibrated"]["median"] == pytest.approx(0.2, rel=1e-4)
    assert out["recorded"] == recorded
    assert 0.0 <= out["better_than_priors"] <= 1.0 and out["priors"]["n"] == 2
    assert out["interval_coverage"] in (0.0, 0.5, 1.0)


def test_the_chain_ablation_drops_exactly_the_layer_sized_chains():
    """``host_chain_ablation.py`` takes out of a calibration the nine layer-sized chains the
    default suite times (256-float norms, rows=M GEMMs) and nothing else, and its committed
    result has them lowering p90 in most runs, as the docs quote."""
    import json

    from perfjax.calibrate import suite

    ablation = load_experiment("host_chain_ablation")
    chains = [w for w in suite("kernel_chains") if ablation.layer_chain(w)]
    assert len(chains) == 9
    assert {dict(w.params).get("rows", 0) for w in chains} == {0, 16, 256}
    assert not any(ablation.layer_chain(w) for w in suite("matmul_sweep") + suite("reductions"))
    runs = json.loads((ablation.ZEN5 / "host_chain_ablation.json").read_text())["runs"]
    assert len(runs) == 12 and all(r["dropped_rows"] == 9 for r in runs)
    lower = sum(r["with_chains"]["p90"] < r["without_chains"]["p90"] for r in runs)
    assert lower >= 10, lower
