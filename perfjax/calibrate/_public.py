"""Public measured GPU timings shipped with perfjax: NeuSight per-op latencies and DeepBench.

The data live in ``perfjax/calibrate/data/*.csv.gz`` (licences and provenance in
``data/LICENSES.md``); the loaders turn each row into a :class:`Workload` on a catalog device and
return :class:`Measurements`. Rows that cannot be represented are skipped and counted in the
metadata (``<source>.rows_skipped`` and ``<source>.skipped`` as JSON ``{reason: count}``); rows left
out because the caller asked for it are counted too (``rows_filtered_out``, ``rows_not_selected``).

Mapping conventions (units and column meanings are described in ``data/LICENSES.md``):

- NeuSight is strict FP32 PyTorch (sgemm, no TF32): GEMM-like workloads use ``float32`` and
  ``precision="highest"``. ``bmm`` is ``torch.bmm(randn(B, M, N), randn(B, N, K))`` so the
  reduction dimension is ``N`` (``m=M, k=N, n=K``); ``linear`` is ``nn.Linear(N -> K)`` on
  ``(B, M, N)``, same convention.
- DeepBench GEMM is cuBLAS ``C(M x N) = A(M x K) B(K x N)`` (``m=M, k=K, n=N``); transposes are
  recorded in ``source`` but not modelled. DeepBench conv is NHWC with ``o=K, kh=R, kw=S`` and
  explicit ``padding=(pad_h, pad_w)``; only the forward time is loaded.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from perfjax._errors import InputError
from perfjax.calibrate._measurements import Measurements, Row
from perfjax.calibrate._workloads import Workload
from perfjax.devicemodels import device as _get_device

_DATA_PACKAGE = "perfjax.calibrate"
_DATA_DIR = "data"

NEUSIGHT_LICENCE = "MIT"
NEUSIGHT_COMMIT = "6945927d9afcca2b9daf021f8395e53edc5b4eef"
NEUSIGHT_URL = "https://github.com/sitar-lab/NeuSight"
DEEPBENCH_LICENCE = "Apache-2.0"
DEEPBENCH_COMMIT = "da81ba7820739e2e506dc27f382d15be5479f98f"
DEEPBENCH_URL = "https://github.com/baidu-research/DeepBench"

_MS = 1e-3  # milliseconds -> seconds

# NeuSight elementwise op -> (perfjax op, scalar second operand, kind). 'u' = tensor (op) scalar.
_ELEMENTWISE = {
    "add": ("add", False, "elementwise"),
    "addu": ("add", True, "elementwise"),
    "mul": ("mul", False, "elementwise"),
    "mulu": ("mul", True, "elementwise"),
    "div": ("div", False, "elementwise"),
    "divu": ("div", True, "elementwise"),
    "relu": ("relu", None, "elementwise"),
    "pow": ("pow", False, "transcendental"),
    "powu": ("pow", True, "transcendental"),
    "gelu": ("gelu", None, "transcendental"),
    "tanh": ("tanh", None, "transcendental"),
}
NEUSIGHT_OPS = ("bmm", "linear", "ln", "softmax", "conv", *_ELEMENTWISE)
# Names accepted in ``ops=`` besides the NeuSight op names.
_NEUSIGHT_OP_GROUPS = {
    "elementwise": tuple(_ELEMENTWISE),
    "layernorm": ("ln",),
    "conv2d": ("conv",),
    "matmul": ("bmm", "linear"),
}

# DeepBench precision label -> (dtype, matmul precision or None).
_DEEPBENCH_PRECISIONS = {
    "fp32": ("float32", "highest"),
    "fp16_in_fp16_mul_fp32_acc": ("float16", None),
    "fp16_in_fp32_math": ("float16", None),
    "int8_in_int32_acc": ("int8", None),
}
DEEPBENCH_PRECISIONS = tuple(_DEEPBENCH_PRECISIONS)
DEEPBENCH_KINDS = ("gemm", "conv")

_INT_COLUMNS = ("B", "M", "N", "K", "H", "C_in", "C_out", "kernel_size", "input_size", "stride",
                "padding")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# reading the shipped files
# ---------------------------------------------------------------------------------------------


def data_path(name: str = "") -> Any:
    """The shipped data folder (or one file in it) as an ``importlib.resources`` traversable."""
    root = importlib.resources.files(_DATA_PACKAGE) / _DATA_DIR
    return root / name if name else root


@functools.cache
def _read(name: str):
    import pandas as pd

    with data_path(name).open("rb") as f:
        df = pd.read_csv(f, compression="gzip", keep_default_na=True)
    if name == "neusight_ops.csv.gz":  # shape columns as plain ints, _MISSING for empty cells
        for c in _INT_COLUMNS:
            df[c] = df[c].fillna(_MISSING).astype("int64")
    return df


@functools.cache
def _catalog_name(gpu: Any) -> str | None:
    """Catalog name of a dataset GPU string (via the catalog's aliases), or None if unknown."""
    gpu = str(gpu)
    for candidate in (gpu, gpu.replace("_", " ")):
        try:
            return _get_device(candidate).name
        except ValueError:
            continue
    return None


def _resolve_devices(devices: Iterable[str] | None) -> set[str] | None:
    if devices is None:
        return None
    if isinstance(devices, str):
        devices = [devices]
    return {_get_device(d).name for d in devices}  # raises ValueError naming the unknown device


def _ints(*values: Any, minimum: int = 1) -> tuple[int, ...] | None:
    """The values as ints if all are present, integral and >= ``minimum``, else None."""
    import pandas as pd

    out = []
    for v in values:
        if v is None or pd.isna(v):
            return None
        try:
            i = int(v)
        except (TypeError, ValueError):
            return None
        if i < minimum or i != v:
            return None
        out.append(i)
    return tuple(out)


def _build_error(w: Workload) -> str | None:
    """None if the workload builds, else the exception's type name."""
    try:
        w.build()
    except Exception as e:
        return type(e).__name__
    return None


def _metadata(prefix: str, **fields: Any) -> dict[str, str]:
    out = {}
    for k, v in fields.items():
        out[f"{prefix}.{k}"] = (
            json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
        )
    return out


# ---------------------------------------------------------------------------------------------
# NeuSight
# ---------------------------------------------------------------------------------------------


_MISSING = -1  # stands for an empty shape cell in the integer columns of neusight_ops
# (op, *shape columns) -> built-and-checked Workload, or the reason it is skipped; kept across calls.
_NEUSIGHT_WORKLOADS: dict[tuple, Workload | str] = {}


def _neusight_workload(op: str, b: int, m: int, n: int, k: int, h: int, c_in: int, c_out: int,
                       ks: int, size: int, stride: int, pad: int) -> Workload | str:  # fmt: skip
    """One NeuSight shape -> Workload, or a skip reason (``_MISSING`` marks an empty cell)."""
    bad = "unsupported shape (a dimension is 0 or missing)"
    if op in ("bmm", "linear"):
        if min(b, m, n, k) <= 0:
            return bad
        if op == "bmm":  # torch.bmm((B,M,N), (B,N,K)): N is the reduction dimension
            return Workload.of("bmm", builder="matmul", b=b, m=m, k=n, n=k, precision="highest")
        return Workload.of("linear", m=m, k=n, n=k, b=b, precision="highest")
    if op in ("ln", "softmax") or op in _ELEMENTWISE:
        if min(b, h) <= 0:
            return bad
        if op == "ln":
            return Workload.of("layernorm", b=b, h=h)
        if op == "softmax":
            return Workload.of("softmax", b=b, h=h)
        name, scalar, kind = _ELEMENTWISE[op]
        if scalar is None:  # unary
            return Workload.of(kind, builder="elementwise", op=name, shape=(b, h))
        return Workload.of(kind, builder="elementwise", op=name, shape=(b, h), scalar=scalar)
    if op == "conv":
        if min(b, c_in, c_out, ks, size, stride) <= 0 or pad < 0:
            return bad
        return Workload.of("conv2d", batch=b, h=size, w=size, c=c_in, o=c_out, kh=ks, kw=ks,
                           stride=stride, padding=pad, precision="highest")  # fmt: skip
    return f"unknown op name ({op})"


def _expand_ops(ops: Iterable[str] | None) -> set[str] | None:
    if ops is None:
        return None
    if isinstance(ops, str):
        ops = [ops]
    out = set()
    for o in ops:
        if o in _NEUSIGHT_OP_GROUPS:
            out.update(_NEUSIGHT_OP_GROUPS[o])
        elif o in NEUSIGHT_OPS:
            out.add(o)
        else:
            raise InputError(
                f"unknown NeuSight op {o!r}; expected one of {list(NEUSIGHT_OPS)} "
                f"or a group {sorted(_NEUSIGHT_OP_GROUPS)}."
            )
    return out


def load_neusight(
    ops: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
    max_rows_per_group: int | None = None,
) -> Measurements:
    """NeuSight per-op FP32 latencies (PyTorch 2.1, CUDA 12.1) on P4, P100, T4, V100, A100.

    Args:
      ops: NeuSight op names (``bmm``, ``linear``, ``ln``, ``softmax``, ``conv``, ``add``, ``addu``,
        ``mul``, ``mulu``, ``div``, ``divu``, ``pow``, ``powu``, ``relu``, ``gelu``, ``tanh``) or
        groups (``elementwise`` = the eleven elementwise ops, ``layernorm``, ``conv2d``,
        ``matmul`` = bmm + linear); None loads all.
      devices: catalog names or aliases to keep; None keeps every catalog GPU.
      max_rows_per_group: keep at most this many rows per (op, device); the rows kept are those
        whose workload id has the smallest CRC-32, so the choice is deterministic and picks the
        same shapes on every GPU where they were measured.

    Returns:
      :class:`Measurements`; ``source`` is ``neusight:<original file>``; metadata keys start with
      ``neusight.`` (source, licence, commit, rows_in_file, rows_loaded, rows_skipped, skipped,
      rows_filtered_out, rows_not_selected).

    Example:
      >>> from perfjax.calibrate._public import load_neusight
      >>> ms = load_neusight(ops=["bmm"], devices=["t4"], max_rows_per_group=10)
      >>> len(ms), ms.devices(), ms.kinds()
      (10, ['t4'], ['bmm'])
    """
    if max_rows_per_group is not None and (
        not isinstance(max_rows_per_group, int) or max_rows_per_group < 1
    ):
        raise InputError(
            f"max_rows_per_group must be a positive int or None, got {max_rows_per_group!r}."
        )
    want_ops = _expand_ops(ops)
    want_devices = _resolve_devices(devices)
    df = _read("neusight_ops.csv.gz")
    skipped: Counter[str] = Counter()
    filtered = 0
    devices_of = {g: _catalog_name(g) for g in df["device"].unique()}
    sources = {f: f"neusight:{f}" for f in df["source_file"].unique()}
    workloads = _NEUSIGHT_WORKLOADS
    kept: list[tuple[str, str, Workload, float, str]] = []  # (op, device, workload, time_s, source)
    columns = [df[c].tolist() for c in ("op", "device", "source_file", "latency_ms", *_INT_COLUMNS)]
    for op, gpu, src, t, *dims in zip(*columns):
        if want_ops is not None and op not in want_ops:
            filtered += 1
            continue
        dev = devices_of[gpu]
        if dev is None:
            skipped[f"gpu not in catalog ({gpu})"] += 1
            continue
        if want_devices is not None and dev not in want_devices:
            filtered += 1
            continue
        if not (t > 0 and math.isfinite(t)):
            skipped["missing or non-positive latency"] += 1
            continue
        key = (op, *dims)
        w = workloads.get(key)
        if w is None:
            w = _neusight_workload(op, *dims)
            if isinstance(w, Workload):
                err = _build_error(w)
                w = f"workload failed to build ({err})" if err else w
            workloads[key] = w
        if isinstance(w, str):
            skipped[w] += 1
            continue
        kept.append((op, dev, w, t * _MS, sources[src]))
    not_selected = 0
    if max_rows_per_group is not None:
        kept, not_selected = _subsample(kept, max_rows_per_group, key=lambda x: (x[0], x[1]))
    rows = [Row(w, d, t, source=s) for _, d, w, t, s in kept]
    meta = _metadata(
        "neusight",
        source=f"NeuSight per-op latencies, {NEUSIGHT_URL} scripts/asplos/data/dataset/train/",
        licence=NEUSIGHT_LICENCE,
        commit=NEUSIGHT_COMMIT,
        measured="PyTorch 2.1.0 / CUDA 12.1, FP32 (no TF32); mean of the 5 fastest of 25 CUDA-event-timed calls",
        rows_in_file=len(df),
        rows_loaded=len(rows),
        rows_skipped=sum(skipped.values()),
        skipped=dict(skipped),
        rows_filtered_out=filtered,
        rows_not_selected=not_selected,
    )
    if not rows:
        raise InputError(
            f"no NeuSight rows left for ops={ops!r}, devices={devices!r}; skipped: {dict(skipped)}."
        )
    return Measurements(tuple(rows), meta)


def _subsample(items: list, limit: int, key: Callable[[Any], Any]) -> tuple[list, int]:
    """At most ``limit`` items per group: those whose workload id hashes lowest (CRC-32)."""
    crc: dict[Workload, int] = {}
    groups: dict[Any, list[tuple[int, int]]] = {}
    for i, it in enumerate(items):
        w = it[2]
        if w not in crc:
            crc[w] = zlib.crc32(w.id.encode())
        groups.setdefault(key(it), []).append((crc[w], i))
    keep: set[int] = set()
    for ranked in groups.values():
        keep.update(i for _, i in sorted(ranked)[:limit])
    out = [it for i, it in enumerate(items) if i in keep]
    return out, len(items) - len(out)


def load_neusight_models():
    """NeuSight whole-model latencies (BERT-large, GPT-2-large, GPT-3 variants, OPT, Switch).

    Returns a ``pandas.DataFrame`` with the upstream columns (``gpu``, ``run``, ``model``, ``mode``
    = ``inf``/``train``, ``seq_len``, ``batch_size``, ``variant``, ``num_layer``, ``e2e_latency_ms``,
    ``fw_latency_ms``, ``bwall_latency_ms``, ...) plus ``device`` (catalog name, or None when the
    GPU is not in the catalog) and ``e2e_time_s``. Where upstream wrote ``0.0`` for a forward or
    backward latency it did not measure (the 4-GPU dp4/tp4/pp4 rows have both 0), the value is
    NaN; the inference rows keep ``bwall_latency_ms = 0`` (no backward pass). ``df.attrs`` holds
    source, licence and commit.

    Example:
      >>> from perfjax.calibrate._public import load_neusight_models
      >>> df = load_neusight_models()
      >>> sorted(df.device.dropna().unique())[:2]
      ['a100-40gb', 'a100-pcie-40gb']
    """
    import numpy as np

    df = _read("neusight_models.csv.gz").copy()
    df.insert(1, "device", [_catalog_name(str(g)) for g in df["gpu"]])
    df["num_layer"] = df["num_layer"].astype("Int64")
    unmeasured = (df["fw_latency_ms"] == 0) & (df["bwall_latency_ms"] == 0)
    df.loc[unmeasured, ["fw_latency_ms", "bwall_latency_ms"]] = np.nan
    df["e2e_time_s"] = df["e2e_latency_ms"] * _MS
    df.attrs.update(
        source=f"NeuSight whole-model latencies, {NEUSIGHT_URL} scripts/asplos/label/",
        licence=NEUSIGHT_LICENCE,
        commit=NEUSIGHT_COMMIT,
        unmapped_gpus=sorted({str(g) for g, d in zip(df["gpu"], df["device"]) if d is None}),
    )
    return df


# ---------------------------------------------------------------------------------------------
# DeepBench
# ---------------------------------------------------------------------------------------------


def _deepbench_source(r: Any, extra: str = "") -> str:
    return (f"deepbench:{r.source_file} [{r.source_sheet}] row {r.source_row}; {r.workload}; "
            f"precision={r.precision}{extra}")  # fmt: skip


def _gemm_workload(r: Any, dtype: str, precision: str | None) -> Workload | str:
    dims = _ints(r.M, r.N, r.K)
    if dims is None:
        return "unsupported shape (a dimension is 0 or missing)"
    m, n, k = dims  # cuBLAS: C(M x N) = op(A)(M x K) . op(B)(K x N)
    params: dict[str, Any] = dict(m=m, k=k, n=n, dtype=dtype)
    if precision is not None:
        params["precision"] = precision
    return Workload.of("matmul", **params)


def _conv_workload(r: Any, dtype: str, precision: str | None) -> Workload | str:
    dims = _ints(r.N, r.H, r.W, r.C, r.K, r.R, r.S, r.stride_h, r.stride_w)
    pads = _ints(r.pad_h, r.pad_w, minimum=0)
    if dims is None or pads is None:
        return "unsupported shape (a dimension is 0 or missing)"
    n, h, w, c, k, fr, fs, sh, sw = dims
    stride = sh if sh == sw else (sh, sw)
    params: dict[str, Any] = dict(batch=n, h=h, w=w, c=c, o=k, kh=fr, kw=fs, stride=stride,
                                  padding=pads, dtype=dtype)  # fmt: skip
    if precision is not None:
        params["precision"] = precision
    return Workload.of("conv2d", **params)


def load_deepbench(
    kinds: Sequence[str] = DEEPBENCH_KINDS,
    precisions: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
) -> Measurements:
    """DeepBench GEMM and forward-convolution times on the catalog GPUs it covers.

    Args:
      kinds: ``"gemm"`` and/or ``"conv"``.
      precisions: DeepBench precision labels to keep (``fp32``, ``fp16_in_fp16_mul_fp32_acc``,
        ``fp16_in_fp32_math``, ``int8_in_int32_acc``); None keeps all. ``fp32`` maps to
        ``float32`` with ``precision="highest"``, the fp16 labels to ``float16`` and the int8 label
        to ``int8``.
      devices: catalog names or aliases to keep; None keeps every catalog device.

    Returns:
      :class:`Measurements` (kinds ``matmul`` and ``conv2d``); ``source`` names the spreadsheet,
      sheet and row, train/inference, the precision label and (GEMM) the transposes. Rows on GPUs
      not in the catalog (M40, MI25, Vega FE, Xeon Phi, Titan X Maxwell/Pascal) are skipped and
      counted in ``deepbench.skipped``.

    Example:
      >>> from perfjax.calibrate._public import load_deepbench
      >>> ms = load_deepbench(kinds=["gemm"], precisions=["fp32"], devices=["v100"])
      >>> ms.devices(), ms.kinds()
      (['v100'], ['matmul'])
    """
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = tuple(kinds)
    for k in kinds:
        if k not in DEEPBENCH_KINDS:
            raise InputError(
                f"unknown DeepBench kind {k!r}; expected one of {list(DEEPBENCH_KINDS)}."
            )
    want_prec = None
    if precisions is not None:
        want_prec = {precisions} if isinstance(precisions, str) else set(precisions)
        bad = sorted(want_prec - set(DEEPBENCH_PRECISIONS))
        if bad:
            raise InputError(
                f"unknown DeepBench precision label(s) {bad}; expected some of {list(DEEPBENCH_PRECISIONS)}."
            )
    want_devices = _resolve_devices(devices)
    skipped: Counter[str] = Counter()
    filtered = 0
    in_files = 0
    built: dict[Workload, str | None] = {}
    rows: list[Row] = []
    for kind in kinds:
        df = _read(f"deepbench_{kind}.csv.gz")
        in_files += len(df)
        time_col = "time_ms" if kind == "gemm" else "fwd_ms"
        for r in df.itertuples(index=False):
            if want_prec is not None and r.precision not in want_prec:
                filtered += 1
                continue
            dev = _catalog_name(str(r.gpu))
            if dev is None:
                skipped[f"gpu not in catalog ({r.gpu})"] += 1
                continue
            if want_devices is not None and dev not in want_devices:
                filtered += 1
                continue
            if r.precision not in _DEEPBENCH_PRECISIONS:
                skipped[f"unknown precision label ({r.precision})"] += 1
                continue
            t = getattr(r, time_col)
            if not (t > 0 and math.isfinite(t)):
                skipped["missing or non-positive time"] += 1
                continue
            dtype, prec = _DEEPBENCH_PRECISIONS[r.precision]
            if kind == "gemm":
                w = _gemm_workload(r, dtype, prec)
                src = _deepbench_source(r, f" transA={r.transA} transB={r.transB}")
            else:
                w = _conv_workload(r, dtype, prec)
                src = _deepbench_source(r, " fwd")
            if isinstance(w, str):
                skipped[w] += 1
                continue
            if w not in built:
                built[w] = _build_error(w)
            err = built[w]
            if err is not None:
                skipped[f"workload failed to build ({err})"] += 1
                continue
            rows.append(Row(w, dev, float(t) * _MS, source=src))
    meta = _metadata(
        "deepbench",
        source=f"DeepBench {', '.join(kinds)} results, {DEEPBENCH_URL} results/train, results/inference/server",
        licence=DEEPBENCH_LICENCE,
        commit=DEEPBENCH_COMMIT,
        measured="host-timed mean of 400 calls; CUDA 7.5-10.1 era libraries; conv: forward only",
        rows_in_files=in_files,
        rows_loaded=len(rows),
        rows_skipped=sum(skipped.values()),
        skipped=dict(skipped),
        rows_filtered_out=filtered,
    )
    if not rows:
        raise InputError(
            f"no DeepBench rows left for kinds={kinds!r}, precisions={precisions!r}, "
            f"devices={devices!r}; skipped: {dict(skipped)}."
        )
    return Measurements(tuple(rows), meta)


# ---------------------------------------------------------------------------------------------
# XLA's measured GEMM table
# ---------------------------------------------------------------------------------------------

XLA_LICENCE = "Apache-2.0"
XLA_COMMIT = "dc660322168302831d1cbc4c99683cd79671286e"
XLA_URL = "https://github.com/openxla/xla"
#: XLA's device keys -> catalog devices (gfx950 is CDNA4: the f32 rows reach 6.5x the MI350-series
#: FP32 matrix peak, so the table is the MI355X's figures; sm_90/gfx942 are not shipped).
XLA_ARCHS = {"sm_100_B200": "b200", "gfx950": "mi355x", "sm_90": "h100", "gfx942": "mi300x"}
_XLA_TYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32", "f8e4m3fn": "float8_e4m3fn",
              "f8e5m2": "float8_e5m2"}  # fmt: skip


