"""Fusion: from a costed op graph to the kernels a device family would launch.

The policy follows XLA's (``instruction_fusion`` / ``gpu_fusible``), in simplified form:

* metadata ops (constant, iota, broadcast, reshape, bitcast ...) are free: they are folded into
  every consumer and never move memory on their own;
* elementwise and data-movement ops (add, exp, select, transpose, slice, gather ...) form loop
  fusions with their producers;
* a reduction absorbs the loop fusion that feeds it (input fusion) and closes it;
* GEMM / convolution start their own kernel; on GPU, TPU and NPU their elementwise consumers
  (bias, activation, residual) join as an epilogue when the GEMM output has no other consumer;
  XLA's CPU backend calls a GEMM library and fuses no epilogue;
* XLA:CPU (YNNPACK fusions, jax 0.10) splits a batched GEMM over the cores only in blocks of
  512 KiB of one matrix's weights (K x N), a dense convolution in blocks of 64 output features
  once its weights reach ~416 KiB (none with 64 output features or fewer), and, when a
  reduction (reduce, reduce-window: pooling, softmax, a sum) consumes its result through
  elementwise ops, over the batch in pairs of images. A convolution takes that second path only
  when reductions alone read its result (then it and the reduction are one YNNPACK fusion in the
  compiled HLO); a batch normalisation also reads it elementwise, and the convolution stays a
  kernel of its own, not split: on an AMD EPYC, 3x3 convolutions with the statistics alone after
  them ran in 0.54-0.66 of their time alone, with the normalisation's ``y - mean(y)`` in
  1.01-1.10 (``benchmarks/results/host_grouped_conv_split_epyc.csv``). Measured on an Intel
  Xeon, pinned to one core vs two (``experiments/xla_cpu_probes.py``): a 3x3 convolution with
  72 KiB of weights gains nothing from the second core, with 576 KiB 1.3x, with 1.1 MiB 1.9x;
  16 images at 80 GFLOP/s alone, 155 with a max-pool after them (no gain at 2 images, 1.6x at 4);
  depthwise (grouped) convolutions never split over the images: with a batch normalisation's
  statistics after them they take as long as alone (``benchmarks/host_grouped_conv_split.py``);
  a 32 x 128^3 batched matmul as fast on one core as on two. The kernel table records this as
  ``parallel_units`` (unbounded where the cores split the tiles, as for 2-D GEMMs). Dense
  convolutions with at most 16 input and 16 output features (but for a 1x1 window at stride 1,
  which XLA rewrites as a dot), or a window wider than their input
  (a 3x3 kernel over a 2x2 feature map), stay on XLA's Eigen path (probed here over 1-64 x 8-64
  features and 1-5 pixel inputs), which is much slower (split over the cores by Eigen itself):
  they are marked ``fallback``. So are those YNNPACK runs from an odd number of input features
  (3 to 15: an RGB input) into 17 to 32 output features, at 6-41 GFLOP/s where from an even
  number they run at 48-98 (``benchmarks/host_conv_channels.py``), over overlapping windows
  at one rate whatever the window (``rate_k``; ``benchmarks/host_conv_odd_windows.py``). A
  convolution over a dilated input (``lhs_dilation``: the input gradient of a strided
  convolution) always runs through Eigen's generic convolution: dense, it skips the
  dilation's zeros and runs at about the rate of the strided forward pass (its implicit GEMM
  counts only the taps on real elements);
  depthwise, it does not, and runs 1.5-2.3x slower than the undilated one over as many
  positions (``benchmarks/host_conv_transpose.py``): marked ``dilated_input``;
* scatter, sort, dynamic-update-slice and collectives are kernels of their own; so are FFTs,
  top-k, linear-algebra solvers (Cholesky, LU, QR, eigen- and singular-value decompositions,
  triangular solves) and host callbacks, whose cost rules mark them (``features["kind"]`` of
  ``fft``, ``sort``, ``solver``, ``host_callback``). A solver is not a GEMM: it runs as a
  sequence of dependent panel steps (:func:`solver_steps`), each paying a launch or loop-iteration
  latency on top of its arithmetic; a host callback pays a round trip to the host
  (``Kernels.host_round_trips``).

Bytes of a kernel are those crossing its boundary: values read from outside (program inputs,
other kernels' outputs, large constants) and results consumed outside or returned.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from perfjax._errors import InputError
from perfjax.lowering._arguments import aliased_outputs, arguments
from perfjax.lowering._graph import Graph, Op
from perfjax.lowering._program import Program
from perfjax.lowering._staging import graph_for
from perfjax.ops._kernel import KERNEL_SCOPE, KERNEL_SCOPE_RE

#: Kernel classes; models keep per-class correction parameters in this order.
KINDS = ("gemm", "conv", "elementwise", "reduce", "other", "collective")
_KIND_INDEX = {k: i for i, k in enumerate(KINDS)}

_FREE = {
    "constant", "iota", "broadcast_in_dim", "broadcast", "reshape", "bitcast_convert", "get_tuple_element",
    "tuple", "optimization_barrier", "partition_id", "replica_id", "after_all", "create_token",
    "get_dimension_size", "constant_like", "sharding_constraint",
}  # fmt: skip
_MATRIX = {"dot_general": "gemm", "dot": "gemm", "convolution": "conv"}
_REDUCE = {"reduce", "reduce_window"}
_OWN_KERNEL = {
    "scatter",
    "sort",
    "dynamic_update_slice",
    "select_and_scatter",
    "rng_bit_generator",
    "map",
    "fft",
    "cholesky",
    "triangular_solve",
    "top_k",
}
#: ``features["kind"]`` values (set by cost rules) of ops that always form a kernel of their own.
_OWN_KINDS = {"fft", "sort", "solver", "host_callback", "opaque"}
#: Panel width of blocked factorizations (LAPACK / cuSOLVER / XLA's TPU expansions use 32-256;
#: the smaller end bounds the number of dependent steps from above for mid-size matrices).
_PANEL = 32.0
#: Routines whose reduction to condensed form (tridiagonal, bidiagonal, Hessenberg) is a sequence
#: of one Householder step per column (LAPACK sytrd/gebrd/gehrd: BLAS-2, memory-bound steps).
_PER_COLUMN_ROUTINES = ("syevd", "geev", "gees", "gesvd", "gehrd", "sytrd")


def solver_steps(features: dict) -> float:
    """Dependent steps of a linear-algebra solver kernel (0 for anything else).

    Blocked factorizations (Cholesky, LU, QR, triangular solves) advance one panel of
    ``_PANEL`` columns per step; eigen- and singular-value decompositions reduce the matrix to
    condensed form one column at a time (Golub & Van Loan, *Matrix Computations*, 4th ed.,
    sections 5.1, 8.3, 8.6), so their steps grow with ``n``. Each step is a launch (GPU) or a
    loop iteration (TPU) the device model charges a latency for.

    Example:
      >>> solver_steps(dict(kind="solver", routine="potrf", n=64)), solver_steps(dict(kind="solver", routine="syevd", n=64))
      (2.0, 64.0)
    """
    if features.get("kind") != "solver":
        return 0.0
    dims = [float(features[d]) for d in ("m", "n") if isinstance(features.get(d), (int, float))]
    n = min(dims) if dims else 0.0
    if n <= 0:
        return 0.0
    routine = str(features.get("routine", "")).lower()
    if routine in ("lu_pivots_to_permutation", "gtsv", "cholesky_update", "syrk"):
        return 1.0
    if routine in _PER_COLUMN_ROUTINES:
        return n
    return float(-(-n // _PANEL))


_COLLECTIVE = {
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "collective_permute", "collective_broadcast",
    "send", "recv",
}  # fmt: skip
#: Ops that read only part of their first operand (as many bytes as they return).
_PARTIAL_READ = {"gather", "slice", "dynamic_slice"}
#: Data movement: a kernel of these alone is a copy (a transpose alone: XLA's tiled emitter;
#: reshapes and broadcasts are free, never in a kernel).
_MOVEMENT = {"transpose", "copy", "convert"}
#: Ops that become views (no kernel) when only GEMMs/convs consume them.
_VIEWS = {"transpose", "copy", "slice", "dynamic_slice"}
#: ``Kernels.parallel_units`` of a kernel whose parallelism the device model decides (tiles).
UNBOUNDED = 1e9
#: Weights per parallel block of an XLA:CPU batched GEMM (see the module notes).
_WEIGHT_BLOCK_BYTES = 512 * 1024
#: A dense convolution alone is split over the cores in blocks of 64 output features once its
#: weights reach ~416 KiB: on an AMD EPYC, 432 KiB and more with 128 or more output features ran
#: 1.8-2.0x faster on two cores than on one, 400 KiB and less, or 64 output features and fewer
#: (up to 3.2 MiB), gained nothing (benchmarks/results/host_conv_weight_split_epyc.csv, 45
#: shapes). An Intel Xeon's probes agree within its partial split at 576 KiB (1.3x) and 1.9x at
#: 1.1 MiB (docs/calibration/xla_cpu_probes.csv).
_CONV_SPLIT_BYTES = 416 * 1024
_CONV_SPLIT_COLUMNS = 64
#: Dense convolutions with at most this many input and output features run on XLA:CPU's Eigen path.
_NARROW_FEATURES = 16
#: YNNPACK's slow dense convolutions: from an odd number of input features below
#: _NARROW_FEATURES into more than _NARROW_FEATURES and at most this many output features.
_ODD_FEATURES_MAX_OUT = 32
#: Batched GEMMs by a transposed, computed rhs are slow on XLA:CPU below this many lhs rows
#: (:attr:`FusionPolicy.transposed_rhs_product`).
_TRANSPOSED_RHS_MAX_M = 128
#: Score-sized float32 blocks a fused attention keeps (:attr:`FusionPolicy.attention_scratch`).
_SCRATCH_BLOCKS = 4.0
#: A constant at least this large is data (weights baked into the module), not an immediate.
_CONSTANT_DATA_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class FusionPolicy:
    """How a device family's compiler groups ops into kernels."""

    name: str
    #: Elementwise consumers of a GEMM/conv join its kernel (bias + activation epilogue).
    epilogue: bool = True
    #: Elementwise producers of a reduction join its kernel.
    reduce_inputs: bool = True
    #: Elementwise ops fuse with each other.
    loop_fusion: bool = True
    #: A loop fusion may have several outputs (values returned or read by other kernels), as
    #: XLA's GPU multi-output fusion makes them. XLA:CPU has none: each output is a loop of its
    #: own, which recomputes the cheap ops it needs and reads an expensive one (a
    #: transcendental, a division or a square root used by two outputs) from that op's own
    #: loop. An Adam update of one parameter is three loops (parameter, first and second
    #: moment) reading the gradient three times (compiled HLO, jaxlib 0.10).
    multi_output_loops: bool = True
    #: Row-wise normalisations (softmax, layernorm: reduce, broadcast back, reduce again) run as one
    #: kernel per row block, as XLA's GPU softmax rewriter and PyTorch's fused kernels do.
    normalization: bool = True
    #: ... only when the reduction keeps at least this many values (rows): XLA:CPU fuses a
    #: normalisation into one YNNPACK kernel from 4096 rows on, and leaves smaller ones as
    #: separate reduction and loop kernels (compiled HLO of layer norm, RMS norm and softmax
    #: at 256-8192 rows x 8-1024 columns, jaxlib 0.10).
    normalization_min_rows: int = 0
    #: ... and runs it as its passes over the rows (each reduction, then the output), in one
    #: call: the kernel table lists the passes as the separate kernels they would be, all but
    #: the first marked ``continued`` (no launch or hand-off of their own), a full-size value
    #: only later passes read not written. On an AMD EPYC, XLA:CPU's fused layer norms, RMS
    #: norms and softmaxes of 4096 rows x 256-1536 took 0.57-1.35x (median 1.0) the time of the
    #: same elements as separate kernels (2048 rows of twice the length), layer norms 0.57-0.99x,
    #: where one pass over the input and output prices them at 0.45-0.92x
    #: (``benchmarks/results/host_fused_norm_epyc.csv``). A normalisation of a GEMM's result
    #: is inside the GEMM's library fusion and stays one kernel.
    normalization_passes: bool = False
    #: Reductions of fewer input elements run as the compiler's plain loops (priced as
    #: elementwise kernels), larger ones in a library (XLA:CPU: a YNNPACK fusion from 4096
    #: elements on, with its larger fixed cost; compiled HLO, jaxlib 0.10). 0: every reduction
    #: is a reduction kernel.
    library_reduce_min_elements: int = 0
    #: ... and those of a contiguous (minor) axis longer than this run as a tree: partial
    #: reductions over windows of this many elements, then the reduction of the partials,
    #: each a kernel of its own, and the loop fused into the reduction a kernel before them
    #: (XLA:CPU: a softmax over 1 x 256 floats is six kernels, where over 8 x 1024, a YNNPACK
    #: reduction, four; compiled HLO, jaxlib 0.10). The kernel table keeps one reduction and
    #: counts the others in ``extra_kernels``. 0: no tree.
    tree_reduce_window: int = 0
    #: Convolutions and batched GEMMs split over cores only by blocks of weights, or by pairs of
    #: batch entries when a reduction consumes their result (XLA:CPU's YNNPACK fusions).
    serial_matrix: bool = False
    #: An output copied from an input (``x + 0``, ``x * 1``, a reshape: :meth:`_output_copies`)
    #: runs as one copy call on one core, not a loop split over the cores: XLA:CPU's copy
    #: thunk (a memcpy). On a 2-core EPYC, ``x + 0`` took 0.11-0.42x the time of ``x * 3`` over
    #: 65536 and 131072 floats in 36 timing files, half at the median over 262144 and 524288
    #: (``x * 3`` pays the pool's wake-up; docs/calibration/host_measurements).
    serial_copies: bool = False
    #: The elementwise ops of one Flash-op call (``Op.call``) form one kernel, as an eager
    #: framework runs each of its ops as one kernel (a GELU's StableHLO ops: one kernel).
    op_calls: bool = False
    #: Cost of one transcendental of each StableHLO op (short name) relative to ``exp``, where a
    #: compiler runs them very differently (ops not listed weigh 1): the ``transcendental_work``
    #: feature. Empty: every transcendental weighs 1.
    transcendental_weights: tuple[tuple[str, float], ...] = ()
    #: Transcendentals (StableHLO op short names) a compiler expands inline into polynomial
    #: code, which cost more each the more of them one loop chains over an element: the
    #: ``chained_transcendentals`` feature counts them. Empty: none.
    chained_transcendentals: tuple[str, ...] = ()
    #: Program outputs of at least this many bytes are allocated from the operating system
    #: afresh on every call and pay a page fault per page where first written (the
    #: ``fresh_bytes`` feature). XLA:CPU allocates each output with glibc's malloc, which maps
    #: blocks from 32 MiB on (its largest mmap threshold) and unmaps them when freed: a
    #: 64 MiB ``x * 1.5`` takes 16.4 ms, the same program writing into its donated input
    #: 3.9 ms; from 31 to 33 MiB the extra cost per page jumps from 0.17 to 0.86 us
    #: (``benchmarks/host_first_touch.py``).
    #: 0: outputs reuse memory (a device allocator's pool).
    fresh_output_min_bytes: int = 0
    #: Batched GEMMs contracting their rhs over its minor dimension and their lhs over another,
    #: with an rhs computed by the program (``einsum("bhqk,bkhd->bqhd", softmax(s), v)``: JAX
    #: computes vᵀ·pᵀ, as Flax's ``dot_product_attention`` does; with one batch of one head too,
    #: a transpose of the scores before the GEMM), are slow in XLA:CPU's YNNPACK
    #: fusions when the lhs has fewer than 128 free rows (the head size): the
    #: ``transposed_rhs_elements`` feature counts their rhs elements. Attention in that form
    #: takes up to 2.8x as long as with the transposes written out: 0.2-6 ns more per score
    #: element at sequences of 128-256 (median 1.2 and 4.0 ns), 0.3-1.1 ns at 512, 1.9-2.6 ns
    #: at 1024 on an Intel Xeon; up to 2.5x, median 0.43 ns, on an AMD EPYC; from a head size
    #: of 128 the two are alike (``benchmarks/host_attention_layout.py``).
    transposed_rhs_product: bool = False
    #: (rows, keys, head size): such a product fused with the softmax before it (attention of
    #: at least ``rows`` score rows, batch x heads x queries, over at most ``keys`` keys and a
    #: head size of at most ``head size``) materialises its scores four times, each
    #: score-sized in float32 whatever the inputs' dtype, allocated anew on every call: the
    #: ``scratch_bytes`` feature. XLA:CPU's YNNPACK fusion of ``softmax(q·kᵀ)·v`` in that form
    #: (Flax's ``dot_product_attention`` too) allocates four blocks of b x h x t x s float32
    #: per call from 4096 score rows at 64-256 keys and head sizes 32-64; below 4096 rows at
    #: most one such block, at 512 keys tiles (a quarter of the scores each at a head size of
    #: 32), at a head size of 128 halves; written as ``bhts,bhsd`` (v not transposed) at most
    #: three; Flax's in bf16 tiles too, which this counts as four blocks all the same
    #: (``benchmarks/host_attention_scratch.py``). Zeros: none.
    attention_scratch: tuple[int, int, int] = (0, 0, 0)
    #: Such scratch of at least this many bytes per call is handed back to the operating
    #: system when the call frees it and faults page by page on the next call (the
    #: ``fresh_scratch_bytes`` feature). glibc returns the free memory at its heap's top once
    #: it exceeds the trim threshold, twice the mmap threshold, so at most 2 x 32 MiB: a fused
    #: attention with four 16 MiB score blocks (batch 8, 256 tokens, 8 heads) takes 16400 page
    #: faults and 30 ms of system time per call, 45-53 ms against 21-27 ms with the allocator
    #: pinned; 8 MiB blocks (batch 4) fault only in a process that has not yet freed a block
    #: that large (``benchmarks/host_attention_fused.py``). 0: scratch never faults.
    scratch_fault_min_bytes: int = 0
    #: GEMM operands not laid out as a batched GEMM reads them (batch dimensions not leading,
    #: free and contracting dimensions interleaved) are copied into that layout first, where
    #: no loop produces them (a program input, a GEMM's or convolution's result); a loop
    #: producing one writes it transposed instead. The ``copied_bytes`` feature counts them.
    #: XLA:CPU runs each such copy as its own transpose loop: attention written as
    #: ``einsum("bthd,bshd->bhts")`` over (batch, tokens, heads, head size) inputs copies q, k
    #: and v (compiled HLO's ``transpose_copy_fusion``s; ``benchmarks/host_thunk_dag.py``).
    dot_operand_copies: bool = False
    #: A loop fusion that reads an operand of at least this many bytes through a transpose
    #: moving its minor dimension, beside other elementwise work, strides across rows: a cache
    #: line per element (the ``strided_elements`` feature). XLA:CPU runs a transpose alone as a
    #: tiled copy, folds one that only a GEMM reads into the GEMM's operand layout, and one of
    #: an fp32 dot's result into the dot (it swaps the operands); a bf16 dot's result is
    #: converted first, and its transpose lands in the consumer's loop (JAX's weight gradients).
    #: Measured on an AMD EPYC: ``x * 2 + y.T`` pays 1.1-1.8 ns more per element than
    #: ``x * 2 + y`` with 1 MiB or more of fp32 (0.4 where the output's rows are 4096 long),
    #: 0.2 at 256 KiB; permutations keeping the minor dimension pay nothing
    #: (``benchmarks/results/host_strided_loops_epyc.csv``). 0: never.
    strided_min_bytes: int = 0
    #: ... but a bf16 (or other non-fp32) dot's result, converted and read transposed by the
    #: loop after it (the SGD update of a bf16 weight by its gradient), is read element by
    #: element whatever its size: below ``strided_min_bytes`` an element weighs this share of
    #: a cache line (``benchmarks/results/host_bf16_sgd_epyc.csv``).
    strided_small_dot_weight: float = 1.0
    #: A 2-D GEMM contracting both operands over their major dimension (a weight gradient
    #: ``xᵀ·dy``, which XLA:CPU runs as its generic ``dot``) reads its lhs across rows
    #: (the ``strided_elements`` feature): ``(bytes, share)``: rows whose length is a multiple
    #: of ``bytes`` cost a full element each, others ``share`` of one (less below ``bytes / 2``).
    #: On an AMD EPYC such a dot took 0.9-1.9 ns more per lhs element than the library's layout
    #: with rows of 2, 4, 6, 8, 12 or 16 KiB (a batch of 1024), 0.25-0.8 with rows of 1.5-8 KiB
    #: not a multiple of 2 KiB (384, 784, 1000 or 2000 features), 0.4-0.6 at 1 KiB, 0.2-0.3 at
    #: 512 B
    #: (``benchmarks/results/host_weight_gradient_epyc.csv``). Empty: never.
    generic_dot_strided: tuple[int, float] | tuple[()] = ()
    #: Sums (a reduction whose computation is one add) accumulating in one of these dtypes run
    #: as the compiler's own scalar loops instead of a library kernel: the
    #: ``scalar_sum_elements`` feature counts their input elements. XLA:CPU hands an fp32
    #: accumulation (``jnp.sum`` of bf16 data) to YNNPACK, but not a sum accumulating in bf16,
    #: which autodiff emits for the gradient of a broadcast (a bias gradient of a bf16 layer):
    #: that one runs a scalar loop, over a tree of windows of 32 when the reduced dimension is
    #: longer. Measured on an AMD EPYC (``benchmarks/results/host_bf16_reduce_epyc.csv``): a
    #: column sum (over rows) takes 1.6-4.4 ns more per element than the fp32-accumulated one,
    #: 3.6-39x its time. fp16 sums compile to the same tree but run it vectorised over rows
    #: (0.07-0.32x bf16's time; over the minor dimension 1.4-2.4x, which is not modelled).
    #: Empty: none.
    scalar_sum_dtypes: tuple[str, ...] = ()
    #: ... where the minor dimension is among those reduced, an element weighs this share of a
    #: column sum's (the loop reads whole rows: 0.23-0.39 ns more per element on the EPYC).
    scalar_sum_minor_weight: float = 1.0
    #: Dtypes whose elementwise arithmetic the compiler runs in fp32, converting each op's
    #: tensor operands in and its result back (XLA:CPU's bf16 normalisation; fp16 it runs as
    #: it is on an AMD EPYC, Zen 4: no converts in its compiled HLO): the
    #: ``converted_elements`` feature counts those converts, which XLA's cost analysis counts
    #: as FLOPs and its thread pool's split decision reads (a bf16 ``x * 1.5 + 0.5``: 3 FLOPs
    #: per element for XLA, 1 before normalisation). Empty: none.
    converted_dtypes: tuple[str, ...] = ()
    #: Convolutions from an odd number of input features into a few more output features
    #: (YNNPACK's slow path on XLA:CPU: ``fallback``) over overlapping windows (a stride below
    #: the window) run at the rate of this many taps' worth of their input features, whatever
    #: their window: on an AMD EPYC, 3 features into 32 ran at 20-23 GFLOP/s with 3x3, 5x5 and
    #: 7x7 windows alike at stride 1 (K = 27-147; 16-21 at stride 2) over 2 and 8 images, 5
    #: and 7 features at 3x3 at 30 and 38, where a rate that follows taps x features would
    #: have 5x5 at 2.2x 3x3's (``benchmarks/results/host_conv_odd_windows_epyc.csv``,
    #: ``host_conv_fallback_epyc.csv``, ``host_conv_channels_epyc.csv``). 0: their own K.
    odd_features_taps: int = 0
    #: A ``dynamic_update_slice`` runs as a loop over its update, written in place (XLA:CPU's
    #: ``dynamic-update-slice`` fusions, into which the update's producers fuse), priced as an
    #: elementwise loop and fused as one; off: its own kernel of the ``other`` kind.
    in_place_update_loops: bool = False


