"""The TPU time model: systolic MXUs with stationary weights, K and N padded to the array side,
M streamed in rows of 8, and a fill/drain cost per weight tile.

Example:
  >>> import perfjax
  >>> from perfjax.fusion import fuse
  >>> from perfjax.devicemodels import default_params, device, pack, resolve
  >>> g = perfjax.analyze(lambda a, b: a @ b, (jnp.ones((512, 512)), jnp.ones((512, 512))))
  >>> k, spec = fuse(g, "tpu"), device("tpu-v4")
  >>> t = kernel_times(k.arrays(), pack(spec), default_params("tpu"), resolve(k, spec).arrays())
  >>> 1e-6 < float(t.time_s[0]) < 1e-3
  True
"""

from __future__ import annotations

import jax.numpy as jnp

from perfjax.devicemodels._common import (
    Arrays,
    KernelTimes,
    MatrixWork,
    P,
    ceil_to,
    device_factor,
    finish,
    launch_time,
    matrix_time,
    memory_time,
    overlap,
    rates,
    vector_time,
)

#: Host round trip of one Python callback (a host synchronisation; assumed, not measured).
_CALLBACK_S = 50e-6


def mxu_work(k: Arrays, dev: Arrays, params: Arrays) -> MatrixWork:
    """Weight tiles (N x K, padded to the array side T) spread over all MXUs of the chip, each
    costing ``fill`` x T cycles of systolic fill and drain. The number of MXUs follows from the
    published bf16 peak: peak / (2 T^2 clock), kept continuous so a higher peak never makes any
    unit slower (a rounded count would)."""
    tile = dev["matrix_tile"]
    b, m, n, kk = k["gemm_b"], k["gemm_m"], k["gemm_n"], k["gemm_k"]
    rows = ceil_to(m, 8.0)
    padded = 2.0 * b * rows * ceil_to(n, tile) * ceil_to(kk, tile)
    fill_util = rows / (rows + tile * jnp.exp(params["fill_log"]))
    units = jnp.maximum(
        dev["matrix_peaks"][..., P["bf16"]] / (2.0 * tile * tile * dev["clock_hz"]), 1.0
    )
    tiles = b * jnp.ceil(n / tile) * jnp.ceil(kk / tile)
    return MatrixWork(tiles / units, units, fill_util, padded, rows, tile)


def kernel_times(k: Arrays, dev: Arrays, params: Arrays, res: Arrays) -> KernelTimes:
    """Per-kernel time (seconds per execution) and its parts on a TPU. Pure and vectorised
    (arguments as :func:`perfjax.devicemodels._gpu.kernel_times`)."""
    r = rates(k, dev, params, res)
    k, kind = r.k, r.kind
    cores = dev["num_cores"] * jnp.ones_like(k["matrix_flops"])
    mt = matrix_time(k, params, res, r, mxu_work(k, dev, params), r.peaks)
    t_vector, occupancy = vector_time(k, params, r, r.vec_peak, cores)
    t_compute = mt.t_matrix + t_vector
    mem = memory_time(k, dev, params, res, r, occupancy)
    factor = device_factor(params, kind)
    t_body = overlap(t_compute, mem.t_memory, params) * factor
    # A solver's dependent panel steps are loop iterations, each a launch's latency.
    t_launch = launch_time(
        k, dev, params, kind, mem.bytes, t_body, step_latency_scale=1.0, callback_s=_CALLBACK_S
    )
    return finish(
        k, dev, time=t_body + t_launch, compute_s=t_compute * factor,
        memory_s=mem.t_memory * factor, launch_s=t_launch, bytes_=mem.bytes, peaks=r.peaks,
        vec_peak=r.vec_peak, matrix_parallel=mt.wave_util / jnp.maximum(mt.pad_factor, 1.0),
        occupancy=occupancy,
    )  # fmt: skip
