"""Whole programs used to validate calibrations (never part of the microbenchmark fits).

``Workload.of("model", builder="program", name=..., batch=..., ...)`` builds one of:

* ``mlp``: 784 -> 128 -> 10 with Flash ops;
* ``cnn``: two conv/relu/pool blocks and a dense head (Flash ops);
* ``transformer_block``: one pre-norm causal block (Flash ops), ``d`` and ``seq``;
* ``flax_cnn``: a LeNet-style ``flax.linen`` CNN (no Flash ops);
* ``flax_transformer``: a ``flax.nnx`` encoder layer (``nnx.MultiHeadAttention``, no Flash ops);
* ``bert`` / ``gpt``: encoder / causal decoder stacks (``lax.scan`` over layers) at any size,
  e.g. BERT-large (24 x 1024) and GPT-2-large (36 x 1280), traced without allocating weights.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from jax import lax

import perfjax.ops as F
from perfjax._errors import InputError
from perfjax.calibrate._workloads import register_builder

S = jax.ShapeDtypeStruct

#: Published sizes: (layers, d_model, heads, d_ff, vocab, max positions).
CONFIGS = {
    "bert_base": (12, 768, 12, 3072, 30522, 512),
    "bert_large": (24, 1024, 16, 4096, 30522, 512),
    "gpt2_small": (12, 768, 12, 3072, 50257, 1024),
    "gpt2_medium": (24, 1024, 16, 4096, 50257, 1024),
    "gpt2_large": (36, 1280, 20, 5120, 50257, 1024),
}


def _mlp(batch: int, dtype):
    def fn(x, w1, b1, w2, b2):
        return F.bias_add(F.matmul(F.relu(F.bias_add(F.matmul(x, w1), b1)), w2), b2)

    return fn, (
        S((batch, 784), dtype),
        S((784, 128), dtype),
        S((128,), dtype),
        S((128, 10), dtype),
        S((10,), dtype),
    )


def _cnn(batch: int, dtype):
    def fn(x, w1, w2, wd):
        y = F.max_pool2d(F.relu(F.conv2d(x, w1)))
        y = F.max_pool2d(F.relu(F.conv2d(y, w2)))
        return F.matmul(y.reshape(y.shape[0], -1), wd)

    return fn, (S((batch, 32, 32, 3), dtype), S((3, 3, 3, 32), dtype), S((3, 3, 32, 64), dtype),
                S((8 * 8 * 64, 10), dtype))  # fmt: skip


def _block_fn(x, p, heads: int, causal: bool):
    b, t, d = x.shape
    h = F.layernorm(x, p["ln1_g"], p["ln1_b"])
    qkv = F.bias_add(F.matmul(h, p["w_qkv"]), p["b_qkv"]).reshape(b, t, 3, heads, d // heads)
    a = F.attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=causal).reshape(b, t, d)
    x = F.add(x, F.bias_add(F.matmul(a, p["w_o"]), p["b_o"]))
    h = F.layernorm(x, p["ln2_g"], p["ln2_b"])
    h = F.gelu(F.bias_add(F.matmul(h, p["w_1"]), p["b_1"]))
    return F.add(x, F.bias_add(F.matmul(h, p["w_2"]), p["b_2"]))


def _block_params(d: int, ff: int, dtype, layers: int | None = None):
    lead = (layers,) if layers else ()

    def s(*shape):
        return S((*lead, *shape), dtype)

    return dict(ln1_g=s(d), ln1_b=s(d), w_qkv=s(d, 3 * d), b_qkv=s(3 * d), w_o=s(d, d), b_o=s(d), ln2_g=s(d),
                ln2_b=s(d), w_1=s(d, ff), b_1=s(ff), w_2=s(ff, d), b_2=s(d))  # fmt: skip


def _transformer_block(batch: int, dtype, d: int = 256, seq: int = 128, heads: int = 4):
    def fn(x, p):
        return _block_fn(x, p, heads, True)

    return fn, (S((batch, seq, d), dtype), _block_params(d, 4 * d, dtype))


def _stack(name: str, batch: int, dtype, seq: int, causal: bool):
    layers, d, heads, ff, vocab, _ = CONFIGS[name]

    def fn(params, ids):
        x = F.add(F.embedding(params["wte"], ids), params["wpe"][: ids.shape[1]])

        def layer(x, p):
            return _block_fn(x, p, heads, causal), None

        x, _ = lax.scan(layer, x, params["layers"])
        x = F.layernorm(x, params["lnf_g"], params["lnf_b"])
        # Tied output projection for decoders (logits over the vocabulary); encoders return states.
        return F.matmul(x, params["wte"].T) if causal else x

    params = dict(wte=S((vocab, d), dtype), wpe=S((CONFIGS[name][5], d), dtype), lnf_g=S((d,), dtype),
                  lnf_b=S((d,), dtype), layers=_block_params(d, ff, dtype, layers))  # fmt: skip
    return fn, (params, S((batch, seq), jnp.int32))


def _flax_cnn(batch: int, dtype):
    import flax.linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(16, (3, 3), dtype=dtype)(x))
            x = nn.avg_pool(x, (2, 2), (2, 2))
            x = nn.relu(nn.Conv(32, (3, 3), strides=2, padding="VALID", dtype=dtype)(x))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(64, dtype=dtype)(x))
            return nn.log_softmax(nn.Dense(10, dtype=dtype)(x))

    model = CNN()
    x = S((batch, 28, 28, 1), dtype)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, dtype)))
    return (lambda params, x: model.apply(params, x)), (params, x)


def _flax_transformer(batch: int, dtype, d: int = 128, seq: int = 64):
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln1 = nnx.LayerNorm(d, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(4, d, decode=False, rngs=rngs)
            self.ln2 = nnx.LayerNorm(d, rngs=rngs)
            self.fc1 = nnx.Linear(d, 4 * d, rngs=rngs)
            self.fc2 = nnx.Linear(4 * d, d, rngs=rngs)

        def __call__(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc2(nnx.gelu(self.fc1(self.ln2(x))))

    graphdef, state = nnx.split(Block(nnx.Rngs(0)))
    state = jax.tree_util.tree_map(lambda a: S(a.shape, a.dtype), state)
    return (lambda state, x: nnx.merge(graphdef, state)(x)), (state, S((batch, seq, d), dtype))


@register_builder("program")
def _program(
    name: str,
    batch: int = 1,
    dtype: str = "float32",
    seq: int = 128,
    d: int = 256,
    precision: str | None = None,
):
    """``precision`` (e.g. ``"highest"``: strict fp32, no TF32) applies to every dot of the program."""
    fn, inputs = _program_inner(name, batch, dtype, seq, d)
    if precision is None:
        return fn, inputs

    def with_precision(*args):
        with jax.default_matmul_precision(precision):
            return fn(*args)

    return with_precision, inputs


def _program_inner(name: str, batch: int, dtype: str, seq: int, d: int):
    dt = jnp.dtype(dtype)
    if name == "mlp":
        return _mlp(batch, dt)
    if name == "cnn":
        return _cnn(batch, dt)
    if name == "transformer_block":
        return _transformer_block(batch, dt, d=d, seq=seq)
    if name == "flax_cnn":
        return _flax_cnn(batch, dt)
    if name == "flax_transformer":
        return _flax_transformer(batch, dt)
    if name.startswith("bert"):
        return _stack(name, batch, dt, seq, causal=False)
    if name.startswith("gpt"):
        return _stack(name, batch, dt, seq, causal=True)
    valid = ["mlp", "cnn", "transformer_block", "flax_cnn", "flax_transformer", *CONFIGS]
    raise InputError(f"unknown program {name!r}; expected one of {valid}.")


# ---------------------------------------------------------------------------------------------
# blocks: small programs of the kinds people write, for the interval of a calibration
# ---------------------------------------------------------------------------------------------

_ACTS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh, "silu": jax.nn.silu}
_UNARY = {
    "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "exp": lambda x: jnp.exp(-jnp.abs(x)),
    "cos": jnp.cos, "scale": lambda x: 0.5 * x + 1.0, "relu": jax.nn.relu,
    "log1p": lambda x: jnp.log1p(jnp.abs(x)), "rsqrt": lambda x: jax.lax.rsqrt(1.0 + x * x),
}  # fmt: skip
BLOCK_FAMILIES = ("mlp", "conv", "attention", "norm", "elementwise", "transformer")


@register_builder("block")
def _block(family: str, dtype: str = "float32", **p):
    """A small plain-``jax.numpy`` program of one family (:data:`BLOCK_FAMILIES`):

    * ``mlp``: ``batch``, layer ``widths``, activation ``act``; ``train``: an SGD step;
    * ``conv``: ``batch``, ``hw``, ``cin`` -> ``cout``, ``k`` x ``k``, ``stride``, with a batch
      ``norm`` or not, then ReLU;
    * ``attention``: ``b``, ``t``, ``h`` heads of ``d``;
    * ``norm``: ``op`` (layernorm, rmsnorm or softmax) over ``rows`` x ``cols``;
    * ``elementwise``: a chain of unary ``ops`` over ``n`` elements;
    * ``transformer``: a ``flax.nnx`` encoder layer, ``batch`` x ``seq`` x ``d``.

    Example:
      >>> fn, inputs = _block("norm", op="softmax", rows=4, cols=128)
      >>> inputs[0].shape
      (4, 128)
    """
    dt = jnp.dtype(dtype)
    if family == "mlp":
        return _block_mlp(dt, **p)
    if family == "conv":
        return _block_conv(dt, **p)
    if family == "attention":
        return _block_attention(dt, **p)
    if family == "norm":
        return _block_norm(dt, **p)
    if family == "elementwise":
        return _block_elementwise(dt, **p)
    if family == "transformer":
        return _flax_transformer(p["batch"], dt, d=p["d"], seq=p["seq"])
    raise InputError(f"unknown block family {family!r}; expected one of {list(BLOCK_FAMILIES)}.")


def _block_mlp(dt, batch: int, widths: tuple[int, ...], act: str, train: bool):
    f = _ACTS[act]
    params = [(S((a, b), dt), S((b,), dt)) for a, b in itertools.pairwise(widths)]

    def fwd(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            x = f(x) if i < len(params) - 1 else x
        return x

    def step(params, x):
        g = jax.grad(lambda p: jnp.mean(jnp.square(fwd(p, x).astype(jnp.float32))))(params)
        return jax.tree.map(lambda p, g: p - 1e-3 * g, params, g)

    return (step if train else fwd), (params, S((batch, widths[0]), dt))


def _block_conv(dt, batch: int, hw: int, cin: int, cout: int, k: int, stride: int, norm: bool):
    def fwd(w, x):
        y = lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        if norm:
            m = y.mean(axis=(0, 1, 2))
            y = (y - m) * lax.rsqrt(jnp.mean(jnp.square(y - m), axis=(0, 1, 2)) + 1e-5)
        return jax.nn.relu(y)

    return fwd, (S((k, k, cin, cout), dt), S((batch, hw, hw, cin), dt))


def _block_attention(dt, b: int, t: int, h: int, d: int):
    def fwd(q, k, v):
        s = jnp.einsum("bthd,bshd->bhts", q, k) * (d**-0.5)
        return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)

    x = S((b, t, h, d), dt)
    return fwd, (x, x, x)


def _block_norm(dt, op: str, rows: int, cols: int):
    def fwd(x):
        if op == "softmax":
            return jax.nn.softmax(x, axis=-1)
        if op == "rmsnorm":
            return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
        m = x.mean(-1, keepdims=True)
        return (x - m) * lax.rsqrt(jnp.mean(jnp.square(x - m), axis=-1, keepdims=True) + 1e-5)

    return fwd, (S((rows, cols), dt),)


def _block_elementwise(dt, n: int, ops: tuple[str, ...]):
    def fwd(x):
        for o in ops:
            x = _UNARY[o](x)
        return x

    return fwd, (S((n,), dt),)
