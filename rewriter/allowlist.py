"""Pass 3: deny by default. Every node of the tree must be of an allowed type.

Types are matched exactly (``type(node) in ALLOWED``), never by ``isinstance``, so
that a subclass sqlglot adds later (``TryCast`` is a ``Cast``) stays refused until
someone allows it here on purpose. Some allowed types carry extra conditions
(``CHECKS``), and the arguments of the clause-bearing nodes are listed too, so a new
clause sqlglot learns to parse is refused instead of silently passed through.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.expressions.datatypes import DType

from rewriter import functions
from rewriter.errors import ConstructNotAllowed, SqlParseError
from rewriter.functions import ALLOWED_FUNCTIONS
from rewriter.transforms import pivot

CUSTOM_FIELDS = "custom_fields"

VALUES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Literal,
        exp.National,
        exp.Null,
        exp.Boolean,
        exp.Placeholder,
        exp.Parameter,  # @name, over a Var
        exp.Var,
    }
)
"""Literals and parameters: what reads nothing."""

ALLOWED: frozenset[type[exp.Expr]] = (
    ALLOWED_FUNCTIONS
    | VALUES
    | frozenset(
        {
            # statements, clauses
            exp.Select,
            exp.Union,
            exp.Intersect,
            exp.Except,
            exp.With,
            exp.CTE,
            exp.From,
            exp.Join,
            exp.Where,
            exp.Group,
            exp.Having,
            exp.Order,
            exp.Ordered,
            exp.Limit,
            exp.Offset,
            exp.Fetch,
            exp.LimitOptions,
            exp.Distinct,
            exp.Subquery,
            # names
            exp.Table,
            exp.TableAlias,
            exp.Identifier,
            exp.Column,
            exp.Star,
            exp.Alias,
            # values (and VALUES above)
            exp.Paren,
            exp.DataType,
            exp.DataTypeParam,
            # operators
            exp.Neg,
            exp.Add,
            exp.Sub,
            exp.Mul,
            exp.Div,
            exp.Mod,
            exp.EQ,
            exp.NEQ,
            exp.GT,
            exp.GTE,
            exp.LT,
            exp.LTE,
            exp.And,
            exp.Or,
            exp.Not,
            exp.Like,
            exp.In,
            exp.Between,
            exp.Is,
            exp.Exists,
            exp.Case,
            exp.If,
            exp.Anonymous,
            exp.Window,
            exp.WindowSpec,
            # GROUP BY ROLLUP / CUBE / GROUPING SETS (``_check_grouping_construct``)
            exp.Rollup,
            exp.Cube,
            exp.GroupingSets,
            exp.Pivot,  # rewritten to conditional aggregates (transforms.pivot)
        }
    )
)

CAST_TYPES: frozenset[DType] = frozenset(
    {
        DType.TINYINT,
        DType.SMALLINT,
        DType.INT,
        DType.BIGINT,
        DType.DECIMAL,
        DType.FLOAT,
        DType.DOUBLE,
        DType.CHAR,
        DType.NCHAR,
        DType.VARCHAR,
        DType.NVARCHAR,
        DType.TEXT,
        DType.DATE,
        DType.TIME,
        DType.DATETIME,
        DType.DATETIME2,
        DType.TIMESTAMP,
        DType.BOOLEAN,
    }
)

# Arguments the clause-bearing nodes may carry (anything else set -> refused).
ALLOWED_ARGS: dict[type[exp.Expr], frozenset[str]] = {
    exp.Select: frozenset(
        {"expressions", "from_", "joins", "where", "group", "having", "order"}
        | {"limit", "offset", "with_", "distinct"}
    ),
    exp.Union: frozenset({"this", "expression", "distinct", "with_", "order", "limit", "offset"}),
    exp.Join: frozenset({"this", "on", "side", "kind"}),
    # rollup / cube: T-SQL's older ``GROUP BY a, b WITH ROLLUP`` / ``WITH CUBE``
    exp.Group: frozenset({"expressions", "rollup", "cube"}),
    # pivots: PIVOT / UNPIVOT, checked on the Pivot node itself (``pivot.check``)
    exp.Table: frozenset({"this", "db", "catalog", "alias", "pivots"}),
    exp.Subquery: frozenset({"this", "alias", "pivots"}),
    exp.With: frozenset({"expressions"}),
    exp.CTE: frozenset({"this", "alias"}),
    exp.Distinct: frozenset({"expressions"}),
    exp.In: frozenset({"this", "expressions", "query"}),
    exp.Column: frozenset({"this", "table"}),
    exp.Window: frozenset({"this", "partition_by", "order", "spec", "over"}),
    exp.Like: frozenset({"this", "expression", "negate"}),
}
ALLOWED_ARGS[exp.Intersect] = ALLOWED_ARGS[exp.Union]
ALLOWED_ARGS[exp.Except] = ALLOWED_ARGS[exp.Union]

# Writes (their shape is checked by ``writes.check``). Each node below is allowed
# only in its one place (``_check_write_node``): a DML statement only as the root
# (a PostgreSQL data-modifying CTE would hide a write inside a read), VALUES only
# as an INSERT's source or as the one source of an INSERT's SELECT (``_check_values``:
# SQLAlchemy's "insertmanyvalues"), row values only as VALUES rows.
WRITE_NODES: frozenset[type[exp.Expr]] = frozenset(
    {exp.Insert, exp.Update, exp.Delete, exp.Values, exp.Tuple, exp.Schema, exp.Returning}
)
ALLOWED = ALLOWED | WRITE_NODES
ALLOWED_ARGS[exp.Insert] = frozenset({"this", "expression", "returning", "with_"})
ALLOWED_ARGS[exp.Update] = frozenset({"this", "expressions", "where", "returning", "with_"})
ALLOWED_ARGS[exp.Delete] = frozenset({"this", "tables", "where", "returning", "with_"})
ALLOWED_ARGS[exp.Schema] = frozenset({"this", "expressions"})
# The alias only on VALUES as a derived table (``_check_values``).
ALLOWED_ARGS[exp.Values] = frozenset({"expressions", "alias"})
ALLOWED_ARGS[exp.Tuple] = frozenset({"expressions"})
WRITE_PLACES: dict[type[exp.Expr], tuple[tuple[type[exp.Expr], ...], str | None, str]] = {
    # node: (allowed parent types, its argument name there, what it is called)
    exp.Insert: ((), None, "INSERT inside another statement"),
    exp.Update: ((), None, "UPDATE inside another statement"),
    exp.Delete: ((), None, "DELETE inside another statement"),
    exp.Values: ((exp.Insert,), "expression", "VALUES outside INSERT ... VALUES"),
    exp.Tuple: ((exp.Values,), "expressions", "row values"),
    exp.Schema: ((exp.Insert,), "this", "column definitions"),
    exp.Returning: ((exp.Insert, exp.Update, exp.Delete), "returning", "OUTPUT / RETURNING"),
}

# Friendly names for refused constructs (the default is the node's class name).
CONSTRUCT_NAMES: dict[str, str] = {
    "Into": "SELECT ... INTO",
    "WithTableHint": "table hints such as WITH (NOLOCK)",
    "IndexTableHint": "index hints",
    "QueryOption": "OPTION (...) query hints",
    "ForClause": "FOR XML / FOR JSON / FOR BROWSE",
    "Lateral": "APPLY / LATERAL",
    "TableSample": "TABLESAMPLE",
    "Collate": "COLLATE",
    "Lock": "locking clauses",
    "Pivot": "PIVOT / UNPIVOT",
    "Dot": "names with more than two parts",
    "HexString": "binary literals",
    "Tuple": "row values",
    "Escape": "LIKE ... ESCAPE",
    "ByteString": "E'...' escape strings",
    "RawString": "dollar-quoted strings",
    "SimilarTo": "SIMILAR TO",
    "RegexpLike": "regular expressions",
    "Values": "VALUES lists",
    "Kwarg": "named arguments",
    "Bracket": "subscripts",
    "PropertyEQ": "assignments",
}
ARG_NAMES: dict[str, str] = {
    "into": "SELECT ... INTO",
    "options": "OPTION (...) query hints",
    "for_": "FOR XML / FOR JSON / FOR BROWSE",
    "hints": "table hints such as WITH (NOLOCK)",
    "hint": "optimizer hints",
    "locks": "locking clauses",
    "using": "JOIN ... USING",
    "method": "NATURAL joins",
    "laterals": "APPLY / LATERAL",
    "pivots": "PIVOT / UNPIVOT",
    "windows": "WINDOW clauses",
    "qualify": "QUALIFY",
    "kind": "SELECT AS ...",
    "sample": "TABLESAMPLE",
    "escape": "LIKE ... ESCAPE",
    "indexed": "INDEXED BY / NOT INDEXED",
    "rollup": "GROUP BY ROLLUP",
    "cube": "GROUP BY CUBE",
    "grouping_sets": "GROUPING SETS",
    "on": "DISTINCT ON",
    "db": "names with more than two parts",
    "catalog": "names with more than two parts",
    "unnest": "IN UNNEST",
    "by_name": "UNION BY NAME",
    "side": "qualified set operations",
    "materialized": "MATERIALIZED CTEs",
    "recursive": "recursive CTEs",
    "from_": "UPDATE ... FROM (use a subquery in WHERE)",
    "conflict": "ON CONFLICT / ON DUPLICATE KEY",
    "alternative": "INSERT OR REPLACE / INSERT OR IGNORE",
    "ignore": "INSERT IGNORE",
    "overwrite": "INSERT OVERWRITE",
    "default": "DEFAULT VALUES",
    "cluster": "DELETE ... ON CLUSTER",
    "only": "ONLY",
    "version": "FOR SYSTEM_TIME",
}


def refuse(construct: str, why: str | None = None) -> ConstructNotAllowed:
    message = f"{construct} {why}" if why else f"not allowed: {construct}"
    return ConstructNotAllowed(message, construct=construct)


def check(tree: exp.Expr, nodes: list[exp.Expr] | None = None) -> None:
    """Raise ``ConstructNotAllowed`` for the first node (top-down) that is not allowed.

    ``nodes``: all of the tree's nodes in ``walk()`` order, when the caller has them.
    """
    allowed, allowed_args_of, checks = ALLOWED, ALLOWED_ARGS, CHECKS
    for node in tree.walk() if nodes is None else nodes:
        kind = type(node)
        if kind not in allowed:
            raise refuse(_name_of(node))
        allowed_args = allowed_args_of.get(kind)
        if allowed_args is not None:
            for arg, value in node.args.items():
                if arg not in allowed_args and _is_set(value):
                    raise refuse(ARG_NAMES.get(arg, f"{kind.__name__} {arg}"))
        extra = checks.get(kind)
        if extra is not None:
            extra(node)


def _is_set(value: object) -> bool:
    if value is None or value is False:
        return False
    return not (isinstance(value, list | str) and not value)


def _name_of(node: exp.Expr) -> str:
    if type(node).__name__ in CONSTRUCT_NAMES:
        return CONSTRUCT_NAMES[type(node).__name__]
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return f"function {node.this.name}.{node.expression.sql()}"
    if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
        try:
            return f"function {node.sql_name()}"
        except (AssertionError, NotImplementedError):  # pragma: no cover - defensive
            return f"function {type(node).__name__}"
    return type(node).__name__


def _check_anonymous(node: exp.Expr) -> None:
    name = str(node.this)
    if isinstance(node.parent, exp.Table):
        raise refuse(f"table-valued function {name}")
    if functions.is_allowed_anonymous(name):
        return
    if name.casefold() != CUSTOM_FIELDS:
        raise refuse(f"function {name.upper()}", "is not allowed (or not known)")
    parent = node.parent
    if not isinstance(parent, exp.Select) or node.arg_key != "expressions":
        raise refuse(
            "CUSTOM_FIELDS()", "is only allowed as an item of a select list, without an alias"
        )
    args = node.expressions
    if len(args) > 1 or (args and not (isinstance(args[0], exp.Column) and not args[0].table)):
        raise refuse("CUSTOM_FIELDS(...)", "takes nothing or one table alias")


def _check_parameter(node: exp.Expr) -> None:
    inner = node.this
    if isinstance(inner, exp.Parameter):
        raise refuse(f"system variable @@{inner.name}")
    if not isinstance(inner, exp.Var):
        raise refuse(f"parameter ${inner.name}", "is not allowed: use ? or @name")
    parent = node.parent
    if isinstance(parent, exp.Table):
        raise refuse(f"table variable @{inner.name}")
    if (
        isinstance(parent, exp.EQ)
        and node.arg_key == "this"
        and isinstance(parent.parent, exp.Select)
        and parent.arg_key == "expressions"
    ):
        raise refuse(f"assigning to variable @{inner.name}")


def _check_placeholder(node: exp.Expr) -> None:
    if node.this is not None:
        raise refuse(f"parameter :{node.this}", "is not allowed: use ? or @name")
    if _is_alias_name(node):
        # sqlglot keeps ``FROM t AS ?`` and drops it when generating: the binds shift.
        raise refuse("a ? parameter as an alias")


def _check_var(node: exp.Expr) -> None:
    parent = node.parent
    if isinstance(parent, exp.Parameter):
        return
    if isinstance(parent, exp.DataTypeParam) and node.name.upper() == "MAX":
        return
    if functions.is_unit_keyword(node):
        return
    raise refuse(f"keyword {node.name}")


def _check_star(node: exp.Expr) -> None:
    parent = node.parent
    if isinstance(parent, exp.Select) and node.arg_key == "expressions":
        return
    if isinstance(parent, exp.Count):
        return
    if (
        isinstance(parent, exp.Column)
        and isinstance(parent.parent, exp.Select)
        and parent.arg_key == "expressions"
    ):
        return
    raise refuse("* in this position")


def _check_cast(node: exp.Expr) -> None:
    # TRY_CAST is a ``TryCast`` (``safe``): the same targets, SQL Server only
    # (``transforms.string_functions.try_casts``).
    function = "TRY_CAST" if isinstance(node, exp.TryCast) else "CAST"
    to = node.args.get("to")
    if not isinstance(to, exp.DataType) or to.this not in CAST_TYPES:
        name = to.sql() if isinstance(to, exp.Expr) else "?"
        raise refuse(f"{function} to {name}")
    for arg in ("format", "safe", "action", "default"):
        if node.args.get(arg) and not (arg == "safe" and isinstance(node, exp.TryCast)):
            raise refuse(f"{function} with {arg.upper()}")


def _check_datatype(node: exp.Expr) -> None:
    parent = node.parent
    if isinstance(parent, exp.Convert) and node.arg_key == "this":
        if node.this not in CAST_TYPES:
            raise refuse(f"CONVERT to {node.sql()}")
        return
    if not isinstance(parent, exp.Cast):
        raise refuse(f"type {node.sql()} in this position")


def _check_limit_value(node: exp.Expr) -> None:
    count = (
        node.args.get("expression") if not isinstance(node, exp.Fetch) else node.args.get("count")
    )
    if isinstance(node, exp.Fetch) and node.args.get("direction") not in (None, "NEXT", "FIRST"):
        raise refuse("FETCH direction")
    if count is None and isinstance(node, exp.Fetch):
        return
    if isinstance(count, exp.Paren):
        count = count.this
    if isinstance(count, exp.Placeholder | exp.Parameter):
        return
    if isinstance(count, exp.Literal) and not count.is_string and count.this.isdigit():
        return
    raise refuse("row counts other than a number or a parameter")


def _check_limit_options(node: exp.Expr) -> None:
    if node.args.get("percent"):
        raise refuse("TOP ... PERCENT")
    if node.args.get("with_ties"):
        raise refuse("WITH TIES")


def _check_join(node: exp.Expr) -> None:
    kind = str(node.args.get("kind") or "").upper()
    if kind not in ("", "INNER", "OUTER", "CROSS"):
        raise refuse(f"{kind} JOIN")
    side = str(node.args.get("side") or "").upper()
    if side not in ("", "LEFT", "RIGHT", "FULL"):
        raise refuse(f"{side} JOIN")


def _check_with(node: exp.Expr) -> None:
    if node.args.get("recursive"):
        raise refuse("recursive CTEs")


def _check_column(node: exp.Expr) -> None:
    if not isinstance(node.this, exp.Identifier | exp.Star):
        raise refuse(f"column reference {node.sql()}")


def _is_alias_name(node: exp.Expr) -> bool:
    parent = node.parent
    return isinstance(parent, exp.TableAlias) or (
        isinstance(parent, exp.Alias) and node.arg_key == "alias"
    )


def _check_table(node: exp.Expr) -> None:
    # SQLite's NOT INDEXED is ``indexed=False``, which the argument check reads as unset.
    if node.args.get("indexed") is not None:
        raise refuse("INDEXED BY / NOT INDEXED")


def _check_select(node: exp.Expr) -> None:
    if not node.expressions:
        # ``SELECT``, ``SELECT TOP 1``, ``SELECT FROM t`` parse; no backend runs all three.
        raise SqlParseError("a SELECT needs at least one item in its select list")


def _check_write_node(node: exp.Expr) -> None:
    parents, arg_key, name = WRITE_PLACES[type(node)]
    parent = node.parent
    if parents:
        if type(parent) not in parents or node.arg_key != arg_key:
            raise refuse(name, "is not allowed here")
    elif parent is not None:
        raise refuse(name)
    if isinstance(node, exp.Returning) and node.args.get("into"):
        raise refuse("OUTPUT ... INTO")


def _check_values(node: exp.Expr) -> None:
    """VALUES as an INSERT's own rows (no alias), or as the one source of the SELECT
    that is an INSERT's source: ``INSERT INTO t (a) SELECT x FROM (VALUES (?), (?)) AS
    v(x)``. The rest of that shape (rows of literals and parameters, a select list of
    the alias's columns) is ``writes.check``'s; VALUES anywhere else stays refused."""
    parent = node.parent
    if isinstance(parent, exp.Insert) and node.arg_key == "expression":
        if node.args.get("alias"):
            raise refuse("an alias on INSERT ... VALUES")
        return
    if is_insert_values_source(node):
        return
    _check_write_node(node)  # refuses, naming the construct as before


def is_insert_values_source(node: exp.Expr) -> bool:
    """``node`` is the VALUES of ``INSERT ... SELECT ... FROM (VALUES ...) AS v(...)``:
    the FROM of the SELECT that is the INSERT's source (not a join, not a branch of a
    set operation, not a subquery)."""
    from_ = node.parent
    select = from_.parent if isinstance(from_, exp.From) else None
    return (
        type(node) is exp.Values
        and node.arg_key == "this"
        and type(select) is exp.Select
        and from_ is not None
        and from_.arg_key == "from_"
        and type(select.parent) is exp.Insert
        and select.arg_key == "expression"
    )


_GROUPINGS = (exp.Rollup, exp.Cube, exp.GroupingSets)


def _check_tuple(node: exp.Expr) -> None:
    """Row values: a VALUES row, or a set of columns in ROLLUP / CUBE / GROUPING SETS
    (``GROUPING SETS ((a, b), ())``, ``ROLLUP (a, (b, c))``)."""
    if isinstance(node.parent, _GROUPINGS) and node.arg_key == "expressions":
        return
    _check_write_node(node)


def _check_group(node: exp.Expr) -> None:
    # ``GROUP BY ROLLUP (a) WITH CUBE`` and the like: an error in T-SQL.
    if (node.args.get("rollup") or node.args.get("cube")) and any(
        isinstance(item, _GROUPINGS) for item in node.expressions
    ):
        raise refuse("WITH ROLLUP / WITH CUBE together with ROLLUP, CUBE or GROUPING SETS")
    if node.args.get("rollup") and node.args.get("cube"):
        raise refuse("WITH ROLLUP together with WITH CUBE")


def _check_grouping_construct(node: exp.Expr) -> None:
    """ROLLUP / CUBE / GROUPING SETS: in GROUP BY (``WITH ROLLUP`` is an empty ROLLUP
    in the group's ``rollup`` argument), or ROLLUP / CUBE inside GROUPING SETS."""
    parent, key = node.parent, node.arg_key
    name = (
        "ROLLUP"
        if isinstance(node, exp.Rollup)
        else "CUBE"
        if isinstance(node, exp.Cube)
        else "GROUPING SETS"
    )
    if isinstance(parent, exp.Group) and key in ("rollup", "cube"):
        if node.expressions:  # pragma: no cover - sqlglot parses WITH ROLLUP bare
            raise refuse(f"WITH {name} (...)")
        return
    in_group = isinstance(parent, exp.Group) and key == "expressions"
    in_sets = isinstance(parent, exp.GroupingSets) and not isinstance(node, exp.GroupingSets)
    if not (in_group or in_sets):
        raise refuse(f"{name} in this position")
    if not node.expressions and not isinstance(node, exp.GroupingSets):
        raise refuse(f"{name} ()", "needs at least one column")


CHECKS: dict[type[exp.Expr], Callable[[exp.Expr], None]] = {
    exp.Anonymous: _check_anonymous,
    exp.Parameter: _check_parameter,
    exp.Placeholder: _check_placeholder,
    exp.Var: _check_var,
    exp.Star: _check_star,
    exp.Cast: _check_cast,
    exp.TryCast: _check_cast,
    exp.DataType: _check_datatype,
    exp.Limit: _check_limit_value,
    exp.Offset: _check_limit_value,
    exp.Fetch: _check_limit_value,
    exp.LimitOptions: _check_limit_options,
    exp.Join: _check_join,
    exp.With: _check_with,
    exp.Column: _check_column,
    exp.Table: _check_table,
    exp.Select: _check_select,
    **functions.CHECKS,
    **dict.fromkeys(WRITE_PLACES, _check_write_node),
    exp.Values: _check_values,
    exp.Tuple: _check_tuple,
    exp.Group: _check_group,
    exp.Rollup: _check_grouping_construct,
    exp.Cube: _check_grouping_construct,
    exp.GroupingSets: _check_grouping_construct,
    exp.Pivot: pivot.check,
}
