"""perfjax.models: the nnx model zoo on Flash ops, its pure (fn, inputs) front end and from_nnx."""

from __future__ import annotations

import dataclasses
import doctest
import functools
import math
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import perfjax
import perfjax.models as M
import perfjax.models._layers
import perfjax.models._nets
import perfjax.models._zoo

NAMES = ("mlp", "resnet18", "mobilenet_v2", "bert", "gpt2")
DEVICES = ("h100", "tpu-v4")
TRAIN_STEPS = 4
#: XLA CPU options for the training-step tests: they check the loss, not CPU speed, and compile
#: ResNet-18's step ~4x faster this way.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.cache
def _tiny(name: str) -> M.ZooModel:
    return M.build(name, config="tiny", batch=2)


@functools.cache
def _programs(name: str) -> tuple[perfjax.Program, perfjax.Program]:
    """The tiny model's inference and training step, traced once from ShapeDtypeStructs."""
    m = _tiny(name)
    return perfjax.trace(*m.inference()), perfjax.trace(*m.training_step())


@functools.cache
def _inference_run(name: str):
    """(model, concrete inputs, outputs) of the tiny model, run once through perfjax.run."""
    m = _tiny(name)
    _, inputs = m.inference(abstract=False, seed=0)
    return m, inputs, perfjax.run(_programs(name)[0], inputs, time_it=False).outputs


def _is_abstract(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(leaves) and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)


def test_names_and_configs():
    assert M.names() == NAMES
    for name in NAMES:
        assert "tiny" in M.configs(name)
    assert set(M.configs("bert")) == {"tiny", "base", "large"}
    assert {"tiny", "small", "medium", "large"} <= set(M.configs("gpt2"))


# --------------------------------------------------------------------------------------------
# Every tiny model: runs, trains, is predicted
# --------------------------------------------------------------------------------------------

_OUT_SHAPES = {
    "mlp": (2, 10),
    "resnet18": (2, 10),
    "mobilenet_v2": (2, 10),
    "bert": (2, 16, 64),
    "gpt2": (2, 16, 512),
}
_MAIN_OP = {
    "mlp": "flash.matmul",
    "resnet18": "flash.conv2d",
    "mobilenet_v2": "flash.conv2d",
    "bert": "flash.attention",
    "gpt2": "flash.attention",
}


@pytest.mark.parametrize("name", NAMES)
def test_inference_runs(name):
    m, inputs, out = _inference_run(name)
    assert out.shape == _OUT_SHAPES[name] and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    # Concrete inputs are real arrays; the parameters match the abstract ones leaf for leaf.
    params = inputs[0]
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(m.params())
    assert all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(inputs))
    assert M.build(name, config="tiny", batch=2).num_params == sum(
        x.size for x in jax.tree_util.tree_leaves(params)
    )


@pytest.mark.parametrize("name", NAMES)
def test_training_loss_decreases(name):
    _, (params, opt_state, *batch) = _tiny(name).training_step(abstract=False, seed=0)
    step = _programs(name)[1].lowered.compile(compiler_options=FAST_COMPILE)
    losses = []
    for _ in range(TRAIN_STEPS):  # the same batch every step: the loss must go down
        new_params, opt_state, loss = step(params, opt_state, *batch)
        assert jax.tree_util.tree_structure(new_params) == jax.tree_util.tree_structure(params)
        params = new_params
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0] and min(losses[1:]) < losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_predicted_on_gpu_and_tpu(name):
    m = _tiny(name)
    assert _is_abstract(m.inference()[1]) and _is_abstract(m.training_step()[1])
    for kind, program in zip(("inference", "train"), _programs(name)):
        assert _MAIN_OP[name] in program.jaxpr  # Flash ops visible in the trace
        for device in DEVICES:
            t = perfjax.predict(program, device=device).time_s
            assert math.isfinite(t) and t > 0, (name, kind, device, t)


def test_bfloat16_model():
    m = M.build("mlp", batch=3, dtype=jnp.bfloat16)
    fn, inputs = m.inference(abstract=False)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(inputs))
    out = perfjax.run(fn, inputs, time_it=False).outputs
    assert out.shape == (3, 10) and out.dtype == jnp.bfloat16
    fn, inputs = m.training_step()
    _, _, loss = jax.eval_shape(fn, *inputs)
    assert loss.dtype == jnp.float32  # the loss is computed in float32


# --------------------------------------------------------------------------------------------
# Counts: FLOPs by hand and published, parameter counts
# --------------------------------------------------------------------------------------------


