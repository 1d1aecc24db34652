"""Calibration: recovery of known parameters, a real host calibration, bad input, safe saves."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import perfjax
from perfjax import calibrate
from perfjax.calibrate import Measurements, Workload, evaluate, fit, load
from perfjax.devicemodels import default_params

GEMMS = [
    (m, k, n)
    for m in (1, 8, 64, 256, 1024, 4096)
    for k in (256, 1024, 4096)
    for n in (256, 2048, 8192)
]


def _truth_params(family="gpu"):
    # A device whose GEMMs reach 55% of peak (the prior says 84%) and whose launches cost 2x.
    p = default_params(family)
    eff = np.array(p["compute_eff_logit"])
    eff[0] = math.log(0.55 / 0.45)
    return dict(
        p, compute_eff_logit=jax.numpy.asarray(eff), launch_log=p["launch_log"] + math.log(2.0)
    )


# The GEMM efficiency and the GPU power cap trade off on a single device (only several devices
# separate them), so the recovery test uses an H100 with the power cap off (process_nm = 0).
NOCAP = perfjax.devicemodels.register_device(
    perfjax.device("h100").replace(name="test-h100-nocap", process_nm=0.0, aliases=()),
    overwrite=True,
)[0]


@functools.cache
def _program(workload):
    return perfjax.trace(*workload.build())


@functools.cache
def _truth_times(device, workloads):
    """The truth's predicted time of each workload on ``device`` (each workload traced once, each
    time predicted once per module)."""
    truth = _truth_params()
    return tuple(
        perfjax.predict(_program(w), device=device, params=truth).time_s for w in workloads
    )


SYNTHETIC = tuple(Workload.of("matmul", m=m, k=k, n=n, dtype="bfloat16") for m, k, n in GEMMS)


def _synthetic(device=NOCAP, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for w, t in zip(SYNTHETIC, _truth_times(device, SYNTHETIC), strict=True):
        rows.append(dict(workload=w, device=device, time_s=t * math.exp(rng.normal(0, noise))))
    return Measurements.from_rows(rows, {"source": "synthetic"})


@pytest.fixture(scope="module")
def synthetic_fit():
    ms = _synthetic()
    return ms, fit(ms, holdout=0.3, steps=300)


def test_fit_recovers_known_parameters_and_lowers_heldout_error(synthetic_fit):
    _, cal = synthetic_fit
    s = cal.summary
    assert s["median_ape_before"] > 0.2  # the prior is far from the truth...
    assert s["median_ape_after"] < 0.08  # ...the fit lands near the 5% noise on held-out programs
    # The bf16 tensor-core GEMM efficiency: the class's, times the matrix unit's and bf16's
    # (the three multiply: only their product is identified by one precision's GEMMs).
    eff = 1 / (1 + math.exp(-float(cal.params["compute_eff_logit"][0])))
    bf16 = perfjax.devicemodels.PRECISIONS.index("bf16")
    eff *= math.exp(
        float(cal.params["precision_eff_log"][bf16]) + float(cal.params["matrix_unit_eff_log"])
    )
    assert eff == pytest.approx(0.55, abs=0.06)


def test_interval_covers_about_80_percent(synthetic_fit):
    _, cal = synthetic_fit
    assert cal.interval_level == 0.8
    assert 0.6 <= cal.report.coverage <= 1.0
    lo, hi = cal.interval(1.0)
    assert lo < 1.0 < hi
    bigger = fit(_synthetic(noise=0.2, seed=1), holdout=0.5, steps=300)
    assert bigger.interval(1.0)[1] > hi  # more noise, wider interval


def test_split_is_by_program_and_reported(synthetic_fit):
    ms, cal = synthetic_fit
    df = cal.report.to_dataframe()
    assert set(df.split) == {"train", "heldout"}
    assert not set(df[df.split == "train"].program) & set(df[df.split == "heldout"].program)
    assert len(df) == len(ms)
    text = str(cal.report)
    assert "heldout" in text and "median APE" in text


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_fit_of_a_thousand_measurements(tmp_path):
    # 1000+ rows (the speed target is measured by benchmarks/fit_speed.py, not asserted here).
    base = _synthetic()
    rows = [dict(workload=r.workload, device=d, time_s=r.time_s) for r in base for d in
            ("h100", "a100-80gb", "v100", "l4", "h200", "rtx-4090", "a100-40gb", "b200", "t4", "p100", "p4",
             "v100-pcie", "a100-pcie-40gb", "a100-pcie-80gb", "gtx-1080ti", "titan-xp", "gb200", "gb300",
             "l40s")]  # fmt: skip
    ms = Measurements.from_rows(rows)
    assert len(ms) >= 1000
    cal = fit(ms, holdout=0.2, steps=50)
    assert cal.report.summary()["points"] > 100 and math.isfinite(cal.summary["median_ape_after"])


@pytest.mark.slow  # measures ~50 programs on this machine, then three fits (~35-50 s)
def test_short_calibration_on_this_machine_lowers_heldout_error(tmp_path):
    # Every suite at its tiny size (about 45 programs, ~20 s), measured here; a third held out.
    ms = calibrate.measure(list(calibrate.SUITES[:-1]) if "all" in calibrate.SUITES else list(calibrate.SUITES),
                           size="tiny", max_time_s=0.1, progress=False, out=str(tmp_path / "host.csv"))  # fmt: skip
    assert ms.metadata and len(ms) >= 30
    measured = Measurements.from_csv(tmp_path / "host.csv")
    # Three folds (different held-out programs), pooled: ~15 held-out timings of one fold are too
    # few to beat this shared machine's noise every time.
    held = []
    for seed in ("fold-a", "fold-b", "fold-c"):
        df = fit(measured, holdout=0.35, steps=400, seed=seed).report.to_dataframe()
        held.append(df[df.split == "heldout"])
    held = pd.concat(held)
    assert len(held) >= 24
    # The fit's own objective (squared log error), on programs it never saw.
    before = float(np.mean(np.log(held.before_s / held.measured_s) ** 2))
    after = float(np.mean(np.log(held.after_s / held.measured_s) ** 2))
    assert after < before


def test_save_load_and_predict_with_a_calibration(synthetic_fit, tmp_path):
    _, cal = synthetic_fit
    path = cal.save(tmp_path / "gpu.json")
    again = load(path)
    for k in cal.params:
        np.testing.assert_allclose(
            np.asarray(again.params[k]), np.asarray(cal.params[k]), rtol=1e-6
        )
    fn, ins = Workload.of("matmul", m=512, k=512, n=512, dtype="bfloat16").build()
    p = perfjax.predict(fn, ins, device="h100", calibration=path)
    q = perfjax.predict(fn, ins, device="h100", calibration=False)
    assert p.time_s != q.time_s and p.interval_s[0] < p.time_s < p.interval_s[1]
    assert "calibration" in p.calibration and q.calibration is None and q.interval_s is None
    with pytest.raises(ValueError, match="is for gpu devices; 'tpu-v4' is a tpu"):
        perfjax.predict(fn, ins, device="tpu-v4", calibration=cal)
    with pytest.raises(TypeError, match="calibration must be"):
        perfjax.predict(fn, ins, device="h100", calibration=3)


def test_evaluate_scores_unseen_measurements(synthetic_fit):
    _, cal = synthetic_fit
    rep = evaluate(cal, _synthetic(seed=7))
    s = rep.summary()
    assert s["points"] == len(GEMMS) and s["median_ape_after"] < s["median_ape_before"]
    with pytest.raises(ValueError, match="calibration is for gpu devices"):
        w = Workload.of("matmul", m=8, k=8, n=8)
        evaluate(cal, Measurements.from_rows([dict(workload=w, device="tpu-v4", time_s=1e-5)]))


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_host_calibration_is_picked_up_automatically(synthetic_fit, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFJAX_CACHE_DIR", str(tmp_path))
    fn, ins = Workload.of("matmul", m=64, k=64, n=64).build()
    assert perfjax.predict(fn, ins, device="host").calibration is None
    host_rows = [dict(workload=Workload.of("matmul", m=n, k=n, n=n), device="host", time_s=2e-10 * n**3 + 2e-5)
                 for n in (16, 32, 64, 128, 256, 512, 1024, 2048)]  # fmt: skip
    cal = fit(Measurements.from_rows(host_rows), holdout=0.25, steps=50)
    cal = calibrate.Calibration(**{**cal.__dict__, "metadata": {"machine": calibrate.machine_id()}})
    cal.save(calibrate.host_calibration_path())
    p = perfjax.predict(fn, ins, device="host")
    assert p.calibration is not None and p.interval_s is not None
    assert perfjax.predict(fn, ins, device="host", calibration=False).calibration is None
    # A calibration from another machine is ignored, and one from another generation of
    # processor with the same description (a VM's model name, cores and clock).
    from perfjax._host import cpu_info
    from perfjax.devicemodels import host_spec

    same_description = [host_spec().description] if cpu_info().identity else []
    for machine in ("some other CPU", *same_description):
        other = calibrate.Calibration(**{**cal.__dict__, "metadata": {"machine": machine}})
        other.save(calibrate.host_calibration_path())
        with pytest.warns(UserWarning, match="measured on another machine"):
            assert perfjax.predict(fn, ins, device="host").calibration is None


# ---- bad input --------------------------------------------------------------------------------

W = Workload.of("matmul", m=8, k=8, n=8).to_json()


def _csv(tmp_path, text, name="m.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "body, match",
    [
        (f'workload,device,time_s\n"{W.replace(chr(34), chr(34) * 2)}",h100,nan\n', r"positive finite number.*row\(s\) 0"),
        (f'workload,device,time_s\n"{W.replace(chr(34), chr(34) * 2)}",h100,1e-3\n"{W.replace(chr(34), chr(34) * 2)}",h100,0\n'
         f'"{W.replace(chr(34), chr(34) * 2)}",h100,-2\n', r"row\(s\) 1, 2"),
        (f'workload,device,time_s\n"{W.replace(chr(34), chr(34) * 2)}",h1000,1e-3\n', r"row 0: unknown device 'h1000'"),
        ('workload,device,time_s\n"{""kind"": ""fft"", ""builder"": ""matmul"", ""params"": []}",h100,1e-3\n',
         "unknown op kind 'fft'"),
        (f'workload,kind,device,time_s\n"{W.replace(chr(34), chr(34) * 2)}",gemmz,h100,1e-3\n', "unknown op kind 'gemmz'"),
        (f'workload,device,time_s\n"{W.replace(chr(34), chr(34) * 2)}",h100\n', "wrong number of fields.*truncated"),
        ("", "is empty"),
        ("# only: metadata\n", "no header or rows"),
        (f'workload,device,latency\n"{W.replace(chr(34), chr(34) * 2)}",h100,3\n', "no time column.*'time_s'.*'time_ms'"),
        (f'workload,device,time_s,time_ms\n"{W.replace(chr(34), chr(34) * 2)}",h100,1,1000\n', "both 'time_s' and 'time_ms'"),
        ('device,time_s\nh100,1e-3\n', "missing column 'workload'"),
    ],
)  # fmt: skip
def test_bad_measurement_files(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        Measurements.from_csv(_csv(tmp_path, body))


def test_time_ms_column_is_converted(tmp_path):
    q = W.replace('"', '""')
    ms = Measurements.from_csv(_csv(tmp_path, f'workload,device,time_ms\n"{q}",h100,2.5\n'))
    assert ms.rows[0].time_s == pytest.approx(2.5e-3)


def test_fit_refuses_bad_setups(synthetic_fit):
    ms, _ = synthetic_fit
    with pytest.raises(ValueError, match="several device families"):
        w = Workload.of("matmul", m=8, k=8, n=8)
        fit(ms + Measurements.from_rows([dict(workload=w, device="tpu-v4", time_s=1e-5)]))
    with pytest.raises(ValueError, match="holdout must be a fraction"):
        fit(ms, holdout=1.5)
    with pytest.raises(ValueError, match="holdout keys"):
        fit(ms, holdout={"gpus": ["h100"]})
    with pytest.raises(ValueError, match="both must be > 0"):
        fit(ms, holdout={"devices": ["h100"]})


def test_a_crash_while_saving_never_corrupts_the_saved_calibration(
    synthetic_fit, tmp_path, monkeypatch
):
    _, cal = synthetic_fit
    path = cal.save(tmp_path / "cal.json")
    before = path.read_text()

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", boom)
    with pytest.raises(OSError, match="disk full"):
        cal.save(path)
    monkeypatch.undo()
    assert path.read_text() == before and load(path).family == "gpu"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_diverging_fit_writes_nothing(synthetic_fit, tmp_path):
    ms, _ = synthetic_fit
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(ms, holdout=0.3, steps=5, learning_rate=1e30)


@pytest.mark.parametrize(
    "text, match",
    [("{", "invalid JSON"), ('{"format": "other"}', "not a perfjax calibration"),
     ('{"format": "perfjax-calibration", "version": 99}', "version 99")],
)  # fmt: skip
def test_bad_calibration_files(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load(_csv(tmp_path, text, "c.json"))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.json")


def test_mismatched_parameters_are_refused(synthetic_fit, tmp_path):
    _, cal = synthetic_fit
    d = cal.to_dict()
    d["params"]["compute_eff_logit"] = [0.0]
    path = _csv(tmp_path, json.dumps(d), "c.json")
    with pytest.raises(
        ValueError, match=r"compute_eff_logit has shape \(1,\); the gpu model expects \(6,\)"
    ):
        load(path)


def prior_of(name):
    return np.asarray(default_params("gpu")[name])


def test_frozen_parameters_stay_at_their_priors():
    ms = _synthetic()
    cal = fit(ms, holdout=0.3, steps=100, freeze=("launch_log", "k_half_log", "memory_eff_logit:gemm"),
              name="frozen fit")  # fmt: skip
    assert cal.name == "frozen fit"
    assert cal.params["memory_eff_logit"][0] == prior_of("memory_eff_logit")[0]
    prior = default_params("gpu")
    np.testing.assert_array_equal(cal.params["launch_log"], np.asarray(prior["launch_log"]))
    np.testing.assert_array_equal(cal.params["k_half_log"], np.asarray(prior["k_half_log"]))
    assert not np.allclose(cal.params["compute_eff_logit"], prior["compute_eff_logit"])
    with pytest.raises(ValueError, match="cannot freeze \\['speed', 'overlap_log:gemm'\\]"):
        fit(ms, holdout=0.3, steps=10, freeze=("speed", "overlap_log:gemm"))
    with pytest.raises(ValueError, match="Unknown loss: 'l1'"):
        fit(ms, holdout=0.3, steps=10, loss="l1")


def _outlier_pull(factor, losses):
    """How far three timings of 14 at ``factor`` x their true time move a fit: the median
    |log ratio| of its predictions to those of the same loss's fit to the true times."""
    sizes = [2**k for k in range(10, 24)]
    true_s = lambda n: 2e-10 * n + 6e-6

    def predictions(loss, f):
        rows = [dict(workload=Workload.of("elementwise", op="add", shape=(n,)), device="host",
                     time_s=true_s(n) * (f if i in (1, 3, 5) else 1.0))
                for i, n in enumerate(sizes)]  # fmt: skip
        cal = fit(Measurements.from_rows(rows), holdout=0.2, steps=150, loss=loss)
        xs = [jax.ShapeDtypeStruct((n,), np.float32) for n in sizes]
        return np.array([perfjax.predict(lambda x: x + 1.0, (x,), device="host", calibration=cal).time_s
                         for x in xs])  # fmt: skip

    return [float(np.median(np.abs(np.log(predictions(loss, factor) / predictions(loss, 1.0)))))
            for loss in losses]  # fmt: skip


