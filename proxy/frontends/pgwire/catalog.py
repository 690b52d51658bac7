"""The ``pg_catalog`` queries of psql's ``\\d``, SQLAlchemy and Django, answered from metadata.

Clients introspect a PostgreSQL server by reading its catalog. A tenant's catalog is not
tenantgate's to show (its server may be SQLite or SQL Server, and may hold other
tenants' tables), so those statements are answered here, from the tenant's
``TableMetadata`` alone:

* ``answer`` parses the statement (PostgreSQL dialect). A statement that is not one
  ``SELECT`` whose every relation is a known catalog relation is "not a catalog query"
  (``None``): the session sends it down the pipeline as usual.
* The catalog relations live in an in-memory SQLite database built from the metadata:
  ``pg_namespace`` (``public``), ``pg_class`` (one row per table, plus one per
  primary-key index), ``pg_attribute``, ``pg_type``, ``pg_index``, ``pg_constraint``
  and empty tables for the rest of what psql reads (policies, publications...). One
  database per set of table shapes (their fingerprints), cached: tenants with the
  default schema share one.
* The client's statement is rewritten (sqlglot, PostgreSQL to SQLite) once per text
  and cached: its relations lose their ``pg_catalog.`` qualifier, ``$n`` parameters
  become SQLite parameters, ``x = ANY(ARRAY[...])`` becomes ``IN``, ``::regclass``
  casts become lookups, ``OPERATOR(pg_catalog.~)`` a regular-expression match,
  ``unnest``/``generate_subscripts``/``WITH ORDINALITY`` joins with ``json_each``,
  ``array_agg`` and ``array(SELECT ...)`` JSON arrays printed as PostgreSQL arrays,
  ``json_build_object`` SQLite's ``json_object``. Python functions stand in for
  ``format_type``, ``pg_table_is_visible``, ``pg_get_indexdef``,
  ``pg_get_serial_sequence``... Statements that inner-join an always-empty relation
  (psql's policies, publications, triggers) answer no rows without running.
* Booleans are 0/1 in SQLite. Result types come from sqlglot's type annotation of the
  PostgreSQL statement over the catalog's schema; boolean columns are turned back
  into ``True``/``False``; arrays are ``string[]`` and JSON objects ``json``.

A statement that reads only catalog relations but that this module cannot run (a
function the catalog lacks, a runaway recursive CTE) raises
``CatalogQueryUnsupported``: it must never be forwarded to a real catalog.

Names match case-insensitively, as everywhere in tenantgate: ``\\d Contacts`` (which
psql folds to ``^(contacts)$``) finds ``Contacts``, where a real server would not.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from proxy.frontends.pgwire.catalog_db import BOOL, RELATIONS, catalog_for
from proxy.frontends.pgwire.session import short_texts

if TYPE_CHECKING:
    from tenancy.metadata import TableMetadata

__all__ = [
    "Answer",
    "CatalogQueryUnsupported",
    "Description",
    "answer",
    "describe",
    "is_catalog_query",
    "mentions_catalog",
]


class CatalogQueryUnsupported(Exception):
    """A statement that reads only the catalog, in a form this module cannot answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A catalog query's result: column names, their stable type names, rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    """``proxy.drivers.base.TYPE_NAMES`` values (``integer``, ``boolean``, ``string``),
    and ``json`` and ``string[]``, which the wire announces as json (114) and text[]
    (1009); values of those two are already in PostgreSQL's text form."""
    rows: list[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Description:
    """A catalog query's parameter types (per ``$n``), column names and types, as
    Describe announces them before it runs (type names as ``Answer.types``)."""

    params: tuple[str, ...]
    columns: tuple[str, ...]
    types: tuple[str, ...]


# -- rewriting the client's statement -------------------------------------------------

_SCHEMAS = frozenset({"pg_catalog", "information_schema", ""})


def _is_catalog_query(tree: exp.Expr) -> bool:
    """One query whose every relation is a catalog relation (and there is at least one)."""
    if not isinstance(tree, exp.Query):
        return False
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = False
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name:
            continue  # a table function (unnest(...)): its arguments are checked elsewhere
        if name in ctes and not table.db:
            continue
        if table.db not in _SCHEMAS or name not in RELATIONS:
            return False
        found = True
    return found


def _cast_kind(cast: exp.Cast) -> str:
    to = cast.to
    kind = to.args.get("kind")
    if isinstance(kind, exp.Dot):
        return str(kind.expression.name).casefold()
    if to.this == exp.DataType.Type.USERDEFINED and kind is not None:
        return str(kind).casefold()
    return to.sql("postgres").casefold()


def _rewrite(tree: exp.Expr) -> exp.Expr:
    """The statement in SQLite's terms, over the catalog's tables (two passes: names and
    values first, so that the structural rewrites of the second see plain nodes)."""

    def leaves(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Parameter):
            # A named SQLite parameter: the transpiled text is the same for any values.
            return exp.Placeholder(this=f"p{node.name}")
        if isinstance(node, exp.Table) and node.db in _SCHEMAS:
            node.set("db", None)
            node.set("catalog", None)
        elif isinstance(node, exp.Column) and node.args.get("db") is not None:
            node.set("db", None)
        elif isinstance(node, exp.Dot) and node.this.name == "pg_catalog":
            inner: exp.Expr = node.expression.transform(leaves, copy=False)
            return inner
        elif isinstance(node, exp.Collate):
            collated: exp.Expr = node.this
            return collated
        return node

    def structure(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Operator):
            operator = str(node.args.get("operator", "")).rsplit(".", 1)[-1]
            if operator == "~":
                return exp.RegexpLike(this=node.this, expression=node.expression)
            raise CatalogQueryUnsupported(f"operator {operator}")
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
            inner = node.expression.this
            inner = inner.this if isinstance(inner, exp.Paren) else inner
            if isinstance(inner, exp.Array):
                return exp.In(this=node.this, expressions=list(inner.expressions))
        if isinstance(node, exp.ArrayAgg):
            # SQLite 3.40 has no ORDER BY inside an aggregate: the elements travel with
            # their sort key, and tg_sorted_array orders them (one key, ascending: what
            # these clients write).
            if isinstance(node.this, exp.Order) and len(node.this.expressions) == 1:
                key = node.this.expressions[0].this
                pair = exp.Anonymous(this="json_array", expressions=[key, node.this.this])
                return exp.Anonymous(
                    this="tg_sorted_array",
                    expressions=[exp.Anonymous(this="json_group_array", expressions=[pair])],
                )
            return exp.Anonymous(
                this="tg_array",
                expressions=[exp.Anonymous(this="json_group_array", expressions=[node.this])],
            )
        if (
            isinstance(node, exp.Array)
            and len(node.expressions) == 1
            and isinstance(node.expressions[0], exp.Select)
        ):
            # array(SELECT x ... ORDER BY y): SQLite keeps the order of a subquery that an
            # aggregate reads (it does not flatten one with ORDER BY).
            inner = node.expressions[0].copy()
            inner.set("expressions", [exp.alias_(inner.selects[0].unalias(), "tg_v")])
            collect = exp.select(
                exp.Anonymous(this="json_group_array", expressions=[exp.column("tg_v")])
            ).from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("tg_a"))))
            return exp.Anonymous(this="tg_array", expressions=[exp.Subquery(this=collect)])
        if isinstance(node, exp.LogicalAnd):
            return exp.Min(this=node.this)
        if isinstance(node, exp.Anonymous) and str(node.this).casefold() == "json_build_object":
            return exp.Anonymous(
                this="json_object", expressions=[_json_value(e) for e in node.expressions]
            )
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            # int2vector columns (conkey, indkey) are held as PostgreSQL prints them: "1 2".
            return exp.Anonymous(this="tg_at", expressions=[node.this, node.expressions[0]])
        if isinstance(node, exp.Cast):
            kind = _cast_kind(node)
            if kind in ("regclass", "oid") and isinstance(node.this, exp.Literal):
                return exp.Anonymous(this="tg_regclass_in", expressions=[node.this])
            if kind == "regclass":
                parent = node.parent
                shown = isinstance(parent, exp.Alias | exp.Select) or (
                    isinstance(parent, exp.Cast) and _cast_kind(parent) == "text"
                )
                name = "tg_regclass_out" if shown else "tg_regclass_in"
                return exp.Anonymous(this=name, expressions=[node.this])
            if kind in ("text", "varchar", "integer", "int", "bigint", "oid", "name", "char"):
                # SQLite compares by value and the answer's text is the same either way.
                uncast: exp.Expr = node.this
                return uncast
        return node

    def again(step: Any) -> Any:
        # sqlglot does not descend into a node a transform replaced: its children (a cast
        # inside a cast) get the same treatment here.
        def run(node: exp.Expr) -> exp.Expr:
            new: exp.Expr = step(node)
            if new is node:
                return node
            again_: exp.Expr = new.transform(run, copy=False)
            return again_

        return run

    plain: exp.Expr = tree.transform(again(leaves), copy=True)
    for select in list(plain.find_all(exp.Select)):
        _unnest_in_from(select)
        _unnest_in_select_list(select)
    done: exp.Expr = plain.transform(again(structure), copy=False)
    return done


