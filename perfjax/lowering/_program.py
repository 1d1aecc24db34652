"""Tracing a JAX function (or reading StableHLO text) into a :class:`Program`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.stages
import numpy as np

from perfjax._errors import InputError, StableHLOParseError, UnsupportedProgramError
from perfjax._io import atomic_write_text
from perfjax.lowering._types import TensorType


def _ir():
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir import ir

    return mlir, ir


def _exclude_own_frames() -> None:
    """Source locations in traced programs name the user's code, not perfjax's machinery (a
    note "while loop at model.py:12", not "at _program.py:442"). JAX's private hook; a JAX
    without it keeps the default."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        from jax._src import source_info_util

        for part in ("lowering", "devicemodels", "placement", "calibrate", "executor.py",
                     "_recommend.py", "_cli.py", "_demo.py"):  # fmt: skip
            source_info_util.register_exclusion(str(root / part))
    except (ImportError, AttributeError):
        pass


_exclude_own_frames()


#: Shardy sharding rules of custom calls (``sdy.sharding_rule = #sdy.op_sharding_rule<...>``).
_SDY_RULE_RE = re.compile(r",?\s*sdy\.sharding_rule = #sdy\.op_sharding_rule<.*?\}(?:, custom)?>")


def parse_module(text: str):
    """Parses StableHLO/MLIR text into ``(context, module)``; bad text raises StableHLOParseError."""
    mlir, ir = _ir()
    ctx = mlir.make_ir_context()
    ctx.allow_unregistered_dialects = False
    with ctx:
        try:
            module = ir.Module.parse(text)
        except Exception as e:  # MLIRError and friends carry the diagnostics
            diag = str(e).strip()
            if "integer value too large" in diag and "sdy.op_sharding_rule" in text:
                # JAX prints Shardy factor sizes that its own parser reads as 32-bit: a dimension
                # of 2^31 or more cannot be read back. perfjax never needs the sharding rules.
                return parse_module(_SDY_RULE_RE.sub("", text))
            raise StableHLOParseError(
                "could not parse the StableHLO module: "
                + diag.replace("\n", " ")[:2000]
                + "\nExpected MLIR text such as the output of jax.jit(f).lower(...).as_text()."
            ) from None
    return ctx, module


def _leaf_spec(path: str, x: Any) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.ShapeDtypeStruct):
        bad = [d for d in x.shape if isinstance(d, (int, np.integer)) and d < 0]
        if bad:
            raise InputError(
                f"inputs{path}: jax.ShapeDtypeStruct has shape {tuple(x.shape)} with negative "
                f"dimension(s) {bad}; every dimension must be >= 0 (0 for an empty axis)."
            )
        return x
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype)
    if isinstance(x, (bool, int, float, complex)):
        arr = np.asarray(x)
        return jax.ShapeDtypeStruct(arr.shape, jax.dtypes.canonicalize_dtype(arr.dtype))
    hint = (
        " Strings are not JAX values: encode text as an integer array of token ids."
        if isinstance(x, (str, bytes))
        else " Wrap arrays in a tuple of positional arguments: inputs=(x, w)."
    )
    raise TypeError(
        f"inputs{path}: expected an array, a Python number or a jax.ShapeDtypeStruct, got "
        f"{type(x).__name__} ({x!r:.60}).{hint}"
    )


def check_inputs(inputs: Any) -> tuple[Any, ...]:
    """Validates ``inputs`` (a tuple of positional-argument pytrees) and returns it as a tuple."""
    if inputs is None:
        return ()
    if isinstance(inputs, (jax.Array, np.ndarray, jax.ShapeDtypeStruct)):
        raise TypeError(
            f"inputs must be a tuple of positional arguments, got a single {type(inputs).__name__}; "
            "write inputs=(x,) for a one-argument function."
        )
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(
            f"inputs must be a tuple of positional arguments (pytrees of arrays or "
            f"jax.ShapeDtypeStruct), got {type(inputs).__name__}."
        )
    leaves, _ = jax.tree_util.tree_flatten_with_path(tuple(inputs))
    for path, leaf in leaves:
        _leaf_spec(jax.tree_util.keystr(path), leaf)
    return tuple(inputs)


