"""`perfjax demo`: trace, analyse and run a real program, and check the counts against XLA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.table import Table

import perfjax
import perfjax.ops as F
from perfjax._display import fmt_count, fmt_time


def mlp(x, w1, b1, w2, b2):
    """MNIST-sized MLP, 784 -> 128 -> 10, written with Flash ops."""
    h = F.relu(F.bias_add(F.matmul(x, w1), b1))
    return F.softmax(F.bias_add(F.matmul(h, w2), b2))


def block(x, w_qkv, w_o, w_1, w_2):
    """A pre-norm causal transformer block (4 heads) written with Flash ops."""
    b, t, d = x.shape
    qkv = F.matmul(F.layernorm(x), w_qkv).reshape(b, t, 3, 4, d // 4)
    a = F.attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=True).reshape(b, t, d)
    x = F.add(x, F.matmul(a, w_o))
    return F.add(x, F.matmul(F.gelu(F.matmul(F.layernorm(x), w_1)), w_2))


def main(console: Console | None = None) -> int:
    console = console or Console(width=None if Console().is_terminal else 110)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return jnp.asarray(rng.standard_normal(shape) * 0.05, jnp.float32)

    programs = {
        "mlp 784-128-10, batch 64": (
            mlp,
            (rand(64, 784), rand(784, 128), rand(128), rand(128, 10), rand(10)),
        ),
        "transformer block d=256, 2x128 tokens": (
            block,
            (rand(2, 128, 256), rand(256, 768), rand(256, 256), rand(256, 1024), rand(1024, 256)),
        ),
    }
    # Run first, so compile times are XLA's real ones (tracing below would warm jax's caches).
    runs = {
        name: perfjax.run(fn, inputs, max_time_s=1.0) for name, (fn, inputs) in programs.items()
    }
    name, (fn, inputs) = next(iter(programs.items()))
    program = perfjax.trace(fn, inputs)
    console.rule(f"[bold]1. trace[/] {name}")
    console.print("[bold]jaxpr[/] (first lines)")
    console.print(
        "\n".join(program.jaxpr.splitlines()[:8]) + "\n  ...", markup=False, highlight=False
    )
    console.print("[bold]StableHLO[/] (entry function)")
    main_fn = program.stablehlo.split("func.func private")[0]
    console.print("\n".join(main_fn.splitlines()[:10]), markup=False, highlight=False)

    console.rule("[bold]2. analyze[/]")
    graph = perfjax.analyze(program)
    console.print(graph.table(max_rows=12))

    console.rule(
        "[bold]3. run on this CPU (XLA) and check the counts against XLA's own analysis[/]"
    )
    table = Table()
    for col in (
        "program",
        "flops (perfjax)",
        "flops (XLA compiled)",
        "ratio",
        "median time",
        "p90",
        "compile",
        "GFLOP/s",
    ):
        table.add_column(col, justify="left" if col == "program" else "right")
    for name, (fn, inputs) in programs.items():
        g = perfjax.analyze(fn, inputs)
        xla = perfjax.trace(fn, inputs).cost_analysis()["flops"]
        r = runs[name]
        table.add_row(
            name,
            fmt_count(g.flops),
            fmt_count(xla),
            f"{g.flops / xla:.4f}",
            fmt_time(r.time.median_s),
            fmt_time(r.time.p90_s),
            fmt_time(r.compile_s),
            f"{g.flops / r.time.median_s / 1e9:.1f}",
        )
        out = np.asarray(jax.tree_util.tree_leaves(r.outputs)[0])
        if not np.all(np.isfinite(out)):
            console.print(f"[red]non-finite outputs from {name}[/]")
            return 1
    console.print(table)

    console.rule("[bold]4. predict the same programs on hardware we don't have[/]")
    for fn, inputs in programs.values():
        comparison = perfjax.compare(
            fn, inputs, ["host", "epyc-9654", "a100-80gb", "h100", "tpu-v5e", "apple-m2"]
        )
        console.print(comparison.table())
    name, (fn, inputs) = next(iter(programs.items()))
    host = perfjax.predict(fn, inputs, device="host")
    measured = runs[name].time.median_s
    console.print(
        f"host model (uncalibrated) for the {name}: predicted {fmt_time(host.time_s)}, measured "
        f"{fmt_time(measured)} (x{host.time_s / measured:.2f}); calibration (perfjax calibrate) fits this gap."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
