"""experiments/host_refit_runs.py: the committed sittings refitted with today's model and their
held-out runs predicted again."""

from __future__ import annotations

import json
import pathlib

import pytest
from experiment_modules import load_experiment

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "calibration" / "host_refit_runs.json"


@pytest.fixture(scope="module")
def refit():
    return load_experiment("host_refit_runs")


def _run(median, p90, better, coverage):
    return {"median": median, "p90": p90, "better_than_priors": better,
            "interval_coverage": coverage}  # fmt: skip


def test_summary_counts_each_goal_at_its_bounds(refit):
    runs = [
        _run(0.15, 0.35, 0.80, 0.75),  # every goal met, each at its bound
        _run(0.1501, 0.3501, 0.79, 0.851),  # none
        _run(0.10, 0.50, 0.90, 0.85),  # median, better, coverage
    ]
    s = refit.summarize(runs)
    assert s["runs"] == 3
    assert (s["median_goal_met"], s["p90_goal_met"]) == (2, 1)
    assert (s["better_goal_met"], s["coverage_goal_met"]) == (2, 2)
    assert s["mean_median"] == pytest.approx((0.15 + 0.1501 + 0.10) / 3)
    assert s["mean_p90"] == pytest.approx((0.35 + 0.3501 + 0.50) / 3)


def test_every_sitting_names_committed_files(refit):
    seeds = []
    for machine, sittings in refit.MACHINES.items():
        for a_csv, b_csv, runs_a, runs_b in sittings:
            assert a_csv.exists() and b_csv.exists(), (machine, a_csv, b_csv)
            for seed in (*runs_a, *runs_b):
                path = refit.run_path(seed)
                meta = json.loads(path.with_suffix(".json").read_text())
                assert meta["seed"] == seed, path
                seeds.append(seed)
    assert len(seeds) == len(set(seeds)) == 36
    with pytest.raises(FileNotFoundError, match="seed 1"):
        refit.run_path(1)


def test_committed_result_is_consistent(refit):
    result = json.loads(COMMITTED.read_text())
    assert result["command"] == "python experiments/host_refit_runs.py"
    assert set(result["machines"]) == {"zen4", "zen5"}
    for machine, n in (("zen4", 3), ("zen5", 33)):
        block = result["machines"][machine]
        assert len(block["runs"]) == n
        assert block["summary"] == pytest.approx(refit.summarize(block["runs"]))
        for r in block["runs"]:
            assert (ROOT / r["run"]).exists()
            assert all((ROOT / t).exists() for t in r["timings"])
            # B is fitted with A's timings too: two files; A alone: one.
            assert len(r["timings"]) == (1 if r["calibration"] == "A" else 2)
            assert 0.0 < r["median"] < r["p90"] < 1.0
            assert 0.5 < r["interval_coverage"] <= 1.0
    # The README quotes the Zen 5's summary as the script wrote it.
    z5 = result["machines"]["zen5"]["summary"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{z5['mean_median']:.1%} / {z5['mean_p90']:.1%} mean median / p90" in readme


@pytest.mark.slow
def test_a_committed_run_is_reproduced_by_refitting_its_timings(refit, tmp_path):
    """The Zen 4's first run: calibration A fitted again from its committed timing file, as the
    script fits it, predicts the run's programs to the committed figures."""
    from host_generalization import repredict

    from perfjax import calibrate

    committed = json.loads(COMMITTED.read_text())["machines"]["zen4"]["runs"][0]
    (a_csv, _, runs_a, _), = refit.MACHINES["zen4"]  # fmt: skip
    cal = tmp_path / "A.json"
    calibrate.fit(calibrate.Measurements.from_csv(a_csv), refit=True).save(cal)
    path = ROOT / committed["run"]
    assert refit.run_path(runs_a[0]) == path
    r = repredict(path, cal)
    assert r["calibrated"]["median"] == pytest.approx(committed["median"], rel=1e-3)
    assert r["calibrated"]["p90"] == pytest.approx(committed["p90"], rel=1e-3)
    assert r["interval_coverage"] == pytest.approx(committed["interval_coverage"], abs=1e-9)
