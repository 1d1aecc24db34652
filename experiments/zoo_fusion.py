"""Fusion statistics of the zoo models under each device family's fusion policy.

Issue 5 (d). Each zoo model at its published size (``mlp`` mnist, ``resnet18`` imagenet,
``mobilenet_v2`` 1.0, ``bert`` base and ``gpt2`` small at 128 tokens), inference and training
step, batch 64, float32 as written, is traced from ``jax.ShapeDtypeStruct`` inputs, analysed
(``perfjax.analyze``: one costed op per StableHLO op) and fused under the ``gpu``, ``tpu``,
``cpu`` and ``npu`` policies (``perfjax.fusion.fuse``; ``gpu``, ``tpu`` and ``npu``
share one policy today, ``cpu`` has no GEMM epilogue or row-wise normalisation fusion), plus
``none`` (one kernel per non-free op: the unfused baseline). Per (model, mode, family):

* ``ops``: StableHLO ops in the graph (static; loop bodies once), ``ops_executed``: counting
  loop trips (the transformers run their 12 layers in one ``lax.scan``);
* ``kernels``: kernels after fusion (static), ``kernel_launches``: counting loop trips;
* ``unfused_bytes``: memory traffic before fusion, the sum over ops of bytes read + written
  (``Graph.bytes_read + Graph.bytes_written``, loop trips included);
* ``fused_bytes``: the sum over kernels of bytes read + written (loop trips included);
* ``bytes_removed`` and ``bytes_removed_pct`` = 1 - fused / unfused;
* ``kernel_ops_bytes``: bytes of the ops that would each be a kernel without fusion (the
  analysed bytes less those of free ops: reshapes, broadcasts and layout views that no compiler
  materialises), and ``bytes_removed_vs_kernel_ops_pct`` = 1 - fused / kernel_ops_bytes: the
  part of the saving that fusion itself earns (the ``none`` policy still folds layout views
  into the GEMMs that read them).

Outputs (``docs/zoo/``): ``fusion.csv``, ``fusion.png`` (grouped bars: % bytes removed and
ops per kernel, per model and family).

Run from the repository root::

    python experiments/zoo_fusion.py            # ~1 min on 2 cores
    python experiments/zoo_fusion.py --quick    # tiny configs, batch 8
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import perfjax  # noqa: E402
import perfjax.models  # noqa: E402
from experiments._zoo_common import MODELS, parse_cli  # noqa: E402
from perfjax.fusion._kernels import fuse  # noqa: E402

MODES = ("inference", "training_step")
FAMILIES = ("gpu", "tpu", "cpu", "npu", "none")
BATCH = 64


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )  # fmt: skip


def fusion_stats(fn, inputs, families=FAMILIES) -> list[dict]:
    """One dict per family: op and kernel counts, bytes before and after fusion."""
    graph = perfjax.analyze(fn, inputs)
    unfused = float(graph.bytes_read + graph.bytes_written)
    ops_exec = int(sum(o.executions for o in graph.ops))
    rows = []
    for fam in families:
        k = fuse(graph, fam)
        fused = float(((k.bytes_read + k.bytes_written) * k.executions).sum())
        rows.append(
            dict(
                family=fam, ops=len(graph.ops), ops_executed=ops_exec, kernels=len(k),
                kernel_launches=int(np.asarray(k.executions).sum()),
                ops_per_kernel=len(graph.ops) / max(1, len(k)), unfused_bytes=unfused,
                fused_bytes=fused, bytes_removed=unfused - fused,
                bytes_removed_pct=100 * (1 - fused / unfused) if unfused else 0.0,
                kernel_ops_bytes=float(k.unfused_bytes),
                bytes_removed_vs_kernel_ops_pct=(
                    100 * (1 - fused / k.unfused_bytes) if k.unfused_bytes else 0.0
                ),
                flops=float(graph.flops),
            )
        )  # fmt: skip
    return rows


def run(models=MODELS, modes=MODES, families=FAMILIES, batch: int = BATCH) -> pd.DataFrame:
    rows = []
    jobs = [(m, c, mode) for m, c in models for mode in modes]
    with _progress() as progress:
        task = progress.add_task("fusion", total=len(jobs))
        for name, config, mode in jobs:
            progress.update(task, description=f"{name} {mode}")
            fn, inputs = getattr(perfjax.models.build(name, batch=batch, config=config), mode)()
            for r in fusion_stats(fn, inputs, families):
                rows.append(dict(model=name, config=config, mode=mode, batch=batch, **r))
            progress.advance(task)
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(df["mode"]))
    models = list(dict.fromkeys(df.model))
    fams = list(dict.fromkeys(df.family))
    fig, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 7.5), squeeze=False)
    x = np.arange(len(models))
    w = 0.8 / len(fams)
    for c, mode in enumerate(modes):
        for r, (col, label) in enumerate(
            (("bytes_removed_pct", "memory traffic removed by fusion (%)"),
             ("ops_per_kernel", "StableHLO ops per kernel"))
        ):  # fmt: skip
            ax = axes[r, c]
            for j, fam in enumerate(fams):
                s = df[(df["mode"] == mode) & (df.family == fam)].set_index("model")[col]
                ax.bar(x + (j - (len(fams) - 1) / 2) * w, [s.get(m, np.nan) for m in models], w,
                       label=fam)  # fmt: skip
            ax.set_xticks(x)
            ax.set_xticklabels(models, fontsize=8)
            ax.set_ylabel(label, fontsize=9)
            ax.set_title(f"{mode.replace('_', ' ')} (batch {int(df.batch.iloc[0])})", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(title="fusion policy", fontsize=8)
    fig.suptitle("perfjax fusion policies per device family: bytes removed and ops per kernel")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_summary(df: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="fusion: ops -> kernels / bytes removed (%)")
    for col in ("model", "mode", "ops", *[f"{f} kernels / removed" for f in FAMILIES]):
        t.add_column(col, justify="right" if col != "model" else "left")
    for (model, mode), g in df.groupby(["model", "mode"], sort=False):
        g = g.set_index("family")
        cells = [f"{g.kernels[f]} / {g.bytes_removed_pct[f]:.0f}%" if f in g.index else "-"
                 for f in FAMILIES]  # fmt: skip
        t.add_row(model, mode, str(int(g.ops.iloc[0])), *cells)
    Console(width=160).print(t)


def main(argv: list[str] | None = None) -> int:
    a, out = parse_cli(__doc__, "tiny configs, batch 8", argv)
    t0 = time.perf_counter()
    df = run([(m, "tiny") for m, _ in MODELS], batch=8) if a.quick else run()
    df.to_csv(out / "fusion.csv", index=False, float_format="%.6g")
    written = [out / "fusion.csv", plot(df, out / "fusion.png")]
    print_summary(df)
    med = df.groupby(["family", "mode"]).bytes_removed_pct.median().unstack()
    print("median % of memory traffic removed by fusion:\n", med.round(1).to_string())
    print("wrote:", *[str(p) for p in written], sep="\n  ")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
