"""Design-space questions answered with gradients: what would make each zoo model 2x faster?

Issue 5 (e). For each zoo model at its published size (``mlp`` mnist, ``resnet18`` imagenet,
``mobilenet_v2`` 1.0, ``bert`` base and ``gpt2`` small at 128 tokens), inference at batch 1 and
64 in ``bf16``, on the H100, TPU v5e and L4:

1. ``perfjax.sensitivity`` gives the elasticity ``e_f = d log t / d log f`` of the predicted time
   with respect to every spec field, by ``jax.grad`` through the device model;
2. for each design field ``f`` (memory bandwidth, matrix and vector peaks per precision, cache
   size and bandwidth, SMs / cores, clock, launch overhead) the gradient alone predicts that
   scaling ``f`` by ``k_grad = 2 ** (1 / |e_f|)`` halves the time (growing resources, shrinking
   the launch overhead; a field whose elasticity has the wrong sign has no first-order route);
3. the factor is then found with real re-predictions: ``perfjax.predict`` on
   ``spec.replace(f=f * k)`` (``f / k`` for the launch overhead); if the time does not halve at
   ``k = 100`` the route is "not reachable" (another bound takes over), else a bisection on
   ``log k`` finds the smallest ``k`` (within 0.5%) whose predicted time is <= half;
4. the cheapest route is the field with the smallest re-predicted factor; it is confirmed when
   the re-predicted time at that factor is <= 0.5 x (1 + 1%) of the original.

Outputs (``docs/zoo/``):

* ``design.csv``: one row per (model, batch, device): original time and bottleneck, the cheapest
  route (field, elasticity, ``k_grad``, ``k_found``, time ratio, confirmed), and the field the
  gradient alone would have picked;
* ``design_fields.csv``: every (model, batch, device, field) with its elasticity and factors;
* ``design.png``: left, the cheapest route per case; right, ``k_grad`` vs ``k_found`` for every
  reachable (case, field).

Run from the repository root::

    python experiments/zoo_design.py            # 5 models x 2 batches x 3 devices, ~3 min
    python experiments/zoo_design.py --quick    # mlp and tiny ResNet-18 on the H100

Predictions use the calibration ``predict`` applies by default (GPUs: the shipped fit).
"""

from __future__ import annotations

import math
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

BATCHES = (1, 64)
DEVICES = ("h100", "tpu-v5e", "l4")
PRECISION = "bf16"
#: Spec fields a designer can change (peaks are expanded per precision).
SCALAR_FIELDS = ("memory_bytes_per_s", "cache_bytes", "cache_bytes_per_s", "num_cores", "clock_hz")
PEAK_FIELDS = ("matrix_flops_per_s", "vector_flops_per_s")
#: Fields where smaller is better.
SHRINK_FIELDS = ("launch_overhead_s",)
MAX_FACTOR = 100.0
#: Re-predicted time must be <= TARGET * (1 + SLACK) of the original to confirm.
TARGET, SLACK = 0.5, 0.01


def design_fields(spec) -> list[str]:
    out = [f for f in SCALAR_FIELDS if float(getattr(spec, f))]
    for unit in PEAK_FIELDS:
        out += [f"{unit}.{p}" for p, v in getattr(spec, unit).items() if float(v)]
    return out + [f for f in SHRINK_FIELDS if float(getattr(spec, f))]


def scaled(spec, field: str, k: float):
    """``spec`` with ``field`` improved by factor ``k`` (grown, or shrunk for the overheads)."""
    if "." in field:
        unit, prec = field.split(".")
        table = dict(getattr(spec, unit))
        table[prec] = float(table[prec]) * k
        return spec.replace(**{unit: table})
    v = float(getattr(spec, field))
    return spec.replace(**{field: v / k if field in SHRINK_FIELDS else v * k})


def gradient_factor(field: str, e: float) -> float:
    """First-order factor that halves the time: 2 ** (1 / |e|) when e has the useful sign."""
    useful = e > 0 if field in SHRINK_FIELDS else e < 0
    if not useful or abs(e) < 1e-3:  # would need > 2^1000
        return math.inf
    return 2.0 ** (1.0 / abs(e))


