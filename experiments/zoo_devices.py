"""Every zoo model, inference and training step, predicted on every catalog device.

Issue 5 (b). The five zoo models at their published sizes (``mlp`` mnist, ``resnet18``
imagenet 224x224, ``mobilenet_v2`` 1.0 224x224, ``bert`` base and ``gpt2`` small, both at
128 tokens per sequence) are traced from ``jax.ShapeDtypeStruct`` inputs only (nothing is
allocated or run), as an inference step and as a training step (forward, backward, AdamW update),
at batch 1 and 64, and predicted with ``perfjax.predict`` on every device of the catalog except
``host`` (this machine: it differs from machine to machine, so the table would not reproduce) at

* ``fp32``: the program as written in float32 (XLA's DEFAULT dot precision: TF32 tensor cores on
  Ampere and later, one bf16 MXU pass on TPUs);
* ``bf16``: parameters and activations in bfloat16;
* ``int8``: every GEMM/conv quantized to int8, bf16 elsewhere (``predict(precision="int8")``),

each only where the device publishes a peak at that precision (``fp32`` also where a ``tf32``
tensor-core peak exists); the others are left out, not guessed. ``predict`` applies the
calibration shipped for the device's family where there is one (GPUs: the NeuSight fit), else
the spec's priors; the ``calibration`` column says which.

Outputs (``docs/zoo/``):

* ``devices.csv``: one row per (model, mode, batch, precision, device): ``time_s``,
  ``samples_per_s``, ``time_per_sample_s``, ``bottleneck``, ``utilization``,
  ``parallel_utilization``, ``energy_j``, ``energy_per_sample_j``, ``calibration``;
* ``devices_time.png``: time per sample across devices x precision (log scale), one panel per
  (model, mode) at batch 64; ``devices_energy.png``: energy per sample, same layout;
* ``devices_summary.json``: the fastest device per (model, mode, batch) and run metadata.

Run from the repository root::

    python experiments/zoo_devices.py            # 30 devices, ~3 min on 2 cores
    python experiments/zoo_devices.py --quick    # tiny configs, 6 devices, a few seconds

These are model predictions from published specs (uncalibrated except GPUs), not measurements.
"""

from __future__ import annotations

import json
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

#: (model, config) at the published sizes; GPT-2 and BERT at 128 tokens (their default seq_len).
MODES = ("inference", "training_step")
PRECISIONS = ("fp32", "bf16", "int8")
BATCHES = (1, 64)
QUICK_DEVICES = ("v100", "a100-80gb", "h100", "tpu-v5e", "xeon-8480", "edge-tpu")
COLUMNS = [
    "model",
    "config",
    "mode",
    "batch",
    "precision",
    "device",
    "family",
    "time_s",
    "samples_per_s",
    "time_per_sample_s",
    "bottleneck",
    "utilization",
    "parallel_utilization",
    "energy_j",
    "energy_per_sample_j",
    "calibration",
]


def catalog_devices() -> tuple[str, ...]:
    """Every catalog device except ``host``."""
    return tuple(d for d in perfjax.devices() if d != "host")


def supports(device: str, precision: str) -> bool:
    """Whether ``device`` publishes a peak at ``precision`` (fp32: also a tf32 tensor-core peak)."""
    spec = perfjax.device(device)
    have = spec.precisions()
    if precision == "fp32":
        return "fp32" in have or "tf32" in have
    return precision in have


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


def run_predictions(
    models=MODELS,
    devices: tuple[str, ...] | None = None,
    precisions=PRECISIONS,
    batches=BATCHES,
    modes=MODES,
) -> pd.DataFrame:
    """One row per (model, mode, batch, precision, supporting device)."""
    devices = catalog_devices() if devices is None else tuple(devices)
    rows = []
    jobs = [(m, c, mode, b) for m, c in models for mode in modes for b in batches]
    with _progress() as progress:
        task = progress.add_task("zoo x devices", total=len(jobs) * len(precisions))
        for name, config, mode, batch in jobs:
            fn, inputs = getattr(perfjax.models.build(name, batch=batch, config=config), mode)()
            for precision in precisions:
                progress.update(task, description=f"{name} {mode} b{batch} {precision}")
                for dev in devices:
                    if not supports(dev, precision):
                        continue
                    p = perfjax.predict(fn, inputs, device=dev, precision=precision)
                    rows.append(
                        dict(
                            model=name,
                            config=config,
                            mode=mode,
                            batch=batch,
                            precision=precision,
                            device=dev,
                            family=p.family,
                            time_s=p.time_s,
                            samples_per_s=batch / p.time_s,
                            time_per_sample_s=p.time_s / batch,
                            bottleneck=p.bottleneck,
                            utilization=p.utilization,
                            parallel_utilization=p.parallel_utilization,
                            energy_j=p.energy_j,
                            energy_per_sample_j=p.energy_j / batch,
                            calibration=p.calibration or "none (spec priors)",
                        )
                    )
                progress.advance(task)
    return pd.DataFrame(rows, columns=COLUMNS)


