"""A two-layer perceptron written with Flash ops, for the command line:

perfjax analyze examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]'
perfjax trace examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]' --stage jaxpr
perfjax run examples/mlp.py:mlp -i 'f32[64,784]' -i 'f32[784,128]' -i 'f32[128,10]'
"""

import perfjax.ops as F


def mlp(x, w1, w2):
    """Logits of a bias-free MLP: ``relu(x @ w1) @ w2``, x: [batch, 784] -> [batch, 10]."""
    h = F.relu(F.matmul(x, w1))
    return F.matmul(h, w2)
