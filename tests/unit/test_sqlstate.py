"""SQLSTATE translation, on pyodbc.Error instances shaped exactly as the drivers raise them.

The ``args`` below are copied from errors that psqlODBC 13.02 / PostgreSQL 15 and
sqliteodbc 0.9998 raised on this machine, except those marked (spec) (SQL Server's)
and the two made-up ones at the end (an unlisted class, an unlisted driver state).
"""

from __future__ import annotations

import pyodbc
import pytest

from proxy.drivers.odbc.sqlstate import clean_message, is_broken, sqlstate_of, translate
from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    ConstraintViolation,
    PoolSaturated,
    ProxyError,
    StatementTimeout,
)
from proxy.frontends.http.statuses import status_for

PG_EXEC = ";\nError while executing the query (1) (SQLExecDirectW)"
PG_LOST = ";\nThe connection has been lost (35) (SQLExecDirectW)"
CLOSED_UNEXPECTEDLY = (
    "server closed the connection unexpectedly\n\tThis probably means the server "
    "terminated abnormally\n\tbefore or while processing the request.\n"
)

CASES: list[tuple[str, type[pyodbc.Error], tuple[str, ...], type[ProxyError], bool, str]] = [
    # name, pyodbc class, args, expected class, broken, expected message
    (
        "pg division by zero",
        pyodbc.DataError,
        ("22012", "[22012] ERROR: division by zero" + PG_EXEC),
        BackendRejected,
        False,
        "division by zero",
    ),
    (
        "pg bad cast",
        pyodbc.DataError,
        ("22P02", '[22P02] ERROR: invalid input syntax for type integer: "x"' + PG_EXEC),
        BackendRejected,
        False,
        'invalid input syntax for type integer: "x"',
    ),
    (
        "pg syntax",
        pyodbc.ProgrammingError,
        ("42601", '[42601] ERROR: syntax error at or near "selec"' + PG_EXEC),
        BackendRejected,
        False,
        'syntax error at or near "selec"',
    ),
    (
        "pg unknown function",
        pyodbc.ProgrammingError,
        ("42883", "[42883] ERROR: function nosuchfn(integer) does not exist" + PG_EXEC),
        BackendRejected,
        False,
        "function nosuchfn(integer) does not exist",
    ),
    (
        "pg unknown column",
        pyodbc.ProgrammingError,
        ("42703", '[42703] ERROR: column "nocol" does not exist' + PG_EXEC),
        BackendObjectMissing,
        False,
        'column "nocol" does not exist',
    ),
    (
        "pg unknown table",
        pyodbc.ProgrammingError,
        ("42P01", '[42P01] ERROR: relation "nosuch" does not exist' + PG_EXEC),
        BackendObjectMissing,
        False,
        'relation "nosuch" does not exist',
    ),
    (
        "pg unique",
        pyodbc.IntegrityError,
        (
            "23505",
            '[23505] ERROR: duplicate key value violates unique constraint "t_pkey"\n'
            "DETAIL: Key (id)=(1) already exists." + PG_EXEC,
        ),
        ConstraintViolation,
        False,
        'duplicate key value violates unique constraint "t_pkey"',
    ),
    (
        "pg not null",
        pyodbc.IntegrityError,
        (
            "23502",
            '[23502] ERROR: null value in column "n" of relation "t" violates not-null '
            "constraint\nDETAIL: Failing row contains (2, null, 1)." + PG_EXEC,
        ),
        ConstraintViolation,
        False,
        'null value in column "n" of relation "t" violates not-null constraint',
    ),
    (
        "pg read only",
        pyodbc.ProgrammingError,
        (
            "25006",
            "[25006] ERROR: cannot execute CREATE TABLE in a read-only transaction" + PG_EXEC,
        ),
        BackendRejected,
        False,
        "cannot execute CREATE TABLE in a read-only transaction",
    ),
    (
        "pg user exception",
        pyodbc.Error,
        ("P0001", "[P0001] ERROR: plain" + PG_EXEC),
        BackendRejected,
        False,
        "plain",
    ),
    (
        "pg statement timeout",
        pyodbc.Error,
        ("57014", "[57014] ERROR: canceling statement due to statement timeout" + PG_EXEC),
        StatementTimeout,
        False,
        "the statement was cancelled: it ran past its timeout",
    ),
    (
        "pg cancel",
        pyodbc.Error,
        ("57014", "[57014] ERROR: canceling statement due to user request" + PG_EXEC),
        StatementTimeout,
        False,
        "the statement was cancelled: it ran past its timeout",
    ),
    (
        "pg serialization",
        pyodbc.Error,
        ("40001", "[40001] ERROR: ser" + PG_EXEC),
        BackendUnavailable,
        False,
        "the backend asks to retry: ser",
    ),
    (
        "pg deadlock",
        pyodbc.Error,
        ("40P01", "[40P01] ERROR: dl" + PG_EXEC),
        BackendUnavailable,
        False,
        "the backend asks to retry: dl",
    ),
    (
        "pg too many connections",
        pyodbc.Error,
        ("53300", "[53300] ERROR: too many" + PG_EXEC),
        BackendUnavailable,
        False,
        "the backend is unavailable: too many",
    ),
    (
        "pg terminated",
        pyodbc.Error,
        ("57P01", "[57P01] FATAL: terminating connection due to administrator command" + PG_LOST),
        ConnectionLost,
        True,
        "the connection to the backend failed: terminating connection due to administrator command",
    ),
    (
        "pg crash of another backend",
        pyodbc.Error,
        ("57P02", "[57P02] " + CLOSED_UNEXPECTEDLY + PG_LOST),
        ConnectionLost,
        True,
        "the connection to the backend failed: server closed the connection unexpectedly",
    ),
    (
        "pg after loss",
        pyodbc.OperationalError,
        ("08S01", "[08S01] SQLExecDirectW unable due to the connection lost (35) (SQLExecDirectW)"),
        ConnectionLost,
        True,
        "the connection to the backend failed: SQLExecDirectW unable due to the connection lost",
    ),
    (
        "pg lost synchronization",
        pyodbc.OperationalError,
        (
            "08S01",
            '[08S01] lost synchronization with server: got message type ";\n'
            "The connection has been lost (35) (SQLExecDirectW)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: "
        'lost synchronization with server: got message type "',
    ),
    (
        "pg connect refused",
        pyodbc.OperationalError,
        (
            "08001",
            '[08001] connection to server at "127.0.0.1", port 52473 failed: Connection '
            "refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"
            " (101) (SQLDriverConnect)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: Connection refused",
    ),
    (
        "pg login timeout",
        pyodbc.OperationalError,
        (
            "08001",
            '[08001] connection to server at "127.0.0.1", port 35857 failed: timeout '
            "expired\n (101) (SQLDriverConnect)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: timeout expired",
    ),
    (
        "psqlodbc lost connection under HY000 (assumed)",
        pyodbc.Error,
        ("HY000", "[HY000] Could not send Query(connection dead) (26) (SQLExecDirectW)"),
        ConnectionLost,
        True,
        "the connection to the backend failed: Could not send Query(connection dead)",
    ),
    (
        "psqlodbc connection.timeout",
        pyodbc.Error,
        (
            "HY000",
            "[HY000] Couldn't set unsupported connect attribute 113 (216) (SQLSetConnectAttr)",
        ),
        BackendUnavailable,
        False,
        "the backend is unavailable: Couldn't set unsupported connect attribute 113",
    ),
    (
        "sqlite no such column",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]no such column: nocol (1) (1) (SQLExecDirectW)"),
        BackendObjectMissing,
        False,
        "no such column: nocol",
    ),
    (
        "sqlite no such table",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]no such table: nosuch (1) (1) (SQLExecDirectW)"),
        BackendObjectMissing,
        False,
        "no such table: nosuch",
    ),
    (
        "sqlite syntax",
        pyodbc.Error,
        ("HY000", '[HY000] [SQLite]near "selec": syntax error (1) (1) (SQLExecDirectW)'),
        BackendRejected,
        False,
        'near "selec": syntax error',
    ),
    (
        "sqlite unique",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]UNIQUE constraint failed: t.id (19) (19) (SQLExecDirectW)"),
        ConstraintViolation,
        False,
        "UNIQUE constraint failed: t.id",
    ),
    (
        "sqlite foreign key",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]FOREIGN KEY constraint failed (19) (19) (SQLExecDirectW)"),
        ConstraintViolation,
        False,
        "FOREIGN KEY constraint failed",
    ),
    (
        "sqlite locked",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]database is locked (5) (5) (SQLExecDirectW)"),
        BackendUnavailable,
        False,
        "the backend asks to retry: database is locked",
    ),
    (
        "sqlite interrupted, not by us",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]interrupted (9) (9) (SQLExecDirectW)"),
        BackendUnavailable,
        False,
        "the statement was interrupted: interrupted",
    ),
    (
        "sqlite cannot open",
        pyodbc.Error,
        ("HY000", "[HY000] [SQLite]connect failed (14) (SQLDriverConnect)"),
        BackendUnavailable,
        False,
        "the backend is unavailable: connect failed",
    ),
    (
        "pyodbc closed connection",
        pyodbc.ProgrammingError,
        ("Attempt to use a closed connection.",),
        ConnectionLost,
        True,
        "the connection to the backend failed: Attempt to use a closed connection.",
    ),
    (
        "pyodbc parameter count",
        pyodbc.ProgrammingError,
        ("The SQL contains 1 parameter markers, but 2 parameters were supplied", "HY000"),
        BackendRejected,
        False,
        "The SQL contains 1 parameter markers, but 2 parameters were supplied",
    ),
    (
        "sql server invalid column (spec)",
        pyodbc.ProgrammingError,
        (
            "42S22",
            "[42S22] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid column "
            "name 'nocol'. (207) (SQLExecDirectW)",
        ),
        BackendObjectMissing,
        False,
        "Invalid column name 'nocol'.",
    ),
    (
        "sql server query timeout (spec)",
        pyodbc.OperationalError,
        (
            "HYT00",
            "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Query timeout expired (0) "
            "(SQLExecDirectW)",
        ),
        StatementTimeout,
        False,
        "the statement was cancelled: it ran past its timeout",
    ),
    # Babelfish 4.4 (T-SQL on PostgreSQL 16) through Microsoft ODBC 18.6 and FreeTDS 1.3,
    # seen on this machine: PostgreSQL's texts under 42000 with Babelfish's own number.
    (
        "babelfish unknown column (ms odbc 18)",
        pyodbc.ProgrammingError,
        (
            "42000",
            '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]column "nope" does '
            "not exist (33557097) (SQLExecDirectW)",
        ),
        BackendObjectMissing,
        False,
        'column "nope" does not exist',
    ),
    (
        "babelfish unknown qualified column",
        pyodbc.ProgrammingError,
        (
            "42000",
            "[42000] [FreeTDS][SQL Server]column contacts.churn_6_1 does not exist (33557097) "
            "(SQLExecDirectW)",
        ),
        BackendObjectMissing,
        False,
        "column contacts.churn_6_1 does not exist",
    ),
    (
        "babelfish unknown SET target",
        pyodbc.ProgrammingError,
        (
            "42000",
            '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]column "churn_6_1" '
            'of relation "contacts" does not exist (33557097) (SQLExecDirectW)',
        ),
        BackendObjectMissing,
        False,
        'column "churn_6_1" of relation "contacts" does not exist',
    ),
    (
        "babelfish unknown table (freetds)",
        pyodbc.ProgrammingError,
        (
            "42000",
            '[42000] [FreeTDS][SQL Server]relation "t1_dbo.nope" does not exist (33557097) '
            "(SQLExecDirectW)",
        ),
        BackendObjectMissing,
        False,
        'relation "t1_dbo.nope" does not exist',
    ),
    (
        "babelfish unknown function is not stale metadata",
        pyodbc.ProgrammingError,
        (
            "42000",
            "[42000] [FreeTDS][SQL Server]procedure selec(integer) does not exist (33557097) "
            "(SQLExecDirectW)",
        ),
        BackendRejected,
        False,
        "procedure selec(integer) does not exist",
    ),
    (
        "sql server invalid object (spec)",
        pyodbc.ProgrammingError,
        (
            "42S02",
            "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid object "
            "name 'db.dbo.Nope'. (208) (SQLExecDirectW)",
        ),
        BackendObjectMissing,
        False,
        "Invalid object name 'db.dbo.Nope'.",
    ),
    (
        "a number inside the text is not the native error",
        pyodbc.DataError,
        (
            "22001",
            "[22001] [FreeTDS][SQL Server]value too long for type character varying(208) "
            "(33557097) (SQLExecDirectW)",
        ),
        BackendRejected,
        False,
        # The cleaner drops every trailing "(n)", the type's length with the numbers.
        "value too long for type character varying",
    ),
    (
        "sql server duplicate key",
        pyodbc.IntegrityError,
        (
            "23000",
            "[23000] [FreeTDS][SQL Server]duplicate key value violates unique constraint "
            '"t_pkey" (2627) (SQLExecDirectW)',
        ),
        ConstraintViolation,
        False,
        'duplicate key value violates unique constraint "t_pkey"',
    ),
    (
        "sql server deadlock victim (spec)",
        pyodbc.Error,
        (
            "40001",
            "[40001] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Transaction "
            "(Process ID 57) was deadlocked on lock resources with another process and has "
            "been chosen as the deadlock victim. Rerun the transaction. (1205) "
            "(SQLExecDirectW)",
        ),
        BackendUnavailable,
        False,
        "the backend asks to retry: Transaction (Process ID 57) was deadlocked on lock "
        "resources with another process and has been chosen as the deadlock victim. Rerun "
        "the transaction.",
    ),
    (
        "freetds session killed",
        pyodbc.Error,
        (
            "01000",
            "[01000] [FreeTDS][SQL Server]Unexpected EOF from the server (20017) (SQLExecDirectW)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: Unexpected EOF from the server",
    ),
    (
        "freetds idle session killed",
        pyodbc.Error,
        ("HY000", "[HY000] [FreeTDS][SQL Server]Unknown error (0) (SQLExecDirectW)"),
        ConnectionLost,
        True,
        "the connection to the backend failed: Unknown error",
    ),
    (
        "ms odbc 18 session killed",
        pyodbc.OperationalError,
        (
            "08S01",
            "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: Error code "
            "0x2746 (10054) (SQLExecDirectW)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: TCP Provider: Error code 0x2746",
    ),
    (
        "ms odbc 18 after an unacknowledged cancel",
        pyodbc.OperationalError,
        (
            "08S01",
            "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]The connection is no longer "
            "usable because the server failed to respond to a command cancellation for a "
            "previously executed statement in a timely manner. (0) (SQLExecDirectW)",
        ),
        ConnectionLost,
        True,
        "the connection to the backend failed: The connection is no longer usable because "
        "the server failed to respond to a command cancellation for a previously executed "
        "statement in a timely manner.",
    ),
    (
        "pyodbc unbindable parameter",
        pyodbc.ProgrammingError,
        ("Invalid parameter type.  param-index=0 param-type=dict", "HY105"),
        BackendRejected,
        False,
        "Invalid parameter type.  param-index=0 param-type=dict",
    ),
    (
        "unknown server class",
        pyodbc.Error,
        ("F0000", "[F0000] ERROR: config file error" + PG_EXEC),
        BackendRejected,
        False,
        "config file error",
    ),
    (
        "unknown driver state",
        pyodbc.Error,
        ("HY001", "[HY001] Memory allocation error (0) (SQLExecDirectW)"),
        BackendUnavailable,
        False,
        "the backend is unavailable: Memory allocation error",
    ),
]


@pytest.mark.parametrize(
    ("cls", "args", "expected", "broken", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_translate(
    cls: type[pyodbc.Error],
    args: tuple[str, ...],
    expected: type[ProxyError],
    broken: bool,
    message: str,
) -> None:
    exc = cls(*args)
    error = translate(exc)
    assert type(error) is expected
    assert error.message == message
    assert is_broken(exc) is broken
    assert error.__cause__ is exc
    assert is_broken(error) is broken
    assert "(SQLExecDirectW)" not in error.message and "[SQLite]" not in error.message
    status, code = status_for(error)
    assert status != 500 and code == error.code  # never an internal error


def test_sqlstate_detail_hides_useless_hy000() -> None:
    exc = pyodbc.Error("HY000", "[HY000] [SQLite]no such column: x (1) (1) (SQLExecDirectW)")
    assert "sqlstate" not in translate(exc).details
    pg = pyodbc.DataError("22012", "[22012] ERROR: division by zero" + PG_EXEC)
    assert translate(pg).details == {"sqlstate": "22012"}


def test_object_missing_details() -> None:
    column = translate(
        pyodbc.ProgrammingError("42703", '[42703] ERROR: column "nocol" does not exist' + PG_EXEC)
    )
    assert column.details["object_kind"] == "column"
    assert column.details["object_name"] == "nocol"
    table = translate(
        pyodbc.Error("HY000", "[HY000] [SQLite]no such table: main.nosuch (1) (1) (SQLExecDirectW)")
    )
    assert table.details["object_kind"] == "table"
    assert table.details["object_name"] == "main.nosuch"


def test_timed_out_wins_but_broken_stays_broken() -> None:
    interrupted = pyodbc.Error("HY000", "[HY000] [SQLite]interrupted (9) (9) (SQLExecDirectW)")
    assert isinstance(translate(interrupted, timed_out=True), StatementTimeout)
    lost = pyodbc.OperationalError(
        "08S01", "[08S01] SQLExecDirectW unable due to the connection lost (35) (SQLExecDirectW)"
    )
    error = translate(lost, timed_out=True)
    assert isinstance(error, StatementTimeout)
    assert is_broken(error)  # through __cause__


def test_retry_after() -> None:
    assert translate(pyodbc.Error("40P01", "[40P01] ERROR: dl" + PG_EXEC)).retry_after == 0.5
    assert translate(pyodbc.OperationalError("08S01", "[08S01] x (35)")).retry_after == 1.0
    assert translate(pyodbc.DataError("22012", "[22012] ERROR: x" + PG_EXEC)).retry_after is None


def test_secrets_are_masked() -> None:
    raw = (
        "[IM002] [unixODBC]bad DSN Driver={X};Server=h;Uid=u;Pwd={s3cr;et};x=1 "
        "(0) (SQLDriverConnect)"
    )
    error = translate(pyodbc.InterfaceError("IM002", raw))
    assert "s3cr" not in error.message
    assert "Pwd=***" in error.message
    assert clean_message("password=hunter2 and more") == "password=*** and more"


def test_message_is_capped() -> None:
    exc = pyodbc.OperationalError(
        "08S01",
        "[08S01] The connection is down\nFailed to send '" + "x" * 2000 + "' (26) (SQLColumns)",
    )
    error = translate(exc)
    assert error.message == "the connection to the backend failed: The connection is down"
    long = translate(pyodbc.Error("P0001", "[P0001] ERROR: " + "y" * 1000 + PG_EXEC))
    assert len(long.message) <= 300


def test_sqlstate_of() -> None:
    assert sqlstate_of(pyodbc.Error("08S01", "x")) == "08S01"
    assert sqlstate_of(pyodbc.ProgrammingError("The SQL contains 1", "HY000")) == "HY000"
    assert sqlstate_of(pyodbc.ProgrammingError("Attempt to use a closed cursor.")) is None


def test_is_broken_ignores_other_errors() -> None:
    assert not is_broken(ValueError("x"))
    assert not is_broken(PoolSaturated("x"))
    assert is_broken(ConnectionLost("x"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = pyodbc.OperationalError("08S01", "[08S01] gone (35)")
    assert is_broken(wrapped)
