"""Per-family time models as pure, vectorised, differentiable JAX functions.

``kernel_times(k, dev, params, family)`` maps a struct-of-arrays kernel table ``k`` (see
:class:`~perfjax.fusion.Kernels`), a packed device ``dev`` (:func:`pack`) and correction
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
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from perfjax._dtypes import DTYPE_PRECISION, PRECISION_BITS, PRECISIONS, QUANTIZED
from perfjax._errors import InputError
from perfjax.devicemodels import _cpu, _gpu, _npu, _tpu
from perfjax.devicemodels._common import KernelTimes
from perfjax.devicemodels._spec import DeviceSpec
from perfjax.fusion._kernels import KINDS, Kernels

_P = {p: i for i, p in enumerate(PRECISIONS)}
#: cuBLAS's SGEMM kernels on CUDA cores tile the output's contiguous dimension by 128 (kernel
#: names sgemm_128x32 / 128x64 / 128x128): a GEMM with a narrow output (N = 12 columns) costs
#: the 128-wide tile's time (NeuSight's fp32 bmm timings: measured/predicted falls with N below
#: ~40 on every GPU, by up to 3x with a 32-wide tile). NVIDIA GPUs only (other vendors' BLAS
#: libraries are not measured here).
_SGEMM_MIN_N_TILE = 128.0


def _sgemm_n_tile(spec: DeviceSpec) -> float:
    return _SGEMM_MIN_N_TILE if spec.family == "gpu" and spec.vendor.lower() == "nvidia" else 0.0


#: An NPU with no published vector figures does elementwise work at 1/16 of its MAC array's rate
#: (one row of a 16-wide array: an assumption, stated in the README).
_NO_VECTOR_UNIT_SLOWDOWN = 16.0


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
            gemm=_cpu.PRIOR_GEMM_EFF,
            conv=0.45,
            elementwise=0.25,
            reduce=0.2,
            other=0.1,
            collective=0.1,
        ),
        memory_eff=dict(gemm=0.7, conv=0.7, elementwise=0.7, reduce=0.7, other=0.5, collective=0.5),
        k_half=16.0,
        parallel_half=16384.0,
        # Vector-FLOP equivalents of one exp (other functions weigh more or less:
        # fusion.XLA_CPU_TRANSCENDENTALS). XLA:CPU takes ~1 ns per exp and element on 2 cores of a
        # 2.8 GHz AVX-512 Xeon, in cache (benchmarks/host_transcendentals.py): ~90 FLOPs at the
        # elementwise efficiency prior's rate.
        transcendental_cost=80.0,
        overlap_q=2.0,
        # Per-kernel fixed cost, x the device's launch_overhead_s (2 us for the host). XLA:CPU's
        # thunks, profiled in small transformers, the zoo CNNs at batch 1 and a chain of 32x32
        # GEMMs on a 2-core EPYC (benchmarks/host_thunk_costs.py): a small GEMM 0.6-2.9 us
        # (median per program; 1.2 in the chain), a reduction 0.5-1.4 us, a loop fusion 0.1 us
        # plus up to 0.8 us per thunk between thunks, a convolution 4-12 us with its arithmetic.
        # Priors: 1.2, 0.5, 0.5 and 8 us. What a single-op program pays on top is the call and
        # the thread pool's wake-up (below). At 2 us per loop and 4 per GEMM, the priors
        # predicted the small transformers of docs/calibration/host_generalization*.csv
        # 1.5-3.2x too slow (median per model).
        launch_scale=dict(gemm=0.6, conv=4.0, elementwise=0.25, reduce=0.25),
        cache_sharpness=4.0,
        fill=1.0,
        # One XLA:CPU executable call costs ~7 us here (benchmarks/run_overhead.py, 16-float add),
        # ~1 us of it handing over its input and output (_cpu.CALL_INPUT_S, CALL_OUTPUT_S).
        dispatch_s=_cpu.DISPATCH_S,
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
        clock_scale=_cpu.PRIOR_CLOCK_SCALE,
        # XLA:CPU splits loops that move more than ~450 KB (fork_elements of an add, 12 bytes
        # each; perfjax.devicemodels._cpu.pool_use) into tasks for its thread pool. The first
        # such kernel of a call wakes the pool (~50 us here: a 65536-float add
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
        # Core-seconds per byte of an output buffer mapped afresh on every call
        # (Kernels.fresh_bytes): a page fault and the operating system zeroing the page, taken
        # by the cores writing the output in parallel: ~0.8 us per 4 KiB page on the 2 cores
        # here (benchmarks/host_first_touch.py: a 64 MiB x * 1.5 takes 16.4 ms, 3.9 ms donated).
        first_touch_s_per_byte=4.0e-10,
        # Core-seconds per rhs element of a batched GEMM by a transposed, computed rhs
        # (Kernels.transposed_rhs_elements): einsum-form attention takes more per score element
        # than the same with its transposes written out (benchmarks/host_attention_layout.py,
        # median over 46 shapes on 2 cores): 1.13 ns on an Intel Xeon, 0.43 ns on an AMD EPYC
        # (host_attention_layout_epyc.csv), i.e. 2.3 and 0.86 core-ns. The prior is their
        # geometric mean, and the fit keeps it (FROZEN): host calibrations fitted 3.2-3.4
        # core-ns on the EPYC, 4x what it measures, and over-predicted attention there. It
        # holds at the priors' GEMM speed and scales with the fitted one (devicemodels._cpu):
        # a Zen 5 EPYC, its GEMMs fitted 1.9x faster than a Zen 4's, took 1.9x less per score
        # (host_attention_layout_zen5.csv).
        transposed_rhs_s_per_element=1.4e-9,
        # Cycles per input element of a sum XLA:CPU runs as its own scalar loop
        # (Kernels.scalar_sum_elements: bf16 accumulation, a bias gradient), on top of the
        # library reduction's time: 2.4 ns more than the fp32-accumulated sum over rows, median
        # of 9 shapes on a 2.6 GHz AMD EPYC (benchmarks/results/host_bf16_reduce_epyc.csv).
        # Kept (FROZEN): no calibration suite times such sums.
        scalar_sum_cycles_per_element=6.3,
        # Rate of a grouped convolution relative to the dense model's (``grouped_log``).
        # XLA:CPU's YNNPACK runs depthwise 3x3 convolutions at 26-30 ns per output element on
        # a 2-core AMD EPYC, over 11 shapes of 16-512 features (0.6-0.7 GFLOP/s), 4.6x as
        # long as the dense model with this factor at 1; 40 ns on a 2-core Intel Xeon
        # (benchmarks/results/host_grouped_conv_epyc.csv, host_grouped_conv_split.csv).
        # Groups of 16-64 features take 1.7-2.5x that model's time: the factor holds in full up
        # to 8 features per group and is spread over wider groups' tiles (devicemodels._cpu).
        grouped=0.22,
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
#: Parameters a calibration of the family keeps at their priors: measured directly by a
#: benchmark on more than one machine, and not separable from other effects in the
#: calibration's timings.
FROZEN: dict[str, tuple[str, ...]] = {"cpu": ("transposed_rhs_log", "scalar_sum_log")}
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
        raise InputError(f"unknown family {family!r}; expected one of {sorted(PRIORS)}.")
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
        grouped_log=jnp.array(math.log(pr.get("grouped", 1.0)), jnp.float32),
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
        first_touch_log=jnp.array(math.log(pr.get("first_touch_s_per_byte", 1.0)), jnp.float32),
        transposed_rhs_log=jnp.array(
            math.log(pr.get("transposed_rhs_s_per_element", 1.0)), jnp.float32
        ),
        scalar_sum_log=jnp.array(
            math.log(pr.get("scalar_sum_cycles_per_element", 1.0)), jnp.float32
        ),
        # Main-memory bandwidth over the spec's, where the spec's is an estimate
        # (DeviceSpec.memory_bandwidth_estimated: this machine's CPU); 1 elsewhere.
        bandwidth_log=jnp.array(0.0, jnp.float32),
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
    out["bandwidth_estimated"] = jnp.asarray(
        1.0 if spec.memory_bandwidth_estimated else 0.0, jnp.float32
    )
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
    out["bandwidth_estimated"] = np.float32(1.0 if spec.memory_bandwidth_estimated else 0.0)
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

    #: The per-kernel arrays the time models read (everything but the labels).
    ARRAYS = ("unit", "precision", "passes", "vector_precision", "bytes_scale", "upcast")

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-kernel arrays the time models consume, by name."""
        return {name: getattr(self, name) for name in self.ARRAYS}


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
        # XLA:CPU converts bf16 and fp16 dots and convolutions to fp32 (convert loops around an
        # fp32 YNNPACK call) even where the CPU has bf16 dot instructions (AVX512_BF16: the
        # compiled HLO on a Zen 4 host), so those do not set the rate.
        if want in v and fam != "cpu":
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
    raise InputError(
        f"device {spec.name!r} cannot run {want} matrix math (it has {', '.join(spec.precisions())}).{hint}"
    )


