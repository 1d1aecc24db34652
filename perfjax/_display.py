"""Rendering results as rich tables (to the terminal or to a string)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
from rich.table import Table


def fmt_count(x: float) -> str:
    """Engineering format: 1.23 G, 456 k."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.4g}"


def _fmt_si(value: float, base: str) -> str:
    for prefix, scale in (("", 1.0), ("m", 1e-3), ("µ", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{base}"
    return f"{value / 1e-9:.3g} n{base}"


def fmt_time(seconds: float) -> str:
    """1.23 ms, 45.6 µs."""
    return _fmt_si(seconds, "s")


def fmt_energy(joules: float) -> str:
    """1.23 mJ, 45.6 µJ."""
    return _fmt_si(joules, "J")


def render(renderable: Any, width: int = 120) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue().rstrip("\n")


def graph_tables(graph, max_rows: int = 40) -> Group:
    stages = graph.stages()
    path = graph.critical_path()
    head = Table(title=f"perfjax.analyze: {graph.name}", show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "ops",
        f"{len(graph.ops)} in {len(stages)} stages (widest: {max((len(s) for s in stages), default=0)} ops)",
    )
    head.add_row("flops", fmt_count(graph.flops))
    head.add_row("transcendentals", fmt_count(graph.transcendentals))
    head.add_row(
        "bytes read / written",
        f"{fmt_count(graph.bytes_read)}B / {fmt_count(graph.bytes_written)}B (unfused)",
    )
    head.add_row("intensity", f"{graph.intensity:.3g} flop/B")
    head.add_row(
        "critical path",
        f"{len(path)} ops, {fmt_count(sum(graph.ops[i].flops * graph.ops[i].executions for i in path))} flops",
    )
    for note in graph.notes:
        head.add_row("note", note)
    if graph.unmodeled_ops:
        head.add_row("NOT COUNTED", ", ".join(sorted({n for n, _ in graph.unmodeled_ops})))

    origins = Table(title="by Flash op")
    for col in ("origin", "flops", "transc.", "bytes", "flop/B"):
        origins.add_column(col, justify="left" if col == "origin" else "right")
    for name, c in sorted(graph.by_origin().items(), key=lambda kv: -kv[1].flops):
        origins.add_row(
            name,
            fmt_count(c.flops),
            fmt_count(c.transcendentals),
            fmt_count(c.bytes) + "B",
            f"{c.flops / c.bytes:.3g}" if c.bytes else "-",
        )

    ops = Table(
        title=f"ops (heaviest {min(max_rows, len(graph.ops))} of {len(graph.ops)} by flops, then bytes)"
    )
    for col in ("#", "op", "origin", "result", "runs", "flops", "bytes", "flop/B"):
        ops.add_column(
            col, justify="right" if col in ("#", "runs", "flops", "bytes", "flop/B") else "left"
        )
    ranked = sorted(
        graph.ops,
        key=lambda o: (-(o.flops + o.transcendentals) * o.executions, -o.bytes * o.executions),
    )
    for o in sorted(ranked[:max_rows], key=lambda o: o.index):
        ops.add_row(
            str(o.index),
            o.short_name,
            o.origin or "",
            " ".join(map(str, o.results)),
            str(o.executions),
            fmt_count(o.flops * o.executions),
            fmt_count(o.bytes * o.executions) + "B",
            f"{o.intensity:.3g}" if o.bytes else "-",
        )
    return Group(head, origins, ops)


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or an error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'perfjax[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
