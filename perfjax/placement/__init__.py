"""Placement: platforms (devices + links), transfer and collective costs, sharded programs.

Example:
  >>> from perfjax import placement
  >>> p = placement.platform("8xh100-nvlink")
  >>> placement.fitted_family(p)   # by default, collectives here use the fit to XLA's measurements
  'nvidia-nvlink'
  >>> round(float(placement.collective_time_s("all_reduce", 1e9, p)) * 1e3, 1)
  5.4
  >>> round(float(placement.collective_time_s("all_reduce", 1e9, p, fit=None)) * 1e3, 1)   # alpha-beta
  3.9
"""

from perfjax.placement.comm._collectives import (
    ALGORITHMS,
    CALIBRATED_ALGORITHMS,
    CALIBRATED_KINDS,
    FIT_FAMILIES,
    FIT_PARAMETERS,
    KINDS,
    CollectiveFit,
    algorithm_times_s,
    all_gather_time_s,
    all_reduce_time_s,
    all_to_all_time_s,
    best_algorithm,
    broadcast_time_s,
    calibrated_algorithm_times_s,
    calibrated_collective_time_s,
    calibrated_time_s,
    choose_fit,
    collective_fit,
    collective_time_s,
    fitted_family,
    injection_bandwidth_bytes_per_s,
    prior_fit,
    reduce_scatter_time_s,
    ring_parameters,
    send_recv_time_s,
    smooth_min,
    torus_time_s,
    vendor_family,
)
from perfjax.placement.comm._platform import (
    LINK_KINDS,
    TOPOLOGIES,
    Link,
    Platform,
    from_mapping,
    load_platform_file,
    platform,
    platforms,
)
from perfjax.placement.comm._xla_collectives import (
    XLA_ARCH_PLATFORMS,
    fit_collectives,
    predict_xla,
    xla_collectives,
    xla_features,
)
from perfjax.placement.pods import Pod, PodCollective, PodPrediction, pod, pods, predict_pod
from perfjax.placement.sharded._sharded import (
    CollectiveRow,
    ShardedPrediction,
    link_bytes,
    parse_collectives,
    predict_sharded,
)

__all__ = [
    "ALGORITHMS",
    "CALIBRATED_ALGORITHMS",
    "CALIBRATED_KINDS",
    "FIT_FAMILIES",
    "FIT_PARAMETERS",
    "KINDS",
    "LINK_KINDS",
    "TOPOLOGIES",
    "XLA_ARCH_PLATFORMS",
    "CollectiveFit",
    "CollectiveRow",
    "Link",
    "Platform",
    "Pod",
    "PodCollective",
    "PodPrediction",
    "ShardedPrediction",
    "algorithm_times_s",
    "all_gather_time_s",
    "all_reduce_time_s",
    "all_to_all_time_s",
    "best_algorithm",
    "broadcast_time_s",
    "calibrated_algorithm_times_s",
    "calibrated_collective_time_s",
    "calibrated_time_s",
    "choose_fit",
    "collective_fit",
    "collective_time_s",
    "fit_collectives",
    "fitted_family",
    "from_mapping",
    "injection_bandwidth_bytes_per_s",
    "link_bytes",
    "load_platform_file",
    "parse_collectives",
    "platform",
    "platforms",
    "pod",
    "pods",
    "predict_pod",
    "predict_sharded",
    "predict_xla",
    "prior_fit",
    "reduce_scatter_time_s",
    "ring_parameters",
    "send_recv_time_s",
    "smooth_min",
    "torus_time_s",
    "vendor_family",
    "xla_collectives",
    "xla_features",
]

# (place / simulate are added below by the placement-algorithms module.)
from perfjax.placement.schedule._pipeline import PipelineResult, max_load
from perfjax.placement.schedule._place import METHODS, Placement, pipeline, place, simulate
from perfjax.placement.schedule._problem import (
    PlacementProblem,
    fiddle_expert,
    fiddle_files,
    load_fiddle,
    problem_from,
    random_problem,
)
from perfjax.placement.schedule._simulate import MemoryCapacityError

__all__ += [
    "METHODS",
    "MemoryCapacityError",
    "PipelineResult",
    "Placement",
    "PlacementProblem",
    "fiddle_expert",
    "fiddle_files",
    "load_fiddle",
    "max_load",
    "pipeline",
    "place",
    "problem_from",
    "random_problem",
    "simulate",
]
