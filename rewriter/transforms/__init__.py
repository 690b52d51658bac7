"""AST transforms applied just before generation: T-SQL meaning on each backend.

sqlglot's dialects cannot be subclassed when its compiled extension (sqlglotc) is
installed, so every correction to its translation is a small pure transform of the
tree, one concern per module. Each runs on the qualified, parameter-marked tree, for
one backend; a construct a backend cannot express faithfully is refused with
``ConstructNotSupportedOnBackend`` naming the construct and the backend.

The T-SQL-meaning transforms run only when the logical SQL is T-SQL; a statement
written in the backend's own dialect means what that dialect means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlglot import exp

from rewriter.nodes import bfs
from rewriter.shapes import TableShape
from rewriter.transforms import concat, dates, numbers, strings
from rewriter.transforms.types import Types

# The node types each transform acts on (a subclass counts: some select by
# ``isinstance``). A transform with none of them in the tree would do nothing.
TRIGGERS: Mapping[str, tuple[type[exp.Expr], ...]] = {
    "convert_to_cast": (exp.Convert,),
    "integer_avg": (exp.Avg,),
    "decimal_division": (exp.Div,),
    "string_plus": (exp.Add, exp.Sub),
    "casts": (exp.Cast,),
    "dateadd": (exp.DateAdd,),
    "datediff": (exp.DateDiff,),
    "now": (exp.CurrentTimestamp, exp.Anonymous),
    "len_ignores_trailing_spaces": (exp.Length,),
    "like_patterns": (exp.Like,),
    "left_right": (exp.Left, exp.Right),
    "national_literals": (exp.National,),
}
_TRIGGERED_BY: dict[type[exp.Expr], frozenset[str]] = {}


def apply(
    tree: exp.Expr,
    backend: str,
    shapes: Mapping[str, TableShape],
    source_dialect: str = "tsql",
    nodes: list[exp.Expr] | None = None,
) -> None:
    """Rewrite ``tree`` in place for ``backend``.

    The transforms run in a fixed order, each over the tree as the previous ones left
    it. Each used to walk the whole tree even when it had nothing to do (most
    statements have no CAST, DATEADD or string ``+``): now one walk finds which
    transforms the tree's node types call for (``nodes``, the tree's nodes in
    ``walk()`` order, when the caller has them), a transform runs only then, and the
    tree is walked again after one that ran, as it may have added or removed nodes.
    """
    due = _due(bfs(tree) if nodes is None else nodes)
    if not due:
        return

    def run(name: str, transform: Callable[[], None]) -> None:
        nonlocal due
        if name in due:
            transform()
            due = _due(bfs(tree))

    run("convert_to_cast", lambda: strings.convert_to_cast(tree, backend))
    if source_dialect == "tsql":
        types = Types(tree, shapes)
        # Kinds are read before anything is rewritten below them, innermost first.
        run("integer_avg", lambda: numbers.integer_avg(tree, backend, types))
        run("decimal_division", lambda: numbers.decimal_division(tree, backend, types))
        run("string_plus", lambda: concat.string_plus(tree, backend, types))
        run("casts", lambda: strings.casts(tree, backend, types))
        run("dateadd", lambda: dates.dateadd(tree, backend, types))
        run("datediff", lambda: dates.datediff(tree, backend))
        run("now", lambda: dates.now(tree, backend))
        run(
            "len_ignores_trailing_spaces",
            lambda: strings.len_ignores_trailing_spaces(tree, backend),
        )
        run("like_patterns", lambda: strings.like_patterns(tree, backend))
    run("left_right", lambda: strings.left_right(tree, backend))
    run("national_literals", lambda: strings.national_literals(tree, backend))


def _due(nodes: list[exp.Expr]) -> frozenset[str]:
    """The transforms that the node types in ``nodes`` call for."""
    due: frozenset[str] = frozenset()
    for kind in {type(node) for node in nodes}:
        names = _TRIGGERED_BY.get(kind)
        if names is None:
            names = frozenset(n for n, types in TRIGGERS.items() if issubclass(kind, types))
            _TRIGGERED_BY[kind] = names
        due |= names
    return due
