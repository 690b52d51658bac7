"""``bit`` against integers on PostgreSQL, where a ``bit`` column is a ``boolean``.

T-SQL compares a ``bit`` with an integer as integers (``int`` has the higher type
precedence: ``IsActive = 1`` is true for 1, ``IsActive = 5`` never), and reporting SQL
filters that way all the time (``WHERE IsClosed = 0``). PostgreSQL has no
``boolean = integer`` operator and refuses the statement. So, where one side is known to
be boolean and the other an integer:

* ``= 0`` / ``= 1`` (and ``<>``) become ``= FALSE`` / ``= TRUE``: the same rows, and an
  index on the column still serves;
* any other comparison casts the boolean side: ``CAST(x AS INTEGER) > 0``, the integer
  comparison T-SQL makes (``IN (...)`` too);
* ``UPDATE ... SET x = 1`` and ``INSERT ... (x) VALUES (1)`` assign ``TRUE``, and
  another integer ``CAST(n AS BOOLEAN)`` (T-SQL stores any non-zero integer in a ``bit``
  as 1, as that cast does).

A parameter's type is not known when the plan is made: ``IsActive = ?`` is left alone,
and a caller binds a JSON boolean for a ``bit`` column on PostgreSQL (as for writes).
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.transforms.types import Types
from rewriter.type_names import BOOLEAN, INTEGER

COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _bit_literal(node: exp.Expr) -> bool | None:
    """``True``/``False`` for the integer literal 1/0, else ``None``."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string and node.this in ("0", "1"):
        return bool(node.this == "1")
    return None


def _as_integer(node: exp.Expr) -> exp.Expr:
    return exp.Cast(this=node.copy(), to=exp.DataType.build("INT"))


def bit_comparisons(tree: exp.Expr, backend: str, types: Types) -> None:
    if isinstance(tree, exp.Insert):
        _inserted_bits(tree, types)
    # Most statements compare no bit column: they are told apart by column names alone,
    # without the scopes that finding kinds needs (~90 us a plan-cache miss). A bit
    # column renamed in a derived table (``SELECT Active AS A``) is missed by that look.
    if not any(
        isinstance(side, exp.Column) and types.declares(side.name, BOOLEAN)
        for node in tree.find_all(*COMPARISONS, exp.In)
        for side in (node.this, node.args.get("expression"))
    ):
        return
    # Decided on the tree as it is, then changed: a change must not alter what a later
    # node's kind is found to be.
    changes: list[tuple[exp.Expr, str, exp.Expr]] = []
    for node in tree.find_all(*COMPARISONS):
        left, right = node.this, node.expression
        kinds = (types.of(left), types.of(right))
        if kinds == (BOOLEAN, INTEGER):
            boolean_key, other = "this", right
        elif kinds == (INTEGER, BOOLEAN):
            boolean_key, other = "expression", left
        else:
            continue
        if isinstance(node.parent, exp.Update) and node.arg_key == "expressions":
            value = _bit_literal(other)
            assigned = exp.Boolean(this=value) if value is not None else None
            changes.append((node, "expression", assigned or _as_boolean(other)))
            continue
        value = _bit_literal(other)
        if value is not None and isinstance(node, exp.EQ | exp.NEQ):
            other_key = "expression" if boolean_key == "this" else "this"
            changes.append((node, other_key, exp.Boolean(this=value)))
        else:
            changes.append((node, boolean_key, _as_integer(node.args[boolean_key])))
    for in_list in tree.find_all(exp.In):
        if types.of(in_list.this) == BOOLEAN and all(
            types.of(item) == INTEGER for item in in_list.expressions
        ):
            changes.append((in_list, "this", _as_integer(in_list.this)))
    for changed, key, replacement in changes:
        changed.set(key, replacement)


def _inserted_bits(insert: exp.Insert, types: Types) -> None:
    """``INSERT INTO t (bit_column, ...) VALUES (1, ...)``: the values as booleans."""
    schema, values = insert.this, insert.expression
    if not isinstance(schema, exp.Schema) or not isinstance(values, exp.Values):
        return
    table = schema.this.name
    bits = [
        i
        for i, column in enumerate(schema.expressions)
        if types.kind_in(table, column.name) == BOOLEAN
    ]
    for row in values.expressions if bits else ():
        for i in bits:
            if i >= len(row.expressions):
                continue
            value = row.expressions[i]
            bit = _bit_literal(value)
            if bit is not None:
                value.replace(exp.Boolean(this=bit))
            elif types.of(value) == INTEGER:
                value.replace(_as_boolean(value))


def _as_boolean(node: exp.Expr) -> exp.Expr:
    return exp.Cast(this=node.copy(), to=exp.DataType.build("BOOLEAN"))
