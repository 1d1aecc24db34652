"""Peak memory: perfjax's buffer liveness vs XLA's own buffer assignment on this CPU.

    python benchmarks/memory_vs_xla.py          # ~3 min on 2 cores

For each program, ``perfjax.memory_estimate(fn, inputs, device="xeon-8480")`` (a CPU of the
catalog: the program is lowered and fused as for XLA:CPU) against
``jax.jit(fn).lower(*inputs).compile(...).memory_analysis()``: arguments + outputs - aliased
(donated) + temporaries. XLA is compiled with its YNNPACK fusions off
(``xla_cpu_experimental_ynn_fusion_type=""``): a YNNPACK fusion keeps its intermediates in
YNNPACK's own memory, which ``memory_analysis()`` does not report, so with them on a conv net's
temporaries read as 512 bytes. The default-options figure is reported alongside
(``xla_default_peak_bytes``).

Programs: the six of ``tests/test_memory.py`` (MLP forward, MLP Adam step with donated state,
six scanned layers with an SGD step, the same with ``jax.checkpoint``, a conv net, an attention
block) and zoo models (inference and AdamW training steps). Goal: within 10%.

Writes benchmarks/results/memory_vs_xla.json.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import jax

import perfjax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_memory import PROGRAMS  # noqa: E402  (the test programs, built from abstract inputs)

CPU = "xeon-8480"
_NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}
ZOO = [
    ("mlp", "mnist", 128, False),
    ("mlp", "mnist", 128, True),
    ("resnet18", "imagenet", 8, False),
    ("resnet18", "imagenet", 8, True),
    ("gpt2", "small", 2, False),
    ("gpt2", "small", 2, True),
    ("bert", "base", 2, False),
    ("bert", "base", 2, True),
]


def _xla_peak(fn, inputs, options=None) -> int:
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    m = jitted.lower(*inputs).compile(compiler_options=options).memory_analysis()
    return int(
        m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
        + m.temp_size_in_bytes
    )  # fmt: skip


def _zoo(name, config, batch, train):
    m = perfjax.models.build(name, config=config, batch=batch)
    return m.training_step() if train else m.inference()


def main() -> None:
    t0 = time.perf_counter()
    cases = [(name, build) for name, build in PROGRAMS.items()]
    cases += [
        (f"zoo {n} {c} batch {b} {'training' if t else 'inference'}",
         lambda n=n, c=c, b=b, t=t: _zoo(n, c, b, t))
        for n, c, b, t in ZOO
    ]  # fmt: skip
    rows = []
    for name, build in cases:
        fn, inputs = build()
        ours = perfjax.memory_estimate(fn, inputs, device=CPU)
        xla = _xla_peak(fn, inputs, _NO_YNN)
        default = _xla_peak(fn, inputs)
        row = {
            "program": name,
            "perfjax_peak_bytes": int(ours.peak_bytes),
            "xla_peak_bytes": xla,
            "error": ours.peak_bytes / xla - 1,
            "xla_default_peak_bytes": default,
            "test_program": name in PROGRAMS,
        }
        rows.append(row)
        print(f"{name:45s} perfjax {ours.peak_bytes / 2**20:9.2f} MiB  XLA {xla / 2**20:9.2f} MiB"
              f"  ({row['error']:+.1%})", flush=True)  # fmt: skip
    errs = [abs(r["error"]) for r in rows]
    test_errs = [abs(r["error"]) for r in rows if r["test_program"]]
    report = {
        "command": "python benchmarks/memory_vs_xla.py",
        "goal": "within 10% of XLA's memory_analysis()",
        "test_programs_within_10pct": sum(e <= 0.10 for e in test_errs),
        "test_programs": len(test_errs),
        "test_programs_worst_abs_error": max(test_errs),
        "all_within_10pct": sum(e <= 0.10 for e in errs),
        "all": len(errs),
        "median_abs_error": sorted(errs)[len(errs) // 2],
        "rows": rows,
        "wall_s": time.perf_counter() - t0,
        "jax": jax.__version__,
    }
    out = ROOT / "benchmarks" / "results" / "memory_vs_xla.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
