"""Device-model checks against published figures (uncalibrated priors).

    python benchmarks/model_checks.py      # -> benchmarks/results/model_checks.json

* large bf16 GEMMs on A100 / H100 vs the best published achievable throughput
  (A100 SXM 271.2 TFLOP/s, H100 SXM 794.5 TFLOP/s; shared/reference/device-specs.md);
* HBM-bound elementwise (a*2+1 over 512 MiB) vs 90% of peak bandwidth (device copy reaches
  89% of peak on an A800, same source);
* SM utilisation of a 1024-wide MLP on an H100 at batch 1 vs 8192.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp

import perfjax
import perfjax.ops as F

S = jax.ShapeDtypeStruct
OUT = pathlib.Path(__file__).with_name("results") / "model_checks.json"


def main() -> int:
    out: dict = {"gemm_bf16": [], "elementwise_hbm": [], "sm_utilization": {}}
    for device, achievable in [("a100-80gb", 271.2e12), ("h100", 794.5e12)]:
        for n in (4096, 8192, 16384):
            p = perfjax.predict(F.matmul, (S((n, n), jnp.bfloat16),) * 2, device=device)
            rate = 2 * n**3 / p.time_s
            out["gemm_bf16"].append(dict(device=device, n=n, predicted_flops_per_s=rate,
                                         published_achievable_flops_per_s=achievable,
                                         ratio=rate / achievable, bottleneck=p.bottleneck))  # fmt: skip
    n = 1 << 27
    for device in ("v100", "a100-80gb", "h100", "h200", "mi300x", "l4", "tpu-v4", "tpu-v5e"):
        p = perfjax.predict(lambda a: a * 2.0 + 1.0, (S((n,), jnp.float32),), device=device)
        bw = 2 * 4 * n / p.time_s
        peak = perfjax.device(device).memory_bytes_per_s
        out["elementwise_hbm"].append(dict(device=device, achieved_bytes_per_s=bw, peak_bytes_per_s=peak,
                                           share_of_peak=bw / peak, vs_90_percent=bw / (0.9 * peak),
                                           bottleneck=p.bottleneck))  # fmt: skip

    def mlp(x, w1, w2):
        return F.matmul(F.relu(F.matmul(x, w1)), w2)

    for b in (1, 8, 64, 512, 8192):
        p = perfjax.predict(mlp, (S((b, 1024), jnp.bfloat16), S((1024, 1024), jnp.bfloat16),
                                  S((1024, 1024), jnp.bfloat16)), device="h100")  # fmt: skip
        out["sm_utilization"][b] = dict(parallel_utilization=p.parallel_utilization, time_s=p.time_s,
                                        bottleneck=p.bottleneck)  # fmt: skip
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    for r in out["gemm_bf16"]:
        print(f"GEMM bf16 {r['device']:10s} n={r['n']:5d}: {r['predicted_flops_per_s'] / 1e12:6.1f} TFLOP/s = "
              f"{r['ratio']:.3f} x published achievable ({r['bottleneck']})")  # fmt: skip
    for r in out["elementwise_hbm"]:
        print(
            f"elementwise {r['device']:10s}: {r['share_of_peak']:.3f} of peak BW = {r['vs_90_percent']:.3f} x 90%"
        )
    for b, r in out["sm_utilization"].items():
        print(
            f"H100 MLP 1024 batch {b:5d}: {100 * r['parallel_utilization']:5.1f}% of SMs busy, {r['bottleneck']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
