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


def scatter_axes(lo: float, hi: float):
    """A predicted-vs-measured figure: the y = x line and a +-25% band from ``lo`` to ``hi`` (s).
    Returns ``(plt, fig, ax)``; draw the points, then :func:`finish_scatter`."""
    import numpy as np

    from perfjax._display import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    xs = np.geomspace(lo, hi, 50)
    ax.fill_between(xs, xs / 1.25, xs * 1.25, color="0.87", label="±25%")
    ax.plot(xs, xs, "k--", lw=1, label="y = x")
    return plt, fig, ax


def finish_scatter(plt, fig, ax, lo: float, hi: float, *, xlabel: str, ylabel: str, title: str,
                   path: Path, legend_size: float = 7) -> None:  # fmt: skip
    """Log-log axes over ``[lo, hi]``, labels, legend; saves ``path`` and closes the figure."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=legend_size, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
