"""End to end: the real service process over HTTP, real SQLite and PostgreSQL tenants."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pyodbc
import pytest

from proxy.jsonenc import dumps
from proxy.schema_seed import BASE_MODEL
from tests.support.stack import BETA_READ_TOKEN, PG_PASSWORD, Stack

pytestmark = pytest.mark.e2e

CONTACTS_BASE = list(BASE_MODEL["Contacts"])


def query(stack: Stack, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    with stack.client() if token is None else stack.client(token) as client:
        response = client.post("/v1/query", json=body)
    return response.status_code, response.json()


def direct_rows(stack: Stack, customer_id: int, sql: str, *params: Any) -> list[list[Any]]:
    """The same data read straight from the tenant's database, JSON-encoded as the service does."""
    if customer_id in stack.pg_databases:
        # The same driver options as the service's postgresql template.
        conn = pyodbc.connect(
            stack.pg.odbc(stack.pg_databases[customer_id], BoolsAsChar="0"), autocommit=True
        )
    else:
        tenant = next(t for t in stack.demo.tenants if t.customer_id == customer_id)
        conn = pyodbc.connect(tenant.connection_string, autocommit=True)
    with contextlib.closing(conn):
        rows = conn.execute(sql, *params).fetchall()
    return orjson.loads(dumps([list(r) for r in rows]))


def physical_columns(stack: Stack, customer_id: int) -> list[str]:
    status, body = 0, None
    with stack.client() as client:
        response = client.get(f"/v1/tenants/{customer_id}/schema")
        status, body = response.status_code, response.json()
    assert status == 200, body
    contacts = next(t for t in body["tables"] if t["name"] == "Contacts")
    return [c["name"] for c in contacts["columns"]]


@pytest.mark.parametrize("customer_id", [1, 2, 3, 11, 12], ids=lambda c: f"tenant{c}")
def test_everything_for_one_contact_matches_a_direct_read(stack: Stack, customer_id: int) -> None:
    status, body = query(
        stack,
        {
            "tenant": customer_id,
            "sql": "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?",
            "params": [7],
        },
    )
    assert status == 200, body
    names = [c["name"] for c in body["columns"]]
    physical = physical_columns(stack, customer_id)
    custom = [c for c in physical if c not in CONTACTS_BASE]
    assert names == CONTACTS_BASE + custom
    quote = '"{}"'.format
    expected = direct_rows(
        stack, customer_id,
        f'SELECT {", ".join(quote(n) for n in names)} FROM "Contacts" WHERE "ContactID" = ?', 7,
    )  # fmt: skip
    assert body["rows"] == expected
    assert body["row_count"] == 1 and body["truncated"] is False


def test_star_is_the_base_model_in_its_order_on_every_tenant(stack: Stack) -> None:
    for tenant in ("alpha.example", "beta.example", "gamma.example", "pg11.example", 12):
        status, body = query(stack, {"tenant": tenant, "sql": "SELECT TOP 1 * FROM Contacts"})
        assert status == 200, body
        assert [c["name"] for c in body["columns"]] == CONTACTS_BASE


def test_custom_fields_of_the_800_column_tenant(stack: Stack) -> None:
    status, body = query(
        stack,
        {
            "tenant": "gamma.example",
            "sql": "SELECT CUSTOM_FIELDS() FROM Contacts WHERE ContactID = 1",
        },
    )
    assert status == 200, body
    assert len(body["columns"]) == 800
    assert len(body["rows"][0]) == 800


def test_identifiers_match_case_insensitively_and_keep_physical_spelling(stack: Stack) -> None:
    status, body = query(
        stack,
        {"tenant": 12, "sql": "select contactid, FIRSTNAME from contacts where CONTACTID = 3"},
    )
    assert status == 200, body
    assert [c["name"] for c in body["columns"]] == ["ContactID", "FirstName"]
    assert body["rows"] == direct_rows(
        stack, 12, 'SELECT "ContactID", "FirstName" FROM "Contacts" WHERE "ContactID" = 3'
    )


