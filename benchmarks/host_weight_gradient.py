"""Weight gradients on XLA:CPU: the generic dot reading its lhs across rows.

    python benchmarks/host_weight_gradient.py        # ~3 min on 2 cores

JAX's autodiff writes the weight gradient of ``x @ w`` (``x``: K x M, a batch of K rows) as
``dot_general(dy, x, contracting [0] x [0])`` followed by a transpose. XLA:CPU (jax 0.10) folds
the transpose by making ``x`` the lhs of its generic ``dot`` (not a YNNPACK fusion), contracted
over its major dimension: it reads ``x`` across its rows, ``M`` elements apart. This measures
that gradient against the same product in the library's layout (``xᵀ`` stored M x K, times
``dy``), over M (the layer's input features) 128-4096, powers of two and not (rows whose bytes
are a multiple of 2 KiB map to few cache sets), K (the batch) 64 and 1024, and N (its output
features) 16, 64 and 1024, in fp32:

* ``extra_ns_per_element``: the gradient's time less the library layout's, per element of ``x``.

Reported per case: the measured times (a plain ``jax.jit`` loop, medians of 5 interleaved
rounds) and perfjax's uncalibrated host prediction of the gradient.

Writes benchmarks/results/host_weight_gradient.csv (``--out``: another name there).
"""

from __future__ import annotations

import itertools
import pathlib
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
MS = (128, 256, 384, 512, 784, 1000, 1024, 1536, 2000, 2048, 3072, 4096)


def weight_grad(x, w, dy):
    """dL/dw of ``x @ w`` for the output gradient ``dy``, as JAX's autodiff writes it."""
    return jax.vjp(lambda w: x @ w, w)[1](dy)[0]


def library_form(xt, dy):
    return xt @ dy


def main() -> None:
    out, command = out_option(__doc__, "host_weight_gradient.py", "host_weight_gradient.csv")
    cases = []
    for m, k, n in itertools.product(MS, (64, 1024), (16, 64, 1024)):
        shapes = (S((k, m), jnp.float32), S((m, n), jnp.float32), S((k, n), jnp.float32))
        x, w, dy = (jnp.full(s.shape, 0.01, s.dtype) for s in shapes)
        xt = jnp.full((m, k), 0.01, jnp.float32)
        grad, lib = jax.jit(weight_grad), jax.jit(library_form)
        jax.block_until_ready((grad(x, w, dy), lib(xt, dy)))
        pred = perfjax.predict(weight_grad, shapes, device="host", calibration=False).time_s
        cases.append((m, k, n, grad, (x, w, dy), lib, (xt, dy), pred))
    timers = []
    for c in cases:
        timers += [lambda c=c: time_loop(c[3], c[4]), lambda c=c: time_loop(c[5], c[6])]
    medians = interleaved_medians(timers, ROUNDS)
    with result_csv(out, command,
                    "weight gradients of x @ w (JAX's autodiff form) against x.T @ dy stored in "
                    f"the library's layout, fp32; medians of {ROUNDS} interleaved rounds; "
                    "perfjax's uncalibrated host predictions of the gradient") as wr:  # fmt: skip
        wr.writerow(["m", "k", "n", "gradient_us", "library_form_us", "extra_ns_per_element",
                     "predicted_us"])  # fmt: skip
        for i, (m, k, n, *_, pred) in enumerate(cases):
            t_grad, t_lib = medians[2 * i], medians[2 * i + 1]
            extra = (t_grad - t_lib) / (m * k) * 1e9
            wr.writerow([m, k, n, f"{t_grad * 1e6:.1f}", f"{t_lib * 1e6:.1f}", f"{extra:.2f}",
                         f"{pred * 1e6:.1f}"])  # fmt: skip
            print(f"M {m:5d} K {k:5d} N {n:5d}: gradient {t_grad * 1e6:8.1f} us, library form "
                  f"{t_lib * 1e6:8.1f} us, {extra:5.2f} ns more per element of x; predicted "
                  f"{pred * 1e6:8.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
