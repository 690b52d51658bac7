"""SQL Server tenants through the service, over real TDS, once per ODBC driver.

Several tenant databases on one T-SQL server (Babelfish for PostgreSQL here, or the
server of ``TENANTGATE_TEST_TDS_DSN``), reached through Microsoft ODBC Driver 18 and
through FreeTDS (``tds_driver``). Every result is compared with a direct read of the
tenant's database through pyodbc, not with what tenantgate itself reports.

Where Babelfish and SQL Server differ, the test checks ``TdsTenants.babelfish`` and
asserts what each engine does; ``docs/drivers.md`` lists those differences.

Read-only tests share three databases seeded once per module (0, 20 and 800 custom
columns, each tenant with its own seed so that their rows differ) and, per driver, one
service over them; tests that write or alter get fresh databases of their own. Tests
that leave their fresh databases as seeded (refusals, and DDL they undo) hand them on
to the next such test on the same driver, each with a new service (``AS_SEEDED``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from proxy.demo.seed import BASE_MODEL, Column, custom_columns
from proxy.errors import (
    BackendObjectMissing,
    BaseColumnProtected,
    ColumnExists,
    ConstraintViolation,
    CustomFieldNotFound,
    PreconditionFailed,
    ProxyError,
)
from proxy.pipeline.request import QueryRequest
from proxy.tables.records import Records
from rewriter.errors import ConstructNotAllowed, UnknownColumn, UnknownTable
from tenancy import ddl
from tenancy.backends import BackendKind
from tests.support.outcome import failed
from tests.support.tds import FREETDS, TdsServer
from tests.support.tds_tenants import TdsTenants, bracket, seed_databases, tds_service
from tests.support.tenants import ADMIN, WRITER

# -- fixtures ---------------------------------------------------------------------------

ZERO, TWENTY, WIDE = "zero.example", "twenty.example", "wide.example"
SHARED: dict[str, list[Column]] = {
    ZERO: [],
    TWENTY: custom_columns(20),
    WIDE: custom_columns(800, seed=3),
}
SHARED_CONTACTS = 25
ALPHA, BETA = "alpha.example", "beta.example"
FRESH_CUSTOM = custom_columns(3)


@pytest.fixture(scope="module")
def shared_databases(tds_server: TdsServer) -> Iterator[dict[str, str]]:
    """The read-only tenants, seeded once for both drivers (seeding is driver-neutral)."""
    driver = FREETDS if FREETDS in tds_server.drivers else tds_server.drivers[0]
    databases: dict[str, str] = {}
    try:
        for number, (domain, custom) in enumerate(SHARED.items(), start=1):
            databases.update(
                seed_databases(
                    tds_server, driver, {domain: custom}, contacts=SHARED_CONTACTS, seed=number
                )
            )
        yield databases
    finally:
        for database in databases.values():
            tds_server.drop_database(database)


@pytest.fixture(scope="module")
def shared_services(
    tmp_path_factory: pytest.TempPathFactory,
    tds_server: TdsServer,
    shared_databases: dict[str, str],
) -> Iterator[Callable[[str], TdsTenants]]:
    """Per driver, one service over the read-only tenants, made by the first test on that
    driver and kept for the module: no test here changes a row or a column of them, and
    building a service (its pool's logins, the catalog reads of three tenants on
    Babelfish) costs more than most of these tests."""
    made: dict[str, TdsTenants] = {}
    with contextlib.ExitStack() as services:

        def service_on(driver: str) -> TdsTenants:
            if driver not in made:
                root = tmp_path_factory.mktemp(f"shared-{driver}")
                made[driver] = services.enter_context(
                    tds_service(root, tds_server, driver, shared_databases)
                )
            return made[driver]

        yield service_on


@pytest.fixture
def shared(tds_driver: str, shared_services: Callable[[str], TdsTenants]) -> TdsTenants:
    return shared_services(tds_driver)


def seed_fresh(server: TdsServer, driver: str) -> dict[str, str]:
    """Two freshly seeded tenant databases (3 custom columns, 10 contacts, different
    seeds): ``{domain: database}``; the caller drops them."""
    databases: dict[str, str] = {}
    try:
        for number, domain in enumerate((ALPHA, BETA), start=1):
            databases.update(
                seed_databases(server, driver, {domain: FRESH_CUSTOM}, contacts=10, seed=number)
            )
    except BaseException:
        for database in databases.values():
            server.drop_database(database)
        raise
    return databases


@contextlib.contextmanager
def fresh_tenants(
    tmp_path: Path, server: TdsServer, driver: str, *, pool_max_size: int = 2
) -> Iterator[TdsTenants]:
    """Two freshly seeded tenants (3 custom columns, 10 contacts, different seeds)."""
    databases = seed_fresh(server, driver)
    try:
        with tds_service(tmp_path, server, driver, databases, pool_max_size=pool_max_size) as t:
            yield t
    finally:
        for database in databases.values():
            server.drop_database(database)


@dataclass
class Kept:
    """Fresh tenant databases (``seed_fresh``) handed from one ``AS_SEEDED`` test to the
    next, and what their tables held when they were seeded."""

    databases: dict[str, str]
    seeded: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def kept_databases(tds_server: TdsServer) -> Iterator[dict[str, Kept]]:
    """Per driver, the databases ``AS_SEEDED`` tests hand on; dropped with the module."""
    kept: dict[str, Kept] = {}
    try:
        yield kept
    finally:
        for entry in kept.values():
            for database in entry.databases.values():
                tds_server.drop_database(database)


def _contents(t: TdsTenants) -> dict[str, Any]:
    """Each fresh tenant's tables: their columns and every row, read directly."""
    return {
        f"{tenant}/{table}": t.read_with_names(tenant, f"SELECT * FROM dbo.{table} ORDER BY 1")
        for tenant in (ALPHA, BETA)
        for table in BASE_MODEL
    }


# A test that leaves its fresh tenants as they were seeded (it is refused, or undoes its
# DDL) says so with this mark: its ``fresh`` databases are handed to the next such test
# on the same driver instead of being dropped. The service is still new for each test.
AS_SEEDED = pytest.mark.leaves_fresh_tenants_as_seeded


