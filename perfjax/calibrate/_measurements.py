"""Measured timings: a validated table of (workload, device, time) rows, read from and written to CSV.

CSV layout: optional ``# key: value`` metadata lines, then a header with at least ``workload``
(a :class:`Workload` as JSON), ``device`` and ``time_s``; optional ``kind``, ``rel_spread``
(p90-p10 over median), ``repeats``, ``source``. A ``time_ms`` column is accepted in place of
``time_s`` and converted.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import math
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from perfjax._errors import InputError
from perfjax._io import atomic_write_text
from perfjax.calibrate._workloads import KINDS, Workload
from perfjax.devicemodels import device as get_device

_COLUMNS = ("workload", "kind", "device", "time_s", "rel_spread", "repeats", "source")

#: The metadata :func:`perfjax.calibrate.measure` records that two runs' timings must share to
#: be fitted together: the same machine (as far as it describes itself), software and suites.
POOL_KEYS = ("device", "cpu", "cpu_id", "cores", "threads_per_core", "platform", "python", "jax",
             "jaxlib", "perfjax", "suites", "size")  # fmt: skip
#: Earlier timings older than this many days are not fitted with a new run's (a kernel, BIOS or
#: cloud-host change leaves no trace in the metadata).
POOL_MAX_AGE_DAYS = 7.0


def _date(metadata: Mapping[str, str]) -> datetime.datetime | None:
    try:
        date = datetime.datetime.fromisoformat(str(metadata.get("date", "")))
    except ValueError:
        return None
    return date if date.tzinfo else date.replace(tzinfo=datetime.timezone.utc)


def pool(new: Measurements, earlier: Measurements) -> Measurements:
    """One run's timings completed by an earlier run's: of every point timed in both, the faster
    timing (with its spread), and the points timed in one of them; ``new``'s metadata.

    The rule a run applies to its own rounds (a slow spell of a shared machine slows a timing,
    nothing makes one faster) applied across runs, so a spell that lasted through a suite in one
    run leaves the fit. Check :func:`why_not_pool` first: timings from another machine or other
    software must not be mixed.

    Example:
      >>> from perfjax.calibrate import Measurements, Workload, pool
      >>> a, b = Workload.of("matmul", m=64, k=64, n=64), Workload.of("matmul", m=8, k=8, n=8)
      >>> new = Measurements.from_rows([dict(workload=a, device="host", time_s=3e-5)])
      >>> old = Measurements.from_rows([dict(workload=a, device="host", time_s=2e-5),
      ...                               dict(workload=b, device="host", time_s=4e-6)])
      >>> [r.time_s for r in pool(new, old)]
      [2e-05, 4e-06]
    """
    key = lambda r: (r.program, r.device)
    earlier_rows = {key(r): r for r in earlier.rows}
    rows = []
    for r in new.rows:
        e = earlier_rows.pop(key(r), None)
        rows.append(e if e is not None and e.time_s < r.time_s else r)
    return Measurements((*rows, *earlier_rows.values()), dict(new.metadata))


def why_not_pool(
    new: Mapping[str, str], earlier: Mapping[str, str], *, max_age_days: float = POOL_MAX_AGE_DAYS
) -> str | None:
    """Why the timings described by metadata ``earlier`` should not be fitted together with
    ``new``'s (``None``: they can be); both are :func:`perfjax.calibrate.measure` metadata.

    ``perfjax calibrate`` fits a run's timings with the previous run's on the same machine
    (:func:`pool`: per point, the faster of the two), so that a slow spell of a shared machine in
    one run does not move the fit. Earlier timings are kept out when the machine, the software or
    the suites differ (:data:`POOL_KEYS`), or when they are more than ``max_age_days`` older.

    Example:
      >>> from perfjax.calibrate import why_not_pool
      >>> new = {"device": "host", "jax": "0.10.2", "date": "2026-12-06T13:37:07+00:00"}
      >>> why_not_pool(new, {**new, "date": "2026-12-05T21:02:50+00:00"}) is None
      True
      >>> why_not_pool(new, {**new, "jax": "0.9.1"})
      'measured with jax 0.9.1, this run with 0.10.2'
    """
    for key in POOL_KEYS:
        if new.get(key, "") != earlier.get(key, ""):
            return (
                f"measured with {key} {earlier.get(key) or '(unknown)'}, "
                f"this run with {new.get(key) or '(unknown)'}"
            )
    when, now = _date(earlier), _date(new)
    if when is None or now is None:
        return "no date recorded with the timings"
    age_days = (now - when).total_seconds() / 86400.0
    if age_days > max_age_days:
        return f"measured {age_days:.0f} days before this run (more than {max_age_days:g})"
    if age_days < 0:
        return "dated after this run"
    return None


@dataclasses.dataclass(frozen=True)
class Row:
    workload: Workload
    device: str
    time_s: float
    rel_spread: float = float("nan")
    repeats: int = 0
    source: str = ""

    @property
    def kind(self) -> str:
        return self.workload.kind

    @property
    def program(self) -> str:
        return self.workload.id


def _bad_rows(rows: Sequence[int], what: str) -> str:
    shown = ", ".join(str(r) for r in rows[:10]) + (
        f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    )
    return f"{what} in row(s) {shown}"


@dataclasses.dataclass(frozen=True)
class Measurements:
    """Validated measured timings, with the metadata of where they were taken.

    Example:
      >>> from perfjax.calibrate import Measurements, Workload
      >>> w = Workload.of("matmul", m=64, k=64, n=64)
      >>> ms = Measurements.from_rows([dict(workload=w, device="host", time_s=2e-5)])
      >>> len(ms), ms.devices()
      (1, ['host'])
    """

    rows: tuple[Row, ...]
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def devices(self) -> list[str]:
        return sorted({r.device for r in self.rows})

    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.rows})

    def programs(self) -> list[str]:
        return sorted({r.program for r in self.rows})

    def select(
        self, *, devices: Iterable[str] | None = None, kinds: Iterable[str] | None = None
    ) -> Measurements:
        devices = set(devices) if devices is not None else None
        kinds = set(kinds) if kinds is not None else None
        rows = tuple(
            r
            for r in self.rows
            if (devices is None or r.device in devices) and (kinds is None or r.kind in kinds)
        )
        return Measurements(rows, self.metadata)

    def __add__(self, other: Measurements) -> Measurements:
        meta = {
            **self.metadata,
            **{k: v for k, v in other.metadata.items() if k not in self.metadata},
        }
        return Measurements(self.rows + other.rows, meta)

    @staticmethod
    def from_rows(
        rows: Iterable[Mapping[str, Any] | Row], metadata: Mapping[str, str] | None = None
    ) -> Measurements:
        """Builds and validates measurements from dicts (``workload`` a :class:`Workload` or its JSON)."""
        out, bad_time, bad_device, bad_workload = [], [], {}, []
        for i, r in enumerate(rows):
            if isinstance(r, Row):
                r = dataclasses.asdict(r) | {"workload": r.workload}
            w = r.get("workload")
            try:
                w = w if isinstance(w, Workload) else Workload.from_json(str(w))
            except Exception as e:  # bad JSON, unknown kind or builder
                bad_workload.append((i, str(e)))
                continue
            t = r.get("time_s")
            try:
                t = float(t)
            except (TypeError, ValueError):
                t = float("nan")
            if not math.isfinite(t) or t <= 0:
                bad_time.append(i)
                continue
            device = str(r.get("device", "")).strip()
            try:
                device = "host" if device == "host" else get_device(device).name
            except ValueError as e:
                bad_device.setdefault(device, (i, str(e)))
                continue
            spread = r.get("rel_spread", float("nan"))
            out.append(Row(w, device, t, float(spread) if spread not in (None, "") else float("nan"),
                           int(float(r.get("repeats") or 0)), str(r.get("source") or "")))  # fmt: skip
        problems = []
        if bad_time:
            problems.append(
                _bad_rows(
                    bad_time,
                    "time_s must be a positive finite number of seconds (NaN, zero or negative)",
                )
            )
        if bad_workload:
            problems.append(
                _bad_rows(
                    [i for i, _ in bad_workload], f"unreadable workload ({bad_workload[0][1]})"
                )
            )
        for _name, (i, msg) in bad_device.items():
            problems.append(f"row {i}: {msg}")
        if problems:
            raise InputError("invalid measurements: " + "; ".join(problems))
        if not out:
            raise InputError("no measurements: the table is empty.")
        return Measurements(tuple(out), dict(metadata or {}))

    # ---- CSV ------------------------------------------------------------------------------

    def to_csv(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes metadata lines and rows; atomically (a crash never leaves half a file)."""
        import csv

        path = pathlib.Path(path)
        buf = io.StringIO()
        for k, v in self.metadata.items():
            buf.write(f"# {k}: {v}\n")
        w = csv.writer(buf)
        w.writerow(_COLUMNS)
        for r in self.rows:
            w.writerow(
                [
                    r.workload.to_json(),
                    r.kind,
                    r.device,
                    repr(r.time_s),
                    repr(r.rel_spread),
                    r.repeats,
                    r.source,
                ]
            )
        return atomic_write_text(path, buf.getvalue())

    @staticmethod
    def from_csv(path: str | os.PathLike) -> Measurements:
        """Reads a CSV written by :meth:`to_csv` (or by hand, same columns), validating every row."""
        import csv

        path = pathlib.Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no measurements file at {str(path)!r}")
        text = path.read_text()
        if not text.strip():
            raise InputError(f"measurements file {str(path)!r} is empty.")
        meta, lines = {}, []
        for line in text.splitlines():
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                meta[key.strip()] = value.strip()
            elif line.strip():
                lines.append(line)
        if not lines:
            raise InputError(f"measurements file {str(path)!r} has no header or rows.")
        reader = csv.reader(lines)
        header = [h.strip() for h in next(reader)]
        if "time_s" not in header and "time_ms" not in header:
            raise InputError(
                f"{path.name}: no time column; expected 'time_s' (seconds) or 'time_ms' (milliseconds), "
                f"got columns {header}."
            )
        if "time_s" in header and "time_ms" in header:
            raise InputError(
                f"{path.name}: both 'time_s' and 'time_ms' columns; keep one so the unit is unambiguous."
            )
        for required in ("workload", "device"):
            if required not in header:
                raise InputError(f"{path.name}: missing column {required!r}; columns are {header}.")
        rows, truncated = [], []
        for i, values in enumerate(reader):
            if len(values) != len(header):
                truncated.append(i)
                continue
            d = dict(zip(header, values, strict=True))
            if "time_ms" in d:
                try:
                    d["time_s"] = float(d.pop("time_ms")) / 1e3
                except ValueError:
                    d["time_s"] = float("nan")
            if "kind" in d and d["kind"] and d["kind"] not in KINDS:
                raise InputError(
                    f"{path.name}: row {i}: unknown op kind {d['kind']!r}; expected one of {KINDS}."
                )
            rows.append(d)
        if truncated:
            raise InputError(
                f"{path.name}: "
                + _bad_rows(
                    truncated, f"wrong number of fields (expected {len(header)}; truncated file?)"
                )
            )
        return Measurements.from_rows(rows, meta)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(
            dict(program=[r.program for r in self.rows], kind=[r.kind for r in self.rows],
                 device=[r.device for r in self.rows], time_s=[r.time_s for r in self.rows],
                 rel_spread=[r.rel_spread for r in self.rows], source=[r.source for r in self.rows])
        )  # fmt: skip
