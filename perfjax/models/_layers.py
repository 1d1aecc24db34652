"""Flax (nnx) layers whose forward pass is made of Flash ops.

Every layer holds its weights as ``nnx.Param`` and computes with ``perfjax.ops`` (``flash.matmul``,
``flash.conv2d``, ``flash.attention`` ...), so each layer shows up by name in the jaxpr, the
StableHLO and the costed graph. Shapes follow the Flash ops: dense kernels ``(in, out)``, images
NHWC, conv kernels HWIO, attention activations ``(batch, time, heads, head_dim)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

import perfjax.ops as F
from perfjax._errors import InputError

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]

#: GPT-2 / BERT initialise every dense and embedding weight from N(0, 0.02²).
TRANSFORMER_INIT_STD = 0.02


class Init:
    """A weight initializer: normal or uniform, with a fixed std or variance scaling.

    ``std`` fixes the standard deviation; otherwise it is ``sqrt(scale / fan)`` with
    ``mode="fan_in"`` or ``"fan_out"`` counted as in ``jax.nn.initializers.variance_scaling``
    (``(..., in, out)`` kernels, the leading dimensions being the receptive field).

    Called with a concrete key (eager initialisation) the weights are drawn on the host with NumPy,
    seeded by the key: XLA's CPU compile of one RNG op per weight shape would cost seconds for a
    ResNet. Called with a traced key (``nnx.eval_shape``, ``jax.jit``) it uses ``jax.random``
    with the same distribution; under ``nnx.eval_shape`` nothing is drawn at all.

    Example:
      >>> import jax
      >>> w = Init("normal", std=0.02)(jax.random.key(0), (64, 32), "float32")
      >>> w.shape, round(float(w.std()), 2)
      ((64, 32), 0.02)
    """

    def __init__(
        self,
        distribution: str,
        *,
        std: float | None = None,
        scale: float = 1.0,
        mode: str = "fan_in",
    ):
        if distribution not in ("normal", "uniform"):
            raise InputError(f"distribution must be 'normal' or 'uniform', got {distribution!r}.")
        if mode not in ("fan_in", "fan_out"):
            raise InputError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}.")
        self.distribution, self.fixed_std, self.scale, self.mode = distribution, std, scale, mode

    def std(self, shape: tuple[int, ...]) -> float:
        if self.fixed_std is not None:
            return float(self.fixed_std)
        receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
        fan = (shape[-2] if self.mode == "fan_in" and len(shape) > 1 else shape[-1]) * receptive
        return math.sqrt(self.scale / max(fan, 1))

    def __call__(self, key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        std, shape = self.std(shape), tuple(int(s) for s in shape)
        # A uniform on [-a, a] has std a / sqrt(3).
        half_width = std * math.sqrt(3.0)
        if isinstance(key, jax.core.Tracer):
            if self.distribution == "normal":
                z = jax.random.normal(key, shape, jnp.float32) * std
            else:
                z = jax.random.uniform(key, shape, jnp.float32, -half_width, half_width)
            return z.astype(dtype)
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        if self.distribution == "normal":
            z = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        else:
            z = rng.uniform(-half_width, half_width, shape).astype(np.float32)
        return jnp.asarray(np.asarray(z, dtype=dtype))


def normal(std: float) -> Init:
    """N(0, std²)."""
    return Init("normal", std=std)


#: He et al. (2015) normal, ``fan_out``: torchvision's ResNet/MobileNet conv init.
HE_FAN_OUT = Init("normal", scale=2.0, mode="fan_out")
#: N(0, 1): PyTorch's default ``nn.Embedding`` init.
UNIT_NORMAL = Init("normal", std=1.0)
#: PyTorch's default ``nn.Linear`` init: uniform with variance 1 / (3 fan_in).
TORCH_LINEAR = Init("uniform", scale=1.0 / 3.0, mode="fan_in")


class Dense(nnx.Module):
    """``x @ kernel + bias`` over the last dimension (``flash.matmul`` + ``flash.bias_add``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: Any,
        rngs: nnx.Rngs,
        use_bias: bool = True,
        init: Initializer = TORCH_LINEAR,
    ):
        self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), dtype)) if use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = F.matmul(x, self.kernel[...])
        return y if self.bias is None else F.bias_add(y, self.bias[...])


