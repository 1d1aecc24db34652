"""Fuzzing benchmark: random JAX programs through ``perfjax.predict`` on one device of every family.

    python benchmarks/fuzz.py                       # 10,000 programs, seed 0 -> benchmarks/results/fuzz.json
    python benchmarks/fuzz.py --count 300 --seed 1  # a quick look
    python benchmarks/fuzz.py --replay 0:1234       # regenerate program 1234 of seed 0, show it, run it

Every program is generated from its own ``numpy.random.default_rng([seed, index])``, so ``seed:index``
reproduces it exactly. Programs are abstract (``jax.ShapeDtypeStruct`` inputs: nothing is allocated,
so a 2^40-element tensor costs nothing to trace) and small (a few ops each), and cover: random dtypes
(f32, bf16, f16, float8_e4m3fn, int8, int32, uint8, int4), zero-size and huge dimensions, elementwise
chains with special functions, matmul/einsum/dot_general, convolutions, reductions (zero-size axes
too), softmax/layernorm, fori/while (static and dynamic bounds)/scan loops, cond/switch, RNG
(threefry, rbg, unsafe_rbg keys), linalg, FFT, sort/top_k, gather/scatter/dynamic_slice, perfjax's
Flash ops, shape ops, host callbacks, and ``jax.vmap`` / ``jax.grad`` / ``jax.checkpoint`` of all of
these.

Outcome per (program, device):
  ok            finite time and energy, both >= 0
  refused       a clear perfjax error: a ValueError/TypeError (perfjax's own classes, or raised in
                perfjax's code) with a message; counted by type and message prefix
  nonfinite     NaN/inf/negative time or energy, or a non-finite sensitivity (a bug)
  crash         any other exception (a bug)
  timeout       more than --timeout seconds (a bug)
  jax_rejected  JAX itself cannot trace or lower the program for that platform (counted apart)
A program's outcome is the worst over its devices (crash > timeout > nonfinite > refused > ok);
a program JAX rejects on every device is ``jax_rejected``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import json
import math
import os
import pathlib
import re
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

S = jax.ShapeDtypeStruct
RESULTS = pathlib.Path(__file__).with_name("results")
OUT = RESULTS / "fuzz.json"
FAILURES_CSV = RESULTS / "fuzz_failures.csv"

FLOATS = (jnp.float32, jnp.bfloat16, jnp.float16)
F8 = jnp.float8_e4m3fn
INTS = (jnp.int8, jnp.int32, jnp.uint8)
INT4 = getattr(jnp, "int4", None)
ORDER = ("crash", "timeout", "nonfinite", "refused", "ok")  # worst first


def default_devices() -> tuple[str, ...]:
    """One device per family (NVIDIA and AMD GPUs lower differently), plus this machine."""
    import perfjax

    npus = sorted(d for d in perfjax.devices() if perfjax.device(d).family == "npu")
    npu = next((d for d in npus if "ane" in d), npus[0] if npus else None)
    return tuple(d for d in ("h100", "mi300x", "tpu-v5e", "xeon-8480", npu, "host") if d)


# ---- generation ------------------------------------------------------------------------------


@dataclasses.dataclass
class FuzzProgram:
    seed: int
    index: int
    fn: Callable
    inputs: tuple
    features: tuple[str, ...]
    description: str
    differentiable: bool = True

    @property
    def key(self) -> str:
        return f"{self.seed}:{self.index}"


class _Ctx:
    """The random state and the record of what was generated."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.features: list[str] = []
        self.desc: list[str] = []
        self.differentiable = True

    # random helpers
    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def feat(self, *names: str) -> None:
        for n in names:
            if n not in self.features:
                self.features.append(n)

    def say(self, text: str) -> None:
        self.desc.append(text)

    def dim(self, lo: int = 1, hi: int = 48) -> int:
        return self.int(lo, hi)

    def shape(self, ndim: int | None = None, lo: int = 1, hi: int = 48) -> tuple[int, ...]:
        """A random shape; sometimes with a zero-size dimension, sometimes 2^40 elements."""
        ndim = self.int(0, 4) if ndim is None else ndim
        if ndim and self.p(0.04):
            self.feat("huge")
            # ~2^40 elements spread over the dimensions (abstract only: never allocated).
            per = max(1, 40 // ndim)
            dims = [1 << per] * ndim
            dims[0] <<= 40 - per * ndim
            return tuple(dims)
        dims = [self.dim(lo, hi) for _ in range(ndim)]
        if ndim and self.p(0.07):
            self.feat("zero-size")
            dims[self.int(0, ndim - 1)] = 0
        return tuple(dims)

    def float_dtype(self):
        return self.choice(FLOATS)

    def any_dtype(self):
        r = self.rng.random()
        if r < 0.55:
            return self.float_dtype()
        if r < 0.65:
            return F8
        if r < 0.93 or INT4 is None:
            return self.choice(INTS)
        return INT4


def _name(dt) -> str:
    return jnp.dtype(dt).name


def _spec(shape, dt) -> S:
    return S(tuple(shape), jnp.dtype(dt))


def _t(x: S) -> str:
    return f"{_name(x.dtype)}{list(x.shape)}"


# Elementwise ops by dtype class. Special functions are run in a float dtype.
_FLOAT_UNARY: dict[str, Callable] = {
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "atan": jnp.arctan,
    "asinh": jnp.arcsinh,
    "sinh": jnp.sinh,
    "sqrt": jnp.sqrt,
    "rsqrt": lax.rsqrt,
    "cbrt": jnp.cbrt,
    "abs": jnp.abs,
    "neg": jnp.negative,
    "sign": jnp.sign,
    "floor": jnp.floor,
    "round": jnp.round,
    "square": jnp.square,
    "reciprocal": jnp.reciprocal,
    "logistic": lax.logistic,
    "erf": lax.erf,
    "erfc": lax.erfc,
    "erf_inv": lax.erf_inv,
    "lgamma": lax.lgamma,
    "digamma": lax.digamma,
    "bessel_i0e": lax.bessel_i0e,
    "bessel_i1e": lax.bessel_i1e,
    "relu": jax.nn.relu,
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_exact": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "ndtri": lambda x: jax.scipy.special.ndtri(x.astype(jnp.float32)).astype(x.dtype),
    "is_finite_select": lambda x: jnp.where(jnp.isfinite(x), x, 0),
    "clip": lambda x: jnp.clip(x, -1, 1),
    "integer_pow3": lambda x: x**3,
    "pow2.5": lambda x: jnp.abs(x) ** 2.5,
}
_FLOAT_BINARY: dict[str, Callable] = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div": jnp.divide,
    "max": jnp.maximum,
    "min": jnp.minimum,
    "pow": lambda a, b: jnp.abs(a) ** b,
    "atan2": jnp.arctan2,
    "rem": jnp.remainder,
    "nextafter": jnp.nextafter,
    "igamma": lambda a, b: jax.scipy.special.gammainc(jnp.abs(a) + 1, jnp.abs(b)),
    "xlogy": jax.scipy.special.xlogy,
    "where_gt": lambda a, b: jnp.where(a > b, a, b),
}
_INT_UNARY: dict[str, Callable] = {
    "abs": jnp.abs,
    "neg": jnp.negative,
    "not": jnp.invert,
    "popcount": lax.population_count,
    "clz": lax.clz,
    "square": jnp.square,
    "sign": jnp.sign,
}
_INT_BINARY: dict[str, Callable] = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "max": jnp.maximum,
    "min": jnp.minimum,
    "and": jnp.bitwise_and,
    "or": jnp.bitwise_or,
    "xor": jnp.bitwise_xor,
    "shl": lambda a, b: lax.shift_left(a, jnp.ones_like(a)) + b,
    "shr": lambda a, b: lax.shift_right_arithmetic(a, jnp.ones_like(a)) - b,
    "floordiv": lambda a, b: a // (jnp.abs(b) + 1).astype(a.dtype),
    "rem": lambda a, b: a % (jnp.abs(b) + 1).astype(a.dtype),
    "where_gt": lambda a, b: jnp.where(a > b, a, b),
}
_SMALL_UNARY: dict[str, Callable] = {"neg": jnp.negative}  # JAX: no abs for int4
_SMALL_BINARY: dict[str, Callable] = {"add": jnp.add, "mul": jnp.multiply, "max": jnp.maximum}


