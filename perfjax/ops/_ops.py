"""The Flash ops.

Each op is a public function that checks its arguments at trace time and then calls a named,
jitted implementation. The name (``flash.matmul``, ``flash.softmax`` ...) is what makes the op
visible at every stage: it is the ``name`` of the ``jit`` equation in the jaxpr, the symbol of the
private ``func.func @flash.matmul`` that the StableHLO calls, and it survives ``jax.grad`` (the
backward pass calls functions with the same names) and ``jax.vmap``. Differentiation and batching
come from JAX's own rules for the ``lax`` primitives inside, so they are exact by construction.

Low-precision inputs (bf16, fp16) keep their dtype at the boundary; reductions inside ``softmax``,
``layernorm``, ``rmsnorm`` and ``attention`` are computed in float32, as production kernels do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from perfjax.ops import _checks as C

#: Prefix of every Flash op name, in the jaxpr and in the StableHLO symbol table.
FLASH_PREFIX = "flash."
#: Names of all Flash ops, filled by ``_named``.
OP_NAMES: list[str] = []

_LOW_PRECISION = (np.dtype(jnp.bfloat16), np.dtype(jnp.float16))


def _named(name: str, static_argnames: Sequence[str] = ()) -> Callable[[Callable], Callable]:
    """Turns ``impl`` into a jitted function called ``flash.<name>`` (its jaxpr/StableHLO name)."""

    def wrap(impl: Callable) -> Callable:
        full = FLASH_PREFIX + name
        impl.__name__ = impl.__qualname__ = full
        OP_NAMES.append(full)
        return jax.jit(impl, static_argnames=tuple(static_argnames))

    return wrap


def _compute_dtype(x: jax.Array) -> Any:
    return jnp.float32 if np.dtype(x.dtype) in _LOW_PRECISION else x.dtype


# --------------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------------


@_named("matmul", static_argnames=("dims", "precision", "accumulate"))
def _matmul(a, b, *, dims, precision, accumulate):
    return lax.dot_general(a, b, dims, precision=precision, preferred_element_type=accumulate)


def matmul(
    a: jax.Array, b: jax.Array, *, precision: str | lax.Precision | None = None
) -> jax.Array:
    """Matrix product ``a @ b``, 2-D or batched.

    ``a`` is ``(..., M, K)``. ``b`` is either ``(K, N)`` (a weight shared by every batch entry) or
    ``(..., K, N)`` with exactly the same batch dimensions as ``a``. Floating inputs give an output
    of the same dtype; ``int8`` inputs accumulate and return ``int32``.

    Args:
      a: left operand, rank >= 2.
      b: right operand, rank 2 or the rank of ``a``.
      precision: ``None``/``"default"``, ``"high"`` or ``"highest"`` (``lax.Precision``); it is
        recorded in the StableHLO ``precision`` attribute, which device models read.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.matmul(jnp.ones((2, 3)), jnp.ones((3, 4))).shape
      (2, 4)
    """
    a = C.as_array("matmul", "a", a)
    b = C.as_array("matmul", "b", b)
    C.check_dtype(
        "matmul", "a", a, C.FLOAT_DTYPES + C.INT_DTYPES, "float32, bfloat16, float16, int8"
    )
    C.check_same_dtype("matmul", a=a, b=b)
    C.check_min_rank("matmul", "a", a, 2, "(..., M, K)")
    C.check_min_rank("matmul", "b", b, 2, "(K, N) or (..., K, N)")
    k_a, k_b = a.shape[-1], b.shape[-2]
    if k_a != k_b:
        raise ValueError(
            f"flash.matmul: contracting dimensions differ: a is {tuple(a.shape)} (K={k_a}) and b is "
            f"{tuple(b.shape)} (K={k_b}); a's last dimension must equal b's second-to-last."
        )
    nd = a.ndim
    if b.ndim == 2:
        dims = (((nd - 1,), (0,)), ((), ()))
    elif b.ndim == nd:
        if a.shape[:-2] != b.shape[:-2]:
            raise ValueError(
                f"flash.matmul: batch dimensions differ: a{tuple(a.shape)} has batch "
                f"{tuple(a.shape[:-2])}, b{tuple(b.shape)} has {tuple(b.shape[:-2])}. "
                "Broadcast them explicitly (jnp.broadcast_to) or pass a 2-D b."
            )
        batch = tuple(range(nd - 2))
        dims = (((nd - 1,), (nd - 2,)), (batch, batch))
    else:
        raise ValueError(
            f"flash.matmul: b must have rank 2 or the rank of a ({nd}), got shape {tuple(b.shape)}."
        )
    accumulate = jnp.int32 if np.dtype(a.dtype) == np.dtype(jnp.int8) else None
    return _matmul(a, b, dims=dims, precision=_precision(precision), accumulate=accumulate)


def _precision(precision: Any) -> lax.Precision | None:
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    names = {
        "default": lax.Precision.DEFAULT,
        "high": lax.Precision.HIGH,
        "highest": lax.Precision.HIGHEST,
    }
    if isinstance(precision, str) and precision.lower() in names:
        return names[precision.lower()]
    raise ValueError(
        f"flash.matmul: precision must be one of None, {sorted(names)} or a lax.Precision, got {precision!r}."
    )


# --------------------------------------------------------------------------------------------
# elementwise
# --------------------------------------------------------------------------------------------


def _binary(op: str, impl: Callable, a: jax.Array, b: jax.Array) -> jax.Array:
    # A Python scalar takes the other operand's dtype, as weak types do in jnp.
    a_scalar = isinstance(a, (int, float)) and not isinstance(a, bool)
    b_scalar = isinstance(b, (int, float)) and not isinstance(b, bool)
    if b_scalar and not a_scalar:
        a = C.as_array(op, "a", a)
        b = jnp.asarray(b, dtype=a.dtype)
    elif a_scalar and not b_scalar:
        b = C.as_array(op, "b", b)
        a = jnp.asarray(a, dtype=b.dtype)
    else:
        a, b = C.as_array(op, "a", a), C.as_array(op, "b", b)
    C.check_float(op, "a", a)
    C.check_float(op, "b", b)
    C.check_same_dtype(op, a=a, b=b)
    C.broadcast_shapes(op, a, b)
    return impl(a, b)


@_named("add")
def _add(a, b):
    return lax.add(*jnp.broadcast_arrays(a, b))


@_named("sub")
def _sub(a, b):
    return lax.sub(*jnp.broadcast_arrays(a, b))


@_named("mul")
def _mul(a, b):
    return lax.mul(*jnp.broadcast_arrays(a, b))


def add(a: jax.Array, b: jax.Array) -> jax.Array:
    """Elementwise ``a + b`` with NumPy broadcasting; both operands must share one float dtype.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.add(jnp.ones((2, 3)), jnp.ones((3,))).tolist()
      [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """
    return _binary("add", _add, a, b)


def sub(a: jax.Array, b: jax.Array) -> jax.Array:
    """Elementwise ``a - b`` with NumPy broadcasting.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.sub(jnp.ones(2), jnp.ones(2)).tolist()
      [0.0, 0.0]
    """
    return _binary("sub", _sub, a, b)


def mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """Elementwise ``a * b`` with NumPy broadcasting.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.mul(jnp.full(2, 3.0), 2.0).tolist()
      [6.0, 6.0]
    """
    return _binary("mul", _mul, a, b)


@_named("bias_add")
def _bias_add(x, bias):
    return x + bias


def bias_add(x: jax.Array, bias: jax.Array) -> jax.Array:
    """Adds a 1-D ``bias`` along the last (feature) dimension of ``x``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.bias_add(jnp.zeros((2, 3)), jnp.arange(3.0)).tolist()
      [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    """
    x = C.as_array("bias_add", "x", x)
    bias = C.as_array("bias_add", "bias", bias)
    C.check_float("bias_add", "x", x)
    C.check_same_dtype("bias_add", x=x, bias=bias)
    C.check_min_rank("bias_add", "x", x, 1)
    C.check_rank("bias_add", "bias", bias, (1,), "(features,)")
    if bias.shape[0] != x.shape[-1]:
        raise ValueError(
            f"flash.bias_add: bias has {bias.shape[0]} entries but x{tuple(x.shape)} has "
            f"{x.shape[-1]} features in its last dimension."
        )
    return _bias_add(x, bias)


def _unary(op: str, impl: Callable, x: jax.Array, **kw: Any) -> jax.Array:
    x = C.as_array(op, "x", x)
    C.check_float(op, "x", x)
    return impl(x, **kw)


@_named("relu")
def _relu(x):
    return lax.max(x, jnp.zeros((), x.dtype))


@_named("gelu", static_argnames=("approximate",))
def _gelu(x, *, approximate):
    if approximate:
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (Hendrycks & Gimpel, 2016)
        c = jnp.asarray(np.sqrt(2.0 / np.pi), x.dtype)
        inner = c * (x + jnp.asarray(0.044715, x.dtype) * x * x * x)
        return jnp.asarray(0.5, x.dtype) * x * (1 + jnp.tanh(inner))
    # exact: 0.5 x (1 + erf(x / sqrt(2)))
    return jnp.asarray(0.5, x.dtype) * x * (1 + lax.erf(x * jnp.asarray(1 / np.sqrt(2.0), x.dtype)))


@_named("sigmoid")
def _sigmoid(x):
    return lax.logistic(x)


@_named("tanh")
def _tanh(x):
    return lax.tanh(x)


@_named("silu")
def _silu(x):
    return x * lax.logistic(x)


def relu(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` elementwise.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.relu(jnp.array([-1.0, 2.0])).tolist()
      [0.0, 2.0]
    """
    return _unary("relu", _relu, x)


def gelu(x: jax.Array, *, approximate: bool = True) -> jax.Array:
    """GELU; ``approximate=True`` is the tanh form (GPT-2, BERT), ``False`` the exact erf form.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> round(float(F.gelu(jnp.array(1.0))), 4)
      0.8412
    """
    return _unary("gelu", _gelu, x, approximate=bool(approximate))


def sigmoid(x: jax.Array) -> jax.Array:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> float(F.sigmoid(jnp.array(0.0)))
      0.5
    """
    return _unary("sigmoid", _sigmoid, x)


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> float(F.tanh(jnp.array(0.0)))
      0.0
    """
    return _unary("tanh", _tanh, x)


def silu(x: jax.Array) -> jax.Array:
    """SiLU / swish: ``x * sigmoid(x)``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> float(F.silu(jnp.array(0.0)))
      0.0
    """
    return _unary("silu", _silu, x)


# --------------------------------------------------------------------------------------------
# softmax and normalisation
# --------------------------------------------------------------------------------------------


@_named("softmax", static_argnames=("axis",))
def _softmax(x, *, axis):
    xc = x.astype(_compute_dtype(x))
    shifted = xc - lax.stop_gradient(jnp.max(xc, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return (e / jnp.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """Numerically stable softmax along ``axis`` (computed in float32 for bf16/fp16 inputs).

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.softmax(jnp.zeros(4)).tolist()
      [0.25, 0.25, 0.25, 0.25]
    """
    x = C.as_array("softmax", "x", x)
    C.check_float("softmax", "x", x)
    C.check_min_rank("softmax", "x", x, 1)
    return _softmax(x, axis=C.normalize_axis("softmax", axis, x.ndim))


def _check_norm_params(op: str, x: jax.Array, **params: jax.Array | None) -> None:
    for name, p in params.items():
        if p is None:
            continue
        p = C.as_array(op, name, p)
        C.check_same_dtype(op, x=x, **{name: p})
        if tuple(p.shape) != (x.shape[-1],):
            raise ValueError(
                f"flash.{op}: {name} must have shape ({x.shape[-1]},) to match the last dimension "
                f"of x{tuple(x.shape)}, got {tuple(p.shape)}."
            )


@_named("layernorm", static_argnames=("eps",))
def _layernorm(x, gamma, beta, *, eps):
    xc = x.astype(_compute_dtype(x))
    mean = jnp.mean(xc, axis=-1, keepdims=True)
    centered = xc - mean
    var = jnp.mean(centered * centered, axis=-1, keepdims=True)
    y = centered * lax.rsqrt(var + eps)
    if gamma is not None:
        y = y * gamma.astype(y.dtype)
    if beta is not None:
        y = y + beta.astype(y.dtype)
    return y.astype(x.dtype)


def layernorm(
    x: jax.Array,
    gamma: jax.Array | None = None,
    beta: jax.Array | None = None,
    *,
    eps: float = 1e-5,
) -> jax.Array:
    """Layer normalisation over the last dimension, with optional scale ``gamma`` and shift ``beta``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> [round(v, 3) for v in F.layernorm(jnp.array([1.0, 3.0])).tolist()]
      [-1.0, 1.0]
    """
    x = C.as_array("layernorm", "x", x)
    C.check_float("layernorm", "x", x)
    C.check_min_rank("layernorm", "x", x, 1)
    _check_norm_params("layernorm", x, gamma=gamma, beta=beta)
    return _layernorm(x, gamma, beta, eps=C.positive_float("layernorm", "eps", eps))


@_named("rmsnorm", static_argnames=("eps",))
def _rmsnorm(x, gamma, *, eps):
    xc = x.astype(_compute_dtype(x))
    y = xc * lax.rsqrt(jnp.mean(xc * xc, axis=-1, keepdims=True) + eps)
    if gamma is not None:
        y = y * gamma.astype(y.dtype)
    return y.astype(x.dtype)


def rmsnorm(x: jax.Array, gamma: jax.Array | None = None, *, eps: float = 1e-6) -> jax.Array:
    """RMS normalisation over the last dimension (Zhang & Sennrich, 2019), optional scale ``gamma``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> [round(v, 3) for v in F.rmsnorm(jnp.array([3.0, 4.0]), eps=0.0).tolist()]
      [0.849, 1.131]
    """
    x = C.as_array("rmsnorm", "x", x)
    C.check_float("rmsnorm", "x", x)
    C.check_min_rank("rmsnorm", "x", x, 1)
    _check_norm_params("rmsnorm", x, gamma=gamma)
    return _rmsnorm(x, gamma, eps=C.positive_float("rmsnorm", "eps", eps))


# --------------------------------------------------------------------------------------------
# conv2d and pooling
# --------------------------------------------------------------------------------------------


def _padding(op: str, padding: Any) -> str | tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, str):
        if padding.upper() in ("SAME", "VALID"):
            return padding.upper()
        raise ValueError(
            f"flash.{op}: padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}."
        )
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = int(padding)
        pads = ((p, p), (p, p))
    else:
        try:
            h, w = padding
            pads = (C.int_pair(h), C.int_pair(w))
        except (TypeError, ValueError, IndexError):
            raise ValueError(
                f"flash.{op}: padding must be 'SAME', 'VALID', an int, (pad_h, pad_w) or "
                f"((top, bottom), (left, right)), got {padding!r}."
            ) from None
    if min(min(p) for p in pads) < 0:
        raise ValueError(f"flash.{op}: padding must be non-negative, got {pads}.")
    return pads


@_named("conv2d", static_argnames=("stride", "padding", "dilation", "groups", "accumulate"))
def _conv2d(x, w, *, stride, padding, dilation, groups, accumulate):
    return lax.conv_general_dilated(
        x,
        w,
        window_strides=stride,
        padding=padding,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        preferred_element_type=accumulate,
    )


def conv2d(
    x: jax.Array,
    w: jax.Array,
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int | Sequence = "SAME",
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> jax.Array:
    """2-D convolution, ``x`` in NHWC and ``w`` in HWIO (``I = C / groups``).

    Args:
      x: input ``(N, H, W, C)``.
      w: filters ``(KH, KW, C // groups, O)``; ``O`` must be divisible by ``groups``.
      stride: int or ``(sh, sw)``.
      padding: ``"SAME"``, ``"VALID"``, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
      dilation: filter dilation, int or ``(dh, dw)``.
      groups: feature groups (``groups == C`` is a depthwise convolution).

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.conv2d(jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 16)), stride=2).shape
      (1, 4, 4, 16)
    """
    x = C.as_array("conv2d", "x", x)
    w = C.as_array("conv2d", "w", w)
    C.check_dtype(
        "conv2d", "x", x, C.FLOAT_DTYPES + C.INT_DTYPES, "float32, bfloat16, float16, int8"
    )
    C.check_same_dtype("conv2d", x=x, w=w)
    C.check_rank("conv2d", "x", x, (4,), "NHWC")
    C.check_rank("conv2d", "w", w, (4,), "HWIO")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"flash.conv2d: groups must be a positive int, got {groups!r}.")
    c, (kh, kw, ci, co) = x.shape[3], w.shape
    if c % groups or ci * groups != c:
        raise ValueError(
            f"flash.conv2d: input channels C={c} (x{tuple(x.shape)}) must equal groups ({groups}) x the "
            f"filter's input channels I={ci} (w{tuple(w.shape)} is HWIO)."
        )
    if co % groups:
        raise ValueError(
            f"flash.conv2d: output channels O={co} must be divisible by groups={groups}."
        )
    stride = C.pair("conv2d", "stride", stride)
    dilation = C.pair("conv2d", "dilation", dilation)
    pads = _padding("conv2d", padding)
    if pads != "SAME":
        explicit = ((0, 0), (0, 0)) if pads == "VALID" else pads
        for i, (dim, size, k, d) in enumerate(
            (("H", x.shape[1], kh, dilation[0]), ("W", x.shape[2], kw, dilation[1]))
        ):
            padded = size + sum(explicit[i])
            if (k - 1) * d + 1 > padded:
                raise ValueError(
                    f"flash.conv2d: the dilated filter ({(k - 1) * d + 1}) is larger than the padded "
                    f"input's {dim}={padded} (padding={padding!r}); use padding='SAME', more padding "
                    "or a smaller filter."
                )
    accumulate = jnp.int32 if np.dtype(x.dtype) == np.dtype(jnp.int8) else None
    return _conv2d(
        x,
        w,
        stride=stride,
        padding=pads,
        dilation=dilation,
        groups=int(groups),
        accumulate=accumulate,
    )


@_named("max_pool2d", static_argnames=("window", "stride", "padding"))
def _max_pool2d(x, *, window, stride, padding):
    # A Python scalar init lets lax pick reduce_window_max, which has a gradient rule.
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *stride, 1), padding)


@_named("avg_pool2d", static_argnames=("window", "stride", "padding"))
def _avg_pool2d(x, *, window, stride, padding):
    xc = x.astype(_compute_dtype(x))
    s = lax.reduce_window(xc, 0.0, lax.add, (1, *window, 1), (1, *stride, 1), padding)
    return (s / (window[0] * window[1])).astype(x.dtype)


def _pool(
    op: str, impl: Callable, x: jax.Array, window: Any, stride: Any, padding: str
) -> jax.Array:
    x = C.as_array(op, "x", x)
    C.check_float(op, "x", x)
    C.check_rank(op, "x", x, (4,), "NHWC")
    window = C.pair(op, "window", window)
    stride = C.pair(op, "stride", window if stride is None else stride)
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"flash.{op}: padding must be 'SAME' or 'VALID', got {padding!r}.")
    if padding.upper() == "VALID" and (window[0] > x.shape[1] or window[1] > x.shape[2]):
        raise ValueError(
            f"flash.{op}: with padding='VALID' the window {window} is larger than the input's "
            f"(H, W) = {tuple(x.shape[1:3])}; use padding='SAME' or a smaller window."
        )
    return impl(x, window=window, stride=stride, padding=padding.upper())


def max_pool2d(
    x: jax.Array, window: int | tuple[int, int] = 2, stride: Any = None, padding: str = "VALID"
) -> jax.Array:
    """Max pooling over an NHWC input (``stride`` defaults to ``window``).

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.max_pool2d(jnp.ones((1, 4, 4, 2))).shape
      (1, 2, 2, 2)
    """
    return _pool("max_pool2d", _max_pool2d, x, window, stride, padding)


def avg_pool2d(
    x: jax.Array, window: int | tuple[int, int] = 2, stride: Any = None, padding: str = "VALID"
) -> jax.Array:
    """Average pooling over an NHWC input (``stride`` defaults to ``window``; VALID divides by the window).

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.avg_pool2d(jnp.ones((1, 4, 4, 2))).shape
      (1, 2, 2, 2)
    """
    return _pool("avg_pool2d", _avg_pool2d, x, window, stride, padding)


# --------------------------------------------------------------------------------------------
# attention and embedding
# --------------------------------------------------------------------------------------------


@_named("attention", static_argnames=("causal", "scale"))
def _attention(q, k, v, mask, *, causal, scale):
    ct = _compute_dtype(q)
    # (B, Tq, H, D) x (B, Tk, H, D) -> (B, H, Tq, Tk): 2·B·H·Tq·Tk·D flops
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=ct) * jnp.asarray(scale, ct)
    if causal:
        tq, tk = q.shape[1], k.shape[1]
        # Query i sees keys j <= i + (Tk - Tq): the usual alignment when decoding with a cache.
        keep = jnp.arange(tq)[:, None] + (tk - tq) >= jnp.arange(tk)[None, :]
        scores = jnp.where(keep, scores, jnp.finfo(ct).min)
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(ct).min)
    scores = scores - lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
    p = jnp.exp(scores)
    p = p / jnp.sum(p, axis=-1, keepdims=True)
    return jnp.einsum("bhqk,bkhd->bqhd", p.astype(v.dtype), v, preferred_element_type=ct).astype(
        q.dtype
    )


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    causal: bool = False,
    mask: jax.Array | None = None,
    scale: float | None = None,
) -> jax.Array:
    """Multi-head scaled dot-product attention, ``softmax(q kᵀ · scale) v`` per head.

    Args:
      q: queries ``(B, Tq, H, D)``.
      k: keys ``(B, Tk, H, D)``.
      v: values ``(B, Tk, H, Dv)``.
      causal: mask out keys after each query (aligned to the end when ``Tk > Tq``).
      mask: optional boolean mask broadcastable to ``(B, H, Tq, Tk)``; ``True`` keeps a score.
      scale: defaults to ``1 / sqrt(D)``.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> q = jnp.ones((2, 5, 4, 8))
      >>> F.attention(q, q, q, causal=True).shape
      (2, 5, 4, 8)
    """
    q = C.as_array("attention", "q", q)
    k = C.as_array("attention", "k", k)
    v = C.as_array("attention", "v", v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        C.check_float("attention", name, t)
        C.check_rank("attention", name, t, (4,), "(batch, time, heads, head_dim)")
    C.check_same_dtype("attention", q=q, k=k, v=v)
    if q.shape[0] != k.shape[0] or k.shape[0] != v.shape[0]:
        raise ValueError(
            f"flash.attention: batch sizes differ: q{tuple(q.shape)}, k{tuple(k.shape)}, v{tuple(v.shape)}."
        )
    if q.shape[2] != k.shape[2] or k.shape[2] != v.shape[2]:
        raise ValueError(
            f"flash.attention: head counts differ: q{tuple(q.shape)}, k{tuple(k.shape)}, v{tuple(v.shape)}."
        )
    if q.shape[3] != k.shape[3]:
        raise ValueError(
            f"flash.attention: q and k head_dim differ: q{tuple(q.shape)}, k{tuple(k.shape)}."
        )
    if k.shape[1] != v.shape[1]:
        raise ValueError(
            f"flash.attention: k and v sequence lengths differ: k{tuple(k.shape)}, v{tuple(v.shape)}."
        )
    if causal and q.shape[1] > k.shape[1]:
        raise ValueError(
            f"flash.attention: causal=True needs at least as many keys as queries (queries are aligned "
            f"to the end of the keys), got Tq={q.shape[1]} > Tk={k.shape[1]}; the first queries would "
            "see no key. Pass an explicit mask instead."
        )
    if mask is not None:
        mask = C.as_array("attention", "mask", mask)
        C.check_dtype("attention", "mask", mask, (jnp.bool_,), "bool")
        target = (q.shape[0], q.shape[2], q.shape[1], k.shape[1])
        try:
            ok = mask.ndim <= 4 and np.broadcast_shapes(tuple(mask.shape), target) == target
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"flash.attention: mask shape {tuple(mask.shape)} does not broadcast to (B, H, Tq, Tk) = {target}."
            )
    scale = float(1.0 / np.sqrt(q.shape[3]) if scale is None else scale)
    return _attention(q, k, v, mask, causal=bool(causal), scale=scale)


@_named("embedding")
def _embedding(table, ids):
    return jnp.take(table, ids, axis=0)


def embedding(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Looks up rows of ``table`` ``(vocab, features)`` for integer ``ids`` of any shape.

    Example:
      >>> import jax.numpy as jnp, perfjax.ops as F
      >>> F.embedding(jnp.eye(3), jnp.array([2, 0])).tolist()
      [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    table = C.as_array("embedding", "table", table)
    ids = C.as_array("embedding", "ids", ids)
    C.check_float("embedding", "table", table)
    C.check_rank("embedding", "table", table, (2,), "(vocab, features)")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(
            f"flash.embedding: ids must be integers, got dtype {ids.dtype}; cast with ids.astype(jnp.int32)."
        )
    return _embedding(table, ids)
