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
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from perfjax.lowering._types import TensorType

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

_INT_RE = re.compile(r"-?\d+")


def _ints(text: str | None) -> list[int]:
    """All integers in an attribute's text (``array<i64: 1, 2>``, ``dense<[[0, 1]]>`` ...)."""
    if not text:
        return []
    # Drop the trailing type (`: tensor<2x2xi64>`) whose digits are not values.
    body = text.split(" : ")[0]
    body = re.sub(r"^array<i\d+:?", "", body)
    body = re.sub(r"\bi\d+\b", "", body)
    return [int(v) for v in _INT_RE.findall(body)]


def _dense_ints(text: str | None, count: int, default: int = 0) -> list[int]:
    """``count`` integers from a dense/array attribute, expanding a splat."""
    if text is None:
        return [default] * count
    vals = _ints(text)
    if len(vals) == 1 and count != 1:
        return vals * count
    if len(vals) != count:
        raise ValueError(f"expected {count} integers in attribute {text!r}, found {len(vals)}")
    return vals


def _dims_field(text: str, field: str) -> list[int]:
    m = re.search(field + r"\s*=\s*\[([^\]]*)\]", text)
    return [int(v) for v in m.group(1).split(",") if v.strip()] if m else []


# ---------------------------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------------------------

# Counted as transcendentals, as XLA's HloCostAnalysis does.
_TRANSCENDENTAL = (
    "exponential exponential_minus_one log log_plus_one logistic power sqrt cbrt rsqrt tanh sine "
    "cosine tan atan2"
).split()
_FLOP_ELEMENTWISE = (
    "abs add and ceil clamp compare complex convert count_leading_zeros divide floor imag is_finite "
    "maximum minimum multiply negate not or popcnt real reduce_precision remainder round_nearest_afz "
    "round_nearest_even select shift_left shift_right_arithmetic shift_right_logical sign subtract xor"
).split()
# CHLO ops that XLA expands into one cheap elementwise op each (chlo.square is x*x).
_CHLO_FLOP_ELEMENTWISE = (
    "square is_inf is_neg_inf is_pos_inf conj next_after broadcast_add broadcast_subtract "
    "broadcast_multiply broadcast_divide broadcast_maximum broadcast_minimum broadcast_and broadcast_or "
    "broadcast_xor broadcast_compare broadcast_select broadcast_remainder broadcast_power"
).split()
# CHLO ops that XLA turns into one transcendental HLO op (erf is what exact GELU uses).
_CHLO_TRANSCENDENTAL = (
    "erf erf_inv tan asin acos atan sinh cosh asinh acosh atanh lgamma digamma".split()
)


@register_cost_rule(
    *(f"stablehlo.{n}" for n in _FLOP_ELEMENTWISE), *(f"chlo.{n}" for n in _CHLO_FLOP_ELEMENTWISE)
)
def _elementwise(op: OpView) -> Cost:
    # One flop per output element (N elements -> N flops).
    return Cost(flops=float(op.results[0].size), **op.io_bytes())


@register_cost_rule(
    *(f"stablehlo.{n}" for n in _TRANSCENDENTAL), *(f"chlo.{n}" for n in _CHLO_TRANSCENDENTAL)
)
def _transcendental(op: OpView) -> Cost:
    # One transcendental per output element, no flops (XLA keeps them apart).
    return Cost(transcendentals=float(op.results[0].size), **op.io_bytes())


# ---------------------------------------------------------------------------------------------
# data movement: 0 flops
# ---------------------------------------------------------------------------------------------