def abstractify(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Replaces every leaf by a ``ShapeDtypeStruct`` (nothing allocated)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, x: _leaf_spec(jax.tree_util.keystr(p), x), inputs
    )


def signature(inputs: tuple[Any, ...]) -> Any:
    """A hashable key of the inputs' tree structure, shapes and dtypes (for compile/trace caches)."""
    leaves, tree = jax.tree_util.tree_flatten(abstractify(inputs))
    return tree, tuple((tuple(s.shape), str(s.dtype)) for s in leaves)


def _safe_name(name: str) -> str:
    """``name`` as an identifier-safe program name."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


def trace_name(fn: Callable) -> str:
    """The name a traced program gets (the function's, made identifier-safe)."""
    return _safe_name(getattr(fn, "__name__", None) or type(fn).__name__)


def _main_signature(module) -> tuple[tuple[TensorType, ...], tuple[TensorType, ...], str]:
    from jax._src.lib.mlir import ir

    funcs = {}
    for op in module.body.operations:
        if op.operation.name == "func.func":
            funcs[ir.StringAttr(op.attributes["sym_name"]).value] = op
    if not funcs:
        raise StableHLOParseError(
            "the module has no func.func; expected a StableHLO module with a @main function."
        )
    main = funcs.get("main")
    if main is None:
        public = [n for n, f in funcs.items() if "sym_visibility" not in f.attributes]
        if len(public) != 1:
            raise StableHLOParseError(
                f"cannot tell the entry function: no @main and {len(public)} public functions "
                f"({sorted(public)}). Rename the entry function to @main."
            )
        main = funcs[public[0]]
    ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
    ins = tuple(TensorType.parse(str(t)) for t in ftype.inputs)
    outs = tuple(TensorType.parse(str(t)) for t in ftype.results)
    name = "module"
    if "sym_name" in module.operation.attributes:
        name = ir.StringAttr(module.operation.attributes["sym_name"]).value
    return ins, outs, name


#: Platforms a program can be lowered for (``jax.jit(f).trace(...).lower(lowering_platforms=...)``
#: works for each of them on a CPU-only machine).
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_PLATFORM_COMMENT_RE = re.compile(r"\s*// perfjax: lowered for platform=(\w+)")


def check_platform(platform: str | None) -> str:
    """``platform`` validated (``None`` is this machine's ``"cpu"``)."""
    if platform is None:
        return "cpu"
    if platform not in PLATFORMS:
        raise InputError(
            f"unknown platform {platform!r}; expected one of {PLATFORMS} (or None: cpu)."
        )
    return platform


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A tensor program at every stage: jaxpr, StableHLO (as lowered for ``platform``), and XLA's
    optimized HLO for this CPU.

    Build one with :func:`perfjax.trace`, :meth:`Program.from_stablehlo` or :meth:`Program.load`.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> p = perfjax.trace(lambda x: jnp.tanh(x) * 2, (jnp.ones(4),))
      >>> "stablehlo.tanh" in p.stablehlo, p.platform
      (True, 'cpu')
    """

    name: str
    #: StableHLO module text, as ``jax.jit(f).lower(...).as_text()`` prints it.
    stablehlo: str
    #: The jaxpr, or ``None`` for a program read from StableHLO text.
    jaxpr: str | None
    #: Flat input and output types of the entry function.
    in_types: tuple[TensorType, ...]
    out_types: tuple[TensorType, ...]
    #: The same module with source locations (name scopes), which the graph builder reads.
    stablehlo_debug: str = dataclasses.field(repr=False, default="")
    fn: Callable | None = dataclasses.field(repr=False, default=None)
    example_inputs: tuple[Any, ...] | None = dataclasses.field(repr=False, default=None)
    lowered: Any = dataclasses.field(repr=False, default=None)
    #: The JAX platform the StableHLO was lowered for (``cpu``, ``cuda``, ``rocm``, ``tpu``);
    #: ``None`` for a module read from text (lowered by whoever exported it).
    platform: str | None = None
    #: How this program was obtained, when it is not exactly what was asked for (a fallback
    #: lowering, a precision cast that could not be applied ...). Copied into predictions.
    notes: tuple[str, ...] = ()
    #: The ``jax.stages.Traced`` the program was lowered from (re-lowered for other platforms).
    traced: Any = dataclasses.field(repr=False, default=None)
    _relowered: dict = dataclasses.field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    # ---- construction ---------------------------------------------------------------------

    @staticmethod
    def from_stablehlo(text_or_path: str | os.PathLike) -> Program:
        """Reads a StableHLO module from text, a ``.mlir`` file (any framework's export), or a
        folder written by :meth:`save` (its ``program.mlir``).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> text = jax.jit(lambda x: x + 1).lower(jnp.ones(3)).as_text()
          >>> Program.from_stablehlo(text).in_types[0].shape
          (3,)
        """
        folder = None
        if isinstance(text_or_path, os.PathLike) or (
            isinstance(text_or_path, str)
            and "\n" not in text_or_path
            and (
                text_or_path.strip().endswith((".mlir", ".txt", ".stablehlo"))
                or (len(text_or_path) < 4096 and os.path.isdir(text_or_path))
            )
        ):
            path = pathlib.Path(text_or_path)
            if path.is_dir():
                folder, path = path, path / "program.mlir"
                if not path.exists():
                    raise FileNotFoundError(
                        f"{str(folder)!r} is a folder without program.mlir; expected a folder "
                        "written by Program.save(folder) or a .mlir file."
                    )
            if not path.exists():
                raise FileNotFoundError(f"no StableHLO file at {str(path)!r}")
            text = path.read_text()
        elif isinstance(text_or_path, str):
            text = text_or_path
        else:
            raise TypeError(
                f"from_stablehlo expects MLIR text or a path, got {type(text_or_path).__name__}."
            )
        if not text.strip():
            raise StableHLOParseError("the StableHLO text is empty.")
        ctx, module = parse_module(text)
        with ctx:
            ins, outs, name = _main_signature(module)
        jaxpr = None
        if folder is not None and (folder / "program.jaxpr").exists():
            jaxpr = (folder / "program.jaxpr").read_text()
        m = _PLATFORM_COMMENT_RE.match(text)
        platform = check_platform(m.group(1)) if m and m.group(1) in PLATFORMS else None
        return Program(
            name=name,
            stablehlo=text,
            jaxpr=jaxpr,
            in_types=ins,
            out_types=outs,
            stablehlo_debug=text,
            platform=platform,
        )

    @staticmethod
    def load(path: str | os.PathLike) -> Program:
        """Reads a program saved by :meth:`save`: a ``.mlir`` file or a folder.

        Example:
          >>> import tempfile, jax.numpy as jnp, perfjax
          >>> p = perfjax.trace(lambda x: x + 1, (jnp.ones(2),))
          >>> Program.load(p.save(tempfile.mkdtemp() + "/f")).in_types == p.in_types
          True
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"Program.load expects a path, got {type(path).__name__}.")
        path = pathlib.Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"no program at {str(path)!r}; expected a .mlir file or a folder written by "
                "Program.save."
            )
        return Program.from_stablehlo(path)

    @staticmethod
    def from_lowered(lowered: Any, name: str | None = None) -> Program:
        """A program from a ``jax.stages.Lowered`` (``jax.jit(f).lower(x)``): used as lowered (for
        the platform it was lowered for); it cannot be re-lowered or re-traced.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> Program.from_lowered(jax.jit(jnp.sin).lower(jnp.ones(3))).platform
          'cpu'
        """
        platforms = tuple(getattr(getattr(lowered, "_lowering", None), "_platforms", None) or ())
        platform = platforms[0] if len(platforms) == 1 and platforms[0] in PLATFORMS else None
        return _program_from(lowered, name or _lowered_name(lowered), platform=platform)

    # ---- other platforms --------------------------------------------------------------------

    def for_platform(self, platform: str) -> Program:
        """The same traced program lowered for ``platform`` (``cpu``, ``cuda``, ``rocm``, ``tpu``),
        from its jaxpr (no re-trace; cached). A program read from text or from a
        ``jax.stages.Lowered`` cannot be re-lowered and raises ``ValueError`` unless it already is
        for ``platform``.

        Example:
          >>> import jax, jax.numpy as jnp, perfjax
          >>> p = perfjax.trace(lambda x: jnp.linalg.cholesky(x), (jnp.eye(4),))
          >>> "cusolver" in p.for_platform("cuda").stablehlo
          True
        """
        platform = check_platform(platform)
        if platform == self.platform:
            return self
        if platform in self._relowered:
            return self._relowered[platform]
        if self.traced is None:
            raise InputError(
                f"program {self.name!r} was "
                + ("read from StableHLO text" if self.lowered is None else "given already lowered")
                + f" (for {self.platform or 'an unknown platform'}); it cannot be lowered for "
                f"{platform!r}. Trace the function with perfjax.trace(fn, inputs, platform="
                f"{platform!r})."
            )
        lowered = _lower(self.traced, platform, self.name)
        out = _program_from(
            lowered, self.name, platform=platform, traced=self.traced, fn=self.fn,
            example_inputs=self.example_inputs, notes=self.notes,
        )  # fmt: skip
        self._relowered[platform] = out
        return out

    # ---- stages ---------------------------------------------------------------------------

    @functools.cached_property
    def compiled(self) -> Any:
        """XLA's executable for this CPU (compiled once, then cached).

        A program lowered for another platform (``cuda``, ``rocm``, ``tpu``) compiles its CPU
        lowering (:meth:`for_platform` ``("cpu")``, the same jaxpr), which is what runs here; one
        that cannot be re-lowered (read from text, or a ``jax.stages.Lowered``) raises
        ``UnsupportedProgramError``.
        """
        if self.platform not in (None, "cpu"):
            try:
                cpu = self.for_platform("cpu")
            except ValueError:
                raise UnsupportedProgramError(
                    f"program {self.name!r} is lowered for {self.platform!r} and cannot be "
                    "re-lowered for this CPU; .compiled, .hlo and .cost_analysis() need a CPU "
                    "lowering: trace the function with platform='cpu'."
                ) from None
            return cpu.compiled
        if self.lowered is not None:
            return self.lowered.compile()
        from jax._src import xla_bridge
        from jax._src.lib import xla_client as xc

        backend = xla_bridge.get_backend("cpu")
        try:
            from jax._src import compiler

            options = compiler.get_compile_options(num_replicas=1, num_partitions=1)
            return backend.compile_and_load(
                self.stablehlo, xc.DeviceList((backend.devices()[0],)), options
            )
        except Exception as e:
            raise StableHLOParseError(
                f"XLA could not compile module {self.name!r}: {str(e)[:2000]}"
            ) from None

    @property
    def hlo(self) -> str:
        """XLA's optimized HLO module for this machine's CPU (after fusion and layout passes);
        for a program lowered for another platform, that of its CPU lowering (see
        :attr:`compiled`)."""
        c = self.compiled
        if hasattr(c, "as_text"):
            return c.as_text()
        return c.hlo_modules()[0].to_string()

    def cost_analysis(self) -> dict[str, float]:
        """XLA's own ``HloCostAnalysis`` of the module compiled for this CPU (flops, bytes
        accessed ...); see :attr:`compiled` for programs lowered for another platform."""
        c = self.compiled
        ca = c.cost_analysis()
        if isinstance(ca, list):
            ca = ca[0] if ca else {}
        return dict(ca or {})

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes the StableHLO to ``path`` (``.mlir``); a path without that suffix is a folder that
        receives ``program.mlir``, ``program.jaxpr`` and, for a program lowered for this CPU,
        ``program.hlo``. The platform is kept in a leading MLIR comment. :meth:`load` reads
        either form back.

        Example:
          >>> import tempfile, jax.numpy as jnp, perfjax
          >>> p = perfjax.trace(lambda x: x + 1, (jnp.ones(2),))
          >>> out = p.save(tempfile.mkdtemp() + "/f.mlir")
          >>> Program.from_stablehlo(out).in_types == p.in_types
          True
        """
        path = pathlib.Path(path)
        text = self.stablehlo
        if self.platform is not None and not _PLATFORM_COMMENT_RE.match(text):
            # An MLIR comment, so the file stays a plain StableHLO module for any reader.
            text = f"// perfjax: lowered for platform={self.platform}\n{text}"
        if path.suffix == ".mlir":
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            return path
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / "program.mlir", text)
        if self.jaxpr is not None:
            atomic_write_text(path / "program.jaxpr", self.jaxpr)
        # The optimized HLO is XLA's for this CPU: only written for a CPU lowering (another
        # platform's folder would otherwise hold a different program's HLO).
        if self.platform in (None, "cpu"):
            atomic_write_text(path / "program.hlo", self.hlo)
        return path

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.in_types))
        outs = ", ".join(map(str, self.out_types))
        return f"Program {self.name}({ins}) -> ({outs})"


def _lowered_name(lowered: Any) -> str:
    name = getattr(getattr(lowered, "_lowering", None), "_name", None) or "lowered"
    return _safe_name(re.sub(r"^jit[_(]?", "", str(name)).rstrip(")")) or "lowered"


def _lower(traced: Any, platform: str, name: str) -> Any:
    """``traced`` lowered for ``platform``; a failure says which platform JAX rejected."""
    try:
        return traced.lower(lowering_platforms=(platform,))
    except Exception as e:
        e.add_note(f"(perfjax: lowering {name!r} for platform {platform!r})")
        raise


def _program_from(
    lowered: Any,
    name: str,
    *,
    platform: str | None,
    traced: Any = None,
    fn: Callable | None = None,
    example_inputs: tuple[Any, ...] | None = None,
    notes: tuple[str, ...] = (),
) -> Program:
    text = lowered.as_text()
    debug = lowered.as_text(debug_info=True)
    ctx, module = parse_module(text)
    with ctx:
        ins, outs, _ = _main_signature(module)
    return Program(
        name=name,
        stablehlo=text,
        jaxpr=str(traced.jaxpr) if traced is not None else None,
        in_types=ins,
        out_types=outs,
        stablehlo_debug=debug,
        fn=fn,
        example_inputs=example_inputs,
        lowered=lowered,
        platform=platform,
        notes=notes,
        traced=traced,
    )


def _required_positional(fn: Callable) -> list[str] | None:
    """Names of ``fn``'s positional parameters without a default (``None``: cannot tell)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind in kinds and p.default is inspect.Parameter.empty
    ]


