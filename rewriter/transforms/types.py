"""What kind of value an expression yields, as far as the tenant's metadata tells.

Transforms that depend on operand types (string ``+``, integer ``AVG``, DATEADD on a
date) ask ``Types.of(node)``. A column's kind comes from its table's declared type
(``rewriter.shapes.column_type``), through derived tables and CTEs to the expression
that produced it; a kind that cannot be known is ``None`` and each transform decides
what an unknown means for it (usually: leave sqlglot's translation, or refuse).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.expressions.datatypes import DType
from sqlglot.optimizer.scope import Scope, traverse_scope

from rewriter.shapes import TableShape, column_type
from rewriter.sources import query_outputs
from rewriter.type_names import (
    BOOLEAN,
    DATE,
    DATETIME,
    DECIMAL,
    FLOAT,
    INTEGER,
    NUMBERS,
    TEXT,
    TIME,
    kind_of_type_name,
)

_DTYPES: dict[DType, str] = {
    **dict.fromkeys((DType.CHAR, DType.NCHAR, DType.VARCHAR, DType.NVARCHAR, DType.TEXT), TEXT),
    **dict.fromkeys((DType.TINYINT, DType.SMALLINT, DType.INT, DType.BIGINT), INTEGER),
    DType.DECIMAL: DECIMAL,
    DType.FLOAT: FLOAT,
    DType.DOUBLE: FLOAT,
    DType.DATE: DATE,
    **dict.fromkeys((DType.DATETIME, DType.DATETIME2, DType.TIMESTAMP), DATETIME),
    DType.TIME: TIME,
    DType.BOOLEAN: BOOLEAN,
}

_TEXT_FUNCTIONS = (
    exp.Upper,
    exp.Lower,
    exp.Trim,
    exp.Substring,
    exp.Left,
    exp.Right,
    exp.DPipe,
    exp.National,
    exp.Concat,
    exp.ConcatWs,
    exp.GroupConcat,
    exp.Replace,
    exp.Repeat,
    exp.Reverse,
    exp.Stuff,
    exp.TimeToStr,  # DATENAME, strftime
)
_INTEGER_FUNCTIONS = (
    exp.Length,
    exp.StrPosition,
    exp.Count,
    exp.DateDiff,
    exp.RowNumber,
    exp.Rank,
    exp.DenseRank,
    *(exp.Extract, exp.Year, exp.Month, exp.Day),  # DATEPART, EXTRACT, YEAR...
)
_SAME_AS_ARGUMENT = (
    *(exp.Abs, exp.Round, exp.Sum, exp.Min, exp.Max, exp.Avg, exp.Nullif),
    *(exp.Floor, exp.Ceil, exp.Sign, exp.Pow),  # T-SQL: the argument's type
)
_DATE_CALLS = {"date": DATE, "datetime": DATETIME, "make_date": DATE, "eomonth": DATE}
_PRECEDENCE = (FLOAT, DECIMAL, INTEGER)  # T-SQL: the higher kind wins in arithmetic


def arithmetic(left: str | None, right: str | None) -> str | None:
    for kind in _PRECEDENCE:
        if kind in (left, right) and {left, right} <= NUMBERS:
            return kind
    return None


class Types:
    """Kinds of expressions in one (qualified) tree; scopes are built on first need."""

    def __init__(self, tree: exp.Expr, shapes: Mapping[str, TableShape]) -> None:
        self._tree = tree
        self._shapes = {shape.name: shape for shape in shapes.values()}
        self._scopes: dict[int, Scope] | None = None

    def kind_in(self, table: str, column: str) -> str | None:
        """The kind of physical ``table``'s column ``column`` (a write's target)."""
        shape = self._shapes.get(table)
        type_name = None if shape is None else column_type(shape, column)
        return None if type_name is None else kind_of_type_name(type_name)

    def declares(self, name: str, kind: str) -> bool:
        """Whether a table of the statement has a column ``name`` of this kind: a check
        without scopes, for a transform to skip statements it cannot concern."""
        for shape in self._shapes.values():
            type_name = column_type(shape, name)
            if type_name is not None and kind_of_type_name(type_name) == kind:
                return True
        return False

    def of(self, node: exp.Expr | None) -> str | None:
        if node is None:
            return None
        if isinstance(node, exp.Literal):
            if node.is_string:
                return TEXT
            return INTEGER if node.this.isdigit() else DECIMAL
        if isinstance(node, exp.Paren | exp.Alias | exp.Window | exp.Neg):
            return self.of(node.this)
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Cast | exp.Convert):
            to = node.args.get("to") if isinstance(node, exp.Cast) else node.this
            return _DTYPES.get(to.this) if isinstance(to, exp.DataType) else None
        if isinstance(node, _TEXT_FUNCTIONS):
            return TEXT
        if isinstance(node, _INTEGER_FUNCTIONS):
            return INTEGER
        if isinstance(node, _SAME_AS_ARGUMENT):
            return self.of(node.this)
        if isinstance(node, exp.Coalesce):
            return self._first(node.this, *node.expressions)
        if isinstance(node, exp.Case):
            branches = [i.args.get("true") for i in node.args.get("ifs") or []]
            return self._first(*branches, node.args.get("default"))
        if isinstance(node, exp.If):
            return self._first(node.args.get("true"), node.args.get("false"))
        if isinstance(node, exp.Add):
            left, right = self.of(node.this), self.of(node.expression)
            if left == TEXT and right == TEXT:
                return TEXT
            return arithmetic(left, right)
        if isinstance(node, exp.Sub | exp.Mul | exp.Div | exp.Mod):
            return arithmetic(self.of(node.this), self.of(node.expression))
        if isinstance(node, exp.Sqrt):
            return FLOAT
        if isinstance(node, exp.CurrentTimestamp | exp.Localtimestamp | exp.AtTimeZone):
            return DATETIME
        if isinstance(node, exp.Anonymous) and str(node.this).casefold() in _DATE_CALLS:
            # What the date transforms write (and SQLite's own date/datetime).
            return _DATE_CALLS[str(node.this).casefold()]
        if isinstance(node, exp.Anonymous) and str(node.this).casefold() == "getutcdate":
            return DATETIME
        if isinstance(node, exp.LastDay | exp.DateFromParts):  # EOMONTH, DATEFROMPARTS
            return DATE
        if isinstance(node, exp.TimestampTrunc):  # DATETRUNC keeps the operand's type
            return DATE if self.of(node.this) == DATE else DATETIME
        if isinstance(node, exp.DateAdd):
            return DATE if self.of(node.this) == DATE else DATETIME
        if isinstance(node, exp.Subquery):
            return self._output(node.this, 0)
        return None

    def _first(self, *nodes: exp.Expr | None) -> str | None:
        for node in nodes:
            kind = self.of(node)
            if kind is not None:
                return kind
        return None

    def _scope_map(self) -> dict[int, Scope]:
        if self._scopes is None:
            self._scopes = {id(scope.expression): scope for scope in traverse_scope(self._tree)}
        return self._scopes

    def _column(self, column: exp.Column) -> str | None:
        source = self._source(column)
        if isinstance(source, exp.Table):
            type_name = self._type_in(source, column.name)
            return None if type_name is None else kind_of_type_name(type_name)
        if isinstance(source, Scope):
            return self._named_output(source.expression, column.name)
        return None

    def _type_in(self, table: exp.Table, column: str) -> str | None:
        shape = self._shapes.get(table.name)
        return None if shape is None else column_type(shape, column)

    def table_declared(self, column: exp.Column) -> str | None:
        """The declared type of ``column`` when it is read straight from a table (not
        through a derived table, a CTE or a set operation), else ``None``."""
        source = self._source(column)
        return self._type_in(source, column.name) if isinstance(source, exp.Table) else None

    def declared(self, node: exp.Expr | None) -> str | None:
        """The declared type name (``nvarchar(50)``) of a table's column, also through
        derived tables and CTEs that select it as is; ``None`` for anything else."""
        while isinstance(node, exp.Paren):
            node = node.this
        if not isinstance(node, exp.Column):
            return None
        source = self._source(node)
        if isinstance(source, exp.Table):
            return self._type_in(source, node.name)
        if isinstance(source, Scope):
            query = source.expression
            outputs = query_outputs(query)
            while isinstance(query, exp.SetOperation | exp.Subquery):
                query = query.this
            if node.name in outputs and isinstance(query, exp.Select):
                index = outputs.index(node.name)
                if index < len(query.expressions):
                    selected = query.expressions[index]
                    return self.declared(selected.unalias())
        return None

    def _source(self, column: exp.Column) -> exp.Table | Scope | None:
        """The table or derived-table scope a column comes from (the target table of
        a write when outside any SELECT scope)."""
        scopes = self._scope_map()
        holder: exp.Expr | None = column.parent
        while holder is not None and id(holder) not in scopes:
            holder = holder.parent
        scope = scopes.get(id(holder)) if holder is not None else None
        if scope is None:
            target = self._tree.this
            if isinstance(target, exp.Table) and column.table in ("", target.alias_or_name):
                return target
            return None
        while scope is not None:
            found = scope.selected_sources.get(column.table)
            if found is not None:
                source = found[1]
                return source if isinstance(source, exp.Table | Scope) else None
            scope = scope.parent
        return None

    def _named_output(self, query: exp.Expr, name: str) -> str | None:
        outputs = query_outputs(query)
        if name not in outputs:
            return None
        return self._output(query, outputs.index(name))

    def _output(self, query: exp.Expr, index: int) -> str | None:
        while isinstance(query, exp.SetOperation | exp.Subquery):
            query = query.this
        if not isinstance(query, exp.Select) or index >= len(query.expressions):
            return None
        return self.of(query.expressions[index])