def test_host_fits_default_to_the_asymmetric_loss_and_slow_outliers_pull_them_less():
    """A host calibration's timings include points caught in a slow spell of the machine: the
    CPU family's default loss is the asymmetric one. Three of 14 timings 4x too slow move its
    fit less than Huber's (0.8x, measured at 0.2-1 ns per element), which they move less than
    the squared log error's."""
    from perfjax.calibrate._fit import DEFAULT_LOSS

    assert DEFAULT_LOSS == {"cpu": "asymmetric"}
    default, huber, msle = _outlier_pull(4.0, (None, "huber", "msle"))
    assert default < 0.87 * huber and huber < 0.75 * msle


def test_spread_weights_apply_only_on_a_noisy_machine_and_fall_with_the_spread():
    from perfjax.calibrate._fit import QUIET_NOISE, spread_weights

    spreads = [0.05, 0.2, 0.5, 1.5, float("nan")]
    for quiet in (0.0, 0.01, QUIET_NOISE, float("nan")):
        np.testing.assert_array_equal(spread_weights(spreads, quiet), np.ones(5))
    w = spread_weights(spreads, 0.04)
    assert np.all(np.diff(w[:4]) < 0) and w[4] == 1.0 and 0 < w[3] < 0.2
    # the noisier the machine, the less a widely spread point counts
    assert spread_weights([0.5], 0.07)[0] < spread_weights([0.5], 0.03)[0] < 1.0


