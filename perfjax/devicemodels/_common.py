"""Pieces every device family's time model shares: smooth helpers, the per-kernel rates, tiled
GEMM work, vector and memory time, overlap, launch costs and energy.

A family's model (``_gpu``, ``_tpu``, ``_cpu``, ``_npu``) reads top to bottom as that family's
story and calls these pieces; every piece is a pure ``jnp`` expression over all kernels, so
``jax.jit``, ``jax.grad`` and ``jax.vmap`` apply to the whole model.

Per kernel::

    t = smoothmax_q(t_compute, t_memory) x device factor + t_launch

* ``t_compute`` = matrix FLOPs (padded to the family's tiles) / (peak at the kernel's precision x
  class efficiency x parallel utilisation) + vector FLOPs (transcendentals weighted) / (vector
  peak x efficiency x occupancy).
* ``t_memory`` = boundary bytes / effective bandwidth, a harmonic blend of cache and main
  memory bandwidth by how much of the working set fits in the last on-chip cache.
* ``smoothmax_q(a, b) = (a^q + b^q)^(1/q)``: the binding resource dominates, the other keeps a
  gradient. ``q`` is a parameter (large q: perfect overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from perfjax._dtypes import PRECISIONS
from perfjax.fusion._kernels import KINDS

Arrays = Mapping[str, jax.Array]

P = {p: i for i, p in enumerate(PRECISIONS)}
CONV = KINDS.index("conv")
GEMM = KINDS.index("gemm")
REDUCE = KINDS.index("reduce")
ELEMENTWISE = KINDS.index("elementwise")
_VECTOR_CLASS = KINDS.index("elementwise")
#: Share of the power above idle drawn by arithmetic at full rate (the rest by memory traffic).
COMPUTE_POWER_SHARE = 0.7
#: Split-K keeps at least this much of the reduction dimension per slice.
SPLIT_K_MIN = 256.0


class KernelTimes(NamedTuple):
    """Per-kernel outputs of a family's time model (arrays over kernels; a JAX pytree)."""

    #: Seconds per execution: overlapped compute and memory, device factor, plus launch costs.
    time_s: jax.Array
    compute_s: jax.Array
    memory_s: jax.Array
    launch_s: jax.Array
    #: Share (0..1) of a kernel split over a CPU thread pool (0 on other families).
    pool_use: jax.Array
    energy_j: jax.Array
    #: The peak the kernel's main work runs at (matrix or vector unit), FLOP/s.
    peak_flops_per_s: jax.Array
    #: FLOPs / (time x peak).
    utilization: jax.Array
    #: Busy share of the units the work is spread over (waves, padding, occupancy).
    parallel_util: jax.Array


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


def safe_div(a: jax.Array, b: jax.Array, tiny: float = 1e-30) -> jax.Array:
    """``a / max(b, tiny)`` whose gradient stays finite where ``b`` is (or underflows to) 0."""
    ok = b > tiny
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), a / tiny)


def pick(table: jax.Array, index: jax.Array) -> jax.Array:
    """``table[index]`` for one device (table ``[P]``), or row-wise for per-kernel devices (``[K, P]``)."""
    if table.ndim == 1:
        return table[index]
    return jnp.take_along_axis(table, index[:, None], axis=1)[:, 0]


def ceil_to(x: jax.Array, multiple: jax.Array) -> jax.Array:
    return jnp.ceil(x / multiple) * multiple


def pow2ceil(x: jax.Array) -> jax.Array:
    return 2.0 ** jnp.ceil(jnp.log2(jnp.maximum(x, 1.0)))