class LayerNorm(nnx.Module):
    """Layer normalisation over the last dimension with scale and shift (``flash.layernorm``)."""

    def __init__(self, features: int, *, dtype: Any, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((features,), dtype))
        self.bias = nnx.Param(jnp.zeros((features,), dtype))
        self.eps = float(eps)

    def __call__(self, x: jax.Array) -> jax.Array:
        return F.layernorm(x, self.scale[...], self.bias[...], eps=self.eps)


class Embed(nnx.Module):
    """A ``(vocab, features)`` table looked up with ``flash.embedding``."""

    def __init__(
        self,
        num: int,
        features: int,
        *,
        dtype: Any,
        rngs: nnx.Rngs,
        init: Initializer = UNIT_NORMAL,
    ):
        self.table = nnx.Param(init(rngs.params(), (num, features), dtype))

    def __call__(self, ids: jax.Array) -> jax.Array:
        return F.embedding(self.table[...], ids)


class ConvNorm(nnx.Module):
    """Convolution followed by batch normalisation, the unit of ResNet and MobileNet.

    ``norm="batch"``: training-mode batch normalisation (Ioffe & Szegedy, 2015): per-channel mean
    and variance over (N, H, W) computed with ``jnp`` in float32, then a learned scale and shift
    (``flash.mul``, ``flash.bias_add``). Running averages are not kept (the zoo models cost, not
    accuracy). The parameter count equals the published one (conv weights + BN scale and shift).

    ``norm="folded"``: inference-style, the normalisation folded into the convolution as engines do
    (``w * gamma / sigma``, ``beta - gamma * mu / sigma``): the conv is followed only by a
    per-channel ``flash.bias_add``. One parameter vector per conv fewer than ``"batch"``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm: str = "batch",
        dtype: Any,
        rngs: nnx.Rngs,
        eps: float = 1e-5,
    ):
        shape = (kernel, kernel, in_channels // groups, out_channels)
        self.kernel = nnx.Param(HE_FAN_OUT(rngs.params(), shape, dtype))
        self.bias = nnx.Param(jnp.zeros((out_channels,), dtype))
        self.scale = nnx.Param(jnp.ones((out_channels,), dtype)) if norm == "batch" else None
        self.stride, self.groups, self.eps = int(stride), int(groups), float(eps)
        # torchvision's padding: (k - 1) // 2 on every side.
        self.padding = (kernel - 1) // 2 if padding is None else int(padding)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = F.conv2d(
            x, self.kernel[...], stride=self.stride, padding=self.padding, groups=self.groups
        )
        if self.scale is not None:  # batch statistics over (N, H, W), in float32
            yc = y.astype(jnp.float32)
            mean = jnp.mean(yc, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(yc - mean), axis=(0, 1, 2))
            y = ((yc - mean) * lax.rsqrt(var + self.eps)).astype(y.dtype)
            y = F.mul(y, self.scale[...])
        return F.bias_add(y, self.bias[...])


class SelfAttention(nnx.Module):
    """Multi-head self-attention: one fused QKV projection, ``flash.attention``, an output projection."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        causal: bool,
        dtype: Any,
        rngs: nnx.Rngs,
        init: Initializer,
        out_init: Initializer,
    ):
        self.qkv = Dense(d_model, 3 * d_model, dtype=dtype, rngs=rngs, init=init)
        self.out = Dense(d_model, d_model, dtype=dtype, rngs=rngs, init=out_init)
        self.heads, self.causal = int(heads), bool(causal)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads)
        a = F.attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=self.causal)
        return self.out(a.reshape(b, t, d))