def trace_stage(
    fn: Callable, inputs: Sequence[Any] | None
) -> tuple[Callable, Any, tuple[Any, ...]]:
    """``(jitted fn, jax.stages.Traced, abstract inputs)``: the platform-independent half of
    :func:`trace` (used to lower one trace for several platforms)."""
    if not callable(fn):
        raise TypeError(
            "trace expects a callable or a Program (or a jax.stages.Traced or jax.stages.Lowered), "
            f"got {type(fn).__name__}."
        )
    if inputs is None:
        required = _required_positional(fn)
        if required:
            raise TypeError(
                f"{trace_name(fn)} takes positional argument(s) {', '.join(required)} but no inputs "
                "were given; pass inputs=(...) with one array or jax.ShapeDtypeStruct per argument, "
                "e.g. inputs=(jax.ShapeDtypeStruct((8, 16), jnp.float32),)."
            )
    inputs = check_inputs(inputs)
    specs = abstractify(inputs)
    jitted = fn if hasattr(fn, "lower") and hasattr(fn, "trace") else jax.jit(fn)
    try:
        traced = jitted.trace(*specs)
    except TypeError as e:
        if inputs == () and "missing" in str(e) and "argument" in str(e):
            raise TypeError(
                f"{trace_name(fn)} needs inputs, but none were given ({e}); pass inputs=(...)."
            ) from None
        raise
    return jitted, traced, specs


