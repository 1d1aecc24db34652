"""perfjax's operation counts against XLA's own HloCostAnalysis, for every case the tests check.

    python benchmarks/costs_vs_xla.py      # -> benchmarks/results/costs_vs_xla.csv (+ a summary)

Columns: perfjax flops / transcendentals / bytes; XLA's on the unoptimized module (the same ops
perfjax walks) and on the compiled module (after CPU fusion and simplification); and the bytes
ratio after putting transpose/reshape in XLA's pre-layout convention and counting folded constants
as the unoptimized module does (see tests/test_costs_vs_xla.py).
"""

from __future__ import annotations

import csv
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from cost_cases import cases, xla_counts

import perfjax

OUT = pathlib.Path(__file__).with_name("results") / "costs_vs_xla.csv"


def main() -> int:
    rows = []
    for name, (fn, inputs) in cases().items():
        g = perfjax.analyze(fn, inputs)
        compiled, lowered = xla_counts(fn, inputs)
        transposes = sum(o.bytes * o.executions for o in g.ops if o.short_name == "transpose")
        reshapes = sum(sum(t.nbytes for t in o.operands + o.results) * o.executions
                       for o in g.ops if o.short_name == "reshape")  # fmt: skip
        # Ops on constants alone are folded (free), as XLA's optimizer does; the unoptimized
        # module still counts their operands and results.
        folded = sum(sum(t.nbytes for t in o.operands + o.results) * o.executions
                     for o in g.ops if o.features.get("folded"))  # fmt: skip
        rows.append(dict(
            case=name, flops=g.flops, xla_flops_unoptimized=lowered.get("flops", 0.0),
            xla_flops_compiled=compiled.get("flops", 0.0),
            flops_ratio_compiled=g.flops / compiled["flops"] if compiled.get("flops") else float("nan"),
            transcendentals=g.transcendentals, xla_transcendentals=compiled.get("transcendentals", 0.0),
            bytes=g.bytes, xla_bytes_unoptimized=lowered["bytes accessed"],
            bytes_ratio_raw=g.bytes / lowered["bytes accessed"],
            bytes_ratio_layout_adjusted=(g.bytes - transposes + reshapes + folded) / lowered["bytes accessed"],
        ))  # fmt: skip
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    def worst(key, sel=lambda r: True):
        vals = [abs(r[key] - 1) for r in rows if sel(r) and r[key] == r[key]]
        return max(vals)

    exact = max(
        abs(r["flops"] - r["xla_flops_unoptimized"]) / max(r["xla_flops_unoptimized"], 1)
        for r in rows
    )
    print(f"{len(rows)} cases -> {OUT}")
    print(f"flops vs XLA unoptimized: worst relative difference {exact:.2e}")
    fine = [r for r in rows if not r["case"].startswith(("layernorm", "attention (2, 16, 4, 8)"))]
    print(f"flops vs XLA compiled: worst |ratio-1| {worst('flops_ratio_compiled', lambda r: r in fine):.4f} "
          f"over {len(fine)} cases; layernorm {min(r['flops_ratio_compiled'] for r in rows if r['case'].startswith('layernorm')):.3f}"
          " (XLA recomputes x - mean in two fusions)")  # fmt: skip
    print(
        f"bytes vs XLA unoptimized: worst |ratio-1| raw {worst('bytes_ratio_raw'):.3f}, "
        f"layout-adjusted {worst('bytes_ratio_layout_adjusted'):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
