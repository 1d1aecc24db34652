"""How fast are ``perfjax.predict``, ``perfjax.compare`` and ``spec_gradient`` on a real model?

What is measured
----------------
The program is the GPT-2-small forward pass of ``experiments/models.py`` (12 layers, d=768,
batch 1, 128 tokens, fp32 ShapeDtypeStructs, ~300 fused kernels), traced ONCE with
``perfjax.trace``; every call below receives that ``Program``.

(a) ``predict_other_device``: ``perfjax.predict(program, device="a100-80gb")`` after a first
    call on ``h100`` (so the graph and the fused kernels of the GPU family are cached; what is
    timed is resolving, evaluating and packaging the prediction for another device). Target
    <= 50 ms. ``predict_other_family`` (``tpu-v5e``, no target) is reported alongside.
(b) ``compare_all``: ``perfjax.compare(program, devices="all")`` (the whole catalog). Target <= 1 s.
(c) ``spec_gradient``: ``perfjax.prediction.spec_gradient(program, device="h100")``, the
    jitted ``jax.value_and_grad`` of total time with respect to every field of the DeviceSpec.
    Target <= 100 ms.

Each is timed with ``time.perf_counter`` around single calls: one warm-up call, then R
repetitions (default 30, at least 20); the median and p90 are reported and the median is
checked against the target. "First call" columns are the in-process first call in the order
above (a: includes building the graph, fusing and compiling the model; b, c: whatever that
first call still had to compile). "Cold" columns repeat each first call in a FRESH Python
process (after importing perfjax and tracing), i.e. what a user pays once per session.
When a median misses its target the call is profiled with cProfile and the top entries are
printed and stored in the JSON.

Regenerate ``benchmarks/results/predict_speed.json`` (from the repository root)::

    python benchmarks/predict_speed.py

``--reps N`` changes R; ``--no-cold`` skips the fresh-process measurements; ``--profile``
profiles every call, target met or not.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import pstats
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _machine import machine_info  # noqa: E402

import perfjax  # noqa: E402
from experiments.models import gpt2_small, make_gpt2_small_inputs  # noqa: E402
from perfjax.prediction import spec_gradient  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FIRST_DEVICE = "h100"
OTHER_DEVICE = "a100-80gb"
OTHER_FAMILY = "tpu-v5e"
TARGETS = {"predict_other_device": 0.050, "compare_all": 1.0, "spec_gradient": 0.100}


def make_program():
    return perfjax.trace(gpt2_small, make_gpt2_small_inputs(1))


def calls(program):
    """name -> zero-argument callable, in the order they are first called."""
    return {
        "predict_first_device": lambda: perfjax.predict(program, device=FIRST_DEVICE),
        "predict_other_device": lambda: perfjax.predict(program, device=OTHER_DEVICE),
        "predict_other_family": lambda: perfjax.predict(program, device=OTHER_FAMILY),
        "compare_all": lambda: perfjax.compare(program, devices="all"),
        "spec_gradient": lambda: spec_gradient(program, device="h100"),
    }


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cold_child(which: str) -> None:
    """Fresh process: trace, then time the first call(s) leading up to ``which``; prints JSON."""
    t0 = time.perf_counter()
    program = make_program()
    t_trace = time.perf_counter() - t0
    c = calls(program)
    out = {"trace_s": t_trace}
    if which == "predict_other_device":
        out["predict_first_device"] = _timed(c["predict_first_device"])  # what the target assumes
        out[which] = _timed(c[which])
    else:
        out[which] = _timed(c[which])
    print("COLD_JSON " + json.dumps(out))


def run_cold(which: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cold-child", which]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in r.stdout.splitlines():
        if line.startswith("COLD_JSON "):
            return json.loads(line[len("COLD_JSON ") :])
    raise RuntimeError(f"cold run of {which} failed:\n{r.stdout}\n{r.stderr}")


def profile(fn, reps: int = 5, top: int = 25) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        fn()
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s).strip_dirs().sort_stats("cumulative")
    st.print_stats(top)
    s.write("\n--- by own time ---\n")
    st.sort_stats("tottime").print_stats(top)
    return s.getvalue()


def pct(x, q) -> float:
    return float(np.percentile(np.asarray(x, np.float64), q))


def fmt(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--reps", type=int, default=30, help="repetitions per call after the warm-up (>= 20)"
    )
    ap.add_argument(
        "--no-cold", action="store_true", help="skip the fresh-process first-call measurements"
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile every call, not only those missing a target",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "predict_speed.json")
    ap.add_argument("--cold-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.cold_child:
        cold_child(a.cold_child)
        return 0
    if a.reps < 20:
        ap.error("--reps must be >= 20")
    cmd = "python " + " ".join(
        shlex.quote(x) for x in [os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])]
    )
    info = machine_info()
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    program = make_program()
    t_trace = time.perf_counter() - t0
    c = calls(program)
    first = {name: _timed(fn) for name, fn in c.items()}
    n_kernels = len(perfjax.predict(program, device=FIRST_DEVICE).kernels)
    n_devices = len(perfjax.compare(program, devices="all").predictions)

    results = {}
    for name, fn in c.items():
        fn()  # warm-up
        samples = [_timed(fn) for _ in range(a.reps)]
        target = TARGETS.get(name)
        med = float(np.median(samples))
        row = dict(
            median_s=med,
            p10_s=pct(samples, 10),
            p90_s=pct(samples, 90),
            min_s=float(min(samples)),
            max_s=float(max(samples)),
            reps=a.reps,
            first_call_in_process_s=first[name],
            target_s=target,
            passed=None if target is None else bool(med <= target),
        )
        if a.profile or (target is not None and med > target):
            row["profile"] = profile(fn)
        results[name] = row
        print(
            f"  {name}: median {fmt(med)}, p90 {fmt(row['p90_s'])}, first call {fmt(first[name])}"
        )

    cold = {}
    if not a.no_cold:
        for name in ("predict_other_device", "compare_all", "spec_gradient"):
            cold[name] = run_cold(name)
            print(
                f"  cold (fresh process) {name}: {fmt(cold[name][name])}"
                + (
                    f" (after first predict on {FIRST_DEVICE}: {fmt(cold[name]['predict_first_device'])})"
                    if name == "predict_other_device"
                    else ""
                )
            )
        results["predict_first_device"]["cold_s"] = cold["predict_other_device"][
            "predict_first_device"
        ]
        for name in ("predict_other_device", "compare_all", "spec_gradient"):
            results[name]["cold_s"] = cold[name][name]

    total = time.perf_counter() - t_start
    _print_table(results)
    for name, row in results.items():
        if "profile" in row:
            print(f"\n===== cProfile of {name} (5 calls; median {fmt(row['median_s'])}) =====")
            print("\n".join(row["profile"].splitlines()[:45]))
    out = dict(
        benchmark="predict_speed",
        description="speed of perfjax.predict / compare / spec_gradient on a traced GPT-2-small forward Program",
        command=cmd,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        machine=info,
        config=dict(
            program="experiments/models.py:gpt2_small, batch 1, seq 128, fp32 ShapeDtypeStructs",
            num_kernels_gpu=n_kernels,
            compare_all_devices=n_devices,
            first_device=FIRST_DEVICE,
            other_device=OTHER_DEVICE,
            other_family_device=OTHER_FAMILY,
            reps=a.reps,
            warmup_calls=1,
            timer="time.perf_counter around one call",
            targets_s=TARGETS,
            first_call_in_process="first call in the order predict h100, a100-80gb, tpu-v5e, compare all, spec_gradient",
            cold="first call in a fresh process after import and trace (predict_other_device: after one h100 predict)",
        ),
        trace_s=t_trace,
        cold_trace_s={k: v["trace_s"] for k, v in cold.items()},
        total_runtime_s=total,
        loadavg_at_end=os.getloadavg(),
        results=results,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out} (total runtime {total:.1f} s)"
    )
    return 0 if all(r["passed"] is not False for r in results.values()) else 1


def _print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="perfjax prediction speed (GPT-2 small forward Program, ~300 kernels)")
    for col in (
        "call",
        "median",
        "p90",
        "target",
        "pass",
        "first call (in process)",
        "cold (fresh process)",
    ):
        t.add_column(col, justify="left" if col in ("call", "pass") else "right")
    for name, r in results.items():
        status = (
            "-" if r["passed"] is None else ("[green]pass[/]" if r["passed"] else "[red]FAIL[/]")
        )
        t.add_row(
            name,
            fmt(r["median_s"]),
            fmt(r["p90_s"]),
            fmt(r["target_s"]),
            status,
            fmt(r["first_call_in_process_s"]),
            fmt(r.get("cold_s")),
        )
    Console(width=140).print(t)


if __name__ == "__main__":
    sys.exit(main())
