"""The OpenAPI document against the app's real routes, and its request schemas against
the bodies the tests send. The app is built as in production (proxy.compose.build),
which opens no connection; the requests sent here all stop before the pipeline."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from proxy.auth import hash_token
from proxy.compose import build
from proxy.config import ControllerSettings, QuerySettings, ServerSettings, Settings, TokenSettings
from proxy.errors import InvalidRequest
from proxy.frontends.http.app import ROUTES, App, create_app
from proxy.frontends.http.models import (
    BATCH,
    CUSTOM_FIELD,
    QUERY,
    RECORD,
    TRANSACTION,
    TRANSACTION_BATCH,
    TRANSACTION_QUERY,
    Body,
)
from proxy.frontends.http.openapi import OPERATIONS, openapi_document

TOKEN = "openapi-test-token"
SETTINGS = Settings(
    controller=ControllerSettings(connection_string="Driver=SQLite3;Database=/nonexistent/c.db"),
    tokens=(TokenSettings(name="t", sha256=hash_token(TOKEN), classes=("read", "write", "admin")),),
    query=QuerySettings(default_max_rows=250, max_rows_cap=500),
)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    service = build(SETTINGS, registry=CollectorRegistry())
    try:
        yield create_app(service)
    finally:
        asyncio.run(service.aclose())


def call(
    app: App, method: str, path: str, content: bytes = b"", token: str | None = TOKEN
) -> httpx.Response:
    """One request to ``app`` in process (no lifespan: nothing starts, nothing connects)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate") as c:
            return await c.request(method, path, content=content, headers=headers)

    return asyncio.run(send())


@pytest.fixture(scope="module")
def doc(app: App) -> dict[str, Any]:
    response = call(app, "GET", "/openapi.json", token=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


# -- the routes --------------------------------------------------------------------------


def app_operations(app: App) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        for method in route.methods:
            if method == "HEAD" and "GET" in route.methods:  # HEAD runs every GET
                continue
            found.add((method, route.path))
    return found


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item}


def test_every_route_of_the_app_is_in_the_document_and_only_those(
    app: App, doc: dict[str, Any]
) -> None:
    assert app_operations(app) == doc_operations(doc)
    assert sum(len(route.methods - {"HEAD"}) for route in app.routes) == len(ROUTES)


def test_operation_ids_are_the_metric_names(doc: dict[str, Any]) -> None:
    ids = {
        (m.upper(), path): op["operationId"]
        for path, item in doc["paths"].items()
        for m, op in item.items()
    }
    assert ids == {(method, path): name for method, path, name, _ in ROUTES}