def _ops_for(dt) -> tuple[dict, dict]:
    d = jnp.dtype(dt)
    if d in (jnp.dtype(F8),) or (INT4 is not None and d == jnp.dtype(INT4)):
        return _SMALL_UNARY, _SMALL_BINARY
    if jnp.issubdtype(d, jnp.floating):
        return _FLOAT_UNARY, _FLOAT_BINARY
    unary = dict(_INT_UNARY)
    if jnp.issubdtype(d, jnp.unsignedinteger):
        unary.pop("neg")
        unary.pop("sign")
    return unary, _INT_BINARY


def _chain(ctx: _Ctx, dt, n: int) -> tuple[list[tuple[str, str, Callable]], int]:
    """``n`` random elementwise steps for dtype ``dt``: (kind, name, op); the number of extra inputs."""
    unary, binary = _ops_for(dt)
    steps, extra = [], 0
    for _ in range(n):
        if ctx.p(0.6):
            name = ctx.choice(list(unary))
            steps.append(("u", name, unary[name]))
        else:
            name = ctx.choice(list(binary))
            steps.append(("b", name, binary[name]))
            extra += 1
    names = {s[1] for s in steps}
    if names & {"nextafter", "igamma", "rem"}:
        ctx.differentiable = False  # JAX has no (or only a partial) derivative for these
    if names & {
        "erf",
        "erfc",
        "erf_inv",
        "lgamma",
        "digamma",
        "bessel_i0e",
        "bessel_i1e",
        "igamma",
        "ndtri",
    }:
        ctx.feat("special-functions")
    return steps, extra


def _apply_chain(steps, x, others):
    it = iter(others)
    for kind, _, op in steps:
        if kind == "u":
            x = op(x)
        else:
            y = next(it)
            x = op(x, y).astype(x.dtype)
    return x


def _broadcast_partner(ctx: _Ctx, shape) -> tuple[int, ...]:
    """Same shape, a scalar, or a trailing suffix: broadcasting partners."""
    r = ctx.rng.random()
    if r < 0.6 or not shape:
        return tuple(shape)
    if r < 0.8:
        return ()
    return tuple(shape[ctx.int(0, len(shape) - 1) :])


def g_elementwise(ctx: _Ctx):
    dt = ctx.any_dtype()
    shape = ctx.shape()
    steps, extra = _chain(ctx, dt, ctx.int(1, 6))
    partners = [_spec(_broadcast_partner(ctx, shape), dt) for _ in range(extra)]
    x = _spec(shape, dt)
    ctx.feat("elementwise", f"dtype:{_name(dt)}")
    ctx.say(f"elementwise {_t(x)}: " + " -> ".join(s[1] for s in steps))

    def fn(x, *ys):
        return _apply_chain(steps, x, ys)

    if not jnp.issubdtype(jnp.dtype(dt), jnp.floating) or jnp.dtype(dt) == jnp.dtype(F8):
        ctx.differentiable = False
    return fn, (x, *partners)


def g_cast(ctx: _Ctx):
    dts = [ctx.any_dtype() for _ in range(ctx.int(1, 4))]
    if ctx.p(0.2):
        dts.append(jnp.bool_)
    x = _spec(ctx.shape(), ctx.any_dtype())
    ctx.feat("cast", *(f"dtype:{_name(d)}" for d in dts))
    ctx.say(f"convert {_t(x)} -> " + " -> ".join(_name(d) for d in dts))

    def fn(x):
        for d in dts:
            x = x.astype(d)
        return x

    ctx.differentiable = False
    return fn, (x,)


def g_matmul(ctx: _Ctx):
    kind = ctx.choice(["matmul", "einsum", "dot_general", "vecdot", "outer", "int8", "fp8", "int4"])
    ctx.feat("matmul")
    huge = ctx.p(0.04)
    if huge:
        ctx.feat("huge")
    m, k, n = (
        (1 << 14, 1 << 13, 1 << 14)
        if huge
        else (
            ctx.dim(0 if ctx.p(0.05) else 1, 96),
            ctx.dim(0 if ctx.p(0.05) else 1, 96),
            ctx.dim(1, 96),
        )
    )
    if 0 in (m, k):
        ctx.feat("zero-size")
    batch = ctx.shape(ctx.int(0, 2), 1, 4) if not huge else ()
    dt = ctx.float_dtype()
    if kind in ("int8", "int4", "fp8"):
        dt = {"int8": jnp.int8, "fp8": F8, "int4": INT4 or jnp.int8}[kind]
        out = jnp.float32 if kind == "fp8" else jnp.int32
        a, b = _spec((*batch, m, k), dt), _spec((k, n), dt)
        ctx.differentiable = False
        ctx.say(f"dot_general {_t(a)} x {_t(b)} -> {_name(out)}")
        ctx.feat(f"dtype:{_name(dt)}")

        def fn(a, b):
            return lax.dot_general(
                a, b, (((a.ndim - 1,), (0,)), ((), ())), preferred_element_type=out
            )

        return fn, (a, b)
    ctx.feat(f"dtype:{_name(dt)}")
    if kind == "matmul":
        a = _spec((*batch, m, k), dt)
        b = _spec((*batch, k, n) if ctx.p(0.5) else (k, n), dt)
        ctx.say(f"matmul {_t(a)} @ {_t(b)}")
        return (lambda a, b: a @ b), (a, b)
    if kind == "einsum":
        spec = ctx.choice(
            [
                "bij,bjk->bik",
                "bhqd,bhkd->bhqk",
                "ij,jk->ik",
                "bi,ij->bj",
                "abc,cd->abd",
                "ij,ij->i",
                "bqhd,bkhd->bhqk",
            ]
        )
        letters = sorted(set(spec.replace(",", "").replace("->", "")))
        sizes = {
            c: (m if i % 3 == 0 else k if i % 3 == 1 else n) or 1 for i, c in enumerate(letters)
        }
        ins_ = spec.split("->")[0].split(",")
        ops = tuple(_spec(tuple(sizes[c] for c in s), dt) for s in ins_)
        ctx.say(f"einsum {spec} " + " ".join(_t(o) for o in ops))
        return (lambda *xs: jnp.einsum(spec, *xs)), ops
    if kind == "dot_general":
        a = _spec((2, m, k), dt)
        b = _spec((2, n, k), dt)
        prec = ctx.choice([None, lax.Precision.HIGHEST, lax.Precision.DEFAULT])
        ctx.say(f"dot_general batch {_t(a)} x {_t(b)} precision={prec}")
        return (lambda a, b: lax.dot_general(a, b, (((2,), (2,)), ((0,), (0,))), precision=prec)), (
            a,
            b,
        )
    if kind == "vecdot":
        a = _spec((*batch, k), dt)
        ctx.say(f"vdot {_t(a)}")
        return (lambda a, b: jnp.sum(a * b, axis=-1) + jnp.vdot(a.ravel(), b.ravel())), (a, a)
    a, b = _spec((m,), dt), _spec((n,), dt)
    ctx.say(f"outer {_t(a)} {_t(b)}")
    return jnp.outer, (a, b)


