"""One registry of cost rules, keyed by StableHLO op name.

A rule receives an :class:`OpView` (the op's operand/result types, attributes and a way to cost its
scalar body regions) and returns a :class:`Cost`. Counts follow XLA's ``HloCostAnalysis``
conventions so that totals can be checked against ``compiled.cost_analysis()``:

* a fused multiply-add is 2 flops (``_FMA_FLOPS``);
* an elementwise op is 1 flop per result element, except transcendental ops, which count one
  *transcendental* per element and no flop;
* data movement (transpose, broadcast, slice, pad, ...) is 0 flops and costs only bytes.

Bytes are those an unfused op would move: operands read, results written. Fusion, which removes
intermediate traffic, is a property of the device, applied later by the device models.

Adding an op::

    @register_cost_rule("stablehlo.my_op")
    def _my_op(op: OpView) -> Cost:
        return Cost(flops=op.results[0].size, **op.io_bytes())
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from jax._src.interpreters import mlir as jax_mlir
from jax._src.lib.mlir import ir, passmanager
from jax._src.lib.mlir.dialects import chlo, hlo
from jaxlib.mlir._mlir_libs import _stablehlo

from perfjax._errors import UnsupportedOpError
from perfjax.lowering._types import _ELEMENT_NAMES, TensorType

#: One fused multiply-add counts as two floating-point operations (XLA's kFmaFlops).
_FMA_FLOPS = 2


@dataclasses.dataclass(frozen=True)
class Cost:
    """Operation counts of one op (or a sum of ops); adds like a monoid.

    Example:
      >>> (Cost(flops=2.0) + Cost(flops=3.0, bytes_read=4.0)).flops
      5.0
    """

    flops: float = 0.0
    transcendentals: float = 0.0
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    #: Op-specific features for device models (GEMM dims, conv window, ...); not summed.
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    @staticmethod
    def zeros() -> Cost:
        return Cost()

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.flops + other.flops,
            self.transcendentals + other.transcendentals,
            self.bytes_read + other.bytes_read,
            self.bytes_written + other.bytes_written,
        )

    def scale(self, k: float) -> Cost:
        return Cost(
            self.flops * k,
            self.transcendentals * k,
            self.bytes_read * k,
            self.bytes_written * k,
            self.features,
        )

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written


class OpView(Protocol):
    """What a cost rule may look at."""

    name: str
    operands: tuple[TensorType, ...]
    results: tuple[TensorType, ...]
    location: str

    def attr(self, name: str) -> Any:
        """The MLIR attribute ``name`` (``None`` if absent)."""

    def attr_str(self, name: str) -> str | None:
        """The attribute printed as MLIR text."""

    def region_cost(self, index: int) -> Cost:
        """Cost of one application of the scalar computation in region ``index``."""

    def region_ops(self, index: int) -> tuple[str, ...]:
        """Names of the ops in region ``index`` (terminators left out)."""

    def io_bytes(self) -> dict[str, float]:
        """``bytes_read`` = all operands, ``bytes_written`` = all results."""


class CostRule(Protocol):
    def __call__(self, op: OpView) -> Cost: ...


_RULES: dict[str, CostRule] = {}


def register_cost_rule(*names: str, overwrite: bool = False) -> Callable[[CostRule], CostRule]:
    """Registers ``rule`` for each StableHLO op name (``custom_call`` targets as ``name@target``).

    A second registration for the same name is refused unless ``overwrite=True``.

    Example:
      >>> @register_cost_rule("stablehlo.example_op_for_docs", overwrite=True)
      ... def _rule(op):
      ...     return Cost(**op.io_bytes())
      >>> "stablehlo.example_op_for_docs" in registered_ops()
      True
    """

    def wrap(rule: CostRule) -> CostRule:
        for name in names:
            if name in _RULES and not overwrite:
                raise ValueError(
                    f"a cost rule for {name!r} is already registered ({_RULES[name].__name__}); "
                    "pass overwrite=True to replace it."
                )
            _RULES[name] = rule
        return rule

    return wrap


def lookup(name: str) -> CostRule | None:
    """The rule for ``name``, or ``None``."""
    return _RULES.get(name)


def registered_ops() -> list[str]:
    """Sorted names of all ops that have a cost rule."""
    return sorted(_RULES)


# ---------------------------------------------------------------------------------------------
# attribute helpers
# ---------------------------------------------------------------------------------------------


def _int_attr(op: OpView, name: str, default: int) -> int:
    """An integer attribute (``3 : i64``), or ``default`` when the op has none."""
    attr = op.attr(name)
    return default if attr is None else ir.IntegerAttr(attr).value


def _bool_attr(op: OpView, name: str, default: bool) -> bool:
    """A boolean attribute (``true``), or ``default`` when the op has none."""
    attr = op.attr(name)
    return default if attr is None else ir.BoolAttr(attr).value


def _int_list(op: OpView, name: str) -> list[int]:
    """The integers of an ``array<i64: ...>`` or ``dense<...>`` attribute, row-major with a splat
    expanded (``[]`` when the op has none)."""
    attr = op.attr(name)
    if attr is None:
        return []
    if isinstance(attr, ir.DenseIntElementsAttr):
        return [int(v) for v in attr]
    return list(ir.DenseI64ArrayAttr(attr))


def _dense_ints(op: OpView, name: str, count: int, default: int) -> list[int]:
    """``count`` integers from an array/dense attribute, or ``count`` times ``default``."""
    if op.attr(name) is None:
        return [default] * count
    vals = _int_list(op, name)
    if len(vals) != count:
        raise ValueError(f"expected {count} integers in attribute {name}, found {len(vals)}")
    return vals


def _matrix_shape(op: OpView, name: str) -> tuple[int, int] | None:
    """``(rows, columns)`` of a 2-D ``dense<...> : tensor<R x C x i64>`` attribute, else None."""
    attr = op.attr(name)
    if not isinstance(attr, ir.DenseIntElementsAttr):
        return None
    shape = ir.ShapedType(attr.type).shape
    return (shape[0], shape[1]) if len(shape) == 2 else None


# ---------------------------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------------------------

# Counted as transcendentals, as XLA's HloCostAnalysis does.
_TRANSCENDENTAL = (
    "exponential exponential_minus_one log log_plus_one logistic power sqrt cbrt rsqrt tanh sine "
    "cosine tan atan2"
).split()
# One flop per result element. bitcast_convert is among them: XLA's HloCostAnalysis costs it as an
# elementwise unary op (1 flop per element), as it does convert.
_FLOP_ELEMENTWISE = (
    "abs add and bitcast_convert ceil clamp compare complex convert count_leading_zeros divide "
    "floor imag is_finite maximum minimum multiply negate not or popcnt real reduce_precision "
    "remainder round_nearest_afz round_nearest_even select shift_left shift_right_arithmetic "
    "shift_right_logical sign subtract xor"
).split()


# chlo.mulhi stays one HLO op (mulhi) through XLA's CHLO legalization: 1 flop per element.
@register_cost_rule(*(f"stablehlo.{n}" for n in _FLOP_ELEMENTWISE), "chlo.mulhi")
def _elementwise(op: OpView) -> Cost:
    # One flop per output element (N elements -> N flops).
    return Cost(flops=float(op.results[0].size), **op.io_bytes())


# chlo.erf stays one HLO op (kErf) through XLA's CHLO legalization, and XLA counts it as one
# transcendental; the generic CHLO expansion below would turn it into a polynomial instead.
@register_cost_rule(*(f"stablehlo.{n}" for n in _TRANSCENDENTAL), "chlo.erf")
def _transcendental(op: OpView) -> Cost:
    # One transcendental per output element, no flops (XLA keeps them apart).
    return Cost(transcendentals=float(op.results[0].size), **op.io_bytes())


# ---------------------------------------------------------------------------------------------
# CHLO elementwise ops: costed as the StableHLO XLA expands them into
# ---------------------------------------------------------------------------------------------
#
# XLA does not cost CHLO ops itself: it first legalizes them to HLO (lgamma becomes ~53 flops and
# 4 transcendentals per element, digamma ~73 + 3, erf_inv ~37 + 2 ...). perfjax does the same: it
# runs the `chlo-legalize-to-stablehlo` pass shipped in jaxlib on a one-op module with scalar
# operands of the op's element types, costs the resulting StableHLO with the rules of this
# registry, folds ops whose operands are all constants (as XLA's converter does), and memoises the
# per-element counts per (op, element types, attributes). The expansion depends on the element
# type (f64 erf_inv uses a longer polynomial than f32; bf16/f16 add converts).

# CHLO ops that are elementwise (results have the shape of the broadcast operands). chlo.erf is
# costed as one transcendental above.
_CHLO_EXPANDED = (
    "acos acosh asin asinh atan atanh bessel_i1e conj cosh digamma erf_inv erfc is_inf "
    "is_neg_inf is_pos_inf lgamma next_after polygamma sinh square tan zeta _asin_acos_kernel "
    "broadcast_add broadcast_and broadcast_atan2 broadcast_compare broadcast_complex "
    "broadcast_divide broadcast_maximum broadcast_minimum broadcast_multiply broadcast_next_after "
    "broadcast_or broadcast_polygamma broadcast_power broadcast_remainder broadcast_select "
    "broadcast_shift_left broadcast_shift_right_arithmetic broadcast_shift_right_logical "
    "broadcast_subtract broadcast_xor broadcast_zeta"
).split()
# Attributes that change an elementwise CHLO op's expansion (broadcast_dimensions does not: the
# expansion is costed on scalars).
_CHLO_ATTRS = ("comparison_direction", "compare_type")
_MLIR_ELEMENT = {v: k for k, v in _ELEMENT_NAMES.items()}
_CHLO_PASSES_REGISTERED = False


def _mlir_element(dtype: str) -> str:
    return _MLIR_ELEMENT.get(dtype, dtype)


#: Ops that end a region's block (no work of their own).
TERMINATORS = frozenset({"func.return", "stablehlo.return", "return", "sdy.return"})


class MlirOpView:
    """An :class:`OpView` over an operation of an expansion module (no source location)."""

    __slots__ = ("_op", "location", "name", "operands", "results")

    def __init__(self, op, location: str, name: str | None = None):
        self._op = op
        self.name = name or op.name
        self.location = location
        self.operands = tuple(TensorType.parse(str(v.type)) for v in op.operands)
        self.results = tuple(TensorType.parse(str(v.type)) for v in op.results)

    def attr(self, name: str) -> Any:
        attrs = self._op.attributes
        return attrs[name] if name in attrs else None

    def attr_str(self, name: str) -> str | None:
        a = self.attr(name)
        return None if a is None else str(a)

    def io_bytes(self) -> dict[str, float]:
        return dict(
            bytes_read=float(sum(t.nbytes for t in self.operands)),
            bytes_written=float(sum(t.nbytes for t in self.results)),
        )

    def region_cost(self, index: int) -> Cost:
        return _block_ops_cost(self._op.regions[index].blocks, self.location)

    def region_ops(self, index: int) -> tuple[str, ...]:
        regions = self._op.regions
        if index >= len(regions):
            return ()
        return tuple(
            inner.operation.name
            for block in regions[index].blocks
            for inner in block.operations
            if inner.operation.name not in TERMINATORS
        )


def _block_ops_cost(blocks, location: str) -> Cost:
    """Flops and transcendentals of the ops in ``blocks``, folding constant subexpressions."""
    total = Cost()
    constant = set()
    for block in blocks:
        for inner in block.operations:
            inner = inner.operation
            name = inner.name
            if name == "shape.assuming":
                # The dynamic-shape expansion (broadcast_select) wraps the work in a region.
                total = total + _block_ops_cost(inner.regions[0].blocks, location)
                continue
            if name in ("func.return", "stablehlo.return") or name.startswith(
                ("shape.", "tensor.", "arith.")
            ):
                # Shape arithmetic of the dynamic-shape expansion: no tensor work.
                constant.update(inner.results)
                continue
            if name == "stablehlo.constant" or (
                name != "stablehlo.bitcast_convert"
                and len(inner.operands) > 0
                and not len(inner.regions)
                and all(v in constant for v in inner.operands)
            ):
                # XLA's converter folds elementwise ops on constants (not bitcasts) before costing.
                constant.update(inner.results)
                continue
            rule = lookup(name)
            if rule is None:
                raise UnsupportedOpError(
                    f"no cost rule for {name!r} in the StableHLO expansion of a CHLO op at "
                    f"{location}",
                    [(name, location)],
                )
            c = rule(MlirOpView(inner, location))
            total = total + Cost(c.flops, c.transcendentals)
    return total


@functools.cache
def _chlo_per_element(
    name: str,
    operands: tuple[str, ...],
    results: tuple[str, ...],
    attrs: tuple[tuple[str, str], ...],
) -> tuple[float, float]:
    """(flops, transcendentals) per result element of a CHLO op with these element types."""
    global _CHLO_PASSES_REGISTERED
    if not _CHLO_PASSES_REGISTERED:
        _stablehlo.register_stablehlo_passes()
        _CHLO_PASSES_REGISTERED = True
    in_t = [f"tensor<{e}>" for e in operands]
    out_t = [f"tensor<{e}>" for e in results]
    args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(in_t))
    attr_text = ", ".join(f"{k} = {v}" for k, v in attrs)
    call = (
        f'"{name}"({", ".join(f"%a{i}" for i in range(len(in_t)))})'
        + (f" {{{attr_text}}}" if attr_text else "")
        + f" : ({', '.join(in_t)}) -> ({', '.join(out_t)})"
    )
    res = "%r" if len(out_t) == 1 else f"%r:{len(out_t)}"
    rets = "%r" if len(out_t) == 1 else ", ".join(f"%r#{i}" for i in range(len(out_t)))
    text = (
        f"func.func @main({args}) -> ({', '.join(out_t)}) {{\n  {res} = {call}\n"
        f"  func.return {rets} : {', '.join(out_t)}\n}}"
    )
    with jax_mlir.make_ir_context():
        module = ir.Module.parse(text)
        passmanager.PassManager.parse("builtin.module(func.func(chlo-legalize-to-stablehlo))").run(
            module.operation
        )
        func = next(iter(module.body.operations))
        cost = _block_ops_cost(func.regions[0].blocks, name)
    return cost.flops, cost.transcendentals


@register_cost_rule(*(f"chlo.{n}" for n in _CHLO_EXPANDED))
def _chlo_expanded(op: OpView) -> Cost:
    """A CHLO elementwise op: the per-element cost of XLA's expansion times the element count."""
    attrs = tuple((a, t) for a in _CHLO_ATTRS if (t := op.attr_str(a)) is not None)
    flops, trans = _chlo_per_element(
        op.name,
        tuple(_mlir_element(t.dtype) for t in op.operands),
        tuple(_mlir_element(t.dtype) for t in op.results),
        attrs,
    )
    n = float(op.results[0].size)
    return Cost(flops=flops * n, transcendentals=trans * n, **op.io_bytes())