@pytest.fixture
def fresh(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tds_server: TdsServer,
    tds_driver: str,
    kept_databases: dict[str, Kept],
) -> Iterator[TdsTenants]:
    """Two freshly seeded tenants and a new service over them. For an ``AS_SEEDED`` test
    the databases may be the last such test's on this driver: they are handed on only
    after a test that passed and left every table's columns and rows as seeded; else
    they are dropped, and the next test gets new ones."""
    if request.node.get_closest_marker(AS_SEEDED.name) is None:
        with fresh_tenants(tmp_path, tds_server, tds_driver) as t:
            yield t
        return
    if tds_driver not in kept_databases:
        kept_databases[tds_driver] = Kept(seed_fresh(tds_server, tds_driver))
    kept = kept_databases[tds_driver]
    reusable = False
    try:
        with tds_service(tmp_path, tds_server, tds_driver, kept.databases) as t:
            kept.seeded = kept.seeded or _contents(t)
            yield t
            reusable = not failed(request) and _contents(t) == kept.seeded
    finally:
        if not reusable:
            for database in kept_databases.pop(tds_driver).databases.values():
                tds_server.drop_database(database)


@pytest.fixture
def single(tmp_path: Path, tds_server: TdsServer, tds_driver: str) -> Iterator[TdsTenants]:
    """Fresh tenants whose pool holds ONE connection: every statement of every tenant,
    DDL and catalog reads included, runs on the same TDS session."""
    with fresh_tenants(tmp_path, tds_server, tds_driver, pool_max_size=1) as t:
        yield t


def rows_of(result_rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in result_rows]


def heals(t: TdsTenants, outcome: str) -> float:
    value = t.service.metrics.registry.get_sample_value(
        "tenantgate_metadata_heals_total", {"outcome": outcome}
    )
    return value or 0.0


def pool_stats(t: TdsTenants, tenant: str) -> dict[str, int]:
    return t.service.drivers.odbc.pools.get_stats()[t.location(tenant).server_key]


def session_of(t: TdsTenants, tenant: str) -> tuple[int, str]:
    """(``@@SPID``, ``DB_NAME()``) of the pooled connection the next statement would get."""
    with t.pool(tenant).connection() as conn:
        row = conn.raw.execute("SELECT @@SPID, DB_NAME()").fetchone()
    return int(row[0]), str(row[1])


# -- 1. one pool, many tenant databases ---------------------------------------------------


def test_tenant_databases_share_one_pool_and_each_reads_its_own(shared: TdsTenants) -> None:
    locations = {tenant: shared.location(tenant) for tenant in SHARED}
    assert {loc.kind for loc in locations.values()} == {BackendKind.SQLSERVER}
    assert {loc.catalog for loc in locations.values()} == set(shared.databases.values())
    assert len({loc.pool_key for loc in locations.values()}) == 1
    assert len({id(shared.pool(tenant)) for tenant in SHARED}) == 1

    sql = "SELECT ContactID, Email, LastName, AccountID FROM Contacts ORDER BY ContactID"
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for tenant in SHARED:
        outcome = shared.query(tenant, sql)
        assert outcome.backend == "sqlserver"
        seen[tenant] = rows_of(outcome.result.rows)
        assert seen[tenant] == shared.read(tenant, sql)
        assert len(seen[tenant]) == SHARED_CONTACTS
    # Seeded with different seeds: a tenant reading another's database would show here.
    assert seen[ZERO] != seen[TWENTY] != seen[WIDE] != seen[ZERO]

    stats = shared.service.drivers.odbc.pools.get_stats()
    sqlserver = {key: value for key, value in stats.items() if key.startswith("sqlserver://")}
    assert list(sqlserver) == [locations[ZERO].server_key]
    only = sqlserver[locations[ZERO].server_key]
    # Three tenants, catalog reads and queries: all on the one pool of max_size 2.
    assert 1 <= only["connections_num"] <= only["pool_max"] == 2
    assert only["requests_num"] >= 3
    assert only["connections_lost"] == 0


def test_explain_names_the_tenant_database_with_three_part_names(shared: TdsTenants) -> None:
    for tenant, database in shared.databases.items():
        explained = shared.service.explain(
            shared.principal(),
            QueryRequest(tenant=tenant, sql="SELECT TOP 1 ContactID FROM Contacts"),
        )
        assert f"FROM [{database}].[dbo].[Contacts]" in explained["sql"]
        assert explained["database"] == database and explained["backend"] == "sqlserver"


def test_writes_land_in_their_own_tenant_database(fresh: TdsTenants) -> None:
    email = "only-in-alpha@example.test"
    inserted = fresh.query(
        ALPHA,
        "INSERT INTO Contacts (FirstName, LastName, Email, IsActive, CreatedAt) "
        "OUTPUT INSERTED.ContactID VALUES (?, ?, ?, 1, '2024-01-02T03:04:05')",
        ["Only", "Alpha", email],
        token=WRITER,
    )
    new_id = inserted.result.rows[0][0]
    count = "SELECT COUNT(*) FROM Contacts WHERE Email = ?"
    assert fresh.read(ALPHA, count, [email]) == [(1,)]
    assert fresh.read(BETA, count, [email]) == [(0,)]
    assert fresh.query(BETA, count, [email]).result.rows == [[0]]
    assert fresh.query(
        ALPHA, "SELECT Email FROM Contacts WHERE ContactID = ?", [new_id]
    ).result.rows == [[email]]


# -- 2. the catalog read ---------------------------------------------------------------------


def test_schema_lists_tables_columns_and_types_as_the_catalog_has_them(shared: TdsTenants) -> None:
    schema = shared.service.schema(shared.principal(), TWENTY)
    assert schema["backend"] == "sqlserver"
    tables = {t["name"]: t for t in schema["tables"]}
    assert sorted(tables) == ["Accounts", "Contacts", "Opportunities"]
    for name, table in tables.items():
        direct = shared.read(
            TWENTY,
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
            "NUMERIC_SCALE, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = 'dbo' AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            [name],
        )
        assert [c["name"] for c in table["columns"]] == [r[0] for r in direct]
        assert [c["nullable"] for c in table["columns"]] == [r[5] == "YES" for r in direct]
        for column, (_, data_type, length, precision, scale, _) in zip(
            table["columns"], direct, strict=True
        ):
            assert column["type"].startswith(str(data_type))
            if data_type in ("nvarchar", "varchar"):
                assert column["type"] == f"{data_type}({length})"
            if data_type in ("decimal", "numeric"):
                assert column["type"] == f"{data_type}({precision},{scale})"
        assert table["base_columns"] == BASE_MODEL[name]
    contacts = tables["Contacts"]
    assert contacts["custom_columns"] == [c.name for c in SHARED[TWENTY]]
    types = {c["name"]: c["type"] for c in contacts["columns"]}
    assert types["ContactID"] == "int"
    assert types["FirstName"] == "nvarchar(50)"
    assert types["Revenue"] == "decimal(18,2)"
    assert types["BirthDate"] == "date"
    assert types["IsActive"] == "bit"
    assert types["CreatedAt"] == "datetime2"
    custom = {c["name"] for c in contacts["columns"] if c["custom"]}
    assert custom == {c.name for c in SHARED[TWENTY]}


