"""The CPU time model, as XLA:CPU runs a program: GEMM micro-kernels blocking M and N in
registers, operand packing, kernels split over a thread pool (or kept on one core), and the
pool's hand-off and wake-up costs.

Example:
  >>> import perfjax
  >>> from perfjax.fusion import fuse
  >>> from perfjax.devicemodels import default_params, device, pack, resolve
  >>> g = perfjax.analyze(lambda a, b: a @ b, (jnp.ones((256, 256)), jnp.ones((256, 256))))
  >>> k, spec = fuse(g, "cpu"), device("xeon-8480")
  >>> t = kernel_times(k.arrays(), pack(spec), default_params("cpu"), resolve(k, spec).arrays())
  >>> float(t.pool_use[0]) > 0.5   # a 256^3 GEMM is split over the pool
  True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from perfjax.devicemodels._common import (
    CONV,
    ELEMENTWISE,
    GEMM,
    REDUCE,
    Arrays,
    KernelTimes,
    device_factor,
    finish,
    fits_in_cache,
    launch_time,
    matrix_time,
    memory_time,
    overlap,
    rates,
    safe_div,
    tiled_gemm,
    vector_time,
)

_MIN_TILE = 8.0
#: The fewest rows a GEMM's arithmetic is priced at: below 8 rows XLA:CPU streams the weights
#: through a narrower micro-kernel, so 1, 2 and 4 rows take about one time and 8 rows 1.6-2x it
#: (benchmarks/results/host_gemm_rows.csv on a Xeon, host_gemm_rows_epyc.csv on an EPYC).
#: Priced at 8 rows, matrix-vector products came out 2x too slow on the EPYC: 240 programs
#: nobody chose, 21.0 / 67% -> 21.0 / 58% and 18.7 / 49% -> 18.1 / 44% median / p90 APE.
_MIN_ROWS = 4.0
#: A CPU's register-blocked GEMM tiles reach 4x the spec's matrix tile.
_TILE_SCALE = 4.0
#: The K at which a grouped (depthwise) convolution reaches half its efficiency: the prior
#: ``k_half``, never fitted. A fitted K-efficiency shared with them priced dense convolutions
#: of few input features several times too slow: the fit split the depthwise layers' ~40x
#: lower rate between ``grouped_log`` and ``k_half``, which rose to ~60 where dense 1x1
#: convolutions reach 60-90 GFLOP/s on one core from K = 16 and are bound by their output
#: below (benchmarks/results/host_conv_k_epyc.csv).
_GROUPED_K_HALF = 16.0
#: Convolutions XLA:CPU leaves to a slower path (Kernels.fallback: Eigen's for few features,
#: YNNPACK's from an odd number of input features, a window wider than its input) reach half
#: their rate at this K (taps x input features), not at the fitted ``k_half``, and pad their
#: output features to 16: on a 2-core EPYC, Eigen's 3x3 and 5x5 convolutions of 1-16 into 8
#: or 16 features run at 2-17 GFLOP/s from one input feature, 6-38 from 3, 18-105 from 8 and
#: 26-111 from 16, and at half the rate into 8 features as into 16
#: (benchmarks/results/host_conv_fallback_epyc.csv).
_FALLBACK_K_HALF = 150.0
#: A 1x1 convolution XLA:CPU runs through YNNPACK's convolution (Kernels.pointwise_conv) reaches
#: half its rate at this many output features (a GEMM: at the fitted ``mn_half``, ~2): on a
#: 2-core EPYC, over 3136 and 12544 pixels of 16-256 features, into 16 outputs at 0.35-0.8x
#: the rate into 128 (22-65 GFLOP/s against 60-95), where ``x @ w`` over the same rows runs at
#: up to 190 and 3x3 convolutions into 16 at 0.8-0.95x their rate into 64
#: (benchmarks/results/host_conv_pointwise_epyc.csv).
_POINTWISE_N_HALF = 9.0
_FALLBACK_MIN_N = 16.0
#: A grouped (depthwise) convolution over a dilated input (Kernels.dilated_input: a strided
#: one's input gradient) takes this many times as long as the undilated one over as many
#: positions: 1.46-2.31x, geometric mean 1.7, over 16 cases of 16 and 48 features, 3x3 and
#: 5x5 filters on a 2-core EPYC (benchmarks/results/host_conv_transpose_epyc.csv).
_DILATED_INPUT_FACTOR = 1.67
#: A dense convolution whose window is wider than its input (Kernels.wide_window) runs at a
#: flat share of the chip's vector peak (the spec's, not the calibrated clock's) over the taps
#: on real elements, whatever its features and K: 3.6-6.0 GFLOP/s on a 2-core EPYC (332 GFLOP/s
#: fp32 by its spec) from 32 and 128 features, 3x3 and 5x5 filters over 2x2 and 4x4 maps
#: (benchmarks/results/host_conv_fallback_epyc.csv; the level that fits its 12 cases).
_WIDE_WINDOW_EFF = 0.012
#: Transcendentals chained ``depth`` deep in one loop (Kernels.chained_transcendentals per
#: output element) cost ``depth ** _CHAIN_EXPONENT - 1`` exps more each: over 1M floats on a
#: 2-core EPYC, chains of 5 tanh, sigmoid or exp(-|x|) took 2.1-2.2x the time of chains of 3
#: (5/3 if each function cost the same; 5/3 * sqrt(5/3) = 2.15)
#: (benchmarks/results/host_chain_depth_epyc.csv, host_chain_mixed_epyc.csv).
_CHAIN_EXPONENT = 0.5
#: A solver's dependent steps are calls inside one LAPACK routine: a tenth of a launch each.
_STEP_LATENCY_SCALE = 0.1
#: A fused attention's scratch blocks are written once and read 1.5 times each on average:
#: 4 writes and 6 reads over 4 blocks (see :func:`scratch_time`).
_SCRATCH_PASSES = 2.5
#: A Python callback on a CPU: only the Python call remains (assumed, not measured).
_CALLBACK_S = 5e-6
#: A GEMM's FLOPs per loop element when XLA:CPU decides whether to split it over its pool.
_FLOPS_PER_TASK_ELEMENT = 32.0
#: A loop's bytes per element when XLA:CPU decides whether to split it (an add's 12: a loop is
#: split by the bytes it moves, not by its elements: the step is at ~500 KB for add, triad and
#: scale alike, at 43696, 43696 and 65536 elements; docs/calibration/host_quick.csv).
_BYTES_PER_TASK_ELEMENT = 12.0
#: A reduction is split over the pool at about a quarter of the bytes an elementwise loop is:
#: a row or column sum splits between 32768 and 36864 fp32 inputs (128-144 KB read), ``x * 1.5``
#: between 61440 and 65536 elements (480-512 KB moved); benchmarks/host_reduce_split.py.
_REDUCE_SPLIT_SCALE = 3.5
#: A matrix-vector product's bytes, scaled, when XLA:CPU decides whether to split it: M = 1
#: products jump between 625 and 791 KB of weights, a loop at ~450 KB moved (1/1.5);
#: benchmarks/host_gemm_split.py.
_MATVEC_SPLIT_SCALE = 0.65
#: A GEMM of 2-7 rows (weights streamed, see ``_MIN_ROWS``) is split over the pool by its
#: FLOPs per ``_FLOPS_PER_TASK_ELEMENT`` plus its bytes per ``_BYTES_PER_TASK_ELEMENT``, the two
#: added (4-row GEMMs step at ~36-52 K of that sum whatever their K and N; by the larger alone
#: they would split at 1.5-2x the weights they do), and only one of at least
#: ``_GEMM_SPLIT_TILES`` tiles of ``_GEMM_TILE_COLUMNS`` output columns, its work scaled down
#: below: 2 x 784 x 128 is not split where 2 x 128 x 784 (the same FLOPs and bytes) is, nor
#: 2 x 2048 x 64 where 2 x 512 x 256 is, on a 2-core EPYC
#: (benchmarks/results/host_gemm_split_shapes_epyc.csv). GEMMs of 8 rows and more split by the
#: larger of the two (K = 2-8 GEMMs step with a loop's bytes written on a Xeon: the sum would
#: split them at 0.6x those; host_gemm_split.csv).
_GEMM_TILE_COLUMNS = 64.0
_GEMM_SPLIT_TILES = 3.0
#: A generic dot's FLOPs per loop element when it decides whether to split (XLA:CPU's generic
#: ``dot``, Eigen's contraction, runs a weight gradient ``xᵀ·dy``; ``Kernels.generic_dot``): on
#: a 2-core EPYC it splits from 65536 multiply-adds (K = 4-64, 64 x 128 to 512 x 512 layers),
#: 131072 at K = 2, where the library's GEMM rule (``_FLOPS_PER_TASK_ELEMENT``) splits from
#: ~600000; a split costs 10-17 us (7-10 us -> 17-25 us on two cores), the pool's hand-off
#: rather than a library GEMM's wake-up (:func:`waking_pool_use`)
#: (benchmarks/results/host_generic_dot_split_epyc.csv).
_GENERIC_DOT_FLOPS_PER_TASK_ELEMENT = 3.0
#: The CPU priors' GEMM efficiency and clock scale (``PRIORS["cpu"]`` takes them from here):
#: the GEMM speed the transposed-rhs cost is stated at (:func:`gemm_speed_log`).
PRIOR_GEMM_EFF = 0.6
PRIOR_CLOCK_SCALE = 1.3
#: A cache line: what a loop pays per element read across rows (Kernels.strided_elements).
_LINE_BYTES = 64.0
#: Cycles (of the spec's clock) per element a weight gradient's generic dot reads across rows
#: (Kernels.strided_elements of a GEMM): 0.9-1.9 ns, median 1.55, more than the same product
#: in the library's layout for rows a multiple of 2 KiB and a batch of 1024, on a 2.6 GHz EPYC
#: (benchmarks/results/host_weight_gradient_epyc.csv).
_GENERIC_DOT_STRIDED_CYCLES = 4.0
#: XLA:CPU's cost of one task of a loop whose FLOPs exceed its bytes (its parallel task
#: assignment: FLOPs + 2 x transcendentals + 10 x bytes accessed, a task per 100000, so two
#: from 200000): a chain of 8 multiply-adds per float32 element splits from 4096 elements
#: (96 per element), one of 16 from 2048, ``erfc`` (an exact GELU) from 2048, where a loop of
#: few operations per element splits only from 65536 (compiled HLO's
#: ``outer_dimension_partitions``, jaxlib 0.10).
_TASK_COST = 100000.0
#: How sharply (per unit of log elements) XLA:CPU's task splitting switches on.
_FORK_SHARPNESS = 20.0
#: A call whose GEMMs and convolutions add up to more FLOPs than this pays part of the pool's
#: wake-up even where nothing is split: fp32 GEMMs and matrix-vector products step between 128
#: and 170 KFLOP, a chain of 32^3 GEMMs by its second or third (benchmarks/results/
#: host_call_wake_epyc.csv). bf16 GEMMs (65-93 KFLOP) and Eigen's spatial convolutions (5-18
#: KFLOP) step earlier; not modelled.
_CALL_WAKE_FLOPS = 1.4e5
#: That part: the step is 10-15 us where a split loop's wake-up (``wake_log``) is 40-50 us.
_CALL_WAKE_SHARE = 0.3
#: XLA:CPU runs a call whose HLO counts fewer FLOPs than this (XLA's count: transcendentals
#: are not FLOPs) on the caller's thread, and any other on a worker of its client while the
#: caller waits: ``x + x`` over 512 floats runs inline, over 1024 on a worker; ``exp``,
#: ``tanh`` and their chains, of no FLOPs, inline at any size (jax.profiler: the thread each
#: thunk ran on; benchmarks/results/host_call_wait_epyc.csv).
_INLINE_FLOPS = 1000.0
#: A caller waiting for a worker falls asleep once the call's kernels take longer than about
#: the first of these (seconds), and deeper from the second: its wake-up then costs it these
#: shares of the pool's (``wake_log``). On a 2-core EPYC a sigmoid over 4096-5120 floats
#: (2.3-2.6 us of kernel) took 7 us a call, over 8192-24576 (4-10 us) 24 us, and from 28672
#: (12 us) 25-32 us more than its kernel; GEMMs alike (64^3 24 us, 96^3 51 us), where ``exp``
#: run inline took its kernel and 6-7 us (benchmarks/results/host_call_wait_epyc.csv). The
#: first step is the caller's spinning, code on a core: it comes sooner on a faster core
#: (:func:`core_time_scale`). The same VM on a Zen 5 EPYC, whose calibrations fit a 1.3-1.7x
#: higher clock scale, took 5.4 us a call at 1.6 us of kernel, 9.4 at 1.9 and 21 at 2.3
#: (a step at ~2 us), where its second step stayed at ~9-10 us (24 -> 35 us a call from 8 to
#: 10.5 us of kernel; host_call_wait_zen5.csv): that one is not scaled.
_WAIT_STEPS_S = (3e-6, 11e-6)
_WAIT_SHARES = (0.45, 0.4)
#: How sharply (per unit of log seconds) the caller's sleep switches on.
_WAIT_SHARPNESS = 10.0
#: What XLA:CPU's thunk executor costs per kernel, not calibrated (the calibration's
#: ``launch_log`` prices the rest of a kernel's fixed cost): transformers models' calls took
#: 0.2-0.8 us per thunk more than their thunks' profiled durations and the call's fixed costs,
#: median 0.6 (benchmarks/results/host_thunk_costs_epyc.csv). Kept out of the fit: a
#: calibration that prices the caller's wait (call_wait_share) has little else to tell a
#: call's fixed costs from its kernels' (a suite of mostly one-kernel programs), and had put
#: ~0.15 us on a loop, transformers models 0.1 (log) under. It is the executor's code on a
#: core, so it scales with the one measure of a core's speed a calibration fits, its clock
#: scale (:func:`thunk_time`): this is its cost at :data:`_THUNK_CLOCK_SCALE`, the scale that
#: processor's calibrations fit (1.46-1.48). A Zen 5 whose calibrations fit 2.1-2.4 ran the
#: same models' calls 10-30% faster and the largest (t5, mbart: ~300 thunks) at 0.11-0.15 us per
#: thunk outside the thunks against 0.21-0.40 (host_thunk_costs_zen5.csv).
_THUNK_S = 0.5e-6
_THUNK_CLOCK_SCALE = 1.47
#: What a jitted call costs per array it takes and per array it returns, beyond its kernels:
#: each is checked, wrapped and handed over on every call. 0.32 us per positional input and
#: 0.42 per input in a dict (a parameter pytree); 1.35 us per output, nearly all its own loop
#: (~1.3 predicted: its launch and the executor's _THUNK_S), on a 2-core EPYC
#: (benchmarks/results/host_call_buffers_epyc.csv). Model
#: parameters and a training step's results are dozens to hundreds of arrays: ~20-200 us a call.
CALL_INPUT_S = 0.4e-6
CALL_OUTPUT_S = 0.05e-6
#: What a call costs per argument ``jax.jit`` pruned from the program (one it never reads):
#: still checked and flattened on every call, not handed over. 0.17 us per array on a 2-core
#: EPYC, ``xs[0][0] + 1`` over 1-256 arrays of 16 floats
#: (benchmarks/results/host_call_buffers_epyc.csv, ``unused_inputs``).
CALL_PRUNED_INPUT_S = 0.17e-6
#: One call's dispatch beside them, the CPU prior's ``dispatch_s`` (a 16-float add's call is
#: ~7 us here with its input and output, benchmarks/run_overhead.py): a calibration's dispatch
#: scales CALL_INPUT_S and CALL_OUTPUT_S by its ratio to this.
DISPATCH_S = 4e-6


def packing_time(
    k: Arrays, dev: Arrays, params: Arrays, res: Arrays, bytes_: jax.Array, mem_bw: jax.Array,
    cache_bw: jax.Array, sharpness: jax.Array,
) -> jax.Array:  # fmt: skip
    """Operand packing of GEMMs with M > 1 and N > 1 (XLA:CPU calls a matrix-vector kernel
    otherwise): the K x N operand is read and written once more, at the bandwidth of the level
    it fits in. With a few rows (M small) it dominates: 2048^2 fp32 weights cost ~2 ms here
    while the arithmetic of M = 4 takes 0.3 ms (docs/calibration/host_micro.csv). Upcast
    operands (bf16 without bf16 instructions) are converted while packed: a slower pass (a
    learned factor), which happens even where nothing is packed (a matrix-vector product)."""
    b, m, n, kk = k["gemm_b"], k["gemm_m"], k["gemm_n"], k["gemm_k"]
    # Element size from the GEMM's reads (A: M x K, B: K x N).
    elem = k["bytes_read"] * res["bytes_scale"] / jnp.maximum(b * kk * (m + n), 1.0)
    pack_bytes = jnp.where(k["matrix_flops"] > 0, 2.0 * b * kk * n * elem, 0.0)
    pack_bytes = jnp.minimum(pack_bytes, 2.0 * bytes_)
    t_pack = pass_time(pack_bytes, dev, mem_bw, cache_bw, sharpness)
    t_convert = t_pack * jnp.exp(params["upcast_pack_log"])
    t_pack = jnp.where((m >= _MIN_TILE) & (n > 1.5), t_pack * jnp.exp(params["pack_log"]), 0.0)
    return jnp.where(res["upcast"] > 0.5, t_pack + t_convert, t_pack)


def pass_time(
    bytes_: jax.Array, dev: Arrays, mem_bw: jax.Array, cache_bw: jax.Array, sharpness: jax.Array,
    working_set: jax.Array | None = None,
) -> jax.Array:  # fmt: skip
    """An extra pass over ``bytes_`` (read and write counted), at the bandwidth of the level
    ``working_set`` (default: ``bytes_``) fits in."""
    fit = fits_in_cache(bytes_ if working_set is None else working_set, dev, sharpness)
    return bytes_ * (fit / cache_bw + (1.0 - fit) / mem_bw)


def copy_time(
    k: Arrays, dev: Arrays, mem_bw: jax.Array, cache_bw: jax.Array, sharpness: jax.Array
) -> jax.Array:
    """Operands copied into a GEMM's layout before it (``Kernels.copied_bytes``: attention
    over (batch, tokens, heads, head size) inputs): read and written once more."""
    copied = k.get("copied_bytes", jnp.zeros_like(k["bytes_read"]))
    return pass_time(2.0 * copied, dev, mem_bw, cache_bw, sharpness)


def scratch_time(
    k: Arrays, dev: Arrays, mem_bw: jax.Array, cache_bw: jax.Array, sharpness: jax.Array
) -> jax.Array:
    """A fused attention's score-sized scratch (``Kernels.scratch_bytes``: four blocks), at
    the bandwidth of the level the whole scratch fits in: each block written once and the
    four read six times in all (the fused computation's passes: the scaled scores read by the
    max and the exponential, the exponentials by the sum and the normalisation, the products
    of the first and last by their next pass)."""
    scratch = k.get("scratch_bytes", jnp.zeros_like(k["bytes_read"]))
    return pass_time(_SCRATCH_PASSES * scratch, dev, mem_bw, cache_bw, sharpness,
                     working_set=jnp.maximum(scratch, 1.0))  # fmt: skip


def _matrix_vector(k: Arrays) -> jax.Array:
    """Whether each kernel's GEMM has one row or one column (a matrix-vector product)."""
    return (k["gemm_m"] < 1.5) | (k["gemm_n"] < 1.5)


