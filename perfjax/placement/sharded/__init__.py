"""Sharded programs: a jit/shard_map program partitioned by XLA over a mesh, its per-device compute
from the device models and its collectives from the platform's links."""