# -- 3. expansion on 0 / 20 / 800 custom columns ---------------------------------------------


@pytest.mark.parametrize("tenant", [ZERO, TWENTY, WIDE])
def test_star_and_custom_fields_equal_direct_reads(shared: TdsTenants, tenant: str) -> None:
    names, direct = shared.read_with_names(tenant, "SELECT * FROM dbo.Contacts ORDER BY ContactID")
    expected_custom = [c.name for c in SHARED[tenant]]
    assert names == BASE_MODEL["Contacts"] + expected_custom

    both = shared.query(tenant, "SELECT *, CUSTOM_FIELDS() FROM Contacts ORDER BY ContactID")
    assert [c.name for c in both.result.columns] == names
    assert rows_of(both.result.rows) == direct
    assert both.result.row_count == SHARED_CONTACTS and not both.result.truncated

    star = shared.query(tenant, "SELECT * FROM Contacts ORDER BY ContactID")
    assert [c.name for c in star.result.columns] == BASE_MODEL["Contacts"]
    base_width = len(BASE_MODEL["Contacts"])
    assert rows_of(star.result.rows) == [r[:base_width] for r in direct]

    if expected_custom:
        only = shared.query(
            tenant, "SELECT ContactID, CUSTOM_FIELDS() FROM Contacts ORDER BY ContactID"
        )
        assert [c.name for c in only.result.columns] == ["ContactID", *expected_custom]
        assert rows_of(only.result.rows) == [(r[0], *r[base_width:]) for r in direct]


def test_result_column_types_per_driver(shared: TdsTenants) -> None:
    outcome = shared.query(TWENTY, "SELECT * FROM Contacts WHERE ContactID = 1")
    types = {c.name: c.type for c in outcome.result.columns}
    assert types["ContactID"] == "integer"
    assert types["FirstName"] == "string"
    assert types["Revenue"] == "decimal"
    assert types["IsActive"] == "boolean"
    assert types["CreatedAt"] == "datetime"
    row = dict(zip(types, outcome.result.rows[0], strict=True))
    assert isinstance(row["IsActive"], bool) and isinstance(row["CreatedAt"], dt.datetime)
    assert row["Revenue"] is None or isinstance(row["Revenue"], Decimal)
    # DATE: Microsoft ODBC 18 describes it as a date; FreeTDS (TDS 7.4) too.
    assert types["BirthDate"] == "date"


# -- 4. writes ---------------------------------------------------------------------------------

INSERT = (
    "INSERT INTO Contacts (FirstName, LastName, Email, City, IsActive, CreatedAt) "
    "OUTPUT INSERTED.ContactID, INSERTED.FirstName, INSERTED.City "
    "VALUES (?, ?, ?, ?, 1, '2024-05-06T07:08:09'), (?, ?, ?, ?, 0, '2024-05-06T07:08:09')"
)
NAMES = ("Zoë", "Łukasz-日本", "Ærøskøbing ☕", "Ñandú")


def test_insert_update_delete_with_output_and_row_counts(fresh: TdsTenants) -> None:
    first, last, city, other = NAMES
    inserted = fresh.query(
        ALPHA,
        INSERT,
        [first, last, "a@x.test", city, other, last, "b@x.test", city],
        token=WRITER,
    )
    assert [c.name for c in inserted.result.columns] == ["ContactID", "FirstName", "City"]
    assert inserted.statement_class == "write" and inserted.result.row_count == 2
    ids = sorted(int(str(r[0])) for r in inserted.result.rows)
    assert ids[0] > 10  # generated by the identity, past the seeded keys
    assert sorted(str(r[1]) for r in inserted.result.rows) == sorted([first, other])
    direct = fresh.read(
        ALPHA,
        "SELECT ContactID, FirstName, LastName, City FROM Contacts WHERE ContactID IN (?, ?) "
        "ORDER BY ContactID",
        ids,
    )
    assert [r[1:] for r in direct] == [(first, last, city), (other, last, city)]

    updated = fresh.query(
        ALPHA,
        "UPDATE Contacts SET Title = ? OUTPUT INSERTED.ContactID, INSERTED.Title "
        "WHERE LastName = ?",
        ["Directrice générale", last],
        token=WRITER,
    )
    assert updated.result.row_count == 2
    assert sorted(rows_of(updated.result.rows)) == [(i, "Directrice générale") for i in ids]
    assert fresh.read(
        ALPHA, "SELECT COUNT(*) FROM Contacts WHERE Title = ?", ["Directrice générale"]
    ) == [(2,)]

    plain = fresh.query(
        ALPHA, "UPDATE Contacts SET Department = ? WHERE ContactID <= ?", ["R&D", 4], token=WRITER
    )
    assert plain.result.columns == [] and plain.result.row_count == 4
    assert fresh.read(ALPHA, "SELECT COUNT(*) FROM Contacts WHERE Department = 'R&D'") == [(4,)]

    # Correlated subqueries name the target by its table name: [Contacts].[x] against a
    # three-part target.
    stages = fresh.read(ALPHA, "SELECT TOP 1 Stage FROM Opportunities ORDER BY OpportunityID")
    expected = fresh.read(
        ALPHA,
        "SELECT COUNT(*) FROM Contacts c WHERE EXISTS (SELECT 1 FROM Opportunities o "
        "WHERE o.ContactID = c.ContactID AND o.Stage = ?)",
        [stages[0][0]],
    )[0][0]
    correlated = fresh.query(
        ALPHA,
        "UPDATE Contacts SET LeadSource = ? WHERE EXISTS (SELECT 1 FROM Opportunities o "
        "WHERE o.ContactID = Contacts.ContactID AND o.Stage = ?)",
        ["pipeline", stages[0][0]],
        token=WRITER,
    )
    assert correlated.result.row_count == expected >= 1
    assert fresh.read(ALPHA, "SELECT COUNT(*) FROM Contacts WHERE LeadSource = 'pipeline'") == [
        (expected,)
    ]

    before = fresh.read(
        ALPHA, "SELECT ContactID, Email FROM Contacts WHERE ContactID IN (?, ?) ORDER BY 1", ids
    )
    deleted = fresh.query(
        ALPHA,
        "DELETE FROM Contacts OUTPUT DELETED.ContactID, DELETED.Email WHERE ContactID IN (?, ?)",
        ids,
        token=WRITER,
    )
    assert deleted.result.row_count == 2
    assert sorted(rows_of(deleted.result.rows)) == before
    assert fresh.read(ALPHA, "SELECT COUNT(*) FROM Contacts WHERE ContactID IN (?, ?)", ids) == [
        (0,)
    ]

    gone = fresh.query(ALPHA, "DELETE FROM Contacts WHERE ContactID = ?", [ids[0]], token=WRITER)
    assert gone.result.row_count == 0
    # Beta was never touched.
    assert fresh.read(BETA, "SELECT COUNT(*) FROM Contacts") == [(10,)]
    assert fresh.read(BETA, "SELECT COUNT(*) FROM Contacts WHERE Department = 'R&D'") == [(0,)]