def test_path_parameters_are_the_templates(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for op in item.values():
            declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert declared == re.findall(r"\{(\w+)\}", path), (path, op["operationId"])


def test_served_document_is_the_derived_one(doc: dict[str, Any]) -> None:
    assert doc == orjson.loads(orjson.dumps(openapi_document(ROUTES, SETTINGS)))
    assert doc["openapi"] == "3.1.0"


def test_the_configured_defaults_and_caps_are_documented(doc: dict[str, Any]) -> None:
    props = doc["components"]["schemas"]["QueryRequest"]["properties"]
    assert props["max_rows"]["default"] == 250
    assert "500" in props["max_rows"]["description"]


def test_routes_and_operations_must_match() -> None:
    with pytest.raises(ValueError, match="without OPERATIONS"):
        openapi_document([*ROUTES, ("GET", "/v1/new", "new_route", None)])
    with pytest.raises(ValueError, match="without a route"):
        openapi_document(ROUTES[1:])


def test_metrics_is_secured_when_the_configuration_says_so() -> None:
    secured = Settings(
        controller=SETTINGS.controller,
        tokens=SETTINGS.tokens,
        server=ServerSettings(metrics_require_token=True),
    )
    assert "security" not in openapi_document(ROUTES)["paths"]["/metrics"]["get"]
    assert "security" in openapi_document(ROUTES, secured)["paths"]["/metrics"]["get"]


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = re.findall(r'"\$ref":"#/([^"]+)"', orjson.dumps(doc).decode())
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


# -- the request bodies ------------------------------------------------------------------


def check(schema: dict[str, Any], value: Any, doc: dict[str, Any], at: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``: the JSON Schema keywords the document uses."""
    if "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return check(node, value, doc, at)
    problems: list[str] = []
    kinds = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(kinds[t](value) for t in types):
            return [f"{at}: not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: not in {schema['enum']}")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            passing = [s for s in schema[key] if not check(s, value, doc, at)]
            if not passing or (key == "oneOf" and len(passing) > 1):
                problems.append(f"{at}: fits {len(passing)} of {key}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{at}: too short")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{at}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{at}: does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{at}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{at}: above {schema['maximum']}")
    if isinstance(value, list) and len(value) < schema.get("minItems", 0):
        problems.append(f"{at}: too few items")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check(schema["items"], item, doc, f"{at}[{i}]")
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0):
            problems.append(f"{at}: too few properties")
        props = schema.get("properties", {})
        problems += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key in props:
                problems += check(props[key], item, doc, f"{at}.{key}")
            elif schema.get("additionalProperties", True) is False:
                problems.append(f"{at}: unknown {key}")
    known = {
        "$ref", "type", "enum", "anyOf", "oneOf", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "items", "minProperties", "properties", "required",
        "additionalProperties", "title", "description", "default", "minItems",
    }  # fmt: skip
    assert not set(schema) - known, f"the checker does not know {set(schema) - known}"
    return problems


def body_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    media = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = media["schema"]
    return schema


_TABLE = "/v1/tenants/{tenant}/tables/{table}"
BODIES: dict[tuple[str, str], Body[Any]] = {
    ("/v1/query", "post"): QUERY,
    ("/v1/explain", "post"): QUERY,
    (_TABLE + "/custom-fields", "post"): CUSTOM_FIELD,
    (_TABLE + "/records", "post"): RECORD,
    (_TABLE + "/records/{key}", "patch"): RECORD,
    ("/v1/batch", "post"): BATCH,
    ("/v1/transactions", "post"): TRANSACTION,
    ("/v1/transactions/{id}/query", "post"): TRANSACTION_QUERY,
    ("/v1/transactions/{id}/batch", "post"): TRANSACTION_BATCH,
}

# Bodies the unit and end-to-end tests send (tests/e2e/test_service.py, test_writes.py,
# test_admin_records.py): the document's schema and the model both accept each.
ACCEPTED: dict[Body[Any], list[Any]] = {
    QUERY: [
        {"tenant": "beta.example", "sql": "SELECT * FROM Contacts WHERE ContactID = ?",
         "params": [5]},
        {"tenant": 1, "sql": "SELECT 1"},
        {"tenant": 2, "sql": "SELECT ContactID FROM Contacts ORDER BY ContactID", "max_rows": 5},
        {"tenant": 2, "sql": "SELECT 1", "missing_columns": "null"},
        {"tenant": 2, "sql": "SELECT 1", "timeout_ms": 1000},
        {"tenant": 2, "sql": "SELECT 1 WHERE 1 BETWEEN @lo AND @hi",
         "params": {"lo": 10, "hi": 14}},
        {"tenant": 2, "sql": "INSERT INTO Contacts VALUES (@first, @last, @active, @created)",
         "params": {"first": None, "last": "x", "active": True, "created": "2024-05-01"}},
        {"tenant": 2, "sql": "DELETE FROM Contacts", "allow_unfiltered": True},
        {"tenant": 12, "sql": "SELECT 1", "dialect": "postgres", "params": [1.5, "Zoë 東京 ✓"]},
        {"tenant": "bad tenant!", "sql": "SELECT 1"},  # refused later, by the resolver
        {"tenant": 2, "sql": "SELECT 1", "max_rows": 10**9},  # capped, not refused
    ],
    CUSTOM_FIELD: [
        {"name": "Region", "type": "text", "length": 50},
        {"name": "amount", "type": "decimal", "precision": 9, "scale": 2, "nullable": False,
         "default": "1.50"},
        {"name": "x", "type": "integer"},
        {"name": "ok", "type": "integer", "nullable": False},  # field_spec refuses: no default
        {"name": "Name", "type": "integer"},  # 409 column_exists later
    ],
    RECORD: [
        {"FirstName": "rec-1", "LastName": "Record", "IsActive": True,
         "CreatedAt": "2024-05-01 10:00:00"},
        {"LastName": "Changed", "Custom_Region": "Mars"},
        {"Title": "x"},
        {"Nope": 1},
        {"LeadScore": "x"},
        {"FirstName": None},
    ],
    BATCH: [
        {"tenant": 2, "statements": [{"sql": "SELECT 1"}]},
        {"tenant": "beta.example", "isolation": "serializable", "timeout_ms": 2000,
         "max_rows": 5, "dialect": "postgres",
         "statements": [{"sql": "UPDATE Contacts SET FirstName = ? WHERE ContactID = ?",
                         "params": ["x", 1]},
                        {"sql": "SELECT 1 WHERE 1 = @a", "params": {"a": 1}, "max_rows": 1,
                         "missing_columns": "null"},
                        {"sql": "DELETE FROM Contacts", "allow_unfiltered": True}]},
    ],
    TRANSACTION: [
        {"tenant": 2}, {"tenant": "beta.example", "isolation": "read_committed"},
    ],
    TRANSACTION_QUERY: [
        {"sql": "SELECT 1"}, {"sql": "SELECT ? AS x", "params": [1], "max_rows": 2,
                              "timeout_ms": 100, "dialect": "sqlite"},
    ],
    TRANSACTION_BATCH: [
        {"statements": [{"sql": "SELECT 1"}, {"sql": "SELECT 2"}], "timeout_ms": 100},
    ],
}  # fmt: skip

REFUSED: dict[Body[Any], list[Any]] = {
    QUERY: [
        [], {"sql": "SELECT 1"}, {"tenant": True, "sql": "SELECT 1"},
        {"tenant": "", "sql": "SELECT 1"}, {"tenant": 1, "sql": "  "}, {"tenant": 1, "sql": 5},
        {"tenant": 1, "sql": "SELECT 1", "params": "x"},
        {"tenant": 1, "sql": "SELECT 1", "dialect": "mysql"},
        {"tenant": 1, "sql": "SELECT 1", "max_rows": 0},
        {"tenant": 1, "sql": "SELECT 1", "max_rows": "5"},
        {"tenant": 1, "sql": "SELECT 1", "timeout_ms": -1},
        {"tenant": 1, "sql": "SELECT 1", "missing_columns": "skip"},
        {"tenant": 1, "sql": "SELECT 1", "sqll": "typo"},
        {"tenant": 1, "sql": "SELECT 1", "sql2": 1},
        {"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": "true"},
        {"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": 1},
        {"tenant": 2, "sql": "DELETE FROM Contacts", "allow_unfiltered": "yes"},
    ],
    CUSTOM_FIELD: [
        [1], {"name": "1bad", "type": "integer"}, {"type": "integer"},
        {"name": "ok", "type": "money"}, {"name": "ok", "type": "text", "length": 0},
        {"name": "ok", "type": "integer", "colour": "red"},
    ],
    RECORD: [[1], {}, "x"],
    BATCH: [
        {"tenant": 2}, {"tenant": 2, "statements": []}, {"tenant": 2, "statements": "SELECT 1"},
        {"tenant": 2, "statements": [{"sql": "SELECT 1", "tenant": 3}]},
        {"tenant": 2, "statements": [{"sql": "SELECT 1"}], "isolation": "snapshot"},
        {"statements": [{"sql": "SELECT 1"}]},
    ],
    TRANSACTION: [{}, {"tenant": 2, "isolation": "chaos"}, {"tenant": 2, "sql": "SELECT 1"}],
    TRANSACTION_QUERY: [{"tenant": 2, "sql": "SELECT 1"}, {"sql": ""}],
    TRANSACTION_BATCH: [
        {"statements": []}, {"statements": [{"sql": "x"}], "isolation": "serializable"},
    ],
}  # fmt: skip


def examples(table: dict[Body[Any], list[Any]]) -> list[tuple[str, str, Body[Any], Any]]:
    return [
        (path, method, body, value)
        for (path, method), body in BODIES.items()
        for value in table[body]
    ]


def test_the_document_has_exactly_these_request_bodies(doc: dict[str, Any]) -> None:
    with_body = {
        (path, m) for path, item in doc["paths"].items() for m, op in item.items()
        if "requestBody" in op
    }  # fmt: skip
    assert with_body == set(BODIES)
    for (path, method), body in BODIES.items():
        name = doc["paths"][path][method]["operationId"]
        assert OPERATIONS[name].body is body, name


def _id(value: object) -> str:
    # The same in every process (pytest-xdist's workers collect the same ids): a body
    # model is named by the path and method beside it, not by its address.
    return "body" if isinstance(value, Body) else repr(value)


@pytest.mark.parametrize(("path", "method", "body", "value"), examples(ACCEPTED), ids=_id)
def test_the_document_accepts_what_the_tests_send(
    doc: dict[str, Any], path: str, method: str, body: Body[Any], value: Any
) -> None:
    assert check(body_schema(doc, path, method), value, doc) == []
    body.decode(orjson.dumps(value))


@pytest.mark.parametrize(("path", "method", "body", "value"), examples(REFUSED), ids=_id)
def test_the_document_refuses_what_the_models_refuse(
    doc: dict[str, Any], path: str, method: str, body: Body[Any], value: Any
) -> None:
    assert check(body_schema(doc, path, method), value, doc) != []
    with pytest.raises(InvalidRequest):
        body.decode(orjson.dumps(value))


def test_the_documents_own_examples_fit(doc: dict[str, Any]) -> None:
    for (path, method), body in BODIES.items():
        media = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert check(media["schema"], media["example"], doc) == [], (path, method)
        body.decode(orjson.dumps(media["example"]))


# -- through the app: a malformed body is a 400 naming the field, before the pipeline ----


@pytest.mark.parametrize(
    ("method", "path", "content", "code", "message"),
    [
        ("POST", "/v1/query", b'{"tenant": 1}', "invalid_request",
         "'sql' must be a non-empty string"),
        ("POST", "/v1/explain", b'{"tenant": 1, "sql": "SELECT 1", "max_rows": 0}',
         "invalid_request", "'max_rows' must be a positive integer"),
        ("POST", "/v1/query", b'{"tenant": 1, "sql": "SELECT 1", "sql2": 1}', "invalid_request",
         "unknown fields: sql2"),
        ("POST", "/v1/query", b"{not json", "invalid_request", "the body is not valid JSON: "),
        ("POST", "/v1/query", b"", "invalid_request", "the body is not valid JSON: "),
        ("POST", "/v1/tenants/2/tables/Contacts/custom-fields", b'{"name": "1bad", "type": 1}',
         "invalid_custom_field", "'name' may contain only letters"),
        ("POST", "/v1/tenants/2/tables/Contacts/custom-fields", b"[]",
         "invalid_custom_field", "the body must be a JSON object"),
        ("POST", "/v1/tenants/2/tables/Contacts/custom-fields",
         b'{"name": "__TenantGate_mine", "type": "integer"}',
         "invalid_custom_field", "'name' may not contain '__tenantgate_', reserved"),
        ("POST", "/v1/tenants/2/tables/Contacts/records", b"{}", "invalid_request",
         "the body must be a JSON object with at least one field"),
        ("PATCH", "/v1/tenants/2/tables/Contacts/records/1", b"[1]", "invalid_request",
         "the body must be a JSON object with at least one field"),
    ],
)  # fmt: skip
def test_a_malformed_body_is_a_400_with_its_sentence(
    app: App,
    doc: dict[str, Any],
    method: str,
    path: str,
    content: bytes,
    code: str,
    message: str,
) -> None:
    response = call(app, method, path, content)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(message), error
    assert check({"$ref": "#/components/schemas/Error"}, response.json(), doc) == []


def test_authentication_comes_before_the_body(app: App) -> None:
    assert call(app, "POST", "/v1/query", b"{not json", token=None).status_code == 401


# -- the dispatch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/v1/nothing", 404, "not_found", None),
        ("GET", "/v1/query/", 404, "not_found", None),
        ("GET", "/v1/tenants/2/tables/Contacts", 404, "not_found", None),
        ("GET", "/v1/query", 405, "method_not_allowed", "POST"),
        ("PUT", "/v1/tenants/2/tables/Contacts/records/7", 405, "method_not_allowed",
         "GET, HEAD, PATCH"),
        ("POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"),
    ],
)  # fmt: skip
def test_an_unrouted_request_is_a_json_404_or_a_405_with_allow(
    app: App, doc: dict[str, Any], method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    response = call(app, method, path)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.headers.get("allow") == allow
    assert check({"$ref": "#/components/schemas/Error"}, response.json(), doc) == []


def test_head_runs_the_get_without_a_body(app: App) -> None:
    get, head = call(app, "GET", "/healthz"), call(app, "HEAD", "/healthz")
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.headers["content-length"] == get.headers["content-length"]


def test_path_parameters_reach_the_endpoint(app: App) -> None:
    # The tenant reference is validated from the path: an invalid one is refused by name.
    response = call(app, "GET", "/v1/tenants/bad%20tenant!/schema")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_tenant")


def test_the_lifespan_starts_and_stops_the_service() -> None:
    service = build(SETTINGS, registry=CollectorRegistry())
    app = create_app(service)
    sent: list[str] = []

    async def lifespan() -> None:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        started = asyncio.Event()

        async def receive() -> dict[str, Any]:
            message = next(messages)
            if message["type"] == "lifespan.shutdown":
                await started.wait()
            return message

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(lifespan())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
