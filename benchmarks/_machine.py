"""Machine description recorded with every benchmark result (shared by the benchmark scripts)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jaxlib
import numpy as np

import perfjax
from perfjax._host import cpu_info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return blas.get("openblas configuration") or blas["name"]
    except Exception:  # informative only
        return ""


def machine_info() -> dict:
    """CPU, versions, load average and threading environment at the start of a benchmark."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return dict(
        processor=platform.processor(),
        cpu_model=_cpu_model(),
        machine=platform.machine(),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        threads_per_core=cpu_info().threads_per_core,
        python=platform.python_version(),
        jax=jax.__version__,
        jaxlib=jaxlib.__version__,
        jax_backend=jax.default_backend(),
        numpy=np.__version__,
        numpy_blas=_numpy_blas(),
        perfjax=perfjax.__version__,
        loadavg_at_start=load,
        thread_env={
            k: os.environ[k]
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
            if k in os.environ
        },
    )


def time_loop(f, args, min_s: float = 0.1, min_calls: int = 5) -> float:
    """Median seconds per call of ``f(*args)`` (blocked on) over at least ``min_calls`` calls and
    ``min_s`` seconds: a plain ``jax.jit`` loop, independent of perfjax's executor."""
    ts, start = [], time.perf_counter()
    while len(ts) < min_calls or time.perf_counter() - start < min_s:
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def interleaved_medians(timers, rounds: int) -> list[float]:
    """The median over ``rounds`` of each zero-argument timer's seconds, the timers run in
    alternating order round by round (forward, backward, ...): a slow spell of a shared machine
    moves one round of a case, not its result."""
    times: list[list[float]] = [[] for _ in timers]
    for r in range(rounds):
        for i in range(len(timers)) if r % 2 == 0 else reversed(range(len(timers))):
            times[i].append(timers[i]())
    return [statistics.median(ts) for ts in times]


def write_header(fh, command: str, what: str) -> None:
    """The comment lines a result CSV starts with: the machine, the command, what was timed."""
    info = machine_info()
    fh.write(f"# {info['cpu_model']}, {info['cpu_count']} cores, jax {info['jax']}\n"
             f"# command: {command}\n# {what}\n")  # fmt: skip


def out_option(doc: str, script: str, default: str) -> tuple[str, str]:
    """The ``--out`` option of a benchmark writing one result file: (its name in
    ``benchmarks/results/``, ``default`` unless given; the command line that writes it)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=default, help="file name in benchmarks/results/")
    out = ap.parse_args().out
    return out, f"python benchmarks/{script}" + (f" --out {out}" if out != default else "")


@contextlib.contextmanager
def result_csv(name: str, command: str, what: str):
    """``benchmarks/results/<name>`` opened for writing, its header written (:func:`write_header`):
    yields a ``csv.writer``; says where it wrote when done."""
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        write_header(fh, command, what)
        yield csv.writer(fh)
    print(f"wrote {out}")
