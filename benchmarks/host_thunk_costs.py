"""What each kernel of an XLA:CPU program costs on its own: thunk times from the profiler.

    python benchmarks/host_thunk_costs.py        # ~1 min on 2 cores

XLA:CPU runs a compiled program as a sequence of thunks (a loop fusion, a YNNPACK or Eigen
GEMM, a convolution, a reduction, a copy). ``jax.profiler`` records each thunk's start and end,
so a program of many small kernels tells what a kernel costs when its arithmetic is next to
nothing: the per-kernel fixed cost a device model charges on top of the work (its launch).

Profiled (30 calls after 10 warm-up calls): small transformers Flax models (the configurations
of ``benchmarks/hf_models.py``: hidden 32, 2 layers), two of perfjax's zoo CNNs at batch 1, and
a chain of 16 small GEMMs. Each thunk is classed by what its HLO computation holds (the
optimized module's text): ``conv`` (a convolution), ``gemm`` (a dot), ``reduce``, ``loop``
(anything else). Per program and class: thunks per call and their median and quartile times;
the call's time from a plain ``jax.jit`` loop (no profiler), and what is left of it outside the
thunks, per thunk (negative where thunks ran on both cores at once, as a large convolution's
do).

Writes benchmarks/results/host_thunk_costs.csv (``--out``: another name there).
"""

from __future__ import annotations

import collections
import glob
import pathlib
import re
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import out_option, result_csv, time_loop  # noqa: E402

import perfjax  # noqa: E402

CALLS = 30
HF = ("t5", "bert", "gpt2", "mbart", "llama", "vit")
ZOO = (("resnet18", "tiny"), ("mobilenet_v2", "tiny"))


def _programs():
    import hf_models

    for name in HF:
        fn, inputs = hf_models.build(name)
        yield f"hf {name}", fn, inputs
    for name, config in ZOO:
        fn, inputs = perfjax.models.build(name, config=config, batch=1).inference()
        yield f"zoo {name} {config} b1", fn, inputs

    def gemms(x):
        y = x
        for _ in range(16):
            y = y @ x
        return y

    yield "chain of 16 gemms 32x32", gemms, (jax.ShapeDtypeStruct((32, 32), jnp.float32),)


_HEAD = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s[^=]*\{\s*$")  # a computation starts
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S+\s+([\w\-]+)\(")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def _classes(hlo: str) -> dict[str, str]:
    """Thunk (instruction) name -> class, from the optimized module: what the instruction and
    the computations it calls hold."""
    held: dict[str, set[str]] = {}  # computation -> opcodes in it
    own: dict[str, set[str]] = {}  # instruction -> its opcode and those of what it calls
    calls: dict[str, list[str]] = {}
    current = None
    for line in hlo.splitlines():
        if head := _HEAD.match(line):
            current = held.setdefault(head.group(1), set())
        elif (m := _INSTR.match(line)) and current is not None:
            name, opcode = m.groups()
            current.add(opcode)
            own[name], calls[name] = {opcode}, _CALLS.findall(line)
    out = {}
    for name, called in calls.items():
        ops = own[name].union(*(held.get(c, set()) for c in called))
        out[name] = ("conv" if "convolution" in ops else "gemm" if "dot" in ops
                     else "reduce" if "reduce" in ops else "loop")  # fmt: skip
    return out


def _thunk_times(f, args) -> dict[str, list[float]]:
    """Thunk name -> its durations (us) over CALLS profiled calls."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(CALLS):
                jax.block_until_ready(f(*args))
        data = ProfileData.from_file(glob.glob(d + "/**/*.xplane.pb", recursive=True)[0])
    out = collections.defaultdict(list)
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for e in line.events:
                if "::" not in e.name:  # runtime wrappers (ThunkExecutor::Execute) are not thunks
                    out[e.name].append(e.duration_ns / 1e3)
    return out


def main() -> None:
    out, command = out_option(__doc__, "host_thunk_costs.py", "host_thunk_costs.csv")
    rows = []
    for label, fn, inputs in _programs():
        f = jax.jit(fn)
        args = perfjax.materialize(inputs)
        classes = _classes(f.lower(*args).compile().as_text())
        for _ in range(10):
            jax.block_until_ready(f(*args))
        times = _thunk_times(f, args)
        call_us = time_loop(f, args, min_s=0.3) * 1e6
        by_class = collections.defaultdict(list)
        for name, ts in times.items():
            by_class[classes.get(name, "loop")].append(float(np.median(ts)))
        n = sum(len(v) for v in by_class.values())
        total = sum(sum(v) for v in by_class.values())
        for cls, ts in sorted(by_class.items()):
            q1, med, q3 = np.percentile(ts, [25, 50, 75])
            rows.append([label, cls, len(ts), f"{med:.3f}", f"{q1:.3f}", f"{q3:.3f}",
                         f"{call_us:.1f}", n, f"{(call_us - total) / n:.3f}"])  # fmt: skip
            print(f"{label:28s} {cls:6s}: {len(ts):3d} thunks per call, median {med:6.2f} us "
                  f"(quartiles {q1:.2f}-{q3:.2f})")  # fmt: skip
        print(f"{label:28s} call {call_us:.1f} us, {n} thunks, {(call_us - total) / n:.2f} us per "
              "thunk outside the thunks")  # fmt: skip
    with result_csv(out, command,
                    f"thunk durations from jax.profiler over {CALLS} calls, classed by their HLO "
                    "computation; call time from a plain jax.jit loop") as wr:  # fmt: skip
        wr.writerow(["program", "class", "thunks", "median_us", "q1_us", "q3_us", "call_us",
                     "program_thunks", "outside_us_per_thunk"])  # fmt: skip
        wr.writerows(rows)
    all_by_class = collections.defaultdict(list)
    for r in rows:
        all_by_class[r[1]].append(float(r[3]))
    for cls, v in sorted(all_by_class.items()):
        print(f"{cls}: median over programs of the median thunk {np.median(v):.2f} us")


if __name__ == "__main__":
    main()
