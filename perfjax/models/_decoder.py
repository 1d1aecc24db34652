"""A MaxText-style dense decoder: pure functions over abstract parameters, for pod-sized models.

The zoo's other models are ``nnx`` modules; a 128-billion-parameter decoder needs nothing to be
allocated and its layers scanned (one traced layer, not 64), so this one is written as functions
over a parameter pytree whose per-layer weights are stacked on a leading axis, as MaxText does
with ``scan_layers``. Everything MaxText's dense decoders vary is a field of
:class:`DecoderConfig`: RMSNorm or LayerNorm, RoPE / learned / T5 relative-position bias / no
positions, multi-head or grouped-query attention, ReLU / GELU / SwiGLU MLP, tied or untied
embeddings, a parallel (attention and MLP from one norm) or sequential block, a remat policy
and flash-style (blockwise, online-softmax) or plain attention.

:func:`decoder` returns a :class:`Decoder` whose :meth:`~Decoder.training_step` is the whole
step (forward, backward, gradient clipping, AdamW update) as ``(fn, inputs)`` with
``jax.ShapeDtypeStruct`` inputs, sharded when a mesh is given (FSDP over the embedding axis of
every weight, the batch over every mesh axis).

Example:
  >>> from perfjax.models import decoder
  >>> d = decoder("maxtext-16b")
  >>> round(d.num_params / 1e9, 2)
  16.27
  >>> fn, inputs = d.training_step(batch=6)
  >>> inputs[2].shape
  (6, 2048)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from perfjax._errors import InputError
from perfjax.ops import fused_kernel

_NORMS = ("rms", "layer")
_POSITIONS = ("rope", "learned", "relative", "none")
_ACTIVATIONS = ("relu", "gelu", "swiglu")
_REMAT = ("none", "full", "dots", "dots_with_no_batch_dims")
_ATTENTION = ("flash", "dot")
#: T5's relative-position buckets (Raffel et al., 2020; MaxText's 2023 default decoder).
_REL_BUCKETS, _REL_MAX_DISTANCE = 32, 128


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """The shape and the choices of a dense decoder (names as in MaxText's ``base.yml``)."""

    vocab_size: int = 32768
    emb_dim: int = 2048
    num_decoder_layers: int = 16
    num_query_heads: int = 8
    #: Grouped-query attention when smaller than ``num_query_heads`` (None: multi-head).
    num_kv_heads: int | None = None
    head_dim: int = 256
    mlp_dim: int = 8192
    mlp_activation: str = "relu"
    norm: str = "rms"
    positions: str = "rope"
    max_target_length: int = 2048
    #: Output logits through the input embedding (``logits_via_embedding``).
    tied_embeddings: bool = True
    #: Attention and MLP from one pre-norm, summed (MaxText's 2023 default decoder layer).
    parallel_block: bool = False
    #: ``jax.checkpoint`` policy of each layer: ``full`` recomputes the layer in the backward
    #: pass, ``dots`` keeps matmul outputs, ``none`` keeps everything.
    remat: str = "full"
    attention: str = "flash"
    #: Key/value block of flash-style attention.
    attention_block: int = 512
    causal: bool = True
    dtype: str = "bfloat16"
    weight_dtype: str = "float32"
    #: AdamW as MaxText configures it (``optax.adamw``), after global-norm clipping at 1.0.
    learning_rate: float = 3e-4
    adam_b1: float = 0.9
    adam_b2: float = 0.95
    adam_eps: float = 1e-8
    weight_decay: float = 0.1
    gradient_clipping: float = 1.0

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_query_heads

    def replace(self, **changes: Any) -> DecoderConfig:
        return dataclasses.replace(self, **changes)


def _maxtext_2023(scale: int, **kw: Any) -> DecoderConfig:
    """MaxText's 2023 ``global_parameter_scale`` rule: with log2(scale) = 3b + r, heads and MLP
    width grow by 2^(b + [r > 0]), the embedding width by 2^(b + [r > 1]), the layers by 2^b
    (base: emb 2560, 8 heads, MLP 8192, 16 layers; ``pyconfig.get_individual_scales``)."""
    b, r = divmod(int(math.log2(scale)), 3)
    base = dict(
        vocab_size=32768,
        emb_dim=2560 * 2 ** (b + (r > 1)),
        num_query_heads=8 * 2 ** (b + (r > 0)),
        head_dim=256,
        mlp_dim=8192 * 2 ** (b + (r > 0)),
        num_decoder_layers=16 * 2**b,
        mlp_activation="relu",
        norm="rms",
        positions="relative",
        tied_embeddings=True,
        parallel_block=True,
        remat="full",
        attention="flash",
        causal=False,
    )
    base.update(kw)
    return DecoderConfig(**base)


#: Named configurations. ``maxtext-16b`` ... ``maxtext-128b`` are the decoders of MaxText's
#: TPU v5e table (2023, ``global_parameter_scale`` 16, 32, 64, 128); ``llama2-7b`` is Touvron et
#: al. (2023); ``tiny`` is for tests.
CONFIGS: dict[str, DecoderConfig] = {
    "tiny": DecoderConfig(
        vocab_size=256,
        emb_dim=64,
        num_decoder_layers=2,
        num_query_heads=4,
        head_dim=16,
        mlp_dim=128,
        max_target_length=64,
        attention_block=16,
    ),
    "maxtext-16b": _maxtext_2023(16),
    "maxtext-32b": _maxtext_2023(32),
    "maxtext-64b": _maxtext_2023(64),
    "maxtext-128b": _maxtext_2023(128),
    "llama2-7b": DecoderConfig(
        vocab_size=32000,
        emb_dim=4096,
        num_decoder_layers=32,
        num_query_heads=32,
        head_dim=128,
        mlp_dim=11008,
        mlp_activation="swiglu",
        norm="rms",
        positions="rope",
        max_target_length=4096,
        tied_embeddings=False,
    ),
}


def _check(cfg: DecoderConfig) -> None:
    for name, value, allowed in (
        ("norm", cfg.norm, _NORMS),
        ("positions", cfg.positions, _POSITIONS),
        ("mlp_activation", cfg.mlp_activation, _ACTIVATIONS),
        ("remat", cfg.remat, _REMAT),
        ("attention", cfg.attention, _ATTENTION),
    ):
        if value not in allowed:
            raise InputError(f"DecoderConfig.{name} must be one of {allowed}, got {value!r}.")
    for name in ("vocab_size", "emb_dim", "num_decoder_layers", "num_query_heads", "head_dim",
                 "mlp_dim", "max_target_length", "attention_block"):  # fmt: skip
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"DecoderConfig.{name} must be a positive integer, got {v!r}.")
    if cfg.num_query_heads % cfg.kv_heads:
        raise InputError(
            f"num_query_heads ({cfg.num_query_heads}) must be a multiple of num_kv_heads "
            f"({cfg.kv_heads})."
        )


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


