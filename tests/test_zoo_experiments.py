"""Smoke tests of experiments/zoo_host.py and experiments/zoo_gpus.py (their core functions)."""

from __future__ import annotations

import math

import pytest
from experiment_modules import EXPERIMENTS, load_experiment

_load = load_experiment


@pytest.fixture(scope="module")
def zoo_host():
    return _load("zoo_host")


@pytest.fixture(scope="module")
def zoo_gpus():
    return _load("zoo_gpus")


def test_host_core_on_one_tiny_model(zoo_host):
    rows, diags = zoo_host.run_cases(
        [("mlp", "mnist", {}, (4,))], max_time_s=0.05, diagnose=False, progress=False
    )
    assert diags == []
    assert [(r["model"], r["batch"], r["mode"]) for r in rows] == [
        ("mlp", 4, "inference"),
        ("mlp", 4, "training_step"),
    ]
    for r in rows:
        for key in (
            "measured_s",
            "measured_p10_s",
            "measured_p90_s",
            "predicted_s",
            "predicted_prior_s",
        ):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert r["predicted_prior_s"] != r["predicted_s"]  # the host calibration moves it
        assert r["interval_low_s"] <= r["predicted_s"] <= r["interval_high_s"]
        assert r["ape"] == pytest.approx(abs(r["predicted_s"] / r["measured_s"] - 1))
        assert r["config"] == "mnist"
    s = zoo_host.summarize(rows)
    assert s["overall"]["points"] == 2
    assert set(s["per_mode"]) == {"inference", "training_step"}
    assert math.isfinite(s["overall"]["median_ape"])


def test_host_config_label(zoo_host):
    assert zoo_host.config_label("0.5", dict(image_size=96)) == "0.5 image_size=96"


def test_neusight_rows_map_to_zoo_configs(zoo_gpus):
    df = zoo_gpus.neusight_rows()
    assert len(df) >= 10
    assert set(df["device"]) <= set(zoo_gpus.GPUS)
    for r in df.drop_duplicates(["model", "batch_size", "seq_len"]).itertuples():
        m = zoo_gpus.zoo_model(r.model, int(r.batch_size), int(r.seq_len))
        assert m.batch == r.batch_size
        assert m.config["seq_len"] == r.seq_len
        assert m.config["layers"] == r.num_layer  # 24 (BERT-large), 36 (GPT-2-large)
        assert m.name == {"bert_large": "bert", "gpt2_large": "gpt2"}[r.model]


def test_gpu_core_predictions_are_finite_and_strict_fp32(zoo_gpus):
    df = zoo_gpus.neusight_rows(["bert_large"])
    df = df[(df["batch_size"] == df["batch_size"].min()) & (df["device"] == "a100-pcie-40gb")]
    rows = zoo_gpus.compare(df, variants=("zoo", "tf32"), progress=False)
    assert len(rows) == 1
    r = rows[0]
    for key in ("measured_s", "predicted_s", "predicted_prior_s", "predicted_tf32_s"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["dots"] > 0 and r["dots_highest"] == r["dots"]  # every dot is strict fp32
    assert r["predicted_tf32_s"] < r["predicted_s"]  # TF32 tensor cores on the A100


def test_dot_precisions(zoo_gpus):
    text = (
        "%0 = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0], "
        "precision = [HIGHEST, HIGHEST] : ...\n%1 = stablehlo.dot_general %a, %b : ...\n"
    )
    assert zoo_gpus.dot_precisions(text) == (2, 1)


def test_host_remeasure_scores_the_committed_runs_of_one_seed(tmp_path):
    """experiments/host_remeasure.py on the two committed runs of seed 555: the same programs in
    the same order, its figures recomputed from the CSVs, and a run compared with itself
    scoring zero; two runs of different programs are refused."""
    import csv

    import numpy as np

    mod = _load("host_remeasure")
    runs = EXPERIMENTS.parent / "docs" / "calibration" / "remeasure"
    first, second = str(runs / "s555_first.csv"), str(runs / "s555_second.csv")
    s = mod.compare(first, second)
    m = [[float(r["measured_s"]) for r in csv.DictReader(open(p))] for p in (first, second)]
    ape = np.abs(np.array(m[1]) / np.array(m[0]) - 1)
    assert s["programs"] == len(m[0]) >= 100
    assert math.isclose(s["between_runs"]["median"], float(np.median(ape)))
    assert 0.0 < s["between_runs"]["median"] < s["between_runs"]["p90"]
    # The committed summary is what the script computes from the committed CSVs.
    import json

    saved = json.loads(
        (EXPERIMENTS.parent / "docs" / "calibration" / "host_remeasure.json").read_text()
    )
    assert math.isclose(saved["between_runs"]["p90"], s["between_runs"]["p90"])
    assert math.isclose(saved["model_vs_both"]["median"], s["model_vs_both"]["median"])
    assert mod.compare(first, first)["between_runs"]["p90"] == 0.0
    other = tmp_path / "other.csv"
    rows = list(csv.DictReader(open(first)))
    rows[0]["program"] = "something else"
    with open(other, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SystemExit, match="same programs"):
        mod.compare(first, str(other))


def test_host_timing_statistic_compares_two_passes():
    """experiments/host_timing_statistic.py: identical passes agree exactly; a slow spell that
    adds time to the slower half of the second pass's calls moves the median-based statistic
    and not the low ones, and every statistic sits at or under the median."""
    import numpy as np

    mod = _load("host_timing_statistic")
    rng = np.random.default_rng(0)
    first = [[list(1e-3 * (1 + 0.1 * rng.random(20))) for _ in range(3)] for _ in range(30)]
    same = mod.compare([first, first])
    assert all(s["between_passes_p90"] == 0.0 for s in same.values())
    # The second pass: the slower half of each round's calls 40% slower (interference adds time).
    slowed = [[[t * (1.4 if t > np.median(r) else 1.0) for t in r] for r in p] for p in first]
    s = mod.compare([first, slowed])
    assert s["fastest call"]["between_passes_median"] == 0.0
    assert s["p10 of all calls"]["between_passes_median"] < 0.01
    assert s["median of round medians"]["between_passes_median"] > 0.01
    assert all(v["ratio_to_median"] <= 1.0 for v in s.values())
    saved = EXPERIMENTS.parent / "docs" / "calibration" / "host_timing_statistic.json"
    assert set(__import__("json").loads(saved.read_text())["statistics"]) == set(mod.STATISTICS)