# ---------------------------------------------------------------------------------------------
# data movement: 0 flops
# ---------------------------------------------------------------------------------------------


@register_cost_rule("stablehlo.transpose")
def _transpose(op: OpView) -> Cost:
    """Bytes only; ``minor_moved``: whether the permutation moves the minor (contiguous)
    dimension, size-1 dimensions ignored (a loop reading the result strides across rows)."""
    perm = _int_list(op, "permutation")
    shape = op.operands[0].shape if op.operands else ()
    kept = [d for d in perm if d < len(shape) and shape[d] != 1]
    minor_moved = bool(kept) and kept[-1] != max(kept)
    return Cost(**op.io_bytes(), features={"minor_moved": minor_moved})


@register_cost_rule(
    "stablehlo.broadcast_in_dim",
    "stablehlo.broadcast",
    "stablehlo.concatenate",
    "stablehlo.pad",
    "stablehlo.reverse",
    "stablehlo.copy",
)
def _movement(op: OpView) -> Cost:
    return Cost(**op.io_bytes())


@register_cost_rule("stablehlo.constant", "stablehlo.iota")
def _materialise(op: OpView) -> Cost:
    # Writes its result, reads nothing.
    return Cost(bytes_written=float(sum(r.nbytes for r in op.results)))


@register_cost_rule(
    "stablehlo.reshape",
    "stablehlo.get_tuple_element",
    "stablehlo.tuple",
    "stablehlo.optimization_barrier",
    "stablehlo.partition_id",
    "stablehlo.replica_id",
    "stablehlo.after_all",
    "stablehlo.create_token",
    "stablehlo.get_dimension_size",
    "chlo.constant_like",
    "stablehlo.custom_call@Sharding",
    "stablehlo.custom_call@SPMDFullToShardShape",
    "stablehlo.custom_call@SPMDShardToFullShape",
    "stablehlo.custom_call@annotate_device_placement",
    "sdy.sharding_constraint",
)
def _free(op: OpView) -> Cost:
    # Metadata only: a row-major reshape/bitcast is a relabelling, XLA emits no copy for it.
    return Cost()