_BOOLEAN_COLUMNS = frozenset(c for cols in RELATIONS.values() for c, t in cols.items() if t == BOOL)


def _json_value(value: exp.Expr) -> exp.Expr:
    """A value for SQLite's ``json_object``: truth values as JSON ``true``/``false``,
    not SQLite's 1/0 (SQLAlchemy reads ``"always": false`` of an identity)."""
    truth = isinstance(value, exp.Predicate | exp.Not | exp.Boolean) or (
        isinstance(value, exp.Column) and value.name in _BOOLEAN_COLUMNS
    )
    if not truth:
        return value
    case = exp.Case(
        ifs=[
            exp.If(this=value.copy(), true=exp.Literal.string("true")),
            exp.If(this=exp.Not(this=value.copy()), true=exp.Literal.string("false")),
        ]
    )
    return exp.Anonymous(this="json", expressions=[case])


def _unnest_in_from(select: exp.Select) -> None:
    """``unnest(a, b) WITH ORDINALITY AS u(x, y, n)`` among a select's relations: SQLite's
    ``json_each`` over ``a`` as ``u``, its columns computed from ``u.key`` (``x`` is
    ``a[key]``, ``y`` is ``b[key]``, ``n`` is ``key + 1``)."""
    sources: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    sources.extend(join.this for join in select.args.get("joins") or ())
    for unnest in [u for u in sources if isinstance(u, exp.Unnest)]:
        alias = unnest.args.get("alias")
        if alias is None or not alias.name:
            raise CatalogQueryUnsupported("unnest without an alias")
        name = alias.name
        vectors = list(unnest.expressions)
        computed: dict[str, exp.Expr] = {}
        for column, vector in zip(alias.columns, vectors, strict=False):
            computed[column.name] = exp.Anonymous(
                this="tg_at", expressions=[vector.copy(), exp.column("key", table=name)]
            )
        offset = unnest.args.get("offset")
        if isinstance(offset, exp.Identifier):
            computed[offset.name] = exp.column("key", table=name) + exp.Literal.number(1)
        each = exp.Anonymous(
            this="json_each",
            expressions=[exp.Anonymous(this="tg_vector_json", expressions=[vectors[0].copy()])],
        )
        unnest.replace(exp.Table(this=each, alias=exp.TableAlias(this=exp.to_identifier(name))))
        for column in list(select.find_all(exp.Column)):
            if column.table == name and column.name in computed:
                column.replace(computed[column.name].copy())
        if any(isinstance(e, exp.Star) for e in select.expressions):
            others = [t.alias_or_name for t in sources if t is not unnest]
            select.set(
                "expressions",
                [exp.Column(this=exp.Star(), table=exp.to_identifier(o)) for o in others]
                + [exp.alias_(e, c) for c, e in computed.items()],
            )


