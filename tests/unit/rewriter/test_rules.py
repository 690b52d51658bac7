"""``rewriter.rules``: the pipeline as data. ``RULES`` names each pass once, in order,
with the backends, statement classes, option and dialects it serves; ``rewrite`` runs
exactly the rules that serve the request, and a transform only when the tree holds a
node type it acts on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlglot import exp

from rewriter import parse_statement, rewrite, rules, transforms
from tests.unit.rewriter.shapes import SCHEMA

ALL = ("postgresql", "sqlite", "sqlserver")
PG_SQLITE = ("postgresql", "sqlite")
RW = ("read", "write")

# name -> (backends, statement classes, option, logical SQL dialects), in pipeline order.
GOLDEN: list[tuple[str, tuple[str, ...], tuple[str, ...], str | None, tuple[str, ...] | None]] = [
    ("alias_tables", ALL, RW, None, None),
    ("pivot_to_aggregates", ALL, RW, None, None),
    ("qualify_columns", ALL, ("read",), None, None),
    ("qualify_write", ALL, ("write",), None, None),
    ("tsql_output", ("sqlserver",), ("write",), None, None),
    ("sqlite_write_columns", ("sqlite",), ("write",), None, None),
    ("physical_names", ALL, RW, None, None),
    ("qualifier_markers", ("postgresql", "sqlserver"), RW, None, None),
    ("tsql_delete_output", ("sqlserver",), ("write",), None, None),
    ("sqlite_values_cte", ("sqlite",), ("write",), None, None),
    ("sqlite_returning_cte", ("sqlite",), ("write",), None, None),
    ("row_cap", PG_SQLITE, ("read",), "row_cap", None),
    ("tsql_row_cap", ("sqlserver",), ("read",), "row_cap", None),
    ("mark_params", ALL, RW, None, None),
    ("check_functions", ALL, RW, None, None),
    ("grouping_sets", ALL, RW, None, None),
    ("range_offsets", ALL, RW, None, None),
    ("try_casts", PG_SQLITE, RW, None, None),
    ("date_intervals", ALL, RW, None, ("sqlite", "tsql")),
    ("date_styles", PG_SQLITE, RW, None, ("tsql",)),
    ("convert_to_cast", PG_SQLITE, RW, None, None),
    ("integer_avg", PG_SQLITE, RW, None, ("tsql",)),
    ("decimal_division", ("sqlite",), RW, None, ("tsql",)),
    ("string_plus", PG_SQLITE, RW, None, ("tsql",)),
    ("casts", PG_SQLITE, RW, None, ("tsql",)),
    ("tsql_text_casts", ("sqlserver",), RW, None, ("postgres",)),
    ("tsql_text_casts_from_sqlite", ("sqlserver",), RW, None, ("sqlite",)),
    ("bit_comparisons", ("postgresql",), RW, None, ("tsql",)),
    ("date_functions", ALL, RW, None, None),
    ("dateadd", PG_SQLITE, RW, None, ("tsql",)),
    ("datediff", PG_SQLITE, RW, None, ("tsql",)),
    ("now", PG_SQLITE, RW, None, ("tsql",)),
    ("len_ignores_trailing_spaces", PG_SQLITE, RW, None, ("tsql",)),
    ("like_patterns", PG_SQLITE, RW, None, ("tsql",)),
    ("string_functions", PG_SQLITE, RW, None, ("tsql",)),
    ("number_functions", PG_SQLITE, RW, None, ("tsql",)),
    ("left_right", ("sqlite",), RW, None, None),
    ("national_literals", ("sqlite",), RW, None, None),
    ("tsql_fetch_count", ("sqlserver",), RW, None, None),
    ("lift_literals", ("postgresql",), RW, "lift_literals", None),
    ("generate", ALL, RW, None, None),
    ("unmark_params", ALL, RW, None, None),
    ("splice", ALL, RW, None, None),
]

COMBINATIONS = [
    (backend, statement_class, dialect, options)
    for backend in ALL
    for statement_class in RW
    for dialect in ("tsql", "postgres", "sqlite")
    for options in (
        frozenset(),
        frozenset({"row_cap"}),
        frozenset({"lift_literals"}),
        frozenset({"row_cap", "lift_literals"}),
    )
]


def _described(rule: rules.Rule) -> tuple[object, ...]:
    dialects = None if rule.dialects is None else tuple(sorted(rule.dialects))
    return (
        rule.name,
        tuple(sorted(rule.backends)),
        tuple(sorted(rule.statements)),
        rule.option,
        dialects,
    )


def test_rules_name_each_pass_once_in_order_with_what_it_serves() -> None:
    assert [_described(rule) for rule in rules.RULES] == GOLDEN
    assert len({rule.name for rule in rules.RULES}) == len(rules.RULES)


def test_every_rule_serves_known_backends_and_statement_classes() -> None:
    for rule in rules.RULES:
        assert rule.backends, rule.name
        assert rule.backends <= set(ALL), rule.name
        assert rule.statements, rule.name
        assert rule.statements <= set(RW), rule.name
        assert rule.function.__name__ == rule.name


def test_backend_specific_rules_are_named_after_their_backend() -> None:
    for rule in rules.RULES:
        if rule.backends == {"sqlserver"}:
            assert rule.name.startswith("tsql_"), rule.name
        elif rule.backends == {"sqlite"} and rule.triggers == ():
            assert rule.name.startswith("sqlite_"), rule.name


def test_transform_rules_trigger_on_the_transforms_node_types() -> None:
    triggered = {rule.name: rule.triggers for rule in rules.RULES if rule.triggers}
    assert triggered == dict(transforms.TRIGGERS)


def _combination_id(combination: tuple[str, str, str, frozenset[str]]) -> str:
    # Sorted: a frozenset's order follows the process's string hashing, and the test
    # processes of ``make test`` must collect the same ids.
    backend, statement_class, dialect, options = combination
    return "-".join((backend, statement_class, dialect, *sorted(options)))


@pytest.mark.parametrize("combination", COMBINATIONS, ids=_combination_id)
def test_select_keeps_the_serving_rules_in_order(
    combination: tuple[str, str, str, frozenset[str]],
) -> None:
    backend, statement_class, dialect, options = combination
    pipeline = rules.select(backend, statement_class, dialect, options)
    wanted = [
        name
        for name, backends, classes, option, dialects in GOLDEN
        if backend in backends
        and statement_class in classes
        and (option is None or option in options)
        and (dialects is None or dialect in dialects)
    ]
    assert [rule.name for rule in pipeline.rules] == wanted
    assert rules.select(backend, statement_class, dialect, options) is pipeline


def test_consecutive_triggered_rules_are_one_step() -> None:
    pipeline = rules.select("sqlite", "read", "tsql", frozenset())
    untriggered = [rule for rule in pipeline.rules if not rule.triggers]
    before = (None, *pipeline.rules[:-1])
    runs = [
        r
        for r, prior in zip(pipeline.rules, before, strict=True)
        if r.triggers and not (prior and prior.triggers)
    ]
    # Two runs: pivot_to_aggregates (before qualify_columns), then the transforms.
    assert len(runs) == 2 and runs[0].name == "pivot_to_aggregates"
    assert len(pipeline.steps) == len(untriggered) + len(runs)


# -- what runs -----------------------------------------------------------------------


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the rules that ran, in order (each rule wrapped to record itself)."""
    names: list[str] = []

    def recording(rule: rules.Rule) -> rules.Rule:
        def function(state: rules.State) -> None:
            names.append(rule.name)
            rule.function(state)

        return rules.Rule(
            rule.name,
            function,
            rule.backends,
            rule.statements,
            rule.option,
            rule.dialects,
            rule.triggers,
        )

    monkeypatch.setattr(rules, "RULES", tuple(recording(rule) for rule in rules.RULES))
    monkeypatch.setattr(rules, "PIPELINES", {})
    yield names


