"""Tracing a JAX function (or reading StableHLO text) into a :class:`Program`."""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from perfjax._errors import StableHLOParseError
from perfjax.lowering._types import TensorType


def _ir():
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir import ir

    return mlir, ir


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
            raise StableHLOParseError(
                "could not parse the StableHLO module: "
                + diag.replace("\n", " ")[:2000]
                + "\nExpected MLIR text such as the output of jax.jit(f).lower(...).as_text()."
            ) from None
    return ctx, module


def _leaf_spec(path: str, x: Any) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype)
    if isinstance(x, (bool, int, float, complex)):
        arr = np.asarray(x)
        return jax.ShapeDtypeStruct(arr.shape, jax.dtypes.canonicalize_dtype(arr.dtype))
    raise TypeError(
        f"inputs{path}: expected an array, a Python number or a jax.ShapeDtypeStruct, got "
        f"{type(x).__name__} ({x!r:.60}). Wrap arrays in a tuple of positional arguments: "
        "inputs=(x, w)."
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


def _fn_name(fn: Callable) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


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


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A tensor program at every stage: jaxpr, StableHLO, and XLA's optimized HLO for this CPU.

    Build one with :func:`perfjax.trace` or :meth:`Program.from_stablehlo`.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> p = perfjax.trace(lambda x: jnp.tanh(x) * 2, (jnp.ones(4),))
      >>> "stablehlo.tanh" in p.stablehlo
      True
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

    # ---- construction ---------------------------------------------------------------------

    @staticmethod
    def from_stablehlo(text_or_path: str | os.PathLike) -> Program:
        """Reads a StableHLO module from text or from a ``.mlir`` file (any framework's export).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> text = jax.jit(lambda x: x + 1).lower(jnp.ones(3)).as_text()
          >>> Program.from_stablehlo(text).in_types[0].shape
          (3,)
        """
        if isinstance(text_or_path, os.PathLike) or (
            isinstance(text_or_path, str)
            and "\n" not in text_or_path
            and text_or_path.strip().endswith((".mlir", ".txt", ".stablehlo"))
        ):
            path = pathlib.Path(text_or_path)
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
        return Program(
            name=name,
            stablehlo=text,
            jaxpr=None,
            in_types=ins,
            out_types=outs,
            stablehlo_debug=text,
        )

    # ---- stages ---------------------------------------------------------------------------

    @functools.cached_property
    def compiled(self) -> Any:
        """XLA's executable for this CPU (compiled once, then cached)."""
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
        """XLA's optimized HLO module for this machine's CPU (after fusion and layout passes)."""
        c = self.compiled
        if hasattr(c, "as_text"):
            return c.as_text()
        return c.hlo_modules()[0].to_string()

    def cost_analysis(self) -> dict[str, float]:
        """XLA's own ``HloCostAnalysis`` of the compiled module (flops, bytes accessed ...)."""
        c = self.compiled
        ca = c.cost_analysis()
        if isinstance(ca, list):
            ca = ca[0] if ca else {}
        return dict(ca or {})

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes the StableHLO to ``path`` (``.mlir``); a path without that suffix is a folder that
        receives ``program.mlir``, ``program.jaxpr`` and ``program.hlo``.

        Example:
          >>> import tempfile, jax.numpy as jnp, perfjax
          >>> p = perfjax.trace(lambda x: x + 1, (jnp.ones(2),))
          >>> out = p.save(tempfile.mkdtemp() + "/f.mlir")
          >>> Program.from_stablehlo(out).in_types == p.in_types
          True
        """
        path = pathlib.Path(path)
        if path.suffix == ".mlir":
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, self.stablehlo)
            return path
        path.mkdir(parents=True, exist_ok=True)
        _atomic_write(path / "program.mlir", self.stablehlo)
        if self.jaxpr is not None:
            _atomic_write(path / "program.jaxpr", self.jaxpr)
        _atomic_write(path / "program.hlo", self.hlo)
        return path

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.in_types))
        outs = ", ".join(map(str, self.out_types))
        return f"Program {self.name}({ins}) -> ({outs})"


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def trace(fn: Callable | Program, inputs: Sequence[Any] | None = None) -> Program:
    """Traces ``fn`` on ``inputs`` and lowers it to StableHLO (nothing is allocated or run).

    Args:
      fn: a JAX-traceable function (plain, jitted, or using Flash ops), or a ``Program``
        (returned as is).
      inputs: tuple of positional arguments: pytrees of arrays or ``jax.ShapeDtypeStruct``.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((8, 16), jnp.float32)
      >>> p = perfjax.trace(lambda x: perfjax.ops.relu(x), (x,))
      >>> "flash.relu" in p.jaxpr and "@flash.relu" in p.stablehlo
      True
    """
    if isinstance(fn, Program):
        return fn
    if not callable(fn):
        raise TypeError(f"trace expects a callable or a Program, got {type(fn).__name__}.")
    inputs = check_inputs(inputs)
    specs = abstractify(inputs)
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    traced = jitted.trace(*specs)
    lowered = traced.lower()
    text = lowered.as_text()
    debug = lowered.as_text(debug_info=True)
    ctx, module = parse_module(text)
    with ctx:
        ins, outs, _ = _main_signature(module)
    return Program(
        name=_fn_name(fn),
        stablehlo=text,
        jaxpr=str(traced.jaxpr),
        in_types=ins,
        out_types=outs,
        stablehlo_debug=debug,
        fn=jitted,
        example_inputs=specs,
        lowered=lowered,
    )