def _vector_choice(spec: DeviceSpec, want: str) -> str:
    v = spec.vector_flops_per_s
    # XLA:CPU's loops compute bf16 and fp16 in fp32 (converts inside the fusion), whatever the
    # CPU's bf16 instructions.
    if spec.family == "cpu" and want in ("bf16", "fp16") and "fp32" in v:
        return "fp32"
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
        raise InputError(f"unknown precision {precision!r}; expected one of {PRECISIONS}.")
    n = len(kernels)
    unit, prec, passes, vprec, scale = (np.zeros(n, np.int32), np.zeros(n, np.int32), np.ones(n, np.float32),
                                        np.zeros(n, np.int32), np.ones(n, np.float32))  # fmt: skip
    labels = []
    upcast = np.zeros(n, np.float32)
    cache: dict[tuple, tuple] = {}
    for i, ((dtype, attr), kind) in enumerate(zip(kernels.requests, kernels.kind, strict=True)):
        want = DTYPE_PRECISION.get(dtype, "fp8" if dtype.startswith("f8") else "fp32")
        is_matrix = KINDS[kind] in ("gemm", "conv")
        if precision == "fp32" and is_matrix and want == "fp32":
            # precision="fp32" asks for strict fp32: no TF32 / single-pass bf16 shortcut.
            attr = "HIGHEST"
        if precision in QUANTIZED and is_matrix:
            scale[i] = PRECISION_BITS[precision] / PRECISION_BITS.get(want, 32)
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
# the time model: one module per family
# ---------------------------------------------------------------------------------------------

