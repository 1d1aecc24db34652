"""The device catalog: built-in specs (``catalog.toml``), user files, and this machine (``host``)."""

from __future__ import annotations

import difflib
import functools
import os
import pathlib
import platform

from perfjax._errors import InputError
from perfjax._host import cpu_info
from perfjax.devicemodels._spec import DeviceSpec, load_spec_file, validate

_CATALOG_FILE = pathlib.Path(__file__).with_name("catalog.toml")
_user: dict[str, DeviceSpec] = {}


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, DeviceSpec]:
    return {s.name: s for s in load_spec_file(_CATALOG_FILE)} if _CATALOG_FILE.exists() else {}


def _all() -> dict[str, DeviceSpec]:
    out = dict(_builtin())
    out.update(_user)
    return out


def _aliases() -> dict[str, str]:
    table = {}
    for name, spec in _all().items():
        for alias in spec.aliases:
            table[alias.lower()] = name
    return table


def devices(family: str | None = None) -> list[str]:
    """Names of all known devices (built-in, registered, and ``host``), optionally of one family.

    Example:
      >>> import perfjax
      >>> "h100" in perfjax.devices() and "host" in perfjax.devices()
      True
    """
    names = sorted(_all())
    if family is None or family == "cpu":
        names.append("host")
    if family is not None:
        names = [n for n in names if n == "host" or _all()[n].family == family]
    return names


def device(name: str | DeviceSpec) -> DeviceSpec:
    """The spec of a device by name or alias (case-insensitive); ``"host"`` is this machine.

    A ``DeviceSpec`` is validated and returned as is (every path that takes a device, such as
    ``predict``, ``compare``, ``sensitivity``, ``recommend`` and platforms, goes through here), so a
    negative, zero or NaN rate raises :class:`~perfjax._errors.DeviceSpecError` naming the field
    instead of giving NaN times. Unknown names raise ``ValueError`` listing the closest known names.

    Example:
      >>> import perfjax
      >>> perfjax.device("nvidia-h100").name
      'h100'
      >>> perfjax.device(perfjax.device("h100").replace(memory_bytes_per_s=6e12)).memory_bytes_per_s
      6000000000000.0
    """
    if isinstance(name, DeviceSpec):
        return validate(name)
    if not isinstance(name, str):
        raise TypeError(
            f"device must be a name (str, e.g. 'h100') or a DeviceSpec, got {type(name).__name__} "
            f"{name!r}."
        )
    key = name.strip().lower()
    if key == "host":
        return host_spec()
    table = _all()
    if key in table:
        return table[key]
    aliases = _aliases()
    if key in aliases:
        return table[aliases[key]]
    candidates = [*table, *aliases, "host"]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    close = list(dict.fromkeys(aliases.get(c, c) for c in close))
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(
        f"unknown device {name!r}.{hint} perfjax.devices() lists all {len(table) + 1} known devices."
    )


def register_device(spec: DeviceSpec | str | os.PathLike, *, overwrite: bool = False) -> list[str]:
    """Adds devices from a ``DeviceSpec`` or a TOML/JSON/YAML file; returns their names.

    Example:
      >>> import perfjax
      >>> from perfjax.devicemodels import DeviceSpec
      >>> spec = DeviceSpec(name="my-gpu", family="gpu", matrix_flops_per_s={"bf16": 1e14},
      ...                   memory_bytes_per_s=1e12)
      >>> perfjax.devicemodels.register_device(spec, overwrite=True)
      ['my-gpu']
    """
    specs = [validate(spec)] if isinstance(spec, DeviceSpec) else load_spec_file(spec)
    for s in specs:
        if not overwrite and (s.name in _all() or s.name == "host"):
            raise InputError(
                f"device {s.name!r} already exists; pass overwrite=True to replace it."
            )
    for s in specs:
        _user[s.name] = s
    return [s.name for s in specs]


# ---------------------------------------------------------------------------------------------
# host detection
# ---------------------------------------------------------------------------------------------

# Assumed DRAM bandwidth available per core when it cannot be measured (calibration refines it).
_DRAM_BYTES_PER_S_PER_CORE = 10e9


@functools.lru_cache(maxsize=1)
def host_spec() -> DeviceSpec:
    """This machine's CPU, detected at run time: cores, ISA (AVX2 / AVX-512 / AMX), caches, clock.

    Peaks are derived as cores x clock x FMA units x 2 x SIMD lanes. Memory bandwidth is an
    estimate (10 GB/s per core, at most 200 GB/s) until a host calibration measures it.
    """
    info = cpu_info()
    flags, model, mhz, cores = info.flags, info.model, info.mhz, info.cores
    clock_hz = mhz * 1e6 if mhz else 2.5e9
    if "avx512f" in flags:
        lanes32, isa = 16, "AVX-512"
    elif "avx2" in flags:
        lanes32, isa = 8, "AVX2"
    elif platform.machine() in ("arm64", "aarch64"):
        lanes32, isa = 4, "NEON"
    else:
        lanes32, isa = 4, "SSE"
    fma_units = 2 if ("fma" in flags or isa in ("NEON", "AVX-512")) else 1
    per_cycle32 = fma_units * 2 * lanes32
    vector = {"fp32": cores * clock_hz * per_cycle32, "fp64": cores * clock_hz * per_cycle32 / 2}
    if "avx512_bf16" in flags:
        vector["bf16"] = 2 * vector["fp32"]
    matrix = {}
    if "amx_bf16" in flags:
        # AMX: 1024 bf16 and 2048 int8 operations per cycle per core (Intel's figures, as the catalog).
        matrix["bf16"] = cores * clock_hz * 1024
        if "amx_int8" in flags:
            matrix["int8"] = 2 * matrix["bf16"]
    caches = info.caches
    last_level = caches[max(caches)] if caches else 8 * 1024**2
    mem_total = info.memory_bytes
    bandwidth = min(_DRAM_BYTES_PER_S_PER_CORE * cores, 200e9)
    isa_text = isa + (" + AMX" if matrix else "")
    return validate(
        DeviceSpec(
            name="host",
            family="cpu",
            vendor=model.split()[0] if model else "",
            description=f"{model} ({cores} cores visible, {isa_text}, {clock_hz / 1e9:.2f} GHz)",
            matrix_flops_per_s=matrix,
            vector_flops_per_s=vector,
            memory_bytes_per_s=bandwidth,
            memory_bandwidth_estimated=True,
            memory_bytes=mem_total,
            cache_bytes=last_level,
            # Last-level cache bandwidth: about 32 bytes per cycle per core.
            cache_bytes_per_s=32 * clock_hz * cores,
            num_cores=float(cores),
            clock_hz=clock_hz,
            launch_overhead_s=2e-6,
            tdp_w=10.0 * cores,
            idle_w=2.0 * cores,
            host_link_bytes_per_s=bandwidth,
            matrix_tile=16,
            source="detected at run time from /proc/cpuinfo and /sys/devices/system/cpu; peaks derived "
            "(cores x clock x FMA units x 2 x SIMD lanes); memory bandwidth estimated",
        )
    )
