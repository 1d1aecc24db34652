"""How long, and how much memory, does predicting a 128B-parameter training step on a TPU pod take?

What is measured
----------------
In a FRESH Python process each time (nothing cached): build ``perfjax.models.decoder(
"maxtext-128b")``'s training step (forward, backward, AdamW; abstract parameters, FSDP over 256
chips, data parallelism over 32 slices), then ``perfjax.placement.predict_pod`` on
``v5e-256 x 32`` (8192 chips). Timed from after ``import perfjax`` to the prediction in hand:
tracing, lowering, the child process that partitions the program for 512 emulated CPU devices
(the DCN axis folded), converting and predicting the per-chip program. Target <= 30 s.

Memory: the peak resident set (``ru_maxrss``) of the process and, separately, of the child
compile process (``RUSAGE_CHILDREN``). Target: a few hundred MB; nothing of the model's
129 GB of parameters is allocated.

Repeated ``--runs`` times (default 3); the median is reported.

    python benchmarks/pod_predict_speed.py      # ~30 s on 2 cores

Writes benchmarks/results/pod_predict_speed.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

_ONE_RUN = r"""
import json, resource, time
import perfjax
from jax.sharding import AbstractMesh
from perfjax.models import decoder
from perfjax.placement import predict_pod
t0 = time.perf_counter()
d = decoder("maxtext-128b")
fn, inputs = d.training_step(batch=1 * 256 * 32, mesh=AbstractMesh((32, 256), ("data", "fsdp")))
pred = predict_pod(fn, inputs, pod="v5e-256x32", donate_argnums=(0, 1))
wall = time.perf_counter() - t0
print(json.dumps({
    "wall_s": wall,
    "step_time_s": pred.step_time_s,
    "params": d.num_params,
    "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "child_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        out = subprocess.run([sys.executable, "-c", _ONE_RUN], capture_output=True, text=True,
                             check=True, cwd=ROOT)  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"run {i + 1}: {runs[-1]}", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    report = {
        "command": "python benchmarks/pod_predict_speed.py"
        + (f" --runs {args.runs}" if args.runs != 3 else ""),
        "what": "maxtext-128b training step on v5e-256x32 (8192 chips): trace + predict, fresh process",
        "median": med,
        "target_wall_s": 30.0,
        "meets_wall_target": med["wall_s"] <= 30.0,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pod_predict_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["median"], indent=1))


if __name__ == "__main__":
    main()
