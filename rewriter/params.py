"""Parameters: ``?`` (positional, numbered in text order at parse) and ``@name``.

``collect`` (parse time) counts them and refuses a mix. ``mark`` (rewrite time)
swaps every parameter for a unique marker variable; after the backend's SQL is
generated, ``unmark`` finds the markers in text order, turns each into ``?`` and
records which request parameter it binds. Binds stay binds whatever the generator
does to clause order (sqlite writes ``OFFSET ? ROWS FETCH NEXT ? ROWS`` as
``LIMIT ? OFFSET ?``). The row cap's placeholder (``row_cap``) is bound the same way;
its binding is its ``RowCap``. A literal ``lift`` took out is a ``Lifted``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlglot import exp

from rewriter.errors import InvalidParameters
from rewriter.lift import Lifted
from rewriter.markers import META_POSITION, META_ROW_CAP, PARAM_MARKER, PARAM_MARKER_RE
from rewriter.row_cap import RowCap

Binding = int | str | RowCap | Lifted


def collect(nodes: Iterable[exp.Expr]) -> tuple[int, tuple[str, ...]]:
    """(number of ``?``, distinct ``@name``s in order of first appearance) over the
    statement's nodes; a mix of both is refused."""
    positional = 0
    named: dict[str, None] = {}
    for node in nodes:
        if isinstance(node, exp.Placeholder):
            meta = node._meta  # not ``.meta``: reading that would attach an empty dict
            if meta and META_POSITION in meta:
                positional += 1
        elif isinstance(node, exp.Parameter) and isinstance(node.this, exp.Var):
            named.setdefault(node.this.name, None)
    if positional and named:
        raise InvalidParameters(
            "a statement uses either ? parameters or @name parameters, not both",
            positional=positional,
            named=len(named),
        )
    return positional, tuple(named)


def mark(tree: exp.Expr) -> list[Binding]:
    """Replace parameters by markers, in place; the list maps marker number -> binding.

    Members of a list (``IN (?, ?, ...)``, ``VALUES`` rows) are swapped in the list and
    the list is set back once per parent: sqlglot's ``replace`` re-parents the whole
    list for each member, which made 8,000 markers take 3.4 s (quadratic).
    """
    bindings: list[Binding] = []
    lists: dict[tuple[int, str], tuple[exp.Expr, str, list[exp.Expr]]] = {}
    for node in list(tree.find_all(exp.Placeholder, exp.Parameter)):
        if isinstance(node, exp.Placeholder):
            cap = node.meta.get(META_ROW_CAP)
            binding: Binding = cap if isinstance(cap, RowCap) else int(node.meta[META_POSITION])
        else:
            binding = node.this.name
        marker = exp.Var(this=PARAM_MARKER.format(len(bindings)))
        bindings.append(binding)
        parent, key, index = node.parent, node.arg_key, node.index
        members = parent.args.get(key) if parent is not None and key else None
        if index is not None and isinstance(members, list) and members[index] is node:
            assert parent is not None and key  # members was found through them
            lists.setdefault((id(parent), key), (parent, key, members))
            members[index] = marker
        else:
            node.replace(marker)
    for parent, key, members in lists.values():
        parent.set(key, members)  # parents, indexes and cached hashes, once per list
    return bindings


def unmark(sql: str, bindings: Sequence[Binding]) -> tuple[str, tuple[Binding, ...]]:
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
