"""Pass 2: which kind of statement this is.

SELECT / UNION / INTERSECT / EXCEPT are ``read``; INSERT, UPDATE and DELETE are
``write`` (their shape is checked by ``writes.check``); anything else is refused.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.errors import StatementNotAllowed

READ = "read"
WRITE = "write"
KIND_NAMES = {"truncatetable": "TRUNCATE TABLE", "execute": "EXEC"}
WRITE_KINDS = (exp.Insert, exp.Update, exp.Delete)


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
    # Exact types: a subclass sqlglot adds later (a dialect's own INSERT form) stays refused.
    if type(tree) in WRITE_KINDS:
        return WRITE
    kind = _kind(tree)
    raise StatementNotAllowed(
        f"{kind} statements are not allowed: only SELECT, INSERT, UPDATE and DELETE are accepted",
        statement=kind,
    )


def _kind(tree: exp.Expr) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this or "command").upper()
    if isinstance(tree, exp.Subquery):
        return "parenthesized query with modifiers"
    return KIND_NAMES.get(tree.key, tree.key.upper())


def _set_args(node: exp.Expr) -> list[str]:
    return [k for k, v in node.args.items() if v is not None and v != []]
