"""Catalog queries of psql, SQLAlchemy and Django, replayed against a tenant's metadata.

The fixtures (tests/fixtures/pgwire_catalog, made by capture.py there) hold what each
client sent to a real PostgreSQL 15 holding the default schema, and what it answered.
Here the same statements are answered from the metadata of a real SQLite tenant with
the same schema, and compared with the server's answers on the columns the clients
read. Oids differ by construction: the server's are mapped to the catalog's by name.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.demo.seed import BASE_MODEL, custom_columns, seed_tenant
from proxy.frontends.pgwire.catalog import Answer, CatalogQueryUnsupported, answer, describe
from proxy.frontends.pgwire.types import encode_text
from tenancy import catalog as tenant_catalog
from tenancy.metadata import TableMetadata
from tests.unit.test_metadata import location_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pgwire_catalog"

Tables = dict[str, TableMetadata]
Keys = dict[str, tuple[str, ...]]


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tables, Keys]:
    path = tmp_path_factory.mktemp("catalog") / "tenant.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        seed_tenant(conn, "sqlite", contacts=5, custom_columns=custom_columns(2), seed=1)
    location = location_for(path)
    tables: Tables = {}
    keys: Keys = {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name in tenant_catalog.list_tables(conn, location):
            found = tenant_catalog.read_table(conn, location, name)
            assert found is not None
            physical, columns = found
            tables[physical] = TableMetadata.build(physical, columns, BASE_MODEL.get(physical))
            keys[physical] = tenant_catalog.read_primary_key(conn, location, physical)
    return tables, keys


def statements(name: str) -> list[dict[str, Any]]:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    return list(doc["statements"])


def _param(value: str | None) -> object:
    # Binary parameters were captured as hex: psycopg sends ints as int2/int4/int8 and
    # booleans as one byte.
    if value is None or not value.startswith("\\x"):
        return value
    raw = bytes.fromhex(value[2:])
    return int.from_bytes(raw, "big", signed=True) if len(raw) > 1 else bool(raw[0])


def server_oids() -> dict[str, int]:
    """The real server's oid of each table, from SQLAlchemy's reflection."""
    for s in statements("sqlalchemy_reflect"):
        if s["columns"] == ["oid", "relname"]:
            return {relname: int(oid) for oid, relname in s["rows"]}
    raise AssertionError("no oid statement captured")


def replay(statement: dict[str, Any], tenant: tuple[Tables, Keys]) -> Answer | None:
    tables, keys = tenant
    ours = {r[1]: r[0] for r in _ask("SELECT oid, relname FROM pg_class", tenant).rows}
    to_ours = {oid: int(str(ours[name])) for name, oid in server_oids().items()}
    sql = re.sub(r"'(\d+)'", lambda m: f"'{to_ours.get(int(m[1]), int(m[1]))}'", statement["sql"])
    params = [_param(p) for p in statement["params"]]
    params = [to_ours.get(p, p) if type(p) is int else p for p in params]
    return answer(sql, tables, params, primary_keys=keys)


def _ask(sql: str, tenant: tuple[Tables, Keys]) -> Answer:
    found = answer(sql, tenant[0], primary_keys=tenant[1])
    assert found is not None
    return found


def text_rows(found: Answer, columns: list[str]) -> list[tuple[str | None, ...]]:
    at = [found.columns.index(c) for c in columns]
    out = []
    for row in found.rows:
        cells = [encode_text(row[i]) for i in at]
        out.append(tuple(None if c is None else c.decode() for c in cells))
    return out


def expected_rows(statement: dict[str, Any], columns: list[str]) -> list[tuple[str | None, ...]]:
    at = [statement["columns"].index(c) for c in columns]
    return [tuple(row[i] for i in at) for row in statement["rows"]]


Check = tuple[str, int | str, list[str], Callable[[tuple[str | None, ...]], bool]]


def pick(fixture: str, which: int | str) -> dict[str, Any]:
    """A fixture's statement by position, or the first whose columns include ``which``."""
    found = statements(fixture)
    if isinstance(which, int):
        return found[which]
    return next(s for s in found if which in (s["columns"] or []))


_ALL: Callable[[tuple[str | None, ...]], bool] = lambda _row: True  # noqa: E731
USER_COLUMNS = {
    c.name for cols in __import__("proxy.demo.seed").demo.seed.TABLES.values() for c in cols
}

