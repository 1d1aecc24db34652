# ruff: noqa: E401, I001   (pip install -e . ; python docs/zoo/your_model.py -> cmp.png)
import jax, jax.numpy as jnp, perfjax, perfjax.models
from flax import nnx

r = nnx.Rngs(0)  # any nnx.Module works: this is a 2-layer MLP with no Flash ops
model = nnx.Sequential(nnx.Linear(784, 256, rngs=r), nnx.relu, nnx.Linear(256, 10, rngs=r))
x = jax.ShapeDtypeStruct((8, 784), jnp.float32)  # shapes only: nothing is allocated
fn, inputs = perfjax.models.from_nnx(model, (x,))
perfjax.compare(fn, inputs, ["a100-80gb", "h100", "tpu-v5e"]).plot("cmp.png")