def test_on_a_noisy_machine_a_slow_spells_widely_spread_timings_pull_a_host_fit_less():
    """A slow spell that lasts through a block of points (in the timing files of a 2-core VM: a
    whole suite's, 1.4x slower) widens their per-call samples too. Measurements that record a
    noisy machine (``noise_median`` 0.04) weigh those points less: five of 14 timings (every
    other one of the ten smallest) 1.5x too slow with samples spread 0.9 (the rest 0.15) move
    the fit less than 0.6x as far (0.38x measured) as the same timings with no noise recorded,
    where the weights are the kinds' alone."""
    sizes = [2**k for k in range(10, 24)]
    true_s = lambda n: 2e-10 * n + 6e-6
    slow = {1, 3, 5, 7, 9}
    xs = [jax.ShapeDtypeStruct((n,), np.float32) for n in sizes]

    def predictions(factor, noise):
        rows = [dict(workload=Workload.of("elementwise", op="add", shape=(n,)), device="host",
                     time_s=true_s(n) * (factor if i in slow else 1.0),
                     rel_spread=0.9 if i in slow else 0.15)
                for i, n in enumerate(sizes)]  # fmt: skip
        meta = {} if noise is None else {"noise_median": str(noise)}
        ms = Measurements(Measurements.from_rows(rows).rows, meta)
        cal = fit(ms, holdout=0.2, steps=150)
        assert ("spread_weight_scale" in cal.metadata) == (noise is not None)
        return np.array([perfjax.predict(lambda x: x + 1.0, (x,), device="host", calibration=cal).time_s
                         for x in xs])  # fmt: skip

    truth = predictions(1.0, None)
    pull = lambda p: float(np.median(np.abs(np.log(p / truth))))
    plain, weighted = pull(predictions(1.5, None)), pull(predictions(1.5, 0.04))
    assert weighted < 0.6 * plain, (weighted, plain)