def _unnest_in_select_list(select: exp.Select) -> None:
    """``unnest(v) AS a, generate_subscripts(v, 1) AS o`` in a select list (one row per
    element of ``v``): a join with SQLite's ``json_each`` over the vector instead."""
    vectors: dict[str, str] = {}
    for node in list(select.selects):
        for found in list(node.find_all(exp.Explode, exp.Anonymous)):
            if found.parent_select is not select:
                continue
            if isinstance(found, exp.Explode):
                vector = found.this
                replace_with = "value"
            elif str(found.this).casefold() == "generate_subscripts":
                vector = found.expressions[0]
                replace_with = "key"
            else:
                continue
            key = vector.sql()
            alias = vectors.setdefault(key, f"tg_unnest_{len(vectors)}")
            column = exp.column(replace_with, table=alias)
            found.replace(column if replace_with == "value" else column + exp.Literal.number(1))
            if alias not in {j.alias_or_name for j in select.args.get("joins") or ()}:
                each = exp.Anonymous(
                    this="json_each",
                    expressions=[exp.Anonymous(this="tg_vector_json", expressions=[vector.copy()])],
                )
                source = exp.Table(this=each, alias=exp.TableAlias(this=exp.to_identifier(alias)))
                select.join(source, join_type="cross", copy=False)