CHECKS: list[Check] = [
    # psql \d: the tables and their identity columns' sequences.
    ("psql_d", 0, ["Schema", "Name", "Type", "Owner"], _ALL),
    ("psql_dt", 0, ["Schema", "Name", "Type", "Owner"], _ALL),
    ("psql_d_contacts_quoted", 0, ["nspname", "relname"], _ALL),
    ("psql_d_contacts_quoted", 1, ["relkind", "relhasindex", "relpersistence", "amname"], _ALL),
    (
        "psql_d_contacts_quoted",
        2,
        ["attname", "format_type", "attnotnull", "attidentity", "attgenerated"],
        _ALL,
    ),
    (
        "psql_d_contacts_quoted",
        3,
        ["relname", "indisprimary", "indisunique", "pg_get_indexdef", "pg_get_constraintdef"],
        _ALL,
    ),
    # Policies, statistics, publications, triggers, partitions: none.
    *(("psql_d_contacts_quoted", i, [], _ALL) for i in range(6, 12)),
    ("django_table_names", 0, ["relname", "case", "obj_description"], _ALL),
    ("sqlalchemy_indexes", 2, ["oid", "amname"], _ALL),
    ("sqlalchemy_table_names", "relname", ["relname"], _ALL),
    ("sqlalchemy_has_table", "relname", ["relname"], _ALL),
    ("sqlalchemy_columns", "identity_options", ["name", "format_type", "not_null"], _ALL),
    ("sqlalchemy_pk", "cols", ["cols", "conname", "indnkeyatts"], _ALL),
    ("sqlalchemy_reflect", "cols", ["cols", "conname"], _ALL),
    ("sqlalchemy_reflect", "relhasoids", ["relname", "access_method_name"], _ALL),
    ("django_sequences", 0, ["sequence_name", "colname"], _ALL),
    # Django's get_constraints: the primary key (foreign keys are not in the metadata).
    ("django_constraints", 0, ["conname", "array", "contype"], lambda r: r[2] != "f"),
    (
        "django_constraints",
        1,
        ["indexname", "array_agg", "indisunique", "indisprimary", "amname"],
        _ALL,
    ),
]


@pytest.mark.parametrize(("fixture", "index", "columns", "keep"), CHECKS)
def test_answers_match_the_real_servers(
    tenant: tuple[Tables, Keys],
    fixture: str,
    index: int | str,
    columns: list[str],
    keep: Callable[[tuple[str | None, ...]], bool],
) -> None:
    statement = pick(fixture, index)
    found = replay(statement, tenant)
    assert found is not None
    assert list(found.columns) == statement["columns"]
    want = [r for r in expected_rows(statement, columns) if keep(r)]
    assert text_rows(found, columns) == want


@pytest.mark.parametrize("fixture", ["django_table_description", "django_inspectdb"])
def test_django_sees_each_columns_nullability_and_its_auto_key(
    tenant: tuple[Tables, Keys], fixture: str
) -> None:
    statement = next(s for s in statements(fixture) if "is_autofield" in (s["columns"] or []))
    found = replay(statement, tenant)
    assert found is not None
    columns = ["column_name", "is_nullable", "is_autofield"]
    # The server also lists system columns (ctid, xmin...); Django drops them.
    want = {r for r in expected_rows(statement, columns) if r[0] in _contacts_columns(tenant)}
    assert set(text_rows(found, columns)) == want


def test_sqlalchemy_reads_identity_options_as_json_and_keys_as_arrays(
    tenant: tuple[Tables, Keys],
) -> None:
    statement = pick("sqlalchemy_columns", "identity_options")
    found = replay(statement, tenant)
    assert found is not None
    at = found.columns.index("identity_options")
    assert found.types[at] == "json"
    assert found.types[found.columns.index("not_null")] == "boolean"
    ours = {row[0]: row[at] for row in found.rows}
    theirs = {row[0]: row[at] for row in statement["rows"]}
    assert {k: v and json.loads(str(v)) for k, v in ours.items()} == {
        k: v and json.loads(v) for k, v in theirs.items()
    }
    keys = replay(pick("sqlalchemy_pk", "cols"), tenant)
    assert keys is not None and keys.types[keys.columns.index("cols")] == "string[]"


def test_psql_describes_a_table_with_every_statement_answered(
    tenant: tuple[Tables, Keys],
) -> None:
    # psql gives up on `\d` at the first statement that fails.
    for statement in statements("psql_d_contacts_quoted"):
        assert replay(statement, tenant) is not None


def _contacts_columns(tenant: tuple[Tables, Keys]) -> set[str]:
    return set(tenant[0]["Contacts"].column_names)


