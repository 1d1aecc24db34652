"""A catalogue of bad inputs and the one-line error each one gets (issue 13).

77 cases: 51 through the Python API (the exception type, and a message that names what was
expected and what was given) and 26 through the command line (exit status 2, exactly one stderr
line starting with ``perfjax: error:``, no traceback, nothing on stdout).
"""

import dataclasses
import json
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest

import perfjax
from perfjax import calibrate
from perfjax._cli import main
from perfjax._errors import (
    CalibrationError,
    DeviceSpecError,
    HostCallbackError,
    InputMemoryError,
    StableHLOParseError,
)
from perfjax.devicemodels import load_spec_file
from perfjax.lowering import Program
from perfjax.placement import collective_time_s, place, platform

X = (jnp.ones((4, 8)), jnp.ones((8, 4)))
F32 = jnp.float32


def mm(x, w):
    return perfjax.ops.matmul(x, w)


def with_callback(x):
    return jax.pure_callback(lambda a: a * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x)


MODEL = """
import perfjax

def mlp(x, w):
    return perfjax.ops.relu(perfjax.ops.matmul(x, w))

def shapes(x):
    return x.reshape(7, 3)

def raises(x):
    raise RuntimeError("the model is not ready")
"""

TWO_FUNCS = """module {
  func.func @f(%a: tensor<3xf32>) -> tensor<3xf32> { return %a : tensor<3xf32> }
  func.func @g(%a: tensor<3xf32>) -> tensor<3xf32> { return %a : tensor<3xf32> }
}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "model.py").write_text(MODEL)
    (d / "mlp.mlir").write_text(jax.jit(mm).lower(*X).as_text())
    (d / "callback.mlir").write_text(jax.jit(with_callback).lower(jnp.ones(3)).as_text())
    (d / "empty.mlir").write_text("")
    (d / "garbage.mlir").write_text("this is not MLIR\n")
    (d / "two_funcs.mlir").write_text(TWO_FUNCS)
    (d / "afile").write_text("x")
    shipped = pathlib.Path(perfjax.devicemodels.__file__).with_name("data") / "gpu_calibration.json"
    good = json.loads(shipped.read_text())
    (d / "not_json.json").write_text("{ not json")
    (d / "nan_param.json").write_text(
        json.dumps({**good, "params": {**good["params"], "overlap_log": math.nan}})
    )
    (d / "inverted.json").write_text(json.dumps({**good, "residual_log_quantiles": [0.3, -0.2]}))
    (d / "no_prior.json").write_text(json.dumps({k: v for k, v in good.items() if k != "prior"}))
    (d / "dangling.toml").write_text(
        'name = "dangling"\n[devices]\ngpu0 = "h100"\ngpu1 = "h100"\n'
        '[[links]]\nsrc = "gpu0"\ndst = "gpu7"\nbandwidth_bytes_per_s = 1e11\nlatency_s = 1e-6\nkind = "nvlink"\n'
    )
    (d / "zero_bw.toml").write_text(
        'name = "zero"\n[devices]\ngpu = { device = "h100", count = 2 }\n'
        '[topology]\nkind = "ring"\nbandwidth_bytes_per_s = 0\nlatency_s = 1e-6\n'
    )
    (d / "spec_typo.toml").write_text(
        'name = "my-npu"\nfamily = "npu"\nmemory_bytes_per_sec = 2e10\nmemory_bytes_per_s = 2e10\n'
        "[matrix_flops_per_s]\nint8 = 4e12\n"
    )
    (d / "spec_zero_link.toml").write_text(
        'name = "my-npu"\nfamily = "npu"\nmemory_bytes_per_s = 2e10\nhost_link_bytes_per_s = 0\n'
        "[matrix_flops_per_s]\nint8 = 4e12\n"
    )
    return d


def _spec(**changes):
    return dataclasses.replace(perfjax.device("h100"), **changes)


def _npu(**changes):
    return dataclasses.replace(perfjax.device(perfjax.devices("npu")[0]), **changes)


SDS = jax.ShapeDtypeStruct

# (id, call(files), exception type, regex on the message, marks)
API_CASES = [
    # devices, precisions, fusion
    ("unknown-device", lambda d: perfjax.predict(mm, X, device="h1000"), ValueError,
     r"unknown device 'h1000'\. Did you mean 'h100'"),
    ("unknown-device-compare", lambda d: perfjax.compare(mm, X, ["h100", "a100-80gbb"]), ValueError,
     r"unknown device 'a100-80gbb'\. Did you mean 'a100-80gb'"),
    ("unknown-device-sensitivity", lambda d: perfjax.sensitivity(mm, X, "tpu-v9"), ValueError,
     r"unknown device 'tpu-v9'\. Did you mean"),
    ("device-not-a-name", lambda d: perfjax.device(3), TypeError,
     r"device must be a name \(str, e\.g\. 'h100'\) or a DeviceSpec, got int 3"),
    ("unknown-precision", lambda d: perfjax.predict(mm, X, device="h100", precision="fp12"), ValueError,
     r"unknown precision 'fp12'; expected one of \('fp64'"),
    ("unknown-fusion", lambda d: perfjax.predict(mm, X, device="h100", fusion="xla"), ValueError,
     r"unknown fusion policy 'xla'; expected one of \['cpu'"),
    # DeviceSpec values
    ("spec-negative-bandwidth", lambda d: perfjax.predict(mm, X, device=_spec(memory_bytes_per_s=-1.0)),
     DeviceSpecError, r"memory_bytes_per_s = -1\.0 \(expected a finite number > 0\)"),
    ("spec-zero-host-link", lambda d: perfjax.predict(mm, X, device=_npu(host_link_bytes_per_s=0.0)),
     DeviceSpecError, r"host_link_bytes_per_s = 0\.0 \(expected a finite number > 0\)"),
    ("spec-nan-peak", lambda d: perfjax.predict(mm, X, device=_spec(matrix_flops_per_s={"bf16": math.nan})),
     DeviceSpecError, r"matrix_flops_per_s\.bf16 = nan \(expected a finite number > 0\)"),
    ("spec-negative-launch", lambda d: perfjax.compare(mm, X, [_spec(launch_overhead_s=-1e-6)]),
     DeviceSpecError, r"launch_overhead_s = -1e-06 \(expected a finite number >= 0\)"),
    ("spec-unknown-precision", lambda d: perfjax.device(_spec(vector_flops_per_s={"fp23": 1e12})),
     DeviceSpecError, r"unknown precision 'fp32'|unknown precision 'fp23' \(did you mean 'fp32'\?\)"),
    ("spec-file-typo", lambda d: load_spec_file(d / "spec_typo.toml"), ValueError,
     r"unknown field\(s\) 'memory_bytes_per_sec' \(did you mean 'memory_bytes_per_s'\?\)"),
    ("spec-file-zero-link", lambda d: load_spec_file(d / "spec_zero_link.toml"), DeviceSpecError,
     r"spec_zero_link\.toml.*host_link_bytes_per_s = 0\.0"),
    # inputs
    ("predict-without-inputs", lambda d: perfjax.predict(mm, device="h100"), TypeError,
     r"takes positional argument\(s\) x, w but no inputs were given"),
    ("wrong-number-of-inputs", lambda d: perfjax.analyze(mm, X[:1]), TypeError,
     r"missing 1 required positional argument: 'w'"),
    ("matmul-mismatched-k", lambda d: perfjax.analyze(mm, (jnp.ones((4, 8)), jnp.ones((7, 4)))), ValueError,
     r"contracting dimensions differ: a is \(4, 8\) \(K=8\) and b is \(7, 4\) \(K=7\)"),
    ("matmul-rank-1", lambda d: perfjax.analyze(mm, (jnp.ones(8), jnp.ones((8, 4)))), ValueError,
     r"flash\.matmul: argument 'a' must have rank >= 2 .*got rank 1 with shape \(8,\)"),
    ("string-input", lambda d: perfjax.analyze(mm, ("abc", jnp.ones((8, 4)))), TypeError,
     r"inputs\[0\]: expected an array, a Python number or a jax\.ShapeDtypeStruct, got str"),
    ("none-inputs", lambda d: perfjax.analyze(mm, None), TypeError,
     r"x, w but no inputs were given; pass inputs=\(\.\.\.\)"),
    ("none-leaf", lambda d: perfjax.analyze(mm, (None, jnp.ones((8, 4)))), TypeError,
     r"argument 'a' must be an array .*got NoneType"),
    ("single-array-not-tuple", lambda d: perfjax.analyze(lambda x: x + 1, jnp.ones(3)), TypeError,
     r"inputs must be a tuple of positional arguments, got a single ArrayImpl; write inputs=\(x,\)"),
    ("negative-dims", lambda d: perfjax.analyze(lambda x: x + 1, (SDS((-1, 3), F32),)), ValueError,
     r"shape \(-1, 3\) with negative dimension\(s\) \[-1\]; every dimension must be >= 0"),
    ("non-callable-fn", lambda d: perfjax.analyze(3, (jnp.ones(3),)), TypeError,
     r"expects a callable or a Program.*, got int"),
    ("stablehlo-not-text", lambda d: Program.from_stablehlo(123), TypeError,
     r"from_stablehlo expects MLIR text or a path, got int"),
    ("bad-on-unsupported", lambda d: perfjax.analyze(lambda x: x + 1, (jnp.ones(3),), on_unsupported="ignore"),
     ValueError, r"on_unsupported must be 'error' or 'warn', got 'ignore'"),
    # calibrations
    ("calibration-missing-file", lambda d: perfjax.predict(mm, X, device="h100", calibration=str(d / "nope.json")),
     FileNotFoundError, r"no calibration file at '.*nope\.json'"),
    ("calibration-not-json", lambda d: calibrate.load(d / "not_json.json"), CalibrationError,
     r"calibration file '.*not_json\.json' is not a perfjax calibration \(invalid JSON"),
    ("calibration-nan-param", lambda d: perfjax.predict(mm, X, device="h100", calibration=str(d / "nan_param.json")),
     CalibrationError, r"nan_param\.json': params\.overlap_log = nan \(expected a finite number\)"),
    ("calibration-inverted-interval", lambda d: calibrate.load(d / "inverted.json"), CalibrationError,
     r"inverted\.json': residual_log_quantiles = \[0\.3, -0\.2\] is inverted: low must be <= high"),
    ("calibration-missing-key", lambda d: calibrate.load(d / "no_prior.json"), CalibrationError,
     r"no_prior\.json' is missing key\(s\) 'prior'"),
    ("calibration-wrong-type", lambda d: perfjax.predict(mm, X, device="h100", calibration=3), TypeError,
     r"calibration must be a perfjax\.calibrate\.Calibration, a path to one, None or False; got int"),
    # platforms and collectives
    ("platform-dangling-link", lambda d: platform(d / "dangling.toml"), ValueError,
     r"names unknown endpoint\(s\) 'gpu7'.*known devices: gpu0, gpu1"),
    ("platform-zero-bandwidth", lambda d: platform(d / "zero_bw.toml"), ValueError,
     r"bandwidth_bytes_per_s must be a positive finite number of bytes/s, got 0"),
    ("platform-unknown-name", lambda d: platform("8xh100-nvlinkk"), ValueError, r"8xh100-nvlinkk"),
    ("collective-negative-bytes", lambda d: collective_time_s("all_reduce", -1e9, "8xh100-nvlink"), ValueError,
     r"nbytes must be a finite number >= 0 \(operand bytes per device\), got -1000000000\.0"),
    ("collective-nan-bytes", lambda d: collective_time_s("all_gather", math.nan, "8xh100-nvlink"), ValueError,
     r"nbytes must be a finite number >= 0 .*got nan"),
    ("collective-unknown-kind", lambda d: collective_time_s("all_sum", 1e6, "8xh100-nvlink"), ValueError,
     r"unknown collective kind 'all_sum'; valid:"),
    ("collective-empty-group", lambda d: collective_time_s("all_reduce", 1e6, "8xh100-nvlink", group=[]),
     ValueError, r"group is empty; list at least one device"),
    ("collective-group-size-zero", lambda d: perfjax.placement.all_reduce_time_s(1e6, 0, 1e9, 0.0), ValueError,
     r"group_size must be an integer >= 1 \(devices\), got 0\.0"),
    ("placement-unknown-method", lambda d: place(mm, X, platform="4xa100-pcie", method="annealing"), ValueError,
     r"unknown placement method 'annealing'; expected one of \["),
    # StableHLO
    ("stablehlo-empty", lambda d: Program.from_stablehlo(""), StableHLOParseError, r"the StableHLO text is empty"),
    ("stablehlo-garbage", lambda d: Program.from_stablehlo("hello world\nfoo"), StableHLOParseError,
     r"(?s)could not parse the StableHLO module.*Expected MLIR text"),
    ("stablehlo-missing-file", lambda d: Program.from_stablehlo(str(d / "missing.mlir")), FileNotFoundError,
     r"no StableHLO file at '.*missing\.mlir'"),
    ("stablehlo-no-main", lambda d: Program.from_stablehlo(TWO_FUNCS), StableHLOParseError,
     r"no @main and 2 public functions \(\['f', 'g'\]\)"),
    ("run-callback-module", lambda d: perfjax.run(Program.from_stablehlo(d / "callback.mlir"), (jnp.ones(3),)),
     HostCallbackError, r"calls back into Python \(custom_call xla_ffi_python_cpu_callback"),
    # run / measure / recommend arguments
    ("run-zero-repeats", lambda d: perfjax.run(mm, X, min_repeats=0), ValueError,
     r"need 1 <= min_repeats <= max_repeats, got min_repeats=0"),
    ("run-float-repeats", lambda d: perfjax.run(mm, X, max_repeats=10.5), TypeError,
     r"max_repeats must be an integer >= 1, got float 10\.5"),
    ("run-inputs-too-large", lambda d: perfjax.run(mm, (SDS((10**5, 10**5), F32), SDS((10**5, 4), F32)),
                                                   memory_limit_bytes=1e9),
     InputMemoryError, r"random inputs need 37\.3 GiB .* but only 954 MiB"),
    ("measure-zero-rounds", lambda d: calibrate.measure("stream", rounds=0), ValueError,
     r"rounds must be a positive integer, got 0"),
    ("recommend-bad-objective", lambda d: perfjax.recommend(mm, X, objective="speed"), ValueError,
     r"unknown objective 'speed'; expected one of \('latency', 'throughput', 'energy'\)"),
    ("recommend-bad-batch-sizes", lambda d: perfjax.recommend(mm, X, batch_sizes=[0, 8]), ValueError,
     r"batch_sizes must be a non-empty list of positive integers, got \[0, 8\]"),
]  # fmt: skip


def _api_params():
    out = []
    for case in API_CASES:
        name, call, exc, match, *marks = case
        out.append(pytest.param(call, exc, match, id=name, marks=marks))
    return out


@pytest.mark.parametrize("call, exc, match", _api_params())
def test_api(files, call, exc, match):
    with pytest.raises(exc) as info:
        call(files)
    message = str(info.value)
    assert re.search(match, message), message


MLP = ["{d}/model.py:mlp", "-i", "f32[4,8]", "-i", "f32[8,2]"]

# (id, argv, regex on the error line, environment)
CLI_CASES = [
    ("spec-unclosed", ["analyze", "{d}/model.py:mlp", "-i", "f32[3,"], r"bad input spec 'f32\[3,': expected DTYPE\[DIM,\.\.\.\]"),
    ("spec-unknown-dtype", ["analyze", "{d}/model.py:mlp", "-i", "q7[2]"], r"unknown dtype 'q7' in input spec 'q7\[2\]'"),
    ("spec-negative-dim", ["analyze", "{d}/model.py:mlp", "-i", "f32[-1]"],
     r"dimensions must be non-negative integers .*got \[-1\]"),
    ("wrong-number-of-inputs", ["analyze", "{d}/model.py:mlp", "-i", "f32[4,8]"], r"mlp\(x, w\) takes 2 input\(s\), got 1"),
    ("shape-error-in-user-fn", ["analyze", "{d}/model.py:shapes", "-i", "f32[4,8]"],
     r"^perfjax: error: shapes: TypeError: .*reshape"),
    ("user-fn-raises", ["run", "{d}/model.py:raises", "-i", "f32[3]"],
     r"^perfjax: error: raises: RuntimeError: the model is not ready$"),
    ("unknown-device", ["predict", *MLP, "-d", "h1000"], r"unknown device 'h1000'\. Did you mean 'h100'"),
    ("unknown-device-in-list", ["compare", *MLP, "--devices", "h100,tpu-v9"], r"unknown device 'tpu-v9'"),
    ("unknown-precision", ["recommend", *MLP, "--precisions", "fp32,fp5"], r"unknown precision 'fp5' in --precisions"),
    ("unknown-fusion", ["predict", *MLP, "-d", "h100", "--fusion", "xla"], r"--fusion: invalid choice: 'xla'"),
    ("bad-objective", ["recommend", *MLP, "--objective", "speed"], r"--objective: invalid choice: 'speed'"),
    ("bad-batch-sizes", ["recommend", *MLP, "--batch-sizes", "0,8"],
     r"--batch-sizes: expected comma-separated positive integers such as 1,8,64, got '0,8'"),
    ("bad-max-time", ["run", *MLP, "--max-time", "nan"], r"--max-time: must be a positive number of seconds, got 'nan'"),
    ("calibration-bad-json", ["predict", *MLP, "-d", "h100", "--calibration", "{d}/not_json.json"],
     r"not_json\.json' is not a perfjax calibration \(invalid JSON"),
    ("calibration-nan", ["predict", *MLP, "-d", "h100", "--calibration", "{d}/nan_param.json"],
     r"params\.overlap_log = nan"),
    ("unwritable-plot", ["compare", *MLP, "--devices", "h100", "--plot", "{d}/no/dir/c.png"],
     r"cannot write --plot '.*/no/dir/c\.png': directory '.*/no/dir' does not exist"),
    ("unwritable-roofline", ["predict", *MLP, "-d", "h100", "--roofline", "{d}/afile/r.png"],
     r"cannot write --roofline '.*afile/r\.png': '.*afile' is not a directory"),
    ("unwritable-csv", ["analyze", *MLP, "--csv", "{d}"], r"cannot write --csv '.*': it is a directory"),
    ("unwritable-out", ["calibrate", "--suite", "stream", "--out", "{d}/afile/m.csv"],
     r"cannot write --out '.*afile/m\.csv': '.*afile' is not a directory"),
    ("empty-mlir", ["analyze", "{d}/empty.mlir"], r"the StableHLO text is empty"),
    ("garbage-mlir", ["run", "{d}/garbage.mlir"], r"could not parse the StableHLO module"),
    ("missing-file", ["run", "{d}/missing.mlir"], r"no such file: '.*missing\.mlir'"),
    ("module-without-main", ["analyze", "{d}/two_funcs.mlir"], r"no @main and 2 public functions"),
    ("run-callback-module", ["run", "{d}/callback.mlir"],
     r"program '.*' calls back into Python \(custom_call xla_ffi_python_cpu_callback"),
    ("inputs-too-large", ["run", MLP[0], "-i", "f32[100000,100000]", "-i", "f32[100000,4]"],
     r"random inputs need 37\.3 GiB .*only 954 MiB", {"PERFJAX_MEMORY_LIMIT_BYTES": "1e9"}),
    ("validate-missing-calibration", ["validate", "{d}/nope.json", "--measurements", "{d}/m.csv"],
     r"no calibration file at '.*nope\.json'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, match, env",
    [pytest.param(c[1], c[2], c[3] if len(c) > 3 else {}, id=c[0]) for c in CLI_CASES],
)
def test_cli(files, capsys, monkeypatch, argv, match, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main([a.format(d=files) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("perfjax: error:")]
    assert len(lines) == 1, err
    assert re.search(match, lines[0]), lines[0]


def test_the_docstring_counts_the_cases():
    first = __doc__.split("\n\n")[1]
    total, api, cli = (int(n) for n in re.findall(r"\d+", first)[:3])
    assert (total, api, cli) == (len(API_CASES) + len(CLI_CASES), len(API_CASES), len(CLI_CASES))
    assert total >= 40