def find_factor(time_at, t0: float, max_factor: float = MAX_FACTOR, rtol: float = 0.005):
    """Smallest k in [1, max_factor] with time_at(k) <= TARGET * t0 (bisection on log k), or
    (inf, time_at(max_factor)) when even max_factor does not halve the time."""
    goal = TARGET * t0
    t_hi = time_at(max_factor)
    if t_hi > goal:
        return math.inf, t_hi
    lo, hi = 1.0, max_factor
    while hi / lo > 1 + rtol:
        mid = math.sqrt(lo * hi)
        t = time_at(mid)
        if t <= goal:
            hi, t_hi = mid, t
        else:
            lo = mid
    return hi, t_hi


def design_case(fn, inputs, device: str, precision: str = PRECISION) -> tuple[dict, list[dict]]:
    """The 2x routes of one (program, device): (summary row, one row per field)."""
    spec = perfjax.device(device)
    base = perfjax.predict(fn, inputs, device=spec, precision=precision)
    t0 = base.time_s
    elasticity = perfjax.sensitivity(fn, inputs, spec, precision=precision)

    def time_at(field):
        return lambda k: (
            perfjax.predict(fn, inputs, device=scaled(spec, field, k), precision=precision).time_s
        )

    rows = []
    for field in design_fields(spec):
        e = float(elasticity.get(field, 0.0))
        k_grad = gradient_factor(field, e)
        k_found, t_found = find_factor(time_at(field), t0)
        rows.append(
            dict(
                device=device, field=field, elasticity=e, k_grad=k_grad, k_found=k_found,
                time_ratio=t_found / t0, reachable=math.isfinite(k_found),
                confirmed=bool(math.isfinite(k_found) and t_found <= TARGET * (1 + SLACK) * t0),
            )
        )  # fmt: skip
    reach = [r for r in rows if r["reachable"]]
    best = min(reach, key=lambda r: r["k_found"]) if reach else min(rows, key=lambda r: r["k_grad"])
    by_grad = min(rows, key=lambda r: r["k_grad"])
    summary = dict(
        device=device, precision=precision, time_s=t0, bottleneck=base.bottleneck,
        bound_shares=" ".join(f"{k}={v:.2f}" for k, v in base.bound_shares.items()),
        best_field=best["field"] if reach else "not reachable", elasticity=best["elasticity"],
        k_grad=best["k_grad"], k_found=best["k_found"], time_ratio=best["time_ratio"],
        confirmed=best["confirmed"], gradient_pick=by_grad["field"], gradient_pick_k=by_grad["k_grad"],
        gradient_agrees=by_grad["field"] == best["field"],
        calibration=base.calibration or "none (spec priors)",
    )  # fmt: skip
    return summary, rows


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )  # fmt: skip


def run(models=MODELS, batches=BATCHES, devices=DEVICES) -> tuple[pd.DataFrame, pd.DataFrame]:
    summaries, fields = [], []
    jobs = [(m, c, b) for m, c in models for b in batches]
    with _progress() as progress:
        task = progress.add_task("design", total=len(jobs) * len(devices))
        for name, config, batch in jobs:
            fn, inputs = perfjax.models.build(name, batch=batch, config=config).inference()
            for dev in devices:
                progress.update(task, description=f"{name} b{batch} {dev}")
                s, rows = design_case(fn, inputs, dev)
                key = dict(model=name, config=config, batch=batch)
                summaries.append({**key, **s})
                fields += [{**key, **r} for r in rows]
                progress.advance(task)
    return pd.DataFrame(summaries), pd.DataFrame(fields)


_SHORT = {
    "memory_bytes_per_s": "mem BW",
    "cache_bytes": "cache size",
    "cache_bytes_per_s": "cache BW",
    "num_cores": "cores/SMs",
    "clock_hz": "clock",
    "launch_overhead_s": "launch ovh",
}


