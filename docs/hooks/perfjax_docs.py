"""mkdocs hooks for the perfjax site: generated sections and links to files outside docs/.

Pages carry placeholders (an HTML comment on a line of its own) that are replaced at build time,
so the generated text always matches the installed package and nothing generated is committed:

* ``<!-- gen:cost-rules -->``   ops with a cost rule (``perfjax.lowering.registered_ops()``),
  grouped by dialect, and the ops left out on purpose, with the reason;
* ``<!-- gen:flash-ops -->``    ``perfjax.ops.__all__`` with each function's first docstring line;
* ``<!-- gen:devices -->``      the device catalog, read from ``perfjax/devicemodels/catalog.toml``;
* ``<!-- gen:platforms -->``    the built-in platforms (``perfjax.placement.platforms()``);
* ``<!-- gen:cli -->``          ``perfjax --help`` and the help of every subcommand;
* ``<!-- gen:changelog -->`` and ``<!-- gen:license -->``: ``CHANGELOG.md`` and ``LICENSE``.

Links from a page to a repository file outside docs/ (``../benchmarks/fuzz.py``) are kept working
on the site: the file is copied into it and the link is rewritten to that copy.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import posixpath
import re
import runpy
import sys
from collections.abc import Callable
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOG = ROOT / "perfjax" / "devicemodels" / "catalog.toml"

_PLACEHOLDER = re.compile(r"^<!-- gen:([a-z-]+) -->[ \t]*$", re.MULTILINE)
# Markdown links and images whose target starts with ../ (a repository file outside docs/).
_UP_LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)(#[^)\s]*)?\)")

_docs_dir = ROOT / "docs"


# ---------------------------------------------------------------------------------------------
# mkdocs events
# ---------------------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    global _docs_dir
    _docs_dir = pathlib.Path(config["docs_dir"]).resolve()
    return config


def on_files(files: Any, config: Any) -> Any:
    """Adds the repository files that pages link to with ``../`` (scripts, results) to the site."""
    from mkdocs.structure.files import File  # (imported here: the generators need no mkdocs)

    wanted: set[str] = set()
    for f in files.documentation_pages():
        src = pathlib.Path(f.abs_src_path)
        page_dir = src.parent.relative_to(_docs_dir).as_posix()
        wanted.update(_up_targets(src.read_text(encoding="utf-8"), page_dir))
    # (the changelog is included at the top of docs/ by a placeholder)
    wanted.update(_up_targets(changelog_md(), ""))
    for rel in sorted(wanted):
        if files.get_file_from_path(rel) is None:
            files.append(
                File(
                    rel,
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = _PLACEHOLDER.sub(lambda m: _generate(m.group(1), page.file.src_uri), markdown)
    page_dir = posixpath.dirname(page.file.src_uri)

    def relink(m: re.Match) -> str:
        rel = _repo_path(page_dir, m.group(2))
        if rel is None:
            return m.group(0)
        # The copy lives at the same path relative to the site root as the file to the repo root.
        new = posixpath.relpath(rel, page_dir or ".")
        return f"{m.group(1)}{new}{m.group(3) or ''})"

    return _UP_LINK.sub(relink, markdown)


# ---------------------------------------------------------------------------------------------
# links outside docs/
# ---------------------------------------------------------------------------------------------


def _repo_path(page_dir: str, url: str) -> str | None:
    """``url`` (relative to a page in ``page_dir``) as a path relative to the repository root, if
    it leaves docs/ and names an existing file that is not a Markdown page."""
    docs_rel = _docs_dir.relative_to(ROOT).as_posix()
    rel = posixpath.normpath(posixpath.join(docs_rel, page_dir, url))
    if rel.startswith("..") or rel == docs_rel or rel.startswith(docs_rel + "/"):
        return None
    path = ROOT / rel
    if not path.is_file() or path.suffix == ".md":
        return None
    return rel


def _up_targets(markdown: str, page_dir: str) -> list[str]:
    """Repository files outside docs/ that ``markdown``, a page in ``page_dir``, links to."""
    page_dir = "" if page_dir == "." else page_dir
    out = []
    for m in _UP_LINK.finditer(markdown):
        rel = _repo_path(page_dir, m.group(2))
        if rel is not None:
            out.append(rel)
    return out


# ---------------------------------------------------------------------------------------------
# generated sections
# ---------------------------------------------------------------------------------------------


def _generate(name: str, where: str) -> str:
    if name not in GENERATORS:
        raise ValueError(
            f"{where}: unknown placeholder <!-- gen:{name} -->; known: {sorted(GENERATORS)}"
        )
    return GENERATORS[name]()


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell; reStructuredText ``code`` becomes `code`."""
    parts = re.split(r"``(.+?)``", " ".join(str(text).split()))
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside ``...``
            out.append("`" + part.replace("|", "\\|") + "`")
            continue
        for ch in "\\`*_[]<>|":
            part = part.replace(ch, "\\" + ch)
        out.append(part)
    return "".join(out)


