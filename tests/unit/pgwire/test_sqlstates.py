"""The wire's SQLSTATE table covers every error code, and backend states pass where precise."""

from __future__ import annotations

import re

import pytest

from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    ConstraintViolation,
    ProxyError,
    StatementTimeout,
    TransactionAborted,
)
from proxy.frontends.http.openapi import ERROR_CODES
from proxy.frontends.pgwire.sqlstates import SQLSTATES, sqlstate_for
from rewriter.errors import SqlParseError, UnknownColumn
from tenancy.errors import MetadataUnavailable, UnknownTenant
from tests.unit.test_errors import error_classes


@pytest.mark.parametrize("cls", list(error_classes()), ids=lambda c: c.__name__)
def test_every_error_class_has_a_sqlstate(cls: type[Exception]) -> None:
    state, code = sqlstate_for(cls("message"))
    assert code != "internal_error", f"{cls.__name__} has no SQLSTATE"
    assert state != "XX000"


def test_every_documented_code_has_a_valid_sqlstate() -> None:
    assert set(SQLSTATES) == set(ERROR_CODES)
    for code, state in SQLSTATES.items():
        assert re.fullmatch(r"[0-9A-Z]{5}", state), code
        assert state[:2] != "00" and state[:2] != "01", f"{code}: not an error class"


def test_foreign_exceptions_are_internal_errors() -> None:
    assert sqlstate_for(ZeroDivisionError()) == ("XX000", "internal_error")
    assert sqlstate_for(ProxyError("the abstract root")) == ("XX000", "internal_error")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SqlParseError("x"), ("42601", "parse_error")),
        (UnknownColumn("x"), ("42703", "unknown_column")),
        (UnknownTenant("x"), ("3D000", "unknown_tenant")),
        (MetadataUnavailable("x"), ("08006", "backend_unavailable")),
        (StatementTimeout("x", sqlstate="57014"), ("57014", "statement_timeout")),
        (TransactionAborted("x", reason="idle_timeout"), ("25P02", "transaction_aborted")),
        # the backend's own, more precise state
        (ConstraintViolation("x", sqlstate="23505"), ("23505", "constraint_violation")),
        (ConstraintViolation("x"), ("23000", "constraint_violation")),
        (BackendRejected("x", sqlstate="22012"), ("22012", "backend_rejected")),
        (BackendRejected("x", sqlstate="42883"), ("42883", "backend_rejected")),
        (BackendRejected("x"), ("22000", "backend_rejected")),
        (BackendUnavailable("x", sqlstate="40001"), ("40001", "backend_unavailable")),
        (ConnectionLost("x", sqlstate="57P01"), ("57P01", "backend_unavailable")),
        # not forwarded: ODBC's own, the backend login's, an internal error's, garbage
        (BackendRejected("x", sqlstate="42S22"), ("22000", "backend_rejected")),
        (BackendRejected("x", sqlstate="HY000"), ("22000", "backend_rejected")),
        (BackendUnavailable("x", sqlstate="28P01"), ("08006", "backend_unavailable")),
        (BackendUnavailable("x", sqlstate="XX000"), ("08006", "backend_unavailable")),
        (ConstraintViolation("x", sqlstate="2350"), ("23000", "constraint_violation")),
        (ConstraintViolation("x", sqlstate="42P01"), ("23000", "constraint_violation")),
        (
            BackendObjectMissing("x", sqlstate="42S22", object_kind="column"),
            ("42703", "backend_object_missing"),
        ),
        (
            BackendObjectMissing("x", sqlstate="42S02", object_kind="table"),
            ("42P01", "backend_object_missing"),
        ),
    ],
    ids=repr,
)
def test_sqlstate_for(error: BaseException, expected: tuple[str, str]) -> None:
    assert sqlstate_for(error) == expected
