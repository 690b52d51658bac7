"""Point-select throughput under concurrent load: tenantgate next to a bare baseline.

Runs ``wrk`` (Debian package ``wrk``; `make bench` installs it) against the real
tenantgate process and against ``baseline_app.py`` (bare Starlette doing the same
backend SQL in a worker thread), alternating in rounds so that the noise of this
shared machine hits both. Prints requests/s and latency medians across rounds.

    .venv/bin/python benchmarks/throughput.py [--rounds 5] [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, Stack, running_stack  # noqa: E402

SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk_script(directory: Path, tenant: object, token: str) -> Path:
    path = directory / f"post_{tenant}.lua"
    body = json.dumps({"tenant": tenant, "sql": SQL, "params": [5]})
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    return path


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    latency_ms = float(p50.group(1)) * scale[p50.group(2)]  # type: ignore[union-attr]
    return rps, latency_ms


def start_baseline(
    dsn: str, backend_sql: str, extra: list[object]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    app = str(ROOT / "benchmarks" / "baseline_app.py")
    proc = subprocess.Popen(
        [sys.executable, app, "--port", str(port), "--dsn", dsn, "--sql", backend_sql,
         "--extra", json.dumps(extra)]
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.post(f"{url}/v1/query", json={"params": [1]}, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("baseline did not start")


def compare(stack: Stack, tenant: object, dsn: str, args: argparse.Namespace, tmp: Path) -> None:
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {FULL_TOKEN}"}) as c:
        plan = c.post("/v1/explain", json={"tenant": tenant, "sql": SQL, "params": [5]}).json()
    # The floor binds exactly what tenantgate binds: the request's value, then the
    # row cap the service appends (explain shows both).
    baseline, baseline_url = start_baseline(dsn, plan["sql"], plan["params"][1:])
    script = wrk_script(tmp, tenant, FULL_TOKEN)
    results: dict[str, list[tuple[float, float]]] = {"tenantgate": [], "baseline": []}
    try:
        for _ in range(args.rounds):
            results["tenantgate"].append(
                run_wrk(f"{stack.url}/v1/query", script, args.seconds, args.connections)
            )
            results["baseline"].append(
                run_wrk(f"{baseline_url}/v1/query", script, args.seconds, args.connections)
            )
    finally:
        baseline.terminate()
        baseline.wait()
    print(f"\n{plan['backend']} tenant {tenant}: wrk -t1 -c{args.connections}, "
          f"{args.rounds} rounds of {args.seconds}s, alternating")  # fmt: skip
    print(f"  {'':34}{'req/s (median)':>16}{'p50 ms (median)':>17}")
    for name, label in (("tenantgate", "tenantgate /v1/query"),
                        ("baseline", "bare Starlette + pyodbc (floor)")):  # fmt: skip
        rps = statistics.median(r for r, _ in results[name])
        p50 = statistics.median(lat for _, lat in results[name])
        print(f"  {label:34}{rps:16.0f}{p50:17.2f}")
    ratio = statistics.median(r for r, _ in results["tenantgate"]) / statistics.median(
        r for r, _ in results["baseline"]
    )
    print(f"  tenantgate throughput / floor: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (or `make bench`)")
    with (
        tempfile.TemporaryDirectory() as tmp,
        pg_server() as pg,
        running_stack(Path(tmp), pg) as stack,
    ):
        tenant_2 = next(t for t in stack.demo.tenants if t.customer_id == 2)
        compare(stack, 2, tenant_2.connection_string, args, Path(tmp))
        compare(stack, 12, stack.pg.odbc(stack.pg_databases[12], BoolsAsChar="0"), args, Path(tmp))


if __name__ == "__main__":
    main()
