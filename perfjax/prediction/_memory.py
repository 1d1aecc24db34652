"""Peak memory of a program on one device: buffer liveness over the kernel order.

What is counted is what XLA's buffer assignment allocates for one execution of the program, and
what ``compiled.memory_analysis()`` reports:

* **arguments**: every input buffer, live for the whole call (classified as parameters,
  optimizer state or other inputs, see :func:`classify_arguments`);
* **outputs**: every output buffer (plus the 8-byte pointer table of a tuple of outputs), less
  the ones that reuse a donated input's buffer (``donate_argnums``: ``tf.aliasing_output``);
* **temporaries**: the largest sum of intermediate buffers live at once, walking the kernels in
  program order. Only a kernel's outputs are buffers (values inside a fusion never reach
  memory); a buffer is allocated when its kernel runs and freed after the last kernel that reads
  it; layout and metadata ops (reshape, broadcast, a transpose folded into a GEMM) are views;
  an elementwise kernel writes into an operand buffer of the same size that dies there, and a
  dynamic-update-slice or scatter updates its operand in place, as XLA does. A while loop's
  carried values are one buffer each, live for the whole loop (its body's temporaries come and
  go every iteration); a value a loop only reads stays live until the loop ends; a carried
  value's initial buffer becomes the loop's when nothing reads it afterwards.

``peak_bytes = arguments + outputs - aliased + temporaries``, the formula the tests compare with
XLA's ``argument_size + output_size - alias_size + temp_size``. Intermediates kept for the
backward pass (produced before the first backward op, read after it: activations, remat
residuals) are reported apart from the other temporaries at the peak. Constants baked into the
executable and the compiler's own scratch inside a library call are not counted.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perfjax._display import fmt_count, render
from perfjax.fusion._kernels import KINDS, Kernels, op_class
from perfjax.lowering._arguments import Arguments, aliased_outputs, arguments
from perfjax.lowering._graph import Graph
from perfjax.lowering._program import Program

#: Bytes of one entry of the pointer table XLA allocates for a tuple of outputs.
_TUPLE_POINTER_BYTES = 8
_ELEMENTWISE = KINDS.index("elementwise")
#: Ops that update their first operand's buffer in place (when nothing reads it afterwards).
_IN_PLACE = {"dynamic_update_slice", "scatter"}

#: Path words (keys, attributes) naming optimizer state: optax's ``mu``/``nu``/``trace``,
#: PyTorch-style ``exp_avg``/``momentum_buffer``, and a state tree called ``opt_state``.
OPTIMIZER_WORDS = frozenset({
    "opt_state", "optimizer_state", "opt", "optimizer", "optim", "mu", "nu", "trace", "momentum",
    "momentum_buffer", "exp_avg", "exp_avg_sq", "velocity", "accumulator", "accumulators",
    "ema", "second_moment", "first_moment", "hessian", "preconditioner",
})  # fmt: skip
#: Path words naming model parameters.
PARAMETER_WORDS = frozenset({
    "params", "param", "parameters", "weights", "variables", "model", "kernel", "bias",
    "embedding", "scale",
})  # fmt: skip
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORWARD, _BACKWARD = "forward", "backward"


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one execution of a program on one device, and what it holds at the peak.

    ``peak_bytes`` is the sum of the six parts: ``parameters_bytes + optimizer_state_bytes +
    inputs_bytes + outputs_bytes + activations_bytes + temporaries_bytes``.

    Example:
      >>> import jax, jax.numpy as jnp, perfjax
      >>> x = jax.ShapeDtypeStruct((1024, 1024), jnp.float32)
      >>> m = perfjax.prediction.memory_estimate(lambda x, w: jnp.tanh(x @ w), (x, x), device="h100")
      >>> m.peak_bytes // 2**20, m.parameters_bytes // 2**20, m.inputs_bytes // 2**20  # MiB
      (12, 4, 4)
    """

    program: str
    peak_bytes: int
    #: Arguments, by what they hold (see :func:`classify_arguments`).
    parameters_bytes: int
    optimizer_state_bytes: int
    inputs_bytes: int
    #: Output buffers that do not reuse a donated argument's buffer.
    outputs_bytes: int
    #: Intermediate buffers live at the peak: kept for the backward pass, and the others.
    activations_bytes: int
    temporaries_bytes: int
    #: Donated argument bytes that outputs reuse (counted once, with the arguments).
    aliased_bytes: int = 0
    #: The kernel running when the peak is reached ("" when no intermediate is ever live).
    peak_kernel: str = ""
    #: The largest sum of intermediate buffers live at once, wherever it happens (what XLA
    #: reports as ``temp_size_in_bytes``; ``activations_bytes + temporaries_bytes``).
    notes: tuple[str, ...] = ()

    @property
    def arguments_bytes(self) -> int:
        """All input buffers (XLA's ``argument_size_in_bytes``)."""
        return self.parameters_bytes + self.optimizer_state_bytes + self.inputs_bytes

    @property
    def temp_bytes(self) -> int:
        """Intermediate buffers at the peak (XLA's ``temp_size_in_bytes``)."""
        return self.activations_bytes + self.temporaries_bytes

    @property
    def breakdown(self) -> dict[str, int]:
        """The six parts of ``peak_bytes``, by name."""
        return dict(
            parameters=self.parameters_bytes, optimizer_state=self.optimizer_state_bytes,
            inputs=self.inputs_bytes, outputs=self.outputs_bytes,
            activations=self.activations_bytes, temporaries=self.temporaries_bytes,
        )  # fmt: skip

    def fits(self, capacity_bytes: float) -> bool | None:
        """Whether the peak fits in ``capacity_bytes`` (``None`` when the capacity is unknown, 0)."""
        if not capacity_bytes or capacity_bytes <= 0:
            return None
        return bool(self.peak_bytes <= capacity_bytes)

    def to_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), notes=list(self.notes))

    def table(self):
        from rich.table import Table

        t = Table(title=f"peak memory of {self.program}: {fmt_count(self.peak_bytes)}B")
        t.add_column("part")
        t.add_column("bytes", justify="right")
        t.add_column("share", justify="right")
        for name, value in self.breakdown.items():
            share = value / self.peak_bytes if self.peak_bytes else 0.0
            t.add_row(name.replace("_", " "), f"{fmt_count(value)}B", f"{100 * share:.0f}%")
        if self.aliased_bytes:
            t.add_row("(donated, reused by outputs)", f"{fmt_count(self.aliased_bytes)}B", "")
        return t

    def __str__(self) -> str:
        return render(self.table())