_ALWAYS_EMPTY = frozenset(
    {
        "pg_policy",
        "pg_statistic_ext",
        "pg_publication",
        "pg_publication_namespace",
        "pg_publication_rel",
        "pg_inherits",
        "pg_trigger",
        "pg_rewrite",
        "pg_attrdef",
        "pg_collation",
        "pg_description",
    }
)
"""Relations that hold no rows for any tenant: no policies, triggers, comments..."""


def _surely_empty(tree: exp.Expr) -> bool:
    """True when every branch inner-joins an always-empty relation and aggregates nothing.

    psql's ``\\d`` reads policies, statistics, publications, triggers and partitions
    with functions and array operators that SQLite lacks; their answer is known without
    running them.
    """
    if isinstance(tree, exp.Union):
        return _surely_empty(tree.left) and _surely_empty(tree.right)
    if not isinstance(tree, exp.Select):
        return False
    if tree.args.get("group") is None and any(
        agg.parent_select is tree for s in tree.selects for agg in s.find_all(exp.AggFunc)
    ):
        return False  # one row even over nothing (count(*))
    sources: list[exp.Expr] = []
    from_ = tree.args.get("from_") or tree.args.get("from")
    if from_ is not None:
        sources.append(from_.this)
    for join in tree.args.get("joins") or ():
        if not join.side and join.kind.upper() not in ("OUTER", "FULL"):
            sources.append(join.this)
    return any(isinstance(t, exp.Table) and t.name in _ALWAYS_EMPTY for t in sources)


_UNSUPPORTED = (exp.JSONObject,)


def _schema() -> dict[str, dict[str, str]]:
    return {
        name: {c: ("boolean" if t == BOOL else t) for c, t in cols.items()}
        for name, cols in RELATIONS.items()
    }


_ANNOTATE_SCHEMA: dict[str, object] = {"pg_catalog": _schema(), "public": _schema()}


def _typed(tree: exp.Query) -> exp.Query:
    """``tree`` annotated with sqlglot's types over the catalog's schema where that
    works (``tree`` itself otherwise)."""
    try:
        qualified = qualify(
            tree.copy(),
            schema=_ANNOTATE_SCHEMA,
            dialect="postgres",
            db="pg_catalog",
            validate_qualify_columns=False,
            identify=False,
        )
        typed = annotate_types(qualified, schema=_ANNOTATE_SCHEMA, dialect="postgres")
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return tree
    if not isinstance(typed, exp.Query) or len(typed.selects) != len(tree.selects):
        return tree
    return typed


