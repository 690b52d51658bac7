"""The types of a statement's parameters and result columns, before it runs.

A client that prepares (asyncpg, JDBC) asks for both right after sending the text,
before it binds a value: it encodes each parameter, and decodes each column, by the
type it is told. ``infer`` answers from the statement and the tenant's table shapes
alone, as the rest of the rewriter does: no backend is asked.

Each answer is a ``TypeHint``: the declared type name where a table's column (or a
CAST's target) says it, so that the caller can read it the way its backend's driver
reads values of that type; otherwise the kind of value an expression yields
(``rewriter.type_names``), or nothing at all.

Parameters: a ``?`` takes its type from where it stands, by the rules of ``_RULES``:

    col = ?, col <> ?, ? < col ...     the other operand's type
    col [NOT] IN (?, ...)              col's type
    col BETWEEN ? AND ?                col's type
    col LIKE ?                         text
    INSERT (a, b) VALUES (?, ?)        the column at that position (also INSERT ... SELECT ?)
    INSERT (a) SELECT x FROM (VALUES (?)) AS v(x)   as the select item reading x
    UPDATE ... SET col = ?             col's type (a SET item is an ``=``)
    LIMIT ?, OFFSET ?, TOP ?, FETCH ?  integer
    CAST(? AS type), (?)::type         the target type

Anything else has no hint: the caller announces it as text, and the client sends text.

Result columns: a plain column, also through derived tables and CTEs, has its declared
type; ``*`` and ``CUSTOM_FIELDS()`` expand to such columns. Of expressions only those
whose kind is the same on every backend are typed (a literal, COUNT, a CAST, string
functions, MIN/MAX/SUM of a typed operand...); ``AVG`` and ``/`` are not (PostgreSQL's
AVG of integers is numeric, SQL Server's an integer). A wrong type would be worse than
none: a client decodes a column it was told is an integer as one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from rewriter import columns as cols
from rewriter import qualify, writes
from rewriter.allowlist import is_insert_values_source
from rewriter.markers import META_POSITION
from rewriter.parse import ParsedStatement, too_deep
from rewriter.plan import MISSING_COLUMN_POLICIES, table_shapes
from rewriter.shapes import TableShape, column_type
from rewriter.sources import Context, spliced
from rewriter.statement import WRITE
from rewriter.transforms import pivot
from rewriter.transforms.types import Types
from rewriter.type_names import INTEGER, TEXT, kind_of_type_name

__all__ = ["Inferred", "TypeHint", "infer"]


@dataclass(frozen=True, slots=True)
class TypeHint:
    """What is known of one parameter's or column's type."""

    kind: str | None = None
    """A kind of ``rewriter.type_names`` (``text``, ``integer``, ...), ``None``: unknown."""
    declared: str | None = None
    """The declared type name it comes from (``character varying(50)``, ``NUMERIC``),
    when a table's column or a CAST names one."""


UNKNOWN = TypeHint()


@dataclass(frozen=True, slots=True)
class Inferred:
    params: tuple[TypeHint, ...]
    """One per ``?``, in text order (``ParsedStatement.positional_params`` of them)."""
    columns: tuple[TypeHint, ...] | None
    """One per output column (``Plan.columns``); ``None`` for a statement without a
    result set (a write without OUTPUT/RETURNING)."""


def infer(
    parsed: ParsedStatement,
    *,
    tables: Mapping[str, TableShape | None],
    backend: str,
    missing_columns: str = "error",
) -> Inferred:
    """The types of ``parsed``'s ``?`` parameters and result columns (see the module).

    ``tables`` and ``missing_columns`` are as ``rewrite`` takes them; a statement that
    ``rewrite`` refuses (an unknown column) is refused here the same way.
    """
    if missing_columns not in MISSING_COLUMN_POLICIES:
        raise ValueError(f"missing_columns must be one of {MISSING_COLUMN_POLICIES}")
    shapes = table_shapes(parsed, tables)
    ctx = Context(shapes=shapes, missing_null=missing_columns == "null", tenant="")
    tree = parsed.expression.copy()
    try:
        # The rewrite's own passes up to physical names: columns qualified, stars and
        # CUSTOM_FIELDS expanded, tables spelled as the shapes spell them.
        qualify.alias_tables(tree)
        pivot.rewrite(tree, backend)
        target_shape: TableShape | None = None
        if parsed.statement_class == WRITE:
            target, names = writes.qualify_write(tree, ctx)
            target_shape = shapes[target.name]
            tables_in_tree = [target, *qualify.physical_tables(tree)]
        else:
            names = cols.qualify_columns(tree, ctx)
            tables_in_tree = qualify.physical_tables(tree)
        qualify.physical_names(tables_in_tree, shapes)
        types = Types(tree, shapes)
        env = _Env(types, {shape.name: shape for shape in shapes.values()})
        params = _params(tree, env, parsed.positional_params)
        if target_shape is not None:
            columns = _returned(tree, target_shape, names) if names else None
        else:
            columns = _read_columns(tree, types, names)
    except RecursionError:
        raise too_deep() from None
    return Inferred(params, columns)