def test_one_query_across_tenants_with_the_null_policy(stack: Stack) -> None:
    sql = "SELECT ContactID, Custom_Region FROM Contacts WHERE ContactID < 4 ORDER BY ContactID"
    status, body = query(stack, {"tenant": 1, "sql": sql})
    assert status == 400 and body["error"]["code"] == "unknown_column"
    assert "Custom_Region" in body["error"]["message"]

    status, body = query(stack, {"tenant": 1, "sql": sql, "missing_columns": "null"})
    assert status == 200, body
    assert [c["name"] for c in body["columns"]] == ["ContactID", "Custom_Region"]
    assert [r[1] for r in body["rows"]] == [None, None, None]

    status, body = query(stack, {"tenant": 2, "sql": sql, "missing_columns": "null"})
    assert status == 200, body
    assert body["rows"] == direct_rows(
        stack,
        2,
        'SELECT "ContactID", "Custom_Region" FROM "Contacts" WHERE "ContactID" < 4 '
        'ORDER BY "ContactID"',
    )


def test_join_with_named_parameters_on_postgresql(stack: Stack) -> None:
    status, body = query(
        stack,
        {
            "tenant": "pg12.example",
            "sql": "SELECT c.ContactID, a.AccountID FROM Contacts c "
            "JOIN Accounts a ON a.AccountID = c.AccountID "
            "WHERE c.ContactID BETWEEN @lo AND @hi ORDER BY c.ContactID",
            "params": {"lo": 10, "hi": 14},
        },
    )
    assert status == 200, body
    assert body["rows"] == direct_rows(
        stack, 12,
        'SELECT c."ContactID", a."AccountID" FROM "Contacts" c JOIN "Accounts" a '
        'ON a."AccountID" = c."AccountID" WHERE c."ContactID" BETWEEN 10 AND 14 '
        'ORDER BY c."ContactID"',
    )  # fmt: skip


def test_max_rows_truncates(stack: Stack) -> None:
    status, body = query(
        stack,
        {"tenant": 2, "sql": "SELECT ContactID FROM Contacts ORDER BY ContactID", "max_rows": 5},
    )
    assert status == 200, body
    assert body["rows"] == [[1], [2], [3], [4], [5]]
    assert body["truncated"] is True and body["row_count"] == 5


REFUSED = [
    ("SELECT * FROM Nope", "unknown_table"),
    ("SELECT Nope FROM Contacts", "unknown_column"),
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("DELETE FROM Contacts", "unfiltered_write"),
    ("DROP TABLE Contacts", "statement_not_allowed"),
    ("EXEC sp_who", "statement_not_allowed"),
    ("SELECT * FROM otherdb.dbo.Contacts", "cross_database_reference"),
    ("SELECT name FROM sys.objects", "cross_database_reference"),
    ("SELECT * FROM sqlite_master", "cross_database_reference"),
    ("SELECT * FROM pg_catalog.pg_user", "cross_database_reference"),
    ("SELECT @@VERSION", "construct_not_allowed"),
    ("SELECT xp_cmdshell('dir')", "construct_not_allowed"),
    ("SELECT * INTO Copy FROM Contacts", "construct_not_allowed"),
    ("SELECT * FROM Contacts WITH (NOLOCK)", "construct_not_allowed"),
    ("SELEC * FROM Contacts", "parse_error"),
    ("SELECT ContactID FROM Contacts c JOIN Accounts a ON a.AccountID = c.AccountID", None),
]


@pytest.mark.parametrize(("sql", "code"), REFUSED, ids=[s for s, _ in REFUSED])
def test_refused_statements_have_a_code_and_a_400(stack: Stack, sql: str, code: str | None) -> None:
    status, body = query(stack, {"tenant": "beta.example", "sql": sql})
    if code is None:  # ContactID only in Contacts: not ambiguous, must run
        assert status == 200, body
        return
    assert status == 400, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


