"""Parameters: ``?`` (positional, numbered in text order at parse) and ``@name``.

``collect`` (parse time) counts them and refuses a mix. ``mark`` (rewrite time)
swaps every parameter for a unique marker variable; after the backend's SQL is
generated, ``unmark`` finds the markers in text order, turns each into ``?`` and
records which request parameter it binds. Binds stay binds whatever the generator
does to clause order (sqlite writes ``OFFSET ? ROWS FETCH NEXT ? ROWS`` as
``LIMIT ? OFFSET ?``).
"""

from __future__ import annotations

import re

from sqlglot import exp

from rewriter.errors import InvalidParameters
from rewriter.markers import META_POSITION, PARAM_MARKER, PARAM_MARKER_RE

Binding = int | str


def collect(tree: exp.Expr) -> tuple[int, tuple[str, ...]]:
    """(number of ``?``, distinct ``@name``s in order of first appearance)."""
    positional = sum(1 for p in tree.find_all(exp.Placeholder) if META_POSITION in p.meta)
    named: dict[str, None] = {}
    for parameter in tree.find_all(exp.Parameter):
        if isinstance(parameter.this, exp.Var):
            named.setdefault(parameter.this.name, None)
    if positional and named:
        raise InvalidParameters(
            "a statement uses either ? parameters or @name parameters, not both",
            positional=positional,
            named=len(named),
        )
    return positional, tuple(named)


def mark(tree: exp.Expr) -> list[Binding]:
    """Replace parameters by markers, in place; the list maps marker number -> binding."""
    bindings: list[Binding] = []
    for node in list(tree.find_all(exp.Placeholder, exp.Parameter)):
        if isinstance(node, exp.Placeholder):
            binding: Binding = int(node.meta[META_POSITION])
        else:
            binding = node.this.name
        node.replace(exp.Var(this=PARAM_MARKER.format(len(bindings))))
        bindings.append(binding)
    return bindings


def unmark(sql: str, bindings: list[Binding]) -> tuple[str, tuple[Binding, ...]]:
    """Markers -> ``?``; the bindings in the order the ``?`` appear in ``sql``."""
    found: list[int] = []

    def substitute(match: re.Match[str]) -> str:
        found.append(int(match.group(1)))
        return "?"

    text = PARAM_MARKER_RE.sub(substitute, sql)
    # sqlglot must neither drop nor duplicate a bind parameter.
    if sorted(found) != list(range(len(bindings))):  # pragma: no cover - defensive
        raise AssertionError("the generated SQL lost or duplicated a parameter")
    return text, tuple(bindings[i] for i in found)
