"""Numerical, gradient, batching and naming tests for the Flash ops (``perfjax.ops``).

Every forward test compares a Flash op against a reference written here in plain NumPy with
float64 arithmetic (no JAX involved), on shapes and options drawn by hypothesis. Low-precision
inputs are rounded to their dtype first and the reference is computed from the rounded values,
so the tolerances only measure the op's own rounding.
"""

from __future__ import annotations

import math
import re
from contextlib import nullcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from jax.test_util import check_grads

import perfjax.ops as F

SETTINGS = settings(max_examples=15, deadline=None)

FLOAT_DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
#: hypothesis draws the dtype with the shapes, so every example compiles at most one new kernel
float_dtypes = st.sampled_from(FLOAT_DTYPES)

seeds = st.integers(0, 2**32 - 1)
small = st.integers(1, 4)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def tol(dtype, k: int = 1) -> tuple[float, float]:
    """(rtol, atol) for an output of ``dtype`` whose entries sum ``k`` products."""
    dt = np.dtype(dtype)
    if dt == np.dtype(jnp.bfloat16):
        return 2e-2, 1e-2 + 2e-3 * math.sqrt(k)
    if dt == np.dtype(jnp.float16):
        return 5e-3, 2e-3 + 5e-4 * math.sqrt(k)
    if dt == np.dtype(jnp.float32):
        return 2e-5, 2e-6 + 2e-7 * k
    return 1e-12, 1e-12 * k  # float64


def f32_exact(dtype):
    """Full-precision float32 dots/convs (a GPU would otherwise use TF32 for float32)."""
    if np.dtype(dtype) == np.dtype(jnp.float32):
        return jax.default_matmul_precision("highest")
    return nullcontext()


def rand(rng, shape, dtype, lo=-1.0, hi=1.0):
    """Returns (jax array of ``dtype``, the same values as a float64 numpy array).

    The rounding to ``dtype`` happens in NumPy (ml_dtypes), so no conversion kernel is compiled.
    """
    x = np.asarray(rng.uniform(lo, hi, size=shape)).astype(np.dtype(dtype))
    return jnp.asarray(x), x.astype(np.float64)


def assert_close(got, want, dtype, k: int = 1):
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, expected {np.dtype(dtype)}"
    assert tuple(got.shape) == tuple(np.shape(want)), (
        f"shape {got.shape}, expected {np.shape(want)}"
    )
    rtol, atol = tol(dtype, k)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------
# NumPy float64 references
# ----------------------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def ref_gelu(x, approximate):
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def ref_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


REF_UNARY = {
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu_tanh": lambda x: ref_gelu(x, True),
    "gelu_erf": lambda x: ref_gelu(x, False),
    "sigmoid": ref_sigmoid,
    "tanh": np.tanh,
    "silu": lambda x: x * ref_sigmoid(x),
}
FLASH_UNARY = {
    "relu": F.relu,
    "gelu_tanh": lambda x: F.gelu(x, approximate=True),
    "gelu_erf": lambda x: F.gelu(x, approximate=False),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "silu": F.silu,
}


