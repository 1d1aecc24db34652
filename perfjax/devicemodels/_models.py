"""Per-family time models as pure, vectorised, differentiable JAX functions.

``kernel_times(k, dev, params, family)`` maps a struct-of-arrays kernel table ``k`` (see
:class:`~perfjax.devicemodels.Kernels`), a packed device ``dev`` (:func:`pack`) and correction
parameters ``params`` (unconstrained: logits and logs) to per-kernel times. It is one ``jnp``
expression over all kernels: ``jax.jit``, ``jax.grad`` and ``jax.vmap`` apply.

Per kernel::

    t = smoothmax_q(t_compute, t_memory) + t_launch

* ``t_compute`` = matrix FLOPs / (peak at the kernel's precision x class efficiency x
  parallel utilisation) + vector FLOPs (transcendentals weighted) / (vector peak x efficiency x
  occupancy). Parallel utilisation is family-specific: GPU wave quantisation of 128x128 output
  tiles over SMs; TPU MXU padding and systolic fill; CPU blocks over cores; NPU tile padding.
* ``t_memory`` = boundary bytes / effective bandwidth, a harmonic blend of cache and main
  memory bandwidth by how much of the working set fits in the last on-chip cache; on NPUs the
  weights that do not fit in SRAM are streamed over the host link.
* ``smoothmax_q(a, b) = (a^q + b^q)^(1/q)``: the binding resource dominates, the other keeps a
  gradient. ``q`` is a parameter (large q: perfect overlap).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from perfjax.devicemodels._kernels import KINDS, Kernels
from perfjax.devicemodels._spec import PRECISIONS, DeviceSpec

_P = {p: i for i, p in enumerate(PRECISIONS)}
_CONV = KINDS.index("conv")
_GEMM = KINDS.index("gemm")
#: cuBLAS's SGEMM kernels on CUDA cores tile the output's contiguous dimension by 128 (kernel
#: names sgemm_128x32 / 128x64 / 128x128): a GEMM with a narrow output (N = 12 columns) costs
#: the 128-wide tile's time (NeuSight's fp32 bmm timings: measured/predicted falls with N below
#: ~40 on every GPU, by up to 3x with a 32-wide tile). NVIDIA GPUs only (other vendors' BLAS
#: libraries are not measured here).
_SGEMM_MIN_N_TILE = 128.0


def _sgemm_n_tile(spec: DeviceSpec) -> float:
    return _SGEMM_MIN_N_TILE if spec.family == "gpu" and spec.vendor.lower() == "nvidia" else 0.0


_DTYPE_PRECISION = {
    "float64": "fp64", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int8": "int8", "uint8": "int8",
    "int4": "int4", "uint4": "int4", "tensorfloat32": "tf32",
}  # fmt: skip
#: Precisions a ``precision=`` override may request at the model level (quantized deployment).
QUANTIZED = ("fp8", "int8", "int4")
_BITS = {"fp64": 64, "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
#: An NPU with no published vector figures does elementwise work at 1/16 of its MAC array's rate
#: (one row of a 16-wide array: an assumption, stated in the README).
_NO_VECTOR_UNIT_SLOWDOWN = 16.0
#: Share of the power above idle drawn by arithmetic at full rate (the rest by memory traffic).
_COMPUTE_POWER_SHARE = 0.7


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---------------------------------------------------------------------------------------------
# correction parameters and their priors
# ---------------------------------------------------------------------------------------------

#: Prior values per family, in natural units, with where they come from.
PRIORS: dict[str, dict[str, Any]] = {
    "gpu": dict(
        # Best achievable bf16 GEMM: A100 86.9%, H100 80.3% of peak (reference table) -> 0.84.
        compute_eff=dict(
            gemm=0.84, conv=0.7, elementwise=0.7, reduce=0.5, other=0.3, collective=0.3
        ),
        # Device copy reaches 89% of peak HBM bandwidth (A800 80GB PCIe, reference table).
        memory_eff=dict(
            gemm=0.9, conv=0.85, elementwise=0.9, reduce=0.85, other=0.6, collective=0.8
        ),
        k_half=32.0,  # K at which a GEMM's inner loop reaches half its efficiency
        parallel_half=1024.0,  # output elements per SM for half of the vector throughput
        transcendental_cost=4.0,  # SFU throughput is 1/4 of FP32 FMA throughput on NVIDIA SMs
        overlap_q=4.0,
        launch_scale=1.0,
        cache_sharpness=4.0,
        fill=1.0,
        # Host-side dispatch of a whole program is overlapped with device work (asynchronous).
        dispatch_s=1e-7,
        # Energy per fp32 FLOP at 12 nm incl. operand delivery: a V100 sustains its boost clock
        # in SGEMM at 250 W (NVIDIA V100 whitepaper, 2017) -> <= 250 W / 14 TFLOP/s ~ 18 pJ.
        power_pj=18.0,
        # Energy per operation falls roughly linearly with the feature size (Horowitz, ISSCC 2014).
        power_node_exp=1.0,
    ),
    "tpu": dict(
        compute_eff=dict(
            gemm=0.8, conv=0.7, elementwise=0.6, reduce=0.5, other=0.3, collective=0.3
        ),
        memory_eff=dict(
            gemm=0.9, conv=0.85, elementwise=0.85, reduce=0.8, other=0.6, collective=0.8
        ),
        k_half=16.0,
        parallel_half=2048.0,
        transcendental_cost=8.0,
        overlap_q=4.0,
        launch_scale=1.0,
        cache_sharpness=4.0,
        fill=1.0,  # systolic fill/drain: one array side of rows per weight tile
        dispatch_s=1e-7,
    ),
    "cpu": dict(
        # XLA:CPU GEMMs (Eigen / oneDNN) reach 60-80% of FMA peak on large problems.
        compute_eff=dict(
            gemm=0.6, conv=0.45, elementwise=0.25, reduce=0.2, other=0.1, collective=0.1
        ),
        memory_eff=dict(gemm=0.7, conv=0.7, elementwise=0.7, reduce=0.7, other=0.5, collective=0.5),
        k_half=16.0,
        parallel_half=16384.0,
        transcendental_cost=10.0,
        overlap_q=2.0,
        # In a chain of small GEMMs each further GEMM costs ~1.4 us here beyond its arithmetic
        # (docs/calibration/host_micro.csv, chain suite): per-kernel costs are small; what a
        # single-op program pays on top is the call and the thread pool's wake-up (below).
        launch_scale=1.0,
        cache_sharpness=4.0,
        fill=1.0,
        # One XLA:CPU executable call costs ~7 us here (benchmarks/run_overhead.py, 16-float add).
        dispatch_s=5e-6,
        # M or N tile at which a GEMM reaches half its efficiency (AVX2 micro-kernels block 4-8
        # rows; below the minimum tile of 8 the padding already charges the waste).
        mn_half=2.0,
        # Eigen-style GEMMs copy (pack) the right-hand operand into panels before the
        # micro-kernel runs: one extra read + write pass over it, not overlapped with compute.
        pack=1.0,
        # Sustained clock / the clock the peaks were derived from. Catalog CPU peaks and the host's
        # (/proc/cpuinfo: 2.45 GHz here) use the base clock, while cores boost under load: a
        # 1024^3 fp32 matmul runs at ~175 GFLOP/s here, above the 157 derived from the base clock.
        # Prior: a typical all-core turbo / base ratio (Xeon Platinum 8380: 3.0 / 2.3 GHz, Intel).
        clock_scale=1.3,
        # XLA:CPU splits kernels with more than ~32K output elements into tasks for its thread
        # pool. The first such kernel of a call wakes the pool (~50 us here: a 65536-float add
        # takes 59 us, a 32768-float scale 14 us); each later one hands over and joins (~6 us,
        # 3x the launch overhead: a chain of 16 normalisations of 65536 floats adds ~20 us per
        # step of three kernels).
        wake_s=50e-6,
        fork=3.0,
        fork_elements=38000.0,
        # bf16 GEMMs without bf16 instructions: operands converted to fp32 while packed. A
        # 4 x 2048 x 2048 bf16 matmul takes 2.9 ms here, fp32 1.0 ms; 2048^3 1.26x the fp32 time.
        upcast_pack=10.0,
        upcast_rate=1.2,
    ),
    "npu": dict(
        compute_eff=dict(
            gemm=0.6, conv=0.6, elementwise=0.3, reduce=0.3, other=0.1, collective=0.1
        ),
        memory_eff=dict(gemm=0.7, conv=0.7, elementwise=0.7, reduce=0.7, other=0.5, collective=0.5),
        k_half=16.0,
        parallel_half=512.0,
        transcendental_cost=8.0,
        overlap_q=2.0,
        launch_scale=1.0,
        cache_sharpness=4.0,
        fill=1.0,
        dispatch_s=1e-5,
    ),
}
#: Per-vendor priors that replace the family's.
VENDOR_PRIORS = {
    "amd": dict(
        # AMD's best achievable bf16 GEMM on MI300X is 51-60% of peak (reference table).
        compute_eff=dict(gemm=0.56),
        # That measurement is at MI300X's 750 W: the efficiency prior already holds whatever
        # clock the board sustains, so the power term must not cut it again. AMD's fp32 vector
        # peak counts dual-issue packed FP32 (CDNA3 whitepaper), so NVIDIA's energy per listed
        # fp32 FLOP overstates AMD's: at most (750 - 140) W / 163.4 TFLOP/s = 3.7 pJ at 5 nm,
        # 9 pJ scaled to 12 nm.
        power_pj=9.0,
    )
}


def _per_kind(value: float | Mapping[str, float], kind: str) -> float:
    return value.get(kind, 1.0) if isinstance(value, Mapping) else value


def default_params(family: str, vendor: str = "") -> dict[str, jax.Array]:
    """Correction parameters at their priors, in unconstrained space (logits and logs).

    Example:
      >>> p = default_params("gpu")
      >>> round(float(jax.nn.sigmoid(p["compute_eff_logit"][0])), 2)  # GEMM efficiency prior
      0.84
    """
    if family not in PRIORS:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(PRIORS)}.")
    vendor_pr = VENDOR_PRIORS.get(vendor.lower(), {}) if family == "gpu" else {}
    pr = {**PRIORS[family], **{k: v for k, v in vendor_pr.items() if k != "compute_eff"}}
    compute = dict(pr["compute_eff"])
    compute.update(vendor_pr.get("compute_eff", {}))
    return dict(
        compute_eff_logit=jnp.array([_logit(compute[k]) for k in KINDS], jnp.float32),
        memory_eff_logit=jnp.array([_logit(pr["memory_eff"][k]) for k in KINDS], jnp.float32),
        # Per kernel class: a convolution's inner loop runs over taps x channels and reaches
        # its efficiency at other K than a GEMM's.
        k_half_log=jnp.full((len(KINDS),), math.log(pr["k_half"]), jnp.float32),
        parallel_half_log=jnp.array(math.log(pr["parallel_half"]), jnp.float32),
        transcendental_cost_log=jnp.array(math.log(pr["transcendental_cost"]), jnp.float32),
        overlap_log=jnp.array(math.log(pr["overlap_q"] - 1.0), jnp.float32),
        # Fixed cost per kernel class (library GEMMs pay more setup than a loop fusion).
        launch_log=jnp.array(
            [math.log(_per_kind(pr["launch_scale"], k)) for k in KINDS], jnp.float32
        ),
        cache_sharpness_log=jnp.array(math.log(pr["cache_sharpness"]), jnp.float32),
        fill_log=jnp.array(math.log(pr["fill"]), jnp.float32),
        dispatch_log=jnp.array(math.log(pr["dispatch_s"]), jnp.float32),
        conv_speedup_log=jnp.array(0.0, jnp.float32),
        # Grouped (e.g. depthwise) convolutions: a few channels per group leave no GEMM inside
        # for the library's micro-kernels; their rate relative to the dense model (prior 1).
        grouped_log=jnp.array(0.0, jnp.float32),
        # Kernels a compiler leaves to a slower generic path (Kernels.fallback); prior: as fast.
        fallback_log=jnp.array(0.0, jnp.float32),
        # Family-specific parameters (unused elsewhere, kept at 1 so every family packs alike).
        mn_half_log=jnp.array(math.log(pr.get("mn_half", 1.0)), jnp.float32),
        pack_log=jnp.array(math.log(pr.get("pack", 1.0)), jnp.float32),
        power_pj_log=jnp.array(math.log(pr.get("power_pj", 1.0)), jnp.float32),
        power_node_log=jnp.array(math.log(pr.get("power_node_exp", 1.0)), jnp.float32),
        clock_scale_log=jnp.array(math.log(pr.get("clock_scale", 1.0)), jnp.float32),
        upcast_pack_log=jnp.array(math.log(pr.get("upcast_pack", 1.0)), jnp.float32),
        upcast_rate_log=jnp.array(math.log(pr.get("upcast_rate", 1.0)), jnp.float32),
        wake_log=jnp.array(math.log(pr.get("wake_s", 1.0)), jnp.float32),
        fork_log=jnp.array(math.log(pr.get("fork", 1.0)), jnp.float32),
        fork_elements_log=jnp.array(math.log(pr.get("fork_elements", 1.0)), jnp.float32),
        # A time factor per kernel class on one device (1 here): where a calibration fitted
        # device effects (``fit(device_effects=True)``), predictions for that device use them.
        kind_time_log=jnp.zeros((len(KINDS),), jnp.float32),
        # Matrix-unit (tensor core, MXU, matrix core) efficiency per precision, relative to the
        # kernel class's: TF32, bf16 and fp8 GEMMs reach different shares of their peaks (XLA's
        # measured B200 table). Prior 1 everywhere; fitted per vendor.
        precision_eff_log=jnp.zeros((len(PRECISIONS),), jnp.float32),
        # ... and one factor shared by every precision of the matrix unit, so that what one
        # precision's data teach (fp16 GEMMs on V100 tensor cores) reaches the others (prior 1).
        matrix_unit_eff_log=jnp.array(0.0, jnp.float32),
    )


# ---------------------------------------------------------------------------------------------
# device packing and precision resolution
# ---------------------------------------------------------------------------------------------

_SCALARS = ("memory_bytes_per_s", "cache_bytes", "cache_bytes_per_s", "num_cores", "clock_hz", "launch_overhead_s",
            "tdp_w", "idle_w", "host_link_bytes_per_s", "process_nm")  # fmt: skip


def pack(spec: DeviceSpec) -> dict[str, jax.Array]:
    """A fixed-structure dict of arrays from a spec (missing peaks are 0); differentiable.

    Every device packs to the same structure, so one compiled model serves the whole catalog.
    """
    out = {name: jnp.asarray(getattr(spec, name), jnp.float32) for name in _SCALARS}
    out["matrix_peaks"] = jnp.stack(
        [jnp.asarray(spec.matrix_flops_per_s.get(p, 0.0), jnp.float32) for p in PRECISIONS]
    )
    if spec.vector_flops_per_s:
        out["vector_peaks"] = jnp.stack(
            [jnp.asarray(spec.vector_flops_per_s.get(p, 0.0), jnp.float32) for p in PRECISIONS]
        )
    else:
        out["vector_peaks"] = out["matrix_peaks"] / _NO_VECTOR_UNIT_SLOWDOWN
    out["matrix_tile"] = jnp.asarray(float(spec.matrix_tile), jnp.float32)
    out["sgemm_n_tile"] = jnp.asarray(_sgemm_n_tile(spec), jnp.float32)
    return out


def pack_numpy(spec: DeviceSpec) -> dict[str, np.ndarray]:
    """Same as :func:`pack`, with NumPy (fast, for the non-differentiated path)."""
    out = {name: np.float32(getattr(spec, name)) for name in _SCALARS}
    out["matrix_peaks"] = np.array(
        [spec.matrix_flops_per_s.get(p, 0.0) for p in PRECISIONS], np.float32
    )
    if spec.vector_flops_per_s:
        out["vector_peaks"] = np.array(
            [spec.vector_flops_per_s.get(p, 0.0) for p in PRECISIONS], np.float32
        )
    else:
        out["vector_peaks"] = out["matrix_peaks"] / np.float32(_NO_VECTOR_UNIT_SLOWDOWN)
    out["matrix_tile"] = np.float32(spec.matrix_tile)
    out["sgemm_n_tile"] = np.float32(_sgemm_n_tile(spec))
    return out


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Where each kernel's arithmetic runs on one device."""

    unit: np.ndarray  # 0: matrix unit, 1: vector unit (for the matrix FLOPs)
    precision: np.ndarray  # index into PRECISIONS of the unit's peak
    passes: np.ndarray  # emulation passes (e.g. fp32 as 6 bf16 passes on a TPU)
    vector_precision: np.ndarray  # index into PRECISIONS for vector FLOPs
    bytes_scale: np.ndarray  # scaling of bytes under a quantized precision override
    labels: tuple[str, ...]  # e.g. "tf32 tensor cores", "bf16 x6 (fp32 on MXU)"
    #: 1 where narrow operands are converted up to the unit's precision first (bf16 on a CPU
    #: without bf16 instructions); 0 elsewhere.
    upcast: np.ndarray


