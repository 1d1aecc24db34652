"""Bad inputs to the Flash ops: each raises TypeError (wrong kind or dtype) or ValueError (wrong
shape or option) at trace time, with a message naming the op, what was expected and what was given.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import perfjax.ops as F

f32, bf16, f16 = jnp.float32, jnp.bfloat16, jnp.float16


def ones(*shape, dtype=f32):
    return jnp.ones(shape, dtype)


def esc(text: str) -> str:
    return re.escape(text)


Q = ones(1, 3, 2, 4)  # (B, T, H, D)
X4 = ones(1, 5, 5, 2)  # NHWC
W4 = ones(3, 3, 2, 4)  # HWIO


# ----------------------------------------------------------------------------------------------
# matmul
# ----------------------------------------------------------------------------------------------


def test_matmul_contracting_dims_differ():
    with pytest.raises(
        ValueError,
        match=esc("contracting dimensions differ: a is (2, 3) (K=3) and b is (4, 5) (K=4)"),
    ) as e:
        F.matmul(ones(2, 3), ones(4, 5))
    assert "flash.matmul" in str(e.value)
    assert "last dimension must equal b's second-to-last" in str(e.value)


def test_matmul_contracting_dims_differ_batched():
    with pytest.raises(ValueError, match=esc("(K=4) and b is (2, 3, 5) (K=3)")):
        F.matmul(ones(2, 3, 4), ones(2, 3, 5))


def test_matmul_batch_dims_differ():
    with pytest.raises(
        ValueError,
        match=esc(
            "flash.matmul: batch dimensions differ: a(2, 3, 4) has batch (2,), b(5, 4, 6) has (5,)"
        ),
    ):
        F.matmul(ones(2, 3, 4), ones(5, 4, 6))


def test_matmul_batch_dims_are_not_broadcast():
    with pytest.raises(
        ValueError, match=esc("has batch (2, 3)") + ".*" + esc("has (1, 3)") + ".*jnp.broadcast_to"
    ):
        F.matmul(ones(2, 3, 4, 5), ones(1, 3, 5, 6))


def test_matmul_b_rank_neither_2_nor_rank_of_a():
    with pytest.raises(
        ValueError, match=esc("b must have rank 2 or the rank of a (3), got shape (2, 2, 3, 4)")
    ):
        F.matmul(ones(2, 2, 3), ones(2, 2, 3, 4))


@pytest.mark.parametrize(
    "a, b, text",
    [
        (
            (3,),
            (3, 4),
            "argument 'a' must have rank >= 2 ((..., M, K)), got rank 1 with shape (3,)",
        ),
        ((), (3, 4), "argument 'a' must have rank >= 2 ((..., M, K)), got rank 0 with shape ()"),
        (
            (2, 3),
            (3,),
            "argument 'b' must have rank >= 2 ((K, N) or (..., K, N)), got rank 1 with shape (3,)",
        ),
    ],
)
def test_matmul_rank_too_small(a, b, text):
    with pytest.raises(ValueError, match=esc("flash.matmul: " + text)):
        F.matmul(ones(*a), ones(*b))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.int16, jnp.bool_, jnp.complex64])
def test_matmul_unsupported_dtype(dtype):
    with pytest.raises(
        TypeError,
        match=esc(
            f"flash.matmul: argument 'a' has dtype {np.dtype(dtype)}; expected one of: float32, bfloat16, float16, int8"
        ),
    ):
        F.matmul(ones(2, 3, dtype=dtype), ones(3, 4, dtype=dtype))


@pytest.mark.parametrize(
    "da, db",
    [
        (f32, bf16),
        (bf16, f32),
        (f16, bf16),
        (jnp.int8, f32),
        (f32, jnp.int8),
        (jnp.int8, jnp.int32),
    ],
)
def test_matmul_mixed_dtypes(da, db):
    text = f"flash.matmul: all arguments must have the same dtype, got a: {np.dtype(da)}, b: {np.dtype(db)}"
    with pytest.raises(TypeError, match=esc(text) + ".*never promote"):
        F.matmul(ones(2, 3, dtype=da), ones(3, 4, dtype=db))


@pytest.mark.parametrize("precision", ["bogus", "fastest", 3])
def test_matmul_bad_precision(precision):
    with pytest.raises(
        ValueError,
        match=r"precision must be one of None, \['default', 'high', 'highest'\] or a lax.Precision, got "
        + esc(repr(precision)),
    ):
        F.matmul(ones(2, 3), ones(3, 4), precision=precision)


# ----------------------------------------------------------------------------------------------
# non-array inputs (as_array)
# ----------------------------------------------------------------------------------------------

NON_ARRAYS = [
    ("abc", "str: 'abc'"),
    ({"x": 1}, "dict: {'x': 1}"),
    ([[1.0, 2.0], [3.0, 4.0]], "list: [[1.0, 2.0], [3.0, 4.0]]"),
    ((1.0, 2.0), "tuple: (1.0, 2.0)"),
    (None, "NoneType: None"),
    (True, "bool: True"),
]

# op name -> (call with the bad value as the first argument, the argument's name)
FIRST_ARG = {
    "matmul": (lambda bad: F.matmul(bad, ones(2, 3)), "a"),
    "add": (lambda bad: F.add(bad, ones(2)), "a"),
    "sub": (lambda bad: F.sub(bad, ones(2)), "a"),
    "mul": (lambda bad: F.mul(bad, ones(2)), "a"),
    "bias_add": (lambda bad: F.bias_add(bad, ones(2)), "x"),
    "relu": (F.relu, "x"),
    "gelu": (F.gelu, "x"),
    "sigmoid": (F.sigmoid, "x"),
    "tanh": (F.tanh, "x"),
    "silu": (F.silu, "x"),
    "softmax": (F.softmax, "x"),
    "layernorm": (F.layernorm, "x"),
    "rmsnorm": (F.rmsnorm, "x"),
    "conv2d": (lambda bad: F.conv2d(bad, W4), "x"),
    "max_pool2d": (F.max_pool2d, "x"),
    "avg_pool2d": (F.avg_pool2d, "x"),
    "attention": (lambda bad: F.attention(bad, Q, Q), "q"),
    "embedding": (lambda bad: F.embedding(bad, jnp.array([0])), "table"),
}

# op name -> (call with the bad value as a later argument, the argument's name)
LATER_ARG = {
    "matmul": (lambda bad: F.matmul(ones(2, 3), bad), "b"),
    "add": (lambda bad: F.add(ones(2), bad), "b"),
    "bias_add": (lambda bad: F.bias_add(ones(2, 3), bad), "bias"),
    "layernorm_gamma": (lambda bad: F.layernorm(ones(2, 3), bad), "gamma"),
    "layernorm_beta": (lambda bad: F.layernorm(ones(2, 3), None, bad), "beta"),
    "rmsnorm_gamma": (lambda bad: F.rmsnorm(ones(2, 3), bad), "gamma"),
    "conv2d": (lambda bad: F.conv2d(X4, bad), "w"),
    "attention_k": (lambda bad: F.attention(Q, bad, Q), "k"),
    "attention_v": (lambda bad: F.attention(Q, Q, bad), "v"),
    "attention_mask": (lambda bad: F.attention(Q, Q, Q, mask=bad), "mask"),
    "embedding": (lambda bad: F.embedding(ones(3, 2), bad), "ids"),
}


def test_every_op_is_covered_by_the_non_array_tests():
    assert {n.removeprefix("flash.") for n in F.OP_NAMES} == set(FIRST_ARG)


@pytest.mark.parametrize("bad, shown", NON_ARRAYS, ids=[s.split(":")[0] for _, s in NON_ARRAYS])
@pytest.mark.parametrize("op", list(FIRST_ARG))
def test_non_array_first_argument(op, bad, shown):
    call, arg = FIRST_ARG[op]
    op_name = op.split("_")[0] if op not in ("bias_add", "max_pool2d", "avg_pool2d") else op
    text = f"flash.{op_name}: argument '{arg}' must be an array (jax.Array or numpy.ndarray), got {shown}"
    with pytest.raises(TypeError, match=esc(text) + r".*jnp\.asarray"):
        call(bad)


@pytest.mark.parametrize("bad, shown", NON_ARRAYS[:3], ids=["str", "dict", "list"])
@pytest.mark.parametrize("case", list(LATER_ARG))
def test_non_array_later_argument(case, bad, shown):
    call, arg = LATER_ARG[case]
    with pytest.raises(
        TypeError, match=esc(f"argument '{arg}' must be an array") + ".*" + esc(f"got {shown}")
    ):
        call(bad)


def test_non_array_message_truncates_long_values():
    with pytest.raises(TypeError, match=r"got str: 'x+\. Convert") as e:
        F.relu("x" * 1000)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("op", list(FIRST_ARG))
def test_shape_dtype_struct_passed_eagerly(op):
    call, arg = FIRST_ARG[op]
    sds = jax.ShapeDtypeStruct((1, 3, 2, 4), jnp.float32)
    op_name = op if op in ("bias_add", "max_pool2d", "avg_pool2d") else op.split("_")[0]
    with pytest.raises(
        TypeError,
        match=esc(
            f"flash.{op_name}: argument '{arg}' is a jax.ShapeDtypeStruct, which has no values"
        )
        + ".*jax.jit",
    ):
        call(sds)


def test_shape_dtype_struct_second_argument():
    sds = jax.ShapeDtypeStruct((3, 4), jnp.float32)
    with pytest.raises(
        TypeError, match=esc("flash.matmul: argument 'b' is a jax.ShapeDtypeStruct")
    ):
        F.matmul(ones(2, 3), sds)


# ----------------------------------------------------------------------------------------------
# elementwise
# ----------------------------------------------------------------------------------------------

FLOAT_TEXT = "expected one of: float32, bfloat16, float16 (float64 with jax_enable_x64)"


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.int32, jnp.int8, jnp.bool_])
def test_binary_unsupported_dtype(op, dtype):
    with pytest.raises(
        TypeError, match=esc(f"flash.{op}: argument 'a' has dtype {np.dtype(dtype)}; {FLOAT_TEXT}")
    ):
        getattr(F, op)(ones(2, dtype=dtype), ones(2, dtype=dtype))


def test_binary_unsupported_dtype_second_argument():
    with pytest.raises(
        TypeError, match=esc(f"flash.add: argument 'b' has dtype complex64; {FLOAT_TEXT}")
    ):
        F.add(ones(2), ones(2, dtype=jnp.complex64))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@pytest.mark.parametrize("da, db", [(f32, bf16), (bf16, f16), (f16, f32)])
def test_binary_mixed_dtypes(op, da, db):
    text = f"flash.{op}: all arguments must have the same dtype, got a: {np.dtype(da)}, b: {np.dtype(db)}"
    with pytest.raises(TypeError, match=esc(text)):
        getattr(F, op)(ones(2, 3, dtype=da), ones(3, dtype=db))


@pytest.mark.parametrize(
    "sa, sb", [((2, 3), (4,)), ((2, 3), (3, 2)), ((5, 1, 3), (2, 4, 3)), ((3,), (2, 4))]
)
def test_binary_shapes_do_not_broadcast(sa, sb):
    text = f"flash.mul: shapes {sa} ('a') and {sb} ('b') do not broadcast"
    with pytest.raises(ValueError, match=esc(text) + ".*trailing dimensions must be equal or 1"):
        F.mul(ones(*sa), ones(*sb))


def test_bias_add_shape_mismatch():
    with pytest.raises(
        ValueError,
        match=esc(
            "flash.bias_add: bias has 4 entries but x(2, 3) has 3 features in its last dimension"
        ),
    ):
        F.bias_add(ones(2, 3), ones(4))


@pytest.mark.parametrize("shape", [(1, 3), (3, 1), ()])
def test_bias_add_bias_must_be_1d(shape):
    text = f"flash.bias_add: argument 'bias' must have rank 1 ((features,)), got rank {len(shape)} with shape {shape}"
    with pytest.raises(ValueError, match=esc(text)):
        F.bias_add(ones(2, 3), ones(*shape))


def test_bias_add_x_rank_0():
    with pytest.raises(
        ValueError,
        match=esc("flash.bias_add: argument 'x' must have rank >= 1, got rank 0 with shape ()"),
    ):
        F.bias_add(ones(), ones(1))


def test_bias_add_dtypes():
    with pytest.raises(
        TypeError, match=esc(f"flash.bias_add: argument 'x' has dtype int32; {FLOAT_TEXT}")
    ):
        F.bias_add(ones(2, 3, dtype=jnp.int32), ones(3, dtype=jnp.int32))
    with pytest.raises(
        TypeError,
        match=esc(
            "flash.bias_add: all arguments must have the same dtype, got x: float32, bias: bfloat16"
        ),
    ):
        F.bias_add(ones(2, 3), ones(3, dtype=bf16))


UNARY = {
    "relu": F.relu,
    "gelu": F.gelu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "silu": F.silu,
    "softmax": F.softmax,
    "layernorm": F.layernorm,
    "rmsnorm": F.rmsnorm,
    "max_pool2d": F.max_pool2d,
    "avg_pool2d": F.avg_pool2d,
}


@pytest.mark.parametrize("op", list(UNARY))
@pytest.mark.parametrize("dtype", [jnp.bool_, jnp.int32, jnp.int8, jnp.uint8, jnp.complex64])
def test_unary_unsupported_dtype(op, dtype):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.{op}: argument 'x' has dtype {np.dtype(dtype)}; {FLOAT_TEXT}")
        + r".*astype",
    ):
        UNARY[op](ones(1, 4, 4, 2, dtype=dtype))


def test_python_int_becomes_int32_and_is_rejected():
    with pytest.raises(
        TypeError, match=esc(f"flash.relu: argument 'x' has dtype int32; {FLOAT_TEXT}")
    ):
        F.relu(3)


# ----------------------------------------------------------------------------------------------
# softmax and normalisation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis, ndim", [(2, 2), (-3, 2), (1, 1), (5, 3), (-4, 3)])
def test_softmax_axis_out_of_range(axis, ndim):
    text = f"flash.softmax: axis {axis} is out of range for an input of rank {ndim} (valid: {-ndim} .. {ndim - 1})"
    with pytest.raises(ValueError, match=esc(text)):
        F.softmax(ones(*([3] * ndim)), axis=axis)


@pytest.mark.parametrize(
    "axis, shown",
    [
        (1.0, "float: 1.0"),
        (True, "bool: True"),
        (None, "NoneType: None"),
        ((0, 1), "tuple: (0, 1)"),
    ],
)
def test_softmax_axis_not_an_int(axis, shown):
    with pytest.raises(TypeError, match=esc(f"flash.softmax: axis must be an int, got {shown}")):
        F.softmax(ones(2, 3), axis=axis)


def test_softmax_rank_0():
    with pytest.raises(
        ValueError,
        match=esc("flash.softmax: argument 'x' must have rank >= 1, got rank 0 with shape ()"),
    ):
        F.softmax(ones())


@pytest.mark.parametrize("param", ["gamma", "beta"])
@pytest.mark.parametrize("shape", [(4,), (1, 3), (3, 1), ()])
def test_layernorm_param_shape_mismatch(param, shape):
    kwargs = {param: ones(*shape)}
    text = f"flash.layernorm: {param} must have shape (3,) to match the last dimension of x(2, 3), got {shape}"
    with pytest.raises(ValueError, match=esc(text)):
        F.layernorm(ones(2, 3), **kwargs)


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_rmsnorm_gamma_shape_mismatch(shape):
    text = f"flash.rmsnorm: gamma must have shape (3,) to match the last dimension of x(2, 3), got {shape}"
    with pytest.raises(ValueError, match=esc(text)):
        F.rmsnorm(ones(2, 3), ones(*shape))


@pytest.mark.parametrize("op", ["layernorm", "rmsnorm"])
def test_norm_param_dtype_mismatch(op):
    text = f"flash.{op}: all arguments must have the same dtype, got x: bfloat16, gamma: float32"
    with pytest.raises(TypeError, match=esc(text)):
        getattr(F, op)(ones(2, 3, dtype=bf16), ones(3))


@pytest.mark.parametrize("op", ["layernorm", "rmsnorm"])
def test_norm_rank_0(op):
    with pytest.raises(
        ValueError,
        match=esc(f"flash.{op}: argument 'x' must have rank >= 1, got rank 0 with shape ()"),
    ):
        getattr(F, op)(ones())


def test_layernorm_beta_dtype_mismatch():
    with pytest.raises(TypeError, match=esc("got x: float32, beta: float16")):
        F.layernorm(ones(2, 3), ones(3), ones(3, dtype=f16))


# ----------------------------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, w, text",
    [
        (
            (5, 5, 2),
            (3, 3, 2, 4),
            "argument 'x' must have rank 4 (NHWC), got rank 3 with shape (5, 5, 2)",
        ),
        (
            (1, 1, 5, 5, 2),
            (3, 3, 2, 4),
            "argument 'x' must have rank 4 (NHWC), got rank 5 with shape (1, 1, 5, 5, 2)",
        ),
        (
            (1, 5, 5, 2),
            (3, 3, 2),
            "argument 'w' must have rank 4 (HWIO), got rank 3 with shape (3, 3, 2)",
        ),
    ],
)
def test_conv2d_wrong_rank(x, w, text):
    with pytest.raises(ValueError, match=esc("flash.conv2d: " + text)):
        F.conv2d(ones(*x), ones(*w))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_, jnp.complex64])
def test_conv2d_unsupported_dtype(dtype):
    with pytest.raises(
        TypeError,
        match=esc(
            f"flash.conv2d: argument 'x' has dtype {np.dtype(dtype)}; expected one of: float32, bfloat16, float16, int8"
        ),
    ):
        F.conv2d(ones(1, 5, 5, 2, dtype=dtype), ones(3, 3, 2, 4, dtype=dtype))


@pytest.mark.parametrize("dx, dw", [(f32, bf16), (jnp.int8, f32), (f16, f32)])
def test_conv2d_mixed_dtypes(dx, dw):
    with pytest.raises(
        TypeError,
        match=esc(
            f"flash.conv2d: all arguments must have the same dtype, got x: {np.dtype(dx)}, w: {np.dtype(dw)}"
        ),
    ):
        F.conv2d(ones(1, 5, 5, 2, dtype=dx), ones(3, 3, 2, 4, dtype=dw))


@pytest.mark.parametrize("padding", ["FULL", "", "causal", "SAMEISH"])
def test_conv2d_bad_padding_string(padding):
    with pytest.raises(
        ValueError,
        match=esc(
            f"flash.conv2d: padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}"
        ),
    ):
        F.conv2d(X4, W4, padding=padding)


@pytest.mark.parametrize(
    "padding, shown",
    [
        (-1, "((-1, -1), (-1, -1))"),
        ((0, -2), "((0, 0), (-2, -2))"),
        (((1, 1), (0, -1)), "((1, 1), (0, -1))"),
    ],
)
def test_conv2d_negative_padding(padding, shown):
    with pytest.raises(
        ValueError, match=esc(f"flash.conv2d: padding must be non-negative, got {shown}")
    ):
        F.conv2d(X4, W4, padding=padding)


@pytest.mark.parametrize("padding", [(1,), (1, 2, 3), ((1,), (1, 1)), None, 1.5j])
def test_conv2d_malformed_padding(padding):
    with pytest.raises(
        ValueError,
        match=esc(
            "flash.conv2d: padding must be 'SAME', 'VALID', an int, (pad_h, pad_w) or ((top, bottom), (left, right)), got "
            + repr(padding)
        ),
    ):
        F.conv2d(X4, W4, padding=padding)


@pytest.mark.parametrize(
    "c, groups, ci",
    [(3, 2, 1), (3, 2, 2), (4, 2, 1), (4, 1, 2), (6, 4, 2)],
)
def test_conv2d_groups_and_channels_do_not_match(c, groups, ci):
    text = (
        f"flash.conv2d: input channels C={c} (x(1, 5, 5, {c})) must equal groups ({groups}) x the "
        f"filter's input channels I={ci} (w(3, 3, {ci}, 4) is HWIO)"
    )
    with pytest.raises(ValueError, match=esc(text)):
        F.conv2d(ones(1, 5, 5, c), ones(3, 3, ci, 4), groups=groups)


def test_conv2d_output_channels_not_divisible_by_groups():
    with pytest.raises(
        ValueError, match=esc("flash.conv2d: output channels O=3 must be divisible by groups=2")
    ):
        F.conv2d(ones(1, 5, 5, 4), ones(3, 3, 2, 3), groups=2)


@pytest.mark.parametrize("groups", [0, -2, 1.0, True, "2", None])
def test_conv2d_groups_not_a_positive_int(groups):
    with pytest.raises(
        ValueError, match=esc(f"flash.conv2d: groups must be a positive int, got {groups!r}")
    ):
        F.conv2d(X4, W4, groups=groups)


@pytest.mark.parametrize(
    "x, w, dilation, text",
    [
        (
            (1, 2, 5, 1),
            (3, 3, 1, 1),
            1,
            "the dilated filter (3) is larger than the padded input's H=2",
        ),
        (
            (1, 5, 2, 1),
            (3, 3, 1, 1),
            1,
            "the dilated filter (3) is larger than the padded input's W=2",
        ),
        (
            (1, 3, 9, 1),
            (2, 2, 1, 1),
            3,
            "the dilated filter (4) is larger than the padded input's H=3",
        ),
        (
            (1, 9, 4, 1),
            (2, 2, 1, 1),
            (1, 4),
            "the dilated filter (5) is larger than the padded input's W=4",
        ),
    ],
)
def test_conv2d_valid_filter_larger_than_input(x, w, dilation, text):
    with pytest.raises(
        ValueError,
        match=esc(f"flash.conv2d: {text} (padding='VALID'); use padding='SAME', more padding"),
    ):
        F.conv2d(ones(*x), ones(*w), padding="VALID", dilation=dilation)


@pytest.mark.parametrize(
    "x, w, padding, text",
    [
        (
            (1, 2, 2, 1),
            (4, 4, 1, 1),
            0,
            "the dilated filter (4) is larger than the padded input's H=2 (padding=0)",
        ),
        (
            (1, 2, 2, 1),
            (4, 4, 1, 1),
            ((1, 0), (3, 3)),
            "the dilated filter (4) is larger than the padded input's H=3 (padding=((1, 0), (3, 3)))",
        ),
        (
            (1, 5, 2, 1),
            (3, 5, 1, 1),
            (0, 1),
            "the dilated filter (5) is larger than the padded input's W=4 (padding=(0, 1))",
        ),
    ],
)
def test_conv2d_explicit_padding_too_small_for_the_filter(x, w, padding, text):
    with pytest.raises(ValueError, match=esc(f"flash.conv2d: {text}; use padding='SAME'")):
        F.conv2d(ones(*x), ones(*w), padding=padding)


def test_conv2d_explicit_padding_just_large_enough():
    # (4 - 1) + 1 = 4 = 2 + 1 + 1: exactly one output row and column
    assert F.conv2d(ones(1, 2, 2, 1), ones(4, 4, 1, 1), padding=1).shape == (1, 1, 1, 1)


def test_conv2d_same_padding_accepts_a_filter_larger_than_the_input():
    assert F.conv2d(ones(1, 2, 2, 1), ones(3, 3, 1, 1), padding="SAME").shape == (1, 2, 2, 1)


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value, shown", [(0, "(0, 0)"), ((1, 0), "(1, 0)"), (-1, "(-1, -1)")])
def test_conv2d_stride_dilation_not_positive(name, value, shown):
    with pytest.raises(
        ValueError, match=esc(f"flash.conv2d: {name} must be positive, got {shown}")
    ):
        F.conv2d(X4, W4, **{name: value})


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", ["a", (1, 2, 3), None, True, (1, "x")])
def test_conv2d_stride_dilation_not_ints(name, value):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.conv2d: {name} must be an int or a pair of ints, got {value!r}"),
    ):
        F.conv2d(X4, W4, **{name: value})


# ----------------------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_wrong_rank(op):
    with pytest.raises(
        ValueError,
        match=esc(
            f"flash.{op}: argument 'x' must have rank 4 (NHWC), got rank 3 with shape (4, 4, 2)"
        ),
    ):
        getattr(F, op)(ones(4, 4, 2))


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("padding", ["FULL", 1, ((1, 1), (1, 1)), None])
def test_pool_bad_padding(op, padding):
    with pytest.raises(
        ValueError, match=esc(f"flash.{op}: padding must be 'SAME' or 'VALID', got {padding!r}")
    ):
        getattr(F, op)(ones(1, 4, 4, 2), padding=padding)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_window_and_stride(op):
    fn = getattr(F, op)
    with pytest.raises(ValueError, match=esc(f"flash.{op}: window must be positive, got (0, 0)")):
        fn(ones(1, 4, 4, 2), window=0)
    with pytest.raises(ValueError, match=esc(f"flash.{op}: stride must be positive, got (2, -1)")):
        fn(ones(1, 4, 4, 2), window=2, stride=(2, -1))
    with pytest.raises(
        TypeError, match=esc(f"flash.{op}: window must be an int or a pair of ints, got 'big'")
    ):
        fn(ones(1, 4, 4, 2), window="big")


# ----------------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------------

ATTN_RANK = "must have rank 4 ((batch, time, heads, head_dim)), got rank 3 with shape (3, 2, 4)"


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_attention_rank_3(which):
    args = {"q": Q, "k": Q, "v": Q}
    args[which] = ones(3, 2, 4)
    with pytest.raises(ValueError, match=esc(f"flash.attention: argument '{which}' {ATTN_RANK}")):
        F.attention(args["q"], args["k"], args["v"])


def test_attention_rank_5():
    with pytest.raises(
        ValueError,
        match=esc("argument 'q' must have rank 4")
        + ".*"
        + esc("got rank 5 with shape (1, 1, 3, 2, 4)"),
    ):
        F.attention(ones(1, 1, 3, 2, 4), Q, Q)


@pytest.mark.parametrize(
    "q, k, v, text",
    [
        (
            (1, 3, 2, 4),
            (2, 3, 2, 4),
            (2, 3, 2, 4),
            "batch sizes differ: q(1, 3, 2, 4), k(2, 3, 2, 4), v(2, 3, 2, 4)",
        ),
        (
            (2, 3, 2, 4),
            (2, 3, 2, 4),
            (1, 3, 2, 4),
            "batch sizes differ: q(2, 3, 2, 4), k(2, 3, 2, 4), v(1, 3, 2, 4)",
        ),
        (
            (1, 3, 2, 4),
            (1, 3, 3, 4),
            (1, 3, 3, 4),
            "head counts differ: q(1, 3, 2, 4), k(1, 3, 3, 4), v(1, 3, 3, 4)",
        ),
        (
            (1, 3, 2, 4),
            (1, 3, 2, 4),
            (1, 3, 1, 4),
            "head counts differ: q(1, 3, 2, 4), k(1, 3, 2, 4), v(1, 3, 1, 4)",
        ),
        (
            (1, 3, 2, 4),
            (1, 3, 2, 8),
            (1, 3, 2, 4),
            "q and k head_dim differ: q(1, 3, 2, 4), k(1, 3, 2, 8)",
        ),
        (
            (1, 3, 2, 4),
            (1, 5, 2, 4),
            (1, 4, 2, 4),
            "k and v sequence lengths differ: k(1, 5, 2, 4), v(1, 4, 2, 4)",
        ),
    ],
)
def test_attention_shape_mismatch(q, k, v, text):
    with pytest.raises(ValueError, match=esc("flash.attention: " + text)):
        F.attention(ones(*q), ones(*k), ones(*v))


@pytest.mark.parametrize("dq, dk, dv", [(f32, bf16, f32), (f32, f32, f16), (bf16, bf16, f32)])
def test_attention_mixed_dtypes(dq, dk, dv):
    text = f"flash.attention: all arguments must have the same dtype, got q: {np.dtype(dq)}, k: {np.dtype(dk)}, v: {np.dtype(dv)}"
    with pytest.raises(TypeError, match=esc(text)):
        F.attention(
            ones(1, 3, 2, 4, dtype=dq), ones(1, 3, 2, 4, dtype=dk), ones(1, 3, 2, 4, dtype=dv)
        )


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int32, jnp.bool_])
def test_attention_unsupported_dtype(dtype):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.attention: argument 'q' has dtype {np.dtype(dtype)}; {FLOAT_TEXT}"),
    ):
        F.attention(
            ones(1, 3, 2, 4, dtype=dtype),
            ones(1, 3, 2, 4, dtype=dtype),
            ones(1, 3, 2, 4, dtype=dtype),
        )


@pytest.mark.parametrize("dtype", [f32, jnp.int32, jnp.int8, bf16])
def test_attention_mask_not_bool(dtype):
    with pytest.raises(
        TypeError,
        match=esc(
            f"flash.attention: argument 'mask' has dtype {np.dtype(dtype)}; expected one of: bool"
        ),
    ):
        F.attention(Q, Q, Q, mask=ones(1, 2, 3, 3, dtype=dtype))


@pytest.mark.parametrize("shape", [(3, 2), (1, 2, 3, 4), (3, 3, 3), (4,), (1, 2, 2, 3)])
def test_attention_mask_wrong_shape(shape):
    text = (
        f"flash.attention: mask shape {shape} does not broadcast to (B, H, Tq, Tk) = (1, 2, 3, 3)"
    )
    with pytest.raises(ValueError, match=esc(text)):
        F.attention(Q, Q, Q, mask=jnp.ones(shape, bool))


def test_attention_mask_broadcastable_shapes_are_accepted():
    for shape in [(), (3,), (3, 3), (1, 1, 3, 3), (1, 2, 3, 3), (1, 2, 1, 3), (1, 1, 3, 1)]:
        assert F.attention(Q, Q, Q, mask=jnp.ones(shape, bool)).shape == Q.shape


@pytest.mark.parametrize(
    "shape, heads, target",
    [
        ((2, 1, 1, 1), 2, (1, 2, 3, 3)),
        ((1, 4, 3, 3), 1, (1, 1, 3, 3)),
        ((1, 1, 3, 6), 2, (1, 2, 3, 3)),
    ],
)
def test_attention_mask_larger_than_target_is_rejected(shape, heads, target):
    # such a mask broadcasts *with* (B, H, Tq, Tk) but not *to* it: it would enlarge the output
    q = ones(1, 3, heads, 4)
    text = f"flash.attention: mask shape {shape} does not broadcast to (B, H, Tq, Tk) = {target}"
    with pytest.raises(ValueError, match=esc(text)):
        F.attention(q, q, q, mask=jnp.ones(shape, bool))


def test_attention_mask_rank_5_gives_a_flash_error():
    text = "flash.attention: mask shape (1, 1, 1, 3, 3) does not broadcast to (B, H, Tq, Tk) = (1, 2, 3, 3)"
    with pytest.raises(ValueError, match=esc(text)):
        F.attention(Q, Q, Q, mask=jnp.ones((1, 1, 1, 3, 3), bool))


# ----------------------------------------------------------------------------------------------
# embedding
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [f32, bf16, f16, jnp.bool_, jnp.complex64])
def test_embedding_non_integer_ids(dtype):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.embedding: ids must be integers, got dtype {np.dtype(dtype)}")
        + r".*astype\(jnp.int32\)",
    ):
        F.embedding(ones(4, 3), jnp.zeros((2,), dtype))


def test_embedding_python_float_id():
    with pytest.raises(
        TypeError, match=esc("flash.embedding: ids must be integers, got dtype float32")
    ):
        F.embedding(ones(4, 3), 1.0)


@pytest.mark.parametrize("shape", [(4,), (2, 4, 3), ()])
def test_embedding_table_rank(shape):
    text = f"flash.embedding: argument 'table' must have rank 2 ((vocab, features)), got rank {len(shape)} with shape {shape}"
    with pytest.raises(ValueError, match=esc(text)):
        F.embedding(ones(*shape), jnp.array([0]))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.bool_])
def test_embedding_table_dtype(dtype):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.embedding: argument 'table' has dtype {np.dtype(dtype)}; {FLOAT_TEXT}"),
    ):
        F.embedding(ones(4, 3, dtype=dtype), jnp.array([0]))


# ----------------------------------------------------------------------------------------------
# the checks run at trace time, inside jit / vmap / grad too
# ----------------------------------------------------------------------------------------------


def test_errors_are_raised_while_tracing():
    with pytest.raises(ValueError, match="contracting dimensions differ"):
        jax.jit(F.matmul)(ones(2, 3), ones(4, 5))
    with pytest.raises(ValueError, match=esc("mask shape (3, 2)")):
        jax.jit(lambda q, m: F.attention(q, q, q, mask=m))(Q, jnp.ones((3, 2), bool))
    # under vmap the check sees the per-example shapes
    with pytest.raises(ValueError, match=esc("a is (2, 3) (K=3) and b is (4, 5) (K=4)")):
        jax.vmap(F.matmul)(ones(7, 2, 3), ones(7, 4, 5))
    with pytest.raises(
        ValueError, match=esc("flash.softmax: axis 2 is out of range for an input of rank 2")
    ):
        jax.vmap(lambda x: F.softmax(x, axis=2))(ones(4, 2, 3))
    with pytest.raises(TypeError, match="same dtype"):
        jax.grad(lambda x: F.mul(x, ones(3, dtype=bf16)).sum())(ones(3))


def test_abstract_evaluation_raises_the_same_errors():
    sds = jax.ShapeDtypeStruct
    with pytest.raises(
        ValueError, match=esc("flash.conv2d: output channels O=3 must be divisible by groups=2")
    ):
        jax.eval_shape(
            lambda x, w: F.conv2d(x, w, groups=2), sds((1, 5, 5, 4), f32), sds((3, 3, 2, 3), f32)
        )


# ----------------------------------------------------------------------------------------------
# options that used to be accepted silently (regression tests)
# ----------------------------------------------------------------------------------------------

PADDING_TEXT = "padding must be 'SAME', 'VALID', an int, (pad_h, pad_w) or ((top, bottom), (left, right)), got "


@pytest.mark.parametrize(
    "padding", [((1, 1, 9), (1, 1)), ((1, 1), (2,)), (1.7, 1), ((0.5, 1), (1, 1))]
)
def test_conv2d_malformed_padding_entries_are_rejected(padding):
    with pytest.raises(ValueError, match=esc(f"flash.conv2d: {PADDING_TEXT}{padding!r}")):
        F.conv2d(X4, W4, padding=padding)


@pytest.mark.parametrize(
    "name, value", [("stride", (1.5, 1)), ("dilation", (2.9, 1)), ("stride", 2.0)]
)
def test_conv2d_non_integer_stride_dilation_are_rejected(name, value):
    with pytest.raises(
        TypeError,
        match=esc(f"flash.conv2d: {name} must be an int or a pair of ints, got {value!r}"),
    ):
        F.conv2d(X4, W4, **{name: value})


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    "shape, window", [((1, 2, 2, 1), 3), ((1, 4, 2, 1), (2, 3)), ((1, 2, 9, 1), (3, 1))]
)
def test_pool_valid_window_larger_than_input(op, shape, window):
    w = (window, window) if isinstance(window, int) else window
    text = f"flash.{op}: with padding='VALID' the window {w} is larger than the input's (H, W) = {shape[1:3]}"
    with pytest.raises(ValueError, match=esc(text) + ".*padding='SAME'"):
        getattr(F, op)(ones(*shape), window=window)
    # SAME padding accepts it
    assert getattr(F, op)(ones(*shape), window=window, padding="SAME").shape[1:3] == (
        -(-shape[1] // w[0]),
        -(-shape[2] // w[1]),
    )


def test_causal_attention_with_more_queries_than_keys_is_rejected():
    q, k = jnp.zeros((1, 3, 1, 2)), jnp.zeros((1, 2, 1, 2))
    with pytest.raises(ValueError, match=r"flash.attention: causal=True needs .* Tq=3 > Tk=2"):
        F.attention(q, k, k, causal=True)


def test_mask_dtype_error_suggests_bool():
    q = jnp.zeros((1, 3, 1, 2))
    with pytest.raises(TypeError, match=r"mask.astype\(jnp.bool\)"):
        F.attention(q, q, q, mask=jnp.ones((1, 1, 3, 3), jnp.float32))


def test_norm_eps_must_be_a_number():
    with pytest.raises(TypeError, match="flash.layernorm: eps must be a number, got str"):
        F.layernorm(jnp.ones((2, 3)), eps="a")
    with pytest.raises(ValueError, match="flash.rmsnorm: eps must be a finite number >= 0"):
        F.rmsnorm(jnp.ones((2, 3)), eps=-1.0)
