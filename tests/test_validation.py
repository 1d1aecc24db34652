"""Issue 13, "no silent wrong numbers": every value that enters perfjax is checked.

Device specs (given directly, from files, in platforms), collective sizes, calibration files,
programs that call back into Python, random inputs larger than memory, and the CLI's output
paths, user-function errors and non-finite predictions.
"""

import dataclasses
import json
import math
import re
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax
from perfjax._cli import CLIError, main
from perfjax._errors import (
    CalibrationError,
    DeviceSpecError,
    HostCallbackError,
    InputMemoryError,
    UnsupportedProgramError,
)
from perfjax.devicemodels import DeviceSpec, _calibration
from perfjax.devicemodels._spec import (
    _FLOAT_FIELDS,
    _NONNEGATIVE_FIELDS,
    _POSITIVE_FIELDS,
    load_spec_file,
    validate,
)
from perfjax.executor import MEMORY_LIMIT_ENV, _random, host_callbacks, materialize
from perfjax.lowering import Program
from perfjax.placement import Link, Platform, collective_time_s, platform
from perfjax.placement.comm._collectives import all_reduce_time_s, all_to_all_time_s

X = (jnp.ones((4, 8)), jnp.ones((8, 4)))


def mm(x, w):
    return perfjax.ops.matmul(x, w)


def _npu() -> DeviceSpec:
    return perfjax.device(perfjax.devices("npu")[0])


# ---- 1. DeviceSpec values ------------------------------------------------------------------------


def test_every_numeric_field_has_a_rule():
    assert set(_POSITIVE_FIELDS) | set(_NONNEGATIVE_FIELDS) == set(_FLOAT_FIELDS)
    assert not set(_POSITIVE_FIELDS) & set(_NONNEGATIVE_FIELDS)


