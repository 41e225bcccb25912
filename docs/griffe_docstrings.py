# ruff: noqa: INP001  (loaded by mkdocstrings from mkdocs.yml, not imported as a package)
"""Griffe extension for the API reference: reST markup in docstrings, shown as Markdown.

The library's docstrings use reST roles (``:class:`Lease```) and ``::`` literal blocks,
which Markdown would print as they are. This turns a role into inline code and a ``::``
ending a paragraph into ``:``, leaving the indented block below it a code block.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"(^|\S)::$", re.MULTILINE)


def markdown(text: str) -> str:
    """`text` with reST roles and literal-block markers rewritten for Markdown."""
    text = _ROLE.sub(r"`\1`", text)
    text = re.sub(r"^[ \t]*::\n", "", text, flags=re.MULTILINE)
    return _LITERAL.sub(r"\1:", text)


#: Internal sentinels shown as what they mean, not by their names.
_DEFAULTS = {"UNSET": "unchanged"}


class ReSTToMarkdown(Extension):
    """Rewrite each object's docstring as it is loaded; show sentinel defaults plainly."""

    def on_object(self, *, obj: Object, **_kwargs: Any) -> None:
        """Rewrite the docstring of `obj`, if it has one, and its sentinel defaults."""
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
        for parameter in getattr(obj, "parameters", ()):
            shown = _DEFAULTS.get(str(parameter.default))
            if shown is not None:
                parameter.default = shown