def pool_use(k: Arrays, params: Arrays) -> jax.Array:
    """Share (0..1) of each kernel split into tasks over the thread pool. GEMMs are split by
    their arithmetic (a 16 x 784 x 128 matmul already is: 1.5x faster on two cores than on
    one) or, like loops, by the bytes they move, whichever splits first: a GEMM of small K is
    a pass over its output (K = 1, 2, 4 and 8 jump with a loop at 400-500 KB written), a
    matrix-vector product a pass over its weights, split at about 1.5x a loop's bytes
    (benchmarks/host_gemm_split.py); a GEMM of 2-7 rows by its FLOPs and bytes added, from
    three 64-column output tiles on (host_gemm_split_shapes.py); a weight gradient XLA:CPU runs
    as its generic dot by its FLOPs, from ~130 KFLOP (host_generic_dot_split.py); one-core
    kernels never are split. A reduction splits by the bytes it reads (benchmarks/host_reduce_split.py,
    host_norm_split.py). A copy call
    (Kernels.parallel_units 1: FusionPolicy.serial_copies) is never split."""
    is_matrix = k["matrix_flops"] > 0
    moved = k["bytes_read"] + k["bytes_written"]
    bytes_work = moved / _BYTES_PER_TASK_ELEMENT
    # A reduction splits by what it reads. An output of plain arithmetic fused into it (a
    # layer norm's x - mean, written for the next pass) is XLA:CPU's own loop, split like one;
    # one with transcendentals (a softmax's exponentials) is in the library's fusion, which
    # splits by all it moves (benchmarks/host_norm_split.py).
    reads_work = k["bytes_read"] / _BYTES_PER_TASK_ELEMENT
    split_by_reads = jnp.maximum(reads_work * _REDUCE_SPLIT_SCALE, bytes_work)
    reduce_work = jnp.where(
        k["transcendentals"] > 0, bytes_work * _REDUCE_SPLIT_SCALE, split_by_reads
    )
    loop_work = jnp.where(k["kind"] == REDUCE, reduce_work, bytes_work)
    matvec = _matrix_vector(k)
    gemm_bytes_work = jnp.where(
        k["kind"] == GEMM, bytes_work * jnp.where(matvec, _MATVEC_SPLIT_SCALE, 1.0), 0.0
    )
    # A GEMM of a few rows (its weights streamed) costs its arithmetic and its bytes together,
    # and the library splits it only from a few output tiles on
    # (benchmarks/host_gemm_split_shapes.py).
    flops_work = k["matrix_flops"] / _FLOPS_PER_TASK_ELEMENT
    tiles = jnp.ceil(k["gemm_n"] / _GEMM_TILE_COLUMNS) * jnp.maximum(k["gemm_b"], 1.0)
    few_rows = (k["kind"] == GEMM) & ~matvec & (k["gemm_m"] < _MIN_TILE)
    matrix_work = jnp.where(
        few_rows,
        (flops_work + gemm_bytes_work) * jnp.minimum(1.0, tiles / _GEMM_SPLIT_TILES),
        jnp.maximum(flops_work, gemm_bytes_work),
    )
    generic = (k.get("generic_dot", jnp.zeros_like(moved)) > 0.5) & ~matvec
    matrix_work = jnp.where(
        generic, k["matrix_flops"] / _GENERIC_DOT_FLOPS_PER_TASK_ELEMENT, matrix_work
    )
    work = jnp.where(is_matrix, matrix_work, loop_work)
    use = jax.nn.sigmoid(
        _FORK_SHARPNESS * (jnp.log(jnp.maximum(work, 1.0)) - params["fork_elements_log"])
    )
    # A loop with more arithmetic than bytes is split by XLA:CPU's cost instead: FLOPs, twice
    # the transcendentals and ten times the bytes, a task per 100000 of it. Its FLOPs count
    # the converts around bf16 arithmetic (Kernels.converted_elements), as XLA's cost analysis
    # does: a bf16 loop of 8192 elements is split where its fp32 twin is not.
    flops = k["vector_flops"] + k.get("converted_elements", jnp.zeros_like(moved))
    cost = flops + 2.0 * k["transcendentals"] + 10.0 * moved
    compute_split = (k["kind"] == ELEMENTWISE) & (flops > moved) & (cost >= 2 * _TASK_COST)
    use = jnp.where(compute_split, 1.0, use)
    return jnp.where(k["parallel_units"] < 1.5, 0.0, use)


