"""SQL Server column types through tenantgate, once per driver, against direct reads.

What each driver returns is in docs/drivers.md; this pins it, so that a driver upgrade
that changes a type shows up here rather than in a caller's JSON.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.auth import Principal
from proxy.pipeline.request import QueryRequest
from tests.support.blocking import BlockingService
from tests.support.tds import TdsServer
from tests.support.tenants import WRITER, service_for

TABLE = """CREATE TABLE dbo.Kinds (
  Id int NOT NULL PRIMARY KEY, D date NULL, Dt2 datetime2 NULL, Dt datetime NULL,
  B bit NULL, M decimal(10,2) NULL, U uniqueidentifier NULL, S nvarchar(40) NULL,
  Vb varbinary(10) NULL, T time NULL, Dto datetimeoffset NULL, Mo money NULL,
  Bi bigint NULL, F float NULL)"""
ROW = (
    "INSERT INTO dbo.Kinds VALUES (1, '2024-05-06', '2024-05-06 07:08:09.678', "
    "'2024-05-06 07:08:09.677', 1, 12.34, 'CF2C8587-0CB5-4FD1-9A2B-2BEAEB710EF0', "
    "N'Zoë 𝄞 Ünal', 0x0001, '07:08:09', '2024-05-06 07:08:09.5 +02:00', 12.34, "
    "9007199254740993, 1.5)"
)


@pytest.fixture
def kinds(
    tmp_path: Path, tds_server: TdsServer, tds_driver: str, tds_database: str
) -> Iterator[tuple[BlockingService, Principal]]:
    with contextlib.closing(tds_server.connect(tds_driver, tds_database)) as conn:
        conn.execute(TABLE)
        conn.execute(ROW)
        conn.execute("INSERT INTO dbo.Kinds (Id) VALUES (2)")
    service = service_for(
        tmp_path / "controller.db", {"kinds.example": tds_server.odbc(tds_driver, tds_database)}
    )
    try:
        yield service, service.auth.authenticate(f"Bearer {WRITER}")
    finally:
        service.close()


def test_every_type_comes_back_as_the_driver_reads_it(
    kinds: tuple[BlockingService, Principal], tds_driver: str
) -> None:
    service, principal = kinds
    out = service.query(principal, QueryRequest("kinds.example", "SELECT * FROM Kinds ORDER BY Id"))
    columns = {c.name: c.type for c in out.result.columns}
    assert columns == {
        "Id": "integer", "D": "date", "Dt2": "datetime", "Dt": "datetime", "B": "boolean",
        "M": "decimal", "U": "string", "S": "string", "Vb": "binary", "T": "time",
        # pyodbc describes the type it cannot convert itself as str; the value is a datetime.
        "Dto": "string", "Mo": "decimal", "Bi": "integer", "F": "number",
    }  # fmt: skip
    row = dict(zip(columns, out.result.rows[0], strict=True))
    assert row["D"] == datetime.date(2024, 5, 6)
    assert row["Dt2"] == datetime.datetime(2024, 5, 6, 7, 8, 9, 678000)
    assert row["Dt"] == datetime.datetime(2024, 5, 6, 7, 8, 9, 677000)
    assert row["B"] is True and row["M"] == decimal.Decimal("12.34")
    assert row["U"] == "CF2C8587-0CB5-4FD1-9A2B-2BEAEB710EF0"
    assert row["S"] == "Zoë 𝄞 Ünal"
    assert isinstance(row["Vb"], bytes | bytearray) and bytes(row["Vb"]) == b"\x00\x01"
    assert row["T"] == datetime.time(7, 8, 9)
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert row["Dto"] == datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, plus_two)
    assert row["Bi"] == 9007199254740993 and row["F"] == 1.5
    assert all(v is None for v in out.result.rows[1][1:])


def test_a_datetime_sent_as_text_keeps_its_fraction_with_both_drivers(
    kinds: tuple[BlockingService, Principal],
) -> None:
    # Requests carry datetimes as ISO strings, which the engine converts exactly. (A
    # Python datetime bound by Microsoft ODBC 18 loses its fraction on Babelfish; JSON
    # requests never bind one, see docs/drivers.md.)
    service, principal = kinds
    sql = "UPDATE Kinds SET Dt2 = ? WHERE Id = 2"
    service.query(principal, QueryRequest("kinds.example", sql, ["2024-01-02T03:04:05.678"]))
    out = service.query(
        principal, QueryRequest("kinds.example", "SELECT Dt2 FROM Kinds WHERE Id = 2")
    )
    assert out.result.rows == [[datetime.datetime(2024, 1, 2, 3, 4, 5, 678000)]]