def g_conv(ctx: _Ctx):
    nd = ctx.choice([1, 2, 2, 3])
    ctx.feat("conv", f"conv{nd}d")
    dt = ctx.choice([*FLOATS, jnp.int8]) if ctx.p(0.9) else jnp.int8
    ctx.feat(f"dtype:{_name(dt)}")
    groups = ctx.choice([1, 1, 1, 2, 4])
    cin, cout = groups * ctx.int(1, 8), groups * ctx.int(1, 8)
    spatial = tuple(ctx.dim(1, 24 if nd < 3 else 10) for _ in range(nd))
    if ctx.p(0.04):
        ctx.feat("huge")
        spatial = tuple(1 << (14 if nd == 2 else 24 if nd == 1 else 9) for _ in range(nd))
    kernel = tuple(ctx.int(1, 5) for _ in range(nd))
    batch = 0 if ctx.p(0.04) else ctx.int(1, 4)
    if batch == 0:
        ctx.feat("zero-size")
    stride = tuple(ctx.int(1, 3) for _ in range(nd))
    lhs_dil = tuple(ctx.choice([1, 1, 2]) for _ in range(nd))
    rhs_dil = tuple(ctx.choice([1, 1, 2]) for _ in range(nd))
    padding = ctx.choice(["SAME", "VALID", "explicit"])
    if padding == "explicit" or lhs_dil != (1,) * nd:  # JAX: no string padding with lhs dilation
        padding = [(ctx.int(0, 2), ctx.int(0, 2)) for _ in range(nd)]
    letters = "HWD"[:nd]
    dn = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
    x = _spec((batch, *spatial, cin), dt)
    w = _spec((*kernel, cin // groups, cout), dt)
    out = jnp.int32 if dt == jnp.int8 else None
    transpose = ctx.p(0.15) and groups == 1 and dt != jnp.int8
    ctx.say(
        f"conv{nd}d{' transpose' if transpose else ''} {_t(x)} * {_t(w)} stride={stride} "
        f"padding={padding} lhs_dil={lhs_dil} rhs_dil={rhs_dil} groups={groups}"
    )
    if dt == jnp.int8:
        ctx.differentiable = False
    if transpose:
        ctx.feat("conv_transpose")
        pad = padding if isinstance(padding, str) else "SAME"

        def fn(x, w):
            return lax.conv_transpose(x, w, stride, pad, rhs_dilation=rhs_dil, dimension_numbers=dn)

        return fn, (x, w)

    def fn(x, w):
        return lax.conv_general_dilated(
            x, w, stride, padding, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
            dimension_numbers=dn, feature_group_count=groups, preferred_element_type=out,
        )  # fmt: skip

    return fn, (x, w)


def g_reduction(ctx: _Ctx):
    ndim = ctx.int(1, 4)
    dt = ctx.choice([*FLOATS, *FLOATS, jnp.int32, jnp.int8, jnp.uint8])
    x = _spec(ctx.shape(ndim), dt)
    axes = sorted(set(int(a) for a in ctx.rng.choice(ndim, size=ctx.int(1, ndim), replace=False)))
    axis = tuple(axes) if ctx.p(0.7) else None
    one = axes[0]
    empty = any(x.shape[a] == 0 for a in (axes if axis is not None else range(ndim)))
    floating = jnp.issubdtype(jnp.dtype(dt), jnp.floating)
    names = [
        "sum",
        "max",
        "min",
        "prod",
        "mean",
        "cumsum",
        "cumprod",
        "cummax",
        "any",
        "count_nonzero",
    ]
    if floating:
        names += ["logsumexp", "var", "std", "norm", "cumlogsumexp"]
    if not (x.shape[one] == 0):
        names += ["argmax", "argmin"]
    name = ctx.choice(names)
    ctx.feat("reduction", f"reduce:{name}", f"dtype:{_name(dt)}")
    if empty:
        ctx.feat("zero-size-axis")
    ctx.say(f"{name} {_t(x)} axis={one if name.startswith(('cum', 'arg')) else axis}")
    if not floating or name in ("argmax", "argmin", "any", "count_nonzero"):
        ctx.differentiable = False
    fns = {
        "sum": lambda x: jnp.sum(x, axis=axis),
        "max": lambda x: jnp.max(x, axis=axis, initial=0 if empty else None),
        "min": lambda x: jnp.min(x, axis=axis, initial=0 if empty else None),
        "prod": lambda x: jnp.prod(x, axis=axis),
        "mean": lambda x: jnp.mean(x, axis=axis),
        "cumsum": lambda x: jnp.cumsum(x, axis=one),
        "cumprod": lambda x: jnp.cumprod(x, axis=one),
        "cummax": lambda x: lax.cummax(x, axis=one),
        "cumlogsumexp": lambda x: lax.cumlogsumexp(x, axis=one),
        "any": lambda x: jnp.any(x > 0, axis=axis),
        "count_nonzero": lambda x: jnp.count_nonzero(x, axis=axis),
        "logsumexp": lambda x: jax.nn.logsumexp(x, axis=axis),
        "var": lambda x: jnp.var(x, axis=axis),
        "std": lambda x: jnp.std(x, axis=axis),
        "norm": lambda x: jnp.linalg.norm(x.reshape(x.shape[0], -1), axis=-1),
        "argmax": lambda x: jnp.argmax(x, axis=one),
        "argmin": lambda x: jnp.argmin(x, axis=one),
    }
    return fns[name], (x,)


def g_window(ctx: _Ctx):
    dt = ctx.float_dtype()
    x = _spec((ctx.int(1, 4), *ctx.shape(2, 1, 32), ctx.int(1, 8)), dt)
    win, stride = (1, ctx.int(1, 3), ctx.int(1, 3), 1), (1, ctx.int(1, 2), ctx.int(1, 2), 1)
    kind = ctx.choice(["max", "avg", "min"])
    pad = ctx.choice(["VALID", "SAME"])
    ctx.feat("reduce_window", f"dtype:{_name(dt)}")
    ctx.say(f"{kind}-pool {_t(x)} window={win} stride={stride} {pad}")
    if kind == "max":
        return (lambda x: lax.reduce_window(x, -jnp.inf, lax.max, win, stride, pad)), (x,)
    if kind == "min":
        return (lambda x: lax.reduce_window(x, jnp.inf, lax.min, win, stride, pad)), (x,)
    return (lambda x: lax.reduce_window(x, 0.0, lax.add, win, stride, pad) / math.prod(win)), (x,)


def g_norm(ctx: _Ctx):
    dt = ctx.float_dtype()
    x = _spec(ctx.shape(ctx.int(1, 3)), dt)
    name = ctx.choice(
        ["softmax", "log_softmax", "layernorm", "rmsnorm", "standardize", "one_hot", "glu"]
    )
    ctx.feat("norm", f"norm:{name}", f"dtype:{_name(dt)}")
    ctx.say(f"{name} {_t(x)}")
    if name == "softmax":
        return (lambda x: jax.nn.softmax(x, axis=-1)), (x,)
    if name == "log_softmax":
        return (lambda x: jax.nn.log_softmax(x, axis=-1)), (x,)
    if name == "standardize":
        return (lambda x: jax.nn.standardize(x, axis=-1)), (x,)
    if name == "glu":
        x = _spec((*x.shape[:-1], 2 * max(1, x.shape[-1] if x.shape else 1)), dt)
        return (lambda x: jax.nn.glu(x)), (x,)
    if name == "one_hot":
        ctx.differentiable = False
        ids = _spec(x.shape[:-1] if x.shape else (), jnp.int32)
        return (lambda i: jax.nn.one_hot(i, 17, dtype=dt)), (ids,)
    g = _spec(x.shape[-1:], dt)
    if name == "layernorm":

        def ln(x, g):
            m = jnp.mean(x, -1, keepdims=True)
            v = jnp.mean(jnp.square(x - m), -1, keepdims=True)
            return (x - m) * lax.rsqrt(v + 1e-5) * g

        return ln, (x, g)

    def rms(x, g):
        return x * lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True) + 1e-6) * g

    return rms, (x, g)


