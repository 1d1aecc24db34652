"""Workloads: a named, hashable recipe for one program (op kind + parameters).

A measurement refers to its program through a :class:`Workload`, so a CSV row can be turned back
into a program (and then into kernel features) without storing code. Builders are registered by
name; each returns ``(fn, inputs)`` with ``jax.ShapeDtypeStruct`` inputs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import perfjax.ops as F
from perfjax._errors import InputError

S = jax.ShapeDtypeStruct

#: Op kinds a measurement may have (reports break errors down by kind).
KINDS = (
    "matmul", "bmm", "linear", "conv2d", "elementwise", "transcendental", "reduction", "softmax",
    "layernorm", "memory", "attention", "chain", "model",
)  # fmt: skip

_BUILDERS: dict[str, Callable[..., tuple[Callable, tuple]]] = {}


def register_builder(name: str) -> Callable:
    """Registers a workload builder ``f(**params) -> (fn, inputs)`` under ``name``."""

    def wrap(f: Callable) -> Callable:
        if name in _BUILDERS:
            raise InputError(f"a workload builder named {name!r} already exists")
        _BUILDERS[name] = f
        return f

    return wrap


def builders() -> list[str]:
    return sorted(_BUILDERS)


@dataclasses.dataclass(frozen=True)
class Workload:
    """A program recipe: ``builder`` name, its keyword ``params``, and the op ``kind`` it measures.

    Example:
      >>> w = Workload("matmul", "matmul", (("m", 64), ("k", 64), ("n", 64)))
      >>> w.id
      'matmul m=64 k=64 n=64'
      >>> fn, inputs = w.build()
      >>> inputs[0].shape
      (64, 64)
    """

    kind: str
    builder: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"unknown op kind {self.kind!r}; expected one of {KINDS}.")
        if self.builder not in _BUILDERS:
            raise InputError(
                f"unknown workload builder {self.builder!r}; registered: {builders()}."
            )

    @staticmethod
    def of(kind: str, builder: str | None = None, **params: Any) -> Workload:
        return Workload(kind, builder or kind, tuple(params.items()))

    @property
    def id(self) -> str:
        """A stable text id: builder name and parameters (also the program id in reports)."""
        return " ".join([self.builder, *(f"{k}={v}" for k, v in self.params)])

    def build(self) -> tuple[Callable, tuple]:
        return _BUILDERS[self.builder](**dict(self.params))

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "builder": self.builder, "params": [list(p) for p in self.params]}
        )

    @staticmethod
    def from_json(text: str) -> Workload:
        d = json.loads(text)
        return Workload(d["kind"], d["builder"], tuple((k, _tuplify(v)) for k, v in d["params"]))


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def _dt(name: str) -> Any:
    return jnp.dtype(name)


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------


@register_builder("matmul")
def _matmul(
    m: int, k: int, n: int, b: int = 0, dtype: str = "float32", precision: str | None = None
):
    """(M, K) @ (K, N), or batched (B, M, K) @ (B, K, N) when ``b`` > 0."""
    lead = (b,) if b else ()
    dt = _dt(dtype)

    def fn(x, w):
        if dt.itemsize == 1 and jnp.issubdtype(dt, jnp.floating):
            # fp8 GEMMs accumulate in fp32 and return bf16 (as XLA's measured fp8 dots do).
            return jnp.matmul(x, w, precision=precision, preferred_element_type=jnp.bfloat16)
        return F.matmul(x, w, precision=precision)

    return fn, (S((*lead, m, k), dt), S((*lead, k, n), dt))


@register_builder("linear")
def _linear(
    m: int, k: int, n: int, b: int = 1, dtype: str = "float32", precision: str | None = None
):
    """``nn.Linear(k -> n)`` with bias on (B, M, K): matmul + bias_add."""
    dt = _dt(dtype)

    def fn(x, w, bias):
        return F.bias_add(F.matmul(x, w, precision=precision), bias)

    return fn, (S((b, m, k), dt), S((k, n), dt), S((n,), dt))


@register_builder("conv2d")
def _conv2d(batch: int, h: int, w: int, c: int, o: int, kh: int, kw: int, stride: int = 1,
            padding: Any = "SAME", groups: int = 1, dtype: str = "float32", precision: str | None = None):  # fmt: skip
    dt = _dt(dtype)

    def fn(x, f):
        if precision is None:
            return F.conv2d(x, f, stride=stride, padding=padding, groups=groups)
        with jax.default_matmul_precision(precision):
            return F.conv2d(x, f, stride=stride, padding=padding, groups=groups)

    return fn, (S((batch, h, w, c), dt), S((kh, kw, c // groups, o), dt))


_UNARY = {
    "relu": F.relu, "gelu": F.gelu, "tanh": F.tanh, "sigmoid": F.sigmoid, "silu": F.silu,
    "exp": jnp.exp, "log": jnp.log, "sqrt": jnp.sqrt, "neg": jnp.negative, "sin": jnp.sin,
    "cos": jnp.cos, "log1p": jnp.log1p, "erf": jax.lax.erf, "rsqrt": jax.lax.rsqrt,
}  # fmt: skip
_BINARY = {
    "add": F.add,
    "sub": F.sub,
    "mul": F.mul,
    "div": jnp.divide,
    "pow": jnp.power,
    "max": jnp.maximum,
}


@register_builder("elementwise")
def _elementwise(
    op: str, shape: tuple[int, ...], dtype: str = "float32", scalar: bool = False, chain: int = 1
):
    """One elementwise op on a tensor; binary ops take a second tensor, or a scalar if ``scalar``.
    ``chain > 1`` (unary ops, or binary ops with a scalar): ``y = op(y) * 0.1 + 0.5`` that
    many times from ``x * 0.25 + 0.6``, one fused loop that stays in the caches and is bound by
    the op's arithmetic."""
    dt = _dt(dtype)
    shape = tuple(shape)
    if isinstance(chain, bool) or not (isinstance(chain, int) and chain >= 1):
        raise InputError(f"chain must be a positive integer, got {chain!r}.")
    if chain > 1 and not (op in _UNARY or (op in _BINARY and scalar)):
        raise InputError(
            f"chain > 1 needs a unary op ({sorted(_UNARY)}) or a binary op with scalar=True, "
            f"got op={op!r}, scalar={scalar!r}."
        )
    if chain > 1:
        g = _UNARY.get(op) or (lambda x, f=_BINARY[op]: f(x, jnp.asarray(1.5, dt)))

        def chained(x):
            # Inputs are uniform in [-1, 1): moved into (0.35, 0.85), where every function is
            # defined (a NaN would take a library routine's early exit).
            x = x * 0.25 + 0.6
            for _ in range(chain):
                x = g(x) * 0.1 + 0.5
            return x

        return chained, (S(shape, dt),)
    if op in _UNARY:
        f = _UNARY[op]
        return (lambda x: f(x)), (S(shape, dt),)
    if op in _BINARY:
        f = _BINARY[op]
        if scalar:
            return (lambda x: f(x, jnp.asarray(1.5, dt))), (S(shape, dt),)
        return (lambda x, y: f(x, y)), (S(shape, dt), S(shape, dt))
    raise InputError(
        f"unknown elementwise op {op!r}; expected one of {sorted(_UNARY) + sorted(_BINARY)}."
    )


