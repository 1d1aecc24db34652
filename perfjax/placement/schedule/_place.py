"""``place``, ``simulate`` and ``pipeline``: the public entry points of placement search."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perfjax._display import fmt_time, pyplot, render
from perfjax._errors import InputError
from perfjax.placement.schedule import _heuristics
from perfjax.placement.schedule._exact import exact
from perfjax.placement.schedule._pipeline import PipelineResult, pipeline_dp, pipeline_relaxed
from perfjax.placement.schedule._problem import PlacementProblem, problem_from
from perfjax.placement.schedule._relaxed import relaxed
from perfjax.placement.schedule._simulate import check_assignment, schedule

METHODS = ("single", "greedy", "heft", "exact", "relaxed")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where each kernel runs, and the resulting schedule.

    ``makespan_s`` is the list-scheduling simulation of ``assignment`` with priority ``order``
    (see :mod:`perfjax.placement.schedule._simulate`); ``lower_bound_s`` is the larger of the critical
    path (each kernel on its fastest device, no transfers) and the least total work over the
    number of devices. ``optimal`` is True when the exact method proved optimality, None when
    unknown.
    """

    method: str
    assignment: Mapping[str, str]
    makespan_s: float
    lower_bound_s: float
    optimal: bool | None
    wall_s: float
    problem: PlacementProblem = dataclasses.field(repr=False)
    device_index: np.ndarray = dataclasses.field(repr=False)
    order: np.ndarray = dataclasses.field(repr=False)
    start_s: np.ndarray = dataclasses.field(repr=False)
    finish_s: np.ndarray = dataclasses.field(repr=False)
    #: Method-specific numbers (e.g. HEFT's own schedule, the gradient-only makespan).
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def gap_to_lower_bound(self) -> float:
        """``makespan / lower_bound - 1`` (0 means provably optimal)."""
        return self.makespan_s / self.lower_bound_s - 1.0 if self.lower_bound_s else 0.0

    def device_busy_s(self) -> dict[str, float]:
        t = self.problem.compute_time_s[np.arange(self.problem.num_kernels), self.device_index]
        busy = np.bincount(self.device_index, t, minlength=self.problem.num_devices)
        return dict(zip(self.problem.device_names, busy.tolist()))

    def to_dict(self) -> dict[str, Any]:
        return dict(
            method=self.method, problem=self.problem.name, makespan_s=self.makespan_s,
            lower_bound_s=self.lower_bound_s, optimal=self.optimal, wall_s=self.wall_s,
            assignment=dict(self.assignment), details=dict(self.details),
        )  # fmt: skip

    def to_dataframe(self):
        """One row per kernel: device, start, finish, compute time."""
        import pandas as pd

        p = self.problem
        idx = np.arange(p.num_kernels)
        return pd.DataFrame(
            dict(kernel=p.names, device=[p.device_names[j] for j in self.device_index],
                 start_s=self.start_s, finish_s=self.finish_s,
                 compute_s=p.compute_time_s[idx, self.device_index])
        )  # fmt: skip

    def table(self, max_rows: int = 20):
        from rich.console import Group
        from rich.table import Table

        head = Table(title=f"perfjax.placement.place ({self.method}): {self.problem.name}",
                     show_header=False, box=None)  # fmt: skip
        head.add_column(style="bold")
        head.add_column()
        opt = {True: " (optimal)", False: " (time limit: not proven optimal)", None: ""}
        head.add_row("makespan", fmt_time(self.makespan_s) + opt[self.optimal])
        head.add_row(
            "lower bound",
            f"{fmt_time(self.lower_bound_s)} (makespan is {100 * self.gap_to_lower_bound:.1f}% above)",
        )
        head.add_row("search time", f"{self.wall_s:.3g} s")
        for k, v in self.details.items():
            head.add_row(k, fmt_time(v) if k.endswith("_s") and isinstance(v, float) else str(v))
        dev = Table(title="devices")
        for col in ("device", "kernels", "busy", "share of makespan"):
            dev.add_column(col, justify="left" if col == "device" else "right")
        counts = np.bincount(self.device_index, minlength=self.problem.num_devices)
        for (name, busy), c in zip(self.device_busy_s().items(), counts):
            share = busy / self.makespan_s if self.makespan_s else 0.0
            dev.add_row(name, str(c), fmt_time(busy), f"{100 * share:.0f}%")
        ker = Table(title=f"kernels (first {min(max_rows, self.problem.num_kernels)} by start)")
        for col in ("kernel", "device", "start", "finish"):
            ker.add_column(col, justify="left" if col in ("kernel", "device") else "right")
        for i in np.argsort(self.start_s, kind="stable")[:max_rows]:
            ker.add_row(self.problem.names[i], self.problem.device_names[self.device_index[i]],
                        fmt_time(self.start_s[i]), fmt_time(self.finish_s[i]))  # fmt: skip
        return Group(head, dev, ker)

    def __str__(self) -> str:

        return render(self.table())

    def plot(self, path: str, max_labels: int = 60) -> str:
        """Writes a Gantt chart (one row per device, kernels as bars) to ``path`` (PNG)."""

        plt = pyplot()
        p = self.problem
        d = p.num_devices
        fig, ax = plt.subplots(figsize=(10, 1.0 + 0.5 * d))
        cmap = plt.get_cmap("tab20")
        scale, unit = _time_unit(self.makespan_s)
        for i in range(p.num_kernels):
            j = self.device_index[i]
            w = (self.finish_s[i] - self.start_s[i]) * scale
            ax.barh(j, w, left=self.start_s[i] * scale, height=0.6, color=cmap(i % 20),
                    edgecolor="black", linewidth=0.3)  # fmt: skip
            if p.num_kernels <= max_labels and w > 0.04 * self.makespan_s * scale:
                ax.text((self.start_s[i] * scale + w / 2), j, p.names[i][:14], ha="center",
                        va="center", fontsize=6)  # fmt: skip
        ax.axvline(self.lower_bound_s * scale, color="gray", ls="--", lw=1, label="lower bound")
        ax.set_yticks(range(d), p.device_names)
        ax.invert_yaxis()
        ax.set_xlabel(f"time ({unit})")
        ax.set_title(f"{p.name}: {self.method}, makespan {self.makespan_s * scale:.4g} {unit}")
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _time_unit(t: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
        if t * scale >= 1.0:
            return scale, unit
    return 1e9, "ns"


def to_problem(
    x: Any, inputs: Sequence[Any] | None = None, platform: Any = None, **kwargs: Any
) -> PlacementProblem:
    """A :class:`PlacementProblem` from a problem, or from a function/Program/Graph + platform."""
    if isinstance(x, PlacementProblem):
        if platform is not None:
            raise InputError(
                "a PlacementProblem already names its devices; pass platform=None with it."
            )
        return x
    if platform is None:
        raise InputError(
            "placing a program needs platform= (a perfjax.placement.Platform or a built-in name "
            "such as '4xa100-pcie'; see perfjax.placement.platforms())."
        )
    return problem_from(x, inputs, platform=platform, **kwargs)


def place(
    fn_or_program_or_problem: Any,
    inputs: Sequence[Any] | None = None,
    *,
    platform: Any = None,
    method: str = "heft",
    seed: int = 0,
    time_limit_s: float | None = None,
    **options: Any,
) -> Placement:
    """Places the kernels of a program (or a :class:`PlacementProblem`) on a platform's devices.

    Args:
      fn_or_program_or_problem: a JAX function (with ``inputs``), a ``Program``, a ``Graph``, or
        a ``PlacementProblem`` (then ``platform`` must be None).
      inputs: positional arguments of a function.
      platform: a ``Platform`` or built-in platform name.
      method: ``"single"`` (best one device), ``"greedy"`` (earliest finish in topological
        order), ``"heft"`` (Topcuoglu et al. 2002), ``"exact"`` (MILP with HiGHS; small graphs)
        or ``"relaxed"`` (gradient on soft assignments + local search; never worse than HEFT).
      seed: random seed (``relaxed``).
      time_limit_s: budget of ``exact`` (default 60 s) and ``relaxed`` (default
        ``min(7, 2 + n / 100)`` s for ``n`` kernels).
      options: passed to the method (e.g. ``restarts=``, ``steps=`` for ``relaxed``).

    Example:
      >>> import numpy as np
      >>> from perfjax.placement import PlacementProblem, place
      >>> p = PlacementProblem(names=("a", "b", "c"), compute_time_s=np.ones((3, 2)),
      ...     edges=np.array([[0, 1], [0, 2]]), edge_bytes=np.zeros(2),
      ...     bandwidth_bytes_per_s=np.full((2, 2), 1e9), latency_s=np.zeros((2, 2)),
      ...     memory_bytes=np.zeros(3), capacity_bytes=np.full(2, np.inf), device_names=("x", "y"))
      >>> place(p, method="heft").makespan_s  # b and c in parallel after a
      2.0
    """
    if method not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(method), METHODS, n=1)
        raise InputError(
            f"unknown placement method {method!r}; expected one of {list(METHODS)}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + "."
        )
    problem = to_problem(fn_or_program_or_problem, inputs, platform)
    t0 = time.perf_counter()
    optimal: bool | None = None
    details: dict[str, Any] = {}
    if method == "single":
        a, order = _heuristics.single(problem)
        details["device"] = problem.device_names[a[0]]
    elif method == "greedy":
        a, order = _heuristics.greedy(problem)
    elif method == "heft":
        a, order, own = _heuristics.heft(problem)
        details["heft_insertion_schedule_s"] = own
    elif method == "exact":
        r = exact(problem, time_limit_s=60.0 if time_limit_s is None else time_limit_s, **options)
        a, order, optimal = r.assignment, r.order, r.optimal
        details.update(milp_status=r.status, milp_bound_s=r.bound_s)
    else:
        if time_limit_s is None:
            time_limit_s = min(7.0, 2.0 + problem.num_kernels / 100)
        r = relaxed(problem, seed=seed, time_limit_s=time_limit_s, **options)
        a, order = r.assignment, r.order
        details.update(gradient_only_s=r.gradient_makespan_s, heft_s=r.heft_makespan_s,
                       gradient_from_heft_s=r.gradient_from_heft_makespan_s,
                       started_from=r.start, local_search_moves=r.local_moves)  # fmt: skip
    sched = schedule(problem, a, order)
    wall = time.perf_counter() - t0
    lb = problem.lower_bound_s()
    if optimal:
        lb = max(lb, sched.makespan_s)
    return Placement(
        method=method,
        assignment={k: problem.device_names[j] for k, j in zip(problem.names, sched.assignment)},
        makespan_s=sched.makespan_s, lower_bound_s=lb, optimal=optimal, wall_s=wall, problem=problem,
        device_index=sched.assignment, order=sched.order, start_s=sched.start_s,
        finish_s=sched.finish_s, details=details,
    )  # fmt: skip