def test_mlp_flops_equal_hand_count():
    b = 4
    fn, inputs = M.build("mlp", batch=b).inference()
    # 784 -> 128 -> 10: two GEMMs (2 flops per multiply-add), two bias adds (1 flop per output)
    # and one ReLU (a max, 1 flop per element).
    gemm = 2 * b * (784 * 128 + 128 * 10)
    bias = b * (128 + 10)
    relu = b * 128
    assert perfjax.analyze(fn, inputs).flops == gemm + bias + relu


def test_resnet18_flops_near_published():
    fn, inputs = M.build("resnet18", batch=1).inference()
    flops = perfjax.analyze(fn, inputs).flops
    # Published: 1.82 GMACs per 224x224 image (He et al., 2016; torchvision) = 3.64 GFLOP. The
    # conv cost rule counts only taps that hit the image (not the zero padding), so the 3x3
    # convolutions on 7x7 maps count ~18% fewer MACs and the total lands ~7% below.
    assert flops == pytest.approx(2 * 1.82e9, rel=0.10)


def test_mobilenet_v2_flops_near_published():
    fn, inputs = M.build("mobilenet_v2", batch=1, norm="folded").inference()
    # Published: 300M MACs per 224x224 image at width 1.0 (Sandler et al., 2018, Table 4).
    assert perfjax.analyze(fn, inputs).flops == pytest.approx(2 * 300e6, rel=0.10)


@pytest.mark.parametrize(
    "name, config, overrides, published, rel",
    [
        ("gpt2", "small", {}, 124.44e6, 0.01),  # 124,439,808 with the tied output projection
        ("gpt2", "medium", {}, 354.82e6, 0.01),
        ("gpt2", "large", {}, 774.03e6, 0.01),
        ("bert", "base", {}, 110e6, 0.03),  # 108.9M encoder + embeddings, +0.6M MLM head
        ("bert", "large", {}, 335e6, 0.01),
        ("resnet18", "imagenet", {}, 11_689_512, 0.0),  # torchvision, BN scale + shift included
        ("resnet18", "imagenet", {"norm": "folded"}, 11.7e6, 0.01),
        ("mobilenet_v2", "1.0", {}, 3_504_872, 0.0),  # torchvision
        ("mobilenet_v2", "1.0", {"norm": "folded"}, 3.5e6, 0.01),
        ("mlp", "mnist", {}, 784 * 128 + 128 + 128 * 10 + 10, 0.0),
    ],
)
def test_param_counts(name, config, overrides, published, rel):
    assert M.build(name, config=config, **overrides).num_params == pytest.approx(published, rel=rel)


def test_gpt2_small_params_exact():
    # wte 50257x768 + wpe 1024x768 + 12 x (2 LN + QKV + out + MLP) + final LN, output tied.
    d, ff, v, p = 768, 3072, 50257, 1024
    layer = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d)
    assert M.build("gpt2").num_params == v * d + p * d + 12 * layer + 2 * d == 124_439_808


@pytest.mark.parametrize("name, config", [("bert", "large"), ("gpt2", "large")])
def test_large_models_predicted_without_allocating(name, config):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    m = M.build(name, config=config, batch=8)
    fn, inputs = m.inference()
    assert _is_abstract(inputs)
    pred = perfjax.predict(fn, inputs, device="h100")
    elapsed = time.perf_counter() - t0
    assert math.isfinite(pred.time_s) and pred.time_s > 0
    assert elapsed < 30, elapsed
    # The fp32 weights are 1.3 GB (BERT-large) and 3.1 GB (GPT-2-large); none was allocated.
    grown_gib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 2**20
    assert grown_gib < 0.5 * 4 * m.num_params / 2**30, grown_gib


def test_7b_class_decoder_is_predictable():
    m = M.build("gpt2", config="6.7b", batch=1, dtype=jnp.bfloat16, seq_len=2048)
    assert m.num_params == pytest.approx(6.66e9, rel=0.01)
    fn, inputs = m.inference()
    assert perfjax.predict(fn, inputs, device="h100").time_s > 0


def test_scan_and_unrolled_layers_count_the_same():
    def flops(**kw):
        return perfjax.analyze(*M.build("gpt2", config="tiny", **kw).inference()).flops

    f1, f2, f3 = (flops(layers=n) for n in (1, 2, 3))
    # The scanned layer is counted once per loop trip: every extra layer adds the same FLOPs.
    assert f3 - f2 == f2 - f1 > 0
    # Unrolled, the same layers without the loop counter (one add per trip, one compare per test).
    assert 0 < f3 - flops(layers=3, scan=False) <= 2 * 3 + 1
    assert M.build("gpt2", config="tiny", scan=False).num_params == _tiny("gpt2").num_params
    # The backward pass runs the scan in reverse, also with a static trip count.
    train = [
        perfjax.analyze(*M.build("gpt2", config="tiny", layers=3, scan=s).training_step()).flops
        for s in (True, False)
    ]
    assert train[0] == pytest.approx(train[1], rel=1e-4)


