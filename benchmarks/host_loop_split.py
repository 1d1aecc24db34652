"""When XLA:CPU splits an elementwise loop over its thread pool, and what transcendentals cost
in one loop: a grid of sizes per function.

    python benchmarks/host_loop_split.py        # ~3 min on 2 cores

Three measurements, each a plain ``jax.jit`` loop (medians of 5 interleaved rounds) over fp32
vectors, with perfjax's uncalibrated host prediction:

* ``split``: one function over 1024-262144 elements, sizes a factor sqrt(2) apart. A loop split
  into tasks shows as a step of ~15 us (the pool's wake-up on this VM). Compare a function of
  transcendentals alone (``exp(x)``, ``tanh(x)``, ``log1p(x)``, ``sqrt(x)``, ``exp(exp(x))``)
  with the same mixed with any other arithmetic (``exp(-|x|)``, ``exp(x) * 1.5``, ``exp(x) +
  x``, ``sqrt(|x|)``, a sigmoid, a GELU) and with plain arithmetic (``x + 0.5``).
* ``depth``: ``exp`` and ``tanh`` applied 1, 2, 3, 5 and 8 times in one loop over 16384 and
  262144 elements: the cost per transcendental and element.
* ``partition``: ``x + 0.5``, ``exp(-|x|)`` and ``tanh(x)`` around 65536 elements, where XLA's
  parallel task assignment partitions the loop (``outer_dimension_partitions`` in the compiled
  HLO, recorded per case).

Writes benchmarks/results/host_loop_split.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import re
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
S = jax.ShapeDtypeStruct

SPLIT = {
    "x+0.5": lambda x: x + 0.5,
    "exp(x)": jnp.exp,
    "tanh(x)": jnp.tanh,
    "log1p(x)": jnp.log1p,
    "sqrt(x)": jnp.sqrt,
    "exp(exp(x))": lambda x: jnp.exp(jnp.exp(x)),
    "exp(-|x|)": lambda x: jnp.exp(-jnp.abs(x)),
    "exp(x)*1.5": lambda x: jnp.exp(x) * 1.5,
    "exp(x)+x": lambda x: jnp.exp(x) + x,
    "sqrt(|x|)": lambda x: jnp.sqrt(jnp.abs(x)),
    "log1p(|x|)": lambda x: jnp.log1p(jnp.abs(x)),
    "sigmoid(x)": jax.nn.sigmoid,
    "gelu_tanh(x)": jax.nn.gelu,
    "gelu_erf(x)": lambda x: jax.nn.gelu(x, approximate=False),
}
SPLIT_SIZES = [int(2 ** (k / 2)) // 64 * 64 for k in range(20, 37)]


def _depth(fn, d):
    def f(x):
        for _ in range(d):
            x = fn(x)
        return x

    return f


def _cases():
    out = [("split", name, 1, n, fn) for name, fn in SPLIT.items() for n in SPLIT_SIZES]
    for name, fn in (("exp", jnp.exp), ("tanh", jnp.tanh)):
        out += [("depth", name, d, n, _depth(fn, d)) for d in (1, 2, 3, 5, 8) for n in (16384, 262144)]  # fmt: skip
    for name in ("x+0.5", "exp(-|x|)", "tanh(x)"):
        out += [("partition", name, 1, n, SPLIT[name])
                for n in (49152, 57344, 61440, 65536, 69632, 81920, 131072)]  # fmt: skip
    return out


def main() -> None:
    out, command = out_option(__doc__, "host_loop_split.py", "host_loop_split.csv")
    cases = []
    for what, name, depth, n, fn in _cases():
        shapes = (S((n,), jnp.float32),)
        args = (jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32) * 0.1,)
        f = jax.jit(fn)
        jax.block_until_ready(f(*args))
        hlo = f.lower(*args).compile().as_text()
        m = re.search(r'outer_dimension_partitions":\["(\d+)"', hlo)
        pred = perfjax.predict(fn, shapes, device="host", calibration=False).time_s
        cases.append((what, name, depth, n, int(m.group(1)) if m else 1, f, args, pred))
    medians = interleaved_medians([lambda f=c[5], a=c[6]: time_loop(f, a) for c in cases], ROUNDS)
    with result_csv(out, command,
                    "elementwise loops over fp32 vectors (inputs in [-0.1, 0.1]); medians of "
                    f"{ROUNDS} interleaved rounds; XLA's partitions from the compiled HLO; "
                    "perfjax's uncalibrated host predictions") as wr:  # fmt: skip
        wr.writerow(["what", "function", "depth", "elements", "partitions", "measured_us",
                     "ns_per_element_op", "predicted_us"])  # fmt: skip
        for (what, name, depth, n, parts, _, _, pred), t in zip(cases, medians, strict=True):
            wr.writerow([what, name, depth, n, parts, f"{t * 1e6:.2f}",
                         f"{t / (n * depth) * 1e9:.3f}", f"{pred * 1e6:.2f}"])  # fmt: skip
            print(f"{what:9s} {name:13s} x{depth} {n:7d}: {t * 1e6:8.1f} us "
                  f"(partitions {parts}; predicted {pred * 1e6:8.1f} us)")  # fmt: skip


if __name__ == "__main__":
    main()
