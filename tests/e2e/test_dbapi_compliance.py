"""PEP 249 compliance of ``proxy.client.dbapi``, against the real service.

Every requirement of the PEP that applies to this driver, one test each (or a few),
on a SQLite tenant (beta.example, 2) and a PostgreSQL tenant (pg12.example, 12) of
the session's shared service process. Why not the classic ``dbapi20`` suite
(``dbapi-compliance`` on PyPI): it creates and drops its own tables (the service runs
no DDL through queries) and inserts without column lists (the service refuses those:
a tenant's columns differ), so nearly every test would need an override; what it
checks is all here, on the tables every tenant has. What the PEP leaves optional and
the driver does not offer (``callproc``, ``nextset``, ``scroll``) is not tested.

The stack is shared by the whole session: each test writes only contacts whose
``LastName`` is its own marker, and reads only those.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import uuid
from collections.abc import Iterator

import pytest

from proxy.client import dbapi
from proxy.client import errors as client_errors
from tests.support.slow import SLOW_VIEW
from tests.support.stack import BETA_READ_TOKEN, FULL_TOKEN, Stack

pytestmark = pytest.mark.e2e

BACKENDS = [pytest.param(2, id="sqlite"), pytest.param(12, id="postgresql")]
INSERT = "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) VALUES (?, ?, ?, ?)"
CREATED = datetime.datetime(2024, 5, 1, 13, 45, 7)


@pytest.fixture(params=BACKENDS)
def tenant(request: pytest.FixtureRequest) -> int:
    customer_id: int = request.param
    return customer_id


def connect(stack: Stack, tenant: int, **options: object) -> dbapi.Connection:
    return dbapi.connect(stack.url, token=FULL_TOKEN, tenant=tenant, **options)  # type: ignore[arg-type]


@pytest.fixture
def conn(stack: Stack, tenant: int) -> Iterator[dbapi.Connection]:
    """A connection in the PEP's default mode: statements run in transactions."""
    with connect(stack, tenant) as c:
        yield c


@pytest.fixture
def auto(stack: Stack, tenant: int) -> Iterator[dbapi.Connection]:
    """An autocommit connection, also the independent observer of the other's writes."""
    c = connect(stack, tenant, autocommit=True)
    yield c
    c.close()


@pytest.fixture
def marker() -> str:
    return f"dbapi-{uuid.uuid4().hex[:10]}"