def core_time_scale(params: Arrays) -> jax.Array:
    """How long code on a core takes against the 2-core EPYC (Zen 4) whose calibrations fit a
    clock scale of :data:`_THUNK_CLOCK_SCALE`, where the runtime's fixed costs were measured
    (the thunk executor's cost, where a waiting caller falls asleep):
    inversely to the parameters' clock scale (the fit does not move the clock scale for
    these: the scale is the kernels' work's).

    Example:
      >>> p = {"clock_scale_log": jnp.float32(math.log(2 * _THUNK_CLOCK_SCALE))}
      >>> float(core_time_scale(p))
      0.5
    """
    clock_log = jax.lax.stop_gradient(params["clock_scale_log"])
    return jnp.exp(math.log(_THUNK_CLOCK_SCALE) - clock_log)


def thunk_time(params: Arrays) -> jax.Array:
    """What XLA:CPU's thunk executor costs per kernel (:data:`_THUNK_S`), on a core as fast as
    the parameters' clock scale says (:func:`core_time_scale`).

    Example (twice the clock scale of the processor it was measured on):
      >>> p = {"clock_scale_log": jnp.float32(math.log(2 * _THUNK_CLOCK_SCALE))}
      >>> round(float(thunk_time(p)) * 1e6, 2)
      0.25
    """
    return _THUNK_S * core_time_scale(params)


