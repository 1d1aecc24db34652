"""Real models as a test of op coverage: every transformers Flax model, built offline from a tiny config.

    python benchmarks/hf_models.py                 # -> benchmarks/results/hf_models.json
    python benchmarks/hf_models.py --only bert gpt2 --devices h100 host

For each Flax model class in transformers 4.x (transformers 5 removed them) the model is built from a
small config (2 layers, hidden 32, 2 heads, vocabulary 128, 32x32 images, short audio) with abstract
parameters (``_do_init=False`` and ``jax.eval_shape`` of ``init_weights``: nothing is allocated), and
wrapped as ``fn(params, *inputs)``. Then:

* ``perfjax.analyze(fn, inputs).flops`` against XLA's own count of the unoptimized module
  (``jax.jit(fn).lower(*inputs).cost_analysis()["flops"]``);
* ``perfjax.predict(fn, inputs, device=d)`` for a GPU, a TPU and a CPU (finite, positive time);
* for some, a training step (mean of the output as loss, ``jax.grad`` w.r.t. the parameters, an optax
  AdamW update), costed the same way.

A few models written here with ``flax.linen`` and ``flax.nnx`` (no Flash ops) get the same checks.
``tests/test_hf_models.py`` imports the builders from this file.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import pathlib
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

S = jax.ShapeDtypeStruct
OUT = pathlib.Path(__file__).with_name("results") / "hf_models.json"
DEVICES = ("h100", "tpu-v5e", "host")
BATCH, SEQ, IMAGE = 2, 16, 32

# Shared small sizes.
_ENC = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)
_S2S = dict(
    vocab_size=128,
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    max_position_embeddings=64,
)
_T5 = dict(
    vocab_size=128, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2
)
_VIS = dict(
    image_size=IMAGE,
    patch_size=8,
    num_channels=3,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
)
_DEC = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=64,
)

TEXT = (("input_ids", (BATCH, SEQ), jnp.int32),)
SEQ2SEQ = (("input_ids", (BATCH, SEQ), jnp.int32), ("decoder_input_ids", (BATCH, 8), jnp.int32))
PIXELS = (("pixel_values", (BATCH, 3, IMAGE, IMAGE), jnp.float32),)


@dataclasses.dataclass(frozen=True)
class HFCase:
    """One transformers Flax model: class name, a config factory, and its inputs."""

    name: str
    model_class: str
    config: Callable[[Any], Any]  # transformers module -> config
    inputs: tuple[tuple[str, tuple[int, ...], Any], ...]  # (keyword, shape, dtype)
    input_shape: Any = None  # passed to the constructor when the default would not fit


def _c(cls_name: str, **kw):
    return lambda T: getattr(T, cls_name)(**kw)


def _cases() -> list[HFCase]:
    whisper_in = (
        ("input_features", (BATCH, 16, 64), jnp.float32),
        ("decoder_input_ids", (BATCH, 8), jnp.int32),
    )
    audio = (("input_values", (BATCH, 1600), jnp.float32),)
    w2v = dict(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
    )
    clip_text = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    clip_vis = dict(
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )

    def clip(T):
        return T.CLIPConfig(text_config=clip_text, vision_config=clip_vis, projection_dim=16)

    def enc_dec(T):
        enc = T.BertConfig(**_ENC)
        dec = T.GPT2Config(
            vocab_size=128, n_embd=32, n_layer=2, n_head=2, n_positions=64, add_cross_attention=True
        )
        return T.EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)

    def vis_enc_dec(T):
        enc = T.ViTConfig(**_VIS)
        dec = T.GPT2Config(
            vocab_size=128, n_embd=32, n_layer=2, n_head=2, n_positions=64, add_cross_attention=True
        )
        return T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)

    def speech_enc_dec(T):
        enc = T.Wav2Vec2Config(**w2v)
        # GPT-2's cross-attention slices its causal-mask buffer by the encoder length (159 here).
        dec = T.GPT2Config(
            vocab_size=128,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=256,
            add_cross_attention=True,
        )
        return T.SpeechEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)

    def dual(T):
        return T.VisionTextDualEncoderConfig.from_vision_text_configs(
            T.ViTConfig(**_VIS), T.BertConfig(**_ENC), projection_dim=16
        )

    return [
        # Encoders.
        HFCase("bert", "FlaxBertModel", _c("BertConfig", **_ENC), TEXT),
        HFCase("roberta", "FlaxRobertaModel", _c("RobertaConfig", **_ENC), TEXT),
        HFCase(
            "roberta-prelayernorm",
            "FlaxRobertaPreLayerNormModel",
            _c("RobertaPreLayerNormConfig", **_ENC),
            TEXT,
        ),
        HFCase("xlm-roberta", "FlaxXLMRobertaModel", _c("XLMRobertaConfig", **_ENC), TEXT),
        HFCase(
            "distilbert",
            "FlaxDistilBertModel",
            _c(
                "DistilBertConfig",
                vocab_size=128,
                dim=32,
                n_layers=2,
                n_heads=2,
                hidden_dim=64,
                max_position_embeddings=64,
            ),
            TEXT,
        ),
        HFCase("albert", "FlaxAlbertModel", _c("AlbertConfig", embedding_size=16, **_ENC), TEXT),
        HFCase("electra", "FlaxElectraModel", _c("ElectraConfig", embedding_size=16, **_ENC), TEXT),
        HFCase(
            "roformer", "FlaxRoFormerModel", _c("RoFormerConfig", embedding_size=32, **_ENC), TEXT
        ),
        HFCase(
            "bigbird",
            "FlaxBigBirdModel",
            _c(
                "BigBirdConfig",
                attention_type="block_sparse",
                block_size=4,
                num_random_blocks=2,
                **{**_ENC, "max_position_embeddings": 128},
            ),
            (("input_ids", (BATCH, 64), jnp.int32),),
        ),
        # Encoder-decoders.
        HFCase("bart", "FlaxBartModel", _c("BartConfig", **_S2S), SEQ2SEQ),
        HFCase("mbart", "FlaxMBartModel", _c("MBartConfig", **_S2S), SEQ2SEQ),
        HFCase("pegasus", "FlaxPegasusModel", _c("PegasusConfig", **_S2S), SEQ2SEQ),
        HFCase("marian", "FlaxMarianModel", _c("MarianConfig", **_S2S), SEQ2SEQ),
        HFCase("marian-mt", "FlaxMarianMTModel", _c("MarianConfig", **_S2S), SEQ2SEQ),
        HFCase("blenderbot", "FlaxBlenderbotModel", _c("BlenderbotConfig", **_S2S), SEQ2SEQ),
        HFCase(
            "blenderbot-small",
            "FlaxBlenderbotSmallModel",
            _c("BlenderbotSmallConfig", **_S2S),
            SEQ2SEQ,
        ),
        HFCase("t5", "FlaxT5Model", _c("T5Config", **_T5), SEQ2SEQ),
        HFCase("t5-encoder", "FlaxT5EncoderModel", _c("T5Config", **_T5), TEXT),
        HFCase("mt5", "FlaxMT5Model", _c("MT5Config", **_T5), SEQ2SEQ),
        HFCase("mt5-encoder", "FlaxMT5EncoderModel", _c("MT5Config", **_T5), TEXT),
        HFCase(
            "longt5-local",
            "FlaxLongT5Model",
            _c("LongT5Config", encoder_attention_type="local", local_radius=4, **_T5),
            SEQ2SEQ,
        ),
        HFCase(
            "longt5-tglobal",
            "FlaxLongT5Model",
            _c(
                "LongT5Config",
                encoder_attention_type="transient-global",
                local_radius=4,
                global_block_size=4,
                **_T5,
            ),
            SEQ2SEQ,
        ),
        HFCase("encoder-decoder", "FlaxEncoderDecoderModel", enc_dec, SEQ2SEQ),
        # Decoders.
        HFCase(
            "gpt2",
            "FlaxGPT2Model",
            _c("GPT2Config", vocab_size=128, n_embd=32, n_layer=2, n_head=2, n_positions=64),
            TEXT,
        ),
        HFCase(
            "gpt2-lm-head",
            "FlaxGPT2LMHeadModel",
            _c("GPT2Config", vocab_size=128, n_embd=32, n_layer=2, n_head=2, n_positions=64),
            TEXT,
        ),
        HFCase(
            "gpt-neo",
            "FlaxGPTNeoModel",
            _c(
                "GPTNeoConfig",
                vocab_size=128,
                hidden_size=32,
                num_layers=2,
                num_heads=2,
                attention_types=[[["global", "local"], 1]],
                window_size=8,
                max_position_embeddings=64,
            ),
            TEXT,
        ),
        HFCase(
            "gpt-j",
            "FlaxGPTJModel",
            _c(
                "GPTJConfig",
                vocab_size=128,
                n_embd=32,
                n_layer=2,
                n_head=2,
                rotary_dim=8,
                n_positions=64,
            ),
            TEXT,
        ),
        HFCase(
            "opt",
            "FlaxOPTModel",
            _c(
                "OPTConfig",
                vocab_size=128,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                ffn_dim=64,
                max_position_embeddings=64,
                word_embed_proj_dim=32,
            ),
            TEXT,
        ),
        HFCase(
            "bloom",
            "FlaxBloomModel",
            _c("BloomConfig", vocab_size=128, hidden_size=32, n_layer=2, n_head=2),
            TEXT,
        ),
        HFCase("llama", "FlaxLlamaModel", _c("LlamaConfig", num_key_value_heads=1, **_DEC), TEXT),
        HFCase(
            "mistral",
            "FlaxMistralModel",
            _c("MistralConfig", num_key_value_heads=1, sliding_window=8, **_DEC),
            TEXT,
        ),
        HFCase(
            "gemma",
            "FlaxGemmaModel",
            _c("GemmaConfig", num_key_value_heads=1, head_dim=16, **_DEC),
            TEXT,
        ),
        HFCase(
            "xglm",
            "FlaxXGLMModel",
            _c(
                "XGLMConfig",
                vocab_size=128,
                d_model=32,
                num_layers=2,
                attention_heads=2,
                ffn_dim=64,
                max_position_embeddings=64,
            ),
            TEXT,
        ),
        # Vision.
        HFCase("vit", "FlaxViTModel", _c("ViTConfig", **_VIS), PIXELS),
        HFCase(
            "beit",
            "FlaxBeitModel",
            _c("BeitConfig", vocab_size=128, use_relative_position_bias=True, **_VIS),
            PIXELS,
        ),
        HFCase(
            "dinov2",
            "FlaxDinov2Model",
            _c(
                "Dinov2Config",
                mlp_ratio=2,
                **{k: v for k, v in _VIS.items() if k != "intermediate_size"},
            ),
            PIXELS,
        ),
        HFCase(
            "resnet",
            "FlaxResNetModel",
            _c(
                "ResNetConfig",
                embedding_size=16,
                hidden_sizes=[16, 32],
                depths=[1, 1],
                layer_type="basic",
            ),
            PIXELS,
        ),
        HFCase(
            "resnet-bottleneck",
            "FlaxResNetModel",
            _c(
                "ResNetConfig",
                embedding_size=16,
                hidden_sizes=[32, 64],
                depths=[1, 1],
                layer_type="bottleneck",
            ),
            PIXELS,
        ),
        HFCase(
            "regnet",
            "FlaxRegNetModel",
            _c(
                "RegNetConfig",
                embedding_size=16,
                hidden_sizes=[16, 32],
                depths=[1, 1],
                groups_width=8,
            ),
            PIXELS,
        ),
        HFCase(
            "vision-encoder-decoder",
            "FlaxVisionEncoderDecoderModel",
            vis_enc_dec,
            (*PIXELS, SEQ2SEQ[1]),
        ),
        # Multimodal.
        HFCase("clip", "FlaxCLIPModel", clip, (*TEXT, *PIXELS)),
        HFCase("clip-text", "FlaxCLIPTextModel", _c("CLIPTextConfig", **clip_text), TEXT),
        HFCase("clip-vision", "FlaxCLIPVisionModel", _c("CLIPVisionConfig", **clip_vis), PIXELS),
        HFCase(
            "vision-text-dual-encoder", "FlaxVisionTextDualEncoderModel", dual, (*TEXT, *PIXELS)
        ),
        # Audio.
        HFCase(
            "whisper",
            "FlaxWhisperModel",
            _c(
                "WhisperConfig",
                num_mel_bins=16,
                max_source_positions=32,
                max_target_positions=32,
                **{**_S2S, "max_position_embeddings": 32},
            ),
            whisper_in,
            input_shape=(1, 16, 64),
        ),
        HFCase("wav2vec2", "FlaxWav2Vec2Model", _c("Wav2Vec2Config", **w2v), audio),
        HFCase(
            "speech-encoder-decoder",
            "FlaxSpeechEncoderDecoderModel",
            speech_enc_dec,
            (("inputs", (BATCH, 1600), jnp.float32), SEQ2SEQ[1]),
        ),
    ]


_NEEDS_INIT = {
    "FlaxEncoderDecoderModel",
    "FlaxVisionEncoderDecoderModel",
    "FlaxSpeechEncoderDecoderModel",
    "FlaxVisionTextDualEncoderModel",
}

CASES: dict[str, HFCase] = {c.name: c for c in _cases()}

# Which are cheap enough for the default test run and together cover the architectures the issue names.
DEFAULT = ("bert", "gpt2", "vit", "t5", "whisper", "bart", "llama", "resnet", "clip", "wav2vec2")
TRAINING = ("bert", "gpt2", "vit", "t5")


def transformers_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import transformers

        transformers.logging.set_verbosity_error()
    return transformers


def flax_classes() -> list[str]:
    """Every ``Flax*Model`` class transformers exports (the population ``CASES`` draws from)."""
    T = transformers_module()
    return sorted(
        n
        for n in dir(T)
        if n.startswith("Flax")
        and n.endswith("Model")
        and "PreTrained" not in n
        and n != "FlaxAutoModel"
    )


class _JnpWithOldClip:
    """``jax.numpy`` as transformers' Flax T5/LongT5 expect it: ``jnp.clip(x, a_max=...)`` was removed
    in jax 0.8 (now ``max=``). Installed only in those two transformers modules, never globally."""

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def clip(x, a_min=None, a_max=None, **kw):
        return jnp.clip(x, kw.pop("min", a_min), kw.pop("max", a_max), **kw)


def _jax_compat(T) -> None:
    import importlib

    for mod in ("t5.modeling_flax_t5", "longt5.modeling_flax_longt5"):
        m = importlib.import_module(f"transformers.models.{mod}")
        if not isinstance(m.jnp, _JnpWithOldClip):
            m.jnp = _JnpWithOldClip()


def _abstract(tree):
    return jax.tree.map(lambda a: S(a.shape, a.dtype), tree)


@functools.cache
def build(name: str):
    """``(fn, inputs)``: ``fn(params, *xs)`` runs the model; ``inputs`` are all abstract."""
    case = CASES[name]
    T = transformers_module()
    _jax_compat(T)
    config = case.config(T)
    cls = getattr(T, case.model_class)
    kw = {} if case.input_shape is None else {"input_shape": case.input_shape}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.model_class in _NEEDS_INIT:
            # Composite models refuse _do_init=False; at these sizes real weights are a few KiB.
            model = cls(config, _do_init=True, **kw)
            params = _abstract(model.params)
        else:
            model = cls(config, _do_init=False, **kw)
            init = functools.partial(model.init_weights, input_shape=model.input_shape)
            params = jax.eval_shape(init, jax.random.PRNGKey(0))
    names = [k for k, _, _ in case.inputs]
    import inspect

    mode = (
        {"train": False}
        if "train" in inspect.signature(cls.__call__).parameters
        else {"deterministic": True}
    )

    def fn(params, *xs):
        out = model(**dict(zip(names, xs)), params=params, return_dict=False, **mode)
        return tuple(o for o in jax.tree.leaves(out))

    fn.__name__ = f"hf_{name.replace('-', '_')}"
    specs = tuple(S(shape, dtype) for _, shape, dtype in case.inputs)
    return fn, (params, *specs)


def training_step(fn, inputs):
    """A training step over ``fn(params, *xs)``: loss = mean of its first float output,
    ``jax.grad`` w.r.t. the parameters, one optax AdamW update. Returns ``(step, inputs)``."""
    import optax

    params, *xs = inputs
    opt = optax.adamw(1e-3)
    opt_state = jax.eval_shape(opt.init, params)

    def loss(p, *xs):
        outs = [o for o in jax.tree.leaves(fn(p, *xs)) if jnp.issubdtype(o.dtype, jnp.floating)]
        return jnp.mean(outs[0])

    def step(params, opt_state, *xs):
        grads = jax.grad(loss)(params, *xs)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step.__name__ = f"train_{getattr(fn, '__name__', 'model')}"
    return step, (params, opt_state, *xs)


# ---- models written here with flax.linen and flax.nnx (no Flash ops) ---------------------------


def _linen_cnn():
    import flax.linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(16, (3, 3))(x)
            x = nn.BatchNorm(use_running_average=True)(x)
            x = nn.relu(x)
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
            x = nn.Conv(32, (3, 3), strides=(2, 2))(x)
            x = nn.gelu(x)
            x = x.reshape(x.shape[0], -1)
            return nn.log_softmax(nn.Dense(10)(x))

    m = CNN()
    x = S((BATCH, IMAGE, IMAGE, 3), jnp.float32)
    variables = jax.eval_shape(m.init, jax.random.PRNGKey(0), x)
    return (lambda v, x: m.apply(v, x)), (variables, x)


def _linen_transformer():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm()(x)
            mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
            x = x + nn.MultiHeadDotProductAttention(num_heads=2)(h, h, mask=mask)
            h = nn.LayerNorm()(x)
            return x + nn.Dense(32)(nn.gelu(nn.Dense(128)(h), approximate=False))

    class LM(nn.Module):
        @nn.compact
        def __call__(self, ids):
            emb = nn.Embed(128, 32)
            x = emb(ids)
            for _ in range(2):
                x = Block()(x)
            return emb.attend(nn.RMSNorm()(x))

    m = LM()
    ids = S((BATCH, SEQ), jnp.int32)
    variables = jax.eval_shape(m.init, jax.random.PRNGKey(0), ids)
    return (lambda v, ids: m.apply(v, ids)), (variables, ids)


def _nnx_model(kind: str):
    from flax import nnx

    if kind == "mlp":

        class Model(nnx.Module):
            def __init__(self, rngs):
                self.l1 = nnx.Linear(64, 128, rngs=rngs)
                self.norm = nnx.LayerNorm(128, rngs=rngs)
                self.l2 = nnx.Linear(128, 10, rngs=rngs)

            def __call__(self, x):
                return nnx.softmax(self.l2(nnx.silu(self.norm(self.l1(x)))))

        x = S((BATCH * 8, 64), jnp.float32)
    else:

        class Model(nnx.Module):
            def __init__(self, rngs):
                self.conv = nnx.Conv(3, 16, (3, 3), rngs=rngs)
                self.attn = nnx.MultiHeadAttention(
                    num_heads=2, in_features=16, qkv_features=16, decode=False, rngs=rngs
                )
                self.out = nnx.Linear(16, 10, rngs=rngs)

            def __call__(self, x):
                h = nnx.relu(self.conv(x))
                h = h.reshape(h.shape[0], -1, h.shape[-1])[:, ::16]  # 64 tokens
                h = self.attn(h)
                return self.out(jnp.mean(h, axis=1))

        x = S((BATCH, IMAGE, IMAGE, 3), jnp.float32)
    abstract = nnx.eval_shape(lambda: Model(nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    state = _abstract(state)

    def fn(state, x):
        return nnx.merge(graphdef, state)(x)

    return fn, (state, x)


LOCAL: dict[str, Callable[[], tuple]] = {
    "linen-cnn": _linen_cnn,
    "linen-transformer": _linen_transformer,
    "nnx-mlp": functools.partial(_nnx_model, "mlp"),
    "nnx-conv-attention": functools.partial(_nnx_model, "conv-attention"),
}


def xla_flops(fn, inputs, compiled: bool = False) -> float:
    """XLA's own count of the unoptimized module (the ops perfjax walks), or after XLA's CPU
    optimizations (constants folded, but also fusion's recomputation) with ``compiled=True``."""
    lowered = jax.jit(fn).lower(*inputs)
    cost = lowered.compile().cost_analysis() if compiled else lowered.cost_analysis()
    return float((cost or {}).get("flops", 0.0))


def _err(e: BaseException) -> dict:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    where = traceback.extract_tb(e.__traceback__)
    return dict(
        type=type(e).__name__,
        message=msg[:400],
        at=f"{where[-1].filename}:{where[-1].lineno}" if where else "",
    )


def check(name: str, devices=DEVICES, train: bool = False) -> dict:
    """Build, count and predict one model; every stage's error is recorded, none raised."""
    import perfjax

    row: dict = dict(model=name, built=False, devices={}, errors={})
    t0 = time.perf_counter()
    try:
        fn, inputs = LOCAL[name]() if name in LOCAL else build(name)
        row["built"] = True
    except Exception as e:
        row["errors"]["build"] = _err(e)
        row["seconds"] = time.perf_counter() - t0
        return row
    variants = [("inference", fn, inputs)]
    if train:
        try:
            variants.append(("training", *training_step(fn, inputs)))
        except Exception as e:
            row["errors"]["training_build"] = _err(e)
    for kind, f, ins in variants:
        prefix = "" if kind == "inference" else "train_"
        try:
            xla = xla_flops(f, ins)
            row[prefix + "xla_flops"] = xla
        except Exception as e:
            row["errors"][prefix + "xla"] = _err(e)
            xla = None
        try:
            g = perfjax.analyze(f, ins)
            row[prefix + "flops"] = g.flops
            if xla:
                row[prefix + "flops_ratio"] = g.flops / xla
                row[prefix + "flops_match"] = abs(g.flops / xla - 1) <= 0.01
                if not row[prefix + "flops_match"] and g.flops < xla:
                    # perfjax folds ops on compile-time constants, as XLA's optimizer does.
                    compiled = xla_flops(f, ins, compiled=True)
                    row[prefix + "xla_compiled_flops"] = compiled
                    row[prefix + "flops_match"] = abs(g.flops / compiled - 1) <= 0.01
        except Exception as e:
            row["errors"][prefix + "analyze"] = _err(e)
        for d in devices if kind == "inference" else devices[:1]:
            try:
                p = perfjax.predict(f, ins, device=d)
                ok = math.isfinite(p.time_s) and p.time_s > 0
                row["devices"][prefix + d] = dict(time_s=p.time_s, ok=ok, bottleneck=p.bottleneck)
            except Exception as e:
                row["devices"][prefix + d] = dict(ok=False)
                row["errors"][f"{prefix}predict:{d}"] = _err(e)
    row["seconds"] = time.perf_counter() - t0
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    ap.add_argument("--devices", nargs="*", default=list(DEVICES))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from rich.progress import Progress

    names = args.only or [*CASES, *LOCAL]
    classes = flax_classes()
    covered = sorted({CASES[n].model_class for n in CASES})
    rows = []
    with Progress() as bar:
        task = bar.add_task("models", total=len(names))
        for n in names:
            bar.update(task, description=n)
            rows.append(check(n, tuple(args.devices), train=n in TRAINING or n in LOCAL))
            bar.advance(task)
    ratio_ok = [r for r in rows if r.get("flops_match")]
    predicts_all = [
        r
        for r in rows
        if r["built"] and all(r["devices"].get(d, {}).get("ok") for d in args.devices)
    ]
    summary = dict(
        transformers_flax_model_classes=len(classes),
        classes_covered=len(covered),
        classes_not_covered=[c for c in classes if c not in covered],
        models_tried=len(rows),
        built=sum(r["built"] for r in rows),
        # within 1% of XLA's unoptimized count, or (fewer, constants folded) of its compiled count
        flops_within_1pct_of_xla=len(ratio_ok),
        training_steps=sum("train_flops" in r for r in rows),
        training_flops_within_1pct_of_xla=sum(bool(r.get("train_flops_match")) for r in rows),
        flops_mismatches={
            r["model"] + (" (training)" if k.startswith("train_") else ""): r.get(
                k.replace("match", "ratio")
            )
            for r in rows
            for k in ("flops_match", "train_flops_match")
            if k in r and not r[k]
        },
        predict_on_every_device=len(predicts_all),
        predicts_per_device={
            d: sum(r["devices"].get(d, {}).get("ok", False) for r in rows) for d in args.devices
        },
        errors_by_stage_and_type={},
    )
    for r in rows:
        for stage, e in r["errors"].items():
            key = f"{stage.split(':')[0]} {e['type']}: {e['message'][:80]}"
            summary["errors_by_stage_and_type"][key] = (
                summary["errors_by_stage_and_type"].get(key, 0) + 1
            )
    import perfjax

    out = dict(
        versions=dict(
            jax=jax.__version__,
            transformers=transformers_module().__version__,
            perfjax=perfjax.__version__,
        ),
        devices=list(args.devices),
        summary=summary,
        models=rows,
    )
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(
        f"{summary['predict_on_every_device']} of {summary['models_tried']} models predict on "
        f"{', '.join(args.devices)}; {summary['flops_within_1pct_of_xla']} have FLOPs within 1% of XLA "
        f"({summary['classes_covered']} of {summary['transformers_flax_model_classes']} Flax model classes)"
    )
    for k, v in sorted(summary["errors_by_stage_and_type"].items(), key=lambda kv: -kv[1]):
        print(f"  {v:3d} x {k}")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
