"""Benchmark suites for this machine's CPU, and :func:`measure`, which times them.

A suite is a named list of :class:`Workload` recipes that covers one op kind over a range of
shapes (``suite("matmul_sweep")``); ``size`` scales it: ``"tiny"`` (a handful of workloads of at
most a few milliseconds each, for tests), ``"default"`` (what a host calibration measures: all
suites in a few minutes on a 2-core machine) and ``"large"`` (bigger shapes, finer grids).

:func:`measure` times workloads with :func:`perfjax.run` and returns :class:`Measurements`,
with the machine's description in their metadata. Only this machine can be measured; timings of
GPUs and other devices are loaded from files (:meth:`Measurements.from_csv`).

Spread: each row's ``rel_spread`` is ``(p90 - p10) / median`` of the per-call sample times
(the same definition as the CSV column documented in ``_measurements.py``). A point is *noisy*
when the run did not meet its stopping rule (``TimeStats.stable`` is False: the time budget ran
out before the median's confidence interval was within ``rtol``) or its spread is above
:data:`NOISY_SPREAD`; a noisy point is measured once more with a larger budget, and the second
measurement is the one kept.
"""

from __future__ import annotations

import datetime
import itertools
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jaxlib
import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from perfjax import executor
from perfjax._errors import InputError
from perfjax._host import cpu_info, idle_policy, load_average, usable_cores
from perfjax._version import __version__
from perfjax.calibrate._measurements import Measurements
from perfjax.calibrate._programs import BLOCK_FAMILIES
from perfjax.calibrate._workloads import Workload
from perfjax.devicemodels import device

#: Suite names accepted by :func:`suite` and :func:`measure` (``"all"`` is their union).
SUITES = (
    "matmul_sweep",
    "memory_bandwidth",
    "elementwise",
    "reductions",
    "softmax_layernorm",
    "conv2d_sweep",
    "attention",
    "kernel_chains",
    "programs",
    "all",
)

#: Suite sizes: ``"tiny"`` for tests, ``"default"`` for a host calibration, ``"large"`` for more.
SIZES = ("tiny", "default", "large")

#: A point whose two closest timings lie further apart than this share of their median (with
#: one timing: whose median's 95% confidence half-width is wider) is not to be trusted: the
#: noise report gives the share of such points.
UNTRUSTED_CI = 0.10
#: ... and a calibration whose measurements have more than this share of such points is
#: reported as too noisy to trust.
UNTRUSTED_SHARE = 0.2

#: A measurement whose (p90 - p10) / median is above this is re-measured. On a shared 2-core
#: machine, spreads of 0.1-0.4 are usual even when the median's 95% CI is within 3%, so only
#: heavier tails (a burst of interference during the run) count as noisy.
NOISY_SPREAD = 0.5

_KiB = 1024


def _check_size(size: str) -> str:
    if size not in SIZES:
        raise InputError(f"unknown suite size {size!r}; expected one of {SIZES}.")
    return size


def _pick(size: str, tiny, default, large):
    return {"tiny": tiny, "default": default, "large": large}[size]


# ---------------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------------


def _matmul_sweep(size: str) -> list[Workload]:
    out: list[Workload] = []
    dtypes = ("float32", "bfloat16")
    # Square (N, N) @ (N, N): powers of two from 16 up to a size-dependent cap.
    cap = _pick(size, None, 2048, 4096)
    for dt in dtypes:
        if size == "tiny":
            ns = (16, 64) if dt == "float32" else (32,)
        else:
            ns = [1 << p for p in range(4, int(math.log2(cap)) + 1)]
        for n in ns:
            out.append(Workload.of("matmul", m=n, k=n, n=n, dtype=dt, precision=None))
    # Skinny: a few rows (a decode step, a small batch) against a square weight.
    ms = _pick(size, (1, 8), (1, 4, 16, 64), (1, 2, 4, 8, 16, 32, 64, 128))
    kns = _pick(size, (256,), (1024, 2048), (1024, 2048, 4096))
    for dt in dtypes if size != "tiny" else ("float32",):
        for kn in kns:
            for m in ms:
                out.append(Workload.of("matmul", m=m, k=kn, n=kn, dtype=dt, precision=None))
    # Layer-shaped: a batch of rows (tokens, images) through a dense layer that widens,
    # narrows or keeps the features (fp32, the programs' usual precision).
    if size != "tiny":
        rows_ = _pick(size, None, (128, 512), (64, 128, 256, 512, 2048))
        kns_ = _pick(size, None, ((256, 1024), (1024, 256), (768, 768)),
                     ((256, 1024), (1024, 256), (768, 768), (768, 3072), (3072, 768)))  # fmt: skip
        for m in rows_:
            for k, n in kns_:
                out.append(Workload.of("matmul", m=m, k=k, n=n, dtype="float32", precision=None))
    # Weight gradients of a training step: the batch is contracted away (small K) into a
    # weight-shaped output.
    if size != "tiny":
        for m, n in ((2048, 784), (1024, 1024)):
            for k in (4, 16, 64):
                out.append(Workload.of("matmul", m=m, k=k, n=n, dtype="float32", precision=None))
    # Batched: many small matrices.
    bs = _pick(size, (4,), (4, 8, 16, 32), (4, 8, 16, 32, 64))
    sq = _pick(size, (32,), (64, 128), (32, 64, 128, 256))
    for dt in dtypes if size != "tiny" else ("float32", "bfloat16"):
        for n in sq:
            for b in bs:
                out.append(
                    Workload.of("bmm", "matmul", m=n, k=n, n=n, b=b, dtype=dt, precision=None)
                )
    return out


