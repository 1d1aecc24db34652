"""The ``perfjax`` command line: run, trace and analyze on files, modules and .mlir exports."""

import json
import math
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import perfjax
from perfjax._cli import CLIError, main, parse_spec

REPO = pathlib.Path(__file__).resolve().parents[1]
M, K, N = 8, 32, 16
MLP_INPUTS = ["-i", f"f32[{M},{K}]", "-i", f"f32[{K},{N}]"]
MLP_FLOPS = 2 * M * N * K + M * N  # matmul, then relu (one max per element)

MODEL_SRC = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import perfjax

    SCALE = 3.0


    def mlp(x, w):
        return perfjax.ops.relu(perfjax.ops.matmul(x, w))


    def two_outputs(x):
        return {"double": x * 2, "sum": jnp.sum(x)}


    def branchy(x):
        return x if x.sum() > 0 else -x


    def opaque(x):  # a foreign-function call no cost rule knows
        return jax.ffi.ffi_call("my_kernel_without_rule", jax.ShapeDtypeStruct(x.shape, x.dtype))(x)
    """
)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL_SRC)
    return path


@pytest.fixture
def mlir(tmp_path):
    f = lambda x, w: perfjax.ops.relu(perfjax.ops.matmul(x, w))
    x = jax.ShapeDtypeStruct((M, K), jnp.float32)
    w = jax.ShapeDtypeStruct((K, N), jnp.float32)
    path = tmp_path / "mlp.mlir"
    path.write_text(jax.jit(f).lower(x, w).as_text())
    return path


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- input specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, shape, dtype",
    [
        ("f32[128,784]", (128, 784), jnp.float32),
        ("bf16[4,8]", (4, 8), jnp.bfloat16),
        ("int8[16]", (16,), jnp.int8),
        ("i32[4,16]", (4, 16), jnp.int32),
        ("float32[2,3]", (2, 3), jnp.float32),
        ("f32[]", (), jnp.float32),
        ("u8[ 3, 0 ]", (3, 0), jnp.uint8),
        ("bool[2]", (2,), jnp.bool_),
        ("f64[2]", (2,), jnp.float64),
        ("float16[5]", (5,), jnp.float16),
    ],
)
def test_parse_spec(spec, shape, dtype):
    s = parse_spec(spec)
    assert isinstance(s, jax.ShapeDtypeStruct)
    assert s.shape == shape and np.dtype(s.dtype) == np.dtype(dtype)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("f32", "expected DTYPE"),
        ("f32[4,x]", "non-negative integers"),
        ("f32[-1]", "non-negative integers"),
        ("f32[4,]", "non-negative integers"),
        ("q8[4]", "unknown dtype 'q8'"),
        ("float[3]", "unknown dtype 'float'"),
        ("object[2]", "unknown dtype 'object'"),
        ("[3]", "expected DTYPE"),
    ],
)
def test_parse_spec_rejects(spec, match):
    with pytest.raises(CLIError, match=match):
        parse_spec(spec)


# ---- analyze ----------------------------------------------------------------------------------


def test_analyze_json_counts_flops(capsys, model):
    code, out, err = cli(capsys, "analyze", f"{model}:mlp", *MLP_INPUTS, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["flops"] == MLP_FLOPS
    assert d["name"] == "mlp"
    assert d["bytes_read"] > 0 and d["unmodeled_ops"] == []


def test_analyze_table(capsys, model):
    code, out, _ = cli(capsys, "analyze", f"{model}:mlp", *MLP_INPUTS)
    assert code == 0
    assert "perfjax.analyze: mlp" in out
    assert "flash.matmul" in out and "flash.relu" in out and "dot_general" in out


def test_analyze_max_rows(capsys, model):
    code, out, _ = cli(capsys, "analyze", f"{model}:mlp", *MLP_INPUTS, "--max-rows", "1")
    assert code == 0
    assert "heaviest 1 of" in out


def test_analyze_csv(capsys, model, tmp_path):
    csv = tmp_path / "ops.csv"
    code, out, err = cli(capsys, "analyze", f"{model}:mlp", *MLP_INPUTS, "--csv", csv, "--json")
    assert code == 0
    df = pd.read_csv(csv)
    assert len(df) == json.loads(out)["num_ops"]
    assert df["flops"].sum() == MLP_FLOPS
    assert set(df["origin"].dropna()) == {"flash.matmul", "flash.relu"}
    assert str(csv) in err


def test_analyze_mlir_without_inputs(capsys, mlir):
    code, out, err = cli(capsys, "analyze", mlir, "--json")
    assert code == 0, err
    assert json.loads(out)["flops"] == MLP_FLOPS


def test_analyze_mlir_with_matching_inputs(capsys, mlir):
    code, out, _ = cli(capsys, "analyze", mlir, *MLP_INPUTS, "--json")
    assert code == 0
    assert json.loads(out)["flops"] == MLP_FLOPS


def test_analyze_dotted_module(capsys, model, monkeypatch):
    monkeypatch.syspath_prepend(str(model.parent))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    try:
        code, out, err = cli(capsys, "analyze", "model:mlp", *MLP_INPUTS, "--json")
    finally:
        sys.modules.pop("model", None)
    assert code == 0, err
    assert json.loads(out)["flops"] == MLP_FLOPS


def test_analyze_unsupported_warn(capsys, model):
    code, out, err = cli(
        capsys, "analyze", f"{model}:opaque", "-i", "f32[8]", "--on-unsupported", "warn"
    )
    assert code == 0
    assert "NOT COUNTED" in out and "my_kernel_without_rule" in out
    assert "perfjax: warning:" in err and "my_kernel_without_rule" in err


# ---- trace ------------------------------------------------------------------------------------


def test_trace_all_stages(capsys, model):
    code, out, _ = cli(capsys, "trace", f"{model}:mlp", *MLP_INPUTS)
    assert code == 0
    jaxpr, stablehlo, hlo = (out.index(f"==== {s}") for s in ("jaxpr", "StableHLO", "HLO"))
    assert jaxpr < stablehlo < hlo
    assert "flash.matmul" in out[jaxpr:stablehlo]
    assert "stablehlo.dot_general" in out[stablehlo:hlo]
    assert "HloModule" in out[hlo:]


def test_trace_one_stage(capsys, model):
    code, out, _ = cli(capsys, "trace", f"{model}:mlp", *MLP_INPUTS, "--stage", "stablehlo")
    assert code == 0
    assert "stablehlo.dot_general" in out
    assert "==== jaxpr" not in out and "==== HLO" not in out


def test_trace_mlir_has_no_jaxpr(capsys, mlir):
    code, out, _ = cli(capsys, "trace", mlir)
    assert code == 0
    assert "no jaxpr" in out
    assert "stablehlo.dot_general" in out and "HloModule" in out
    code, out, _ = cli(capsys, "trace", mlir, "--stage", "jaxpr")
    assert code == 0 and "no jaxpr" in out


# ---- run --------------------------------------------------------------------------------------


def test_run_prints_outputs_and_time(capsys, model):
    code, out, _ = cli(capsys, "run", f"{model}:mlp", *MLP_INPUTS, "--max-time", "0.05")
    assert code == 0
    assert f"float32[{M},{N}]" in out
    assert "median" in out and "p90" in out and "compile" in out


def test_run_json(capsys, model):
    code, out, _ = cli(
        capsys, "run", f"{model}:two_outputs", "-i", "i32[3,4]", "--max-time", "0.05", "--json"
    )
    assert code == 0
    d = json.loads(out)
    assert d["name"] == "two_outputs" and d["median_s"] > 0 and d["repeats"] >= 3
    assert "compile_s" in d and "min_s" in d and "p90_s" in d
    assert d["inputs"] == ["int32[3,4]"]
    assert sorted((tuple(o["shape"]), o["dtype"]) for o in d["outputs"]) == [
        ((), "int32"),
        ((3, 4), "int32"),
    ]


def test_run_mlir_fills_inputs(capsys, mlir):
    code, out, err = cli(capsys, "run", mlir, "--max-time", "0.05")
    assert code == 0, err
    assert f"float32[{M},{K}], float32[{K},{N}]" in out
    assert f"output    float32[{M},{N}]" in out


def test_run_f64_keeps_64_bits(capsys, model):
    code, out, _ = cli(
        capsys, "run", f"{model}:two_outputs", "-i", "f64[2]", "--max-time", "0.05", "--json"
    )
    assert code == 0
    assert {o["dtype"] for o in json.loads(out)["outputs"]} == {"float64"}
    assert not jax.config.jax_enable_x64  # enabled for the command only


# ---- errors -----------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "syntax.py").write_text("def f(:\n")
    (tmp_path / "imports.py").write_text("import no_such_module_perfjax_test\n")
    (tmp_path / "garbage.mlir").write_text("this is not MLIR\n")
    return tmp_path


@pytest.mark.parametrize(
    "argv, match",
    [
        (["analyze", "nocolon"], r"bad target 'nocolon'"),
        (["analyze", "{model}"], r"name the function: .*model\.py:FUNCTION"),
        (["analyze", "{tmp}/missing.py:f"], r"no such file: .*missing\.py"),
        (["analyze", "{tmp}/missing.mlir"], r"no such file: .*missing\.mlir"),
        (
            ["analyze", "{model}:nope", "-i", "f32[2]"],
            r"no attribute 'nope'; it defines: branchy, mlp",
        ),
        (["analyze", "{model}:SCALE"], r"not a function \(it is a float object\)"),
        (["analyze", "{tmp}/syntax.py:f"], r"importing .*syntax\.py' failed: SyntaxError"),
        (
            ["analyze", "{tmp}/imports.py:f"],
            r"ModuleNotFoundError: .*no_such_module_perfjax_test.*imports\.py:1",
        ),
        (
            ["analyze", "no_such_module_perfjax_test:f"],
            r"no module named 'no_such_module_perfjax_test'",
        ),
        (
            ["analyze", "{model}:mlp", "-i", "f32[4,x]", "-i", "f32[4,4]"],
            r"bad input spec 'f32\[4,x\]'",
        ),
        (["analyze", "{model}:mlp", "-i", "q8[4]"], r"unknown dtype 'q8'"),
        (["analyze", "{tmp}/garbage.mlir"], r"could not parse the StableHLO module"),
        (["trace", "{tmp}/garbage.mlir"], r"could not parse the StableHLO module"),
        (
            ["analyze", "{model}:opaque", "-i", "f32[8]"],
            r"no cost rule .*my_kernel_without_rule.*--on-unsupported warn",
        ),
        (["analyze", "{model}:mlp", "-i", "f32[4,8]"], r"mlp\(x, w\) takes 2 input\(s\), got 1"),
        (
            ["run", "{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]", "-i", "f32[2]"],
            r"takes 2 input\(s\), got 3",
        ),
        (
            ["analyze", "{mlir}", "-i", "f32[8,32]"],
            r"takes 2 input\(s\) \(float32\[8,32\], float32\[32,16\]\), got 1",
        ),
        (
            ["run", "{mlir}", "-i", "f32[8,32]", "-i", "f32[32,15]"],
            r"input 1 .* must be float32\[32,16\], got float32\[32,15\]",
        ),
        (
            ["analyze", "{model}:mlp", "-i", "f32[4,8]", "-i", "f32[4,8]"],
            r"mlp: ValueError: flash\.matmul: contracting dimensions differ",
        ),
        (
            ["trace", "{model}:mlp", "-i", "f32[4,8]", "-i", "i32[8,2]"],
            r"mlp: TypeError: flash\.matmul: .*same dtype",
        ),
        (["run", "{model}:branchy", "-i", "f32[4]"], r"branchy: TracerBoolConversionError"),
        (["run", "{model}:mlp", "--max-time", "-1"], r"--max-time: must be a positive number"),
        (["analyze", "{model}:mlp", "--max-rows", "0"], r"--max-rows: must be a positive integer"),
        (["trace", "{model}:mlp", "--stage", "mlir"], r"invalid choice: 'mlir'"),
        (
            ["analyze", "{model}:mlp", *MLP_INPUTS, "--csv", "{tmp}/no/such/dir/ops.csv"],
            r"cannot write",
        ),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, model, mlir, bad_files, argv, match):
    argv = [a.format(model=model, mlir=mlir, tmp=bad_files) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and out == ""
    errors = [line for line in err.splitlines() if line.startswith("perfjax: error:")]
    assert len(errors) == 1, err
    assert re.search(match, errors[0]), errors[0]


def test_traceback_flag_reraises(capsys, model):
    with pytest.raises(CLIError, match="contracting dimensions differ") as info:
        main(["analyze", f"{model}:mlp", "-i", "f32[4,8]", "-i", "f32[4,8]", "--traceback"])
    assert isinstance(info.value.__cause__, ValueError)  # the original error, with its traceback


def test_no_command_prints_help(capsys):
    code, out, err = cli(capsys)
    assert code == 2
    assert out == ""
    assert "usage: perfjax" in err and "analyze" in err and "f32[128,784]" in err


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"perfjax {perfjax.__version__}"


def test_sys_path_restored(capsys, model):
    before = list(sys.path)
    cli(capsys, "analyze", f"{model}:mlp", *MLP_INPUTS, "--json")
    assert sys.path == before


# ---- the installed module, end to end ---------------------------------------------------------


def test_python_m_perfjax_analyze_example(tmp_path):
    """``python -m perfjax`` on the README's example, from another directory."""
    example = REPO / "examples" / "mlp.py"
    argv = [sys.executable, "-m", "perfjax", "analyze", f"{example}:mlp",
            "-i", "f32[64,784]", "-i", "f32[784,128]", "-i", "f32[128,10]", "--json"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["name"] == "mlp"
    assert d["flops"] == 2 * 64 * 784 * 128 + 64 * 128 + 2 * 64 * 128 * 10


def test_docstring_examples_run():
    import doctest

    import perfjax._cli

    result = doctest.testmod(perfjax._cli, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---- device commands --------------------------------------------------------------------------


def test_devices_lists_the_catalog(capsys):
    code, out, _ = cli(capsys, "devices", "--json")
    assert code == 0
    names = [d["name"] for d in json.loads(out)]
    assert names == perfjax.devices() and "h100" in names and "host" in names
    code, out, _ = cli(capsys, "devices", "--family", "tpu")
    assert code == 0 and "tpu-v4" in out and "h100" not in out


def test_predict_json_matches_the_python_api(capsys, model):
    code, out, _ = cli(capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "h100", "--json")
    assert code == 0
    got = json.loads(out)
    x, w = jax.ShapeDtypeStruct((M, K), jnp.float32), jax.ShapeDtypeStruct((K, N), jnp.float32)
    fn = lambda x, w: perfjax.ops.relu(perfjax.ops.matmul(x, w))
    want = perfjax.predict(fn, (x, w), device="h100")
    assert got["device"] == "h100" and got["time_s"] == pytest.approx(want.time_s, rel=1e-6)
    assert len(got["kernels"]) == len(want.kernels)


def test_predict_and_compare_with_a_fusion_policy(capsys, model):
    """--fusion eager: the kernels eager PyTorch would launch (matmul and relu apart), as the
    Python API's predict(fusion="eager"); compare passes it on; unknown policies are refused."""
    code, out, _ = cli(capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "h100", "--json",
                       "--fusion", "eager")  # fmt: skip
    assert code == 0
    got = json.loads(out)
    x, w = jax.ShapeDtypeStruct((M, K), jnp.float32), jax.ShapeDtypeStruct((K, N), jnp.float32)
    fn = lambda x, w: perfjax.ops.relu(perfjax.ops.matmul(x, w))
    eager = perfjax.predict(fn, (x, w), device="h100", fusion="eager")
    fused = perfjax.predict(fn, (x, w), device="h100")
    assert got["fusion"] == "eager" and len(got["kernels"]) == len(eager.kernels) == 2
    assert len(fused.kernels) == 1
    assert got["time_s"] == pytest.approx(eager.time_s, rel=1e-6) and eager.time_s > fused.time_s
    code, out, _ = cli(capsys, "compare", f"{model}:mlp", *MLP_INPUTS, "--devices", "h100,tpu-v4",
                       "--json", "--fusion", "eager")  # fmt: skip
    rows = {r["device"]: r for r in json.loads(out)}
    assert code == 0 and rows["h100"]["time_s"] == pytest.approx(eager.time_s, rel=1e-6)
    code, _, err = cli(
        capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "h100", "--fusion", "xla"
    )
    assert code == 2 and "invalid choice: 'xla'" in err


def test_predict_table_precision_and_roofline(capsys, model, tmp_path):
    png = tmp_path / "roof.png"
    code, out, _err = cli(capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "a100-80gb",
                         "--precision", "bf16", "--roofline", png)  # fmt: skip
    assert code == 0 and "bf16 tensor cores" in out and png.stat().st_size > 10_000


def test_predict_errors(capsys, model):
    code, _, err = cli(capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "h1000")
    assert code == 2 and "unknown device 'h1000'" in err and "h100" in err
    code, _, err = cli(
        capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "v100", "--precision", "fp8"
    )
    assert code == 2 and "cannot run fp8" in err


def test_compare_devices_and_plot(capsys, model, tmp_path):
    png = tmp_path / "cmp.png"
    code, out, _ = cli(capsys, "compare", f"{model}:mlp", *MLP_INPUTS, "--devices", "h100,tpu-v4,edge-tpu",
                       "--json", "--plot", png)  # fmt: skip
    assert code == 0 and png.stat().st_size > 10_000
    rows = {r["device"]: r for r in json.loads(out)}
    assert set(rows) == {"h100", "tpu-v4", "edge-tpu"}
    assert rows["h100"]["time_s"] > 0 and "int8" in rows["edge-tpu"]["error"]
    code, _, err = cli(capsys, "compare", f"{model}:mlp", *MLP_INPUTS, "--devices", "h100,nope")
    assert code == 2 and "unknown device 'nope'" in err


def test_demo_runs_and_checks_counts_against_xla():
    import io

    from rich.console import Console

    from perfjax._demo import main as demo_main

    buf = io.StringIO()
    assert demo_main(Console(file=buf, width=160)) == 0
    text = buf.getvalue()
    for stage in ("1. trace", "2. analyze", "3. run", "4. predict"):
        assert stage in text
    ratios = [float(x) for x in re.findall(r"│ (0\.99\d\d|1\.00\d\d) │", text)]
    assert len(ratios) == 2  # perfjax / XLA compiled flops for both programs, within 1%
    assert "h100" in text and "tpu-v5e" in text


def test_predict_with_a_saved_calibration(capsys, model, tmp_path):
    import dataclasses

    from perfjax.calibrate import shipped_calibration

    # A saved GPU calibration (no fit needed: the CLI only loads it), with an interval of its own
    # (the same on every device) so that the prediction's interval can only come from this file.
    shipped = shipped_calibration("gpu")
    meta = {k: v for k, v in shipped.metadata.items() if k != "unseen_interval"}
    cal = dataclasses.replace(shipped, residual_log_quantiles=(-0.3, 0.5), metadata=meta,
                              name="cli test calibration")  # fmt: skip
    path = cal.save(tmp_path / "cal.json")
    code, out, _ = cli(
        capsys,
        "predict",
        f"{model}:mlp",
        *MLP_INPUTS,
        "-d",
        "h100",
        "--json",
        "--calibration",
        path,
    )
    assert code == 0
    got = json.loads(out)
    from perfjax.calibrate import load

    lo, hi = load(path).interval(got["time_s"])
    assert got["calibration"] == "cli test calibration"
    assert got["interval_s"] == pytest.approx([lo, hi]) and lo < hi
    assert got["interval_s"] != pytest.approx(shipped.interval(got["time_s"], device="h100"))
    code, _, err = cli(
        capsys, "predict", f"{model}:mlp", *MLP_INPUTS, "-d", "tpu-v4", "--calibration", path
    )
    assert code == 2 and "is for gpu devices" in err
    code, _, err = cli(
        capsys,
        "predict",
        f"{model}:mlp",
        *MLP_INPUTS,
        "-d",
        "h100",
        "--calibration",
        tmp_path / "no.json",
    )
    assert code == 2 and "no calibration file" in err


# ---- recommend -------------------------------------------------------------------------------


def test_recommend_ranks_devices_as_predict_does(capsys, model):
    code, out, _ = cli(capsys, "recommend", f"{model}:mlp", "-i", f"f32[{M},{K}]", "-i", f"f32[{K},{N}]",
                       "--devices", "h100,v100,tpu-v4", "--precisions", "fp32", "--json")  # fmt: skip
    assert code == 0
    rows = json.loads(out)["rows"]
    times = {r["device"]: r["time_s"] for r in rows}
    f = lambda x, w: perfjax.ops.relu(perfjax.ops.matmul(x, w))
    ins = (jax.ShapeDtypeStruct((M, K), jnp.float32), jax.ShapeDtypeStruct((K, N), jnp.float32))
    for dev, t in times.items():
        assert t == pytest.approx(
            perfjax.predict(f, ins, device=dev, precision="fp32").time_s, rel=1e-6
        )
    assert [r["device"] for r in rows] == sorted(times, key=times.get)


def test_recommend_bad_precision_exits_2(capsys, model):
    code, _, err = cli(capsys, "recommend", f"{model}:mlp", "-i", f"f32[{M},{K}]", "-i", f"f32[{K},{N}]",
                       "--precisions", "fp5")  # fmt: skip
    assert code == 2 and "unknown precision 'fp5'" in err


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_calibrate_and_validate_from_csv(capsys, tmp_path):
    from perfjax.calibrate import Measurements, Workload, load

    rows = [dict(workload=Workload.of("matmul", m=m, k=k, n=n), device="h100",
                 time_s=2.5e-15 * m * k * n + 8e-6)
            for m in (16, 64, 128, 256, 512, 1024, 2048, 4096) for k in (256, 512, 1024, 2048, 4096)
            for n in (512, 1024, 4096)]  # fmt: skip
    csv = Measurements.from_rows(rows, {"source": "synthetic"}).to_csv(tmp_path / "h100.csv")
    code, out, err = cli(capsys, "calibrate", "--from-csv", csv, "--steps", "60")
    assert code == 2 and "--save PATH is required" in err and "h100" in err
    assert out == ""  # refused before fitting: no report printed
    save, png = tmp_path / "cal.json", tmp_path / "heldout.png"
    code, out, err = cli(
        capsys, "calibrate", "--from-csv", csv, "--steps", "60", "--save", save, "--plot", png,
        "--interval-folds", "4",
    )  # fmt: skip
    assert code == 0 and "held-out" in out.lower() and png.stat().st_size > 10_000
    cal = load(save)
    # 120 rows, 4 folds: the interval is cross-conformal over every row; refitted on all (the
    # default).
    assert (
        cal.metadata["interval_points"] == 120
        and "cross-conformal" in cal.metadata["interval_source"]
        and cal.metadata["refit"] == "every row"
    )
    # --no-refit keeps the fit without the held-out split.
    code, _, _ = cli(capsys, "calibrate", "--from-csv", csv, "--steps", "30", "--save",
                     tmp_path / "plain.json", "--no-refit")  # fmt: skip
    assert code == 0 and load(tmp_path / "plain.json").metadata["refit"] == "no"
    code, _, err = cli(capsys, "calibrate", "--from-csv", csv, "--interval-folds", "1")
    assert code == 2 and "expected 0 or an integer >= 2" in err
    code, out, _ = cli(capsys, "validate", save, "--measurements", csv, "--json")
    got = json.loads(out)
    assert code == 0 and got["points"] == 120
    assert got["median_ape_after"] < got["median_ape_before"] and 0.0 <= got["coverage"] <= 1.0
    code, _, err = cli(capsys, "calibrate", "--from-csv", tmp_path / "missing.csv", "--save", save)
    assert code == 2 and "missing.csv" in err
    code, _, err = cli(capsys, "validate", tmp_path / "missing.json", "--measurements", csv)
    assert code == 2 and "no calibration file" in err


def test_a_measured_calibration_keeps_its_measurements_for_a_later_refit(capsys, tmp_path):
    """Without --out, the timings go next to the saved calibration; --from-csv refits them to
    the same parameters, timing nothing."""
    from perfjax.calibrate import Measurements, load

    save = tmp_path / "cal.json"
    code, _, err = cli(capsys, "calibrate", "--suite", "memory_bandwidth", "--size", "tiny",
                       "--budget", "1", "--steps", "40", "--save", save)  # fmt: skip
    kept = tmp_path / "cal_measurements.csv"
    assert code == 0 and f"to {kept}" in err
    ms = Measurements.from_csv(kept)
    assert len(ms) >= 5 and set(ms.devices()) == {"host"} and set(ms.kinds()) == {"memory"}
    code, _, _ = cli(capsys, "calibrate", "--from-csv", kept, "--steps", "40", "--save",
                     tmp_path / "refit.json")  # fmt: skip
    assert code == 0 and not (tmp_path / "refit_measurements.csv").exists()
    a, b = load(save).params, load(tmp_path / "refit.json").params
    assert all(np.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)


@pytest.mark.slow  # a long check (four calibrations): CI runs it after the default suite
def test_a_second_calibration_is_fitted_with_the_previous_runs_timings(capsys, tmp_path):
    """A new run keeps the previous run's timings (<name>_measurements_previous.csv) and fits
    them with its own: --from-csv NEW --from-csv PREVIOUS refits the same parameters. Timings of
    other software, and --no-pool, are left out."""
    from perfjax.calibrate import Measurements, load

    save = tmp_path / "cal.json"
    kept, previous = tmp_path / "cal_measurements.csv", tmp_path / "cal_measurements_previous.csv"
    args = ("calibrate", "--suite", "memory_bandwidth", "--size", "tiny", "--budget", "1",
            "--steps", "40", "--save", save)  # fmt: skip
    code, _, err = cli(capsys, *args)
    assert code == 0 and "previous" not in err and "pooled_with" not in load(save).metadata
    first = Measurements.from_csv(kept)
    code, _, err = cli(capsys, *args)
    assert code == 0 and "with the previous run's" in err and "--no-pool" in err
    assert Measurements.from_csv(previous).rows == first.rows  # the first run's, kept
    second = Measurements.from_csv(kept)
    assert second.rows != first.rows
    cal = load(save)
    assert str(previous) in cal.metadata["pooled_with"]
    assert first.metadata["date"] in cal.metadata["pooled_with"]
    fitted = cal.metadata["train_points"] + cal.metadata["heldout_points"]
    assert fitted == len({r.program for r in (*first.rows, *second.rows)})  # each point once
    code, _, err = cli(capsys, "calibrate", "--from-csv", kept, "--from-csv", previous,
                       "--steps", "40", "--save", tmp_path / "refit.json")  # fmt: skip
    a, b = cal.params, load(tmp_path / "refit.json").params
    assert code == 0 and "the faster" in err
    assert all(np.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)
    # timings measured with other software: kept, not fitted, and the reason given
    Measurements(second.rows, {**second.metadata, "jaxlib": "0.0.1"}).to_csv(kept)
    code, _, err = cli(capsys, *args)
    assert code == 0 and "not fitting the previous run's timings" in err and "jaxlib 0.0.1" in err
    assert "pooled_with" not in load(save).metadata
    assert Measurements.from_csv(previous).metadata["jaxlib"] == "0.0.1"
    # --no-pool: this run alone, the previous file untouched
    before = previous.read_bytes()
    code, _, err = cli(capsys, *args, "--no-pool")
    assert code == 0 and "previous" not in err and "pooled_with" not in load(save).metadata
    assert previous.read_bytes() == before


@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_calibrate_with_device_effects_saves_each_devices_factors(capsys, tmp_path):
    from perfjax.calibrate import Measurements, Workload, load

    # Timings the model itself predicts on four GPUs, one of them 1.5x slower: only device
    # effects can keep that GPU's slowness apart from the shared parameters. (Power cap off: it
    # could single out one GPU and absorb its slowness.)
    names = [
        perfjax.devicemodels.register_device(
            perfjax.device(d).replace(name=f"cli-{d}-nocap", process_nm=0.0, aliases=()),
            overwrite=True,
        )[0]
        for d in ("h100", "a100-80gb", "h200", "a100-pcie-40gb")
    ]
    workloads = [Workload.of("matmul", m=m, k=k, n=n, dtype="bfloat16")
                 for m in (64, 256, 1024, 4096) for k in (512, 2048, 4096) for n in (512, 4096)]  # fmt: skip
    programs = [perfjax.trace(*w.build()) for w in workloads]  # traced once, predicted per GPU
    rows = []
    for dev in names:
        for w, program in zip(workloads, programs, strict=True):
            t = perfjax.predict(program, device=dev, calibration=False).time_s
            rows.append(dict(workload=w, device=dev, time_s=t * (1.5 if dev == names[3] else 1.0)))
    csv = Measurements.from_rows(rows, {"source": "synthetic"}).to_csv(tmp_path / "gpus.csv")
    save = tmp_path / "cal.json"
    code, _, err = cli(capsys, "calibrate", "--from-csv", csv, "--steps", "300", "--save", save,
                       "--device-effects", "--no-refit")  # fmt: skip
    assert code == 0, err
    cal = load(save)
    assert set(cal.device_params) == set(names)
    gemm = {d: math.exp(float(p["kind_time_log"][0])) for d, p in cal.device_params.items()}
    assert gemm[names[3]] > 1.2 * max(gemm[n] for n in names[:3]), gemm


def test_calibrate_reports_the_noise_and_warns_when_it_is_too_high():
    """The noise line names how far apart each point's closest timings were; over a fifth of
    points with no two timings within 10% makes the calibration flagged as untrustworthy."""
    from perfjax._cli import noise_lines

    quiet = {"noise_median": "0.02", "noise_p90": "0.08", "noise_untrusted": "0.05"}
    lines = noise_lines(quiet)
    assert len(lines) == 1 and "2.0% apart" in lines[0] and "8.0% (p90)" in lines[0]
    assert "5% of points" in lines[0]
    noisy = noise_lines({**quiet, "noise_untrusted": "0.35"})
    assert len(noisy) == 2 and "too noisy" in noisy[1] and "--thorough" in noisy[1]
    assert "again later" not in noisy[1]  # (--out, --no-pool, --from-csv: no pooling next)
    assert "again later" in noise_lines({**quiet, "noise_untrusted": "0.35"}, pooling=True)[1]
    assert noise_lines({"source": "public"}) == []  # measurements without the noise metadata
    # above a quiet machine's noise the fit weighs points by their samples' spread, and says so
    assert "weigh less" in lines[0]
    assert "weigh less" not in noise_lines({**quiet, "noise_median": "0.012"})[0]