@pytest.mark.parametrize("field", _FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_nonfinite_or_negative_fields_are_named(field, bad):
    spec = dataclasses.replace(perfjax.device("h100"), **{field: bad})
    with pytest.raises(
        DeviceSpecError, match=rf"{field} = {re.escape(repr(bad))} \(expected a finite number >"
    ):
        perfjax.device(spec)


@pytest.mark.parametrize("field", _POSITIVE_FIELDS)
def test_zero_rates_are_refused(field):
    spec = dataclasses.replace(perfjax.device("h100"), **{field: 0.0})
    with pytest.raises(DeviceSpecError, match=rf"{field} = 0\.0 \(expected a finite number > 0\)"):
        validate(spec)


@pytest.mark.parametrize("field", _NONNEGATIVE_FIELDS)
def test_zero_is_allowed_where_it_means_none(field):
    spec = dataclasses.replace(perfjax.device("h100"), **{field: 0.0})
    assert validate(spec) is spec


def test_every_bad_field_is_listed_in_one_error():
    spec = dataclasses.replace(
        perfjax.device("h100"), memory_bytes_per_s=-2.0, tdp_w=math.nan, num_cores="many"
    )
    with pytest.raises(DeviceSpecError) as info:
        validate(spec)
    text = str(info.value)
    assert "memory_bytes_per_s = -2.0" in text and "tdp_w = nan" in text
    assert "num_cores = 'many'" in text and text.startswith("device 'h100'")


def test_predict_validates_a_spec_given_directly():
    bad = dataclasses.replace(perfjax.device("h100"), memory_bytes_per_s=-1e12)
    with pytest.raises(
        DeviceSpecError,
        match=r"memory_bytes_per_s = -1000000000000\.0 \(expected a finite number > 0\)",
    ):
        perfjax.predict(mm, X, device=bad)
    npu = dataclasses.replace(_npu(), host_link_bytes_per_s=0.0)
    with pytest.raises(DeviceSpecError, match=r"host_link_bytes_per_s = 0\.0"):
        perfjax.predict(mm, X, device=npu)
    nan_peak = dataclasses.replace(perfjax.device("h100"), matrix_flops_per_s={"bf16": math.nan})
    with pytest.raises(DeviceSpecError, match=r"matrix_flops_per_s\.bf16 = nan"):
        perfjax.predict(mm, X, device=nan_peak)


def test_every_entry_point_validates_the_spec():
    bad = dataclasses.replace(perfjax.device("h100"), cache_bytes_per_s=-5.0)
    pattern = r"cache_bytes_per_s = -5\.0"
    with pytest.raises(DeviceSpecError, match=pattern):
        perfjax.compare(mm, X, [bad])
    with pytest.raises(DeviceSpecError, match=pattern):
        perfjax.sensitivity(mm, X, bad)
    with pytest.raises(DeviceSpecError, match=pattern):
        perfjax.recommend(mm, X, devices=[bad])
    with pytest.raises(DeviceSpecError, match=pattern):
        perfjax.devicemodels.register_device(bad, overwrite=True)
    with pytest.raises(DeviceSpecError, match=pattern):
        perfjax.device("h100").replace(cache_bytes_per_s=-5.0)


def test_a_valid_spec_still_predicts_and_differentiates():
    spec = perfjax.device("h100").replace(memory_bytes_per_s=1e12)
    assert perfjax.device(spec) is spec
    t = perfjax.predict(mm, X, device=spec).time_s
    assert math.isfinite(t) and t > 0
    # Traced leaves (jit/grad over a spec) are checked where they were concrete, not here.
    out = jax.jit(lambda s: validate(s).memory_bytes_per_s * 2)(spec)
    assert float(out) == pytest.approx(2e12, rel=1e-6)


def test_spec_files_are_validated(tmp_path):
    path = tmp_path / "npu.toml"
    path.write_text(
        'name = "my-npu"\nfamily = "npu"\nmemory_bytes_per_s = 2e10\nhost_link_bytes_per_s = 0\n'
        "[matrix_flops_per_s]\nint8 = 4e12\n"
    )
    with pytest.raises(
        DeviceSpecError, match=r"'my-npu' \(.*npu\.toml\).*host_link_bytes_per_s = 0\.0"
    ):
        load_spec_file(path)
    path.write_text(
        'name = "my-npu"\nfamily = "npu"\nmemory_bytes_per_s = nan\n[matrix_flops_per_s]\nint8 = 4e12\n'
    )
    with pytest.raises(DeviceSpecError, match=r"memory_bytes_per_s = nan"):
        load_spec_file(path)


# ---- 1b. platforms ---------------------------------------------------------------------------


def _two_gpus(**link):
    spec = perfjax.device("h100")
    fields = dict(src="gpu0", dst="gpu1", bandwidth_bytes_per_s=1e11, latency_s=1e-6, kind="nvlink")
    fields.update(link)
    return Platform(
        name="p", device_names=("gpu0", "gpu1"), specs=(spec, spec), links=(Link(**fields),)
    )


@pytest.mark.parametrize(
    "link, match",
    [
        (
            dict(bandwidth_bytes_per_s=0.0),
            r"bandwidth_bytes_per_s must be a positive finite .* got 0\.0",
        ),
        (dict(bandwidth_bytes_per_s=-1e9), r"bandwidth_bytes_per_s .* got -1000000000\.0"),
        (dict(bandwidth_bytes_per_s=math.nan), r"bandwidth_bytes_per_s .* got nan"),
        (dict(latency_s=-1e-6), r"latency_s must be a finite number >= 0 .* got -1e-06"),
        (dict(latency_s=math.inf), r"latency_s .* got inf"),
        (dict(dst="gpu9"), r"unknown endpoint\(s\) 'gpu9'"),
    ],
)
def test_platform_links_are_validated(link, match):
    with pytest.raises(ValueError, match=match):
        _two_gpus(**link)


def test_platform_devices_are_validated():
    good = perfjax.device("h100")
    bad = dataclasses.replace(good, memory_bytes_per_s=math.nan)
    link = Link("gpu0", "gpu1", 1e11, 1e-6, "nvlink")
    with pytest.raises(DeviceSpecError, match=r"device 'gpu1'.*memory_bytes_per_s = nan"):
        Platform(name="p", device_names=("gpu0", "gpu1"), specs=(good, bad), links=(link,))
    with pytest.raises(DeviceSpecError, match=r"memory_bytes_per_s = nan"):
        perfjax.placement.from_mapping(
            {"name": "m", "devices": {"gpu0": good, "gpu1": bad},
             "links": [{"src": "gpu0", "dst": "gpu1", "bandwidth_bytes_per_s": 1e11, "latency_s": 0.0}]}
        )  # fmt: skip


def test_platform_file_with_zero_bandwidth(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "zero"\n[devices]\ngpu = { device = "h100", count = 2 }\n'
        '[topology]\nkind = "ring"\nbandwidth_bytes_per_s = 0\nlatency_s = 1e-6\n'
    )
    with pytest.raises(
        ValueError, match=r"bandwidth_bytes_per_s must be a positive finite number .* got 0"
    ):
        platform(path)


# ---- 2. collectives ------------------------------------------------------------------------------


@pytest.mark.parametrize("nbytes", [-1.0, -1e9, math.nan, math.inf])
@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "all_to_all", "collective_broadcast"])
def test_collective_bytes_must_be_finite_and_nonnegative(kind, nbytes):
    with pytest.raises(
        ValueError, match=rf"nbytes must be a finite number >= 0 .*got {re.escape(repr(nbytes))}"
    ):
        collective_time_s(kind, nbytes, "8xh100-nvlink")


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])
def test_zero_bytes_cost_latency_only(kind):
    t0 = float(collective_time_s(kind, 0.0, "8xh100-nvlink", fit=None))
    t1 = float(collective_time_s(kind, 1e6, "8xh100-nvlink", fit=None))
    assert 0.0 <= t0 < t1
    assert t0 <= 2 * 7 * 2e-6 + 1e-12  # at most 2(p-1) latency steps of the platform's 2 us


