"""The reporting corpus as a report: accepted / correct / refused per backend.

Runs every statement of ``tests/fixtures/reporting/corpus.toml`` through the real service
process (``tests/support/reporting.py``) on a SQLite, a PostgreSQL and (with a T-SQL
engine) a SQL Server tenant per ODBC driver, all seeded with the same demo data, and
prints per backend how many statements were accepted, how many of those returned the
expected rows, and how many were refused, then the refusal reasons grouped.

Servers: ``TENANTGATE_TEST_PG_DSN`` / ``TENANTGATE_TEST_TDS_DSN`` when set, else a private
PostgreSQL cluster and a private Babelfish (``TENANTGATE_BABELFISH_DIR``), as the tests do.

    .venv/bin/python benchmarks/reporting.py                  # the report; exit 1 on failures
    .venv/bin/python benchmarks/reporting.py --regenerate     # recompute expected.json
    .venv/bin/python benchmarks/reporting.py --update-refusals  # set refused_on to today's

``--regenerate`` runs each statement DIRECTLY on the T-SQL engine (not through tenantgate)
over a database seeded with the corpus data and rewrites ``expected.json``.
``--update-refusals`` rewrites each entry's ``refused_on`` line in ``corpus.toml`` to what
the service refuses now (the message up to its first sentence end as the substring), so
the list shrinks as constructs land; read the diff before keeping it.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import tds  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402
from tests.support.reporting import (  # noqa: E402
    CORPUS,
    EXPECTED,
    FAILURES,
    REFUSAL_CODES,
    Outcome,
    Result,
    backend_of,
    construct_of,
    direct_rows,
    expected_text,
    format_report,
    load_corpus,
    load_expected,
    reporting_stack,
    run_corpus,
    seeded_tds_database,
)


def regenerate(engine: tds.TdsServer) -> None:
    reports = load_corpus()
    driver = engine.drivers[-1]
    results: dict[str, Result] = {}
    failed: list[str] = []
    with seeded_tds_database(engine, driver) as database:
        conn = engine.connect(driver, database)
        try:
            name = str(conn.execute("SELECT @@VERSION").fetchall()[0][0]).splitlines()[0]
            probe = "SELECT CAST(SERVERPROPERTY('Babelfish') AS INT)"
            skip = conn.execute(probe).fetchall()[0][0] == 1
            for report in reports:
                if skip and report.babelfish_skip:
                    print(f"not run on Babelfish: {report.name}: {report.babelfish_skip}")
                    continue
                cursor = conn.cursor()
                try:
                    results[report.name] = direct_rows(cursor, report)
                except Exception as exc:  # noqa: BLE001  reported, then the run fails
                    failed.append(f"{report.name}: {exc}")
                    # The session may be gone (an engine crash ends it): a new one.
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = engine.connect(driver, database)
                finally:
                    with contextlib.suppress(Exception):
                        cursor.close()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
    EXPECTED.write_text(expected_text(results, name.strip()), encoding="utf-8")
    print(f"wrote {EXPECTED.relative_to(ROOT)}: {len(results)} statements on {name.strip()}")
    if failed:
        print("the T-SQL engine could not run:\n  " + "\n  ".join(failed))
        raise SystemExit(1)


def _reason(message: str) -> str:
    """The stable part of a refusal message: the construct it names (before "is not
    supported"), else its first 60 characters."""
    return construct_of(message)


def update_refusals(outcomes: list[Outcome]) -> int:
    """Rewrite ``refused_on`` in corpus.toml to today's refusals; how many entries changed."""
    refused: dict[str, dict[str, str]] = defaultdict(dict)
    for o in outcomes:
        if o.code in REFUSAL_CODES:
            refused[o.name][backend_of(o.label)] = _reason(o.message)
    text = CORPUS.read_text(encoding="utf-8")
    blocks = re.split(r"(?m)^(?=\[\[report\]\]\n)", text)
    changed = 0
    for i, block in enumerate(blocks):
        m = re.search(r'(?m)^name = "([^"]+)"', block)
        if not m:
            continue
        old = re.search(r"(?m)^refused_on = .*\n", block)
        entries = refused.get(m.group(1), {})
        line = ""
        if entries:
            inner = ", ".join(
                f'{backend} = "{entries[backend].replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'  # noqa: E501
                for backend in ("sqlite", "postgresql", "sqlserver")
                if backend in entries
            )
            line = f"refused_on = {{ {inner} }}\n"
        if (old.group(0) if old else "") == line:
            continue
        body = block.replace(old.group(0), "") if old else block
        # After the entry's last line: before the blank lines and comments that open the
        # next section (they belong to this block of text).
        lines = body.splitlines(keepends=True)
        end = len(lines)
        while end and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1
        blocks[i] = "".join(lines[:end]) + line + "".join(lines[end:])
        changed += 1
    CORPUS.write_text("".join(blocks), encoding="utf-8")
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regenerate", action="store_true", help="recompute expected.json")
    parser.add_argument(
        "--update-refusals", action="store_true", help="set refused_on to today's refusals"
    )
    parser.add_argument("--no-sqlserver", action="store_true", help="skip the T-SQL engine")
    args = parser.parse_args()
    # Before this process's first ODBC connection: unixODBC reads ODBCSYSINI once, and
    # the service process inherits it.
    tds.register_msodbc18()
    with contextlib.ExitStack() as resources:
        engine: tds.TdsServer | None = None
        if not args.no_sqlserver:
            try:
                engine = resources.enter_context(tds.tds_server())
            except tds.TdsUnavailable as exc:
                if args.regenerate:
                    raise SystemExit(f"--regenerate needs a T-SQL engine: {exc}") from exc
                print(f"SQL Server: skipped, no T-SQL engine over TDS: {exc}")
        if args.regenerate:
            assert engine is not None
            regenerate(engine)
            return
        pg = resources.enter_context(pg_server())
        tmp = Path(resources.enter_context(tempfile.TemporaryDirectory()))
        started = time.monotonic()
        stack = resources.enter_context(reporting_stack(tmp, pg, engine))
        seeded = time.monotonic()
        reports = load_corpus()
        outcomes = run_corpus(stack, reports, load_expected())
        done = time.monotonic()
    print(format_report(outcomes))
    print(
        f"{len(reports)} statements; seeding and start {seeded - started:.1f} s, "
        f"queries {done - seeded:.1f} s"
    )
    if args.update_refusals:
        print(f"refused_on rewritten in {update_refusals(outcomes)} entries of corpus.toml")
        return
    if any(o.status in FAILURES for o in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
