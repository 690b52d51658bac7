from __future__ import annotations

from collections.abc import Iterator

import pyodbc
import pytest

from tests.support.pg import PgServer, pg_server

pyodbc.pooling = False


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A real PostgreSQL server shared by the whole run (see tests/support/pg.py)."""
    with pg_server() as server:
        yield server


@pytest.fixture
def pg_database(pg: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = pg.create_database()
    try:
        yield name
    finally:
        pg.drop_database(name)