#: Each family's ``kernel_times(k, dev, params, res) -> KernelTimes``.
FAMILY_MODELS: dict[str, Callable[..., KernelTimes]] = {
    "gpu": _gpu.kernel_times,
    "tpu": _tpu.kernel_times,
    "cpu": _cpu.kernel_times,
    "npu": _npu.kernel_times,
}


def kernel_times(
    k: Mapping[str, jax.Array],
    dev: Mapping[str, jax.Array],
    params: Mapping[str, jax.Array],
    res: Mapping[str, jax.Array],
    family: str,
) -> KernelTimes:
    """Per-kernel time (seconds per execution) and its parts, from ``family``'s model
    (:mod:`perfjax.devicemodels._gpu`, ``_tpu``, ``_cpu``, ``_npu``). Pure and vectorised.

    Args:
      k: kernel features (:meth:`perfjax.fusion.Kernels.arrays`).
      dev: packed device (:func:`pack`).
      params: correction parameters (:func:`default_params`).
      res: resolved units and precisions (:meth:`Resolved.arrays`).
      family: ``gpu``, ``tpu``, ``cpu`` or ``npu`` (static).
    """
    if family not in FAMILY_MODELS:
        raise InputError(
            f"unknown device family {family!r}; expected one of {tuple(FAMILY_MODELS)}."
        )
    return FAMILY_MODELS[family](k, dev, params, res)


def dispatch_time(params) -> jax.Array:
    """Fixed cost of launching one program (host-side call of the executable)."""
    return jnp.exp(params["dispatch_log"])


def program_overhead(
    params, share: jax.Array, family: str, inputs: jax.Array = 0.0, outputs: jax.Array = 0.0,
    pruned: jax.Array = 0.0,
) -> jax.Array:  # fmt: skip
    """Once-per-call cost of a program: dispatch, and on CPUs ``share`` (0..1, from
    :func:`wake_share`) of the thread pool's wake-up and the cost of handing over its
    ``inputs`` and ``outputs`` and of checking its ``pruned`` arguments (:func:`call_arrays`)."""
    out = dispatch_time(params)
    if family == "cpu":
        out = out + _cpu.program_overhead(params, share, inputs, outputs, pruned)
    return out