@AS_SEEDED
def test_update_output_deleted_is_refused_before_it_reaches_the_engine(
    fresh: TdsTenants,
) -> None:
    # The rewriter refuses UPDATE ... OUTPUT DELETED on every backend (PostgreSQL before
    # 18 and SQLite cannot return old values). Babelfish could not run it either from a
    # connection on another database: 42000 'relation "contacts" does not exist'.
    with pytest.raises(ConstructNotAllowed):
        fresh.query(
            ALPHA,
            "UPDATE Contacts SET Title = ? OUTPUT DELETED.Title WHERE ContactID = ?",
            ["x", 1],
            token=WRITER,
        )


@AS_SEEDED
def test_constraint_violations_are_409(fresh: TdsTenants) -> None:
    row = "SELECT FirstName, AccountID FROM Contacts WHERE ContactID = 2"
    before = fresh.read(ALPHA, row)
    with pytest.raises(ConstraintViolation) as not_null:  # SQL Server: 515
        fresh.query(
            ALPHA, "UPDATE Contacts SET FirstName = NULL WHERE ContactID = ?", [2], token=WRITER
        )
    with pytest.raises(ConstraintViolation) as foreign_key:  # SQL Server: 547
        fresh.query(
            ALPHA,
            "UPDATE Contacts SET AccountID = ? WHERE ContactID = ?",
            [999_999, 2],
            token=WRITER,
        )
    assert not_null.value.details.get("sqlstate") == "23000"
    assert foreign_key.value.details.get("sqlstate") == "23000"
    assert fresh.read(ALPHA, row) == before
    assert pool_stats(fresh, ALPHA)["connections_lost"] == 0


def test_non_ascii_values_round_trip_as_parameters(fresh: TdsTenants) -> None:
    text = "Grüße, 日本語, emoji 🚀, ' quote, \u200b"
    outcome = fresh.query(
        BETA,
        "UPDATE Contacts SET City = ? OUTPUT INSERTED.City WHERE ContactID = ?",
        [text, 3],
        token=WRITER,
    )
    assert outcome.result.rows == [[text]]
    assert fresh.read(BETA, "SELECT City FROM Contacts WHERE ContactID = 3") == [(text,)]
    assert fresh.query(
        BETA, "SELECT ContactID FROM Contacts WHERE City = ?", [text]
    ).result.rows == [[3]]


def test_postgres_dialect_casts_to_text_keep_long_unicode_values(fresh: TdsTenants) -> None:
    # PostgreSQL's unsized VARCHAR is unbounded Unicode text, and SQLAlchemy's batched
    # inserts cast every string so ($1::VARCHAR, which pgwire passes on as ``? ::VARCHAR``).
    # As T-SQL's VARCHAR it would be VARCHAR(30) of the code page: cut, and Ω lost.
    text = "Zoë Ωmega " * 5
    assert len(text) == 50
    fresh.query(
        BETA,
        "UPDATE Contacts SET City = CAST(? AS VARCHAR) WHERE ContactID = ?",
        [text, 3],
        token=WRITER,
        dialect="postgres",
    )
    assert fresh.read(BETA, "SELECT City FROM Contacts WHERE ContactID = 3") == [(text,)]
    read = fresh.query(
        BETA, "SELECT CAST(City AS VARCHAR) AS c, ? ::TEXT AS p FROM Contacts WHERE ContactID = 3",
        [text], dialect="postgres",
    )  # fmt: skip
    assert read.result.rows == [[text, text]]
    # SQLAlchemy's insertmanyvalues for two new contacts, without its RETURNING: Babelfish
    # refuses OUTPUT on an INSERT ... SELECT with ORDER BY (SQL Server takes it).
    account = fresh.read(BETA, "SELECT AccountID FROM Contacts WHERE ContactID = 3")[0][0]
    second = "Ωmega Zoë " * 5
    fresh.query(
        BETA,
        'INSERT INTO "Contacts" ("AccountID", "FirstName", "LastName", "City", "IsActive", '
        '"CreatedAt") SELECT p0, p1::VARCHAR, p2::VARCHAR, p3::VARCHAR, p4, p5 FROM (VALUES '
        "(?, ? ::VARCHAR, ? ::VARCHAR, ? ::VARCHAR, ?, ?, 0), "
        "(?, ? ::VARCHAR, ? ::VARCHAR, ? ::VARCHAR, ?, ?, 1)) "
        "AS imp_sen(p0, p1, p2, p3, p4, p5, sen_counter) ORDER BY sen_counter",
        [account, "Zoë", "Ωmega", second, True, "2024-01-02T03:04:05",
         account, "Ωmega", "Zoë", second + "!", True, "2024-01-02T03:04:05"],
        token=WRITER,
        dialect="postgres",
    )  # fmt: skip
    rows = fresh.read(
        BETA, "SELECT FirstName, LastName, City FROM Contacts WHERE City LIKE ? ORDER BY City",
        [second + "%"],
    )  # fmt: skip
    assert rows == [("Zoë", "Ωmega", second), ("Ωmega", "Zoë", second + "!")]


