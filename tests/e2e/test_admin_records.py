"""End to end over HTTP: custom-field administration and the records API on a SQLite
tenant (beta.example, 2), a PostgreSQL tenant (pg12.example, 12) and a SQL Server tenant
per ODBC driver (the ``tenant`` fixture of tests/e2e/conftest.py).

The stack is shared by the whole session: fields are added under unique names to
``Opportunities`` (whose custom fields no other test counts) and dropped again, and
records are only ones these tests insert."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.stack import BETA_READ_TOKEN, Stack

pytestmark = pytest.mark.e2e


def fields_url(tenant: int, table: str = "Opportunities") -> str:
    return f"/v1/tenants/{tenant}/tables/{table}/custom-fields"


def records_url(tenant: int, table: str = "Contacts") -> str:
    return f"/v1/tenants/{tenant}/tables/{table}/records"


@pytest.fixture
def field_name(stack: Stack, tenant: int) -> Iterator[str]:
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    yield name
    with stack.client() as c:
        c.delete(f"{fields_url(tenant)}/{name}")  # gone already in most tests


def test_add_list_query_drop_custom_field(stack: Stack, tenant: int, field_name: str) -> None:
    with stack.client() as c:
        r = c.post(
            fields_url(tenant),
            json={"name": field_name, "type": "decimal", "precision": 9, "scale": 2,
                  "nullable": False, "default": "1.50"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json()["name"] == field_name and r.json()["type"] == "decimal"
        listed = c.get(fields_url(tenant)).json()
        assert field_name in [f["name"] for f in listed["custom_fields"]]
        r = c.post("/v1/query", json={
            "tenant": tenant, "sql": f"SELECT MIN({field_name}) FROM Opportunities"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert float(r.json()["rows"][0][0]) == 1.5
        again = c.post(fields_url(tenant), json={"name": field_name.upper(), "type": "integer"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "column_exists"
        r = c.delete(f"{fields_url(tenant)}/{field_name}")
        assert r.status_code == 200, r.text
        r = c.post("/v1/query", json={
            "tenant": tenant, "sql": f"SELECT {field_name} FROM Opportunities"})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_column"


def test_admin_refusals_have_clear_codes(stack: Stack, tenant: int) -> None:
    with stack.client() as c:
        cases: list[tuple[str, str, Any, int, str]] = [
            ("post", fields_url(tenant), {"name": "1bad", "type": "integer"}, 400,
             "invalid_custom_field"),
            ("post", fields_url(tenant), {"name": "ok", "type": "integer", "nullable": False},
             400, "invalid_custom_field"),
            ("post", fields_url(tenant), {"name": "Name", "type": "integer"}, 409,
             "column_exists"),
            ("delete", f"{fields_url(tenant)}/Stage", None, 409, "base_column_protected"),
            ("delete", f"{fields_url(tenant)}/no_such_field", None, 404,
             "custom_field_not_found"),
            ("get", fields_url(tenant, "Nope"), None, 400, "unknown_table"),
        ]  # fmt: skip
        for method, url, body, status, code in cases:
            r = c.request(method, url, json=body) if body is not None else c.request(method, url)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (url, r.text)
    with stack.client(BETA_READ_TOKEN) as c:
        r = c.get(fields_url(2))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = c.post(fields_url(2), json={"name": "x", "type": "integer"})
        assert r.status_code == 403


def test_records_insert_get_patch_with_etag(stack: Stack, tenant: int) -> None:
    first = f"rec-{uuid.uuid4().hex[:8]}"
    with stack.client() as c:
        r = c.post(records_url(tenant), json={
            "FirstName": first, "LastName": "Record", "IsActive": True,
            "CreatedAt": "2024-05-01 10:00:00"})  # fmt: skip
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        assert r.headers["location"].endswith(f"/records/{key}")
        r = c.get(f"{records_url(tenant)}/{key}")
        assert r.status_code == 200, r.text
        assert r.json()["FirstName"] == first and "Custom_Region" not in r.json()
        etag = r.headers["etag"]
        full = c.get(f"{records_url(tenant)}/{key}", params={"custom": "true"})
        assert "Custom_Region" in full.json() and full.headers["etag"] != etag

        r = c.patch(f"{records_url(tenant)}/{key}", json={"LastName": "Changed",
                    "Custom_Region": "Mars"}, headers={"If-Match": etag})  # fmt: skip
        assert r.status_code == 200, r.text
        # The answer has the scope of the If-Match it was given: base fields only.
        assert r.json()["LastName"] == "Changed" and "Custom_Region" not in r.json()
        new_etag = r.headers["etag"]
        full = c.get(f"{records_url(tenant)}/{key}", params={"custom": "true"})
        assert full.json()["Custom_Region"] == "Mars"
        # The old ETag is stale now.
        r = c.patch(f"{records_url(tenant)}/{key}", json={"LastName": "Lost"},
                    headers={"If-Match": etag})  # fmt: skip
        assert r.status_code == 412 and r.json()["error"]["code"] == "precondition_failed"
        r = c.patch(f"{records_url(tenant)}/{key}?custom=true", json={"Title": "ok"},
                    headers={"If-Match": new_etag})  # fmt: skip
        assert r.status_code == 200 and r.json()["LastName"] == "Changed"


def test_records_errors_never_500(stack: Stack, tenant: int) -> None:
    with stack.client() as c:
        cases: list[tuple[str, str, Any, dict[str, str], int, str]] = [
            ("get", f"{records_url(tenant)}/987654321", None, {}, 404, "record_not_found"),
            ("get", f"{records_url(tenant)}/abc", None, {}, 400, "invalid_request"),
            ("get", f"{records_url(tenant)}/1?custom=maybe", None, {}, 400, "invalid_request"),
            ("get", f"{records_url(tenant, 'Nope')}/1", None, {}, 400, "unknown_table"),
            ("patch", f"{records_url(tenant)}/1", {"Nope": 1}, {}, 400, "unknown_column"),
            ("patch", f"{records_url(tenant)}/1", {"LeadScore": "x"}, {}, 400,
             "invalid_field_value"),
            ("patch", f"{records_url(tenant)}/1", [1], {}, 400, "invalid_request"),
            ("patch", f"{records_url(tenant)}/1", {"Title": "x"}, {"If-Match": "junk"}, 412,
             "precondition_failed"),
            ("post", records_url(tenant), {"FirstName": None}, {}, 400, "invalid_field_value"),
            ("post", records_url(tenant), {"LastName": "only"}, {}, 409,
             "constraint_violation"),
        ]  # fmt: skip
        for method, url, body, headers, status, code in cases:
            r = c.request(method, url, json=body, headers=headers)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (url, r.text)
    with stack.client(BETA_READ_TOKEN) as c:
        r = c.patch(f"{records_url(2)}/1", json={"Title": "x"})
        assert r.status_code == 403
