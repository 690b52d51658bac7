"""``tenantgate bench`` end to end: the real service process serving the SQLite demo's
three tenants (``tenantgate demo``), a fleet directory for them written here by the
``fleet.json`` contract, and the bench run as its own process through tenantgate and
directly, then its refusals (exit 2, a clear message).

What is asserted is what can fail: every script ran on both targets without an error,
the report's numbers hang together, the charts exist. Speeds are not asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.bench.workload import SCRIPTS
from proxy.cli import main
from proxy.demo.layout import create_demo
from tests.support.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.driver_independent]

TOKEN = "bench-e2e-token"


@pytest.fixture(scope="module")
def served_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, int]]:
    """(fleet directory, tenantgate's URL, its pid)."""
    root = tmp_path_factory.mktemp("bench")
    layout = create_demo(root / "demo", contacts=200)
    fleet = root / "fleet"
    fleet.mkdir()
    manifest = {
        "format": 1,
        "fleet_id": "e2e",
        "backend": "sqlite",
        "layout": "file",
        "controller": {
            "connection_string": layout.controller_connection_string, "table": "Customer"
        },
        "tenants": [
            {"customer_id": t.customer_id, "domain": t.domain,
             "connection_string": t.connection_string, "custom_columns": len(t.custom_columns),
             "contacts": layout.contacts, "accounts": 40, "opportunities": 100}
            for t in layout.tenants
        ],
        "complete": True,
    }  # fmt: skip
    (fleet / "fleet.json").write_text(json.dumps(manifest), encoding="utf-8")
    (fleet / "token").write_text(TOKEN + "\n", encoding="utf-8")
    port = free_port()
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "demo", "--dir", str(root / "demo"), "--port", str(port)],
        env={**os.environ, "TENANTGATE_DEMO_TOKEN": TOKEN},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "serve.log").read_text())
            time.sleep(0.1)
        yield fleet, url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_bench_through_tenantgate_and_directly(
    served_fleet: tuple[Path, str, int], tmp_path: Path
) -> None:
    fleet, url, pid = served_fleet
    report_path, plots = tmp_path / "report.json", tmp_path / "plots"
    # Every script, DDL included, at a low rate: one round each (a second http round
    # would meet the columns the direct round added and dropped behind tenantgate).
    scripts = [arg for name in SCRIPTS for arg in ("--script", f"{name}@1")]
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "bench", "--fleet", str(fleet), "--target", url,
         "--both", "--rounds", "1", "--rate", "30", "--duration", "2", "--warmup", "0.3",
         "--skew", "zipf:1.1", "--proxy-pid", str(pid), "--json", str(report_path),
         "--plot", str(plots), *scripts],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "progress: " in done.stderr and "tps, lat" in done.stderr
    assert "== target: http" in done.stdout and "== target: direct" in done.stdout
    report = json.loads(report_path.read_text())
    assert set(report["targets"]) == {"http", "direct"}
    for name, target in report["targets"].items():
        assert target["errors"] == {}, (name, target["errors"])
        assert target["failed"] == 0
        assert set(target["scripts"]) == set(SCRIPTS), name
        for script, stats in target["scripts"].items():
            assert stats["completed"] >= 1, (name, script)
            assert stats["latency_ms"]["max"] >= stats["service_ms"]["p50"] > 0
        assert target["completed"] == sum(s["completed"] for s in target["scripts"].values())
        shares = target["fairness"]["top"]
        assert sum(x["sent"] for x in shares) == target["completed"] + target["skipped"]
        assert target["timeline"], name
    # The same seeded sequence went to both targets.
    http, direct = report["targets"]["http"], report["targets"]["direct"]
    assert http["completed"] + http["skipped"] == direct["completed"] + direct["skipped"]
    assert http["cpu_us_per_request"]["proxy"] is not None  # --proxy-pid was read
    metrics = report["proxy_metrics"]
    assert metrics["requests"]["query ok"] >= http["scripts"]["point_read"]["completed"]
    for chart in ("latency_over_time", "percentile_spectrum", "throughput_over_time",
                  "tenant_p99"):  # fmt: skip
        assert (plots / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tenantgate bench: ")
    return err


def test_bench_refusals(
    served_fleet: tuple[Path, str, int], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    fleet, url, _ = served_fleet
    base = ["--fleet", str(fleet), "--target", url, "--transactions", "1"]
    assert "unknown script 'nope'" in _refusal([*base, "--script", "nope@5"], capsys)
    assert "--rate must be > 0" in _refusal([*base, "--rate", "0"], capsys)
    assert "--rate must be > 0" in _refusal([*base, "--rate", "-3"], capsys)
    closed = f"http://127.0.0.1:{free_port()}"
    err = _refusal(["--fleet", str(fleet), "--target", closed, "--transactions", "1"], capsys)
    assert f"cannot reach tenantgate at {closed}" in err
    monkeypatch.setenv("BENCH_WRONG_TOKEN", "not-the-token")
    err = _refusal([*base, "--token-env", "BENCH_WRONG_TOKEN"], capsys)
    assert "refused the token (401" in err
    assert "not-the-token" not in err