def _run(sql: str, backend: str, dialect: str = "tsql", **options: bool) -> None:
    rewrite(parse_statement(sql, dialect=dialect), tables=SCHEMA, backend=backend, **options)


def _serving(backend: str, statement_class: str, row_cap: bool = False) -> set[str]:
    return {
        name
        for name, backends, classes, option, _ in GOLDEN
        if backend in backends and statement_class in classes and (option is None or row_cap)
    }


@pytest.mark.parametrize("backend", ALL)
def test_a_read_runs_its_backends_rules_in_order(backend: str, ran: list[str]) -> None:
    _run("SELECT FirstName FROM Contacts WHERE ContactID = ?", backend, row_cap=True)
    order = [rule.name for rule in rules.RULES]
    assert ran == sorted(ran, key=order.index)
    assert set(ran) <= _serving(backend, "read", row_cap=True)
    cap = "tsql_row_cap" if backend == "sqlserver" else "row_cap"
    other = "row_cap" if backend == "sqlserver" else "tsql_row_cap"
    assert cap in ran
    assert other not in ran
    assert ("qualifier_markers" in ran) is (backend != "sqlite")
    assert "qualify_write" not in ran


@pytest.mark.parametrize("backend", ALL)
def test_the_row_cap_rules_need_the_option(backend: str, ran: list[str]) -> None:
    _run("SELECT FirstName FROM Contacts", backend)
    assert "row_cap" not in ran
    assert "tsql_row_cap" not in ran