@register_builder("memory")
def _memory(pattern: str, n: int, dtype: str = "float32"):
    """STREAM-style kernels on ``n`` elements: copy, scale (a*s), add (a+b), triad (a+s*b)."""
    dt = _dt(dtype)
    s = jnp.asarray(3.0, dt)
    table = {
        "copy": (lambda a: a + jnp.zeros((), dt), 1),
        "scale": (lambda a: a * s, 1),
        "add": (lambda a, b: a + b, 2),
        "triad": (lambda a, b: a + s * b, 2),
    }
    if pattern not in table:
        raise InputError(f"unknown memory pattern {pattern!r}; expected one of {sorted(table)}.")
    fn, arity = table[pattern]
    return fn, tuple(S((n,), dt) for _ in range(arity))


@register_builder("reduction")
def _reduction(op: str, shape: tuple[int, ...], axis: int = -1, dtype: str = "float32"):
    dt = _dt(dtype)
    fns = {"sum": jnp.sum, "max": jnp.max, "mean": jnp.mean}
    if op not in fns:
        raise InputError(f"unknown reduction {op!r}; expected one of {sorted(fns)}.")
    f = fns[op]
    return (lambda x: f(x, axis=axis)), (S(tuple(shape), dt),)


@register_builder("softmax")
def _softmax(b: int, h: int, dtype: str = "float32"):
    return F.softmax, (S((b, h), _dt(dtype)),)


@register_builder("layernorm")
def _layernorm(b: int, h: int, dtype: str = "float32", affine: bool = True):
    dt = _dt(dtype)
    if affine:
        return F.layernorm, (S((b, h), dt), S((h,), dt), S((h,), dt))
    return F.layernorm, (S((b, h), dt),)


@register_builder("attention")
def _attention(b: int, t: int, h: int, d: int, causal: bool = True, dtype: str = "float32"):
    q = S((b, t, h, d), _dt(dtype))

    def fn(q, k, v):
        return F.attention(q, k, v, causal=causal)

    return fn, (q, q, q)


@register_builder("chain")
def _chain(op: str, n: int, length: int, dtype: str = "float32", rows: int = 0):
    """``length`` kernels in a row that the compiler cannot fuse into one: ``"norm"`` divides
    ``n`` elements by one plus their maximum (a reduction, then an elementwise kernel) per step;
    ``"matmul"`` multiplies an ``n x n`` matrix by itself ``length`` times, or with ``rows`` a
    ``rows x n`` matrix by one ``n x n`` weight ``length`` times (a layer's GEMM at a
    transformer's sizes). Against chains of one, they separate what a call costs once from what
    every further kernel costs.

    Example:
      >>> fn, (x, w) = _chain("matmul", n=64, length=2, rows=16)
      >>> x.shape, w.shape
      ((16, 64), (64, 64))
    """
    if op not in ("norm", "matmul"):
        raise InputError(f"unknown chain op {op!r}; expected 'norm' or 'matmul'.")
    if not (isinstance(length, int) and length >= 1):
        raise InputError(f"chain length must be a positive integer, got {length!r}.")
    if not (isinstance(rows, int) and rows >= 0):
        raise InputError(f"chain rows must be a non-negative integer (0: square), got {rows!r}.")
    if rows and op != "matmul":
        raise InputError(f"chain rows apply to op 'matmul' only, got op {op!r} with rows={rows}.")
    dt = _dt(dtype)

    if op == "norm":

        def norm(x):
            for _ in range(length):
                x = F.mul(x, 1.0 / (1.0 + jnp.max(x)))
            return x

        return norm, (S((n,), dt),)

    if rows:

        def layers(x, w):
            for _ in range(length):
                x = F.matmul(x, w)
            return x

        return layers, (S((rows, n), dt), S((n, n), dt))

    def matmuls(x):
        y = x
        for _ in range(length):
            y = F.matmul(y, x)
        return y

    return matmuls, (S((n, n), dt),)
