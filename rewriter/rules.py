"""The rewrite pipeline as data: ``RULES``, one named rule per pass, in order.

As in sqlglot's optimizer (``sqlglot/optimizer/optimizer.py``: a ``RULES`` tuple of
small functions, ``optimize`` a loop over it), ``rewrite`` is a loop over ``RULES``.
Each rule is a small function over one ``State`` (the tree, the context, the backend,
the columns found so far, the parameter bindings, the generated SQL...) and says what
it serves: the backends, the statement classes (``read``, ``write``), an option of
``rewrite`` it needs (``row_cap``, ``lift_literals``), the logical SQL dialects (the T-SQL-meaning
transforms only run on T-SQL), and the node types it acts on (a transform with none
of them in the tree would do nothing, so it is skipped). A pass that exists for one
backend is a rule of its own that says so, named after that backend (``tsql_...``,
``sqlite_...``). Each rule's function has the rule's name.

The rules a (backend, statement class, dialect, options) combination runs are picked
once and kept (``select``, a ``Pipeline``): a plan-cache miss pays a loop over a tuple
of functions, with the transforms' trigger check once for the consecutive rules that
have triggers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlglot import exp

from rewriter import columns as cols
from rewriter import expand, params, qualify, writes
from rewriter import generate as gen
from rewriter import lift as lifting
from rewriter import row_cap as caps
from rewriter.functions import check_backend
from rewriter.markers import BACKEND_DIALECTS
from rewriter.nodes import bfs
from rewriter.params import Binding
from rewriter.shapes import TableShape
from rewriter.sources import Context
from rewriter.statement import READ, WRITE
from rewriter.transforms import (
    TRIGGERS,
    aggregates,
    booleans,
    concat,
    date_parts,
    dates,
    numbers,
    pivot,
    strings,
    windows,
)
from rewriter.transforms import date_styles as styles
from rewriter.transforms import string_functions as text
from rewriter.transforms.types import Types

BACKENDS: frozenset[str] = frozenset(BACKEND_DIALECTS)
SQLSERVER: frozenset[str] = frozenset({"sqlserver"})
SQLITE: frozenset[str] = frozenset({"sqlite"})
POSTGRESQL: frozenset[str] = frozenset({"postgresql"})
# Where T-SQL is not the backend's own language: the transforms that keep its meaning.
NOT_SQLSERVER: frozenset[str] = BACKENDS - SQLSERVER
STATEMENTS: frozenset[str] = frozenset({READ, WRITE})
READS: frozenset[str] = frozenset({READ})
WRITES: frozenset[str] = frozenset({WRITE})
TSQL: frozenset[str] = frozenset({"tsql"})  # logical SQL dialects
POSTGRES: frozenset[str] = frozenset({"postgres"})
SQLITE_SQL: frozenset[str] = frozenset({"sqlite"})


class State:
    """What the rules read and write: one per ``rewrite`` call. Class attributes are
    the defaults, so that making one costs four assignments."""

    columns: tuple[str, ...] = ()  # the statement's output names (``Plan.columns``)
    target: exp.Table | None = None  # the table a write writes to
    target_shape: TableShape | None = None
    tables: Sequence[exp.Table] = ()  # physical tables (a write's target first), once named
    nodes: list[exp.Expr] | None = None  # at generation: the tree's nodes in walk order
    bindings: Sequence[Binding] = ()  # marker number -> binding
    sql: str = ""
    param_order: tuple[Binding, ...] = ()
    _types: Types | None = None

    def __init__(self, tree: exp.Expr, ctx: Context, backend: str, dialect: str) -> None:
        self.tree = tree  # the rewrite's own copy; a rule may replace the root
        self.ctx = ctx  # shapes, missing-column policy, tenant, splices
        self.backend = backend
        self.dialect = dialect  # of the logical SQL

    @property
    def types(self) -> Types:
        """Operand kinds for the transforms, built when the first one asks (those that
        ask run before the others), over the tree as it is then."""
        if self._types is None:
            self._types = Types(self.tree, self.ctx.shapes)
        return self._types


@dataclass(frozen=True, slots=True)
class Rule:
    """One pass: its name, its function, and what it serves (see the module doc)."""

    name: str
    function: Callable[[State], None]
    backends: frozenset[str] = BACKENDS
    statements: frozenset[str] = STATEMENTS
    option: str | None = None  # runs only when ``rewrite`` is given this option
    dialects: frozenset[str] | None = None  # logical SQL dialects; None: any
    # Runs only while the tree holds a node of one of these types (a subclass counts).
    triggers: tuple[type[exp.Expr], ...] = ()

    def serves(
        self, backend: str, statement_class: str, dialect: str, options: frozenset[str]
    ) -> bool:
        return (
            backend in self.backends
            and statement_class in self.statements
            and (self.option is None or self.option in options)
            and (self.dialects is None or dialect in self.dialects)
        )


# -- the rules ---------------------------------------------------------------------


def alias_tables(s: State) -> None:
    """Every physical table gets an alias (its own, or its name)."""
    qualify.alias_tables(s.tree)


def pivot_to_aggregates(s: State) -> None:
    """PIVOT as the GROUP BY with conditional aggregates it means, before the columns
    are qualified (``transforms.pivot``)."""
    pivot.rewrite(s.tree, s.backend)


def qualify_columns(s: State) -> None:
    """Per scope: expand stars and CUSTOM_FIELDS, resolve and qualify columns, name
    outputs (``columns``, ``expand``, ``sources``)."""
    s.columns = cols.qualify_columns(s.tree, s.ctx)


def qualify_write(s: State) -> None:
    """The write's columns, its queries' columns and its OUTPUT/RETURNING names."""
    s.target, s.columns = writes.qualify_write(s.tree, s.ctx)
    s.target_shape = s.ctx.shapes[s.target.name]


def tsql_output(s: State) -> None:
    writes.tsql_output(s.tree)


def sqlite_write_columns(s: State) -> None:
    assert s.target_shape is not None
    writes.sqlite_write_columns(s.tree, s.target_shape)


def physical_names(s: State) -> None:
    """The tenant's physical spelling of every table (a write's target first)."""
    tables = qualify.physical_tables(s.tree)
    if s.target is not None:
        tables.insert(0, s.target)
    s.tables = tables
    qualify.physical_names(tables, s.ctx.shapes)


def qualifier_markers(s: State) -> None:
    qualify.qualifier_markers(s.tables)


def tsql_delete_output(s: State) -> None:
    assert s.target is not None
    writes.tsql_delete_output(s.tree, s.target)


def sqlite_values_cte(s: State) -> None:
    writes.sqlite_values_cte(s.tree)


def sqlite_returning_cte(s: State) -> None:
    writes.sqlite_returning_cte(s.tree, s.columns)


def row_cap(s: State) -> None:
    s.tree = caps.limit(s.tree)


def tsql_row_cap(s: State) -> None:
    """TOP, FETCH, or a derived table around a set operation without ORDER BY (the
    root may change)."""
    s.tree = caps.tsql(s.tree, s.columns)


def mark_params(s: State) -> None:
    s.bindings = params.mark(s.tree)


def grouping_sets(s: State) -> None:
    """WITH ROLLUP / CUBE as ROLLUP () / CUBE (), GROUPING_ID spelled per backend;
    refused on SQLite (``transforms.aggregates``)."""
    aggregates.grouping_sets(s.tree, s.backend)


def range_offsets(s: State) -> None:
    """RANGE n PRECEDING: the postgres/sqlite dialects' own frame, on PostgreSQL and
    SQLite only; T-SQL has none (``transforms.windows``)."""
    windows.range_offsets(s.tree, s.backend, s.dialect, s.types)


def check_functions(s: State) -> None:
    """Refuse a function the backend cannot run; take the nodes generation reads."""
    s.nodes = bfs(s.tree)
    check_backend(s.tree, s.backend, s.nodes)


def try_casts(s: State) -> None:
    text.try_casts(s.tree, s.backend)


def string_functions(s: State) -> None:
    text.string_functions(s.tree, s.backend, s.types)


def number_functions(s: State) -> None:
    numbers.number_functions(s.tree, s.backend, s.types)


def convert_to_cast(s: State) -> None:
    strings.convert_to_cast(s.tree, s.backend)


def integer_avg(s: State) -> None:
    numbers.integer_avg(s.tree, s.backend, s.types)


def decimal_division(s: State) -> None:
    numbers.decimal_division(s.tree, s.types)


def string_plus(s: State) -> None:
    concat.string_plus(s.tree, s.backend, s.types)


def casts(s: State) -> None:
    strings.casts(s.tree, s.backend, s.types)


def tsql_text_casts(s: State) -> None:
    """PostgreSQL's casts to text as Unicode text that is not cut: ``NVARCHAR(MAX)``,
    not T-SQL's ``VARCHAR`` (30 characters of the code page)."""
    strings.postgres_text_casts(s.tree, s.backend)


