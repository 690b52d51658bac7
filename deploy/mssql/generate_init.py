"""Generate ``deploy/mssql/init.sql`` from ``proxy/demo/seed.py``.

    python deploy/mssql/generate_init.py           # rewrite init.sql
    python deploy/mssql/generate_init.py --check   # exit 1 if init.sql is out of date

The script is committed next to its output; ``tests/unit/test_compose.py`` fails when
the two disagree. The output is idempotent T-SQL for ``sqlcmd -b``: run it again on a
populated server and it only re-syncs the login passwords and the controller rows.

Secrets are not in the file: sqlcmd substitutes the scripting variables
``$(TENANTGATE_APP_PASSWORD)`` and ``$(TENANTGATE_CONTROLLER_PASSWORD)`` from the
environment of the ``mssql-init`` service. They end up inside T-SQL string literals
and ODBC connection strings, so they must not contain ``'``, ``;``, ``{``, ``}`` or ``$``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from proxy.demo.seed import (  # noqa: E402
    TABLE_ORDER,
    Column,
    SeedCounts,
    Value,
    custom_columns,
    generate_rows,
    qualified_name,
    quote_identifier,
    schema_ddl,
    sql_literal,
    table_columns,
)

OUTPUT = Path(__file__).resolve().with_name("init.sql")
BACKEND = "sqlserver"
CONTROLLER_DB = "tenantgate_controller"
APP_LOGIN = "tenantgate_app"
CONTROLLER_LOGIN = "tenantgate_controller"
SERVER = "mssql,1433"
DRIVER = "{ODBC Driver 18 for SQL Server}"
CONTACTS = 10


@dataclass(frozen=True)
class Tenant:
    customer_id: int
    domain: str
    database: str
    custom: tuple[Column, ...]


TENANTS = (
    Tenant(1, "alpha.example", "tenant_alpha", tuple(custom_columns(4))),
    Tenant(2, "beta.example", "tenant_beta", tuple(custom_columns(12, seed=2))),
    Tenant(3, "gamma.example", "tenant_gamma", tuple(custom_columns(60))),
)


def connection_string(database: str) -> str:
    """The tenant's ``sqlconnectstring``; the password is a sqlcmd variable."""
    return (
        f"Driver={DRIVER};Server={SERVER};Database={database};"
        f"Uid={APP_LOGIN};"
        "Pwd=$(TENANTGATE_APP_PASSWORD);"
        "Encrypt=yes;TrustServerCertificate=yes"
    )


def _n(value: str) -> str:
    return "N'" + value.replace("'", "''") + "'"


def _q(name: str) -> str:
    return quote_identifier(name, BACKEND)


def _logins() -> list[str]:
    out = ["-- Logins. Passwords come from sqlcmd variables (the service's environment)."]
    for login, var in (
        (APP_LOGIN, "TENANTGATE_APP_PASSWORD"),
        (CONTROLLER_LOGIN, "TENANTGATE_CONTROLLER_PASSWORD"),
    ):
        out += [
            f"IF SUSER_ID({_n(login)}) IS NULL",
            f"    CREATE LOGIN {_q(login)} WITH PASSWORD = N'$({var})', CHECK_POLICY = ON;",
            "ELSE",
            f"    ALTER LOGIN {_q(login)} WITH PASSWORD = N'$({var})';",
            "GO",
        ]
    return out


def _create_database(name: str) -> list[str]:
    return [
        f"IF DB_ID({_n(name)}) IS NULL CREATE DATABASE {_q(name)};",
        "GO",
        f"USE {_q(name)};",
        "GO",
    ]


def _controller() -> list[str]:
    out = ["", "-- The controller: one row per customer.", *_create_database(CONTROLLER_DB)]
    out += [
        "IF OBJECT_ID(N'dbo.Customer', N'U') IS NULL",
        "    CREATE TABLE [dbo].[Customer] (",
        "      [customer_id] int NOT NULL PRIMARY KEY,",
        "      [domainname] nvarchar(255) NOT NULL UNIQUE,",
        "      [sqlconnectstring] nvarchar(1000) NOT NULL",
        "    );",
        "GO",
        f"IF USER_ID({_n(CONTROLLER_LOGIN)}) IS NULL",
        f"    CREATE USER {_q(CONTROLLER_LOGIN)} FOR LOGIN {_q(CONTROLLER_LOGIN)};",
        f"GRANT SELECT ON [dbo].[Customer] TO {_q(CONTROLLER_LOGIN)};",
        f"ALTER LOGIN {_q(CONTROLLER_LOGIN)} WITH DEFAULT_DATABASE = {_q(CONTROLLER_DB)};",
        "GO",
        "MERGE [dbo].[Customer] AS t",
        "USING (VALUES",
    ]
    rows = [
        f"    ({t.customer_id}, {_n(t.domain)}, {_n(connection_string(t.database))})"
        for t in TENANTS
    ]
    out += [",\n".join(rows)]
    out += [
        ") AS s ([customer_id], [domainname], [sqlconnectstring])",
        "ON t.[customer_id] = s.[customer_id]",
        "WHEN MATCHED THEN UPDATE SET",
        "    [domainname] = s.[domainname], [sqlconnectstring] = s.[sqlconnectstring]",
        "WHEN NOT MATCHED THEN INSERT ([customer_id], [domainname], [sqlconnectstring])",
        "    VALUES (s.[customer_id], s.[domainname], s.[sqlconnectstring]);",
        "GO",
    ]
    return out


