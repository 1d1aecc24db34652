"""The MaxText-style decoder: exact sizes, flash attention against plain attention (values and
gradients), a real training step, abstract 128B steps, and ``fused_kernel`` regions in fusion."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh

import perfjax
from perfjax._errors import InputError
from perfjax.fusion import fuse
from perfjax.models import DECODER_CONFIGS, decoder
from perfjax.models._decoder import forward, init, loss_fn, optimizer

#: ``param_count_exact`` of the four models of MaxText's v5e table (the sum over MaxText's own
#: parameter tree; ../shared/datasets/tpu-timings/maxtext/maxtext_v5e.csv), and the model FLOPs
#: per chip per step that table derives with MaxText's formula (``total_tflop_per_device_step``).
MAXTEXT = {
    "maxtext-16b": (16274101248, 6, 1279.0218),
    "maxtext-32b": (32548169728, 4, 1652.5842),
    "maxtext-64b": (64760784896, 2, 1644.3376),
    "maxtext-128b": (129185359872, 1, 1640.2063),
}
TOKENS = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 64)), jnp.int32)


@pytest.mark.parametrize("name", sorted(MAXTEXT))
def test_maxtext_models_have_maxtexts_exact_sizes(name):
    params, batch, tflop = MAXTEXT[name]
    d = decoder(name)
    assert d.num_params == params
    assert d.model_flops_per_step(batch) / 1e12 == pytest.approx(tflop, abs=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(positions="relative", causal=False, parallel_block=True),
        pytest.param(
            dict(positions="rope", causal=True, num_kv_heads=2, mlp_activation="swiglu"),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            dict(positions="learned", causal=True, norm="layer", mlp_activation="gelu",
                 tied_embeddings=False),
            marks=pytest.mark.slow,
        ),
    ],
)  # fmt: skip
@pytest.mark.slow  # a long check: CI runs it after the default suite
def test_flash_attention_equals_plain_attention(overrides):
    cfg = decoder("tiny", dtype="float32", **overrides).config
    params = init(cfg, jax.random.key(1))
    dot = cfg.replace(attention="dot")
    # Jitted: the same numerics, a fraction of the op-by-op time.
    fwd = lambda c: jax.jit(lambda p: forward(c, p, TOKENS))(params)
    np.testing.assert_allclose(fwd(cfg), fwd(dot), rtol=1e-4, atol=1e-4)
    # The flash backward pass (recomputed from the log-sum-exp) against autodiff.
    grad = lambda c: jax.jit(jax.grad(lambda p: loss_fn(c, p, TOKENS, TOKENS)))(params)
    ga, gb = grad(cfg), grad(dot)
    for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_training_step_runs_and_learns():
    d = decoder("tiny", dtype="float32", learning_rate=3e-3, remat="dots")
    fn, abstract = d.training_step(batch=2)
    params = init(d.config, jax.random.key(0))
    opt_state = optimizer(d.config).init(params)
    step = jax.jit(fn)
    losses = []
    for _ in range(8):
        params, opt_state, loss = step(params, opt_state, TOKENS, TOKENS)
        losses.append(float(loss))
    assert losses[-1] < losses[0] * 0.9
    assert jax.tree.structure(opt_state) == jax.tree.structure(abstract[1])


def test_128b_step_traces_from_abstract_parameters_in_seconds():
    d = decoder("maxtext-128b")
    mesh = AbstractMesh((32, 256), ("data", "fsdp"))
    t0 = time.perf_counter()
    fn, inputs = d.training_step(batch=32 * 256, mesh=mesh)
    jaxpr = jax.make_jaxpr(fn)(*inputs)
    assert time.perf_counter() - t0 < 20
    params, opt_state, tokens, _ = inputs
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(inputs))
    assert params["layers"]["w_in"].shape == (64, 10240, 65536)
    assert params["layers"]["w_in"].sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None)
    assert tokens.shape == (8192, 2048)
    # The step's outputs have the parameters' and optimizer state's shapes.
    out = jaxpr.out_avals
    assert len(out) == len(jax.tree.leaves((params, opt_state))) + 1


def test_bad_configs_are_named():
    with pytest.raises(InputError, match="unknown decoder config"):
        decoder("gpt-5")
    with pytest.raises(InputError, match="unknown DecoderConfig field"):
        decoder("tiny", num_layers=3)
    with pytest.raises(InputError, match="mlp_activation must be one of"):
        decoder("tiny", mlp_activation="tanh")
    with pytest.raises(InputError, match="multiple of num_kv_heads"):
        decoder("tiny", num_kv_heads=3)
    with pytest.raises(InputError, match="batch must be a positive integer"):
        decoder("tiny").training_step(batch=0)
    assert set(DECODER_CONFIGS) >= {"tiny", "llama2-7b", *MAXTEXT}


# ---------------------------------------------------------------------------------------------
# fused_kernel regions
# ---------------------------------------------------------------------------------------------


def _attention(q, k, v):
    return jax.nn.softmax(q @ k.T) @ v


def test_fused_kernel_region_is_one_kernel_with_its_boundary_traffic():
    x = jax.ShapeDtypeStruct((512, 64), jnp.float32)

    def fused(q, k, v):
        with perfjax.ops.fused_kernel("attention"):
            return _attention(q, k, v)

    plain = fuse(perfjax.analyze(_attention, (x, x, x)), "gpu")
    one = fuse(perfjax.analyze(fused, (x, x, x)), "gpu")
    assert len(one) == 1 < len(plain)
    # The same work; only what enters and leaves the region moves: q, k, v in, the output out.
    flops = lambda ks: float(np.sum((ks.matrix_flops + ks.vector_flops) * ks.executions))
    assert flops(one) == pytest.approx(flops(plain))
    assert float(one.bytes_read[0]) == 3 * 512 * 64 * 4
    assert float(one.bytes_written[0]) == 512 * 64 * 4
    assert (
        perfjax.predict(fused, (x, x, x), device="h100").time_s
        < perfjax.predict(_attention, (x, x, x), device="h100").time_s
    )


def test_fused_kernel_counts_the_loops_inside_it():
    x = jax.ShapeDtypeStruct((256, 128), jnp.float32)
    w = jax.ShapeDtypeStruct((128, 128), jnp.float32)

    def looped(x, w, fuse):
        def body(c, _):
            return jnp.tanh(c @ w), None

        if fuse:
            with perfjax.ops.fused_kernel("loop"):
                return jax.lax.scan(body, x, None, length=5)[0]
        return jax.lax.scan(body, x, None, length=5)[0]

    one = fuse(perfjax.analyze(lambda x, w: looped(x, w, True), (x, w)), "tpu")
    plain = fuse(perfjax.analyze(lambda x, w: looped(x, w, False), (x, w)), "tpu")
    total = lambda ks: float(np.sum(ks.matrix_flops * ks.executions))
    assert len(one) == 1 and float(one.executions[0]) == 1
    assert total(one) == pytest.approx(total(plain)) == pytest.approx(5 * 2 * 256 * 128 * 128)


def test_fused_kernel_name_is_checked():
    with pytest.raises(InputError, match="fused_kernel name"):
        with perfjax.ops.fused_kernel("a b"):
            pass
