"""The model zoo's front end: ``names``, ``configs``, ``build`` -> :class:`ZooModel`, ``from_nnx``.

A :class:`ZooModel` turns an ``nnx`` network into pure functions whose parameters are explicit
inputs (``nnx.split`` / ``nnx.merge``), so the same function runs on this machine with real
weights (``perfjax.run``) or is traced from ``jax.ShapeDtypeStruct`` s alone (``perfjax.predict``,
``perfjax.analyze``) without allocating a single weight: abstract parameters come from
``nnx.eval_shape``.

Published sizes of the named configurations:

* ``mlp`` ``"mnist"``: 784 -> 128 -> 10 (ReLU, biases).
* ``resnet18`` ``"imagenet"``: He et al. (2016), 224x224x3, 1000 classes: 11,689,512 parameters
  with batch normalisation, 1.82 GMACs per image.
* ``mobilenet_v2`` ``"1.0"`` (and ``"0.35"``, ``"0.5"``, ``"0.75"``, ``"1.4"``): Sandler et al.
  (2018), 224x224x3: 3,504,872 parameters at width 1.0, 0.30 GMACs per image.
* ``bert`` ``"base"`` / ``"large"``: Devlin et al. (2019): 12 x 768 (12 heads, ff 3072) and
  24 x 1024 (16 heads, ff 4096), vocabulary 30522, 512 positions.
* ``gpt2`` ``"small"`` / ``"medium"`` / ``"large"`` / ``"xl"``: Radford et al. (2019): 12 x 768,
  24 x 1024, 36 x 1280, 48 x 1600, vocabulary 50257, 1024 positions (124M / 355M / 774M / 1.56B
  parameters); ``"6.7b"`` is the GPT-3 6.7B shape (Brown et al., 2020: 32 x 4096, 32 heads,
  2048 positions) in the same GPT-2 architecture, for 7B-class predictions.

Every model also has a ``"tiny"`` configuration for fast tests (ResNet-18's folds its batch
normalisation, MobileNetV2's keeps batch statistics, so the tests exercise both forms).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from perfjax._errors import InputError
from perfjax.models._nets import BERT, GPT2, MLP, MOBILENET_V2_STAGES, MobileNetV2, ResNet18

_DTYPES = (np.dtype(jnp.float32), np.dtype(jnp.bfloat16), np.dtype(jnp.float16))
_DTYPE_NAMES = "float32, bfloat16 or float16"
_NORMS = ("batch", "folded")
#: The share of tokens BERT's masked-LM objective predicts (Devlin et al., 2019).
_MLM_RATE = 0.15


# --------------------------------------------------------------------------------------------
# Per-model specs: named configs, example batches, forward and loss
# --------------------------------------------------------------------------------------------


def _ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy, computed in float32 whatever the logits' dtype."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def _classify_loss(model: nnx.Module, x: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(_ce(model(x), labels))


def _mlm_loss(model: BERT, ids: jax.Array, labels: jax.Array) -> jax.Array:
    # Masked-LM: positions with label < 0 are not predicted.
    weight = (labels >= 0).astype(jnp.float32)
    ce = _ce(model.mlm_logits(model(ids)), jnp.maximum(labels, 0))
    return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _lm_loss(model: GPT2, ids: jax.Array) -> jax.Array:
    # Next-token prediction: logits at position t predict token t + 1.
    return jnp.mean(_ce(model(ids)[:, :-1], ids[:, 1:]))


# Example batches: ``rng`` is a NumPy generator (real data, drawn on the host) or ``None``
# (``jax.ShapeDtypeStruct`` s, nothing allocated).


def _normal(rng: np.random.Generator | None, shape: tuple[int, ...], dtype: Any) -> Any:
    if rng is None:
        return jax.ShapeDtypeStruct(shape, dtype)
    return jnp.asarray(np.asarray(rng.standard_normal(shape, dtype=np.float32), dtype=dtype))


def _randint(rng: np.random.Generator | None, shape: tuple[int, ...], high: int) -> Any:
    if rng is None:
        return jax.ShapeDtypeStruct(shape, jnp.int32)
    return jnp.asarray(rng.integers(0, high, size=shape, dtype=np.int32))


def _image_batch(cfg, batch, dtype, rng, train):
    s = int(cfg["image_size"])
    images = _normal(rng, (batch, s, s, int(cfg["channels"])), dtype)
    return (images, _randint(rng, (batch,), int(cfg["classes"]))) if train else (images,)


def _mlp_batch(cfg, batch, dtype, rng, train):
    x = _normal(rng, (batch, int(cfg["sizes"][0])), dtype)
    return (x, _randint(rng, (batch,), int(cfg["sizes"][-1]))) if train else (x,)


def _bert_batch(cfg, batch, dtype, rng, train):
    shape, vocab = (batch, int(cfg["seq_len"])), int(cfg["vocab"])
    tokens = _randint(rng, shape, vocab)
    if not train:
        return (tokens,)
    if rng is None:
        return tokens, _randint(None, shape, vocab)
    # Mask ~15% of the positions (at least the first of each row) with the last vocabulary entry
    # as the [MASK] token; the labels are the original tokens there and -1 elsewhere.
    masked = rng.random(shape) < _MLM_RATE
    masked[:, 0] = True
    tokens = np.asarray(tokens)
    ids = np.where(masked, vocab - 1, tokens).astype(np.int32)
    return jnp.asarray(ids), jnp.asarray(np.where(masked, tokens, -1).astype(np.int32))


def _gpt2_batch(cfg, batch, dtype, rng, train):
    return (_randint(rng, (batch, int(cfg["seq_len"])), int(cfg["vocab"])),)


def _check_positive_int(name: str, key: str, v: Any, minimum: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise InputError(f"{name}: {key} must be an int >= {minimum}, got {v!r}.")


def _check_image(name: str, cfg: Mapping[str, Any]) -> None:
    # Both networks downsample by 32 (five stride-2 stages).
    _check_positive_int(name, "image_size", cfg["image_size"], 32)
    for key in ("classes", "channels"):
        _check_positive_int(name, key, cfg[key])
    if cfg["norm"] not in _NORMS:
        raise InputError(f"{name}: norm must be one of {list(_NORMS)}, got {cfg['norm']!r}.")


def _check_mlp(name: str, cfg: Mapping[str, Any]) -> None:
    sizes = cfg["sizes"]
    if not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise InputError(
            f"{name}: sizes must be a sequence of at least 2 layer widths such as (784, 128, 10), "
            f"got {sizes!r}."
        )
    for s in sizes:
        _check_positive_int(name, "each entry of sizes", s)


def _check_resnet(name: str, cfg: Mapping[str, Any]) -> None:
    _check_image(name, cfg)
    _check_positive_int(name, "width", cfg["width"])


def _check_mobilenet(name: str, cfg: Mapping[str, Any]) -> None:
    _check_image(name, cfg)
    w = cfg["width"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
        raise InputError(f"{name}: width (the width multiplier) must be > 0, got {w!r}.")
    _check_positive_int(name, "last_channels", cfg["last_channels"])
    try:
        stages = [tuple(int(v) for v in s) for s in cfg["stages"]]
        ok = len(stages) > 0 and all(len(s) == 4 and min(s) >= 1 for s in stages)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            f"{name}: stages must be a non-empty sequence of (expansion, channels, repeats, stride) "
            f"tuples of positive ints, got {cfg['stages']!r}."
        )


def _check_transformer(name: str, cfg: Mapping[str, Any]) -> None:
    for key in ("layers", "d_model", "heads", "d_ff", "vocab", "max_positions"):
        _check_positive_int(name, key, cfg[key])
    _check_positive_int(name, "seq_len", cfg["seq_len"], 2)
    if cfg["d_model"] % cfg["heads"]:
        raise InputError(
            f"{name}: d_model ({cfg['d_model']}) must be divisible by heads ({cfg['heads']})."
        )
    if cfg["seq_len"] > cfg["max_positions"]:
        raise InputError(
            f"{name}: seq_len ({cfg['seq_len']}) exceeds the {cfg['max_positions']} learned "
            "positions; use a shorter seq_len or a larger max_positions."
        )


def _tf(layers, d, heads, ff, vocab, positions, seq_len=128) -> dict[str, Any]:
    return dict(
        layers=layers,
        d_model=d,
        heads=heads,
        d_ff=ff,
        vocab=vocab,
        max_positions=positions,
        seq_len=seq_len,
        scan=True,
    )


def _mobilenet(width: float, **kw: Any) -> dict[str, Any]:
    cfg = dict(
        image_size=224,
        width=width,
        classes=1000,
        channels=3,
        norm="batch",
        stages=MOBILENET_V2_STAGES,
        last_channels=1280,
    )
    cfg.update(kw)
    return cfg


@dataclasses.dataclass(frozen=True)
class _Spec:
    cls: type[nnx.Module]
    configs: Mapping[str, Mapping[str, Any]]
    default: str
    batch: Callable[..., tuple[Any, ...]]  # (cfg, batch, dtype, rng | None, train) -> inputs
    loss: Callable[..., jax.Array]  # (module, *train_inputs) -> scalar
    check: Callable[[str, Mapping[str, Any]], None]
    output: str  # what inference returns, for docs and reprs


_MNIST = dict(sizes=(784, 128, 10))
_CLASSIFIER = dict(loss=_classify_loss, output="logits (batch, classes)")
_SPECS: dict[str, _Spec] = {
    "mlp": _Spec(
        MLP,
        configs={"mnist": _MNIST, "tiny": _MNIST},
        default="mnist",
        batch=_mlp_batch,
        check=_check_mlp,
        **_CLASSIFIER,
    ),
    "resnet18": _Spec(
        ResNet18,
        configs={
            "imagenet": dict(image_size=224, width=64, classes=1000, channels=3, norm="batch"),
            "tiny": dict(image_size=32, width=8, classes=10, channels=3, norm="folded"),
        },
        default="imagenet",
        batch=_image_batch,
        check=_check_resnet,
        **_CLASSIFIER,
    ),
    "mobilenet_v2": _Spec(
        MobileNetV2,
        configs={
            **{str(w): _mobilenet(w) for w in (0.35, 0.5, 0.75, 1.0, 1.4)},
            "tiny": _mobilenet(
                0.25,
                image_size=32,
                classes=10,
                last_channels=64,
                stages=((1, 16, 1, 1), (6, 24, 2, 2)),
            ),
        },
        default="1.0",
        batch=_image_batch,
        check=_check_mobilenet,
        **_CLASSIFIER,
    ),
    "bert": _Spec(
        BERT,
        configs={
            "tiny": _tf(2, 64, 4, 256, 512, 64, seq_len=16),
            "base": _tf(12, 768, 12, 3072, 30522, 512),
            "large": _tf(24, 1024, 16, 4096, 30522, 512),
        },
        default="base",
        batch=_bert_batch,
        loss=_mlm_loss,
        check=_check_transformer,
        output="hidden states (batch, seq_len, d_model)",
    ),
    "gpt2": _Spec(
        GPT2,
        configs={
            "tiny": _tf(2, 64, 4, 256, 512, 64, seq_len=16),
            "small": _tf(12, 768, 12, 3072, 50257, 1024),
            "medium": _tf(24, 1024, 16, 4096, 50257, 1024),
            "large": _tf(36, 1280, 20, 5120, 50257, 1024),
            "xl": _tf(48, 1600, 25, 6400, 50257, 1024),
            "6.7b": _tf(32, 4096, 32, 16384, 50257, 2048),
        },
        default="small",
        batch=_gpt2_batch,
        loss=_lm_loss,
        check=_check_transformer,
        output="logits (batch, seq_len, vocab)",
    ),
}


def names() -> tuple[str, ...]:
    """Names of the zoo's models.

    Example:
      >>> import perfjax.models
      >>> perfjax.models.names()
      ('mlp', 'resnet18', 'mobilenet_v2', 'bert', 'gpt2')
    """
    return tuple(_SPECS)


def _spec(name: str) -> _Spec:
    if not isinstance(name, str) or name not in _SPECS:
        close = difflib.get_close_matches(str(name).lower(), _SPECS, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown model {name!r}; expected one of {list(_SPECS)}.{hint}")
    return _SPECS[name]


def configs(name: str) -> dict[str, dict[str, Any]]:
    """The named configurations of model ``name`` (a copy) and their settings.

    Example:
      >>> import perfjax.models
      >>> sorted(perfjax.models.configs("bert"))
      ['base', 'large', 'tiny']
      >>> perfjax.models.configs("gpt2")["small"]["layers"]
      12
    """
    return {k: dict(v) for k, v in _spec(name).configs.items()}


def _resolve(name: str, spec: _Spec, config: str | None, overrides: Mapping[str, Any]) -> tuple:
    config = spec.default if config is None else config
    if config not in spec.configs:
        close = difflib.get_close_matches(str(config), spec.configs, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"{name}: unknown config {config!r}; expected one of {list(spec.configs)}.{hint}"
        )
    cfg = dict(spec.configs[config])
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise InputError(
            f"{name}: unknown setting(s) {unknown}; the settings of {name} are {sorted(cfg)}."
        )
    cfg.update(overrides)
    spec.check(name, cfg)
    if "sizes" in cfg:
        cfg["sizes"] = tuple(int(s) for s in cfg["sizes"])
    if "stages" in cfg:
        cfg["stages"] = tuple(tuple(int(v) for v in s) for s in cfg["stages"])
    return config, cfg


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise InputError(
            f"dtype must be {_DTYPE_NAMES} (the parameters' and activations' dtype), got {dtype!r}."
        )
    return dt


def _check_batch(batch: Any) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InputError(f"batch must be an int >= 1, got {batch!r}.")
    return int(batch)


def _key(seed: int) -> jax.Array:
    # XLA's RngBitGenerator: its eager ops (fold_in per weight) compile in ~0.1 s on CPU, where
    # threefry's take seconds.
    return jax.random.key(seed, impl="rbg")


def _num_params(tree: Any) -> int:
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def _abstract(tree: Any) -> Any:
    """Every leaf as a ``jax.ShapeDtypeStruct`` (Python numbers take JAX's default dtypes)."""

    def leaf(x: Any) -> jax.ShapeDtypeStruct:
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))

    return jax.tree_util.tree_map(leaf, tree)