def _matrix_choice(spec: DeviceSpec, want: str, attr: str) -> tuple[int, str, float, str]:
    m, v = spec.matrix_flops_per_s, spec.vector_flops_per_s
    fam = spec.family
    unit_name = {"gpu": "tensor cores", "tpu": "MXU", "cpu": "AMX", "npu": "MAC array"}[fam]
    if want == "fp32":
        if fam == "tpu":
            # XLA on TPU: DEFAULT = one bf16 pass, HIGH = 3 passes (bf16_3x), HIGHEST = 6 passes.
            passes = {"DEFAULT": 1.0, "HIGH": 3.0, "HIGHEST": 6.0}.get(attr, 1.0)
            if "bf16" in m:
                return 0, "bf16", passes, f"bf16 x{passes:g} on MXU (fp32 dot, precision {attr})"
        # (XLA picks TF32 on CUDA only: on ROCm GetBlasComputationType keeps plain F32.)
        if (
            fam == "gpu"
            and attr in ("DEFAULT", "HIGH")
            and "tf32" in m
            and spec.vendor.lower() == "nvidia"
        ):
            return 0, "tf32", 1.0, f"tf32 {unit_name} (fp32 dot, precision {attr})"
        if "fp32" in m:
            return 0, "fp32", 1.0, f"fp32 {unit_name}"
        if "fp32" in v:
            return 1, "fp32", 1.0, "fp32 vector units"
        if fam == "npu" and "fp16" in m:
            return 0, "fp16", 1.0, f"fp16 {unit_name} (fp32 program run in fp16)"
    elif want in ("bf16", "fp16"):
        for p in (want, "bf16" if want == "fp16" and fam == "tpu" else None):
            if p and p in m:
                return 0, p, 1.0, f"{p} {unit_name}"
        if want in v:
            return 1, want, 1.0, f"{want} vector units"
        if "fp32" in m:
            return 0, "fp32", 1.0, f"fp32 {unit_name} ({want} upcast)"
        if "fp32" in v:
            return 1, "fp32", 1.0, f"fp32 vector units ({want} upcast, as XLA:CPU does)"
        if fam == "npu" and "int8" in m:
            return 0, "int8", 1.0, f"int8 {unit_name} ({want} quantized)"
    elif want in ("int8", "int4"):
        for p in (want, "int8", "bf16", "fp16"):
            if p in m:
                return (
                    0,
                    p,
                    1.0,
                    f"{p} {unit_name}" + ("" if p == want else f" ({want} at {p} rate)"),
                )
        for p in (want, "int8", "bf16", "fp16"):
            if p in v:
                return (
                    1,
                    p,
                    1.0,
                    f"{p} vector units" + ("" if p == want else f" ({want} at {p} rate)"),
                )
        if "fp32" in v:
            return 1, "fp32", 1.0, f"fp32 vector units ({want} at fp32 rate)"
    elif want == "fp8":
        if "fp8" in m:
            return 0, "fp8", 1.0, f"fp8 {unit_name}"
    elif want == "fp64":
        if "fp64" in m:
            return 0, "fp64", 1.0, f"fp64 {unit_name}"
        if "fp64" in v:
            return 1, "fp64", 1.0, "fp64 vector units"
    elif want == "tf32" and "tf32" in m:
        return 0, "tf32", 1.0, f"tf32 {unit_name}"
    hint = (
        " Edge NPUs run quantized programs: pass precision='int8'." if fam == "npu" and want in ("fp32", "fp64")
        else f" Pass precision= one of {', '.join(spec.precisions())}."
    )  # fmt: skip
    raise ValueError(
        f"device {spec.name!r} cannot run {want} matrix math (it has {', '.join(spec.precisions())}).{hint}"
    )


