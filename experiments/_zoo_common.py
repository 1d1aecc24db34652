"""What the zoo study scripts (``zoo_devices``, ``zoo_batch``, ``zoo_fusion``, ``zoo_design``)
share: the standard zoo configurations and the ``--quick`` / ``--out`` command line."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (zoo model, config) at their standard published sizes.
MODELS = (
    ("mlp", "mnist"),
    ("resnet18", "imagenet"),
    ("mobilenet_v2", "1.0"),
    ("bert", "base"),
    ("gpt2", "small"),
)


def parse_cli(doc: str, quick_help: str, argv: list[str] | None) -> tuple[argparse.Namespace, Path]:
    """``--quick`` (smoke run into a temp dir unless ``--out``) and ``--out`` (default docs/zoo)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, default=None, help="default docs/zoo (quick: a temp dir)")
    a = ap.parse_args(argv)
    out = a.out or (Path(tempfile.mkdtemp()) if a.quick else ROOT / "docs" / "zoo")
    out.mkdir(parents=True, exist_ok=True)
    return a, out