# -- 5. row cap, TOP, OFFSET/FETCH -------------------------------------------------------------

ORDERED = "SELECT ContactID FROM Contacts ORDER BY ContactID"


def test_row_cap_truncates_and_top_offset_fetch_hold(shared: TdsTenants) -> None:
    everything = [r[0] for r in shared.read(TWENTY, ORDERED)]
    capped = shared.query(TWENTY, ORDERED, max_rows=5)
    assert [r[0] for r in capped.result.rows] == everything[:5]
    assert capped.result.truncated and capped.result.row_count == 5

    exact = shared.query(TWENTY, ORDERED, max_rows=SHARED_CONTACTS)
    assert not exact.result.truncated and exact.result.row_count == SHARED_CONTACTS

    top = shared.query(
        TWENTY, "SELECT TOP 3 ContactID FROM Contacts ORDER BY ContactID", max_rows=5
    )
    assert [r[0] for r in top.result.rows] == everything[:3] and not top.result.truncated

    top_over = shared.query(
        TWENTY, "SELECT TOP (?) ContactID FROM Contacts ORDER BY ContactID", [8], max_rows=5
    )
    assert [r[0] for r in top_over.result.rows] == everything[:5] and top_over.result.truncated

    page = f"{ORDERED} OFFSET 4 ROWS FETCH NEXT 6 ROWS ONLY"
    assert [r[0] for r in shared.query(TWENTY, page).result.rows] == everything[4:10]
    paged_capped = shared.query(TWENTY, page, max_rows=3)
    assert [r[0] for r in paged_capped.result.rows] == everything[4:7]
    assert paged_capped.result.truncated

    zero = shared.query(TWENTY, ORDERED, max_rows=0)
    assert zero.result.rows == [] and zero.result.truncated


# -- 6. parameters in text order ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        (
            "SELECT TOP (?) ContactID, AccountID FROM Contacts WHERE AccountID = ? "
            "ORDER BY ContactID",
            [2, 1],
        ),
        (
            "SELECT ContactID FROM Contacts WHERE AccountID = ? ORDER BY ContactID "
            "OFFSET ? ROWS FETCH NEXT ? ROWS ONLY",
            [2, 1, 2],
        ),
        (
            "SELECT ? AS tag, CASE WHEN ContactID > ? THEN ? ELSE Email END AS e "
            "FROM Contacts WHERE ContactID IN (?, ?, ?) AND LastName LIKE ? ORDER BY ContactID",
            ["täg", 2, "ðverflow", 1, 2, 3, "%"],
        ),
        (
            "SELECT AccountID, COUNT(*) AS n FROM Contacts WHERE AccountID IN "
            "(SELECT AccountID FROM Accounts WHERE AccountID <= ?) GROUP BY AccountID "
            "HAVING COUNT(*) > ? ORDER BY AccountID",
            [3, 0],
        ),
    ],
    ids=["top_where", "offset_fetch", "select_list_case_in_like", "subquery_having"],
)
def test_positional_parameters_bind_in_text_order(
    shared: TdsTenants, sql: str, params: list[Any]
) -> None:
    outcome = shared.query(TWENTY, sql, params)
    assert rows_of(outcome.result.rows) == shared.read(TWENTY, sql, params)
    assert (
        outcome.result.rows
    )  # a wrong order would bind a text where an int goes, or match nothing


def test_named_parameters_bind_in_text_order_and_repeat(shared: TdsTenants) -> None:
    sql = (
        "SELECT TOP (@n) ContactID, @label AS label FROM Contacts "
        "WHERE AccountID = @acct OR ContactID = @acct ORDER BY ContactID"
    )
    named = {"acct": 2, "label": "Ünïcode", "n": 4}
    outcome = shared.query(TWENTY, sql, named)
    direct = shared.read(
        TWENTY,
        "SELECT TOP (?) ContactID, ? AS label FROM Contacts WHERE AccountID = ? OR ContactID = ? "
        "ORDER BY ContactID",
        [4, "Ünïcode", 2, 2],
    )
    assert rows_of(outcome.result.rows) == direct and direct
    explained = shared.service.explain(
        shared.principal(),
        QueryRequest(tenant=TWENTY, sql=sql, params=named),
    )
    assert explained["params"] == [4, "Ünïcode", 2, 2]


# -- 7. missing-column policy -----------------------------------------------------------------


def test_missing_column_policy(shared: TdsTenants) -> None:
    sql = "SELECT ContactID, Custom_Region FROM Contacts ORDER BY ContactID"
    with pytest.raises(UnknownColumn) as caught:
        shared.query(ZERO, sql)
    assert caught.value.code == "unknown_column"
    nulls = shared.query(ZERO, sql, missing_columns="null")
    assert [c.name for c in nulls.result.columns] == ["ContactID", "Custom_Region"]
    ids = [r[0] for r in shared.read(ZERO, "SELECT ContactID FROM Contacts ORDER BY ContactID")]
    assert rows_of(nulls.result.rows) == [(i, None) for i in ids]
    # The tenant that has the column gets its values under either policy.
    assert "Custom_Region" in [c.name for c in SHARED[TWENTY]]
    direct = shared.read(TWENTY, sql)
    assert rows_of(shared.query(TWENTY, sql).result.rows) == direct
    assert rows_of(shared.query(TWENTY, sql, missing_columns="null").result.rows) == direct


# -- 8. staleness healing -----------------------------------------------------------------------

EXPAND = "SELECT *, CUSTOM_FIELDS() FROM Contacts ORDER BY ContactID"