# -- result columns ------------------------------------------------------------------


def _read_columns(tree: exp.Expr, types: Types, names: Sequence[str]) -> tuple[TypeHint, ...]:
    """A read's columns: of each branch of a set operation, where the branches agree."""
    branches = [_select_columns(select, types) for select in _branches(tree)]
    hints = [
        _agreed([b[i] if i < len(b) else UNKNOWN for b in branches]) for i in range(len(names))
    ]
    return tuple(hints)


def _agreed(hints: Sequence[TypeHint]) -> TypeHint:
    """The type of a set operation's column: its branches' if they agree, else their
    common kind (``varchar(100)`` and ``text`` are both text), else unknown."""
    first = hints[0] if hints else UNKNOWN
    if all(hint == first for hint in hints):
        return first
    if first.kind is not None and all(hint.kind == first.kind for hint in hints):
        return TypeHint(kind=first.kind)
    return UNKNOWN


def _branches(query: exp.Expr) -> list[exp.Select]:
    if isinstance(query, exp.SetOperation):
        return _branches(query.this) + _branches(query.expression)
    if isinstance(query, exp.Subquery):
        return _branches(query.this)
    return [query] if isinstance(query, exp.Select) else []


def _select_columns(select: exp.Select, types: Types) -> list[TypeHint]:
    hints: list[TypeHint] = []
    for item in select.expressions:
        splice = spliced(item)
        if splice is None:
            hints.append(_hint_of(item.unalias(), types))
            continue
        for name in splice.names:
            # A column as the expansion would have written it, hung under this select
            # (not in it) so that ``Types`` finds its scope and source.
            probe = exp.Column(
                this=exp.Identifier(this=name, quoted=True),
                table=exp.Identifier(this=splice.alias, quoted=True),
            )
            probe.parent = select
            hints.append(_hint_of(probe, types))
    return hints


def _returned(tree: exp.Expr, shape: TableShape, names: Sequence[str]) -> tuple[TypeHint, ...]:
    """OUTPUT/RETURNING: columns of the table written to, resolved by ``qualify_write``."""
    returning = tree.args.get("returning")
    items = returning.expressions if isinstance(returning, exp.Returning) else []
    hints = [_declared(column_type(shape, item.unalias().name)) for item in items]
    if len(hints) != len(names):  # pragma: no cover - the same items qualify_write named
        return tuple(UNKNOWN for _ in names)
    return tuple(hints)


# Expressions whose kind is the same on every backend: ``Types.of`` is trusted for them.
_TYPED = (
    exp.Literal,
    exp.Cast,
    exp.Convert,
    exp.Count,
    exp.Length,
    exp.Min,
    exp.Max,
    exp.Sum,
    exp.Coalesce,
    exp.Case,
    exp.Upper,
    exp.Lower,
    exp.Trim,
    exp.Substring,
    exp.Concat,
    exp.DPipe,
    exp.Replace,
    exp.RowNumber,
    exp.Rank,
    exp.DenseRank,
    exp.Window,
    exp.Paren,
    exp.Neg,
)