# --------------------------------------------------------------------------------------------
# ZooModel
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class ZooModel:
    """A zoo network at a given batch size and dtype, as pure functions of explicit parameters.

    Built by :func:`build`. Parameters are nested dicts of arrays (``nnx.to_pure_dict``);
    :meth:`inference` and :meth:`training_step` return ``(fn, inputs)`` pairs that
    ``perfjax.run``, ``perfjax.predict`` and ``perfjax.analyze`` accept as they are.

    Attributes:
      name: the model's name (one of :func:`names`).
      config_name: the named configuration it started from (``"tiny"``, ``"base"`` ...).
      config: the resolved settings (read-only mapping), overrides included.
      batch: examples per call.
      dtype: dtype of the parameters and activations.
    """

    name: str
    config_name: str
    config: Mapping[str, Any]
    batch: int
    dtype: np.dtype
    _spec: _Spec = dataclasses.field(compare=False)
    _graphdef: Any = dataclasses.field(compare=False)
    _abstract_params: Any = dataclasses.field(compare=False)

    def __repr__(self) -> str:
        return (
            f"ZooModel({self.name!r}, config={self.config_name!r}, batch={self.batch}, "
            f"dtype={self.dtype.name}, params={self.num_params / 1e6:.2f}M)"
        )

    @property
    def num_params(self) -> int:
        """Number of parameters (scalars), counted from the abstract parameter shapes."""
        return _num_params(self._abstract_params)

    @property
    def output(self) -> str:
        """What :meth:`inference`'s function returns."""
        return self._spec.output

    def _make(self, rngs: nnx.Rngs) -> nnx.Module:
        return self._spec.cls(self.config, dtype=self.dtype, rngs=rngs)

    def module(self, seed: int = 0) -> nnx.Module:
        """The ``nnx`` module with freshly initialised (allocated) weights."""
        return self._make(nnx.Rngs(params=_key(seed)))

    def params(self, *, abstract: bool = True, seed: int = 0) -> dict[str, Any]:
        """The parameters: ``jax.ShapeDtypeStruct`` s (``abstract=True``) or initialised arrays.

        Example:
          >>> import perfjax.models
          >>> m = perfjax.models.build("mlp")
          >>> m.params()["layers"][0]["kernel"]
          ShapeDtypeStruct(shape=(784, 128), dtype=float32)
        """
        if abstract:  # fresh containers: the model's own tree cannot be changed through them
            return jax.tree_util.tree_map(lambda x: x, self._abstract_params)
        return nnx.to_pure_dict(nnx.split(self.module(seed), nnx.Param)[1])

    def apply(self, params: Any, *inputs: Any) -> Any:
        """Runs the forward pass: :meth:`inference`'s function (pure in ``params`` and ``inputs``)."""
        return nnx.merge(self._graphdef, params)(*inputs)

    def example_batch(
        self, *, abstract: bool = True, seed: int = 0, train: bool = False
    ) -> tuple[Any, ...]:
        """Random model inputs (``train=True``: with labels), or their ``ShapeDtypeStruct`` s.

        Inference: ``(x,)`` for mlp, ``(images,)`` (NHWC) for resnet18/mobilenet_v2, ``(ids,)``
        for bert/gpt2. Training adds integer ``labels`` (mlp, resnet18, mobilenet_v2: one class per
        example; bert: the token at each masked position, -1 elsewhere); gpt2 trains on ``(ids,)``.
        """
        rng = None if abstract else np.random.default_rng(seed + 1)
        return self._spec.batch(self.config, self.batch, self.dtype, rng, train)

    def inference(self, *, abstract: bool = True, seed: int = 0) -> tuple[Callable, tuple]:
        """The forward pass as ``(fn, inputs)`` with ``fn(params, *batch)``.

        Args:
          abstract: ``True`` returns ``jax.ShapeDtypeStruct`` inputs (nothing is allocated, for
            ``perfjax.predict`` / ``perfjax.analyze``); ``False`` returns initialised weights and a
            random batch, runnable with ``perfjax.run``.
          seed: seeds the weights and the batch when ``abstract=False``.

        Example:
          >>> import perfjax, perfjax.models
          >>> m = perfjax.models.build("gpt2", config="tiny", batch=2)
          >>> fn, inputs = m.inference()
          >>> perfjax.predict(fn, inputs, device="h100").time_s > 0
          True
        """
        graphdef, forward = self._graphdef, self._spec.cls.__call__

        def fn(params: Any, *batch: Any) -> Any:
            return forward(nnx.merge(graphdef, params), *batch)

        fn.__name__ = f"{self.name}_inference"
        params = self.params(abstract=abstract, seed=seed)
        return fn, (params, *self.example_batch(abstract=abstract, seed=seed))

    def training_step(
        self,
        *,
        abstract: bool = True,
        seed: int = 0,
        optimizer: optax.GradientTransformation | None = None,
    ) -> tuple[Callable, tuple]:
        """One training step as ``(fn, inputs)``: ``fn(params, opt_state, *batch)``.

        ``fn`` computes the loss (cross-entropy for classifiers, masked-LM cross-entropy for bert,
        next-token cross-entropy for gpt2; in float32), its gradient with ``jax.grad``, and one
        optimizer update, and returns ``(new_params, new_opt_state, loss)``. Feed the returned
        state back in to train.

        Args:
          abstract: ``True``: ``jax.ShapeDtypeStruct`` inputs (optimizer state from
            ``jax.eval_shape``); ``False``: initialised weights, optimizer state and a batch.
          seed: seeds the weights and the batch when ``abstract=False``.
          optimizer: an optax transformation; defaults to ``optax.adamw(1e-3)``.

        Example:
          >>> import jax, perfjax.models
          >>> m = perfjax.models.build("mlp", batch=4)
          >>> step, (params, opt_state, *batch) = m.training_step(abstract=False)
          >>> params, opt_state, loss = jax.jit(step)(params, opt_state, *batch)
          >>> bool(loss > 0)
          True
        """
        tx = optax.adamw(1e-3) if optimizer is None else optimizer
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                "optimizer must be an optax.GradientTransformation (with init and update), e.g. "
                f"optax.adamw(1e-3); got {type(tx).__name__}."
            )
        graphdef, loss = self._graphdef, self._spec.loss

        def step(params: Any, opt_state: Any, *batch: Any) -> tuple[Any, Any, jax.Array]:
            def loss_fn(p: Any) -> jax.Array:
                return loss(nnx.merge(graphdef, p), *batch)

            value, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value

        step.__name__ = f"{self.name}_training_step"
        params = self.params(abstract=abstract, seed=seed)
        opt_state = jax.eval_shape(tx.init, params) if abstract else tx.init(params)
        batch = self.example_batch(abstract=abstract, seed=seed, train=True)
        return step, (params, opt_state, *batch)