def _body(ctx: _Ctx, shape, dt):
    """A random loop body ``x -> x'`` of the same shape and dtype."""
    steps, _ = _chain(ctx, dt, ctx.int(1, 3))
    steps = [s for s in steps if s[0] == "u"] or [("u", "tanh", jnp.tanh)]
    use_matmul = len(shape) == 2 and shape[0] == shape[1] and ctx.p(0.5)
    ctx.say("body: " + " -> ".join(s[1] for s in steps) + (" -> matmul" if use_matmul else ""))

    def body(x):
        x = _apply_chain(steps, x, ())
        return (x @ x).astype(x.dtype) if use_matmul else x

    return body


def g_loop(ctx: _Ctx):
    dt = ctx.float_dtype()
    n = ctx.dim(1, 32)
    shape = (n, n) if ctx.p(0.5) else ctx.shape(ctx.int(1, 3))
    x = _spec(shape, dt)
    kind = ctx.choice(
        [
            "fori_static",
            "fori_dynamic",
            "while_static",
            "while_dynamic",
            "scan",
            "scan_xs",
            "nested",
        ]
    )
    ctx.feat("loop", f"loop:{kind}", f"dtype:{_name(dt)}")
    body = _body(ctx, shape, dt)
    trips = ctx.choice([0, 1, 3, 7, 100])
    ctx.say(f"{kind} {_t(x)} trips={trips}")
    if kind == "fori_static":
        return (lambda x: lax.fori_loop(0, trips, lambda i, c: body(c), x)), (x,)
    if kind == "fori_dynamic":
        ctx.differentiable = False
        return (lambda x, n: lax.fori_loop(0, n, lambda i, c: body(c), x)), (
            x,
            _spec((), jnp.int32),
        )
    if kind == "while_static":
        ctx.differentiable = False

        def wf(x):
            return lax.while_loop(lambda c: c[0] < trips, lambda c: (c[0] + 1, body(c[1])), (0, x))[
                1
            ]

        return wf, (x,)
    if kind == "while_dynamic":
        ctx.differentiable = False

        def wd(x, limit):
            def cond(c):
                return (c[0] < limit) & jnp.all(jnp.isfinite(c[1]))

            return lax.while_loop(cond, lambda c: (c[0] + 1, body(c[1])), (0, x))[1]

        return wd, (x, _spec((), jnp.int32))
    if kind == "scan":
        return (lambda x: lax.scan(lambda c, _: (body(c), jnp.sum(c)), x, None, length=trips)), (x,)
    if kind == "scan_xs":
        xs = _spec((trips, *shape), dt)
        return (lambda x, xs: lax.scan(lambda c, a: (body(c + a), c), x, xs)), (x, xs)
    inner = ctx.choice([1, 2, 5])

    def nested(x):
        return lax.fori_loop(
            0, trips, lambda i, c: lax.fori_loop(0, inner, lambda j, d: body(d), c), x
        )

    return nested, (x,)


def g_cond(ctx: _Ctx):
    dt = ctx.float_dtype()
    shape = ctx.shape(ctx.int(1, 3))
    x = _spec(shape, dt)
    nb = ctx.int(2, 4) if ctx.p(0.5) else 2
    bodies = [_body(ctx, shape, dt) for _ in range(nb)]
    ctx.feat("cond", "switch" if nb > 2 else "cond", f"dtype:{_name(dt)}")
    ctx.say(f"{'switch' if nb > 2 else 'cond'} {_t(x)} over {nb} branches")
    if nb == 2:
        return (lambda x, p: lax.cond(p > 0, bodies[0], bodies[1], x)), (x, _spec((), jnp.float32))
    return (lambda x, i: lax.switch(i, bodies, x)), (x, _spec((), jnp.int32))


def g_rng(ctx: _Ctx):
    impl = ctx.choice(["threefry2x32", "rbg", "unsafe_rbg"])
    dt = ctx.float_dtype()
    shape = ctx.shape(ctx.int(0, 3))
    kind = ctx.choice(
        [
            "normal",
            "uniform",
            "bernoulli",
            "categorical",
            "randint",
            "gumbel",
            "truncated_normal",
            "permutation",
            "split",
        ]
    )
    ctx.feat("rng", f"rng:{impl}", f"rng:{kind}")
    ctx.say(f"random.{kind} {impl} shape={shape} {_name(dt)}")
    ctx.differentiable = False

    def fn(seed, x):
        key = jax.random.key(seed, impl=impl)
        if kind == "normal":
            return jax.random.normal(key, shape, dt) + x
        if kind == "uniform":
            return jax.random.uniform(key, shape, dt) * x
        if kind == "bernoulli":
            return jax.random.bernoulli(key, 0.3, shape)
        if kind == "categorical":
            return jax.random.categorical(
                key,
                jnp.broadcast_to(x, (*shape[:-1], max(1, shape[-1] if shape else 1)))
                if shape
                else x.reshape(1),
            )
        if kind == "randint":
            return jax.random.randint(key, shape, 0, 100)
        if kind == "gumbel":
            return jax.random.gumbel(key, shape, dt)
        if kind == "truncated_normal":
            return jax.random.truncated_normal(key, -2.0, 2.0, shape, dt)
        if kind == "permutation":
            return jax.random.permutation(key, shape[0] if shape else 5)
        keys = jax.random.split(key, 4)
        return jax.vmap(lambda k: jax.random.normal(k, (8,)))(keys)

    return fn, (_spec((), jnp.int32), _spec(shape, dt))