def test_column_dropped_behind_tenantgates_back_heals_reads(single: TdsTenants) -> None:
    t = single
    dropped = FRESH_CUSTOM[1].name
    before = t.query(ALPHA, EXPAND)
    assert dropped in [c.name for c in before.result.columns]
    t.alter(ALPHA, f"ALTER TABLE dbo.Contacts DROP COLUMN {bracket(dropped)}")

    healed = t.query(ALPHA, EXPAND)  # the cached plan names the column; the re-run does not
    names, direct = t.read_with_names(ALPHA, "SELECT * FROM dbo.Contacts ORDER BY ContactID")
    assert [c.name for c in healed.result.columns] == names and dropped not in names
    assert rows_of(healed.result.rows) == direct
    assert heals(t, "rerun_ok") == 1

    with pytest.raises(UnknownColumn):
        t.query(ALPHA, f"SELECT {dropped} FROM Contacts")
    nulls = t.query(ALPHA, f"SELECT ContactID, {dropped} FROM Contacts", missing_columns="null")
    assert {r[1] for r in nulls.result.rows} == {None}
    # Beta still has it.
    assert dropped in [c.name for c in t.query(BETA, EXPAND).result.columns]


def test_write_on_a_column_dropped_behind_tenantgates_back_is_not_rerun(
    single: TdsTenants,
) -> None:
    t = single
    dropped = FRESH_CUSTOM[0].name
    update = f"UPDATE Contacts SET {dropped} = ? WHERE ContactID = ?"
    t.query(ALPHA, update, ["first", 1], token=WRITER)  # caches the shape and the plan
    t.alter(ALPHA, f"ALTER TABLE dbo.Contacts DROP COLUMN {bracket(dropped)}")
    with pytest.raises(BackendObjectMissing) as caught:
        t.query(ALPHA, update, ["second", 1], token=WRITER)
    assert caught.value.code == "backend_object_missing"
    assert caught.value.details.get("object_kind") == "column"
    # Babelfish names it in lower case (PostgreSQL's folding); SQL Server as declared.
    assert str(caught.value.details.get("object_name")).casefold() == dropped.casefold()
    assert heals(t, "write_not_rerun") == 1
    with pytest.raises(UnknownColumn):  # the next attempt validates against the new shape
        t.query(ALPHA, update, ["third", 1], token=WRITER)
    # The connection that met the error is still the pool's one connection.
    assert pool_stats(t, ALPHA)["connections_lost"] == 0


def test_table_dropped_behind_tenantgates_back(single: TdsTenants) -> None:
    t = single
    sql = "SELECT OpportunityID FROM Opportunities ORDER BY OpportunityID"
    assert t.query(ALPHA, sql).result.rows
    t.alter(ALPHA, "DROP TABLE dbo.Opportunities")
    # Babelfish reports a missing table as SQL Server's 208 (42S02), which tenantgate
    # maps to backend_object_missing: the read is re-prepared against the catalog.
    with pytest.raises(UnknownTable):
        t.query(ALPHA, sql)
    assert heals(t, "rerun_refused") == 1


def test_column_added_behind_tenantgates_back_is_seen(single: TdsTenants) -> None:
    t = single
    t.query(ALPHA, EXPAND)
    t.alter(ALPHA, "ALTER TABLE dbo.Contacts ADD [Added_Outside] NVARCHAR(20) NULL")
    t.alter(
        ALPHA, "UPDATE dbo.Contacts SET [Added_Outside] = N'ø-' + CAST(ContactID AS NVARCHAR(5))"
    )
    named = t.query(ALPHA, "SELECT ContactID, Added_Outside FROM Contacts ORDER BY ContactID")
    assert rows_of(named.result.rows) == t.read(
        ALPHA, "SELECT ContactID, Added_Outside FROM Contacts ORDER BY ContactID"
    )
    assert heals(t, "revalidated") == 1
    expanded = t.query(ALPHA, EXPAND)
    assert [c.name for c in expanded.result.columns][-1] == "Added_Outside"


# -- 9. records API -----------------------------------------------------------------------------


@pytest.fixture
def records(fresh: TdsTenants) -> Records:
    return fresh.service.records()


def test_records_get_patch_insert_against_direct_reads(fresh: TdsTenants, records: Records) -> None:
    writer = fresh.principal(WRITER)
    base = records.get(writer, ALPHA, "contacts", "4")
    assert list(base.values) == BASE_MODEL["Contacts"] and base.etag.startswith('"b')
    full = records.get(writer, ALPHA, "Contacts", "4", custom=True)
    assert list(full.values) == BASE_MODEL["Contacts"] + [c.name for c in FRESH_CUSTOM]
    names, direct = fresh.read_with_names(ALPHA, "SELECT * FROM dbo.Contacts WHERE ContactID = 4")
    assert tuple(full.values.values()) == direct[0] and list(full.values) == names

    patched = records.patch(
        writer, ALPHA, "Contacts", "4",
        {"lastname": "O'Brien-Łódź", "BirthDate": "1990-12-31", "Revenue": "1234.5",
         "Custom_Region": "Mars ☄", "UpdatedAt": "2024-06-01T08:09:10", "LeadScore": None,
         "IsActive": False},
        if_match=full.etag,
    )  # fmt: skip
    assert patched.etag != full.etag and patched.etag.startswith('"c')
    stored = fresh.read(
        ALPHA,
        "SELECT LastName, BirthDate, Revenue, Custom_Region, UpdatedAt, LeadScore, IsActive "
        "FROM Contacts WHERE ContactID = 4",
    )
    assert stored == [
        (
            "O'Brien-Łódź", dt.date(1990, 12, 31), Decimal("1234.50"), "Mars ☄",
            dt.datetime(2024, 6, 1, 8, 9, 10), None, False,
        )
    ]  # fmt: skip
    again = records.get(writer, ALPHA, "Contacts", "4", custom=True)
    assert again.etag == patched.etag and again.values == patched.values

    created = records.insert(
        writer, ALPHA, "Contacts",
        {"FirstName": "Rëc", "LastName": "Örd", "IsActive": True,
         "CreatedAt": "2024-05-01 10:00:00", "Custom_Region": "Venus"},
    )  # fmt: skip
    assert created["primary_key"] == "ContactID" and created["key"] > 10
    assert fresh.read(
        ALPHA, "SELECT FirstName, Custom_Region FROM Contacts WHERE ContactID = ?", [created["key"]]
    ) == [("Rëc", "Venus")]
    assert fresh.read(BETA, "SELECT COUNT(*) FROM Contacts WHERE FirstName = 'Rëc'") == [(0,)]