def short(field: str) -> str:
    if field.startswith("matrix_flops_per_s."):
        return f"matrix {field.split('.')[1]}"
    if field.startswith("vector_flops_per_s."):
        return f"vector {field.split('.')[1]}"
    return _SHORT.get(field, field)


def plot(summary: pd.DataFrame, fields: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(zip(summary.model, summary.batch, strict=True)))
    devices = list(dict.fromkeys(summary.device))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 0.5 * len(cases) + 2.5),
                                  gridspec_kw=dict(width_ratios=(1.4, 1)))  # fmt: skip
    grid = np.full((len(cases), len(devices)), np.nan)
    for i, (m, b) in enumerate(cases):
        for j, d in enumerate(devices):
            r = summary[(summary.model == m) & (summary.batch == b) & (summary.device == d)]
            if not len(r):
                continue
            r = r.iloc[0]
            k = r.k_found if np.isfinite(r.k_found) else MAX_FACTOR
            grid[i, j] = np.log10(k)
            text = (
                f"{short(r.best_field)}\nx{r.k_found:.2g}"
                if np.isfinite(r.k_found)
                else "no 1-field route"
            )
            text += "" if r.confirmed else " (!)"
            color = "white" if np.log10(k) > 1.2 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    im = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(devices)), devices)
    ax.set_yticks(range(len(cases)), [f"{m} b{b}" for m, b in cases])
    ax.set_title("cheapest one-field route to 2x (re-predicted factor; (!) = not confirmed)",
                 fontsize=10)  # fmt: skip
    fig.colorbar(im, ax=ax, label="log10 factor")
    ok = fields[fields.reachable & np.isfinite(fields.k_grad)]
    for fld, g in ok.groupby(ok.field.map(short)):
        ax2.scatter(g.k_grad, g.k_found, s=14, label=fld)
    lim = [1, MAX_FACTOR * 10]
    ax2.plot(lim, lim, "k--", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlim(*lim)
    ax2.set_ylim(1, MAX_FACTOR * 1.2)
    ax2.set_xlabel("factor from the gradient alone, 2^(1/|e|)")
    ax2.set_ylabel("factor found by re-predicting")
    ax2.set_title("gradient vs re-prediction (reachable routes)", fontsize=10)
    ax2.legend(fontsize=7, ncol=2)
    ax2.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_summary(summary: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="cheapest route to a 2x faster model (bf16 inference)")
    for col in ("model", "batch", "device", "bound", "field", "e", "k_grad", "k_found", "ok",
                "gradient pick"):  # fmt: skip
        t.add_column(col)
    for r in summary.itertuples():
        t.add_row(r.model, str(r.batch), r.device, r.bottleneck, short(r.best_field),
                  f"{r.elasticity:+.3f}", f"{r.k_grad:.3g}", f"{r.k_found:.3g}",
                  "yes" if r.confirmed else "no", short(r.gradient_pick))  # fmt: skip
    Console(width=160).print(t)


def main(argv: list[str] | None = None) -> int:
    a, out = parse_cli(__doc__, "mlp and tiny ResNet-18 on the H100", argv)
    t0 = time.perf_counter()
    if a.quick:
        summary, fields = run((("mlp", "mnist"), ("resnet18", "tiny")), devices=("h100",))
    else:
        summary, fields = run()
    summary.to_csv(out / "design.csv", index=False, float_format="%.6g")
    fields.to_csv(out / "design_fields.csv", index=False, float_format="%.6g")
    written = [
        out / "design.csv",
        out / "design_fields.csv",
        plot(summary, fields, out / "design.png"),
    ]
    print_summary(summary)
    n, ok = len(summary), int(summary.confirmed.sum())
    agree = int(summary.gradient_agrees.sum())
    print(f"{ok}/{n} cheapest routes confirmed by re-prediction; gradient alone picked the same "
          f"field in {agree}/{n}")  # fmt: skip
    print("wrote:", *[str(p) for p in written], sep="\n  ")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