def tile_choice(x: jax.Array, lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The output tile a GPU convolution library picks along one dimension of extent ``x``:
    among ``hi``, ``hi/2``, ``hi/4`` and ``hi/8`` (not below ``lo``), the one that pads ``x``
    least (the larger on a tie). Returns (tile, padded extent)."""
    x, lo, hi = jnp.broadcast_arrays(x, lo, hi)
    cands = hi[..., None] / 2.0 ** jnp.arange(4.0)
    padded = jnp.ceil(x[..., None] / cands) * cands
    padded = jnp.where(cands >= lo[..., None], padded, 1e30)
    i = jnp.argmin(padded, axis=-1)[..., None]
    return (jnp.take_along_axis(cands, i, -1)[..., 0], jnp.take_along_axis(padded, i, -1)[..., 0])


# ---------------------------------------------------------------------------------------------
# shared pieces of the model
# ---------------------------------------------------------------------------------------------


class Rates(NamedTuple):
    """What every family starts from: clean features and the unit rates for each kernel."""

    k: dict[str, jax.Array]  # features, counts clamped at 0
    kind: jax.Array
    compute_eff: jax.Array  # class efficiency of the kernel's compute
    memory_eff: jax.Array  # class efficiency of its memory traffic
    peaks: jax.Array  # peak of the unit its matrix FLOPs run on, per emulation pass
    vec_peak: jax.Array  # vector-unit peak at the vector precision


def rates(k: Arrays, dev: Arrays, params: Arrays, res: Arrays) -> Rates:
    """Features with counts clamped at 0 (a zero-size kernel has none), class efficiencies and
    the peaks of the units each kernel's work runs on."""
    kind = k["kind"]
    k = {name: (jnp.maximum(v, 0.0) if name != "kind" else v) for name, v in k.items()}
    peaks = jnp.where(
        res["unit"] == 0,
        pick(dev["matrix_peaks"], res["precision"]),
        pick(dev["vector_peaks"], res["precision"]),
    )
    return Rates(
        k=k,
        kind=kind,
        compute_eff=jax.nn.sigmoid(params["compute_eff_logit"])[kind],
        memory_eff=jax.nn.sigmoid(params["memory_eff_logit"])[kind],
        peaks=peaks / res["passes"],
        vec_peak=pick(dev["vector_peaks"], res["vector_precision"]),
    )


class MatrixWork(NamedTuple):
    """How a kernel's matrix FLOPs spread over the device's units."""

    x: jax.Array  # units' worth of tiles (waves = ceil(x))
    per_unit: jax.Array  # units the tiles spread over (sharpness of the wave staircase)
    matrix_util: jax.Array  # utilisation inside a tile (K depth, fill, register blocks)
    padded: jax.Array  # FLOPs of the padded tiles
    tm: jax.Array  # output tile in M
    tn: jax.Array  # output tile in N


def tiled_gemm(
    k: Arrays, params: Arrays, kind: jax.Array, cores: jax.Array, *, lo: float, hi: jax.Array,
    lo_n: jax.Array, tile_choice_for_conv: bool = False, split_conv: bool = True,
    k_half: jax.Array | None = None,
) -> MatrixWork:  # fmt: skip
    """GEMM/conv work as output tiles spread over ``cores`` in waves (GPUs, CPUs, NPUs).

    Output tiles shrink to fit skinny problems (as GEMM libraries choose smaller tiles), never
    below ``lo`` (``lo_n`` in N); work is the padded tiles. With fewer tiles than units,
    libraries split K over idle units (split-K) while each slice keeps at least
    :data:`SPLIT_K_MIN` of K (``split_conv=False``: convolutions never split K).
    ``tile_choice_for_conv``: convolutions take the tile that pads least (:func:`tile_choice`)
    instead of the next power of two. ``k_half``: per kernel, the K of half efficiency
    (default: the fitted ``k_half_log`` of its class).
    """
    b, m, n, kk = k["gemm_b"], k["gemm_m"], k["gemm_n"], k["gemm_k"]
    tm = jnp.clip(pow2ceil(m), lo, hi)
    tn = jnp.clip(pow2ceil(n), lo_n, jnp.maximum(hi, lo_n))
    pm, pn = jnp.ceil(m / tm) * tm, jnp.ceil(n / tn) * tn
    if tile_choice_for_conv:
        tm_c, pm_c = tile_choice(m, lo, hi)
        tn_c, pn_c = tile_choice(n, lo_n, jnp.maximum(hi, lo_n))
        conv = kind == CONV
        tm, pm = jnp.where(conv, tm_c, tm), jnp.where(conv, pm_c, pm)
        tn, pn = jnp.where(conv, tn_c, tn), jnp.where(conv, pn_c, pn)
    tiles = b * jnp.ceil(m / tm) * jnp.ceil(n / tn)
    padded = 2.0 * b * pm * pn * kk
    split = jnp.clip(jnp.minimum(cores / jnp.maximum(tiles, 1.0), kk / SPLIT_K_MIN), 1.0, None)
    if not split_conv:
        split = jnp.where(kind == CONV, 1.0, split)
    k_slice = kk / split
    if k_half is None:
        k_half = jnp.exp(params["k_half_log"])[kind]
    matrix_util = k_slice / (k_slice + k_half)
    return MatrixWork(tiles * split / cores, cores, matrix_util, padded, tm, tn)


class MatrixTime(NamedTuple):
    t_matrix: jax.Array
    wave_util: jax.Array
    pad_factor: jax.Array


def matrix_time(
    k: Arrays, params: Arrays, res: Arrays, r: Rates, work: MatrixWork, peaks: jax.Array,
    serial_share: jax.Array | float = 1.0, grouped_share: jax.Array | float = 1.0,
) -> MatrixTime:  # fmt: skip
    """Matrix FLOPs (padded) over the matrix rate: peak x class efficiency x utilisation x
    per-precision efficiency, with the learned convolution, grouped and fallback factors.
    ``grouped_share``: the share (0..1) of a grouped convolution's time the grouped factor
    applies to (1: all of it)."""
    kind, b = r.kind, k["gemm_b"]
    # A wave is as slow as its fullest unit: utilisation x / ceil(x), with a staircase that is
    # smooth over about one tile (so time never drops when a dimension grows).
    wave_util = work.x / soft_ceil(jnp.maximum(work.x, 1e-9), sharpness=work.per_unit)
    matrix_util = work.matrix_util * wave_util
    # Padding waste is reported as lost utilisation: time uses the padded work.
    pad_factor = work.padded / jnp.maximum(k["matrix_flops"], 1.0)
    matrix_rate = peaks * r.compute_eff * matrix_util * serial_share
    # Per-precision matrix-unit efficiency (vector-unit GEMMs keep the class efficiency alone).
    matrix_rate = jnp.where(
        res["unit"] == 0,
        matrix_rate
        * jnp.exp(params["precision_eff_log"] + params["matrix_unit_eff_log"])[res["precision"]],
        matrix_rate,
    )
    # Convolution libraries use fast algorithms (Winograd, FFT) that need fewer multiplies than
    # the direct FLOP count: a learned speed-up over the direct count (prior 1: none).
    matrix_rate = jnp.where(
        kind == CONV, matrix_rate * jnp.exp(params["conv_speedup_log"]), matrix_rate
    )
    # Grouped factor g on a share s of the time: t / g over s, t over the rest.
    g = jnp.exp(params["grouped_log"])
    grouped = g / (g + (1.0 - g) * grouped_share)
    matrix_rate = jnp.where((kind == CONV) & (b > 1.5), matrix_rate * grouped, matrix_rate)
    matrix_rate = jnp.where(
        k["fallback"] > 0.5, matrix_rate * jnp.exp(params["fallback_log"]), matrix_rate
    )
    is_matrix = k["matrix_flops"] > 0
    t_matrix = jnp.where(is_matrix, safe_div(k["matrix_flops"] * pad_factor, matrix_rate), 0.0)
    return MatrixTime(t_matrix, wave_util, pad_factor)


def vector_time(
    k: Arrays,
    params: Arrays,
    r: Rates,
    vec_peak: jax.Array,
    cores: jax.Array,
    work_occupancy: bool = False,
    trans_occupancy: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(vector time, occupancy): vector FLOPs and weighted transcendentals over the vector peak;
    occupancy grows with the elements available per core. ``work_occupancy``: the FLOPs' rate
    has an occupancy of the FLOPs by their count instead (at least one per element), so that a
    loop's fixed cost does not grow with its arithmetic per element (a CPU loop's); the weighted
    transcendentals run at ``trans_occupancy`` of the peak (a CPU's: one core's share unless the
    loop is split over its pool), or with the elements' occupancy where it is not given; the
    occupancy returned is the elements' (for the memory traffic)."""
    half = cores * jnp.exp(params["parallel_half_log"])
    occupancy_x = k["out_elements"] / half
    occupancy = occupancy_x / (1.0 + occupancy_x)
    vector_eff = jax.nn.sigmoid(params["compute_eff_logit"][_VECTOR_CLASS])
    # Transcendentals weighted by their cost under the compiler (see FusionPolicy).
    vec_work = k["vector_flops"] + k["transcendental_work"] * jnp.exp(
        params["transcendental_cost_log"]
    )
    is_matrix = k["matrix_flops"] > 0
    vec_rate = vec_peak * jnp.where(is_matrix, vector_eff, r.compute_eff)
    if work_occupancy:
        work_x = jnp.maximum(k["out_elements"], k["vector_flops"]) / half
        flops_t = safe_div(k["vector_flops"], vec_rate * work_x / (1.0 + work_x))
        trans_occ = occupancy if trans_occupancy is None else trans_occupancy
        trans_t = safe_div(vec_work - k["vector_flops"], vec_rate * trans_occ)
        return flops_t + trans_t, occupancy
    return safe_div(vec_work, vec_rate * occupancy), occupancy


class Memory(NamedTuple):
    """Memory traffic of each kernel and the bandwidths it sees."""

    t_memory: jax.Array
    bytes: jax.Array  # boundary bytes (scaled by a quantized precision)
    mem_bw: jax.Array  # main-memory bandwidth x class efficiency
    cache_bw: jax.Array  # last-level cache bandwidth x class efficiency
    sharpness: jax.Array  # of the cache-fit sigmoid


def fits_in_cache(size_bytes: jax.Array, dev: Arrays, sharpness: jax.Array) -> jax.Array:
    """Smooth share (0..1) of ``size_bytes`` that the last-level cache holds."""
    log_ratio = jnp.log(jnp.maximum(dev["cache_bytes"], 1.0)) - jnp.log(
        jnp.maximum(size_bytes, 1.0)
    )
    return jnp.where(dev["cache_bytes_per_s"] > 0, jax.nn.sigmoid(sharpness * log_ratio), 0.0)


def memory_time(
    k: Arrays, dev: Arrays, params: Arrays, res: Arrays, r: Rates, occupancy: jax.Array
) -> Memory:
    """Boundary bytes over a harmonic blend of cache and main-memory bandwidth by the working
    set's fit; program inputs come from main memory unless all of them stay resident."""
    bytes_ = (k["bytes_read"] + k["bytes_written"]) * res["bytes_scale"]
    sharp = jnp.exp(params["cache_sharpness_log"])
    in_cache = fits_in_cache(jnp.maximum(bytes_, 1.0), dev, sharp)
    mem_bw = dev["memory_bytes_per_s"] * r.memory_eff
    cache_bw = jnp.maximum(dev["cache_bytes_per_s"], dev["memory_bytes_per_s"]) * r.memory_eff
    # Program inputs (weights, data) come from main memory unless all of them stay resident in
    # the last-level cache between executions; what a previous kernel produced may still be in
    # the cache when the kernel's working set fits.
    resident = fits_in_cache(k["program_input_bytes"], dev, sharp)
    first_touch = jnp.minimum(k["input_bytes"] * res["bytes_scale"], bytes_) * (1.0 - resident)
    t_memory = first_touch / mem_bw + (bytes_ - first_touch) * (
        in_cache / cache_bw + (1.0 - in_cache) / mem_bw
    )
    # Memory parallelism: small vector kernels cannot keep enough requests in flight (GEMMs
    # stream their operands through all units; their parallelism is in the compute term).
    is_matrix = k["matrix_flops"] > 0
    t_memory = jnp.where(is_matrix, t_memory, t_memory / jnp.maximum(occupancy, 1e-3) ** 0.5)
    return Memory(t_memory, bytes_, mem_bw, cache_bw, sharp)


def overlap(t_compute: jax.Array, t_memory: jax.Array, params: Arrays) -> jax.Array:
    """Compute and memory overlapped: ``smooth_max`` with the learned sharpness."""
    return smooth_max(t_compute, t_memory, 1.0 + jnp.exp(params["overlap_log"]))


def launch_time(
    k: Arrays, dev: Arrays, params: Arrays, kind: jax.Array, bytes_: jax.Array, like: jax.Array,
    *, step_latency_scale: float, callback_s: float,
) -> jax.Array:  # fmt: skip
    """Per-kernel launch cost, plus a solver's dependent steps (each ``step_latency_scale`` x a
    launch) and host callbacks (a round trip of ``callback_s`` plus operands over the link)."""
    t_launch = dev["launch_overhead_s"] * jnp.exp(params["launch_log"])[kind] * jnp.ones_like(like)
    t_launch = t_launch + k.get("serial_steps", jnp.zeros_like(like)) * (
        dev["launch_overhead_s"] * step_latency_scale
    )
    trips = k.get("host_round_trips", jnp.zeros_like(like))
    link = jnp.where(dev["host_link_bytes_per_s"] > 0, dev["host_link_bytes_per_s"], 1.0)
    link_s = jnp.where(dev["host_link_bytes_per_s"] > 0, bytes_ / link, 0.0)
    return t_launch + jnp.where(trips > 0, trips * callback_s + link_s, 0.0)


def device_factor(params: Arrays, kind: jax.Array) -> jax.Array:
    """Device-specific time factor per kernel class (calibrated device effects; 1 by default)."""
    return jnp.exp(params["kind_time_log"])[kind]


def finish(
    k: Arrays, dev: Arrays, *, time: jax.Array, compute_s: jax.Array, memory_s: jax.Array,
    launch_s: jax.Array, bytes_: jax.Array, peaks: jax.Array, vec_peak: jax.Array,
    matrix_parallel: jax.Array, occupancy: jax.Array, pool_use: jax.Array | None = None,
) -> KernelTimes:  # fmt: skip
    """Energy (idle power over the time, plus dynamic power shared between arithmetic and
    memory traffic), utilisation and the record of one family's per-kernel outputs."""
    is_matrix = k["matrix_flops"] > 0
    flops = k["matrix_flops"] + k["vector_flops"]
    best_peak = jnp.maximum(
        jnp.max(dev["matrix_peaks"], axis=-1), jnp.max(dev["vector_peaks"], axis=-1)
    )
    dynamic_w = jnp.maximum(dev["tdp_w"] - dev["idle_w"], 0.0)
    pj_per_flop = COMPUTE_POWER_SHARE * dynamic_w / best_peak
    pj_per_byte = (1 - COMPUTE_POWER_SHARE) * dynamic_w / dev["memory_bytes_per_s"]
    energy = flops * pj_per_flop + bytes_ * pj_per_byte + dev["idle_w"] * time
    peak = jnp.where(is_matrix, peaks, vec_peak)
    return KernelTimes(
        time_s=time,
        compute_s=compute_s,
        memory_s=memory_s,
        launch_s=launch_s,
        pool_use=jnp.zeros_like(time) if pool_use is None else pool_use,
        energy_j=energy,
        peak_flops_per_s=peak,
        utilization=flops / jnp.maximum(time * peak, 1e-30),
        parallel_util=jnp.where(is_matrix, matrix_parallel, occupancy),
    )
