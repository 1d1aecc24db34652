"""This machine's CPU as the operating system describes it: model, ISA flags, clock, usable
cores, caches, memory and load. Linux reads ``/proc`` and ``/sys``; elsewhere what ``platform``
and ``os`` know.

Example:
  >>> info = cpu_info()
  >>> info.cores >= 1 and info.model != ""
  True
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import platform
import re


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    model: str
    #: ISA feature flags (``avx2``, ``avx512f``, ``amx_bf16`` ...; empty where unknown).
    flags: frozenset[str]
    #: The clock ``/proc/cpuinfo`` reports (0 when unknown).
    mhz: float
    #: Cores this process may run on (its affinity), not the machine's count.
    cores: int
    #: Data/unified cache sizes by level, in bytes.
    caches: dict[int, float]
    memory_bytes: float
    #: Hardware threads sharing the first core (2 with SMT / Hyper-Threading: two "cores" that
    #: share one core's FMA units); 0 where the OS does not say.
    threads_per_core: int = 0
    #: The processor's generation as the OS reports it (vendor, family, model, stepping) and
    #: its caches: a cloud VM often shows one model name ("AMD EPYC") for several generations
    #: of processor, whose timings must not be mixed ("" where unknown).
    identity: str = ""


def _read(path: str | pathlib.Path) -> str:
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return ""


def _size(text: str) -> float:
    m = re.match(r"(\d+)\s*([KMG]?)", text.strip())
    if not m:
        return 0.0
    return float(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> str:
    """The 1-minute load average (other processes competing for the CPU), or "" if unknown."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return ""


def cpu_list_size(text: str) -> int:
    """How many CPUs a Linux CPU list names ("0-1" and "0,4" are 2, "3" is 1; "" is 0).

    Example:
      >>> cpu_list_size("0-3,8")
      5
    """
    n = 0
    for part in text.strip().split(","):
        lo, dash, hi = part.partition("-")
        if lo.strip().isdigit():
            n += int(hi) - int(lo) + 1 if dash and hi.strip().isdigit() else 1
    return n


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    flags: set[str] = set()
    model, mhz = platform.processor() or platform.machine() or "unknown", 0.0
    ident: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and value.strip():
            model = value.strip()
        elif key == "cpu MHz" and not mhz:
            mhz = float(value)
        elif key in _IDENTITY_KEYS and key not in ident:
            ident[key] = value.strip()
    caches = {}
    for index in sorted(pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind = _read(index / "level").strip(), _read(index / "type").strip()
        if kind in ("Data", "Unified") and level:
            caches[int(level)] = _size(_read(index / "size"))
    m = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    memory = float(m.group(1)) * 1024 if m else 0.0
    siblings = _read("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    return CpuInfo(
        model,
        frozenset(flags),
        mhz,
        usable_cores(),
        caches,
        memory,
        cpu_list_size(siblings),
        identity(ident, caches),
    )


#: The ``/proc/cpuinfo`` fields that name a processor's generation (x86: vendor, family,
#: model, stepping; Arm: implementer, part, variant, revision).
_IDENTITY_KEYS = ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part",
                  "CPU variant", "CPU revision")  # fmt: skip


def identity(fields: dict[str, str], caches: dict[int, float]) -> str:
    """A processor's generation and caches as one line, from ``/proc/cpuinfo`` fields and cache
    sizes by level (bytes); "" where neither is known.

    Example:
      >>> identity({"vendor_id": "AuthenticAMD", "cpu family": "26", "model": "2",
      ...           "stepping": "1"}, {1: 48 * 1024, 2: 1024**2, 3: 32 * 1024**2})
      'AuthenticAMD cpu family 26 model 2 stepping 1; caches L1 48 KiB, L2 1024 KiB, L3 32768 KiB'
    """
    parts = [
        f"{k} {fields[k]}" if k != "vendor_id" else fields[k] for k in _IDENTITY_KEYS if k in fields
    ]
    text = " ".join(parts)
    if caches:
        sizes = ", ".join(
            f"L{level} {size / 1024:.0f} KiB" for level, size in sorted(caches.items())
        )
        text = f"{text}; caches {sizes}" if text else f"caches {sizes}"
    return text


def idle_policy(root: str | pathlib.Path = "/sys") -> str:
    """How this machine's cores idle, as Linux's cpuidle reports it under ``root``: the driver
    and governor, and for a VM's ``haltpoll`` driver how long a core polls before it halts
    (``guest_halt_poll_ns``; 0: it halts at once, so work handed to another thread waits for a
    halted core to be woken). "" where the OS does not say. Small calls that hand work to
    XLA:CPU's worker threads depend on it; a calibration records it with its timings.

    Example:
      >>> isinstance(idle_policy(), str)
      True
      >>> idle_policy("/nonexistent")
      ''
    """
    root = pathlib.Path(root)
    idle = root / "devices" / "system" / "cpu" / "cpuidle"
    driver = _read(idle / "current_driver").strip()
    governor = (_read(idle / "current_governor").strip()
                or _read(idle / "current_governor_ro").strip())  # fmt: skip
    parts = [f"driver {driver}"] if driver else []
    if governor:
        parts.append(f"governor {governor}")
    poll = _read(root / "module" / "haltpoll" / "parameters" / "guest_halt_poll_ns").strip()
    if poll:
        parts.append(f"guest_halt_poll_ns {poll}")
    return ", ".join(parts)