#: XLA:CPU's cost per element of each transcendental relative to ``exp``, measured by
#: ``benchmarks/host_transcendentals.py`` on two CPUs, a 2-core AVX-512 Intel Xeon
#: (benchmarks/results/host_transcendentals.csv) and a 2-core AMD EPYC, Zen 4
#: (host_transcendentals_epyc.csv): on each, the geometric mean of the ratio in a fused chain of
#: 8 in cache and in one op over 1M elements; here the geometric mean of the two CPUs, rounded
#: (a CPU nobody measured is likelier near the middle: sine is 4.3x exp on the Xeon, 3.1x on
#: the EPYC, log1p 1.9x and 2.3x). exp, log, tanh, the logistic function and erf are vectorised
#: polynomials (cheaper in a short loop than in a long one); sin, cos, tan, pow, atan2 and cbrt
#: call scalar math-library routines, 1-15 ns per element in either.
XLA_CPU_TRANSCENDENTALS = (
    ("exponential", 1.0), ("exponential_minus_one", 2.1), ("log", 1.13), ("log_plus_one", 2.1),
    ("logistic", 1.27), ("tanh", 0.82), ("sqrt", 0.15), ("rsqrt", 0.46), ("cbrt", 25.0),
    ("sine", 3.7), ("cosine", 3.7), ("tan", 13.0), ("atan2", 21.0), ("power", 9.5), ("erf", 0.73),
)  # fmt: skip
#: The transcendentals whose chains cost XLA:CPU more per function: its inline polynomials
#: (over 1M floats, chains of 5 tanh, sigmoid or exp take 2.1-2.2x the time of chains of 3)
#: and the sines and cosines it calls per element (mixed into such a chain, a sine grows it
#: alike; a chain of sines alone grows about linearly, 1.56x from 3 to 5). Not a square root
#: (one instruction: 1.56x from 3 to 5, and mixed into a chain it adds about its own time)
#: (``benchmarks/results/host_chain_depth_epyc.csv``, ``host_chain_mixed_epyc.csv``).
XLA_CPU_CHAINED = ("exponential", "exponential_minus_one", "log", "log_plus_one", "logistic",
                   "tanh", "erf", "sine", "cosine")  # fmt: skip
