"""The streamed formats' encoders (``proxy.frontends.http.stream``), without a server."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from proxy.frontends.http.stream import CSV, NDJSON, _csv_line, _ndjson_rows, wanted
from proxy.jsonenc import dumps
from proxy.pipeline.stream import batch_rows_for


def test_ndjson_rows_are_the_json_rows_one_a_line() -> None:
    batch: list[list[object]] = [
        [1, "plain", None],
        [2, 'tricky "],[" \x00 \n text', decimal.Decimal("1.10")],
        [3, "", datetime.date(2024, 2, 29)],
        [],
    ]
    encoded = _ndjson_rows(batch)
    assert encoded == b"".join(dumps(row) + b"\n" for row in batch)
    assert [json.loads(line) for line in encoded.splitlines()][1][1] == batch[1][1]
    assert _ndjson_rows([[7]]) == b"[7]\n"
    assert _ndjson_rows([]) == b""


def test_csv_lines() -> None:
    assert _csv_line([1, "a", None, "", True, decimal.Decimal("2.50")]) == '1,a,,"",true,2.50\r\n'
    assert _csv_line(['say "hi"', "a,b", "two\nlines", "#hash"]) == (
        '"say ""hi""","a,b","two\nlines","#hash"\r\n'
    )
    assert _csv_line([datetime.datetime(2024, 1, 2, 3, 4, 5), b"\x01\x02"]) == (
        "2024-01-02T03:04:05,AQI=\r\n"
    )


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, None),
        ("application/json", None),
        ("application/x-ndjson", NDJSON),
        ("text/csv; charset=utf-8", CSV),
        ("application/json, application/X-NDJSON;q=0.5", NDJSON),
        ("text/csv, application/x-ndjson", NDJSON),
        ("*/*", None),
    ],
)
def test_wanted(accept: str | None, media: str | None) -> None:
    assert wanted(accept) == media


@pytest.mark.parametrize(
    ("columns", "rows"), [(0, 1000), (1, 1000), (20, 1000), (21, 952), (818, 24), (5000, 10)]
)
def test_wide_rows_make_smaller_batches(columns: int, rows: int) -> None:
    assert batch_rows_for(columns) == rows
