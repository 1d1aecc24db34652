"""Scheduling: placing a program's kernels on a platform's devices and splitting it into pipeline
stages (list heuristics, an exact MILP, a differentiable relaxation), and simulating the result."""
