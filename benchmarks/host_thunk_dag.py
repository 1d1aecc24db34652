"""What independent kernels cost XLA:CPU's executor: the same GEMMs as a chain or side by side.

    python benchmarks/host_thunk_dag.py        # ~40 s on 2 cores
    python benchmarks/host_thunk_dag.py --out host_thunk_dag_epyc.csv

XLA:CPU runs a program's kernels (thunks) as a graph: one that becomes ready while another is
ready is handed to the thread pool, whose threads may be asleep. Two programs of the same
arithmetic, L GEMMs of 32 x 32 x 32 fp32 (65.5 KFLOP each):

* ``chain``: ``x @ w1 @ w2 ... @ wL``, each GEMM waiting for the one before it;
* ``side by side``: ``x1 @ w1 + x2 @ w2 + ... + xL @ wL``, L GEMMs ready at the start.

and one program written two ways, the usual attention of ``einsum`` over (batch, tokens, heads,
head size) ``bthd`` against the same over ``bhtd``: XLA:CPU copies each ``bthd`` operand into
the GEMM's (batch, heads) layout (three transposes ready at once) and the result back.

Reported per program: the kernels of XLA's compiled HLO and its width (the most kernels at one
depth of its graph: how many can be ready together), the time (medians of 7 interleaved rounds
of the median call of a plain ``jax.jit`` loop of at least 0.1 s, the held-out programs' timing
in ``experiments/host_generalization.py``) and perfjax's uncalibrated prediction. perfjax's
CPU model prices the operand copies (``Kernels.copied_bytes``: read and written once more at
the bandwidth of the level they fit in), not the executor's graph: its kernels carry no
dependencies, so GEMMs side by side cost what the chain does.

Writes benchmarks/results/host_thunk_dag.csv (``--out``: another name there).
"""

from __future__ import annotations

import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 7
N = 32
LENGTHS = (1, 2, 4, 8, 12, 16)
#: (batch, tokens, heads, head size)
ATTENTION = ((1, 32, 8, 32), (4, 32, 4, 32), (2, 64, 4, 32), (1, 128, 8, 64), (8, 64, 8, 64))
_SKIP = ("parameter(", "constant(", "bitcast(", "tuple(", "get-tuple-element(")


def hlo_graph(hlo_text: str) -> tuple[int, int]:
    """(kernels, width) of XLA's compiled HLO: its entry computation's fusions, library calls
    and compute ops, and the most of them at one depth (longest path from the inputs)."""
    body = hlo_text.split("ENTRY", 1)[-1].split("\n}\n", 1)[0]
    depth: dict[str, int] = {}
    passthrough: dict[str, list[str]] = {}
    for line in body.splitlines()[1:]:
        m = re.match(r"\s*(?:ROOT )?%([\w.-]+) = .*?\w+\((.*)", line)
        if not m:
            continue
        name, rest = m.groups()
        operands = re.findall(r"%([\w.-]+)", rest.split("), ")[0])
        if any(s in line.split("=", 1)[1] for s in _SKIP):
            passthrough[name] = operands
            continue

        def level(op: str) -> int:
            if op in depth:
                return depth[op]
            return max((level(o) for o in passthrough.get(op, [])), default=-1)

        depth[name] = 1 + max((level(o) for o in operands), default=-1)
    levels = np.bincount(list(depth.values())) if depth else np.zeros(1, int)
    return len(depth), int(levels.max())


def _chain(x, *ws):
    for w in ws:
        x = x @ w
    return x


def _side_by_side(*xw):
    half = len(xw) // 2
    return sum(xw[i] @ xw[half + i] for i in range(half))


def _attention_bthd(q, k, v):
    s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)


def _attention_bhtd(q, k, v):
    s = jnp.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(q.shape[-1])
    return jnp.einsum("bhts,bhsd->bhtd", jax.nn.softmax(s, axis=-1), v)


def _cases():
    sq = jax.ShapeDtypeStruct((N, N), jnp.float32)
    for n in LENGTHS:
        yield "chain", f"{n} GEMMs", _chain, (sq,) * (n + 1)
        yield "side by side", f"{n} GEMMs", _side_by_side, (sq,) * (2 * n)
    for b, t, h, d in ATTENTION:
        yield "attention bthd", f"b{b} t{t} h{h} d{d}", _attention_bthd, \
            (jax.ShapeDtypeStruct((b, t, h, d), jnp.float32),) * 3  # fmt: skip
        yield "attention bhtd", f"b{b} t{t} h{h} d{d}", _attention_bhtd, \
            (jax.ShapeDtypeStruct((b, h, t, d), jnp.float32),) * 3  # fmt: skip


def main() -> None:
    out, command = out_option(__doc__, "host_thunk_dag.py", "host_thunk_dag.csv")
    cases = []
    for kind, size, fn, specs in _cases():
        f = jax.jit(fn)
        keys = jax.random.split(jax.random.key(0), len(specs))
        args = tuple(jax.random.normal(k, s.shape, s.dtype) * 0.1 for k, s in zip(keys, specs))
        jax.block_until_ready(f(*args))
        jax.block_until_ready(f(*args))
        kernels, width = hlo_graph(f.lower(*specs).compile().as_text())
        pred = perfjax.predict(fn, specs, device="host", calibration=False).time_s
        cases.append((kind, size, kernels, width, f, args, pred))
    times = interleaved_medians([lambda f=f, a=a: time_loop(f, a) for *_, f, a, _ in cases],
                                ROUNDS)  # fmt: skip
    with result_csv(out, command,
                    f"float32; medians of {ROUNDS} interleaved rounds of a plain jax.jit loop's "
                    "median call; XLA's compiled kernels and graph width; predicted: perfjax's "
                    "uncalibrated model") as w:  # fmt: skip
        w.writerow(["program", "size", "xla_kernels", "xla_width", "measured_us", "predicted_us"])
        for (kind, size, kernels, width, _, _, pred), t in zip(cases, times, strict=True):
            w.writerow([kind, size, kernels, width, f"{t * 1e6:.1f}", f"{pred * 1e6:.1f}"])
            print(f"{kind:15s} {size:18s} {kernels:3d} kernels, width {width:2d}: "
                  f"measured {t * 1e6:8.1f} us, predicted {pred * 1e6:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
