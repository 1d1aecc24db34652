"""The zoo's networks as ``nnx.Module`` s built from :mod:`perfjax.models._layers`.

Each network takes its resolved configuration (a dict) plus ``dtype`` and ``rngs``; the sizes of
the named configurations (``"small"``, ``"base"`` ...) are the published ones, cited in
``perfjax.models._zoo``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import perfjax.ops as F
from perfjax.models._layers import (
    TRANSFORMER_INIT_STD,
    ConvNorm,
    Dense,
    Embed,
    LayerNorm,
    Stack,
    TransformerBlock,
    normal,
)

Config = Mapping[str, Any]


def _global_avg_pool(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, C) with one ``flash.avg_pool2d`` over the whole image."""
    n, h, w, c = x.shape
    return F.avg_pool2d(x, window=(h, w)).reshape(n, c)


# --------------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------------


class MLP(nnx.Module):
    """A ReLU multilayer perceptron: ``sizes=(784, 128, 10)`` is 784 -> 128 -> 10 with biases.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> m = MLP(dict(sizes=(784, 128, 10)), dtype=jnp.float32, rngs=nnx.Rngs(0))
      >>> m(jnp.ones((2, 784))).shape
      (2, 10)
    """

    def __init__(self, config: Config, *, dtype: Any, rngs: nnx.Rngs):
        sizes = tuple(config["sizes"])
        self.layers = nnx.List(
            [Dense(i, o, dtype=dtype, rngs=rngs) for i, o in itertools.pairwise(sizes)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


# --------------------------------------------------------------------------------------------
# ResNet-18
# --------------------------------------------------------------------------------------------


class BasicBlock(nnx.Module):
    """ResNet basic block: two 3x3 ConvNorms, identity or 1x1 projection shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int, *, norm: str, dtype: Any, rngs: nnx.Rngs):
        kw = dict(norm=norm, dtype=dtype, rngs=rngs)
        self.conv1 = ConvNorm(cin, cout, 3, stride=stride, **kw)
        self.conv2 = ConvNorm(cout, cout, 3, **kw)
        self.proj = (
            ConvNorm(cin, cout, 1, stride=stride, **kw) if stride != 1 or cin != cout else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv2(F.relu(self.conv1(x)))
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(F.add(h, shortcut))


class ResNet18(nnx.Module):
    """ResNet-18 (He et al., 2016), NHWC.

    7x7/2 stem ConvNorm with ``width`` filters, 3x3/2 max pool, four stages of two basic blocks
    with ``width * (1, 2, 4, 8)`` channels (stride 2 and a 1x1 projection shortcut at the start of
    stages 2-4), global average pool and a dense classifier. Batch normalisation follows
    ``config["norm"]`` (see :class:`~perfjax.models._layers.ConvNorm`): ``"batch"`` (batch
    statistics with a learned scale and shift, the published 11.69M parameters) or ``"folded"``
    (inference-style, folded into each conv as a per-channel bias).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> cfg = dict(image_size=32, width=8, classes=10, channels=3, norm="batch")
      >>> m = ResNet18(cfg, dtype=jnp.float32, rngs=nnx.Rngs(0))
      >>> jax.eval_shape(m, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)).shape
      (2, 10)
    """

    def __init__(self, config: Config, *, dtype: Any, rngs: nnx.Rngs):
        w, norm = int(config["width"]), config["norm"]
        kw = dict(norm=norm, dtype=dtype, rngs=rngs)
        self.stem = ConvNorm(int(config["channels"]), w, 7, stride=2, **kw)
        blocks, cin = [], w
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = w * mult
            for j in range(2):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, **kw))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.fc = Dense(cin, int(config["classes"]), dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = F.relu(self.stem(images))
        x = F.max_pool2d(x, window=3, stride=2, padding="SAME")
        for block in self.blocks:
            x = block(x)
        return self.fc(_global_avg_pool(x))


# --------------------------------------------------------------------------------------------
# MobileNetV2
# --------------------------------------------------------------------------------------------

#: (expansion t, channels c, repeats n, first stride s) per stage (Sandler et al., 2018, Table 2).
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Rounds channel counts the way the reference implementations do (never below 90% of ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0, 6)


class InvertedResidual(nnx.Module):
    """MobileNetV2 block: 1x1 expansion (ReLU6), 3x3 depthwise (``groups=channels``, ReLU6), 1x1 linear projection."""

    def __init__(
        self, cin: int, cout: int, stride: int, t: int, *, norm: str, dtype: Any, rngs: nnx.Rngs
    ):
        kw = dict(norm=norm, dtype=dtype, rngs=rngs)
        hidden = round(cin * t)
        self.expand = ConvNorm(cin, hidden, 1, **kw) if t != 1 else None
        self.depthwise = ConvNorm(hidden, hidden, 3, stride=stride, groups=hidden, **kw)
        self.project = ConvNorm(hidden, cout, 1, **kw)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x if self.expand is None else _relu6(self.expand(x))
        h = self.project(_relu6(self.depthwise(h)))
        return F.add(x, h) if self.residual else h


class MobileNetV2(nnx.Module):
    """MobileNetV2 (Sandler et al., 2018), NHWC, with a width multiplier.

    3x3/2 stem ConvNorm (32 x width channels), the inverted-residual stages of
    ``config["stages"]`` (Table 2 of the paper by default), a 1x1 ConvNorm to
    ``last_channels * max(1, width)`` channels, global average pool and a dense classifier; ReLU6
    is ``jnp.clip``. Batch normalisation follows ``config["norm"]`` as in :class:`ResNet18`;
    ``"batch"`` at width 1.0 has torchvision's 3,504,872 parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> cfg = dict(image_size=32, width=0.25, classes=10, channels=3, norm="batch",
      ...            stages=((1, 16, 1, 1), (6, 24, 2, 2)), last_channels=64)
      >>> m = MobileNetV2(cfg, dtype=jnp.float32, rngs=nnx.Rngs(0))
      >>> jax.eval_shape(m, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)).shape
      (1, 10)
    """

    def __init__(self, config: Config, *, dtype: Any, rngs: nnx.Rngs):
        width, norm = float(config["width"]), config["norm"]
        kw = dict(norm=norm, dtype=dtype, rngs=rngs)
        cin = make_divisible(32 * width)
        self.stem = ConvNorm(int(config["channels"]), cin, 3, stride=2, **kw)
        blocks = []
        for t, c, n, s in config["stages"]:
            cout = make_divisible(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, **kw))
                cin = cout
        self.blocks = nnx.List(blocks)
        last = make_divisible(int(config["last_channels"]) * max(1.0, width))
        self.head = ConvNorm(cin, last, 1, **kw)
        self.fc = Dense(last, int(config["classes"]), dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = _relu6(self.stem(images))
        for block in self.blocks:
            x = block(x)
        x = _relu6(self.head(x))
        return self.fc(_global_avg_pool(x))


# --------------------------------------------------------------------------------------------
# Transformers
# --------------------------------------------------------------------------------------------


def _blocks(
    config: Config, *, causal: bool, post_ln: bool, exact_gelu: bool, eps: float, dtype, rngs
):
    layers, d = int(config["layers"]), int(config["d_model"])
    init = normal(TRANSFORMER_INIT_STD)
    # GPT-2 scales the residual projections by 1/sqrt(2 * layers); BERT does not.
    out_init = init if post_ln else normal(TRANSFORMER_INIT_STD / (2 * layers) ** 0.5)

    def make(r: nnx.Rngs) -> TransformerBlock:
        return TransformerBlock(
            d,
            int(config["heads"]),
            int(config["d_ff"]),
            causal=causal,
            post_ln=post_ln,
            exact_gelu=exact_gelu,
            eps=eps,
            dtype=dtype,
            rngs=r,
            init=init,
            out_init=out_init,
        )

    return Stack(make, layers, rngs=rngs, scan=bool(config["scan"]))


class BERT(nnx.Module):
    """BERT encoder (Devlin et al., 2019): post-LN blocks, exact GELU, layernorm eps 1e-12.

    Embeddings: word + learned position + token type (type 0) followed by a layernorm; then
    ``layers`` post-LN encoder blocks. ``__call__`` returns the final hidden states
    ``(batch, seq, d_model)``. :meth:`mlm_logits` adds the masked-LM head used for training (dense
    + GELU + layernorm, output projection tied to the word embeddings, plus a vocabulary bias).
    BERT-base has 108.9M encoder + embedding parameters, 109.5M with the MLM head.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> cfg = dict(layers=2, d_model=32, heads=4, d_ff=64, vocab=100, max_positions=16, scan=True)
      >>> m = BERT(cfg, dtype=jnp.float32, rngs=nnx.Rngs(0))
      >>> jax.eval_shape(m, jax.ShapeDtypeStruct((2, 8), jnp.int32)).shape
      (2, 8, 32)
    """

    EPS = 1e-12

    def __init__(self, config: Config, *, dtype: Any, rngs: nnx.Rngs):
        d, init = int(config["d_model"]), normal(TRANSFORMER_INIT_STD)
        self.word = Embed(int(config["vocab"]), d, dtype=dtype, rngs=rngs, init=init)
        self.position = Embed(int(config["max_positions"]), d, dtype=dtype, rngs=rngs, init=init)
        self.token_type = Embed(2, d, dtype=dtype, rngs=rngs, init=init)
        self.ln_embed = LayerNorm(d, dtype=dtype, eps=self.EPS)
        self.blocks = _blocks(
            config,
            causal=False,
            post_ln=True,
            exact_gelu=True,
            eps=self.EPS,
            dtype=dtype,
            rngs=rngs,
        )
        self.mlm_dense = Dense(d, d, dtype=dtype, rngs=rngs, init=init)
        self.mlm_ln = LayerNorm(d, dtype=dtype, eps=self.EPS)
        self.mlm_bias = nnx.Param(jnp.zeros((int(config["vocab"]),), dtype))

    def __call__(self, ids: jax.Array) -> jax.Array:
        t = ids.shape[1]
        x = F.add(self.word(ids), self.position.table[...][:t])
        x = self.ln_embed(F.add(x, self.token_type.table[...][0]))
        return self.blocks(x)

    def mlm_logits(self, hidden: jax.Array) -> jax.Array:
        """Masked-LM logits ``(batch, seq, vocab)`` from the encoder's hidden states."""
        h = self.mlm_ln(F.gelu(self.mlm_dense(hidden), approximate=False))
        return F.bias_add(F.matmul(h, self.word.table[...].T), self.mlm_bias[...])


