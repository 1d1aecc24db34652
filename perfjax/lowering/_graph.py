"""Walking a StableHLO module into a costed :class:`Graph` of ops."""

from __future__ import annotations

import collections
import dataclasses
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jax._src.lib.mlir import ir
from jax._src.lib.mlir.dialects import hlo

from perfjax._display import graph_tables, render
from perfjax._errors import UnsupportedOpError, UnsupportedProgramError
from perfjax.lowering import _rules
from perfjax.lowering._program import Program, parse_module, trace
from perfjax.lowering._rules import TERMINATORS as _TERMINATORS
from perfjax.lowering._rules import Cost
from perfjax.lowering._types import TensorType
from perfjax.ops._kernel import KERNEL_SCOPE, KERNEL_SCOPE_RE

_FLASH_RE = re.compile(r"(flash\.[A-Za-z0-9]+(?:_[A-Za-z][A-Za-z0-9]*)*)")
_LOC_NAME_RE = re.compile(r'loc\((?:callsite\()?"([^"]*)"')
_LOC_FILE_RE = re.compile(r'"([^"]+\.py)":(\d+)')

# Constant folding, as XLA's HloConstantFolding pass does it: an op whose operands are all
# constants (``stablehlo.constant`` or the results of folded ops) is evaluated at compile time.
# XLA does not fold iota (or anything computed from one: cheaper at run time), ops with side
# effects or randomness, custom calls, collectives, FFTs, or results/operands of more than 45M
# elements (``kMaximumConstantSizeElements``).
_NEVER_FOLDED = {
    "stablehlo.iota", "stablehlo.rng", "stablehlo.rng_bit_generator", "stablehlo.custom_call",
    "stablehlo.fft", "stablehlo.all_reduce", "stablehlo.all_gather", "stablehlo.reduce_scatter",
    "stablehlo.all_to_all", "stablehlo.collective_permute", "stablehlo.collective_broadcast",
    "stablehlo.send", "stablehlo.recv", "stablehlo.infeed", "stablehlo.outfeed",
    "stablehlo.after_all", "stablehlo.create_token", "stablehlo.optimization_barrier",
    "stablehlo.partition_id", "stablehlo.replica_id", "stablehlo.get_dimension_size",
}  # fmt: skip
_FOLD_MAX_ELEMENTS = 45_000_000