def tsql_text_casts_from_sqlite(s: State) -> None:
    """SQLite's casts to text (whatever their length) as ``NVARCHAR(MAX)``."""
    strings.sqlite_text_casts(s.tree)


def bit_comparisons(s: State) -> None:
    booleans.bit_comparisons(s.tree, s.backend, s.types)


def date_styles(s: State) -> None:
    """CONVERT(varchar, d, style): the date styles as TO_CHAR / STRFTIME."""
    styles.convert_styles(s.tree, s.backend, s.types)


def date_intervals(s: State) -> None:
    date_parts.foreign_intervals(s.tree, s.dialect)


def date_functions(s: State) -> None:
    """Date parts, names, truncation, month ends and INTERVAL arithmetic, in the
    meaning of the logical dialect they were written in (any dialect, any backend).
    It reads every DATE(...)/DATETIME(...) call as the user's (SQLite's date(d, ...)):
    the rules before it must not write such calls (``dateadd`` and ``now``, which do,
    run after it)."""
    date_parts.date_functions(s.tree, s.backend, s.dialect, s.types)


def dateadd(s: State) -> None:
    dates.dateadd(s.tree, s.backend, s.types)


def datediff(s: State) -> None:
    dates.datediff(s.tree, s.backend)


def now(s: State) -> None:
    dates.now(s.tree, s.backend)


