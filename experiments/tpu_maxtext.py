"""MaxText's published TPU v5e training throughput vs perfjax's prediction of the same steps.

    python experiments/tpu_maxtext.py           # ~2 min on 2 cores (24 v5e rows + other TPUs)
    python experiments/tpu_maxtext.py --quick   # the 16B rows only

Measured: ``../shared/datasets/tpu-timings/maxtext/maxtext_v5e.csv`` — the 24 rows of the
"TPU v5e" table of MaxText's README (16B, 32B, 64B, 128B dense decoders on 1-32 slices of
v5e-256), each with its model and run configuration resolved from MaxText's own scripts.
Nothing of it is fitted: the devices' figures are the catalog's and ``pods.toml``'s.

Predicted: for each row, ``perfjax.models.decoder`` builds the row's model (its ``emb_dim``,
heads, ``head_dim``, ``mlp_dim``, layers, vocabulary, ReLU MLP, tied embeddings, MaxText's 2023
parallel block with T5 relative-position bias, flash attention without a causal mask, full
remat), its training step (forward, backward, global-norm clipping, AdamW) is sharded as the
row's run was (FSDP over the 256 chips of a slice, data parallelism over ``num_slices`` slices
across DCN), with ``per_device_batch_size`` x 2048 tokens per chip, and
``perfjax.placement.predict_pod`` predicts its step on ``v5e-256 x num_slices``.

TFLOP/s per chip is counted as the dataset's README says MaxText counts it: model FLOPs per chip
per step (6 · params · tokens + 12 · heads · layers · head_dim · seq² · batch per chip, no
causal discount, remat not counted) over the step time. Errors are (predicted - published) /
published. The trend over slices compares the sign of each model's change from 1 to 32 slices.

The same model on other TPU generations (v4, v5p, v6e: no published figure here, no refit) is
written to ``other_generations`` in the JSON, for judging against measurements elsewhere.

Writes docs/tpu/maxtext_v5e.csv, docs/tpu/maxtext_summary.json, docs/tpu/maxtext_v5e.png.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np
import pandas as pd
from jax.sharding import AbstractMesh

from perfjax.models import DecoderConfig, decoder
from perfjax.placement.pods import pod, predict_pod

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "tpu-timings" / "maxtext" / "maxtext_v5e.csv"


def row_config(r: pd.Series) -> DecoderConfig:
    """The row's decoder, as MaxText's 2023 ``default`` decoder builds it."""
    return DecoderConfig(
        vocab_size=int(r.vocab_size),
        emb_dim=int(r.emb_dim),
        num_decoder_layers=int(r.num_decoder_layers),
        num_query_heads=int(r.num_query_heads),
        num_kv_heads=int(r.num_kv_heads),
        head_dim=int(r.head_dim),
        mlp_dim=int(r.mlp_dim),
        mlp_activation=str(r.mlp_activations),
        norm="rms",
        positions="relative",
        max_target_length=int(r.max_target_length),
        tied_embeddings=bool(r.logits_via_embedding),
        parallel_block=True,
        remat=str(r.remat_policy),
        attention="flash",
        attention_block=512,
        causal=False,
    )


def predict_row(r: pd.Series, generation: str = "v5e", slices: int | None = None) -> dict:
    cfg = row_config(r)
    d = decoder(cfg)
    s = int(r.num_slices if slices is None else slices)
    p = pod(f"{generation}-256", slices=s)
    mesh = AbstractMesh((s, 256), ("data", "fsdp"))
    batch = int(r.per_device_batch_size)
    fn, inputs = d.training_step(batch=batch * 256 * s, mesh=mesh)
    t0 = time.perf_counter()
    out = {}
    for overlap in (True, False):
        pred = predict_pod(fn, inputs, pod=p, donate_argnums=(0, 1), overlap=overlap)
        key = "" if overlap else "_no_overlap"
        out[f"step_time_s{key}"] = pred.step_time_s
        if overlap:
            out.update(
                compute_s=pred.compute_s,
                communication_s=pred.communication_s,
                exposed_communication_s=pred.exposed_communication_s,
                dcn_s=sum(c.time_s * c.executions for c in pred.collectives if "dcn" in c.network),
                flops_per_chip=pred.flops_per_chip,
                peak_memory_gb=(pred.peak_memory_bytes or float("nan")) / 1e9,
                fits=pred.fits,
            )
    out["predict_wall_s"] = time.perf_counter() - t0
    assert d.num_params == int(r.param_count_exact), (d.num_params, r.param_count_exact)
    model_flops = d.model_flops_per_step(batch)
    out["model_tflop_per_chip"] = model_flops / 1e12
    out["predicted_tflops_per_chip"] = model_flops / out["step_time_s"] / 1e12
    out["predicted_tflops_per_chip_no_overlap"] = model_flops / out["step_time_s_no_overlap"] / 1e12
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 16B rows only")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "tpu")
    args = ap.parse_args()
    rows = pd.read_csv(DATA)
    if args.quick:
        rows = rows[rows.params_label == "16B"]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    for _, r in rows.iterrows():
        pred = predict_row(r)
        rec = {
            "row_id": int(r.row_id),
            "model": r.params_label,
            "num_slices": int(r.num_slices),
            "per_device_batch_size": int(r.per_device_batch_size),
            "published_tflops_per_chip": float(r.tflops_per_chip_published),
            "published_model_tflop_per_chip": float(r.total_tflop_per_device_step),
            **pred,
        }
        rec["error"] = rec["predicted_tflops_per_chip"] / rec["published_tflops_per_chip"] - 1
        rec["error_no_overlap"] = (
            rec["predicted_tflops_per_chip_no_overlap"] / rec["published_tflops_per_chip"] - 1
        )
        results.append(rec)
        print(
            f"{rec['model']:>5} x{rec['num_slices']:<2}  published {rec['published_tflops_per_chip']:6.1f}"
            f"  predicted {rec['predicted_tflops_per_chip']:6.1f} TFLOP/s/chip ({rec['error']:+.1%})"
            f"  [{rec['predict_wall_s']:.1f} s]",
            flush=True,
        )
    df = pd.DataFrame(results)
    df.to_csv(args.out / "maxtext_v5e.csv", index=False, float_format="%.6g", lineterminator="\n")

    trend = {}
    for model, g in df.groupby("model", sort=False):
        g = g.sort_values("num_slices")
        pub = np.sign(g.published_tflops_per_chip.iloc[-1] - g.published_tflops_per_chip.iloc[0])
        prd = np.sign(g.predicted_tflops_per_chip.iloc[-1] - g.predicted_tflops_per_chip.iloc[0])
        trend[model] = {
            "published_change": float(
                g.published_tflops_per_chip.iloc[-1] / g.published_tflops_per_chip.iloc[0] - 1
            ),
            "predicted_change": float(
                g.predicted_tflops_per_chip.iloc[-1] / g.predicted_tflops_per_chip.iloc[0] - 1
            ),
            "same_direction": bool(pub == prd),
            "spearman": float(
                pd.Series(g.predicted_tflops_per_chip.values).corr(
                    pd.Series(g.published_tflops_per_chip.values), method="spearman"
                )
            ),
        }

    # The same model on other generations (no published figure here; no refit).
    other = []
    if not args.quick:
        firsts = rows[rows.num_slices == 1]
        for gen in ("v4", "v5p", "v6e"):
            for _, r in firsts.iterrows():
                try:
                    pred = predict_row(r, generation=gen, slices=1)
                except Exception as e:  # a model that cannot tile a slice: say so
                    other.append({"generation": gen, "model": r.params_label, "error": str(e)})
                    continue
                other.append({
                    "generation": gen, "model": r.params_label, "num_slices": 1,
                    "per_device_batch_size": int(r.per_device_batch_size),
                    "predicted_tflops_per_chip": pred["predicted_tflops_per_chip"],
                    "step_time_s": pred["step_time_s"], "fits": pred["fits"],
                    "peak_memory_gb": pred["peak_memory_gb"],
                })  # fmt: skip

    ape = df.error.abs()
    summary = {
        "command": "python experiments/tpu_maxtext.py" + (" --quick" if args.quick else ""),
        "rows": len(df),
        "median_abs_error": float(ape.median()),
        "max_abs_error": float(ape.max()),
        "rows_within_20pct": int((ape <= 0.20).sum()),
        "median_abs_error_no_overlap": float(df.error_no_overlap.abs().median()),
        "median_signed_error": float(df.error.median()),
        "trend_over_slices": trend,
        "max_predict_wall_s": float(df.predict_wall_s.max()),
        "other_generations": other,
        "wall_s": time.perf_counter() - t0,
        "jax": jax.__version__,
        "python": sys.version.split()[0],
    }
    (args.out / "maxtext_summary.json").write_text(
        json.dumps(summary, indent=1, default=float) + "\n"
    )
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k != "other_generations"}, indent=1, default=float
        )
    )
    _plot(df, args.out / "maxtext_v5e.png")


def _plot(df: pd.DataFrame, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (model, g) in enumerate(df.groupby("model", sort=False)):
        c = f"C{i}"
        ax.plot(
            g.num_slices, g.published_tflops_per_chip, "o-", color=c, label=f"{model} published"
        )
        ax.plot(g.num_slices, g.predicted_tflops_per_chip, "s--", color=c, alpha=0.8,
                label=f"{model} perfjax")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8, 16, 32], labels=["1", "2", "4", "8", "16", "32"])
    ax.set_xlabel("v5e-256 slices")
    ax.set_ylabel("TFLOP/s per chip (MaxText's count)")
    ax.set_title("MaxText on TPU v5e: published vs predicted (no fit)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