def trace(
    fn: Callable | Program | Any,
    inputs: Sequence[Any] | None = None,
    *,
    platform: str | None = None,
) -> Program:
    """Traces ``fn`` on ``inputs`` and lowers it to StableHLO for ``platform`` (nothing is
    allocated or run).

    Args:
      fn: a JAX-traceable function (plain, jitted, or using Flash ops); a ``Program`` (returned
        as is, or re-lowered when ``platform`` names another one); a ``jax.stages.Traced``
        (lowered for ``platform``); or a ``jax.stages.Lowered`` (used as lowered).
      inputs: tuple of positional arguments: pytrees of arrays or ``jax.ShapeDtypeStruct``.
        Needed when ``fn`` takes arguments.
      platform: ``"cpu"`` (default: this machine), ``"cuda"``, ``"rocm"`` or ``"tpu"``: JAX lowers
        some ops differently per platform (threefry RNG as a rolled loop on CPU only; linalg as
        LAPACK, cuSOLVER or hipSOLVER calls); this needs no such device.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((8, 16), jnp.float32)
      >>> p = perfjax.trace(lambda x: perfjax.ops.relu(x), (x,))
      >>> "flash.relu" in p.jaxpr and "@flash.relu" in p.stablehlo
      True
      >>> perfjax.trace(jnp.linalg.cholesky, (jnp.eye(4),), platform="cuda").platform
      'cuda'
    """
    explicit = platform is not None
    platform = check_platform(platform)
    if isinstance(fn, Program):
        return fn.for_platform(platform) if explicit else fn
    if isinstance(fn, jax.stages.Lowered):
        program = Program.from_lowered(fn)
        if explicit and program.platform != platform:
            raise InputError(
                f"this jax.stages.Lowered is lowered for {program.platform!r}, not {platform!r}, "
                "and cannot be re-lowered; pass the jax.stages.Traced (jax.jit(f).trace(...)) or "
                "the function instead."
            )
        return program
    if isinstance(fn, jax.stages.Traced):
        name = _safe_name(str(fn.fun_name))
        # jax.jit(traced) re-evaluates its jaxpr: runnable, and re-traceable at cast dtypes.
        return program_from_traced(jax.jit(fn), fn, _arg_specs(fn), name, platform)
    jitted, traced, specs = trace_stage(fn, inputs)
    return program_from_traced(jitted, traced, specs, trace_name(fn), platform)


def program_from_traced(
    jitted: Callable | None, traced: Any, specs: tuple[Any, ...] | None, name: str, platform: str,
    notes: tuple[str, ...] = (),
) -> Program:  # fmt: skip
    """A :class:`Program` from a ``jax.stages.Traced`` lowered for ``platform``."""
    platform = check_platform(platform)
    return _program_from(
        _lower(traced, platform, name), name, platform=platform, traced=traced, fn=jitted,
        example_inputs=specs, notes=notes,
    )  # fmt: skip


def _arg_specs(traced: Any) -> tuple[Any, ...] | None:
    """The positional inputs of a ``jax.stages.Traced`` as ShapeDtypeStructs (``None``: unknown)."""
    try:
        args, kwargs = traced.args_info
        if kwargs:
            return None
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tuple(args))
    except Exception:
        return None