def test_earlier_timings_are_pooled_only_from_the_same_machine_software_suites_and_week():
    from perfjax.calibrate import POOL_MAX_AGE_DAYS, why_not_pool
    from perfjax.calibrate._measurements import POOL_KEYS

    new = {"device": "host", "cpu": "AMD EPYC", "cores": "2", "threads_per_core": "1",
           "cpu_id": "AuthenticAMD cpu family 26 model 2 stepping 1; caches L1 48 KiB",
           "platform": "linux x86_64", "python": "3.11.7", "jax": "0.10.2", "jaxlib": "0.10.2",
           "perfjax": "0.1.0", "suites": "all", "size": "default",
           "date": "2026-12-06T13:37:07+00:00", "noise_median": "0.04"}  # fmt: skip
    assert set(POOL_KEYS) < set(new)
    # hours or days earlier, whatever the noise: pooled
    for date in ("2026-12-06T13:29:07+00:00", "2026-12-01T09:00:00+00:00", "2026-12-06T13:37:07"):
        assert why_not_pool(new, {**new, "date": date, "noise_median": "0.01"}) is None
    for key in POOL_KEYS:
        why = why_not_pool(new, {**new, key: "other"})
        assert why is not None and key in why and "other" in why and new[key] in why
    assert "(unknown)" in why_not_pool(new, {k: v for k, v in new.items() if k != "jaxlib"})
    old = why_not_pool(new, {**new, "date": "2026-11-20T13:37:07+00:00"})
    assert old is not None and "16 days" in old and f"{POOL_MAX_AGE_DAYS:g}" in old
    assert why_not_pool(new, {**new, "date": "2026-11-20T13:37:07"}, max_age_days=30) is None
    assert "after this run" in why_not_pool(new, {**new, "date": "2026-12-07T00:00:00+00:00"})
    assert "no date" in why_not_pool(new, {**new, "date": "yesterday"})
    # One model name over two generations of processor (a cloud VM moved to a newer host):
    # timings of the other generation, or of a run that did not record it, are kept out.
    zen4 = {**new, "cpu_id": "AuthenticAMD cpu family 25 model 17 stepping 1; caches L1 32 KiB"}
    assert "cpu family 25" in why_not_pool(new, zen4)
    assert "(unknown)" in why_not_pool(new, {k: v for k, v in new.items() if k != "cpu_id"})


def test_the_processors_generation_and_caches_identify_the_host():
    from perfjax._host import cpu_info, identity

    zen5 = {"vendor_id": "AuthenticAMD", "cpu family": "26", "model": "2", "stepping": "1"}
    caches = {1: 48 * 1024.0, 2: 1024.0**2, 3: 32 * 1024.0**2}
    zen4 = {**zen5, "cpu family": "25", "model": "17"}
    assert identity(zen5, caches) != identity(zen4, caches)
    assert identity(zen5, caches) != identity(zen5, {**caches, 1: 32 * 1024.0})
    assert identity(zen5, caches).startswith("AuthenticAMD cpu family 26 model 2 stepping 1;")
    assert identity({}, {}) == "" and identity({}, caches).startswith("caches L1 48 KiB")
    assert identity({"CPU implementer": "0x41", "CPU part": "0xd4f"}, {}) == (
        "CPU implementer 0x41 CPU part 0xd4f"
    )
    # This machine's: what a calibration and a run's timings record of it.
    if pathlib.Path("/proc/cpuinfo").exists():
        text = pathlib.Path("/proc/cpuinfo").read_text()
        assert cpu_info().identity != ""
        for key in ("cpu family", "CPU part"):
            if key in text:
                assert key in cpu_info().identity
        assert cpu_info().identity in calibrate.machine_id()


def test_pooling_two_runs_keeps_each_points_faster_timing_and_the_new_runs_metadata():
    from perfjax.calibrate import pool

    rng = np.random.default_rng(0)
    ws = [Workload.of("elementwise", op="add", shape=(2**k,)) for k in range(10, 20)]
    t_new, t_old = rng.uniform(1e-6, 1e-3, 10), rng.uniform(1e-6, 1e-3, 10)
    new = Measurements(Measurements.from_rows(
        [dict(workload=w, device="host", time_s=t, rel_spread=0.1) for w, t in zip(ws[:8], t_new)]
    ).rows, {"date": "new", "noise_median": "0.05"})  # fmt: skip
    old = Measurements(Measurements.from_rows(
        [dict(workload=w, device="host", time_s=t, rel_spread=0.2) for w, t in zip(ws[2:], t_old)]
    ).rows, {"date": "old", "noise_median": "0.01"})  # fmt: skip
    both = pool(new, old)
    assert both.metadata == new.metadata and len(both) == 10
    got = {r.program: (r.time_s, r.rel_spread) for r in both}
    for i, w in enumerate(ws):
        times = ([t_new[i]] if i < 8 else []) + ([t_old[i - 2]] if i >= 2 else [])
        assert got[w.id][0] == min(times)
        assert got[w.id][1] == (0.1 if got[w.id][0] == (t_new[i] if i < 8 else -1) else 0.2)


def test_the_asymmetric_loss_is_huber_on_the_fast_side_and_fades_on_the_slow_side():
    """Per point, the asymmetric loss's pull (its gradient in the log prediction) equals
    Huber's where the timing is faster than predicted, and falls below it beyond the Cauchy
    scale on the slow side, the more the slower."""
    from perfjax.calibrate._fit import SLOW_SCALE, _point_loss

    delta = 0.25
    log_meas = jnp.zeros(())
    pull = lambda loss, r: float(jax.grad(lambda lp: _point_loss(loss, lp, log_meas, delta))(-r))
    huber = lambda r: 2.0 * float(np.clip(-r, -delta, delta))  # Huber's gradient, by hand
    for r in (-2.0, -0.6, -0.1, 0.05):
        assert pull("asymmetric", r) == pytest.approx(huber(r), rel=0.05, abs=1e-6)
    slow = [abs(pull("asymmetric", r)) for r in (SLOW_SCALE, 1.0, 1.8)]
    assert slow[0] > slow[1] > slow[2] and slow[2] < 0.6 * abs(huber(1.8))
    assert pull("msle", 1.0) == pytest.approx(-2.0)