@dataclasses.dataclass(frozen=True)
class Op:
    """One StableHLO op with its counts (per execution) and where it came from."""

    index: int
    #: StableHLO op name, e.g. ``stablehlo.dot_general``.
    name: str
    operands: tuple[TensorType, ...]
    results: tuple[TensorType, ...]
    #: Indices of the ops producing this op's operands (graph inputs are not ops).
    inputs: tuple[int, ...]
    #: Per operand: producing op index (>= 0), program input ``k`` as ``-2 - k``, or -1 (unknown).
    sources: tuple[int, ...]
    #: The Flash op this op belongs to (``flash.matmul``), or ``None``.
    origin: str | None
    #: JAX name scope from the source location (``jit(f)/dot_general``), or the call path.
    scope: str
    #: ``file.py:line`` of the Python source, when the module carries locations.
    source: str
    #: How many times the op runs per program execution (loop trip counts; 0 = untaken branch).
    executions: int
    flops: float
    transcendentals: float
    bytes_read: float
    bytes_written: float
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    #: False when no cost rule exists (only with ``on_unsupported="warn"``); counts are then 0.
    modeled: bool = True
    #: Which call of a Flash op this op belongs to (numbered in program order; -1 outside any):
    #: the ops of one ``flash.gelu`` call share it, two calls differ.
    call: int = -1

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, flops per byte moved (unfused)."""
        return self.flops / self.bytes if self.bytes else math.inf if self.flops else 0.0

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Loop:
    """One ``stablehlo.while`` as flattened into a graph's op list.

    Its condition's ops are ``ops[start:body]``, its body's ``ops[body:end]``. Per carried value:
    the producer of its initial value (``inits``) and of the value the body returns
    (``results``, the loop's result), as in :attr:`Op.sources` (a body that passes a value through
    unchanged returns its initial producer).
    """

    start: int
    body: int
    end: int
    inits: tuple[int, ...]
    results: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Graph:
    """The costed op graph of a program. Totals include loop trip counts.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> g = perfjax.analyze(lambda a, b: perfjax.ops.matmul(a, b), (jnp.ones((4, 8)), jnp.ones((8, 2))))
      >>> g.flops  # 2·M·N·K
      128.0
    """

    name: str
    ops: tuple[Op, ...]
    in_types: tuple[TensorType, ...]
    out_types: tuple[TensorType, ...]
    #: Producer of each program output: op index, or ``-2 - k`` when it is program input ``k``.
    outputs: tuple[int, ...]
    #: ``(op name, location)`` of ops without a cost rule (only with ``on_unsupported="warn"``).
    unmodeled_ops: tuple[tuple[str, str], ...] = ()
    #: Things the reader must know about the counts (e.g. a loop whose trip count is unknown).
    notes: tuple[str, ...] = ()
    #: The trip count given for loops whose count is not static (``loop_trips=``), and how many
    #: while loops it was applied to.
    loop_trips: int | None = None
    assumed_loops: int = 0
    #: The while loops, in program order (for buffer liveness: what a loop carries stays live).
    loops: tuple[Loop, ...] = ()

    # ---- totals ---------------------------------------------------------------------------

    def _total(self, field: str) -> float:
        return float(sum(getattr(o, field) * o.executions for o in self.ops))

    @property
    def flops(self) -> float:
        return self._total("flops")

    @property
    def transcendentals(self) -> float:
        return self._total("transcendentals")

    @property
    def bytes_read(self) -> float:
        return self._total("bytes_read")

    @property
    def bytes_written(self) -> float:
        return self._total("bytes_written")

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Flops per byte, unfused (a lower bound on what a fusing compiler achieves)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.in_types)

    # ---- structure ------------------------------------------------------------------------

    def levels(self) -> tuple[int, ...]:
        """ASAP level of each op: 0 for ops that depend only on inputs."""
        level: list[int] = []
        for op in self.ops:
            level.append(1 + max((level[i] for i in op.inputs), default=-1))
        return tuple(level)

    def stages(self) -> list[list[int]]:
        """Ops grouped by ASAP level: ops in one stage have no dependency between them."""
        groups: dict[int, list[int]] = collections.defaultdict(list)
        for i, lv in enumerate(self.levels()):
            groups[lv].append(i)
        return [groups[k] for k in sorted(groups)]

    def critical_path(self, weight: str | Callable[[Op], float] = "flops") -> list[int]:
        """The heaviest dependency chain, as op indices.

        Args:
          weight: ``"flops"`` (flops + transcendentals), ``"bytes"``, ``"ops"`` (each op counts 1)
            or a function of an :class:`Op`.
        """
        if callable(weight):
            w = weight
        elif weight == "flops":
            w = lambda o: (o.flops + o.transcendentals) * o.executions
        elif weight == "bytes":
            w = lambda o: o.bytes * o.executions
        elif weight == "ops":
            w = lambda o: 1.0
        else:
            raise ValueError(
                f"unknown weight {weight!r}; expected one of 'flops', 'bytes', 'ops' or a callable."
            )
        best: list[float] = []
        prev: list[int] = []
        for op in self.ops:
            p = max(op.inputs, key=lambda i: best[i], default=-1)
            best.append(w(op) + (best[p] if p >= 0 else 0.0))
            prev.append(p)
        if not best:
            return []
        i = max(range(len(best)), key=best.__getitem__)
        path = []
        while i >= 0:
            path.append(i)
            i = prev[i]
        return path[::-1]

    def by_origin(self) -> dict[str, Cost]:
        """Totals per Flash op (``"(other)"`` for ops outside Flash ops)."""
        out: dict[str, Cost] = collections.defaultdict(Cost)
        for o in self.ops:
            c = Cost(o.flops, o.transcendentals, o.bytes_read, o.bytes_written).scale(o.executions)
            out[o.origin or "(other)"] = out[o.origin or "(other)"] + c
        return dict(out)

    # ---- conversions ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            flops=self.flops,
            transcendentals=self.transcendentals,
            bytes_read=self.bytes_read,
            bytes_written=self.bytes_written,
            intensity_flops_per_byte=self.intensity,
            num_ops=len(self.ops),
            num_stages=len(self.stages()),
            critical_path_ops=len(self.critical_path()),
            unmodeled_ops=[list(u) for u in self.unmodeled_ops],
            notes=list(self.notes),
            loop_trips=self.loop_trips,
            assumed_loops=self.assumed_loops,
        )

    def to_dataframe(self):
        """One row per op: name, origin, shapes, executions and counts (needs pandas)."""
        import pandas as pd

        levels = self.levels()
        rows = [
            dict(
                index=o.index,
                op=o.short_name,
                origin=o.origin or "",
                scope=o.scope,
                stage=levels[o.index],
                operands=" ".join(map(str, o.operands)),
                results=" ".join(map(str, o.results)),
                executions=o.executions,
                flops=o.flops * o.executions,
                transcendentals=o.transcendentals * o.executions,
                bytes_read=o.bytes_read * o.executions,
                bytes_written=o.bytes_written * o.executions,
                intensity=o.intensity,
                modeled=o.modeled,
            )
            for o in self.ops
        ]
        return pd.DataFrame(rows).set_index("index") if rows else pd.DataFrame()

    def table(self, max_rows: int = 40):
        """A ``rich`` table: totals per Flash op, then the heaviest ops."""

        return graph_tables(self, max_rows=max_rows)

    def __str__(self) -> str:

        return render(self.table())

    def __repr__(self) -> str:
        return (
            f"Graph({self.name!r}, ops={len(self.ops)}, flops={self.flops:.4g}, "
            f"transcendentals={self.transcendentals:.4g}, bytes={self.bytes:.4g})"
        )


# ---------------------------------------------------------------------------------------------
# the walker
# ---------------------------------------------------------------------------------------------


class _View(_rules.MlirOpView):
    """An :class:`perfjax.lowering._rules.OpView` over an MLIR operation of the program."""

    __slots__ = ()

    def __init__(self, op, name: str, location: str):
        super().__init__(op, location, name)

    def region_cost(self, index: int) -> Cost:
        regions = self._op.regions
        if index >= len(regions):
            raise ValueError(f"{self.name} at {self.location} has no region {index}")
        total = Cost()
        for block in regions[index].blocks:
            for inner in block.operations:
                name = inner.operation.name
                if name in _TERMINATORS:
                    continue
                rule = _rules.lookup(name)
                if rule is None:
                    raise UnsupportedOpError(
                        f"no cost rule for {name!r} inside the body of {self.name} at {self.location}",
                        [(name, self.location)],
                    )
                c = rule(_View(inner.operation, name, self.location))
                total = total + Cost(c.flops, c.transcendentals)
        return total


def _location(op) -> tuple[str, str]:
    text = str(op.location)
    m = _LOC_NAME_RE.search(text)
    scope = m.group(1) if m else ""
    f = _LOC_FILE_RE.search(text)
    source = f"{f.group(1).rsplit('/', 1)[-1]}:{f.group(2)}" if f else ""
    return scope, source


def _int_constant(op) -> int | None:
    """The value of an integer (not boolean) constant splat, else None."""
    if op is None or op.name != "stablehlo.constant":
        return None
    value = op.attributes["value"]
    if not isinstance(value, ir.DenseIntElementsAttr) or not value.is_splat:
        return None
    splat = value.get_splat_value()
    return splat.value if isinstance(splat, ir.IntegerAttr) else None


class _Walker:
    def __init__(
        self, module, on_unsupported: str, count_loop_trips: bool, loop_trips: int | None = None
    ):
        self.funcs: dict[str, Any] = {}
        for op in module.body.operations:
            if op.operation.name == "func.func":
                self.funcs[ir.StringAttr(op.attributes["sym_name"]).value] = op
        self.on_unsupported = on_unsupported
        self.count_loop_trips = count_loop_trips
        self.ops: list[Op] = []
        self.unsupported: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.loop_trips = loop_trips
        #: While loops whose trip count came from ``loop_trips``.
        self.assumed_loops = 0
        self.loops: list[Loop] = []
        #: MLIR values known at compile time (constants and the results of folded ops).
        self.const_values: set = set()
        #: The values the last walked block returned (to tell whether a call's results are constant).
        self.returned: list = []
        self.call_depth = 0
        #: The ``fused_kernel`` region a call was made from: ops of the called function carry
        #: only their own names, so they are placed in the caller's region.
        self.kernel_prefix: str | None = None
        #: Whether the module has fused_kernel regions at all (else no location is parsed).
        self.kernel_regions = False
        # The Flash-op call being walked (-1: none) and how many have started.
        self.flash_call = -1
        self.flash_calls = 0

    # Values are mapped to the index of the op producing them (-1: a program input).
    def walk_block(
        self, block, env: collections.ChainMap, origin: str | None, path: str, executions: int
    ) -> list[int]:
        """Walks the ops of ``block``; returns the producers of its terminator's operands."""
        for op in block.operations:
            name = op.operation.name
            if name in _TERMINATORS:
                self.returned = list(op.operands)
                return [env.get(v, -1) for v in op.operands]
            if name in ("func.call", "call"):
                self._call(op, env, origin, path, executions)
            elif name == "stablehlo.composite":
                self._composite(op, env, origin, path, executions)
            elif name == "stablehlo.while":
                self._while(op, env, origin, path, executions)
            elif name in ("stablehlo.case", "stablehlo.if"):
                self._case(op, env, origin, path, executions)
            else:
                self._leaf(op, env, origin, path, executions)
        self.returned = []
        return []

    def _leaf(self, op, env, origin, path, executions) -> None:
        name = op.operation.name
        scope, source = _location(op)
        view = _View(op.operation, name, source or scope or path)
        key = name
        if name == "stablehlo.custom_call":
            target = ir.StringAttr(op.attributes["call_target_name"]).value
            key = f"{name}@{target}"
        rule = _rules.lookup(key)
        modeled = rule is not None
        if rule is None:
            self.unsupported.append((key, source or scope or path))
            cost = Cost()
        else:
            try:
                cost = rule(view)
            except UnsupportedOpError as e:
                self.unsupported.extend(e.ops)
                cost, modeled = Cost(), False
            except (ValueError, KeyError, IndexError, ZeroDivisionError) as e:
                raise UnsupportedProgramError(
                    f"cost rule for {key} failed at {source or scope}: {e}"
                ) from e
        features = dict(cost.features)
        folded = self._folds(op, name, view)
        if folded:
            cost = Cost()
            features["folded"] = True
        elif self._identity(op, name):
            # x + 0, x - 0, x * 1: XLA's algebraic simplifier returns x (no work).
            cost = Cost()
            features["simplified"] = True
        sources = tuple(env.get(v, -1) for v in op.operands)
        inputs = tuple(dict.fromkeys(i for i in sources if i >= 0))
        index = len(self.ops)
        self.ops.append(
            Op(
                index=index,
                name=key,
                operands=view.operands,
                results=view.results,
                inputs=inputs,
                sources=sources,
                origin=origin,
                scope=self._in_region(scope or path),
                source=source,
                executions=executions,
                flops=cost.flops,
                transcendentals=cost.transcendentals,
                bytes_read=cost.bytes_read,
                bytes_written=cost.bytes_written,
                features=features,
                modeled=modeled,
                call=self.flash_call,
            )
        )
        for r in op.results:
            env[r] = index
        if folded or name == "stablehlo.constant":
            self.const_values.update(op.results)

    def _splat(self, value) -> float | None:
        """The value of a constant splat (through broadcasts, reshapes and converts), else None."""
        for _ in range(8):
            owner = value.owner
            if isinstance(owner, ir.Block) or not hasattr(owner, "name"):
                return None
            if owner.name in (
                "stablehlo.broadcast_in_dim",
                "stablehlo.reshape",
                "stablehlo.convert",
            ):
                value = owner.operands[0]
                continue
            if owner.name != "stablehlo.constant":
                return None
            try:
                dense = ir.DenseElementsAttr(owner.attributes["value"])
                if not dense.is_splat:
                    return None
                v = dense.get_splat_value()
                if isinstance(v, (ir.FloatAttr, ir.IntegerAttr)):
                    return float(v.value)
                return None
            except (ValueError, TypeError):
                return None
        return None

    def _identity(self, op, name: str) -> bool:
        """Whether ``op`` is ``x + 0``, ``x - 0`` or ``x * 1`` of the same type as x (XLA's
        unoptimized cost analysis already drops these; it keeps ``x / 1``)."""
        neutral = {"stablehlo.add": (0.0, (0, 1)), "stablehlo.subtract": (0.0, (1,)),
                   "stablehlo.multiply": (1.0, (0, 1))}.get(name)  # fmt: skip
        if neutral is None or len(op.operands) != 2:
            return False
        value, positions = neutral
        for k in positions:
            other = op.operands[1 - k]
            if other.type == op.results[0].type and self._splat(op.operands[k]) == value:
                return True
        return False

    def _folds(self, op, name: str, view: _View) -> bool:
        """Whether XLA evaluates ``op`` at compile time (every operand a constant)."""
        if name in _NEVER_FOLDED or name == "stablehlo.constant" or not len(op.operands):
            return False
        if not all(v in self.const_values for v in op.operands):
            return False
        sizes = [t.size for t in view.operands + view.results]
        return max(sizes, default=0) <= _FOLD_MAX_ELEMENTS

    def _enter(self, callee: str, env, op, origin, path, executions) -> list[int]:
        if callee not in self.funcs:
            raise UnsupportedProgramError(f"call to unknown function @{callee}")
        self.call_depth += 1
        if self.call_depth > 200:
            raise UnsupportedProgramError(
                f"calls nested deeper than 200 (recursion through @{callee}?)"
            )
        fn = self.funcs[callee]
        block = fn.regions[0].blocks[0]
        inner = collections.ChainMap(
            {a: env.get(v, -1) for a, v in zip(block.arguments, op.operands, strict=True)}
        )
        self.const_values.update(
            a for a, v in zip(block.arguments, op.operands, strict=True) if v in self.const_values
        )
        m = _FLASH_RE.match(callee)
        new_origin = origin or (m.group(1) if m else None)
        if new_origin and re.search(r"_\d+$", new_origin):
            new_origin = re.sub(r"_\d+$", "", new_origin)
        outer_call, outer_region = self.flash_call, self.kernel_prefix
        if origin is None and new_origin is not None:  # the outermost Flash op of this call
            self.flash_call, self.flash_calls = self.flash_calls, self.flash_calls + 1
        if self.kernel_prefix is None and self.kernel_regions:
            region = KERNEL_SCOPE_RE.match(_location(op)[0])
            self.kernel_prefix = region.group(1) if region else None
        outs = self.walk_block(block, inner, new_origin, f"{path}/{callee}", executions)
        returned = self.returned
        self.flash_call, self.kernel_prefix = outer_call, outer_region
        self.call_depth -= 1
        for r, producer in zip(op.results, outs, strict=False):
            env[r] = producer
        self.const_values.update(
            r for r, v in zip(op.results, returned, strict=False) if v in self.const_values
        )
        return outs

    def _in_region(self, scope: str) -> str:
        if self.kernel_prefix is None or KERNEL_SCOPE in scope:
            return scope
        return f"{self.kernel_prefix}/{scope}"

    def _call(self, op, env, origin, path, executions) -> None:
        callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
        self._enter(callee, env, op, origin, path, executions)

    def _composite(self, op, env, origin, path, executions) -> None:
        callee = ir.FlatSymbolRefAttr(op.attributes["decomposition"]).value
        self._enter(callee, env, op, origin, path, executions)

    def _while(self, op, env, origin, path, executions) -> None:
        cond, body = op.regions[0].blocks[0], op.regions[1].blocks[0]
        trips = self._trip_count(op, env)
        scope, source = _location(op)
        if trips is None and self.loop_trips is not None:
            trips = self.loop_trips
            self.assumed_loops += 1
        elif trips is None:
            self.notes.append(
                f"while loop at {source or scope or path}: trip count not static; its body is "
                "counted once (state the count with loop_trips=N)"
            )
            trips = 1
        if not self.count_loop_trips:
            trips = 1
        start, inits = len(self.ops), tuple(env.get(v, -1) for v in op.operands)
        cond_env = env.new_child(
            {a: env.get(v, -1) for a, v in zip(cond.arguments, op.operands, strict=True)}
        )
        self.walk_block(
            cond,
            cond_env,
            origin,
            f"{path}/while.cond",
            executions * (trips + 1 if self.count_loop_trips else 1),
        )
        body_env = env.new_child(
            {a: env.get(v, -1) for a, v in zip(body.arguments, op.operands, strict=True)}
        )
        body_start = len(self.ops)
        outs = self.walk_block(body, body_env, origin, f"{path}/while.body", executions * trips)
        self.loops.append(Loop(start, body_start, len(self.ops), inits, tuple(outs)))
        for r, producer in zip(op.results, outs, strict=False):
            env[r] = producer

    def _trip_count(self, op, env) -> int | None:
        """Static trip count of a counted loop (``for i in range(a, b, step)``), else ``None``."""
        try:
            cond, body = op.regions[0].blocks[0], op.regions[1].blocks[0]
            term = list(cond.operations)[-1]
            cmp = term.operands[0].owner
            if cmp.name != "stablehlo.compare":
                return None
            direction = hlo.ComparisonDirectionAttr(cmp.attributes["comparison_direction"]).value
            cond_args = list(cond.arguments)

            def resolve(v, region_args, depth=0) -> int | None:
                if depth > 5:
                    return None
                owner = v.owner
                if isinstance(owner, ir.Block) or not hasattr(owner, "name"):
                    # A block argument of the loop region: the loop operand at that position, if the
                    # body passes it through unchanged.
                    for k, a in enumerate(region_args):
                        if a == v:
                            body_ret = list(body.operations)[-1].operands[k]
                            if body_ret != list(body.arguments)[k]:
                                return None
                            return resolve(op.operands[k], [], depth + 1)
                    return None
                return _int_constant(owner)

            lhs, rhs = cmp.operands
            idx = next((k for k, a in enumerate(cond_args) if a == lhs), None)
            if idx is None:
                return None
            limit = resolve(rhs, cond_args)
            start = resolve(op.operands[idx], [])
            step_op = list(body.operations)[-1].operands[idx].owner
            if (
                start is None
                or limit is None
                or not hasattr(step_op, "name")
                or step_op.name != "stablehlo.add"
            ):
                return None
            a, b = step_op.operands
            counter = list(body.arguments)[idx]
            other = b if a == counter else a if b == counter else None
            if other is None or isinstance(other.owner, ir.Block):
                return None
            step = _int_constant(other.owner)
            if not step:
                return None
            span = limit - start
            if direction == "LT" and step > 0:
                return max(0, -(-span // step))
            if direction == "LE" and step > 0:
                return max(0, span // step + 1)
            if direction == "GT" and step < 0:
                return max(0, -(-span // step))
            if direction == "NE" and span % step == 0:
                return max(0, span // step)
            return None
        except Exception:  # any unexpected shape of loop: unknown trip count, reported in notes
            return None

    def _case(self, op, env, origin, path, executions) -> None:
        # XLA costs a conditional as its most expensive branch; the others are kept with 0 executions.
        spans, outs_per_branch = [], []
        for k, region in enumerate(op.regions):
            start = len(self.ops)
            outs = self.walk_block(
                region.blocks[0], env.new_child(), origin, f"{path}/branch{k}", executions
            )
            spans.append((start, len(self.ops)))
            outs_per_branch.append(outs)

        def weight(span):
            ops = self.ops[span[0] : span[1]]
            return (sum(o.flops + o.transcendentals for o in ops), sum(o.bytes for o in ops))

        best = max(range(len(spans)), key=lambda k: weight(spans[k]))
        for k, (s, e) in enumerate(spans):
            if k != best:
                for i in range(s, e):
                    self.ops[i] = dataclasses.replace(self.ops[i], executions=0)
        for r, producer in zip(op.results, outs_per_branch[best], strict=False):
            env[r] = producer


def build_graph(
    program: Program,
    *,
    on_unsupported: str = "error",
    count_loop_trips: bool = True,
    loop_trips: int | None = None,
) -> Graph:
    """Walks ``program``'s StableHLO into a :class:`Graph` (see :func:`analyze`).

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> build_graph(perfjax.trace(lambda x: x * 2, (jnp.ones(8),))).flops
      8.0
    """
    if on_unsupported not in ("error", "warn"):
        raise ValueError(f"on_unsupported must be 'error' or 'warn', got {on_unsupported!r}.")
    loop_trips = check_loop_trips(loop_trips)
    text = program.stablehlo_debug or program.stablehlo
    ctx, module = parse_module(text)
    with ctx:
        walker = _Walker(module, on_unsupported, count_loop_trips, loop_trips)
        walker.kernel_regions = KERNEL_SCOPE in text
        entry = "main" if "main" in walker.funcs else next(iter(walker.funcs))
        block = walker.funcs[entry].regions[0].blocks[0]
        env: collections.ChainMap = collections.ChainMap(
            {a: -2 - k for k, a in enumerate(block.arguments)}
        )
        outs = walker.walk_block(block, env, None, entry, 1)
    if walker.unsupported:
        counts = collections.Counter(n for n, _ in walker.unsupported)
        first = {}
        for n, loc in walker.unsupported:
            first.setdefault(n, loc)
        listing = "; ".join(f"{n} (x{c}, first at {first[n] or '?'})" for n, c in counts.items())
        if on_unsupported == "error":
            raise UnsupportedOpError(
                f"no cost rule for {len(counts)} StableHLO op kind(s): {listing}. Register one with "
                "perfjax.lowering.register_cost_rule, or pass on_unsupported='warn' to list them "
                "in Graph.unmodeled_ops instead (their counts are then missing from the totals).",
                walker.unsupported,
            )
        warnings.warn(f"ops without a cost rule (not counted): {listing}", stacklevel=3)
    return Graph(
        name=program.name,
        ops=tuple(walker.ops),
        in_types=program.in_types,
        out_types=program.out_types,
        outputs=tuple(outs),
        unmodeled_ops=tuple(walker.unsupported),
        notes=tuple(walker.notes),
        loop_trips=loop_trips if walker.assumed_loops else None,
        assumed_loops=walker.assumed_loops,
        loops=tuple(sorted(walker.loops, key=lambda lp: lp.start)),
    )


def check_loop_trips(loop_trips: Any) -> int | None:
    """``loop_trips`` validated: ``None`` or an integer >= 0."""
    if loop_trips is None:
        return None
    if isinstance(loop_trips, bool) or not isinstance(loop_trips, numbers.Integral):
        raise TypeError(
            f"loop_trips must be an integer (the trip count of every while loop whose count is not "
            f"static) or None, got {type(loop_trips).__name__} ({loop_trips!r})."
        )
    if loop_trips < 0:
        raise ValueError(f"loop_trips must be >= 0, got {loop_trips}.")
    return int(loop_trips)


def analyze(
    fn_or_program: Callable | Program | str,
    inputs: Sequence[Any] | None = None,
    *,
    on_unsupported: str = "error",
    count_loop_trips: bool = True,
    loop_trips: int | None = None,
    platform: str | None = None,
) -> Graph:
    """Exact operation counts of a program: per op, per Flash op, and in total.

    Args:
      fn_or_program: a JAX function, a :class:`Program`, a ``jax.stages.Traced`` or
        ``jax.stages.Lowered``, or StableHLO text / a ``.mlir`` path / a folder from
        :meth:`Program.save`.
      inputs: positional arguments (arrays or ``jax.ShapeDtypeStruct``) when a function is given.
      on_unsupported: ``"error"`` (default) raises :class:`UnsupportedOpError` listing ops that
        have no cost rule; ``"warn"`` warns and lists them in ``Graph.unmodeled_ops``.
      count_loop_trips: multiply loop bodies by their static trip count (``False`` counts each
        body once, as XLA's ``cost_analysis`` does).
      loop_trips: the trip count of every while loop whose count is not static (e.g. bounded by
        a traced argument); ``None`` counts such a body once and says so in ``Graph.notes``.
      platform: lower for ``"cpu"`` (default), ``"cuda"``, ``"rocm"`` or ``"tpu"`` (see
        :func:`perfjax.trace`); a program read from text is used as is.

    Ops whose operands are all compile-time constants are folded as XLA folds them: they are
    kept (``features["folded"]``) with zero counts.

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> g = perfjax.analyze(lambda x: jnp.exp(x) + 1, (jnp.ones((10, 10)),))
      >>> g.flops, g.transcendentals
      (100.0, 100.0)
    """
    if isinstance(fn_or_program, (str, os.PathLike)):
        program = Program.from_stablehlo(fn_or_program)
    elif isinstance(fn_or_program, Program):
        program = fn_or_program
        if platform is not None and program.traced is not None:
            program = program.for_platform(platform)
    else:
        program = trace(fn_or_program, inputs, platform=platform)
    return build_graph(
        program,
        on_unsupported=on_unsupported,
        count_loop_trips=count_loop_trips,
        loop_trips=loop_trips,
    )
