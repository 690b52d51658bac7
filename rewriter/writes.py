"""Writes: INSERT with a column list, UPDATE and DELETE.

``check`` (parse time, after the allow-list, before tables are classified) checks
the statement's shape and marks the table written to (``META_TARGET``):

* INSERT names its columns, once each; VALUES rows hold one value per column and
  no column references or subqueries; an INSERT ... SELECT lists its values
  explicitly (no ``*``, ``t.*`` or ``CUSTOM_FIELDS()``: their columns differ
  between tenants, so the same statement would put values into other columns).
* UPDATE sets plain columns of its table, once each; no UPDATE ... FROM.
* DELETE deletes from one table (T-SQL's ``DELETE t`` is ``DELETE FROM t``).
* The target is a table, not a CTE, and has no alias.
* OUTPUT / RETURNING lists columns of the written table: ``INSERTED.x`` for
  INSERT and UPDATE, ``DELETED.x`` for DELETE (T-SQL), or plain ``x``. UPDATE's
  old values (``DELETED.x``) are refused: PostgreSQL before 18 and SQLite have no
  way to return them.

``qualify_write`` (rewrite time) resolves every column: queries inside the write
(INSERT's SELECT, subqueries in SET and WHERE) through the read passes, with the
target as the outer source a correlated subquery may name; the write's own
clauses against the target alone. The missing-column policy does not apply to
writes: a missing column is always ``unknown_column`` (a WHERE that read a missing
column as NULL could match every row, ``WHERE x IS NULL``; a SET or INSERT
column that was dropped would lose data silently). The target gets its physical
name and qualifiers with the read's tables (``qualify``).

What one backend needs on top is a rule of its own in ``rewriter.rules`` (each
named after its backend): ``tsql_output`` (SQL Server: OUTPUT reads ``INSERTED.x``
/ ``DELETED.x``, every column named), ``sqlite_write_columns`` (SQLite: the write's
own columns qualified with the target), ``tsql_delete_output`` (SQL Server: ``DELETE
t OUTPUT ... WHERE``) and ``sqlite_returning_cte`` (SQLite: RETURNING behind a WITH).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from rewriter.allowlist import CUSTOM_FIELDS, VALUES, refuse
from rewriter.columns import qualify_columns
from rewriter.errors import UnfilteredWrite, UnknownColumn, UnknownTable
from rewriter.markers import MARKER_PREFIX, META_TARGET
from rewriter.shapes import TableShape
from rewriter.sources import Context, Source

# Qualifier the target carries while the read passes resolve correlated columns: no
# alias a caller can write is equal to it (input with the marker prefix is refused).
TARGET_QUALIFIER = MARKER_PREFIX + "target__"
RETURNING_CTE = MARKER_PREFIX + "returning__"
VALUES_CTE = MARKER_PREFIX + "values__"

Write = exp.Insert | exp.Update | exp.Delete


# -- parse time --------------------------------------------------------------------


def check(tree: exp.Expr) -> bool:
    """Check a write's shape and mark its target; return whether it is unfiltered
    (an UPDATE or DELETE without WHERE)."""
    assert isinstance(tree, Write)
    if isinstance(tree, exp.Delete):
        _single_delete_target(tree)
    target = _target(tree)
    if target.args.get("alias"):
        raise refuse(
            f"an alias on {target.name}, the table the statement writes to",
            "is not allowed: refer to the table by its name",
        )
    name = target.name.casefold()
    if any(cte.alias.casefold() == name for cte in tree.find_all(exp.CTE)):
        raise refuse(f"writing through the CTE {target.name}", "is not allowed: write to a table")
    if isinstance(tree, exp.Insert):
        _check_insert(tree)
    elif isinstance(tree, exp.Update):
        _check_set(tree)
    _check_returning(tree)
    target.meta[META_TARGET] = True
    return not isinstance(tree, exp.Insert) and tree.args.get("where") is None


def _single_delete_target(tree: exp.Delete) -> None:
    tables = tree.args.get("tables") or []
    if not tables:
        return
    if tree.args.get("this") or len(tables) != 1:  # sqlglot leaves False for no FROM
        raise refuse("DELETE with several tables or DELETE ... FROM ... FROM")
    tree.set("tables", None)
    tree.set("this", tables[0])


def _target(tree: Write) -> exp.Table:
    this = tree.args.get("this")
    if isinstance(tree, exp.Insert):
        if isinstance(this, exp.Table):
            raise refuse(
                "INSERT without a column list",
                "is not allowed: name the columns, as in INSERT INTO t (a, b) VALUES (?, ?)",
            )
        if not isinstance(this, exp.Schema) or not isinstance(this.this, exp.Table):
            raise refuse("this INSERT target")
        if not all(isinstance(c, exp.Identifier) for c in this.expressions):
            raise refuse("an INSERT column list with something other than column names")
        return this.this
    if not isinstance(this, exp.Table):
        raise refuse(f"this {tree.key.upper()} target")
    return this


def _check_insert(tree: exp.Insert) -> None:
    columns = tree.this.expressions
    _no_duplicates([c.name for c in columns], "INSERT column list")
    source = tree.args.get("expression")
    if isinstance(source, exp.Values):
        for row in source.expressions:
            values = row.expressions if isinstance(row, exp.Tuple) else [row]
            if len(values) != len(columns):
                raise refuse(f"a VALUES row with {len(values)} values for {len(columns)} columns")
            for node in row.walk():
                if isinstance(node, exp.Column | exp.Query):
                    raise refuse(
                        "column references and subqueries in VALUES",
                        "are not allowed: use INSERT ... SELECT",
                    )
    elif isinstance(source, exp.Select | exp.SetOperation):
        if isinstance(source, exp.Select) and isinstance(_from_source(source), exp.Values):
            _check_values_select(tree, source)
        for select in _branches(source):
            for item in select.expressions:
                if _is_star(item):
                    raise refuse(
                        "INSERT ... SELECT * (or t.*, CUSTOM_FIELDS())",
                        "is not allowed: the columns differ between tenants, list them",
                    )
            if len(select.expressions) != len(columns):
                raise refuse(
                    f"an INSERT ... SELECT of {len(select.expressions)} values "
                    f"into {len(columns)} columns"
                )
    else:
        raise refuse("INSERT without VALUES or SELECT")


def _from_source(select: exp.Select) -> exp.Expr | None:
    from_ = select.args.get("from_")
    return from_.this if isinstance(from_, exp.From) else None


# What a row of a VALUES derived table may hold: literals and parameters, each
# optionally under CAST (SQLAlchemy writes ``$1::VARCHAR``; the allow-list checks the
# type), nothing that could read a table or a column (``@name`` is a Parameter over a
# Var; a DataType only ever sits under a CAST, a DataTypeParam under a DataType).
_ROW_VALUES: frozenset[type[exp.Expr]] = VALUES | {
    exp.Cast,
    exp.DataType,
    exp.DataTypeParam,
    exp.Neg,
}
# What a SELECT from a VALUES derived table may carry besides its select list.
_VALUES_SELECT_ARGS = frozenset({"expressions", "from_", "order"})
_CLAUSES = {
    "joins": "another source (JOIN or a second FROM item)",
    "group": "GROUP BY",
    "limit": "TOP / LIMIT",
    "offset": "OFFSET",
    "with_": "WITH",
}


def _check_values_select(tree: exp.Insert, select: exp.Select) -> None:
    """``INSERT INTO t (a, b) SELECT x, CAST(y AS type) FROM (VALUES (?, ?, 0), ...) AS
    v(x, y, n) [ORDER BY n]`` (SQLAlchemy's "insertmanyvalues" on PostgreSQL, which
    also casts the values in the rows: ``(VALUES ($1::VARCHAR, $2, 0), ...)``).

    The SELECT reads nothing but the VALUES rows: it has no other source, join, WHERE,
    grouping, DISTINCT or row count; its items and ORDER BY are columns of the alias,
    an item optionally under one CAST; the rows hold literals and parameters only, each
    optionally under CAST. The alias's column names are casefolded and quoted, so that
    every backend spells them as the columns that refer to them (resolved through
    ``sources.query_outputs``).
    """
    name = "INSERT ... SELECT ... FROM (VALUES ...)"
    if tree.args.get("with_"):
        raise refuse(f"WITH on {name}")
    for arg, value in select.args.items():
        if arg not in _VALUES_SELECT_ARGS and value not in (None, False, []):
            clause = _CLAUSES.get(arg, arg.rstrip("_").upper())
            raise refuse(f"{name} with {clause}", "is not allowed: it reads the VALUES rows only")
    values = _from_source(select)
    assert isinstance(values, exp.Values)
    alias = values.args.get("alias")
    if not isinstance(alias, exp.TableAlias) or not alias.name or not alias.columns:
        raise refuse(
            "VALUES as a derived table without a name and column names",
            "is not allowed: write (VALUES ...) AS v(a, b)",
        )
    names = [identifier.name for identifier in alias.columns]
    if not all(type(identifier) is exp.Identifier for identifier in alias.columns):
        raise refuse(f"the column list of {alias.name}")
    _no_duplicates(names, f"column list of {alias.name}")
    for row in values.expressions:
        if type(row) is not exp.Tuple or len(row.expressions) != len(names):
            raise refuse(f"a VALUES row that is not {len(names)} values for {alias.name}")
        for node in row.walk():
            if node is not row and type(node) not in _ROW_VALUES:
                raise refuse(
                    f"{_construct(node)} in the VALUES rows of {name}",
                    "is not allowed: only literals and parameters (optionally in CAST)",
                )
    known = {n.casefold() for n in names}
    for item in select.expressions:
        _values_column(item.this if type(item) is exp.Cast else item, alias.name, known, name)
    order = select.args.get("order")
    if order is not None:
        if set(_set_args(order)) != {"expressions"}:
            raise refuse(f"this ORDER BY of {name}")
        for ordered in order.expressions:
            if type(ordered) is not exp.Ordered or not set(_set_args(ordered)) <= {
                "this",
                "desc",
                "nulls_first",
            }:
                raise refuse(f"the ORDER BY item {ordered.sql()} of {name}")
            _values_column(ordered.this, alias.name, known, name)
    alias.set("columns", [exp.Identifier(this=n.casefold(), quoted=True) for n in names])


def _values_column(node: exp.Expr, alias: str, known: set[str], name: str) -> None:
    if (
        type(node) is not exp.Column
        or type(node.this) is not exp.Identifier
        or (node.table and node.table.casefold() != alias.casefold())
        or node.name.casefold() not in known
    ):
        raise refuse(
            f"{node.sql()} in {name}",
            f"is not allowed: name a column of {alias}, optionally in one CAST",
        )


def _construct(node: exp.Expr) -> str:
    if isinstance(node, exp.Column):
        return "a column reference"
    if isinstance(node, exp.Query | exp.Subquery):
        return "a subquery"
    if isinstance(node, exp.Anonymous):
        return f"the function {node.name.upper()}"
    if isinstance(node, exp.Func):
        return f"the function {node.sql_name()}"
    return type(node).__name__


def _set_args(node: exp.Expr) -> list[str]:
    return [k for k, v in node.args.items() if v is not None and v is not False and v != []]


def _branches(query: exp.Expr) -> Iterator[exp.Select]:
    if isinstance(query, exp.SetOperation):
        yield from _branches(query.this)
        yield from _branches(query.expression)
    elif isinstance(query, exp.Subquery):
        yield from _branches(query.this)
    elif isinstance(query, exp.Select):
        yield query
    else:  # pragma: no cover - the allow-list admits nothing else here
        raise refuse(f"{type(query).__name__} as the source of an INSERT")


def _is_star(item: exp.Expr) -> bool:
    if isinstance(item, exp.Star):
        return True
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
        return True
    return isinstance(item, exp.Anonymous) and str(item.this).casefold() == CUSTOM_FIELDS


def _check_set(tree: exp.Update) -> None:
    names: list[str] = []
    for item in tree.expressions:
        if (
            type(item) is not exp.EQ
            or type(item.this) is not exp.Column
            or not isinstance(item.this.this, exp.Identifier)
        ):
            raise refuse(f"the SET item {item.sql()}", "is not allowed: write column = value")
        names.append(item.this.name)
    _no_duplicates(names, "SET clause")


def _no_duplicates(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name.casefold() in seen:
            raise refuse(f"column {name} named twice in the {where}")
        seen.add(name.casefold())


def _check_returning(tree: Write) -> None:
    returning = tree.args.get("returning")
    if returning is None:
        return
    kind = tree.key.upper()
    pseudo = "deleted" if isinstance(tree, exp.Delete) else "inserted"
    for item in returning.expressions:
        column = item.this if isinstance(item, exp.Alias) else item
        if type(column) is not exp.Column or not isinstance(column.this, exp.Identifier):
            raise refuse(
                f"OUTPUT / RETURNING item {item.sql()}",
                "is not allowed: name columns of the table written to",
            )
        qualifier = column.table.casefold()
        if qualifier in ("inserted", "deleted"):
            if qualifier != pseudo:
                raise refuse(
                    f"{column.table.upper()}.{column.name} in {kind}",
                    "is not allowed: INSERT and UPDATE return new values (INSERTED), "
                    "DELETE old ones (DELETED)",
                )
            column.set("table", None)


# -- rewrite time ------------------------------------------------------------------


def qualify_write(tree: exp.Expr, ctx: Context) -> tuple[exp.Table, tuple[str, ...]]:
    """Resolve every column of a write in place; return its target (the ``exp.Table``
    written to, still with its logical name) and its OUTPUT / RETURNING names."""
    assert isinstance(tree, Write)
    target = next(t for t in tree.find_all(exp.Table) if t.meta.get(META_TARGET))
    shape = ctx.shapes[target.name]
    # INSERT's SELECT cannot see the table it inserts into; UPDATE/DELETE subqueries can.
    outer = None
    if not isinstance(tree, exp.Insert):
        outer = {target.name: Source(alias=TARGET_QUALIFIER, shape=shape)}
    strict = dataclasses.replace(ctx, missing_null=False, outer=outer)
    qualify_columns(tree, strict)
    _correlated_references(tree, shape)

    if isinstance(tree, exp.Insert):
        for identifier in tree.this.expressions:
            spelling = _lookup(identifier.name, shape, ctx)
            identifier.set("this", spelling)
            identifier.set("quoted", True)
    for column in list(_own_columns(tree)):
        _resolve_own(column, target.name, shape, ctx)
    return target, _returning(tree, target.name, shape, ctx)


def tsql_output(tree: exp.Expr) -> None:
    """SQL Server: OUTPUT reads the ``INSERTED`` / ``DELETED`` pseudo-tables, and
    every item is named."""
    returning = tree.args.get("returning")
    if returning is None:
        return
    pseudo = "DELETED" if isinstance(tree, exp.Delete) else "INSERTED"
    items: list[exp.Expr] = []
    for item in returning.expressions:
        column = item.this if isinstance(item, exp.Alias) else item
        output: exp.Expr = item
        # Unquoted on purpose: INSERTED / DELETED are keywords of OUTPUT, not names.
        column.set("table", exp.Var(this=pseudo))
        if not isinstance(item, exp.Alias):
            # Named explicitly: SQL Server labels the column with the spelling
            # written, but Babelfish labels an unaliased OUTPUT column in lower
            # case ("contactid"), unlike its SELECT columns.
            alias = exp.Identifier(this=column.name, quoted=True)
            output = exp.Alias(this=column, alias=alias)
        items.append(output)
    returning.set("expressions", items)


def tsql_delete_output(tree: exp.Expr, target: exp.Table) -> None:
    """SQL Server: sqlglot writes T-SQL's OUTPUT before FROM ("DELETE OUTPUT ... FROM
    t", which SQL Server rejects); "DELETE t OUTPUT ... WHERE" is the same statement."""
    if isinstance(tree, exp.Delete) and tree.args.get("returning"):
        tree.set("this", None)
        tree.set("tables", [target])


