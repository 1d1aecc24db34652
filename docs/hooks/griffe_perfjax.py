"""A griffe extension for the API pages: reads perfjax's docstrings as the site should show them.

perfjax's docstrings are Google style with two reStructuredText habits, which this extension
translates when the docstrings are loaded (it changes only what the site shows, never the package):

* Doctests are titled "Example:". Griffe knows "Examples:" as the section of ``>>>`` examples and
  reads "Example:" as a free-text admonition, where doctest output such as ``[0.849, 1.131]``
  would be taken for Markdown links; the section is renamed so the examples render as code.
* Cross-references are written as roles, ``:func:`predict``` or ``:class:`~perfjax.Program```;
  they become code spans (``predict``, ``Program``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|py:\w+):`(~?)([^`]+)`")


def _role(m: re.Match) -> str:
    target = m.group(2)
    if m.group(1):  # ~a.b.c shows as c
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class PerfjaxDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is None:
            return
        value = _EXAMPLE.sub(r"\1Examples:", doc.value)
        doc.value = _ROLE.sub(_role, value)