def _num(x: float) -> str:
    """A figure as written on a datasheet: 1,248 rather than 1.25e+03."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def cost_rules_md() -> str:
    import perfjax.lowering

    ops = perfjax.lowering.registered_ops()
    by_dialect: dict[str, list[str]] = {}
    targets: list[str] = []
    for name in ops:
        if "@" in name:
            targets.append(name.split("@", 1)[1])
            continue
        dialect, _, op = name.partition(".")
        by_dialect.setdefault(dialect, []).append(op)
    lines = [f"{len(ops)} op names have a cost rule in this version.", ""]
    for dialect in sorted(by_dialect):
        names = by_dialect[dialect]
        lines += [f"### `{dialect}` ({len(names)} ops)", ""]
        lines.append(", ".join(f"`{n}`" for n in names))
        lines.append("")
    if targets:
        lines += [
            f"### `stablehlo.custom_call` targets ({len(targets)})",
            "",
            "Custom calls are costed per target, registered as `stablehlo.custom_call@<target>`:",
            "",
            ", ".join(f"`{t}`" for t in targets),
            "",
        ]
    excluded = _excluded_ops()
    if excluded:
        lines += [
            "### Ops without a rule, on purpose",
            "",
            "| op | why |",
            "|---|---|",
        ]
        lines += [f"| `{op}` | {_cell(why)} |" for op, why in sorted(excluded.items())]
        lines.append("")
    return "\n".join(lines)


def _excluded_ops() -> dict[str, str]:
    import perfjax.lowering

    return dict(perfjax.lowering.EXCLUDED_OPS)


def flash_ops_md() -> str:
    import perfjax.ops

    lines = ["| op | what it does |", "|---|---|"]
    for name in perfjax.ops.__all__:
        obj = getattr(perfjax.ops, name)
        if not callable(obj):
            continue
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        first = doc[0].strip() if doc else ""
        lines.append(f"| [`perfjax.ops.{name}`](api-ops.md#perfjax.ops.{name}) | {_cell(first)} |")
    return "\n".join(lines) + "\n"


def _catalog() -> dict[str, dict[str, Any]]:
    if not CATALOG.is_file():
        raise FileNotFoundError(f"device catalog not found at {CATALOG}")
    with open(CATALOG, "rb") as f:
        return tomllib.load(f)


_FAMILY_TITLES = {"gpu": "GPUs", "tpu": "TPUs", "cpu": "CPUs", "npu": "NPUs (edge accelerators)"}


def _peaks(d: dict[str, float] | None) -> str:
    if not d:
        return "–"
    return ", ".join(f"{p} {_num(v / 1e12)}" for p, v in d.items())


def devices_md() -> str:
    cat = _catalog()
    families: dict[str, list[str]] = {}
    for name, entry in cat.items():
        families.setdefault(entry["family"], []).append(name)
    counts = ", ".join(
        f"{len(families[f])} {_FAMILY_TITLES[f].split(' ')[0]}"
        for f in _FAMILY_TITLES
        if f in families
    )
    lines = [
        f"The catalog has **{len(cat)} devices** ({counts}), plus `host`, this machine, detected "
        "when perfjax runs. Peaks are dense (no structured sparsity), in TFLOP/s (TOP/s for "
        "integer precisions); memory is in GiB, bandwidth in GB/s.",
        "",
    ]
    for fam, title in _FAMILY_TITLES.items():
        names = families.get(fam, [])
        if not names:
            continue
        lines += [
            f"### {title}",
            "",
            "| device | vendor | matrix peak (TFLOP/s) | vector peak (TFLOP/s) | memory BW (GB/s) "
            "| memory (GiB) | TDP (W) |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in names:
            e = cat[n]
            lines.append(
                f"| `{n}` | {_cell(e.get('vendor', ''))} | {_peaks(e.get('matrix_flops_per_s'))} "
                f"| {_peaks(e.get('vector_flops_per_s'))} | {_num(e['memory_bytes_per_s'] / 1e9)} "
                f"| {_num(e['memory_bytes'] / 2**30)} | {_num(e['tdp_w'])} |"
            )
        lines.append("")
    lines += [
        "### Sources",
        "",
        "Each entry's description, aliases (accepted wherever a device name is) and `source` "
        "field, as written in `catalog.toml`:",
        "",
    ]
    for n, e in cat.items():
        aliases = ", ".join(f"`{a}`" for a in e.get("aliases", []))
        also = f" Aliases: {aliases}." if aliases else ""
        lines.append(
            f"- **`{n}`**: {_cell(e.get('description', ''))}.{also} "
            f"Source: {_cell(e.get('source', ''))}"
        )
    lines.append("")
    return "\n".join(lines)


def platforms_md() -> str:
    from perfjax import placement

    lines = ["| platform | devices | topology | description |", "|---|---|---|---|"]
    for name in placement.platforms():
        p = placement.platform(name)
        counts: dict[str, int] = {}
        for s in p.specs:
            counts[s.name] = counts.get(s.name, 0) + 1
        devs = " + ".join(f"{k}×`{n}`" for n, k in counts.items())
        kinds = ", ".join(sorted({str(t.get("kind", "")) for t in p.topologies if t.get("kind")}))
        lines.append(f"| `{name}` | {devs} | {_cell(kinds or 'links')} | {_cell(p.description)} |")
    return "\n".join(lines) + "\n"


def _help(argv: list[str]) -> str:
    """The output of ``perfjax ARGV`` (``python -m perfjax``), run in this process."""
    out = io.StringIO()
    old_argv = sys.argv
    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    sys.argv = ["perfjax", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            with contextlib.suppress(SystemExit):
                runpy.run_module("perfjax", run_name="__main__", alter_sys=False)
    finally:
        sys.argv = old_argv
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns
    return out.getvalue().rstrip()


def cli_md() -> str:
    top = _help(["--help"])
    # Subcommands are listed one per line, indented, under the COMMAND argument.
    commands = re.findall(r"^    ([a-z]+)(?:  |[ \t]*$)", top, re.MULTILINE)
    lines = ["### `perfjax --help`", "", "```text", top, "```", ""]
    for c in commands:
        lines += [f"### `perfjax {c}`", "", "```text", _help([c, "--help"]), "```", ""]
    return "\n".join(lines)


def _from_root(text: str) -> str:
    """Relative links of a repository-root file, made relative to a page at the top of docs/."""

    def fix(m: re.Match) -> str:
        url = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith(("#", "/")):
            return m.group(0)
        docs = _docs_dir.relative_to(ROOT).as_posix() + "/"
        return f"]({url[len(docs) :] if url.startswith(docs) else '../' + url})"

    return re.sub(r"\]\(([^)\s]+)\)", fix, text)


def changelog_md() -> str:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    # Drop the file's own title: the page has one.
    text = re.sub(r"\A# [^\n]*\n", "", text)
    return _from_root(text)


def license_md() -> str:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    return "```text\n" + text.rstrip() + "\n```\n"


#: Placeholder name -> the function that writes its Markdown.
GENERATORS: dict[str, Callable[[], str]] = {
    "cost-rules": cost_rules_md,
    "flash-ops": flash_ops_md,
    "devices": devices_md,
    "platforms": platforms_md,
    "cli": cli_md,
    "changelog": changelog_md,
    "license": license_md,
}
