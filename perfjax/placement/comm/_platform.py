"""Platforms: device instances (each a catalog ``DeviceSpec``) joined by links.

A platform file (TOML, YAML or JSON) names its device instances and how they are connected::

    name = "2xh100"
    [devices]
    gpu = { device = "h100", count = 2 }     # gpu0, gpu1 (or: gpu0 = "h100")
    [topology]                               # or [[links]] tables, or both
    kind = "nvswitch"                        # nvswitch | ring | torus | pcie-tree | fully-connected
    bandwidth_bytes_per_s = 450e9            # per direction, per device port
    latency_s = 2e-6

Links are full duplex: ``bandwidth_bytes_per_s`` is available in each direction at once. A route
between two devices may cross several links and switches (nodes that are not devices); its
bandwidth is that of its slowest link and its latency the sum of the hops' latencies. Among all
routes the best one has the highest bandwidth, then the lowest latency.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perfjax._display import fmt_count, fmt_time, render
from perfjax._errors import PlatformError
from perfjax._io import SUFFIXES, read_mapping
from perfjax.devicemodels._catalog import device as get_device
from perfjax.devicemodels._catalog import devices as catalog_devices
from perfjax.devicemodels._spec import DeviceSpec
from perfjax.devicemodels._spec import validate as validate_spec

#: Link kinds a platform may use.
LINK_KINDS = ("pcie", "nvlink", "nvswitch", "ici", "host", "network", "infinity-fabric")
#: Topology keywords of a ``[topology]`` table.
TOPOLOGIES = ("nvswitch", "ring", "torus", "pcie-tree", "fully-connected")
_DEFAULT_KIND = {
    "nvswitch": "nvswitch",
    "ring": "nvlink",
    "torus": "ici",
    "pcie-tree": "pcie",
    "fully-connected": "nvlink",
}
_BUILTIN_DIR = pathlib.Path(__file__).parent.parent / "platforms"


@dataclasses.dataclass(frozen=True)
class Link:
    """A full-duplex connection between two nodes (devices or switches) of a platform."""

    src: str
    dst: str
    #: Bandwidth available in each direction.
    bandwidth_bytes_per_s: float
    #: One-way latency of a message crossing this link.
    latency_s: float
    kind: str


@dataclasses.dataclass(frozen=True, eq=False)
class Platform:
    """Device instances and the links between them (see ``perfjax.placement.platform``).

    Example:
      >>> from perfjax.placement import platform
      >>> p = platform("8xh100-nvlink")
      >>> p.device_names[:2], p.specs[0].name
      (('gpu0', 'gpu1'), 'h100')
      >>> p.transfer_time_s("gpu0", "gpu1", 450e9) > 1.0
      True
    """

    name: str
    #: Instance names, e.g. ``("gpu0", ..., "gpu7")``; index i is device i everywhere.
    device_names: tuple[str, ...]
    #: Catalog spec per instance.
    specs: tuple[DeviceSpec, ...]
    links: tuple[Link, ...]
    #: Nodes that only forward traffic (NVSwitch, PCIe root complex); not placement targets.
    switches: tuple[str, ...] = ()
    #: The ``[topology]`` tables the platform was built from (kind, devices, dims, bandwidth ...),
    #: which the collective models use to pick topology-aware algorithms (e.g. torus rings).
    topologies: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
    source: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    # ---- per-device facts ----------------------------------------------------------------

    @property
    def num_devices(self) -> int:
        return len(self.device_names)

    @property
    def memory_bytes(self) -> tuple[float, ...]:
        """Memory capacity of each instance, from its spec."""
        return tuple(float(s.memory_bytes) for s in self.specs)

    def index(self, device: int | str) -> int:
        """Position of a device given by index or instance name."""
        if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
            if not 0 <= int(device) < self.num_devices:
                raise IndexError(
                    f"platform {self.name!r} has {self.num_devices} devices (0..{self.num_devices - 1}), "
                    f"got index {device}."
                )
            return int(device)
        if isinstance(device, str) and device in self.device_names:
            return self.device_names.index(device)
        close = difflib.get_close_matches(str(device), self.device_names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise PlatformError(
            f"platform {self.name!r} has no device {device!r}.{hint} Devices: {', '.join(self.device_names)}."
        )

    # ---- routes -----------------------------------------------------------------------------

    @functools.cached_property
    def _routes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        return _best_routes(self)

    def bandwidth_matrix_bytes_per_s(self) -> np.ndarray:
        """n x n bandwidth of the best route between devices (its slowest link), inf on the diagonal."""
        bw, _, _, _ = self._routes
        n = self.num_devices
        out = bw[:n, :n].copy()
        np.fill_diagonal(out, np.inf)
        return out

    def latency_matrix_s(self) -> np.ndarray:
        """n x n latency of the best route between devices (sum over its hops), 0 on the diagonal."""
        _, lat, _, _ = self._routes
        n = self.num_devices
        out = lat[:n, :n].copy()
        np.fill_diagonal(out, 0.0)
        return out

    def route(self, src: int | str, dst: int | str) -> tuple[str, ...]:
        """Node names along the best route from ``src`` to ``dst`` (both included).

        Example:
          >>> from perfjax.placement import platform
          >>> platform("4xa100-pcie").route("gpu0", "gpu3")
          ('gpu0', 'pcie-root', 'gpu3')
        """
        _, _, nxt, nodes = self._routes
        i, j = self.index(src), self.index(dst)
        path = [i]
        while path[-1] != j:
            path.append(int(nxt[path[-1], j]))
        return tuple(nodes[k] for k in path)

    def route_links(self, src: int | str, dst: int | str) -> tuple[tuple[str, str], ...]:
        """Directed hops ``(from, to)`` of the best route."""
        path = self.route(src, dst)
        return tuple(itertools.pairwise(path))

    def link(self, a: str, b: str) -> Link:
        """The link between nodes ``a`` and ``b`` (either direction)."""
        table = self._link_table
        if (a, b) in table:
            return table[(a, b)]
        raise PlatformError(f"platform {self.name!r} has no link between {a!r} and {b!r}.")

    @functools.cached_property
    def _link_table(self) -> dict[tuple[str, str], Link]:
        table = {}
        for link in self.links:
            table[(link.src, link.dst)] = link
            table[(link.dst, link.src)] = link
        return table

    def transfer_time_s(self, src: int | str, dst: int | str, nbytes: Any) -> Any:
        """Time to move ``nbytes`` from ``src`` to ``dst``: route latency + bytes / route bandwidth,
        0 on the same device. ``nbytes`` may be a jax array (the result is then differentiable)."""
        i, j = self.index(src), self.index(dst)
        if i == j:
            return 0.0
        bw, lat, _, _ = self._routes
        return float(lat[i, j]) + nbytes / float(bw[i, j])

    # ---- output -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "devices": {n: s.name for n, s in zip(self.device_names, self.specs)},
            "switches": list(self.switches),
            "links": [dataclasses.asdict(link) for link in self.links],
        }

    def to_dataframe(self):
        """One row per link."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(link) for link in self.links])

    def table(self):
        from rich.console import Group
        from rich.table import Table

        head = Table(title=f"platform {self.name}", show_header=False, box=None)
        head.add_column(style="bold")
        head.add_column()
        if self.description:
            head.add_row("description", self.description)
        head.add_row(
            "devices", f"{self.num_devices} ({', '.join(sorted(set(s.name for s in self.specs)))})"
        )
        if self.switches:
            head.add_row("switches", ", ".join(self.switches))
        head.add_row("links", str(len(self.links)))
        devs = Table(title="devices")
        for col in ("#", "instance", "device", "family", "memory"):
            devs.add_column(col, justify="right" if col in ("#", "memory") else "left")
        for i, (n, s) in enumerate(zip(self.device_names, self.specs)):
            devs.add_row(str(i), n, s.name, s.family, fmt_count(s.memory_bytes) + "B")
        links = Table(title="links (full duplex; bandwidth per direction)")
        for col in ("src", "dst", "kind", "bandwidth", "latency"):
            links.add_column(col, justify="right" if col in ("bandwidth", "latency") else "left")
        shown = self.links[:40]
        for link in shown:
            links.add_row(
                link.src,
                link.dst,
                link.kind,
                fmt_count(link.bandwidth_bytes_per_s) + "B/s",
                fmt_time(link.latency_s),
            )
        parts = [head, devs, links]
        if len(self.links) > len(shown):
            parts.append(f"... {len(self.links) - len(shown)} more links")
        if self.num_devices <= 16:
            bw = self.bandwidth_matrix_bytes_per_s()
            mat = Table(title="best-route bandwidth (GB/s)")
            mat.add_column("from \\ to")
            for n in self.device_names:
                mat.add_column(n, justify="right")
            for i, n in enumerate(self.device_names):
                mat.add_row(
                    n, *("-" if i == j else f"{bw[i, j] / 1e9:.4g}" for j in range(len(bw)))
                )
            parts.append(mat)
        return Group(*parts)

    def __str__(self) -> str:

        return render(self.table())

    def __repr__(self) -> str:
        return (
            f"Platform(name={self.name!r}, devices={self.num_devices}, links={len(self.links)}, "
            f"switches={len(self.switches)})"
        )


