"""The adversarial corpus through the service, for SQL Server tenants on a real T-SQL
engine, once per ODBC driver (issue #7 item 6).

``tests/unit/rewriter/test_adversarial.py`` checks the corpus as text. Here every
statement goes through ``BlockingService.query`` and ``BlockingService.explain`` for a tenant whose
database sits on the engine next to things worth stealing:

* ``OtherDb``, another tenant's database (the name most hostile statements reach for),
  whose tables, and a table ``Archived`` the attacked tenant lacks, hold a marker row;
* a schema ``sales`` in the attacked tenant's own database, with a marked ``Contacts``;
* ``master.dbo.Contacts`` and ``master.dbo.Users``, marked: the pool's connections sit
  in ``master``, so an unqualified name that slipped through would read them.

Each hostile statement must be refused with the code the text-level test expects,
and no statement of it may reach the engine: ``proxy.drivers.odbc.driver.execute`` (what runs a
tenant's SQL) is wrapped to record every statement sent. The decoys (hostile-looking,
harmless) must run, return the attacked tenant's rows, and have sent only SQL that
names the attacked tenant's tables, qualified by its database. One ``BlockingService`` (four
tenants: the attacked one and ``OtherDb``, each through both drivers) serves the whole
module: refusals happen before any statement is sent, so the corpus runs in seconds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyodbc
import pytest
import sqlglot
from prometheus_client import CollectorRegistry
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

import proxy.drivers.odbc.driver
import proxy.drivers.odbc.execute
from proxy.auth import Principal, hash_token
from proxy.config import ControllerSettings, PoolSettings, Settings, TokenSettings
from proxy.pipeline.request import QueryRequest
from rewriter import RewriteError
from tests.support.blocking import BlockingService
from tests.support.tds import DRIVERS, TdsServer
from tests.unit.rewriter.shapes import SCHEMA
from tests.unit.rewriter.test_adversarial import DECOYS, REFUSED, Case

TOKEN = "adversarial-writer"
# Read and write: a hostile write must be refused by the rewriter, with the corpus's
# code, not by the token's class (which would hide what the rewriter does with it).
PRINCIPAL_CLASSES = ("read", "write")
OTHER_DB = "OtherDb"
MARKER = f"SECRET-{uuid.uuid4().hex[:12]}"
"""In every row the attacked tenant must never see."""

# The attacked tenant's tables: exactly the shapes the text-level corpus test uses, so
# unknown_table / unknown_column mean the same here. T-SQL types for each column.
TYPES = {
    "ContactID": "int",
    "AccountID": "int",
    "OpportunityID": "int",
    "FirstName": "nvarchar(50)",
    "LastName": "nvarchar(50)",
    "Email": "nvarchar(255)",
    "Custom_Region": "nvarchar(50)",
    "Shoe Size": "decimal(4,1)",
    "Name": "nvarchar(200)",
    "Industry": "nvarchar(100)",
    "Custom_Tier": "nvarchar(20)",
    "Amount": "decimal(18,2)",
    "Stage": "nvarchar(40)",
}
TABLES = {shape.name: tuple(shape.column_names) for shape in SCHEMA.values() if shape}
BASE_MODEL = {shape.name: tuple(shape.base_columns) for shape in SCHEMA.values() if shape}
# ``SCHEMA`` has ``archived: None``, a table this tenant lacks: another tenant has it.
MISSING_TABLE = "Archived"
assert "archived" in SCHEMA and SCHEMA["archived"] is None

# A string the smuggle_statement:string_quote_escape decoy compares with: the first
# contact's email, so that decoy returns a row.
QUOTE_EMAIL = "a';DROP TABLE Contacts;--"
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "Contacts": [
        (1, 1, "Ada", "Lovelace", QUOTE_EMAIL, "EU", 38.5),
        (2, 1, "Alan", "Turing", "alan@a.example", None, None),
    ],
    "Accounts": [(1, "Analytical Engines", "Computing", "gold")],
    "Opportunities": [(1, 1, 1, 1000.00, "won")],
}
NAMES = sorted([("Ada",), ("Alan",)])

# What each decoy returns for the attacked tenant: (column names, rows in any order).
# A decoy added to the corpus must be added here (test_every_decoy_has_expected_rows).
DECOY_ROWS: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {
    "escape_tenant:decoy_cte_named_sys": (("a",), [(1,)]),
    "exhaust_resources:decoy_cross_join": (("FirstName",), sorted(NAMES * 4)),
    "smuggle_statement:string_quote_escape": (("FirstName",), [("Ada",)]),
    "smuggle_statement:exec_inside_string_with_comment": (("a",), [("x",)]),
    "smuggle_statement:decoy_semicolon_in_block_comment": (("a",), [(1,)]),
    "smuggle_statement:decoy_semicolon_in_string": (("s",), [("a;b",)]),
    "smuggle_statement:decoy_national_string_with_quote": (
        ("s",),
        [("x'; DROP TABLE Contacts",)],
    ),
    "smuggle_statement:decoy_quoted_go_alias": (("GO",), NAMES),
    "system_objects:system_column_as_alias_trick": (("@@VERSION",), NAMES),
    "system_objects:decoy_alias_named_sys": (("FirstName",), NAMES),
}


def _create(
    conn: pyodbc.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    body = ", ".join(f"[{c}] {TYPES.get(c, 'nvarchar(100)')}" for c in columns)
    conn.execute(f"CREATE TABLE {table} ({body})")
    marks = ", ".join("?" for _ in columns)
    for row in rows:
        conn.execute(f"INSERT INTO {table} VALUES ({marks})", list(row))


def _marked(columns: Sequence[str]) -> tuple[Any, ...]:
    """A row with the marker in every text column (and 0 in the others)."""
    return tuple(MARKER if TYPES.get(c, "nvarchar").startswith("nvarchar") else 0 for c in columns)


def _seed(server: TdsServer, tenant_db: str, other_db: str, cleanup: contextlib.ExitStack) -> None:
    # This engine refuses DDL by three-part name from another database: connect to each.
    contacts = TABLES["Contacts"]
    with contextlib.closing(server.connect(database=tenant_db)) as conn:
        for table, columns in TABLES.items():
            _create(conn, f"[dbo].[{table}]", columns, ROWS[table])
        conn.execute("CREATE SCHEMA [sales]")
        _create(conn, "[sales].[Contacts]", contacts, [_marked(contacts)])
    with contextlib.closing(server.connect(database=other_db)) as conn:
        for table, columns in (*TABLES.items(), (MISSING_TABLE, ("ArchiveID", "Note"))):
            _create(conn, f"[dbo].[{table}]", columns, [_marked(columns)])
    # Checked one by one, and dropped only if created here: on a shared server
    # (TENANTGATE_TEST_TDS_DSN) master's tables may be someone else's.
    for table, columns in (("Contacts", contacts), ("Users", ("UserName", "Password"))):
        with contextlib.closing(server.connect(database="master")) as conn:
            _create(conn, f"[dbo].[{table}]", columns, [_marked(columns)])
        cleanup.callback(_drop_master_table, server, table)


def _drop_master_table(server: TdsServer, table: str) -> None:
    with contextlib.closing(server.connect(database="master")) as conn:
        conn.execute(f"DROP TABLE [dbo].[{table}]")


@dataclass
class Corpus:
    service: BlockingService
    principal: Principal
    tenant_db: str
    other_db: str
    sent: list[str] = field(default_factory=list)
    """Every statement ``proxy.drivers.odbc.driver.execute`` sent to a tenant, in order."""

    def tenant(self, driver: str) -> str:
        return f"attacked-{driver}.example"

    def request(self, case: Case, driver: str) -> QueryRequest:
        return QueryRequest(tenant=self.tenant(driver), sql=case.sql, dialect=case.dialect)


@pytest.fixture(scope="module")
def corpus(tds_server: TdsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    with contextlib.ExitStack() as cleanup:
        with contextlib.closing(tds_server.connect()) as conn:
            taken = conn.execute("SELECT DB_ID(?)", OTHER_DB).fetchone()[0] is not None
            if not taken:
                conn.execute(f"CREATE DATABASE [{OTHER_DB}]")
        # On a shared server (TENANTGATE_TEST_TDS_DSN) the name may be someone else's:
        # then the other tenant gets a fresh name, and the statements naming OtherDb
        # lose their target but are still checked for their refusal.
        other_db = tds_server.create_database(OTHER_DB) if taken else OTHER_DB
        cleanup.callback(tds_server.drop_database, other_db)
        tenant_db = tds_server.create_database("attacked")
        cleanup.callback(tds_server.drop_database, tenant_db)
        _seed(tds_server, tenant_db, other_db, cleanup)

        controller = tmp_path_factory.mktemp("adversarial") / "controller.db"
        with contextlib.closing(sqlite3.connect(controller)) as db:
            db.execute(
                "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT,"
                " sqlconnectstring TEXT)"
            )
            db.executemany(
                "INSERT INTO Customer (domainname, sqlconnectstring) VALUES (?, ?)",
                [
                    (f"{label}-{driver}.example", tds_server.odbc(driver, database))
                    for driver in DRIVERS
                    for label, database in (("attacked", tenant_db), ("other", other_db))
                ],
            )
            db.commit()
        settings = Settings(
            controller=ControllerSettings(
                connection_string=f"Driver=SQLite3;Database={controller}"
            ),
            pool=PoolSettings(max_size=2),
            base_model={**BASE_MODEL, MISSING_TABLE: ("ArchiveID", "Note")},
            tokens=(
                TokenSettings(name="writer", sha256=hash_token(TOKEN), classes=PRINCIPAL_CLASSES),
            ),
        )
        service = BlockingService(settings, registry=CollectorRegistry())
        cleanup.callback(service.close)
        state = Corpus(service, service.auth.authenticate(f"Bearer {TOKEN}"), tenant_db, other_db)
        real_execute = proxy.drivers.odbc.execute.execute

        def recording_execute(*args: Any, **kwargs: Any) -> Any:
            state.sent.append(kwargs["sql"])
            return real_execute(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(proxy.drivers.odbc.driver, "execute", recording_execute)
            yield state


def _refusal(call: Callable[[], object]) -> RewriteError:
    with pytest.raises(RewriteError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refused_through_the_service(corpus: Corpus, tds_driver: str, case: Case) -> None:
    corpus.sent.clear()
    req = corpus.request(case, tds_driver)
    refused = _refusal(lambda: corpus.service.query(corpus.principal, req))
    assert refused.code == case.error, refused.message
    explained = _refusal(lambda: corpus.service.explain(corpus.principal, req))
    assert explained.code == case.error, explained.message
    assert corpus.sent == [], "a refused statement reached the engine"


def _assert_only_tenant_tables(sql: str, tenant_db: str) -> None:
    """Every table of ``sql`` is a CTE in scope or ``[tenant_db].[dbo].<tenant table>``."""
    statements = [s for s in sqlglot.parse(sql, read="tsql") if s is not None]
    assert len(statements) == 1, sql
    seen: set[int] = set()
    for scope in traverse_scope(statements[0]):
        for table in scope.tables:
            seen.add(id(table))
            if isinstance(scope.sources.get(table.alias_or_name), Scope):
                assert not table.args.get("db") and not table.args.get("catalog"), sql
                continue
            assert (table.catalog, table.db) == (tenant_db, "dbo"), sql
            assert table.name in TABLES, sql
    for table in statements[0].find_all(exp.Table):
        assert id(table) in seen, f"table {table.sql()} outside every scope: {sql}"


@pytest.mark.parametrize("case", DECOYS, ids=lambda c: c.id)
def test_decoy_runs_on_the_tenant_only(corpus: Corpus, tds_driver: str, case: Case) -> None:
    corpus.sent.clear()
    req = corpus.request(case, tds_driver)
    outcome = corpus.service.query(corpus.principal, req)
    columns, rows = DECOY_ROWS[case.id]
    assert tuple(c.name for c in outcome.result.columns) == columns
    got = sorted(tuple(r) for r in outcome.result.rows)
    assert got == sorted(rows)
    assert MARKER not in repr(got)
    assert len(corpus.sent) == 1
    _assert_only_tenant_tables(corpus.sent[0], corpus.tenant_db)
    explained = corpus.service.explain(corpus.principal, req)
    assert explained["sql"] == corpus.sent[0]
    assert explained["database"] == corpus.tenant_db


def test_every_decoy_has_expected_rows() -> None:
    assert sorted(DECOY_ROWS) == sorted(c.id for c in DECOYS)


def test_the_traps_are_armed(corpus: Corpus, tds_driver: str, tds_server: TdsServer) -> None:
    """The secrets exist and are readable by the pool's login: a statement that escaped
    would have found them. The other tenant is reachable through the service too, so
    the attacked tenant's refusals are not a side effect of a broken setup."""
    with contextlib.closing(tds_server.connect(tds_driver)) as conn:
        for name in (
            f"[{corpus.other_db}].[dbo].[Contacts]",
            f"[{corpus.other_db}].[dbo].[{MISSING_TABLE}]",
            f"[{corpus.tenant_db}].[sales].[Contacts]",
            "[master].[dbo].[Contacts]",
            "Contacts",  # what an unqualified name reads on the pool's connections
            "[master].[dbo].[Users]",
        ):
            rows = conn.execute(f"SELECT * FROM {name}").fetchall()
            assert MARKER in repr([tuple(r) for r in rows]), name
    other = corpus.service.query(
        corpus.principal,
        QueryRequest(tenant=f"other-{tds_driver}.example", sql="SELECT FirstName FROM Contacts"),
    )
    assert [tuple(r) for r in other.result.rows] == [(MARKER,)]
    mine = corpus.service.query(
        corpus.principal,
        QueryRequest(tenant=corpus.tenant(tds_driver), sql="SELECT FirstName FROM Contacts"),
    )
    assert sorted(tuple(r) for r in mine.result.rows) == NAMES


def test_nothing_was_changed(corpus: Corpus, tds_driver: str, tds_server: TdsServer) -> None:
    """After the corpus (pytest runs this module's tests in order), every table of both
    tenants still holds exactly what was seeded: no DROP, UPDATE or INSERT ran."""
    with contextlib.closing(tds_server.connect(tds_driver)) as conn:
        for table, columns in TABLES.items():
            for database, expected in (
                (corpus.tenant_db, ROWS[table]),
                (corpus.other_db, [_marked(columns)]),
            ):
                rows = conn.execute(f"SELECT * FROM [{database}].[dbo].[{table}]").fetchall()
                got = sorted((_plain(r) for r in rows), key=repr)
                assert got == sorted((_plain(r) for r in expected), key=repr), (database, table)


def _plain(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(float(v) if isinstance(v, Decimal | float) else v for v in row)
