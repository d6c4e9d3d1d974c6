"""Griffe extension: the docstrings' reStructuredText blocks as Markdown code blocks.

The docstrings are written for Sphinx and doctest: ``>>>`` examples and ``::`` literal blocks.
Markdown would render ``>>>`` as nested quotes and the literal blocks as paragraphs, so before
mkdocstrings renders a docstring, each run of doctest lines (with its output) becomes a ``pycon``
code block, and each literal block a code block. ``# doctest:`` directives are not shown.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            pad = " " * _indent(line)
            out.append(pad + "```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(_DIRECTIVE.sub("", lines[i]))
                i += 1
            out.append(pad + "```")
            continue
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and _indent(lines[j]) > base:
                stripped = line.rstrip()[:-2].rstrip()
                out.append(stripped + ":" if stripped else "")
                out.append("")
                pad = " " * base
                out.append(pad + "```python")
                k = j
                block: list[str] = []
                while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > base):
                    block.append(lines[k])
                    k += 1
                while block and not block[-1].strip():
                    block.pop()
                cut = min(_indent(b) for b in block if b.strip())
                out.extend(pad + b[cut:] if b.strip() else "" for b in block)
                out.append(pad + "```")
                out.append("")
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstBlocks(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
