"""Peak memory (``Prediction.peak_memory_bytes``, ``memory_estimate``) against XLA's own buffer
assignment (``compiled.memory_analysis()``) on this CPU, its breakdown, ``fits`` and
``recommend`` skipping what does not fit.

The reference is ``argument_size + output_size - alias_size + temp_size`` of the program compiled
for this CPU with XLA's YNNPACK fusions off (``xla_cpu_experimental_ynn_fusion_type=""``): a
YNNPACK fusion (jax 0.10 puts whole conv nets and attention blocks into one) keeps its
intermediates in YNNPACK's own memory, which ``memory_analysis()`` does not see (a conv net's
``temp_size`` drops from 10 MiB to 512 bytes); with them off, every intermediate is one of XLA's
buffers, as on a GPU or TPU.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import optax
import pytest

import perfjax
from perfjax.devicemodels._spec import DeviceSpec
from perfjax.prediction import MemoryEstimate, classify_arguments, memory_estimate

S = jax.ShapeDtypeStruct
F32 = jnp.float32
#: A CPU of the catalog: the program is lowered for the CPU and fused as XLA:CPU does.
CPU = "xeon-8480"
#: XLA:CPU without YNNPACK fusions (see the module notes).
_NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _mlp(params, x):
    n = len(params) // 2
    for i in range(n):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        x = jax.nn.relu(x) if i < n - 1 else x
    return x


def _mlp_params(sizes):
    pairs = list(itertools.pairwise(sizes))
    return {f"w{i}": S((a, b), F32) for i, (a, b) in enumerate(pairs)} | {
        f"b{i}": S((b,), F32) for i, (_, b) in enumerate(pairs)
    }


def mlp_forward():
    return jax.jit(_mlp), (_mlp_params((784, 512, 512, 10)), S((128, 784), F32))


def mlp_adam_step():
    params, tx = _mlp_params((784, 512, 512, 10)), optax.adam(1e-3)

    def step(params, opt_state, x, y):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((_mlp(p, x) - y) ** 2))(params)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    inputs = (params, jax.eval_shape(tx.init, params), S((128, 784), F32), S((128, 10), F32))
    return jax.jit(step, donate_argnums=(0, 1)), inputs


def _scanned_step(remat: bool, layers=6, d=256, batch=128):
    def layer(h, wb):
        return jnp.tanh(h @ wb[0] + wb[1]), None

    body = jax.checkpoint(layer) if remat else layer

    def loss(params, x):
        h, _ = jax.lax.scan(body, x, (params["w"], params["b"]))
        return jnp.mean(h**2)

    def step(params, x):
        value, g = jax.value_and_grad(loss)(params, x)
        return jax.tree.map(lambda p, d: p - 0.01 * d, params, g), value

    params = {"w": S((layers, d, d), F32), "b": S((layers, d), F32)}
    return jax.jit(step, donate_argnums=0), (params, S((batch, d), F32))


def scan_sgd_step():
    return _scanned_step(remat=False)


def scan_remat_sgd_step():
    return _scanned_step(remat=True)


def convnet():
    dn = ("NHWC", "HWIO", "NHWC")

    def f(params, x):
        conv = lambda h, w: jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=dn)
        pool = lambda h: jax.lax.reduce_window(
            h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"
        )
        h = pool(jax.nn.relu(conv(x, params["c1"])))
        h = pool(jax.nn.relu(conv(h, params["c2"])))
        return jax.nn.log_softmax(h.reshape(h.shape[0], -1) @ params["d"])

    params = {
        "c1": S((3, 3, 3, 16), F32),
        "c2": S((3, 3, 16, 32), F32),
        "d": S((8 * 8 * 32, 10), F32),
    }
    return jax.jit(f), (params, S((32, 32, 32, 3), F32))


def attention(b=4, t=128, d=256, heads=4):
    def f(params, x):
        split = lambda y: y.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)
        q, k, v = (split(x @ params[n]) for n in ("wq", "wk", "wv"))
        s = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / (d // heads) ** 0.5, axis=-1)
        o = (s @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        return x + o @ params["wo"]

    return jax.jit(f), ({n: S((d, d), F32) for n in ("wq", "wk", "wv", "wo")}, S((b, t, d), F32))


PROGRAMS = {
    "mlp_forward": mlp_forward,
    "mlp_adam_step": mlp_adam_step,
    "scan_sgd_step": scan_sgd_step,
    "scan_remat_sgd_step": scan_remat_sgd_step,
    "convnet": convnet,
    "attention": attention,
}


def xla_memory(fn, inputs) -> dict[str, int]:
    m = fn.lower(*inputs).compile(compiler_options=_NO_YNN).memory_analysis()
    out = dict(
        arguments=m.argument_size_in_bytes, outputs=m.output_size_in_bytes,
        aliased=m.alias_size_in_bytes, temp=m.temp_size_in_bytes,
    )  # fmt: skip
    out["peak"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temp"]
    return out


@pytest.fixture(scope="module", params=list(PROGRAMS))
def case(request):
    fn, inputs = PROGRAMS[request.param]()
    return (
        request.param,
        fn,
        inputs,
        memory_estimate(fn, inputs, device=CPU),
        xla_memory(fn, inputs),
    )


def test_peak_within_10_percent_of_xla(case):
    name, _, _, ours, xla = case
    err = ours.peak_bytes / xla["peak"] - 1
    assert abs(err) < 0.10, f"{name}: {ours.peak_bytes} vs XLA {xla['peak']} ({100 * err:+.1f}%)"
    # Arguments and donation are exact; outputs up to the tuple's pointer table.
    assert ours.arguments_bytes == xla["arguments"]
    assert ours.aliased_bytes == xla["aliased"]
    assert ours.outputs_bytes + ours.aliased_bytes == xla["outputs"]


def test_breakdown_sums_to_peak(case):
    _, _, _, ours, _ = case
    assert isinstance(ours, MemoryEstimate)
    assert sum(ours.breakdown.values()) == ours.peak_bytes
    assert ours.temp_bytes == ours.activations_bytes + ours.temporaries_bytes
    assert all(v >= 0 for v in ours.breakdown.values())
    assert ours.to_dict()["peak_bytes"] == ours.peak_bytes and "peak memory" in str(ours)


def test_breakdown_of_an_adam_step():
    fn, (params, opt_state, x, y) = mlp_adam_step()
    m = memory_estimate(fn, (params, opt_state, x, y), device=CPU)
    nbytes = lambda tree: sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(tree))
    assert m.parameters_bytes == nbytes(params)
    assert m.optimizer_state_bytes == nbytes(opt_state)  # mu, nu and the step count
    assert m.inputs_bytes == nbytes((x, y))
    # Parameters and optimizer state are donated: the outputs reuse their buffers.
    assert m.aliased_bytes == nbytes((params, opt_state))
    assert m.outputs_bytes == 4 + 8 * len(jax.tree.leaves((params, opt_state))) + 8  # loss + table


def test_remat_keeps_fewer_activations():
    plain = memory_estimate(*scan_sgd_step(), device=CPU)
    remat = memory_estimate(*scan_remat_sgd_step(), device=CPU)
    assert 0 < remat.activations_bytes < plain.activations_bytes
    assert remat.peak_bytes < plain.peak_bytes


def test_arguments_classified_without_names():
    # Unnamed arguments: a GEMM's weight is a parameter, two more of its type that the step
    # returns updated are optimizer state, the batch an input.
    def step(a, b, c, x):
        g = x.T @ jnp.tanh(x @ a)
        b2, c2 = 0.9 * b + g, 0.99 * c + g * g
        return a - b2 / (jnp.sqrt(c2) + 1e-8), b2, c2

    w, x = S((64, 64), F32), S((8, 64), F32)
    m = memory_estimate(step, (w, w, w, x), device=CPU)
    assert (m.parameters_bytes, m.optimizer_state_bytes, m.inputs_bytes) == (16384, 32768, 2048)
    assert classify_arguments(["params['w']", "opt_state[0].nu['w']", "batch"]) == (
        "parameters", "optimizer_state", "inputs",
    )  # fmt: skip


def test_prediction_memory_is_lazy_and_fits():
    x = S((1024, 1024), F32)
    pred = perfjax.predict(lambda a, b: jnp.tanh(a @ b), (x, x), device="h100")
    assert "memory" not in pred.__dict__  # not computed by predict itself
    assert pred.peak_memory_bytes == pred.memory.peak_bytes == 3 * 4 * 2**20
    assert pred.fits is True
    assert pred.to_dict()["fits"] is True and "peak memory" in str(pred)
    huge = S((40_000, 1_000_000), F32)  # 160 GB in, 160 GB out
    big = perfjax.predict(lambda a: a * 2.0, (huge,), device="h100")
    assert big.peak_memory_bytes == 2 * huge.size * 4 and big.fits is False
    assert "does NOT fit" in str(big)
    spec = DeviceSpec(name="no-capacity", family="gpu", matrix_flops_per_s={"fp32": 1e13},
                      vector_flops_per_s={"fp32": 1e12}, memory_bytes_per_s=1e12)  # fmt: skip
    assert perfjax.predict(lambda a: a * 2.0, (huge,), device=spec).fits is None


def test_recommend_skips_what_does_not_fit():
    x = S((12_000, 1_000_000), F32)  # 48 GB in, 48 GB out: fits on an H200, not on an H100
    r = perfjax.recommend(lambda a: a * 2.0, (x,), devices=["h100", "h200"], precisions=None)
    assert [row.device for row in r.rows] == ["h200"]
    assert r.rows[0].peak_memory_bytes == 2 * x.size * 4
    (skip,) = r.skipped
    assert skip.device == "h100" and skip.batch is None and "does not fit" in skip.reason
    assert "h100 as traced (does not fit: peak memory 89.4 GiB > 80 GiB)" in str(r)


def test_batch_study_skips_batches_that_do_not_fit():
    x = S((1, 1 << 28), F32)  # 1 GiB per sample
    r = perfjax.recommend(
        lambda a: a * 2.0, (x,), devices=["h100"], precisions=None, batch_sizes=(8, 64),
        objective="throughput",
    )  # fmt: skip
    assert [row.batch for row in r.rows] == [8]
    assert [(s.device, s.batch) for s in r.skipped] == [("h100", 64)]
    assert "at batch 64 (does not fit" in str(r)
