"""Predicted vs measured all-reduce times: DeepBench's NCCL 2.0 single-node runs (2, 4, 8 GPUs).

DeepBench (github.com/baidu-research/DeepBench, Apache-2.0) timed NCCL 2.0 all-reduce of fp32
buffers from 400 KB to 258 MB on 2, 4 and 8 GPUs in one PCIe server. We model that server with the
published figures only (nothing fitted to these timings):

* PCIe 3.0 x16 per GPU: 15.75 GB/s per direction theoretical (PCI-SIG), 78 % achievable
  (the share measured for PCIe 4.0 A100 host<->device copies, ../shared/reference/device-specs.md)
  = 12.3 GB/s; all GPUs under one root complex (``pcie-tree``), 1 us per hop (as ``4xa100-pcie``);
* NCCL 2.0 has only the ring algorithm (trees arrived in NCCL 2.4), so ``algorithm="ring"``.

A PCIe tree has no fitted collective parameters (``fitted_family`` is None: the calibrated model
covers NVLink/NVSwitch and Infinity Fabric), so ``collective_time_s``'s default (``fit="auto"``)
is the alpha-beta model on these figures; ``predict`` checks it.

The table also reports a second, *fitted* variant to separate the shape of the model from the
bandwidth figure: one effective link bandwidth per GPU type, fitted on its 2-GPU rows only and
evaluated on the 4- and 8-GPU rows it did not see.

Rows for GPUs missing from perfjax's catalog (M40, Titan X Maxwell / Pascal) are skipped and counted.

Run: python benchmarks/collectives_vs_deepbench.py  (writes benchmarks/results/collectives_vs_deepbench.csv)
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

import perfjax
from perfjax.placement import collective_time_s, fitted_family, from_mapping

DATA = pathlib.Path(perfjax.__file__).parent / "placement" / "data" / "deepbench_allreduce.csv.gz"
OUT = pathlib.Path(__file__).parent / "results" / "collectives_vs_deepbench.csv"

#: DeepBench GPU label -> perfjax catalog name (None: not in the catalog).
GPUS = {
    "P100": "p100",
    "1080Ti": "gtx-1080ti",
    "M40": None,
    "TitanX_Maxwell": None,
    "TitanX_Pascal": None,
}
PCIE3_X16_BYTES_PER_S = 15.75e9  # PCI-SIG: 8 GT/s x 16 lanes, 128b/130b encoding, per direction
ACHIEVABLE_SHARE = 0.78  # measured host<->device share of PCIe peak (A100, PCIe 4.0)
HOP_LATENCY_S = 1e-6  # per PCIe hop, as the built-in 4xa100-pcie platform


def server(gpu: str, count: int, bandwidth: float) -> perfjax.placement.Platform:
    return from_mapping(
        {
            "name": f"{count}x{gpu}-pcie3",
            "devices": {"gpu": {"device": gpu, "count": count}},
            "topology": {
                "kind": "pcie-tree",
                "bandwidth_bytes_per_s": bandwidth,
                "latency_s": HOP_LATENCY_S,
            },
        }
    )


def predict(rows: pd.DataFrame, bandwidth_by_gpu: dict[str, float]) -> np.ndarray:
    out = []
    for r in rows.itertuples():
        plat = server(GPUS[r.gpu], int(r.num_devices), bandwidth_by_gpu[r.gpu])
        assert fitted_family(plat) is None, "a PCIe server must stay on the alpha-beta model"
        out.append(
            float(collective_time_s("all_reduce", float(r.size_bytes_fp32), plat, algorithm="ring"))
        )
    return np.array(out)


def main() -> pd.DataFrame:
    data = pd.read_csv(DATA)
    known = data[data.gpu.map(GPUS).notna()].copy()
    skipped = data[data.gpu.map(GPUS).isna()]
    measured = known.mean_ms.to_numpy() * 1e-3
    published = ACHIEVABLE_SHARE * PCIE3_X16_BYTES_PER_S
    known["predicted_ms"] = predict(known, dict.fromkeys(GPUS, published)) * 1e3
    # Fitted variant: per GPU, the bandwidth that makes the 2-GPU ring exact (median over sizes).
    fitted = {}
    for gpu, g in known[known.num_devices == 2].groupby("gpu"):
        p = 2
        alpha = 2 * HOP_LATENCY_S  # GPU -> root -> GPU
        t = g.mean_ms.to_numpy() * 1e-3 - 2 * (p - 1) * alpha
        fitted[gpu] = float(np.median(2 * (p - 1) / p * g.size_bytes_fp32.to_numpy() / t))
    known["fitted_ms"] = predict(known, fitted) * 1e3
    known["ape_published"] = np.abs(known.predicted_ms * 1e-3 - measured) / measured * 100
    known["ape_fitted"] = np.abs(known.fitted_ms * 1e-3 - measured) / measured * 100
    known["fit_holdout"] = known.num_devices != 2
    cols = [
        "gpu",
        "algorithm",
        "num_devices",
        "size_bytes_fp32",
        "mean_ms",
        "predicted_ms",
        "ape_published",
        "fitted_ms",
        "ape_fitted",
        "fit_holdout",
    ]
    result = (
        known[cols].sort_values(["gpu", "num_devices", "size_bytes_fp32"]).reset_index(drop=True)
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(OUT, index=False, float_format="%.6g")

    pd.set_option("display.width", 160)
    print(
        f"DeepBench NCCL 2.0 all-reduce, single node: {len(result)} rows on {sorted(set(result.gpu))}; "
        f"skipped {len(skipped)} rows of GPUs not in the catalog ({sorted(set(skipped.gpu))})."
    )
    print(
        f"published link figure: {published / 1e9:.2f} GB/s per direction, {HOP_LATENCY_S * 1e6:.0f} us per hop, ring"
    )
    print(
        f"median APE (published figures): {result.ape_published.median():.1f} %   "
        f"p90: {result.ape_published.quantile(0.9):.1f} %"
    )
    for gpu, g in result.groupby("gpu"):
        print(
            f"  {gpu:7s} median APE {g.ape_published.median():5.1f} %  (by GPU count: "
            + ", ".join(
                f"{n}: {gg.ape_published.median():.0f} %" for n, gg in g.groupby("num_devices")
            )
            + ")"
        )
    hold = result[result.fit_holdout]
    print(
        "fitted effective bandwidth on 2-GPU rows: "
        + ", ".join(f"{k} {v / 1e9:.2f} GB/s" for k, v in fitted.items())
        + f"; median APE on the held-out 4/8-GPU rows: {hold.ape_fitted.median():.1f} %"
    )
    table = result.pivot_table(
        index="size_bytes_fp32",
        columns=["gpu", "num_devices"],
        values="ape_published",
        aggfunc="median",
    )
    print("\nAPE % (published figures) by size (bytes) and GPU x count:")
    print(table.round(1).to_string())
    print("\nmeasured vs predicted (ms):")
    print(
        result[["gpu", "num_devices", "size_bytes_fp32", "mean_ms", "predicted_ms", "fitted_ms"]]
        .round(3)
        .to_string(index=False)
    )
    print(f"\nwrote {OUT}")
    return result


if __name__ == "__main__":
    main()
