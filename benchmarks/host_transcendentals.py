"""What one transcendental costs XLA:CPU, per function, measured on this machine.

    python benchmarks/host_transcendentals.py        # ~1 min on 2 cores

XLA:CPU does not run every transcendental the same way: exp, log, tanh, the logistic function
and erf are vectorised polynomial approximations, while sin, cos, tan, pow and atan2 call a
scalar math-library routine once per element. perfjax's CPU model weighs each function by its
cost relative to ``exp`` (``perfjax.fusion.POLICIES["cpu"].transcendental_weights``); this script
measures those ratios.

Two contexts, because a function's cost depends on the loop around it:

* a chain ``y = f(y) * 0.1 + 0.5`` of 8 applications, fused into one loop, over 2^18 float32
  elements (1 MiB: the loop stays in the caches, so it is bound by arithmetic); the same chain
  without ``f`` (a multiply-add only) is subtracted;
* one application ``f(y) * 0.1 + 0.5`` over 2^20 elements, the same without ``f`` subtracted.

The weight is the geometric mean of the two ratios to ``exp``. Times are medians of 5
interleaved rounds of a plain ``jax.jit`` + ``block_until_ready`` loop.

Writes benchmarks/results/host_transcendentals.csv (ns per element per application in each
context, the ratios to exp and the weight; ``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import out_option, result_csv  # noqa: E402

N = 1 << 18
N_SINGLE = 1 << 20
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


def chain(f, length: int = CHAIN):
    def run(y):
        for _ in range(length):
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


def measure(fns: dict, x) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(ROUNDS):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in order:
            samples[name].append(time_once(fns[name], x))
    return {name: float(np.median(v)) for name, v in samples.items()}


def main() -> None:
    out, command = out_option(__doc__, "host_transcendentals.py", "host_transcendentals.csv")
    rng = np.random.default_rng(0)
    per_elem = {}
    for context, n, length in (("chain", N, CHAIN), ("single", N_SINGLE, 1)):
        x = jnp.asarray(rng.uniform(0.45, 0.75, n).astype(np.float32))
        med = measure({name: chain(f, length) for name, f in FUNCTIONS.items()}, x)
        per_elem[context] = {
            k: max(med[k] - med["none"], 0.0) / (n * length) * 1e9 for k in med if k != "none"
        }
        per_elem[context + "_base"] = med["none"] / (n * length) * 1e9
    chain_ns, single_ns = per_elem["chain"], per_elem["single"]
    what = (
        f"chain: 8 applications over {N} float32 (base {per_elem['chain_base']:.3f} "
        f"ns/element/step); single: one over {N_SINGLE} (base {per_elem['single_base']:.3f} "
        f"ns/element); {ROUNDS} rounds"
    )
    with result_csv(out, command, what) as w:
        w.writerow(["op", "chain_ns", "single_ns", "chain_ratio", "single_ratio", "weight"])
        for name in chain_ns:
            rc = chain_ns[name] / chain_ns["exponential"]
            rs = single_ns[name] / max(single_ns["exponential"], 1e-3)
            weight = float(np.sqrt(max(rc, 1e-3) * max(rs, 1e-3)))
            w.writerow([name, f"{chain_ns[name]:.3f}", f"{single_ns[name]:.3f}", f"{rc:.2f}",
                        f"{rs:.2f}", f"{weight:.2f}"])  # fmt: skip
            print(
                f"{name:24s} chain {chain_ns[name]:7.3f} ns ({rc:5.2f} x exp)  single "
                f"{single_ns[name]:7.3f} ns ({rs:5.2f} x exp)  weight {weight:5.2f}"
            )


if __name__ == "__main__":
    main()
