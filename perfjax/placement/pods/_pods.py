"""TPU pods: slices of chips on an ICI torus, joined by the data-centre network (DCN).

A :class:`Pod` is ``num_slices`` identical slices of ``slice_shape`` chips (``(16, 16)`` for a
v5e-256). Collectives are timed per chip with the model of Austin et al., "How to Scale Your
Model" (2025), part 3, which is how XLA's TPU collectives behave at scale:

* **ICI**, a group over ``k`` torus dimensions of ``p`` chips: bidirectional rings on every
  dimension at once; an all-gather of a per-chip shard ``n`` moves ``(p - 1) n`` bytes into each
  chip over ``w k`` links (``w = 2`` directions when the dimension wraps around, else 1):
  ``t = (p - 1) n / (w k B)``; a reduce-scatter of an ``n``-byte operand ``(p - 1)/p n / (w k B)``;
  an all-reduce is both. Plus ``(d - 1)`` hops of latency per dimension.
* **DCN**, a group over slices: one ring per chip position between its counterparts, each chip
  at its share of its host's network bandwidth ``B_dcn``: all-reduce ``2 (s - 1)/s n / B_dcn``.
* **Both** (a group spanning ICI and DCN mesh axes): hierarchical, as XLA does for multi-slice
  programs: reduce-scatter on ICI, the ``1/p`` shard across DCN, all-gather back on ICI.

Example:
  >>> from perfjax.placement.pods import pod
  >>> p = pod("v5e-256", slices=4)
  >>> p.num_chips, p.slice_shape
  (1024, (16, 16))
  >>> round(p.collective_time_s("all_gather", 1e6, ici_dims=(16, 16)) * 1e3, 2)  # ms
  1.31
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from perfjax._errors import InputError
from perfjax._io import read_mapping
from perfjax.devicemodels import DeviceSpec, device
from perfjax.placement.comm._collectives import (
    all_gather_time_s,
    all_reduce_time_s,
    all_to_all_time_s,
    reduce_scatter_time_s,
    send_recv_time_s,
)

_TABLE = pathlib.Path(__file__).with_name("pods.toml")
_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "collective_permute")
#: Ring algorithms (one step per group member), as ``perfjax.placement`` times them.
_RINGS = {"all_gather": all_gather_time_s, "reduce_scatter": reduce_scatter_time_s,
          "all_reduce": all_reduce_time_s}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Pod:
    """``num_slices`` slices of ``slice_shape`` TPU chips (ICI torus), joined over DCN."""

    name: str
    chip: str
    slice_shape: tuple[int, ...]
    num_slices: int
    #: Per ICI link, one way.
    ici_bytes_per_s: float
    ici_latency_s: float
    #: A torus dimension wraps around when its size is a multiple of this.
    wraparound_multiple: int
    #: Per chip, one way: its share of the host's network.
    dcn_bytes_per_s: float
    dcn_latency_s: float
    source: str = ""

    @property
    def chips_per_slice(self) -> int:
        return math.prod(self.slice_shape)

    @property
    def num_chips(self) -> int:
        return self.chips_per_slice * self.num_slices

    @property
    def spec(self) -> DeviceSpec:
        """The chip's device spec (peak compute, HBM bandwidth and capacity)."""
        return device(self.chip)

    def wraps(self, dim: int) -> bool:
        """Whether a torus dimension of ``dim`` chips has wraparound links."""
        return dim > 2 and dim % self.wraparound_multiple == 0

    def ici_time_s(self, kind: str, nbytes: float, dims: Sequence[int]) -> float:
        """One collective over the ICI torus dimensions ``dims`` (chips per dimension);
        ``nbytes`` is the operand on each chip (the gathered shard for all-gather): the ring
        formulas of ``perfjax.placement`` over every link the dimensions give a chip at once,
        with one hop of latency per step along each dimension."""
        dims = [int(d) for d in dims if int(d) > 1]
        if not dims or nbytes <= 0:
            return 0.0
        p = math.prod(dims)
        # Links into a chip used at once: per dimension, both ring directions when it wraps.
        links = sum(2 if self.wraps(d) else 1 for d in dims)
        bw = links * self.ici_bytes_per_s
        hops = sum(d - 1 for d in dims) * self.ici_latency_s
        if kind in _RINGS:
            return _RINGS[kind](nbytes, p, bw, 0.0) + (2 if kind == "all_reduce" else 1) * hops
        if kind == "all_to_all":
            # (p - 1)/p of the operand leaves each chip; bisection-bound on the largest dim.
            big = max(dims)
            return (p - 1) / p * nbytes * big / 4 / bw * len(dims) + hops
        if kind == "collective_permute":
            return send_recv_time_s(nbytes, self.ici_bytes_per_s, self.ici_latency_s)
        raise InputError(f"no ICI model for collective {kind!r}; expected one of {_KINDS}.")

    def dcn_time_s(self, kind: str, nbytes: float, slices: int) -> float:
        """One collective between ``slices`` slices, every chip with its counterparts: the ring
        (pairwise for all-to-all) formulas of ``perfjax.placement`` at the chip's DCN share."""
        s = int(slices)
        if s <= 1 or nbytes <= 0:
            return 0.0
        b, a = self.dcn_bytes_per_s, self.dcn_latency_s
        if kind in _RINGS:
            return _RINGS[kind](nbytes, s, b, a)
        if kind == "all_to_all":
            return all_to_all_time_s(nbytes, s, b, a)
        if kind == "collective_permute":
            return send_recv_time_s(nbytes, b, a)
        raise InputError(f"no DCN model for collective {kind!r}; expected one of {_KINDS}.")

    def collective_time_s(
        self, kind: str, nbytes: float, ici_dims: Sequence[int] = (), dcn_slices: int = 1
    ) -> float:
        """A collective over ICI torus dimensions ``ici_dims`` and ``dcn_slices`` slices
        (hierarchical when both)."""
        ici = [d for d in ici_dims if d > 1]
        p = math.prod(ici) if ici else 1
        if dcn_slices <= 1:
            return self.ici_time_s(kind, nbytes, ici)
        if p == 1:
            return self.dcn_time_s(kind, nbytes, dcn_slices)
        if kind == "all_reduce":
            return (
                self.ici_time_s("reduce_scatter", nbytes, ici)
                + self.dcn_time_s("all_reduce", nbytes / p, dcn_slices)
                + self.ici_time_s("all_gather", nbytes / p, ici)
            )
        if kind == "reduce_scatter":
            return self.ici_time_s("reduce_scatter", nbytes, ici) + self.dcn_time_s(
                "reduce_scatter", nbytes / p, dcn_slices
            )
        if kind == "all_gather":
            return self.dcn_time_s("all_gather", nbytes, dcn_slices) + self.ici_time_s(
                "all_gather", nbytes * dcn_slices, ici
            )
        return self.ici_time_s(kind, nbytes, ici) + self.dcn_time_s(kind, nbytes, dcn_slices)

    def ici_axis_dims(self, axis_sizes: Sequence[int]) -> list[tuple[int, ...]]:
        """The torus dimensions each ICI mesh axis spans, mapping mesh axes (minor last) onto
        the slice's dimensions (minor last): ``(16, 16)`` for one axis of 256 chips on a 16x16
        slice, ``(4,)`` and ``(16, 4)`` for axes of 4 and 64."""
        dims = list(self.slice_shape)
        if math.prod(axis_sizes) != math.prod(dims):
            raise InputError(
                f"the ICI mesh axes {tuple(axis_sizes)} hold {math.prod(axis_sizes)} chips but a "
                f"{self.name} slice has {math.prod(dims)} ({'x'.join(map(str, dims))})."
            )
        out: list[tuple[int, ...]] = []
        j = len(dims) - 1
        for size in reversed(list(axis_sizes)):
            spans: list[int] = []
            n = int(size)
            while n > 1:
                while j >= 0 and dims[j] == 1:
                    j -= 1
                r = dims[j]
                if n % r == 0:
                    spans.append(r)
                    dims[j] = 1
                    n //= r
                elif r % n == 0:
                    spans.append(n)
                    dims[j] = r // n
                    n = 1
                else:
                    raise InputError(
                        f"a mesh axis of {size} chips does not tile the {self.name} slice "
                        f"{self.slice_shape}; use axis sizes that divide its dimensions."
                    )
            out.append(tuple(reversed(spans)))
        return list(reversed(out))

    def with_slices(self, num_slices: int) -> Pod:
        return dataclasses.replace(self, num_slices=_positive("slices", num_slices))