def _vector_choice(spec: DeviceSpec, want: str) -> str:
    v = spec.vector_flops_per_s
    if want in v:
        return want
    if "fp32" in v:
        return "fp32"
    if v:
        return next(p for p in PRECISIONS if p in v)
    # No vector table (some NPUs): vector work runs on the matrix unit at its widest precision.
    return next(p for p in PRECISIONS if p in spec.matrix_flops_per_s)


def resolve(kernels: Kernels, spec: DeviceSpec, precision: str | None = None) -> Resolved:
    """Decides, per kernel, which unit and precision of ``spec`` executes it.

    Matmul precision follows the program (dtype and StableHLO ``precision`` attribute), as XLA
    does; ``precision`` in ``QUANTIZED`` runs every matrix kernel at that precision instead, and
    ``precision="fp32"`` runs fp32 matrix kernels as strict fp32 (precision HIGHEST: no TF32 on
    GPUs, six bf16 passes on TPUs). Other precisions (bf16, fp16, fp64) act through the program's
    dtypes (``predict`` re-traces with cast inputs) and change nothing here.
    """
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}.")
    n = len(kernels)
    unit, prec, passes, vprec, scale = (np.zeros(n, np.int32), np.zeros(n, np.int32), np.ones(n, np.float32),
                                        np.zeros(n, np.int32), np.ones(n, np.float32))  # fmt: skip
    labels = []
    upcast = np.zeros(n, np.float32)
    cache: dict[tuple, tuple] = {}
    for i, ((dtype, attr), kind) in enumerate(zip(kernels.requests, kernels.kind, strict=True)):
        want = _DTYPE_PRECISION.get(dtype, "fp8" if dtype.startswith("f8") else "fp32")
        is_matrix = KINDS[kind] in ("gemm", "conv")
        if precision == "fp32" and is_matrix and want == "fp32":
            # precision="fp32" asks for strict fp32: no TF32 / single-pass bf16 shortcut.
            attr = "HIGHEST"
        if precision in QUANTIZED and is_matrix:
            scale[i] = _BITS[precision] / _BITS.get(want, 32)
            want = precision
        key = (want, attr, is_matrix)
        if key not in cache:
            if is_matrix:
                u, p, ps, label = _matrix_choice(spec, want, attr)
            else:
                p = _vector_choice(spec, want)
                u, ps, label = 1, 1.0, f"{p} vector units"
            cache[key] = (
                u,
                _P[p],
                ps,
                label,
                _P[_vector_choice(spec, "fp32" if is_matrix else want)],
            )
        u, p, ps, label, vp = cache[key]
        unit[i], prec[i], passes[i], vprec[i] = u, p, ps, vp
        upcast[i] = float(is_matrix and "upcast" in label)
        labels.append(label)
    return Resolved(unit, prec, passes, vprec, scale, tuple(labels), upcast)