class GPT2(nnx.Module):
    """GPT-2 decoder (Radford et al., 2019): pre-LN causal blocks, tanh-GELU, tied output projection.

    Token + learned position embeddings, ``layers`` pre-LN blocks with causal attention, a final
    layernorm and logits ``x @ wte.T`` (the output projection shares the token embedding).
    ``__call__`` returns next-token logits ``(batch, seq, vocab)``. GPT-2 small has 124.4M
    parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> cfg = dict(layers=2, d_model=32, heads=4, d_ff=64, vocab=100, max_positions=16, scan=True)
      >>> m = GPT2(cfg, dtype=jnp.float32, rngs=nnx.Rngs(0))
      >>> jax.eval_shape(m, jax.ShapeDtypeStruct((2, 8), jnp.int32)).shape
      (2, 8, 100)
    """

    EPS = 1e-5

    def __init__(self, config: Config, *, dtype: Any, rngs: nnx.Rngs):
        d, init = int(config["d_model"]), normal(TRANSFORMER_INIT_STD)
        self.wte = Embed(int(config["vocab"]), d, dtype=dtype, rngs=rngs, init=init)
        self.wpe = Embed(int(config["max_positions"]), d, dtype=dtype, rngs=rngs, init=normal(0.01))
        self.blocks = _blocks(
            config,
            causal=True,
            post_ln=False,
            exact_gelu=False,
            eps=self.EPS,
            dtype=dtype,
            rngs=rngs,
        )
        self.ln_f = LayerNorm(d, dtype=dtype, eps=self.EPS)

    def __call__(self, ids: jax.Array) -> jax.Array:
        t = ids.shape[1]
        x = F.add(self.wte(ids), self.wpe.table[...][:t])
        x = self.ln_f(self.blocks(x))
        return F.matmul(x, self.wte.table[...].T)  # tied output projection
