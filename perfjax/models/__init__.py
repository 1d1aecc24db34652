"""A model zoo in Flax (nnx) built on Flash ops, as pure functions for run / predict / analyze.

``build(name, batch=..., dtype=..., config=..., **overrides)`` returns a :class:`ZooModel`
whose :meth:`~ZooModel.inference` and :meth:`~ZooModel.training_step` give ``(fn, inputs)``
pairs; with ``abstract=True`` (the default) the inputs are ``jax.ShapeDtypeStruct`` s, so
BERT-large or GPT-2-large are predicted without allocating a weight. :func:`from_nnx` does the
same for any ``nnx.Module``.

Example:
  >>> import perfjax, perfjax.models
  >>> m = perfjax.models.build("bert", config="large", batch=8)
  >>> round(m.num_params / 1e6)
  335
  >>> fn, inputs = m.inference()
  >>> perfjax.predict(fn, inputs, device="tpu-v4").time_s > 0
  True
"""

from perfjax.models._decoder import CONFIGS as DECODER_CONFIGS
from perfjax.models._decoder import Decoder, DecoderConfig, decoder
from perfjax.models._layers import (
    ConvNorm,
    Dense,
    Embed,
    LayerNorm,
    SelfAttention,
    Stack,
    TransformerBlock,
)
from perfjax.models._nets import BERT, GPT2, MLP, MobileNetV2, ResNet18
from perfjax.models._zoo import ZooModel, build, configs, from_nnx, names

__all__ = [
    "BERT",
    "DECODER_CONFIGS",
    "GPT2",
    "MLP",
    "ConvNorm",
    "Decoder",
    "DecoderConfig",
    "Dense",
    "Embed",
    "LayerNorm",
    "MobileNetV2",
    "ResNet18",
    "SelfAttention",
    "Stack",
    "TransformerBlock",
    "ZooModel",
    "build",
    "configs",
    "decoder",
    "from_nnx",
    "names",
]
