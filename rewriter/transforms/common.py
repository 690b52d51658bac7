"""Small helpers shared by the transforms."""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.markers import PARAM_MARKER_RE


def has_parameter(node: exp.Expr) -> bool:
    """After ``params.mark`` a parameter is a marker ``Var``."""
    return any(PARAM_MARKER_RE.fullmatch(var.name) for var in node.find_all(exp.Var))


def reusable(node: exp.Expr, construct: str, backend: str) -> exp.Expr:
    """``node`` for a translation that writes it twice: a parameter cannot be doubled
    (each ``?`` is bound once, in text order), so such an operand is refused."""
    if has_parameter(node):
        raise not_supported(
            construct, backend, "this translation repeats the operand, which cannot be a parameter"
        )
    return node


def call(name: str, *args: exp.Expr) -> exp.Expr:
    """A backend function sqlglot has no node for, written as is."""
    return exp.Anonymous(this=name, expressions=list(args))


def number(value: int) -> exp.Expr:
    literal = exp.Literal.number(abs(value))
    return exp.Neg(this=literal) if value < 0 else literal


def post_order(tree: exp.Expr, *kinds: type[exp.Expr]) -> list[exp.Expr]:
    """Nodes of the given types, children before parents (inner ``+`` decided first)."""
    return [n for n in tree.walk(bfs=False) if type(n) in kinds][::-1]