# ---------------------------------------------------------------------------------------------
# smooth helpers
# ---------------------------------------------------------------------------------------------


def soft_ceil(x: jax.Array, sharpness: jax.Array | float = 50.0) -> jax.Array:
    """A continuously differentiable staircase: ``ceil(x)`` except within ``1/sharpness`` above an
    integer, where it rises from ``n`` to ``n + 1`` along a smoothstep (so its value and slope are
    continuous, and it never decreases)."""
    fl = jnp.floor(x)
    u = jnp.clip((x - fl) * sharpness, 0.0, 1.0)
    return fl + u * u * (3.0 - 2.0 * u)


def smooth_max(a: jax.Array, b: jax.Array, q: jax.Array) -> jax.Array:
    """``(a^q + b^q)^(1/q)`` computed stably: equals max(a, b) as q grows."""
    # (Both zero, as for a zero-size kernel: 0, with a finite gradient.)
    live = jnp.maximum(a, b) > 1e-30
    a, b = jnp.where(live, a, 1.0), jnp.where(live, b, 1.0)
    m = jnp.maximum(a, b)
    return jnp.where(live, m * ((a / m) ** q + (b / m) ** q) ** (1.0 / q), 0.0)


def _safe_div(a: jax.Array, b: jax.Array, tiny: float = 1e-30) -> jax.Array:
    """``a / max(b, tiny)`` whose gradient stays finite where ``b`` is (or underflows to) 0."""
    ok = b > tiny
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), a / tiny)