def _param_shapes(cfg: DecoderConfig) -> dict[str, Any]:
    """{name: shape}; per-layer weights stacked on a leading layer axis."""
    L, E, H, K, D, M = (cfg.num_decoder_layers, cfg.emb_dim, cfg.num_query_heads, cfg.kv_heads,
                        cfg.head_dim, cfg.mlp_dim)  # fmt: skip
    layer = {"attn_norm": (L, E), "wq": (L, E, H, D), "wk": (L, E, K, D), "wv": (L, E, K, D),
             "wo": (L, H, D, E), "w_in": (L, E, M), "w_out": (L, M, E)}  # fmt: skip
    if not cfg.parallel_block:
        layer["mlp_norm"] = (L, E)
    if cfg.mlp_activation == "swiglu":
        layer["w_gate"] = (L, E, M)
    if cfg.norm == "layer":
        layer["attn_norm_bias"] = (L, E)
        if not cfg.parallel_block:
            layer["mlp_norm_bias"] = (L, E)
    if cfg.positions == "relative":
        layer["rel_bias"] = (L, _REL_BUCKETS, H)
    out: dict[str, Any] = {"embed": (cfg.vocab_size, E), "layers": layer, "final_norm": (E,)}
    if cfg.positions == "learned":
        out["pos_embed"] = (cfg.max_target_length, E)
    if not cfg.tied_embeddings:
        out["unembed"] = (E, cfg.vocab_size)
    return out