def simulate(
    program_or_graph_or_problem: Any,
    platform: Any = None,
    assignment: Any = None,
    *,
    inputs: Sequence[Any] | None = None,
    order: Sequence[int] | None = None,
) -> float:
    """Makespan in seconds of ``assignment`` (kernel name -> device name, or one device per
    kernel) by list scheduling; raises ``MemoryCapacityError`` when a device's memory overflows.

    A bare assignment is scheduled in upward-rank priority order; a :class:`Placement` (or an
    explicit ``order=``) carries the priority order its method found, so
    ``simulate(problem, placement)`` reproduces ``placement.makespan_s``. With a
    ``PlacementProblem`` the platform may be omitted: ``simulate(problem, assignment)``.
    """
    x = program_or_graph_or_problem
    if isinstance(x, PlacementProblem) and assignment is None and platform is not None:
        platform, assignment = None, platform
    if assignment is None:
        raise InputError("simulate needs an assignment: kernel name -> device name.")
    if isinstance(assignment, Placement):
        order = assignment.order if order is None else order
        assignment = assignment.assignment
    problem = to_problem(x, inputs, platform)
    check_assignment(problem, assignment)
    return schedule(problem, assignment, order).makespan_s


def pipeline(
    fn_or_program_or_problem: Any,
    inputs: Sequence[Any] | None = None,
    *,
    platform: Any = None,
    devices: Sequence[str] | None = None,
    method: str = "dp",
    seed: int = 0,
) -> PipelineResult:
    """Splits the kernels (in topological order) into contiguous pipeline stages, one device
    each, minimising the slowest stage (compute + boundary transfers).

    Args:
      devices: the stage devices in pipeline order (default: all, in platform order).
      method: ``"dp"`` (exact dynamic programme) or ``"relaxed"`` (gradient on soft stage
        boundaries, rounded and refined).
    """
    problem = to_problem(fn_or_program_or_problem, inputs, platform)
    if method == "dp":
        return pipeline_dp(problem, devices)
    if method == "relaxed":
        return pipeline_relaxed(problem, devices, seed=seed)[1]
    raise InputError(f"unknown pipeline method {method!r}; expected 'dp' or 'relaxed'.")