def g_linalg(ctx: _Ctx):
    name = ctx.choice(
        [
            "cholesky",
            "qr",
            "eigh",
            "svd",
            "svdvals",
            "solve",
            "inv",
            "det",
            "slogdet",
            "lu",
            "triangular_solve",
            "eigvalsh",
            "lstsq",
            "pinv",
            "eig",
        ]
    )
    n = ctx.int(1, 24)
    if ctx.p(0.03):
        n = 0
        ctx.feat("zero-size")
    if ctx.p(0.02):
        n = 1 << 17
        ctx.feat("huge")
    batch = ctx.shape(ctx.int(0, 2), 1, 4) if n < 4096 else ()
    dt = jnp.float32 if ctx.p(0.85) else jnp.complex64  # JAX's linalg: f32/f64/c64/c128 only
    a = _spec((*batch, n, n), dt)
    ctx.feat("linalg", f"linalg:{name}", f"dtype:{_name(dt)}")
    ctx.say(f"linalg.{name} {_t(a)}")
    if name in ("eig", "lu"):
        ctx.differentiable = False
    if name == "solve":
        return jnp.linalg.solve, (a, _spec((*batch, n, 2), dt))
    if name == "triangular_solve":
        return (lambda a, b: jax.scipy.linalg.solve_triangular(a, b, lower=True)), (
            a,
            _spec((*batch, n, 3), dt),
        )
    if name == "lstsq":
        return (lambda a, b: jnp.linalg.lstsq(a, b)[0]), (
            _spec((n + 2, n), dt),
            _spec((n + 2,), dt),
        )
    fns = {
        "cholesky": jnp.linalg.cholesky,
        "qr": lambda a: jnp.linalg.qr(a),
        "eigh": jnp.linalg.eigh,
        "eigvalsh": jnp.linalg.eigvalsh,
        "svd": lambda a: jnp.linalg.svd(a, full_matrices=False),
        "svdvals": jnp.linalg.svdvals,
        "inv": jnp.linalg.inv,
        "det": jnp.linalg.det,
        "slogdet": jnp.linalg.slogdet,
        "lu": lambda a: lax.linalg.lu(a),  # batched (jax.scipy.linalg.lu is 2-D only)
        "pinv": jnp.linalg.pinv,
        "eig": jnp.linalg.eig,
    }
    return fns[name], (a,)


