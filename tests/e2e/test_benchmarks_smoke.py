"""Every benchmark still runs: each is started at a tiny size and must exit 0 and print
its report. Benchmarks are not run in CI otherwise, and one that silently broke (as the
throughput floor did when reads gained a row cap) would print nothing worth quoting.
The figures themselves are not checked here: they are measured, not asserted.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

RUNS = [
    ("point_select.py", ["--requests", "100"], "overhead:"),
    ("rewrite.py", ["--rounds", "5", "--wide-rounds", "3"], "targets:"),
    ("metadata_memory.py", ["--tenants", "50", "--wide-tenants", "3", "--reps", "1"], "tenant"),
    ("churn.py", ["--seconds", "4", "--tenants", "2"], "violations: 0"),
    ("throughput.py", ["--rounds", "1", "--seconds", "1"], "throughput / floor"),
    ("compare.py", ["--tiny"], "req/s / naive"),
]


def _pgbench() -> str | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/pgbench")
    return found[0] if found else shutil.which("pgbench")


def _missing_tools(script: str) -> list[str]:
    """The load tools ``script`` needs and this machine lacks (CI need not have them:
    `make bench` installs them)."""
    if script == "throughput.py":
        return [t for t in ("wrk",) if shutil.which(t) is None]
    if script == "compare.py":
        missing = [t for t in ("wrk", "pgbouncer") if shutil.which(t) is None]
        return missing + ([] if _pgbench() else ["pgbench"])
    return []


@pytest.mark.parametrize(("script", "args", "marker"), RUNS, ids=[r[0] for r in RUNS])
def test_benchmark_runs(script: str, args: list[str], marker: str) -> None:
    missing = _missing_tools(script)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make bench installs them)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert marker in done.stdout, done.stdout[-2000:]