def sqlite_returning_cte(tree: exp.Expr, outputs: tuple[str, ...]) -> None:
    """SQLite: sqliteodbc (0.9998) treats a statement that starts with
    INSERT/UPDATE/DELETE as having no result set and drops RETURNING's rows; one that
    starts with WITH is read as a query. An unused CTE changes nothing else."""
    if outputs and not tree.args.get("with_"):
        tree.set("with_", exp.With(expressions=[_unused_cte()]))


_SQLITE_TIMESTAMPS = frozenset(
    {
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
        exp.DataType.Type.DATETIME,
        exp.DataType.Type.DATETIME2,
    }
)


def sqlite_values_cte(tree: exp.Expr) -> None:
    """SQLite: a VALUES derived table takes no column names (``AS v(a, b)`` is a
    syntax error), a CTE does. ``INSERT ... SELECT v.a FROM (VALUES ...) AS v(a)``
    becomes ``WITH "__tenantgate_values__"(a) AS (VALUES ...) INSERT ... SELECT v.a
    FROM "__tenantgate_values__" AS v``: same rows, same order, same references. The
    CTE's reserved name can be neither a caller's table nor another CTE; the statement
    starts with WITH, as ``sqlite_returning_cte`` needs for RETURNING."""
    source = tree.args.get("expression")
    if type(tree) is not exp.Insert or type(source) is not exp.Select:
        return
    values = _from_source(source)
    if type(values) is not exp.Values:
        return
    alias = values.args.get("alias")
    assert isinstance(alias, exp.TableAlias)  # writes.check: a name and column names
    assert not tree.args.get("with_")  # writes.check: no WITH on this shape
    # A value cast to a timestamp goes in as sent: SQLite's DATETIME(x), which such a
    # cast becomes, keeps whole seconds only, and the column stores the text anyway.
    for cast in list(source.find_all(exp.Cast)):  # the rows are in the SELECT's FROM
        if cast.to.this in _SQLITE_TIMESTAMPS:
            cast.replace(cast.this)
    name = exp.Identifier(this=VALUES_CTE, quoted=True)
    rows = exp.Values(expressions=values.expressions)
    cte = exp.CTE(this=rows, alias=exp.TableAlias(this=name, columns=alias.columns))
    values.replace(exp.Table(this=name.copy(), alias=exp.TableAlias(this=alias.this)))
    tree.set("with_", exp.With(expressions=[cte]))


