"""Three reference models written with Flash ops, for ``perfjax.predict`` / ``perfjax.compare``.

Every model takes its parameters as explicit inputs (a pytree), so it can be traced from
``jax.ShapeDtypeStruct`` leaves alone: nothing is allocated. ``make_<name>_inputs(batch, dtype)``
returns the tuple of positional arguments as ShapeDtypeStructs.

* ``mlp``: 784 -> 128 -> 10 with bias and ReLU (MNIST-sized).
* ``resnet18``: ResNet-18 (He et al., 2016) at 224x224x3 in NHWC / HWIO: 7x7/2 stem conv with
  64 filters, 3x3/2 max pool, 4 stages of 2 basic blocks with [64, 128, 256, 512] channels,
  stride-2 downsampling (first block of stages 2-4) with a 1x1/2 projection shortcut, global
  average pool (``jnp.mean``) and a 1000-way dense layer. ~1.8 GFLOP-MACs per image.
* ``gpt2_small``: GPT-2 small (124M): 12 pre-LN layers, d=768, 12 heads, ff 3072, vocab 50257,
  learned positions, causal attention, tanh-GELU, final layernorm and an output projection tied
  to the token embedding (``wte.T``), sequence length set by the ids (default 128).

Quick check (from the repository root)::

    python -c "import experiments.models as m, perfjax; \
print(perfjax.predict(m.resnet18, m.make_resnet18_inputs(1), device='h100'))"
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

import perfjax.ops as F

SDS = jax.ShapeDtypeStruct


def _sds(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
    return SDS(tuple(int(s) for s in shape), jnp.dtype(dtype))


# --------------------------------------------------------------------------------------------
# MLP 784 -> 128 -> 10
# --------------------------------------------------------------------------------------------


def mlp(params: dict, x: jax.Array) -> jax.Array:
    """Logits ``relu(x @ w1 + b1) @ w2 + b2``: x [batch, 784] -> [batch, 10]."""
    h = F.relu(F.bias_add(F.matmul(x, params["w1"]), params["b1"]))
    return F.bias_add(F.matmul(h, params["w2"]), params["b2"])


def make_mlp_inputs(batch: int, dtype: Any = jnp.float32) -> tuple:
    params = dict(
        w1=_sds((784, 128), dtype),
        b1=_sds((128,), dtype),
        w2=_sds((128, 10), dtype),
        b2=_sds((10,), dtype),
    )
    return params, _sds((batch, 784), dtype)


# --------------------------------------------------------------------------------------------
# ResNet-18 at 224x224x3
# --------------------------------------------------------------------------------------------

#: (channels, stride of the first block) per stage.
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))

# Batch normalisation is folded into the preceding convolution, as inference engines do:
# y = gamma * (conv(x, w) - mu) / sigma + beta == conv(x, w * gamma / sigma) + (beta - ...), so
# each conv is followed by a per-channel ``bias_add`` and no separate normalisation kernel.


def _conv_bn(x: jax.Array, p: dict, stride: int, padding: Any) -> jax.Array:
    return F.bias_add(F.conv2d(x, p["w"], stride=stride, padding=padding), p["b"])


def _basic_block(x: jax.Array, p: dict, stride: int) -> jax.Array:
    h = F.relu(_conv_bn(x, p["conv1"], stride, 1))
    h = _conv_bn(h, p["conv2"], 1, 1)
    shortcut = _conv_bn(x, p["proj"], stride, 0) if "proj" in p else x
    return F.relu(F.add(h, shortcut))


def resnet18(params: dict, images: jax.Array) -> jax.Array:
    """Logits [batch, 1000] of ResNet-18 for NHWC ``images`` [batch, 224, 224, 3]."""
    x = F.relu(_conv_bn(images, params["stem"], 2, 3))  # 112x112x64
    x = F.max_pool2d(x, window=3, stride=2, padding="SAME")  # 56x56x64
    for stage, (_, stride) in zip(params["stages"], RESNET18_STAGES):
        for i, block in enumerate(stage):
            x = _basic_block(x, block, stride if i == 0 else 1)
    x = jnp.mean(x, axis=(1, 2))  # global average pool -> [batch, 512]
    return F.bias_add(F.matmul(x, params["fc"]["w"]), params["fc"]["b"])


def make_resnet18_inputs(batch: int, dtype: Any = jnp.float32, image_size: int = 224) -> tuple:
    def conv(kh: int, cin: int, cout: int) -> dict:
        return dict(w=_sds((kh, kh, cin, cout), dtype), b=_sds((cout,), dtype))

    stages, cin = [], 64
    for cout, stride in RESNET18_STAGES:
        blocks = []
        for i in range(2):
            b = dict(conv1=conv(3, cin, cout), conv2=conv(3, cout, cout))
            if i == 0 and (stride != 1 or cin != cout):
                b["proj"] = conv(1, cin, cout)
            blocks.append(b)
            cin = cout
        stages.append(blocks)
    params = dict(
        stem=conv(7, 3, 64),
        stages=stages,
        fc=dict(w=_sds((512, 1000), dtype), b=_sds((1000,), dtype)),
    )
    return params, _sds((batch, image_size, image_size, 3), dtype)


# --------------------------------------------------------------------------------------------
# GPT-2 small
# --------------------------------------------------------------------------------------------

GPT2_SMALL = dict(layers=12, d=768, heads=12, ff=3072, vocab=50257, max_positions=1024)


def _dense(x: jax.Array, p: dict) -> jax.Array:
    return F.bias_add(F.matmul(x, p["w"]), p["b"])


def gpt2_small(params: dict, ids: jax.Array) -> jax.Array:
    """Next-token logits [batch, seq, vocab] of GPT-2 small for int32 ``ids`` [batch, seq]."""
    b, t = ids.shape
    d, heads = params["wte"].shape[1], GPT2_SMALL["heads"]
    x = F.add(F.embedding(params["wte"], ids), params["wpe"][:t])  # [b, t, d]
    for layer in params["layers"]:  # a Python loop: 12 unrolled layers
        h = F.layernorm(x, layer["ln1"]["g"], layer["ln1"]["b"])
        qkv = _dense(h, layer["attn_qkv"])  # [b, t, 3d]
        q, k, v = (a.reshape(b, t, heads, d // heads) for a in jnp.split(qkv, 3, axis=-1))
        a = F.attention(q, k, v, causal=True).reshape(b, t, d)
        x = F.add(x, _dense(a, layer["attn_out"]))
        h = F.layernorm(x, layer["ln2"]["g"], layer["ln2"]["b"])
        x = F.add(x, _dense(F.gelu(_dense(h, layer["mlp_in"])), layer["mlp_out"]))
    x = F.layernorm(x, params["ln_f"]["g"], params["ln_f"]["b"])
    return F.matmul(x, params["wte"].T)  # tied output projection


def make_gpt2_small_inputs(batch: int, dtype: Any = jnp.float32, seq_len: int = 128) -> tuple:
    c = GPT2_SMALL
    d, ff = c["d"], c["ff"]
    if seq_len > c["max_positions"]:
        raise ValueError(f"seq_len {seq_len} exceeds GPT-2's {c['max_positions']} positions")

    def dense(i: int, o: int) -> dict:
        return dict(w=_sds((i, o), dtype), b=_sds((o,), dtype))

    def ln() -> dict:
        return dict(g=_sds((d,), dtype), b=_sds((d,), dtype))

    layers = [
        dict(
            ln1=ln(),
            attn_qkv=dense(d, 3 * d),
            attn_out=dense(d, d),
            ln2=ln(),
            mlp_in=dense(d, ff),
            mlp_out=dense(ff, d),
        )
        for _ in range(c["layers"])
    ]
    params = dict(
        wte=_sds((c["vocab"], d), dtype),
        wpe=_sds((c["max_positions"], d), dtype),
        layers=layers,
        ln_f=ln(),
    )
    return params, _sds((batch, seq_len), jnp.int32)


MODELS = {
    "mlp": (mlp, make_mlp_inputs),
    "resnet18": (resnet18, make_resnet18_inputs),
    "gpt2_small": (gpt2_small, make_gpt2_small_inputs),
}
