"""Experiment (a): placement quality on random layered DAGs, sweeping size, CCR and heterogeneity.

Random DAGs as in Topcuoglu et al. (2002) (``perfjax.placement.random_problem``): 10 to 1000
kernels on 4 devices, communication-to-computation ratio (CCR) 0.1 to 10, device heterogeneity
0.2 (similar devices) or 1.0 (each kernel's time varies +-50% across devices). Each method's
makespan is divided by the lower bound (max of the critical path at the fastest devices and the
total least work / 4). ``exact`` (HiGHS MILP, 60 s limit) runs up to 10 kernels.

Run (about 4.5 minutes on 2 cores)::

    python experiments/placement/random_dags.py

Writes ``results/random_dags.csv`` (one row per instance and method), ``results/random_dags.json``
(summary) and ``results/random_dags.png``; ``--from-csv`` re-summarises the committed CSV.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
from rich.progress import track

from perfjax.placement import place, random_problem

OUT = os.path.join(os.path.dirname(__file__), "results")
SIZES = (10, 30, 100, 300, 1000)
CCRS = (0.1, 0.3, 1.0, 3.0, 10.0)
HETS = (0.2, 1.0)
DEVICES = 4
RELAXED_S = {10: 1.5, 30: 2.0, 100: 3.0, 300: 4.0, 1000: 8.0}


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    configs = [
        (n, ccr, het, seed)
        for n in SIZES
        for ccr in CCRS
        for het in HETS
        for seed in range(2 if n <= 100 else 1)
    ]
    rows = []
    for n, ccr, het, seed in track(configs, description="random DAGs"):
        p = random_problem(n, DEVICES, ccr=ccr, heterogeneity=het, seed=seed)
        lb = p.lower_bound_s()
        methods = ["single", "greedy", "heft", "relaxed"] + (["exact"] if n <= 10 else [])
        for m in methods:
            t0 = time.perf_counter()
            kw = dict(time_limit_s=RELAXED_S[n]) if m == "relaxed" else {}
            if m == "exact":
                kw = dict(time_limit_s=60.0)
            r = place(p, method=m, seed=seed, **kw)
            rows.append(dict(n=n, ccr=ccr, heterogeneity=het, seed=seed, method=m,
                             makespan_s=r.makespan_s, lower_bound_s=lb, ratio=r.makespan_s / lb,
                             wall_s=time.perf_counter() - t0, optimal=r.optimal))  # fmt: skip
            if m == "relaxed":
                g = r.details["gradient_only_s"]
                rows.append(dict(n=n, ccr=ccr, heterogeneity=het, seed=seed,
                                 method="gradient only", makespan_s=g, lower_bound_s=lb,
                                 ratio=g / lb, wall_s=np.nan, optimal=None))  # fmt: skip
    df = pd.DataFrame(rows)
    df.to_csv(os.path.join(OUT, "random_dags.csv"), index=False)
    summarize(df)


def summarize(df: pd.DataFrame) -> None:
    piv = df.pivot_table(
        index=["n", "ccr", "heterogeneity", "seed"], columns="method", values="ratio"
    )
    summary = {
        "instances": len(piv),
        "mean_ratio_to_lower_bound_by_n": {
            m: df[df.method == m].groupby("n")["ratio"].mean().round(4).to_dict()
            for m in df.method.unique()
        },
        "mean_ratio_by_ccr": {
            m: df[df.method == m].groupby("ccr")["ratio"].mean().round(4).to_dict()
            for m in df.method.unique()
        },
        "relaxed_vs_heft": {
            "relaxed_better": int((piv["relaxed"] < piv["heft"] * (1 - 1e-9)).sum()),
            "equal": int((np.abs(piv["relaxed"] / piv["heft"] - 1) <= 1e-9).sum()),
            "relaxed_worse": int((piv["relaxed"] > piv["heft"] * (1 + 1e-9)).sum()),
            "mean_improvement_pct": float(100 * (1 - piv["relaxed"] / piv["heft"]).mean()),
        },
        "gradient_only_vs_heft": {
            "gradient_better": int((piv["gradient only"] < piv["heft"] * (1 - 1e-9)).sum()),
            "of": len(piv),
            "by_n": {
                int(n): f"{int((g['gradient only'] < g['heft'] * (1 - 1e-9)).sum())}/{len(g)}"
                for n, g in piv.reset_index().groupby("n")
            },
        },
        "relaxed_wall_s_by_n": df[df.method == "relaxed"]
        .groupby("n")["wall_s"]
        .mean()
        .round(2)
        .to_dict(),
    }
    with open(os.path.join(OUT, "random_dags.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(json.dumps(summary, indent=1, default=str))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    order = ["single", "greedy", "heft", "gradient only", "relaxed", "exact"]
    colors = dict(zip(order, plt.get_cmap("tab10").colors))
    panels = [(axes[0], df[df.heterogeneity == HETS[0]], f"heterogeneity {HETS[0]}, all sizes"),
              (axes[1], df[df.heterogeneity == HETS[1]], f"heterogeneity {HETS[1]}, all sizes"),
              (axes[2], df[df.n == 10], "10 kernels (with the exact optimum)")]  # fmt: skip
    for ax, sub, title in panels:
        for m in order:
            s = sub[sub.method == m].groupby("ccr")["ratio"].mean()
            if len(s) and (m != "exact" or title.startswith("10")):
                ax.plot(s.index, s.values, marker="o", label=m, color=colors[m])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("communication / computation ratio (CCR)")
        ax.set_ylabel("makespan / lower bound (mean)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    ax = axes[3]
    for m in order[1:5]:
        s = df[df.method == m].groupby("n")["ratio"].mean()
        ax.plot(s.index, s.values, marker="o", label=m, color=colors[m])
    ax.set_xscale("log")
    ax.set_xlabel("kernels")
    ax.set_ylabel("makespan / lower bound (mean over CCR, heterogeneity)")
    ax.set_title("by graph size (4 devices)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "random_dags.png"), dpi=120)


if __name__ == "__main__":
    import sys

    if "--from-csv" in sys.argv:  # re-summarise committed results without re-running
        summarize(pd.read_csv(os.path.join(OUT, "random_dags.csv")))
    else:
        main()