def gemm_speed_log(params: Arrays) -> jax.Array:
    """Log of a CPU's GEMM speed as the parameters have it, relative to the spec's peak: the
    clock scale times the GEMM class's efficiency."""
    return params["clock_scale_log"] + jnp.log(jax.nn.sigmoid(params["compute_eff_logit"][GEMM]))


def _prior_gemm_speed_log() -> float:
    """:func:`gemm_speed_log` at the CPU priors."""
    return math.log(PRIOR_CLOCK_SCALE * PRIOR_GEMM_EFF)


def kernel_times(k: Arrays, dev: Arrays, params: Arrays, res: Arrays) -> KernelTimes:
    """Per-kernel time (seconds per execution) and its parts on a CPU. Pure and vectorised
    (arguments as :func:`perfjax.devicemodels._gpu.kernel_times`)."""
    r = rates(k, dev, params, res)
    k, kind = r.k, r.kind
    # Where the spec's bandwidth is an estimate (the host's), the calibration measures it.
    spec_dev = dev
    measured = jnp.exp(params["bandwidth_log"] * dev.get("bandwidth_estimated", 0.0))
    dev = {**dev, "memory_bytes_per_s": dev["memory_bytes_per_s"] * measured}
    boost = jnp.exp(params["clock_scale_log"])
    peaks, vec_peak = r.peaks * boost, r.vec_peak * boost
    # XLA:CPU splits some kernels only over their batch (Kernels.parallel_units): they keep at
    # most that many cores of the chip busy.
    cores = jnp.minimum(dev["num_cores"], k["parallel_units"])
    tile = dev["matrix_tile"]
    # Grouped convolutions and the slow paths reach their K-efficiency at fixed K (their rates
    # are grouped_log's and fallback_log's to fit); the slow paths pad N to 16.
    fallback = k["fallback"] > 0.5
    k_half = jnp.exp(params["k_half_log"])[kind]
    k_half = jnp.where((kind == CONV) & (k["gemm_b"] > 1.5), _GROUPED_K_HALF, k_half)
    k_half = jnp.where(fallback, _FALLBACK_K_HALF, k_half)
    # YNNPACK's odd-input-features path runs at the rate of another K (Kernels.rate_k): its
    # half-rate K scaled so that its own K reaches the efficiency of that one.
    rate_k = k.get("rate_k", jnp.zeros_like(k_half))
    k_half = jnp.where(rate_k > 0, k_half * k["gemm_k"] / jnp.maximum(rate_k, 1.0), k_half)
    lo_n = jnp.where(fallback, _FALLBACK_MIN_N, _MIN_TILE)
    work = tiled_gemm(k, params, kind, cores, lo=_MIN_ROWS, hi=_TILE_SCALE * tile, lo_n=lo_n,
                      k_half=k_half)  # fmt: skip
    # GEMM micro-kernels block M and N in registers: a short M or N leaves the register block
    # part empty (of the tile sizes, so the time stays monotone: M below the tile already pays
    # the padding).
    mn_half = jnp.exp(params["mn_half_log"])
    # A library 1x1 convolution (Kernels.pointwise_conv) fills its output features' register
    # block more slowly than a GEMM (_POINTWISE_N_HALF).
    n_half = jnp.where(k.get("pointwise_conv", jnp.zeros_like(mn_half)) > 0.5,
                       jnp.maximum(mn_half, _POINTWISE_N_HALF), mn_half)  # fmt: skip
    work = work._replace(
        matrix_util=work.matrix_util
        * (work.tm / (work.tm + mn_half))
        * (work.tn / (work.tn + n_half))
    )
    # A grouped convolution's rate factor (grouped_log) holds for groups of up to a tile of
    # output features; wider groups amortise it over their tiles.
    grouped_share = jnp.minimum(1.0, _MIN_TILE / jnp.maximum(k["gemm_n"], 1.0))
    mt = matrix_time(k, params, res, r, work, peaks, serial_share=cores / dev["num_cores"],
                     grouped_share=grouped_share)  # fmt: skip
    # A loop's transcendentals run at one core's rate unless XLA:CPU splits the loop over its
    # pool: their time grows with the elements from the first (an exp over 4096 floats run on
    # the caller took 1.5 us of kernel, over 65536 16 us; benchmarks/results/
    # host_call_wait_epyc.csv), where an occupancy ramp had priced a 4096-float loop's at 5x
    # its per-element cost, the caller's wait (call_wait_share) folded into them.
    use = pool_use(k, params)
    one_core = (1.0 + use * (cores - 1.0)) / dev["num_cores"]
    t_vector, occupancy = vector_time(k, params, r, vec_peak, cores, work_occupancy=True,
                                      trans_occupancy=one_core)  # fmt: skip
    # Transcendentals chained in one loop (Kernels.chained_transcendentals) cost more
    # each the deeper the chain: the extra, in exps, at the full rate.
    chained = k.get("chained_transcendentals", jnp.zeros_like(t_vector))
    depth = jnp.maximum(chained / jnp.maximum(k["out_elements"], 1.0), 1.0)
    extra = jnp.where(kind == ELEMENTWISE, chained * (depth**_CHAIN_EXPONENT - 1.0), 0.0)
    t_vector = t_vector + safe_div(
        extra * jnp.exp(params["transcendental_cost_log"]), vec_peak * r.compute_eff
    )
    wide = k.get("wide_window", jnp.zeros_like(t_vector)) > 0.5
    t_matrix = jnp.where(wide, k["matrix_flops"] / (r.vec_peak * _WIDE_WINDOW_EFF), mt.t_matrix)
    t_compute = t_matrix + t_vector
    mem = memory_time(k, dev, params, res, r, occupancy)
    t_body = overlap(t_compute, mem.t_memory, params)
    t_body = t_body + packing_time(
        k, dev, params, res, mem.bytes, mem.mem_bw, mem.cache_bw, mem.sharpness
    )
    t_body = t_body + copy_time(k, dev, mem.mem_bw, mem.cache_bw, mem.sharpness)
    t_body = t_body + scratch_time(k, dev, mem.mem_bw, mem.cache_bw, mem.sharpness)
    t_body = jnp.where(
        res["upcast"] > 0.5, t_body + t_compute * (jnp.exp(params["upcast_rate_log"]) - 1.0), t_body
    )
    factor = device_factor(params, kind) * jnp.where(
        k.get("dilated_input", jnp.zeros_like(t_body)) > 0.5, _DILATED_INPUT_FACTOR, 1.0
    )
    t_body = t_body * factor
    # Thread-pool hand-off of kernels large enough to be split into tasks (the pool's wake-up,
    # once per call, is in program_overhead), and the thunk executor's own cost per kernel.
    # A later pass of a normalisation run as one call (Kernels.continued) pays no launch or
    # hand-off of its own.
    t_launch = (
        launch_time(
            k, dev, params, kind, mem.bytes, t_body, step_latency_scale=_STEP_LATENCY_SCALE,
            callback_s=_CALLBACK_S,
        )
        + thunk_time(params)
        + dev["launch_overhead_s"] * jnp.exp(params["fork_log"]) * use
    ) * (1.0 - k.get("continued", jnp.zeros_like(t_body)))  # fmt: skip
    # A reduction run as a tree (Kernels.extra_kernels) launches each of its kernels.
    t_launch = t_launch * (1.0 + k.get("extra_kernels", jnp.zeros_like(t_body)))
    # Output buffers mapped afresh on every call, and a fused attention's scratch handed back
    # to the system on every call (Kernels.fresh_scratch_bytes): a page fault per page where
    # first written, taken by every core writing (in the time only: neither the arithmetic
    # nor the memory traffic the bound compares).
    fresh = k.get("fresh_bytes", jnp.zeros_like(t_body)) + k.get(
        "fresh_scratch_bytes", jnp.zeros_like(t_body)
    )
    t_fresh = fresh * jnp.exp(params["first_touch_log"]) / jnp.maximum(dev["num_cores"], 1.0)
    # A batched GEMM by a transposed, computed rhs (attention written as two einsums), split
    # over as many cores as it has batch entries (heads). Its cost per element (kept at its
    # prior by the fit) is the prior's at the priors' GEMM speed and scales with the fitted
    # one: on two EPYCs the extra per score element went with their GEMM speed (0.68 and
    # 0.36 ns over the same 30 shapes, GEMMs fitted 1.9x faster on the second;
    # host_attention_layout_epyc.csv, host_attention_layout_zen5.csv).
    t_transposed = (
        k.get("transposed_rhs_elements", jnp.zeros_like(t_body))
        * jnp.exp(params["transposed_rhs_log"] + _prior_gemm_speed_log() - gemm_speed_log(params))
        / jnp.clip(jnp.minimum(dev["num_cores"], k["gemm_b"]), 1.0, None)
    )
    t_body = t_body + t_transposed
    # A loop reading through a transpose that moves the minor dimension: a cache line per
    # element from main memory, the loop's cores missing in parallel. A weight gradient's
    # generic dot reading its lhs across rows: cycles per element.
    strided = k.get("strided_elements", jnp.zeros_like(t_body))
    t_strided = jnp.where(
        k["matrix_flops"] > 0,
        strided * _GENERIC_DOT_STRIDED_CYCLES / dev["clock_hz"],
        strided * _LINE_BYTES / mem.mem_bw / (1.0 + use * jnp.maximum(dev["num_cores"] - 1.0, 0.0)),
    )
    t_body = t_body + t_strided
    # Sums the compiler runs as its own scalar loops (bf16 accumulation): cycles per element.
    # Not divided over the cores: the extra per element stays at 1.6-3 ns from 16K to 2M
    # elements, small loops and ones split over the pool alike (host_bf16_reduce_epyc.csv).
    t_scalar_sum = (
        k.get("scalar_sum_elements", jnp.zeros_like(t_body))
        * jnp.exp(params["scalar_sum_log"])
        / dev["clock_hz"]
    )
    t_body = t_body + t_scalar_sum
    return finish(
        k, spec_dev, time=t_body + t_launch + t_fresh, compute_s=t_compute * factor + t_transposed + t_scalar_sum,
        memory_s=mem.t_memory * factor + t_strided, launch_s=t_launch, bytes_=mem.bytes, peaks=peaks,
        vec_peak=vec_peak, matrix_parallel=mt.wave_util, occupancy=occupancy, pool_use=use,
    )  # fmt: skip