def xla_dtype_precision(label: str, arch: str = "sm_100_B200") -> str:
    """The precision class of an XLA table dtype label on ``arch``: ``bf16xbf16->bf16`` ->
    ``bf16``, fp8 pairs -> ``fp8``, ``f32xf32->f32`` -> ``tf32`` on NVIDIA (DEFAULT precision:
    TF32 tensor cores) and ``fp32`` on AMD (XLA keeps F32 on ROCm)."""
    lhs = label.split("x", 1)[0]
    f32 = "fp32" if arch.startswith("gfx") else "tf32"
    return {"bf16": "bf16", "f16": "fp16", "f32": f32}.get(
        lhs, "fp8" if lhs.startswith("f8") else lhs
    )


def load_xla_matmul(
    archs: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    max_rows_per_group: int | None = None,
) -> Measurements:
    """XLA's measured GEMM times (``default_matmul_perf_table``: B200 and CDNA4) as measurements.

    Each row is one ``dot(lhs[b,m,k], rhs[b,k,n])`` at DEFAULT precision compiled by XLA's GPU
    pipeline, timed as the median CUPTI kernel duration (device time, no launch or host cost).
    Its workload is a ``matmul`` with both operands of the lhs type (fp8 pairs of mixed types use
    e4m3 for both: the same operand bytes and the same fp8 tensor-core rate).

    Args:
      archs: XLA device keys to keep (``sm_100_B200``, ``gfx950``); None keeps both.
      dtypes: XLA dtype labels (``bf16xbf16->bf16``, ``f32xf32->f32``, ...) or precision classes
        (``bf16``, ``fp16``, ``tf32``, ``fp8``); None keeps all.
      max_rows_per_group: a deterministic subsample per (arch, dtype label).

    Example:
      >>> ms = load_xla_matmul(archs=["sm_100_B200"], dtypes=["bf16"])
      >>> ms.devices(), len(ms)
      (['b200'], 375)
    """
    df = _read("xla_matmul.csv.gz")
    want_archs = None
    if archs is not None:
        want_archs = {archs} if isinstance(archs, str) else set(archs)
        bad = sorted(want_archs - set(df["arch"].unique()))
        if bad:
            raise InputError(
                f"unknown XLA arch(s) {bad}; the table has {sorted(df['arch'].unique())}."
            )
    want_dtypes = None
    if dtypes is not None:
        want_dtypes = {dtypes} if isinstance(dtypes, str) else set(dtypes)
        known = set(df["dtype"].unique()) | {
            xla_dtype_precision(d, a) for a, d in zip(df["arch"], df["dtype"], strict=True)
        }
        bad = sorted(want_dtypes - known)
        if bad:
            raise InputError(
                f"unknown XLA dtype label(s) or precision(s) {bad}; expected some of {sorted(known)}."
            )
    kept, filtered = [], 0
    for r in df.itertuples(index=False):
        label = str(r.dtype)
        if (want_archs is not None and r.arch not in want_archs) or (
            want_dtypes is not None
            and label not in want_dtypes
            and xla_dtype_precision(label, r.arch) not in want_dtypes
        ):
            filtered += 1
            continue
        dtype = _XLA_TYPES[label.split("x", 1)[0]]
        b = int(r.b)
        w = Workload.of(
            "matmul", m=int(r.m), k=int(r.k), n=int(r.n), b=b if b > 1 else 0, dtype=dtype
        )
        src = f"xla:matmul.csv arch={r.arch} dtype={label} b={b} m={r.m} n={r.n} k={r.k}"
        kept.append(((r.arch, label), XLA_ARCHS[r.arch], w, float(r.time_s), src))
    not_selected = 0
    if max_rows_per_group is not None:
        kept, not_selected = _subsample(kept, max_rows_per_group, key=lambda x: x[0])
    rows = [Row(w, d, t, source=s) for _, d, w, t, s in kept]
    if not rows:
        raise InputError(f"no XLA GEMM rows left for archs={archs!r}, dtypes={dtypes!r}.")
    meta = _metadata(
        "xla_matmul",
        source=f"XLA default_matmul_perf_table.txtpb, {XLA_URL} (read at ROCm/xla main 183fa00c)",
        licence=XLA_LICENCE,
        commit=XLA_COMMIT,
        measured="median CUPTI kernel duration (device time) of a DEFAULT-precision dot through XLA's GPU pipeline",
        rows_loaded=len(rows),
        rows_filtered_out=filtered,
        rows_not_selected=not_selected,
    )
    return Measurements(tuple(rows), meta)