def _host_cache_bytes() -> float:

    cache = float(device("host").cache_bytes or 0.0)
    return cache if cache > 0 else 32.0 * 1024**2


def _memory_bandwidth(size: str) -> list[Workload]:
    """STREAM copy/scale/add/triad; working set = bytes of inputs + output, from 4 KiB upwards."""
    arrays = {"copy": 2, "scale": 2, "add": 3, "triad": 3}
    itemsize = 4  # float32
    if size == "tiny":
        sets = [4 * _KiB, 64 * _KiB]
    else:
        top = _pick(size, None, 4, 8) * _host_cache_bytes()
        step = _pick(size, None, 2.0, math.sqrt(2.0))
        sets, ws = [], 4.0 * _KiB
        while True:
            sets.append(ws)
            if ws >= top:
                break
            ws *= step
    out = []
    for pattern, k in arrays.items():
        for ws in sets:
            # Round the element count up (to a multiple of 16) so the working set is at least ``ws``.
            n = int(math.ceil(ws / (k * itemsize) / 16) * 16)
            out.append(Workload.of("memory", pattern=pattern, n=n))
    return out


_CHEAP = ("add", "mul", "div", "relu")
_TRANSCENDENTAL = ("exp", "tanh", "gelu", "sigmoid", "log", "sqrt")


def _elementwise(size: str) -> list[Workload]:
    if size == "tiny":
        ops, sizes, dts = (
            ("add", "mul", "div", "relu", "exp", "tanh", "gelu", "sigmoid"),
            (4096,),
            ("float32",),
        )
    else:
        ops = _CHEAP + _TRANSCENDENTAL
        sizes = _pick(
            size,
            None,
            (4096, 65536, 1 << 20, 1 << 22),
            (4096, 32768, 1 << 18, 1 << 20, 1 << 22, 1 << 24),
        )
        dts = _pick(size, None, ("float32",), ("float32", "bfloat16"))
    out = []
    for dt in dts:
        for op in ops:
            kind = "transcendental" if op in _TRANSCENDENTAL else "elementwise"
            for n in sizes:
                out.append(Workload.of(kind, "elementwise", op=op, shape=(n,), dtype=dt))
    # Chains of 8 in cache: bound by each function's arithmetic, which single large ops (bound by
    # memory) and single small ones (bound by the call) do not show. Vectorised polynomials
    # (exp, tanh, log, erf) and scalar library calls (sin, pow) cost XLA:CPU very differently.
    if size != "tiny":
        n = 1 << 18
        for op in ("mul", "exp", "tanh", "log", "erf", "sin", "pow"):
            kind = "transcendental" if op not in _CHEAP else "elementwise"
            binary = op in ("mul", "pow")
            out.append(Workload.of(kind, "elementwise", op=op, shape=(n,), scalar=binary, chain=8))
    return out


def _reductions(size: str) -> list[Workload]:
    shapes = _pick(size, ((64, 64),), ((1024, 1024), (4096, 256), (256, 4096), (16384, 64)),
                   ((1024, 1024), (4096, 256), (256, 4096), (16384, 64), (64, 16384), (4096, 4096)))  # fmt: skip
    out = []
    for shape in shapes:
        for op in ("sum", "max", "mean"):
            for axis in (0, -1):
                out.append(Workload.of("reduction", op=op, shape=shape, axis=axis))
    return out


