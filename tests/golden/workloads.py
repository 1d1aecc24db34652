"""Canonical workloads and devices whose predictions are recorded in predictions.json.

Regenerate the record after an intended model change, and commit it with the change:

    python tests/golden/workloads.py --update
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp

import perfjax
import perfjax.ops as F

S = jax.ShapeDtypeStruct
f32, bf16 = jnp.float32, jnp.bfloat16
RECORD = pathlib.Path(__file__).with_name("predictions.json")
#: Every built-in family; "host" is left out because it depends on the machine.
DEVICES = ("v100", "a100-80gb", "h100", "mi300x", "l4", "tpu-v4", "tpu-v5e", "tpu-v6e", "xeon-8480", "epyc-9654",
           "apple-m2", "apple-m2-ane", "edge-tpu")  # fmt: skip
TOLERANCE = 0.05


def _mlp(x, w1, b1, w2, b2):
    return F.bias_add(F.matmul(F.relu(F.bias_add(F.matmul(x, w1), b1)), w2), b2)


def _conv_block(x, w, b):
    return F.max_pool2d(F.relu(F.bias_add(F.conv2d(x, w), b)))


def _block(x, w_qkv, w_o, w_1, w_2):
    b, t, d = x.shape
    qkv = F.matmul(F.layernorm(x), w_qkv).reshape(b, t, 3, 8, d // 8)
    a = F.attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=True).reshape(b, t, d)
    x = F.add(x, F.matmul(a, w_o))
    return F.add(x, F.matmul(F.gelu(F.matmul(F.layernorm(x), w_1)), w_2))


def workloads():
    """name -> (fn, inputs, precision)."""
    mlp = lambda b: (
        S((b, 784), f32),
        S((784, 128), f32),
        S((128,), f32),
        S((128, 10), f32),
        S((10,), f32),
    )
    d = 512
    block_inputs = (
        S((8, 256, d), f32),
        S((d, 3 * d), f32),
        S((d, d), f32),
        S((d, 4 * d), f32),
        S((4 * d, d), f32),
    )
    return {
        "mlp b1": (_mlp, mlp(1), None),
        "mlp b256": (_mlp, mlp(256), None),
        "gemm 4096 bf16": (F.matmul, (S((4096, 4096), bf16),) * 2, None),
        "elementwise 16M": (lambda a: jnp.tanh(a) * a + 1.0, (S((1 << 24,), f32),), None),
        "conv block b32": (
            _conv_block,
            (S((32, 56, 56, 64), f32), S((3, 3, 64, 64), f32), S((64,), f32)),
            None,
        ),
        "transformer block bf16": (
            _block,
            block_inputs,
            "bf16",
        ),
        "transformer block int8": (
            _block,
            block_inputs,
            "int8",
        ),
    }


def predict_all() -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for name, (fn, inputs, precision) in workloads().items():
        out[name] = {}
        for device in DEVICES:
            try:
                p = perfjax.predict(fn, inputs, device=device, precision=precision)
            except ValueError as e:
                out[name][device] = {"error": str(e).split(".")[0]}
                continue
            out[name][device] = {
                "time_s": p.time_s,
                "energy_j": p.energy_j,
                "bottleneck": p.bottleneck,
            }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="rewrite predictions.json")
    args = parser.parse_args(argv)
    result = predict_all()
    if args.update:
        RECORD.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD} ({sum(len(v) for v in result.values())} predictions)")
    else:
        json.dump(result, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
