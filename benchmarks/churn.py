"""Schema churn under load, the long version of ``tests/integration/test_churn.py``.

Starts the real service over ``--tenants`` PostgreSQL tenants (a private cluster, or
``TENANTGATE_TEST_PG_DSN``), runs concurrent readers and writers over HTTP while on
every tenant a custom column of ``Contacts`` is added or dropped every
``--ddl-interval`` seconds (outside tenantgate and through the custom-field API), then
prints: requests by kind, status and code; p50/p99 latency; DDL done; heals performed
(``tenantgate_metadata_heals_total``); acknowledged writes found afterwards; and the
observed staleness (how long after a column was added outside responses still lacked
it, and whether any response begun after a drop still returned the column).

``--sqlserver`` adds one SQL Server tenant per ODBC driver (Microsoft ODBC 18, FreeTDS)
on the T-SQL engine the tests use (``TENANTGATE_TEST_TDS_DSN``, or Babelfish started
from ``../shared/babelfish``).

    .venv/bin/python benchmarks/churn.py [--seconds 300] [--tenants 6] [--sqlserver]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.demo.churn import run_churn  # noqa: E402
from tests.support.churn import churn_stack  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402
from tests.support.tds import register_msodbc18, tds_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--ddl-interval", type=float, default=1.0)
    parser.add_argument(
        "--reuse", type=int, default=0, help="reuse this many names per tenant, types alternating"
    )
    parser.add_argument(
        "--ttl", type=float, default=300.0, help="metadata.ttl_s of the service (default 300)"
    )
    parser.add_argument(
        "--sqlserver", action="store_true", help="add one SQL Server tenant per ODBC driver"
    )
    parser.add_argument("--workers", type=int, default=2, help="server.workers (default 2)")
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        tds = None
        if args.sqlserver:
            register_msodbc18()  # before the first ODBC connection of this process
            tds = scope.enter_context(tds_server())
        pg = scope.enter_context(pg_server())
        tmp = scope.enter_context(tempfile.TemporaryDirectory(prefix="tg-churn-"))
        drivers = tds.drivers if tds is not None else ()
        stack = scope.enter_context(
            churn_stack(
                Path(tmp),
                pg,
                tenants=args.tenants,
                ttl_s=args.ttl,
                tds=tds,
                sqlserver=drivers,
                workers=args.workers,
            )
        )
        report = run_churn(
            stack.target,
            seconds=args.seconds,
            readers=args.readers,
            writers=args.writers,
            ddl_interval=args.ddl_interval,
            reuse=args.reuse,
        )
        tracebacks = stack.log_path.read_text(errors="replace").count("Traceback")
    print(report.summary())
    print(f"tracebacks in the service log: {tracebacks}")
    return 1 if report.violations or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