def ref_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def ref_layernorm(x, gamma=None, beta=None, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def ref_rmsnorm(x, gamma=None, eps=1e-6):
    y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return y if gamma is None else y * gamma


def ref_matmul(a, b):
    """``a`` (..., M, K) times ``b`` (K, N) or (..., K, N), by explicit sums over K."""
    return np.einsum("...mk,...kn->...mn", a, b)


def _same_pads(size, k, s, d):
    """TensorFlow/XLA 'SAME': output ceil(size / s), extra padding at the end."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _pads(padding, h, w, kh, kw, stride, dilation):
    if padding == "SAME":
        return _same_pads(h, kh, stride[0], dilation[0]), _same_pads(w, kw, stride[1], dilation[1])
    if padding == "VALID":
        return (0, 0), (0, 0)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    ph, pw = padding
    ph = (ph, ph) if isinstance(ph, int) else tuple(ph)
    pw = (pw, pw) if isinstance(pw, int) else tuple(pw)
    return ph, pw


def ref_conv2d(x, w, stride=(1, 1), padding="SAME", dilation=(1, 1), groups=1, fill=0):
    """NHWC x HWIO convolution with explicit loops over output positions and groups."""
    n, h, wd, _ = x.shape
    kh, kw, ci, co = w.shape
    (pt, pb), (pl, pr) = _pads(padding, h, wd, kh, kw, stride, dilation)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    ekh, ekw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh = (h + pt + pb - ekh) // stride[0] + 1
    ow = (wd + pl + pr - ekw) // stride[1] + 1
    og = co // groups
    out = np.zeros((n, oh, ow, co), dtype=np.result_type(x, w))
    for i in range(oh):
        for j in range(ow):
            r, s = i * stride[0], j * stride[1]
            patch = xp[:, r : r + ekh : dilation[0], s : s + ekw : dilation[1], :]  # (N, KH, KW, C)
            for g in range(groups):
                out[:, i, j, g * og : (g + 1) * og] = np.einsum(
                    "nhwc,hwco->no",
                    patch[..., g * ci : (g + 1) * ci],
                    w[..., g * og : (g + 1) * og],
                )
    return out


def ref_pool(x, window, stride, padding, kind):
    n, h, wd, c = x.shape
    if padding == "SAME":
        (pt, pb), (pl, pr) = (
            _same_pads(h, window[0], stride[0], 1),
            _same_pads(wd, window[1], stride[1], 1),
        )
    else:
        (pt, pb), (pl, pr) = (0, 0), (0, 0)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    oh = (h + pt + pb - window[0]) // stride[0] + 1
    ow = (wd + pl + pr - window[1]) // stride[1] + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            win = xp[
                :,
                i * stride[0] : i * stride[0] + window[0],
                j * stride[1] : j * stride[1] + window[1],
                :,
            ]
            # avg: SAME windows that overlap the padding still divide by the full window size
            out[:, i, j, :] = (
                win.max(axis=(1, 2))
                if kind == "max"
                else win.sum(axis=(1, 2)) / (window[0] * window[1])
            )
    return out


def ref_attention(q, k, v, causal=False, mask=None, scale=None):
    b, tq, h, d = q.shape
    tk = k.shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
    keep = np.ones((b, h, tq, tk), dtype=bool)
    if causal:
        keep &= (np.arange(tq)[:, None] + (tk - tq)) >= np.arange(tk)[None, :]
    if mask is not None:
        keep &= np.broadcast_to(mask, keep.shape)
    s = np.where(keep, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", p, v)


# ----------------------------------------------------------------------------------------------
# matmul
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(
    dtype=float_dtypes, m=st.integers(1, 8), k=st.integers(1, 32), n=st.integers(1, 8), seed=seeds
)
def test_matmul_2d_matches_numpy(dtype, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, a64 = rand(rng, (m, k), dtype)
    b, b64 = rand(rng, (k, n), dtype)
    with f32_exact(dtype):
        got = F.matmul(a, b)
    assert_close(got, a64 @ b64, dtype, k)


@SETTINGS
@given(
    dtype=float_dtypes,
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    m=small,
    k=st.integers(1, 16),
    n=small,
    shared_b=st.booleans(),
    seed=seeds,
)
def test_matmul_batched_matches_numpy(dtype, batch, m, k, n, shared_b, seed):
    rng = np.random.default_rng(seed)
    a, a64 = rand(rng, (*batch, m, k), dtype)
    b, b64 = rand(rng, (k, n) if shared_b else (*batch, k, n), dtype)
    with f32_exact(dtype):
        got = F.matmul(a, b)
    assert_close(got, ref_matmul(a64, b64), dtype, k)


@SETTINGS
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    m=small,
    k=st.integers(1, 64),
    n=small,
    shared_b=st.booleans(),
    seed=seeds,
)
def test_matmul_int8_is_exact_int32(batch, m, k, n, shared_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, size=(*batch, m, k), dtype=np.int8)
    b = rng.integers(
        -128, 128, size=(k, n) if shared_b or not batch else (*batch, k, n), dtype=np.int8
    )
    got = F.matmul(jnp.asarray(a), jnp.asarray(b))
    assert got.dtype == jnp.int32
    want = ref_matmul(a.astype(np.int64), b.astype(np.int64))
    np.testing.assert_array_equal(np.asarray(got, dtype=np.int64), want)


def test_matmul_int8_extreme_values_accumulate_without_wrapping():
    # 64 products of (-128)(-128) = 1,048,576: far outside int8/int16, exact in int32.
    a = jnp.full((2, 64), -128, jnp.int8)
    got = F.matmul(a, a.T)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), np.full((2, 2), 64 * 128 * 128))


@pytest.mark.parametrize(
    "precision, text", [(None, "DEFAULT"), ("high", "HIGH"), ("highest", "HIGHEST")]
)
def test_matmul_precision_is_recorded_in_stablehlo(precision, text):
    a = jnp.ones((2, 3))
    hlo = jax.jit(lambda a: F.matmul(a, a.T, precision=precision)).lower(a).as_text()
    assert f"precision = [{text}, {text}]" in hlo


# ----------------------------------------------------------------------------------------------
# elementwise
# ----------------------------------------------------------------------------------------------

BINARY = {"add": (F.add, np.add), "sub": (F.sub, np.subtract), "mul": (F.mul, np.multiply)}


@pytest.mark.parametrize("op", list(BINARY))
@SETTINGS
@given(
    dtype=float_dtypes,
    shapes=npst.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
    seed=seeds,
)
def test_binary_broadcasting_matches_numpy(op, dtype, shapes, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a, a64 = rand(rng, sa, dtype, -3, 3)
    b, b64 = rand(rng, sb, dtype, -3, 3)
    flash, ref = BINARY[op]
    got = flash(a, b)
    assert got.shape == shapes.result_shape
    assert_close(got, ref(a64, b64), dtype)


@pytest.mark.parametrize(
    "dtype, scalar",
    [
        (jnp.float32, 2.0),
        (jnp.bfloat16, 2.0),
        (jnp.float16, -0.5),
        (jnp.float32, 2),
        (jnp.bfloat16, 3),
    ],
    ids=["f32-float", "bf16-float", "f16-float", "f32-int", "bf16-int"],
)
@pytest.mark.parametrize("scalar_first", [False, True], ids=["array-scalar", "scalar-array"])
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_python_scalar_takes_the_array_dtype(op, scalar_first, dtype, scalar):
    """A Python int/float next to an array is weakly typed, as in jnp: the result keeps the array's dtype."""
    flash, ref = BINARY[op]
    xs = np.array([1.5, -2.0, 4.0])
    x = jnp.asarray(xs.astype(np.dtype(dtype)))
    got = flash(scalar, x) if scalar_first else flash(x, scalar)
    want = ref(scalar, xs) if scalar_first else ref(xs, scalar)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(got, np.float64), want)  # exact in every dtype here


def test_binary_python_scalar_under_x64_keeps_float32(x64):
    got = F.mul(jnp.ones(2, jnp.float32), 2.0)
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), [2.0, 2.0])


@SETTINGS
@given(
    dtype=float_dtypes,
    lead=st.lists(small, min_size=0, max_size=3),
    f=st.integers(1, 8),
    seed=seeds,
)
def test_bias_add_matches_numpy(dtype, lead, f, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, (*lead, f), dtype, -3, 3)
    b, b64 = rand(rng, (f,), dtype, -3, 3)
    assert_close(F.bias_add(x, b), x64 + b64, dtype)


