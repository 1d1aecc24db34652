"""Public measured timings shipped with perfjax: NeuSight and DeepBench loaders.

The loaders read only ``perfjax/calibrate/data``; the checks against the original CSVs in
``/work/shared/datasets`` run only where that folder exists.
"""

import csv
import json
import math
import pathlib
import random
from collections import Counter, defaultdict

import jax
import pandas as pd
import pytest

import perfjax
from perfjax.calibrate import Measurements
from perfjax.calibrate._public import (
    DEEPBENCH_COMMIT,
    NEUSIGHT_COMMIT,
    XLA_COMMIT,
    data_path,
    load_deepbench,
    load_neusight,
    load_neusight_models,
)

SHARED = pathlib.Path("/work/shared/datasets/gpu-timings")
NEUSIGHT_GPUS = {"p4", "p100", "t4", "v100-pcie", "a100-pcie-40gb", "a100-pcie-80gb"}
SCALAR_OPS = {"addu": "add", "mulu": "mul", "divu": "div", "powu": "pow"}  # tensor (op) scalar
DEEPBENCH_OFF_CATALOG = {
    "M40",
    "MI25",
    "VegaFE",
    "XeonPhi_KNL7250",
    "TitanX_Maxwell",
    "TitanX_Pascal",
}


def _shipped(name: str) -> pd.DataFrame:
    with data_path(name).open("rb") as f:
        return pd.read_csv(f, compression="gzip")


def _catalog(gpu: str) -> str | None:
    try:
        return perfjax.device(gpu).name
    except ValueError:
        return None


def _counts(ms: Measurements, prefix: str) -> dict:
    m = ms.metadata
    return dict(
        loaded=int(m[f"{prefix}.rows_loaded"]),
        skipped=int(m[f"{prefix}.rows_skipped"]),
        reasons=json.loads(m[f"{prefix}.skipped"]),
        filtered=int(m[f"{prefix}.rows_filtered_out"]),
    )


def _params(w) -> dict:
    return dict(w.params)


def _out_shape(w):
    fn, inputs = w.build()
    return jax.eval_shape(fn, *inputs).shape


@pytest.fixture(scope="module")
def neusight() -> Measurements:
    return load_neusight()


@pytest.fixture(scope="module")
def neusight_index(neusight):
    """(source, device, time_s) -> workloads: finds the loaded row of a shipped CSV row."""
    index = defaultdict(list)
    for r in neusight:
        index[(r.source, r.device, r.time_s)].append(r.workload)
    return index


@pytest.fixture(scope="module")
def deepbench() -> Measurements:
    return load_deepbench()


@pytest.fixture(scope="module")
def deepbench_by_row(deepbench):
    """'deepbench:<file> [<sheet>] row <n>' -> Row."""
    return {r.source.split(";")[0]: r for r in deepbench}


def _unambiguous(index, sub: pd.DataFrame, n: int, seed: int):
    """``n`` random rows of a shipped table with the loaded workload of each; rows whose
    (file, device, time) is shared by two different shapes are passed over."""
    rng = random.Random(seed)
    out = []
    for i in rng.sample(range(len(sub)), len(sub)):
        row = sub.iloc[i]
        key = (f"neusight:{row.source_file}", _catalog(row.device), row.latency_ms * 1e-3)
        found = set(index[key])
        assert found, key
        if len(found) == 1:
            out.append((row, found.pop()))
        if len(out) == n:
            return out
    raise AssertionError("not enough unambiguous rows")


def _deepbench_key(row) -> str:
    return f"deepbench:{row.source_file} [{row.source_sheet}] row {row.source_row}"


# ---- shipped files ------------------------------------------------------------------------------


def test_data_ships_with_the_package_and_is_small():
    root = pathlib.Path(str(data_path()))
    assert root.is_dir() and pathlib.Path(perfjax.__file__).parent in root.parents
    files = sorted(p.name for p in root.glob("*.csv.gz"))
    assert files == [
        "deepbench_conv.csv.gz",
        "deepbench_gemm.csv.gz",
        "neusight_models.csv.gz",
        "neusight_ops.csv.gz",
        "xla_matmul.csv.gz",
    ]
    assert sum(p.stat().st_size for p in root.iterdir()) < 3_000_000
    notice = (root / "LICENSES.md").read_text()
    for needle in ("MIT License", "Apache License", NEUSIGHT_COMMIT, DEEPBENCH_COMMIT, XLA_COMMIT):
        assert needle in notice


