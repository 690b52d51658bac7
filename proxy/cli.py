"""The ``tenantgate`` command.

tenantgate serve --config PATH      serve with a configuration file
tenantgate demo [--dir var/demo]    create the embedded SQLite demo (once) and serve it
tenantgate hash-token [TOKEN]       print the sha256 to put in a [[tokens]] entry
tenantgate check-config --config    validate a configuration file and exit
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

import uvicorn

from proxy.app import create_app
from proxy.auth import hash_token
from proxy.config import (
    ConfigError,
    ControllerSettings,
    ServerSettings,
    Settings,
    TokenSettings,
    load,
)
from proxy.demo import create_demo
from proxy.schema_seed import BASE_MODEL
from proxy.service import Service

DEMO_PORT = 8040
DEMO_TOKEN_ENV = "TENANTGATE_DEMO_TOKEN"  # noqa: S105 - the variable's name, not a token


def _serve(settings: Settings, *, host: str | None, port: int | None) -> None:
    service = Service(settings)
    app = create_app(service)
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="info",
        # One process: pools, caches and rate buckets live in it.
        workers=None,
    )


def _demo_settings(directory: Path, token: str, port: int) -> Settings:
    layout = create_demo(directory)
    return Settings(
        server=ServerSettings(port=port),
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


def _print_examples(token: str, port: int, token_from_env: bool) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantgate", description="Tenant-aware SQL proxy.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve with a configuration file")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    demo = sub.add_parser("demo", help="create the SQLite demo once and serve it")
    demo.add_argument("--dir", default="var/demo")
    demo.add_argument("--port", type=int, default=DEMO_PORT)
    hash_cmd = sub.add_parser("hash-token", help="print the sha256 of a token")
    hash_cmd.add_argument("token", nargs="?")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    try:
        if args.command == "serve":
            _serve(load(args.config), host=args.host, port=args.port)
        elif args.command == "demo":
            token = os.environ.get(DEMO_TOKEN_ENV) or secrets.token_urlsafe(24)
            settings = _demo_settings(Path(args.dir).resolve(), token, args.port)
            _print_examples(token, args.port, DEMO_TOKEN_ENV in os.environ)
            _serve(settings, host="127.0.0.1", port=args.port)
        elif args.command == "hash-token":
            token = args.token or sys.stdin.readline().strip()
            print(hash_token(token))
        elif args.command == "check-config":
            load(args.config)
            print("configuration is valid")
    except ConfigError as exc:
        print(f"tenantgate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