def test_group_sizes_are_checked():
    with pytest.raises(ValueError, match=r"group is empty"):
        collective_time_s("all_reduce", 1e6, "8xh100-nvlink", group=[])
    with pytest.raises(ValueError, match=r"no device 'gpu9'"):
        collective_time_s("all_reduce", 1e6, "8xh100-nvlink", group=["gpu0", "gpu9"])
    for p in (0, -2, 1.5, math.nan):
        with pytest.raises(
            ValueError, match=r"group_size must be an integer >= 1 \(devices\), got"
        ):
            all_reduce_time_s(1e6, p, 1e9, 0.0)
    with pytest.raises(
        ValueError, match=r"bandwidth_bytes_per_s must be a finite number > 0 .* got 0\.0"
    ):
        all_to_all_time_s(1e6, 8, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"nbytes .* got -1\.0"):
        all_reduce_time_s(np.array([1e6, -1.0]), 8, 1e9, 0.0)


def test_collectives_stay_differentiable_and_vmappable():
    g = jax.grad(lambda n: collective_time_s("all_reduce", n, "8xh100-nvlink", algorithm="smooth"))(
        1e9
    )
    assert math.isfinite(float(g)) and float(g) > 0
    ts = jax.vmap(lambda n: collective_time_s("all_gather", n, "8xh100-nvlink"))(
        jnp.array([1e6, 1e9])
    )
    assert float(ts[0]) < float(ts[1])


# ---- 3. calibrations -----------------------------------------------------------------------------


@pytest.fixture
def cal_dict():
    path = (
        _calibration.pathlib.Path(_calibration.__file__).with_name("data") / "gpu_calibration.json"
    )
    return json.loads(path.read_text())


def _write(tmp_path, d, name="cal.json"):
    path = tmp_path / name
    path.write_text(json.dumps(d))
    return path


def test_the_shipped_calibration_loads(tmp_path, cal_dict):
    cal = _calibration.load(_write(tmp_path, cal_dict))
    lo, hi = cal.interval(1e-3)
    assert 0 < lo <= 1e-3 <= hi


def _nan_param(d):
    d["params"]["overlap_log"] = math.nan


def _nan_in_vector(d):
    d["params"]["compute_eff_logit"][2] = math.inf


def _inverted(d):
    d["residual_log_quantiles"] = [0.3, -0.2]


def _missing_prior(d):
    del d["prior"]


def _unknown_param(d):
    d["params"]["overlap_logg"] = 0.0