@pytest.mark.parametrize("op", list(FLASH_UNARY))
@SETTINGS
@given(
    dtype=float_dtypes,
    shape=npst.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5),
    seed=seeds,
)
def test_unary_matches_numpy(op, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, shape, dtype, -4, 4)
    got = FLASH_UNARY[op](x)
    # float32 transcendental kernels are accurate to a few ulp; allow that (and underflow near 0)
    if np.dtype(dtype) == np.dtype(jnp.float32):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(
            np.asarray(got, np.float64), REF_UNARY[op](x64), rtol=2e-5, atol=2e-6
        )
    else:
        assert_close(got, REF_UNARY[op](x64), dtype)


def test_unary_known_values():
    x = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0], jnp.float32)
    np.testing.assert_allclose(np.asarray(F.relu(x)), [0.0, 0.0, 0.0, 0.5, 2.0])
    # GELU(1) = 0.8413447 (erf), 0.8411920 (tanh approximation)
    np.testing.assert_allclose(
        float(F.gelu(jnp.float32(1.0), approximate=False)), 0.8413447, rtol=1e-6
    )
    np.testing.assert_allclose(
        float(F.gelu(jnp.float32(1.0), approximate=True)), 0.8411920, rtol=1e-6
    )
    assert float(F.gelu(jnp.float32(1.0))) == float(F.gelu(jnp.float32(1.0), approximate=True))
    np.testing.assert_allclose(
        float(F.sigmoid(jnp.float32(2.0))), 1 / (1 + math.exp(-2)), rtol=1e-6
    )
    np.testing.assert_allclose(float(F.silu(jnp.float32(-1.0))), -1 / (1 + math.e), rtol=1e-6)
    # large magnitudes saturate instead of overflowing
    big = jnp.array([-100.0, 100.0], jnp.float32)
    np.testing.assert_array_equal(np.asarray(F.sigmoid(big)), [0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(F.tanh(big)), [-1.0, 1.0])
    np.testing.assert_allclose(np.asarray(F.gelu(big, approximate=False)), [0.0, 100.0])


# ----------------------------------------------------------------------------------------------
# softmax and normalisation
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(
    dtype=float_dtypes,
    shape=npst.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    axis=st.integers(-3, 2),
    seed=seeds,
)
def test_softmax_matches_numpy(dtype, shape, axis, seed):
    assume(-len(shape) <= axis < len(shape))
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, shape, dtype, -5, 5)
    got = F.softmax(x, axis=axis)
    assert_close(got, ref_softmax(x64, axis), dtype)
    np.testing.assert_allclose(
        np.asarray(got, np.float64).sum(axis=axis), 1.0, atol=tol(dtype, shape[axis])[1]
    )


def test_softmax_is_stable_for_large_inputs():
    x = jnp.array([1000.0, 1000.0, -1000.0], jnp.float32)
    np.testing.assert_allclose(np.asarray(F.softmax(x)), [0.5, 0.5, 0.0])
    xh = jnp.array([60000.0, 60000.0], jnp.float16)  # exp would overflow float16
    np.testing.assert_array_equal(np.asarray(F.softmax(xh), np.float32), [0.5, 0.5])


@SETTINGS
@given(
    dtype=float_dtypes,
    lead=st.lists(small, min_size=0, max_size=2),
    f=st.integers(1, 16),
    affine=st.sampled_from(["none", "gamma", "beta", "both"]),
    eps=st.sampled_from([1e-5, 1e-3, 0.1]),
    seed=seeds,
)
def test_layernorm_matches_numpy(dtype, lead, f, affine, eps, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, (*lead, f), dtype, -3, 3)
    g, g64 = rand(rng, (f,), dtype, 0.5, 2.0)
    b, b64 = rand(rng, (f,), dtype, -1, 1)
    g, g64 = (g, g64) if affine in ("gamma", "both") else (None, None)
    b, b64 = (b, b64) if affine in ("beta", "both") else (None, None)
    got = F.layernorm(x, g, b, eps=eps)
    assert_close(got, ref_layernorm(x64, g64, b64, eps), dtype)


@SETTINGS
@given(
    dtype=float_dtypes,
    lead=st.lists(small, min_size=0, max_size=2),
    f=st.integers(1, 16),
    with_gamma=st.booleans(),
    eps=st.sampled_from([1e-6, 1e-3, 0.1]),
    seed=seeds,
)
def test_rmsnorm_matches_numpy(dtype, lead, f, with_gamma, eps, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, (*lead, f), dtype, -3, 3)
    g, g64 = rand(rng, (f,), dtype, 0.5, 2.0) if with_gamma else (None, None)
    got = F.rmsnorm(x, g, eps=eps)
    assert_close(got, ref_rmsnorm(x64, g64, eps), dtype)


def test_norm_default_eps():
    x = jnp.array([[1.0, 3.0]], jnp.float32)
    np.testing.assert_allclose(
        np.asarray(F.layernorm(x)), ref_layernorm(np.asarray(x, np.float64), eps=1e-5), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(F.rmsnorm(x)), ref_rmsnorm(np.asarray(x, np.float64), eps=1e-6), rtol=1e-6
    )
    # a constant row normalises to zero rather than NaN
    np.testing.assert_array_equal(np.asarray(F.layernorm(jnp.full((1, 4), 7.0))), np.zeros((1, 4)))


