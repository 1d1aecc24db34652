"""Machine description recorded with every benchmark result (shared by the benchmark scripts)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
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
        # the generation and caches: a VM's model name ("AMD EPYC") can hide which
        cpu_id=cpu_info().identity,
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


def print_matmul_medians(shapes, rounds: int) -> None:
    """Time ``a @ b`` (fp32) for every (M, K, N) in ``shapes`` with a plain ``jax.jit`` loop,
    ``rounds`` interleaved rounds, and print the medians (seconds) as a JSON list: the child
    process of :func:`free_and_one_core`."""
    timers = []
    for m, k, n in shapes:
        a, b = jax.numpy.full((m, k), 0.01), jax.numpy.full((k, n), 0.01)
        f = jax.jit(lambda a, b: a @ b)
        jax.block_until_ready(f(a, b))
        timers.append(lambda f=f, a=a, b=b: time_loop(f, (a, b)))
    print(json.dumps(interleaved_medians(timers, rounds)))


def free_and_one_core(script: str) -> tuple[list[float], list[float]]:
    """Run ``script --child`` in two fresh processes, one free to use every core and one pinned
    to core 0 with ``taskset`` (XLA:CPU's pool then has one core), each printing a JSON list of
    seconds; return both lists. Linux only: a clear error where ``taskset`` is missing."""
    if shutil.which("taskset") is None:
        raise SystemExit(f"{Path(script).name} needs `taskset` (util-linux) to pin one core.")
    child = [sys.executable, script, "--child"]
    runs = []
    for prefix in ([], ["taskset", "-c", "0"]):
        done = subprocess.run([*prefix, *child], check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout))
    return runs[0], runs[1]


def uncalibrated_split(fn, shapes) -> tuple[float, float]:
    """perfjax's uncalibrated host prediction of ``fn`` over ``shapes`` (seconds) and the largest
    share of any of its kernels the CPU model splits over the thread pool
    (``perfjax.devicemodels._cpu.pool_use``): what the free-versus-one-core benchmarks report."""
    import perfjax
    from perfjax.devicemodels import default_params
    from perfjax.devicemodels._cpu import pool_use
    from perfjax.fusion import fuse

    time_s = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
    kernels = fuse(perfjax.analyze(fn, shapes), "cpu")
    return float(time_s), float(max(pool_use(kernels.arrays(), default_params("cpu"))))


def write_header(fh, command: str, what: str) -> None:
    """The comment lines a result CSV starts with: the machine, the command, what was timed."""
    info = machine_info()
    cpu = info["cpu_model"] + (f" ({info['cpu_id']})" if info["cpu_id"] else "")
    fh.write(f"# {cpu}, {info['cpu_count']} cores, jax {info['jax']}\n"
             f"# command: {command}\n# {what}\n")  # fmt: skip


def options_parser(doc: str, default: str, calibration: bool = False) -> argparse.ArgumentParser:
    """A benchmark's option parser: ``--out`` (its result file's name in ``benchmarks/results/``,
    ``default`` unless given) and, with ``calibration``, ``--calibration`` (a saved calibration
    to predict with beside the priors)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=default, help="file name in benchmarks/results/")
    if calibration:
        ap.add_argument("--calibration", help="a saved calibration (JSON) to predict with as well")
    return ap


def parse_options(ap: argparse.ArgumentParser, script: str) -> tuple[argparse.Namespace, str]:
    """The options parsed, and the command line that writes the result: the script and every
    option given a value other than its default, in the order the parser has them."""
    args, defaults = ap.parse_args(), vars(ap.parse_args([]))
    command = f"python benchmarks/{script}"
    for name, value in vars(args).items():
        if value != defaults[name]:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            command += f" --{name.replace('_', '-')} {shown}"
    return args, command


def out_option(doc: str, script: str, default: str) -> tuple[str, str]:
    """The ``--out`` option of a benchmark writing one result file: (its name in
    ``benchmarks/results/``, ``default`` unless given; the command line that writes it)."""
    args, command = parse_options(options_parser(doc, default), script)
    return args.out, command


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