def test_records_stale_etag_is_412_and_changes_nothing(fresh: TdsTenants, records: Records) -> None:
    writer = fresh.principal(WRITER)
    seen = records.get(writer, BETA, "Contacts", "5")
    fresh.alter(BETA, "UPDATE dbo.Contacts SET Title = N'changed behind' WHERE ContactID = 5")
    with pytest.raises(PreconditionFailed):
        records.patch(writer, BETA, "Contacts", "5", {"LastName": "Lost"}, if_match=seen.etag)
    assert fresh.read(BETA, "SELECT LastName, Title FROM Contacts WHERE ContactID = 5")[0] != (
        "Lost",
        "changed behind",
    )
    assert fresh.read(BETA, "SELECT COUNT(*) FROM Contacts WHERE LastName = 'Lost'") == [(0,)]
    # The default collation is case-insensitive ('abc' = 'ABC' in SQL), but the ETag is
    # a hash of the values: a change of case alone is still a change.
    fresh.alter(BETA, "UPDATE dbo.Contacts SET Title = N'abc' WHERE ContactID = 5")
    lower = records.get(writer, BETA, "Contacts", "5")
    assert fresh.read(
        BETA, "SELECT COUNT(*) FROM Contacts WHERE ContactID = 5 AND Title = 'ABC'"
    ) == [(1,)]
    fresh.alter(BETA, "UPDATE dbo.Contacts SET Title = N'ABC' WHERE ContactID = 5")
    with pytest.raises(PreconditionFailed):
        records.patch(writer, BETA, "Contacts", "5", {"LastName": "Case"}, if_match=lower.etag)
    assert (
        fresh.read(BETA, "SELECT LastName, Title FROM Contacts WHERE ContactID = 5")[0][1] == "ABC"
    )


def test_records_two_concurrent_patches_with_one_etag_only_one_wins(
    fresh: TdsTenants, records: Records
) -> None:
    writer = fresh.principal(WRITER)
    seen = records.get(writer, ALPHA, "Contacts", "7")
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def patch(name: str) -> None:
        barrier.wait()
        try:
            records.patch(writer, ALPHA, "Contacts", "7", {"LastName": name}, if_match=seen.etag)
            outcomes[name] = "ok"
        except PreconditionFailed:
            outcomes[name] = "412"
        except Exception as exc:  # reported by the assertion below
            outcomes[name] = repr(exc)

    threads = [threading.Thread(target=patch, args=(n,)) for n in ("T1", "T2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["412", "ok"], outcomes
    winner = next(name for name, result in outcomes.items() if result == "ok")
    assert fresh.read(ALPHA, "SELECT LastName FROM Contacts WHERE ContactID = 7") == [(winner,)]
    assert pool_stats(fresh, ALPHA)["connections_lost"] == 0


# -- 10. custom-field administration ------------------------------------------------------------


def admin_add(t: TdsTenants, tenant: str, **body: Any) -> dict[str, Any]:
    return t.service.custom_fields().add(t.principal(ADMIN), tenant, "Contacts", body)


def admin_drop(t: TdsTenants, tenant: str, name: str) -> dict[str, Any]:
    return t.service.custom_fields().drop(t.principal(ADMIN), tenant, "Contacts", name)


def column_default(t: TdsTenants, tenant: str, column: str) -> tuple[Any, ...] | None:
    rows = t.read(
        tenant,
        "SELECT IS_NULLABLE, COLUMN_DEFAULT FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_NAME = 'Contacts' AND COLUMN_NAME = ?",
        [column],
    )
    return rows[0] if rows else None


@AS_SEEDED
@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ({"type": "text", "length": 40}, "Ünïcode 'quoted'", "Ünïcode 'quoted'"),
        ({"type": "integer"}, 42, 42),
        ({"type": "decimal", "precision": 10, "scale": 2}, "12.50", Decimal("12.50")),
        ({"type": "boolean"}, True, True),
        ({"type": "date"}, "2024-02-29", dt.date(2024, 2, 29)),
        ({"type": "datetime"}, "2024-02-29 13:14:15", dt.datetime(2024, 2, 29, 13, 14, 15)),
    ],
    ids=["text", "integer", "decimal", "boolean", "date", "datetime"],
)
def test_admin_adds_each_type_lists_it_and_drops_it(
    fresh: TdsTenants, body: dict[str, Any], value: Any, expected: Any
) -> None:
    created = admin_add(fresh, ALPHA, name="Select", **body)  # a reserved word, quoted
    assert created["name"] == "Select" and created["type"] == body["type"]
    assert fresh.columns(ALPHA)[-1] == "Select" and "Select" not in fresh.columns(BETA)
    listed = fresh.service.custom_fields().list_fields(fresh.principal(ADMIN), ALPHA, "Contacts")
    assert [f["name"] for f in listed["custom_fields"]] == [
        *(c.name for c in FRESH_CUSTOM),
        "Select",
    ]
    assert listed["column_limit"] == 1024
    fresh.query(
        ALPHA, "UPDATE Contacts SET [Select] = ? WHERE ContactID = 2", [value], token=WRITER
    )
    assert fresh.read(ALPHA, "SELECT [Select] FROM Contacts WHERE ContactID = 2") == [(expected,)]
    expanded = fresh.query(ALPHA, "SELECT CUSTOM_FIELDS() FROM Contacts WHERE ContactID = 2")
    assert expanded.result.rows[0][-1] == expected

    assert admin_drop(fresh, ALPHA, "select") == {
        "table": "Contacts",
        "name": "Select",
        "dropped": True,
    }
    assert "Select" not in fresh.columns(ALPHA)
    with pytest.raises(UnknownColumn):
        fresh.query(ALPHA, "SELECT [Select] FROM Contacts")