def _softmax_layernorm(size: str) -> list[Workload]:
    bs = _pick(size, (1, 16), (1, 16, 128, 1024), (1, 8, 64, 512, 2048, 4096))
    hs = _pick(size, (64, 256), (128, 1024, 4096), (64, 256, 1024, 4096, 8192))
    cap = _pick(size, 1 << 12, 1 << 22, 1 << 24)  # elements, keeps each point cheap
    out = []
    for kind in ("softmax", "layernorm"):
        for b in bs:
            for h in hs:
                if b * h <= cap:
                    out.append(Workload.of(kind, b=b, h=h))
    return out


# (h=w, c, o, kernel, stride, groups): ResNet / MobileNet-like layers at reduced spatial sizes.
_CONV_LAYERS = {
    "tiny": [
        (14, 16, 32, 1, 1, 1),
        (14, 16, 16, 3, 1, 1),
        (14, 32, 32, 3, 1, 32),
        (14, 16, 32, 3, 2, 1),
    ],
    "default": [
        (112, 3, 32, 3, 2, 1),  # MobileNet stem: 3x3 stride 2 on RGB
        (56, 64, 64, 3, 1, 1),  # ResNet stage 1: 3x3
        (56, 64, 256, 1, 1, 1),  # bottleneck expand: 1x1
        (28, 128, 256, 3, 2, 1),  # downsample: 3x3 stride 2
        (14, 256, 1024, 1, 1, 1),  # stage 3: 1x1
        (28, 128, 128, 3, 1, 128),  # depthwise 3x3
        (28, 256, 256, 3, 2, 256),  # depthwise 3x3 stride 2
        (14, 512, 512, 3, 1, 512),  # depthwise 3x3, deep
        # Small images (MNIST / CIFAR scale): XLA:CPU runs convolutions with few output features
        # on Eigen instead of YNNPACK, slow when the input has one or a few channels.
        (28, 1, 16, 3, 1, 1),  # grayscale stem, 16 filters
        (32, 3, 64, 3, 1, 1),  # RGB stem
        (8, 64, 128, 3, 1, 1),  # low resolution, deep
        (2, 128, 128, 3, 1, 1),  # a 3x3 window over a 2x2 map (XLA:CPU's Eigen path again)
        # Small dense layers spread over what sets a convolution's rate: taps x input features
        # (K = 16-800), output features (N = 16-128) and output pixels, where the network layers
        # above leave the fit to extrapolate (benchmarks/host_conv_random.py scores a calibration
        # on random convolutions).
        (32, 16, 32, 3, 1, 1),
        (16, 32, 64, 3, 1, 1),
        (16, 32, 32, 1, 1, 1),
        (8, 128, 64, 1, 1, 1),
        (14, 64, 64, 3, 2, 1),
        (28, 32, 16, 5, 1, 1),
        (28, 16, 128, 5, 2, 1),
        (56, 16, 16, 3, 1, 1),
    ],
}
_CONV_LAYERS["large"] = [
    *_CONV_LAYERS["default"],
    (224, 3, 64, 7, 2, 1),  # ResNet stem: 7x7 stride 2
    (28, 128, 128, 3, 1, 1),  # stage 2: 3x3
    (7, 512, 512, 3, 1, 1),  # stage 4: 3x3
    (56, 32, 32, 3, 1, 32),  # depthwise, shallow
]


def _conv2d_sweep(size: str) -> list[Workload]:
    batches = _pick(size, (1,), (1, 8), (1, 2, 4, 8))
    out = []
    for hw, c, o, k, stride, groups in _CONV_LAYERS[size]:
        for batch in batches:
            w = Workload.of("conv2d", batch=batch, h=hw, w=hw, c=c, o=o, kh=k, kw=k, stride=stride,
                            groups=groups)  # fmt: skip
            out.append(w)
    return out


def _kernel_chains(size: str) -> list[Workload]:
    """Chains of 1, 4 and 16 unfusable kernels: the once-per-call cost (dispatch, the thread
    pool's wake-up) against the per-kernel cost, which single-op programs cannot tell apart;
    from the default size also at a transformer layer's sizes (loops of a few hundred floats,
    GEMMs of 16 rows or 64 columns), where a kernel costs less inside a call than alone."""
    lengths = _pick(size, (1, 4), (1, 4, 16), (1, 2, 4, 8, 16))
    norms = _pick(size, (4096,), (256, 4096, 65536, 262144),
                  (256, 1024, 4096, 16384, 65536, 262144, 1 << 20))  # fmt: skip
    mats = _pick(size, (32,), (32, 128), (32, 64, 128, 256))
    layers = _pick(size, (), ((16, 256), (256, 64)), ((4, 256), (16, 256), (16, 512), (256, 64)))
    out = [Workload.of("chain", op="norm", n=n, length=k) for n in norms for k in lengths]
    out += [Workload.of("chain", op="matmul", n=n, length=k) for n in mats for k in lengths]
    out += [Workload.of("chain", op="matmul", n=n, length=k, rows=m)
            for m, n in layers for k in lengths]  # fmt: skip
    return out


