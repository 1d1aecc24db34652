"""Loads a script of ``experiments/`` as a module, for the tests that check its results."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` imported as ``_exp_<name>`` (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(f"_exp_{name}", EXPERIMENTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