def fastest(df: pd.DataFrame) -> pd.DataFrame:
    """The fastest (device, precision) per (model, mode, batch), by time per sample."""
    idx = df.groupby(["model", "mode", "batch"])["time_per_sample_s"].idxmin()
    cols = ["model", "mode", "batch", "device", "precision", "time_per_sample_s", "bottleneck"]
    return df.loc[idx, cols].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grid(df: pd.DataFrame, column: str, ylabel: str, path: Path, batch: int) -> Path:
    """One panel per (model, mode): ``column`` per device, one bar per precision (log scale)."""
    plt = _plt()
    models = list(dict.fromkeys(df.model))
    modes = list(dict.fromkeys(df["mode"]))
    devices = list(dict.fromkeys(df.device))
    precisions = [p for p in PRECISIONS if p in set(df.precision)]
    fig, axes = plt.subplots(
        len(models),
        len(modes),
        figsize=(max(10, 0.42 * len(devices) * len(modes)), 2.9 * len(models)),
        squeeze=False,
    )
    x = np.arange(len(devices))
    width = 0.8 / max(1, len(precisions))
    colors = {"fp32": "tab:blue", "bf16": "tab:orange", "int8": "tab:green"}
    for r, model in enumerate(models):
        for c, mode in enumerate(modes):
            ax = axes[r, c]
            sel = df[(df.model == model) & (df["mode"] == mode) & (df.batch == batch)]
            for j, prec in enumerate(precisions):
                s = sel[sel.precision == prec].set_index("device")[column]
                vals = [s.get(d, np.nan) for d in devices]
                ax.bar(x + (j - (len(precisions) - 1) / 2) * width, vals, width,
                       color=colors[prec], label=prec)  # fmt: skip
            ax.set_yscale("log")
            ax.set_xticks(x)
            ax.set_xticklabels(devices if r == len(models) - 1 else [], rotation=75, fontsize=7)
            ax.set_title(f"{model} {mode.replace('_', ' ')} (batch {batch})", fontsize=9)
            ax.grid(axis="y", which="major", alpha=0.3)
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"perfjax predictions: {ylabel} (missing bar = no published peak)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_summary(df: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="fastest device per (model, mode, batch), by predicted time per sample")
    for col in ("model", "mode", "batch", "device", "precision", "time/sample", "bound"):
        t.add_column(col)
    for _, r in fastest(df).iterrows():
        t.add_row(r.model, r["mode"], str(r.batch), r.device, r.precision,
                  f"{r.time_per_sample_s * 1e6:.3g} µs", r.bottleneck)  # fmt: skip
    Console(width=140).print(t)


def main(argv: list[str] | None = None) -> int:
    a, out = parse_cli(__doc__, "tiny configs, 6 devices (smoke test)", argv)
    t0 = time.perf_counter()
    if a.quick:
        df = run_predictions([(m, "tiny") for m, _ in MODELS], QUICK_DEVICES, batches=(1, 8))
        big = 8
    else:
        df = run_predictions()
        big = max(BATCHES)
    elapsed = time.perf_counter() - t0
    df.to_csv(out / "devices.csv", index=False, float_format="%.6g")
    written = [out / "devices.csv"]
    written.append(plot_grid(df, "time_per_sample_s", "time per sample (s)",
                             out / "devices_time.png", big))  # fmt: skip
    written.append(plot_grid(df, "energy_per_sample_j", "energy per sample (J)",
                             out / "devices_energy.png", big))  # fmt: skip
    summary = dict(
        command="python experiments/zoo_devices.py" + (" --quick" if a.quick else ""),
        rows=len(df),
        devices=sorted(set(df.device)),
        excluded=["host"],
        predict_s=round(elapsed, 1),
        fastest=fastest(df).to_dict(orient="records"),
    )
    (out / "devices_summary.json").write_text(json.dumps(summary, indent=1, default=float))
    written.append(out / "devices_summary.json")
    print_summary(df)
    print("wrote:", *[str(p) for p in written], sep="\n  ")
    print(f"{len(df)} predictions in {elapsed:.1f} s, total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
