from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Generator, Iterator

import pyodbc
import pytest

from proxy.compiled import stale
from tests.support import tds
from tests.support.outcome import PHASE_REPORTS, failed
from tests.support.pg import PgServer, pg_server

pyodbc.pooling = False


def pytest_configure(config: pytest.Config) -> None:
    # An extension older than its source runs in its place (proxy/compiled.py): the
    # run would test code that is no longer in the tree.
    if outdated := stale():
        pytest.exit(
            f"compiled modules are older than their sources: {', '.join(outdated)}; "
            "`make compile` rebuilds them, `make uncompile` removes them",
            returncode=4,
        )


# Before the first connection of this process: unixODBC reads ODBCSYSINI once.
_MSODBC18_MISSING = tds.register_msodbc18()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A real PostgreSQL server shared by the whole run (see tests/support/pg.py)."""
    with pg_server() as server:
        yield server


@pytest.fixture
def pg_database(pg: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with pg.fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def module_pg_database(pg: PgServer) -> Iterator[str]:
    """A fresh, empty database shared by one module's tests, dropped afterwards."""
    with pg.fresh_database() as name:
        yield name


def _tds_required() -> bool:
    # In CI the engine ships beside the checkout: not reaching it is a failure, not a skip.
    return (
        os.environ.get("CI", "").casefold() in ("1", "true", "yes")
        and (tds.babelfish_dir() / "start.sh").exists()
    )


@pytest.fixture(scope="session")
def tds_server() -> Iterator[tds.TdsServer]:
    """A real T-SQL engine over TDS shared by the whole run (see tests/support/tds.py)."""
    try:
        with tds.tds_server() as server:
            yield server
    except tds.TdsUnavailable as exc:
        if _tds_required():
            pytest.fail(f"SQL Server tests must run in CI: {exc}")
        pytest.skip(f"no T-SQL engine over TDS: {exc}")


@pytest.fixture(params=tds.DRIVERS)
def tds_driver(request: pytest.FixtureRequest, tds_server: tds.TdsServer) -> str:
    """Each SQL Server test runs once per ODBC driver: ``msodbc18`` and ``freetds``."""
    driver: str = request.param
    if driver not in tds_server.drivers:
        reason = _MSODBC18_MISSING if driver == tds.MSODBC18 else None
        reason = reason or f"the {tds.DRIVER_NAMES[driver]} ODBC driver is not installed"
        if _tds_required():
            pytest.fail(f"SQL Server tests must run with both drivers in CI: {reason}")
        pytest.skip(reason)
    return driver


@pytest.fixture(scope="module")
def _tds_master_connections(tds_server: tds.TdsServer) -> Iterator[dict[str, pyodbc.Connection]]:
    opened: dict[str, pyodbc.Connection] = {}
    try:
        yield opened
    finally:
        for conn in opened.values():
            with contextlib.suppress(pyodbc.Error):
                conn.close()


@pytest.fixture
def tds_master_connection(
    request: pytest.FixtureRequest,
    tds_server: tds.TdsServer,
    tds_driver: str,
    _tds_master_connections: dict[str, pyodbc.Connection],
) -> Iterator[pyodbc.Connection]:
    """A connection of ``tds_driver`` on ``master``, in autocommit, kept for the module (a
    login and a new engine session cost more than most cases); closed and replaced after
    a test that failed, so that no case runs on a session another left astray."""
    conn = _tds_master_connections.get(tds_driver)
    if conn is None:
        conn = _tds_master_connections[tds_driver] = tds_server.connect(tds_driver)
    conn.autocommit = True
    yield conn
    if failed(request):
        del _tds_master_connections[tds_driver]
        with contextlib.suppress(pyodbc.Error):
            conn.close()


@pytest.fixture
def tds_database(tds_server: tds.TdsServer) -> Iterator[str]:
    """A fresh, empty database on the T-SQL engine, dropped afterwards."""
    name = tds_server.create_database()
    try:
        yield name
    finally:
        tds_server.drop_database(name)


_TDS_OUTCOMES: Counter[tuple[str, str]] = Counter()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tds_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sqlserver)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Each phase's report on the item, for fixtures that reuse what they built only
    # after a test that passed (tests/support/outcome.py).
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "sqlserver" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        ids = report.nodeid.rpartition("[")[2].rstrip("]").split("-")
        driver = next((d for d in tds.DRIVERS if d in ids), "any")
        _TDS_OUTCOMES[(driver, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TDS_OUTCOMES:
        return
    parts = []
    for driver in (*tds.DRIVERS, "any"):
        counts = {o: n for (d, o), n in _TDS_OUTCOMES.items() if d == driver}
        if counts:
            shown = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            parts.append(f"{driver}: {shown}")
    terminalreporter.write_line("SQL Server over TDS: " + "; ".join(parts))