@register_cost_rule("mhlo.copy")
def _copy(op: OpView) -> Cost:
    # XLA's copy (in modules converted from HLO, e.g. a partitioned program): reads and writes
    # its operand once.
    return Cost(**op.io_bytes())


@register_cost_rule("stablehlo.slice", "stablehlo.dynamic_slice", "stablehlo.gather")
def _read_part(op: OpView) -> Cost:
    # Reads only the elements it returns (plus any index operands), writes them once.
    out = float(sum(r.nbytes for r in op.results))
    indices = float(sum(t.nbytes for t in op.operands[1:]))
    return Cost(bytes_read=out + indices, bytes_written=out)


@register_cost_rule("stablehlo.dynamic_update_slice")
def _update_part(op: OpView) -> Cost:
    # In place: reads the update and the start indices, writes the update.
    update = float(op.operands[1].nbytes)
    indices = float(sum(t.nbytes for t in op.operands[2:]))
    return Cost(bytes_read=update + indices, bytes_written=update)


# ---------------------------------------------------------------------------------------------
# contractions
# ---------------------------------------------------------------------------------------------


def _gemm_features(
    op: OpView, batch: int, m: int, n: int, k: int,
    minor_contracted: tuple[bool, bool] = (True, False),
) -> dict:  # fmt: skip
    """What device models need of a contraction: its GEMM shape, precision and dtypes, and
    whether each operand is contracted over its minor (last) dimension (``a @ b``: lhs yes, rhs
    no)."""
    return dict(kind="gemm", batch=batch, m=m, n=n, k=k, precision=_precision(op),
                dtype=op.operands[0].dtype, out_dtype=op.results[0].dtype,
                lhs_minor_contracted=minor_contracted[0],
                rhs_minor_contracted=minor_contracted[1])  # fmt: skip


@register_cost_rule("stablehlo.dot_general")
def _dot_general(op: OpView) -> Cost:
    lhs, rhs = op.operands[0], op.operands[1]
    dims = hlo.DotDimensionNumbers(op.attr("dot_dimension_numbers"))
    lc, rc = dims.lhs_contracting_dimensions, dims.rhs_contracting_dimensions
    lb, rb = dims.lhs_batching_dimensions, dims.rhs_batching_dimensions
    k = math.prod(lhs.shape[d] for d in lc)
    batch = math.prod(lhs.shape[d] for d in lb)
    m = math.prod(s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb)
    n = math.prod(s for d, s in enumerate(rhs.shape) if d not in rc and d not in rb)
    # Each output element is a K-long dot product: K FMAs, 2K flops (B·M·N outputs).
    flops = _FMA_FLOPS * op.results[0].size * k
    features = _gemm_features(
        op, batch, m, n, k, (len(lhs.shape) - 1 in lc, len(rhs.shape) - 1 in rc)
    )
    features.update(
        lhs_canonical=_canonical_operand(len(lhs.shape), lb, lc),
        rhs_canonical=_canonical_operand(len(rhs.shape), rb, rc),
        ranks=(len(lhs.shape), len(rhs.shape)),
    )
    return Cost(flops=float(flops), **op.io_bytes(), features=features)


def _canonical_operand(rank: int, batch: Sequence[int], contracting: Sequence[int]) -> bool:
    """Whether a dot operand is laid out as a batched GEMM reads it: its batch dimensions
    leading, in order, then its free and contracting dimensions as two blocks (either first).
    ``einsum("bthd,bshd->bhts", q, k)`` batches over dimensions 0 and 2: XLA copies q and k
    into (b, h, t, d) before the GEMM."""
    nb = len(batch)
    if tuple(batch) != tuple(range(nb)):
        return False
    rest = [d in contracting for d in range(nb, rank)]
    changes = sum(a != b for a, b in itertools.pairwise(rest))
    return changes <= 1


@register_cost_rule("stablehlo.dot")
def _dot(op: OpView) -> Cost:
    lhs, rhs = op.operands[0], op.operands[1]
    k = lhs.shape[-1] if lhs.shape else 1
    m = lhs.shape[0] if len(lhs.shape) == 2 else 1
    n = rhs.shape[-1] if len(rhs.shape) == 2 else 1
    # Vector/matrix dot: 2·K flops per output element.
    return Cost(
        flops=float(_FMA_FLOPS * op.results[0].size * k),
        **op.io_bytes(),
        features=_gemm_features(op, 1, m, n, k),
    )


_PRECISIONS = ("DEFAULT", "HIGH", "HIGHEST")


def _precision(op: OpView) -> str:
    """The highest precision of the operands (``precision_config``; StableHLO or CHLO enums)."""
    config = op.attr("precision_config")
    if config is None:
        return "DEFAULT"
    found = [
        (hlo.PrecisionAttr if hlo.PrecisionAttr.isinstance(p) else chlo.PrecisionAttr)(p).value
        for p in ir.ArrayAttr(config)
    ]
    return max((v for v in found if v in _PRECISIONS), key=_PRECISIONS.index, default="DEFAULT")


