"""The GPU time model: tensor cores and CUDA/stream cores under a power cap, GEMMs as output
tiles spread over SMs in waves.

Example:
  >>> import perfjax
  >>> from perfjax.fusion import fuse
  >>> from perfjax.devicemodels import default_params, device, pack, resolve
  >>> x = perfjax.analyze(lambda a, b: a @ b, (jnp.ones((512, 512)), jnp.ones((512, 512))))
  >>> k, spec = fuse(x, "gpu"), device("h100")
  >>> t = kernel_times(k.arrays(), pack(spec), default_params("gpu"), resolve(k, spec).arrays())
  >>> 1e-6 < float(t.time_s[0]) < 1e-4
  True
"""

from __future__ import annotations

import jax.numpy as jnp

from perfjax.devicemodels._common import (
    GEMM,
    Arrays,
    KernelTimes,
    P,
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

#: Smooth min(1, r) = r / (1 + r^s)^(1/s) for the power cap (s large: a sharp corner).
_POWER_CAP_SHARPNESS = 12.0
#: cuBLAS's smallest SGEMM tiles are 32 x 32 (e.g. the kernel volta_sgemm_32x32_sliced1x4).
_MIN_TILE = 32.0
#: Host round trip of one Python callback: the GPU synchronises, copies operands to the host,
#: takes the GIL and copies results back (JAX's callback docs: "a host synchronization").
#: Assumed, not measured: tens of microseconds.
_CALLBACK_S = 30e-6


def power_cap(dev: Arrays, params: Arrays) -> jnp.ndarray:
    """Share (0..1] of the published clocks a board sustains under its power limit.

    Running every fp32 lane at the published boost clock needs peak_fp32 x energy/FLOP(node); a
    board allowed less (tdp - idle) runs at a lower clock, so every unit's rate scales by the
    smooth min(1, available / needed). Tensor-core rates scale with it (their energy per op is
    lower in proportion to their higher peak).
    """
    e_flop = (
        jnp.exp(params["power_pj_log"])
        * 1e-12
        * (jnp.maximum(dev["process_nm"], 1.0) / 12.0) ** jnp.exp(params["power_node_log"])
    )
    need_w = dev["vector_peaks"][..., P["fp32"]] * e_flop
    ratio = jnp.maximum(dev["tdp_w"] - dev["idle_w"], 1.0) / jnp.maximum(need_w, 1e-3)
    sustained = ratio / (1.0 + ratio**_POWER_CAP_SHARPNESS) ** (1.0 / _POWER_CAP_SHARPNESS)
    return jnp.where((dev["process_nm"] > 0) & (dev["tdp_w"] > 0), sustained, 1.0)


def kernel_times(k: Arrays, dev: Arrays, params: Arrays, res: Arrays) -> KernelTimes:
    """Per-kernel time (seconds per execution) and its parts on a GPU. Pure and vectorised.

    Args:
      k: kernel features (:meth:`perfjax.fusion.Kernels.arrays`).
      dev: packed device (:func:`perfjax.devicemodels.pack`).
      params: correction parameters (:func:`perfjax.devicemodels.default_params`).
      res: resolved units and precisions (:meth:`Resolved.arrays`).
    """
    r = rates(k, dev, params, res)
    k, kind = r.k, r.kind
    sustained = power_cap(dev, params)
    peaks, vec_peak = r.peaks * sustained, r.vec_peak * sustained
    cores = dev["num_cores"] * jnp.ones_like(k["matrix_flops"])
    tile = dev["matrix_tile"]
    # cuBLAS SGEMM on CUDA cores: no tile narrower than sgemm_n_tile in N.
    lo_n = jnp.where(
        (kind == GEMM) & (res["unit"] == 1), jnp.maximum(dev["sgemm_n_tile"], _MIN_TILE), _MIN_TILE
    )
    # cuDNN's implicit-GEMM convolutions pick the tile that pads least: a 3x3 convolution with
    # 150 output channels runs 160 columns (5 x 32), not 256 (2 x 128); NeuSight's convolutions
    # whose padding the two rules count 1.25-2x apart took 0.63-0.69x of the 128-tile
    # prediction, relative to the same GPU's other convolutions, on all four GPUs. cuBLAS GEMMs
    # keep the power-of-two rule (the same choice for them scores worse on DeepBench's GEMMs:
    # docs/calibration/README.md). cuDNN's implicit-GEMM convolutions do not split K: a
    # convolution with few output tiles leaves SMs idle.
    work = tiled_gemm(
        k, params, kind, cores, lo=_MIN_TILE, hi=tile, lo_n=lo_n, tile_choice_for_conv=True,
        split_conv=False,
    )  # fmt: skip
    mt = matrix_time(k, params, res, r, work, peaks)
    t_vector, occupancy = vector_time(k, params, r, vec_peak, cores)
    t_compute = mt.t_matrix + t_vector
    mem = memory_time(k, dev, params, res, r, occupancy)
    factor = device_factor(params, kind)
    t_body = overlap(t_compute, mem.t_memory, params) * factor
    t_launch = launch_time(
        k, dev, params, kind, mem.bytes, t_body, step_latency_scale=1.0, callback_s=_CALLBACK_S
    )
    return finish(
        k, dev, time=t_body + t_launch, compute_s=t_compute * factor,
        memory_s=mem.t_memory * factor, launch_s=t_launch, bytes_=mem.bytes, peaks=peaks,
        vec_peak=vec_peak, matrix_parallel=mt.wave_util, occupancy=occupancy,
    )  # fmt: skip
