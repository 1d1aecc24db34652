"""The ``perfjax`` command line: ``run``, ``trace`` and ``analyze`` a function or a ``.mlir`` file.

Examples::

  perfjax analyze examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]'
  perfjax trace mypkg.models:block -i 'bf16[8,512]' --stage stablehlo
  perfjax run exported.mlir --max-time 0.5 --json

Mistakes a user can make (a bad target or input spec, a program perfjax cannot read or cost, a
function that rejects its inputs) print one line ``perfjax: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import pathlib
import re
import shutil
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import perfjax
from perfjax import calibrate
from perfjax._demo import main as demo_main
from perfjax._display import fmt_count, fmt_time, render
from perfjax._dtypes import SHORT_NAMES, element_name
from perfjax._errors import CalibrationError, DeviceSpecError, InputMemoryError
from perfjax.devicemodels import FAMILIES, PRECISIONS
from perfjax.executor import program_inputs
from perfjax.fusion._kernels import POLICIES
from perfjax.lowering import Program

EXIT_USAGE = 2
#: Exit status of an unexpected internal error (a bug in perfjax, not in the user's input).
EXIT_INTERNAL = 1
#: Environment variable that makes every command show full tracebacks (as ``--debug``).
DEBUG_ENV = "PERFJAX_DEBUG"

#: The short dtype names the help and errors suggest (any of perfjax._dtypes.SHORT_NAMES works).
_SHORT_DTYPES = (
    "f64",
    "f32",
    "f16",
    "bf16",
    "i8",
    "i16",
    "i32",
    "i64",
    "u8",
    "u16",
    "u32",
    "u64",
    "c64",
    "c128",
    "bool",
)
_SPEC_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*\[([^\[\]]*)\]\s*$")


class CLIError(Exception):
    """A mistake the user can fix: reported as one ``perfjax: error:`` line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# input specs
# ---------------------------------------------------------------------------------------------


def parse_spec(spec: str) -> jax.ShapeDtypeStruct:
    """Parses ``f32[128,784]`` (dtype alias or NumPy name, then the shape) into a ShapeDtypeStruct.

    Example:
      >>> parse_spec("bf16[4,8]")
      ShapeDtypeStruct(shape=(4, 8), dtype=bfloat16)
      >>> parse_spec("f32[]").shape
      ()
    """
    m = _SPEC_RE.match(spec)
    if m is None:
        raise CLIError(
            f"bad input spec {spec!r}: expected DTYPE[DIM,...] such as f32[128,784], i32[16] or f32[] "
            "(a scalar); quote it in the shell: -i 'f32[128,784]'."
        )
    name, dims = m.group(1), m.group(2).strip()
    dtype = _parse_dtype(name, spec)
    shape: tuple[int, ...] = ()
    if dims:
        parts = [p.strip() for p in dims.split(",")]
        if not all(p.isdigit() for p in parts):
            raise CLIError(
                f"bad input spec {spec!r}: dimensions must be non-negative integers separated by commas, "
                f"got [{m.group(2)}]."
            )
        shape = tuple(int(p) for p in parts)
    return jax.ShapeDtypeStruct(shape, dtype)


def _parse_dtype(name: str, spec: str) -> np.dtype:
    full = element_name(name.lower()) if name.lower() in SHORT_NAMES else name
    try:
        dtype = jnp.dtype(full)
    except (TypeError, ValueError):
        dtype = None
    # Full names only (float32, not "f" or "float"), and only numbers and booleans.
    if (
        dtype is None
        or dtype.name != full
        or not (jnp.issubdtype(dtype, jnp.number) or dtype == np.bool_)
    ):
        raise CLIError(
            f"unknown dtype {name!r} in input spec {spec!r}; use one of "
            f"{', '.join(_SHORT_DTYPES)} or a NumPy name such as float32 or uint16."
        )
    return dtype


def _fmt_type(shape: Sequence[int], dtype: Any) -> str:
    return f"{np.dtype(dtype).name}[{','.join(map(str, shape))}]"


def _needs_x64(dtypes: Sequence[Any]) -> bool:
    """True when a 64-bit type is asked for and JAX would silently narrow it to 32 bits."""
    return any(jax.dtypes.canonicalize_dtype(np.dtype(d)) != np.dtype(d) for d in dtypes)


# ---------------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 2000:
        text = text[:2000] + " ..."
    return text or type(e).__name__


def _where_in(e: BaseException, path: str | None) -> str:
    """``file.py:line`` of the innermost frame of ``e`` in ``path`` (the user's file), if any."""
    if isinstance(e, SyntaxError):  # its message already says where
        return ""
    frames = traceback.extract_tb(e.__traceback__)
    if path is not None:
        frames = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    return f" ({pathlib.Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def _load_file(path_str: str) -> Any:
    path = pathlib.Path(path_str)
    if not path.exists():
        raise CLIError(f"no such file: {path_str!r}.")
    if not path.is_file():
        raise CLIError(f"{path_str!r} is not a file.")
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_perfjax_target_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot load {path_str!r} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise CLIError(
            f"importing {path_str!r} failed: {type(e).__name__}: {_one_line(e)}{_where_in(e, str(path))}"
        ) from e
    return module


def _import_module(dotted: str) -> Any:
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", dotted):
        raise CLIError(
            f"bad module name {dotted!r} in the target; expected dotted.module:function."
        )
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as e:
        if e.name and (dotted == e.name or dotted.startswith(e.name + ".")):
            raise CLIError(
                f"no module named {e.name!r} (importable from the current directory or sys.path); "
                "for a file write path/to/file.py:function."
            ) from e
        raise CLIError(f"importing {dotted!r} failed: {type(e).__name__}: {_one_line(e)}") from e
    except Exception as e:
        raise CLIError(
            f"importing {dotted!r} failed: {type(e).__name__}: {_one_line(e)}{_where_in(e, None)}"
        ) from e


def _functions_in(module: Any) -> list[str]:
    names = [
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == module.__name__
    ]
    return sorted(names)[:12]