def _attention(size: str) -> list[Workload]:
    bs = _pick(size, (1,), (1, 4), (1, 4, 8))
    ts = _pick(size, (32, 64), (64, 256), (64, 128, 256, 512, 1024))
    hds = _pick(size, ((2, 16),), ((4, 32), (8, 64)), ((4, 32), (8, 64), (16, 64)))
    out = []
    for b in bs:
        for t in ts:
            for h, d in hds:
                if size == "large" and b * t * h > 8 * 512 * 8:  # keeps each point under ~0.3 s
                    continue
                for causal in (True, False):
                    out.append(Workload.of("attention", b=b, t=t, h=h, d=d, causal=causal))
    return out


#: Largest block a ``programs`` suite draws, in floating-point operations (~10-40 ms here).
_BLOCK_MAX_FLOPS = 1.5e9


def _draw_block(rng: np.random.Generator, family: str) -> Workload:
    """One block program of ``family`` with sizes drawn from ``rng``."""

    def pick(values):
        return values[int(rng.integers(len(values)))]

    dtype = "bfloat16" if rng.random() < 0.2 else "float32"
    if family == "mlp":
        widths = tuple(int(pick((64, 128, 256, 512, 1024))) for _ in range(int(rng.integers(2, 5))))
        p = dict(batch=int(pick((1, 4, 16, 64, 256))), widths=widths,
                 act=str(pick(("relu", "gelu", "tanh", "silu"))), train=bool(rng.random() < 0.5))  # fmt: skip
    elif family == "conv":
        dtype = "float32"
        p = dict(batch=int(pick((1, 2, 4, 8))), hw=int(pick((8, 16, 28, 56))),
                 cin=int(pick((3, 16, 32, 64, 128))), cout=int(pick((16, 32, 64, 128))),
                 k=int(pick((1, 3, 3, 5))), stride=int(pick((1, 1, 2))), norm=bool(rng.random() < 0.5))  # fmt: skip
    elif family == "attention":
        p = dict(b=int(pick((1, 2, 4))), t=int(pick((32, 64, 128, 256, 512))),
                 h=int(pick((1, 2, 4, 8))), d=int(pick((32, 64))))  # fmt: skip
    elif family == "norm":
        dtype = "float32"
        p = dict(op=str(pick(("layernorm", "rmsnorm", "softmax"))), rows=int(pick((1, 16, 128, 1024))),
                 cols=int(pick((128, 512, 1024, 4096, 8192))))  # fmt: skip
    elif family == "elementwise":
        dtype = "float32"
        ops = ("tanh", "sigmoid", "exp", "cos", "scale", "relu", "log1p", "rsqrt")
        p = dict(n=int(pick((1 << 12, 1 << 15, 1 << 18, 1 << 20, 1 << 22))),
                 ops=tuple(str(pick(ops)) for _ in range(int(rng.integers(1, 6)))))  # fmt: skip
    else:
        dtype = "float32"
        p = dict(
            batch=int(pick((1, 2, 4))), seq=int(pick((16, 32, 64, 128))), d=int(pick((64, 128)))
        )
    return Workload.of("model", builder="block", family=family, dtype=dtype, **p)