# sin and cos are weighed for arguments held small, as that benchmark holds them: arguments of
# unit scale take a slower path (a whole vector, once one of them is beyond the first octant),
# 2.7-4.6x the time per element on the EPYC, 5.6x up to 100 (benchmarks/host_trig_arguments.py).
# Weighing them for unit scale made 120 generated programs worse (elementwise chains: 24% ->
# 37% median error), whose sin mostly sees small values: a program's values decide.


POLICIES = {
    "gpu": FusionPolicy("gpu"),
    "tpu": FusionPolicy("tpu"),
    "npu": FusionPolicy("npu"),
    "cpu": FusionPolicy(
        "cpu",
        epilogue=False,
        normalization=True,
        normalization_min_rows=4096,
        normalization_passes=True,
        library_reduce_min_elements=4096,
        tree_reduce_window=32,
        multi_output_loops=False,
        serial_matrix=True,
        serial_copies=True,
        transcendental_weights=XLA_CPU_TRANSCENDENTALS,
        chained_transcendentals=XLA_CPU_CHAINED,
        fresh_output_min_bytes=32 * 1024 * 1024,
        transposed_rhs_product=True,
        attention_scratch=(4096, 256, 64),
        scratch_fault_min_bytes=64 * 1024 * 1024,
        dot_operand_copies=True,
        in_place_update_loops=True,
        strided_min_bytes=1024 * 1024,
        strided_small_dot_weight=0.5,
        generic_dot_strided=(2048, 0.3),
        odd_features_taps=9,
        scalar_sum_dtypes=("bfloat16",),
        scalar_sum_minor_weight=0.15,
        converted_dtypes=("bfloat16",),
    ),
    "none": FusionPolicy(
        "none", epilogue=False, reduce_inputs=False, loop_fusion=False, normalization=False
    ),
    # An eager framework (PyTorch without torch.compile): each elementwise op is its own kernel,
    # softmax and layer norm are single library kernels, GEMMs have no fused activation. A Flash
    # op is one framework op (a GELU: one kernel); outside Flash ops every StableHLO op counts as
    # one (plain jax.numpy code over-counts eager kernels where one framework op is several).
    "eager": FusionPolicy(
        "eager",
        epilogue=False,
        reduce_inputs=False,
        loop_fusion=False,
        normalization=True,
        op_calls=True,
    ),
}


#: Elementwise ops XLA does not duplicate into several fusions (its ``IsExpensive``).
_EXPENSIVE = frozenset({"divide", "sqrt", "rsqrt", "cbrt", "power", "remainder", "atan2"})


def _expensive(op: Op) -> bool:
    """Whether XLA computes ``op`` once rather than in every fusion that needs it."""
    return op.transcendentals > 0 or _short(op) in _EXPENSIVE


def _cone(o: int, inner: Mapping[int, list[int]], cut: set[int]) -> set[int]:
    """Op ``o`` and the ops of its fusion it needs (``inner``: each op's producers in the
    fusion), up to the ops in ``cut`` (computed by a loop of their own)."""
    seen, stack = {o}, list(inner[o])
    while stack:
        j = stack.pop()
        if j not in seen and j not in cut:
            seen.add(j)
            stack.extend(inner[j])
    return seen


def _short(op: Op) -> str:
    name = op.name.split("@")[0]
    return name.split(".", 1)[-1]


def _channel_scale(f: Mapping[str, Any]) -> bool:
    """A convolution that only scales each feature: a 1x1 window over unchanged spatial sizes,
    one input and one output feature per group."""
    groups = f.get("groups", 1)
    return (
        groups > 1
        and groups == f.get("in_features") == f.get("out_features")
        and all(k == 1 for k in f.get("kernel_spatial", (0,)))
        and tuple(f.get("out_spatial", ())) == tuple(f.get("in_spatial", (None,)))
    )


def op_class(op: Op) -> str:
    """``free``, ``gemm``, ``conv``, ``loop``, ``reduce``, ``other`` or ``collective``."""
    s = _short(op)
    if s in _FREE or op.name.startswith("stablehlo.custom_call@Sharding") or "SPMD" in op.name:
        return "free"
    if op.features.get("kind") in _OWN_KINDS:
        return "other"
    if op.features.get("folded") or op.features.get("simplified"):
        return "free"
    if s in _MATRIX:
        if s == "dot_general" and op.features.get("k", 2) == 1:
            # An outer product (no contraction): XLA's algebraic simplifier turns it into a
            # broadcast multiply (dot strength reduction), an elementwise loop, not a GEMM.
            return "loop"
        if s == "convolution" and _channel_scale(op.features):
            # A depthwise 1x1 convolution is a per-channel scale: XLA's algebraic simplifier
            # turns it into a broadcast multiply (an elementwise loop).
            return "loop"
        return _MATRIX[s]
    if s in _REDUCE:
        return "reduce"
    if s in _COLLECTIVE:
        return "collective"
    if s in _OWN_KERNEL or s == "custom_call":
        return "other"
    return "loop"


