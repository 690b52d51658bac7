"""What a SELECT scope can read from: physical tables (a tenant's ``TableShape``)
and derived tables / CTEs (the output names of their query).

A select-list item may also be a *splice* (see ``expand``): one placeholder node that
stands for a whole expanded column list, rendered as text after generation. Output
names count a splice as all of its columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType

from rewriter.errors import AmbiguousColumn, UnknownTable
from rewriter.shapes import TableShape

META_RESOLVED = "tenantgate_resolved"
META_SPLICE = "tenantgate_splice"


@dataclass(frozen=True)
class Splice:
    """An expanded column list ``alias.c1, alias.c2, ...`` kept out of the tree."""

    marker: str  # the text of the placeholder node, replaced after generation
    alias: str
    names: tuple[str, ...]
    # (fingerprint, "base" | "custom") when the names are a table's: the rendered
    # text can then be shared by every plan on tables of that shape.
    key: tuple[str, str] | None

    def __deepcopy__(self, memo: dict[int, object]) -> Splice:
        return self  # immutable; a copied tree must not copy hundreds of names


@dataclass(frozen=True)
class Context:
    shapes: Mapping[str, TableShape]  # casefolded logical name -> shape
    missing_null: bool
    tenant: str
    # The table an UPDATE/DELETE writes to: what its correlated subqueries may name.
    outer: Mapping[str, Source] | None = None
    splices: list[Splice] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    alias: str
    shape: TableShape | None = None  # a physical table
    scope: Scope | None = None  # a derived table or CTE

    @property
    def label(self) -> str:
        return self.shape.name if self.shape is not None else self.alias

    def lookup(self, name: str, tenant: str) -> str | None:
        """The spelling of column ``name`` in this source, or ``None``."""
        if self.shape is not None:
            return self.shape.lookup(name)
        outputs = [o for o in self.outputs() if o is not None]
        exact = [o for o in outputs if o == name]
        matches = exact or [o for o in outputs if o.casefold() == name.casefold()]
        if len(matches) > 1:
            raise AmbiguousColumn(
                f"column {name!r} is ambiguous: {self.alias} returns it more than once",
                column=name,
                table=self.alias,
                tenant=tenant or None,
            )
        return matches[0] if matches else None

    def outputs(self) -> list[str | None]:
        assert self.scope is not None
        return query_outputs(self.scope.expression)

    def star_columns(self) -> list[str]:
        if self.shape is not None:
            return list(self.shape.base_columns)
        return [o for o in self.outputs() if o is not None]


def query_outputs(query: exp.Expr) -> list[str | None]:
    """Output names of a query; ``None`` for an unnamed expression."""
    if isinstance(query, exp.Values):
        # A VALUES derived table (only as ``writes.check`` allows it): its alias's columns.
        alias = query.args.get("alias")
        return [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    holder = query.parent
    if isinstance(holder, exp.Subquery | exp.CTE):
        alias = holder.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return [c.name for c in alias.columns]
    while isinstance(query, exp.SetOperation | exp.Subquery):
        query = query.this
    if not isinstance(query, exp.Select):
        return []
    names: list[str | None] = []
    for item in query.expressions:
        splice = spliced(item)
        if splice is not None:
            names.extend(splice.names)
        else:
            names.append(output_name(item))
    return names


def spliced(item: exp.Expr) -> Splice | None:
    """The splice ``item`` stands for, if it is one."""
    if type(item) is not exp.Var:
        return None
    meta = item._meta  # not ``.meta``: reading that would attach an empty dict
    found = meta.get(META_SPLICE) if meta else None
    return found if isinstance(found, Splice) else None


def output_name(item: exp.Expr) -> str | None:
    if isinstance(item, exp.Alias):
        return item.alias
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Identifier):
        return item.name
    return None


@dataclass
class Sources:
    """Sources per scope, built once per scope."""

    ctx: Context
    _cache: dict[int, dict[str, Source]] = field(default_factory=dict)

    def of(self, scope: Scope) -> dict[str, Source]:
        key = id(scope)
        if key not in self._cache:
            self._cache[key] = self._build(scope)
        return self._cache[key]

    def _build(self, scope: Scope) -> dict[str, Source]:
        result: dict[str, Source] = {}
        for name, (_, source) in scope.selected_sources.items():
            if isinstance(source, Scope):
                result[name] = Source(alias=name, scope=source)
            else:
                shape = self.ctx.shapes.get(source.name)
                if shape is None:  # pragma: no cover - rewrite() checked every table
                    raise UnknownTable(f"unknown table {source.name}", table=source.name)
                result[name] = Source(alias=name, shape=shape)
        return result

    def outer(self, scope: Scope) -> Iterator[dict[str, Source]]:
        """Sources of the enclosing SELECTs a correlated subquery may refer to."""
        current = scope
        while current.scope_type in (ScopeType.SUBQUERY, ScopeType.SET_OPERATION):
            parent = current.parent
            if parent is None:
                return
            current = parent
            if isinstance(current.expression, exp.Select):
                yield self.of(current)
            elif isinstance(current.expression, exp.DML) and self.ctx.outer:
                yield dict(self.ctx.outer)
