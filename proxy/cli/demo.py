"""``tenantgate demo``: the embedded SQLite demo's settings and its ready-to-paste requests."""

from __future__ import annotations

from pathlib import Path

from proxy.auth import hash_token
from proxy.config import (
    ControllerSettings,
    LoggingSettings,
    ServerSettings,
    Settings,
    TokenSettings,
)
from proxy.demo.layout import create_demo
from proxy.demo.seed import BASE_MODEL

__all__ = ["DEMO_PORT", "DEMO_TOKEN_ENV", "demo_settings", "print_examples"]

DEMO_PORT = 8040
DEMO_TOKEN_ENV = "TENANTGATE_DEMO_TOKEN"  # noqa: S105 - the variable's name, not a token


def demo_settings(directory: Path, token: str, port: int) -> Settings:
    layout = create_demo(directory)
    return Settings(
        server=ServerSettings(port=port),
        # A demo is watched from its terminal: one line per request, with its id.
        logging=LoggingSettings(access_log=True),
        controller=ControllerSettings(connection_string=layout.controller_connection_string),
        backend_templates={"sqlite": "Timeout=5000"},
        base_model={table: tuple(cols) for table, cols in BASE_MODEL.items()},
        tokens=(
            TokenSettings(
                name="demo",
                sha256=hash_token(token),
                tenants=("*",),
                classes=("read", "write", "admin"),
            ),
        ),
    )


def print_examples(token: str, port: int, token_from_env: bool) -> None:
    base = f"http://127.0.0.1:{port}"
    auth = f'-H "Authorization: Bearer {token}"'
    where = (
        f"(from ${DEMO_TOKEN_ENV})"
        if token_from_env
        else f"(random; set ${DEMO_TOKEN_ENV} to fix it)"
    )
    examples = [
        (
            "point select on tenant 2",
            "beta.example",
            "SELECT * FROM Contacts WHERE ContactID = ?",
            "[5]",
        ),
        (
            "base and custom fields (20 custom columns)",
            "beta.example",
            "SELECT TOP 3 *, CUSTOM_FIELDS() FROM Contacts ORDER BY ContactID",
            "[]",
        ),
        (
            "one query across tenants with different custom fields",
            "1",
            "SELECT ContactID, Custom_Region FROM Contacts WHERE ContactID < 4",
            "[]",
        ),
        (
            "a join on the 800-column tenant",
            "gamma.example",
            "SELECT TOP 5 c.FirstName, a.Name FROM Contacts c JOIN Accounts a "
            "ON a.AccountID = c.AccountID ORDER BY c.ContactID",
            "[]",
        ),
    ]
    print(f"\ntenantgate demo on {base}   token {where}: {token}\n")
    for title, tenant, sql, params in examples:
        extra = ', "missing_columns": "null"' if "across" in title else ""
        body = f'{{"tenant": "{tenant}", "sql": "{sql}", "params": {params}{extra}}}'
        print(f"# {title}")
        print(
            f"curl -s {base}/v1/query {auth} -H 'Content-Type: application/json' \\\n"
            f"  -d '{body}'\n"
        )
    print(f"curl -s {base}/v1/tenants/gamma.example/schema {auth} | head -c 600; echo")
    print(f"curl -s {base}/metrics | grep tenantgate_ | head\n")
