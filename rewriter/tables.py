"""Pass 4: table references. Refuse what leaves the tenant's database, normalize names,
and find the physical tables (CTE references excluded).

Logical SQL is case-insensitive about table names, aliases and CTE names (as T-SQL
is), so they are casefolded here, once: sqlglot's scopes key sources by name, and
from here on every pass compares names exactly. Physical spellings come back from
the tenant's ``TableShape`` when the SQL is generated.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from rewriter.allowlist import refuse
from rewriter.errors import ConstructNotAllowed, CrossDatabaseReference
from rewriter.markers import DEFAULT_SCHEMAS, META_PHYSICAL, META_TARGET
from rewriter.nodes import bfs

SYSTEM_SCHEMAS = frozenset({"sys", "information_schema", "pg_catalog", "pg_toast", "guest"})
SYSTEM_DATABASES = frozenset({"master", "msdb", "tempdb", "model", "mssqlsystemresource"})
SYSTEM_PREFIXES = ("pg_", "sqlite_")
# SQL Server's compatibility views, reachable without a schema.
SQLSERVER_COMPAT_VIEWS = frozenset(
    {
        "sysaltfiles",
        "syscacheobjects",
        "syscharsets",
        "syscolumns",
        "syscomments",
        "sysconfigures",
        "sysconstraints",
        "syscurconfigs",
        "sysdatabases",
        "sysdepends",
        "sysdevices",
        "sysfilegroups",
        "sysfiles",
        "sysforeignkeys",
        "sysfulltextcatalogs",
        "sysindexes",
        "sysindexkeys",
        "syslanguages",
        "syslockinfo",
        "syslogins",
        "sysmembers",
        "sysmessages",
        "sysobjects",
        "sysoledbusers",
        "sysopentapes",
        "sysperfinfo",
        "syspermissions",
        "sysprocesses",
        "sysprotects",
        "sysreferences",
        "sysremotelogins",
        "sysservers",
        "systypes",
        "sysusers",
    }
)


def check_references(tree: exp.Expr, dialect: str, tables: list[exp.Table] | None = None) -> bool:
    """Refuse table references that leave the tenant's database (runs before the
    allow-list, so that ``a.b.c.d`` is a cross-database reference, not a bad name).

    ``tables``: the tree's tables in ``walk()`` order, when the caller has them.
    Returns whether a (default) schema qualifier was dropped from the tree.
    """
    default_schema = DEFAULT_SCHEMAS[dialect]
    if tables is None:
        tables = list(tree.find_all(exp.Table))
    dropped = False
    for table in tables:
        dropped = _check_reference(table, default_schema) or dropped
    return dropped


def normalize_and_classify(tree: exp.Expr, nodes: list[exp.Expr] | None = None) -> frozenset[str]:
    """Casefold names; mark physical tables; return their names (CTEs excluded).

    ``nodes``: the tree's current nodes in ``walk()`` order, when the caller has them.
    """
    if nodes is None:
        nodes = bfs(tree)
    tables: list[exp.Table] = []
    names: list[exp.Expr] = []  # the nodes whose names are casefolded
    ctes: list[exp.CTE] = []
    for node in nodes:
        if isinstance(node, exp.Table):
            tables.append(node)
            names.append(node)
        elif isinstance(node, exp.TableAlias | exp.Column):
            names.append(node)
        elif isinstance(node, exp.CTE):
            ctes.append(node)
        elif (
            isinstance(node, exp.Subquery)
            and isinstance(node.parent, exp.From | exp.Join)
            and not node.alias
        ):
            raise refuse("a derived table without an alias")
    _check_ctes(ctes)
    for node in names:
        _casefold(node.args.get("table") if isinstance(node, exp.Column) else node.this)
    return _classify(tree, tables)


def _check_reference(table: exp.Table, default_schema: str) -> bool:
    this = table.this
    # Rendered only for a refusal: the generator run costs more than all the checks.
    written = table.sql
    if not isinstance(this, exp.Identifier):
        if isinstance(this, exp.Dot):
            raise _cross(written(), "four-part names")
        if isinstance(this, exp.Func):
            raise refuse(f"table-valued function {written()}")
        if isinstance(this, exp.Parameter):
            raise refuse(f"table variable {written()}")
        raise refuse(f"table reference {written()}")
    if this.args.get("temporary") or this.args.get("global_") or this.name.startswith("#"):
        prefix = "##" if this.args.get("global_") else "#"
        raise refuse(f"temporary table {prefix}{this.name.lstrip('#')}")
    if table.args.get("catalog"):
        if table.catalog.casefold() in SYSTEM_DATABASES:
            raise _cross(written(), "system databases")
        raise _cross(written(), "three-part names")
    if table.args.get("db"):
        schema = table.db.casefold()
        if schema in SYSTEM_SCHEMAS or schema.startswith(SYSTEM_PREFIXES):
            raise _cross(written(), "system objects")
        if schema != default_schema:
            raise _cross(written(), f"schemas other than {default_schema}")
    alias = table.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.columns:
        raise refuse(f"column aliases on table {written()}")
    if table.args.get("db"):
        table.set("db", None)
        return True
    return False


def _cross(written: str, what: str) -> CrossDatabaseReference:
    return CrossDatabaseReference(
        f"{written}: {what} are not allowed; a statement reads only the tenant's own tables",
        table=written,
    )


def _check_ctes(ctes: list[exp.CTE]) -> None:
    for cte in ctes:
        name = cte.alias.casefold()
        for table in cte.this.find_all(exp.Table):
            if not table.args.get("db") and table.name.casefold() == name:
                raise refuse(f"recursive CTEs (CTE {cte.alias} names itself)")


def _casefold(identifier: object) -> None:
    if isinstance(identifier, exp.Identifier):
        identifier.set("this", identifier.name.casefold())


def _classify(tree: exp.Expr, tables: list[exp.Table]) -> frozenset[str]:
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as error:  # pragma: no cover - defensive
        raise ConstructNotAllowed(f"cannot resolve the statement's tables: {error}") from None
    physical: set[str] = set()
    classified: set[int] = set()
    for scope in scopes:
        _check_duplicate_sources(scope)
        for table in scope.tables:
            source = scope.sources.get(table.alias_or_name)
            if source is table:
                name = table.name
                _check_system_name(name)
                table.meta[META_PHYSICAL] = True
                physical.add(name)
                classified.add(id(table))
            elif isinstance(source, Scope):
                classified.add(id(table))
    for table in tables:
        meta = table._meta  # not ``.meta``: reading that would attach an empty dict
        if meta and meta.get(META_TARGET):  # the table a write writes to (no scope has it)
            _check_system_name(table.name)
            physical.add(table.name)
        elif id(table) not in classified:
            raise refuse(f"table reference {table.sql()} in this position")
    return frozenset(physical)


def _check_system_name(name: str) -> None:
    if name in SQLSERVER_COMPAT_VIEWS or name.startswith(SYSTEM_PREFIXES):
        raise _cross(name, "system objects")


def _check_duplicate_sources(scope: Scope) -> None:
    expression = scope.expression
    if not isinstance(expression, exp.Select):
        return
    names: list[str] = []
    from_ = expression.args.get("from_")
    if isinstance(from_, exp.From):
        names.append(from_.this.alias_or_name)
    for join in expression.args.get("joins") or []:
        names.append(join.this.alias_or_name)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise refuse(
                f"the table name or alias {name!r} used twice in one FROM clause",
                "is not allowed: give each table its own alias",
            )
        seen.add(name)