def waking_pool_use(k: Arrays, use: jax.Array) -> jax.Array:
    """Share (0..1) of each kernel's split that wakes the thread pool: a loop's and a GEMM's.
    A matrix-vector product or a convolution split over the pool pays its hand-off
    (``fork_log``) there, not the wake-up: its call already pays a share of it from ~140 KFLOP
    on (:func:`call_wake_share`). On a 2-core EPYC a matrix-vector product took 24.8 and 25.1
    us on either side of its split (642 and 812 KB of weights), where a loop jumped by 28 us
    (49152 -> 65536 floats; benchmarks/results/host_gemm_wake_epyc.csv); a GEMM split over
    the pool took a median 46 us more than on one core at 2-4 rows, 18-20 us at 16-256 rows
    and 43 us at 2048 (benchmarks/results/host_gemm_split_shapes_epyc.csv). A weight gradient
    XLA:CPU's generic dot splits (Eigen's contraction) pays the hand-off alone too: 7-10 us
    unsplit, 17-25 us split (host_generic_dot_split_epyc.csv)."""
    generic = k.get("generic_dot", jnp.zeros_like(use)) > 0.5
    library = (k["matrix_flops"] > 0) & ((k["kind"] != GEMM) | _matrix_vector(k) | generic)
    return jnp.where(library, 0.0, use)


