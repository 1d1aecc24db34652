"""Every snippet of the README and the documentation pages runs as written.

Each ```python block of README.md and docs/**/*.md runs in a fresh namespace (in this process, in a
temporary working directory); a block that sets ``XLA_FLAGS`` (which must be set before jax is
imported) or fits a calibration (seconds of compiling) runs in a fresh interpreter, started before
the other tests and running beside them. A ```bash block whose every command starts with
``perfjax `` runs through the command line's entry point (``python -m perfjax``, in this
process, from the repository root) and must exit with status 0; other bash blocks (installing,
building the site) are not run. A block opts out with ``<!-- notest: why -->`` on the line before
its fence.

Also checked: the README's quick-start commands, its device count and accuracy figures (the same
as the accuracy page's), relative links, and the sections the site generates at build time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^```(\w*)\s*$")
_NOTEST = re.compile(r"^<!--\s*notest(?::\s*(?P<why>.*?))?\s*-->\s*$")

QUICK_START = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/perfjax demo",
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest -q',
)


@dataclasses.dataclass(frozen=True)
class Block:
    page: pathlib.Path
    line: int  # of the opening fence, 1-based
    lang: str
    source: str
    notest: str | None  # the reason given, or None when the block is tested

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(page: pathlib.Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        mark = _NOTEST.match(lines[start - 1].strip()) if start > 0 else None
        notest = (mark.group("why") or "") if mark else None
        out.append(Block(page, start + 1, lang, "\n".join(lines[start + 1 : j]) + "\n", notest))
        i = j + 1
    return out


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]


def _commands(block: Block) -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in block.source.splitlines() if line.strip()]


def _is_cli_block(block: Block) -> bool:
    lines = [line for line in block.source.splitlines() if line.strip()]
    return block.lang == "bash" and bool(lines) and all(x.startswith("perfjax ") for x in lines)


CLI = [b for b in ALL_BLOCKS if _is_cli_block(b)]


def _params(bs: list[Block]) -> list:
    return [
        pytest.param(b, id=b.id, marks=pytest.mark.skip(reason=f"notest: {b.notest}"))
        if b.notest is not None
        else pytest.param(b, id=b.id)
        for b in bs
    ]


# ---------------------------------------------------------------------------------------------
# snippets
# ---------------------------------------------------------------------------------------------


def _needs_fresh_interpreter(block: Block) -> bool:
    # XLA_FLAGS must be set before jax is imported. A calibration fit spends its time compiling
    # (seconds), so it runs in its own interpreter too, on the other core, beside the rest.
    return "XLA_FLAGS" in block.source or "calibrate.fit(" in block.source


_FRESH: dict[str, subprocess.Popen] = {}


@pytest.fixture(scope="module", autouse=True)
def _start_fresh_interpreter_blocks(request: pytest.FixtureRequest, tmp_path_factory):
    """Blocks that need their own interpreter start before the other tests and run beside them
    (most of their time is importing jax and compiling, on another core)."""
    selected = {
        item.callspec.params.get("block")
        for item in request.session.items
        if hasattr(item, "callspec")
    }
    for b in PYTHON:
        if b.notest is None and _needs_fresh_interpreter(b) and b in selected:
            where = tmp_path_factory.mktemp("snippet")
            (where / "snippet.py").write_text(b.source)
            _FRESH[b.id] = subprocess.Popen(
                [sys.executable, "snippet.py"],
                cwd=where,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
    yield
    for proc in _FRESH.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    _FRESH.clear()


@pytest.mark.parametrize("block", _params(PYTHON))
def test_python_block(block: Block, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    if _needs_fresh_interpreter(block):
        output, _ = _FRESH[block.id].communicate(timeout=600)
        status = _FRESH[block.id].returncode
        assert status == 0, f"{block.id} exited with {status}:\n{output}"
        return
    monkeypatch.chdir(tmp_path)  # snippets may write plots and files
    exec(compile(block.source, block.id, "exec"), {"__name__": "__docs__"})


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``perfjax ARGV`` through ``python -m perfjax``, in this process: (exit status, output)."""
    out = io.StringIO()
    old = sys.argv
    sys.argv = ["perfjax", *argv]
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                runpy.run_module("perfjax", run_name="__main__", alter_sys=False)
            except SystemExit as e:
                code = e.code
    finally:
        sys.argv = old
    return (0 if code is None else code), out.getvalue()


