"""The T-SQL engine and both drivers are what the SQL Server tests believe they are."""

from __future__ import annotations

import contextlib

import pyodbc

from tests.support.tds import DRIVER_NAMES, TdsServer


def test_each_driver_reaches_the_engine(tds_server: TdsServer, tds_driver: str) -> None:
    with contextlib.closing(tds_server.connect(tds_driver)) as conn:
        library = str(conn.getinfo(pyodbc.SQL_DRIVER_NAME))  # the shared library in use
        version = conn.execute("SELECT @@VERSION").fetchone()[0]
    expected = {"ODBC Driver 18 for SQL Server": "msodbcsql", "FreeTDS": "tdsodbc"}
    assert expected[DRIVER_NAMES[tds_driver]] in library
    assert "SQL Server" in version


def test_databases_are_created_and_dropped(tds_server: TdsServer, tds_database: str) -> None:
    with contextlib.closing(tds_server.connect()) as conn:
        row = conn.execute("SELECT COUNT(*) FROM sys.databases WHERE name = ?", tds_database)
        assert row.fetchone()[0] == 1