# --------------------------------------------------------------------------------------------
# References: NumPy
# --------------------------------------------------------------------------------------------


def _np(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def _ln(x, p, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _attention(x, p, heads, causal):
    b, t, d = x.shape
    qkv = _dense(x, p["qkv"]).reshape(b, t, 3, heads, d // heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // heads)
    if causal:
        s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    a = np.einsum("bhqk,bkhd->bqhd", _softmax(s), v).reshape(b, t, d)
    return _dense(a, p["out"])


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _gelu_erf(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


def test_mlp_matches_numpy():
    _, (params, x), out = _inference_run("mlp")
    p, x = _np(params), np.asarray(x, np.float64)
    h = np.maximum(_dense(x, p["layers"][0]), 0)
    np.testing.assert_allclose(out, _dense(h, p["layers"][1]), rtol=1e-5, atol=1e-5)


def test_gpt2_matches_numpy_decoder():
    m, (params, ids), out = _inference_run("gpt2")
    p, ids, heads = _np(params), np.asarray(ids), m.config["heads"]
    x = p["wte"]["table"][ids] + p["wpe"]["table"][: ids.shape[1]]
    for i in range(m.config["layers"]):  # the scanned weights carry a leading layer axis
        lp = jax.tree_util.tree_map(lambda a, i=i: a[i], p["blocks"]["layers"])
        x = x + _attention(_ln(x, lp["ln1"], 1e-5), lp["attn"], heads, causal=True)
        x = x + _dense(_gelu_tanh(_dense(_ln(x, lp["ln2"], 1e-5), lp["fc_in"])), lp["fc_out"])
    logits = _ln(x, p["ln_f"], 1e-5) @ p["wte"]["table"].T
    np.testing.assert_allclose(out, logits, rtol=2e-4, atol=2e-4)


def test_bert_matches_numpy_encoder():
    m, (params, ids), out = _inference_run("bert")
    p, ids, eps = _np(params), np.asarray(ids), 1e-12
    x = p["word"]["table"][ids] + p["position"]["table"][: ids.shape[1]]
    x = _ln(x + p["token_type"]["table"][0], p["ln_embed"], eps)
    for i in range(m.config["layers"]):  # post-LN blocks with the exact (erf) GELU
        lp = jax.tree_util.tree_map(lambda a, i=i: a[i], p["blocks"]["layers"])
        x = _ln(x + _attention(x, lp["attn"], m.config["heads"], causal=False), lp["ln1"], eps)
        x = _ln(x + _dense(_gelu_erf(_dense(x, lp["fc_in"])), lp["fc_out"]), lp["ln2"], eps)
    np.testing.assert_allclose(out, x, rtol=2e-4, atol=2e-4)


# --------------------------------------------------------------------------------------------
# from_nnx: any flax module, no Flash ops
# --------------------------------------------------------------------------------------------


class _PlainMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(16, 32, rngs=rngs)
        self.fc2 = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.fc1(x)))


def test_from_nnx_plain_linear_stack():
    module = _PlainMLP(nnx.Rngs(0))
    x = jax.ShapeDtypeStruct((8, 16), jnp.float32)
    fn, inputs = M.from_nnx(module, (x,))
    assert _is_abstract(inputs)
    program = perfjax.trace(fn, inputs)
    assert "flash." not in program.jaxpr
    # 2 flops per multiply-add, 1 per bias add, 1 per ReLU.
    hand = 2 * 8 * (16 * 32 + 32 * 4) + 8 * (32 + 4) + 8 * 32
    assert perfjax.analyze(program).flops == hand
    assert perfjax.predict(program, device="h100").time_s > 0
    # Concrete: the same function with the module's own weights reproduces the module.
    xv = jnp.asarray(np.random.default_rng(0).standard_normal((8, 16)), jnp.float32)
    fn, inputs = M.from_nnx(module, (xv,), abstract=False)
    out = perfjax.run(fn, inputs, time_it=False).outputs
    np.testing.assert_allclose(out, module(xv), rtol=1e-6, atol=1e-6)


class _TrainModeNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        return self.drop(nnx.relu(self.bn(self.conv(x))))


def test_from_nnx_batch_stats_and_rng_state():
    # Training-mode BatchNorm updates its statistics and Dropout draws keys inside the trace.
    net = _TrainModeNet(nnx.Rngs(0))
    fn, (params, x) = M.from_nnx(net, (jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32),))
    assert set(params) == {"conv", "bn"} and set(params["bn"]) == {"scale", "bias"}
    assert jax.eval_shape(fn, params, x).shape == (2, 8, 8, 8)


def test_from_nnx_abstract_module():
    module = nnx.eval_shape(lambda: _PlainMLP(nnx.Rngs(0)))
    fn, inputs = M.from_nnx(module, (jax.ShapeDtypeStruct((2, 16), jnp.float32),))
    assert jax.eval_shape(fn, *inputs).shape == (2, 4)
    with pytest.raises(ValueError, match="parameters are abstract"):
        M.from_nnx(module, (jnp.ones((2, 16)),), abstract=False)


# --------------------------------------------------------------------------------------------
# Errors and API details
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: M.build("gtp2"), ValueError, r"unknown model 'gtp2'.*'mlp'.*Did you mean 'gpt2'"),
        (lambda: M.build("resnet"), ValueError, r"Did you mean 'resnet18'"),
        (lambda: M.configs("vgg"), ValueError, r"unknown model 'vgg'; expected one of"),
        (lambda: M.build("mlp", batch=0), ValueError, r"batch must be an int >= 1, got 0"),
        (lambda: M.build("mlp", batch=2.0), ValueError, r"batch must be an int >= 1, got 2.0"),
        (lambda: M.build("bert", config="huge"), ValueError,
         r"bert: unknown config 'huge'; expected one of \['tiny', 'base', 'large'\]"),
        (lambda: M.build("gpt2", config="smal"), ValueError, r"Did you mean 'small'"),
        (lambda: M.build("mlp", dtype=jnp.int8), ValueError,
         r"dtype must be float32, bfloat16 or float16 .*got <class 'jax.numpy.int8'>"),
        (lambda: M.build("mlp", dtype="complex"), ValueError, r"dtype must be float32"),
        (lambda: M.build("gpt2", d_modle=64), ValueError,
         r"gpt2: unknown setting\(s\) \['d_modle'\]; the settings of gpt2 are \[.*'d_model'"),
        (lambda: M.build("gpt2", config="tiny", heads=5), ValueError,
         r"d_model \(64\) must be divisible by heads \(5\)"),
        (lambda: M.build("gpt2", seq_len=2048), ValueError,
         r"seq_len \(2048\) exceeds the 1024 learned positions"),
        (lambda: M.build("bert", layers=0), ValueError, r"bert: layers must be an int >= 1, got 0"),
        (lambda: M.build("resnet18", norm="layer"), ValueError,
         r"norm must be one of \['batch', 'folded'\], got 'layer'"),
        (lambda: M.build("resnet18", image_size=16), ValueError, r"image_size must be an int >= 32"),
        (lambda: M.build("mobilenet_v2", width=0), ValueError, r"width .* must be > 0"),
        (lambda: M.build("mobilenet_v2", stages=((6, 24, 2),)), ValueError,
         r"stages must be a non-empty sequence of \(expansion, channels, repeats, stride\)"),
        (lambda: M.build("mlp", sizes=(784,)), ValueError, r"sizes must be a sequence of at least 2"),
        (lambda: M.build("mlp").training_step(optimizer="adam"), TypeError,
         r"optimizer must be an optax.GradientTransformation .* got str"),
        (lambda: M.from_nnx(lambda x: x, ()), TypeError, r"from_nnx expects an nnx.Module, got function"),
        (lambda: M.from_nnx(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), jnp.ones((1, 2))), TypeError,
         r"example_inputs must be a tuple .* write \(x,\)"),
    ],
)  # fmt: skip
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_zoo_model_is_frozen_and_readable():
    m = M.build("resnet18", batch=4, dtype="bfloat16", image_size=160, classes=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.batch = 8
    with pytest.raises(TypeError):
        m.config["classes"] = 5
    assert m.name == "resnet18" and m.config_name == "imagenet" and m.dtype == jnp.bfloat16
    assert m.config["image_size"] == 160 and m.config["classes"] == 10
    assert repr(m).startswith("ZooModel('resnet18', config='imagenet', batch=4, dtype=bfloat16")
    _, (params, images) = m.inference()
    assert images.shape == (4, 160, 160, 3) and images.dtype == jnp.bfloat16
    assert params["fc"]["kernel"].shape == (512, 10)


def test_custom_optimizer_state_is_abstract():
    m = M.build("gpt2", config="tiny")
    fn, (params, opt_state, ids) = m.training_step(optimizer=optax.sgd(0.1, momentum=0.9))
    assert _is_abstract((params, opt_state, ids)) and ids.dtype == jnp.int32
    new_params, _, loss = jax.eval_shape(fn, params, opt_state, ids)
    assert jax.tree_util.tree_structure(new_params) == jax.tree_util.tree_structure(params)
    assert loss.shape == ()


@pytest.mark.parametrize(
    "module", [perfjax.models, perfjax.models._zoo, perfjax.models._nets, perfjax.models._layers]
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