def test_psql_finds_a_table_by_its_unquoted_name(tenant: tuple[Tables, Keys]) -> None:
    # psql folds `\d Contacts` to ^(contacts)$; a real server finds nothing, tenantgate's
    # case-insensitive names find the table.
    (statement,) = statements("psql_d_contacts")
    found = replay(statement, tenant)
    assert found is not None and statement["rows"] == []
    assert [r[1:] for r in found.rows] == [("public", "Contacts")]


def _every_statement() -> Iterator[tuple[str, int]]:
    for path in sorted(FIXTURES.glob("*.json")):
        for index, _ in enumerate(statements(path.stem)):
            yield path.stem, index


@pytest.mark.parametrize(("fixture", "index"), list(_every_statement()))
def test_every_captured_catalog_statement_is_answered(
    tenant: tuple[Tables, Keys], fixture: str, index: int
) -> None:
    statement = statements(fixture)[index]
    found = replay(statement, tenant)
    if found is None:
        # Only statements that name no catalog relation go on to the session/pipeline.
        assert not re.search(r"\bpg_[a-z_]+\b", statement["sql"].replace("pg_catalog.", ""))
        return
    assert len(found.columns) == len(found.types) == len(statement["columns"])


def test_another_tenants_tables_never_appear(tenant: tuple[Tables, Keys]) -> None:
    tables = tenant[0]
    only = {"Accounts": tables["Accounts"]}
    found = answer("SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'", only)
    assert found is not None and found.rows == [("Accounts",)]


def test_a_statement_on_tenant_tables_is_not_a_catalog_query(
    tenant: tuple[Tables, Keys],
) -> None:
    assert answer('SELECT * FROM "Contacts" LIMIT 1', tenant[0]) is None
    assert answer('SELECT c.relname FROM pg_class c JOIN "Contacts" x ON true', tenant[0]) is None
    assert answer("SELECT 1", tenant[0]) is None


def test_a_runaway_statement_is_stopped(tenant: tuple[Tables, Keys]) -> None:
    endless = (
        "WITH RECURSIVE r(n) AS (SELECT 1 FROM pg_catalog.pg_class UNION ALL "
        "SELECT n + 1 FROM r) SELECT count(*) FROM r"
    )
    with pytest.raises(CatalogQueryUnsupported):
        answer(endless, tenant[0], primary_keys=tenant[1])
    # The catalog still answers afterwards.
    assert _ask("SELECT count(*) FROM pg_catalog.pg_class", tenant).rows


def test_parameters_are_bound_not_spliced(tenant: tuple[Tables, Keys]) -> None:
    found = answer(
        "SELECT relname FROM pg_catalog.pg_class WHERE relname = $1",
        tenant[0],
        ["Contacts' OR '1'='1"],
    )
    assert found is not None and found.rows == []


def test_a_composite_key_keeps_its_column_order(tenant: tuple[Tables, Keys]) -> None:
    # Key order differs from column order: array_agg(... ORDER BY ord) and
    # array(SELECT ... ORDER BY arridx) must follow the key.
    tables = tenant[0]
    keys = {**tenant[1], "Contacts": ("LastName", "FirstName")}
    ours = {r[1]: r[0] for r in _ask("SELECT oid, relname FROM pg_class", (tables, keys)).rows}
    sqlalchemy = pick("sqlalchemy_pk", "cols")
    found = answer(
        sqlalchemy["sql"],
        tables,
        [1, "pg_catalog.pg_constraint", "p", ours["Contacts"]],
        primary_keys=keys,
    )
    assert found is not None
    assert [r[found.columns.index("cols")] for r in found.rows] == ["{LastName,FirstName}"]
    django = answer(pick("django_constraints", 0)["sql"], tables, primary_keys=keys)
    assert django is not None
    assert [r[1] for r in django.rows] == ["{LastName,FirstName}"]


def test_describe_types_a_catalog_statements_parameters_and_columns() -> None:
    """What asyncpg needs before it binds: ``attnum > $2`` takes an integer,
    ``$3::oid`` too, ``$4::regclass`` a name, the rest text; an array column is
    text[] (its binary form: ``types._text_array_binary``)."""
    found = describe(
        "SELECT a.attname, array_agg(a.attname) AS names FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = $1 "
        "AND a.attnum > $2 AND a.attrelid = $3::oid AND a.attrelid <> $4::regclass "
        "GROUP BY a.attname"
    )
    assert found is not None
    assert found.params == ("string", "integer", "integer", "string")
    assert found.columns == ("attname", "names")
    assert found.types == ("string", "string[]")
    assert describe("SELECT FirstName FROM Contacts") is None