def test_gpu_predictions_use_the_shipped_calibration_by_default():
    shipped = calibrate.shipped_calibration("gpu")
    assert shipped is not None and shipped.family == "gpu"
    assert {"p4", "t4", "v100-pcie", "a100-pcie-40gb", "p100"} <= set(shipped.devices)
    fn, ins = Workload.of("matmul", m=512, k=512, n=512).build()
    p = perfjax.predict(fn, ins, device="a100-80gb")
    assert p.calibration == str(shipped) and p.interval_s is not None
    lo, hi = p.interval_s
    assert lo < p.time_s < hi
    q = perfjax.predict(fn, ins, device="a100-80gb", calibration=False)
    assert q.calibration is None and q.interval_s is None and q.time_s != p.time_s
    # Other families keep their priors unless given a calibration.
    assert perfjax.predict(fn, ins, device="tpu-v4").calibration is None
    # compare uses the same defaults as predict, device by device.
    c = {x.device: x for x in perfjax.compare(fn, ins, ["a100-80gb", "tpu-v4"]).predictions}
    assert c["a100-80gb"].time_s == pytest.approx(p.time_s) and c["a100-80gb"].calibration == str(
        shipped
    )
    assert c["tpu-v4"].calibration is None
    c = perfjax.compare(fn, ins, ["a100-80gb"], calibration=False).predictions[0]
    assert c.time_s == pytest.approx(q.time_s) and c.calibration is None
    # A given calibration serves its own family; other devices keep their defaults.
    c = {
        x.device: x
        for x in perfjax.compare(fn, ins, ["a100-80gb", "tpu-v4"], calibration=shipped).predictions
    }
    assert c["a100-80gb"].calibration == str(shipped) and c["tpu-v4"].calibration is None
    with pytest.raises(TypeError, match="calibration must be"):
        perfjax.compare(fn, ins, ["a100-80gb"], calibration=3)


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_shipped_gpu_calibration_helps_on_deepbench_which_it_never_saw():
    """Independent data: DeepBench's fp32 GEMMs and convolutions (another harness, older
    libraries, other shapes) on a GTX 1080 Ti, a GPU no fit saw, scored with the shipped
    calibration's shared parameters: calibrating on NeuSight lowers the median error of both."""
    import dataclasses

    from perfjax.calibrate import load_deepbench

    shared = dataclasses.replace(calibrate.shipped_calibration("gpu"), device_params={})
    db = load_deepbench(kinds=["gemm", "conv"], precisions=["fp32"], devices=["gtx-1080ti"])
    df = evaluate(shared, db).to_dataframe()
    assert set(df.kind) == {"matmul", "conv2d"} and len(df) > 200
    for kind, g in df.groupby("kind"):
        before = np.median(np.abs(g.before_s / g.measured_s - 1))
        after = np.median(np.abs(g.after_s / g.measured_s - 1))
        assert after < 0.8 * before, (kind, before, after)
        assert after < 0.3, (kind, after)


def test_refit_keeps_the_heldout_report_and_fits_every_row(synthetic_fit):
    ms, split = synthetic_fit  # (holdout=0.3, steps=300)
    full = fit(ms, holdout=0.3, steps=300, refit=True)
    # Same split, same report and interval: they describe the held-out programs...
    assert full.summary == split.summary
    assert full.residual_log_quantiles == split.residual_log_quantiles
    assert full.metadata["refit"] == "every row" and split.metadata["refit"] == "no"
    # ...while the parameters now come from all rows, so they fit the held-out rows better.
    held = Measurements.from_rows(
        [
            r
            for r in ms.rows
            if r.program in {x["program"] for x in split.report.rows if x["split"] == "heldout"}
        ]
    )
    assert not np.allclose(full.params["compute_eff_logit"], split.params["compute_eff_logit"])
    assert (
        evaluate(full, held).summary()["median_ape_after"]
        <= evaluate(split, held).summary()["median_ape_after"]
    )


def test_interval_uses_split_conformal_order_statistics():
    from perfjax.calibrate._fit import _conformal_bounds

    r = np.arange(99, dtype=float)
    # n = 99, alpha = 0.1: the 10th and 90th smallest of 99 (plain quantiles: 9.8 and 88.2).
    assert _conformal_bounds(r, 0.1) == (9.0, 89.0)
    # Too few points for the level: the extremes, never an index outside the sample.
    assert _conformal_bounds(np.array([3.0, 1.0, 2.0]), 0.1) == (1.0, 3.0)
    # On fresh draws from the same distribution the interval covers at least the level on average.
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(300):
        lo, hi = _conformal_bounds(rng.normal(size=20), 0.1)
        x = rng.normal(size=50)
        covered.append(np.mean((x >= lo) & (x <= hi)))
    assert np.mean(covered) >= 0.79


# Five GPUs without the power cap (it could single out one device and absorb its slowness).
FLEET = [
    perfjax.devicemodels.register_device(
        perfjax.device(d).replace(name=f"test-{d}-nocap", process_nm=0.0, aliases=()),
        overwrite=True,
    )[0]
    for d in ("h100", "a100-80gb", "v100", "l4", "a100-pcie-40gb")
]


FLEET_PROGRAMS = tuple(
    [Workload.of("matmul", m=m, k=k, n=n) for m, k, n in GEMMS[::2]]
    + [Workload.of(op, b=b, h=1024) for op in ("softmax", "layernorm") for b in (1, 16, 256, 4096, 65536)]
)  # fmt: skip


def _fleet(slow=None, harness_s=0.0, seed=1):
    """GEMMs, softmaxes and layer norms on five GPUs; ``slow`` runs 1.6x slower than its spec says
    (a device effect), and every layer norm pays ``harness_s`` more (a per-op harness cost: both
    are reduction kernels, so only a per-op factor can tell them apart)."""
    rng = np.random.default_rng(seed)
    rows = []
    for dev in FLEET:
        for w, t in zip(FLEET_PROGRAMS, _truth_times(dev, FLEET_PROGRAMS), strict=True):
            t = t * (1.6 if dev == slow else 1.0) + (harness_s if w.kind == "layernorm" else 0.0)
            rows.append(dict(workload=w, device=dev, time_s=t * math.exp(rng.normal(0, 0.03))))
    return Measurements.from_rows(rows, {"source": "synthetic fleet"})