def load_target(target: str) -> Callable | Program:
    """``file.py:function``, ``dotted.module:function`` or a ``.mlir`` StableHLO file."""
    if target.endswith(".mlir"):
        if not pathlib.Path(target).is_file():
            raise CLIError(f"no such file: {target!r}.")
        return Program.from_stablehlo(pathlib.Path(target))
    if ":" not in target:
        hint = f" (name the function: {target}:FUNCTION)" if target.endswith(".py") else ""
        raise CLIError(
            f"bad target {target!r}{hint}; expected path/to/file.py:function, dotted.module:function "
            "or a StableHLO file ending in .mlir."
        )
    where, _, attr = target.rpartition(":")
    if not where or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", attr):
        raise CLIError(
            f"bad target {target!r}; expected path/to/file.py:function or dotted.module:function."
        )
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    module = _load_file(where) if is_file else _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            available = _functions_in(module)
            listing = f"; it defines: {', '.join(available)}" if available else ""
            raise CLIError(f"{where!r} has no attribute {attr!r}{listing}.")
        obj = getattr(obj, part)
    if isinstance(obj, Program):
        return obj
    if not callable(obj):
        raise CLIError(f"{target!r} is not a function (it is a {type(obj).__name__} object).")
    return obj


def _check_arity(fn: Callable, specs: Sequence[jax.ShapeDtypeStruct]) -> None:
    """Fails early, in terms of ``-i``, when the function cannot take ``len(specs)`` inputs."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*specs)
        return
    except TypeError as e:
        reason = str(e)
    params = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p.name for p in params if p.default is p.empty]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
    name = getattr(fn, "__name__", "the function")
    n = len(specs)
    if n < len(required) or (n > len(params) and not varargs):
        if varargs:
            takes = f"at least {len(required)}"
        elif len(required) == len(params):
            takes = str(len(params))
        else:
            takes = f"{len(required)} to {len(params)}"
        names = ", ".join(p.name for p in params)
        raise CLIError(
            f"{name}({names}) takes {takes} input(s), got {n} from -i; give one -i SPEC per positional argument."
        )
    raise CLIError(f"cannot call {name} with {n} positional input(s): {reason}.")


def _check_program_inputs(program: Program, specs: Sequence[jax.ShapeDtypeStruct]) -> None:
    want = [str(t) for t in program.in_types]
    got = [_fmt_type(s.shape, s.dtype) for s in specs]
    if len(got) != len(want):
        raise CLIError(
            f"program {program.name!r} takes {len(want)} input(s) ({', '.join(want) or 'none'}), "
            f"got {len(got)} from -i."
        )
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        if w != g:
            raise CLIError(f"input {i} of program {program.name!r} must be {w}, got {g} from -i.")


class _Resolved:
    def __init__(
        self, target: Callable | Program, specs: tuple[jax.ShapeDtypeStruct, ...], label: str
    ):
        self.target = target
        self.specs = specs
        self.label = label

    @property
    def is_program(self) -> bool:
        return isinstance(self.target, Program)


def _resolve(args: argparse.Namespace) -> _Resolved:
    specs = tuple(parse_spec(s) for s in args.inputs)
    target = load_target(args.target)
    if isinstance(target, Program):
        if args.inputs:
            _check_program_inputs(target, specs)
        else:
            specs = program_inputs(target)
        label = target.name
    else:
        _check_arity(target, specs)
        label = getattr(target, "__name__", args.target)
    return _Resolved(target, specs, label)


def _x64_context(specs: Sequence[jax.ShapeDtypeStruct]) -> contextlib.AbstractContextManager:
    return (
        jax.enable_x64(True) if _needs_x64([s.dtype for s in specs]) else contextlib.nullcontext()
    )


@contextlib.contextmanager
def _user_code(label: str, is_program: bool) -> Iterator[None]:
    """Turns the errors a user's function or module causes (bad shapes, ops without cost rules,
    unreadable StableHLO, any exception the function raises) into CLIError, naming the function
    and the exception."""
    try:
        yield
    except CLIError:
        raise
    except (
        perfjax.UnsupportedOpError,
        perfjax.StableHLOParseError,
        perfjax.UnsupportedProgramError,
    ) as e:
        message = _one_line(e)
        if isinstance(e, perfjax.UnsupportedOpError):
            cli = "pass --on-unsupported warn"
            if "pass on_unsupported='warn'" in message:
                message = message.replace("pass on_unsupported='warn'", cli)
            else:
                message += f" ({cli} to count the other ops)"
        raise CLIError(message) from e
    except (DeviceSpecError, CalibrationError, InputMemoryError) as e:
        # Not the user's function: a bad device, calibration, or inputs too large for this machine.
        raise CLIError(_one_line(e)) from e
    except Exception as e:  # anything the user's function (or a program it builds) raises
        what = f"program {label!r}" if is_program else f"{label}"
        raise CLIError(f"{what}: {type(e).__name__}: {_one_line(e)}") from e


def check_writable(path: str | None, option: str, *, create_dirs: bool = False) -> None:
    """Fails early, before any work, when ``path`` (the value of ``option``) cannot be written:
    a directory, a missing or non-directory parent (unless ``create_dirs``), no permission.

    Example:
      >>> check_writable("/no/such/dir/out.png", "--plot")
      Traceback (most recent call last):
      ...
      perfjax._cli.CLIError: cannot write --plot '/no/such/dir/out.png': directory '/no/such/dir' does not exist.
    """
    if not path:
        return
    p = pathlib.Path(path)
    head = f"cannot write {option} {path!r}"
    if p.is_dir():
        raise CLIError(f"{head}: it is a directory; give a file path such as {str(p / 'out')!r}.")
    parent = p.parent
    if not parent.exists():
        if not create_dirs:
            raise CLIError(f"{head}: directory {str(parent)!r} does not exist.")
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"{head}: {str(parent)!r} is not a directory.")
    if (p.exists() and not os.access(p, os.W_OK)) or not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{head}: permission denied.")


@contextlib.contextmanager
def _writing(path: str, option: str) -> Iterator[None]:
    """Turns an ``OSError`` while writing ``path`` into one CLIError line naming it."""
    try:
        yield
    except OSError as e:
        raise CLIError(f"cannot write {option} {path!r}: {e.strerror or _one_line(e)}.") from e


def _require_finite(what: str, value: Any) -> None:
    """A prediction must be a finite number: never print NaN/None with exit status 0."""
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CLIError(
            f"{what} is {value!r}, not a finite time; the device spec, calibration or program "
            "gives a non-finite prediction (check the spec's rates and the calibration's values)."
        )


def _load_calibration_arg(path: str | None) -> Any:
    """``--calibration PATH`` read and checked before any work, so its errors name the file."""
    if not path:
        return None

    try:
        return calibrate.load(path)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise CLIError(_one_line(e)) from e


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def _finite(x: Any) -> Any:
    """JSON-safe: infinities and NaNs become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _print_json(obj: Any) -> None:
    print(json.dumps(_finite(obj), indent=2, allow_nan=False))