# ---- NeuSight -------------------------------------------------------------------------------------


def test_neusight_loads_every_row_on_catalog_gpus(neusight):
    assert len(neusight) >= 1000
    assert set(neusight.devices()) == NEUSIGHT_GPUS
    assert set(neusight.kinds()) == {
        "bmm", "linear", "layernorm", "softmax", "elementwise", "transcendental", "conv2d",
    }  # fmt: skip
    c = _counts(neusight, "neusight")
    in_file = int(neusight.metadata["neusight.rows_in_file"])
    assert c["loaded"] == len(neusight)
    assert c["loaded"] + c["skipped"] + c["filtered"] == in_file
    assert c["skipped"] == sum(c["reasons"].values())
    assert neusight.metadata["neusight.licence"] == "MIT"
    assert all(r.time_s > 0 and math.isfinite(r.time_s) for r in neusight)
    assert all(r.source.startswith("neusight:ops/") for r in neusight)
    per_gpu = Counter(r.device for r in neusight)
    assert all(n >= 1000 for n in per_gpu.values()), per_gpu


def test_neusight_rows_survive_validation_and_csv_round_trip(neusight, tmp_path):
    sample = Measurements(neusight.rows[::2000], neusight.metadata)
    again = Measurements.from_rows(sample.rows, sample.metadata)  # the validating constructor
    assert again.rows == sample.rows
    back = Measurements.from_csv(sample.to_csv(tmp_path / "ns.csv"))
    assert [r.workload for r in back] == [r.workload for r in sample]
    assert back.metadata["neusight.commit"] == NEUSIGHT_COMMIT


def test_neusight_filters_and_subsampling():
    t4 = load_neusight(ops=["bmm"], devices=["Tesla T4"])
    assert t4.devices() == ["t4"] and t4.kinds() == ["bmm"]
    c = _counts(t4, "neusight")
    assert c["filtered"] == int(t4.metadata["neusight.rows_in_file"]) - len(t4)
    ew = load_neusight(ops=["elementwise"], devices=["p4"])
    assert set(ew.kinds()) == {"elementwise", "transcendental"}
    assert len(ew) == 11 * 1750

    a = load_neusight(ops=["bmm", "ln"], max_rows_per_group=25)
    b = load_neusight(ops=["bmm", "ln"], max_rows_per_group=25)
    assert a.rows == b.rows  # deterministic
    groups = Counter((r.kind, r.device) for r in a)
    assert set(groups.values()) == {25} and len(groups) == 2 * 5
    assert int(a.metadata["neusight.rows_not_selected"]) > 0
    shapes = defaultdict(set)
    for r in a.select(kinds=["bmm"]):
        shapes[r.device].add(r.workload)
    common = set.intersection(*shapes.values())
    assert len(common) >= 20  # the same shapes are picked on every GPU


def test_neusight_bad_arguments():
    with pytest.raises(ValueError, match="unknown NeuSight op 'matmull'"):
        load_neusight(ops=["matmull"])
    with pytest.raises(ValueError, match="unknown device"):
        load_neusight(devices=["m40"])
    with pytest.raises(ValueError, match="max_rows_per_group"):
        load_neusight(max_rows_per_group=0)
    with pytest.raises(ValueError, match="no NeuSight rows"):
        load_neusight(ops=["conv"], devices=["a100-pcie-40gb"])  # conv ran on the 80 GB A100


def test_neusight_gemm_flops_match_the_dataset(neusight_index):
    df = _shipped("neusight_ops.csv.gz")
    for op in ("bmm", "linear"):
        for row, w in _unambiguous(neusight_index, df[df.op == op], 10, seed=0):
            b, m, n, k = (int(row[c]) for c in "BMNK")
            flops = perfjax.analyze(*w.build()).flops
            expected = 2 * b * m * n * k  # N is the reduction dimension
            if op == "linear":
                expected += b * m * k  # nn.Linear's bias add on the (B, M, K) output
            assert flops == pytest.approx(expected, rel=0.01), (op, w.id)
            assert _out_shape(w) == (b, m, k)
            assert _params(w)["precision"] == "highest"


