"""The DB-API driver's pure parts: module globals, exceptions and their mapping from
every code the service answers, type objects, parameter and value conversion.

Everything that talks to the service is in tests/e2e/test_dbapi_compliance.py.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import proxy.errors as proxy_errors
import rewriter.errors as rewriter_errors
import tenancy.errors as tenancy_errors
from proxy.client import dbapi
from proxy.client import errors as client_errors
from proxy.client.dbapi.errors import ERRORS, dbapi_class, translate
from proxy.client.dbapi.types import decode_rows, encode_param
from proxy.frontends.http.statuses import status_for

D = dbapi
EXPECTED: dict[str, type[dbapi.Error]] = {
    # the statement is wrong
    "invalid_request": D.ProgrammingError,
    "parse_error": D.ProgrammingError,
    "multiple_statements": D.ProgrammingError,
    "statement_not_allowed": D.ProgrammingError,
    "construct_not_allowed": D.ProgrammingError,
    "cross_database_reference": D.ProgrammingError,
    "unknown_table": D.ProgrammingError,
    "unknown_column": D.ProgrammingError,
    "ambiguous_column": D.ProgrammingError,
    "unfiltered_write": D.ProgrammingError,
    "invalid_parameters": D.ProgrammingError,
    "statement_too_large": D.ProgrammingError,
    "request_too_large": D.ProgrammingError,
    "backend_object_missing": D.ProgrammingError,
    "forbidden": D.ProgrammingError,
    "invalid_custom_field": D.ProgrammingError,
    "unsupported_primary_key": D.ProgrammingError,
    "column_exists": D.ProgrammingError,
    "base_column_protected": D.ProgrammingError,
    # values
    "backend_rejected": D.DataError,
    "invalid_field_value": D.DataError,
    "constraint_violation": D.IntegrityError,
    "construct_not_supported_on_backend": D.NotSupportedError,
    # the service or the database could not
    "unauthenticated": D.OperationalError,
    "unknown_tenant": D.OperationalError,
    "invalid_tenant": D.OperationalError,
    "tenant_misconfigured": D.OperationalError,
    "rate_limited": D.OperationalError,
    "too_many_transactions": D.OperationalError,
    "transaction_not_found": D.OperationalError,
    "transaction_busy": D.OperationalError,
    "backend_unavailable": D.OperationalError,
    "pool_saturated": D.OperationalError,
    "controller_unavailable": D.OperationalError,
    "not_ready": D.OperationalError,
    "statement_timeout": D.OperationalError,
    "column_limit_reached": D.OperationalError,
    "precondition_failed": D.OperationalError,
    "transaction_aborted": D.InternalError,
    # the driver and the service disagree
    "not_found": D.InterfaceError,
    "custom_field_not_found": D.InterfaceError,
    "record_not_found": D.InterfaceError,
    "method_not_allowed": D.InterfaceError,
}
"""Every code the service answers → its PEP 249 class (the spec of ``ERRORS``)."""


# Abstract roots of each hierarchy: never raised themselves.
BASES = {proxy_errors.ProxyError, rewriter_errors.RewriteError, tenancy_errors.TenancyError}


def server_codes() -> dict[str, int]:
    """Every stable code of the server's error classes, with its HTTP status."""
    found: dict[str, int] = {}
    for module in (proxy_errors, rewriter_errors, tenancy_errors):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            ours = cls.__module__ == module.__name__ and issubclass(cls, Exception)
            if not ours or cls in BASES:
                continue
            status, code = status_for(cls("message"))
            if code != "internal_error":
                found[code] = status
    return found


def test_module_globals() -> None:
    assert (dbapi.apilevel, dbapi.threadsafety, dbapi.paramstyle) == ("2.0", 1, "qmark")


def test_the_exception_hierarchy_is_the_peps() -> None:
    assert issubclass(D.Warning, Exception) and not issubclass(D.Warning, D.Error)
    assert issubclass(D.Error, Exception)
    assert issubclass(D.InterfaceError, D.Error)
    assert issubclass(D.DatabaseError, D.Error)
    assert not issubclass(D.InterfaceError, D.DatabaseError)
    for cls in (D.DataError, D.OperationalError, D.IntegrityError, D.InternalError,
                D.ProgrammingError, D.NotSupportedError):  # fmt: skip
        assert issubclass(cls, D.DatabaseError)
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                 "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):  # fmt: skip
        assert getattr(D.Connection, name) is getattr(D, name)


def test_every_server_code_is_expected() -> None:
    # A new code on the server must get a deliberate class here (and in ERRORS if its
    # client family's class is not the right one).
    assert set(server_codes()) <= set(EXPECTED), set(server_codes()) - set(EXPECTED)


@pytest.mark.parametrize(("code", "status"), sorted(server_codes().items()))
def test_every_server_code_maps_to_its_pep_class(code: str, status: int) -> None:
    error = client_errors.error_for(
        status, code, "the message", details={"index": 3}, request_id="rid-1"
    )
    translated = translate(error)
    assert type(translated) is EXPECTED[code]
    assert (translated.code, translated.status) == (code, status)
    assert (translated.message, translated.details, translated.request_id) == (
        "the message", {"index": 3}, "rid-1",
    )  # fmt: skip


