"""The programs whose counts are checked against XLA's own cost analysis.

Shared by tests/test_costs_vs_xla.py and benchmarks/costs_vs_xla.py (which writes the table).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import perfjax.ops as F

S = jax.ShapeDtypeStruct
f32 = jnp.float32


def _p(*shape, dtype=f32):
    return S(shape, dtype)


def mlp(x, w1, b1, w2, b2):
    return F.bias_add(F.matmul(F.relu(F.bias_add(F.matmul(x, w1), b1)), w2), b2)


def mlp_loss(params, x, y):
    logits = mlp(x, *params)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))


def conv_block(x, w, b):
    return F.max_pool2d(F.relu(F.bias_add(F.conv2d(x, w), b)))


def transformer_block(x, p):
    b, t, d = x.shape
    h = 4
    y = F.layernorm(x, p["ln1_g"], p["ln1_b"])
    qkv = F.matmul(y, p["w_qkv"]).reshape(b, t, 3, h, d // h)
    a = F.attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=True).reshape(b, t, d)
    x = F.add(x, F.matmul(a, p["w_o"]))
    y = F.layernorm(x, p["ln2_g"], p["ln2_b"])
    return F.add(x, F.matmul(F.gelu(F.bias_add(F.matmul(y, p["w_1"]), p["b_1"])), p["w_2"]))


def transformer_params(d=64, ff=256):
    return dict(
        ln1_g=_p(d),
        ln1_b=_p(d),
        w_qkv=_p(d, 3 * d),
        w_o=_p(d, d),
        ln2_g=_p(d),
        ln2_b=_p(d),
        w_1=_p(d, ff),
        b_1=_p(ff),
        w_2=_p(ff, d),
    )


def flax_cnn():
    """A LeNet-style CNN written with plain flax.linen layers (no Flash ops)."""
    import flax.linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(16, (3, 3))(x))
            x = nn.avg_pool(x, (2, 2), (2, 2))
            x = nn.relu(nn.Conv(32, (3, 3), strides=2, padding="VALID")(x))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(64)(x))
            return nn.log_softmax(nn.Dense(10)(x))

    model = CNN()
    x = _p(8, 28, 28, 1)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))
    return (lambda params, x: model.apply(params, x)), (params, x)


def flax_transformer():
    """A pre-LN transformer encoder layer from flax.nnx layers (nnx.MultiHeadAttention, LayerNorm)."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, d, heads, rngs):
            self.ln1 = nnx.LayerNorm(d, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs)
            self.ln2 = nnx.LayerNorm(d, rngs=rngs)
            self.fc1 = nnx.Linear(d, 4 * d, rngs=rngs)
            self.fc2 = nnx.Linear(4 * d, d, rngs=rngs)

        def __call__(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc2(nnx.gelu(self.fc1(self.ln2(x))))

    model = Block(64, 4, nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    state_spec = jax.tree_util.tree_map(lambda a: S(a.shape, a.dtype), state)
    return apply, (state_spec, _p(2, 32, 64))


def cases():
    """``name -> (fn, inputs)``; inputs are ShapeDtypeStructs (nothing allocated)."""
    out = {}
    for m, k, n in [(8, 16, 4), (64, 128, 32), (256, 512, 128)]:
        out[f"matmul {m}x{k}x{n}"] = (F.matmul, (_p(m, k), _p(k, n)))
    out["matmul batched 4x32x64x16"] = (F.matmul, (_p(4, 32, 64), _p(4, 64, 16)))
    for shape in [(64,), (32, 128), (8, 64, 256)]:
        for name in ["relu", "gelu", "sigmoid", "tanh", "silu"]:
            out[f"{name} {shape}"] = (getattr(F, name), (_p(*shape),))
        out[f"softmax {shape}"] = (F.softmax, (_p(*shape),))
        out[f"layernorm {shape}"] = (F.layernorm, (_p(*shape), _p(shape[-1]), _p(shape[-1])))
        out[f"rmsnorm {shape}"] = (F.rmsnorm, (_p(*shape), _p(shape[-1])))
        out[f"add {shape}"] = (F.add, (_p(*shape), _p(*shape)))
        out[f"mul {shape}"] = (F.mul, (_p(*shape), _p(*shape)))
        out[f"bias_add {shape}"] = (F.bias_add, (_p(*shape), _p(shape[-1])))
    out["gelu exact (32,128)"] = (lambda x: F.gelu(x, approximate=False), (_p(32, 128),))
    out["add broadcast (32,128)+(128,)"] = (F.add, (_p(32, 128), _p(128)))
    for kw, xs, ws in [
        (dict(), (2, 16, 16, 8), (3, 3, 8, 16)),
        (dict(stride=2, padding="VALID"), (2, 17, 17, 8), (3, 3, 8, 16)),
        (dict(padding=((1, 2), (0, 3)), dilation=2), (1, 20, 20, 4), (3, 3, 4, 8)),
        (dict(groups=8), (2, 16, 16, 8), (3, 3, 1, 8)),
        (dict(groups=2, stride=(1, 2)), (2, 16, 16, 8), (5, 5, 4, 8)),
    ]:
        out[f"conv2d {xs}*{ws} {kw}"] = (
            lambda x, w, kw=kw: F.conv2d(x, w, **kw),
            (_p(*xs), _p(*ws)),
        )
    out["max_pool2d (2,16,16,8)"] = (F.max_pool2d, (_p(2, 16, 16, 8),))
    out["avg_pool2d (2,16,16,8) w3 s1"] = (lambda x: F.avg_pool2d(x, 3, 1), (_p(2, 16, 16, 8),))
    for b, t, h, d, causal in [(2, 16, 4, 8, False), (1, 64, 2, 32, True), (2, 32, 8, 16, True)]:
        q = _p(b, t, h, d)
        out[f"attention {(b, t, h, d)} causal={causal}"] = (
            lambda q, k, v, c=causal: F.attention(q, k, v, causal=c),
            (q, q, q),
        )
    out["embedding 1000x64[4,16]"] = (F.embedding, (_p(1000, 64), _p(4, 16, dtype=jnp.int32)))
    mlp_in = (_p(64, 784), _p(784, 128), _p(128), _p(128, 10), _p(10))
    out["MLP 784-128-10 (batch 64)"] = (mlp, mlp_in)
    out["MLP training gradient"] = (jax.grad(mlp_loss), (mlp_in[1:], mlp_in[0], _p(64, 10)))
    out["conv block"] = (conv_block, (_p(4, 32, 32, 16), _p(3, 3, 16, 32), _p(32)))
    out["transformer block"] = (transformer_block, (_p(2, 64, 64), transformer_params()))
    out["transformer block gradient"] = (
        jax.grad(lambda x, p: transformer_block(x, p).sum(), argnums=1),
        (_p(2, 64, 64), transformer_params()),
    )
    out["flax.linen CNN"] = flax_cnn()
    out["flax.nnx transformer layer"] = flax_transformer()
    return out


def xla_counts(fn, inputs):
    """XLA's own counts: (compiled cost_analysis, unoptimized lowered cost_analysis)."""
    lowered = jax.jit(fn).lower(*inputs)
    compiled = lowered.compile().cost_analysis()
    return dict(compiled or {}), dict(lowered.cost_analysis() or {})


__all__ = ["cases", "np", "xla_counts"]
