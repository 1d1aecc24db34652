"""Experiment (d): placing real perfjax programs on multi-device platforms.

Programs (traced from ``jax.ShapeDtypeStruct`` inputs, nothing allocated): the calibration
suite's MLP (batch 256), small CNN (batch 64) and transformer block (batch 8, d=1024, seq 512),
ResNet-18 (``experiments/models.py``, batch 8), an ensemble of four independent MLP towers
(parallel branches), and a 24-layer 32768-wide fp32 MLP whose 103 GB of weights do not fit one
80 GB A100. Platforms: ``host+a100-pcie`` (a Xeon host and one A100 over PCIe) and
``4xa100-pcie``. Kernel times come from perfjax's device models (one common ``gpu`` fusion
policy), transfers from the platforms' links (``perfjax.placement.problem_from``).

Run (about 1.5 minutes on 2 cores)::

    python experiments/placement/programs.py

Writes ``results/programs.csv``, ``results/programs.json`` and Gantt charts
``results/gantt_*.png``.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import pandas as pd
from rich.progress import track

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import experiments.models as models
import perfjax.ops as F
from perfjax.calibrate import _programs as P
from perfjax.placement import MemoryCapacityError, pipeline, place, problem_from

OUT = os.path.join(os.path.dirname(__file__), "results")
S = jax.ShapeDtypeStruct
PLATFORMS = ("host+a100-pcie", "4xa100-pcie")


def ensemble(batch: int = 512, width: int = 4096, towers: int = 4):
    def fn(x, ws):
        outs = []
        for w1, w2, w3 in ws:
            h = F.relu(F.matmul(x, w1))
            h = F.relu(F.matmul(h, w2))
            outs.append(F.matmul(h, w3))
        return sum(outs[1:], outs[0])

    ws = [(S((1024, width), jnp.float32), S((width, width), jnp.float32),
           S((width, 1024), jnp.float32)) for _ in range(towers)]  # fmt: skip
    return fn, (S((batch, 1024), jnp.float32), ws)


def deep_mlp(batch: int = 64, width: int = 32768, layers: int = 24):
    def fn(x, ws):
        for w in ws:
            x = F.relu(F.matmul(x, w))
        return x

    return fn, (S((batch, width), jnp.float32), [S((width, width), jnp.float32)] * layers)


PROGRAMS = {
    "mlp": lambda: P._mlp(256, jnp.float32),
    "cnn": lambda: P._cnn(64, jnp.float32),
    "transformer block": lambda: P._transformer_block(8, jnp.float32, d=1024, seq=512),
    "resnet18": lambda: (models.resnet18, models.make_resnet18_inputs(8)),
    "ensemble of 4 MLP towers": ensemble,
    "deep MLP (103 GB fp32)": deep_mlp,
}


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    rows, pipes = [], []
    jobs = [(name, plat) for name in PROGRAMS for plat in PLATFORMS]
    for name, plat in track(jobs, description="programs"):
        fn, inputs = PROGRAMS[name]()
        prob = problem_from(fn, inputs, platform=plat)
        methods = ["single", "greedy", "heft", "relaxed"] + (
            ["exact"] if prob.num_kernels <= 14 else []
        )
        for m in methods:
            try:
                r = place(prob, method=m, time_limit_s=60.0 if m == "exact" else 3.0)
            except MemoryCapacityError as e:
                rows.append(dict(program=name, platform=plat, method=m, kernels=prob.num_kernels,
                                 makespan_ms=None, note=str(e).split(";")[0]))  # fmt: skip
                continue
            used = sorted(set(r.assignment.values()))
            rows.append(dict(program=name, platform=plat, method=m, kernels=prob.num_kernels,
                             makespan_ms=1e3 * r.makespan_s, lower_bound_ms=1e3 * r.lower_bound_s,
                             devices_used=" ".join(used), optimal=r.optimal,
                             wall_s=round(r.wall_s, 3), note=""))  # fmt: skip
            if m == "relaxed" and (name.startswith("ensemble") or name.startswith("deep")):
                tag = name.split()[0] + "_" + plat.replace("+", "_")
                r.plot(os.path.join(OUT, f"gantt_{tag}.png"))
        if name.startswith("deep") or name.startswith("ensemble"):
            devs = [d for d in prob.device_names if d != "host"] if plat == "4xa100-pcie" else None
            for meth in ("dp", "relaxed"):
                try:
                    pr = pipeline(prob, devices=devs, method=meth)
                    pipes.append(dict(program=name, platform=plat, method=meth,
                                      bottleneck_ms=1e3 * pr.bottleneck_s,
                                      stage_kernels=[len(s) for s in pr.stages],
                                      stage_ms=[round(1e3 * t, 3) for t in pr.stage_time_s]))  # fmt: skip
                except MemoryCapacityError as e:
                    pipes.append(dict(program=name, platform=plat, method=meth, note=str(e)))
    df = pd.DataFrame(rows)
    df.to_csv(os.path.join(OUT, "programs.csv"), index=False)
    with open(os.path.join(OUT, "programs.json"), "w") as f:
        json.dump(dict(placements=rows, pipelines=pipes), f, indent=1, default=str)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            df[["program", "platform", "method", "kernels", "makespan_ms", "devices_used", "note"]]
        )
    print(json.dumps(pipes, indent=1))


if __name__ == "__main__":
    main()
