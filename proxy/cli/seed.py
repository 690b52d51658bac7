"""``tenantgate seed``: the command line of ``proxy.bench.seed`` (docs/bench.md).

Exit status: 0 done, 1 the backend failed (unreachable server, an error while
seeding: re-run to resume), 2 refused (bad options, a name this fleet did not create,
a folder holding another fleet), 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from proxy.bench.distribution import CustomColumnDistribution, DistributionError
from proxy.bench.seed import (
    DEFAULT_CUSTOM_COLUMNS,
    SeedFailed,
    SeedOptions,
    drop_fleet,
    run_seed,
)

__all__ = ["add_arguments", "run"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

_EPILOG = """\
examples:
  tenantgate seed --dir var/fleet --backend sqlite --tenants 1000
  tenantgate seed --dir var/pgfleet --server postgresql://admin@db1:5432/postgres \\
      --password-env PGPASSWORD --layout schema --tenants 10000 --jobs 2
  tenantgate seed --dir var/pgfleet --drop --password-env PGPASSWORD

Re-running the same command resumes an interrupted fleet (or grows it with a larger
--tenants). Serve the fleet with: tenantgate serve --config DIR/tenantgate.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Create a fleet of tenants for load benchmarks (or resume it, or --drop it), "
        "registered in a controller, with tenantgate.toml, token and fleet.json in DIR."
    )
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dir", required=True, help="the fleet's folder")
    parser.add_argument("--tenants", type=int, default=100, help="how many (default 100)")
    parser.add_argument(
        "--backend", choices=("postgresql", "sqlite", "sqlserver"), default="postgresql"
    )
    parser.add_argument(
        "--layout",
        choices=("database", "schema", "file"),
        help="postgresql: database (default) or schema; sqlserver: database; sqlite: file",
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--server",
        help="admin connection: postgresql://user@host:port/db, or an ODBC string for sqlserver",
    )
    server.add_argument(
        "--server-env", metavar="VAR", help="read --server from this environment variable"
    )
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="the server password from this environment variable (kept off the command line)",
    )
    parser.add_argument(
        "--prefix",
        default="tgfleet",
        help="database names: PREFIX_t00001, PREFIX_template, PREFIX_controller",
    )
    parser.add_argument(
        "--database", help="schema layout: the database holding the schemas (default PREFIX)"
    )
    parser.add_argument(
        "--controller-on-server",
        action="store_true",
        help="the controller is the database PREFIX_controller on the server "
        "(default: DIR/controller.db, SQLite)",
    )
    parser.add_argument(
        "--custom-columns",
        default=DEFAULT_CUSTOM_COLUMNS,
        metavar="SPEC",
        help="custom columns per tenant on Contacts as RANGE:PERCENT%% items, e.g. "
        # argparse formats help with %: the default's own signs doubled.
        f"'{DEFAULT_CUSTOM_COLUMNS.replace('%', '%%')}' (the default), '20', '0-50'",
    )
    parser.add_argument("--contacts", type=int, default=1000, help="contacts a tenant")
    parser.add_argument("--seed", type=int, default=0, help="seed of all generated data")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes"
    )
    parser.add_argument("--port", type=int, default=8040, help="tenantgate.toml's port")
    parser.add_argument(
        "--force",
        action="store_true",
        help="drop and recreate objects under the fleet's names that it did not create",
    )
    parser.add_argument(
        "--drop", action="store_true", help="remove the fleet in DIR (only what it created)"
    )


def _env(var: str, what: str) -> str:
    value = os.environ.get(var)
    if value is None:
        raise SeedFailed(f"{what}: environment variable {var} is not set", 2)
    return value


def _options(args: argparse.Namespace) -> SeedOptions:
    try:
        dist = CustomColumnDistribution.parse(args.custom_columns)
    except DistributionError as exc:
        raise SeedFailed(f"--custom-columns: {exc}", 2) from None
    for flag, value in (("--prefix", args.prefix), ("--database", args.database)):
        if value is not None and not _NAME.fullmatch(value):
            raise SeedFailed(
                f"{flag} must be lowercase letters, digits and _ (starting with a letter, "
                "at most 40)",
                2,
            )
    server = _env(args.server_env, "--server-env") if args.server_env else (args.server or "")
    password = _env(args.password_env, "--password-env") if args.password_env else None
    return SeedOptions(
        directory=Path(args.dir),
        tenants=args.tenants,
        backend=args.backend,
        layout=args.layout or "",
        server=server,
        password=password,
        prefix=args.prefix,
        database=args.database or "",
        controller_on_server=args.controller_on_server,
        custom_columns=dist,
        contacts=args.contacts,
        seed=args.seed,
        jobs=args.jobs,
        port=args.port,
        force=args.force,
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.drop:
            server = _env(args.server_env, "--server-env") if args.server_env else args.server
            password = _env(args.password_env, "--password-env") if args.password_env else None
            dropped = drop_fleet(Path(args.dir), server=server, password=password)
            print(f"dropped the fleet in {args.dir}: {len(dropped)} object(s) on its backend")
            return 0
        options = _options(args)
        report = run_seed(options)
    except SeedFailed as exc:
        print(f"tenantgate seed: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(
            "tenantgate seed: interrupted; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    directory = report.directory
    redone = f", {report.redone} half-made redone" if report.redone else ""
    print(
        f"fleet ready in {directory}: {report.tenants} tenants, {report.built} built this run "
        f"in {report.elapsed_s:.1f} s ({report.rate:.1f} tenants/s){redone}"
    )
    print(f"serve it: tenantgate serve --config {directory / 'tenantgate.toml'}")
    return 0
