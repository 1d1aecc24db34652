"""Predicted inference time of an MLP, ResNet-18 and GPT-2 small across the device catalog.

Every model (``experiments/models.py``) is traced from ``jax.ShapeDtypeStruct`` inputs only
(nothing is allocated or run) and predicted with ``perfjax.compare`` at ``precision="fp32"``
and ``"bf16"`` (``fp32`` keeps XLA's DEFAULT dot precision: TF32 tensor cores on Ampere and
later, one bf16 MXU pass on TPUs), at batch 1 and 64. GPT-2 uses 128 tokens per sequence.

Outputs (under ``docs/``):

* ``device_comparison.csv``: one row per (model, batch, precision, device) with ``time_s``,
  ``time_per_sample_s``, ``bottleneck``, ``utilization``, ``parallel_utilization``,
  ``energy_j`` (and ``error`` where a device could not be predicted);
* ``device_comparison_<model>.png``: grouped bars per device (batch 1 vs 64, log time axis),
  one panel per precision;
* ``sm_utilization.png``: share of SMs / compute units busy (``parallel_utilization``) for
  every GPU at batch 1 vs 64, per model and precision;
* ``roofline_gpt2_h100.png``: GPT-2 small kernels on the H100 roofline (batch 64, bf16).

Run from the repository root::

    python experiments/device_comparison.py            # 13 devices, ~30 s on 2 cores
    python experiments/device_comparison.py --quick    # 8 devices

These are model predictions from published specs and default priors (uncalibrated).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import perfjax  # noqa: E402
from experiments.models import MODELS  # noqa: E402

DEVICES = (
    "v100",
    "a100-80gb",
    "h100",
    "h200",
    "rtx-4090",
    "l4",
    "mi300x",
    "tpu-v4",
    "tpu-v5e",
    "tpu-v6e",
    "xeon-8480",
    "epyc-9654",
    "apple-m2",
)
QUICK_DEVICES = ("v100", "a100-80gb", "h100", "l4", "mi300x", "tpu-v5e", "xeon-8480", "apple-m2")
PRECISIONS = ("fp32", "bf16")
BATCHES = (1, 64)
COLUMNS = [
    "model",
    "batch",
    "precision",
    "device",
    "family",
    "time_s",
    "time_per_sample_s",
    "bottleneck",
    "utilization",
    "parallel_utilization",
    "energy_j",
    "error",
]


def run_predictions(devices: tuple[str, ...]) -> tuple[pd.DataFrame, dict]:
    rows, programs = [], {}
    for name, (fn, make_inputs) in MODELS.items():
        for precision in PRECISIONS:
            for batch in BATCHES:
                t0 = time.perf_counter()
                comp = perfjax.compare(fn, make_inputs(batch), list(devices), precision=precision)
                programs[(name, batch, precision)] = comp
                for p in comp.predictions:
                    rows.append(
                        dict(
                            model=name,
                            batch=batch,
                            precision=precision,
                            device=p.device,
                            family=p.family,
                            time_s=p.time_s,
                            time_per_sample_s=p.time_s / batch,
                            bottleneck=p.bottleneck,
                            utilization=p.utilization,
                            parallel_utilization=p.parallel_utilization,
                            energy_j=p.energy_j,
                            error="",
                        )
                    )
                for dev, err in comp.errors.items():
                    spec = perfjax.device(dev)
                    rows.append(
                        dict(
                            model=name,
                            batch=batch,
                            precision=precision,
                            device=dev,
                            family=spec.family,
                            time_s=np.nan,
                            time_per_sample_s=np.nan,
                            bottleneck="",
                            utilization=np.nan,
                            parallel_utilization=np.nan,
                            energy_j=np.nan,
                            error=err,
                        )
                    )
                print(
                    f"  {name:<11} batch {batch:>2} {precision}: {len(comp.predictions)} devices "
                    f"in {time.perf_counter() - t0:.2f} s"
                    + (f" ({len(comp.errors)} errors)" if comp.errors else "")
                )
    df = pd.DataFrame(rows, columns=COLUMNS)
    order = {d: i for i, d in enumerate(devices)}
    df["_o"] = df["device"].map(order)
    df = (
        df.sort_values(["model", "precision", "batch", "_o"], key=None)
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    return df, programs


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_model(df: pd.DataFrame, model: str, devices: tuple[str, ...], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(
        1, len(PRECISIONS), figsize=(max(8, 0.9 * len(devices) * len(PRECISIONS)), 4.8), sharey=True
    )
    x = np.arange(len(devices))
    width = 0.38
    colors = {1: "tab:orange", 64: "tab:blue"}
    for ax, precision in zip(np.atleast_1d(axes), PRECISIONS):
        for j, batch in enumerate(BATCHES):
            sel = df[
                (df.model == model) & (df.precision == precision) & (df.batch == batch)
            ].set_index("device")
            t = [sel.time_s.get(d, np.nan) * 1e3 for d in devices]
            ax.bar(x + (j - 0.5) * width, t, width, color=colors[batch], label=f"batch {batch}")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(devices, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{precision}")
        ax.grid(axis="y", which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("predicted time per forward pass (ms)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"{model}: predicted inference time (perfjax, uncalibrated)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sm_utilization(df: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    gpus = [d for d in df.device.unique() if df[df.device == d].family.iloc[0] == "gpu"]
    models = list(MODELS)
    fig, axes = plt.subplots(
        len(PRECISIONS),
        len(models),
        figsize=(4.2 * len(models), 3.6 * len(PRECISIONS)),
        sharey=True,
        squeeze=False,
    )
    x = np.arange(len(gpus))
    width = 0.38
    colors = {1: "tab:orange", 64: "tab:blue"}
    for r, precision in enumerate(PRECISIONS):
        for c, model in enumerate(models):
            ax = axes[r, c]
            for j, batch in enumerate(BATCHES):
                sel = df[
                    (df.model == model) & (df.precision == precision) & (df.batch == batch)
                ].set_index("device")
                u = [100 * sel.parallel_utilization.get(d, np.nan) for d in gpus]
                ax.bar(x + (j - 0.5) * width, u, width, color=colors[batch], label=f"batch {batch}")
            ax.set_xticks(x)
            ax.set_xticklabels(gpus, rotation=60, ha="right", fontsize=8)
            ax.set_ylim(0, 105)
            ax.set_title(f"{model} ({precision})", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
            if c == 0:
                ax.set_ylabel("SMs / CUs busy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("GPU parallel utilization (time-weighted share of SMs / CUs with work)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# console summary
# ---------------------------------------------------------------------------------------------


def _ms(t: float) -> str:
    if not np.isfinite(t):
        return "-"
    return f"{t * 1e3:.3g} ms" if t >= 1e-3 else f"{t * 1e6:.3g} µs"


def print_summary(df: pd.DataFrame, devices: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for model in MODELS:
        t = Table(title=f"{model}: predicted time per forward pass (rank = bf16 batch 64)")
        t.add_column("device")
        t.add_column("family")
        for precision in PRECISIONS:
            for batch in BATCHES:
                t.add_column(f"{precision} b{batch}", justify="right")
        t.add_column("bf16 b64 per sample", justify="right")
        t.add_column("bf16 b64 bound")
        t.add_column("bf16 b1 / b64 SMs busy", justify="right")
        sub = df[df.model == model]
        key = sub[(sub.precision == "bf16") & (sub.batch == 64)].set_index("device")
        for dev in sorted(devices, key=lambda d: key.time_s.get(d, np.inf)):
            cells = []
            for precision in PRECISIONS:
                for batch in BATCHES:
                    r = sub[
                        (sub.device == dev) & (sub.precision == precision) & (sub.batch == batch)
                    ]
                    cells.append(_ms(r.time_s.iloc[0]) if len(r) else "-")
            r1 = sub[(sub.device == dev) & (sub.precision == "bf16") & (sub.batch == 1)]
            pu1 = r1.parallel_utilization.iloc[0] if len(r1) else np.nan
            pu64 = key.parallel_utilization.get(dev, np.nan)
            t.add_row(
                dev,
                key.family.get(dev, ""),
                *cells,
                _ms(key.time_per_sample_s.get(dev, np.nan)),
                key.bottleneck.get(dev, ""),
                f"{100 * pu1:.0f}% / {100 * pu64:.0f}%",
            )
        console.print(t)


def print_h100_parallel(df: pd.DataFrame) -> dict:
    from rich.console import Console
    from rich.table import Table

    out = {}
    t = Table(title="H100: share of the 132 SMs busy (time-weighted parallel_utilization)")
    for col in ("model", "precision", "batch 1", "batch 64", "b1 bound", "b64 bound"):
        t.add_column(col, justify="right" if col.startswith("batch") else "left")
    h = df[df.device == "h100"]
    for model in MODELS:
        for precision in PRECISIONS:
            r = {
                b: h[(h.model == model) & (h.precision == precision) & (h.batch == b)].iloc[0]
                for b in BATCHES
            }
            out[(model, precision)] = (
                float(r[1].parallel_utilization),
                float(r[64].parallel_utilization),
            )
            t.add_row(
                model,
                precision,
                f"{100 * r[1].parallel_utilization:.1f}%",
                f"{100 * r[64].parallel_utilization:.1f}%",
                r[1].bottleneck,
                r[64].bottleneck,
            )
    Console(width=160).print(t)
    for model in MODELS:
        b1, b64 = out[(model, "bf16")]
        print(
            f"H100 {model:<11} bf16: batch-1 parallel utilization {100 * b1:5.1f}%  vs batch 64 {100 * b64:5.1f}%"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {len(QUICK_DEVICES)} devices")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "docs", help="output directory (default: docs/)"
    )
    a = ap.parse_args(argv)
    devices = QUICK_DEVICES if a.quick else DEVICES
    if "h100" not in devices:
        raise SystemExit("the H100 summary needs h100 in the device list")
    a.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(
        f"predicting {len(MODELS)} models x {len(PRECISIONS)} precisions x {len(BATCHES)} batches "
        f"on {len(devices)} devices"
    )
    df, comps = run_predictions(devices)
    t_pred = time.perf_counter() - t_start

    csv = a.out / "device_comparison.csv"
    df.to_csv(csv, index=False, float_format="%.6g")
    written = [csv]
    for model in MODELS:
        path = a.out / f"device_comparison_{model}.png"
        plot_model(df, model, devices, path)
        written.append(path)
    path = a.out / "sm_utilization.png"
    plot_sm_utilization(df, path)
    written.append(path)
    gpt2 = next(p for p in comps[("gpt2_small", 64, "bf16")].predictions if p.device == "h100")
    written.append(Path(gpt2.plot_roofline(str(a.out / "roofline_gpt2_h100.png"))))

    print_summary(df, devices)
    print_h100_parallel(df)
    errors = df[df.error != ""]
    if len(errors):
        print(
            f"{len(errors)} (model, batch, precision, device) combinations could not be predicted:"
        )
        for _, r in errors.iterrows():
            print(f"  {r.model} b{r.batch} {r.precision} {r.device}: {r.error}")
    print("wrote:")
    for p in written:
        print(f"  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"predictions {t_pred:.1f} s, total {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