def _feature(dtype: Any = np.float32, default: bool = False) -> Any:
    """A numeric per-kernel feature of :class:`Kernels`: what the time models read, as ``dtype``."""
    extra = dict(default_factory=lambda: np.zeros(0)) if default else {}
    return dataclasses.field(metadata=dict(feature=dtype), **extra)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Kernels:
    """Struct-of-arrays features of the kernels of one program under one fusion policy.

    All arrays have one entry per kernel. ``kind`` indexes :data:`KINDS`.
    """

    policy: str
    names: tuple[str, ...]
    #: Op indices of each kernel.
    ops: tuple[tuple[int, ...], ...]
    kind: np.ndarray = _feature(np.int32)
    #: FLOPs on the matrix unit (GEMM/conv) and on the vector unit (everything else).
    matrix_flops: np.ndarray = _feature()
    vector_flops: np.ndarray = _feature()
    transcendentals: np.ndarray = _feature()
    #: Transcendentals weighted by their cost relative to ``exp`` under the policy
    #: (:attr:`FusionPolicy.transcendental_weights`; equal to ``transcendentals`` where unweighted).
    transcendental_work: np.ndarray = _feature()
    #: Transcendentals the policy counts as chained (:attr:`FusionPolicy.chained_transcendentals`).
    chained_transcendentals: np.ndarray = _feature(default=True)
    bytes_read: np.ndarray = _feature()
    bytes_written: np.ndarray = _feature()
    #: GEMM view of matrix kernels (conv as implicit GEMM); 1 elsewhere.
    gemm_b: np.ndarray = _feature()
    gemm_m: np.ndarray = _feature()
    gemm_n: np.ndarray = _feature()
    gemm_k: np.ndarray = _feature()
    #: Output elements: the parallelism available to vector kernels.
    out_elements: np.ndarray = _feature()
    #: Bytes of matrix-kernel operands that are model weights (program inputs or constants).
    weight_bytes: np.ndarray = _feature()
    #: Bytes read from program inputs or constants (from main memory unless the program's inputs
    #: stay resident in the last-level cache between executions).
    input_bytes: np.ndarray = _feature()
    #: Total bytes of the program's inputs (the same on every kernel of a program).
    program_input_bytes: np.ndarray = _feature()
    #: Arrays the program takes and returns (the same on every kernel of a program): a call
    #: checks and hands over each one (``CALL_INPUT_S``, ``CALL_OUTPUT_S`` on a CPU).
    program_inputs: np.ndarray = _feature()
    program_outputs: np.ndarray = _feature()
    #: Arguments ``jax.jit`` pruned from the program because it never reads them (the same on
    #: every kernel of a program): the call still checks and flattens each one
    #: (``CALL_PRUNED_INPUT_S`` on a CPU).
    pruned_inputs: np.ndarray = _feature(default=True)
    executions: np.ndarray = _feature()
    #: Independent pieces of work the kernel can be split into across cores (1: one core,
    #: whatever the device has; see the module notes). ``UNBOUNDED`` where tiles decide.
    parallel_units: np.ndarray = _feature()
    #: 1 where the compiler leaves the kernel to a slower generic path (see the module notes).
    fallback: np.ndarray = _feature()
    #: 1 where a grouped (depthwise) convolution reads a dilated input (the input gradient of a
    #: strided one) on a policy that runs it through Eigen's generic convolution
    #: (:attr:`FusionPolicy.serial_matrix`; see the module notes).
    dilated_input: np.ndarray = _feature(default=True)
    #: 1 where a dense convolution's window is wider than its input (a 3x3 filter over a 2x2
    #: map) on a :attr:`FusionPolicy.serial_matrix` policy: a slow generic loop on XLA:CPU.
    wide_window: np.ndarray = _feature(default=True)
    #: 1 where the kernel is a later pass of a normalisation run as one call
    #: (:attr:`FusionPolicy.normalization_passes`): no launch or hand-off of its own.
    continued: np.ndarray = _feature(default=True)
    #: Kernels the compiler runs this one as beyond the first (:attr:`FusionPolicy.tree_reduce_window`):
    #: each pays a launch.
    extra_kernels: np.ndarray = _feature(default=True)
    #: Per kernel: (dtype of the matrix operands or vector outputs, StableHLO precision attribute).
    requests: tuple[tuple[str, str], ...]
    #: Bytes written into program outputs that are fresh memory on every call
    #: (:attr:`FusionPolicy.fresh_output_min_bytes`; outputs reusing a donated input excluded):
    #: each page pays a page fault on first touch.
    fresh_bytes: np.ndarray = _feature(default=True)
    #: Rhs elements (B x N x K) of a batched GEMM that multiplies by a transposed, computed rhs
    #: (:attr:`FusionPolicy.transposed_rhs_product`).
    transposed_rhs_elements: np.ndarray = _feature(default=True)
    #: Bytes of a GEMM's operands copied into its layout before it
    #: (:attr:`FusionPolicy.dot_operand_copies`): read and written once more.
    copied_bytes: np.ndarray = _feature(default=True)
    #: Bytes of score-sized scratch a fused attention allocates and streams on every call
    #: (:attr:`FusionPolicy.attention_scratch`).
    scratch_bytes: np.ndarray = _feature(default=True)
    #: The part of ``scratch_bytes`` fresh from the operating system on every call
    #: (:attr:`FusionPolicy.scratch_fault_min_bytes`): each page pays a page fault.
    fresh_scratch_bytes: np.ndarray = _feature(default=True)
    #: Elements a loop kernel reads through a transpose that moves the minor dimension
    #: (:attr:`FusionPolicy.strided_min_bytes`): a cache line each.
    strided_elements: np.ndarray = _feature(default=True)
    #: Input elements of sums the compiler runs as scalar loops
    #: (:attr:`FusionPolicy.scalar_sum_dtypes`), those over the minor dimension weighed by
    #: :attr:`FusionPolicy.scalar_sum_minor_weight`.
    scalar_sum_elements: np.ndarray = _feature(default=True)
    #: Elements converted to fp32 and back around a loop's low-precision arithmetic
    #: (:attr:`FusionPolicy.converted_dtypes`): per op, its tensor operands and its result.
    converted_elements: np.ndarray = _feature(default=True)
    #: 1 where XLA:CPU runs a GEMM as its generic ``dot`` (Eigen's contraction: a weight
    #: gradient), which splits over the thread pool by its own cost, not the library GEMM's.
    generic_dot: np.ndarray = _feature(default=True)
    #: The K (taps x input features) a matrix kernel's rate follows where it is not its own
    #: (0: its own): YNNPACK's odd-input-features convolutions run at the rate of a 3x3
    #: window's K whatever their window (:attr:`FusionPolicy.odd_features_taps`).
    rate_k: np.ndarray = _feature(default=True)
    #: 1 where a 1x1 convolution at stride 1 runs as a library convolution, not a GEMM, on a
    #: :attr:`FusionPolicy.serial_matrix` policy (XLA:CPU's YNNPACK convolution; a narrow one,
    #: at most 16 features in and out, is a plain dot in its HLO).
    pointwise_conv: np.ndarray = _feature(default=True)
    #: Dependent steps of a linear-algebra solver (:func:`solver_steps`; 0 elsewhere), each
    #: paying a launch or loop-iteration latency.
    serial_steps: np.ndarray = _feature(default=True)
    #: Host callbacks in the kernel (``jax.pure_callback``, ``jax.debug.print``): a round trip
    #: to the host each, plus their operands and results over the host link.
    host_round_trips: np.ndarray = _feature(default=True)
    #: Ops removed by fusion relative to one kernel per non-free op, and the bytes saved.
    unfused_kernels: int = 0
    unfused_bytes: float = 0.0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def bytes(self) -> np.ndarray:
        return self.bytes_read + self.bytes_written

    @classmethod
    def features(cls) -> tuple[str, ...]:
        """Names of the numeric per-kernel features (the fields the time models read)."""
        return tuple(f.name for f in dataclasses.fields(cls) if "feature" in f.metadata)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric features as arrays of their model dtype (what the jitted models consume)."""
        return {
            f.name: np.asarray(getattr(self, f.name), f.metadata["feature"])
            for f in dataclasses.fields(self)
            if "feature" in f.metadata
        }

    def to_dataframe(self):
        """One row per kernel: name, class, every feature, dtype and precision, op count."""
        import pandas as pd  # optional at import time: pandas loads in ~0.3 s

        cols = dict(kernel=self.names, kind=[KINDS[k] for k in self.kind])
        cols.update({name: getattr(self, name) for name in self.features() if name != "kind"})
        cols.update(
            dtype=[r[0] for r in self.requests],
            precision=[r[1] for r in self.requests],
            num_ops=[len(o) for o in self.ops],
        )
        return pd.DataFrame(cols)


#: Longest row a single normalisation kernel keeps on chip (elements).
_MAX_ROW = 32768


def _marked(scope: str) -> str | None:
    """The ``fused_kernel`` region an op's scope is in (its scope up to the marker), or None."""
    if KERNEL_SCOPE not in scope:
        return None
    m = KERNEL_SCOPE_RE.match(scope)
    return m.group(1) if m else None


def _mark_rows(group: dict, op: Op, cls: str, policy: FusionPolicy) -> None:
    """Records the row structure of a group anchored by a reduction (for normalisation fusion)."""
    if not policy.normalization or cls != "reduce" or group.get("rows") or _short(op) != "reduce":
        return
    n_in, n_out = op.operands[0].size, op.results[0].size
    if n_out < policy.normalization_min_rows:
        return
    if n_out and n_in % n_out == 0 and 1 < n_in // n_out <= _MAX_ROW:
        group["rows"], group["row_len"] = n_out, n_in // n_out


def _row_wise(op: Op, rows: int, row_len: int) -> bool:
    """Whether ``op`` works row by row on ``rows`` rows of ``row_len`` (a full row or one value per row)."""
    if not op.results:
        return False
    size = op.results[0].size
    if _short(op) == "reduce":
        return op.operands[0].size == rows * row_len and size == rows
    return size in (rows, rows * row_len)


def _through_free(i: int, direct: list[list[int]], cls: list[str]) -> list[int]:
    """Consumers of op ``i``, looking through free ops (reshape, broadcast ...)."""
    out, stack, seen = [], list(direct[i]), set()
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        if cls[c] == "free":
            if not direct[c]:
                out.append(-1)  # feeds an output through free ops
            stack.extend(direct[c])
        else:
            out.append(c)
    return out or [-1]


def fusion_policy(name: str) -> FusionPolicy:
    """The fusion policy called ``name`` (a key of ``POLICIES``), or a ValueError listing them."""
    if name not in POLICIES:
        raise InputError(f"unknown fusion policy {name!r}; expected one of {sorted(POLICIES)}.")
    return POLICIES[name]


def fuse(
    graph: Graph, policy: str | FusionPolicy = "gpu", *, aliased_outputs: Sequence[int] = ()
) -> Kernels:
    """Groups ``graph``'s ops into kernels under a family's fusion policy. ``aliased_outputs``:
    positions of the outputs that reuse a donated input's buffer (``donate_argnums``).

    Example:
      >>> import jax.numpy as jnp, perfjax
      >>> f = lambda x, w, b: perfjax.ops.relu(perfjax.ops.bias_add(perfjax.ops.matmul(x, w), b))
      >>> g = perfjax.analyze(f, (jnp.ones((8, 16)), jnp.ones((16, 4)), jnp.ones(4)))
      >>> len(fuse(g, "gpu")), len(fuse(g, "cpu"))  # GEMM + epilogue, vs GEMM then a loop fusion
      (1, 2)
    """
    if isinstance(policy, str):
        policy = fusion_policy(policy)
    fusion = _Fusion(graph, policy, aliased_outputs)
    groups = fusion.group()
    fused = fusion.kernels(groups)
    if not policy.normalization_passes or not any(g.get("rows") for g in groups):
        return fused  # no normalisation kernel: nothing to list as passes
    unfused_policy = dataclasses.replace(policy, normalization=False)
    fusion = _Fusion(graph, unfused_policy, aliased_outputs)
    passes = fusion.kernels(fusion.group())
    if len(passes) == len(fused):
        return fused
    return _normalization_passes(graph, fusion, fused, passes)


