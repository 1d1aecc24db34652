"""Zoo BERT-large / GPT-2-large predicted vs NeuSight's measured whole-model GPU latencies.

    python experiments/zoo_gpus.py            # ~10 s on 2 cores (19 timings, 5 GPUs)
    python experiments/zoo_gpus.py --quick    # ~5 s smoke run (BERT-large, batch 8 rows only)

Measured: NeuSight's ``models/e2e_latency.csv`` (MIT; ``perfjax.calibrate._public.
load_neusight_models()``): BERT-large (seq 512, batch 8 / 16) and GPT-2-large (seq 1024, batch
4 / 8) inference, eager PyTorch on one GPU, strict fp32 (no TF32), on Tesla P4, P100, T4,
V100 (PCIe) and A100 (PCIe 40 GB): 19 timings.

Predicted: the zoo models (``perfjax.models.build("bert", config="large", batch=..., seq_len=512)``,
``build("gpt2", config="large", ...)``), abstract inputs, fp32, traced under
``jax.default_matmul_precision("highest")`` so every ``stablehlo.dot_general`` carries
``precision = [HIGHEST, HIGHEST]`` (checked on the traced StableHLO: the ``dots_highest`` column)
and the GPU model costs them on CUDA cores, not TF32 tensor cores. Each program is traced once
per (model, batch, seq) and predicted on every GPU:

* ``predicted_s``: the zoo's inference function with the shipped GPU calibration (the default);
* ``predicted_prior_s``: the same with ``calibration=False``;
* ``predicted_alt_head_s``: the other head choice (BERT *with* its masked-LM head, GPT-2
  *without* its tied LM head; the zoo's ``inference`` is the BERT encoder and GPT-2 with logits);
* ``predicted_tf32_s``: the zoo function without the precision override (DEFAULT precision: TF32
  on the A100, the same as fp32 on the older GPUs);
* ``predicted_reference_s``: the strict-fp32 ``perfjax/calibrate/_programs.py`` stacks that
  ``experiments/gpu_generalization.py`` scores (pre-LN blocks, no BERT embedding layernorm).
* ``predicted_eager_s``: the zoo program fused as eager PyTorch runs it (fusion policy
  ``"eager"``: every elementwise op its own kernel, softmax / layer norm one kernel each, no GEMM
  epilogue; ``predict(..., fusion="eager")``) instead of XLA's, same calibration: NeuSight timed
  eager PyTorch. Its ops are
  StableHLO's, so a GELU (one PyTorch kernel) counts as several kernels: an upper side for eager
  traffic, where ``predicted_s`` (XLA's fusion) is the lower side.

Outputs (deterministic order): docs/zoo/gpu_models_vs_neusight.csv,
docs/zoo/gpu_models_vs_neusight.png, docs/zoo/gpu_summary.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "zoo"
#: NeuSight model name -> (zoo model, zoo config, NeuSight layer count = the config's).
ZOO = {"bert_large": ("bert", "large"), "gpt2_large": ("gpt2", "large")}
#: The GPUs NeuSight measured, as catalog names (as in experiments/gpu_generalization.py).
GPUS = ("p4", "p100", "t4", "v100-pcie", "a100-pcie-40gb")


def neusight_rows(models: Sequence[str] = tuple(ZOO)):
    """NeuSight's eager single-GPU inference timings of ``models`` on :data:`GPUS`, sorted."""
    from perfjax.calibrate._public import load_neusight_models

    df = load_neusight_models()
    df = df[
        (df["mode"] == "inf")
        & (df["variant"] == "eager_single_gpu")
        & df["model"].isin(list(models))
        & df["device"].isin(GPUS)
    ]
    order = {g: i for i, g in enumerate(GPUS)}
    df = df.assign(_gpu=df["device"].map(order))
    df = df.sort_values(["model", "seq_len", "batch_size", "_gpu"]).drop(columns="_gpu")
    return df.reset_index(drop=True)