# ---------------------------------------------------------------------------------------------
# arguments: names, donation, classes
# ---------------------------------------------------------------------------------------------


def _words(name: str) -> set[str]:
    return {w.lower() for w in _WORD_RE.findall(name)}


def classify_arguments(
    names: Sequence[str], graph: Graph | None = None, backward_start: int | None = None
) -> tuple[str, ...]:
    """What each argument holds: ``"parameters"``, ``"optimizer_state"`` or ``"inputs"``.

    The rule, first match wins:

    1. by name (the argument's pytree path, which JAX keeps in the module, e.g.
       ``opt_state[0].mu['w1']``): a word of :data:`OPTIMIZER_WORDS` (``opt_state``, ``mu``,
       ``nu``, ``momentum`` ...) makes it optimizer state; then a word of
       :data:`PARAMETER_WORDS` (``params``, ``weights``, ``kernel`` ...) a parameter;
    2. by use (``graph`` given): an argument read as the weight operand (the second) of a GEMM
       or convolution of the forward pass, directly or through layout ops and slices (a scanned
       stack of layers), is a parameter;
    3. an argument of a parameter's shape and dtype is optimizer state when the program returns
       at least as many values of that type as it takes (a training step returns its updated
       state), which is how Adam's moments look without names;
    4. anything else is an input (data, labels, a cache).

    Example:
      >>> classify_arguments(["params['w']", "opt_state[0].mu['w']", "x"])
      ('parameters', 'optimizer_state', 'inputs')
    """
    classes = []
    for name in names:
        words = _words(name)
        if words & OPTIMIZER_WORDS:
            classes.append("optimizer_state")
        elif words & PARAMETER_WORDS:
            classes.append("parameters")
        else:
            classes.append("")
    if graph is not None:
        weights = _weight_arguments(graph, backward_start)
        for k in weights:
            if k < len(classes) and not classes[k]:
                classes[k] = "parameters"
        param_types = {str(graph.in_types[k]) for k, c in enumerate(classes) if c == "parameters"}
        in_count: dict[str, int] = {}
        for t in graph.in_types:
            in_count[str(t)] = in_count.get(str(t), 0) + 1
        out_count: dict[str, int] = {}
        for t in graph.out_types:
            out_count[str(t)] = out_count.get(str(t), 0) + 1
        for k, c in enumerate(classes):
            t = str(graph.in_types[k]) if k < len(graph.in_types) else ""
            if not c and t in param_types and out_count.get(t, 0) >= in_count.get(t, 0):
                classes[k] = "optimizer_state"
    return tuple(c or "inputs" for c in classes)


