"""``rewriter.type_names``: the one table of declared type names."""

from __future__ import annotations

import pytest

from rewriter.type_names import DATETIME, DECIMAL, INTEGER, TEXT, TIME, DeclaredType, declared_type


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("numeric(18, 2)", DeclaredType("numeric", DECIMAL, ("18", "2"))),
        ("NVARCHAR(MAX)", DeclaredType("nvarchar", TEXT, ("max",))),
        (
            "timestamp(3) with time zone",
            DeclaredType("timestamp with time zone", DATETIME, ("3",), zoned=True),
        ),
        ("timestamptz", DeclaredType("timestamptz", DATETIME, zoned=True)),
        ("datetime2(7)", DeclaredType("datetime2", DATETIME, ("7",))),
        ("time with time zone", DeclaredType("time with time zone", TIME, zoned=True)),
        ("Character  Varying(50)", DeclaredType("character varying", TEXT, ("50",))),
        ("UNSIGNED BIG INT", DeclaredType("unsigned big int", INTEGER)),
        ("uuid", DeclaredType("uuid", None)),
        ("", DeclaredType("", None)),
    ],
)
def test_declared_type(type_name: str, expected: DeclaredType) -> None:
    assert declared_type(type_name) == expected
