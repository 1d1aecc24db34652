"""What one transcendental costs XLA:CPU, per function, measured on this machine.

    python benchmarks/host_transcendentals.py        # ~1 min on 2 cores

XLA:CPU does not run every transcendental the same way: exp, log, tanh, the logistic function
and erf are vectorised polynomial approximations, while sin, cos, tan, pow and atan2 call a
scalar math-library routine once per element. perfjax's CPU model weighs each function by its
cost relative to ``exp`` (``perfjax.fusion.POLICIES["cpu"].transcendental_weights``); this script
measures those ratios.

Each function runs as a chain ``y = f(y) * 0.1 + 0.5`` of 8 applications, fused into one loop,
over 2^18 float32 elements (1 MiB: the loop stays in the caches, so it is bound by arithmetic).
The same chain without ``f`` (a multiply-add only) is subtracted. Times are medians of 5
interleaved rounds of a plain ``jax.jit`` + ``block_until_ready`` loop.

Writes benchmarks/results/host_transcendentals.csv (ns per element per application, and the
ratio to exp).
"""

from __future__ import annotations

import csv
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import machine_info  # noqa: E402

N = 1 << 18
CHAIN = 8
ROUNDS = 5

#: StableHLO op -> the function applied (inputs stay in [0.45, 0.75]).
FUNCTIONS = {
    "none": lambda y: y,
    "exponential": jnp.exp,
    "exponential_minus_one": jnp.expm1,
    "log": jnp.log,
    "log_plus_one": jnp.log1p,
    "logistic": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "sqrt": jnp.sqrt,
    "rsqrt": jax.lax.rsqrt,
    "cbrt": jnp.cbrt,
    "sine": jnp.sin,
    "cosine": jnp.cos,
    "tan": jnp.tan,
    "atan2": lambda y: jnp.arctan2(y, 0.3),
    "power": lambda y: y**1.7,
    "erf": jax.lax.erf,
}


def chain(f):
    def run(y):
        for _ in range(CHAIN):
            y = f(y) * 0.1 + 0.5
        return y

    return jax.jit(run)


def time_once(fn, x, calls: int = 30) -> float:
    fn(x).block_until_ready()
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn(x).block_until_ready()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    x = jnp.asarray(np.random.default_rng(0).uniform(0.45, 0.75, N).astype(np.float32))
    fns = {name: chain(f) for name, f in FUNCTIONS.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(ROUNDS):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in order:
            samples[name].append(time_once(fns[name], x))
    med = {name: float(np.median(v)) for name, v in samples.items()}
    per_elem = {n: max(med[n] - med["none"], 0.0) / (N * CHAIN) * 1e9 for n in fns if n != "none"}
    out = ROOT / "benchmarks" / "results" / "host_transcendentals.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        info = machine_info()
        fh.write(
            f"# {info['cpu_model']}, {info['cpu_count']} cores, jax {info['jax']}\n# command: python benchmarks/host_transcendentals.py\n"
        )
        fh.write(f"# chain of {CHAIN} over {N} float32, {ROUNDS} rounds; base chain "
                 f"{med['none'] / (N * CHAIN) * 1e9:.3f} ns/element/step\n")  # fmt: skip
        w = csv.writer(fh)
        w.writerow(["op", "ns_per_element", "ratio_to_exp"])
        for name, ns in per_elem.items():
            w.writerow([name, f"{ns:.3f}", f"{ns / per_elem['exponential']:.2f}"])
    for name, ns in per_elem.items():
        print(f"{name:24s} {ns:7.3f} ns/element  {ns / per_elem['exponential']:6.2f} x exp")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