def _result_types(typed: exp.Query) -> list[str]:
    """Each output column's type name: text where the annotation says nothing; arrays
    and JSON recognised by their constructor."""
    return [_kind(select) for select in typed.selects]


_INTEGER_CASTS = frozenset(
    ("oid", "int", "int2", "int4", "int8", "integer", "smallint", "bigint")
)  # fmt: skip
"""Casts that make a parameter a number (``$4::OID``); ``::regclass`` takes a name."""
_BOOL = frozenset(("bool", "boolean"))


def _param_types(typed: exp.Query) -> tuple[str, ...]:
    """Each ``$n``'s type name, from what it is compared with (``a.attnum > $11`` is an
    integer) or cast to; text otherwise. asyncpg encodes a value by the type Describe
    announces, and refuses an ``int`` for a text parameter."""
    found: dict[int, str] = {}
    for param in typed.find_all(exp.Parameter):
        if not param.name.isdigit():
            continue
        node: exp.Expr = param
        parent = node.parent
        while isinstance(parent, exp.Paren):
            node, parent = parent, parent.parent
        other: exp.Expr | None = None
        if isinstance(parent, exp.Cast):
            other = parent
        elif isinstance(parent, exp.In) and node is not parent.this:
            other = parent.this
        elif isinstance(parent, exp.Binary) and not isinstance(parent, exp.Connector):
            other = parent.left if parent.right is node else parent.right
        name = "string"
        if isinstance(other, exp.Cast):
            cast = _cast_kind(other)
            name = "integer" if cast in _INTEGER_CASTS else "boolean" if cast in _BOOL else name
        elif other is not None and other.type is not None:
            kind = other.type.this
            if kind in exp.DataType.INTEGER_TYPES:
                name = "integer"
            elif kind == exp.DataType.Type.BOOLEAN:
                name = "boolean"
        found.setdefault(int(param.name), name)
    return tuple(found.get(n, "string") for n in range(1, max(found, default=0) + 1))


def _kind(select: exp.Expr) -> str:
    node = select.unalias()
    if isinstance(node, exp.ArrayAgg | exp.Array):
        return "string[]"
    if any(str(f.this).casefold() == "json_build_object" for f in node.find_all(exp.Anonymous)):
        return "json"
    kind = select.type.this if select.type is not None else None
    if kind == exp.DataType.Type.BOOLEAN:
        return "boolean"
    if kind in exp.DataType.INTEGER_TYPES:
        return "integer"
    return "string"


