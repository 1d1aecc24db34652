"""The edge-NPU time model: a MAC array tiled like a GPU's, and weights that do not fit in
on-chip SRAM streamed from the host on every execution.

Example:
  >>> import perfjax
  >>> from perfjax.fusion import fuse
  >>> from perfjax.devicemodels import default_params, device, pack, resolve
  >>> g = perfjax.analyze(lambda a, b: a @ b, (jnp.ones((256, 256)), jnp.ones((256, 256))))
  >>> name = next(d for d in perfjax.devices() if device(d).family == "npu")
  >>> k, spec = fuse(g, "npu"), device(name)
  >>> t = kernel_times(k.arrays(), pack(spec), default_params("npu"), resolve(k, spec).arrays())
  >>> float(t.time_s[0]) > 0
  True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from perfjax.devicemodels._common import (
    Arrays,
    KernelTimes,
    device_factor,
    finish,
    launch_time,
    matrix_time,
    memory_time,
    overlap,
    rates,
    tiled_gemm,
    vector_time,
)

_MIN_TILE = 8.0
#: Host round trip of one Python callback (a host synchronisation; assumed, not measured).
_CALLBACK_S = 50e-6


def streamed_weights_time(k: Arrays, dev: Arrays, res: Arrays) -> jax.Array:
    """Weights that do not fit in on-chip SRAM are streamed from the host every execution: the
    program's overflow share of each kernel's weights, over the host link."""
    w = k["weight_bytes"] * res["bytes_scale"]
    total_w = jnp.sum(w * jnp.minimum(k["executions"], 1.0))
    overflow = (
        jax.nn.softplus((total_w - dev["cache_bytes"]) / 1e5) * 1e5 / jnp.maximum(total_w, 1.0)
    )
    return w * jnp.minimum(overflow, 1.0) / dev["host_link_bytes_per_s"]


def kernel_times(k: Arrays, dev: Arrays, params: Arrays, res: Arrays) -> KernelTimes:
    """Per-kernel time (seconds per execution) and its parts on an NPU. Pure and vectorised
    (arguments as :func:`perfjax.devicemodels._gpu.kernel_times`)."""
    r = rates(k, dev, params, res)
    k, kind = r.k, r.kind
    cores = dev["num_cores"] * jnp.ones_like(k["matrix_flops"])
    tile = dev["matrix_tile"]
    work = tiled_gemm(k, params, kind, cores, lo=_MIN_TILE, hi=tile, lo_n=_MIN_TILE)
    mt = matrix_time(k, params, res, r, work, r.peaks)
    t_vector, occupancy = vector_time(k, params, r, r.vec_peak, cores)
    t_compute = mt.t_matrix + t_vector
    mem = memory_time(k, dev, params, res, r, occupancy)
    t_memory = mem.t_memory + streamed_weights_time(k, dev, res)
    factor = device_factor(params, kind)
    t_body = overlap(t_compute, t_memory, params) * factor
    t_launch = launch_time(
        k, dev, params, kind, mem.bytes, t_body, step_latency_scale=1.0, callback_s=_CALLBACK_S
    )
    return finish(
        k, dev, time=t_body + t_launch, compute_s=t_compute * factor, memory_s=t_memory * factor,
        launch_s=t_launch, bytes_=mem.bytes, peaks=r.peaks, vec_peak=r.vec_peak,
        matrix_parallel=mt.wave_util, occupancy=occupancy,
    )  # fmt: skip
