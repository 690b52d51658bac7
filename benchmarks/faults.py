"""The fault-injection suite, the long version of ``tests/faults``.

Runs every fault of the suite (partition, storm, restarts and terminated backends, a
server outage, ``kill -9`` of tenantgate) with each fault and each load period held
``--scale`` times as long (the outage: 20 s times the scale), against the real service and
private PostgreSQL clusters, and prints each fault's report: requests, answers by
status and code, p50/p99/worst latency against the deadline, recovery time,
acknowledged writes found. Needs root and iptables, like the suite.

    .venv/bin/python benchmarks/faults.py [--scale 3] [--drivers native|odbc] [-k storm]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=3.0, help="how much longer (default 3)")
    parser.add_argument("--drivers", choices=("native", "odbc"), default="native",
                        help="the PostgreSQL tenants' driver")  # fmt: skip
    parser.add_argument("-k", default=None, help="only the faults whose test matches")
    args = parser.parse_args()
    env = {**os.environ, "TENANTGATE_FAULT_SCALE": str(args.scale)}
    if args.drivers == "odbc":
        env["TENANTGATE_TEST_DRIVERS"] = "odbc"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-o", "timeout=0", str(ROOT / "tests" / "faults")]  # fmt: skip
    if args.k:
        command += ["-k", args.k]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