def build(
    name: str,
    *,
    batch: int = 1,
    dtype: Any = jnp.float32,
    config: str | None = None,
    **overrides: Any,
) -> ZooModel:
    """Builds a zoo model without allocating its weights.

    Args:
      name: one of :func:`names`: ``"mlp"``, ``"resnet18"``, ``"mobilenet_v2"``, ``"bert"``,
        ``"gpt2"``.
      batch: examples per call (>= 1).
      dtype: parameters' and activations' dtype: float32, bfloat16 or float16.
      config: a named configuration (see :func:`configs`); defaults to the published model
        (``"mnist"``, ``"imagenet"``, ``"1.0"``, ``"base"``, ``"small"``). Every model has
        ``"tiny"``.
      **overrides: settings that replace the configuration's, e.g. ``image_size=160``,
        ``width=0.5``, ``classes=10``, ``seq_len=512``, ``layers=6``, ``norm="folded"`` (conv
        nets: batch normalisation folded into the convolutions), ``scan=False`` (transformers:
        unroll the layers instead of one ``lax.scan``).

    Returns:
      A :class:`ZooModel`; its abstract parameters come from ``nnx.eval_shape``.

    Raises:
      ValueError: unknown name, configuration or setting; batch < 1; unsupported dtype; an
        inconsistent setting (e.g. ``d_model`` not divisible by ``heads``).

    Example:
      >>> import jax.numpy as jnp, perfjax, perfjax.models
      >>> m = perfjax.models.build("resnet18", batch=8, dtype=jnp.bfloat16)
      >>> m.num_params
      11689512
      >>> fn, (params, images) = m.inference()  # ShapeDtypeStructs: nothing allocated
      >>> images
      ShapeDtypeStruct(shape=(8, 224, 224, 3), dtype=bfloat16)
    """
    spec = _spec(name)
    batch = _check_batch(batch)
    dt = _check_dtype(dtype)
    config_name, cfg = _resolve(name, spec, config, overrides)
    cfg = types.MappingProxyType(cfg)
    module = nnx.eval_shape(lambda: spec.cls(cfg, dtype=dt, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    if jax.tree_util.tree_leaves(rest):  # every zoo network holds only nnx.Param
        raise AssertionError(f"{name}: unexpected non-parameter state {rest}")
    params = _abstract(nnx.to_pure_dict(params))
    return ZooModel(name, config_name, cfg, batch, dt, spec, graphdef, params)


# --------------------------------------------------------------------------------------------
# Any nnx module
# --------------------------------------------------------------------------------------------


def from_nnx(
    module: nnx.Module, example_inputs: Sequence[Any], *, abstract: bool = True
) -> tuple[Callable, tuple]:
    """Splits any ``nnx`` module into ``fn(params, *inputs)`` for ``perfjax.predict`` / ``run``.

    The module needs no Flash ops: ``perfjax.predict`` costs whatever StableHLO it lowers to.
    ``params`` holds the module's ``nnx.Param`` variables as a nested dict; any other variables
    (batch statistics, RNG state) are closed over as constants, so they must be concrete, and
    updates the call makes to them (a training-mode ``nnx.BatchNorm``) are discarded.

    Args:
      module: an ``nnx.Module``, concrete or built under ``nnx.eval_shape`` (then only
        ``abstract=True`` works).
      example_inputs: the call's positional arguments: arrays or ``jax.ShapeDtypeStruct`` s.
      abstract: ``True`` returns ``jax.ShapeDtypeStruct`` parameters and inputs; ``False`` the
        module's parameter arrays and ``example_inputs`` as given.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax, perfjax.models
      >>> from flax import nnx
      >>> layer = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
      >>> fn, inputs = perfjax.models.from_nnx(layer, (jax.ShapeDtypeStruct((2, 8), jnp.float32),))
      >>> perfjax.analyze(fn, inputs).flops  # 2*2*8*4 for the dot, 2*4 for the bias
      136.0
    """
    if not isinstance(module, nnx.Module):
        raise TypeError(f"from_nnx expects an nnx.Module, got {type(module).__name__}.")
    if not isinstance(example_inputs, (tuple, list)):
        raise TypeError(
            "example_inputs must be a tuple of the module's positional arguments, got "
            f"{type(example_inputs).__name__}; write (x,) for one argument."
        )
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    is_sds = lambda x: isinstance(x, jax.ShapeDtypeStruct)
    if any(is_sds(x) for x in jax.tree_util.tree_leaves(rest)):
        raise InputError(
            "from_nnx: the module's non-parameter variables are abstract (built under "
            "nnx.eval_shape); they are closed over as constants, so build the module concretely."
        )
    # Plain arrays, so that merging makes fresh variables inside each trace (a training-mode
    # BatchNorm may then update its statistics there; the update is discarded).
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    if abstract:
        params, example_inputs = _abstract(params), _abstract(tuple(example_inputs))
    elif any(is_sds(x) for x in jax.tree_util.tree_leaves(params)):
        raise InputError(
            "from_nnx: the module's parameters are abstract (built under nnx.eval_shape); use "
            "abstract=True, or build the module concretely to run it."
        )

    def fn(params: Any, *inputs: Any) -> Any:
        return nnx.merge(graphdef, params, rest)(*inputs)

    fn.__name__ = type(module).__name__
    return fn, (params, *example_inputs)