def _normalization_passes(
    graph: Graph, fusion: _Fusion, fused: Kernels, passes: Kernels
) -> Kernels:
    """``fused`` with each normalisation kernel replaced by its ``passes`` (the kernels of the
    unfused policy whose ops it holds), all but the first marked ``continued``. A normalisation
    of a GEMM's or convolution's result stays one kernel: XLA:CPU runs it inside the matrix
    product's library fusion (attention's q·kᵀ, softmax and ·v are one YNNPACK kernel)."""
    kernel_of = {op: ki for ki, ops in enumerate(fused.ops) for op in ops}
    matrix = {op for ki, ops in enumerate(passes.ops) if KINDS[passes.kind[ki]] in ("gemm", "conv")
              for op in ops}  # fmt: skip
    after_matrix = {
        kernel_of.get(i, -1)
        for i, op in enumerate(graph.ops)
        if any(b in matrix for s in op.sources for b in fusion.bases(s))
    }
    owners = [kernel_of.get(ops[0], -1) if ops else -1 for ops in passes.ops]
    passes_of: dict[int, list[int]] = {}
    for pi, owner in enumerate(owners):
        passes_of.setdefault(owner, []).append(pi)
    split = {o for o, ps in passes_of.items() if o >= 0 and len(ps) > 1} - after_matrix
    if not split:
        return fused
    # (table, row, continued) in program order: each fused kernel where it was, or its passes
    # one after another where the first was.
    rows, seen = [], set()
    for pi, owner in enumerate(owners):
        if owner in split and owner not in seen:
            rows.extend((passes, j, float(j != pi)) for j in passes_of[owner])
        elif owner not in seen and owner >= 0:
            rows.append((fused, owner, 0.0))
        elif owner < 0:
            rows.append((passes, pi, 0.0))
        seen.add(owner)
    features = {
        name: np.asarray([getattr(t, name)[i] for t, i, _ in rows], getattr(fused, name).dtype)
        for name in Kernels.features()
        if name != "continued"
    }
    # A pass's full-size result that only later passes read (layer norm's x - mean) stays in
    # the call: not written, each later pass recomputes it from the input it reads.
    for r, (t, i, _) in enumerate(rows):
        if t is not passes or owners[i] not in split:
            continue
        for op in t.ops[i]:
            readers = fusion.consumers[op]
            if (
                not fusion.is_output[op]
                and any(fusion.group_of[c] != fusion.group_of[op] for c in readers)
                and all(kernel_of.get(c) == owners[i] for c in readers)
            ):
                nbytes = sum(v.nbytes for v in graph.ops[op].results)
                if nbytes >= 0.5 * t.bytes_read[i]:  # values per row stay written
                    features["bytes_written"][r] -= nbytes
    return dataclasses.replace(
        fused,
        names=tuple(t.names[i] for t, i, _ in rows),
        ops=tuple(t.ops[i] for t, i, _ in rows),
        requests=tuple(t.requests[i] for t, i, _ in rows),
        continued=np.asarray([c for _, _, c in rows]),
        **features,
    )


_GROUP_KIND = {"loop": "elementwise", "gemm": "gemm", "conv": "conv", "reduce": "reduce",
               "collective": "collective"}  # fmt: skip