def _figure_name(node: exp.Expr) -> str | None:
    """The name PostgreSQL gives an unaliased output column (its ``FigureColname``)."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Dot):
        return _figure_name(node.expression)
    if isinstance(node, exp.Cast):
        inner = _figure_name(node.this)
        return inner if inner is not None else _cast_kind(node)
    if isinstance(node, exp.Case):
        default = node.args.get("default")
        found = _figure_name(default) if default is not None else None
        return found if found is not None else "case"
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        return _figure_name(node.this.selects[0])
    if isinstance(node, exp.Array):
        return "array"
    if isinstance(node, exp.Anonymous):
        return str(node.this).casefold()
    if isinstance(node, exp.Func) and not isinstance(node, exp.Predicate | exp.Binary):
        return node.sql_name().casefold()
    if isinstance(node, exp.Boolean):
        return "bool"
    return None


def _column_names(tree: exp.Query) -> list[str]:
    return [_figure_name(select) or "?column?" for select in tree.selects]


@short_texts(1024)
def mentions_catalog(sql: str) -> bool:
    """Whether ``sql`` could be a catalog query: a look at the text, before
    ``is_catalog_query``, which parses (and may take 100 ms the first time)."""
    lowered = sql.lower()
    return "pg_" in lowered or "information_schema" in lowered


def is_catalog_query(sql: str) -> bool:
    """Whether ``answer`` handles ``sql`` (answers it or refuses it), worked out once per
    text: a cheap look at the text first, so that most statements are never parsed here."""
    return mentions_catalog(sql) and _plan(sql) is not None


def describe(sql: str) -> Description | None:
    """What Describe of ``sql`` announces, before it runs (``None``: not a catalog
    query, or one that will be refused)."""
    plan = _plan(sql)
    if plan is None or isinstance(plan, CatalogQueryUnsupported):
        return None
    return Description(plan.params, plan.columns, plan.types)


def answer(
    sql: str,
    tables: Mapping[str, TableMetadata],
    params: Sequence[object] = (),
    *,
    primary_keys: Mapping[str, Sequence[str]] | None = None,
) -> Answer | None:
    """The answer to ``sql`` if it reads only the catalog, else ``None``.

    ``tables`` are the tenant's tables (name → metadata); ``params`` the values of
    ``$1``, ``$2``...; ``primary_keys`` (name → key columns) what the tenant's catalog
    says of them, if known. Raises ``CatalogQueryUnsupported`` for a catalog query this
    module cannot run.
    """
    plan = _plan(sql)
    if plan is None:
        return None
    if isinstance(plan, CatalogQueryUnsupported):
        raise CatalogQueryUnsupported(str(plan))
    if plan.sqlite is None:
        return Answer(plan.columns, plan.types, [])
    catalog = catalog_for(tables, primary_keys or {})
    values = {f"p{i}": value for i, value in enumerate(params, start=1)}
    try:
        with catalog.lock:
            catalog.budget.calls = 0
            rows = catalog.db.execute(plan.sqlite, values).fetchall()
    except sqlite3.Error as error:
        raise CatalogQueryUnsupported(str(error)) from None
    booleans = [i for i, k in enumerate(plan.types) if k == "boolean"]
    converted: list[tuple[object, ...]] = []
    for row in rows:
        if booleans:
            values_: list[Any] = list(row)
            for i in booleans:
                if values_[i] is not None:
                    values_[i] = bool(values_[i])
            converted.append(tuple(values_))
        else:
            converted.append(tuple(row))
    return Answer(plan.columns, plan.types, converted)


@dataclass(frozen=True, slots=True)
class _Plan:
    columns: tuple[str, ...]
    types: tuple[str, ...]
    sqlite: str | None
    """The statement in SQLite's terms; ``None`` when its answer is surely empty."""
    params: tuple[str, ...] = ()
    """The type name of each ``$n`` (``_param_types``)."""


@functools.lru_cache(maxsize=512)
def _plan(sql: str) -> _Plan | CatalogQueryUnsupported | None:
    """What answering ``sql`` takes, worked out once per text (parsing, typing and
    transpiling a SQLAlchemy reflection statement costs about 140 ms; these clients
    send the same few texts every time)."""
    try:
        parsed = sqlglot.parse(sql, read="postgres")
    except SqlglotError:
        return None
    statements = [s for s in parsed if s is not None]
    if len(statements) != 1 or not _is_catalog_query(statements[0]):
        return None
    tree = statements[0]
    assert isinstance(tree, exp.Query)
    typed = _typed(tree)
    columns, types = tuple(_column_names(tree)), tuple(_result_types(typed))
    params = _param_types(typed)
    if _surely_empty(tree):
        return _Plan(columns, types, None, params)
    if tree.find(*_UNSUPPORTED) is not None or any(
        isinstance(f, exp.Anonymous) and str(f.this).casefold() in ("array_to_string",)
        for f in tree.find_all(exp.Anonymous)
    ):
        return CatalogQueryUnsupported("arrays and JSON of the catalog are not answered yet")
    try:
        return _Plan(columns, types, _rewrite(tree).sql("sqlite"), params)
    except (SqlglotError, CatalogQueryUnsupported) as error:
        return CatalogQueryUnsupported(str(error))
