"""Pass 2: which kind of statement this is. Only reads exist in this issue."""

from __future__ import annotations

from sqlglot import exp

from rewriter.errors import StatementNotAllowed

READ = "read"
KIND_NAMES = {"truncatetable": "TRUNCATE TABLE", "execute": "EXEC"}


def unwrap(tree: exp.Expr) -> exp.Expr:
    """``(SELECT ...)`` as a whole statement is the SELECT itself."""
    while isinstance(tree, exp.Subquery) and set(_set_args(tree)) <= {"this"}:
        inner = tree.this
        if not isinstance(inner, exp.Expr):
            break
        inner.pop()
        tree = inner
    return tree


def classify(tree: exp.Expr) -> str:
    """The statement class of ``tree``, or ``StatementNotAllowed`` naming its kind."""
    if isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        return READ
    kind = _kind(tree)
    raise StatementNotAllowed(
        f"{kind} statements are not allowed: only SELECT queries are accepted", statement=kind
    )


def _kind(tree: exp.Expr) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this or "command").upper()
    if isinstance(tree, exp.Subquery):
        return "parenthesized query with modifiers"
    return KIND_NAMES.get(tree.key, tree.key.upper())


def _set_args(node: exp.Expr) -> list[str]:
    return [k for k, v in node.args.items() if v is not None and v != []]