@pytest.fixture(scope="module")
def slow_fleet_fit():
    """The fleet with one 1.6x slow GPU, fitted with device effects, the last GPU held out."""
    ms = _fleet(slow=FLEET[1])
    held = {"devices": [FLEET[4]]}
    return ms, fit(ms, holdout=held, steps=400, device_effects=True, effect_threshold=0.05)


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_device_effects_keep_one_unusual_device_from_bending_the_shared_fit(slow_fleet_fit):
    # (The slow GPU runs its fp32 GEMMs on TF32 tensor cores like three others: the V100, alone on
    # CUDA cores, has a unit of its own that shared parameters could bend for it.)
    ms, robust = slow_fleet_fit
    held = {"devices": [FLEET[4]]}
    plain = fit(ms, holdout=held, steps=400)
    # The A100's slowness is put on the A100 (its GEMM factor ~1.6), not on every GPU...
    effects = robust.metadata["device_effects"]
    assert set(effects) == set(FLEET[:4])
    assert effects[FLEET[1]]["gemm"] == pytest.approx(1.6, rel=0.15)
    assert all(abs(effects[d]["gemm"] - 1) < 0.1 for d in (FLEET[0], FLEET[2], FLEET[3]))
    # ...so the GPU nobody fitted on is predicted better than by a fit that spreads it.
    bias_plain = np.median(
        [
            math.log(r["after_s"] / r["measured_s"])
            for r in plain.report.rows
            if r["split"] == "heldout"
        ]
    )
    bias_robust = np.median(
        [
            math.log(r["after_s"] / r["measured_s"])
            for r in robust.report.rows
            if r["split"] == "heldout"
        ]
    )
    assert bias_plain > 0.05 and abs(bias_robust) < bias_plain / 2
    # Same parameter structure as a plain calibration; the fitted devices' own factors apart.
    assert set(robust.params) == set(plain.params) and set(robust.device_params) == set(FLEET[:4])
    assert not plain.device_params
    with pytest.raises(ValueError, match="effect_threshold must be > 0"):
        fit(ms, holdout=held, steps=5, device_effects=True, effect_threshold=0.0)


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_a_calibrated_device_is_predicted_with_its_own_factors(slow_fleet_fit, tmp_path):
    import dataclasses

    ms, cal = slow_fleet_fit
    fn, ins = Workload.of("matmul", m=4096, k=4096, n=4096).build()
    shared_only = dataclasses.replace(cal, device_params={})
    slow = perfjax.predict(fn, ins, device=FLEET[1], calibration=cal)
    assert slow.time_s / perfjax.predict(
        fn, ins, device=FLEET[1], calibration=shared_only
    ).time_s == (pytest.approx(1.6, rel=0.15))
    assert f"with {FLEET[1]}'s own factors" in slow.calibration
    # A device the fit never saw gets the shared parameters.
    other = perfjax.predict(fn, ins, device="h100", calibration=cal)
    assert other.time_s == perfjax.predict(fn, ins, device="h100", calibration=shared_only).time_s
    assert other.calibration == str(cal)
    # Saved and loaded with the calibration; evaluate uses them too.
    again = load(cal.save(tmp_path / "fleet.json"))
    np.testing.assert_allclose(
        again.device_params[FLEET[1]]["kind_time_log"], cal.device_params[FLEET[1]]["kind_time_log"]
    )
    slow_rows = Measurements.from_rows(
        [r for r in ms.rows if r.device == FLEET[1] and r.kind == "matmul"]
    )
    assert (
        evaluate(again, slow_rows).summary()["median_ape_after"]
        < evaluate(shared_only, slow_rows).summary()["median_ape_after"]
        / 1.5  # (small GEMMs: the 1.6x on fixed costs is not shipped)
    )


