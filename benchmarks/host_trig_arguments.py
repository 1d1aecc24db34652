"""What sin and cos cost XLA:CPU per element, by the range of their arguments.

    python benchmarks/host_trig_arguments.py        # ~30 s on 2 cores

XLA:CPU evaluates sin and cos with a vectorised polynomial after a range reduction, and takes a
slower path for a whole vector of arguments as soon as one of them lies beyond the first
octant (|x| > pi/4 or so). Arguments of unit scale (activations, angles) take the slow path;
arguments kept small (as in ``benchmarks/host_transcendentals.py``, whose chains hold them in
[0.45, 0.75]) do not. ``exp`` and ``tanh`` are timed alongside as controls (no such range
effect). Each case is ``f(x)`` over 2^20 float32 elements, the same with ``f`` replaced by a
copy subtracted (the pass over memory); the ratio to ``exp`` on the same arguments is what
perfjax's CPU model uses as a weight (``perfjax.fusion.XLA_CPU_TRANSCENDENTALS``).

Times are medians of 5 interleaved rounds of a plain ``jax.jit`` loop of at least 0.05 s.
Writes benchmarks/results/host_trig_arguments.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

ROUNDS = 5
N = 1 << 20
FUNCTIONS = {"copy": lambda x: x * 1.0, "exp": jnp.exp, "tanh": jnp.tanh, "sin": jnp.sin,
             "cos": jnp.cos}  # fmt: skip


def arguments(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "uniform 0.45..0.75": rng.uniform(0.45, 0.75, N),
        "uniform 0..0.1": rng.uniform(0.0, 0.1, N),
        "uniform -1..1": rng.uniform(-1.0, 1.0, N),
        "normal 0.1": rng.normal(0.0, 0.1, N),
        "normal 1": rng.normal(0.0, 1.0, N),
        "uniform 0..100": rng.uniform(0.0, 100.0, N),
    }


def main() -> None:
    out, command = out_option(__doc__, "host_trig_arguments.py", "host_trig_arguments.csv")
    rng = np.random.default_rng(0)
    cases = []
    for arg_name, x in arguments(rng).items():
        xa = jnp.asarray(x.astype(np.float32))
        for fn_name, fn in FUNCTIONS.items():
            f = jax.jit(fn)
            jax.block_until_ready(f(xa))
            cases.append((arg_name, fn_name, f, xa))
    medians = interleaved_medians(
        [lambda c=c: time_loop(c[2], (c[3],), min_s=0.05) for c in cases], ROUNDS
    )
    t = {(a, f): m for (a, f, _, _), m in zip(cases, medians, strict=True)}
    what = f"f(x) over {N} float32 elements, minus a copy; medians of {ROUNDS} interleaved rounds"
    with result_csv(out, command, what) as wr:
        wr.writerow(["arguments", "function", "time_us", "ns_per_element", "vs_exp"])
        for (a, f), m in t.items():
            if f == "copy":
                continue
            ns = max(m - t[(a, "copy")], 0.0) / N * 1e9
            ns_exp = max(t[(a, "exp")] - t[(a, "copy")], 1e-12) / N * 1e9
            wr.writerow([a, f, f"{m * 1e6:.1f}", f"{ns:.3f}", f"{ns / ns_exp:.2f}"])
            print(f"{a:20s} {f:5s} {ns:6.3f} ns/element  {ns / ns_exp:5.1f} x exp")


if __name__ == "__main__":
    main()
