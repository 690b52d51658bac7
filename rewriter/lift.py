"""Literals a filter compares with a table's column, sent as bind parameters
(PostgreSQL backends, ``rewrite(..., lift_literals=True)``).

Why: the PostgreSQL driver keeps statements prepared by their text. A client that
writes its values into the text (``pgbench -M simple``, Django's psycopg binding on
the client side, hand-written SQL) sends a new text per value: each one is parsed
and planned by the server again, and the prepared-statement room of a connection
fills with texts that differ by a number. ``WHERE "ContactID" = 42`` becomes
``WHERE "ContactID" = ?`` bound to ``'42'``, so every key is one prepared statement.
The plan of each text is still its own (its bindings hold its values); what is
shared is the backend SQL.

Only what is proven to mean the same is lifted. The driver sends these values
untyped, as text (``proxy.drivers.postgres.types``), and PostgreSQL types an untyped
parameter exactly as it types an untyped string literal: from where it stands. So a
literal is lifted when

* it stands in a comparison (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``), an ``IN``
  list or a ``BETWEEN`` whose other operand is a column read straight from a table
  (not through a derived table, a CTE or a set operation), whose declared type the
  metadata gives;
* that comparison is a WHERE or JOIN ... ON condition, or an AND, OR or NOT of them:
  such a condition is never matched against another expression. (A select list,
  GROUP BY, ORDER BY or HAVING can be: PostgreSQL accepts ``GROUP BY a = 5`` beside
  ``SELECT a = 5`` but not ``$1`` beside ``$2``.)
* and the pair is one of

  ============================  ==========================================
  literal                       column's declared type
  ============================  ==========================================
  ``'text'`` (no backslash)     text, character varying, character
  integer (``42``, ``-7``)      smallint, integer, bigint (in its range);
                                numeric/decimal
  decimal (``4.50``, ``-.5``)   numeric/decimal
  ============================  ==========================================

  A string literal is of unknown type to PostgreSQL, so the column's type resolves
  it, as it resolves the parameter. An integer literal is ``integer`` (``bigint``
  past 32 bits) and compares with an integer column exactly, by value, as the
  parameter typed as the column does, but only within the column's range: ``smallint
  = 40000`` is false where a parameter would fail to convert. A decimal literal is
  ``numeric``, which the parameter becomes against a numeric column.
  A string with a backslash is left alone: what the server reads from it depends on
  ``standard_conforming_strings``.

Everything else stays a literal: floats, dates, booleans, casts, ``N'...'``, and any
literal whose column kind is unknown. The rule runs after every transform, just
before generation, so transforms still see the literals they act on, and what it
lifts is the PostgreSQL SQL about to be written.

What lifting costs: PostgreSQL plans a prepared statement for its first five runs
with the values, then may keep one generic plan (``plan_cache_mode``). A filter on a
skewed column whose best plan depends on the value may then get a generic plan, as
it does for any client that binds its values; ``query.lift_literals = false`` turns
lifting off (docs/decisions.md, "Literals sent as parameters").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from rewriter.markers import PARAM_MARKER
from rewriter.transforms.types import Types
from rewriter.type_names import declared_type

__all__ = ["Lifted", "lift"]


@dataclass(frozen=True, slots=True)
class Lifted:
    """A bind value the rewriter took out of the statement: the literal's text,
    which the driver sends untyped."""

    text: str


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_CONNECTIVES = (exp.And, exp.Or, exp.Not, exp.Paren)

# Declared integer types by the range of their values, PostgreSQL's names and aliases.
_INTEGER_BITS = {
    "smallint": 16,
    "int2": 16,
    "integer": 32,
    "int": 32,
    "int4": 32,
    "bigint": 64,
    "int8": 64,
}
_NUMERIC = frozenset({"numeric", "decimal"})
_TEXT = frozenset({"text", "character varying", "varchar", "character", "char", "bpchar"})
_DECIMAL = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+")


def lift(tree: exp.Expr, types: Types, first: int) -> list[Lifted]:
    """Swap each liftable literal of ``tree`` (see the module) for a parameter marker,
    numbered from ``first`` (the markers ``params.mark`` made come before); the
    bindings of the new markers, in their numbers' order."""
    bindings = _Bindings(first)
    for condition in _conditions(tree):
        stack = [condition]
        while stack:
            node = stack.pop()
            if isinstance(node, _CONNECTIVES):
                stack.extend(n for n in (node.this, node.args.get("expression")) if n)
            elif isinstance(node, _COMPARISONS):
                _lift_pair(node.this, node.expression, types, bindings)
                _lift_pair(node.expression, node.this, types, bindings)
            elif isinstance(node, exp.In) and not node.args.get("query"):
                _lift_list(node, types, bindings)
            elif isinstance(node, exp.Between):
                _lift_pair(node.this, node.args.get("low"), types, bindings)
                _lift_pair(node.this, node.args.get("high"), types, bindings)
    return bindings.lifted