def _hint_of(node: exp.Expr, types: Types) -> TypeHint:
    """The type of an operand or a result column."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        declared = types.declared(node)
        if declared is not None:
            return _declared(declared)
        return TypeHint(kind=types.of(node))
    if isinstance(node, exp.Cast):
        return _cast(node)
    if not isinstance(node, _TYPED) or _untrusted(node):
        return UNKNOWN
    return TypeHint(kind=types.of(node))


def _untrusted(node: exp.Expr) -> bool:
    """Whether ``node`` holds an expression whose kind differs between backends."""
    return any(isinstance(n, exp.Avg | exp.Div | exp.Sqrt) for n in node.walk())


def _declared(type_name: str | None) -> TypeHint:
    if type_name is None:
        return UNKNOWN
    return TypeHint(kind=kind_of_type_name(type_name), declared=type_name)


def _cast(node: exp.Cast) -> TypeHint:
    to = node.args.get("to")
    if not isinstance(to, exp.DataType):
        return UNKNOWN
    return _declared(to.sql())


# -- parameters ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Env:
    types: Types
    shapes: Mapping[str, TableShape]
    """By physical name, as the tree names tables after ``physical_names``."""


def _params(tree: exp.Expr, env: _Env, count: int) -> tuple[TypeHint, ...]:
    hints = [UNKNOWN] * count
    for node in tree.find_all(exp.Placeholder):
        meta = node._meta  # not ``.meta``: reading that would attach an empty dict
        if not meta or META_POSITION not in meta:
            continue
        position = int(meta[META_POSITION])
        if 0 <= position < count:
            hints[position] = _param(node, env)
    return tuple(hints)


def _param(placeholder: exp.Expr, env: _Env) -> TypeHint:
    child: exp.Expr = placeholder
    parent = child.parent
    while isinstance(parent, exp.Paren | exp.Alias):
        child, parent = parent, parent.parent
    if parent is None:
        return UNKNOWN
    rule = _RULES.get(type(parent))
    return UNKNOWN if rule is None else rule(parent, child, env)


def _compared(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    other = parent.expression if child is parent.this else parent.this
    return UNKNOWN if _is_param(other) else _hint_of(other, env.types)


def _in_list(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    if child is parent.this:
        return UNKNOWN
    return _hint_of(parent.this, env.types)


def _between(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    if child is not parent.this:
        return _hint_of(parent.this, env.types)
    for bound in (parent.args.get("low"), parent.args.get("high")):
        if isinstance(bound, exp.Expr) and not _is_param(bound):
            return _hint_of(bound, env.types)
    return UNKNOWN


def _pattern(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    return TypeHint(kind=TEXT) if child is parent.expression else UNKNOWN


def _count(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    return TypeHint(kind=INTEGER)


def _cast_target(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    assert isinstance(parent, exp.Cast)
    return _cast(parent) if child is parent.this else UNKNOWN


def _values_row(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    """INSERT (a, b) VALUES (?, ?): the column at the value's position."""
    values = parent.parent
    if child.index is None or not isinstance(values, exp.Values):
        return UNKNOWN
    if is_insert_values_source(values):
        return _values_source_row(values, child.index, env)
    insert = values.parent
    if not isinstance(insert, exp.Insert):
        return UNKNOWN
    return _inserted(insert, child.index, env)


def _values_source_row(values: exp.Values, index: int, env: _Env) -> TypeHint:
    """INSERT (a, b) SELECT x, CAST(y AS t) FROM (VALUES (?, ?)) AS v(x, y): the alias
    column at the value's position, as the one select item that reads it uses it (the
    CAST's type, or the inserted column's)."""
    alias = values.args.get("alias")
    select = values.parent.parent if values.parent is not None else None
    if not isinstance(alias, exp.TableAlias) or not isinstance(select, exp.Select):
        return UNKNOWN
    if index >= len(alias.columns):
        return UNKNOWN
    name = alias.columns[index].name
    found: list[TypeHint] = []
    for position, item in enumerate(select.expressions):
        inner = item.this if isinstance(item, exp.Alias) else item
        column = inner.this if type(inner) is exp.Cast else inner
        if type(column) is exp.Column and column.name == name:
            if isinstance(inner, exp.Cast):
                found.append(_cast(inner))
            else:
                insert = select.parent
                assert isinstance(insert, exp.Insert)  # is_insert_values_source
                found.append(_inserted(insert, position, env))
    return found[0] if len(found) == 1 else UNKNOWN


def _select_item(parent: exp.Expr, child: exp.Expr, env: _Env) -> TypeHint:
    """INSERT (a, b) SELECT ?, ?: the column at the item's position."""
    if child.arg_key != "expressions" or child.index is None:
        return UNKNOWN
    query: exp.Expr = parent
    while isinstance(query.parent, exp.SetOperation | exp.Subquery):
        query = query.parent
    insert = query.parent
    if not isinstance(insert, exp.Insert) or query.arg_key != "expression":
        return UNKNOWN
    return _inserted(insert, child.index, env)


def _inserted(insert: exp.Insert, index: int, env: _Env) -> TypeHint:
    schema = insert.this
    if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
        return UNKNOWN
    names = schema.expressions
    if index >= len(names):
        return UNKNOWN
    shape = env.shapes.get(schema.this.name)
    return UNKNOWN if shape is None else _declared(column_type(shape, names[index].name))


def _is_param(node: exp.Expr) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Placeholder)


_Rule = Callable[[exp.Expr, exp.Expr, _Env], TypeHint]
_RULES: dict[type[exp.Expr], _Rule] = {
    **dict.fromkeys(
        (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ),
        _compared,
    ),
    exp.In: _in_list,
    exp.Between: _between,
    exp.Like: _pattern,
    exp.Limit: _count,
    exp.Offset: _count,
    exp.Fetch: _count,
    exp.Cast: _cast_target,
    exp.Tuple: _values_row,
    exp.Select: _select_item,
}
"""Where a ``?`` stands (its parent, past parentheses and aliases) -> its type."""
