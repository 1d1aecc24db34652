"""The package's import graph: layers that only point down, no cycles, no imports hidden in
functions to dodge one.

Layers, bottom to top (a module may import its own layer's modules and any layer below):

  core         perfjax._errors, _dtypes, _io, _host, _display, _version
  ops          perfjax.ops                       (Flash ops)
  lowering     perfjax.lowering                  (trace, Program, Graph, cost rules, staging)
  executor     perfjax.executor                  (run on this CPU)
  fusion       perfjax.fusion                    (Graph -> Kernels)
  devicemodels perfjax.devicemodels              (specs, catalog, Calibration, family models)
  prediction   perfjax.prediction                (predict, compare, sensitivity)
  tools        perfjax.calibrate | perfjax.placement | perfjax._recommend | perfjax.models
               (independent of one another)
  app          perfjax (the package), perfjax._cli, perfjax._demo, perfjax.__main__
"""

from __future__ import annotations

import ast
import graphlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "perfjax"

LAYERS: list[tuple[str, ...]] = [
    (
        "perfjax._errors",
        "perfjax._dtypes",
        "perfjax._io",
        "perfjax._host",
        "perfjax._display",
        "perfjax._version",
    ),
    ("perfjax.ops",),
    ("perfjax.lowering",),
    ("perfjax.executor",),
    ("perfjax.fusion",),
    ("perfjax.devicemodels",),
    ("perfjax.prediction",),
    ("perfjax.calibrate", "perfjax.placement", "perfjax._recommend", "perfjax.models"),
    ("perfjax", "perfjax._cli", "perfjax._demo", "perfjax.__main__"),
]
#: Layers whose members may not import one another (the core's members may).
INDEPENDENT = {7}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _component(module: str) -> str:
    """The layer member a module belongs to (its longest listed prefix)."""
    best = None
    for layer in LAYERS:
        for member in layer:
            if (module == member or module.startswith(member + ".")) and (
                best is None or len(member) > len(best)
            ):
                best = member
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py LAYERS")
    return best


def _layer(component: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if component in layer)


def _imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported module, line, inside a function) for every perfjax import."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                # "from perfjax.x import y" may import the submodule perfjax.x.y.
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(
                        sub
                        if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists()
                        or (ROOT.parent / sub.replace(".", "/")).is_dir()
                        else base
                    )
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t == "perfjax" or t.startswith("perfjax."):
                    out.append((module, t, node.lineno, id(node) in in_function))
    return out


IMPORTS = _imports()


def test_every_module_is_in_a_layer():
    for path in ROOT.rglob("*.py"):
        _component(_module_name(path))


def _violations(imports) -> list[str]:
    bad = []
    for importer, imported, line, _ in imports:
        a, b = _component(importer), _component(imported)
        la, lb = _layer(a), _layer(b)
        if lb > la or (la == lb and a != b and la in INDEPENDENT):
            bad.append(f"{importer}:{line} imports {imported} ({a} -> {b})")
    return bad


def test_no_import_points_up_or_sideways():
    bad = _violations(IMPORTS)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_perfjax_import_inside_a_function():
    bad = [f"{m}:{line} imports {t}" for m, t, line, inside in IMPORTS if inside]
    assert not bad, "imports inside functions (hoist them; fix the cycle instead):\n" + "\n".join(
        bad
    )


def test_module_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for importer, imported, _, _ in IMPORTS:
        if imported != importer and not importer.startswith(imported + "."):
            # (a package's modules importing the package itself would be one; none should)
            graph.setdefault(importer, set()).add(imported)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_the_checker_sees_violations():
    """The rules are not vacuous: an upward import and a sideways one are both found, and the
    import scan sees the package's real arrows."""
    up = ("perfjax.lowering._graph", "perfjax.prediction._predict", 1, False)
    sideways = ("perfjax.calibrate._fit", "perfjax.placement.sharded._sharded", 2, False)
    down = ("perfjax.prediction._predict", "perfjax.lowering._graph", 3, False)
    assert len(_violations([up, sideways, down])) == 2
    assert ("perfjax.prediction._predict", "perfjax.lowering._staging") in {
        (a, b) for a, b, _, _ in IMPORTS
    }