def len_ignores_trailing_spaces(s: State) -> None:
    strings.len_ignores_trailing_spaces(s.tree, s.backend)


def like_patterns(s: State) -> None:
    strings.like_patterns(s.tree, s.backend)


def left_right(s: State) -> None:
    strings.left_right(s.tree, s.backend)


def national_literals(s: State) -> None:
    strings.national_literals(s.tree)


def tsql_fetch_count(s: State) -> None:
    """FETCH's implied count made explicit, on the nodes ``check_functions`` took."""
    gen.tsql_fetch_count(bfs(s.tree) if s.nodes is None else s.nodes)


def lift_literals(s: State) -> None:
    """Literals a filter compares with a table's column, as parameters
    (``rewriter.lift``); after the transforms, which act on literals."""
    s.bindings = [*s.bindings, *lifting.lift(s.tree, s.types, len(s.bindings))]


def generate(s: State) -> None:
    s.sql = gen.to_sql(s.tree, s.backend)


def unmark_params(s: State) -> None:
    """Markers -> ``?`` in text order, which gives ``param_order``."""
    s.sql, s.param_order = params.unmark(s.sql, s.bindings)


def splice(s: State) -> None:
    """Rendered column lists where their placeholders were generated (``expand``)."""
    s.sql = expand.splice(s.sql, s.ctx, s.backend)


def _transform(
    name: str,
    function: Callable[[State], None],
    backends: frozenset[str],
    dialects: frozenset[str] | None = None,
) -> Rule:
    return Rule(name, function, backends, dialects=dialects, triggers=TRIGGERS[name])


RULES: tuple[Rule, ...] = (
    Rule("alias_tables", alias_tables),
    _transform("pivot_to_aggregates", pivot_to_aggregates, BACKENDS),
    Rule("qualify_columns", qualify_columns, statements=READS),
    Rule("qualify_write", qualify_write, statements=WRITES),
    Rule("tsql_output", tsql_output, SQLSERVER, WRITES),
    Rule("sqlite_write_columns", sqlite_write_columns, SQLITE, WRITES),
    Rule("physical_names", physical_names),
    Rule("qualifier_markers", qualifier_markers, qualify.QUALIFIED_BACKENDS),
    Rule("tsql_delete_output", tsql_delete_output, SQLSERVER, WRITES),
    Rule("sqlite_values_cte", sqlite_values_cte, SQLITE, WRITES),
    Rule("sqlite_returning_cte", sqlite_returning_cte, SQLITE, WRITES),
    Rule("row_cap", row_cap, NOT_SQLSERVER, READS, option="row_cap"),
    Rule("tsql_row_cap", tsql_row_cap, SQLSERVER, READS, option="row_cap"),
    Rule("mark_params", mark_params),
    Rule("check_functions", check_functions),
    _transform("grouping_sets", grouping_sets, BACKENDS),
    _transform("range_offsets", range_offsets, BACKENDS),
    _transform("try_casts", try_casts, NOT_SQLSERVER),  # before TRY_CONVERT becomes CAST
    _transform("date_intervals", date_intervals, BACKENDS, frozenset({"tsql", "sqlite"})),
    _transform("date_styles", date_styles, NOT_SQLSERVER, TSQL),  # before CONVERT -> CAST
    _transform("convert_to_cast", convert_to_cast, NOT_SQLSERVER),
    _transform("integer_avg", integer_avg, NOT_SQLSERVER, TSQL),
    _transform("decimal_division", decimal_division, SQLITE, TSQL),
    _transform("string_plus", string_plus, NOT_SQLSERVER, TSQL),
    _transform("casts", casts, NOT_SQLSERVER, TSQL),
    # Before date_functions, whose own casts are T-SQL already.
    _transform("tsql_text_casts", tsql_text_casts, SQLSERVER, POSTGRES),
    _transform("tsql_text_casts_from_sqlite", tsql_text_casts_from_sqlite, SQLSERVER, SQLITE_SQL),
    _transform("bit_comparisons", bit_comparisons, POSTGRESQL, TSQL),
    _transform("date_functions", date_functions, BACKENDS),  # before DATEADD (EOMONTH)
    _transform("dateadd", dateadd, NOT_SQLSERVER, TSQL),
    _transform("datediff", datediff, NOT_SQLSERVER, TSQL),
    _transform("now", now, NOT_SQLSERVER, TSQL),
    _transform("len_ignores_trailing_spaces", len_ignores_trailing_spaces, NOT_SQLSERVER, TSQL),
    _transform("like_patterns", like_patterns, NOT_SQLSERVER, TSQL),
    _transform("string_functions", string_functions, NOT_SQLSERVER, TSQL),
    _transform("number_functions", number_functions, NOT_SQLSERVER, TSQL),
    _transform("left_right", left_right, SQLITE),
    _transform("national_literals", national_literals, SQLITE),
    Rule("tsql_fetch_count", tsql_fetch_count, SQLSERVER),
    Rule("lift_literals", lift_literals, POSTGRESQL, option="lift_literals"),
    Rule("generate", generate),
    Rule("unmark_params", unmark_params),
    Rule("splice", splice),
)