# ---------------------------------------------------------------------------------------------
# routing: widest path first, then lowest latency (exact for any graph, by bandwidth levels)
# ---------------------------------------------------------------------------------------------

# A tiny per-hop cost added to latencies while routing, so that equal-latency routes prefer
# fewer hops (it is removed from the reported latency).
_HOP_TIEBREAK_S = 1e-15


def _best_routes(p: Platform) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """All-pairs best routes over devices and switches: (bandwidth, latency, next hop, nodes).

    For each distinct link bandwidth b (highest first), Floyd-Warshall on the links of at least b
    gives the lowest-latency routes whose bottleneck is >= b; a pair takes the first level that
    connects it, which is the widest route and, among the widest, the lowest-latency one.
    """
    from scipy.sparse.csgraph import csgraph_from_dense, floyd_warshall

    nodes = [*p.device_names, *p.switches]
    pos = {n: i for i, n in enumerate(nodes)}
    n = len(nodes)
    bw = np.zeros((n, n))
    lat = np.full((n, n), np.inf)
    nxt = np.tile(np.arange(n), (n, 1))
    done = np.eye(n, dtype=bool)
    np.fill_diagonal(bw, np.inf)
    np.fill_diagonal(lat, 0.0)
    for level in sorted({link.bandwidth_bytes_per_s for link in p.links}, reverse=True):
        d = np.full((n, n), np.inf)
        for link in p.links:
            if link.bandwidth_bytes_per_s >= level:
                a, b = pos[link.src], pos[link.dst]
                d[a, b] = d[b, a] = link.latency_s + _HOP_TIEBREAK_S
        # null_value=inf: from a dense matrix scipy would drop weights within 1e-8 of zero.
        graph = csgraph_from_dense(d, null_value=np.inf)
        d, pred = floyd_warshall(graph, directed=True, return_predecessors=True)
        new = np.isfinite(d) & ~done
        bw[new] = level
        # The links are symmetric, so the hop after i towards j is the hop before i from j.
        nxt[new] = pred.T[new]
        done |= new
    # Exact latencies (without the tie-break) by walking each route.
    link_lat = {}
    for link in p.links:
        a, b = pos[link.src], pos[link.dst]
        link_lat[(a, b)] = link_lat[(b, a)] = link.latency_s
    for i in range(n):
        for j in range(n):
            if i != j and done[i, j]:
                total, k = 0.0, i
                while k != j:
                    k2 = int(nxt[k, j])
                    total += link_lat[(k, k2)]
                    k = k2
                lat[i, j] = total
    return bw, lat, nxt, nodes


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _validate(p: Platform) -> None:
    where = f"platform {p.name!r}"
    if not p.device_names:
        raise PlatformError(f"{where} has no devices; list at least one under [devices].")
    if len(p.specs) != len(p.device_names):
        raise PlatformError(
            f"{where}: {len(p.device_names)} device names but {len(p.specs)} specs; give one spec per instance."
        )
    for name, spec in zip(p.device_names, p.specs, strict=True):
        if not isinstance(spec, DeviceSpec):
            raise PlatformError(
                f"{where}: device {name!r} must have a DeviceSpec (perfjax.device(...)), got "
                f"{type(spec).__name__} {spec!r}."
            )
        validate_spec(spec, f"{where}, device {name!r}")
    seen: set[str] = set()
    for name in (*p.device_names, *p.switches):
        if name in seen:
            raise PlatformError(
                f"{where}: duplicate name {name!r}; every device instance and switch needs its own name."
            )
        seen.add(name)
    known = set(p.device_names) | set(p.switches)
    pairs: set[frozenset[str]] = set()
    for i, link in enumerate(p.links):
        label = f"{where}: link {i} ({link.src} -> {link.dst})"
        _validate_link(p, label, link, known)
        pair = frozenset((link.src, link.dst))
        if pair in pairs:
            raise PlatformError(
                f"{label} duplicates an earlier link between the same nodes; merge them into one link "
                "(sum the bandwidths of parallel lanes)."
            )
        pairs.add(pair)
    _check_connected(p, known)


