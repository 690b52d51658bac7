"""A real consumer of the DB-API driver: pandas ``read_sql`` on tenant tables.

pandas takes any PEP 249 connection through its generic path (the one it uses for
sqlite3): ``cursor.execute(sql, params)``, ``description`` for the column names and
``fetchall`` / ``fetchmany`` for the rows. It warns that such connections are "not
tested" by pandas; these tests are that test. The frame's dtypes come from the
Python values the driver hands over, so they check its conversions as well: integers,
booleans, datetimes as ``datetime64``, decimals as ``Decimal`` (or floats, pandas'
default ``coerce_float``), dates as ``datetime.date``. Values are compared with a read
straight from the tenant's database.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from proxy.client import dbapi
from tests.e2e.test_service import direct_rows
from tests.support.stack import FULL_TOKEN, Stack

pytestmark = pytest.mark.e2e

NOT_TESTED = "Other DBAPI2 objects are not tested"
COLUMNS = ["ContactID", "FirstName", "LeadScore", "Revenue", "BirthDate", "IsActive", "CreatedAt"]
SELECT = f"SELECT {', '.join(COLUMNS)} FROM Contacts"


@pytest.fixture(params=[pytest.param(2, id="sqlite"), pytest.param(12, id="postgresql")])
def tenant(request: pytest.FixtureRequest) -> int:
    customer_id: int = request.param
    return customer_id


@pytest.fixture
def conn(stack: Stack, tenant: int) -> Iterator[dbapi.Connection]:
    with dbapi.connect(stack.url, token=FULL_TOKEN, tenant=tenant, autocommit=True) as c:
        yield c


def read_sql(conn: dbapi.Connection, sql: str, **options: object) -> pd.DataFrame:
    with pytest.warns(UserWarning, match=NOT_TESTED):
        frame: pd.DataFrame = pd.read_sql(sql, conn, **options)
    return frame


def test_dtypes_and_values_of_known_rows(conn: dbapi.Connection, tenant: int) -> None:
    marker = f"pandas-{uuid.uuid4().hex[:10]}"
    created = datetime.datetime(2024, 5, 1, 13, 45, 7)
    conn.cursor().executemany(
        "INSERT INTO Contacts (FirstName, LastName, LeadScore, Revenue, BirthDate, IsActive, "
        "CreatedAt) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("Ada", marker, 90, decimal.Decimal("1234.50"), datetime.date(1815, 12, 10), True,
             created),
            ("Bob", marker, None, None, None, False, created + datetime.timedelta(days=1)),
        ],
    )  # fmt: skip
    frame = read_sql(
        conn, f"{SELECT} WHERE LastName = ? ORDER BY FirstName", params=[marker]
    ).set_index("FirstName")
    assert list(frame.columns) == [c for c in COLUMNS if c != "FirstName"]
    assert frame.dtypes["ContactID"] == "int64"
    assert frame.dtypes["LeadScore"] == "float64"  # a NULL makes it NaN
    assert frame.dtypes["Revenue"] == "float64"  # coerce_float: pandas' default
    assert frame.dtypes["BirthDate"] == "object"
    assert frame.dtypes["IsActive"] == "bool"
    assert frame.dtypes["CreatedAt"] == "datetime64[us]"
    ada, bob = frame.loc["Ada"], frame.loc["Bob"]
    assert (ada.LeadScore, ada.Revenue, ada.IsActive) == (90.0, 1234.5, True)
    assert ada.BirthDate == datetime.date(1815, 12, 10)
    assert ada.CreatedAt == pd.Timestamp(created)
    assert pd.isna(bob.LeadScore) and pd.isna(bob.Revenue) and bob.BirthDate is None
    assert bob.IsActive == False  # noqa: E712 - numpy's bool
    assert bob.CreatedAt == pd.Timestamp(2024, 5, 2, 13, 45, 7)

    exact = read_sql(
        conn, f"{SELECT} WHERE LastName = ? ORDER BY FirstName", params=[marker],
        coerce_float=False,
    )  # fmt: skip
    revenue = exact["Revenue"][0]
    # SQLite keeps NUMERIC as a float; PostgreSQL's numeric arrives as a Decimal.
    assert revenue == (1234.5 if tenant == 2 else decimal.Decimal("1234.50"))


def test_seeded_rows_match_a_direct_read(conn: dbapi.Connection, stack: Stack, tenant: int) -> None:
    frame = read_sql(
        conn, f"{SELECT} WHERE ContactID <= ? ORDER BY ContactID", params=[50],
        coerce_float=False, index_col="ContactID",
    )  # fmt: skip
    assert len(frame) == 50 and list(frame.index) == list(range(1, 51))
    quoted = ", ".join(f'"{c}"' for c in COLUMNS)
    direct = direct_rows(
        stack, tenant, f'SELECT {quoted} FROM "Contacts" WHERE "ContactID" <= ? '
        'ORDER BY "ContactID"', 50,
    )  # fmt: skip

    def as_json(row: tuple[object, ...]) -> list[object]:
        # The direct read is JSON-encoded as the service encodes it: compare in that form.
        out: list[object] = []
        for value in row:
            if value is None or (isinstance(value, float) and pd.isna(value)):
                out.append(None)
            elif isinstance(value, pd.Timestamp | datetime.date):
                out.append(value.isoformat())
            elif isinstance(value, decimal.Decimal):
                out.append(str(value))
            else:
                out.append(value.item() if hasattr(value, "item") else value)
        return out

    got = [
        as_json((int(i), *row))
        for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    assert got == direct


def test_chunks(conn: dbapi.Connection) -> None:
    sql = "SELECT ContactID FROM Contacts WHERE ContactID <= ? ORDER BY ContactID"
    with pytest.warns(UserWarning, match=NOT_TESTED):
        chunks = list(pd.read_sql(sql, conn, params=[7], chunksize=3))
    assert [list(c["ContactID"]) for c in chunks] == [[1, 2, 3], [4, 5, 6], [7]]


def test_a_failing_query_raises_the_drivers_error(conn: dbapi.Connection) -> None:
    with pytest.warns(UserWarning, match=NOT_TESTED), pytest.raises(dbapi.ProgrammingError):
        pd.read_sql("SELECT NoSuchColumn FROM Contacts", conn)