def test_admin_not_null_with_default_fills_rows_and_names_its_constraint(
    fresh: TdsTenants,
) -> None:
    created = admin_add(
        fresh, ALPHA, name="Tier", type="text", length=10, nullable=False, default="bronzé"
    )
    assert created["nullable"] is False
    assert fresh.read(ALPHA, "SELECT DISTINCT Tier FROM Contacts") == [("bronzé",)]
    nullable, default = column_default(fresh, ALPHA, "Tier")  # type: ignore[misc]
    assert nullable == "NO" and "bronzé" in str(default)
    constraint = ddl.default_constraint_name("Contacts", "Tier")
    names = [
        r[0]
        for r in fresh.read(
            ALPHA,
            "SELECT name FROM sys.default_constraints "
            "WHERE parent_object_id = OBJECT_ID('dbo.Contacts')",
        )
    ]
    if fresh.babelfish:
        # Babelfish keeps a default as a PostgreSQL column default and reports a made-up
        # name (DF_contacts_<oid>): the name tenantgate gave is not kept.
        assert constraint not in names and len(names) == 1
    else:
        assert constraint in names
    # New rows get the default too.
    fresh.query(
        ALPHA,
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
        "VALUES ('n', 'd', 1, '2024-01-01')",
        token=WRITER,
    )
    assert fresh.read(ALPHA, "SELECT COUNT(*) FROM Contacts WHERE Tier = N'bronzé'") == [(11,)]

    admin_drop(fresh, ALPHA, "Tier")  # the default first (SQL Server), then the column
    assert "Tier" not in fresh.columns(ALPHA)
    assert fresh.read(
        ALPHA,
        "SELECT COUNT(*) FROM sys.default_constraints "
        "WHERE parent_object_id = OBJECT_ID('dbo.Contacts')",
    ) == [(0,)]


def test_admin_nullable_with_default(fresh: TdsTenants) -> None:
    # Existing rows get the default: WITH VALUES on SQL Server; Babelfish refuses that
    # clause and fills them by itself (tenancy.ddl picks the form by engine).
    body = {"name": "Score2", "type": "integer", "nullable": True, "default": 7}
    admin_add(fresh, ALPHA, **body)
    assert fresh.read(ALPHA, "SELECT DISTINCT Score2 FROM Contacts") == [(7,)]
    # A quote in the default survives both levels of quoting (literal, then batch text).
    admin_add(fresh, ALPHA, name="Motto", type="text", length=20, nullable=True, default="it's")
    assert fresh.read(ALPHA, "SELECT DISTINCT Motto FROM Contacts") == [("it's",)]
    assert pool_stats(fresh, ALPHA)["connections_lost"] == 0


@AS_SEEDED
def test_admin_refusals_on_sqlserver(fresh: TdsTenants) -> None:
    with pytest.raises(ColumnExists):
        admin_add(fresh, ALPHA, name=FRESH_CUSTOM[0].name.upper(), type="integer")
    with pytest.raises(BaseColumnProtected):
        admin_drop(fresh, ALPHA, "Email")
    with pytest.raises(CustomFieldNotFound):
        admin_drop(fresh, ALPHA, "Nope")


def test_admin_ddl_switches_database_and_back_on_the_one_pooled_connection(
    single: TdsTenants,
) -> None:
    t = single
    spid, home = session_of(t, ALPHA)
    assert home not in t.databases.values()  # the pool connects without Database=

    admin_add(t, ALPHA, name="Shared_Session", type="integer")
    assert "Shared_Session" in t.columns(ALPHA) and "Shared_Session" not in t.columns(BETA)
    # Same TDS session, back in the database it was in before the DDL.
    assert session_of(t, BETA) == (spid, home)

    # The next tenant's statements on that session land in the next tenant's database.
    beta_rows = t.query(BETA, "SELECT ContactID, Email FROM Contacts ORDER BY ContactID")
    assert rows_of(beta_rows.result.rows) == t.read(
        BETA, "SELECT ContactID, Email FROM Contacts ORDER BY ContactID"
    )
    with pytest.raises(UnknownColumn):
        t.query(BETA, "SELECT Shared_Session FROM Contacts")
    t.query(BETA, "UPDATE Contacts SET City = N'Bêta' WHERE ContactID = 1", token=WRITER)
    assert t.read(BETA, "SELECT City FROM Contacts WHERE ContactID = 1") == [("Bêta",)]
    assert t.read(ALPHA, "SELECT COUNT(*) FROM Contacts WHERE City = N'Bêta'") == [(0,)]

    admin_drop(t, ALPHA, "Shared_Session")
    assert session_of(t, BETA) == (spid, home)
    # A failed DDL switches back too.
    with pytest.raises(ProxyError):
        t.service.custom_fields()._run(  # a DDL the engine refuses
            t.service.resolver.resolve(ALPHA),
            "Contacts",
            ["ALTER TABLE [dbo].[Contacts] DROP COLUMN [Nope]"],
        )
    assert session_of(t, BETA) == (spid, home)
    stats = pool_stats(t, ALPHA)
    assert stats["connections_num"] == 1 and stats["connections_lost"] == 0


def test_admin_discards_a_connection_that_cannot_switch_back(
    single: TdsTenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = single
    _, home = session_of(t, ALPHA)
    real = ddl.use_database_sql
    switched: list[str] = []

    def use_database_sql(database: str) -> str:
        switched.append(database)
        # The way back names a database that does not exist: a real refusal by the engine
        # (08004 'database "..." does not exist', native error 911).
        return real("tg_no_such_database" if database == home else database)

    monkeypatch.setattr(ddl, "use_database_sql", use_database_sql)
    created = admin_add(t, ALPHA, name="Orphan_Check", type="integer")
    assert created["name"] == "Orphan_Check" and "Orphan_Check" in t.columns(ALPHA)
    assert switched == [t.databases[ALPHA], home]
    monkeypatch.undo()

    stats = pool_stats(t, ALPHA)
    assert stats["connections_lost"] == 1  # the session left in alpha's database is gone
    # The next borrower gets a new session, in the database sessions start in.
    assert session_of(t, BETA)[1] == home
    assert t.pool(BETA).get_stats()["connections_num"] == 2
    assert rows_of(t.query(BETA, "SELECT COUNT(*) FROM Contacts").result.rows) == [(10,)]


def test_admin_ddl_does_not_leak_the_database_into_catalog_reads(single: TdsTenants) -> None:
    """After DDL on alpha, beta's catalog read runs on the same session: it must read
    beta's catalog (a session left in alpha's database with an unqualified catalog query
    would report alpha's columns for beta)."""
    t = single
    admin_add(t, ALPHA, name="Alpha_Only", type="integer")
    t.service.metadata.refresh(t.location(BETA))
    schema = t.service.schema(t.principal(), BETA)
    contacts = next(tb for tb in schema["tables"] if tb["name"] == "Contacts")
    assert "Alpha_Only" not in contacts["custom_columns"]
    assert [c["name"] for c in contacts["columns"]] == t.columns(BETA)