#: Which axis of each weight is the embedding axis (sharded by FSDP); None: replicated.
_EMBED_AXIS = {"embed": 1, "pos_embed": 1, "unembed": 0, "final_norm": None, "wq": 1, "wk": 1,
               "wv": 1, "wo": 3, "w_in": 1, "w_gate": 1, "w_out": 2, "attn_norm": None,
               "mlp_norm": None, "attn_norm_bias": None, "mlp_norm_bias": None,
               "rel_bias": None}  # fmt: skip


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


def _path_name(path: Any) -> str:
    return str(getattr(path[-1], "key", path[-1]))


def init(cfg: DecoderConfig, key: jax.Array) -> dict[str, Any]:
    """Real parameters (normal(0, 1/sqrt(fan_in)) weights, unit norms); small configs only."""
    shapes = _param_shapes(cfg)
    leaves, tree = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=_is_shape)
    keys = jax.random.split(key, len(leaves))
    dtype = jnp.dtype(cfg.weight_dtype)
    out = []
    for (path, shape), k in zip(leaves, keys):
        name = _path_name(path)
        if "norm" in name and "bias" not in name:
            out.append(jnp.ones(shape, dtype))
        elif "bias" in name:
            out.append(jnp.zeros(shape, dtype))
        else:
            fan_in = shape[-2] if name != "embed" else shape[-1]
            out.append(jax.random.normal(k, shape, dtype) / math.sqrt(fan_in))
    return jax.tree_util.tree_unflatten(tree, out)


# --------------------------------------------------------------------------------------------
# the forward pass
# --------------------------------------------------------------------------------------------


def _norm(cfg: DecoderConfig, x: jax.Array, scale: jax.Array, bias: jax.Array | None) -> jax.Array:
    xf = x.astype(jnp.float32)
    if cfg.norm == "layer":
        xf = xf - jnp.mean(xf, axis=-1, keepdims=True)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + 1e-6)
    y = y * scale.astype(jnp.float32)
    if bias is not None:
        y = y + bias.astype(jnp.float32)
    return y.astype(x.dtype)


def _rope(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rotary position embedding (Su et al., 2021) over the last axis of (B, S, H, D)."""
    d = x.shape[-1] // 2
    freq = 1.0 / (10000.0 ** (jnp.arange(d, dtype=jnp.float32) / d))
    angle = positions[:, None].astype(jnp.float32) * freq[None, :]  # (S, d)
    sin, cos = jnp.sin(angle)[None, :, None, :], jnp.cos(angle)[None, :, None, :]
    x1, x2 = x[..., :d].astype(jnp.float32), x[..., d:].astype(jnp.float32)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def _relative_bucket(distance: jax.Array) -> jax.Array:
    """T5's bidirectional log-spaced bucket of ``key - query`` positions."""
    half = _REL_BUCKETS // 2
    bucket = jnp.where(distance > 0, half, 0)
    n = jnp.abs(distance)
    exact = half // 2
    large = exact + (
        jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / exact)
        / math.log(_REL_MAX_DISTANCE / exact)
        * (half - exact)
    ).astype(jnp.int32)
    return bucket + jnp.where(n < exact, n, jnp.minimum(large, half - 1))


def _bias(cfg: DecoderConfig, rel_bias, q_pos, k_pos) -> jax.Array | None:
    """Additive bias of attention scores, (1, H, Sq, Sk) or (1, 1, Sq, Sk): relative positions
    and the causal mask; None when there is neither."""
    bias = None
    if cfg.positions == "relative":
        buckets = _relative_bucket(k_pos[None, :] - q_pos[:, None])  # (Sq, Sk)
        bias = jnp.transpose(rel_bias[buckets].astype(jnp.float32), (2, 0, 1))[None]
    if cfg.causal:
        mask = jnp.where(k_pos[None, :] <= q_pos[:, None], 0.0, -1e9).astype(jnp.float32)
        bias = mask[None, None] if bias is None else bias + mask[None, None]
    return bias


def _add_bias(s: jax.Array, bias: jax.Array | None) -> jax.Array:
    """Scores (B, K, G, Sq, Sk) plus a (1, H or 1, Sq, Sk) bias."""
    if bias is None:
        return s
    _, K, G, Sq, Sk = s.shape
    if bias.shape[1] == 1:
        return s + bias[:, None]
    return s + bias.reshape(1, K, G, Sq, Sk)


