"""Predicted time per sample vs batch size, and the batch at which each accelerator saturates.

Issue 5 (c). ResNet-18 (imagenet, 224x224), BERT base and GPT-2 small (both 128 tokens per
sequence) and the MNIST MLP, inference, traced from ``jax.ShapeDtypeStruct`` inputs only, at
batch 1, 2, 4, ... 4096 (BERT and GPT-2 up to 1024: 131k tokens per step), predicted with
``perfjax.predict`` at ``bf16`` (``fp16`` on the V100, whose tensor cores have no bf16) on a
representative set of GPUs and TPUs: v100, a100-80gb, h100, h200, l4, mi300x, tpu-v4, tpu-v5e,
tpu-v6e. Memory capacity is not checked (the largest batches may not fit every device).

The **saturation batch** of a (model, device) is the smallest batch whose time per sample is
within 10% of the best time per sample over the sweep (in practice the largest batch's);
``saturated_in_range`` is false when that is the largest batch swept (time per sample still
falling: the MLP, launch-bound up to 4096).

Outputs (``docs/zoo/``):

* ``batch.csv``: one row per (model, device, batch): ``time_s``, ``time_per_sample_s``,
  ``samples_per_s``, ``bottleneck``, ``utilization``, ``parallel_utilization``;
* ``batch_saturation.csv``: per (model, device) the saturation batch, its time per sample, the
  best time per sample and the batch-1 / best ratio;
* ``batch_<model>.png``: time per sample vs batch, one curve per device, saturation marked;
* ``batch_resnet18_h100.png`` and ``batch_summary.json``: ResNet-18 on the H100 (132 SMs): time
  per sample and share of SMs busy (``parallel_utilization``) vs batch.

Run from the repository root::

    python experiments/zoo_batch.py            # 4 models x 9 devices x up to 13 batches, ~3 min
    python experiments/zoo_batch.py --quick    # ResNet-18 + MLP, h100 and l4, 5 batches

These are model predictions from published specs (GPUs with the shipped calibration).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import perfjax  # noqa: E402
import perfjax.models  # noqa: E402
from experiments._zoo_common import parse_cli  # noqa: E402

MODELS = {"resnet18": "imagenet", "bert": "base", "gpt2": "small", "mlp": "mnist"}
MAX_BATCH = {"resnet18": 4096, "bert": 1024, "gpt2": 1024, "mlp": 4096}
DEVICES = ("v100", "a100-80gb", "h100", "h200", "l4", "mi300x", "tpu-v4", "tpu-v5e", "tpu-v6e")
QUICK_MODELS = ("resnet18", "mlp")
QUICK_DEVICES = ("h100", "l4")
QUICK_BATCHES = (1, 8, 64, 256, 1024)
#: Time per sample within this factor of the best counts as saturated.
TOLERANCE = 1.10


def precision_for(device: str) -> str:
    """bf16, or fp16 on devices whose matrix units have no bf16 (V100)."""
    m = perfjax.device(device).matrix_flops_per_s
    return "bf16" if "bf16" in m or "fp16" not in m else "fp16"


def batches_for(model: str, max_batch: int | None = None) -> tuple[int, ...]:
    top = MAX_BATCH[model] if max_batch is None else max_batch
    return tuple(1 << i for i in range(top.bit_length()) if 1 << i <= top)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )  # fmt: skip


def sweep(models=tuple(MODELS), devices=DEVICES, batches: dict | None = None) -> pd.DataFrame:
    """Predicted inference time for every (model, batch, device)."""
    batches = batches or {m: batches_for(m) for m in models}
    rows = []
    jobs = [(m, b) for m in models for b in batches[m]]
    with _progress() as progress:
        task = progress.add_task("batch sweep", total=len(jobs))
        for model, batch in jobs:
            progress.update(task, description=f"{model} batch {batch}")
            fn, inputs = perfjax.models.build(model, batch=batch, config=MODELS[model]).inference()
            for dev in devices:
                prec = precision_for(dev)
                p = perfjax.predict(fn, inputs, device=dev, precision=prec)
                rows.append(
                    dict(
                        model=model, device=dev, precision=prec, batch=batch, time_s=p.time_s,
                        time_per_sample_s=p.time_s / batch, samples_per_s=batch / p.time_s,
                        bottleneck=p.bottleneck, utilization=p.utilization,
                        parallel_utilization=p.parallel_utilization,
                    )
                )  # fmt: skip
            progress.advance(task)
    return pd.DataFrame(rows)


def saturation(df: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per (model, device): the smallest batch within ``tolerance`` of the best time per sample."""
    rows = []
    for (model, dev), g in df.groupby(["model", "device"], sort=False):
        g = g.sort_values("batch")
        best = float(g.time_per_sample_s.min())
        ok = g[g.time_per_sample_s <= tolerance * best]
        sat = ok.iloc[0]
        rows.append(
            dict(
                model=model, device=dev, precision=sat.precision, saturation_batch=int(sat.batch),
                max_batch=int(g.batch.max()), saturated_in_range=bool(sat.batch < g.batch.max()),
                time_per_sample_at_saturation_s=float(sat.time_per_sample_s),
                best_time_per_sample_s=best, best_batch=int(g.loc[g.time_per_sample_s.idxmin(), "batch"]),
                batch1_over_best=float(g.time_per_sample_s.iloc[0] / best),
                parallel_utilization_batch1=float(g.parallel_utilization.iloc[0]),
                parallel_utilization_at_saturation=float(sat.parallel_utilization),
                bottleneck_at_saturation=sat.bottleneck,
            )
        )  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_model(df: pd.DataFrame, sat: pd.DataFrame, model: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    sub = df[df.model == model]
    for dev in dict.fromkeys(sub.device):
        g = sub[sub.device == dev].sort_values("batch")
        (line,) = ax.plot(g.batch, g.time_per_sample_s, marker=".", label=dev)
        s = sat[(sat.model == model) & (sat.device == dev)].iloc[0]
        ax.plot([s.saturation_batch], [s.time_per_sample_at_saturation_s], "o", ms=10,
                mfc="none", color=line.get_color())  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel("predicted time per sample (s)")
    ax.set_title(f"{model} {MODELS[model]} inference (bf16; V100 fp16): circle = saturation batch")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_h100(df: pd.DataFrame, path: Path, model: str = "resnet18", device: str = "h100"):
    plt = _plt()
    g = df[(df.model == model) & (df.device == device)].sort_values("batch")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(g.batch, g.time_per_sample_s * 1e6, "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel("time per sample (µs)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(g.batch, 100 * g.parallel_utilization, "s--", color="tab:red")
    ax2.set_ylabel("SMs busy (parallel_utilization, %)", color="tab:red")
    ax2.set_ylim(0, 105)
    ax.set_title(f"{model} on {device} ({int(perfjax.device(device).num_cores)} SMs), bf16")
    ax.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_summary(sat: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"saturation batch (time/sample within {TOLERANCE - 1:.0%} of the best)")
    devices = list(dict.fromkeys(sat.device))
    t.add_column("model")
    for d in devices:
        t.add_column(d, justify="right")
    for model in dict.fromkeys(sat.model):
        s = sat[sat.model == model].set_index("device")
        t.add_row(model, *[str(int(s.saturation_batch[d])) for d in devices])
    Console(width=160).print(t)


def main(argv: list[str] | None = None) -> int:
    a, out = parse_cli(__doc__, "2 models, 2 devices, 5 batches", argv)
    t0 = time.perf_counter()
    if a.quick:
        df = sweep(QUICK_MODELS, QUICK_DEVICES, {m: QUICK_BATCHES for m in QUICK_MODELS})
    else:
        df = sweep()
    sat = saturation(df)
    df.to_csv(out / "batch.csv", index=False, float_format="%.6g")
    sat.to_csv(out / "batch_saturation.csv", index=False, float_format="%.6g")
    written = [out / "batch.csv", out / "batch_saturation.csv"]
    for model in dict.fromkeys(df.model):
        written.append(plot_model(df, sat, model, out / f"batch_{model}.png"))
    written.append(plot_h100(df, out / "batch_resnet18_h100.png"))
    g = df[(df.model == "resnet18") & (df.device == "h100")].sort_values("batch")
    s = sat[(sat.model == "resnet18") & (sat.device == "h100")].iloc[0]
    summary = dict(
        command="python experiments/zoo_batch.py" + (" --quick" if a.quick else ""),
        total_s=round(time.perf_counter() - t0, 1),
        tolerance=TOLERANCE,
        resnet18_h100=dict(
            saturation_batch=int(s.saturation_batch),
            batch=[int(b) for b in g.batch],
            time_per_sample_s=[float(v) for v in g.time_per_sample_s],
            parallel_utilization=[round(float(v), 4) for v in g.parallel_utilization],
            bottleneck=list(g.bottleneck),
        ),
        saturation={f"{r.model}/{r.device}": int(r.saturation_batch) for r in sat.itertuples()},
    )
    (out / "batch_summary.json").write_text(json.dumps(summary, indent=1))
    written.append(out / "batch_summary.json")
    print_summary(sat)
    print("ResNet-18 on H100: batch -> time/sample, SMs busy")
    for b, t, u in zip(g.batch, g.time_per_sample_s, g.parallel_utilization, strict=True):
        print(f"  {b:>5}  {t * 1e6:9.2f} µs  {100 * u:5.1f}%")
    print("wrote:", *[str(p) for p in written], sep="\n  ")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