def _positive(name: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}.")
    return v


def _table() -> dict[str, Any]:
    return dict(read_mapping(_TABLE))


_NAME = re.compile(r"^(?:tpu-)?(v4|v5e|v5p|v6e)(?:-(\d+))?(?:x(\d+))?$")


def pods() -> list[str]:
    """The TPU generations with built-in pod figures.

    Example:
      >>> pods()
      ['tpu-v4', 'tpu-v5e', 'tpu-v5p', 'tpu-v6e']
    """
    return sorted(_table())


def _slice_shape(gen: dict[str, Any], chips: int | None) -> tuple[int, ...]:
    default = tuple(int(d) for d in gen["default_slice"])
    if chips is None or chips == math.prod(default):
        return default
    if chips > int(gen["max_slice_chips"]) or chips < 1:
        raise InputError(f"a slice of {chips} chips is outside 1..{gen['max_slice_chips']}.")
    # Near-cubic (3-D) or near-square (2-D) factorisation into powers of two, as slices are.
    ndim = 3 if gen["topology"] == "3d" else 2
    if chips & (chips - 1):
        raise InputError(f"slice sizes are powers of two, got {chips}; pass slice_shape=.")
    exp = int(math.log2(chips))
    shape = [2 ** (exp // ndim + (i < exp % ndim)) for i in range(ndim)]
    return tuple(sorted(shape, reverse=True))


def pod(
    name: str, slices: int = 1, slice_shape: Sequence[int] | None = None, **overrides: Any
) -> Pod:
    """A TPU pod by name: ``"v5e-256"`` (one slice of 256 chips), ``"v5e-256x32"`` (32 slices),
    ``"tpu-v4-64"``, ``"v5p"`` (its default slice); figures from ``pods.toml`` (sourced there),
    any field overridden by keyword.

    Example:
      >>> pod("v5e-256x32").num_chips
      8192
      >>> pod("v4-64").slice_shape
      (4, 4, 4)
    """
    if isinstance(name, Pod):
        return name.with_slices(slices) if slices != 1 else name
    m = _NAME.match(str(name).strip().lower()) if isinstance(name, str) else None
    table = _table()
    if m is None:
        raise InputError(
            f"unknown TPU pod {name!r}; expected a name such as 'v5e-256', 'v5e-256x4', "
            f"'tpu-v4-64' or 'v6e' (generations: {', '.join(table)})."
        )
    gen_name = f"tpu-{m.group(1)}"
    gen = table[gen_name]
    chips = int(m.group(2)) if m.group(2) else None
    if m.group(3):
        slices = int(m.group(3))
    _positive("slices", slices)
    shape = (
        tuple(int(d) for d in slice_shape) if slice_shape is not None else _slice_shape(gen, chips)
    )
    if chips is not None and math.prod(shape) != chips:
        raise InputError(f"slice_shape {shape} does not hold {chips} chips.")
    fields = dict(
        name=f"{gen_name}-{math.prod(shape)}" + (f"x{slices}" if slices > 1 else ""),
        chip=gen["chip"],
        slice_shape=shape,
        num_slices=slices,
        ici_bytes_per_s=float(gen["ici_bytes_per_s"]),
        ici_latency_s=float(gen["ici_latency_s"]),
        wraparound_multiple=int(gen["wraparound_multiple"]),
        dcn_bytes_per_s=float(gen["dcn_bytes_per_s"]),
        dcn_latency_s=float(gen["dcn_latency_s"]),
        source=str(_TABLE.name),
    )
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise InputError(f"unknown Pod field(s) {unknown}; fields are {sorted(fields)}.")
    fields.update(overrides)
    return Pod(**fields)


__all__ = ["Pod", "pod", "pods"]