def _width() -> int:
    return shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 120


def _outputs(outputs: Any) -> list[dict[str, Any]]:
    leaves = jax.tree_util.tree_flatten_with_path(outputs)[0]
    return [
        dict(path=jax.tree_util.keystr(path), shape=list(np.shape(x)), dtype=np.dtype(x.dtype).name)
        for path, x in leaves
    ]


def cmd_run(args: argparse.Namespace) -> int:
    r = _resolve(args)
    with _x64_context(r.specs), _user_code(r.label, r.is_program):
        result = perfjax.run(r.target, r.specs, max_time_s=args.max_time)
    _require_finite(f"the measured median time of {result.name}", result.time.median_s)
    outs = _outputs(result.outputs)
    inputs = [_fmt_type(s.shape, s.dtype) for s in r.specs]
    if args.json:
        _print_json(
            {
                **result.to_dict(),
                "inputs": inputs,
                "outputs": [{k: o[k] for k in ("shape", "dtype")} for o in outs],
            }
        )
        return 0
    t = result.time
    print(f"perfjax.run {result.name}")
    print(f"  inputs    {', '.join(inputs) or '(none)'}  (random data)")
    for o in outs:
        label = "output" if len(outs) == 1 else f"output{o['path']}"
        print(f"  {label:<9} {_fmt_type(o['shape'], o['dtype'])}")
    print(
        f"  median    {fmt_time(t.median_s)}   (min {fmt_time(t.min_s)}, p90 {fmt_time(t.p90_s)})"
    )
    ci = f"±{100 * t.rel_ci:.1f}%" if math.isfinite(t.rel_ci) else "±?"
    flag = "" if t.stable else "; not stable: time budget reached"
    print(f"  samples   {t.repeats} x {t.number} calls, median {ci} (95% CI){flag}")
    compile_txt = "cached" if result.cached else fmt_time(result.compile_s)
    lower_txt = f"  (trace + lower {fmt_time(result.lower_s)})" if result.lower_s else ""
    print(f"  compile   {compile_txt}{lower_txt}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    r = _resolve(args)
    stages = ("jaxpr", "stablehlo", "hlo") if args.stage == "all" else (args.stage,)
    with _x64_context(r.specs), _user_code(r.label, r.is_program):
        program = perfjax.trace(r.target, r.specs)
        print(program)
        for stage in stages:
            print()
            if stage == "jaxpr":
                print(_header(f"jaxpr ({program.name})"))
                if program.jaxpr is None:
                    print(
                        f"(no jaxpr: {args.target} is a StableHLO file, which starts at the StableHLO stage)"
                    )
                else:
                    print(program.jaxpr)
            elif stage == "stablehlo":
                print(_header(f"StableHLO ({program.name})"))
                print(program.stablehlo.rstrip("\n"))
            else:
                print(_header(f"HLO ({program.name}, optimized by XLA for this CPU)"))
                print(program.hlo.rstrip("\n"))
    return 0


def _device_or_error(name: str):
    try:
        return perfjax.device(name)
    except (TypeError, ValueError) as e:
        raise CLIError(_one_line(e)) from e


def cmd_devices(args: argparse.Namespace) -> int:
    from rich.table import Table

    names = perfjax.devices(args.family)
    specs = [perfjax.device(n) for n in names]
    if args.json:
        _print_json([s.to_dict() for s in specs])
        return 0
    t = Table(title=f"perfjax devices ({len(specs)})")
    for col in (
        "name",
        "family",
        "description",
        "best matrix",
        "fp32",
        "memory BW",
        "memory",
        "cache",
    ):
        t.add_column(col, justify="left" if col in ("name", "family", "description") else "right")
    for s in specs:
        best = max(s.matrix_flops_per_s.items(), key=lambda kv: kv[1], default=None)
        fp32 = s.vector_flops_per_s.get("fp32", s.matrix_flops_per_s.get("fp32", 0.0))
        t.add_row(
            s.name, s.family, s.description[:48],
            f"{fmt_count(best[1])}FLOP/s {best[0]}" if best else "-",
            f"{fmt_count(fp32)}FLOP/s" if fp32 else "-",
            f"{fmt_count(s.memory_bytes_per_s)}B/s", f"{fmt_count(s.memory_bytes)}B", f"{fmt_count(s.cache_bytes)}B",
        )  # fmt: skip
    print(render(t, width=_width()))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    check_writable(args.roofline, "--roofline")
    r = _resolve(args)
    spec = _device_or_error(args.device)
    calibration = _load_calibration_arg(args.calibration)
    with _x64_context(r.specs), _user_code(r.label, r.is_program):
        program = perfjax.trace(r.target, r.specs)
        try:
            pred = perfjax.predict(program if args.precision is None else r.target, None if args.precision is None
                                   else r.specs, device=spec, precision=args.precision,
                                   calibration=calibration, fusion=args.fusion)  # fmt: skip
        except FileNotFoundError as e:
            raise CLIError(_one_line(e)) from e
    _require_finite(f"the predicted time of {r.label} on {spec.name}", pred.time_s)
    if args.roofline:
        with _writing(args.roofline, "--roofline"):
            pred.plot_roofline(args.roofline)
        print(f"perfjax: wrote {args.roofline}", file=sys.stderr)
    if args.json:
        _print_json({**pred.to_dict(), "kernels": [r.to_dict() for r in pred.kernels]})
    else:
        print(render(pred.table(max_rows=args.max_rows), width=_width()))
    return 0


def _device_list(text: str) -> str | list[str]:
    """``--devices`` value: ``"all"``, or comma-separated names, each checked against the catalog."""
    if text == "all":
        return "all"
    names = [d.strip() for d in text.split(",") if d.strip()]
    for n in names:
        _device_or_error(n)
    return names


def cmd_compare(args: argparse.Namespace) -> int:
    check_writable(args.plot, "--plot")
    r = _resolve(args)
    names = _device_list(args.devices)
    with _x64_context(r.specs), _user_code(r.label, r.is_program):
        comparison = perfjax.compare(
            r.target,
            r.specs,
            names if args.devices else None,
            precision=args.precision,
            fusion=args.fusion,
        )
    for pred in comparison.predictions:
        _require_finite(f"the predicted time of {r.label} on {pred.device}", pred.time_s)
    if args.plot:
        with _writing(args.plot, "--plot"):
            comparison.plot(args.plot)
        print(f"perfjax: wrote {args.plot}", file=sys.stderr)
    if args.json:
        _print_json(comparison.to_dataframe().to_dict(orient="records"))
    else:
        print(render(comparison.table(), width=_width()))
    return 0


def _csv_positive_ints(text: str) -> list[int]:
    """``1,8,64`` -> [1, 8, 64] (argparse type for --batch-sizes)."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 1,8,64, got {text!r}"
        )
    return sizes


def cmd_recommend(args: argparse.Namespace) -> int:
    check_writable(args.plot, "--plot")
    r = _resolve(args)
    devices = _device_list(args.devices) if args.devices else None
    precisions = []
    for p in (p.strip() for p in args.precisions.split(",") if p.strip()):
        if p != "traced" and p not in PRECISIONS:
            raise CLIError(
                f"unknown precision {p!r} in --precisions; expected some of "
                f"{', '.join(PRECISIONS)} or 'traced' (the program's own dtypes)"
            )
        precisions.append(None if p == "traced" else p)
    if not precisions:
        raise CLIError("--precisions is empty; e.g. --precisions fp32,bf16,int8")
    calibration = _load_calibration_arg(args.calibration)
    with _x64_context(r.specs), _user_code(r.label, r.is_program):
        try:
            rec = perfjax.recommend(
                r.target, r.specs, objective=args.objective, devices=devices,
                precisions=precisions, batch_sizes=args.batch_sizes, batch=args.batch,
                batch_argnums=args.batch_arg, top=args.top,
                calibration=calibration,
            )  # fmt: skip
        except FileNotFoundError as e:
            raise CLIError(_one_line(e)) from e
    for row in rec.rows:
        _require_finite(
            f"the predicted time of {r.label} on {row.device} ({row.precision})", row.time_s
        )
    if args.plot:
        with _writing(args.plot, "--plot"):
            rec.plot(args.plot)
        print(f"perfjax: wrote {args.plot}", file=sys.stderr)
    if args.json:
        _print_json(rec.to_dict())
    else:
        print(render(rec.table(), width=max(_width(), 140)))
    return 0


def cmd_pod(args: argparse.Namespace) -> int:
    """A zoo decoder's training step on a TPU pod: FSDP within each slice, data parallelism
    across slices."""
    models = perfjax.models  # loaded on first use (flax)
    placement = perfjax.placement
    if args.model not in models.DECODER_CONFIGS:
        raise CLIError(
            f"unknown model {args.model!r}; expected one of {', '.join(sorted(models.DECODER_CONFIGS))}."
        )
    if args.batch_per_chip < 1:
        raise CLIError(f"--batch-per-chip must be at least 1, got {args.batch_per_chip}.")
    pod = placement.pod(args.pod)
    d = models.decoder(args.model, **({"remat": args.remat} if args.remat else {}))
    mesh = jax.sharding.AbstractMesh((pod.num_slices, pod.chips_per_slice), ("data", "fsdp"))
    fn, inputs = d.training_step(
        batch=args.batch_per_chip * pod.num_chips, seq_len=args.seq_len, mesh=mesh
    )
    pred = placement.predict_pod(
        fn, inputs, pod=pod, donate_argnums=(0, 1), overlap=not args.no_overlap
    )
    flops = d.model_flops_per_step(args.batch_per_chip, args.seq_len)
    if args.json:
        _print_json({
            "model": args.model, "params": d.num_params, "pod": pod.name,
            "batch_per_chip": args.batch_per_chip, "model_flops_per_chip": flops,
            "tflops_per_chip": pred.tflops_per_chip(flops), "mfu": pred.mfu(flops),
            **pred.to_dict(),
        })  # fmt: skip
        return 0
    print(render(pred.table(), width=_width()))
    print(
        f"{args.model} ({fmt_count(d.num_params)} parameters), {args.batch_per_chip} x "
        f"{args.seq_len or d.config.max_target_length} tokens per chip: "
        f"{pred.tflops_per_chip(flops):.0f} TFLOP/s per chip, MFU {pred.mfu(flops):.0%} "
        "(FLOPs counted as MaxText does)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:

    return demo_main()


def measurements_path(calibration_path: str | os.PathLike) -> pathlib.Path:
    """Where ``perfjax calibrate`` keeps the measurements of a calibration it measured (unless
    ``--out`` says otherwise): next to it, ``<name>_measurements.csv``, so that a later perfjax
    can refit them (``--from-csv``) without timing anything again."""
    path = pathlib.Path(calibration_path)
    return path.with_name(f"{path.stem}_measurements.csv")


def previous_measurements_path(measurements: str | os.PathLike) -> pathlib.Path:
    """Where ``perfjax calibrate`` keeps the previous run's measurements when a new run replaces
    them (``<name>_previous.csv``): the new calibration is fitted with them too, and
    ``--from-csv NEW --from-csv PREVIOUS`` refits the pair."""
    path = pathlib.Path(measurements)
    return path.with_name(f"{path.stem}_previous.csv")


def _read_previous(path: str) -> calibrate.Measurements | None:
    """The previous run's measurements at ``path`` (the default ``--out``), read before a new
    run replaces them and copied to :func:`previous_measurements_path`; ``None`` when there are
    none or they cannot be read (said on stderr: the new run goes on alone)."""
    if not os.path.exists(path):
        return None
    try:
        earlier = calibrate.Measurements.from_csv(path)
        shutil.copyfile(path, previous_measurements_path(path))
    except (OSError, ValueError) as e:
        print(f"perfjax: not fitting the previous timings with this run's: {_one_line(e)}",
              file=sys.stderr)  # fmt: skip
        return None
    return earlier


def _pooled(
    measurements: calibrate.Measurements, earlier: calibrate.Measurements | None, path: str
) -> tuple[calibrate.Measurements, dict[str, str]]:
    """This run's measurements pooled with the previous run's (:func:`perfjax.calibrate.pool`)
    where the two may be fitted together (:func:`perfjax.calibrate.why_not_pool`), and the
    calibration metadata saying so."""
    if earlier is None:
        return measurements, {}
    why = calibrate.why_not_pool(measurements.metadata, earlier.metadata)
    if why is not None:
        print(f"perfjax: not fitting the previous run's timings with this run's: {why}",
              file=sys.stderr)  # fmt: skip
        return measurements, {}
    previous = previous_measurements_path(path)
    date = earlier.metadata.get("date", "")
    print(
        f"perfjax: fitting this run's {len(measurements)} timings with the previous run's "
        f"{len(earlier)} ({date}, kept in {previous}): of a point timed in both, the faster, so "
        "a slow spell in either run does not move the fit; --no-pool fits this run's alone",
        file=sys.stderr,
    )
    return calibrate.pool(measurements, earlier), {"pooled_with": f"{previous} ({date})"}


def cmd_calibrate(args: argparse.Namespace) -> int:

    check_writable(args.save, "--save", create_dirs=True)
    earlier, pool_meta = None, {}
    # The default --out with --pool: fitted with the previous run's timings, and by the next run.
    pooling = bool(args.pool and not args.from_csv and args.out is None)
    if not args.from_csv and args.out is None:
        args.out = str(measurements_path(args.save or calibrate.host_calibration_path()))
        if pooling:  # read before this run replaces them
            earlier = _read_previous(args.out)
    check_writable(args.out, "--out", create_dirs=True)
    check_writable(args.plot, "--plot")
    if args.from_csv:
        measurements = None
        for path in args.from_csv:
            try:
                m = calibrate.Measurements.from_csv(path)
            except (ValueError, FileNotFoundError) as e:
                raise CLIError(_one_line(e)) from e
            if measurements is None:
                measurements = m
            elif calibrate.why_not_pool(measurements.metadata, m.metadata) is None:
                # two runs of `perfjax calibrate` on this machine: pooled as it pools them
                print(f"perfjax: {path}: timed on the same machine and software as the file "
                      "before it: of a point timed in both, the faster", file=sys.stderr)  # fmt: skip
                measurements = calibrate.pool(measurements, m)
            else:
                measurements = measurements + m
        others = [d for d in measurements.devices() if d != "host"]
        if args.save is None and others:
            # Before the fit, not after it: a calibration of other devices has no default home.
            raise CLIError(
                "--save PATH is required for a calibration of devices other than this host "
                f"(the measurements are of {', '.join(others[:5])})."
            )
    else:
        names = [n.strip() for n in args.suite.split(",") if n.strip()]
        for n in names:
            if n not in calibrate.SUITES:
                raise CLIError(
                    f"unknown suite {n!r}; expected one of {', '.join(calibrate.SUITES)}."
                )
        with _writing(args.out or "", "--out"):
            if args.thorough:
                # The long campaign: three rounds of up to 0.3 s per point, noisy points again.
                measurements = calibrate.measure(
                    names, size=args.size, rounds=args.rounds or 3, out=args.out
                )
            else:
                # Quick: two rounds of up to 0.05 s per point (a slow spell of a shared machine
                # moves one), then a third visit where they disagree, until the budget is spent.
                measurements = calibrate.measure(
                    names, size=args.size, rounds=args.rounds or 2, out=args.out,
                    max_time_s=0.05, budget_s=args.budget, remeasure_noisy=False,
                )  # fmt: skip
        if args.out:
            print(f"perfjax: wrote {len(measurements)} measurements to {args.out}", file=sys.stderr)
        measurements, pool_meta = _pooled(measurements, earlier, args.out or "")
    try:
        # The fit's choices are calibrate.fit's defaults unless a flag says otherwise.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cal = calibrate.fit(
                measurements,
                holdout=args.holdout,
                steps=args.steps,
                refit=args.refit,
                interval_folds=args.interval_folds,
                device_effects=args.device_effects,
                harness_effects=args.harness_effects,
            )
    except ValueError as e:
        raise CLIError(_one_line(e)) from e
    print(render(cal.report.table(), width=_width()))
    for line in noise_lines(measurements.metadata, pooling=pooling):
        print(f"perfjax: {line}", file=sys.stderr)
    for w in caught:  # the fit's (a slow hand-off kept apart): after the table, not in it
        if issubclass(w.category, UserWarning):
            print(f"perfjax: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    save = args.save
    if save is None:
        if cal.devices != ("host",):
            raise CLIError(
                "--save PATH is required for a calibration of devices other than this host."
            )
        save = str(calibrate.host_calibration_path())
        cal = dataclasses.replace(cal, metadata={**cal.metadata, "machine": calibrate.machine_id()})
    if pool_meta:
        cal = dataclasses.replace(cal, metadata={**cal.metadata, **pool_meta})
    with _writing(save, "--save"):
        cal.save(save)
    print(f"perfjax: saved {cal} to {save}", file=sys.stderr)
    if args.plot:
        with _writing(args.plot, "--plot"):
            cal.report.plot(args.plot)
        print(f"perfjax: wrote {args.plot}", file=sys.stderr)
    return 0


def noise_lines(metadata: Mapping[str, str], *, pooling: bool = False) -> list[str]:
    """What the measurements' metadata say about the machine's noise: one line, plus a warning
    when too many medians are uncertain to trust the fit (none for measurements without it);
    ``pooling``: the next calibration will fit these timings too, so the warning says so."""
    try:
        med, p90 = float(metadata["noise_median"]), float(metadata["noise_p90"])
        untrusted = float(metadata["noise_untrusted"])
    except (KeyError, ValueError):
        return []
    lines = [
        f"measurement noise: a point's two closest timings {100 * med:.1f}% apart (median over "
        f"points), {100 * p90:.1f}% (p90); {100 * untrusted:.0f}% of points with no two "
        f"timings within {100 * calibrate.UNTRUSTED_CI:.0f}%"
    ]
    if med > calibrate.QUIET_NOISE:
        lines[0] += "; above a quiet machine's, so points with widely spread samples weigh less"
    if untrusted > calibrate.UNTRUSTED_SHARE:
        lines.append(
            "warning: the machine was too noisy to trust this calibration (other processes, a "
            "shared host?); run `perfjax calibrate --thorough` when it is quieter"
            + (
                ", or `perfjax calibrate` again later (it also fits these timings, keeping each "
                "point's faster one)"
                if pooling
                else ""
            )
        )
    return lines


def cmd_validate(args: argparse.Namespace) -> int:

    check_writable(args.plot, "--plot")
    try:
        cal = calibrate.load(args.calibration)
        measurements = calibrate.Measurements.from_csv(args.measurements)
        report = calibrate.evaluate(cal, measurements)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(_one_line(e)) from e
    if args.json:
        _print_json({**report.summary(), "coverage": report.coverage})
    else:
        print(render(report.table(), width=_width()))
    if args.plot:
        with _writing(args.plot, "--plot"):
            report.plot(args.plot)
        print(f"perfjax: wrote {args.plot}", file=sys.stderr)
    return 0


def _header(title: str) -> str:
    return f"==== {title} " + "=" * max(4, 72 - len(title))


def cmd_analyze(args: argparse.Namespace) -> int:
    check_writable(args.csv, "--csv")
    r = _resolve(args)
    with (
        _x64_context(r.specs),
        _user_code(r.label, r.is_program),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        program = perfjax.trace(r.target, r.specs)
        graph = perfjax.analyze(program, on_unsupported=args.on_unsupported)
    for w in caught:
        print(f"perfjax: warning: {w.message}", file=sys.stderr)
    if args.csv:
        try:
            graph.to_dataframe().to_csv(args.csv)
        except OSError as e:
            raise CLIError(f"cannot write {args.csv!r}: {e.strerror or e}.") from e
        print(f"perfjax: wrote {len(graph.ops)} op rows to {args.csv}", file=sys.stderr)
    if args.json:
        _print_json(graph.to_dict())
    else:
        print(render(graph.table(max_rows=args.max_rows), width=_width()))
    return 0


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"perfjax: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


_TARGET_HELP = (
    "path/to/file.py:function, dotted.module:function, or a StableHLO file (.mlir, e.g. saved from "
    "jax.jit(f).lower(...).as_text())"
)
_EPILOG = """\
input specs (one -i per positional argument, in order):
  DTYPE[DIM,...]   e.g. f32[128,784]  bf16[4,8]  int8[16]  i32[4,16]  float32[2,3]  f32[] (scalar)
  dtypes: f64 f32 f16 bf16 i8 i16 i32 i64 u8 u16 u32 u64 c64 c128 bool, or NumPy names (float32 ...)
  quote specs in the shell: -i 'f32[128,784]'. Inputs are filled with random data when run.
  For a .mlir target the inputs default to the program's own signature.

examples:
  perfjax analyze examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]'
  perfjax trace examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]' --stage jaxpr
  perfjax run model.mlir --max-time 0.5 --json