def _inserts(table: str, columns: Sequence[Column], rows: list[tuple[Value, ...]]) -> list[str]:
    target = qualified_name(table, BACKEND, "dbo")
    names = ", ".join(_q(c.name) for c in columns)
    values = ",\n".join(
        "    (" + ", ".join(sql_literal(v, BACKEND) for v in row) + ")" for row in rows
    )
    return [
        f"IF NOT EXISTS (SELECT 1 FROM {target})",
        "BEGIN",
        f"  SET IDENTITY_INSERT {target} ON;",
        f"  INSERT INTO {target} ({names}) VALUES",
        values + ";",
        f"  SET IDENTITY_INSERT {target} OFF;",
        "END",
        "GO",
    ]


def _tenant(t: Tenant) -> list[str]:
    out = [
        "",
        f"-- Tenant {t.customer_id} ({t.domain}): {len(t.custom)} custom columns on Contacts.",
        *_create_database(t.database),
    ]
    base = schema_ddl(BACKEND, schema="dbo")
    for table, ddl in zip(TABLE_ORDER, base, strict=True):
        body = ddl.replace("\n", "\n    ")
        out += [f"IF OBJECT_ID({_n('dbo.' + table)}, N'U') IS NULL", f"    {body};"]
    out.append("GO")
    # Custom fields arrive the way the application adds them: ALTER TABLE ... ADD.
    for c in t.custom:
        col = f"{_q(c.name)} {c.type.sql(BACKEND)} NULL"
        out.append(
            f"IF COL_LENGTH(N'dbo.Contacts', {_n(c.name)}) IS NULL "
            f"ALTER TABLE [dbo].[Contacts] ADD {col};"
        )
    if t.custom:
        out.append("GO")
    counts = SeedCounts.for_contacts(CONTACTS)
    for table in TABLE_ORDER:
        custom = t.custom if table == "Contacts" else ()
        rows = list(generate_rows(table, counts, seed=t.customer_id, custom=custom))
        out += _inserts(table, table_columns(table, custom), rows)
    out += [
        f"IF USER_ID({_n(APP_LOGIN)}) IS NULL",
        f"    CREATE USER {_q(APP_LOGIN)} FOR LOGIN {_q(APP_LOGIN)};",
        f"ALTER ROLE [db_datareader] ADD MEMBER {_q(APP_LOGIN)};",
        f"ALTER ROLE [db_datawriter] ADD MEMBER {_q(APP_LOGIN)};",
        "-- The custom-field admin API adds columns: ALTER TABLE ... ADD needs ALTER on",
        "-- the table (granted per table, not on the schema: no CREATE, no DROP).",
        *(f"GRANT ALTER ON OBJECT::[dbo].{_q(table)} TO {_q(APP_LOGIN)};" for table in TABLE_ORDER),
        "GO",
    ]
    return out


def render() -> str:
    """The full text of init.sql."""
    lines = [
        "-- GENERATED by deploy/mssql/generate_init.py from proxy/demo/seed.py: do not edit.",
        "-- Run once by the mssql-init service of docker-compose.yml:",
        "--   sqlcmd -S mssql,1433 -U sa -C -b -i init.sql",
        "-- with TENANTGATE_APP_PASSWORD and TENANTGATE_CONTROLLER_PASSWORD in the environment",
        "-- (sqlcmd scripting variables). Idempotent: safe to run again.",
        f"-- {APP_LOGIN}: reads, writes and adds columns in the tenant databases only.",
        f"-- {CONTROLLER_LOGIN}: reads the Customer table of {CONTROLLER_DB} only.",
        ":on error exit",
        "SET NOCOUNT ON;",
        "GO",
        "",
    ]
    lines += _logins()
    lines += _controller()
    for t in TENANTS:
        lines += _tenant(t)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if init.sql is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
