"""What costing a program as it lowers for the target changes: the same function costed as JAX
lowers it for this CPU (read back as StableHLO text, used as is) and as ``predict`` lowers it for
the device's own platform.

Programs: a dropout mask (threefry RNG: rolled loops on the CPU, one fused kernel elsewhere) and
a transformers GPT-2 training step with dropout (4 layers, d=256, batch 8 x 128 tokens, AdamW).

    python benchmarks/target_lowering.py   ->  benchmarks/results/target_lowering.json
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import optax

import perfjax

OUT = pathlib.Path(__file__).parent / "results" / "target_lowering.json"
DEVICES = ("h100", "mi300x", "tpu-v5e")


def dropout():
    def f(x, key):
        keep = jax.random.bernoulli(key, 0.9, x.shape)
        return jnp.where(keep, x / 0.9, 0.0)

    key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    return f, (jax.ShapeDtypeStruct((64, 1024), jnp.float32), key)


def gpt2_training_step():
    from transformers import FlaxGPT2LMHeadModel, GPT2Config

    cfg = GPT2Config(vocab_size=1024, n_positions=128, n_embd=256, n_layer=4, n_head=4)
    model = FlaxGPT2LMHeadModel(cfg, input_shape=(1, 128), _do_init=False)
    params = jax.eval_shape(lambda: model.init_weights(jax.random.PRNGKey(0), (1, 128)))
    opt = optax.adamw(1e-4)
    state = jax.eval_shape(opt.init, params)

    def step(params, state, ids, key):
        def loss(p):
            return jnp.mean(model(ids, params=p, dropout_rng=key, train=True).logits)

        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    return step, (params, state, jax.ShapeDtypeStruct((8, 128), jnp.int32), key)


def main() -> None:
    rows = []
    for name, build in (("dropout 64x1024", dropout), ("gpt2 training step", gpt2_training_step)):
        fn, inputs = build()
        cpu = perfjax.Program.from_stablehlo(perfjax.trace(fn, inputs, platform="cpu").stablehlo)
        for device in DEVICES:
            as_cpu = perfjax.predict(cpu, device=device)
            native = perfjax.predict(fn, inputs, device=device)
            in_loops = sum(
                r["time_s"] * r["executions"] for r in as_cpu.kernels if r["executions"] > 1
            )
            row = dict(
                program=name, device=device, platform=native.platform,
                cpu_lowering_time_s=as_cpu.time_s, cpu_lowering_kernels=len(as_cpu.kernels),
                cpu_lowering_share_in_loops=in_loops / as_cpu.time_s,
                target_lowering_time_s=native.time_s, target_lowering_kernels=len(native.kernels),
            )  # fmt: skip
            rows.append(row)
            print(
                f"{name:20s} {device:8s} CPU lowering {as_cpu.time_s * 1e6:9.1f} us "
                f"({len(as_cpu.kernels)} kernels, {100 * row['cpu_lowering_share_in_loops']:.0f}% in loops)"
                f"  {native.platform} lowering {native.time_s * 1e6:9.1f} us ({len(native.kernels)} kernels)"
            )
    OUT.write_text(
        json.dumps(dict(command="python benchmarks/target_lowering.py", rows=rows), indent=1)
    )
    print(f"-> {OUT}")


if __name__ == "__main__":
    main()
