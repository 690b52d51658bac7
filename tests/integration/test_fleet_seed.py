"""``tenantgate seed`` against real servers: fleets on PostgreSQL (both layouts), SQLite
and a T-SQL engine; resuming after a real crash; refusing what it did not create;
``--drop``. The service itself serves a fleet in tests/e2e/test_fleet_serve.py."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pyodbc
import pytest

from proxy.auth import hash_token
from proxy.bench.distribution import CustomColumnDistribution
from proxy.bench.fleet import load_fleet
from proxy.bench.seed import SeedFailed, SeedOptions, drop_fleet, run_seed
from proxy.bench.seed_store import CRASH_ENV
from proxy.cli import main
from proxy.config import load
from proxy.demo.seed import SeedCounts, generate_rows
from tests.support import tds
from tests.support.pg import PgServer

pytestmark = [pytest.mark.integration, pytest.mark.driver_independent]

ROOT = Path(__file__).resolve().parents[2]
SPEC = "0-3:50%,30-40:50%"
CONTACTS = 20


def _url(pg: PgServer) -> str:
    return (
        f"postgresql://{quote(pg.user)}:{quote(pg.password)}@{pg.host}:{pg.port}/"
        f"{pg.admin_database}"
    )


def _options(directory: Path, **extra: Any) -> SeedOptions:
    settings: dict[str, Any] = {
        "directory": directory,
        "tenants": 5,
        "contacts": CONTACTS,
        "custom_columns": CustomColumnDistribution.parse(SPEC),
        "jobs": 1,
        "seed": 3,
        "progress": io.StringIO(),
        "bar": False,
    }
    settings.update(extra)
    return SeedOptions(**settings)


@pytest.fixture
def prefix(pg: PgServer) -> Iterator[str]:
    """A fresh name prefix; whatever databases carry it are dropped afterwards."""
    name = f"tgt_{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.closing(pg.connect()) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE ?", name + "%"
        ).fetchall()
        for (db,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _pg(pg: PgServer, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=database
    )


def _comments(pg: PgServer, prefix: str) -> dict[str, str | None]:
    with contextlib.closing(_pg(pg, pg.admin_database)) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname LIKE %s",
            (prefix + "%",),
        ).fetchall()
    return {str(name): comment for name, comment in rows}


def _check_pg_tenant(conn: psycopg.Connection[Any], schema: str, custom: int) -> None:
    """The tenant holds the default schema, ``custom`` custom columns on Contacts, the
    generated base rows, and identities past the loaded ids."""
    conn.execute(f'SET search_path TO "{schema}"')
    counts = SeedCounts.for_contacts(CONTACTS)
    for table in ("Accounts", "Contacts", "Opportunities"):
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        assert row is not None
        assert row[0] == counts.of(table)
    columns = conn.execute(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'Contacts'",
        (schema,),
    ).fetchone()
    assert columns is not None
    assert columns[0] == 18 + custom
    expected = next(generate_rows("Contacts", counts, seed=3))
    got = conn.execute(
        'SELECT "ContactID", "FirstName", "Email" FROM "Contacts" ORDER BY 1 LIMIT 1'
    ).fetchone()
    assert got == (expected[0], expected[2], expected[4])
    new_id = conn.execute(
        'INSERT INTO "Contacts" ("FirstName", "LastName", "IsActive", "CreatedAt") '
        "VALUES ('A', 'B', true, now()) RETURNING \"ContactID\""
    ).fetchone()
    assert new_id == (CONTACTS + 1,)
    conn.rollback()


@pytest.mark.parametrize("layout", ["database", "schema"])
def test_postgresql_fleet_seeds_resumes_and_drops(
    pg: PgServer, tmp_path: Path, prefix: str, layout: str
) -> None:
    on_server = layout == "schema"  # each controller placement once
    options = _options(
        tmp_path / "fleet",
        backend="postgresql",
        layout=layout,
        server=_url(pg),
        prefix=prefix,
        controller_on_server=on_server,
    )
    report = run_seed(options)
    assert (report.tenants, report.built, report.redone) == (5, 5, 0)

    fleet = load_fleet(tmp_path / "fleet")
    assert fleet.complete
    assert [t.customer_id for t in fleet.tenants] == [1, 2, 3, 4, 5]
    counts = {t.custom_columns for t in fleet.tenants}
    assert counts <= {0, 1, 2, 3, *range(30, 41)}
    assert len(counts) > 1
    comments = _comments(pg, prefix)
    marker = f"tenantgate fleet {fleet.fleet_id}"
    if layout == "database":
        for t in fleet.tenants:
            assert comments[f"{prefix}_t{t.customer_id:05d}"] == f"{marker} tenant {t.customer_id}"
            assert f"Database={prefix}_t{t.customer_id:05d};" in t.connection_string
            with contextlib.closing(_pg(pg, f"{prefix}_t{t.customer_id:05d}")) as conn:
                _check_pg_tenant(conn, "public", t.custom_columns)
        assert comments[f"{prefix}_template"] == f"{marker} template"
        with contextlib.closing(sqlite3.connect(tmp_path / "fleet" / "controller.db")) as db:
            registered = db.execute("SELECT customer_id, sqlconnectstring FROM Customer").fetchall()
    else:
        assert comments[prefix] == f"{marker} database"
        assert comments[f"{prefix}_controller"] == f"{marker} controller"
        with contextlib.closing(_pg(pg, prefix)) as conn:
            schemas = dict(
                conn.execute(
                    "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                    "WHERE nspname LIKE 't0%'"
                ).fetchall()
            )
            conn.rollback()
            for t in fleet.tenants:
                assert schemas[f"t{t.customer_id:05d}"] == f"{marker} tenant {t.customer_id}"
                assert t.connection_string.endswith(f";Schema=t{t.customer_id:05d}")
                _check_pg_tenant(conn, f"t{t.customer_id:05d}", t.custom_columns)
        with contextlib.closing(_pg(pg, f"{prefix}_controller")) as conn:
            registered = conn.execute(
                'SELECT customer_id, sqlconnectstring FROM "Customer"'
            ).fetchall()
        assert not (tmp_path / "fleet" / "controller.db").exists()
    assert sorted(registered) == [(t.customer_id, t.connection_string) for t in fleet.tenants]

    again = run_seed(options)  # complete: nothing to build
    assert (again.built, again.redone) == (0, 0)

    dropped = drop_fleet(tmp_path / "fleet")
    assert len(dropped) == (6 if layout == "database" else 2)
    assert _comments(pg, prefix) == {}
    assert not (tmp_path / "fleet").exists()


def test_sqlite_fleet_is_serveable_config_and_resumable(tmp_path: Path) -> None:
    directory = tmp_path / "fleet"
    report = run_seed(_options(directory, backend="sqlite", tenants=4))
    assert report.built == 4
    fleet = load_fleet(directory)
    settings = load(directory / "tenantgate.toml")  # the service's own validation
    token = (directory / "token").read_text(encoding="utf-8").strip()
    assert [t.sha256 for t in settings.tokens] == [hash_token(token)]
    assert settings.controller.connection_string == fleet.controller_connection_string
    assert oct((directory / "token").stat().st_mode & 0o777) == "0o600"
    for t in fleet.tenants:
        path = directory / "tenants" / f"t{t.customer_id:05d}.db"
        assert t.connection_string == f"Driver=SQLite3;Database={path.resolve()}"
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute(
                "SELECT fleet_id, role, customer_id FROM tenantgate_fleet"
            ).fetchall() == [(fleet.fleet_id, "tenant", t.customer_id)]
            assert len(db.execute("SELECT * FROM Contacts LIMIT 1").description) == (
                18 + t.custom_columns
            )
            assert db.execute("SELECT count(*) FROM Opportunities").fetchone() == (CONTACTS // 2,)

    grown = run_seed(_options(directory, backend="sqlite", tenants=6))
    assert (grown.tenants, grown.built) == (6, 2)
    assert main(["seed", "--dir", str(directory), "--drop"]) == 0
    assert not directory.exists()


def test_a_killed_run_resumes_and_redoes_the_half_made_tenant(
    pg: PgServer, tmp_path: Path, prefix: str
) -> None:
    directory = tmp_path / "fleet"
    args = ["--dir", str(directory), "--server", _url(pg), "--prefix", prefix, "--tenants", "5"]
    args += ["--contacts", str(CONTACTS), "--custom-columns", SPEC, "--seed", "3", "--jobs", "1"]
    env = {**os.environ, CRASH_ENV: "3"}  # SIGKILL once tenant 3's database exists
    crashed = subprocess.run(
        [sys.executable, "-m", "proxy", "seed", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == -9, crashed.stderr
    fleet = load_fleet(directory)
    assert not fleet.complete
    comments = _comments(pg, prefix)
    marker = f"tenantgate fleet {fleet.fleet_id}"
    assert comments[f"{prefix}_t00002"] == f"{marker} tenant 2"
    assert comments[f"{prefix}_t00003"] is None  # created, never finished
    assert f"{prefix}_t00004" not in comments

    assert main(["seed", *args]) == 0
    fleet = load_fleet(directory)
    assert fleet.complete
    assert [t.customer_id for t in fleet.tenants] == [1, 2, 3, 4, 5]
    comments = _comments(pg, prefix)
    for cid in range(1, 6):
        assert comments[f"{prefix}_t{cid:05d}"] == f"{marker} tenant {cid}"
    with contextlib.closing(_pg(pg, f"{prefix}_t00003")) as conn:
        _check_pg_tenant(conn, "public", fleet.tenants[2].custom_columns)
    with contextlib.closing(sqlite3.connect(directory / "controller.db")) as db:
        assert db.execute("SELECT count(*) FROM Customer").fetchone() == (5,)
    assert not (directory / ".seed-inflight").exists()
    drop_fleet(directory)


def test_refuses_a_database_it_did_not_create_unless_forced(
    pg: PgServer, tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with contextlib.closing(pg.connect()) as conn:
        conn.execute(f'CREATE DATABASE "{prefix}_t00002"')
        conn.execute(f'CREATE DATABASE "{prefix}_t00099"')  # not a fleet name: never touched
    with contextlib.closing(_pg(pg, f"{prefix}_t00002")) as conn:
        conn.execute("CREATE TABLE precious (x int)")
        conn.commit()
    options = _options(tmp_path / "fleet", backend="postgresql", server=_url(pg), prefix=prefix)
    with pytest.raises(SeedFailed, match=f"database {prefix}_t00002") as refused:
        run_seed(options)
    assert refused.value.code == 2
    assert set(_comments(pg, prefix)) == {f"{prefix}_t00002", f"{prefix}_t00099"}  # untouched
    with contextlib.closing(_pg(pg, f"{prefix}_t00002")) as conn:
        conn.execute("SELECT * FROM precious")

    args = ["seed", "--dir", str(tmp_path / "fleet"), "--server", _url(pg), "--prefix", prefix]
    args += ["--tenants", "5", "--contacts", str(CONTACTS), "--custom-columns", SPEC, "--jobs", "1"]
    args += ["--seed", "3"]
    assert main(args) == 2
    assert "refusing to touch 1 object(s)" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    fleet = load_fleet(tmp_path / "fleet")
    assert (
        _comments(pg, prefix)[f"{prefix}_t00002"] == f"tenantgate fleet {fleet.fleet_id} tenant 2"
    )
    with contextlib.closing(_pg(pg, f"{prefix}_t00002")) as conn:
        assert conn.execute("SELECT to_regclass('precious')").fetchone() == (None,)

    assert main(["seed", "--dir", str(tmp_path / "fleet"), "--drop"]) == 0
    assert set(_comments(pg, prefix)) == {f"{prefix}_t00099"}  # only what it made is gone


def test_sqlserver_fleet(tds_server: tds.TdsServer, tmp_path: Path) -> None:
    driver = tds.FREETDS if tds.FREETDS in tds_server.drivers else tds_server.drivers[0]
    prefix = f"tgt_{uuid.uuid4().hex[:8]}"
    options = _options(
        tmp_path / "fleet",
        backend="sqlserver",
        server=tds_server.odbc(driver, "master", password=""),
        password=tds_server.password,  # as --password-env gives it
        prefix=prefix,
        tenants=2,
        contacts=10,
        custom_columns=CustomColumnDistribution.parse("2:50%,12:50%"),
        controller_on_server=True,
    )
    try:
        assert run_seed(options).built == 2
        fleet = load_fleet(tmp_path / "fleet")
        with contextlib.closing(tds_server.connect(driver)) as conn:
            registered = conn.execute(
                f"SELECT customer_id, sqlconnectstring FROM [{prefix}_controller].dbo.Customer"
            ).fetchall()
            assert sorted(tuple(r) for r in registered) == [
                (t.customer_id, t.connection_string) for t in fleet.tenants
            ]
            for t in fleet.tenants:
                db = f"[{prefix}_t{t.customer_id:05d}]"
                marker = conn.execute(f"SELECT * FROM {db}.dbo.tenantgate_fleet").fetchall()
                assert [tuple(r) for r in marker] == [(fleet.fleet_id, "tenant", t.customer_id)]
                contacts = conn.execute(f"SELECT count(*) FROM {db}.dbo.Contacts").fetchone()
                assert contacts[0] == 10
        for t in fleet.tenants:  # what tenantgate will use, with the password
            with contextlib.closing(pyodbc.connect(t.connection_string, timeout=10)) as conn:
                cols = conn.cursor().execute("SELECT TOP 1 * FROM Contacts").description
                assert len(cols) == 18 + t.custom_columns
    finally:
        dropped = drop_fleet(tmp_path / "fleet", password=tds_server.password)
    assert len(dropped) == 3
    with contextlib.closing(tds_server.connect(driver)) as conn:
        left = conn.execute("SELECT name FROM sys.databases WHERE name LIKE ?", prefix + "%")
        assert left.fetchall() == []
