"""Every benchmark still runs: each is started at a tiny size and must exit 0 and print
its report. Benchmarks are not run in CI otherwise, and one that silently broke (as the
throughput floor did when reads gained a row cap) would print nothing worth quoting.
The figures themselves are not checked here: they are measured, not asserted.
"""

from __future__ import annotations

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
]


@pytest.mark.parametrize(("script", "args", "marker"), RUNS, ids=[r[0] for r in RUNS])
def test_benchmark_runs(script: str, args: list[str], marker: str) -> None:
    if script == "throughput.py" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert marker in done.stdout, done.stdout[-2000:]