def g_fft(ctx: _Ctx):
    name = ctx.choice(
        ["fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "fftn", "irfftn", "hfft"]
    )
    nd = 2 if name in ("fft2", "ifft2", "rfft2", "fftn", "irfftn") else 1
    shape = (
        *ctx.shape(ctx.int(0, 2), 1, 6),
        # irfft of one element has length 0 (JAX divides by it)
        *(
            ctx.choice([1, 2, 3, 8, 12, 16, 17, 64, 100, 256][name.startswith(("irfft", "hfft")) :])
            for _ in range(nd)
        ),
    )
    if ctx.p(0.04):
        ctx.feat("huge")
        shape = (1 << 20, 1 << 20)
    if ctx.p(0.03):
        ctx.feat("zero-size")
        shape = (0, *shape[1:])
    complex_in = name in ("fft", "ifft", "fft2", "ifft2", "fftn", "irfft", "irfftn", "hfft")
    dt = (
        jnp.complex64
        if complex_in and ctx.p(0.7)
        else jnp.float32  # JAX's FFTs take f32/f64/c64/c128 only
    )
    x = _spec(shape, dt)
    ctx.feat("fft", f"fft:{name}", f"dtype:{_name(dt)}")
    ctx.say(f"fft.{name} {_t(x)}")
    fn = getattr(jnp.fft, name)
    return (lambda x: fn(x)), (x,)


def g_sort(ctx: _Ctx):
    name = ctx.choice(
        [
            "sort",
            "argsort",
            "top_k",
            "multi_sort",
            "median",
            "approx_max_k",
            "searchsorted",
            "partition",
        ]
    )
    dt = ctx.choice([*FLOATS, jnp.int32, jnp.uint8])
    shape = ctx.shape(ctx.int(1, 3))
    x = _spec(shape, dt)
    ctx.feat("sort", f"sort:{name}", f"dtype:{_name(dt)}")
    last = shape[-1]
    k = ctx.int(0, last) if last else 0
    ctx.say(f"{name} {_t(x)} k={k}")
    if name in (
        "argsort",
        "top_k",
        "approx_max_k",
        "searchsorted",
        "partition",
    ) or not jnp.issubdtype(jnp.dtype(dt), jnp.floating):
        ctx.differentiable = False
    if name == "sort":
        return (lambda x: jnp.sort(x, axis=-1, descending=ctx.p(0.3))), (x,)
    if name == "argsort":
        return (lambda x: jnp.argsort(x, axis=-1, stable=True)), (x,)
    if name == "top_k":
        return (lambda x: lax.top_k(x, k)), (x,)
    if name == "approx_max_k":
        if not jnp.issubdtype(jnp.dtype(dt), jnp.floating):
            x = _spec(shape, jnp.float32)
        return (lambda x: lax.approx_max_k(x, max(k, 1) if last else 0)), (x,)
    if name == "multi_sort":
        return (lambda x, y: lax.sort((x, y), num_keys=1)), (x, _spec(shape, jnp.int32))
    if name == "median":
        return (lambda x: jnp.median(x.astype(jnp.float32), axis=-1)), (x,)
    if name == "partition":
        return (lambda x: jnp.partition(x, min(k, max(last - 1, 0)), axis=-1)), (x,)
    x = _spec(tuple(min(d, 64) for d in shape), dt)  # int32 positions: JAX's limit is 2^31 elements
    return (lambda x, v: jnp.searchsorted(jnp.sort(x.ravel()), v)), (
        x,
        _spec((ctx.int(0, 16),), dt),
    )


def g_gather(ctx: _Ctx):
    name = ctx.choice(
        [
            "take",
            "take_along_axis",
            "at_add",
            "at_set",
            "at_max",
            "at_mul",
            "dynamic_slice",
            "dynamic_update_slice",
            "strided",
            "index_update_2d",
            "embedding_grad",
        ]
    )
    dt = ctx.choice([*FLOATS, jnp.int32])
    shape = ctx.shape(ctx.int(1, 3))
    x = _spec(shape, dt)
    nidx = ctx.int(0, 24)
    idx = _spec((nidx,), jnp.int32)
    ctx.feat("gather_scatter", f"gather:{name}", f"dtype:{_name(dt)}")
    ctx.say(f"{name} {_t(x)} indices={_t(idx)}")
    if not jnp.issubdtype(jnp.dtype(dt), jnp.floating):
        ctx.differentiable = False
    if name == "take":
        mode = ctx.choice(["clip", "fill", None])
        return (lambda x, i: jnp.take(x, i, axis=0, mode=mode)), (x, idx)
    if name == "take_along_axis":
        ii = _spec(shape, jnp.int32)
        return (lambda x, i: jnp.take_along_axis(x, i, axis=-1)), (x, ii)
    if name.startswith("at_"):
        if name in ("at_mul", "at_max"):
            ctx.differentiable = False
        upd = _spec((nidx, *shape[1:]), dt)
        op = name[3:]
        return (lambda x, i, u: getattr(x.at[i], op)(u)), (x, idx, upd)
    if name == "dynamic_slice":
        sizes = tuple(ctx.int(0, d) for d in shape)
        return (lambda x, s: lax.dynamic_slice(x, [s] * len(shape), sizes)), (
            x,
            _spec((), jnp.int32),
        )
    if name == "dynamic_update_slice":
        u = _spec(tuple(ctx.int(0, d) for d in shape), dt)
        return (lambda x, u, s: lax.dynamic_update_slice(x, u, [s] * len(shape))), (
            x,
            u,
            _spec((), jnp.int32),
        )
    if name == "strided":
        return (lambda x: x[tuple(slice(None, None, ctx.int(1, 3)) for _ in shape)] * 2), (x,)
    if name == "index_update_2d":
        if len(shape) < 2:
            x = _spec((*shape, 4), dt)
        return (lambda x, i, j: x.at[i, j].add(1)), (x, idx, idx)
    table = _spec((ctx.int(1, 64), ctx.int(1, 32)), jnp.float32)
    ctx.differentiable = True
    return (lambda t, i: jnp.sum(jax.grad(lambda t: jnp.sum(t[i] ** 2))(t))), (table, idx)


def g_flash(ctx: _Ctx):
    import perfjax.ops as F

    name = ctx.choice(
        [
            "matmul",
            "add",
            "relu",
            "gelu",
            "softmax",
            "layernorm",
            "rmsnorm",
            "conv2d",
            "attention",
            "max_pool2d",
            "avg_pool2d",
            "embedding",
            "mlp",
            "silu",
            "sigmoid",
            "tanh",
            "bias_add",
            "mul",
            "sub",
        ]
    )
    dt = ctx.choice([jnp.float32, jnp.float32, jnp.bfloat16, jnp.float16])
    ctx.feat("flash", f"flash:{name}", f"dtype:{_name(dt)}")
    b, m, k, n = ctx.int(1, 8), ctx.dim(1, 64), ctx.dim(1, 64), ctx.dim(1, 64)
    if ctx.p(0.04):
        ctx.feat("huge")
        b, m, k, n = 1, 1 << 14, 1 << 13, 1 << 14
    ctx.say(f"flash.{name} b={b} m={m} k={k} n={n} {_name(dt)}")
    if name == "matmul":
        return F.matmul, (_spec((b, m, k), dt), _spec((k, n), dt))
    if name == "mlp":
        return (lambda x, w1, w2: F.matmul(F.relu(F.matmul(x, w1)), w2)), (
            _spec((m, k), dt),
            _spec((k, n), dt),
            _spec((n, k), dt),
        )
    if name in ("add", "mul", "sub"):
        return getattr(F, name), (_spec((b, m, n), dt), _spec((n,), dt))
    if name in ("relu", "gelu", "silu", "sigmoid", "tanh"):
        return getattr(F, name), (_spec((b, m, n), dt),)
    if name == "bias_add":
        return F.bias_add, (_spec((b, m, n), dt), _spec((n,), dt))
    if name == "softmax":
        return F.softmax, (_spec((b, m, n), dt),)
    if name == "layernorm":
        return F.layernorm, (_spec((b, m, n), dt), _spec((n,), dt), _spec((n,), dt))
    if name == "rmsnorm":
        return F.rmsnorm, (_spec((b, m, n), dt), _spec((n,), dt))
    if name in ("conv2d", "max_pool2d", "avg_pool2d"):
        hw = min(m, 32)
        x = _spec((b, hw, hw, ctx.int(1, 16)), dt)
        if name != "conv2d":
            return (lambda x: getattr(F, name)(x, 2)), (x,)
        w = _spec((ctx.int(1, 3), ctx.int(1, 3), x.shape[-1], ctx.int(1, 16)), dt)
        stride = ctx.int(1, 2)
        return (lambda x, w: F.conv2d(x, w, stride=stride)), (x, w)
    if name == "attention":
        h, d = ctx.int(1, 4), ctx.choice([8, 16, 32, 64])
        causal = ctx.p(0.5)
        q = _spec((b, m, h, d), dt)
        kv = _spec((b, n, h, d), dt)
        return (lambda q, k, v: F.attention(q, k, v, causal=causal)), (q, kv, kv)
    ctx.differentiable = False
    return F.embedding, (_spec((ctx.int(1, 500), n), dt), _spec((b, m), jnp.int32))


def g_shape(ctx: _Ctx):
    dt = ctx.any_dtype()
    shape = ctx.shape(ctx.int(1, 4))
    x = _spec(shape, dt)
    name = ctx.choice(
        [
            "transpose",
            "reshape",
            "concat",
            "pad",
            "tile",
            "repeat",
            "flip",
            "roll",
            "broadcast",
            "squeeze_expand",
            "iota_add",
            "triu",
        ]
    )
    ctx.feat("shape", f"shape:{name}", f"dtype:{_name(dt)}")
    ctx.say(f"{name} {_t(x)}")
    if not jnp.issubdtype(jnp.dtype(dt), jnp.floating) or jnp.dtype(dt) == jnp.dtype(F8):
        ctx.differentiable = False
    nd = len(shape)
    fns = {
        "transpose": lambda x: jnp.transpose(x, tuple(reversed(range(nd)))),
        "reshape": lambda x: x.reshape(-1) if 0 not in shape else x.reshape((0,)),
        "concat": lambda x: jnp.concatenate([x, x, x], axis=-1),
        "pad": lambda x: lax.pad(x, jnp.zeros((), x.dtype), [(1, 2, 1)] * nd),
        "tile": lambda x: jnp.tile(x, (2,) * nd),
        "repeat": lambda x: jnp.repeat(x, 3, axis=0),
        "flip": lambda x: jnp.flip(x),
        "roll": lambda x: jnp.roll(x, 3, axis=-1),
        "broadcast": lambda x: jnp.broadcast_to(x, (3, *shape)),
        "squeeze_expand": lambda x: jnp.squeeze(x[None, ..., None], axis=0),
        "iota_add": lambda x: x + lax.broadcasted_iota(x.dtype, shape, nd - 1),
        "triu": lambda x: jnp.triu(x) if nd >= 2 else x,
    }
    return fns[name], (x,)


def g_attention(ctx: _Ctx):
    dt = ctx.choice([jnp.float32, jnp.bfloat16])  # XLA:CPU has no F16_F16_F32 dot
    b, t, s, h, d = (
        ctx.int(1, 4),
        ctx.dim(1, 64),
        ctx.dim(1, 64),
        ctx.choice([1, 2, 4]),
        ctx.choice([8, 16, 32]),
    )
    kvh = ctx.choice([h, 1])
    causal = ctx.p(0.5) and t == s
    ctx.feat("attention", f"dtype:{_name(dt)}")
    ctx.say(f"dot_product_attention B={b} T={t} S={s} H={h} KVH={kvh} D={d} causal={causal}")
    q, k = _spec((b, t, h, d), dt), _spec((b, s, kvh, d), dt)
    return (
        lambda q, k, v: jax.nn.dot_product_attention(
            q, k, v, is_causal=causal, implementation="xla"
        )
    ), (q, k, k)


def g_callback(ctx: _Ctx):
    kind = ctx.choice(["pure_callback", "debug_print", "io_callback"])
    x = _spec(ctx.shape(ctx.int(1, 2)), jnp.float32)
    ctx.feat("callback", f"callback:{kind}")
    ctx.say(f"{kind} {_t(x)}")
    ctx.differentiable = False

    def host(a):
        return np.asarray(a) * 2

    def fn(x):
        y = jnp.sin(x)
        if kind == "pure_callback":
            return jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, x.dtype), y)
        if kind == "io_callback":
            from jax.experimental import io_callback

            return io_callback(host, jax.ShapeDtypeStruct(x.shape, x.dtype), y)
        jax.debug.print("y={y}", y=y.sum())
        return y * 2

    return fn, (x,)