def _attention(cfg: DecoderConfig, q, k, v, rel_bias, positions, shard) -> jax.Array:
    """Softmax attention of q (B, S, H, D) over k, v (B, S, K, D), grouped when K < H."""
    B, S, H, D = q.shape
    K = k.shape[2]
    q = q.reshape(B, S, K, H // K, D) * jnp.asarray(1.0 / math.sqrt(D), q.dtype)
    if cfg.attention == "dot" or S <= cfg.attention_block:
        s = jnp.einsum("bqkgd,bskd->bkgqs", q, k, preferred_element_type=jnp.float32)
        s = _add_bias(s, _bias(cfg, rel_bias, positions, positions))
        p = jax.nn.softmax(s, axis=-1).astype(v.dtype)
        return jnp.einsum("bkgqs,bskd->bqkgd", p, v).reshape(B, S, H, D)
    if S % cfg.attention_block:
        raise InputError(
            f"sequence length {S} must be a multiple of attention_block {cfg.attention_block}."
        )
    rb = rel_bias if rel_bias is not None else jnp.zeros((), jnp.float32)
    out = _flash(cfg, shard, q, k, v, rb, positions)
    return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(B, S, H, D)


def _blocks(cfg, k, v, positions):
    B, S, K, D = k.shape
    n, blk = S // cfg.attention_block, cfg.attention_block
    kb = k.reshape(B, n, blk, K, D).swapaxes(0, 1)
    vb = v.reshape(B, n, blk, K, D).swapaxes(0, 1)
    return kb, vb, positions.reshape(n, blk)


def _flash_forward(cfg, shard, q, k, v, rb, positions):
    """Online-softmax pass over key/value blocks: (out (B, K, G, S, D), logsumexp)."""
    B, S, K, G, D = q.shape
    rel = rb if cfg.positions == "relative" else None

    def step(carry, xs):
        m, denom, acc = carry
        kj, vj, pj = xs
        s = jnp.einsum("bqkgd,bskd->bkgqs", q, kj, preferred_element_type=jnp.float32)
        s = _add_bias(s, _bias(cfg, rel, positions, pj))
        m_new = jnp.maximum(m, s.max(-1))
        p = jnp.exp(s - m_new[..., None])
        corr = jnp.exp(m - m_new)
        denom = denom * corr + p.sum(-1)
        pv = jnp.einsum("bkgqs,bskd->bkgqd", p.astype(vj.dtype), vj,
                        preferred_element_type=jnp.float32)  # fmt: skip
        return (shard(m_new), shard(denom), shard(acc * corr[..., None] + pv)), None

    init = (
        shard(jnp.full((B, K, G, S), -jnp.inf, jnp.float32)),
        shard(jnp.zeros((B, K, G, S), jnp.float32)),
        shard(jnp.zeros((B, K, G, S, D), jnp.float32)),
    )
    (m, denom, acc), _ = jax.lax.scan(step, init, _blocks(cfg, k, v, positions))
    return (acc / denom[..., None]).astype(q.dtype), m + jnp.log(denom)


# Flash attention is one kernel on the device (MaxText calls a Pallas kernel): its score tiles
# stay on chip. ``fused_kernel`` tells perfjax so; the jax.numpy code still runs everywhere.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _flash(cfg, shard, q, k, v, rb, positions):
    with fused_kernel("flash_attention"):
        return _flash_forward(cfg, shard, q, k, v, rb, positions)[0]


def _flash_fwd(cfg, shard, q, k, v, rb, positions):
    with fused_kernel("flash_attention"):
        out, lse = _flash_forward(cfg, shard, q, k, v, rb, positions)
    # Only the output and the log-sum-exp are kept for the backward pass (Dao et al., 2022).
    return out, (q, k, v, rb, positions, out, lse)


def _flash_bwd(cfg, shard, res, dout):
    """The backward pass recomputes each block's probabilities from the log-sum-exp."""
    with fused_kernel("flash_attention_bwd"):
        return _flash_backward(cfg, shard, res, dout)


def _flash_backward(cfg, shard, res, dout):
    q, k, v, rb, positions, out, lse = res
    rel = rb if cfg.positions == "relative" else None
    delta = jnp.sum(dout.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
    dq_layout = "bkgqs,bskd->bqkgd"

    def step(carry, xs):
        dq, drb = carry
        kj, vj, pj = xs
        s = jnp.einsum("bqkgd,bskd->bkgqs", q, kj, preferred_element_type=jnp.float32)
        if rel is not None:
            bias_j, bias_vjp = jax.vjp(lambda r: _bias(cfg, r, positions, pj), rel)
        else:
            bias_j, bias_vjp = _bias(cfg, None, positions, pj), None
        p = jnp.exp(_add_bias(s, bias_j) - lse[..., None])
        dv = jnp.einsum("bkgqs,bkgqd->bskd", p.astype(dout.dtype), dout,
                        preferred_element_type=jnp.float32)  # fmt: skip
        dp = jnp.einsum("bkgqd,bskd->bkgqs", dout, vj, preferred_element_type=jnp.float32)
        ds = p * (dp - delta[..., None])
        dq = dq + jnp.einsum(dq_layout, ds.astype(kj.dtype), kj, preferred_element_type=jnp.float32)
        dk = jnp.einsum("bkgqs,bqkgd->bskd", ds.astype(q.dtype), q,
                        preferred_element_type=jnp.float32)  # fmt: skip
        if bias_vjp is not None:
            # Per example, then summed: the sum over the (sharded) batch is of the small table.
            _, K, G, Sq, Sk = ds.shape
            per = jax.vmap(lambda d: bias_vjp(d.reshape(1, K * G, Sq, Sk))[0])(ds)
            drb = drb + per.sum(0)
        return (shard(dq), drb), (dk.astype(kj.dtype), dv.astype(vj.dtype))

    B, S, K, G, D = q.shape
    init = (shard(jnp.zeros((B, S, K, G, D), jnp.float32)), jnp.zeros_like(rb, jnp.float32))
    (dq, drb), (dk, dv) = jax.lax.scan(step, init, _blocks(cfg, k, v, positions))
    n, blk = dk.shape[0], dk.shape[2]
    dk = dk.swapaxes(0, 1).reshape(B, n * blk, K, D)
    dv = dv.swapaxes(0, 1).reshape(B, n * blk, K, D)
    return dq.astype(q.dtype), dk, dv, drb.astype(rb.dtype), None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _mlp(cfg: DecoderConfig, x: jax.Array, w: Mapping[str, jax.Array]) -> jax.Array:
    dt = x.dtype
    h = x @ w["w_in"].astype(dt)
    if cfg.mlp_activation == "relu":
        h = jax.nn.relu(h)
    elif cfg.mlp_activation == "gelu":
        h = jax.nn.gelu(h)
    else:
        h = jax.nn.silu(x @ w["w_gate"].astype(dt)) * h
    return h @ w["w_out"].astype(dt)


def _layer(cfg: DecoderConfig, x: jax.Array, w: Mapping[str, jax.Array], positions,
           shard) -> jax.Array:  # fmt: skip
    dt = x.dtype
    h = _norm(cfg, x, w["attn_norm"], w.get("attn_norm_bias"))
    q = jnp.einsum("bse,ehd->bshd", h, w["wq"].astype(dt))
    k = jnp.einsum("bse,ehd->bshd", h, w["wk"].astype(dt))
    v = jnp.einsum("bse,ehd->bshd", h, w["wv"].astype(dt))
    if cfg.positions == "rope":
        q, k = _rope(q, positions), _rope(k, positions)
    q, k, v = shard(q), shard(k), shard(v)
    a = _attention(cfg, q, k, v, w.get("rel_bias"), positions, shard)
    attn = jnp.einsum("bshd,hde->bse", a, w["wo"].astype(dt))
    if cfg.parallel_block:
        return x + attn + _mlp(cfg, h, w)
    x = x + attn
    return x + _mlp(cfg, _norm(cfg, x, w["mlp_norm"], w.get("mlp_norm_bias")), w)


_POLICIES: dict[str, Callable | None] = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def _no_constraint(x: jax.Array) -> jax.Array:
    return x


def batch_constraint(mesh: Any, batch_axes: Any) -> Callable[[jax.Array], jax.Array]:
    """A function pinning an activation's leading (batch) axis to ``batch_axes`` of ``mesh``,
    as MaxText's logical-axis constraints do: without them XLA's sharding propagation can leave
    loop-carried state replicated. An abstract mesh set while tracing (with the same axis
    names) takes the place of ``mesh``: ``predict_pod`` compiles on a smaller one."""
    P = jax.sharding.PartitionSpec

    def shard(x: jax.Array) -> jax.Array:
        spec = P(batch_axes, *([None] * (x.ndim - 1)))
        current = jax.sharding.get_abstract_mesh()
        use = mesh
        if not current.empty and tuple(current.axis_names) == tuple(mesh.axis_names):
            use = current
        return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(use, spec))

    return shard


def forward(
    cfg: DecoderConfig, params: Mapping[str, Any], tokens: jax.Array, shard: Callable | None = None
) -> jax.Array:
    """Logits (B, S, vocab) in the activation dtype for int tokens (B, S); ``shard`` constrains
    activations (:func:`batch_constraint`)."""
    shard = shard or _no_constraint
    dt = jnp.dtype(cfg.dtype)
    S = tokens.shape[1]
    x = params["embed"].astype(dt)[tokens]
    positions = jnp.arange(S, dtype=jnp.int32)
    if cfg.positions == "learned":
        x = x + params["pos_embed"][:S].astype(dt)[None]

    x = shard(x)

    def body(x, w):
        return shard(_layer(cfg, x, w, positions, shard)), None

    if cfg.remat != "none":
        body = jax.checkpoint(body, policy=_POLICIES[cfg.remat], prevent_cse=False)
    x, _ = jax.lax.scan(body, x, params["layers"])
    x = _norm(cfg, x, params["final_norm"], None)
    out = params["embed"].T if cfg.tied_embeddings else params["unembed"]
    return x @ out.astype(dt)


def loss_fn(
    cfg: DecoderConfig, params, tokens: jax.Array, targets: jax.Array, shard: Callable | None = None
) -> jax.Array:
    """Mean next-token cross-entropy, computed in float32."""
    logits = forward(cfg, params, tokens, shard).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def optimizer(cfg: DecoderConfig) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW, as MaxText's ``get_optimizer`` builds it."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.gradient_clipping),
        optax.adamw(cfg.learning_rate, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps,
                    weight_decay=cfg.weight_decay),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the model object
# --------------------------------------------------------------------------------------------


def _spec_for(name: str, shape: tuple[int, ...], fsdp: Any) -> jax.sharding.PartitionSpec:
    P = jax.sharding.PartitionSpec
    axis = _EMBED_AXIS.get(name)
    if axis is None or fsdp is None:
        return P()
    parts: list[Any] = [None] * len(shape)
    parts[axis] = fsdp
    return P(*parts)


@dataclasses.dataclass(frozen=True)
class Decoder:
    """A decoder configuration with its parameter shapes, FLOP counts and step functions."""

    config: DecoderConfig
    name: str = "decoder"

    @property
    def param_shapes(self) -> dict[str, Any]:
        return _param_shapes(self.config)

    @property
    def num_params(self) -> int:
        """Exact parameter count (the sum over the parameter tree)."""
        leaves = jax.tree_util.tree_leaves(self.param_shapes, is_leaf=_is_shape)
        return int(sum(math.prod(s) for s in leaves))

    def abstract_params(self, mesh: Any = None, fsdp: Any = "fsdp") -> dict[str, Any]:
        """Parameters as ``jax.ShapeDtypeStruct`` s (sharded over ``mesh`` when given: each
        weight's embedding axis over the ``fsdp`` mesh axes)."""
        dtype = jnp.dtype(self.config.weight_dtype)

        def leaf(path, shape):
            sharding = None
            if mesh is not None:
                spec = _spec_for(_path_name(path), shape, fsdp)
                sharding = jax.sharding.NamedSharding(mesh, spec)
            return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

        return jax.tree_util.tree_map_with_path(leaf, self.param_shapes, is_leaf=_is_shape)

    def model_flops_per_step(self, batch: int, seq_len: int | None = None) -> float:
        """Training FLOPs of one step as MaxText counts them (``calculate_training_tflops``,
        2023): 6 · parameters · tokens + 12 · heads · layers · head_dim · seq² · batch (no
        causal discount, rematerialised work not counted)."""
        cfg = self.config
        s = seq_len or cfg.max_target_length
        weights = 6.0 * self.num_params * batch * s
        attention = (
            12.0 * cfg.num_query_heads * cfg.num_decoder_layers * cfg.head_dim * s * s * batch
        )
        return weights + attention

    def training_step(
        self, batch: int, seq_len: int | None = None, mesh: Any = None,
        fsdp: Any = "fsdp", batch_axes: Any = None,
    ) -> tuple[Callable, tuple[Any, ...]]:  # fmt: skip
        """``(step, (params, opt_state, tokens, targets))``: forward, backward, clipping and
        AdamW, returning ``(params, opt_state, loss)``; abstract inputs. With ``mesh`` (a
        ``jax.sharding.Mesh`` or ``AbstractMesh``), weights and optimizer state are sharded
        over ``fsdp`` and the batch over ``batch_axes`` (default: every mesh axis)."""
        cfg = self.config
        _check(cfg)
        s = seq_len or cfg.max_target_length
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise InputError(f"batch must be a positive integer, got {batch!r}.")
        params = self.abstract_params(mesh, fsdp)
        tx = optimizer(cfg)
        opt_state = jax.eval_shape(tx.init, params)
        if mesh is not None:
            opt_state = _shard_like(opt_state, params, mesh)
            axes = tuple(mesh.axis_names) if batch_axes is None else batch_axes
            tok_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axes, None))
            shard = batch_constraint(mesh, axes)
        else:
            tok_sharding, shard = None, None
        tokens = jax.ShapeDtypeStruct((batch, s), jnp.int32, sharding=tok_sharding)

        def train_step(params, opt_state, tokens, targets):
            loss, grads = jax.value_and_grad(lambda p: loss_fn(cfg, p, tokens, targets, shard))(
                params
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        train_step.__name__ = f"{self.name}_train_step"
        return train_step, (params, opt_state, tokens, tokens)

    def inference(self, batch: int, seq_len: int | None = None) -> tuple[Callable, tuple[Any, ...]]:
        """``(forward, (params, tokens))`` with abstract inputs: logits for a batch of tokens."""
        cfg = self.config
        _check(cfg)
        s = seq_len or cfg.max_target_length
        tokens = jax.ShapeDtypeStruct((batch, s), jnp.int32)

        def fwd(params, tokens):
            return forward(cfg, params, tokens)

        fwd.__name__ = f"{self.name}_forward"
        return fwd, (self.abstract_params(), tokens)


def _shard_like(opt_state: Any, params: Any, mesh: Any) -> Any:
    """Optimizer-state leaves shaped like a parameter take its sharding; scalars replicate."""
    by_shape: dict[tuple, Any] = {}
    for p in jax.tree_util.tree_leaves(params):
        by_shape.setdefault(p.shape, p.sharding)
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def leaf(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=by_shape.get(x.shape, rep))

    return jax.tree_util.tree_map(leaf, opt_state)


def decoder(config: str | DecoderConfig = "tiny", **overrides: Any) -> Decoder:
    """A MaxText-style decoder by name (:data:`CONFIGS`) or config, with fields overridden.

    Example:
      >>> d = decoder("maxtext-128b")
      >>> d.config.num_decoder_layers, round(d.num_params / 1e9, 1)
      (64, 129.2)
      >>> decoder("tiny", mlp_activation="swiglu", num_kv_heads=2).config.kv_heads
      2
    """
    if isinstance(config, DecoderConfig):
        cfg, name = config, "decoder"
    elif isinstance(config, str) and config in CONFIGS:
        cfg, name = CONFIGS[config], config
    else:
        raise InputError(
            f"unknown decoder config {config!r}; expected a DecoderConfig or one of {sorted(CONFIGS)}."
        )
    fields = {f.name for f in dataclasses.fields(DecoderConfig)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise InputError(f"unknown DecoderConfig field(s) {bad}; fields are {sorted(fields)}.")
    cfg = cfg.replace(**overrides)
    _check(cfg)
    return Decoder(cfg, name=name)


__all__ = ["CONFIGS", "Decoder", "DecoderConfig", "decoder", "forward", "init", "loss_fn"]