def _pick(table: jax.Array, index: jax.Array) -> jax.Array:
    """``table[index]`` for one device (table ``[P]``), or row-wise for per-kernel devices (``[K, P]``)."""
    if table.ndim == 1:
        return table[index]
    return jnp.take_along_axis(table, index[:, None], axis=1)[:, 0]


def _ceil_to(x: jax.Array, multiple: jax.Array) -> jax.Array:
    return jnp.ceil(x / multiple) * multiple


def _pow2ceil(x: jax.Array) -> jax.Array:
    return 2.0 ** jnp.ceil(jnp.log2(jnp.maximum(x, 1.0)))


#: Smooth min(1, r) = r / (1 + r^s)^(1/s) for the GPU power cap (s large: a sharp corner).
_POWER_CAP_SHARPNESS = 12.0


def _tile_choice(x: jax.Array, lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The output tile a GPU convolution library picks along one dimension of extent ``x``:
    among ``hi``, ``hi/2``, ``hi/4`` and ``hi/8`` (not below ``lo``), the one that pads ``x``
    least (the larger on a tie). Returns (tile, padded extent)."""
    x, lo, hi = jnp.broadcast_arrays(x, lo, hi)
    cands = hi[..., None] / 2.0 ** jnp.arange(4.0)
    padded = jnp.ceil(x[..., None] / cands) * cands
    padded = jnp.where(cands >= lo[..., None], padded, 1e30)
    i = jnp.argmin(padded, axis=-1)[..., None]
    return (jnp.take_along_axis(cands, i, -1)[..., 0], jnp.take_along_axis(padded, i, -1)[..., 0])


#: Latency of one dependent step of a solver, as a multiple of the device's launch overhead.
_STEP_LATENCY_SCALE = {"gpu": 1.0, "tpu": 1.0, "npu": 1.0, "cpu": 0.1}

#: Host round trip of one Python callback (``jax.pure_callback``): on an accelerator the device
#: synchronises, copies operands to the host, takes the GIL and copies results back (JAX's
#: callback docs: "a host synchronization"); on a CPU only the Python call remains. Assumed
#: figures, not measured here: tens of microseconds on accelerators, a few on a CPU.
_CALLBACK_S = {"gpu": 30e-6, "tpu": 50e-6, "npu": 50e-6, "cpu": 5e-6}

#: A GEMM's FLOPs per loop element when XLA:CPU decides whether to split it over its pool.
_FLOPS_PER_TASK_ELEMENT = 32.0

#: How sharply (per unit of log elements) XLA:CPU's task splitting switches on.
_FORK_SHARPNESS = 20.0

#: Split-K keeps at least this much of the reduction dimension per slice.
_SPLIT_K_MIN = 256.0


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------


def kernel_times(
    k: Mapping[str, jax.Array],
    dev: Mapping[str, jax.Array],
    params: Mapping[str, jax.Array],
    res: Mapping[str, jax.Array],
    family: str,
) -> dict[str, jax.Array]:
    """Per-kernel time (seconds per execution) and its parts. Pure and vectorised.

    Args:
      k: kernel features (:meth:`Kernels.arrays`).
      dev: packed device (:func:`pack`).
      params: correction parameters (:func:`default_params`).
      res: resolved units/precisions (``unit``, ``precision``, ``passes``, ``vector_precision``,
        ``bytes_scale``, ``upcast``) as arrays.
      family: ``gpu``, ``tpu``, ``cpu`` or ``npu`` (static).
    """
    kind = k["kind"]
    eps = 1e-30
    # Counts are never negative (a zero-size kernel has none): guard the model against any that are.
    k = {name: (jnp.maximum(v, 0.0) if name != "kind" else v) for name, v in k.items()}
    compute_eff = jax.nn.sigmoid(params["compute_eff_logit"])[kind]
    memory_eff = jax.nn.sigmoid(params["memory_eff_logit"])[kind]
    peaks = jnp.where(
        res["unit"] == 0,
        _pick(dev["matrix_peaks"], res["precision"]),
        _pick(dev["vector_peaks"], res["precision"]),
    )
    peaks = peaks / res["passes"]
    vec_peak = _pick(dev["vector_peaks"], res["vector_precision"])
    if family == "gpu":
        # Power cap: running every fp32 lane at the published boost clock needs
        # peak_fp32 x energy/FLOP(node); a board allowed less (tdp - idle) runs at a lower clock,
        # so every unit's rate scales by the smooth min(1, available / needed). Tensor-core rates
        # scale with it (their energy per op is lower in proportion to their higher peak).
        e_flop = (
            jnp.exp(params["power_pj_log"])
            * 1e-12
            * (jnp.maximum(dev["process_nm"], 1.0) / 12.0) ** jnp.exp(params["power_node_log"])
        )
        need_w = dev["vector_peaks"][..., _P["fp32"]] * e_flop
        ratio = jnp.maximum(dev["tdp_w"] - dev["idle_w"], 1.0) / jnp.maximum(need_w, 1e-3)
        sustained = ratio / (1.0 + ratio**_POWER_CAP_SHARPNESS) ** (1.0 / _POWER_CAP_SHARPNESS)
        sustained = jnp.where((dev["process_nm"] > 0) & (dev["tdp_w"] > 0), sustained, 1.0)
        peaks = peaks * sustained
        vec_peak = vec_peak * sustained
    if family == "cpu":
        boost = jnp.exp(params["clock_scale_log"])
        peaks, vec_peak = peaks * boost, vec_peak * boost
        # XLA:CPU splits some kernels only over their batch (Kernels.parallel_units): they keep
        # at most that many cores of the chip busy.
        cores = jnp.minimum(dev["num_cores"], k["parallel_units"])
        serial_share = cores / dev["num_cores"]
    else:
        cores = dev["num_cores"] * jnp.ones_like(k["matrix_flops"])
        serial_share = 1.0
    tile = dev["matrix_tile"]
    b, m, n, kk = k["gemm_b"], k["gemm_m"], k["gemm_n"], k["gemm_k"]
    is_matrix = k["matrix_flops"] > 0

    if family == "tpu":
        # MXU: weights stationary, K and N padded to the array side, M streamed in rows of 8;
        # each weight tile costs `fill` x T cycles of systolic fill/drain. Weight tiles (N x K) are
        # spread over all MXUs of the chip; their number follows from the published peak.
        rows = _ceil_to(m, 8.0)
        padded = 2.0 * b * rows * _ceil_to(n, tile) * _ceil_to(kk, tile)
        fill_util = rows / (rows + tile * jnp.exp(params["fill_log"]))
        # MXUs on the chip: peak / (2 T^2 clock), kept continuous so a higher peak never makes
        # any unit slower (a rounded count would).
        units = jnp.maximum(
            dev["matrix_peaks"][..., _P["bf16"]] / (2.0 * tile * tile * dev["clock_hz"]), 1.0
        )
        tiles = b * jnp.ceil(n / tile) * jnp.ceil(kk / tile)
        x = tiles / units
        per_unit = units
        matrix_util = fill_util
    else:
        # Output tiles shrink to fit skinny problems (as GEMM libraries choose smaller tiles),
        # never below the library's minimum (cuBLAS's smallest SGEMM tiles are 32 x 32, e.g. the
        # kernel volta_sgemm_32x32_sliced1x4 in profiles); work is the padded tiles, spread over
        # the units in waves.
        # With fewer tiles than units, libraries split K over idle units (split-K) while each
        # slice keeps at least `_SPLIT_K_MIN` of K.
        lo = {"gpu": 32.0, "cpu": 8.0, "npu": 8.0}[family]
        hi = tile if family != "cpu" else 4.0 * tile
        tm = jnp.clip(_pow2ceil(m), lo, hi)
        lo_n = lo
        if family == "gpu":
            # (cuBLAS SGEMM on CUDA cores: no tile narrower than sgemm_n_tile in N)
            lo_n = jnp.where(
                (kind == _GEMM) & (res["unit"] == 1), jnp.maximum(dev["sgemm_n_tile"], lo), lo
            )
        tn = jnp.clip(_pow2ceil(n), lo_n, jnp.maximum(hi, lo_n))
        pm, pn = jnp.ceil(m / tm) * tm, jnp.ceil(n / tn) * tn
        if family == "gpu":
            # cuDNN's implicit-GEMM convolutions pick the tile that pads least: a 3x3
            # convolution with 150 output channels runs 160 columns (5 x 32), not 256 (2 x 128);
            # NeuSight's convolutions whose padding the two rules count 1.25-2x apart took
            # 0.63-0.69x of the 128-tile prediction, relative to the same GPU's other
            # convolutions, on all four GPUs. cuBLAS GEMMs keep the power-of-two rule above (the
            # same choice for them scores worse on DeepBench's GEMMs: docs/calibration/README.md).
            tm_c, pm_c = _tile_choice(m, lo, hi)
            tn_c, pn_c = _tile_choice(n, lo_n, jnp.maximum(hi, lo_n))
            conv = kind == _CONV
            tm, pm = jnp.where(conv, tm_c, tm), jnp.where(conv, pm_c, pm)
            tn, pn = jnp.where(conv, tn_c, tn), jnp.where(conv, pn_c, pn)
        tiles = b * jnp.ceil(m / tm) * jnp.ceil(n / tn)
        padded = 2.0 * b * pm * pn * kk
        split = jnp.clip(jnp.minimum(cores / jnp.maximum(tiles, 1.0), kk / _SPLIT_K_MIN), 1.0, None)
        if family == "gpu":
            # cuDNN's implicit-GEMM convolutions do not split K: a convolution with few output
            # tiles leaves SMs idle.
            split = jnp.where(kind == _CONV, 1.0, split)
        x = tiles * split / cores
        per_unit = cores
        k_slice = kk / split
        matrix_util = k_slice / (k_slice + jnp.exp(params["k_half_log"])[kind])
        if family == "cpu":
            # CPU GEMM micro-kernels block M and N in registers: a short M or N leaves the
            # register block part empty (GPU tiles shrink instead, above).
            mn_half = jnp.exp(params["mn_half_log"])
            # (Of the tile sizes, so the time stays monotone: M below the tile already pays the
            # padding.)
            matrix_util = matrix_util * (tm / (tm + mn_half)) * (tn / (tn + mn_half))
    # A wave is as slow as its fullest unit: utilisation x / ceil(x), with a staircase that is
    # smooth over about one tile (so time never drops when a dimension grows).
    wave_util = x / soft_ceil(jnp.maximum(x, 1e-9), sharpness=per_unit)
    matrix_util = matrix_util * wave_util
    # Padding waste is reported as lost utilisation: time uses the padded work.
    pad_factor = padded / jnp.maximum(k["matrix_flops"], 1.0)
    # Convolution libraries use fast algorithms (Winograd, FFT) that need fewer multiplies than
    # the direct FLOP count: a learned speed-up over the direct count (prior 1: none).
    matrix_rate = peaks * compute_eff * matrix_util * serial_share
    # Per-precision matrix-unit efficiency (vector-unit GEMMs keep the class efficiency alone).
    matrix_rate = jnp.where(
        res["unit"] == 0,
        matrix_rate
        * jnp.exp(params["precision_eff_log"] + params["matrix_unit_eff_log"])[res["precision"]],
        matrix_rate,
    )
    matrix_rate = jnp.where(
        kind == _CONV, matrix_rate * jnp.exp(params["conv_speedup_log"]), matrix_rate
    )
    matrix_rate = jnp.where(
        (kind == _CONV) & (b > 1.5), matrix_rate * jnp.exp(params["grouped_log"]), matrix_rate
    )
    matrix_rate = jnp.where(
        k["fallback"] > 0.5, matrix_rate * jnp.exp(params["fallback_log"]), matrix_rate
    )
    t_matrix = jnp.where(is_matrix, _safe_div(k["matrix_flops"] * pad_factor, matrix_rate), 0.0)

    # Vector work: occupancy grows with the elements available per core.
    occupancy_x = k["out_elements"] / (cores * jnp.exp(params["parallel_half_log"]))
    occupancy = occupancy_x / (1.0 + occupancy_x)
    vector_eff = jax.nn.sigmoid(params["compute_eff_logit"][2])
    vec_work = k["vector_flops"] + k["transcendentals"] * jnp.exp(params["transcendental_cost_log"])
    vec_rate = vec_peak * jnp.where(is_matrix, vector_eff, compute_eff) * occupancy
    t_vector = _safe_div(vec_work, vec_rate)
    t_compute = t_matrix + t_vector

    # Memory: harmonic blend of cache and DRAM/HBM bandwidth by the working set's fit.
    bytes_ = (k["bytes_read"] + k["bytes_written"]) * res["bytes_scale"]
    ws = jnp.maximum(bytes_, 1.0)
    sharp = jnp.exp(params["cache_sharpness_log"])

    def fits_in_cache(size_bytes: jax.Array) -> jax.Array:
        """Smooth share (0..1) of ``size_bytes`` that the last-level cache holds."""
        log_ratio = jnp.log(jnp.maximum(dev["cache_bytes"], 1.0)) - jnp.log(
            jnp.maximum(size_bytes, 1.0)
        )
        return jnp.where(dev["cache_bytes_per_s"] > 0, jax.nn.sigmoid(sharp * log_ratio), 0.0)

    in_cache = fits_in_cache(ws)
    mem_bw = dev["memory_bytes_per_s"] * memory_eff
    cache_bw = jnp.maximum(dev["cache_bytes_per_s"], dev["memory_bytes_per_s"]) * memory_eff
    # Program inputs (weights, data) come from main memory unless all of them stay resident in
    # the last-level cache between executions; what a previous kernel produced may still be in the
    # cache when the kernel's working set fits.
    resident = fits_in_cache(k["program_input_bytes"])
    first_touch = jnp.minimum(k["input_bytes"] * res["bytes_scale"], bytes_) * (1.0 - resident)
    t_memory = first_touch / mem_bw + (bytes_ - first_touch) * (
        in_cache / cache_bw + (1.0 - in_cache) / mem_bw
    )
    # Memory parallelism: small vector kernels cannot keep enough requests in flight (GEMMs
    # stream their operands through all units; their parallelism is in the compute term).
    t_memory = jnp.where(is_matrix, t_memory, t_memory / jnp.maximum(occupancy, 1e-3) ** 0.5)
    if family == "npu":
        # Weights that do not fit in on-chip SRAM are streamed from the host every execution.
        w = k["weight_bytes"] * res["bytes_scale"]
        total_w = jnp.sum(w * jnp.minimum(k["executions"], 1.0))
        overflow = (
            jax.nn.softplus((total_w - dev["cache_bytes"]) / 1e5) * 1e5 / jnp.maximum(total_w, 1.0)
        )
        t_memory = t_memory + w * jnp.minimum(overflow, 1.0) / dev["host_link_bytes_per_s"]

    q = 1.0 + jnp.exp(params["overlap_log"])
    t_body = smooth_max(t_compute, t_memory, q)
    if family == "cpu":
        # Operand packing (GEMMs with M > 1 and N > 1; XLA:CPU calls a matrix-vector kernel
        # otherwise): the K x N operand is read and written once more, at the bandwidth of the
        # level it fits in. With a few rows (M small) it dominates: 2048^2 fp32 weights cost ~2 ms
        # here while the arithmetic of M = 4 takes 0.3 ms (docs/calibration/host_micro.csv).
        # Element size from the GEMM's reads (A: M x K, B: K x N).
        elem = k["bytes_read"] * res["bytes_scale"] / jnp.maximum(b * kk * (m + n), 1.0)
        # Upcast operands (bf16 without bf16 instructions) are converted while packed: a
        # slower pass (learned factor), and the micro-kernel runs below its fp32 rate.
        upcast = res["upcast"] > 0.5
        pack_bytes = jnp.where(is_matrix, 2.0 * b * kk * n * elem, 0.0)
        pack_bytes = jnp.minimum(pack_bytes, 2.0 * bytes_)
        pack_fit = fits_in_cache(pack_bytes)
        t_pack = pack_bytes * (pack_fit / cache_bw + (1.0 - pack_fit) / mem_bw)
        t_convert = t_pack * jnp.exp(params["upcast_pack_log"])
        t_pack = jnp.where((m > 1.5) & (n > 1.5), t_pack * jnp.exp(params["pack_log"]), 0.0)
        # The conversion pass happens even where nothing is packed (a matrix-vector product).
        t_pack = jnp.where(upcast, t_pack + t_convert, t_pack)
        t_body = t_body + t_pack
        t_body = jnp.where(
            upcast, t_body + t_compute * (jnp.exp(params["upcast_rate_log"]) - 1.0), t_body
        )
    # Device-specific time factor per kernel class (calibrated device effects; 1 by default).
    device_factor = jnp.exp(params["kind_time_log"])[kind]
    t_body, t_compute, t_memory = (
        t_body * device_factor,
        t_compute * device_factor,
        t_memory * device_factor,
    )
    t_launch = (
        dev["launch_overhead_s"] * jnp.exp(params["launch_log"])[kind] * jnp.ones_like(t_body)
    )
    pool_use = jnp.zeros_like(t_body)
    if family == "cpu":
        # Thread-pool hand-off of kernels large enough to be split into tasks (the pool's
        # wake-up, once per call, is in program_overhead).
        # GEMMs are split by their arithmetic (a 16 x 784 x 128 matmul already is: 1.5x faster on
        # two cores than on one), loops by their elements; one-core kernels never are.
        work = jnp.where(is_matrix, k["matrix_flops"] / _FLOPS_PER_TASK_ELEMENT, k["out_elements"])
        pool_use = jax.nn.sigmoid(
            _FORK_SHARPNESS * (jnp.log(jnp.maximum(work, 1.0)) - params["fork_elements_log"])
        )
        pool_use = jnp.where(is_matrix & (k["parallel_units"] < 1.5), 0.0, pool_use)
        t_launch = t_launch + dev["launch_overhead_s"] * jnp.exp(params["fork_log"]) * pool_use
    # Linear-algebra solvers: each dependent panel step pays a launch (GPU) or loop iteration
    # (TPU, NPU); on a CPU the steps are calls inside one LAPACK routine (a tenth of that).
    step_s = dev["launch_overhead_s"] * _STEP_LATENCY_SCALE[family]
    t_launch = t_launch + k.get("serial_steps", jnp.zeros_like(t_body)) * step_s
    # Host callbacks: a round trip to the host's Python, plus operands and results over the link.
    trips = k.get("host_round_trips", jnp.zeros_like(t_body))
    link = jnp.where(dev["host_link_bytes_per_s"] > 0, dev["host_link_bytes_per_s"], 1.0)
    link_s = jnp.where(dev["host_link_bytes_per_s"] > 0, bytes_ / link, 0.0)
    t_launch = t_launch + jnp.where(trips > 0, trips * _CALLBACK_S[family] + link_s, 0.0)
    time = t_body + t_launch

    flops = k["matrix_flops"] + k["vector_flops"]
    best_peak = jnp.maximum(
        jnp.max(dev["matrix_peaks"], axis=-1), jnp.max(dev["vector_peaks"], axis=-1)
    )
    dynamic_w = jnp.maximum(dev["tdp_w"] - dev["idle_w"], 0.0)
    pj_per_flop = _COMPUTE_POWER_SHARE * dynamic_w / best_peak
    pj_per_byte = (1 - _COMPUTE_POWER_SHARE) * dynamic_w / dev["memory_bytes_per_s"]
    energy = flops * pj_per_flop + bytes_ * pj_per_byte + dev["idle_w"] * time
    return dict(
        parallel_util=jnp.where(
            is_matrix,
            wave_util / jnp.maximum(pad_factor, 1.0) if family == "tpu" else wave_util,
            occupancy,
        ),
        time_s=time,
        compute_s=t_compute,
        memory_s=t_memory,
        launch_s=t_launch,
        pool_use=pool_use,
        energy_j=energy,
        peak_flops_per_s=jnp.where(is_matrix, peaks, vec_peak),
        utilization=flops / jnp.maximum(time * jnp.where(is_matrix, peaks, vec_peak), eps),
    )


def dispatch_time(params) -> jax.Array:
    """Fixed cost of launching one program (host-side call of the executable)."""
    return jnp.exp(params["dispatch_log"])


def program_overhead(params, pool_use_max: jax.Array, family: str) -> jax.Array:
    """Once-per-call cost of a program: dispatch, and on CPUs the thread pool's wake-up when any
    kernel is split over it (``pool_use_max``: the largest ``pool_use`` of its kernels, 0..1)."""
    out = dispatch_time(params)
    if family == "cpu":
        out = out + jnp.exp(params["wake_log"]) * pool_use_max
    return out


def program_times(k, dev, params, res, family: str) -> dict[str, jax.Array]:
    """:func:`kernel_times` plus ``overhead_s``, the program's once-per-call cost (kernels that
    never execute, such as padding, do not wake the thread pool)."""
    out = kernel_times(k, dev, params, res, family)
    used = jnp.max(jnp.where(k["executions"] > 0, out["pool_use"], 0.0), initial=0.0)
    return {**out, "overhead_s": program_overhead(params, used, family)}


def total_time(k, dev, params, res, family: str) -> jax.Array:
    """Program time on one stream: call overhead + sum of kernel times x executions."""
    out = program_times(k, dev, params, res, family)
    return out["overhead_s"] + jnp.sum(out["time_s"] * k["executions"])


program_times_jit = jax.jit(program_times, static_argnames=("family",))