def _valid_positions(
    in_size: int, k_size: int, out_size: int, pad_lo: int, stride: int, k_dil: int, in_dil: int
) -> int:
    """Pairs (output position, filter tap) that land on a real (non-padding) input element.

    Output ``o`` and tap ``t`` read the (dilated, padded) input at ``o·stride − pad_lo + t·k_dil``,
    which is a real element when it is a multiple of ``in_dil`` in ``[0, (in_size−1)·in_dil]``.
    For each value of the shorter of the two axes the other is an arithmetic progression, counted
    in closed form, so the work is O(min(out_size, k_size)·in_dil) whatever the sizes.
    """
    if min(in_size, k_size, out_size) <= 0:
        return 0
    last = (in_size - 1) * in_dil  # largest valid position in the dilated input
    # Loop over the shorter axis; the other one has `count` terms with step `step`.
    if out_size <= k_size:
        starts = np.arange(out_size, dtype=np.int64) * stride - pad_lo
        step, count = k_dil, k_size
    else:
        starts = np.arange(k_size, dtype=np.int64) * k_dil - pad_lo
        step, count = stride, out_size
    # Terms j in [0, count) with 0 <= start + j·step <= last ...
    lo = np.maximum(0, -(starts // step))  # smallest j with start + j·step >= 0
    hi = np.minimum(count - 1, (last - starts) // step)  # largest j with start + j·step <= last
    if in_dil == 1:
        return int(np.maximum(0, hi - lo + 1).sum())
    # ... and start + j·step ≡ 0 (mod in_dil): j in one residue class mod in_dil / gcd(step, in_dil).
    g = math.gcd(step, in_dil)
    period = in_dil // g
    ok = starts % g == 0
    first = np.full(starts.shape, -1, dtype=np.int64)
    for j in range(period):  # the residue class of the solutions (period <= in_dil, small)
        hit = ((starts + j * step) % in_dil == 0) & (first < 0)
        first[hit] = j
    ok &= first >= 0
    # Solutions j = first + period·t within [lo, hi].
    t_lo = -((first - lo) // period)  # ceil((lo - first) / period)
    t_hi = (hi - first) // period
    return int(np.where(ok & (hi >= lo), np.maximum(0, t_hi - t_lo + 1), 0).sum())


@register_cost_rule("stablehlo.convolution")
def _convolution(op: OpView) -> Cost:
    lhs, rhs, out = op.operands[0], op.operands[1], op.results[0]
    dn = hlo.ConvDimensionNumbers(op.attr("dimension_numbers"))
    nsp = len(dn.input_spatial_dimensions)
    batch = lhs.shape[dn.input_batch_dimension]
    in_feat = lhs.shape[dn.input_feature_dimension]
    out_feat = rhs.shape[dn.kernel_output_feature_dimension]
    in_sp = [lhs.shape[d] for d in dn.input_spatial_dimensions]
    k_sp = [rhs.shape[d] for d in dn.kernel_spatial_dimensions]
    out_sp = [out.shape[d] for d in dn.output_spatial_dimensions]
    strides = _dense_ints(op, "window_strides", nsp, 1)
    pads = _dense_ints(op, "padding", 2 * nsp, 0)
    lhs_dil = _dense_ints(op, "lhs_dilation", nsp, 1)
    rhs_dil = _dense_ints(op, "rhs_dilation", nsp, 1)
    fgc = _int_attr(op, "feature_group_count", 1)
    bgc = _int_attr(op, "batch_group_count", 1)
    valid = math.prod(
        _valid_positions(
            in_sp[i], k_sp[i], out_sp[i], pads[2 * i], strides[i], rhs_dil[i], lhs_dil[i]
        )
        for i in range(nsp)
    )
    # FMAs: (C/groups) input features x O output features x (N/batch_groups) x valid (out, tap) pairs.
    fma = (in_feat // fgc) * out_feat * (batch // bgc) * valid
    return Cost(
        flops=float(_FMA_FLOPS * fma),
        **op.io_bytes(),
        features=dict(
            kind="conv",
            batch=batch,
            in_features=in_feat,
            out_features=out_feat,
            in_spatial=tuple(in_sp),
            kernel_spatial=tuple(k_sp),
            out_spatial=tuple(out_sp),
            strides=tuple(strides),
            groups=fgc,
            # The input's dilation (a strided convolution's input gradient: 2 at stride 2) and
            # the share of (output, tap) pairs landing on a real input element.
            lhs_dilation=tuple(lhs_dil),
            tap_share=valid / max(1, math.prod(out_sp) * math.prod(k_sp)),
            precision=_precision(op),
            dtype=lhs.dtype,
            out_dtype=out.dtype,
        ),
    )


# ---------------------------------------------------------------------------------------------
# ops with a scalar body region
# ---------------------------------------------------------------------------------------------


@register_cost_rule("stablehlo.reduce")
def _reduce(op: OpView) -> Cost:
    n = len(op.results)
    inputs = op.operands[:n]
    # Reducing S input elements to R outputs applies the body S - R times (0 when an empty axis
    # is reduced: the outputs are then the init values).
    applications = max(0, inputs[0].size - op.results[0].size)
    body = op.region_cost(0)
    reduced = _int_list(op, "dimensions")
    body_ops = op.region_ops(0)
    return Cost(
        flops=body.flops * applications,
        transcendentals=body.transcendentals * applications,
        **op.io_bytes(),
        features=dict(
            kind="reduce", in_elements=inputs[0].size, out_elements=op.results[0].size,
            # The scalar computation (a single add: a sum) and the type it accumulates in:
            # XLA:CPU runs sums accumulating in bf16 as its own scalar loops.
            reducer=body_ops[0].rsplit(".", 1)[-1] if len(body_ops) == 1 else "",
            accumulator=op.results[0].dtype,
            # Whether the minor (contiguous) dimension is among those reduced.
            minor_reduced=bool(inputs[0].shape) and (len(inputs[0].shape) - 1) in reduced,
        ),
    )  # fmt: skip


@register_cost_rule("stablehlo.reduce_window")
def _reduce_window(op: OpView) -> Cost:
    window = math.prod(_int_list(op, "window_dimensions"))
    # Each output combines `window` elements: window - 1 applications of the body.
    applications = op.results[0].size * max(0, window - 1)
    body = op.region_cost(0)
    return Cost(
        flops=body.flops * applications,
        transcendentals=body.transcendentals * applications,
        **op.io_bytes(),
        features=dict(kind="reduce_window", window=window),
    )


@register_cost_rule("stablehlo.select_and_scatter")
def _select_and_scatter(op: OpView) -> Cost:
    source = op.operands[1]
    window = math.prod(_int_list(op, "window_dimensions"))
    select, scatter = op.region_cost(0), op.region_cost(1)
    # Per source element: window - 1 selections and one scatter combination.
    per = select.scale(max(0, window - 1)) + scatter
    return Cost(
        flops=per.flops * source.size,
        transcendentals=per.transcendentals * source.size,
        **op.io_bytes(),
    )


@register_cost_rule("stablehlo.scatter")
def _scatter(op: OpView) -> Cost:
    n = len(op.results)
    updates = op.operands[-n:]
    indices = op.operands[n]
    body = op.region_cost(0)
    count = updates[0].size
    # One body application per update element; in place, so only updated elements move.
    moved = float(sum(u.nbytes for u in updates))
    return Cost(
        flops=body.flops * count,
        transcendentals=body.transcendentals * count,
        bytes_read=2 * moved + indices.nbytes,
        bytes_written=moved,
    )


@register_cost_rule("stablehlo.map")
def _map(op: OpView) -> Cost:
    body = op.region_cost(0)
    count = op.results[0].size
    return Cost(
        flops=body.flops * count, transcendentals=body.transcendentals * count, **op.io_bytes()
    )


# ---------------------------------------------------------------------------------------------
# collectives: reduction flops, plus the bytes each device sends (for the multi-device models)
# ---------------------------------------------------------------------------------------------


def _collective_features(op: OpView) -> dict[str, Any]:
    """``bytes`` = operand bytes on each device (the convention of
    ``perfjax.placement.collective_time_s``), plus the group layout when the op has replica groups
    (``dense<...> : tensor<G x S x i64>``: G groups of S devices)."""
    out: dict[str, Any] = dict(
        kind="collective",
        collective=op.name.split(".")[-1],
        bytes=sum(t.nbytes for t in op.operands),
    )
    groups = _matrix_shape(op, "replica_groups")
    if groups is not None:
        out["num_groups"], out["group_size"] = groups
    pairs = _matrix_shape(op, "source_target_pairs")
    if pairs is not None and pairs[1] == 2:
        out["num_pairs"] = pairs[0]
    handle = op.attr("channel_handle")
    if handle is not None and hlo.ChannelHandle.isinstance(handle):
        # Joins the op with its line in XLA's HLO text (``channel_id=``).
        out["channel_id"] = int(hlo.ChannelHandle(handle).handle)
    return out


@register_cost_rule("stablehlo.all_reduce", "stablehlo.reduce_scatter")
def _all_reduce(op: OpView) -> Cost:
    body = op.region_cost(0)
    count = sum(t.size for t in op.operands)
    # One body application per element reduced into this device's result.
    return Cost(flops=body.flops * count, **op.io_bytes(), features=_collective_features(op))


@register_cost_rule(
    "stablehlo.all_gather",
    "stablehlo.all_to_all",
    "stablehlo.collective_permute",
    "stablehlo.collective_broadcast",
    "stablehlo.send",
    "stablehlo.recv",
)
def _communication(op: OpView) -> Cost:
    if op.name in ("stablehlo.send", "stablehlo.recv") and _bool_attr(
        op, "is_host_transfer", False
    ):
        # A transfer to/from the host (how Python callbacks lower on TPU): a host round trip.
        return _host_transfer(op, routine=op.name.split(".")[-1])
    return Cost(**op.io_bytes(), features=_collective_features(op))


# ---------------------------------------------------------------------------------------------
# FFT, sort, top-k: standard operation counts, with features for the device models
# ---------------------------------------------------------------------------------------------


@register_cost_rule("stablehlo.fft")
def _fft(op: OpView) -> Cost:
    """A radix-2 complex FFT of N points takes 5·N·log2(N) flops (the convention FFTW uses to report
    speed, https://www.fftw.org/speed/method.html); a multi-dimensional transform of N = L1·L2·...
    points sums the per-axis counts, which is again 5·N·log2(N). Real-input (RFFT) and real-output
    (IRFFT) transforms cost half. Counted once per batch element (the leading dims not transformed).
    XLA's own HloCostAnalysis uses 8·N·prod(floor(log2 Li)) instead; the FFTW figure is the one
    published throughputs are quoted in."""
    fft_type = op.attr("fft_type")
    kind = "FFT" if fft_type is None else hlo.FftTypeAttr(fft_type).value
    lengths = _int_list(op, "fft_length")
    points = math.prod(lengths)
    # RFFT: the real operand has the full lengths; IRFFT: the real result does.
    real = op.results[0] if kind == "IRFFT" else op.operands[0]
    batch = real.size // points if points else 0
    per_transform = 5.0 * points * math.log2(points) if points > 1 else 0.0
    if kind in ("RFFT", "IRFFT"):
        per_transform /= 2
    return Cost(
        flops=batch * per_transform,
        **op.io_bytes(),
        features=dict(kind="fft", fft_type=kind, n=points, lengths=tuple(lengths), batch=batch,
                      dtype=op.operands[0].dtype),
    )  # fmt: skip


@register_cost_rule("stablehlo.sort")
def _sort(op: OpView) -> Cost:
    # XLA assumes a comparison sort: n·ceil(log2 n) flops over all n elements of operand 0.
    n = op.operands[0].size
    dim = _int_attr(op, "dimension", -1)
    shape = op.operands[0].shape
    length = shape[dim] if shape else 1
    return Cost(
        flops=float(n * math.ceil(math.log2(n))) if n > 1 else 0.0,
        **op.io_bytes(),
        features=dict(kind="sort", routine="sort", n=length, batch=n // length if length else 0,
                      operands=len(op.operands), dtype=op.operands[0].dtype),
    )  # fmt: skip


def _top_k_cost(op: OpView, values, k: int, axis: int) -> Cost:
    # Selecting the k largest of n with a k-element heap: about n·log2(k) comparisons per row
    # (n comparisons at least, k = 1 being a max).
    n = values.shape[axis] if values.shape else 1
    rows = values.size // n if n else 0
    per_row = n * max(1.0, math.log2(k)) if k > 0 and n > 0 else 0.0
    return Cost(
        flops=rows * per_row,
        **op.io_bytes(),
        features=dict(kind="sort", routine="top_k", n=n, k=k, batch=rows, dtype=values.dtype),
    )


@register_cost_rule("chlo.top_k")
def _top_k(op: OpView) -> Cost:
    k = _int_attr(op, "k", op.results[0].shape[-1] if op.results[0].shape else 1)
    return _top_k_cost(op, op.operands[0], k, -1)


@register_cost_rule("stablehlo.custom_call@ApproxTopK")
def _approx_top_k(op: OpView) -> Cost:
    # lax.approx_max_k / approx_min_k: operands are (values..., indices..., init values...);
    # the reduction axis and k are in the backend config. Costed as an exact top-k (an upper bound
    # of the TPU's approximate bucketed algorithm).
    cfg = _backend_config(op)
    k = _config_int(cfg, "top_k", op.results[0].shape[-1] if op.results[0].shape else 1)
    axis = _config_int(cfg, "reduction_dim", len(op.operands[0].shape) - 1)
    return _top_k_cost(op, op.operands[0], k, axis)


def _backend_config(op: OpView) -> ir.DictAttr | None:
    """A custom call's backend config as a dictionary: ``mhlo.backend_config = {...}`` (FFI
    calls), else ``backend_config = {...}`` (typed-FFI API version). ``None`` when the config is
    an opaque string (legacy and TPU calls: ``backend_config = "1,0,100,1e-6"``) or absent."""
    attr = op.attr("mhlo.backend_config")
    if attr is None:
        attr = op.attr("backend_config")
    return attr if isinstance(attr, ir.DictAttr) else None


def _config_entry(cfg: ir.DictAttr | None, key: str) -> ir.Attribute | None:
    return cfg[key] if cfg is not None and key in cfg else None


def _config_int(cfg: ir.DictAttr | None, key: str, default: int) -> int:
    entry = _config_entry(cfg, key)
    return entry.value if isinstance(entry, ir.IntegerAttr) else default


def _config_flag(cfg: ir.DictAttr | None, key: str) -> str | None:
    """A backend-config flag: ``true``/``false``, or the character of a LAPACK ``ui8`` code
    (``mode = 86 : ui8`` -> ``"V"``)."""
    entry = _config_entry(cfg, key)
    if isinstance(entry, ir.BoolAttr):
        return "true" if entry.value else "false"
    if isinstance(entry, ir.IntegerAttr) and entry.value >= 0:
        return chr(entry.value)
    return None


# ---------------------------------------------------------------------------------------------
# linear algebra: LAPACK (CPU), cuSOLVER/hipSOLVER (GPU), XLA's TPU expanders
# ---------------------------------------------------------------------------------------------
#
# Counts are the flops of the textbook algorithm each library routine implements, from LAPACK
# Working Note 41 (Blackford & Dongarra, "Installation Guide for LAPACK", Appendix C: operation
# counts; "LAWN 41" below) and Golub & Van Loan, "Matrix Computations" (3rd ed., Fig. 8.6.1 for
# the SVD, Sec. 7.5.6 / 8.3 for the nonsymmetric / symmetric eigenproblem; "G&VL" below). Complex
# routines cost 4x the real count (a complex multiply-add is 4 real multiplies + 4 real adds;
# LAWN 41 weighs complex flops the same way). Each matrix of the leading (batch) dims is counted.


def _mat(t: TensorType) -> tuple[int, int, int]:
    """(batch, rows, cols) of a stack of matrices ``[..., rows, cols]``."""
    if len(t.shape) < 2:
        raise ValueError(f"expected a matrix operand [..., rows, cols], got {t}")
    rows, cols = t.shape[-2], t.shape[-1]
    return math.prod(t.shape[:-2]), rows, cols


def _potrf(n: int) -> float:  # LAWN 41, xPOTRF: n³/6 + n²/2 + n/3 mults, n³/6 − n/6 adds
    return n**3 / 3 + n**2 / 2 + n / 6


def _getrf(m: int, n: int) -> float:
    """Right-looking LU of an m×n matrix: at step k, m−k divisions and (m−k)(n−k) multiply-adds,
    summed over k. For m = n this is LAWN 41's xGETRF count 2n³/3 − n²/2 − n/6."""
    if min(m, n) == 0:
        return 0.0
    if m >= n:
        return m * n**2 - n**3 / 3 - n**2 / 2 - n / 6
    return n * m**2 - n * m - m**3 / 3 + m**2 / 2 - m / 6


def _geqrf(m: int, n: int) -> float:  # LAWN 41, xGEQRF
    if min(m, n) == 0:
        return 0.0
    if m >= n:
        return 2 * m * n**2 - 2 * n**3 / 3 + m * n + n**2 + 14 * n / 3
    return 2 * n * m**2 - 2 * m**3 / 3 + 3 * m * n - m**2 + 14 * m / 3


def _orgqr(m: int, n: int, k: int) -> float:  # LAWN 41, xORGQR / xUNGQR (m >= n >= k)
    if min(m, n, k) == 0:
        return 0.0
    return 4 * m * n * k - 2 * (m + n) * k**2 + 4 * k**3 / 3 + 3 * n * k - m * k - k**2 - 4 * k / 3


def _ormqr(m: int, n: int, k: int, left: bool) -> float:  # LAWN 41, xORMQR leading terms
    return 4 * m * n * k - 2 * (n if left else m) * k**2 if k else 0.0


def _trsm(m: int, n: int, left: bool) -> float:  # LAWN 41, xTRSM: B is m×n; A is m×m or n×n
    return float(n * m**2 if left else m * n**2)


def _syevd(n: int, vectors: bool) -> float:  # G&VL 8.3: symmetric QR, 4n³/3 values, 9n³ vectors
    return 9.0 * n**3 if vectors else 4 * n**3 / 3


def _geev(n: int, vectors: bool) -> float:  # G&VL 7.5.6: Francis QR, 10n³ values, 25n³ with Q
    return 25.0 * n**3 if vectors else 10.0 * n**3


def _gesvd(m: int, n: int, job: str) -> float:
    """G&VL Fig. 8.6.1 (Golub-Reinsch SVD of an m×n matrix, m >= n; transposed otherwise).
    job: "N" values only, "S" thin U (m×n) and V, "A" full U (m×m) and V."""
    m, n = max(m, n), min(m, n)
    if job == "N":
        return 4 * m * n**2 - 4 * n**3 / 3
    if job == "A":
        return 4 * m**2 * n + 8 * m * n**2 + 9 * n**3
    return 14 * m * n**2 + 8 * n**3


def _gehrd(n: int) -> float:  # LAWN 41, xGEHRD: 10n³/3 (G&VL 7.4.3)
    return 10 * n**3 / 3


def _sytrd(n: int) -> float:  # LAWN 41, xSYTRD: 4n³/3 (G&VL 8.3.1)
    return 4 * n**3 / 3


def _linalg_cost(op: OpView, routine: str, flops_per_matrix: float, batch: int, **dims) -> Cost:
    dtype = op.operands[0].dtype
    scale = 4.0 if dtype.startswith("complex") else 1.0
    return Cost(
        flops=max(0.0, flops_per_matrix) * scale * batch,
        **op.io_bytes(),
        features=dict(kind="solver", routine=routine, batch=batch, dtype=dtype, **dims),
    )


def _solver_rule(routine: str) -> CostRule:
    """The cost rule of one LAPACK-style routine, whatever library implements it."""

    def rule(op: OpView) -> Cost:
        cfg = _backend_config(op)
        a = op.operands[0]
        if routine == "lu_pivots_to_permutation":
            # Integer permutation of the pivots: data movement only.
            return Cost(**op.io_bytes(), features=dict(kind="solver", routine=routine,
                        batch=math.prod(a.shape[:-1]), n=a.shape[-1] if a.shape else 1))  # fmt: skip
        if routine == "gtsv":
            # Tridiagonal Gaussian elimination with partial pivoting (operands dl, d, du, b):
            # ~3n flops to factor and ~7n per right-hand side (elimination 2n, substitution 5n
            # with the pivoting fill-in).
            b = op.operands[3]
            batch, n, nrhs = _mat(b)
            return _linalg_cost(op, routine, 3 * n + 7 * n * nrhs, batch, n=n, nrhs=nrhs)
        batch, m, n = _mat(a)
        if routine == "potrf":
            return _linalg_cost(op, routine, _potrf(n), batch, n=n)
        if routine == "getrf":
            return _linalg_cost(op, routine, _getrf(m, n), batch, m=m, n=n)
        if routine in ("geqrf", "geqp3"):
            return _linalg_cost(op, routine, _geqrf(m, n), batch, m=m, n=n)
        if routine == "orgqr":
            k = op.operands[1].shape[-1] if op.operands[1].shape else 0
            out_batch, out_m, out_n = _mat(op.results[0])
            return _linalg_cost(op, routine, _orgqr(out_m, out_n, k), out_batch,
                                m=out_m, n=out_n, k=k)  # fmt: skip
        if routine == "ormqr":
            k = op.operands[1].shape[-1] if op.operands[1].shape else 0
            cb, cm, cn = _mat(op.operands[2])
            left = _config_flag(cfg, "left") != "false" and _config_flag(cfg, "side") != "R"
            return _linalg_cost(op, routine, _ormqr(cm, cn, k, left), cb, m=cm, n=cn, k=k)
        if routine == "trsm":
            bb, bm, bn = _mat(op.operands[1])
            left = _config_flag(cfg, "side") != "R"
            return _linalg_cost(op, routine, _trsm(bm, bn, left), bb, m=bm, n=bn, left=left)
        if routine == "syevd":
            # LAPACK: mode 'V'/'N'; cuSOLVER/hipSOLVER and TPU Eigh always return the vectors.
            vectors = _config_flag(cfg, "mode") != "N"
            return _linalg_cost(op, routine, _syevd(n, vectors), batch, n=n, vectors=vectors)
        if routine in ("geev", "gees"):
            if routine == "gees":
                vectors = _config_flag(cfg, "mode") != "N"
            else:
                flags = [_config_flag(cfg, k) for k in ("compute_left", "compute_right", "left", "right")]  # fmt: skip
                vectors = any(f in ("V", "true") for f in flags)
            return _linalg_cost(op, routine, _geev(n, vectors), batch, n=n, vectors=vectors)
        if routine == "gesvd":
            mode = _config_flag(cfg, "mode") or _config_flag(cfg, "job")
            if mode is None:  # gesvdj / gesvdp / hybrid: compute_uv and full_matrices flags
                uv = _config_flag(cfg, "compute_uv") != "false"
                full = _config_flag(cfg, "full_matrices") != "false"
                mode = "N" if not uv else "A" if full else "S"
            job = {"A": "A", "S": "S", "O": "S"}.get(mode, "N")
            return _linalg_cost(op, routine, _gesvd(m, n, job), batch, m=m, n=n, job=job)
        if routine == "gehrd":
            return _linalg_cost(op, routine, _gehrd(n), batch, n=n)
        if routine == "sytrd":
            return _linalg_cost(op, routine, _sytrd(n), batch, n=n)
        if routine == "cholesky_update":
            # Rank-1 update of an n×n Cholesky factor with Givens rotations: per column k, one
            # rotation of two length-(n−k) vectors (6 flops per element) -> ~3n² flops.
            return _linalg_cost(op, routine, 3.0 * n * n, batch, n=n)
        if routine == "syrk":
            # C = A·Aᵀ on A of n×k, only one triangle: n(n+1)·k flops.
            return _linalg_cost(op, routine, float(m * (m + 1) * n), batch, n=m, k=n)
        raise ValueError(f"no operation count for routine {routine!r}")

    rule.__name__ = f"_solver_{routine}"
    return rule


# routine -> LAPACK names without the s/d (real) or c/z (complex) prefix: (real, complex).
_LAPACK_ROUTINES = {
    "potrf": [("potrf", "potrf")], "getrf": [("getrf", "getrf")], "geqrf": [("geqrf", "geqrf")],
    "geqp3": [("geqp3", "geqp3")], "orgqr": [("orgqr", "ungqr")], "ormqr": [("ormqr", "unmqr")],
    "trsm": [("trsm", "trsm")], "syevd": [("syevd", "heevd")],
    "gesvd": [("gesdd", "gesdd"), ("gesvd", "gesvd")], "geev": [("geev", "geev")],
    "gees": [("gees", "gees")], "gehrd": [("gehrd", "gehrd")], "sytrd": [("sytrd", "hetrd")],
    "gtsv": [("gtsv", "gtsv")],
}  # fmt: skip
_GPU_SOLVER_ROUTINES = {
    "potrf": ["potrf"], "getrf": ["getrf"], "geqrf": ["geqrf"], "orgqr": ["orgqr"],
    "ormqr": ["ormqr"], "syevd": ["syevd", "syevj"], "gesvd": ["gesvd", "gesvdj", "gesvdp", "gesdd"],
    "geev": ["geev"], "sytrd": ["sytrd"], "syrk": ["syrk"],
}  # fmt: skip


def _solver_targets() -> dict[str, str]:
    """Every custom-call target name JAX emits for a dense linear-algebra routine -> routine."""
    out: dict[str, str] = {}
    for routine, names in _LAPACK_ROUTINES.items():
        for real, cplx in names:
            for prefix, base in (("s", real), ("d", real), ("c", cplx), ("z", cplx)):
                for suffix in ("_ffi", ""):  # FFI targets (jaxlib >= 0.4.32) and the legacy ones
                    out[f"lapack_{prefix}{base}{suffix}"] = routine
    for gpu in ("cu", "hip"):
        for routine, names in _GPU_SOLVER_ROUTINES.items():
            for base in names:
                out[f"{gpu}solver_{base}_ffi"] = routine
        out[f"{gpu}sparse_gtsv2_ffi"] = "gtsv"
        out[f"{gpu}hybrid_eig_real"] = "geev"
        out[f"{gpu}hybrid_eig_comp"] = "geev"
        out[f"{gpu}hybrid_geqp3"] = "geqp3"
        out[f"{gpu}_lu_pivots_to_permutation"] = "lu_pivots_to_permutation"
        out[f"{gpu}_cholesky_update_ffi"] = "cholesky_update"
    # XLA's TPU linear-algebra expanders (custom calls expanded by XLA:TPU itself).
    out.update(Qr="geqrf", ProductOfElementaryHouseholderReflectors="orgqr", Eigh="syevd",
               LuDecomposition="getrf", Cholesky="potrf")  # fmt: skip
    return out


SOLVER_TARGETS: dict[str, str] = _solver_targets()
for _target, _routine in SOLVER_TARGETS.items():
    register_cost_rule(f"stablehlo.custom_call@{_target}")(_solver_rule(_routine))


@register_cost_rule("stablehlo.cholesky")
def _cholesky(op: OpView) -> Cost:
    batch, _, n = _mat(op.operands[0])
    return _linalg_cost(op, "potrf", _potrf(n), batch, n=n)


@register_cost_rule("stablehlo.triangular_solve")
def _triangular_solve(op: OpView) -> Cost:
    batch, m, n = _mat(op.operands[1])
    left = _bool_attr(op, "left_side", True)
    return _linalg_cost(op, "trsm", _trsm(m, n, left), batch, m=m, n=n, left=left)


# ---------------------------------------------------------------------------------------------
# host callbacks, RNG kernels, opaque kernels
# ---------------------------------------------------------------------------------------------

#: Custom-call targets of Python callbacks (jax.pure_callback, io_callback, jax.debug.print,
#: jax.experimental.buffer_callback): the device hands its operands to the host and waits.
HOST_CALLBACK_TARGETS = (
    *(
        f"xla_ffi{part}_python_{dev}_callback"
        for part in ("", "_partitioned")
        for dev in ("cpu", "gpu")
    ),
    "xla_python_cpu_callback",  # the pre-FFI callback targets
    "xla_python_gpu_callback",
    "xla_buffer_python_cpu_callback",
    "xla_buffer_python_gpu_callback",
)


def _host_transfer(op: OpView, **extra: Any) -> Cost:
    to_host = float(sum(t.nbytes for t in op.operands))
    from_host = float(sum(t.nbytes for t in op.results))
    return Cost(
        bytes_read=to_host,
        bytes_written=from_host,
        features=dict(kind="host_callback", bytes_to_host=to_host, bytes_from_host=from_host,
                      **extra),
    )  # fmt: skip


@register_cost_rule(*(f"stablehlo.custom_call@{t}" for t in HOST_CALLBACK_TARGETS))
def _host_callback(op: OpView) -> Cost:
    # A host round trip: 0 device flops; the operands go to the host, the results come back.
    return _host_transfer(op, routine="python_callback")


@register_cost_rule("stablehlo.infeed", "stablehlo.outfeed")
def _feed(op: OpView) -> Cost:
    return _host_transfer(op, routine=op.name.split(".")[-1])


#: Threefry-2x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) with 20
#: rounds, as JAX implements it: an initial key injection (2 adds), then 5 times 4 rounds of
#: (add, rotate = shift_left + shift_right + or, xor) = 20 ops and a key injection (3 adds).
_THREEFRY_OPS_PER_PAIR = 2 + 5 * (4 * 5 + 3)


@register_cost_rule(
    "stablehlo.custom_call@cu_threefry2x32_ffi",
    "stablehlo.custom_call@hip_threefry2x32_ffi",
    "stablehlo.custom_call@cu_threefry2x32",
    "stablehlo.custom_call@hip_threefry2x32",
)
def _threefry_kernel(op: OpView) -> Cost:
    # The GPU kernel of jax.random (jax_threefry_gpu_kernel_lowering): the same integer ops as
    # the StableHLO expansion JAX emits otherwise, one pair of 32-bit words per output element.
    pairs = op.results[0].size
    return Cost(
        flops=float(_THREEFRY_OPS_PER_PAIR * pairs),
        **op.io_bytes(),
        features=dict(kind="elementwise", routine="threefry2x32", n=pairs),
    )


@register_cost_rule("stablehlo.rng_bit_generator", "stablehlo.rng")
def _rng(op: OpView) -> Cost:
    # XLA's HloCostAnalysis counts one transcendental per generated element (state included).
    return Cost(transcendentals=float(sum(r.size for r in op.results)), **op.io_bytes())


@register_cost_rule(
    "stablehlo.custom_call@X64Combine",
    "stablehlo.custom_call@X64SplitLow",
    "stablehlo.custom_call@X64SplitHigh",
)
def _x64_emulation(op: OpView) -> Cost:
    # XLA:TPU's 64-bit emulation packs/unpacks two 32-bit halves: one integer op per element.
    return Cost(flops=float(op.results[0].size), **op.io_bytes())


@register_cost_rule(
    "stablehlo.custom_call@tpu_custom_call",
    "stablehlo.custom_call@mosaic_gpu",
    "stablehlo.custom_call@mosaic_gpu_v2",
    "stablehlo.custom_call@triton_kernel_call",
    "stablehlo.custom_call@triton_kernel_call_ffi",
    "stablehlo.custom_call@__gpu$xla.gpu.triton",
)
def _opaque_kernel(op: OpView) -> Cost:
    """A Pallas/Mosaic/Triton kernel: its body is compiled machine code perfjax cannot read, so
    only the bytes it must read and write are known. ``features["opaque"] = True`` tells device
    models (and users) that its flops are unknown, not zero."""
    return Cost(
        **op.io_bytes(),
        features=dict(kind="opaque", opaque=True, target=op.attr_str("call_target_name") or ""),
    )


# ---------------------------------------------------------------------------------------------
# grouped GEMM, batch norm, dynamic-shape ops
# ---------------------------------------------------------------------------------------------


@register_cost_rule("chlo.ragged_dot")
def _ragged_dot(op: OpView) -> Cost:
    """lax.ragged_dot: rows of lhs are split into G groups, each multiplied by its own rhs matrix.
    Each output element is one K-long dot product (2K flops), as in a dense GEMM; when the ragged
    dimension is the contracting one, each of the G outputs contracts only its group's share of K,
    so the total is that of one dense GEMM."""
    lhs, rhs = op.operands[0], op.operands[1]
    dims = chlo.RaggedDotDimensionNumbers(op.attr("ragged_dot_dimension_numbers"))
    lc, lb = dims.lhs_contracting_dimensions, dims.lhs_batching_dimensions
    ragged = dims.lhs_ragged_dimensions
    groups = (dims.rhs_group_dimensions or [0])[0]
    g = rhs.shape[groups] if rhs.shape else 1
    k = math.prod(lhs.shape[d] for d in lc)
    batch = math.prod(lhs.shape[d] for d in lb)
    m = math.prod(s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb)
    out = op.results[0].size
    n = out // (batch * m) if batch * m else 0
    contracting_ragged = bool(ragged) and ragged[0] in lc
    flops = _FMA_FLOPS * out * k / (g if contracting_ragged and g else 1)
    feats = _gemm_features(op, batch, m, n, k)
    feats.update(groups=g)
    return Cost(flops=float(flops), **op.io_bytes(), features=feats)


def _feature_count(t: TensorType, op: OpView) -> int:
    dim = _int_attr(op, "feature_index", len(t.shape) - 1)
    return t.shape[dim] if t.shape else 1


@register_cost_rule("stablehlo.batch_norm_inference")
def _batch_norm_inference(op: OpView) -> Cost:
    # y = (x − mean)·scale·rsqrt(var + eps) + offset: per feature an add and an rsqrt, per
    # element a subtract, a multiply by the folded scale and an add.
    x = op.operands[0]
    f = _feature_count(x, op)
    return Cost(flops=3.0 * x.size + 2.0 * f, transcendentals=float(f), **op.io_bytes())


@register_cost_rule("stablehlo.batch_norm_training")
def _batch_norm_training(op: OpView) -> Cost:
    # Mean (1 add per element), variance (subtract, multiply, add), normalize (3 as inference).
    x = op.operands[0]
    f = _feature_count(x, op)
    return Cost(flops=7.0 * x.size + 4.0 * f, transcendentals=float(f), **op.io_bytes())


@register_cost_rule("stablehlo.batch_norm_grad")
def _batch_norm_grad(op: OpView) -> Cost:
    # d_offset = Σ dy; d_scale = Σ dy·x̂ (x̂ recomputed: 2/elt); d_x = scale·rsqrt·(dy − mean(dy)
    # − x̂·mean(dy·x̂)): about 10 flops per element and an rsqrt per feature.
    x = op.operands[0]
    f = _feature_count(x, op)
    return Cost(flops=10.0 * x.size + 6.0 * f, transcendentals=float(f), **op.io_bytes())


# Dynamic-shape forms of static ops: with static result types they cost as their static forms.
register_cost_rule("stablehlo.dynamic_broadcast_in_dim", "stablehlo.dynamic_pad")(_movement)
register_cost_rule("stablehlo.dynamic_iota", "chlo.constant")(_materialise)
register_cost_rule("stablehlo.dynamic_reshape", "stablehlo.set_dimension_size")(_free)
register_cost_rule("stablehlo.real_dynamic_slice", "stablehlo.dynamic_gather")(_read_part)


# ---------------------------------------------------------------------------------------------
# ops without a rule, and why
# ---------------------------------------------------------------------------------------------

#: Ops of the stablehlo and chlo dialects that deliberately have no cost rule: op name -> reason.
#: tests/test_op_coverage.py fails when a dialect op has neither a rule nor an entry here.
EXCLUDED_OPS: dict[str, str] = {
    "stablehlo.while": "structural: the walker walks its condition and body regions",
    "stablehlo.case": "structural: the walker walks every branch and keeps the costliest",
    "stablehlo.if": "structural: the walker walks every branch and keeps the costliest",
    "stablehlo.composite": "structural: the walker inlines its decomposition function",
    "stablehlo.return": "terminator of a region: no work",
    "stablehlo.custom_call": (
        "costed per target as 'stablehlo.custom_call@<target>'; an unknown target raises "
        "UnsupportedOpError"
    ),
    "stablehlo.async_start": "introduced by XLA's scheduler after lowering; JAX never emits it",
    "stablehlo.async_done": "introduced by XLA's scheduler after lowering; JAX never emits it",
    "stablehlo.cross-replica-sum": "legacy MHLO op kept for round trips; JAX emits all_reduce",
    "stablehlo.einsum": "deprecated StableHLO op (removed from the spec); JAX emits dot_general",
    "stablehlo.unary_einsum": "deprecated StableHLO op (removed from the spec); JAX never emits it",
    "stablehlo.torch_index_select": "deprecated StableHLO op for PyTorch; JAX emits gather",
    "stablehlo.dynamic_conv": (
        "its padding is a runtime operand, so the valid window positions are unknown; JAX "
        "emits stablehlo.convolution with static padding"
    ),
    "stablehlo.uniform_quantize": "takes !quant.uniform types, which JAX never creates",
    "stablehlo.uniform_dequantize": "takes !quant.uniform types, which JAX never creates",
    "chlo.scan": "JAX lowers lax.scan / associative_scan to stablehlo.while or plain ops",
}
