"""Files: the cache directory, atomic writes, and reading TOML / JSON / YAML descriptions.

Example:
  >>> import pathlib, tempfile
  >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.toml", "x = 1")
  >>> read_mapping(p, what="example file")
  {'x': 1}
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

from perfjax._errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

#: File types :func:`read_mapping` reads.
SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def cache_dir() -> pathlib.Path:
    """Where perfjax keeps this machine's files (the host calibration, traced programs):
    ``$PERFJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfjax``, else ``~/.cache/perfjax``.

    Example:
      >>> cache_dir().name in ("perfjax",) or "PERFJAX_CACHE_DIR" in os.environ
      True
    """
    if os.environ.get("PERFJAX_CACHE_DIR"):
        return pathlib.Path(os.environ["PERFJAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "perfjax"


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Writes ``text`` to ``path`` through a temporary file and a rename, creating the folder:
    a crash never leaves a half-written file (readers see the old file or the new one)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def parse_mapping(text: str, suffix: str, *, what: str) -> Any:
    """Parses ``text`` as TOML, JSON or YAML by ``suffix``. ``what`` names the source in errors
    (e.g. ``"device spec file 'npu.toml'"``); a parse failure is a ``ValueError`` naming it."""
    suffix = suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"unknown file type {suffix!r} for {what}; use .toml, .json or .yaml.")
    if suffix in (".yaml", ".yml"):
        try:
            import yaml  # optional dependency, imported only for YAML files
        except ImportError:
            raise InputError(
                "reading YAML needs PyYAML: pip install pyyaml (or use TOML/JSON)."
            ) from None
        parse = yaml.safe_load
    else:
        parse = tomllib.loads if suffix == ".toml" else json.loads
    try:
        return parse(text)
    except Exception as e:  # tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError
        raise InputError(f"could not parse {what}: {e}") from None


def read_mapping(path: str | os.PathLike, *, what: str = "file") -> Mapping[str, Any]:
    """Reads a TOML / JSON / YAML file that must hold a table (mapping).

    Errors name the file: a missing file is ``FileNotFoundError``; an empty file, an unknown type,
    a parse error or a top level that is not a table is ``ValueError``.
    """
    path = pathlib.Path(path)
    where = f"{what} {str(path)!r}"
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    text = path.read_text()
    if not text.strip():
        raise InputError(f"{where} is empty.")
    data = parse_mapping(text, path.suffix, what=where)
    if not isinstance(data, Mapping):
        raise InputError(f"{where} must hold a table/mapping, got {type(data).__name__}.")
    return data