def call_arrays(k) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The arrays a program takes and returns and the arguments ``jax.jit`` pruned from it
    (its kernels' ``program_inputs``, ``program_outputs`` and ``pruned_inputs``; 0 where the
    features are absent)."""
    zero = jnp.zeros_like(k["executions"])
    return tuple(
        jnp.max(k.get(name, zero), initial=0.0)
        for name in ("program_inputs", "program_outputs", "pruned_inputs")
    )


def waking_pool_use(k, out: KernelTimes) -> jax.Array:
    """Per kernel, the share of its split that wakes the thread pool once per call: none for
    kernels that never execute (padding) or for library GEMMs and convolutions
    (:func:`perfjax.devicemodels._cpu.waking_pool_use`)."""
    return jnp.where(k["executions"] > 0, _cpu.waking_pool_use(k, out.pool_use), 0.0)


def executed_matrix_flops(k) -> jax.Array:
    """Per kernel, its GEMM or convolution FLOPs per call (0 for other kernels and padding)."""
    return jnp.where(k["executions"] > 0, k["matrix_flops"] * k["executions"], 0.0)


def executed_flops(k) -> jax.Array:
    """Per kernel, its vector and matrix FLOPs per call (0 for padding)."""
    flops = k["vector_flops"] + k["matrix_flops"]
    return jnp.where(k["executions"] > 0, flops * k["executions"], 0.0)


def executed_body_s(k, out: KernelTimes) -> jax.Array:
    """Per kernel, its work's seconds per call (launches excluded; 0 for padding): what the
    caller waits for (:func:`perfjax.devicemodels._cpu.call_wait_share`)."""
    return jnp.where(k["executions"] > 0, (out.time_s - out.launch_s) * k["executions"], 0.0)


def wake_share(
    pool_use_max: jax.Array, matrix_flops: jax.Array, family: str,
    exec_s: jax.Array = 0.0, flops: jax.Array = 0.0, step_scale: jax.Array | float = 1.0,
) -> jax.Array:  # fmt: skip
    """The share (0..1) of the thread pool's wake-up a call pays: on CPUs the largest of its
    kernels' largest :func:`waking_pool_use` (``pool_use_max``),
    :func:`perfjax.devicemodels._cpu.call_wake_share` of its ``matrix_flops`` (the sum of
    :func:`executed_matrix_flops`) and :func:`perfjax.devicemodels._cpu.call_wait_share` of
    the seconds its kernels' work takes (``exec_s``, the sum of :func:`executed_body_s`) and
    its ``flops`` (the sum of :func:`executed_flops`), its first step moved by ``step_scale``
    (:func:`perfjax.devicemodels._cpu.core_time_scale`); elsewhere ``pool_use_max``."""
    if family != "cpu":
        return pool_use_max
    return jnp.maximum(
        jnp.maximum(pool_use_max, _cpu.call_wake_share(matrix_flops)),
        _cpu.call_wait_share(exec_s, flops, step_scale),
    )


def program_times(k, dev, params, res, family: str) -> tuple[KernelTimes, jax.Array]:
    """:func:`kernel_times` and the program's once-per-call cost (dispatch, and the pool's
    wake-up: :func:`wake_share`)."""
    out = kernel_times(k, dev, params, res, family)
    used = jnp.max(waking_pool_use(k, out), initial=0.0)
    exec_s = jnp.sum(executed_body_s(k, out))
    share = wake_share(
        used, jnp.sum(executed_matrix_flops(k)), family, exec_s, jnp.sum(executed_flops(k)),
        _cpu.core_time_scale(params),
    )  # fmt: skip
    return out, program_overhead(params, share, family, *call_arrays(k))


def total_time(k, dev, params, res, family: str) -> jax.Array:
    """Program time on one stream: call overhead + sum of kernel times x executions."""
    out, overhead_s = program_times(k, dev, params, res, family)
    return overhead_s + jnp.sum(out.time_s * k["executions"])


program_times_jit = jax.jit(program_times, static_argnames=("family",))
