"""Which fit loss a host calibration should use: refit saved calibrations, predict held-out sets.

    python experiments/host_fit_loss.py                       # ~15 min on 2 cores
    python experiments/host_fit_loss.py --variants huber asymmetric:0.5 asymmetric:0.5/unweighted

A host calibration's timings carry the state of a shared machine: now and then a run of
neighbouring points is timed in a slow spell on both visits (a block of small GEMMs or layer
norms at 1.5-6x), and that block then moves the fitted fixed costs, with them every prediction of
a program of many small kernels. The loss decides how much such points pull.

Nothing is timed here. Every saved measurement file in ``docs/calibration/host_measurements/``
(default ``perfjax calibrate`` runs on one 2-core machine, see the README there) is fitted as
``perfjax calibrate --from-csv`` fits it, once per loss variant (``huber``, ``msle``, or
``asymmetric:SCALE``: Huber on the fast side, a Cauchy loss of that scale on the slow side,
``perfjax.calibrate._fit.SLOW_SCALE``); a suffix ``/unweighted`` (``asymmetric:0.5/unweighted``)
leaves out the weights by per-call spread a noisy file's points get
(``perfjax.calibrate.spread_weights``). Each fit predicts the programs of every committed
``docs/calibration/host_generalization*.csv`` set (regenerated from its seed; measured by that
run, never in a fit), and is scored on all of them pooled: median and p90 APE, the share
predicted better than the priors, the interval's coverage (and, for comparison, the coverage
of the split-conformal interval of the same residuals: their order statistics).

Writes docs/calibration/host_fit_loss.csv (one row per measurement file and variant) and prints
the mean over the measurement files and the worst one per variant.

    python experiments/host_fit_loss.py --calibrations docs/calibration/host_calibration_s*.json \
        --out docs/calibration/host_calibrations_scored.csv

scores saved calibrations instead (no fit): each on the same held-out programs.

    python experiments/host_fit_loss.py --pairs     # -> docs/calibration/host_pooled.csv

fits two timing files together (``perfjax calibrate --from-csv A --from-csv B``:
``perfjax.calibrate.pool``, of a point timed in both files the faster timing), each file of
the first half of the sorted list with the same place in the second (hours or a day apart), and
scores those fits the same way.

    python experiments/host_fit_loss.py --previous  # -> docs/calibration/host_pooled_previous.csv

fits each timing file with the one measured before it, as a default ``perfjax calibrate`` fits
a run's timings with the machine's previous run's. ``--combine concat`` fits both files' rows
instead (each point twice), for comparison.
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import json
import pathlib
import sys
import warnings

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT))

import host_generalization as hg  # noqa: E402
from host_generalization import _rel  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from perfjax.calibrate import Measurements, _fit, fit, load, pool  # noqa: E402
from perfjax.devicemodels._calibration import params_for  # noqa: E402
from perfjax.devicemodels._catalog import device as get_device  # noqa: E402
from perfjax.devicemodels._models import pack_numpy, resolve, total_time  # noqa: E402
from perfjax.fusion._kernels import kernels_for  # noqa: E402
from perfjax.lowering._staging import program_for  # noqa: E402
from perfjax.prediction._predict import _pad_kernels, lowering_platform  # noqa: E402

CAL = ROOT / "docs" / "calibration"


def timed_sets(directory: pathlib.Path = CAL) -> list[tuple[str, list[dict]]]:
    """The held-out sets committed in ``directory``: (CSV path, its rows with a time) each."""
    files = sorted(glob.glob(str(directory / "host_generalization*.csv")))
    return [(path, [r for r in csv.DictReader(open(path)) if r["measured_s"]]) for path in files]


def held_out_sets(directory: pathlib.Path = CAL, min_sets: int = 1) -> list[dict]:
    """The held-out sets' programs committed in ``directory``, lowered and fused once:
    (measured, arrays). ``min_sets``: only programs timed in at least that many sets."""
    spec = get_device("host")
    platform, _ = lowering_platform(spec)
    out = []
    sets = timed_sets(directory)
    sets_of = collections.Counter(p for _, rows in sets for p in {r["program"] for r in rows})
    for path, table in track(sets, description="lowering the held-out programs"):
        seed = json.loads(pathlib.Path(path[:-4] + ".json").read_text())["seed"]
        rows = [r for r in table if sets_of[r["program"]] >= min_sets]
        if not rows:
            continue
        progs = {p[1]: p for p in hg.generate(seed, len(table))}
        for r in rows:
            if r["program"] not in progs:  # (the generator no longer draws it)
                continue
            _, _, fn, inputs = progs[r["program"]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                k = kernels_for(program_for(fn, inputs, None, platform), "cpu", None)
            n = len(k)
            out.append(dict(seed=seed, family=r["family"], program=r["program"],
                            measured_s=float(r["measured_s"]),
                            arrays=_pad_kernels(k.arrays(), n),
                            res=_pad_kernels(resolve(k, spec, None).arrays(), n)))  # fmt: skip
    return out


_TOTAL = jax.jit(total_time, static_argnames=("family",))


def predict_all(params, items) -> np.ndarray:
    dev = pack_numpy(get_device("host"))
    return np.array([float(_TOTAL(it["arrays"], dev, params, it["res"], "cpu")) for it in items])


DEFAULT_SCALE, DEFAULT_QUIET = _fit.SLOW_SCALE, _fit.QUIET_NOISE


def fit_variant(path: str, variant: str):
    variant, _, weights = variant.partition("/")
    if weights not in ("", "unweighted"):
        raise SystemExit(f"unknown variant suffix /{weights}; expected /unweighted or none.")
    loss, _, scale = variant.partition(":")
    if scale:
        _fit.SLOW_SCALE = float(scale)
    if weights:  # no spread weights, however noisy the machine was
        _fit.QUIET_NOISE = float("inf")
    try:
        # as `perfjax calibrate --from-csv` fits
        return fit(Measurements.from_csv(path), loss=loss, refit=True)
    finally:
        _fit.SLOW_SCALE, _fit.QUIET_NOISE = DEFAULT_SCALE, DEFAULT_QUIET


def order_statistics_bounds(cal) -> tuple[float, float]:
    """The split-conformal bounds (order statistics) of the residuals that set a refitted
    calibration's interval, where its 12 or more whole programs make that interval the normal
    one of their median and MAD (``perfjax.calibrate._fit._interval``): the comparison."""
    rows = [r for r in cal.report.rows if r["split"] in ("program", "heldout")]
    if sum(r["split"] == "program" for r in rows) < _fit.MIN_INTERVAL_PROGRAMS:
        return cal.residual_log_quantiles
    resid = np.log([r["measured_s"] / r["after_s"] for r in rows])
    return _fit._conformal_bounds(resid, (1.0 - cal.interval_level) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+",
                    default=["huber", "asymmetric:0.35", "asymmetric:0.5", "asymmetric:0.8"])  # fmt: skip
    ap.add_argument(
        "--calibrations",
        nargs="+",
        default=None,
        help="saved calibrations to score instead of refitting the measurements",
    )
    ap.add_argument(
        "--pairs",
        action="store_true",
        help="fit pairs of timing files hours apart together (the i-th of the first half with the "
        "i-th of the second: `perfjax calibrate --from-csv A --from-csv B`), default loss",
    )
    ap.add_argument(
        "--previous",
        action="store_true",
        help="fit each timing file with the one measured before it, the newer first (as a "
        "default `perfjax calibrate` pools with the previous run), default loss",
    )
    ap.add_argument(
        "--combine",
        choices=("faster", "concat"),
        default="faster",
        help="--pairs / --previous: how two files are fitted together (default: faster, "
        "perfjax.calibrate.pool; concat: every row of both)",
    )
    ap.add_argument("--out", type=pathlib.Path, default=None)
    args = ap.parse_args()
    default_out = CAL / (
        "host_pooled.csv" if args.pairs
        else "host_pooled_previous.csv" if args.previous else "host_fit_loss.csv"
    )  # fmt: skip
    if args.out is None:
        args.out = default_out
    measurements = sorted(glob.glob(str(CAL / "host_measurements" / "*.csv")))
    items = held_out_sets()
    spec = get_device("host")
    measured = np.array([it["measured_s"] for it in items])
    prior_ape = np.abs(predict_all(params_for(spec, None), items) / measured - 1)
    rows = []
    if args.calibrations:
        args.variants = ["saved"]
        jobs = [(c, "saved") for c in args.calibrations]
    elif args.pairs:
        args.variants = ["pooled"]
        half = len(measurements) // 2
        jobs = [((measurements[i], measurements[i + half]), "pooled") for i in range(half)]
    elif args.previous:
        args.variants = ["pooled"]
        jobs = [
            ((measurements[i], measurements[i - 1]), "pooled") for i in range(1, len(measurements))
        ]
    else:
        jobs = [(m, v) for m in measurements for v in args.variants]
    for path, variant in track(jobs, description="fitting and predicting"):
        if variant == "pooled":  # two timing files fitted together, as --from-csv twice
            new, earlier = Measurements.from_csv(path[0]), Measurements.from_csv(path[1])
            both = pool(new, earlier) if args.combine == "faster" else new + earlier
            cal = fit(both, refit=True)
            path = f"{pathlib.Path(path[0]).name}+{pathlib.Path(path[1]).name}"
        else:
            cal = load(path) if variant == "saved" else fit_variant(path, variant)
        pred = predict_all(params_for(spec, cal), items)
        ape = np.abs(pred / measured - 1)
        lo, hi = cal.residual_log_quantiles
        resid = np.log(measured / pred)
        row = dict(measurements=pathlib.Path(path).name, variant=variant, programs=len(items),
                   median_ape=np.median(ape), p90_ape=np.quantile(ape, 0.9),
                   better_than_priors=np.mean(ape < prior_ape),
                   coverage=np.mean((resid >= lo) & (resid <= hi)))  # fmt: skip
        if variant != "saved":  # the interval's coverage had it been the order statistics
            a, b = order_statistics_bounds(cal)
            row["coverage_order_statistics"] = np.mean((resid >= a) & (resid <= b))
        rows.append(row)
    with open(args.out, "w", newline="") as f:
        what = (f"--calibrations {' '.join(_rel(c) for c in args.calibrations)}"
                if args.calibrations else "--pairs" if args.pairs
                else "--previous" if args.previous
                else f"--variants {' '.join(args.variants)}")  # fmt: skip
        if (args.pairs or args.previous) and args.combine != "faster":
            what += f" --combine {args.combine}"
        if args.out.resolve() != default_out.resolve():
            what += f" --out {_rel(args.out)}"
        f.write(f"# command: python experiments/host_fit_loss.py {what}\n")
        f.write(f"# held-out programs: {len(items)} from {len({it['seed'] for it in items})} "
                f"host_generalization sets; priors {np.median(prior_ape):.4f} / "
                f"{np.quantile(prior_ape, 0.9):.4f} median / p90 APE\n")  # fmt: skip
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})
    title = (f"{len(jobs) // len(args.variants)} calibrations, {len(items)} held-out programs "
             f"(priors {np.median(prior_ape):.1%} / {np.quantile(prior_ape, 0.9):.1%})")  # fmt: skip
    table = Table(title=title)
    if args.calibrations:  # one row per saved calibration
        for col in ("calibration", "median APE", "p90 APE", "better than priors", "coverage"):
            table.add_column(col, no_wrap=(col == "calibration"))
        for r in rows:
            table.add_row(r["measurements"], f"{r['median_ape']:.1%}", f"{r['p90_ape']:.1%}",
                          f"{r['better_than_priors']:.1%}", f"{r['coverage']:.1%}")  # fmt: skip
    else:  # per variant: the mean over the measurement files, and the worst of them
        for col in ("variant", "median APE (mean)", "p90 APE (mean)", "better than priors",
                    "coverage", "coverage (order statistics)", "worst median", "worst p90"):  # fmt: skip
            table.add_column(col, no_wrap=(col == "variant"))
        for v in args.variants:
            col = lambda k, v=v: np.array([r[k] for r in rows if r["variant"] == v])
            means = [
                f"{col(k).mean():.1%}"
                for k in ("median_ape", "p90_ape", "better_than_priors", "coverage",
                          "coverage_order_statistics")
            ]  # fmt: skip
            table.add_row(
                v, *means, f"{col('median_ape').max():.1%}", f"{col('p90_ape').max():.1%}"
            )
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