def _unused_cte() -> exp.CTE:
    return exp.CTE(
        this=exp.select(exp.Literal.number(1)),
        alias=exp.TableAlias(this=exp.Identifier(this=RETURNING_CTE, quoted=True)),
    )


def _correlated_references(tree: exp.Expr, shape: TableShape) -> None:
    """Columns of subqueries that name the target: qualify them with the target's
    exposed name, unless a table of an enclosing subquery has that name too (SQL
    Server and SQLite compare names without case, so it would capture them)."""
    exposed = shape.name.casefold()
    for column in list(tree.find_all(exp.Column)):
        if column.table != TARGET_QUALIFIER:
            continue
        node = column.parent
        while node is not None:
            if isinstance(node, exp.Select) and exposed in _source_names(node):
                raise refuse(
                    f"a subquery that reads {shape.name} without an alias and also "
                    f"refers to the {shape.name} being written",
                    "is ambiguous: give the table in the subquery an alias",
                )
            node = node.parent
        column.set("table", exp.Identifier(this=shape.name, quoted=True))


def _source_names(select: exp.Select) -> set[str]:
    sources: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if isinstance(from_, exp.From):
        sources.append(from_.this)
    sources.extend(join.this for join in select.args.get("joins") or [])
    return {s.alias_or_name.casefold() for s in sources}