def _weight_arguments(graph: Graph, backward_start: int | None) -> set[int]:
    """Arguments read as the weight operand of a forward GEMM/convolution (through views)."""
    ops, out = graph.ops, set()
    end = len(ops) if backward_start is None else backward_start
    for op in ops[:end]:
        short = op.name.split("@")[0].split(".", 1)[-1]
        if short not in ("dot_general", "dot", "convolution") or len(op.sources) < 2:
            continue
        stack, seen = [op.sources[1]], set()
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if s <= -2:
                out.add(-2 - s)
            elif s >= 0 and ops[s].name.split(".", 1)[-1] in _WEIGHT_VIEWS:
                stack.extend(ops[s].sources[:1])
    return out


#: Ops a weight may go through between the argument and the GEMM that reads it.
_WEIGHT_VIEWS = {
    "transpose", "reshape", "convert", "bitcast_convert", "broadcast_in_dim", "copy", "slice",
    "dynamic_slice", "gather", "reverse",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# liveness
# ---------------------------------------------------------------------------------------------


def _backward_start(graph: Graph) -> int | None:
    """Index of the first op of the backward pass (JAX names its scope ``transpose(...)``)."""
    for op in graph.ops:
        if "transpose(" in op.scope:
            return op.index
    return None


class _Liveness:
    """Buffers of one graph under one kernel grouping, with their live ranges.

    Positions are ``2 * op index`` (a kernel runs at the position of its last op), so a loop's
    entry (``2 * start - 1``) falls between the ops before it and its first op.
    """

    def __init__(self, graph: Graph, kernels: Kernels):
        self.graph, ops = graph, graph.ops
        n = len(ops)
        self.kernel_of = np.full(n, -1)
        # An op a compiler recomputes in several kernels (XLA:CPU's loops, one per output) is in
        # each of them; it is a buffer only where a kernel without it reads it.
        self.kernels_of: list[set[int]] = [set() for _ in range(n)]
        self.step = np.zeros(len(kernels), dtype=np.int64)
        for k, members in enumerate(kernels.ops):
            for i in members:
                if self.kernel_of[i] < 0:
                    self.kernel_of[i] = k
                self.kernels_of[i].add(k)
            self.step[k] = 2 * max(members) if members else 0
        self.kinds = kernels.kind
        self.members = kernels.ops
        self.names = kernels.names
        self._bases: dict[int, tuple[int, ...]] = {}
        # Loops containing each op (outermost first).
        self.loops_of: list[tuple[int, ...]] = [() for _ in range(n)]
        for li, lp in enumerate(graph.loops):
            for i in range(lp.start, lp.end):
                self.loops_of[i] = (*self.loops_of[i], li)

    def bases(self, src: int) -> tuple[int, ...]:
        """The buffers operand ``src`` reads: kernel ops, arguments (``<= -2``), through views;
        none for a constant or an iota (baked into the executable)."""
        if src == -1:
            return ()
        if src <= -2 or self.kernel_of[src] >= 0:
            return (src,)
        if src in self._bases:
            return self._bases[src]
        op = self.graph.ops[src]
        short = op.name.split(".", 1)[-1]
        if short in ("constant", "iota") or op.executions == 0:
            out: tuple[int, ...] = ()
        else:
            self._bases[src] = ()  # guards a cycle
            out = tuple(dict.fromkeys(b for s in op.sources for b in self.bases(s)))
        self._bases[src] = out
        return out

    def run(self, aliases: Sequence[int], backward: int | None) -> dict[str, Any]:
        """The peak of intermediate buffers; ``aliases[j]``: the output reusing argument ``j``'s
        buffer (-1: none)."""
        graph, ops = self.graph, self.graph.ops
        n = len(ops)
        materialised = np.zeros(n, bool)
        uses: dict[int, set[int]] = {}  # (an op recomputed in several kernels reads once)
        arg_last = [-1] * len(graph.in_types)  # last read of each argument
        for i, op in enumerate(ops):
            if self.kernel_of[i] < 0 or op.executions == 0:
                continue
            for k in sorted(self.kernels_of[i]):
                for s in op.sources:
                    for b in self.bases(s):
                        if b >= 0 and k not in self.kernels_of[b]:
                            materialised[b] = True
                            uses.setdefault(b, set()).add(i)
                        elif b <= -2 and -2 - b < len(arg_last):
                            p = self._use_position(b, i, int(self.step[k]), {}, {})
                            arg_last[-2 - b] = max(arg_last[-2 - b], p)
        outputs = {b for o in graph.outputs for b in self.bases(o) if b >= 0}
        # Each output's buffer is free until it is written; a donated argument's until its last read.
        free_from = {}
        for j, o in enumerate(aliases):
            if 0 <= o < len(graph.outputs):
                for b in self.bases(graph.outputs[o]):
                    free_from[b] = max(free_from.get(b, 0), arg_last[j] + 1)
        materialised[list(outputs)] = True
        # Loop results are the loop's buffers, whether or not anything reads them afterwards.
        state: dict[int, int] = {}  # body value -> loop index
        entry_inits: dict[int, set[int]] = {}  # value -> loops it is a carried initial value of
        through: dict[int, set[int]] = {}  # value -> loops that read it unchanged
        for li, lp in enumerate(graph.loops):
            for init, result in zip(lp.inits, lp.results, strict=False):
                init_b, result_b = self.bases(init), self.bases(result)
                if init == result or set(init_b) == set(result_b):
                    for b in init_b:
                        through.setdefault(b, set()).add(li)
                    continue
                for b in result_b:
                    if b >= 0 and lp.start <= b < lp.end:
                        materialised[b] = True
                        state.setdefault(b, li)
                for b in init_b:
                    entry_inits.setdefault(b, set()).add(li)
        start_of: dict[int, int] = {}
        end_of: dict[int, int] = {}
        written: dict[int, int] = {}  # output value -> where it is first written
        for b in np.flatnonzero(materialised):
            b = int(b)
            pos = int(self.step[self.kernel_of[b]])
            start, end = pos, pos
            for c in uses.get(b, ()):
                p = max(int(self.step[k]) for k in self.kernels_of[c])
                p = self._use_position(b, c, p, entry_inits, through)
                end = max(end, p)
                start = min(start, p)
            if b in state:
                lp = graph.loops[state[b]]
                start = min(start, 2 * lp.start)
                end = max(end, 2 * (lp.end - 1))
            if b in outputs:
                written[b] = start
            else:
                start_of[b], end_of[b] = start, end
        self._share_in_place(start_of, end_of, outputs)
        hidden = self._in_output_buffers(start_of, end_of, written, free_from)
        return self._peak(start_of, end_of, backward, hidden)

    def _in_output_buffers(
        self, start_of: Mapping[int, int], end_of: Mapping[int, int], written: Mapping[int, int],
        free_from: Mapping[int, int],
    ) -> set[int]:  # fmt: skip
        """Intermediates XLA places in an output's buffer before the output is written (buffer
        assignment reuses any allocation whose live ranges do not overlap, outputs included):
        largest first, each into the smallest free output buffer that holds it."""
        free = [[sum(r.nbytes for r in self.graph.ops[b].results), free_from.get(b, 0), w, []]
                for b, w in written.items()]  # fmt: skip
        free = [f for f in free if f[0] > 0 and f[1] < f[2]]
        free.sort(key=lambda f: f[0])
        if not free:
            return set()
        size = {b: sum(r.nbytes for r in self.graph.ops[b].results) for b in start_of}
        hidden = set()
        for b in sorted(start_of, key=lambda b: -size[b]):
            s, e = start_of[b], end_of[b]
            if s > e or size[b] == 0:
                continue
            for f in free:
                if (
                    f[0] >= size[b]
                    and f[1] <= s
                    and e < f[2]
                    and all(e2 < s or e < s2 for s2, e2 in f[3])
                ):
                    f[3].append((s, e))
                    hidden.add(b)
                    break
        return hidden

    def _use_position(
        self, b: int, c: int, p: int, entry_inits: Mapping[int, set[int]],
        through: Mapping[int, set[int]],
    ) -> int:  # fmt: skip
        """Where a read of ``b`` by op ``c`` (at position ``p``) keeps ``b`` live until: the end
        of the outermost loop around ``c`` that ``b`` comes from outside of, or that loop's entry
        when ``b`` is only the initial value of something the loop carries."""
        inner = self.loops_of[b] if b >= 0 else ()
        outer = [li for li in self.loops_of[c] if li not in inner]
        if not outer:
            return p
        lp = self.graph.loops[outer[0]]
        if outer[0] in entry_inits.get(b, ()) and outer[0] not in through.get(b, ()):
            return 2 * lp.start - 1
        return max(p, 2 * (lp.end - 1))

    def _share_in_place(
        self, start_of: dict[int, int], end_of: dict[int, int], outputs: set[int]
    ) -> None:
        """An elementwise kernel's result takes the buffer of an operand of the same size that
        dies there, and an in-place update its first operand's (XLA's buffer sharing)."""
        ops = self.graph.ops
        taken: set[int] = set()
        for b in sorted(start_of, key=start_of.get):
            op = ops[b]
            short = op.name.split(".", 1)[-1]
            k = self.kernel_of[b]
            in_place = short in _IN_PLACE
            if not in_place and (self.kinds[k] != _ELEMENTWISE or op_class(op) != "loop"):
                continue
            size = sum(r.nbytes for r in op.results)
            pos = start_of[b]
            sources = op.sources[:1] if in_place else [
                s for i in self.members[k] for s in ops[i].sources
            ]  # fmt: skip
            for s in sources:
                for u in self.bases(s):
                    if (
                        u in start_of and u not in taken and u != b and end_of[u] == pos
                        and sum(r.nbytes for r in ops[u].results) == size
                    ):  # fmt: skip
                        # b lives in u's buffer: one buffer from u's start to b's end.
                        taken.add(u)
                        end_of[u] = end_of[b]
                        start_of[b] = end_of[b] + 1  # b no longer allocates
                        break
                else:
                    continue
                break

    def _peak(
        self, start_of: Mapping[int, int], end_of: Mapping[int, int], backward: int | None,
        hidden: set[int],
    ) -> dict[str, Any]:  # fmt: skip
        ops = self.graph.ops
        live = [
            (b, start_of[b], end_of[b])
            for b in start_of
            if start_of[b] <= end_of[b] and b not in hidden
        ]
        if not live:
            return dict(peak=0, activations=0, kernel="")
        size = {b: sum(r.nbytes for r in ops[b].results) for b, _, _ in live}
        events: dict[int, int] = {}
        for b, s, e in live:
            events[s] = events.get(s, 0) + size[b]
            events[e + 1] = events.get(e + 1, 0) - size[b]
        total, peak, at = 0, -1, 0
        for pos in sorted(events):
            total += events[pos]
            if total > peak:
                peak, at = total, pos
        acts = 0
        if backward is not None:
            bpos = 2 * backward
            for b, s, e in live:
                if s <= at <= e and 2 * b < bpos <= e:
                    acts += size[b]
        i = at // 2
        k = self.kernel_of[i] if 0 <= i < len(ops) else -1
        kernel = self.names[k] if k >= 0 else (ops[i].name if 0 <= i < len(ops) else "")
        return dict(peak=int(peak), activations=int(acts), kernel=kernel)


# ---------------------------------------------------------------------------------------------
# the estimate
# ---------------------------------------------------------------------------------------------

_cache: weakref.WeakKeyDictionary[Program, dict[Any, MemoryEstimate]] = weakref.WeakKeyDictionary()


def estimate(program: Program, graph: Graph, kernels: Kernels) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of ``program`` with its costed graph and kernels (cached per
    program and kernel grouping)."""
    table = _cache.setdefault(program, {})
    key = (id(graph), kernels.policy, len(kernels))
    if key in table:
        return table[key]
    args = arguments(program)
    backward = _backward_start(graph)
    classes = classify_arguments(args.names, graph, backward)
    in_bytes = [t.nbytes for t in program.in_types]
    out_bytes = [t.nbytes for t in program.out_types]
    by_class = {c: 0 for c in ("parameters", "optimizer_state", "inputs")}
    for c, b in zip(classes, in_bytes, strict=False):
        by_class[c] += b
    aliased = _aliased_bytes(args, in_bytes, out_bytes)
    outputs = sum(out_bytes)
    if len(out_bytes) > 1:
        outputs += _TUPLE_POINTER_BYTES * len(out_bytes)
    result = _Liveness(graph, _calls(kernels)).run(args.aliases, backward)
    notes = []
    if graph.notes:
        notes.append("loops with an unknown trip count: their buffers are counted once.")
    est = MemoryEstimate(
        program=program.name,
        peak_bytes=int(sum(by_class.values()) + outputs - aliased + result["peak"]),
        parameters_bytes=int(by_class["parameters"]),
        optimizer_state_bytes=int(by_class["optimizer_state"]),
        inputs_bytes=int(by_class["inputs"]),
        outputs_bytes=int(outputs - aliased),
        activations_bytes=result["activations"],
        temporaries_bytes=result["peak"] - result["activations"],
        aliased_bytes=int(aliased),
        peak_kernel=result["kernel"],
        notes=tuple(notes),
    )
    table[key] = est
    return est


def _calls(kernels: Kernels) -> Kernels:
    """``kernels`` with each pass of a normalisation run as one call (``Kernels.continued``)
    joined to the kernel it continues: what it passes on stays inside the call."""
    continued = kernels.continued
    if not continued.size or not continued.any():
        return kernels
    keep = [i for i in range(len(kernels)) if not continued[i]]
    ops: list[tuple[int, ...]] = []
    for i, members in enumerate(kernels.ops):
        if continued[i] and ops:
            ops[-1] = (*ops[-1], *members)
        else:
            ops.append(tuple(members))
    return dataclasses.replace(
        kernels,
        names=tuple(kernels.names[i] for i in keep),
        ops=tuple(ops),
        requests=tuple(kernels.requests[i] for i in keep),
        **{name: getattr(kernels, name)[keep] for name in Kernels.features()},
    )


def _aliased_bytes(args: Arguments, in_bytes: Sequence[int], out_bytes: Sequence[int]) -> int:
    """Bytes of donated arguments whose buffers outputs reuse (:func:`aliased_outputs`)."""
    return sum(in_bytes[k] for k in aliased_outputs(args, in_bytes, out_bytes).values())