def _validate_link(p: Platform, label: str, link: Link, known: set[str]) -> None:
    """A link's endpoints exist and differ, its bandwidth and latency are valid numbers and its
    kind is known."""
    missing = [e for e in (link.src, link.dst) if e not in known]
    if missing:
        hints = []
        for m in missing:
            close = difflib.get_close_matches(m, sorted(known), n=1)
            hints.append(f"{m!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PlatformError(
            f"{label} names unknown endpoint(s) {', '.join(hints)}; known devices: "
            f"{', '.join(p.device_names)}"
            + (f"; switches: {', '.join(p.switches)}" if p.switches else "")
            + "."
        )
    if link.src == link.dst:
        raise PlatformError(f"{label} connects a node to itself; remove it.")
    bw = link.bandwidth_bytes_per_s
    if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not math.isfinite(bw) or bw <= 0:
        raise PlatformError(
            f"{label}: bandwidth_bytes_per_s must be a positive finite number of bytes/s, got {bw!r}."
        )
    lt = link.latency_s
    if isinstance(lt, bool) or not isinstance(lt, (int, float)) or not math.isfinite(lt) or lt < 0:
        raise PlatformError(f"{label}: latency_s must be a finite number >= 0 seconds, got {lt!r}.")
    if link.kind not in LINK_KINDS:
        close = difflib.get_close_matches(str(link.kind), LINK_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PlatformError(f"{label}: unknown link kind {link.kind!r}{hint}; valid: {LINK_KINDS}.")


def _check_connected(p: Platform, known: set[str]) -> None:
    """Every device reaches the first one over the links (through switches too)."""
    parent = {n: n for n in known}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for link in p.links:
        parent[find(link.src)] = find(link.dst)
    root = find(p.device_names[0])
    cut = [d for d in p.device_names if find(d) != root]
    if cut:
        raise PlatformError(
            f"platform {p.name!r}: device(s) {', '.join(cut)} are not connected to "
            f"{p.device_names[0]}; add links (or a [topology]) that reach them."
        )


# ---------------------------------------------------------------------------------------------
# building from files and mappings
# ---------------------------------------------------------------------------------------------


def _spec_for(platform_name: str, instance: str, device_name: Any) -> DeviceSpec:
    if isinstance(device_name, DeviceSpec):
        return validate_spec(device_name, f"platform {platform_name!r}, device {instance!r}")
    if not isinstance(device_name, str):
        raise PlatformError(
            f"platform {platform_name!r}: device {instance!r} must name a catalog device (a string such as "
            f"'h100'), got {device_name!r}."
        )
    try:
        return get_device(device_name)
    except ValueError:
        close = difflib.get_close_matches(device_name.lower(), catalog_devices(), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise PlatformError(
            f"platform {platform_name!r}: device {instance!r} names unknown catalog device "
            f"{device_name!r}.{hint} perfjax.devices() lists the catalog."
        ) from None


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlatformError(f"{where}: {key} must be a number, got {value!r}.")
    return float(value)


def _expand_devices(name: str, table: Any) -> tuple[list[str], list[DeviceSpec]]:
    if not isinstance(table, Mapping) or not table:
        raise PlatformError(
            f"platform {name!r}: [devices] must be a table of instance name -> catalog device "
            '(gpu0 = "h100") or -> {{ device = "h100", count = 8 }}.'
        )
    names: list[str] = []
    specs: list[DeviceSpec] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            unknown = set(value) - {"device", "count"}
            if "device" not in value or unknown:
                raise PlatformError(
                    f'platform {name!r}: devices.{key} must be {{ device = "<catalog name>", count = N }}, '
                    f"got {dict(value)!r}."
                )
            count = value.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise PlatformError(
                    f"platform {name!r}: devices.{key}.count must be a positive integer, got {count!r}."
                )
            spec = _spec_for(name, str(key), value["device"])
            for i in range(count):
                names.append(f"{key}{i}" if count > 1 or "count" in value else str(key))
                specs.append(spec)
        else:
            names.append(str(key))
            specs.append(_spec_for(name, str(key), value))
    return names, specs


def _topology_links(
    name: str, topo: Any, device_names: list[str], switches: list[str]
) -> tuple[list[Link], dict[str, Any]]:
    where = f"platform {name!r}: [topology]"
    if not isinstance(topo, Mapping):
        raise PlatformError(
            f"{where} must be a table with kind = one of {TOPOLOGIES}, got {topo!r}."
        )
    kind = topo.get("kind")
    if kind not in TOPOLOGIES:
        close = difflib.get_close_matches(str(kind), TOPOLOGIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PlatformError(f"{where}: unknown kind {kind!r}{hint}; valid: {TOPOLOGIES}.")
    allowed = {
        "kind",
        "devices",
        "bandwidth_bytes_per_s",
        "latency_s",
        "link_kind",
        "dims",
        "switch",
        "host",
    }
    unknown = set(topo) - allowed
    if unknown:
        raise PlatformError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(allowed)}.")
    for key in ("bandwidth_bytes_per_s", "latency_s"):
        if key not in topo:
            raise PlatformError(f"{where} ({kind}) needs {key}.")
    bw = _number(where, "bandwidth_bytes_per_s", topo["bandwidth_bytes_per_s"])
    lat = _number(where, "latency_s", topo["latency_s"])
    link_kind = str(topo.get("link_kind", _DEFAULT_KIND[kind]))
    members = list(topo.get("devices", device_names))
    for m in members:
        if m not in device_names:
            close = difflib.get_close_matches(str(m), device_names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PlatformError(f"{where}: devices lists unknown device {m!r}{hint}.")
    info: dict[str, Any] = {
        "kind": kind,
        "devices": tuple(members),
        "bandwidth_bytes_per_s": bw,
        "latency_s": lat,
        "link_kind": link_kind,
    }
    links: list[Link] = []
    if kind == "nvswitch":
        # Each device has one port into a non-blocking switch: bandwidth per device per direction.
        switch = str(topo.get("switch", "nvswitch"))
        if switch not in switches:
            switches.append(switch)
        links = [Link(m, switch, bw, lat, link_kind) for m in members]
        info["switch"] = switch
    elif kind == "pcie-tree":
        # Every device hangs off one root (a host CPU instance, or a root-complex switch node).
        root = str(topo.get("host", "pcie-root"))
        if root not in device_names and root not in switches:
            switches.append(root)
        links = [Link(m, root, bw, lat, link_kind) for m in members if m != root]
        info["host"] = root
    elif kind == "ring":
        if len(members) < 2:
            raise PlatformError(f"{where}: a ring needs at least 2 devices, got {len(members)}.")
        pairs = list(itertools.pairwise(members))
        if len(members) > 2:
            pairs.append((members[-1], members[0]))
        links = [Link(a, b, bw, lat, link_kind) for a, b in pairs]
    elif kind == "fully-connected":
        links = [Link(a, b, bw, lat, link_kind) for a, b in itertools.combinations(members, 2)]
    elif kind == "torus":
        dims = topo.get("dims")
        links = _torus_links(where, dims, members, bw, lat, link_kind)
        info["dims"] = tuple(int(d) for d in dims)
    return links, info


def _torus_links(
    where: str, dims: Any, members: list[str], bw: float, lat: float, link_kind: str
) -> list[Link]:
    """Links between the neighbours of a ``dims`` torus of ``members`` (row-major order)."""
    if (
        not isinstance(dims, Sequence)
        or not dims
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims)
    ):
        raise PlatformError(
            f"{where}: torus needs dims = [positive ints], e.g. [2, 2, 2]; got {dims!r}."
        )
    if math.prod(dims) != len(members):
        raise PlatformError(
            f"{where}: torus dims {list(dims)} hold {math.prod(dims)} devices but {len(members)} are "
            "listed; make the product of dims equal the device count."
        )
    links = []
    seen = set()
    for flat in range(len(members)):
        coords = np.unravel_index(flat, dims)
        for axis, size in enumerate(dims):
            if size < 2:
                continue
            nb = list(coords)
            nb[axis] = (coords[axis] + 1) % size  # wraparound closes the ring when size > 2
            other = int(np.ravel_multi_index(nb, dims))
            pair = frozenset((flat, other))
            if pair not in seen:
                seen.add(pair)
                links.append(Link(members[flat], members[other], bw, lat, link_kind))
    return links


def from_mapping(data: Mapping[str, Any], *, name: str | None = None) -> Platform:
    """Builds a platform from a mapping with the layout of a platform file.

    Example:
      >>> p = from_mapping({"name": "pair", "devices": {"a": "h100", "b": "h100"},
      ...     "links": [{"src": "a", "dst": "b", "bandwidth_bytes_per_s": 1e9, "latency_s": 1e-6,
      ...                "kind": "nvlink"}]})
      >>> p.transfer_time_s("a", "b", 1e9)
      1.000001
    """
    if not isinstance(data, Mapping):
        raise PlatformError(f"a platform must be a table/mapping, got {type(data).__name__}.")
    pname = str(data.get("name", name or "platform"))
    allowed = {"name", "description", "source", "devices", "links", "topology", "switches"}
    unknown = set(data) - allowed
    if unknown:
        hints = {k: difflib.get_close_matches(k, sorted(allowed), n=1) for k in sorted(unknown)}
        text = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items()
        )
        raise PlatformError(f"platform {pname!r}: unknown key(s) {text}; valid: {sorted(allowed)}.")
    if "devices" not in data:
        raise PlatformError(
            f"platform {pname!r} needs a [devices] table (instance name -> catalog device)."
        )
    device_names, specs = _expand_devices(pname, data["devices"])
    switches = [str(s) for s in data.get("switches", [])]
    links: list[Link] = []
    topologies = []
    topo = data.get("topology")
    if topo is not None:
        for t in topo if isinstance(topo, (list, tuple)) else [topo]:
            tl, info = _topology_links(pname, t, device_names, switches)
            links.extend(tl)
            topologies.append(info)
    for i, entry in enumerate(data.get("links", [])):
        where = f"platform {pname!r}: links[{i}]"
        if not isinstance(entry, Mapping):
            raise PlatformError(
                f"{where} must be a table with src, dst, bandwidth_bytes_per_s, latency_s, kind."
            )
        need = ("src", "dst", "bandwidth_bytes_per_s")
        missing = [k for k in need if k not in entry]
        if missing:
            raise PlatformError(
                f"{where} is missing {missing}; a link needs {list(need)} (+ latency_s, kind)."
            )
        extra = set(entry) - {"src", "dst", "bandwidth_bytes_per_s", "latency_s", "kind"}
        if extra:
            raise PlatformError(f"{where}: unknown key(s) {sorted(extra)}.")
        links.append(
            Link(
                str(entry["src"]),
                str(entry["dst"]),
                _number(where, "bandwidth_bytes_per_s", entry["bandwidth_bytes_per_s"]),
                _number(where, "latency_s", entry.get("latency_s", 0.0)),
                str(entry.get("kind", "pcie")),
            )
        )
    if not links and len(device_names) > 1:
        raise PlatformError(
            f"platform {pname!r}: devices {', '.join(device_names[1:])} are not connected to "
            f"{device_names[0]}; add [[links]] or a [topology] table."
        )
    return Platform(
        name=pname,
        device_names=tuple(device_names),
        specs=tuple(specs),
        links=tuple(links),
        switches=tuple(switches),
        topologies=tuple(topologies),
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
    )


def platforms() -> list[str]:
    """Names of the built-in platforms.

    Example:
      >>> from perfjax.placement import platforms
      >>> "8xh100-nvlink" in platforms()
      True
    """
    return sorted(p.stem for p in _BUILTIN_DIR.glob("*.toml"))


@functools.lru_cache(maxsize=32)
def _builtin(name: str) -> Platform:
    return load_platform_file(_BUILTIN_DIR / f"{name}.toml")


def load_platform_file(path: str | pathlib.Path) -> Platform:
    """Reads a platform from a TOML, YAML or JSON file (the name defaults to the file's stem)."""
    path = pathlib.Path(path)
    data = read_mapping(path, what="platform file")
    return from_mapping(data, name=path.stem)


def platform(name_or_path: str | pathlib.Path | Mapping[str, Any] | Platform) -> Platform:
    """A platform by built-in name, file path (TOML/YAML/JSON) or mapping.

    Unknown names raise ``ValueError`` listing the closest built-ins.

    Example:
      >>> from perfjax.placement import platform
      >>> p = platform("tpu-v4-2x2x2")
      >>> p.num_devices, float(p.bandwidth_matrix_bytes_per_s()[0, 1]) / 1e9
      (8, 45.0)
    """
    if isinstance(name_or_path, Platform):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return from_mapping(name_or_path)
    if isinstance(name_or_path, pathlib.Path) or (
        isinstance(name_or_path, str) and name_or_path.lower().endswith(SUFFIXES)
    ):
        return load_platform_file(name_or_path)
    if not isinstance(name_or_path, str):
        raise TypeError(
            f"platform must be a built-in name, a file path, a mapping or a Platform, got "
            f"{type(name_or_path).__name__}."
        )
    key = name_or_path.strip().lower()
    if key in platforms():
        return _builtin(key)
    close = difflib.get_close_matches(key, platforms(), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise PlatformError(
        f"unknown platform {name_or_path!r}.{hint} Built-ins: {', '.join(platforms())}; or pass the "
        "path of a .toml/.yaml/.json platform file."
    )