class TransformerBlock(nnx.Module):
    """One transformer layer: self-attention and a GELU MLP, each with a residual connection.

    ``post_ln=False`` is GPT-2's pre-LN block (``x + f(LN(x))``); ``post_ln=True`` is BERT's
    post-LN block (``LN(x + f(x))``).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        d_ff: int,
        *,
        causal: bool,
        post_ln: bool,
        exact_gelu: bool,
        eps: float,
        dtype: Any,
        rngs: nnx.Rngs,
        init: Initializer,
        out_init: Initializer,
    ):
        self.ln1 = LayerNorm(d_model, dtype=dtype, eps=eps)
        self.attn = SelfAttention(
            d_model, heads, causal=causal, dtype=dtype, rngs=rngs, init=init, out_init=out_init
        )
        self.ln2 = LayerNorm(d_model, dtype=dtype, eps=eps)
        self.fc_in = Dense(d_model, d_ff, dtype=dtype, rngs=rngs, init=init)
        self.fc_out = Dense(d_ff, d_model, dtype=dtype, rngs=rngs, init=out_init)
        self.post_ln, self.exact_gelu = bool(post_ln), bool(exact_gelu)

    def mlp(self, x: jax.Array) -> jax.Array:
        return self.fc_out(F.gelu(self.fc_in(x), approximate=not self.exact_gelu))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.post_ln:
            x = self.ln1(F.add(x, self.attn(x)))
            return self.ln2(F.add(x, self.mlp(x)))
        x = F.add(x, self.attn(self.ln1(x)))
        return F.add(x, self.mlp(self.ln2(x)))


def _stack(*xs: jax.Array) -> jax.Array:
    return jnp.asarray(np.stack([np.asarray(x) for x in xs]))  # on the host: no XLA compile


class Stack(nnx.Module):
    """``n`` identical layers applied in sequence.

    ``scan=True`` stores the layers' weights stacked along a leading axis and runs them with one ``lax.scan``: the trace, the StableHLO and the costed
    graph hold the layer once, inside a loop with a static trip count, so 24-48 layer models trace
    in about a second. ``scan=False`` keeps an ``nnx.List`` of layers unrolled by a Python loop.
    """

    def __init__(
        self, make: Callable[[nnx.Rngs], nnx.Module], n: int, *, rngs: nnx.Rngs, scan: bool = True
    ):
        self.scan = bool(scan)
        key = rngs.params()
        if not self.scan:
            self.layers = nnx.List(
                [make(nnx.Rngs(params=jax.random.fold_in(key, i))) for i in range(n)]
            )
        elif isinstance(key, jax.core.Tracer):
            # Traced (nnx.eval_shape, jit): one nnx.vmap creates the n layers with their weights
            # stacked along a leading axis; under nnx.eval_shape this is shape arithmetic only.
            create = nnx.vmap(lambda k: make(nnx.Rngs(params=k)), in_axes=0, out_axes=0)
            self.layers = create(jax.random.split(key, n))
        else:
            # Eager: the same stacked layout from a Python loop, so the weights are drawn and
            # stacked on the host (see Init) instead of compiling RNG programs.
            layers = [make(nnx.Rngs(params=jax.random.fold_in(key, i))) for i in range(n)]
            stacked = jax.tree_util.tree_map(_stack, *(nnx.state(layer) for layer in layers))
            self.layers = nnx.merge(nnx.graphdef(layers[0]), stacked)

    def __call__(self, x: jax.Array) -> jax.Array:
        if not self.scan:
            for layer in self.layers:
                x = layer(x)
            return x
        graphdef, state = nnx.split(self.layers)

        def body(h: jax.Array, layer_state: Any) -> tuple[jax.Array, None]:
            return nnx.merge(graphdef, layer_state)(h), None

        return lax.scan(body, x, state)[0]