def _own_columns(node: exp.Expr) -> Iterator[exp.Column]:
    """Columns of the write's own clauses: not in a query, CTE, OUTPUT or column list."""
    for child in node.iter_expressions():
        if isinstance(child, exp.Query | exp.With | exp.Returning | exp.Schema):
            continue
        if type(child) is exp.Column:
            yield child
        else:
            yield from _own_columns(child)


def _resolve_own(column: exp.Column, target: str, shape: TableShape, ctx: Context) -> None:
    qualifier = column.table
    if qualifier and qualifier != target:
        raise UnknownTable(
            f"{qualifier}.{column.name}: the only table in scope is {shape.name}",
            table=qualifier,
            tenant=ctx.tenant or None,
        )
    column.set("this", exp.Identifier(this=_lookup(column.name, shape, ctx), quoted=True))
    column.set("table", None)


def sqlite_write_columns(tree: exp.Expr, shape: TableShape) -> None:
    """Qualify the write's own column references with the target's name.

    SQLite reads a double-quoted name that matches no column as a string literal, so
    with stale metadata ``DELETE ... WHERE "Dropped" <> 'x'`` would compare two strings
    and match every row. A qualified ``"Contacts"."Dropped"`` is an error instead. SET
    targets stay bare: SQLite does not accept a qualified name there.
    """
    returning = tree.args.get("returning")
    columns = list(_own_columns(tree))
    if returning is not None:
        columns += [c for c in returning.find_all(exp.Column)]
    for column in columns:
        parent = column.parent
        is_set_target = (
            isinstance(parent, exp.EQ)
            and column.arg_key == "this"
            and isinstance(parent.parent, exp.Update)
            and parent.arg_key == "expressions"
        )
        if not is_set_target:
            column.set("table", exp.Identifier(this=shape.name, quoted=True))