# ----------------------------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------------------------


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    ci = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["SAME", "VALID", "int", "pair", "explicit"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    elif kind == "explicit":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        padding = kind
    (pt, pb), (pl, pr) = (
        _pads(padding, 0, 0, kh, kw, stride, dilation)
        if kind not in ("SAME",)
        else ((0, 0), (0, 0))
    )
    # the input must hold at least one (dilated) window once padded
    min_h = max(1, (kh - 1) * dilation[0] + 1 - pt - pb)
    min_w = max(1, (kw - 1) * dilation[1] + 1 - pl - pr)
    h = draw(st.integers(min_h, min_h + 5))
    w = draw(st.integers(min_w, min_w + 5))
    n = draw(st.integers(1, 2))
    return dict(
        x_shape=(n, h, w, ci * groups),
        w_shape=(kh, kw, ci, og * groups),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


def _conv_kwargs(cfg):
    return {key: cfg[key] for key in ("stride", "padding", "dilation", "groups")}


@SETTINGS
@given(dtype=float_dtypes, cfg=conv_configs(), seed=seeds)
def test_conv2d_matches_numpy(dtype, cfg, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, cfg["x_shape"], dtype)
    w, w64 = rand(rng, cfg["w_shape"], dtype)
    with f32_exact(dtype):
        got = F.conv2d(x, w, **_conv_kwargs(cfg))
    kh, kw, ci, _ = cfg["w_shape"]
    assert_close(got, ref_conv2d(x64, w64, **_conv_kwargs(cfg)), dtype, kh * kw * ci)


@SETTINGS
@given(cfg=conv_configs(), seed=seeds)
def test_conv2d_int8_is_exact_int32(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=cfg["x_shape"], dtype=np.int8)
    w = rng.integers(-128, 128, size=cfg["w_shape"], dtype=np.int8)
    got = F.conv2d(jnp.asarray(x), jnp.asarray(w), **_conv_kwargs(cfg))
    assert got.dtype == jnp.int32
    want = ref_conv2d(x.astype(np.int64), w.astype(np.int64), **_conv_kwargs(cfg))
    np.testing.assert_array_equal(np.asarray(got, np.int64), want)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, out_shape",
    [
        ((1, 8, 8, 3), (3, 3, 3, 16), dict(stride=2), (1, 4, 4, 16)),
        ((1, 7, 7, 3), (3, 3, 3, 5), dict(stride=2), (1, 4, 4, 5)),  # SAME: ceil(7 / 2)
        ((2, 7, 9, 4), (3, 2, 4, 6), dict(padding="VALID"), (2, 5, 8, 6)),
        ((1, 7, 7, 4), (3, 3, 1, 4), dict(groups=4, padding="valid"), (1, 5, 5, 4)),  # depthwise
        ((1, 9, 9, 2), (3, 3, 2, 2), dict(dilation=2, padding="VALID"), (1, 5, 5, 2)),
        ((1, 5, 5, 2), (3, 3, 2, 2), dict(padding=((0, 2), (1, 0))), (1, 5, 4, 2)),
    ],
)
def test_conv2d_output_shapes(x_shape, w_shape, kwargs, out_shape):
    out = F.conv2d(jnp.ones(x_shape), jnp.ones(w_shape), **kwargs)
    assert out.shape == out_shape


# ----------------------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------------------


@st.composite
def pool_configs(draw):
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.sampled_from([None, 1, 2, (1, 2), (3, 1)]))
    padding = draw(st.sampled_from(["VALID", "SAME", "same"]))
    h = draw(st.integers(window[0], window[0] + 5))
    w = draw(st.integers(window[1], window[1] + 5))
    return dict(
        x_shape=(draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3))),
        window=window,
        stride=stride,
        padding=padding,
    )


def _pool_ref(x64, cfg, kind):
    stride = cfg["window"] if cfg["stride"] is None else cfg["stride"]
    stride = (stride, stride) if isinstance(stride, int) else stride
    return ref_pool(x64, cfg["window"], stride, cfg["padding"].upper(), kind)


@SETTINGS
@given(dtype=float_dtypes, cfg=pool_configs(), seed=seeds)
def test_max_pool2d_matches_numpy(dtype, cfg, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, cfg["x_shape"], dtype, -3, 3)
    got = F.max_pool2d(x, cfg["window"], cfg["stride"], cfg["padding"])
    # max is exact in every dtype
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(got, np.float64), _pool_ref(x64, cfg, "max"))


@SETTINGS
@given(dtype=float_dtypes, cfg=pool_configs(), seed=seeds)
def test_avg_pool2d_matches_numpy(dtype, cfg, seed):
    rng = np.random.default_rng(seed)
    x, x64 = rand(rng, cfg["x_shape"], dtype, -3, 3)
    got = F.avg_pool2d(x, cfg["window"], cfg["stride"], cfg["padding"])
    assert_close(got, _pool_ref(x64, cfg, "avg"), dtype)