def test_neusight_vector_ops_map_to_the_right_builders(neusight_index):
    df = _shipped("neusight_ops.csv.gz")
    expected_kind = {"ln": "layernorm", "softmax": "softmax", "pow": "transcendental",
                     "powu": "transcendental", "gelu": "transcendental", "tanh": "transcendental"}  # fmt: skip
    for op in ("ln", "softmax", "add", "addu", "mul", "mulu", "div", "divu", "pow", "powu",
               "relu", "gelu", "tanh"):  # fmt: skip
        ((row, w),) = _unambiguous(neusight_index, df[df.op == op], 1, seed=1)
        b, h = int(row.B), int(row.H)
        assert w.kind == expected_kind.get(op, "elementwise"), op
        assert _out_shape(w) == (b, h)
        g = perfjax.analyze(*w.build())
        assert g.flops + g.transcendentals > 0
        if op in ("ln", "softmax"):
            continue
        p = _params(w)
        assert p["op"] == SCALAR_OPS.get(op, op) and p["shape"] == (b, h)
        n_inputs = len(w.build()[1])
        if op in ("relu", "gelu", "tanh"):
            assert n_inputs == 1 and "scalar" not in p
        else:
            assert p["scalar"] == (op in SCALAR_OPS)
            assert n_inputs == (1 if op in SCALAR_OPS else 2)
        if op in ("add", "mul", "div", "addu", "mulu", "divu"):
            assert g.flops == b * h


def test_neusight_conv_shapes(neusight_index):
    df = _shipped("neusight_ops.csv.gz")
    for row, w in _unambiguous(neusight_index, df[df.op == "conv"], 10, seed=2):
        b, c, o, k, s = (int(row[x]) for x in ("B", "C_in", "C_out", "kernel_size", "input_size"))
        stride, pad = int(row.stride), int(row.padding)
        out = (s + 2 * pad - k) // stride + 1
        assert _out_shape(w) == (b, out, out, o)
        flops = perfjax.analyze(*w.build()).flops
        assert 0 < flops <= 2 * b * out * out * o * c * k * k  # padded taps are not counted


@pytest.mark.skipif(not SHARED.is_dir(), reason="original CSVs (/work/shared) not present")
def test_neusight_spot_checks_against_the_original_csvs(neusight):
    by_id = defaultdict(list)
    for r in neusight:
        by_id[(r.device, r.workload.id)].append(r.time_s)
    rng = random.Random(3)

    def check(device, w, latency_ms):
        times = by_id[(_catalog(device), w.id)]
        assert any(t == pytest.approx(latency_ms * 1e-3, rel=1e-6) for t in times), (device, w.id)

    for path in sorted((SHARED / "neusight/ops/bmm").glob("*.csv")):
        rows = list(csv.DictReader(path.open()))
        for d in rng.sample(rows, 3):
            B, M, N, K = (int(d[c]) for c in "BMNK")
            w = perfjax.calibrate.Workload.of(
                "bmm", builder="matmul", b=B, m=M, k=N, n=K, precision="highest"
            )
            check(d["Device"], w, float(d["Latency"]))
    for path in sorted((SHARED / "neusight/ops/ln").glob("*.csv")):
        d = rng.choice(list(csv.DictReader(path.open())))
        w = perfjax.calibrate.Workload.of("layernorm", b=int(d["B"]), h=int(d["H"]))
        check(d["Device"], w, float(d["Latency"]))
    # the conv table has quoted kernel names with commas: a real CSV parser is needed
    rows = list(csv.DictReader((SHARED / "neusight/ops/train_conv_all_gpus.csv").open()))
    for d in rng.sample(rows, 5):
        size, k = int(d["Input_Size"]), int(d["Kernel_Szie"])
        w = perfjax.calibrate.Workload.of(
            "conv2d", batch=int(d["B"]), h=size, w=size, c=int(d["Input_Channel"]),
            o=int(d["Output_Channel"]), kh=k, kw=k, stride=int(d["Stride"]),
            padding=int(d["Padding"]), precision="highest",
        )  # fmt: skip
        check(d["Device"], w, float(d["Latency"]))
    rows = list(csv.DictReader((SHARED / "neusight/ops/train_elementwise_all_gpus.csv").open()))
    for d in rng.sample(rows, 5):
        op = d["OPName"]
        name = SCALAR_OPS.get(op, op)
        kind = "transcendental" if name in ("pow", "gelu", "tanh") else "elementwise"
        shape = (int(d["B"]), int(d["H"]))
        if op in ("relu", "gelu", "tanh"):
            w = perfjax.calibrate.Workload.of(kind, builder="elementwise", op=op, shape=shape)
        else:
            w = perfjax.calibrate.Workload.of(
                kind, builder="elementwise", op=name, shape=shape, scalar=op in SCALAR_OPS,
            )  # fmt: skip
        check(d["Device"], w, float(d["Latency"]))
    n_original = sum(
        sum(1 for _ in open(p)) - 1 for p in (SHARED / "neusight/ops").rglob("*.csv")
        if p.name != "elementwise_kernel_names.csv"
    )  # fmt: skip
    assert n_original == int(neusight.metadata["neusight.rows_in_file"])


