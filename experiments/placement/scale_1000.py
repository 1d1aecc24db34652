"""Experiment (c): wall time of placing 1000-kernel graphs (and the phases of ``relaxed``).

Five random layered DAGs of 1000 kernels (about 2100 edges) on 4 devices, CCR 1, heterogeneity
0.5. ``relaxed`` runs with its default budget (``min(7, 2 + n/100)`` = 7 s) and includes the jit
compilation of its gradient step (the first call pays it; later calls with the same padded
shapes reuse it). Also timed: one simulator evaluation and a batch of 1000 evaluations.

Run (about 40 s on 2 cores)::

    python experiments/placement/scale_1000.py

Writes ``results/scale_1000.json``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from rich.progress import track

from perfjax.placement import place, random_problem
from perfjax.placement.schedule._simulate import rank_order, schedule, simulate_batch

OUT = os.path.join(os.path.dirname(__file__), "results")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for seed in track(range(5), description="1000-kernel graphs"):
        p = random_problem(1000, 4, ccr=1.0, heterogeneity=0.5, seed=seed)
        row = dict(
            seed=seed, kernels=p.num_kernels, edges=len(p.edges), lower_bound_s=p.lower_bound_s()
        )
        for m in ("single", "greedy", "heft", "relaxed"):
            t0 = time.perf_counter()
            r = place(p, method=m, seed=seed)
            row[f"{m}_wall_s"] = time.perf_counter() - t0
            row[f"{m}_makespan_s"] = r.makespan_s
            if m == "relaxed":
                row["gradient_only_makespan_s"] = r.details["gradient_only_s"]
                row["gradient_from_heft_makespan_s"] = r.details["gradient_from_heft_s"]
                row["local_search_moves"] = r.details["local_search_moves"]
        a = np.random.default_rng(seed).integers(0, 4, p.num_kernels)
        order = rank_order(p, a)
        t0 = time.perf_counter()
        schedule(p, a, order)
        row["simulate_one_s"] = time.perf_counter() - t0
        A = np.random.default_rng(seed).integers(0, 4, (1000, p.num_kernels))
        t0 = time.perf_counter()
        simulate_batch(p, A, order)
        row["simulate_batch_1000_s"] = time.perf_counter() - t0
        rows.append(row)
    keys = [k for k in rows[0] if k.endswith("_s") or k == "local_search_moves"]
    summary = {
        "runs": rows,
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
        "max_relaxed_wall_s": max(r["relaxed_wall_s"] for r in rows),
        "relaxed_improvement_over_heft_pct": [
            100 * (1 - r["relaxed_makespan_s"] / r["heft_makespan_s"]) for r in rows
        ],
        "gradient_only_over_heft_pct": [
            100 * (r["gradient_only_makespan_s"] / r["heft_makespan_s"] - 1) for r in rows
        ],
    }
    with open(os.path.join(OUT, "scale_1000.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary["mean"], indent=1), summary["max_relaxed_wall_s"])


if __name__ == "__main__":
    main()