def _unknown_family(d):
    d["family"] = "gpuu"


def _bad_version(d):
    d["version"] = 99


def _bad_level(d):
    d["interval_level"] = 1.5


def _string_param(d):
    d["params"]["overlap_log"] = "fast"


def _device_param_nan(d):
    dev = next(iter(d["device_params"]))
    d["device_params"][dev]["kind_time_log"] = [math.nan] * 6


def _bad_shape(d):
    d["params"]["overlap_log"] = [1.0, 2.0]


@pytest.mark.parametrize(
    "edit, match",
    [
        (_nan_param, r"params\.overlap_log = nan \(expected a finite number\)"),
        (_nan_in_vector, r"params\.compute_eff_logit\[2\] = inf"),
        (_inverted, r"residual_log_quantiles = \[0\.3, -0\.2\] is inverted: low must be <= high"),
        (_missing_prior, r"missing key\(s\) 'prior'"),
        (_unknown_param, r"unknown parameter\(s\) 'overlap_logg' \(did you mean 'overlap_log'\?\)"),
        (_unknown_family, r"family = 'gpuu'; expected one of"),
        (_bad_version, r"format version 99; this perfjax reads 1"),
        (_bad_level, r"interval_level = 1\.5; expected a number in \(0, 1\)"),
        (_string_param, r"params\.overlap_log = 'fast' \(expected finite numbers\)"),
        (_device_param_nan, r"device_params\.[\w.-]+\.kind_time_log\[0\] = nan"),
        (_bad_shape, r"params\.overlap_log has shape \(2,\); the gpu model expects \(\)"),
    ],
)
def test_bad_calibration_files_name_file_key_and_value(tmp_path, cal_dict, edit, match):
    edit(cal_dict)
    path = _write(tmp_path, cal_dict)
    with pytest.raises(
        CalibrationError, match=rf"calibration file '{re.escape(str(path))}'.*{match}"
    ):
        _calibration.load(path)


def test_constructing_a_bad_calibration_fails(tmp_path, cal_dict):
    cal = _calibration.load(_write(tmp_path, cal_dict))
    with pytest.raises(CalibrationError, match=r"inverted"):
        dataclasses.replace(cal, residual_log_quantiles=(0.5, 0.1))
    params = {**cal.params, "overlap_log": np.float32(np.nan)}
    with pytest.raises(CalibrationError, match=r"params\.overlap_log = nan"):
        dataclasses.replace(cal, params=params)
    with pytest.raises(CalibrationError, match=r"missing parameter\(s\) 'overlap_log'"):
        dataclasses.replace(cal, params={k: v for k, v in cal.params.items() if k != "overlap_log"})


def test_predict_with_a_nan_calibration_file_fails(tmp_path, cal_dict):
    _nan_param(cal_dict)
    path = _write(tmp_path, cal_dict)
    with pytest.raises(CalibrationError, match=r"overlap_log = nan"):
        perfjax.predict(mm, X, device="h100", calibration=str(path))


# ---- 4. host callbacks -----------------------------------------------------------------------------


