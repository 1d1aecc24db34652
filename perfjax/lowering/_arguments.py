"""The entry function's arguments as the module text states them: their names (pytree paths,
from the locations) and which are donated (``tf.aliasing_output``, ``jax.buffer_donor``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from perfjax.lowering._program import Program

_ARG_SPLIT_RE = re.compile(r"%arg(\d+):\s*")
_ALIAS_RE = re.compile(r"tf\.aliasing_output\s*=\s*(\d+)")
_DONOR_RE = re.compile(r"jax\.buffer_donor\s*=\s*true")
_LOC_RE = re.compile(r'loc\("((?:[^"\\]|\\.)*)"')
_LOC_REF_RE = re.compile(r"loc\((#loc\d*)\)")


@dataclasses.dataclass(frozen=True)
class Arguments:
    """The entry function's arguments: names and donation."""

    #: Per argument: its name (pytree path, from the module's locations; "" when unknown).
    names: tuple[str, ...]
    #: Per argument: the output it is aliased to (donated), or -1.
    aliases: tuple[int, ...]
    #: Per argument: donated without a fixed output (``jax.buffer_donor``).
    donors: tuple[bool, ...]


def arguments(program: Program) -> Arguments:
    """Names and donation of the entry function's arguments, read from the module text."""
    n = len(program.in_types)
    text = program.stablehlo_debug or program.stablehlo
    names, aliases, donors = [""] * n, [-1] * n, [False] * n
    start = text.find("@main(")
    if start < 0:
        return Arguments(tuple(names), tuple(aliases), tuple(donors))
    header = text[start : text.find("\n", start) if "\n" in text[start:] else len(text)]
    refs = dict(re.findall(r'^(#loc\d*) = loc\("((?:[^"\\]|\\.)*)"', text, re.MULTILINE))
    parts = _ARG_SPLIT_RE.split(header)
    # parts: [prefix, idx0, chunk0, idx1, chunk1, ...]; the last chunk runs into the results.
    for k in range(1, len(parts) - 1, 2):
        i, chunk = int(parts[k]), parts[k + 1]
        if k + 2 >= len(parts):
            chunk = chunk.split(") -> ", 1)[0]
        if i >= n:
            continue
        m = _ALIAS_RE.search(chunk)
        if m:
            aliases[i] = int(m.group(1))
        donors[i] = bool(_DONOR_RE.search(chunk))
        m = _LOC_RE.search(chunk)
        if m:
            names[i] = m.group(1).replace('\\"', '"')
        else:
            m = _LOC_REF_RE.search(chunk)
            if m and m.group(1) in refs:
                names[i] = refs[m.group(1)].replace('\\"', '"')
    return Arguments(tuple(names), tuple(aliases), tuple(donors))


def aliased_outputs(
    args: Arguments, in_bytes: Sequence[int], out_bytes: Sequence[int]
) -> dict[int, int]:
    """Outputs that reuse a donated argument's buffer, as {output: argument}: an explicit alias
    (``tf.aliasing_output``), or a ``jax.buffer_donor`` matched to a free output of its size."""
    used: dict[int, int] = {}
    for k, o in enumerate(args.aliases):
        if 0 <= o < len(out_bytes) and o not in used:
            used[o] = k
    for k, donor in enumerate(args.donors):
        if donor and args.aliases[k] < 0:
            o = next(
                (j for j, b in enumerate(out_bytes) if j not in used and b == in_bytes[k]), None
            )
            if o is not None:
                used[o] = k
    return used