def call_wake_share(matrix_flops: jax.Array) -> jax.Array:
    """Share (0..0.3) of the pool's wake-up a call pays for its matrix work: ``matrix_flops``,
    the FLOPs of all its GEMMs and convolutions per call. Above ~140 KFLOP the call costs
    10-15 us more on a 2-core EPYC, whether that is one GEMM or several small ones
    (benchmarks/host_call_wake.py).

    Example:
      >>> [round(float(call_wake_share(jnp.float32(f))), 2) for f in (65536.0, 393216.0)]
      [0.0, 0.3]
    """
    log_flops = jnp.log(jnp.maximum(matrix_flops, 1.0))
    return _CALL_WAKE_SHARE * jax.nn.sigmoid(
        _FORK_SHARPNESS * (log_flops - math.log(_CALL_WAKE_FLOPS))
    )


def call_wait_share(
    exec_s: jax.Array, flops: jax.Array, step_scale: jax.Array | float = 1.0
) -> jax.Array:
    """Share (0..0.85) of the pool's wake-up a call pays while it waits for a worker: by
    ``exec_s``, the seconds its kernels take, once its ``flops`` (vector and matrix FLOPs per
    call) make XLA:CPU run it off the caller's thread (:data:`_INLINE_FLOPS`); none for a
    call run inline. ``step_scale`` moves the first step: the caller spins on a core before it
    sleeps, so a faster core sleeps sooner (:func:`core_time_scale`).

    Example:
      >>> [round(float(call_wait_share(jnp.float32(t), jnp.float32(1e5))), 2)
      ...  for t in (1e-6, 6e-6, 30e-6)]
      [0.0, 0.45, 0.85]
      >>> float(call_wait_share(jnp.float32(30e-6), jnp.float32(0.0)))   # exp: inline
      0.0
      >>> [round(float(call_wait_share(jnp.float32(2.5e-6), jnp.float32(1e5), s)), 2)
      ...  for s in (1.0, 0.6)]   # 2.5 us of kernels: asleep on a core 1/0.6 times as fast
      [0.06, 0.43]
    """
    log_t = jnp.log(jnp.maximum(exec_s, 1e-12))
    steps = (_WAIT_STEPS_S[0] * step_scale, _WAIT_STEPS_S[1])
    share = sum(
        a * jax.nn.sigmoid(_WAIT_SHARPNESS * (log_t - jnp.log(t)))
        for a, t in zip(_WAIT_SHARES, steps)
    )
    return jnp.where(flops >= _INLINE_FLOPS, share, 0.0)