class _Fusion:
    """One graph under one policy: op classes, the values that really move, and the groups."""

    def __init__(self, graph: Graph, policy: FusionPolicy, aliased_outputs: Sequence[int] = ()):
        self.graph, self.policy, self.ops = graph, policy, graph.ops
        n = len(self.ops)
        self.cls = [op_class(o) for o in self.ops]
        if policy.in_place_update_loops:
            self.cls = [
                "loop" if c == "other" and _short(o) == "dynamic_update_slice" else c
                for c, o in zip(self.cls, self.ops, strict=True)
            ]
        self._mark_views()
        self._bases: dict[int, tuple[int, ...]] = {}
        # Consumers of each value, resolved through free ops to the ops that really read it.
        self.consumers: list[set[int]] = [set() for _ in range(n)]
        for i, op in enumerate(self.ops):
            if self.cls[i] in ("free", "view") or op.executions == 0:
                continue
            for s in op.sources:
                for b in self.bases(s):
                    if b >= 0:
                        self.consumers[b].add(i)
        self.is_output = [False] * n
        for out in graph.outputs:
            for b in self.bases(out):
                if b >= 0:
                    self.is_output[b] = True
        self.in_bytes = [t.nbytes for t in graph.in_types]
        # Output buffers fresh from the operating system on every call, by the op writing them
        # (an output copied from an input: by the copy's op).
        self.fresh: dict[int, float] = {}
        least, aliased = policy.fresh_output_min_bytes, set(aliased_outputs)
        for j, (out, t) in enumerate(zip(graph.outputs, graph.out_types, strict=False)):
            if 0 < least <= t.nbytes and j not in aliased and out >= 0:
                writer = next((b for b in self.bases(out) if b >= 0), out)
                self.fresh[writer] = self.fresh.get(writer, 0.0) + float(t.nbytes)
        self.transcendental_weights = dict(policy.transcendental_weights)
        # Regions marked with perfjax.ops.fused_kernel: one kernel per marked scope prefix.
        self.marked = [_marked(o.scope) for o in self.ops]
        # A region runs as often as its least-run op (constants and loop set-up included).
        self.region_runs: dict[str, int] = {}
        for key, o in zip(self.marked, self.ops):
            if key is not None and o.executions:
                self.region_runs[key] = min(self.region_runs.get(key, o.executions), o.executions)
        self.group_of = [-1] * n
        self.groups: list[dict[str, Any]] = []

    def _mark_views(self) -> None:
        """A transpose/slice whose only consumers are GEMMs/convs is the operand's layout or
        offset, as XLA folds it: a view, read by the GEMM at its own size, never a kernel."""
        ops, cls = self.ops, self.cls
        direct: list[list[int]] = [[] for _ in ops]
        for i, o in enumerate(ops):
            for s_ in o.sources:
                if s_ >= 0:
                    direct[s_].append(i)
        outputs = set(self.graph.outputs)
        for i, o in enumerate(ops):
            if _short(o) in _VIEWS and direct[i] and i not in outputs:
                if all(
                    c >= 0 and cls[c] in ("gemm", "conv") for c in _through_free(i, direct, cls)
                ):
                    cls[i] = "view"

    def bases(self, src: int) -> tuple[int, ...]:
        """The values operand ``src`` really reads, through free ops (a constant below
        ``_CONSTANT_DATA_BYTES`` and an iota are folded: none)."""
        if src < 0 or self.cls[src] != "free":
            return (src,)
        if src in self._bases:
            return self._bases[src]
        op = self.ops[src]
        short = _short(op)
        if short == "constant":
            out = (src,) if op.results and op.results[0].nbytes >= _CONSTANT_DATA_BYTES else ()
        elif short == "iota":
            out = ()
        else:
            out = tuple(dict.fromkeys(b for s in op.sources for b in self.bases(s)))
        self._bases[src] = out
        return out

    def is_input(self, b: int) -> bool:
        """Program input or constant (first touch), directly or through a view."""
        if b <= -2:
            return True
        if b >= 0 and _short(self.ops[b]) == "constant":
            return True
        if b >= 0 and self.cls[b] == "view":
            return any(self.is_input(x) for x in self.bases(self.ops[b].sources[0]))
        return False

    def value_bytes(self, b: int) -> float:
        if b <= -2:
            k = -2 - b
            return float(self.in_bytes[k]) if k < len(self.in_bytes) else 0.0
        return float(sum(r.nbytes for r in self.ops[b].results))

    def feeds_reduction(self, i: int, only: bool = False) -> bool:
        """Whether a reduction consumes op ``i``'s result, directly or through elementwise ops.
        ``only``: whether the result goes into reductions alone, through elementwise ops that
        nothing else reads (no program output, no other consumer on the way)."""
        if only and self.is_output[i]:
            return False
        stack, seen, found = list(self.consumers[i]), set(), False
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            if self.cls[c] == "reduce":
                found = True
                if not only:
                    return True
            elif self.cls[c] == "loop" and not (
                only and (self.is_output[c] or not self.consumers[c])
            ):
                stack.extend(self.consumers[c])
            elif only:
                return False
        return found

    # ---- grouping ----------------------------------------------------------------------------

    def group(self) -> list[dict[str, Any]]:
        """Every op into a group (a kernel), in program order: each op joins a producer's open
        group where the policy allows it, or starts its own."""
        ops, groups, group_of = self.ops, self.groups, self.group_of
        # Flash-op call -> its open elementwise kernel (policy.op_calls).
        call_group: dict[int, int] = {}
        marked_group: dict[str, int] = {}
        for i, op in enumerate(ops):
            c = self.cls[i]
            if c in ("free", "view") or op.executions == 0:
                continue
            if self.marked[i] is not None:
                self._join_marked(i, c, marked_group)
                continue
            producers = [
                b for s in op.sources for b in self.bases(s) if b >= 0 and group_of[b] >= 0
            ]
            target = self._target(i, c, producers, call_group)
            if target is not None and c == "loop" and groups[target]["kind"] == "elementwise":
                self._absorb_producers(target, i, producers)
            if target is not None:
                group_of[i] = target
                groups[target]["ops"].append(i)
                _mark_rows(groups[target], op, c, self.policy)
                continue
            kind = _GROUP_KIND.get(c, "other")
            group_of[i] = len(groups)
            groups.append(dict(kind=kind, ops=[i], open=kind in ("elementwise", "gemm", "conv"),
                               anchor=i, executions=op.executions))  # fmt: skip
            _mark_rows(groups[-1], op, c, self.policy)
            if kind == "elementwise" and self.policy.op_calls and op.call >= 0:
                call_group[op.call] = len(groups) - 1
        if not self.policy.multi_output_loops:
            self._split_outputs()
        self._output_copies()
        return self.groups

    def _split_outputs(self) -> None:
        """Each loop fusion with several outputs as one loop per output (``FusionPolicy.
        multi_output_loops`` off): an output's loop holds the ops it needs from the fusion,
        cheap ones recomputed in every loop that needs them; an expensive op (a transcendental,
        division or square root) two outputs need is an output of its own loop, read by them."""
        split: list[dict[str, Any]] = []
        for gi, g in enumerate(self.groups):
            if (g.get("dead") or g.get("copy") or g.get("marked") or g["kind"] != "elementwise"
                    or len(g["ops"]) < 2):  # fmt: skip
                split.append(g)
                continue
            members = set(g["ops"])
            writes = [i for i in g["ops"] if self.is_output[i]
                      or any(self.group_of[c] != gi for c in self.consumers[i])]  # fmt: skip
            if len(writes) < 2:
                split.append(g)
                continue
            inner = {i: [b for s in self.ops[i].sources for b in self.bases(s) if b in members]
                     for i in g["ops"]}  # fmt: skip
            cut = set(writes)
            while True:
                users: dict[int, int] = {}
                for o in cut:
                    for j in _cone(o, inner, cut) - {o}:
                        users[j] = users.get(j, 0) + 1
                shared = [j for j, n in users.items() if n > 1 and _expensive(self.ops[j])]
                if not shared:
                    break
                cut.update(shared)
            for o in sorted(cut):
                cone = sorted(_cone(o, inner, cut))
                split.append(dict(g, ops=cone, anchor=o, writes={o}, open=False))
        self.groups = split
        # Each op to the kernel writing it, else to the first that computes it.
        self.group_of = [-1] * len(self.ops)
        for gi, g in enumerate(split):
            if g.get("dead"):
                continue
            for j in g["ops"]:
                if self.group_of[j] < 0 or j in g.get("writes", ()):
                    self.group_of[j] = gi
        # XLA fuses a producer into its consumer: a loop split off whose one output only one
        # other loop reads (a square root the update divides by) runs inside that loop.
        for gi, g in enumerate(split):
            if "writes" not in g or g.get("dead"):
                continue
            (o,) = g["writes"]
            readers = {self.group_of[c] for c in self.consumers[o]}
            if self.is_output[o] or len(readers) != 1:
                continue
            (ti,) = readers
            t = split[ti]
            if ti == gi or t.get("dead") or t["kind"] != "elementwise" or t.get("marked"):
                continue
            t["ops"] = sorted(set(t["ops"]) | set(g["ops"]))
            g["dead"] = True
            for j in g["ops"]:
                if self.group_of[j] == gi:
                    self.group_of[j] = ti

    def _output_copies(self) -> None:
        """An output that is a program input under another name (``x + 0``, ``x * 1`` or a
        reshape, which XLA simplifies away) cannot share the input's buffer unless donated: XLA
        copies it, one memory-bound kernel. (An input returned as it is is copied too, but has no
        op to carry the kernel: not counted.)"""
        for out in dict.fromkeys(self.graph.outputs):
            if out < 0 or self.group_of[out] >= 0 or self.cls[out] != "free":
                continue
            bases = self.bases(out)
            if not bases or any(b > -2 for b in bases):
                continue
            self.is_output[out] = True
            self.group_of[out] = len(self.groups)
            self.groups.append(dict(kind="elementwise", ops=[out], open=False, anchor=out,
                                    executions=1, copy=True))  # fmt: skip

    def _join_marked(self, i: int, c: str, marked_group: dict[str, int]) -> None:
        """Op ``i`` of a ``fused_kernel`` region joins the region's one kernel: a GEMM kernel
        anchored by its largest GEMM when it has one, run as often as the region is entered."""
        op, groups = self.ops[i], self.groups
        key = self.marked[i]
        if key not in marked_group:
            marked_group[key] = len(groups)
            groups.append(dict(kind=_GROUP_KIND.get(c, "other"), ops=[], open=False, anchor=i,
                               executions=self.region_runs[key], marked=key))  # fmt: skip
        gi = marked_group[key]
        g = groups[gi]
        g["ops"].append(i)
        self.group_of[i] = gi
        if c == "gemm" and (g["kind"] != "gemm" or op.flops > self.ops[g["anchor"]].flops):
            g["kind"], g["anchor"] = "gemm", i

    def _target(
        self, i: int, c: str, producers: list[int], call_group: dict[int, int]
    ) -> int | None:
        """The group op ``i`` (of class ``c``) joins, or None for a new kernel."""
        op, policy, groups, group_of = self.ops[i], self.policy, self.groups, self.group_of
        target = None
        if c == "loop" and policy.op_calls and op.call >= 0 and op.call in call_group:
            g = groups[call_group[op.call]]
            if g["open"] and g["kind"] == "elementwise" and g["executions"] == op.executions:
                target = call_group[op.call]
        if target is None and c == "loop" and policy.loop_fusion:
            for p in producers:
                g = groups[group_of[p]]
                if g["executions"] != op.executions or not g["open"]:
                    continue
                if g["kind"] == "elementwise":
                    target = group_of[p]
                    break
                if (
                    g["kind"] in ("gemm", "conv")
                    and policy.epilogue
                    and self.consumers[p] == {i}
                    and not self.is_output[p]
                ):
                    target = group_of[p]
                    break
        elif c == "reduce" and policy.reduce_inputs:
            for p in producers:
                g = groups[group_of[p]]
                if g["kind"] == "elementwise" and g["open"] and g["executions"] == op.executions:
                    target = group_of[p]
                    g["kind"], g["open"], g["anchor"] = "reduce", False, i
                    break
        if target is None and policy.normalization and c in ("loop", "reduce"):
            # Join a row-wise normalisation kernel when this op works on the same rows.
            for p in producers:
                g = groups[group_of[p]]
                if policy.op_calls and self.ops[g["ops"][0]].call != op.call:
                    continue  # an eager framework's normalisation kernel ends with its op
                if (
                    g.get("rows")
                    and g["executions"] == op.executions
                    and _row_wise(op, g["rows"], g["row_len"])
                ):
                    target = group_of[p]
                    break
        return target

    def _absorb_producers(self, target: int, i: int, producers: list[int]) -> None:
        """XLA's loop fusion takes every producer whose only consumers are in the fusion: a
        GELU's 0.5 * x branch joins the tanh branch (one kernel, not two)."""
        op, groups, group_of = self.ops[i], self.groups, self.group_of
        for p in producers:
            gp = group_of[p]
            g = groups[gp]
            if gp == target or g.get("dead") or g["kind"] != "elementwise" or not g["open"]:
                continue
            if g["executions"] != op.executions or self.policy.op_calls:
                continue
            inside = set(g["ops"]) | {i}
            if any(self.is_output[j] or not self.consumers[j] <= inside for j in g["ops"]):
                continue
            for j in g["ops"]:
                group_of[j] = target
            groups[target]["ops"] = sorted(groups[target]["ops"] + g["ops"])
            g["dead"] = True

    # ---- kernel features ---------------------------------------------------------------------

    def _traffic(
        self, gi: int, members: list[int]
    ) -> tuple[dict[int, float], float, float, float, float, float, float, float, float]:
        """A group's boundary traffic and work: (bytes read per value, bytes written, output
        elements, matrix FLOPs, vector FLOPs, transcendentals, weighted transcendentals, bytes
        written into fresh output buffers, chained transcendentals)."""
        ops, member_set = self.ops, set(members)
        reads: dict[int, float] = {}
        written = out_elems = mflops = vflops = trans = trans_work = fresh = chained = 0.0
        weight = self.transcendental_weights
        runs = float(self.groups[gi]["executions"]) or 1.0
        for i in members:
            op = ops[i]
            # Runs of this op per run of its kernel (ops in a loop inside a fused_kernel region
            # run once per iteration; elsewhere every member runs as often as its kernel).
            r = op.executions / runs
            partial = _short(op) in _PARTIAL_READ
            # XLA updates a dynamic_update_slice's buffer in place: only the slice moves.
            in_place = _short(op) == "dynamic_update_slice" and len(op.operands) > 1
            for j, s in enumerate(op.sources):
                for b in self.bases(s):
                    if b == -1 or (b >= 0 and b in member_set):
                        continue
                    need = self.value_bytes(b)
                    if partial and j == 0:
                        # A gather/slice touches only the elements it returns.
                        need = min(need, r * float(sum(t.nbytes for t in op.results)))
                    if in_place and j == 0:
                        need = 0.0
                    reads[b] = max(reads.get(b, 0.0), need)
            if in_place and r > 1:
                # A loop stacking its per-iteration results in place: every slice is written.
                written += r * float(op.operands[1].nbytes)
                out_elems += r * float(op.operands[1].size)
            elif (
                i in self.groups[gi]["writes"] if "writes" in self.groups[gi]
                else self.is_output[i] or any(self.group_of[c] != gi for c in self.consumers[i])
            ):  # fmt: skip
                if in_place:
                    written += float(op.operands[1].nbytes)
                    out_elems += float(op.operands[1].size)
                else:
                    written += sum(t.nbytes for t in op.results)
                    out_elems += sum(t.size for t in op.results)
            if self.cls[i] in ("gemm", "conv"):
                mflops += r * op.flops
            else:
                vflops += r * op.flops
            trans += r * op.transcendentals
            if op.transcendentals:
                trans_work += r * op.transcendentals * weight.get(_short(op), 1.0)
                if _short(op) in self.policy.chained_transcendentals:
                    chained += r * op.transcendentals
            fresh += self.fresh.get(i, 0.0)
        return reads, written, out_elems, mflops, vflops, trans, trans_work, fresh, chained

    def _parallel_units(self, g: dict[str, Any], b_: float) -> tuple[float, bool]:
        """(independent pieces of work, whether the kernel falls back to XLA's generic path) on
        a policy whose matrix kernels split over cores only in blocks (see the module notes)."""
        anchor, kind = self.ops[g["anchor"]], g["kind"]
        if g.get("copy") and self.policy.serial_copies:
            return 1.0, False
        feats = dict(anchor.features)
        units = UNBOUNDED
        dense_conv = kind == "conv" and feats.get("groups", 1) == 1
        if self.policy.serial_matrix and (kind == "conv" or (kind == "gemm" and b_ > 1)):
            # Blocks of one matrix's weights: a convolution's 64 output features at a time once
            # its weights (its groups share them) are large enough, a batched GEMM's 512 KiB;
            # pairs of batch entries (images, or matrices of a batched GEMM) before a reduction,
            # which grouped (depthwise) convolutions do not split into
            # (benchmarks/host_grouped_conv_split.py).
            if kind == "conv":
                large = anchor.operands[1].nbytes >= _CONV_SPLIT_BYTES
                units = float(feats.get("out_features", 1) // _CONV_SPLIT_COLUMNS) if large else 1.0
            else:
                units = float(anchor.operands[1].nbytes / b_ // _WEIGHT_BLOCK_BYTES)
            units = max(1.0, units)
            if (kind == "gemm" and self.feeds_reduction(g["anchor"])) or (
                dense_conv and self.feeds_reduction(g["anchor"], only=True)
            ):
                lead = float(feats.get("batch", 1)) if kind == "conv" else b_
                units = max(units, lead / 2.0)
        narrow = _narrow(feats)
        # A window wider than the input (a 3x3 kernel over a 2x2 feature map): XLA pads the input
        # in a separate kernel and calls Eigen (measured 0.4-2.4 GFLOP/s against 11-30 at 3x3+).
        small = _wide_window(feats)
        # A 1x1 window at stride 1 is a matrix product: XLA rewrites a narrow one as a dot.
        pointwise = _pointwise(feats)
        # An odd number of input features (3: RGB) into 17-32 output features: YNNPACK runs it,
        # 2-8x slower than from an even number (benchmarks/results/host_conv_channels_epyc.csv).
        odd = _odd_features(feats)
        fallback = (
            self.policy.serial_matrix
            and dense_conv
            and (small or (not pointwise and (narrow or odd)))
        )
        # Eigen splits its own work over the pool (1.6-1.7x on two cores, measured).
        return (UNBOUNDED if fallback else units), fallback

    def _rate_k(self, g: dict[str, Any]) -> float:
        """The K (taps x input features) whose rate convolution ``g`` runs at, where a
        :attr:`FusionPolicy.odd_features_taps` policy runs it on YNNPACK's odd-input-features
        path: that many taps' worth of its input features (0: its own K)."""
        taps = self.policy.odd_features_taps
        feats = dict(self.ops[g["anchor"]].features)
        if not taps or g["kind"] != "conv" or not _odd_features(feats) or _wide_window(feats):
            return 0.0
        # Windows that overlap (a stride below the window): a patch embedding (a window at a
        # stride of its own size) ran at 7-30 GFLOP/s from 3 features, neither flat nor as its
        # own K would have it (benchmarks/results/host_conv_odd_windows_epyc.csv).
        sides = zip(feats.get("kernel_spatial", ()), feats.get("strides", ()), strict=False)
        if not all(s < k for k, s in sides):
            return 0.0
        return float(taps * feats.get("in_features", 1))

    def _scalar_sum_elements(self, g: dict[str, Any]) -> float:
        """Input elements, per run of kernel ``g``, of its sums that accumulate in one of
        :attr:`FusionPolicy.scalar_sum_dtypes`, those over the minor dimension weighed by
        :attr:`FusionPolicy.scalar_sum_minor_weight`."""
        dtypes = self.policy.scalar_sum_dtypes
        if not dtypes:
            return 0.0
        total, runs = 0.0, float(g["executions"]) or 1.0
        for i in g["ops"]:
            f = self.ops[i].features
            if _short(self.ops[i]) != "reduce" or f.get("reducer") != "add":
                continue
            summed = f.get("in_elements", 0) > f.get("out_elements", 0)  # (a dim of one: no sum)
            if f.get("accumulator") not in dtypes or not summed:
                continue
            weight = self.policy.scalar_sum_minor_weight if f.get("minor_reduced") else 1.0
            total += float(self.ops[i].executions) / runs * float(f.get("in_elements", 0)) * weight
        return total

    def _converted_elements(self, g: dict[str, Any]) -> float:
        """Elements, per run of loop kernel ``g``, converted to fp32 and back around its
        arithmetic in one of :attr:`FusionPolicy.converted_dtypes`: each op's tensor operands
        (a broadcast one at its source's size: the convert comes before the broadcast) and its
        result. Data movement, selects and explicit converts compute nothing: none."""
        dtypes = self.policy.converted_dtypes
        if not dtypes or g["kind"] in ("gemm", "conv"):
            return 0.0
        total, runs, seen = 0.0, float(g["executions"]) or 1.0, set()
        for i in g["ops"]:
            op = self.ops[i]
            if (not op.results or op.results[0].dtype not in dtypes
                    or not (op.flops or op.transcendentals)
                    or _short(op) in ("select", "convert", "bitcast_convert")):  # fmt: skip
                continue
            count = float(op.results[0].size)
            for s, t in zip(op.sources, op.operands, strict=False):
                # A value read by several ops is converted once (XLA's CSE).
                bases = [b for b in self.bases(s) if b != -1 and b not in seen]
                if t.dtype in dtypes and bases:
                    seen.update(bases)
                    source = sum(self.value_bytes(b) for b in bases) / (t.bits / 8 or 1.0)
                    count += min(float(t.size), source)
            total += float(op.executions) / runs * count
        return total

    def _strided_elements(self, g: dict[str, Any]) -> float:
        """Elements the loop kernel ``g`` reads through minor-moving transposes of operands of
        at least :attr:`FusionPolicy.strided_min_bytes`, and of a smaller bf16 dot's result
        weighed by :attr:`FusionPolicy.strided_small_dot_weight` (none in a kernel of data
        movement alone, nor of an fp32/fp64 dot's result or an outer product's, which XLA folds
        into the dot or the broadcast)."""
        least, ops = self.policy.strided_min_bytes, self.ops
        members = g["ops"]
        if not least or all(_short(ops[i]) in _MOVEMENT for i in members):
            return 0.0
        total = 0.0
        for i in members:
            op = ops[i]
            if _short(op) != "transpose" or not op.features.get("minor_moved"):
                continue
            if not op.operands:
                continue
            src = next((b for s in op.sources for b in self.bases(s) if b >= 0), -1)
            from_dot = src >= 0 and _short(ops[src]) == "dot_general"
            if from_dot and (
                # An outer product is a broadcast multiply: the transpose moves into it.
                ops[src].features.get("k", 2) == 1
                or str(ops[src].results[0].dtype) in ("float32", "float64")
            ):
                continue
            weight = 1.0
            if op.operands[0].nbytes < least:
                if not from_dot:
                    continue
                # A bf16 dot's result read transposed by the loop after it, in cache.
                weight = self.policy.strided_small_dot_weight
            total += weight * float(op.executions) * float(op.results[0].size)
        return total

    def _generic_dot(self, g: dict[str, Any], b_: float) -> bool:
        """Whether XLA:CPU runs GEMM kernel ``g`` as its generic ``dot`` (Eigen's contraction,
        a plain ``dot`` in the compiled HLO) rather than a YNNPACK fusion: a 2-D GEMM contracting
        both operands over their major dimension (a weight gradient, ``xᵀ·dy``), on a policy with
        :attr:`FusionPolicy.generic_dot_strided`."""
        anchor = self.ops[g["anchor"]]
        feats = anchor.features
        return bool(
            self.policy.generic_dot_strided
            and g["kind"] == "gemm"
            and b_ <= 1
            and not feats.get("lhs_minor_contracted", True)
            and not feats.get("rhs_minor_contracted", False)
            and tuple(feats.get("ranks", (2, 2))) == (2, 2)
            and len(anchor.operands) >= 2
        )

    def _generic_dot_strided_elements(
        self, g: dict[str, Any], b_: float, m_: float, n_: float, k_: float
    ) -> float:
        """Elements of the operand a 2-D GEMM contracted over both operands' major dimension
        (a weight gradient, ``xᵀ·dy``) reads across its rows, weighed by the share of a cache
        line each costs (:attr:`FusionPolicy.generic_dot_strided`; 0 elsewhere). XLA:CPU runs
        such a dot as its generic ``dot`` with the operand whose free dimension leads the result
        as its lhs: the StableHLO lhs, or the rhs where the result is transposed after the dot
        (JAX's weight gradients)."""
        anchor = self.ops[g["anchor"]]
        if not self._generic_dot(g, b_):
            return 0.0
        flipped = any(_short(self.ops[c]) == "transpose" for c in self.consumers[g["anchor"]])
        operand, rows = (anchor.operands[1], n_) if flipped else (anchor.operands[0], m_)
        stride_bytes = rows * operand.nbytes / max(1, operand.size)
        aliased, other = self.policy.generic_dot_strided
        if stride_bytes >= aliased and stride_bytes % aliased == 0:
            share = 1.0  # rows that all map to the same few cache sets
        else:
            share = other * min(1.0, stride_bytes / (aliased / 2))
        return k_ * rows * share

    def _copied_operand_bytes(self, g: dict[str, Any]) -> float:
        """Bytes of the GEMM's operands copied into its layout before it
        (:attr:`FusionPolicy.dot_operand_copies`): those not laid out as a batched GEMM reads
        them that no loop produces (a loop writes its output in the GEMM's layout)."""
        anchor = self.ops[g["anchor"]]
        if not self.policy.dot_operand_copies or len(anchor.sources) < 2:
            return 0.0
        total = 0.0
        for side, src, operand in zip(
            ("lhs", "rhs"), anchor.sources, anchor.operands, strict=False
        ):
            if anchor.features.get(f"{side}_canonical", True):
                continue
            looped = any(
                b >= 0 and self.cls[b] not in ("gemm", "conv") and not self.is_input(b)
                for b in self.bases(src)
            )
            if not looped:
                total += float(operand.nbytes)
        return total

    def _tree_kernels(self, g: dict[str, Any], anchor: Op) -> float:
        """Kernels a plain-loop reduction runs as beyond one (:attr:`FusionPolicy.tree_reduce_window`):
        a reduction stage per factor of the window in its reduced length, and the loop fused
        into it (any op of the group but the reduction) as a kernel of its own."""
        window = self.policy.tree_reduce_window
        feats = anchor.features
        if not window or not feats.get("minor_reduced"):
            return 0.0
        length = feats.get("in_elements", 1) / max(1, feats.get("out_elements", 1))
        if length <= window:
            return 0.0
        stages = math.ceil(math.log(length) / math.log(window) - 1e-9)
        producer = any(i != g["anchor"] and self.cls[i] == "loop" for i in g["ops"])
        return float(stages - 1 + producer)

    def _row(self, gi: int, g: dict[str, Any]) -> dict[str, Any]:
        """One kernel's record: name, ops, dtype request and every feature."""
        ops, members = self.ops, g["ops"]
        reads, written, out_elems, mflops, vflops, trans, trans_work, fresh, chained = (
            self._traffic(gi, members)
        )
        anchor = ops[g["anchor"]]
        feats = dict(anchor.features)
        b_, m_, n_, k_ = _gemm_view(g["kind"], feats)
        weight = 0.0
        if g["kind"] in ("gemm", "conv") and len(anchor.sources) > 1:
            for b in self.bases(anchor.sources[1]):
                if self.is_input(b):
                    weight += self.value_bytes(b)
        if g["kind"] in ("gemm", "conv"):
            request = (anchor.operands[0].dtype, str(feats.get("precision", "DEFAULT")))
        else:
            request = (anchor.results[0].dtype if anchor.results else "float32", "DEFAULT")
        if not out_elems:
            out_elems = float(sum(r.size for r in anchor.results))
        if g["kind"] == "reduce" and anchor.operands:
            # A reduction's parallelism is over the elements it reads, not the few it writes.
            out_elems = max(out_elems, float(anchor.operands[0].size))
        transposed = 0.0
        if (
            self.policy.transposed_rhs_product and g["kind"] == "gemm"
            and m_ < _TRANSPOSED_RHS_MAX_M
            and feats.get("rhs_minor_contracted") and not feats.get("lhs_minor_contracted", True)
            and len(anchor.sources) > 1
            and not any(self.is_input(b) for b in self.bases(anchor.sources[1]))
        ):  # fmt: skip
            transposed = b_ * n_ * k_
        rows, keys, head = self.policy.attention_scratch
        scratch = (
            _SCRATCH_BLOCKS * 4.0 * transposed  # float32 blocks of the scores' elements
            if transposed and rows and b_ * n_ >= rows and k_ <= keys and m_ <= head
            else 0.0
        )
        least = self.policy.scratch_fault_min_bytes
        fresh_scratch = scratch if least and scratch >= least else 0.0
        copied = self._copied_operand_bytes(g) if g["kind"] == "gemm" else 0.0
        if g["kind"] in ("elementwise", "reduce"):
            strided = self._strided_elements(g)
        elif g["kind"] == "gemm":
            strided = self._generic_dot_strided_elements(g, b_, m_, n_, k_)
        else:
            strided = 0.0
        generic = self._generic_dot(g, b_)
        scalar_sums = self._scalar_sum_elements(g)
        converted = self._converted_elements(g)
        label = anchor.origin or anchor.scope.rsplit("/", 1)[-1] or _short(anchor)
        units, fallback = self._parallel_units(g, b_)
        rate_k = self._rate_k(g) if fallback else 0.0
        pointwise_conv = (self.policy.serial_matrix and g["kind"] == "conv"
                          and feats.get("groups", 1) == 1 and _pointwise(feats)
                          and not _narrow(feats))  # fmt: skip
        # Convolutions XLA:CPU hands to Eigen's generic convolution: over a dilated input (a
        # strided one's input gradient), or a window wider than the input (a `fallback`).
        dilated = (self.policy.serial_matrix and g["kind"] == "conv"
                   and max(feats.get("lhs_dilation", ()) or (1,)) > 1)  # fmt: skip
        grouped = feats.get("groups", 1) > 1
        wide = fallback and _wide_window(feats)
        if (dilated and not grouped) or wide:
            # Eigen skips the dilation's zeros of a dense convolution, and a window wider than
            # its input does only the taps on it: their positions are the (output, tap) pairs
            # on real elements (1/4 at stride 2).
            m_ *= float(feats.get("tap_share", 1.0))
        kind = g["kind"]
        small = self.policy.library_reduce_min_elements
        extra = 0.0
        if kind == "reduce" and anchor.operands and anchor.operands[0].size < small:
            kind = "elementwise"
            extra = self._tree_kernels(g, anchor)
        return dict(
            names=f"{label}:{_short(anchor)}" + (f"+{len(members) - 1}" if len(members) > 1 else ""),
            ops=tuple(members), requests=request, kind=_KIND_INDEX[kind],
            matrix_flops=mflops, vector_flops=vflops, transcendentals=trans,
            transcendental_work=trans_work, chained_transcendentals=chained, fresh_bytes=fresh, transposed_rhs_elements=transposed, copied_bytes=copied, scratch_bytes=scratch,
            fresh_scratch_bytes=fresh_scratch,
            strided_elements=strided, scalar_sum_elements=scalar_sums, converted_elements=converted,
            generic_dot=float(generic), rate_k=rate_k, pointwise_conv=float(pointwise_conv),
            bytes_read=float(sum(reads.values())), bytes_written=written,
            gemm_b=b_, gemm_m=m_, gemm_n=n_, gemm_k=k_, out_elements=out_elems, weight_bytes=weight,
            input_bytes=float(sum(v for b, v in reads.items() if self.is_input(b))),
            executions=float(g["executions"]), parallel_units=units, fallback=float(fallback),
            dilated_input=float(dilated and grouped), wide_window=float(wide), continued=0.0,
            extra_kernels=extra,
            serial_steps=sum(solver_steps(dict(ops[i].features)) for i in members),
            host_round_trips=float(sum(ops[i].features.get("kind") == "host_callback" for i in members)),
        )  # fmt: skip

    def kernels(self, groups: list[dict[str, Any]]) -> Kernels:
        """The :class:`Kernels` table of the groups (merged-away groups left out)."""
        rows: dict[str, list] = {k: [] for k in ("names", "ops", "requests", *Kernels.features())}
        for gi, g in enumerate(groups):
            if g.get("dead"):
                continue  # merged into another loop fusion
            for key, value in self._row(gi, g).items():
                rows[key].append(value)

        def arr(key: str, dtype: Any = np.float64) -> np.ndarray:
            return np.asarray(rows[key], dtype=dtype).reshape(-1)

        ops = self.ops
        kernel_like = [c not in ("free", "view") for c in self.cls]
        unfused_count = sum(1 for i, o in enumerate(ops) if kernel_like[i] and o.executions)
        unfused_bytes = float(
            sum(o.bytes * o.executions for i, o in enumerate(ops) if kernel_like[i])
        )
        per_program = ("program_input_bytes", "program_inputs", "program_outputs", "pruned_inputs")
        features = {name: arr(name) for name in Kernels.features() if name not in per_program}
        n = len(rows["names"])
        return Kernels(
            policy=self.policy.name,
            names=tuple(rows["names"]),
            ops=tuple(rows["ops"]),
            requests=tuple(rows["requests"]),
            **{**features, "kind": arr("kind", np.int32)},
            program_input_bytes=np.full(n, float(self.graph.input_bytes)),
            program_inputs=np.full(n, float(len(self.graph.in_types))),
            program_outputs=np.full(n, float(len(self.graph.out_types))),
            pruned_inputs=np.zeros(n),  # the graph has none: kernels_for counts them
            unfused_kernels=unfused_count,
            unfused_bytes=unfused_bytes,
        )


def _narrow(feats: Mapping[str, Any]) -> bool:
    """Whether a convolution has at most ``_NARROW_FEATURES`` input and output features (XLA:CPU
    runs a dense one on Eigen's path, a 1x1 one as a plain dot)."""
    return max(feats.get("in_features", 1), feats.get("out_features", 1)) <= _NARROW_FEATURES


def _pointwise(feats: Mapping[str, Any]) -> bool:
    """Whether a convolution's window is 1x1 at stride 1 (a product of pixels by weights)."""
    return all(k == 1 for k in feats.get("kernel_spatial", ())) and all(
        s == 1 for s in feats.get("strides", ())
    )


def _odd_features(feats: Mapping[str, Any]) -> bool:
    """Whether a convolution runs from an odd number of input features below
    ``_NARROW_FEATURES`` (3: RGB) into more than that and at most ``_ODD_FEATURES_MAX_OUT``
    output features: YNNPACK's slow path on XLA:CPU."""
    cin, cout = feats.get("in_features", 1), feats.get("out_features", 1)
    return cin % 2 == 1 and 1 < cin < _NARROW_FEATURES < cout <= _ODD_FEATURES_MAX_OUT


def _wide_window(feats: Mapping[str, Any]) -> bool:
    """Whether a convolution's window is wider than its input along a spatial axis."""
    sides = zip(feats.get("in_spatial", ()), feats.get("kernel_spatial", ()), strict=False)
    return any(i < k for i, k in sides)


def _gemm_view(kind: str, feats: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """(batch, M, N, K) of a GEMM or of a convolution as an implicit GEMM; ones elsewhere."""
    if kind == "gemm" and feats:
        return tuple(float(feats.get(x, 1)) for x in ("batch", "m", "n", "k"))
    if kind == "conv" and feats:
        groups_ = float(feats.get("groups", 1))
        out_sp = float(np.prod(feats.get("out_spatial", (1,))))
        k_sp = float(np.prod(feats.get("kernel_spatial", (1,))))
        return (
            groups_,
            float(feats.get("batch", 1)) * out_sp,
            float(feats.get("out_features", 1)) / groups_,
            float(feats.get("in_features", 1)) / groups_ * k_sp,
        )
    return 1.0, 1.0, 1.0, 1.0


def xla_cpu_kernel_count(hlo_text: str) -> int:
    """Kernels in XLA's optimized CPU HLO: fusions, library calls and unfused compute ops of the
    entry computation (what perfjax's ``cpu`` policy is checked against)."""
    entry = hlo_text.split("ENTRY", 1)[-1]
    body = entry.split("\n}\n", 1)[0]
    skip = (
        "parameter(",
        "constant(",
        "bitcast(",
        "tuple(",
        "get-tuple-element(",
        "copy-start",
        "copy-done",
    )
    count = 0
    for line in body.splitlines()[1:]:
        line = line.strip()
        if "=" not in line or (line.startswith("ROOT") and "tuple(" in line):
            continue
        rhs = line.split("=", 1)[1]
        if any(s in rhs for s in skip):
            continue
        count += 1
    return count


# Kernels are cached per Program object, policy and graph options.
_kernels: weakref.WeakKeyDictionary[Program, dict[Any, Kernels]] = weakref.WeakKeyDictionary()


def kernels_for(
    program: Program,
    family: str,
    fusion: str | None = None,
    *,
    on_unsupported: str = "error",
    loop_trips: int | None = None,
) -> Kernels:
    """The program's kernels under ``fusion`` (a policy name), by default the family's policy."""
    policy = fusion or family
    table = _kernels.setdefault(program, {})
    key = (policy, on_unsupported, loop_trips)
    if key not in table:
        graph = graph_for(program, on_unsupported=on_unsupported, loop_trips=loop_trips)
        least = fusion_policy(policy).fresh_output_min_bytes
        # Donation only matters where an output is large enough to be fresh memory.
        large = least > 0 and any(t.nbytes >= least for t in graph.out_types)
        aliased = _aliased_outputs(program, graph) if large else ()
        kernels = fuse(graph, policy, aliased_outputs=aliased)
        pruned = _pruned_inputs(program, graph)
        table[key] = dataclasses.replace(kernels, pruned_inputs=np.full(len(kernels), pruned))
    return table[key]


def _pruned_inputs(program: Program, graph: Graph) -> float:
    """Arguments of the traced function (its example inputs' leaves) that ``jax.jit`` left out
    of the program because nothing reads them: 0 where the inputs are unknown (StableHLO text)."""
    if program.example_inputs is None:
        return 0
    leaves = len(jax.tree_util.tree_leaves(program.example_inputs))
    return float(max(0, leaves - len(graph.in_types)))


def _aliased_outputs(program: Program, graph: Graph) -> tuple[int, ...]:
    """Positions of the outputs that reuse a donated argument's buffer (read from the module
    text)."""
    in_bytes = [t.nbytes for t in graph.in_types]
    out_bytes = [t.nbytes for t in graph.out_types]
    return tuple(sorted(aliased_outputs(arguments(program), in_bytes, out_bytes)))