@register_cost_rule(
    "stablehlo.transpose",
    "stablehlo.broadcast_in_dim",
    "stablehlo.broadcast",
    "stablehlo.concatenate",
    "stablehlo.pad",
    "stablehlo.reverse",
    "stablehlo.rng_bit_generator",
    "stablehlo.rng",
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
    "stablehlo.bitcast_convert",
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


def _gemm_features(op: OpView, batch: int, m: int, n: int, k: int) -> dict:
    """What device models need of a contraction: its GEMM shape, precision and dtypes."""
    return dict(kind="gemm", batch=batch, m=m, n=n, k=k, precision=_precision(op),
                dtype=op.operands[0].dtype, out_dtype=op.results[0].dtype)  # fmt: skip


@register_cost_rule("stablehlo.dot_general")
def _dot_general(op: OpView) -> Cost:
    lhs, rhs = op.operands[0], op.operands[1]
    dims = op.attr_str("dot_dimension_numbers") or ""
    lc = _dims_field(dims, "lhs_contracting_dimensions")
    rc = _dims_field(dims, "rhs_contracting_dimensions")
    lb = _dims_field(dims, "lhs_batching_dimensions")
    rb = _dims_field(dims, "rhs_batching_dimensions")
    k = math.prod(lhs.shape[d] for d in lc)
    batch = math.prod(lhs.shape[d] for d in lb)
    m = math.prod(s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb)
    n = math.prod(s for d, s in enumerate(rhs.shape) if d not in rc and d not in rb)
    # Each output element is a K-long dot product: K FMAs, 2K flops (B·M·N outputs).
    flops = _FMA_FLOPS * op.results[0].size * k
    return Cost(
        flops=float(flops),
        **op.io_bytes(),
        features=_gemm_features(op, batch, m, n, k),
    )


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


def _precision(op: OpView) -> str:
    text = op.attr_str("precision_config") or ""
    found = re.findall(r"(DEFAULT|HIGHEST|HIGH)", text)
    if not found:
        return "DEFAULT"
    order = ["DEFAULT", "HIGH", "HIGHEST"]
    return max(found, key=order.index)


def _valid_positions(
    in_size: int, k_size: int, out_size: int, pad_lo: int, stride: int, k_dil: int, in_dil: int
) -> int:
    """Pairs (output position, filter tap) that land on a real (non-padding) input element."""
    out_idx = np.arange(out_size)[:, None]
    k_idx = np.arange(k_size)[None, :]
    pos = out_idx * stride - pad_lo + k_idx * k_dil
    if in_dil > 1:
        ok = (pos % in_dil == 0) & (pos >= 0)
        pos = pos // in_dil
    else:
        ok = pos >= 0
    return int(np.count_nonzero(ok & (pos < in_size)))


@register_cost_rule("stablehlo.convolution")
def _convolution(op: OpView) -> Cost:
    lhs, rhs, out = op.operands[0], op.operands[1], op.results[0]
    dn = op.attr_str("dimension_numbers") or ""
    m = re.search(r"\[([^\]]*)\]x\[([^\]]*)\]->\[([^\]]*)\]", dn)
    if not m:
        raise ValueError(f"cannot read convolution dimension_numbers {dn!r} at {op.location}")
    lhs_spec, rhs_spec, out_spec = ([s.strip() for s in g.split(",")] for g in m.groups())
    nsp = len([s for s in lhs_spec if s.isdigit()])

    def spatial(spec: list[str], shape: tuple[int, ...]) -> list[int]:
        return [shape[spec.index(str(i))] for i in range(nsp)]

    batch = lhs.shape[lhs_spec.index("b")]
    in_feat = lhs.shape[lhs_spec.index("f")]
    out_feat = rhs.shape[rhs_spec.index("o")]
    in_sp, k_sp, out_sp = (
        spatial(lhs_spec, lhs.shape),
        spatial(rhs_spec, rhs.shape),
        spatial(out_spec, out.shape),
    )
    strides = _dense_ints(op.attr_str("window_strides"), nsp, 1)
    pads = _dense_ints(op.attr_str("padding"), 2 * nsp, 0)
    lhs_dil = _dense_ints(op.attr_str("lhs_dilation"), nsp, 1)
    rhs_dil = _dense_ints(op.attr_str("rhs_dilation"), nsp, 1)
    fgc = int((_ints(op.attr_str("feature_group_count")) or [1])[0])
    bgc = int((_ints(op.attr_str("batch_group_count")) or [1])[0])
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
    # Reducing S input elements to R outputs applies the body S - R times.
    applications = inputs[0].size - op.results[0].size
    body = op.region_cost(0)
    return Cost(
        flops=body.flops * applications,
        transcendentals=body.transcendentals * applications,
        **op.io_bytes(),
        features=dict(kind="reduce", in_elements=inputs[0].size, out_elements=op.results[0].size),
    )


@register_cost_rule("stablehlo.reduce_window")
def _reduce_window(op: OpView) -> Cost:
    window = math.prod(_ints(op.attr_str("window_dimensions")) or [1])
    # Each output combines `window` elements: window - 1 applications of the body.
    applications = op.results[0].size * (window - 1)
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
    window = math.prod(_ints(op.attr_str("window_dimensions")) or [1])
    select, scatter = op.region_cost(0), op.region_cost(1)
    # Per source element: window - 1 selections and one scatter combination.
    per = select.scale(window - 1) + scatter
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


@register_cost_rule("stablehlo.sort")
def _sort(op: OpView) -> Cost:
    # XLA assumes a comparison sort: n·ceil(log2 n) flops over all n elements of operand 0.
    n = op.operands[0].size
    return Cost(flops=float(n * math.ceil(math.log2(n))) if n > 1 else 0.0, **op.io_bytes())


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
    groups = op.attr_str("replica_groups")
    m = re.search(r"tensor<(\d+)x(\d+)xi64>", groups or "")
    if m:
        out["num_groups"], out["group_size"] = int(m.group(1)), int(m.group(2))
    pairs = op.attr_str("source_target_pairs")
    m = re.search(r"tensor<(\d+)x2xi64>", pairs or "")
    if m:
        out["num_pairs"] = int(m.group(1))
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
    return Cost(**op.io_bytes(), features=_collective_features(op))
