"""Placement: platforms (devices + links), transfer and collective costs, sharded programs.

Example:
  >>> from perfjax import placement
  >>> p = placement.platform("8xh100-nvlink")
  >>> round(float(placement.collective_time_s("all_reduce", 1e9, p)) * 1e3, 1)
  3.9
"""

from perfjax.placement._collectives import (
    ALGORITHMS,
    KINDS,
    algorithm_times_s,
    all_gather_time_s,
    all_reduce_time_s,
    all_to_all_time_s,
    best_algorithm,
    broadcast_time_s,
    collective_time_s,
    reduce_scatter_time_s,
    ring_parameters,
    send_recv_time_s,
    smooth_min,
    torus_time_s,
)
from perfjax.placement._platform import (
    LINK_KINDS,
    TOPOLOGIES,
    Link,
    Platform,
    from_mapping,
    load_platform_file,
    platform,
    platforms,
)
from perfjax.placement._sharded import (
    CollectiveRow,
    ShardedPrediction,
    link_bytes,
    parse_collectives,
    predict_sharded,
)

__all__ = [
    "ALGORITHMS",
    "KINDS",
    "LINK_KINDS",
    "TOPOLOGIES",
    "CollectiveRow",
    "Link",
    "Platform",
    "ShardedPrediction",
    "algorithm_times_s",
    "all_gather_time_s",
    "all_reduce_time_s",
    "all_to_all_time_s",
    "best_algorithm",
    "broadcast_time_s",
    "collective_time_s",
    "from_mapping",
    "link_bytes",
    "load_platform_file",
    "parse_collectives",
    "platform",
    "platforms",
    "predict_sharded",
    "reduce_scatter_time_s",
    "ring_parameters",
    "send_recv_time_s",
    "smooth_min",
    "torus_time_s",
]

# (place / simulate are added below by the placement-algorithms module.)
from perfjax.placement._pipeline import PipelineResult, max_load
from perfjax.placement._place import METHODS, Placement, pipeline, place, simulate
from perfjax.placement._problem import (
    PlacementProblem,
    fiddle_expert,
    fiddle_files,
    load_fiddle,
    problem_from,
    random_problem,
)
from perfjax.placement._simulate import MemoryCapacityError

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