def test_calibrations_saved_before_device_factors_still_load(synthetic_fit, tmp_path):
    _, cal = synthetic_fit
    d = json.loads(cal.save(tmp_path / "new.json").read_text())
    for key in ("params", "prior"):
        del d[key]["kind_time_log"]
    del d["device_params"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = load(tmp_path / "old.json")
    np.testing.assert_array_equal(old.params["kind_time_log"], 0.0)
    assert old.device_params == {}


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_harness_effects_learn_a_per_op_fixed_cost_shared_by_every_device():
    ms = _fleet(harness_s=30e-6)
    held = {"devices": [FLEET[4]]}
    plain = fit(ms, holdout=held, steps=400)
    harness = fit(ms, holdout=held, steps=400, harness_effects=True)
    cost_s = harness.metadata["harness_effects"]
    # The layer norms pay ~30 us more per call; the softmaxes (same kernels) and GEMMs do not
    # (those two take the same share of the fleet's doubled launch costs, which the shared
    # launch term, kept at its prior under harness effects, leaves to them).
    assert cost_s["layernorm"] - cost_s["softmax"] == pytest.approx(30e-6, rel=0.3)
    assert abs(cost_s["matmul"] - cost_s["softmax"]) < 3e-6
    # The held-out GPU, timed by the same harness, is predicted better with the harness's costs.
    for kind in ("softmax", "layernorm"):
        before = plain.summary["per_kind"][kind]["median_ape_after"]
        after = harness.summary["per_kind"][kind]["median_ape_after"]
        assert after < 0.15 < before, (kind, before, after)
    # The calibration's parameters do not carry them (a compiled program does not pay them).
    assert "harness_effects" not in harness.params


def test_cross_conformal_interval_uses_every_row_out_of_fold(synthetic_fit):
    ms, split = synthetic_fit  # (holdout=0.3, steps=300)
    cv = fit(ms, holdout=0.3, steps=300, interval_folds=4)
    assert cv.metadata["interval_points"] == len(ms) > split.metadata["interval_points"]
    assert "cross-conformal" in cv.metadata["interval_source"]
    # Same held-out report; only the interval (and its coverage estimate) change.
    assert cv.summary == split.summary
    assert cv.residual_log_quantiles != split.residual_log_quantiles
    lo, hi = cv.residual_log_quantiles
    assert lo < 0 < hi and 0.6 <= cv.report.coverage <= 0.97
    # Out-of-fold residuals are larger than in-sample ones: the interval is not the training fit's.
    train = [
        math.log(r["measured_s"] / r["after_s"]) for r in cv.report.rows if r["split"] == "train"
    ]
    assert hi - lo >= np.quantile(train, 0.9) - np.quantile(train, 0.1)
    with pytest.raises(ValueError, match="interval_folds must be 0"):
        fit(ms, holdout=0.3, steps=5, interval_folds=1)
    with pytest.raises(ValueError, match="needs at least 100 measurements"):
        fit(ms, holdout=0.3, steps=5, interval_folds=10)


def test_each_kind_weighs_the_same_and_chains_weigh_more():
    from types import SimpleNamespace

    from perfjax.calibrate._fit import _CHAIN_WEIGHT, _Objective

    kinds = ["matmul"] * 6 + ["elementwise"] * 2 + ["chain"] * 3 + ["conv2d"]
    rows = [SimpleNamespace(kind=k) for k in kinds]
    held = np.array([11])  # the conv2d row is held out: no weight
    train = np.setdiff1d(np.arange(len(rows)), held)
    w = np.asarray(
        _Objective.kind_weights(SimpleNamespace(rows=rows, spread_factor=np.ones(len(rows))), train)
    )
    total = {k: w[[i for i, x in enumerate(kinds) if x == k]].sum() for k in set(kinds)}
    assert w.sum() == pytest.approx(1.0) and total["conv2d"] == 0.0
    # Six GEMMs weigh what two elementwise ops do; chains (per call against per kernel costs)
    # weigh _CHAIN_WEIGHT kinds.
    assert total["matmul"] == pytest.approx(total["elementwise"])
    assert total["chain"] == pytest.approx(_CHAIN_WEIGHT * total["matmul"])
    assert _CHAIN_WEIGHT > 1


def test_whole_programs_are_never_fitted_and_set_the_interval():
    """Rows of kind "model" (whole programs, the ``programs`` suite) are scored, never fitted:
    adding them leaves the fitted parameters as they were (to float32 rounding). With 12 or more, the
    interval is the normal interval of the median and MAD of their residuals and the held-out
    microbenchmarks' (z = 1.2816 for 80%), not those residuals' order statistics."""
    from perfjax.calibrate._fit import MIN_INTERVAL_PROGRAMS, _conformal_bounds

    sizes = [2**k for k in range(10, 24)]
    micro = [dict(workload=Workload.of("elementwise", op="add", shape=(n,)), device="host",
                  time_s=(2e-10 * n + 6e-6) * (1.0 + 0.1 * (i % 3))) for i, n in enumerate(sizes)]  # fmt: skip
    rng = np.random.default_rng(0)
    programs = [dict(workload=Workload.of("model", builder="block", family="norm", op=op, rows=r, cols=c),
                     device="host", time_s=float(1e-9 * r * c * math.exp(rng.normal(0.3, 0.2))))
                for op in ("layernorm", "softmax") for r in (1, 16, 128) for c in (128, 1024, 4096)]  # fmt: skip
    assert len(programs) >= MIN_INTERVAL_PROGRAMS
    alone = fit(Measurements.from_rows(micro), holdout=0.25, steps=60)
    both = fit(Measurements.from_rows(micro + programs), holdout=0.25, steps=60)
    for k, v in alone.params.items():
        np.testing.assert_allclose(both.params[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    df = both.report.to_dataframe()
    assert set(df[df.kind == "model"].split) == {"program"}
    assert set(df[df.kind != "model"].split) == {"train", "heldout"}
    assert both.metadata["program_points"] == len(programs)
    assert "whole programs" in both.metadata["interval_source"]
    p = df[df.split.isin(["program", "heldout"])]
    assert len(p) > len(programs)
    r = np.log(p.measured_s / p.after_s).to_numpy()
    centre, mad = np.median(r), np.median(np.abs(r - np.median(r)))
    lo, hi = centre - 1.2816 * 1.4826 * mad, centre + 1.2816 * 1.4826 * mad
    np.testing.assert_allclose(both.residual_log_quantiles, (lo, hi), rtol=1e-4)
    assert both.residual_log_quantiles != pytest.approx(_conformal_bounds(r, 0.1))
    assert "MAD" in both.metadata["interval_source"]
    assert both.residual_log_quantiles != alone.residual_log_quantiles
    with pytest.raises(ValueError, match="never fitted"):
        fit(Measurements.from_rows(programs), steps=10)


def _two_core_host(monkeypatch):
    """This machine's CPU seen with two cores (its bandwidth estimate: 20 GB/s)."""
    import dataclasses

    from perfjax._host import cpu_info
    from perfjax.devicemodels import _catalog

    two_cores = dataclasses.replace(cpu_info(), cores=2)
    monkeypatch.setattr(_catalog, "cpu_info", lambda: two_cores)
    _catalog.host_spec.cache_clear()
    return _catalog.host_spec


def test_a_host_calibration_measures_the_bandwidth_the_host_spec_only_estimates(monkeypatch):
    """The host's bandwidth is an estimate (10 GB/s per core) and a class efficiency can only
    lower it, while a 2-core AMD EPYC VM streams 46-63 GB/s over 32-34 MB working sets
    (docs/calibration/host_measurements/host_20261205-112930.csv). ``bandwidth_log`` lets a
    calibration reach it: copies timed at 50 GB/s are fitted within 25%; without it (frozen)
    the fit stays more than 1.5x too slow."""
    host_spec = _two_core_host(monkeypatch)
    try:
        assert host_spec().memory_bandwidth_estimated
        assert host_spec().memory_bytes_per_s == pytest.approx(20e9)
        sizes = (1 << 23, 3 << 22, 1 << 24, 3 << 23, 1 << 25, 3 << 24)
        rows = [dict(workload=Workload.of("memory", pattern="copy", n=n), device="host",
                     time_s=8.0 * n / 50e9) for n in sizes]  # fmt: skip
        worst = {}
        for freeze in ((), ("bandwidth_log",)):
            cal = fit(Measurements.from_rows(rows), holdout=0.2, steps=300, freeze=freeze)
            rep = evaluate(cal, Measurements.from_rows(rows))
            worst[freeze] = max(abs(math.log(r["after_s"] / r["measured_s"])) for r in rep.rows)
        assert worst[()] < math.log(1.25), worst
        assert worst[("bandwidth_log",)] > math.log(1.5), worst
    finally:
        host_spec.cache_clear()


def test_only_an_estimated_bandwidth_is_calibrated():
    """``bandwidth_log`` scales the host's estimated bandwidth, never a published one: a
    catalog EPYC (the host calibration's vendor) is predicted as before, and a host spec given
    a measured bandwidth (``replace``) is no longer an estimate."""
    fn, ins = Workload.of("memory", pattern="copy", n=1 << 24).build()
    params = dict(default_params("cpu"))
    params["bandwidth_log"] = jnp.asarray(math.log(3.0), jnp.float32)
    for name, ratio in (("epyc-9654", 1.0), ("host", None)):
        prior = perfjax.predict(fn, ins, device=name, calibration=False).time_s
        faster = perfjax.predict(fn, ins, device=name, params=params).time_s
        if ratio is None:  # (the fresh output's page faults stay)
            assert faster < 0.8 * prior
        else:
            assert faster == pytest.approx(prior * ratio, rel=1e-5)
    measured = perfjax.device("host").replace(memory_bytes_per_s=40e9)
    assert not measured.memory_bandwidth_estimated
    a = perfjax.predict(fn, ins, device=measured, calibration=False).time_s
    assert perfjax.predict(fn, ins, device=measured, params=params).time_s == pytest.approx(a)


def test_robust_normal_bounds_follow_the_bulk_not_the_tails():
    """The whole-programs interval: median +- z x 1.4826 x MAD. On normal residuals it covers
    about the asked share of new ones (like the order statistics); a few rows far out (a tenth
    of them 3 above) move it far less than they move the order statistics."""
    from perfjax.calibrate._fit import _conformal_bounds, _robust_normal_bounds

    rng = np.random.default_rng(1)
    r = rng.normal(0.1, 0.2, size=4000)
    lo, hi = _robust_normal_bounds(r, 0.1)
    new = rng.normal(0.1, 0.2, size=20000)
    assert 0.78 < np.mean((new >= lo) & (new <= hi)) < 0.82
    assert lo == pytest.approx(0.1 - 1.2816 * 0.2, abs=0.02)
    tail = np.concatenate([r[:900], np.full(100, 3.0)])
    rob, order = _robust_normal_bounds(tail, 0.1), _conformal_bounds(tail, 0.1)
    assert order[1] > 2.9  # the order statistic sits on the outliers
    assert rob[1] < 0.5


ZEN5_TIMINGS = pathlib.Path(__file__).parents[1] / "docs" / "calibration" / "zen5"
#: One sitting's two calibrations on a 2-core Zen 5 VM, six minutes apart: the first timed
#: while the host woke the VM's idle cores slowly (every small call handed to a worker took
#: 15-47 us, 4 us minutes later).
SPELL_CSV, QUIET_CSV = (ZEN5_TIMINGS / f"host_20261207-{t}.csv" for t in ("220009", "220638"))


def test_a_calibration_timed_while_hand_offs_to_a_worker_were_slow_is_told_apart(capsys, tmp_path):
    """The committed sitting's first calibration: its tiny calls run on a worker took 35 us
    longer than those run inline (a median over the suite's smallest points), the next one's
    0.5 us, as the Zen 4's; `perfjax calibrate` fits the first with a warning that says so and
    keeps the cost out of the saved parameters (its metadata records it)."""
    from perfjax._cli import main

    spell = calibrate.handoff_excess_s(Measurements.from_csv(SPELL_CSV))
    quiet = calibrate.handoff_excess_s(Measurements.from_csv(QUIET_CSV))
    zen4 = calibrate.handoff_excess_s(Measurements.from_csv(
        ZEN5_TIMINGS.parent / "host_measurements" / "host_20261207-082455.csv"))  # fmt: skip
    assert (
        spell > 5 * calibrate.HANDOFF_SPELL_S and max(quiet, zen4) < calibrate.HANDOFF_SPELL_S / 2
    )
    save = tmp_path / "cal.json"
    assert (
        main(["calibrate", "--from-csv", str(SPELL_CSV), "--steps", "150", "--save", str(save)])
        == 0
    )
    err = capsys.readouterr().err
    assert "perfjax: warning: tiny calls run on a worker thread took 34.6 us longer" in err, err
    meta = load(save).metadata
    assert float(meta["handoff_excess_s"]) == pytest.approx(spell, rel=0.01)
    assert 15e-6 < float(meta["handoff_spell_s"]) < 50e-6


def test_a_handoff_excess_needs_tiny_calls_of_both_kinds():
    rows = [dict(workload=Workload.of("memory", pattern="copy", n=n), device="host", time_s=4e-6)
            for n in (688, 1376, 2736)]  # fmt: skip
    assert math.isnan(calibrate.handoff_excess_s(Measurements.from_rows(rows)))
    gpu = [dict(r, device="h100") for r in rows]
    assert math.isnan(calibrate.handoff_excess_s(Measurements.from_rows(gpu)))


@pytest.mark.slow  # three host fits of a committed timing file (~40 s)
def test_a_slow_hand_off_kept_apart_leaves_the_predictions_of_a_quiet_calibration(monkeypatch):
    """The quiet calibration's timings with 30 us added to every call XLA:CPU runs on a worker
    (what the slow state cost the sitting's first calibration): the fit keeps 20-40 us apart
    and predicts small and larger programs within 20% of the quiet fit (measured: 14% lower
    for a small RMS norm, 9% for a 32^3 GEMM, 2% for an MLP), where a fit that charges it to
    the model puts the RMS norm 5x over and the GEMM 17% over."""
    from perfjax.calibrate import _fit

    quiet = Measurements.from_csv(QUIET_CSV)
    rows = list(quiet)
    worker = _fit._worker_rows(rows, _fit._featurize(rows, "cpu", False))
    spelled = Measurements(
        tuple(
            dataclasses.replace(r, time_s=r.time_s + 30e-6) if w else r
            for r, w in zip(rows, worker, strict=True)
        ),
        quiet.metadata,
    )
    f32 = jnp.float32
    programs = {
        "rmsnorm 8x256": (lambda x: x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6),
                          (jax.ShapeDtypeStruct((8, 256), f32),)),
        "matmul 32^3": (jnp.matmul, (jax.ShapeDtypeStruct((32, 32), f32),) * 2),
        "mlp 256x1024": (lambda x, w: jax.nn.gelu(x @ w) @ w.T,
                         (jax.ShapeDtypeStruct((256, 1024), f32), jax.ShapeDtypeStruct((1024, 1024), f32))),
    }  # fmt: skip

    def times(ms):
        cal = fit(ms, refit=True, steps=200)
        t = {k: perfjax.predict(fn, args, device="host", calibration=cal).time_s
             for k, (fn, args) in programs.items()}  # fmt: skip
        return cal, t

    _, truth = times(quiet)
    with pytest.warns(UserWarning, match="worker thread took 3[0-9].[0-9] us longer"):
        cal, kept = times(spelled)
    assert 20e-6 < float(cal.metadata["handoff_spell_s"]) < 40e-6
    off = {k: abs(math.log(kept[k] / truth[k])) for k in programs}
    assert max(off.values()) < math.log(1.2), (kept, truth)
    monkeypatch.setattr(_fit, "HANDOFF_SPELL_S", float("inf"))
    _, charged = times(spelled)
    assert charged["rmsnorm 8x256"] > 3 * truth["rmsnorm 8x256"], (charged, truth)
    for k in ("rmsnorm 8x256", "matmul 32^3"):
        assert abs(math.log(charged[k] / truth[k])) > off[k], (k, charged, kept, truth)