@pytest.mark.parametrize("block", _params(CLI))
def test_cli_block(block: Block, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)  # the examples name files of the repository (examples/mlp.py)
    for argv in _commands(block):
        status, output = run_cli(argv[1:])
        assert status == 0, f"{block.id}: {shlex.join(argv)} exited with {status}:\n{output}"
        assert output.strip(), f"{block.id}: {shlex.join(argv)} printed nothing"


def test_notest_blocks_say_why():
    for b in ALL_BLOCKS:
        if b.notest is not None:
            assert b.notest.strip(), f"{b.id}: write why in the comment: <!-- notest: why -->"


def test_snippets_found():
    assert {b.page.name for b in PYTHON} >= {"README.md", "tour.md", "troubleshooting.md"}
    assert len(CLI) >= 4


def test_cli_error_is_one_line():
    status, output = run_cli(["predict", "examples/mlp.py:mlp", "-i", "f32[1,784]", "-d", "h1000"])
    assert status == 2
    assert output.strip().splitlines()[-1].startswith("perfjax: error:")


# ---------------------------------------------------------------------------------------------
# the README
# ---------------------------------------------------------------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_commands_verbatim():
    for cmd in QUICK_START:
        assert cmd in README.splitlines(), cmd
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert QUICK_START[1].replace('-e ".[test]"', '-q -e ".[test]"') in ci


def _catalog_specs():
    """The built-in catalog (other tests may register devices of their own in this process)."""
    from perfjax.devicemodels import load_spec_file

    return load_spec_file(ROOT / "perfjax" / "devicemodels" / "catalog.toml")


def test_readme_device_count():
    specs = _catalog_specs()
    names = [s.name for s in specs]
    families = [s.family for s in specs]
    counts = ", ".join(
        f"{families.count(f)} {label}"
        for f, label in (("gpu", "GPUs"), ("tpu", "TPUs"), ("cpu", "CPUs"), ("npu", "NPUs"))
    )
    assert f"**{len(names)} devices** in the catalog ({counts})" in README
    assert f"({len(names)} GPUs, TPUs, CPUs and edge NPUs" in README


def _table_rows(text: str, header: str) -> list[list[str]]:
    """Cells of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def test_readme_accuracy_figures_match_the_accuracy_page():
    page = (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")
    page_results = {row[1] for row in _table_rows(page, "| what is checked |")}
    readme_rows = _table_rows(README, "| what is checked |")
    assert len(readme_rows) >= 8
    for row in readme_rows:
        assert row[1] in page_results, f"README figure not on docs/accuracy.md: {row[1]}"
        assert re.search(r"\]\((benchmarks|experiments)/[\w/]+\.py\)", row[2]), row


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_exist(page: pathlib.Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for url in _LINK.findall(text):
        if re.match(r"^[a-z]+:", url) or url.startswith("#"):
            continue
        target = (page.parent / url.split("#")[0]).resolve()
        assert target.exists(), f"{page.relative_to(ROOT)} links to a missing file: {url}"


# ---------------------------------------------------------------------------------------------
# the sections the site generates at build time
# ---------------------------------------------------------------------------------------------


def _hook():
    spec = importlib.util.spec_from_file_location(
        "perfjax_docs_hook", ROOT / "docs" / "hooks" / "perfjax_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections():
    hook = _hook()
    used = {
        m.group(1)
        for page in PAGES
        for m in re.finditer(r"^<!-- gen:([a-z-]+) -->", page.read_text(), re.MULTILINE)
    }
    assert used == set(hook.GENERATORS), "every placeholder has a generator, and every one is used"

    import perfjax
    import perfjax.lowering

    devices = hook.devices_md()
    for spec in _catalog_specs():
        assert f"`{spec.name}`" in devices
    rules = hook.cost_rules_md()
    assert "### `stablehlo`" in rules and "`dot_general`" in rules and "### `chlo`" in rules
    assert f"{len(perfjax.lowering.registered_ops())} op names" in rules
    assert "`perfjax.ops.matmul`" in hook.flash_ops_md()
    cli = hook.cli_md()
    for command in ("run", "trace", "analyze", "predict", "compare", "recommend", "calibrate"):
        assert f"### `perfjax {command}`" in cli
    assert "`8xh100-nvlink`" in hook.platforms_md()