def _lookup(name: str, shape: TableShape, ctx: Context) -> str:
    spelling = shape.lookup(name)
    if spelling is None:
        tenant = f" for tenant {ctx.tenant}" if ctx.tenant else ""
        raise UnknownColumn(
            f"unknown column {name!r} in {shape.name}{tenant}",
            column=name,
            table=shape.name,
            tenant=ctx.tenant or None,
        )
    return spelling


def _returning(tree: Write, target: str, shape: TableShape, ctx: Context) -> tuple[str, ...]:
    returning = tree.args.get("returning")
    if returning is None:
        return ()
    names: list[str] = []
    for item in returning.expressions:
        column = item.this if isinstance(item, exp.Alias) else item
        _resolve_own(column, target, shape, ctx)
        names.append(item.alias if isinstance(item, exp.Alias) else column.name)
    return tuple(names)


def delete_output_tokens(tokens: list[Token]) -> list[Token]:
    """T-SQL ``DELETE FROM t OUTPUT ... WHERE ...`` fails to parse in sqlglot 30.30 (it
    reads OUTPUT only before FROM or after WHERE); ``DELETE t OUTPUT ... WHERE ...``
    is the same statement and parses, so the FROM after DELETE is dropped."""
    if not any(t.token_type == TokenType.RETURNING for t in tokens):
        return tokens
    return [
        token
        for index, token in enumerate(tokens)
        if not (
            token.token_type == TokenType.FROM
            and index
            and tokens[index - 1].token_type == TokenType.DELETE
            and not token.comments
        )
    ]


def require_filter(unfiltered: bool, *, allow_unfiltered: bool) -> None:
    """Refuse an UPDATE or DELETE without WHERE unless the request allows it."""
    if unfiltered and not allow_unfiltered:
        raise UnfilteredWrite(
            "an UPDATE or DELETE without WHERE changes every row of the table: add a WHERE "
            'clause, or send "allow_unfiltered": true if that is what you mean'
        )