def zoo_model(model: str, batch: int, seq: int):
    """The zoo model for a NeuSight row (``model`` is NeuSight's name, e.g. ``"bert_large"``)."""
    import perfjax.models

    name, config = ZOO[model]
    return perfjax.models.build(name, config=config, batch=batch, seq_len=seq)


def _alt_head_program(m) -> tuple[Any, tuple]:
    """BERT with its masked-LM head, or GPT-2 without its LM head (hidden states after ln_f)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import perfjax.ops as F
    from perfjax.models import BERT, GPT2, from_nnx

    cfg = dict(m.config)

    class BertMLM(nnx.Module):
        def __init__(self, rngs):
            self.net = BERT(cfg, dtype=jnp.float32, rngs=rngs)

        def __call__(self, ids):
            return self.net.mlm_logits(self.net(ids))

    class GPT2Body(nnx.Module):
        def __init__(self, rngs):
            self.net = GPT2(cfg, dtype=jnp.float32, rngs=rngs)

        def __call__(self, ids):
            n, t = self.net, ids.shape[1]
            return n.ln_f(n.blocks(F.add(n.wte(ids), n.wpe.table[...][:t])))

    cls = BertMLM if m.name == "bert" else GPT2Body
    module = nnx.eval_shape(lambda: cls(nnx.Rngs(0)))
    ids = jax.ShapeDtypeStruct((m.batch, int(cfg["seq_len"])), jnp.int32)
    return from_nnx(module, (ids,))


def highest(fn):
    """``fn`` traced under ``jax.default_matmul_precision("highest")`` (strict fp32 dots)."""
    import jax

    def wrapped(*args):
        with jax.default_matmul_precision("highest"):
            return fn(*args)

    wrapped.__name__ = getattr(fn, "__name__", "fn") + "_highest"
    return wrapped


def dot_precisions(stablehlo: str) -> tuple[int, int]:
    """(number of ``stablehlo.dot_general`` ops, how many carry ``precision = [HIGHEST, HIGHEST]``)."""
    dots = [ln for ln in stablehlo.splitlines() if "stablehlo.dot_general" in ln]
    return len(dots), sum(bool(re.search(r"precision = \[HIGHEST, HIGHEST\]", d)) for d in dots)


def programs_for(model: str, batch: int, seq: int, *, variants: Sequence[str]) -> dict[str, Any]:
    """Traced :class:`perfjax.Program` s of one NeuSight (model, batch, seq), by variant name."""
    import perfjax
    from perfjax.calibrate._programs import _program

    m = zoo_model(model, batch, seq)
    fn, inputs = m.inference(abstract=True)
    out = {}
    for v in variants:
        if v == "zoo":
            out[v] = perfjax.trace(highest(fn), inputs)
        elif v == "tf32":
            out[v] = perfjax.trace(fn, inputs)
        elif v == "alt_head":
            afn, ain = _alt_head_program(m)
            out[v] = perfjax.trace(highest(afn), ain)
        elif v == "eager":
            pass  # the zoo program under another fusion policy (in compare)
        elif v == "reference":
            rfn, rin = _program(model, batch=batch, seq=seq, precision="highest")
            out[v] = perfjax.trace(rfn, rin)
        else:
            raise ValueError(f"unknown variant {v!r}")
    return out


def compare(
    df,
    *,
    variants: Sequence[str] = ("zoo", "alt_head", "tf32", "reference", "eager"),
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per NeuSight timing: measured vs the zoo's predictions (see the module docstring)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import perfjax

    keys = list(dict.fromkeys(zip(df["model"], df["batch_size"], df["seq_len"])))
    rows = []
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*cols, disable=not progress) as bar:
        task = bar.add_task("NeuSight rows", total=len(df))
        for model, batch, seq in keys:
            bar.update(task, description=f"trace {model} b={batch} s={seq}")
            progs = programs_for(model, int(batch), int(seq), variants=variants)
            n_dots, n_high = dot_precisions(progs["zoo"].stablehlo)
            m = zoo_model(model, int(batch), int(seq))
            sel = df[(df["model"] == model) & (df["batch_size"] == batch) & (df["seq_len"] == seq)]
            for r in sel.itertuples():
                bar.update(task, description=f"predict {model} b={batch} on {r.device}")
                meas = float(r.e2e_latency_ms) / 1e3
                pred = perfjax.predict(progs["zoo"], device=r.device)
                prior = perfjax.predict(progs["zoo"], device=r.device, calibration=False)
                lo, hi = pred.interval_s if pred.interval_s is not None else (np.nan, np.nan)
                row = dict(
                    model=model,
                    zoo_model=m.name,
                    zoo_config=m.config_name,
                    layers=int(m.config["layers"]),
                    neusight_layers=int(r.num_layer),
                    gpu=str(r.gpu),
                    device=r.device,
                    batch=int(batch),
                    seq_len=int(seq),
                    measured_s=meas,
                    predicted_s=pred.time_s,
                    predicted_prior_s=prior.time_s,
                    ape=abs(pred.time_s / meas - 1),
                    ape_prior=abs(prior.time_s / meas - 1),
                    interval_low_s=lo,
                    interval_high_s=hi,
                    inside_interval=bool(lo <= meas <= hi),
                    bottleneck=pred.bottleneck,
                    gflop=pred.flops / 1e9,
                    calibration=pred.calibration,
                    dots=n_dots,
                    dots_highest=n_high,
                )
                for v in variants:
                    if v == "zoo":
                        continue
                    if v == "eager":  # the zoo program, fused as eager PyTorch runs it
                        t = perfjax.predict(progs["zoo"], device=r.device, fusion="eager").time_s
                    else:
                        t = perfjax.predict(progs[v], device=r.device).time_s
                    row[f"predicted_{v}_s"] = t
                    row[f"ape_{v}"] = abs(t / meas - 1)
                rows.append(row)
                bar.advance(task)
    return rows


def _stats(x) -> dict[str, float]:
    a = np.asarray(list(x), dtype=float)
    return dict(
        points=int(a.size), median_ape=float(np.median(a)), p90_ape=float(np.percentile(a, 90))
    )


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ape_cols = [c for c in rows[0] if c.startswith("ape")]

    def block(sel):
        out = _stats(r["ape"] for r in sel)
        for c in ape_cols:
            out[f"median_{c}"] = float(np.median([r[c] for r in sel]))
        out["median_ratio_predicted_over_measured"] = float(
            np.median([r["predicted_s"] / r["measured_s"] for r in sel])
        )
        out["interval_coverage"] = float(np.mean([r["inside_interval"] for r in sel]))
        return out

    return dict(
        overall=block(rows),
        per_model={
            m: block([r for r in rows if r["model"] == m])
            for m in dict.fromkeys(r["model"] for r in rows)
        },
        per_gpu={
            g: block([r for r in rows if r["device"] == g])
            for g in dict.fromkeys(r["device"] for r in rows)
        },
    )


_GPU_COLORS = {
    "p4": "tab:gray",
    "p100": "tab:brown",
    "t4": "tab:green",
    "v100-pcie": "tab:blue",
    "a100-pcie-40gb": "tab:red",
}
_MODEL_MARKERS = {"bert_large": "o", "gpt2_large": "s"}


def plot(rows: Sequence[dict[str, Any]], path: pathlib.Path, title: str) -> None:
    from experiments._zoo_common import finish_scatter, scatter_axes

    m = np.array([r["measured_s"] for r in rows])
    allp = [r[k] for r in rows for k in ("predicted_s", "predicted_prior_s")]
    lo, hi = min(m.min(), min(allp)) / 1.5, max(m.max(), max(allp)) * 1.5
    plt, fig, ax = scatter_axes(lo, hi)
    for r in rows:
        c, mk = _GPU_COLORS.get(r["device"], "k"), _MODEL_MARKERS.get(r["model"], "o")
        ax.scatter(
            r["measured_s"], r["predicted_s"], c=c, marker=mk, s=45, edgecolors="k", linewidths=0.4
        )
        ax.scatter(
            r["measured_s"],
            r["predicted_prior_s"],
            facecolors="none",
            edgecolors=c,
            marker=mk,
            s=45,
        )
        if "predicted_alt_head_s" in r:
            ax.scatter(r["measured_s"], r["predicted_alt_head_s"], c=c, marker="x", s=25, alpha=0.7)
    for g, c in _GPU_COLORS.items():
        if any(r["device"] == g for r in rows):
            ax.scatter([], [], c=c, marker="s", label=g)
    for name, mk in _MODEL_MARKERS.items():
        if any(r["model"] == name for r in rows):
            ax.scatter([], [], c="k", marker=mk, label=f"{name} (filled: shipped calibration)")
    ax.scatter([], [], facecolors="none", edgecolors="k", marker="o", label="open: priors")
    if any("predicted_alt_head_s" in r for r in rows):
        ax.scatter([], [], c="k", marker="x", label="x: other head choice")
    finish_scatter(
        plt,
        fig,
        ax,
        lo,
        hi,
        xlabel="measured (NeuSight, eager PyTorch fp32) (s)",
        ylabel="predicted, zoo model, strict fp32 (s)",
        title=title,
        path=path,
        legend_size=6.5,
    )


def main(argv: Sequence[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="BERT-large rows only, zoo + priors")
    ap.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="output folder (default docs/zoo; with --quick, a temp folder)",
    )
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = pathlib.Path(tempfile.gettempdir()) / "perfjax_zoo_quick" if args.quick else OUT
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    df = neusight_rows(["bert_large"] if args.quick else list(ZOO))
    if args.quick:
        df = df[df["batch_size"] == df["batch_size"].min()]
    rows = compare(
        df, variants=("zoo",) if args.quick else ("zoo", "alt_head", "tf32", "reference", "eager")
    )
    total_s = time.perf_counter() - t0
    summary = summarize(rows)
    csv = args.out / "gpu_models_vs_neusight.csv"
    pd.DataFrame(rows).to_csv(csv, index=False, float_format="%.6g", lineterminator="\n")
    s = summary["overall"]
    plot(
        rows,
        args.out / "gpu_models_vs_neusight.png",
        f"zoo BERT-large / GPT-2-large vs NeuSight (fp32, eager)\nmedian APE "
        f"{100 * s['median_ape']:.0f}% calibrated, {100 * s['median_ape_prior']:.0f}% priors",
    )
    report = dict(
        command=" ".join(["python", "experiments/zoo_gpus.py", *(argv or sys.argv[1:])]),
        source=df.attrs.get("source"),
        licence=df.attrs.get("licence"),
        total_s=round(total_s, 1),
        summary=summary,
    )
    (args.out / "gpu_summary.json").write_text(json.dumps(report, indent=1, default=float) + "\n")

    print(
        f"{len(rows)} NeuSight timings in {total_s:.0f} s "
        f"(dots with HIGHEST precision: {rows[0]['dots_highest']}/{rows[0]['dots']} in the first program)"
    )
    extra = [c for c in rows[0] if c.startswith("ape_") and c != "ape_prior"]
    for name, block in [("overall", s), *summary["per_model"].items(), *summary["per_gpu"].items()]:
        print(
            f"  {name:15s} n={block['points']:2d}  median APE {100 * block['median_ape']:5.1f}%  "
            f"prior {100 * block['median_ape_prior']:5.1f}%  "
            + "  ".join(f"{c[4:]} {100 * block['median_' + c]:5.1f}%" for c in extra)
            + f"  pred/meas {block['median_ratio_predicted_over_measured']:.2f}"
        )
    print(f"wrote {csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