def g_mlp_block(ctx: _Ctx):
    """A small model-like block: matmul + norm + activation + residual (what real programs do)."""
    dt = ctx.float_dtype()
    b, d, f = ctx.dim(1, 32), ctx.choice([8, 16, 32, 64]), ctx.choice([16, 32, 128])
    act = ctx.choice(["gelu_exact", "gelu_tanh", "silu", "relu"])
    ctx.feat("block", f"dtype:{_name(dt)}")
    ctx.say(f"mlp block x[{b},{d}] ff={f} act={act}")
    a = _FLOAT_UNARY[act]

    def fn(x, w1, w2):
        h = jax.nn.standardize(x, axis=-1)
        return x + a(h @ w1) @ w2

    return fn, (_spec((b, d), dt), _spec((d, f), dt), _spec((f, d), dt))


GENERATORS: dict[str, tuple[float, Callable]] = {
    "elementwise": (14, g_elementwise),
    "cast": (3, g_cast),
    "matmul": (9, g_matmul),
    "conv": (6, g_conv),
    "reduction": (9, g_reduction),
    "reduce_window": (3, g_window),
    "norm": (5, g_norm),
    "loop": (7, g_loop),
    "cond": (4, g_cond),
    "rng": (6, g_rng),
    "linalg": (6, g_linalg),
    "fft": (4, g_fft),
    "sort": (5, g_sort),
    "gather": (6, g_gather),
    "flash": (7, g_flash),
    "shape": (4, g_shape),
    "attention": (3, g_attention),
    "callback": (1, g_callback),
    "block": (3, g_mlp_block),
}


def _float_args(inputs) -> tuple[int, ...]:
    return tuple(
        i
        for i, x in enumerate(inputs)
        if jnp.dtype(x.dtype) in (jnp.dtype(d) for d in FLOATS)
        and not any(s == 0 for s in x.shape)
        and math.prod(x.shape) < 1 << 30
    )


def generate(seed: int, index: int) -> FuzzProgram:
    """Program ``index`` of ``seed``: the same arguments always give the same program."""
    ctx = _Ctx(np.random.default_rng([seed, index]))
    names = list(GENERATORS)
    weights = np.array([GENERATORS[n][0] for n in names], dtype=float)
    gen = names[int(ctx.rng.choice(len(names), p=weights / weights.sum()))]
    fn, inputs = GENERATORS[gen][1](ctx)
    inputs = tuple(inputs)
    # Transformations of the random program.
    r = ctx.rng.random()
    if r < 0.10:
        ctx.feat("vmap")
        bsz = ctx.int(1, 4)
        ctx.say(f"vmap over a leading axis of {bsz}")
        fn = jax.vmap(fn)
        inputs = tuple(_spec((bsz, *x.shape), x.dtype) for x in inputs)
    elif r < 0.22 and ctx.differentiable and _float_args(inputs):
        ctx.feat("grad")
        argnums = _float_args(inputs)[:2]
        ctx.say(f"grad w.r.t. inputs {argnums}")
        f0 = fn

        def loss(*xs):
            outs = [o for o in jax.tree.leaves(f0(*xs)) if jnp.issubdtype(o.dtype, jnp.inexact)]
            return (
                sum(jnp.sum(jnp.real(o).astype(jnp.float32)) for o in outs)
                if outs
                else jnp.float32(0)
            )

        fn = jax.grad(loss, argnums=argnums)
    elif r < 0.26:
        ctx.feat("checkpoint")
        ctx.say("jax.checkpoint + nested jit")
        fn = jax.jit(jax.checkpoint(fn))
    fn.__name__ = f"fuzz_{seed}_{index}_{gen}"
    return FuzzProgram(
        seed,
        index,
        fn,
        inputs,
        tuple([f"gen:{gen}", *ctx.features]),
        "; ".join(ctx.desc),
        ctx.differentiable,
    )