@pytest.mark.parametrize("backend", ALL)
def test_lifting_literals_needs_the_option_and_a_postgresql_backend(
    backend: str, ran: list[str]
) -> None:
    _run("SELECT FirstName FROM Contacts WHERE ContactID = 5", backend)
    assert "lift_literals" not in ran
    ran.clear()
    _run("SELECT FirstName FROM Contacts WHERE ContactID = 5", backend, lift_literals=True)
    assert ("lift_literals" in ran) is (backend == "postgresql")


@pytest.mark.parametrize("backend", ALL)
def test_a_write_runs_its_backends_rules(backend: str, ran: list[str]) -> None:
    _run("DELETE FROM Contacts OUTPUT DELETED.ContactID WHERE ContactID = ?", backend)
    assert set(ran) <= _serving(backend, "write")
    assert "qualify_columns" not in ran
    for name in ("tsql_output", "tsql_delete_output", "tsql_fetch_count"):
        assert (name in ran) is (backend == "sqlserver"), name
    for name in ("sqlite_write_columns", "sqlite_returning_cte"):
        assert (name in ran) is (backend == "sqlite"), name


def test_rules_gated_to_other_backends_are_not_run(ran: list[str]) -> None:
    sql = (
        "SELECT LEN(FirstName), LEFT(LastName, 2), CONVERT(VARCHAR(5), ContactID), N'x' "
        "FROM Contacts ORDER BY ContactID OFFSET 0 ROWS FETCH FIRST 1 ROW ONLY"
    )
    for backend in ALL:
        ran.clear()
        _run(sql, backend)
        gated = {name for name, backends, *_ in GOLDEN if set(backends) != set(ALL) and name in ran}
        expected = {
            "sqlserver": {"qualifier_markers", "tsql_fetch_count"},
            # LEN(x) is LENGTH(CAST(x AS TEXT)) to sqlglot: the casts rule runs too.
            "postgresql": {
                "qualifier_markers",
                "try_casts",
                "date_styles",  # any CONVERT: it picks those with a style
                "convert_to_cast",
                "casts",
                "len_ignores_trailing_spaces",
            },
            # SQLite's CAST to VARCHAR(n) is SUBSTR(...), an exp.Anonymous: ``now`` runs.
            "sqlite": {
                "try_casts",
                "date_styles",
                "convert_to_cast",
                "casts",
                "now",
                "len_ignores_trailing_spaces",
                "left_right",
                "national_literals",
            },
        }
        assert gated == expected[backend], backend


def test_a_transform_runs_only_when_its_node_types_are_in_the_tree(ran: list[str]) -> None:
    _run("SELECT FirstName FROM Contacts", "sqlite")
    assert not set(ran) & set(transforms.TRIGGERS)
    ran.clear()
    _run("SELECT FirstName FROM Contacts WHERE FirstName LIKE 'a%'", "sqlite")
    assert set(ran) & set(transforms.TRIGGERS) == {"like_patterns"}


def test_t_sql_meaning_transforms_run_only_on_t_sql(ran: list[str]) -> None:
    _run("SELECT LENGTH(FirstName) FROM Contacts", "postgresql", dialect="postgres")
    assert "len_ignores_trailing_spaces" not in ran
    ran.clear()
    _run("SELECT LEN(FirstName) FROM Contacts", "postgresql")
    assert "len_ignores_trailing_spaces" in ran


def test_a_transform_that_adds_a_node_type_lets_the_later_ones_see_it(ran: list[str]) -> None:
    # CONVERT becomes a CAST (convert_to_cast), which the casts rule then handles: the
    # node types are read again after a triggered rule ran. On PostgreSQL the CAST stays
    # a CAST; on SQLite it becomes SUBSTR(...), an exp.Anonymous, which ``date_functions``
    # (SQLite's date(d, ...)) and ``now`` (GETUTCDATE) act on, so both run after it (and
    # leave SUBSTR alone).
    for backend, wanted in (
        ("postgresql", ["try_casts", "date_styles", "convert_to_cast", "casts"]),
        (
            "sqlite",
            ["try_casts", "date_styles", "convert_to_cast", "casts", "date_functions", "now"],
        ),
    ):
        ran.clear()
        _run("SELECT CONVERT(VARCHAR(5), FirstName) FROM Contacts", backend)
        assert [name for name in ran if name in transforms.TRIGGERS] == wanted


def test_due_counts_subclasses() -> None:
    union = exp.Union(this=exp.select("1"), expression=exp.select("2"))
    nodes = list(union.walk())
    assert rules._due(nodes) == frozenset()
    length = exp.Length(this=exp.column("x"))
    assert rules._due(list(length.walk())) == {"len_ignores_trailing_spaces"}
    # exp.Anonymous triggers ``now`` (GETUTCDATE) and ``date_functions`` (SQLite's
    # date(d, ...)), whatever its name.
    anonymous = exp.Anonymous(this="whatever", expressions=[])
    assert rules._due([anonymous]) == {"now", "date_functions"}