def test_a_code_the_client_does_not_know_maps_by_its_status() -> None:
    error = client_errors.error_for(409, "brand_new_conflict", "m")
    assert type(translate(error)) is D.OperationalError
    assert translate(error).code == "brand_new_conflict"
    assert type(translate(client_errors.error_for(400, "brand_new", "m"))) is D.ProgrammingError
    assert type(translate(client_errors.error_for(500, None, "m"))) is D.InternalError


def test_transport_errors_are_operational_and_garbage_is_an_interface_error() -> None:
    assert dbapi_class(client_errors.ConnectError("refused")) is D.OperationalError
    assert dbapi_class(client_errors.ClientTimeout("slow")) is D.OperationalError
    assert dbapi_class(client_errors.ProtocolError("not JSON")) is D.InterfaceError


def test_every_table_entry_is_a_client_class() -> None:
    assert all(issubclass(k, client_errors.TenantgateError) for k in ERRORS)


def test_type_objects_compare_equal_to_their_type_codes() -> None:
    assert D.STRING == "string" and D.STRING == "uuid"
    # The PEP's own idiom: ``description[i][1] == STRING``, the type code on the left.
    assert "string" == D.STRING  # noqa: SIM300
    assert D.NUMBER == "integer" and D.NUMBER == "decimal" and D.NUMBER == "number"
    assert D.NUMBER == "boolean" and D.NUMBER != "string"
    assert D.DATETIME == "date" and D.DATETIME == "datetime" and D.DATETIME == "time"
    assert D.BINARY == "binary" and D.BINARY != "string"
    assert D.ROWID != "integer" and D.STRING != D.NUMBER
    assert len({D.STRING, D.BINARY, D.NUMBER, D.DATETIME, D.ROWID}) == 5


def test_constructors() -> None:
    assert D.Date(2024, 5, 1) == datetime.date(2024, 5, 1)
    assert D.Time(13, 45, 0) == datetime.time(13, 45)
    assert D.Timestamp(2024, 5, 1, 13, 45, 0) == datetime.datetime(2024, 5, 1, 13, 45)
    ticks = time.mktime((2024, 5, 1, 13, 45, 7, 0, 0, -1))
    assert D.DateFromTicks(ticks) == datetime.date(2024, 5, 1)
    assert D.TimeFromTicks(ticks) == datetime.time(13, 45, 7)
    assert D.TimestampFromTicks(ticks) == datetime.datetime(2024, 5, 1, 13, 45, 7)
    assert D.Binary(b"\x00\x01") == b"\x00\x01"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (None, None), (True, True), (7, 7), (1.5, 1.5), ("x", "x"),
        (decimal.Decimal("12.30"), "12.30"),
        (datetime.date(2024, 5, 1), "2024-05-01"),
        (datetime.time(13, 45, 7), "13:45:07"),
        (datetime.datetime(2024, 5, 1, 13, 45, 7), "2024-05-01 13:45:07"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ],
)  # fmt: skip
def test_parameters_are_sent_as_json_values(value: object, sent: object) -> None:
    assert encode_param(value) == sent


def test_parameters_the_api_cannot_carry() -> None:
    with pytest.raises(D.NotSupportedError):
        encode_param(b"bytes")
    with pytest.raises(D.ProgrammingError):
        encode_param(object())
    for value in (float("nan"), float("inf")):
        with pytest.raises(D.DataError):
            encode_param(value)


def test_values_come_back_by_column_type() -> None:
    types = ["integer", "decimal", "date", "datetime", "time", "binary", "uuid", "string"]
    row = [1, "12.30", "2024-05-01", "2024-05-01T13:45:07", "13:45:07", "AAE=",
           "00000000-0000-0000-0000-000000000001", "2024-05-01"]  # fmt: skip
    assert decode_rows([row, [None] * 8], types) == [
        (1, decimal.Decimal("12.30"), datetime.date(2024, 5, 1),
         datetime.datetime(2024, 5, 1, 13, 45, 7), datetime.time(13, 45, 7), b"\x00\x01",
         uuid.UUID(int=1), "2024-05-01"),
        (None,) * 8,
    ]  # fmt: skip
    # A decimal column the backend sent as a JSON number keeps its digits.
    assert decode_rows([[0.1]], ["decimal"]) == [(decimal.Decimal("0.1"),)]


def test_a_value_that_does_not_fit_its_type_is_an_interface_error() -> None:
    with pytest.raises(D.InterfaceError) as caught:
        decode_rows([["not a date"]], ["date"])
    assert "not a date" not in str(caught.value)  # values stay out of errors


def test_the_driver_imports_nothing_of_the_server() -> None:
    # Like proxy.client itself (tests/unit/client/test_protocol.py): a service that only
    # reads through the driver must not pay for the server's modules.
    code = (
        "import sys, proxy.client.dbapi\n"
        "heavy = ('sqlglot', 'rewriter', 'tenancy', 'msgspec', 'starlette', 'pyodbc',"
        " 'psycopg', 'orjson', 'prometheus_client', 'cachetools', 'pandas')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or (m.startswith('proxy.') and not m.startswith('proxy.client')))\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"proxy.client.dbapi imports {done.stdout.strip()}"