def names(conn: dbapi.Connection, marker: str) -> list[str]:
    """The first names of the contacts with this marker, committed, read outside."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT FirstName FROM Contacts WHERE LastName = ? ORDER BY FirstName", [marker]
        )
        return [row[0] for row in cur.fetchall()]


def insert(conn: dbapi.Connection, marker: str, *first_names: str) -> None:
    with conn.cursor() as cur:
        cur.executemany(INSERT, [(n, marker, True, CREATED) for n in first_names])


# -- connection ------------------------------------------------------------------------


def test_connect_returns_a_connection_whose_cursor_knows_it(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    assert isinstance(conn, dbapi.Connection) and isinstance(cur, dbapi.Cursor)
    assert cur.connection is conn


def test_commit_makes_writes_visible(
    conn: dbapi.Connection, auto: dbapi.Connection, marker: str
) -> None:
    insert(conn, marker, "Ada")
    assert conn.in_transaction
    assert names(auto, marker) == []  # not committed: invisible to others
    conn.commit()
    assert not conn.in_transaction
    assert names(auto, marker) == ["Ada"]


def test_rollback_undoes_writes(
    conn: dbapi.Connection, auto: dbapi.Connection, marker: str
) -> None:
    insert(conn, marker, "Ada")
    assert names(conn, marker) == ["Ada"]  # its own write, inside the transaction
    conn.rollback()
    assert names(auto, marker) == []
    conn.rollback()  # nothing open: nothing to do
    conn.commit()


def test_a_read_only_transaction_commits(conn: dbapi.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM Contacts")
        assert cur.fetchone()[0] > 0  # type: ignore[index]
    assert conn.in_transaction
    conn.commit()
    assert not conn.in_transaction


def test_isolation_is_asked_for_the_transactions_it_opens(
    stack: Stack, tenant: int, marker: str
) -> None:
    with connect(stack, tenant, isolation="serializable") as conn:
        insert(conn, marker, "Ser")
    with connect(stack, tenant, autocommit=True) as auto:
        assert names(auto, marker) == ["Ser"]


def test_autocommit_commits_each_statement(
    auto: dbapi.Connection, conn: dbapi.Connection, marker: str
) -> None:
    insert(auto, marker, "Ada")
    assert not auto.in_transaction
    assert names(conn, marker) == ["Ada"]
    auto.rollback()  # nothing to roll back
    assert names(conn, marker) == ["Ada"]


def test_autocommit_cannot_change_inside_a_transaction(conn: dbapi.Connection) -> None:
    conn.cursor().execute("SELECT 1 AS one")
    with pytest.raises(dbapi.ProgrammingError):
        conn.autocommit = True
    conn.rollback()
    conn.autocommit = True
    conn.cursor().execute("SELECT 1 AS one")
    assert not conn.in_transaction


def test_close_rolls_back_and_makes_the_connection_unusable(
    stack: Stack, tenant: int, auto: dbapi.Connection, marker: str
) -> None:
    conn = connect(stack, tenant)
    cur = conn.cursor()
    insert(conn, marker, "Ada")
    conn.close()
    conn.close()  # idempotent
    assert names(auto, marker) == []
    for operation in (conn.cursor, conn.commit, conn.rollback,
                      lambda: cur.execute("SELECT 1 AS one")):  # fmt: skip
        with pytest.raises(dbapi.Error):
            operation()


def test_as_a_context_manager_it_commits_or_rolls_back(
    stack: Stack, tenant: int, auto: dbapi.Connection, marker: str
) -> None:
    with connect(stack, tenant) as conn:
        insert(conn, marker, "Kept")
    assert conn.closed
    with pytest.raises(ZeroDivisionError), connect(stack, tenant) as conn:
        insert(conn, marker, "Dropped")
        _ = 1 / 0
    assert names(auto, marker) == ["Kept"]


def test_a_failed_statement_aborts_the_transaction_until_rollback(
    conn: dbapi.Connection, auto: dbapi.Connection, marker: str
) -> None:
    cur = conn.cursor()
    insert(conn, marker, "Ada")
    with pytest.raises(dbapi.IntegrityError) as failed:
        cur.execute(INSERT, [None, marker, True, CREATED])  # FirstName is NOT NULL
    assert failed.value.code == "constraint_violation"
    with pytest.raises(dbapi.InternalError) as aborted:
        cur.execute("SELECT 1 AS one")
    assert aborted.value.code == "transaction_aborted"
    assert aborted.value.details["cause"] == "constraint_violation"
    with pytest.raises(dbapi.InternalError):
        conn.commit()
    conn.rollback()
    assert names(conn, marker) == []  # Ada went with the transaction
    assert names(auto, marker) == []


def test_a_statement_refused_before_the_database_keeps_the_transaction(
    conn: dbapi.Connection, auto: dbapi.Connection, marker: str
) -> None:
    insert(conn, marker, "Ada")
    with pytest.raises(dbapi.ProgrammingError):
        conn.cursor().execute("SELECT NoSuchColumn FROM Contacts")
    conn.commit()
    assert names(auto, marker) == ["Ada"]


# -- cursor: description, rowcount ---------------------------------------------------


def test_description(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    assert cur.description is None and cur.rowcount == -1
    cur.execute(
        "SELECT ContactID, FirstName, LeadScore, IsActive, BirthDate, CreatedAt, Revenue "
        "FROM Contacts WHERE ContactID = ?",
        [1],
    )
    assert cur.description is not None
    assert [d[0] for d in cur.description] == [
        "ContactID", "FirstName", "LeadScore", "IsActive", "BirthDate", "CreatedAt", "Revenue",
    ]  # fmt: skip
    assert all(len(d) == 7 and d[2:] == (None,) * 5 for d in cur.description)
    codes = [d[1] for d in cur.description]
    assert codes[0] == dbapi.NUMBER and codes[1] == dbapi.STRING and codes[2] == dbapi.NUMBER
    assert codes[3] == dbapi.NUMBER and codes[4] == dbapi.DATETIME
    assert codes[5] == dbapi.DATETIME and codes[6] == dbapi.NUMBER
    assert codes[1] != dbapi.NUMBER and codes[0] != dbapi.STRING
    cur.execute("UPDATE Contacts SET Title = Title WHERE ContactID = ?", [-1])
    assert cur.description is None  # a statement without a result set


def test_rowcount(auto: dbapi.Connection, marker: str) -> None:
    cur = auto.cursor()
    insert(auto, marker, "A", "B", "C")
    cur.execute("SELECT FirstName FROM Contacts WHERE LastName = ?", [marker])
    assert cur.rowcount == 3
    cur.execute("UPDATE Contacts SET Title = ? WHERE LastName = ?", ["T", marker])
    assert cur.rowcount == 3
    cur.executemany("DELETE FROM Contacts WHERE LastName = ? AND FirstName = ?",
                    [(marker, "A"), (marker, "B"), (marker, "nobody")])  # fmt: skip
    assert cur.rowcount == 2
    cur.executemany("DELETE FROM Contacts WHERE LastName = ?", [])
    assert cur.rowcount == 0


# -- cursor: execute ---------------------------------------------------------------------


def test_qmark_parameters_and_values_round_trip(auto: dbapi.Connection, marker: str) -> None:
    cur = auto.cursor()
    cur.execute(
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt, BirthDate, "
        "LeadScore, Title) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ["it's ? a 'quote'", marker, False, CREATED, dbapi.Date(1990, 1, 2), 42, None],
    )
    assert cur.rowcount == 1 and cur.description is None
    cur.execute(
        "SELECT FirstName, IsActive, CreatedAt, BirthDate, LeadScore, Title "
        "FROM Contacts WHERE LastName = ? AND CreatedAt = ? AND BirthDate = ?",
        (marker, dbapi.Timestamp(2024, 5, 1, 13, 45, 7), datetime.date(1990, 1, 2)),
    )
    assert cur.fetchall() == [
        ("it's ? a 'quote'", False, CREATED, datetime.date(1990, 1, 2), 42, None)
    ]


def test_decimals_come_back_as_decimals_where_the_backend_has_them(
    auto: dbapi.Connection, tenant: int, marker: str
) -> None:
    cur = auto.cursor()
    cur.execute(
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt, Revenue) "
        "VALUES (?, ?, ?, ?, ?)",
        ["Dec", marker, True, CREATED, decimal.Decimal("1234.50")],
    )
    cur.execute("SELECT Revenue FROM Contacts WHERE LastName = ?", [marker])
    [(revenue,)] = cur.fetchall()
    # SQLite has no decimal storage: its NUMERIC column answers a float.
    expected = 1234.5 if tenant == 2 else decimal.Decimal("1234.50")
    assert (revenue, type(revenue)) == (expected, type(expected))
    assert cur.description[0][1] == dbapi.NUMBER  # type: ignore[index]


def test_execute_returns_the_cursor_and_named_parameters_work(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    assert cur.execute("SELECT ContactID FROM Contacts WHERE ContactID = @id", {"id": 3}) is cur
    assert cur.fetchall() == [(3,)]


def test_markers_inside_literals_are_not_parameters(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    cur.execute(
        "SELECT ContactID, 'what? :x %s @y' AS Literal FROM Contacts WHERE ContactID = ?", [4]
    )
    assert cur.fetchall() == [(4, "what? :x %s @y")]


def test_wrong_parameters(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    with pytest.raises(dbapi.ProgrammingError) as caught:
        cur.execute("SELECT ContactID FROM Contacts WHERE ContactID = ?", [1, 2])
    assert caught.value.code == "invalid_parameters"
    with pytest.raises(dbapi.ProgrammingError):
        cur.execute("SELECT ContactID FROM Contacts WHERE ContactID = ?", "1")
    with pytest.raises(dbapi.NotSupportedError):
        cur.execute("SELECT ContactID FROM Contacts WHERE ContactID = ?", [dbapi.Binary(b"1")])


def test_executemany_is_one_atomic_batch(
    auto: dbapi.Connection, conn: dbapi.Connection, marker: str
) -> None:
    rows = [("A", marker, True, CREATED), (None, marker, True, CREATED)]  # 2nd: NOT NULL
    with pytest.raises(dbapi.IntegrityError) as caught:
        auto.cursor().executemany(INSERT, rows)
    assert caught.value.details["index"] == 1
    assert names(auto, marker) == []  # the first insert was rolled back with the batch
    insert(conn, marker, *(f"n{i:02}" for i in range(25)))
    conn.commit()
    assert names(auto, marker) == [f"n{i:02}" for i in range(25)]


def test_executemany_returns_output_rows(auto: dbapi.Connection, marker: str) -> None:
    cur = auto.cursor()
    cur.executemany(
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
        "OUTPUT INSERTED.FirstName VALUES (?, ?, ?, ?)",
        [("A", marker, True, CREATED), ("B", marker, True, CREATED)],
    )
    assert cur.rowcount == 2
    assert [d[0] for d in cur.description or ()] == ["FirstName"]
    assert cur.fetchall() == [("A",), ("B",)]


# -- cursor: fetching ----------------------------------------------------------------------


SEVEN = "SELECT ContactID FROM Contacts WHERE ContactID <= ? ORDER BY ContactID"


def test_fetch_without_a_result_set_is_an_error(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    for fetch in (cur.fetchone, cur.fetchmany, cur.fetchall):
        with pytest.raises(dbapi.Error):
            fetch()
    cur.execute("UPDATE Contacts SET Title = Title WHERE ContactID = ?", [-1])
    with pytest.raises(dbapi.ProgrammingError):
        cur.fetchone()


def test_fetchone(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    cur.execute(SEVEN, [2])
    assert cur.fetchone() == (1,)
    assert cur.rownumber == 1
    assert cur.fetchone() == (2,)
    assert cur.fetchone() is None
    cur.execute("SELECT ContactID FROM Contacts WHERE ContactID = ?", [-1])
    assert cur.fetchone() is None and cur.rowcount == 0


def test_fetchmany_honours_size_and_arraysize(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    assert cur.arraysize == 1
    cur.execute(SEVEN, [7])
    assert cur.fetchmany() == [(1,)]
    assert cur.fetchmany(2) == [(2,), (3,)]
    cur.arraysize = 3
    assert cur.fetchmany() == [(4,), (5,), (6,)]
    assert cur.fetchmany() == [(7,)]
    assert cur.fetchmany() == []


def test_fetchall_and_mixed_fetching(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    cur.execute(SEVEN, [7])
    assert cur.fetchone() == (1,)
    assert cur.fetchmany(2) == [(2,), (3,)]
    assert cur.fetchall() == [(4,), (5,), (6,), (7,)]
    assert cur.fetchall() == []
    cur.execute(SEVEN, [3])
    assert list(cur) == [(1,), (2,), (3,)]


def test_cursors_are_independent(auto: dbapi.Connection) -> None:
    one, two = auto.cursor(), auto.cursor()
    one.execute(SEVEN, [2])
    two.execute(SEVEN, [3])
    assert one.fetchall() == [(1,), (2,)] and two.fetchall() == [(1,), (2,), (3,)]


def test_a_closed_cursor_is_unusable(auto: dbapi.Connection) -> None:
    with auto.cursor() as cur:
        cur.execute(SEVEN, [2])
    assert cur.closed
    cur.close()  # idempotent
    for operation in (cur.fetchone, lambda: cur.execute(SEVEN, [1])):
        with pytest.raises(dbapi.InterfaceError):
            operation()


def test_sizes_are_accepted_and_ignored(auto: dbapi.Connection) -> None:
    cur = auto.cursor()
    cur.setinputsizes([None, 10])
    cur.setoutputsize(100)
    cur.setoutputsize(100, 0)
    cur.execute(SEVEN, [1])
    assert cur.fetchall() == [(1,)]


def test_a_truncated_result_is_a_warning(stack: Stack, tenant: int) -> None:
    with connect(stack, tenant, autocommit=True, max_rows=2) as conn:
        cur = conn.cursor()
        with pytest.raises(dbapi.Warning):
            cur.execute(SEVEN, [5])
        assert cur.fetchall() == [(1,), (2,)]  # the rows it did carry


# -- errors ----------------------------------------------------------------------------------


def test_errors_carry_the_services_code_and_the_clients_exception(
    auto: dbapi.Connection,
) -> None:
    with pytest.raises(dbapi.ProgrammingError) as caught:
        auto.cursor().execute("SELEC ContactID FROM Contacts")
    error = caught.value
    assert error.code == "parse_error" and error.status == 400 and error.request_id
    assert isinstance(error.__cause__, client_errors.ParseError)
    assert isinstance(error, auto.ProgrammingError)


def test_wrong_token_tenant_and_statement_class(stack: Stack) -> None:
    cases = [
        ({"token": "not-a-token", "tenant": 2}, dbapi.OperationalError, "unauthenticated"),
        ({"token": FULL_TOKEN, "tenant": "nowhere.example"}, dbapi.OperationalError,
         "unknown_tenant"),
        ({"token": BETA_READ_TOKEN, "tenant": 2}, dbapi.ProgrammingError, "forbidden"),
    ]  # fmt: skip
    for options, cls, code in cases:
        with dbapi.connect(stack.url, autocommit=True, **options) as conn:  # type: ignore[arg-type]
            with pytest.raises(cls) as caught:
                conn.cursor().execute("DELETE FROM Contacts WHERE ContactID = ?", [-1])
            assert caught.value.code == code


def test_an_unreachable_service_is_an_operational_error() -> None:
    conn = dbapi.connect("http://127.0.0.1:9", token="t", tenant=2, autocommit=True)
    with conn, pytest.raises(dbapi.OperationalError) as caught:
        conn.cursor().execute("SELECT 1 AS one")
    assert isinstance(caught.value.__cause__, client_errors.ConnectError)


SLOW = "DbapiSlowRows"
"""Its own name: other modules create and drop theirs on the same tenant."""


@pytest.fixture(scope="module")
def slow_sql(stack: Stack) -> Iterator[str]:
    """A read of PostgreSQL tenant 12 that sleeps an hour: slow by construction."""
    with contextlib.closing(stack.pg.connect(stack.pg_databases[12])) as conn:
        conn.execute(SLOW_VIEW["postgresql"].replace('"SlowRows"', f'"{SLOW}"'))
        conn.commit()
        try:
            # The tenant's metadata may be cached from an earlier test: learn the view.
            with stack.client() as http:
                http.post("/v1/tenants/12/schema/refresh").raise_for_status()
            yield f"SELECT n FROM {SLOW}"
        finally:
            conn.execute(f'DROP VIEW "{SLOW}"')
            conn.commit()
            with stack.client() as http:  # and forget it again, for the next modules
                http.post("/v1/tenants/12/schema/refresh").raise_for_status()


def test_a_timeout_is_operational_and_aborts_the_transaction(
    stack: Stack, slow_sql: str, marker: str
) -> None:
    with connect(stack, 12, timeout_ms=1000) as conn, connect(stack, 12) as other:
        cur = conn.cursor()
        insert(conn, marker, "Ada")
        with pytest.raises(dbapi.OperationalError) as timed_out:
            cur.execute(slow_sql)
        assert timed_out.value.code == "statement_timeout"
        with pytest.raises(dbapi.InternalError) as aborted:
            cur.execute("SELECT 1 AS one")
        assert aborted.value.details["cause"] == "statement_timeout"
        conn.rollback()
        assert names(other, marker) == []