def test_pool_defaults_and_same_padding_semantics():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    # window 2, stride = window, VALID
    np.testing.assert_array_equal(np.asarray(F.max_pool2d(x))[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(
        np.asarray(F.avg_pool2d(x))[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]]
    )
    # SAME max pooling ignores the padding even when every value is negative
    neg = -1.0 - jnp.arange(9.0).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(
        np.asarray(F.max_pool2d(neg, 2, padding="SAME"))[0, :, :, 0], [[-1, -3], [-7, -9]]
    )
    # SAME average pooling counts the zero padding in the divisor (count_include_pad)
    ones = jnp.ones((1, 3, 3, 1))
    np.testing.assert_array_equal(
        np.asarray(F.avg_pool2d(ones, 2, padding="SAME"))[0, :, :, 0], [[1, 0.5], [0.5, 0.25]]
    )


# ----------------------------------------------------------------------------------------------
# attention and embedding
# ----------------------------------------------------------------------------------------------


@st.composite
def attention_configs(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    tq = draw(st.integers(1, 5))
    causal = draw(st.booleans())
    # with causal, Tk >= Tq keeps at least one key per query (key 0)
    tk = draw(st.integers(tq if causal else 1, 6))
    d, dv = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    mask = draw(st.sampled_from([None, (b, h, tq, tk), (tq, tk), (b, 1, 1, tk), (1, h, tq, 1)]))
    scale = draw(st.sampled_from([None, 0.5, 2.0]))
    return dict(b=b, h=h, tq=tq, tk=tk, d=d, dv=dv, causal=causal, mask=mask, scale=scale)


def _random_mask(rng, shape):
    m = rng.random(shape) < 0.6
    m[..., 0] = True  # every query keeps key 0, which causal masking never removes when Tk >= Tq
    return m


@SETTINGS
@given(dtype=float_dtypes, cfg=attention_configs(), seed=seeds)
def test_attention_matches_numpy(dtype, cfg, seed):
    rng = np.random.default_rng(seed)
    q, q64 = rand(rng, (cfg["b"], cfg["tq"], cfg["h"], cfg["d"]), dtype)
    k, k64 = rand(rng, (cfg["b"], cfg["tk"], cfg["h"], cfg["d"]), dtype)
    v, v64 = rand(rng, (cfg["b"], cfg["tk"], cfg["h"], cfg["dv"]), dtype)
    mask = None if cfg["mask"] is None else _random_mask(rng, cfg["mask"])
    with f32_exact(dtype):
        got = F.attention(
            q,
            k,
            v,
            causal=cfg["causal"],
            mask=None if mask is None else jnp.asarray(mask),
            scale=cfg["scale"],
        )
    want = ref_attention(q64, k64, v64, causal=cfg["causal"], mask=mask, scale=cfg["scale"])
    assert_close(got, want, dtype, max(cfg["d"], cfg["tk"]))


def test_attention_causal_is_lower_triangular_and_aligned_to_the_end():
    # v = one-hot of the key position, so the output row is the attention distribution itself
    tq, tk = 3, 5
    q = jnp.zeros((1, tq, 1, 2))
    k = jnp.zeros((1, tk, 1, 2))
    v = jnp.eye(tk).reshape(1, tk, 1, tk)
    p = np.asarray(F.attention(q, k, v, causal=True))[0, :, 0, :]
    visible = np.arange(tq)[:, None] + (tk - tq) >= np.arange(tk)[None, :]
    np.testing.assert_allclose(p, visible / visible.sum(axis=1, keepdims=True), atol=1e-7)
    # equal lengths: strictly lower triangular (query 0 sees only key 0)
    p2 = np.asarray(F.attention(q, q, jnp.eye(tq).reshape(1, tq, 1, tq), causal=True))[0, :, 0, :]
    np.testing.assert_allclose(
        p2, np.tril(np.ones((tq, tq))) / np.arange(1, tq + 1)[:, None], atol=1e-7
    )


@SETTINGS
@given(
    dtype=float_dtypes,
    vocab=st.integers(1, 10),
    f=st.integers(1, 6),
    ids_shape=npst.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
    ids_dtype=st.sampled_from([np.int32, np.int8, np.uint8, np.int16]),
    seed=seeds,
)
def test_embedding_matches_numpy(dtype, vocab, f, ids_shape, ids_dtype, seed):
    rng = np.random.default_rng(seed)
    table, t64 = rand(rng, (vocab, f), dtype, -3, 3)
    ids = rng.integers(0, vocab, size=ids_shape).astype(ids_dtype)
    got = F.embedding(table, jnp.asarray(ids))
    assert got.dtype == np.dtype(dtype)
    # a lookup copies rows: exact
    np.testing.assert_array_equal(np.asarray(got, np.float64), t64[ids])


# ----------------------------------------------------------------------------------------------
# gradients (float64)
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def x64():
    """Enables float64 for one test and restores the previous setting afterwards."""
    before = jax.config.jax_enable_x64
    if callable(getattr(jax, "enable_x64", None)):  # a context manager in recent JAX
        with jax.enable_x64(True):
            yield
    else:
        jax.config.update("jax_enable_x64", True)
        try:
            yield
        finally:
            jax.config.update("jax_enable_x64", before)
    assert jax.config.jax_enable_x64 == before


def _r(shape, lo=-1.0, hi=1.0, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, size=shape), dtype=jnp.float64)


def _away_from_zero(shape, seed=0):
    """Values with |x| in [0.2, 2]: relu is smooth there for a finite-difference step."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(
        rng.uniform(0.2, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape), jnp.float64
    )


def _distinct(shape, seed=0):
    """A permutation of evenly spaced values 0.1 apart: no ties inside any pooling window."""
    n = int(np.prod(shape))
    return jnp.asarray(
        np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - 0.05 * n, jnp.float64
    )


def _grad_cases():
    """name -> (function, float64 args, derivative order checked).

    Order 2 (jvp-of-jvp, vjp-of-vjp ...) for one representative of each kind of op (contraction,
    broadcasting binary, piecewise-linear, transcendental, reduction, normalisation); order 1 for
    the rest, whose second-order checks mostly re-test JAX's own rules at a high compile cost.
    """
    mask = np.random.default_rng(3).random((2, 1, 3, 5)) < 0.6
    mask[..., 0] = True
    mask = jnp.asarray(mask)
    ids = jnp.array([[0, 2, 2], [4, 0, 1]])
    return {
        "matmul_2d": (F.matmul, (_r((3, 4)), _r((4, 5), seed=1)), 2),
        "matmul_batched": (F.matmul, (_r((2, 3, 4)), _r((2, 4, 5), seed=1)), 1),
        "matmul_shared_b": (F.matmul, (_r((2, 3, 4)), _r((4, 5), seed=1)), 1),
        "add_broadcast": (F.add, (_r((2, 1, 3)), _r((4, 1), seed=1)), 1),
        "sub_broadcast": (F.sub, (_r((3,)), _r((2, 3), seed=1)), 1),
        "mul_broadcast": (F.mul, (_r((2, 3)), _r((2, 1), seed=1)), 2),
        "bias_add": (F.bias_add, (_r((2, 3, 4)), _r((4,), seed=1)), 1),
        "relu": (F.relu, (_away_from_zero((3, 4)),), 2),
        "gelu_tanh": (lambda x: F.gelu(x, approximate=True), (_r((3, 4), -3, 3),), 1),
        "gelu_erf": (lambda x: F.gelu(x, approximate=False), (_r((3, 4), -3, 3),), 2),
        "sigmoid": (F.sigmoid, (_r((3, 4), -3, 3),), 2),
        "tanh": (F.tanh, (_r((3, 4), -3, 3),), 1),
        "silu": (F.silu, (_r((3, 4), -3, 3),), 1),
        "softmax_last": (F.softmax, (_r((3, 4), -3, 3),), 2),
        "softmax_axis0": (lambda x: F.softmax(x, axis=0), (_r((3, 4), -3, 3),), 1),
        "layernorm": (F.layernorm, (_r((3, 5), -3, 3),), 1),
        "layernorm_affine": (
            F.layernorm,
            (_r((3, 5), -3, 3), _r((5,), 0.5, 2, seed=1), _r((5,), seed=2)),
            2,
        ),
        "rmsnorm": (F.rmsnorm, (_r((3, 5), -3, 3),), 1),
        "rmsnorm_gamma": (F.rmsnorm, (_r((3, 5), -3, 3), _r((5,), 0.5, 2, seed=1)), 1),
        "conv2d_same_groups_stride": (
            lambda x, w: F.conv2d(x, w, stride=2, groups=2),
            (_r((1, 5, 6, 4)), _r((3, 2, 2, 6), seed=1)),
            1,
        ),
        "conv2d_valid_dilation_explicit": (
            lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2)),
            (_r((1, 6, 5, 2)), _r((2, 2, 2, 3), seed=1)),
            1,
        ),
        "max_pool2d_same_overlap": (
            lambda x: F.max_pool2d(x, 3, 2, "SAME"),
            (_distinct((2, 5, 5, 2)),),
            1,
        ),
        "avg_pool2d_same_overlap": (
            lambda x: F.avg_pool2d(x, 3, 2, "SAME"),
            (_r((2, 5, 5, 2)),),
            1,
        ),
        "attention": (
            F.attention,
            (_r((2, 3, 2, 4), seed=1), _r((2, 3, 2, 4), seed=2), _r((2, 3, 2, 3), seed=3)),
            1,
        ),
        "attention_causal_mask_scale": (
            lambda q, k, v: F.attention(q, k, v, causal=True, mask=mask, scale=0.7),
            (_r((2, 3, 2, 4), seed=1), _r((2, 5, 2, 4), seed=2), _r((2, 5, 2, 3), seed=3)),
            1,
        ),
        "embedding_table": (lambda t: F.embedding(t, ids), (_r((5, 3)),), 1),
    }


GRAD_NAMES = [
    "matmul_2d", "matmul_batched", "matmul_shared_b", "add_broadcast", "sub_broadcast", "mul_broadcast",
    "bias_add", "relu", "gelu_tanh", "gelu_erf", "sigmoid", "tanh", "silu", "softmax_last",
    "softmax_axis0", "layernorm", "layernorm_affine", "rmsnorm", "rmsnorm_gamma",
    "conv2d_same_groups_stride", "conv2d_valid_dilation_explicit", "max_pool2d_same_overlap",
    "avg_pool2d_same_overlap", "attention", "attention_causal_mask_scale", "embedding_table",
]  # fmt: skip


@pytest.mark.parametrize("case", GRAD_NAMES)
def test_gradients_match_finite_differences(x64, case):
    fn, args, order = _grad_cases()[case]
    assert all(a.dtype == jnp.float64 for a in args)
    assert fn(*args).dtype == jnp.float64
    check_grads(fn, args, order=order, modes=("fwd", "rev"))


def test_grad_cases_cover_every_differentiable_op(x64):
    assert list(_grad_cases()) == GRAD_NAMES
    ops = {n.removeprefix("flash.") for n in F.OP_NAMES}
    covered = {op for op in ops for case in GRAD_NAMES if case == op or case.startswith(op + "_")}
    assert covered == ops


def test_relu_gradient_is_a_step(x64):
    x = _away_from_zero((10,))
    g = jax.grad(lambda x: F.relu(x).sum())(x)
    np.testing.assert_array_equal(np.asarray(g), (np.asarray(x) > 0).astype(np.float64))


def test_max_pool_gradient_routes_to_the_argmax(x64):
    x = _distinct((1, 4, 4, 1))
    g = np.asarray(jax.grad(lambda x: F.max_pool2d(x).sum())(x))[0, :, :, 0]
    xv = np.asarray(x)[0, :, :, 0]
    want = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            win = xv[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            r, c = np.unravel_index(np.argmax(win), win.shape)
            want[2 * i + r, 2 * j + c] = 1.0
    np.testing.assert_array_equal(g, want)


def test_embedding_gradient_accumulates_repeated_ids(x64):
    ids = jnp.array([0, 2, 2, 2])
    g = jax.grad(lambda t: F.embedding(t, ids).sum())(_r((4, 3)))
    np.testing.assert_array_equal(np.asarray(g), [[1, 1, 1], [0, 0, 0], [3, 3, 3], [0, 0, 0]])


def test_float64_forward_is_float64(x64):
    a, b = _r((3, 4)), _r((4, 2), seed=1)
    out = F.matmul(a, b)
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(out), np.asarray(a) @ np.asarray(b), rtol=1e-14)
    assert F.softmax(a).dtype == jnp.float64
    assert F.layernorm(a).dtype == jnp.float64


def test_x64_is_off_outside_the_fixture():
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(1.0).dtype == jnp.float32


# ----------------------------------------------------------------------------------------------
# vmap
# ----------------------------------------------------------------------------------------------


def _loop(fn, in_axes, args):
    n = next(a.shape[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = []
    for i in range(n):
        outs.append(
            fn(*[a if ax is None else jnp.take(a, i, axis=ax) for a, ax in zip(args, in_axes)])
        )
    return jnp.stack(outs)


def _check_vmap(fn, in_axes, args, rtol=1e-6, atol=1e-6):
    with jax.default_matmul_precision("highest"):
        got = jax.vmap(fn, in_axes=in_axes)(*args)
        want = _loop(fn, in_axes, args)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=atol)


def _f(rng, shape, lo=-1.0, hi=1.0, dtype=np.float32):
    return jnp.asarray(rng.uniform(lo, hi, size=shape).astype(np.dtype(dtype)))


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0), (1, 2)])
@pytest.mark.parametrize("b_rank", [2, 3])
def test_vmap_matmul(in_axes, b_rank):
    rng = np.random.default_rng(0)
    v = 5
    b_shape = (2, 4, 6) if b_rank == 3 else (4, 6)
    a = _f(rng, (v, 2, 3, 4)) if in_axes[0] is not None else _f(rng, (2, 3, 4))
    b = _f(rng, (v, *b_shape)) if in_axes[1] is not None else _f(rng, b_shape)
    if in_axes == (1, 2):  # batch axes in the middle
        a, b = jnp.moveaxis(a, 0, 1), jnp.moveaxis(b, 0, 2)
    _check_vmap(F.matmul, in_axes, (a, b))


@SETTINGS
@given(cfg=conv_configs(), in_axes=st.sampled_from([(0, 0), (0, None), (None, 0)]), seed=seeds)
def test_vmap_conv2d(cfg, in_axes, seed):
    rng = np.random.default_rng(seed)
    v = 3
    x = _f(rng, ((v,) if in_axes[0] is not None else ()) + cfg["x_shape"])
    w = _f(rng, ((v,) if in_axes[1] is not None else ()) + cfg["w_shape"])
    _check_vmap(lambda x, w: F.conv2d(x, w, **_conv_kwargs(cfg)), in_axes, (x, w), atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_vmap_softmax(axis):
    x = _f(np.random.default_rng(0), (4, 3, 5), -3, 3)
    _check_vmap(lambda x: F.softmax(x, axis=axis), (0,), (x,))


@pytest.mark.parametrize("in_axes", [(0, None, None), (0, 0, 0), (1, None, 0)])
def test_vmap_layernorm(in_axes):
    rng = np.random.default_rng(0)
    x = _f(rng, (4, 3, 6), -3, 3) if in_axes[0] == 0 else _f(rng, (3, 4, 6), -3, 3)
    g = _f(rng, (4, 6), 0.5, 2) if in_axes[1] == 0 else _f(rng, (6,), 0.5, 2)
    b = _f(rng, (4, 6)) if in_axes[2] == 0 else _f(rng, (6,))
    _check_vmap(F.layernorm, in_axes, (x, g, b))


def test_vmap_rmsnorm():
    rng = np.random.default_rng(0)
    _check_vmap(F.rmsnorm, (0, None), (_f(rng, (4, 3, 6), -3, 3), _f(rng, (6,), 0.5, 2)))


@pytest.mark.parametrize("causal, mask_axis", [(False, None), (True, 0), (True, "shared")])
def test_vmap_attention(causal, mask_axis):
    rng = np.random.default_rng(0)
    v = 3
    q, k, val = _f(rng, (v, 2, 3, 2, 4)), _f(rng, (v, 2, 5, 2, 4)), _f(rng, (v, 2, 5, 2, 3))
    if mask_axis is None:
        _check_vmap(lambda q, k, val: F.attention(q, k, val, causal=causal), (0, 0, 0), (q, k, val))
        return
    m = rng.random((v, 2, 2, 3, 5) if mask_axis == 0 else (2, 2, 3, 5)) < 0.6
    m[..., 0] = True
    m = jnp.asarray(m)
    axes = (0, 0, 0, 0 if mask_axis == 0 else None)
    _check_vmap(
        lambda q, k, val, m: F.attention(q, k, val, causal=causal, mask=m), axes, (q, k, val, m)
    )


@pytest.mark.parametrize("approximate", [True, False])
def test_vmap_gelu(approximate):
    x = _f(np.random.default_rng(0), (4, 3, 5), -3, 3)
    _check_vmap(lambda x: F.gelu(x, approximate=approximate), (0,), (x,), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, fn, shapes, in_axes",
    [
        ("add", F.add, [(4, 2, 3), (3,)], (0, None)),
        ("mul", F.mul, [(4, 2, 3), (4, 2, 1)], (0, 0)),
        ("bias_add", F.bias_add, [(4, 2, 3), (4, 3)], (0, 0)),
        ("max_pool2d", lambda x: F.max_pool2d(x, 2, 1, "SAME"), [(3, 1, 4, 4, 2)], (0,)),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, "SAME"), [(3, 1, 5, 5, 2)], (0,)),
        ("silu", F.silu, [(4, 3)], (0,)),
    ],
)
def test_vmap_other_ops(name, fn, shapes, in_axes):
    rng = np.random.default_rng(0)
    _check_vmap(fn, in_axes, tuple(_f(rng, s) for s in shapes))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0)])
def test_vmap_embedding(in_axes):
    rng = np.random.default_rng(0)
    table = _f(rng, (3, 5, 4)) if in_axes[0] == 0 else _f(rng, (5, 4))
    ids = jnp.asarray(rng.integers(0, 5, size=(3, 2, 3) if in_axes[1] == 0 else (2, 3)), jnp.int32)
    _check_vmap(F.embedding, in_axes, (table, ids), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# names in the jaxpr and the StableHLO
# ----------------------------------------------------------------------------------------------

_IDS = jnp.array([0, 2, 1])
NAME_CASES = {
    "matmul": (F.matmul, [(2, 3), (3, 4)]),
    "add": (F.add, [(2, 3), (3,)]),
    "sub": (F.sub, [(2, 3), (2, 3)]),
    "mul": (F.mul, [(2, 3), (2, 1)]),
    "bias_add": (F.bias_add, [(2, 3), (3,)]),
    "relu": (F.relu, [(2, 3)]),
    "gelu": (F.gelu, [(2, 3)]),
    "sigmoid": (F.sigmoid, [(2, 3)]),
    "tanh": (F.tanh, [(2, 3)]),
    "silu": (F.silu, [(2, 3)]),
    "softmax": (F.softmax, [(2, 3)]),
    "layernorm": (F.layernorm, [(2, 3), (3,), (3,)]),
    "rmsnorm": (F.rmsnorm, [(2, 3), (3,)]),
    "conv2d": (F.conv2d, [(1, 5, 5, 2), (3, 3, 2, 4)]),
    "max_pool2d": (F.max_pool2d, [(1, 4, 4, 2)]),
    "avg_pool2d": (F.avg_pool2d, [(1, 4, 4, 2)]),
    "attention": (lambda q, k, v: F.attention(q, k, v, causal=True), [(1, 3, 2, 4)] * 3),
    "embedding": (lambda t: F.embedding(t, _IDS), [(3, 4)]),
}


def _name_args(op, dtype=np.float32):
    rng = np.random.default_rng(0)
    fn, shapes = NAME_CASES[op]
    return fn, tuple(_f(rng, s, dtype=dtype) for s in shapes)


def test_op_names_registry():
    assert sorted(F.OP_NAMES) == sorted("flash." + op for op in NAME_CASES)
    assert len(set(F.OP_NAMES)) == len(F.OP_NAMES)
    assert F.FLASH_PREFIX == "flash."


def _jaxpr_names(text):
    return set(re.findall(r"name=(flash\.\w+)", text))


def _hlo_funcs(text):
    return set(re.findall(r"func\.func private @(flash\.\w+)", text)), set(
        re.findall(r"call @(flash\.\w+)", text)
    )


@pytest.mark.parametrize("op", list(NAME_CASES))
def test_name_in_jaxpr_and_stablehlo(op):
    fn, args = _name_args(op)
    jaxpr = str(jax.make_jaxpr(fn)(*args))
    assert re.search(rf"name=flash\.{op}\b", jaxpr)
    assert _jaxpr_names(jaxpr) == {f"flash.{op}"}
    hlo = jax.jit(fn).lower(*args).as_text()
    defined, called = _hlo_funcs(hlo)
    assert f"@flash.{op}" in hlo
    assert defined == called == {f"flash.{op}"}


@pytest.mark.parametrize("op", list(NAME_CASES))
def test_name_survives_grad(op):
    fn, args = _name_args(op)
    argnums = tuple(range(len(args)))
    g = jax.grad(lambda *a: fn(*a).astype(jnp.float32).sum(), argnums=argnums)
    jaxpr = str(jax.make_jaxpr(g)(*args))
    assert re.search(rf"name=flash\.{op}\b", jaxpr)
    assert _jaxpr_names(jaxpr) == {f"flash.{op}"}  # forward and backward pieces share the name
    hlo = jax.jit(g).lower(*args).as_text()
    assert f"@flash.{op}" in hlo
    defined, called = _hlo_funcs(hlo)
    assert f"flash.{op}" in defined and f"flash.{op}" in called


@pytest.mark.parametrize("op", ["matmul", "conv2d", "softmax", "attention", "gelu"])
def test_name_survives_vmap(op):
    fn, args = _name_args(op)
    batched = tuple(jnp.stack([a, a]) for a in args)
    jaxpr = str(jax.make_jaxpr(jax.vmap(fn))(*batched))
    assert re.search(rf"name=flash\.{op}\b", jaxpr)
    assert f"@flash.{op}" in jax.jit(jax.vmap(fn)).lower(*batched).as_text()


def test_names_of_a_composed_program():
    def block(x, w, g):
        return F.gelu(F.matmul(F.layernorm(x, g), w))

    rng = np.random.default_rng(0)
    args = (_f(rng, (2, 4)), _f(rng, (4, 3)), _f(rng, (4,)))
    assert _jaxpr_names(str(jax.make_jaxpr(block)(*args))) == {
        "flash.layernorm",
        "flash.matmul",
        "flash.gelu",
    }
    defined, called = _hlo_funcs(jax.jit(block).lower(*args).as_text())
    assert defined == called == {"flash.layernorm", "flash.matmul", "flash.gelu"}


# ----------------------------------------------------------------------------------------------
# output dtypes and abstract evaluation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("op", list(NAME_CASES))
def test_low_precision_dtype_is_preserved(op, dtype):
    fn, args = _name_args(op, dtype)
    assert all(a.dtype == np.dtype(dtype) for a in args)
    out = fn(*args)
    assert out.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(np.asarray(out, np.float32)))


def test_int8_ops_return_int32():
    a = jnp.ones((2, 3), jnp.int8)
    assert F.matmul(a, jnp.ones((3, 4), jnp.int8)).dtype == jnp.int32
    assert F.matmul(jnp.ones((5, 2, 3), jnp.int8), jnp.ones((5, 3, 4), jnp.int8)).dtype == jnp.int32
    assert (
        F.conv2d(jnp.ones((1, 4, 4, 2), jnp.int8), jnp.ones((3, 3, 2, 2), jnp.int8)).dtype
        == jnp.int32
    )
    hlo = jax.jit(F.matmul).lower(a, jnp.ones((3, 4), jnp.int8)).as_text()
    assert "-> tensor<2x4xi32>" in hlo


def test_eval_shape_with_shape_dtype_structs():
    sds = jax.ShapeDtypeStruct
    out = jax.eval_shape(F.matmul, sds((7, 2, 3), jnp.bfloat16), sds((3, 5), jnp.bfloat16))
    assert out.shape == (7, 2, 5) and out.dtype == jnp.bfloat16
    out = jax.eval_shape(
        lambda x, w: F.conv2d(x, w, stride=2),
        sds((1, 9, 9, 4), jnp.float32),
        sds((3, 3, 4, 8), jnp.float32),
    )
    assert out.shape == (1, 5, 5, 8)
    # shape checks still run on abstract values
    with pytest.raises(ValueError, match="contracting dimensions differ"):
        jax.eval_shape(F.matmul, sds((2, 3), jnp.float32), sds((4, 5), jnp.float32))
