"""perfjax (XLA on this CPU) versus plain NumPy, float32, on small-model workloads.

What is measured
----------------
Workloads (``B`` = batch, each run at B = 1, 8, 64, 256, 1024):

* ``mlp_784``: MLP 784 -> 128 -> 10 (matmul + bias + relu, no relu on the last layer), x is (B, 784);
* ``mlp_1024``: MLP 1024 -> 1024 -> 1024 -> 10, x is (B, 1024);
* ``gelu_chain``: ``gelu_tanh(x * a + b)`` on x (B, 1024) with per-feature a, b (1024,);
* ``tanh_chain``: ``tanh(x) * x + x * x`` on x (B, 1024).

The elementwise chains run on B x 1024 elements: 1k ... 1M, with 64k at B=64 and 1M at B=1024.
XLA fuses each chain into one loop; NumPy evaluates it op by op with temporaries.

The perfjax side is written with ``perfjax.ops`` (matmul, bias_add, relu, mul, add, gelu, tanh)
and timed with ``perfjax.run(fn, args, max_time_s=T)``; the NumPy side is plain ``numpy``
(``x @ w + b``, ``np.maximum``, ``np.tanh``; the tanh form of GELU, as perfjax.ops.gelu's
default) timed with ``perfjax.executor.time_callable(np_fn, args, max_time_s=T)``: the same
protocol (warm-up, samples of ``number`` calls, adaptive stop on the 95% CI of the median).
Outputs are checked to agree (``assert_allclose``, rtol 1e-4, atol 1e-5) before any timing.

Measurements are interleaved: R rounds (default 5); each round times every (workload, batch)
once with each library, alternating which goes first. Per round, speed-up = NumPy median /
perfjax median; reported are the median over rounds (and min-max) of that speed-up, and the
median over rounds of each library's median time. Goal: speed-up >= 1.3.

Outputs: ``benchmarks/results/vs_numpy.csv`` (workload, batch, perfjax_median_s,
numpy_median_s, speedup, rounds, speedup_min, speedup_max), ``benchmarks/results/vs_numpy.png``
(speed-up vs batch) and ``benchmarks/results/vs_numpy.json`` (machine info, per-round data).

Regenerate them (from the repository root)::

    python benchmarks/vs_numpy.py

NumPy's BLAS (OpenBLAS) uses all cores by default; on a loaded machine its threads can stall for
milliseconds. ``OPENBLAS_NUM_THREADS=1 python benchmarks/vs_numpy.py --outdir /tmp/vs1`` measures
single-threaded NumPy instead (the variable is recorded in the JSON's machine info).

``--quick`` is a smoke test (2 rounds, batches 1 and 1024, short budgets); ``--rounds N`` changes R.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import os
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np
from _machine import machine_info

import perfjax
from perfjax import ops
from perfjax.executor import time_callable

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 8, 64, 256, 1024)
QUICK_BATCHES = (1, 1024)
GOAL = 1.3
GELU_C = np.float32(np.sqrt(2.0 / np.pi))


# ---------------------------------------------------------------------------------------------
# perfjax (jax) versions
# ---------------------------------------------------------------------------------------------


def pj_mlp(x, *params):
    """Dense layers (w, b) pairs; relu between layers, none after the last."""
    h = x
    n = len(params) // 2
    for i in range(n):
        h = ops.bias_add(ops.matmul(h, params[2 * i]), params[2 * i + 1])
        if i < n - 1:
            h = ops.relu(h)
    return h


def pj_gelu_chain(x, a, b):
    return ops.gelu(ops.add(ops.mul(x, a), b))


def pj_tanh_chain(x):
    return ops.add(ops.mul(ops.tanh(x), x), ops.mul(x, x))


# ---------------------------------------------------------------------------------------------
# NumPy versions (plain numpy, float32 throughout)
# ---------------------------------------------------------------------------------------------


def np_mlp(x, *params):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            h = np.maximum(h, 0)
    return h


def np_gelu_chain(x, a, b):
    y = x * a + b
    return 0.5 * y * (1 + np.tanh(GELU_C * (y + 0.044715 * y * y * y)))


def np_tanh_chain(x):
    return np.tanh(x) * x + x * x


# ---------------------------------------------------------------------------------------------


def make_inputs(workload: str, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    def u(*shape, scale=1.0):
        return (rng.uniform(-1, 1, size=shape) * scale).astype(np.float32)

    if workload in ("mlp_784", "mlp_1024"):
        dims = (784, 128, 10) if workload == "mlp_784" else (1024, 1024, 1024, 10)
        params = []
        for din, dout in itertools.pairwise(dims):
            params += [u(din, dout, scale=np.sqrt(3.0 / din)), u(dout, scale=0.1)]
        return (u(batch, dims[0]), *params)
    if workload == "gelu_chain":
        return (u(batch, 1024, scale=2.0), u(1024), u(1024, scale=0.5))
    if workload == "tanh_chain":
        return (u(batch, 1024, scale=2.0),)
    raise ValueError(workload)


WORKLOADS = {
    "mlp_784": (pj_mlp, np_mlp),
    "mlp_1024": (pj_mlp, np_mlp),
    "gelu_chain": (pj_gelu_chain, np_gelu_chain),
    "tanh_chain": (pj_tanh_chain, np_tanh_chain),
}


def fmt_t(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 5; 2 with --quick)"
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="max_time_s of each timing (default 0.75; 0.1 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="fast smoke mode (batches 1 and 1024)")
    p.add_argument("--outdir", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    rounds = a.rounds if a.rounds is not None else (2 if a.quick else 5)
    max_time = a.max_time if a.max_time is not None else (0.1 if a.quick else 0.75)
    batches = QUICK_BATCHES if a.quick else BATCHES
    if rounds < 1:
        p.error("--rounds must be >= 1")

    t_start = time.perf_counter()
    info = machine_info()
    cmd = " ".join(["python"] + [shlex.quote(x) for x in sys.argv])
    print(
        f"vs_numpy: {rounds} rounds, max_time_s={max_time}, batches {list(batches)}; "
        f"{info['cpu_model'] or info['processor']} x{info['cpu_count']}, jax {info['jax']}, numpy {info['numpy']}"
    )

    # Build inputs, compile, and check that both versions agree before timing anything.
    rng = np.random.default_rng(0)
    configs = []
    for wl, (pj_fn, np_fn) in WORKLOADS.items():
        for b in batches:
            np_args = make_inputs(wl, b, rng)
            pj_args = tuple(jax.device_put(x) for x in np_args)
            first = perfjax.run(pj_fn, pj_args, time_it=False)
            ref = np_fn(*np_args)
            got = np.asarray(first.outputs)
            assert ref.dtype == np.float32, (wl, ref.dtype)
            assert got.dtype == np.float32 and got.shape == ref.shape, (
                wl,
                got.dtype,
                got.shape,
                ref.shape,
            )
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=f"{wl} batch {b}")
            err = float(np.max(np.abs(got - ref)))
            configs.append(
                dict(
                    workload=wl,
                    batch=b,
                    pj=(pj_fn, pj_args),
                    np=(np_fn, np_args),
                    compile_s=first.compile_s,
                    max_abs_err=err,
                    pj_s=[],
                    np_s=[],
                )
            )
    print(f"  outputs agree for {len(configs)} configurations (rtol 1e-4, atol 1e-5); timing...")

    for r in range(rounds):
        t_round = time.perf_counter()
        for i, c in enumerate(configs):
            order = ("pj", "np") if (r + i) % 2 == 0 else ("np", "pj")
            for side in order:
                fn, args = c[side]
                if side == "pj":
                    c["pj_s"].append(perfjax.run(fn, args, max_time_s=max_time).time.median_s)
                else:
                    c["np_s"].append(time_callable(fn, args, max_time_s=max_time).median_s)
        print(f"  round {r + 1}/{rounds} done in {time.perf_counter() - t_round:.1f} s")

    rows = []
    for c in configs:
        sp = [n / p_ for n, p_ in zip(c["np_s"], c["pj_s"], strict=True)]
        rows.append(
            dict(
                workload=c["workload"],
                batch=c["batch"],
                perfjax_median_s=float(np.median(c["pj_s"])),
                numpy_median_s=float(np.median(c["np_s"])),
                speedup=float(np.median(sp)),
                rounds=rounds,
                speedup_min=float(np.min(sp)),
                speedup_max=float(np.max(sp)),
                per_round_speedup=sp,
                per_round_perfjax_s=c["pj_s"],
                per_round_numpy_s=c["np_s"],
                compile_s=c["compile_s"],
                max_abs_err=c["max_abs_err"],
            )
        )
    total = time.perf_counter() - t_start

    _print_table(rows, rounds)
    a.outdir.mkdir(parents=True, exist_ok=True)
    csv_path = a.outdir / "vs_numpy.csv"
    cols = [
        "workload",
        "batch",
        "perfjax_median_s",
        "numpy_median_s",
        "speedup",
        "rounds",
        "speedup_min",
        "speedup_max",
    ]
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in rows:
            w.writerow([row[k] if not isinstance(row[k], float) else f"{row[k]:.6g}" for k in cols])
    png_path = a.outdir / "vs_numpy.png"
    _plot(rows, png_path, rounds, info)
    json_path = a.outdir / "vs_numpy.json"
    json_path.write_text(
        json.dumps(
            dict(
                benchmark="vs_numpy",
                command=cmd,
                date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                machine=info,
                config=dict(
                    rounds=rounds,
                    max_time_s=max_time,
                    batches=list(batches),
                    quick=a.quick,
                    goal_speedup=GOAL,
                    speedup="per-round numpy median / perfjax median; median and min-max over rounds",
                ),
                total_runtime_s=total,
                loadavg_at_end=os.getloadavg(),
                results=rows,
            ),
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {csv_path}, {png_path}, {json_path} (total runtime {total:.1f} s)")
    return 0


def _print_table(rows, rounds: int) -> None:
    header = ["workload", "batch", "perfjax", "numpy", "speed-up", "min-max", ""]
    body = [
        [
            r["workload"],
            str(r["batch"]),
            fmt_t(r["perfjax_median_s"]),
            fmt_t(r["numpy_median_s"]),
            f"{r['speedup']:.2f}x",
            f"{r['speedup_min']:.2f}-{r['speedup_max']:.2f}",
            "numpy wins" if r["speedup"] < 1 else ("< goal" if r["speedup"] < GOAL else ""),
        ]
        for r in rows
    ]
    title = f"perfjax vs NumPy (float32; medians over {rounds} rounds; speed-up = numpy / perfjax, goal >= {GOAL})"
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in header:
            t.add_column(h, justify="left" if h in ("workload", "") else "right")
        for row in body:
            t.add_row(*row)
        Console(width=140).print(t)
    except ImportError:
        print(title)
        w = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(header)))
        for row in body:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)))


def _plot(rows, path: Path, rounds: int, info: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 5))
    for wl in dict.fromkeys(r["workload"] for r in rows):
        rs = sorted((r for r in rows if r["workload"] == wl), key=lambda r: r["batch"])
        bs = [r["batch"] for r in rs]
        (line,) = ax.plot(bs, [r["speedup"] for r in rs], marker="o", label=wl)
        ax.fill_between(
            bs,
            [r["speedup_min"] for r in rs],
            [r["speedup_max"] for r in rs],
            color=line.get_color(),
            alpha=0.15,
            linewidth=0,
        )
    ax.axhline(GOAL, color="tab:green", linestyle="--", linewidth=1, label=f"goal ({GOAL}x)")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="parity (1.0x)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    shown = {0.2, 0.3, 0.5, 2, 3, 5, 20, 30, 50, 200, 500}
    ax.yaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if any(abs(v - s) < 1e-9 * s for s in shown) else "")
    )
    ax.set_xlabel("batch (elementwise chains: batch x 1024 elements)")
    ax.set_ylabel("speed-up = NumPy median / perfjax median")
    ax.set_title(
        f"perfjax (XLA CPU) vs NumPy, float32 — median of {rounds} rounds, band = min-max\n"
        f"{info.get('cpu_model') or info.get('processor')} x{info.get('cpu_count')}, "
        f"jax {info.get('jax')}, numpy {info.get('numpy')}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