def program_overhead(
    params: Arrays, wake_share: jax.Array, inputs: jax.Array = 0.0, outputs: jax.Array = 0.0,
    pruned: jax.Array = 0.0,
) -> jax.Array:  # fmt: skip
    """The thread pool's wake-up, once per call: ``wake_share`` (0..1) of it, the largest of
    the program's :func:`waking_pool_use` (a loop split over the pool), its
    :func:`call_wake_share` and its :func:`call_wait_share`; and the call's ``inputs`` and ``outputs`` (arrays):
    :data:`CALL_INPUT_S` and :data:`CALL_OUTPUT_S` each, and its ``pruned`` arguments
    (:data:`CALL_PRUNED_INPUT_S` each), scaled as the call's dispatch.

    Example (the prior, 100 parameter arrays in and out, no wake-up):
      >>> p = {"wake_log": jnp.log(50e-6), "dispatch_log": jnp.log(4e-6)}
      >>> round(float(program_overhead(p, 0.0, 100.0, 100.0)) * 1e6, 1)
      45.0
    """
    per_array = jnp.exp(params["dispatch_log"]) / DISPATCH_S
    buffers = per_array * (
        inputs * CALL_INPUT_S + outputs * CALL_OUTPUT_S + pruned * CALL_PRUNED_INPUT_S
    )
    return jnp.exp(params["wake_log"]) * wake_share + buffers