exit status: 0 on success, 2 for usage errors and programs perfjax cannot load, trace, run or cost
(one line "perfjax: error: ..."; --debug or PERFJAX_DEBUG=1 shows the traceback), 1 for an internal
error of perfjax.
"""


def _folds(text: str) -> int:
    """``--interval-folds``: 0 (off) or an integer >= 2."""
    try:
        k = int(text)
    except ValueError:
        k = -1
    if k < 0 or k == 1:
        raise argparse.ArgumentTypeError(f"expected 0 or an integer >= 2, got {text!r}")
    return k


def _json_flag(p: argparse.ArgumentParser, what: str) -> None:
    """The ``--json`` flag every reporting subcommand has, saying what it prints."""
    p.add_argument("--json", action="store_true", help=what)


# (help shared by predict and compare)
_PRECISION_HELP = "fp32/bf16/fp16/fp64 re-trace with cast inputs; int8/fp8/int4 quantize GEMMs (default: as traced)"
_FUSION_HELP = ("how ops become kernels: eager = one kernel per op as PyTorch without compile runs them; "
                "a family name (gpu, tpu, cpu, npu) = that compiler's fusion; none = no fusion "
                "(default: the device family's compiler)")  # fmt: skip


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        parents=[common],
        help="compile, run on this CPU and time the program",
        description="Compile the target with XLA, run it on this machine's CPU with random inputs and time it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--max-time",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="time budget for the timing samples (default: 2)",
    )
    _json_flag(p, "print the timing and output shapes as JSON")
    p.set_defaults(func=cmd_run)


def _add_trace(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``trace`` subcommand."""
    p = sub.add_parser(
        "trace",
        parents=[common],
        help="print the jaxpr, StableHLO and XLA's optimized HLO",
        description="Trace the target and print each stage: jaxpr, StableHLO, and XLA's optimized HLO for this CPU.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--stage",
        choices=("jaxpr", "stablehlo", "hlo", "all"),
        default="all",
        help="which stage to print (default: all)",
    )
    p.set_defaults(func=cmd_trace)


