"""Which GEMMs XLA:CPU gives its GEMM library, and what the others cost: the weight-gradient form.

    python benchmarks/host_dot_layout.py        # ~1 min on 2 cores

XLA:CPU (jax 0.10) runs a dot in a YNNPACK fusion only when the left operand is contracted over
its minor (last) dimension, as in ``x @ w``. A training step's weight gradients are not: JAX's
autodiff writes ``dL/dW = xᵀ·dy`` as ``dot_general(dy, x, contracting [0] x [0])`` (the batch
contracted away, then a transpose XLA folds into the dot), and XLA runs those as its generic
``dot`` (Eigen's contraction). Single shapes run x0.7 to x1.7 as long that way, but over random
shapes the two paths are alike at the median (x1.06 fp32 and bf16, geometric means x1.13 and
x1.08; benchmarks/results/host_dot_layout.csv), so perfjax's CPU model prices a GEMM the same in
either layout (``tests/test_devicemodels.py`` checks both halves of that against this file).

Measured: random (M, K, N), log-uniform over 16-2048 with K down to 4 (a small batch), fp32 and
bf16, each as ``x @ w`` (the library form, "NN") and as the weight-gradient form (``x`` stored
K x M and contracted over dimension 0, "TN"), timed back to back by a plain ``jax.jit`` loop,
medians of 3 interleaved rounds. Which form XLA compiled to which path is read from the
compiled HLO and recorded.

Writes benchmarks/results/host_dot_layout.csv.
"""

from __future__ import annotations

import pathlib
import re
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, result_csv, time_loop  # noqa: E402

ROUNDS = 3
CASES = 24  # per dtype


def path_of(f, *args) -> str:
    """``"library"`` when XLA:CPU compiled the dot into a YNNPACK fusion, ``"generic"`` when it
    kept a plain ``dot`` instruction."""
    text = f.lower(*args).compile().as_text()
    if "__ynn_fusion" in text:
        return "library"
    return "generic" if re.search(r"\} dot\(", text) else "other"


def nn(x, w):
    return x @ w


def tn(xt, w):  # the weight-gradient form: x stored (K, M), contracted over dimension 0
    return jax.lax.dot_general(xt, w, (((0,), (0,)), ((), ())))


def shapes(rng, n: int) -> list[tuple[int, int, int]]:
    out = []
    while len(out) < n:
        m, n_ = (int(2 ** rng.uniform(4, 11)) for _ in range(2))
        k = int(2 ** rng.uniform(2, 11))
        if m * n_ * k <= 2**30:  # at most ~10 ms a call
            out.append((m, k, n_))
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for dt in (jnp.float32, jnp.bfloat16):
        for m, k, n in shapes(rng, CASES):
            x = jnp.asarray(rng.standard_normal((m, k)), dt)
            w = jnp.asarray(rng.standard_normal((k, n)), dt)
            xt = jnp.asarray(np.asarray(x, np.float32).T, dt)
            f_nn, f_tn = jax.jit(nn), jax.jit(tn)
            paths = (path_of(f_nn, x, w), path_of(f_tn, xt, w))
            for f, args in ((f_nn, (x, w)), (f_tn, (xt, w))):
                jax.block_until_ready(f(*args))
            cases.append(((m, k, n, jnp.dtype(dt).name), paths, ((f_nn, (x, w)), (f_tn, (xt, w)))))
    medians = interleaved_medians(
        [lambda f=f, a=a: time_loop(f, a) for *_, fs in cases for f, a in fs], ROUNDS
    )
    ratios: dict[str, list[float]] = {}
    with result_csv("host_dot_layout.csv", "python benchmarks/host_dot_layout.py",
                    f"x @ w (NN) against the weight-gradient form (TN); medians of {ROUNDS} "
                    "interleaved rounds") as wr:  # fmt: skip
        wr.writerow(["m", "k", "n", "dtype", "nn_path", "tn_path", "nn_ms", "tn_ms", "ratio"])
        for ((m, k, n, dt), (p_nn, p_tn), _), t_nn, t_tn in zip(
            cases, medians[0::2], medians[1::2], strict=True
        ):
            wr.writerow([m, k, n, dt, p_nn, p_tn, f"{t_nn * 1e3:.4f}", f"{t_tn * 1e3:.4f}",
                         f"{t_tn / t_nn:.3f}"])  # fmt: skip
            ratios.setdefault(dt, []).append(t_tn / t_nn)
            print(f"{dt:8s} M{m:5d} K{k:5d} N{n:5d}: NN {p_nn:8s} {t_nn * 1e3:8.3f} ms   "
                  f"TN {p_tn:8s} {t_tn * 1e3:8.3f} ms   x{t_tn / t_nn:5.2f}")  # fmt: skip
    for dt, r in ratios.items():
        print(f"{dt}: TN / NN median x{statistics.median(r):.2f}, geometric mean "
              f"x{float(np.exp(np.mean(np.log(r)))):.2f} over {len(r)} shapes")  # fmt: skip


if __name__ == "__main__":
    main()