def _block_flops(w: Workload) -> float:
    p = dict(w.params)
    f = p["family"]
    if f == "mlp":
        mult = 6 if p["train"] else 2
        return mult * p["batch"] * sum(a * b for a, b in itertools.pairwise(p["widths"]))
    if f == "conv":
        out = p["batch"] * (p["hw"] // p["stride"]) ** 2
        return 2.0 * out * p["cin"] * p["cout"] * p["k"] ** 2
    if f == "attention":
        return 4.0 * p["b"] * p["h"] * p["t"] ** 2 * p["d"]
    if f == "transformer":
        return (
            24.0 * p["batch"] * p["seq"] * p["d"] ** 2 + 4.0 * p["batch"] * p["seq"] ** 2 * p["d"]
        )
    return 0.0


_TINY_BLOCKS = (
    dict(family="mlp", dtype="float32", batch=8, widths=(64, 128, 32), act="gelu", train=True),
    dict(family="conv", dtype="float32", batch=2, hw=16, cin=8, cout=16, k=3, stride=1, norm=True),
    dict(family="attention", dtype="float32", b=1, t=64, h=2, d=32),
    dict(family="norm", dtype="float32", op="layernorm", rows=32, cols=512),
    dict(family="elementwise", dtype="float32", n=16384, ops=("tanh", "scale", "exp")),
    dict(family="transformer", dtype="float32", batch=1, seq=16, d=64),
)


def _program_blocks(size: str) -> list[Workload]:
    """Small programs of the kinds people write (MLP forward and SGD steps, convolution blocks
    with or without a batch norm, attention, norms and softmax rows, elementwise chains, a Flax
    encoder layer) with sizes drawn from a fixed seed. Their kind is ``"model"``: a fit never
    trains on them; their held-out errors set the calibration's interval (programs sum many
    kernels, so their errors are not those of single microbenchmarks)."""
    if size == "tiny":  # one small program per family, for tests
        return [Workload.of("model", builder="block", **p) for p in _TINY_BLOCKS]
    n = _pick(size, 0, 36, 72)
    rng = np.random.default_rng(20261205)
    out: list[Workload] = []
    while len(out) < n:
        w = _draw_block(rng, BLOCK_FAMILIES[len(out) % len(BLOCK_FAMILIES)])
        if _block_flops(w) <= _BLOCK_MAX_FLOPS and w not in out:
            out.append(w)
    return out


_BUILDERS: dict[str, Callable[[str], list[Workload]]] = {
    "matmul_sweep": _matmul_sweep,
    "memory_bandwidth": _memory_bandwidth,
    "elementwise": _elementwise,
    "reductions": _reductions,
    "softmax_layernorm": _softmax_layernorm,
    "conv2d_sweep": _conv2d_sweep,
    "attention": _attention,
    "kernel_chains": _kernel_chains,
    "programs": _program_blocks,
}


def suite(name: str, *, size: str = "default") -> list[Workload]:
    """The workloads of a benchmark suite (see :data:`SUITES`); ``"all"`` is every suite, in order.

    Example:
      >>> ws = suite("matmul_sweep", size="tiny")
      >>> ws[0].kind, ws[0].id
      ('matmul', 'matmul m=16 k=16 n=16 dtype=float32 precision=None')
    """
    _check_size(size)
    if name == "all":
        out: list[Workload] = []
        seen: set[Workload] = set()
        for sub in SUITES[:-1]:
            for w in _BUILDERS[sub](size):
                if w not in seen:
                    seen.add(w)
                    out.append(w)
        return out
    if name not in _BUILDERS:
        raise InputError(f"unknown suite {name!r}; expected one of {list(SUITES)}.")
    return _BUILDERS[name](size)


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------


def _resolve(workloads_or_suite, size: str) -> tuple[list[Workload], list[str]]:
    """Workloads (deduplicated, in order) and the suite names they came from."""
    if isinstance(workloads_or_suite, (str, Workload)):
        items: Sequence = [workloads_or_suite]
    elif isinstance(workloads_or_suite, Iterable):
        items = list(workloads_or_suite)
    else:
        raise TypeError(
            "measure expects a suite name, a list of suite names or a list of Workloads, got "
            f"{type(workloads_or_suite).__name__}."
        )
    out: list[Workload] = []
    seen: set[Workload] = set()
    names: list[str] = []
    for item in items:
        if isinstance(item, str):
            ws = suite(item, size=size)
            if item not in names:
                names.append(item)
        elif isinstance(item, Workload):
            ws = [item]
            if "custom" not in names:
                names.append("custom")
        else:
            raise TypeError(
                f"measure: expected a suite name or a Workload, got {type(item).__name__} ({item!r:.60})."
            )
        for w in ws:
            if w not in seen:
                seen.add(w)
                out.append(w)
    if not out:
        raise InputError("measure: no workloads to measure (empty list).")
    return out, names


def _rel_spread(samples: Sequence[float], median: float) -> float:
    if len(samples) < 2 or median <= 0:
        return float("nan")
    p10, p90 = np.percentile(np.asarray(samples, dtype=np.float64), [10, 90])
    return float((p90 - p10) / median)


def _is_noisy(stable: bool, spread: float) -> bool:
    return (not stable) or not math.isfinite(spread) or spread > NOISY_SPREAD


def measure(
    workloads_or_suite: str | Workload | Iterable[str | Workload],
    device: str = "host",
    *,
    size: str = "default",
    max_time_s: float = 0.3,
    rtol: float = 0.03,
    progress: bool = True,
    remeasure_noisy: bool = True,
    rounds: int = 1,
    out: str | os.PathLike | None = None,
    budget_s: float | None = None,
) -> Measurements:
    """Times workloads on this machine's CPU and returns them as :class:`Measurements`.

    Args:
      workloads_or_suite: a suite name (:data:`SUITES`), a list of suite names, or a list of
        :class:`Workload` (mixing both is allowed; duplicates are measured once).
      device: must be ``"host"``: measurement only runs on this machine. Timings of other
        devices are loaded from files (:meth:`Measurements.from_csv`).
      size: suite size for suite names (:data:`SIZES`).
      max_time_s: the :func:`perfjax.run` sampling budget per workload.
      rtol: the :func:`perfjax.run` stopping tolerance.
      progress: show a ``rich`` progress bar.
      remeasure_noisy: re-measure once, with a larger budget, each point whose run did not
        converge or whose ``(p90 - p10) / median`` exceeds :data:`NOISY_SPREAD`, keeping the
        re-measurement.
      rounds: measure every workload this many times, in rounds that alternate the order
        (forward, backward, ...), and keep the median of the rounds' medians (of two, the
        lower): a slow spell of the machine (another tenant, a clock change) then moves one
        round, not the result. The
        median and p90 over workloads of the rounds' spread ((max - min) / median) are saved in
        the metadata.
      out: if given, the CSV path the measurements are written to (atomically).
      budget_s: measure adaptively within this many seconds of wall time: after the rounds
        (``remeasure_noisy`` is then ignored), the point whose timings agree least is visited
        again (with two or more rounds: one more round, so that its median of rounds outvotes
        a slow spell; with one: more samples, pooled), until every point agrees within
        ``rtol`` or the budget is spent. The rounds themselves are never cut short. ``None``:
        no adaptive phase.

    The metadata report the noise: per point, how far apart its two closest visits' medians
    are (one visit: its median's 95% CI half-width), relative; the median and p90 of that over
    points (``noise_median``, ``noise_p90``) and the share of points above
    :data:`UNTRUSTED_CI` (``noise_untrusted``).

    Workloads that fail to compile or run are skipped with a warning (listed in the metadata
    under ``failed``); if every workload fails, the first error is raised.

    Example:
      >>> ms = measure([Workload.of("matmul", m=16, k=16, n=16)], max_time_s=0.02, progress=False)
      >>> ms.rows[0].time_s > 0, ms.metadata["device"]
      (True, 'host')
    """
    if str(device).strip().lower() != "host":
        raise InputError(
            f"cannot measure on device {device!r}: measurement only runs on this machine's CPU "
            "(device='host'). Timings of GPUs, TPUs and other devices are loaded from files "
            "(perfjax.calibrate.Measurements.from_csv)."
        )
    _check_size(size)
    for name, v in (("max_time_s", max_time_s), ("rtol", rtol)):
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise InputError(f"{name} must be a positive number, got {v!r}.")
    if not (isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 1):
        raise InputError(f"rounds must be a positive integer, got {rounds!r}.")
    if budget_s is not None and not (
        isinstance(budget_s, (int, float)) and not isinstance(budget_s, bool) and budget_s > 0
        and math.isfinite(budget_s)
    ):  # fmt: skip
        raise InputError(
            f"budget_s must be a positive number of seconds or None, got {budget_s!r}."
        )
    workloads, names = _resolve(workloads_or_suite, size)
    # Build every recipe first, so a bad one fails in a second, not after minutes of measuring.
    built = [(w, w.build()) for w in workloads]
    load_start = load_average()
    t_start = time.perf_counter()
    adaptive = budget_s is not None
    results, failed, remeasured, first_error = _measure_rounds(
        built, rounds, max_time_s, rtol, remeasure_noisy and not adaptive, progress,
        deadline=t_start + budget_s if adaptive else None,
    )  # fmt: skip
    rows, round_spreads = _rows_from_rounds(built, results)
    unc = np.array([r.pop("uncertainty") for r in rows], dtype=np.float64)
    if not rows:
        raise RuntimeError(
            f"measure: every workload failed; first error: {first_error!r}"
        ) from first_error
    metadata = {
        "device": "host",
        "cpu": cpu_info().model,
        # the generation and caches, which one model name can hide (cloud VMs)
        "cpu_id": cpu_info().identity,
        "cores": str(usable_cores()),
        # (2: the "cores" may be hyperthreads sharing one core's arithmetic units)
        "threads_per_core": str(cpu_info().threads_per_core),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "perfjax": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "suites": ",".join(names),
        "size": size,
        "workloads": str(len(workloads)),
        "remeasured": str(remeasured),
        "failed": ";".join(failed),
        "max_time_s": repr(float(max_time_s)),
        "rtol": repr(float(rtol)),
        "noisy_spread": repr(NOISY_SPREAD),
        "rel_spread": "(p90 - p10) / median of per-call sample times",
        "rounds": str(rounds),
        # How far the rounds' medians of one workload lie apart ((max - min) / median).
        "round_spread_median": f"{np.median(round_spreads):.3f}" if rounds > 1 else "",
        "round_spread_p90": f"{np.quantile(round_spreads, 0.9):.3f}" if rounds > 1 else "",
        "wall_s": f"{time.perf_counter() - t_start:.1f}",
        "budget_s": "" if budget_s is None else f"{budget_s:g}",
        # Per point, relative: how far apart its two closest visits are (one visit: its
        # median's 95% confidence half-width); median and p90 over points, and the share of
        # points above UNTRUSTED_CI.
        "noise": "closest two visits' medians apart / median (one visit: median's 95% CI)",
        "noise_median": f"{np.median(unc):.4f}" if unc.size else "",
        "noise_p90": f"{np.quantile(unc, 0.9):.4f}" if unc.size else "",
        "noise_untrusted": f"{np.mean(unc > UNTRUSTED_CI):.3f}" if unc.size else "",
        # Other processes on the CPU inflate small-op times (by ~50 us per call on 2 cores).
        "loadavg_start": load_start,
        "loadavg_end": load_average(),
        # How idle cores wait (a VM's cores may halt at once: hand-offs to a worker then wait
        # for a halted core to wake, and small calls' times move with the host's state).
        "cpuidle": idle_policy(),
        "platform": f"{sys.platform} {platform.machine()}",
    }
    ms = Measurements.from_rows(rows, metadata)
    if out is not None:
        ms.to_csv(out)
    return ms


class _Timing(NamedTuple):
    median_s: float
    spread: float  # (p90 - p10) / median of the samples
    repeats: int
    remeasured: bool
    rel_ci: float  # the median's 95% CI half-width / median
    samples_s: tuple[float, ...]


def _timing(t: Any, remeasured: bool) -> _Timing:
    ci = float(t.rel_ci) if math.isfinite(t.rel_ci) else 1.0
    return _Timing(t.median_s, _rel_spread(t.samples_s, t.median_s), t.repeats, remeasured, ci,
                   tuple(t.samples_s))  # fmt: skip


def _time_one(
    fn: Any, inputs: Any, max_time_s: float, rtol: float, remeasure_noisy: bool
) -> _Timing:
    """One program's timing; a noisy first timing is re-measured with a larger budget and the
    re-measurement kept."""
    r = executor.run(fn, inputs, max_time_s=max_time_s, rtol=rtol)
    t = r.time
    again = remeasure_noisy and _is_noisy(t.stable, _rel_spread(t.samples_s, t.median_s))
    if again:
        # A larger budget: enough for ~12 samples of slow programs, at most ~5 s more.
        budget = max(3 * max_time_s, min(12 * t.median_s, 5.0))
        del r  # frees the outputs before the next run
        r = executor.run(fn, inputs, max_time_s=budget, rtol=rtol)
        t = r.time
    return _timing(t, again)


def _pooled(a: _Timing, b: _Timing) -> _Timing:
    """Two timings of one program as one: the median of their samples pooled."""
    x = np.sort(np.asarray(a.samples_s + b.samples_s, dtype=np.float64))
    med = float(np.median(x))
    ci = executor._median_rel_ci(x)
    return _Timing(med, _rel_spread(x, med), a.repeats + b.repeats, True,
                   float(ci) if math.isfinite(ci) else 1.0, tuple(x))  # fmt: skip


def _measure_rounds(
    built: list, rounds: int, max_time_s: float, rtol: float, remeasure_noisy: bool,
    progress: bool, deadline: float | None = None,
) -> tuple[dict[int, list[_Timing]], list[str], int, BaseException | None]:  # fmt: skip
    """Every workload timed once per round, rounds in alternating order, with a progress bar:
    (per workload position, one timing per round), the failed workloads, how many were
    re-measured, and the first failure. With a ``deadline`` (``time.perf_counter()``), the
    points whose timings agree least are then visited again until it passes (:func:`_refine`)."""
    failed: list[str] = []
    remeasured = 0
    first_error: BaseException | None = None
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    results: dict[int, list[tuple[float, float, int, bool]]] = {}
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("measuring", total=len(built) * rounds)
        for round_ in range(rounds):
            order = range(len(built)) if round_ % 2 == 0 else reversed(range(len(built)))
            for i in order:
                w, (fn, inputs) = built[i]
                if w.id in failed:
                    bar.advance(task)
                    continue
                tag = f"round {round_ + 1}/{rounds} " if rounds > 1 else ""
                bar.update(task, description=f"{tag}{w.id[:60]}")
                try:
                    timing = _time_one(fn, inputs, max_time_s, rtol, remeasure_noisy)
                    remeasured += timing[3]
                    results.setdefault(i, []).append(timing)
                except Exception as e:  # a compile or run failure of one program
                    failed.append(w.id)
                    results.pop(i, None)
                    first_error = first_error or e
                    warnings.warn(f"measure: {w.id} failed: {type(e).__name__}: {e}", stacklevel=3)
                bar.advance(task)
        if deadline is not None:
            remeasured += _refine(built, results, max_time_s, rtol, deadline, bar, task)
    return results, failed, remeasured, first_error


def _uncertainty(timings: Sequence[_Timing]) -> float:
    """How little one point's timings can be trusted, relative: with two or more visits, how far
    apart the two closest visits' medians are (a slow spell of the machine moves one visit, and
    lasts longer than one visit's samples); with one, its median's 95% CI half-width."""
    if len(timings) == 1:
        return timings[0].rel_ci
    m = np.sort([t.median_s for t in timings])
    return float(np.min(np.diff(m)) / max(float(np.median(m)), 1e-30))


def _refine(
    built: list, results: dict[int, list[_Timing]], max_time_s: float, rtol: float,
    deadline: float, bar: Any, task: Any,
) -> int:  # fmt: skip
    """The adaptive phase: visit again the point whose timings agree least (a new round when it
    has two or more, else more samples pooled into its one), until every point's
    :func:`_uncertainty` is within ``rtol`` or ``deadline`` passes; how many visits were made."""
    made, tried = 0, dict.fromkeys(results, 0)
    left = max(deadline - time.perf_counter(), 0.0)
    if left <= max_time_s:
        return 0
    bar.update(task, description="re-timing the least certain points", total=max(left, 1e-3),
               completed=0)  # fmt: skip
    while time.perf_counter() + max_time_s < deadline:
        # Least certain first; each point at most 3 more times (one that stays noisy is noise).
        open_ = [(_uncertainty(results[i]), i) for i in results if tried[i] < 3]
        open_ = [(u, i) for u, i in open_ if u > rtol]
        if not open_:
            break
        _, i = max(open_)
        w, (fn, inputs) = built[i]
        try:
            again = _time_one(fn, inputs, max_time_s, rtol, False)._replace(remeasured=True)
            if len(results[i]) > 1:
                results[i].append(again)
            else:
                results[i][-1] = _pooled(results[i][-1], again)
        except Exception as e:  # it ran already: keep those timings
            warnings.warn(
                f"measure: re-timing {w.id} failed: {type(e).__name__}: {e}", stacklevel=4
            )
        tried[i] += 1
        made += 1
        spent = left - max(deadline - time.perf_counter(), 0.0)
        bar.update(task, description=f"re-timing the least certain points ({made})",
                   completed=min(spent, left))  # fmt: skip
    return made


def _rows_from_rounds(built: list, results: dict) -> tuple[list[dict[str, Any]], list[float]]:
    """One measurement row per workload (the median of its rounds' medians, the lower of two),
    and how far each
    workload's rounds lie apart ((max - min) / median)."""
    rows, round_spreads = [], []
    for i, (w, _) in enumerate(built):
        if i not in results:
            continue
        medians = np.array([x.median_s for x in results[i]])
        # Of two rounds the lower (a slow spell of the machine only adds time); of three or
        # more, the median.
        median = float(medians.min() if medians.size == 2 else np.median(medians))
        # The round whose median is closest to the result supplies the per-call spread.
        best = results[i][int(np.argmin(np.abs(medians - median)))]
        source = "perfjax.measure" + (
            " (re-measured)" if any(x.remeasured for x in results[i]) else ""
        )
        row = dict(workload=w, device="host", time_s=median, rel_spread=best.spread,
                   repeats=sum(x.repeats for x in results[i]), source=source,
                   uncertainty=_uncertainty(results[i]))  # fmt: skip
        round_spreads.append(float((medians.max() - medians.min()) / median))
        rows.append(row)
    return rows, round_spreads


__all__ = ["NOISY_SPREAD", "SIZES", "SUITES", "UNTRUSTED_CI", "UNTRUSTED_SHARE", "measure", "suite"]
