"""What attention written as two einsums costs XLA:CPU, against the same with transposes.

    python benchmarks/host_attention_layout.py        # ~1.5 min on 2 cores
    python benchmarks/host_attention_layout.py --out host_attention_layout_epyc.csv

``jnp.einsum("bhqk,bkhd->bqhd", p, v)`` (the form of Flax's ``dot_product_attention`` and of
``perfjax.ops.attention``) lowers to a ``dot_general(v, p)`` contracting ``p`` over its minor
dimension and ``v`` over another: JAX computes vᵀ·pᵀ and transposes the result. XLA:CPU fuses
the score GEMM, the softmax and this GEMM into one YNNPACK kernel, which runs much slower in
that form than with the transposes written out (``q, k, v`` moved to ``(b, h, t, d)`` first and
``p @ v``), the same arithmetic. perfjax's CPU model charges the difference per element of the
transposed right-hand side (``Kernels.transposed_rhs_elements``: b x h x t x s score elements;
``transposed_rhs_s_per_element`` in ``perfjax.devicemodels.PRIORS["cpu"]``).

Measured over batch, sequence, heads and head size (float32): both forms' times (medians of 3
interleaved rounds of a plain ``jax.jit`` loop of at least 0.1 s), and the extra time of the
einsum form per score element.

Writes benchmarks/results/host_attention_layout.csv (``--out``: another name there).
"""

from __future__ import annotations

import itertools
import pathlib
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

ROUNDS = 3
GRID = list(itertools.product((2, 4), (128, 256), (4, 8), (16, 32, 64, 128, 256))) + [
    (b, t, h, d) for b, t, h in ((1, 512, 8), (2, 512, 4), (1, 1024, 4)) for d in (32, 64)
]


def einsum_form(q, k, v):
    s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)


def transposed_form(q, k, v):
    q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    s = jnp.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(q.shape[-1])
    return jnp.einsum("bhts,bhsd->bhtd", jax.nn.softmax(s, axis=-1), v).transpose(0, 2, 1, 3)


def main() -> None:
    out, command = out_option(__doc__, "host_attention_layout.py", "host_attention_layout.csv")
    rng = np.random.default_rng(0)
    cases = []
    for b, t, h, d in GRID:
        x = jnp.asarray(rng.random((b, t, h, d), np.float32))
        fns = (jax.jit(einsum_form), jax.jit(transposed_form))
        for f in fns:
            jax.block_until_ready(f(x, x, x))
        cases.append(((b, t, h, d), fns, (x, x, x)))
    # Both forms of a case are timed back to back in each visit.
    medians = interleaved_medians(
        [lambda f=f, args=args: time_loop(f, args) for _, fns, args in cases for f in fns], ROUNDS
    )
    times = list(zip(medians[0::2], medians[1::2], strict=True))
    extra_ns = []
    with result_csv(out, command, f"float32; medians of {ROUNDS} interleaved rounds") as w:
        w.writerow(["b", "t", "h", "d", "einsum_ms", "transposed_ms", "ratio",
                    "extra_ns_per_score"])  # fmt: skip
        for ((b, t, h, d), _, _), (e, tr) in zip(cases, times, strict=True):
            extra = (e - tr) / (b * h * t * t) * 1e9
            extra_ns.append((d, extra))
            w.writerow([b, t, h, d, f"{e * 1e3:.3f}", f"{tr * 1e3:.3f}", f"{e / tr:.2f}",
                        f"{extra:.2f}"])  # fmt: skip
            print(f"b{b} t{t} h{h} d{d:3d}: einsum {e * 1e3:8.3f} ms  transposed {tr * 1e3:8.3f} ms"
                  f"  x{e / tr:5.2f}  extra {extra:6.2f} ns/score")  # fmt: skip
    for d in sorted({d for d, _ in extra_ns}):
        vals = [x for dd, x in extra_ns if dd == d]
        print(f"d={d:3d}: median extra {statistics.median(vals):6.2f} ns per score element")
    print(f"all: median extra {statistics.median(x for _, x in extra_ns):.2f} ns per score element")


if __name__ == "__main__":
    main()