def _add_analyze(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``analyze`` subcommand."""
    p = sub.add_parser(
        "analyze",
        parents=[common],
        help="count flops, transcendentals and bytes per op",
        description="Exact operation counts of the target's StableHLO: totals, per Flash op and per op.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _json_flag(p, "print the totals as JSON instead of tables")
    p.add_argument("--csv", metavar="PATH", help="also write one row per op to PATH as CSV")
    p.add_argument(
        "--on-unsupported",
        choices=("error", "warn"),
        default="error",
        help="ops without a cost rule: fail (default), or warn and leave them out of the totals",
    )
    p.add_argument(
        "--max-rows",
        type=_positive_int,
        default=40,
        metavar="N",
        help="show at most N ops in the op table (default: 40)",
    )
    p.set_defaults(func=cmd_analyze)


def _add_predict(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``predict`` subcommand."""
    p = sub.add_parser(
        "predict",
        parents=[common],
        help="predict the time on a device of the catalog",
        description="Predict the target's time on a device (perfjax devices lists them), kernel by kernel.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-d", "--device", required=True, help="device name or alias, e.g. h100, tpu-v4, host"
    )
    p.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    _json_flag(p, "print the prediction and its kernels as JSON")
    p.add_argument("--fusion", choices=sorted(POLICIES), help=_FUSION_HELP)
    p.add_argument("--roofline", metavar="PNG", help="also write a roofline plot to PNG")
    p.add_argument(
        "--calibration",
        metavar="JSON",
        help="a calibration saved by perfjax calibrate (adds an interval)",
    )
    p.add_argument(
        "--max-rows",
        type=_positive_int,
        default=25,
        metavar="N",
        help="kernels shown (default: 25)",
    )
    p.set_defaults(func=cmd_predict)


def _add_compare(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``compare`` subcommand."""
    p = sub.add_parser(
        "compare",
        parents=[common],
        help="predict the time on several devices",
        description="Predict the target on several devices and rank them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--devices",
        default="",
        help="comma-separated names, or 'all' (default: one or two per family)",
    )
    p.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    p.add_argument("--fusion", choices=sorted(POLICIES), help=_FUSION_HELP)
    _json_flag(p, "print one JSON record per device")
    p.add_argument("--plot", metavar="PNG", help="also write a bar chart to PNG")
    p.set_defaults(func=cmd_compare)


def _add_recommend(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``recommend`` subcommand."""
    p = sub.add_parser(
        "recommend",
        parents=[common],
        help="rank devices and precisions by latency, throughput or energy",
        description="Predict the target on every (device, precision) pair and rank them, with the reason for each rank.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  perfjax recommend examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' "
        "-i 'f32[128,10]' --objective throughput --batch-sizes 1,8,64,256 --top 10",
    )
    p.add_argument(
        "--objective",
        choices=("latency", "throughput", "energy"),
        default="latency",
        help="latency: time per call; throughput: samples/s; energy: joules per sample (default: latency)",
    )
    p.add_argument(
        "--devices",
        default="",
        help="comma-separated names, or 'all' (default: the whole catalog except host)",
    )
    p.add_argument(
        "--precisions",
        default="fp32,bf16,int8",
        help="comma-separated precisions to try where a device has a peak for them, 'traced' for "
        "the program's own dtypes (default: fp32,bf16,int8)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_csv_positive_ints,
        metavar="N,N,...",
        help="re-trace at each batch (leading dim of the batched input) and keep the best per pair",
    )
    p.add_argument(
        "--batch",
        type=_positive_int,
        metavar="N",
        help="samples per call, when not the leading dim",
    )
    p.add_argument(
        "--batch-arg",
        type=int,
        metavar="I",
        help="index of the batched input (default: the first input with a leading dimension)",
    )
    p.add_argument("--top", type=_positive_int, metavar="N", help="show only the best N rows")
    p.add_argument("--calibration", metavar="JSON", help="a calibration saved by perfjax calibrate")
    _json_flag(p, "print the ranking as JSON")
    p.add_argument("--plot", metavar="PNG", help="also write a bar chart to PNG")
    p.set_defaults(func=cmd_recommend)


def _add_devices(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``devices`` subcommand."""
    p = sub.add_parser(
        "devices",
        help="list the device catalog",
        description="List the devices perfjax can predict.",
    )
    p.add_argument("--family", choices=FAMILIES, help="only this family")
    _json_flag(p, "print every spec as JSON")
    p.set_defaults(func=cmd_devices, target="")


def _add_calibrate(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``calibrate`` subcommand."""
    p = sub.add_parser(
        "calibrate",
        help="measure microbenchmarks on this CPU (or read timing CSVs) and fit the model",
        description="Measure a benchmark suite on this machine (or read measurement CSVs, e.g. public GPU "
        "timings), fit the device family's correction parameters with optax, report held-out error, save.",
    )
    p.add_argument("--suite", default="all", help="suite name(s), comma-separated (default: all)")
    p.add_argument(
        "--size", choices=("tiny", "default", "large"), default="default", help="suite size"
    )
    p.add_argument(
        "--out",
        metavar="CSV",
        help="where to save the measurements (default: next to the saved calibration, "
        "<name>_measurements.csv; refit them later with --from-csv)",
    )
    p.add_argument(
        "--budget",
        type=_positive_float,
        default=85.0,
        metavar="SECONDS",
        help="measuring time: the rounds over the suite, then the points whose rounds disagree "
        "most again until this many seconds have passed (default 85; the rounds are never cut "
        "short)",
    )
    p.add_argument(
        "--thorough",
        action="store_true",
        help="the long campaign: three rounds of up to 0.3 s per point, noisy points "
        "re-measured (several minutes; ignores --budget)",
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=None,
        help="measure everything this many times, in alternating order, and keep the median "
        "(default 2; 3 with --thorough)",
    )
    p.add_argument(
        "--from-csv",
        metavar="CSV",
        action="append",
        help="fit these measurements instead of measuring (several files: their rows together; "
        "two runs of perfjax calibrate on the same machine and software: of a point timed in "
        "both, the faster, as --pool does)",
    )
    p.add_argument(
        "--save",
        metavar="JSON",
        help="where to save (default for the host: the user cache directory)",
    )
    p.add_argument(
        "--pool",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit this run's timings with the previous run's (kept next to the calibration; of "
        "a point timed in both, the faster), when both were measured on this machine with the "
        f"same software and suites at most {calibrate.POOL_MAX_AGE_DAYS:g} days apart (default: "
        "on; without --out or --from-csv only)",
    )
    p.add_argument(
        "--holdout", type=float, default=0.25, help="fraction of programs held out (default 0.25)"
    )
    p.add_argument("--steps", type=_positive_int, default=400, help="Adam steps (default 400)")
    p.add_argument(
        "--device-effects",
        action="store_true",
        help="fit a time factor per device and kernel class (several devices: the shared "
        "parameters fit the median device; each fitted device is predicted with its own factors)",
    )
    p.add_argument(
        "--harness-effects",
        action="store_true",
        help="fit the measuring harness's fixed cost per op kind (not saved for predictions)",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after scoring the held-out split, fit again on every measurement and save those "
        "parameters (the report and the interval stay the held-out split's; default: on, "
        "--no-refit saves the parameters fitted without the held-out split)",
    )
    p.add_argument(
        "--interval-folds",
        type=_folds,
        default=0,
        metavar="K",
        help="cross-conformal interval from K more fits, each without one K-th of the programs "
        "(K >= 2; default 0: the held-out split's residuals)",
    )
    p.add_argument(
        "--plot", metavar="PNG", help="predicted vs measured scatter of held-out programs"
    )
    p.set_defaults(func=cmd_calibrate, target="")


def _add_validate(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``validate`` subcommand."""
    p = sub.add_parser(
        "validate", help="score a saved calibration on measurements it did not see",
        description="Evaluate a saved calibration on a measurements CSV: error before/after, interval coverage.",
    )  # fmt: skip
    p.add_argument(
        "calibration", metavar="CALIBRATION", help="calibration JSON written by perfjax calibrate"
    )
    p.add_argument(
        "--measurements", metavar="CSV", required=True, help="measurements to score against"
    )
    _json_flag(p, "print the summary as JSON")
    p.add_argument("--plot", metavar="PNG", help="predicted vs measured scatter")
    p.set_defaults(func=cmd_validate, target="")


def _add_pod(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``pod`` subcommand."""
    p = sub.add_parser(
        "pod",
        help="predict a zoo decoder's training step on a TPU pod",
        description="Predict one training step of a MaxText-style decoder (perfjax.models."
        "decoder) on a TPU pod, per chip: FSDP over each slice's chips, data parallelism "
        "across slices. Nothing is allocated.",
    )
    p.add_argument("model", help="decoder config: maxtext-16b ... maxtext-128b, llama2-7b, tiny")
    p.add_argument("--pod", default="v5e-256", help="e.g. v5e-256, v5e-256x32, v4-64, v6e-256x2")
    p.add_argument("--batch-per-chip", type=int, default=1, help="sequences per chip (default 1)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence")
    p.add_argument("--remat", choices=["none", "full", "dots", "dots_with_no_batch_dims"],
                   help="remat policy (default: the config's)")  # fmt: skip
    p.add_argument("--no-overlap", action="store_true", help="collectives do not overlap compute")
    p.add_argument("--traceback", "--debug", dest="traceback", action="store_true",
                   help="on an error, show the full Python traceback")  # fmt: skip
    _json_flag(p, "print the prediction as JSON")
    p.set_defaults(func=cmd_pod, target="")


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand."""
    p = sub.add_parser(
        "demo", help="trace, analyse, run and predict a real program (the quick start's main job)",
        description="Trace, analyse and run an MLP and a transformer block on this CPU, and predict them on other devices.",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo, target="")


def build_parser() -> argparse.ArgumentParser:
    """The ``perfjax`` command line: one subcommand per job, each built by ``_add_<name>``."""
    parser = _Parser(
        prog="perfjax",
        description="See, run and cost tensor programs written in JAX (or exported as StableHLO).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"perfjax {perfjax.__version__}")

    common = _Parser(add_help=False)
    common.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    common.add_argument(
        "-i",
        "--input",
        dest="inputs",
        metavar="SPEC",
        action="append",
        default=[],
        help="one positional input, DTYPE[DIM,...] such as f32[128,784]; repeat for each argument",
    )
    common.add_argument(
        "--traceback",
        "--debug",
        dest="traceback",
        action="store_true",
        help="on an error, show the full Python traceback instead of one line "
        f"(or set {DEBUG_ENV}=1)",
    )

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_run(sub, common)
    _add_trace(sub, common)
    _add_analyze(sub, common)
    _add_predict(sub, common)
    _add_compare(sub, common)
    _add_recommend(sub, common)
    _add_devices(sub, common)
    _add_calibrate(sub, common)
    _add_validate(sub, common)
    _add_pod(sub, common)
    _add_demo(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``perfjax`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    # Like `python -m`: modules in the current directory can be imported, and a target file can
    # import the modules next to it.
    added = [os.getcwd()]
    where = getattr(args, "target", "").rpartition(":")[0]
    if where.endswith(".py"):
        added.append(str(pathlib.Path(where).resolve().parent))
    added = [p for p in dict.fromkeys(added) if p not in sys.path]
    sys.path[:0] = added
    # (commands without the common options, such as calibrate, have no --traceback: the
    # environment variable works for every command)
    show_traceback = getattr(args, "traceback", False) or os.environ.get(
        DEBUG_ENV, ""
    ).strip() not in ("", "0")
    try:
        return args.func(args)
    except CLIError as e:
        if show_traceback:
            raise
        print(f"perfjax: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        if show_traceback:
            raise
        print(f"perfjax: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except perfjax.PerfjaxError as e:  # every error perfjax raises on purpose: its one line
        if show_traceback:
            raise
        print(f"perfjax: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("perfjax: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `perfjax trace ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:  # a bug in perfjax: still one line, with how to see the traceback
        if show_traceback:
            raise
        print(
            f"perfjax: error: internal error: {type(e).__name__}: {_one_line(e)} (rerun with "
            f"--debug or {DEBUG_ENV}=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


__all__ = ["CLIError", "build_parser", "check_writable", "load_target", "main", "parse_spec"]