def with_callback(x):
    y = jax.pure_callback(lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return y + 1


def with_print(x):
    jax.debug.print("x = {x}", x=x)
    return x * 3


@pytest.mark.parametrize("fn", [with_callback, with_print])
def test_a_callback_module_from_text_is_refused_before_compiling(fn):
    text = jax.jit(fn).lower(jnp.ones(3)).as_text()
    assert host_callbacks(text) == ["xla_ffi_python_cpu_callback"]
    program = Program.from_stablehlo(text)
    with pytest.raises(
        HostCallbackError, match=r"calls back into Python .*xla_ffi_python_cpu_callback"
    ):
        perfjax.run(program, (jnp.ones(3),), time_it=False)
    assert isinstance(HostCallbackError("x"), UnsupportedProgramError)
    assert "compiled" not in program.__dict__  # refused before XLA compiled it


@pytest.mark.parametrize(
    "target",
    ["xla_python_cpu_callback", "xla_ffi_python_gpu_callback"],
)
def test_other_callback_targets_are_found(target):
    text = f'%0 = "stablehlo.custom_call"(%a) {{call_target_name = "{target}"}} : (tensor<3xf32>) -> tensor<3xf32>'
    assert host_callbacks(text) == [target]
    assert host_callbacks(f"stablehlo.custom_call @{target}(%a)") == [target]
    assert host_callbacks("stablehlo.custom_call @lapack_sgetrf(%a)") == []


def test_running_the_function_with_a_callback_still_works():
    r = perfjax.run(with_callback, (jnp.arange(3.0),), time_it=False)
    np.testing.assert_allclose(np.asarray(r.outputs), [1.0, 3.0, 5.0])
    traced = perfjax.trace(with_callback, (jnp.arange(3.0),))
    r = perfjax.run(traced, (jnp.arange(3.0),), time_it=False)
    np.testing.assert_allclose(np.asarray(r.outputs), [1.0, 3.0, 5.0])


def test_cli_run_of_a_callback_module(tmp_path, capsys):
    path = tmp_path / "cb.mlir"
    path.write_text(jax.jit(with_callback).lower(jnp.ones(3)).as_text())
    code = main(["run", str(path), "--max-time", "0.01"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(
        "perfjax: error: program 'jit_with_callback' calls back into Python"
    )


# ---- 5. random inputs --------------------------------------------------------------------------------


def test_inputs_are_drawn_in_their_dtype_without_float64():
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        x = _random(rng, (500, 1000), np.dtype(np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() < 1
    assert peak < 1.5 * x.nbytes  # a float64 draw would peak at 3x (8 bytes + 4 bytes per value)


@pytest.mark.parametrize(
    "dtype, low, high",
    [
        (jnp.bfloat16, -1, 1),
        (jnp.float16, -1, 1),
        (jnp.int8, 0, 7),
        (jnp.uint32, 0, 7),
        (jnp.bool_, 0, 1),
    ],
)
def test_materialize_dtypes(dtype, low, high):
    (x,) = materialize((jax.ShapeDtypeStruct((64, 64), dtype),))
    assert x.dtype == jnp.dtype(dtype) and x.shape == (64, 64)
    values = np.asarray(x, np.float32)
    assert values.min() >= low and values.max() <= high and values.std() > 0


def test_inputs_larger_than_memory_are_refused(monkeypatch):
    big = (jax.ShapeDtypeStruct((10_000, 1_000_000), jnp.float32),)  # 40 GB of float32
    with pytest.raises(
        InputMemoryError,
        match=r"need 37\.3 GiB .* only 1 GiB .*memory_limit_bytes.*float32\[10000,1000000\]",
    ):
        materialize(big, memory_limit_bytes=2**30)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(2**20))
    with pytest.raises(InputMemoryError, match=rf"only 1 MiB .*\${MEMORY_LIMIT_ENV}"):
        perfjax.run(lambda x: x + 1, (jax.ShapeDtypeStruct((1024, 1024), jnp.float32),))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(
        ValueError, match=rf"\${MEMORY_LIMIT_ENV} must be a number of bytes >= 0 .* got 'lots'"
    ):
        materialize((jax.ShapeDtypeStruct((2,), jnp.float32),))


def test_run_repeats_are_checked():
    with pytest.raises(TypeError, match=r"min_repeats must be an integer >= 1, got float 2\.5"):
        perfjax.run(lambda x: x, (jnp.ones(2),), min_repeats=2.5)
    with pytest.raises(
        ValueError, match=r"warmup_s must be a finite number of seconds >= 0, got -1"
    ):
        perfjax.executor.time_callable(np.add, (1, 2), warmup_s=-1)


# ---- 6. the CLI ---------------------------------------------------------------------------------


MODEL = """
import perfjax

def mlp(x, w):
    return perfjax.ops.relu(perfjax.ops.matmul(x, w))

def divide(x):
    return x / (1 // 0)
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    return path


def one_error(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert "Traceback" not in err and out == ""
    lines = [line for line in err.splitlines() if line.startswith("perfjax: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "command, option",
    [
        (
            ["compare", "{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]", "--devices", "h100"],
            "--plot",
        ),
        (
            ["predict", "{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]", "-d", "h100"],
            "--roofline",
        ),
        (["analyze", "{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]"], "--csv"),
        (["calibrate", "--suite", "stream"], "--plot"),
        (["validate", "{tmp}/cal.json", "--measurements", "{tmp}/m.csv"], "--plot"),
    ],
)
@pytest.mark.parametrize("where", ["missing-dir", "is-a-file", "is-a-dir"])
def test_unwritable_output_paths(capsys, tmp_path, model, command, option, where):
    (tmp_path / "afile").write_text("x")
    path = {
        "missing-dir": tmp_path / "no" / "such" / "out.png",
        "is-a-file": tmp_path / "afile" / "out.png",
        "is-a-dir": tmp_path,
    }[where]
    argv = [a.format(model=model, tmp=tmp_path) for a in command] + [option, str(path)]
    line = one_error(capsys, argv)
    why = {"missing-dir": "does not exist", "is-a-file": "does not exist|is not a directory",
           "is-a-dir": "it is a directory"}[where]  # fmt: skip
    assert re.search(rf"cannot write {option} '{re.escape(str(path))}': .*({why})", line), line


def test_calibrate_save_and_out_paths_are_checked(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    line = one_error(
        capsys, ["calibrate", "--suite", "stream", "--save", tmp_path / "afile" / "c.json"]
    )
    assert re.search(r"cannot write --save .*afile/c\.json': .*is not a directory", line), line
    line = one_error(capsys, ["calibrate", "--suite", "stream", "--out", tmp_path])
    assert re.search(r"cannot write --out .*: it is a directory", line), line


def test_user_function_errors_are_one_line(capsys, model, monkeypatch):
    line = one_error(capsys, ["run", f"{model}:divide", "-i", "f32[3]"])
    assert line == "perfjax: error: divide: ZeroDivisionError: integer division or modulo by zero"
    # With PERFJAX_DEBUG=1 or --debug the error propagates, with the user's exception as its cause.
    monkeypatch.setenv("PERFJAX_DEBUG", "1")
    with pytest.raises(CLIError, match="ZeroDivisionError") as info:
        main(["run", f"{model}:divide", "-i", "f32[3]"])
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    monkeypatch.delenv("PERFJAX_DEBUG")
    with pytest.raises(CLIError, match="division") as info:
        main(["analyze", f"{model}:divide", "-i", "f32[3]", "--debug"])
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_cli_never_prints_a_nonfinite_time(capsys, model, monkeypatch):
    real = perfjax.predict

    def nan_predict(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), time_s=math.nan)

    monkeypatch.setattr(perfjax, "predict", nan_predict)
    line = one_error(
        capsys,
        ["predict", f"{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]", "-d", "h100", "--json"],
    )
    assert re.search(r"predicted time of mlp on h100 is nan, not a finite time", line), line


def test_cli_bad_calibration_file(capsys, model, tmp_path, cal_dict):
    _inverted(cal_dict)
    path = _write(tmp_path, cal_dict)
    line = one_error(
        capsys,
        ["predict", f"{model}:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]", "-d", "a100-pcie-40gb",
         "--calibration", path],
    )  # fmt: skip
    assert re.search(
        rf"calibration file '{re.escape(str(path))}': residual_log_quantiles .* inverted", line
    )


def test_cli_inputs_larger_than_memory(capsys, model, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1e6")
    line = one_error(capsys, ["run", f"{model}:mlp", "-i", "f32[1000,1000]", "-i", "f32[1000,4]"])
    assert re.search(r"random inputs need 3\.83 MiB .* only 977 KiB", line), line


def test_an_internal_error_is_one_line_with_status_1(capsys, monkeypatch):
    def broken(family=None):
        raise RuntimeError("catalog exploded")

    monkeypatch.setattr(perfjax, "devices", broken)
    code = main(["devices"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith(
        "perfjax: error: internal error: RuntimeError: catalog exploded (rerun with --debug"
    )
    assert err.count("\n") == 1
    monkeypatch.setenv("PERFJAX_DEBUG", "1")
    with pytest.raises(RuntimeError, match="catalog exploded"):
        main(["devices"])