def test_request_errors(stack: Stack) -> None:
    with stack.client(None) as anonymous:
        r = anonymous.post("/v1/query", json={"tenant": 1, "sql": "SELECT 1"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"
    with stack.client("wrong-token") as wrong:
        assert wrong.post("/v1/query", json={"tenant": 1, "sql": "SELECT 1"}).status_code == 401
    with stack.client() as client:
        r = client.post(
            "/v1/query", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
        r = client.post("/v1/query", json={"tenant": 1, "sql": "SELECT 1", "sql2": 1})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
        r = client.post("/v1/query", json={"tenant": 1, "sql": "x" * 70_000})
        assert (r.status_code, r.json()["error"]["code"]) == (413, "request_too_large")
        r = client.post("/v1/query", json={"tenant": "nobody.example", "sql": "SELECT 1"})
        assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_tenant")
        r = client.post("/v1/query", json={"tenant": "bad tenant!", "sql": "SELECT 1"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_tenant")
        r = client.post(
            "/v1/query", json={"tenant": 2, "sql": "SELECT * FROM Contacts WHERE ContactID = ?"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameters")
        r = client.get("/v1/nothing")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
        r = client.get("/v1/query")
        assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


def test_a_limited_token_stays_in_its_scope(stack: Stack) -> None:
    one = "SELECT TOP 1 ContactID FROM Contacts"
    ok, body = query(stack, {"tenant": "beta.example", "sql": one}, token=BETA_READ_TOKEN)
    assert ok == 200, body
    ok, body = query(stack, {"tenant": 2, "sql": one}, token=BETA_READ_TOKEN)
    assert ok == 200, body  # the same tenant named by id
    for tenant in ("gamma.example", 3, "nobody.example"):
        status, body = query(
            stack, {"tenant": tenant, "sql": "SELECT 1 AS x"}, token=BETA_READ_TOKEN
        )
        assert (status, body["error"]["code"]) == (403, "forbidden")
    with stack.client(BETA_READ_TOKEN) as client:
        r = client.post("/v1/tenants/beta.example/schema/refresh")
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


def test_statement_timeout_stops_the_statement_and_the_service_goes_on(stack: Stack) -> None:
    slow = "SELECT COUNT(*) AS n FROM Contacts a CROSS JOIN Contacts b CROSS JOIN Contacts c"
    for tenant in (12, 2):
        status, body = query(stack, {"tenant": tenant, "sql": slow, "timeout_ms": 300})
        assert (status, body["error"]["code"]) == (504, "statement_timeout"), body
        status, body = query(stack, {"tenant": tenant, "sql": "SELECT COUNT(*) AS n FROM Contacts"})
        assert status == 200 and body["rows"][0][0] > 0


def test_explain_shows_the_backend_sql_without_secrets(stack: Stack) -> None:
    with stack.client() as client:
        r = client.post(
            "/v1/explain",
            json={
                "tenant": "pg12.example",
                "sql": "SELECT FirstName FROM Contacts WHERE ContactID = ?",
                "params": [3],
            },
        )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["backend"] == "postgresql"
    assert '"public"."Contacts"' in plan["sql"]
    # The row cap is bound too: the default max_rows (1000) + 1.
    assert plan["sql"].endswith(" LIMIT ?") and plan["params"] == [3, 1001]
    assert plan["server"].startswith("postgresql://127.0.0.1:")
    assert PG_PASSWORD not in r.text


def test_schema_and_refresh(stack: Stack) -> None:
    with stack.client() as client:
        r = client.get("/v1/tenants/gamma.example/schema")
        assert r.status_code == 200, r.text
        contacts = next(t for t in r.json()["tables"] if t["name"] == "Contacts")
        assert len(contacts["custom_columns"]) == 800
        assert contacts["base_columns"] == CONTACTS_BASE
        r = client.post("/v1/tenants/gamma.example/schema/refresh")
        assert r.status_code == 200 and r.json()["refreshed"] is True


def test_health_readiness_metrics_and_openapi(stack: Stack) -> None:
    with stack.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        doc = client.get("/openapi.json").json()
        assert "/v1/query" in doc["paths"]
        # Some traffic first, so that every family has samples.
        query(stack, {"tenant": 2, "sql": "SELECT TOP 1 ContactID FROM Contacts"})
        text = client.get("/metrics").text
    for name in (
        "tenantgate_requests_total",
        "tenantgate_query_duration_seconds_bucket",
        "tenantgate_cache_lookups_total",
        "tenantgate_pool_connections",
        "tenantgate_pool_wait_seconds_total",
    ):
        assert name in text, name
    assert 'phase="execute"' in text and 'phase="rewrite"' in text
    assert 'cache="plan",result="hit"' in text
    assert PG_PASSWORD not in text
    assert "beta.example" not in text  # no per-tenant labels


def test_no_secret_in_the_service_log(stack: Stack) -> None:
    # Provoke an error path on a PostgreSQL tenant first.
    query(stack, {"tenant": 12, "sql": "SELECT CAST(FirstName AS INT) FROM Contacts"})
    assert PG_PASSWORD not in stack.log_text()