class _Bindings:
    """The markers made so far: the next one's number, and what each binds."""

    __slots__ = ("first", "lifted")

    def __init__(self, first: int) -> None:
        self.first = first
        self.lifted: list[Lifted] = []

    def marker(self, text: str) -> exp.Var:
        self.lifted.append(Lifted(text))
        return exp.Var(this=PARAM_MARKER.format(self.first + len(self.lifted) - 1))


def _conditions(tree: exp.Expr) -> list[exp.Expr]:
    """Every WHERE and JOIN ... ON condition of the statement, subqueries' included."""
    found: list[exp.Expr] = []
    for node in tree.find_all(exp.Where, exp.Join):
        condition = node.this if isinstance(node, exp.Where) else node.args.get("on")
        if isinstance(condition, exp.Expr):
            found.append(condition)
    return found


def _lift_pair(
    column: exp.Expr | None, value: exp.Expr | None, types: Types, bindings: _Bindings
) -> None:
    """Lift ``value`` if it is a literal that means the same as a parameter beside
    ``column``."""
    if value is not None and isinstance(column, exp.Column):
        marker = _marker(column, value, types, bindings)
        if marker is not None:
            value.replace(marker)


def _lift_list(node: exp.In, types: Types, bindings: _Bindings) -> None:
    """An IN list's liftable members, set back once: sqlglot's ``replace`` re-parents
    the whole list for each member (see ``params.mark``)."""
    column = node.this
    if not isinstance(column, exp.Column):
        return
    members = list(node.expressions)
    changed = False
    for index, member in enumerate(members):
        marker = _marker(column, member, types, bindings)
        if marker is not None:
            members[index] = marker
            changed = True
    if changed:
        node.set("expressions", members)


def _marker(
    column: exp.Column, value: exp.Expr, types: Types, bindings: _Bindings
) -> exp.Var | None:
    """The marker that stands for ``value`` beside ``column``, or None when it stays a
    literal."""
    text = _literal_text(value)
    if text is None:
        return None
    declared = types.table_declared(column)
    if declared is None or not _means_the_same(text, value, declared):
        return None
    return bindings.marker(text)


def _literal_text(node: exp.Expr) -> str | None:
    """The text a literal (or a negated number) stands for; None for anything else."""
    if isinstance(node, exp.Neg):
        inner = node.this
        if type(inner) is exp.Literal and not inner.is_string:
            return "-" + str(inner.this)
        return None
    if type(node) is exp.Literal:
        return str(node.this)
    return None


def _means_the_same(text: str, literal: exp.Expr, declared: str) -> bool:
    """Whether the untyped parameter ``text`` means what ``literal`` means beside a
    column of type ``declared`` (the module's table)."""
    name = declared_type(declared).name
    if isinstance(literal, exp.Literal) and literal.is_string:
        return name in _TEXT and "\\" not in text
    digits = text.removeprefix("-")
    if not digits.isascii():
        return False
    if digits.isdigit():
        bits = _INTEGER_BITS.get(name)
        if bits is not None:
            return -(1 << (bits - 1)) <= int(text) < 1 << (bits - 1)
        return name in _NUMERIC
    return _DECIMAL.fullmatch(digits) is not None and name in _NUMERIC