# ---- evaluation ------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum, frame):
        raise _Timeout(f"more than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _platform(device: str) -> str:
    import perfjax

    try:
        from perfjax.prediction import lowering_platform

        return lowering_platform(device)[0]
    except ImportError:
        spec = perfjax.device(device)
        if spec.family == "tpu":
            return "tpu"
        if spec.family == "gpu":
            return "rocm" if (spec.vendor or "").lower() == "amd" else "cuda"
        return "cpu"


def jax_rejects(prog: FuzzProgram, platform: str) -> tuple[str, bool] | None:
    """The error tracing/lowering the program for ``platform`` with JAX alone, and whether it is
    a perfjax error (a Flash op's check); None when JAX accepts the program."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jax.jit(prog.fn).trace(*prog.inputs).lower(lowering_platforms=(platform,))
    except Exception as e:
        return f"{type(e).__name__}: {_first_line(e)}", _clear_perfjax_error(e)
    return None


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else ""


def _raised_in_perfjax(e: BaseException) -> bool:
    import perfjax

    tb = traceback.extract_tb(e.__traceback__)
    package = os.path.dirname(os.path.abspath(perfjax.__file__)) + os.sep
    return bool(tb) and os.path.abspath(tb[-1].filename).startswith(package)


def _prefix(msg: str) -> str:
    """A message's stable prefix (numbers, quoted names and shapes masked) for counting."""
    m = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", msg)
    m = re.sub(r"\[[^\]]*\]", "[…]", m)
    m = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", m)
    return m[:70]


def _clear_perfjax_error(e: BaseException) -> bool:
    """A ValueError/TypeError with a message, of perfjax's own classes or raised in its code."""
    mine = type(e).__module__.startswith("perfjax") or _raised_in_perfjax(e)
    return isinstance(e, (ValueError, TypeError)) and bool(_first_line(e)) and mine


def classify(e: BaseException, prog: FuzzProgram, device: str, cache: dict) -> tuple[str, str]:
    """``(outcome, detail)`` for an exception ``predict`` raised."""
    if isinstance(e, _Timeout):
        return "timeout", str(e)
    platform = _platform(device)
    if platform not in cache:
        cache[platform] = jax_rejects(prog, platform)
    rejected = cache[platform]
    detail = f"{type(e).__name__}: {_first_line(e)}"
    if rejected is not None:
        # A Flash op's own trace-time check (perfjax.ops) is a perfjax refusal, not JAX's.
        return ("refused", detail) if rejected[1] else ("jax_rejected", rejected[0])
    return ("refused" if _clear_perfjax_error(e) else "crash"), detail


def _bad(x: float) -> bool:
    return not (math.isfinite(x) and x >= 0)


def evaluate(prog: FuzzProgram, devices, sensitivity: bool = False, timeout: float = 60.0) -> dict:
    """Predicts ``prog`` on every device; returns ``{device: (outcome, detail)}`` and timings."""
    import perfjax

    results: dict[str, tuple[str, str]] = {}
    cache: dict = {}
    t0 = time.perf_counter()
    for d in devices:
        try:
            with _deadline(timeout), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = perfjax.predict(prog.fn, prog.inputs, device=d)
            if _bad(p.time_s) or _bad(p.energy_j):
                results[d] = ("nonfinite", f"time_s={p.time_s} energy_j={p.energy_j}")
            else:
                results[d] = ("ok", "")
        except Exception as e:
            results[d] = classify(e, prog, d, cache)
    if sensitivity:
        d = devices[0]
        if results.get(d, ("",))[0] == "ok":
            try:
                with _deadline(timeout), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = perfjax.sensitivity(prog.fn, prog.inputs, d)
                bad = {k: v for k, v in s.items() if not math.isfinite(v)}
                results[f"sensitivity:{d}"] = ("nonfinite", f"{bad}") if bad else ("ok", "")
            except Exception as e:
                results[f"sensitivity:{d}"] = classify(e, prog, d, cache)
    return dict(results=results, seconds=time.perf_counter() - t0)


def program_outcome(results: dict[str, tuple[str, str]]) -> str:
    outcomes = [o for o, _ in results.values()]
    if outcomes and all(o == "jax_rejected" for o in outcomes):
        return "jax_rejected"
    for o in ORDER:
        if o in outcomes:
            return o
    return "ok"


# ---- the benchmark ---------------------------------------------------------------------------


def _family(device: str) -> str:
    import perfjax

    spec = perfjax.device(device)
    return f"{spec.family}:{_platform(device)}" if spec.family == "gpu" else spec.family


def run(
    count: int,
    seed: int,
    devices,
    sensitivity_every: int = 10,
    timeout: float = 60.0,
    progress: bool = True,
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every: int = 250,
) -> dict:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    per_program = collections.Counter()
    per_pair = collections.Counter()
    per_family: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    per_feature: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    refused = collections.Counter()
    jax_rejected = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)  # message prefix -> programs
    failures = []
    slowest = []
    t0 = time.perf_counter()

    def snapshot(done: int) -> dict:
        elapsed = time.perf_counter() - t0
        import perfjax

        return dict(
            command=f"python benchmarks/fuzz.py --count {count} --seed {seed}",
            versions=dict(jax=jax.__version__, perfjax=perfjax.__version__),
            count=done,
            complete=done == count,
            seed=seed,
            devices=list(devices),
            seconds=elapsed,
            programs_per_s=done / elapsed if elapsed else None,
            outcomes_per_program=dict(per_program),
            outcomes_per_program_device=dict(per_pair),
            per_device_family={k: dict(v) for k, v in sorted(per_family.items())},
            per_feature={k: dict(v) for k, v in sorted(per_feature.items())},
            refused_by_type_and_message=dict(refused.most_common()),
            jax_rejected_by_message=dict(jax_rejected.most_common()),
            examples_by_message=dict(examples),
            slowest_programs=[dict(seconds=s, program=k, description=d) for s, k, d in slowest],
            failures=failures,
            reproduce="python benchmarks/fuzz.py --replay SEED:INDEX   (the 'program' field)",
        )

    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*cols, disable=not progress) as bar:
        task = bar.add_task("fuzz", total=count, status="")
        for i in range(count):
            try:
                prog = generate(seed, i)
            except Exception as e:  # a generator bug: count it, keep going
                per_program["generator_error"] += 1
                failures.append(
                    dict(
                        program=f"{seed}:{i}",
                        device="",
                        outcome="generator_error",
                        features="",
                        description="",
                        error=f"{type(e).__name__}: {_first_line(e)}",
                    )
                )
                bar.advance(task)
                continue
            ev = evaluate(
                prog,
                devices,
                sensitivity=sensitivity_every > 0 and i % sensitivity_every == 0,
                timeout=timeout,
            )
            res = ev["results"]
            outcome = program_outcome(res)
            per_program[outcome] += 1
            for f in prog.features:
                per_feature[f][outcome] += 1
            for d, (o, detail) in res.items():
                per_pair[o] += 1
                fam = "sensitivity" if d.startswith("sensitivity:") else _family(d)
                per_family[fam][o] += 1
                if o in ("refused", "jax_rejected"):
                    key = _prefix(detail)
                    (refused if o == "refused" else jax_rejected)[key] += 1
                    if len(examples[key]) < 3 and prog.key not in examples[key]:
                        examples[key].append(f"{prog.key} on {d}: {detail[:200]}")
                elif o != "ok":
                    failures.append(
                        dict(
                            program=prog.key,
                            device=d,
                            outcome=o,
                            features=" ".join(prog.features),
                            description=prog.description,
                            error=detail,
                        )
                    )
            slowest.append((ev["seconds"], prog.key, prog.description))
            slowest = sorted(slowest, reverse=True)[:10]
            if checkpoint is not None and (i + 1) % checkpoint_every == 0 and i + 1 < count:
                checkpoint(snapshot(i + 1))
            bar.update(
                task, advance=1, status=" ".join(f"{k}={v}" for k, v in sorted(per_program.items()))
            )
    return snapshot(count)


def replay(key: str, devices) -> int:
    seed, index = (int(v) for v in key.split(":"))
    prog = generate(seed, index)
    print(f"program {prog.key}: {prog.description}")
    print(f"features: {' '.join(prog.features)}")
    print("inputs:", ", ".join(_t(x) for x in prog.inputs))
    try:
        print(jax.make_jaxpr(prog.fn)(*prog.inputs))
    except Exception as e:
        print(f"jax rejects it: {type(e).__name__}: {_first_line(e)}")
    import perfjax

    for d in devices:
        try:
            p = perfjax.predict(prog.fn, prog.inputs, device=d)
            print(
                f"{d:12s} time_s={p.time_s:.4g} energy_j={p.energy_j:.4g} bottleneck={p.bottleneck}"
            )
        except Exception:
            print(f"{d:12s} raised:")
            traceback.print_exc()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--devices", nargs="*", default=None, help="default: one per family")
    ap.add_argument(
        "--sensitivity-every",
        type=int,
        default=10,
        help="perfjax.sensitivity on every Nth program (0: never)",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per program and device")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--failures-csv", default=str(FAILURES_CSV))
    ap.add_argument(
        "--replay", metavar="SEED:INDEX", help="regenerate one program, print it and run it"
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    devices = tuple(args.devices or default_devices())
    if args.replay:
        return replay(args.replay, devices)
    path = pathlib.Path(args.out)

    def save(out: dict) -> None:
        """The JSON and the failures CSV (also every 250 programs, marked ``complete: false``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=str))
        tmp.replace(path)
        with open(args.failures_csv, "w", newline="") as fh:
            w = csv.DictWriter(
                fh, fieldnames=["program", "device", "outcome", "features", "description", "error"]
            )
            w.writeheader()
            w.writerows(out["failures"])
        if not out["complete"]:
            print(
                f"[{out['count']}/{args.count} in {out['seconds']:.0f} s] "
                + json.dumps(out["outcomes_per_program"]),
                flush=True,
            )

    out = run(
        args.count, args.seed, devices, args.sensitivity_every, args.timeout,
        not args.no_progress, checkpoint=save,
    )  # fmt: skip
    save(out)
    print(
        f"{out['count']} programs in {out['seconds']:.0f} s ({out['programs_per_s']:.1f}/s) on {', '.join(devices)}"
    )
    print("per program:", json.dumps(out["outcomes_per_program"]))
    print("per program x device:", json.dumps(out["outcomes_per_program_device"]))
    bugs = collections.Counter((f["outcome"], _prefix(f["error"])) for f in out["failures"])
    for (o, m), n in bugs.most_common(25):
        print(f"  {n:5d} {o:10s} {m}")
    print(f"-> {path}, {args.failures_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