def test_neusight_models():
    df = load_neusight_models()
    assert len(df) == 47 and df["device"].notna().all()
    assert set(df["device"]) == {"a100-pcie-40gb", "a100-40gb", "p100", "p4", "t4", "v100-pcie"}
    assert (df["e2e_time_s"] == df["e2e_latency_ms"] * 1e-3).all()
    multi = df[df["variant"].isin(["dp4", "tp4", "pp4_1"])]
    assert len(multi) == 3 and multi["fw_latency_ms"].isna().all()
    train = df[(df["mode"] == "train") & (df["variant"] == "eager_single_gpu")]
    assert (
        train["fw_latency_ms"] + train["bwall_latency_ms"] <= train["e2e_latency_ms"] * 1.01
    ).all()
    assert df.attrs["commit"] == NEUSIGHT_COMMIT
    if SHARED.is_dir():
        orig = pd.read_csv(SHARED / "neusight/models/e2e_latency.csv")
        assert list(orig["e2e_latency_ms"]) == list(df["e2e_latency_ms"])


# ---- DeepBench ------------------------------------------------------------------------------------


def test_deepbench_loads_catalog_gpus_and_counts_the_rest(deepbench):
    assert set(deepbench.devices()) == {"gtx-1080ti", "p100", "t4", "titan-xp", "v100"}
    assert set(deepbench.kinds()) == {"matmul", "conv2d"}
    c = _counts(deepbench, "deepbench")
    in_files = int(deepbench.metadata["deepbench.rows_in_files"])
    assert c["loaded"] == len(deepbench) and c["filtered"] == 0
    assert c["loaded"] + c["skipped"] == in_files
    shipped = pd.concat([_shipped("deepbench_gemm.csv.gz"), _shipped("deepbench_conv.csv.gz")])
    off = shipped[shipped.gpu.isin(DEEPBENCH_OFF_CATALOG)].gpu.value_counts()
    assert c["reasons"] == {f"gpu not in catalog ({g})": int(n) for g, n in off.items()}
    again = Measurements.from_rows(deepbench.rows, deepbench.metadata)
    assert again.rows == deepbench.rows
    dtypes = {"fp32": "float32", "fp16_in_fp16_mul_fp32_acc": "float16",
              "fp16_in_fp32_math": "float16", "int8_in_int32_acc": "int8"}  # fmt: skip
    for r in deepbench:
        label = r.source.split("precision=")[1].split()[0]
        p = _params(r.workload)
        assert p["dtype"] == dtypes[label]
        assert p.get("precision") == ("highest" if label == "fp32" else None)