# -- running them ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The rules that serve one combination, in order, and the steps that run them."""

    rules: tuple[Rule, ...]
    steps: tuple[Callable[[State], None], ...]

    def run(self, state: State) -> None:
        for step in self.steps:
            step(state)


class _Triggered:
    """Consecutive rules with ``triggers``, as one step. A rule runs only when the tree
    holds one of its node types: read from ``state.nodes`` (taken by
    ``check_functions``) first, and from the tree again after each rule that ran, as
    it may have added or removed nodes. Most statements call for none of them."""

    __slots__ = ("rules",)

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple((rule.name, rule.function) for rule in rules)

    def __call__(self, state: State) -> None:
        nodes = state.nodes
        due = _due(bfs(state.tree) if nodes is None else nodes)
        if not due:
            return
        for name, function in self.rules:
            if name in due:
                function(state)
                due = _due(bfs(state.tree))


def compile_rules(rules: Sequence[Rule]) -> Pipeline:
    steps: list[Callable[[State], None]] = []
    index = 0
    while index < len(rules):
        end = index
        while end < len(rules) and rules[end].triggers:
            end += 1
        if end > index:
            steps.append(_Triggered(rules[index:end]))
            index = end
        else:
            steps.append(rules[index].function)
            index += 1
    return Pipeline(rules=tuple(rules), steps=tuple(steps))


_Key = tuple[str, str, str, frozenset[str]]
# (backend, statement class, dialect, options) -> its pipeline, filled by ``select``.
PIPELINES: dict[_Key, Pipeline] = {}


def select(
    backend: str, statement_class: str, dialect: str, options: frozenset[str] = frozenset()
) -> Pipeline:
    """The rules, in order, that serve this combination (picked once, then kept):
    a plan-cache miss pays a loop over a tuple of functions."""
    key = (backend, statement_class, dialect, options)
    pipeline = PIPELINES.get(key)
    if pipeline is None:
        pipeline = compile_rules(
            [r for r in RULES if r.serves(backend, statement_class, dialect, options)]
        )
        PIPELINES[key] = pipeline  # a race only builds the same pipeline twice
    return pipeline


# The triggered rules a set of node types calls for. Statements of one shape share a
# set; the cache is emptied when full rather than grown without bound.
_DUE: dict[frozenset[type[exp.Expr]], frozenset[str]] = {}
_DUE_SIZE = 4096


def _due(nodes: list[exp.Expr]) -> frozenset[str]:
    """The triggered rules that the node types in ``nodes`` call for."""
    kinds = frozenset(map(type, nodes))
    due = _DUE.get(kinds)
    if due is None:
        due = frozenset(
            rule.name
            for rule in RULES
            if rule.triggers and any(issubclass(kind, rule.triggers) for kind in kinds)
        )
        if len(_DUE) >= _DUE_SIZE:
            _DUE.clear()
        _DUE[kinds] = due
    return due
