"""Where a call waits for XLA:CPU's worker, and what the wait costs: the caller's sleep.

    python benchmarks/host_call_wait.py        # ~1 min on 2 cores
    python benchmarks/host_call_wait.py --out host_call_wait_epyc.csv

XLA:CPU runs a call whose HLO counts fewer than ~1000 FLOPs (XLA's own count, where a
transcendental is not a FLOP) on the caller's thread, and any other on a worker of its client
while the caller waits. A waiting caller spins a little, then sleeps; on a virtual machine its
wake-up costs more than many small kernels take. Here: a sigmoid (three FLOPs and an exponential
per element: a worker) and ``exp`` (no FLOPs: the caller) over 1024-49152 floats, ``log1p(|x|)``,
``x + x`` on either side of the FLOP threshold, square GEMMs of 32-128 and a softmax row.

Per program: XLA's FLOPs (``compiled.cost_analysis()``), the thread its thunks ran on
(``jax.profiler``: ``caller`` or ``worker``), the profiled kernels' time per call (the sum of
the thunks' median durations, profiler overhead included; the least of three profiles), the call's time (medians of 7
interleaved rounds of the median call of a plain ``jax.jit`` loop of at least 0.1 s, the
held-out programs' timing) and the uncalibrated prediction with its share of the pool's
wake-up for the wait (``wait_share``, :func:`perfjax.devicemodels._cpu.call_wait_share` of the
profiled kernels' time and perfjax's FLOPs).

Writes benchmarks/results/host_call_wait.csv (``--out``: another name there).
"""

from __future__ import annotations

import collections
import glob
import pathlib
import statistics
import sys
import tempfile

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 7
PROFILED_CALLS = 20

SIZES = (1024, 2048, 4096, 5120, 6144, 8192, 12288, 16384, 24576, 28672, 32768, 40960, 49152)


def _cases():
    """(program, label, fn, input shape)."""
    for n in SIZES:
        yield "sigmoid", n, jax.nn.sigmoid, (1, n)
    for n in (4096, 16384, 32768, 49152):
        yield "exp", n, jnp.exp, (1, n)
    for n in (4096, 16384):
        yield "log1p(|x|)", n, lambda x: jnp.log1p(jnp.abs(x)), (1, n)
    for n in (256, 512, 1024, 2048):
        yield "x + x", n, lambda x: x + x, (1, n)
    for n in (32, 48, 64, 80, 96, 128):
        yield "gemm", n, lambda x: x @ x.T, (n, n)
    for n in (1024, 2048):
        yield "softmax", n, lambda x: jax.nn.softmax(x, axis=-1), (1, n)


def _thunk_names(compiled_text: str) -> set[str]:
    names = set()
    for line in compiled_text.splitlines():
        line = line.strip().removeprefix("ROOT ")
        if line.startswith("%"):
            names.add(line.split(" ", 1)[0][1:])
    return names


def profile(f, x, names: set[str]) -> tuple[str, float]:
    """The thread the call's thunks ran on (``caller``, ``worker`` or ``mixed``) and the sum
    of their median durations (us) over :data:`PROFILED_CALLS` profiled calls."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(PROFILED_CALLS):
                jax.block_until_ready(f(x))
        data = ProfileData.from_file(glob.glob(d + "/**/*.xplane.pb", recursive=True)[0])
    where, durations = set(), collections.defaultdict(list)
    for plane in data.planes:
        for line in plane.lines:
            for e in line.events:
                if e.name in names:
                    where.add("caller" if line.name == "python" else "worker")
                    durations[e.name].append(e.duration_ns / 1e3)
    thread = where.pop() if len(where) == 1 else "mixed"
    return thread, sum(statistics.median(v) for v in durations.values())


def main() -> None:
    out, command = out_option(__doc__, "host_call_wait.py", "host_call_wait.csv")
    from perfjax.devicemodels._catalog import device
    from perfjax.devicemodels._cpu import call_wait_share
    from perfjax.fusion._kernels import kernels_for
    from perfjax.lowering._staging import program_for
    from perfjax.prediction._predict import lowering_platform

    platform = lowering_platform(device("host"))[0]
    cases = []
    for name, n, fn, shape in _cases():
        spec = (jax.ShapeDtypeStruct(shape, jnp.float32),)
        x = (jax.random.normal(jax.random.key(0), shape, jnp.float32) * 0.1).astype(jnp.float32)
        f = jax.jit(fn)
        compiled = f.lower(x).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        xla_flops = float(cost.get("flops", 0.0))
        for _ in range(200):
            jax.block_until_ready(f(x))
        # The least of three profiles: a slow spell of the machine moves one, not the case.
        profiles = [profile(f, x, _thunk_names(compiled.as_text())) for _ in range(3)]
        thread, kernel_us = min(profiles, key=lambda p: p[1])
        pred = perfjax.predict(fn, spec, device="host", calibration=False).time_s
        k = kernels_for(program_for(fn, spec, None, platform), "cpu").arrays()
        flops = float((k["vector_flops"] + k["matrix_flops"]).sum())
        share = float(call_wait_share(jnp.float32(kernel_us * 1e-6), jnp.float32(flops)))
        cases.append((name, n, f, x, xla_flops, flops, thread, kernel_us, pred, share))
    times = interleaved_medians(
        [lambda f=f, x=x: time_loop(f, (x,)) for _, _, f, x, *_ in cases], ROUNDS
    )
    with result_csv(out, command,
                    f"float32; call: medians of {ROUNDS} interleaved rounds of a plain jax.jit "
                    "loop's median call; kernel: profiled thunks' median durations summed; "
                    "thread: where the thunks ran; predicted: perfjax's uncalibrated model; "
                    "wait_share: the model's share of the pool's wake-up for the wait") as w:  # fmt: skip
        w.writerow(["program", "size", "xla_flops", "perfjax_flops", "thread", "kernel_us",
                    "call_us", "call_minus_kernel_us", "predicted_us", "wait_share"])  # fmt: skip
        for (name, n, _, _, xf, pf, thread, ku, pred, share), t in zip(cases, times, strict=True):
            call_us = t * 1e6
            w.writerow([name, n, f"{xf:.0f}", f"{pf:.0f}", thread, f"{ku:.2f}", f"{call_us:.1f}",
                        f"{call_us - ku:.1f}", f"{pred * 1e6:.1f}", f"{share:.2f}"])  # fmt: skip
            print(f"{name:11s} {n:6d}: {thread:6s} kernels {ku:6.2f} us, call {call_us:6.1f} us "
                  f"(+{call_us - ku:5.1f}), model wait share {share:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