def test_deepbench_filters():
    ms = load_deepbench(kinds=["gemm"], precisions=["int8_in_int32_acc"], devices=["t4"])
    assert ms.devices() == ["t4"] and ms.kinds() == ["matmul"] and len(ms) == 75
    with pytest.raises(ValueError, match="unknown DeepBench kind"):
        load_deepbench(kinds=["rnn"])
    with pytest.raises(ValueError, match="precision label"):
        load_deepbench(precisions=["fp8"])
    with pytest.raises(ValueError, match="no DeepBench rows"):
        load_deepbench(precisions=["fp16_in_fp32_math"], devices=["v100"])


def test_deepbench_gemm_flops_and_tflops(deepbench_by_row):
    df = _shipped("deepbench_gemm.csv.gz")
    df = df[~df.gpu.isin(DEEPBENCH_OFF_CATALOG)]
    for _, row in df.sample(20, random_state=0).iterrows():
        r = deepbench_by_row[_deepbench_key(row)]
        m, n, k = int(row.M), int(row.N), int(row.K)
        assert _out_shape(r.workload) == (m, n)  # C(M x N) = A(M x K) B(K x N)
        flops = perfjax.analyze(*r.workload.build()).flops
        assert flops == pytest.approx(2 * m * n * k, rel=0.01)
        assert r.time_s == pytest.approx(row.time_ms * 1e-3, rel=1e-12)
        assert flops / r.time_s / 1e12 == pytest.approx(row.tflops, rel=0.02)
        assert f"transA={row.transA} transB={row.transB}" in r.source


def test_deepbench_conv_shapes_and_flops(deepbench_by_row):
    df = _shipped("deepbench_conv.csv.gz")
    df = df[~df.gpu.isin(DEEPBENCH_OFF_CATALOG)]
    picks = pd.concat([df[df.pad_h == 0].sample(12, random_state=0), df[df.pad_h > 0].sample(8, random_state=0)])  # fmt: skip
    for _, row in picks.iterrows():
        r = deepbench_by_row[_deepbench_key(row)]
        assert r.kind == "conv2d" and r.time_s == pytest.approx(row.fwd_ms * 1e-3, rel=1e-12)
        assert _out_shape(r.workload) == (row.N, row.out_h, row.out_w, row.K)
        flops = perfjax.analyze(*r.workload.build()).flops
        dense = 2 * row.N * row.K * row.out_h * row.out_w * row.C * row.R * row.S
        if row.pad_h == 0 and row.pad_w == 0:
            assert flops == pytest.approx(dense, rel=0.01)
        else:
            assert 0 < flops <= dense


@pytest.mark.skipif(not SHARED.is_dir(), reason="original CSVs (/work/shared) not present")
def test_deepbench_spot_checks_against_the_original_csvs(deepbench_by_row):
    rng = random.Random(4)
    for name, time_col in (("V100_train_gemm.csv", "time_ms"), ("T4_inference_conv.csv", "fwd_ms")):
        rows = list(csv.DictReader((SHARED / "deepbench" / name).open()))
        for d in rng.sample(rows, 5):
            key = f"deepbench:{d['source_file']} [{d['source_sheet']}] row {d['source_row']}"
            r = deepbench_by_row[key]
            assert r.time_s == pytest.approx(float(d[time_col]) * 1e-3, rel=1e-12)
            p = _params(r.workload)
            if "gemm" in name:
                assert (p["m"], p["n"], p["k"]) == (int(d["M"]), int(d["N"]), int(d["K"]))
            else:
                assert (p["batch"], p["h"], p["w"], p["c"], p["o"], p["kh"], p["kw"]) == tuple(
                    int(d[c]) for c in ("N", "H", "W", "C", "K", "R", "S")
                )
                assert p["padding"] == (int(d["pad_h"]), int(d["pad_w"]))


def test_loaders_never_touch_the_shared_folder():
    """The loaders read only the package's data folder (a fresh clone has no /work/shared)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "def hook(event, args):\n"
        "    if event == 'open' and '/work/shared' in str(args[0]):\n"
        "        raise RuntimeError(f'opened {args[0]}')\n"
        "sys.addaudithook(hook)\n"
        "from perfjax.calibrate._public import load_deepbench, load_neusight, load_neusight_models\n"
        "print(len(load_neusight(ops=['ln', 'conv'])), len(load_deepbench()), len(load_neusight_models()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["31662", "2578", "47"]
