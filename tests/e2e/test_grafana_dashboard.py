"""The Grafana dashboard (``deploy/grafana/dashboards/tenantgate.json``) on a real Prometheus.

A private Prometheus (the Debian ``prometheus`` package; ``scripts/system-deps.sh``)
scrapes the running service (``tests/support/stack.py``: SQLite, PostgreSQL and, when
the engine is at hand, SQL Server tenants) every second, on a loopback port of its own
with its storage in a temporary folder, while a background thread sends a mix of
requests: point reads over several tenants (one of them busier than the rest, so the
top-tenant ranks differ), refused ones (an unknown column, which also heals the
column cache; an unknown tenant), truncated results, explains, and reads whose
PostgreSQL connection was terminated under them (a retry each).

Every panel's every query is then written as Grafana would send it (``$__rate_interval``,
``$job`` and ``$instance`` substituted, see ``grafana_expr``) and asked of Prometheus's
``/api/v1/query`` while the load still runs; each must return at least one finite
sample. Other checks: a panel names only metrics that ``/metrics`` exports (a typo
otherwise shows as an empty panel, not an error); the ``job``/``instance`` variables
find the scraped target; and ``promtool check metrics`` accepts the exposition.

Prometheus 2.42 (Debian 12) applies discovered targets on a fixed 5 s tick, so the
first scrape comes about 5 s after start; the load runs from the start, so the wait
overlaps it. The module takes about 10 s after the stack is up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.driver_independent]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tenantgate.json"
JOB = "tenantgate"
SCRAPE_INTERVAL_S = 1
# What Grafana puts for $__rate_interval: max($__interval + scrape interval, 4 x scrape
# interval), the data source's scrape interval set to Prometheus's (1 s here, 15 s in
# deploy/grafana/provisioning). Four scrapes: a window that holds at least two samples
# even when a scrape comes late.
RATE_INTERVAL = f"{4 * SCRAPE_INTERVAL_S}s"
DEADLINE_S = 60
"""How long the first panel may wait for data (typically ~8 s: the first scrape, then
enough samples for the rate windows). Generous: the machine is shared."""

# Series that Prometheus adds to every scraped target itself.
PROMETHEUS_SERIES = frozenset({"up"})
# Metric families a panel may name that /metrics does not export yet: a panel on them
# is reported as pending (xfail) while its family is absent. Empty: every panel's data
# is demanded (the process_* families come from the service's ProcessCollector).
PENDING: dict[str, str] = {}

# -- the dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    row: str
    title: str
    exprs: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.row} / {self.title}"


def load_panels() -> list[Panel]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels, row = [], ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        exprs = tuple(t["expr"] for t in panel.get("targets", ()) if not t.get("hide"))
        panels.append(Panel(row, panel["title"], exprs))
    return panels


PANELS = load_panels()

_PROMQL_WORDS = frozenset(
    ("and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
     "group_left", "group_right", "inf", "nan")
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (no parser for PromQL at hand)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range windows
    # Label lists of grouping and matching modifiers.
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if word.casefold() not in _PROMQL_WORDS:
            names.add(word)
    return names


def grafana_escape(value: str) -> str:
    """A variable's value as Grafana writes it into a Prometheus regex matcher (multi-value
    variables): regex metacharacters escaped, the backslash doubled for the string."""
    return re.sub(r"[$^*{}\[\]'+?.()|\\]", lambda m: "\\\\" + m.group(), value)


def grafana_expr(expr: str, *, job: str, instance: str) -> str:
    substituted = (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("${job}", job)
        .replace("$job", job)
        .replace("${instance}", grafana_escape(instance))
        .replace("$instance", grafana_escape(instance))
    )
    assert "$" not in substituted, f"a variable Grafana would substitute is left: {expr}"
    return substituted


# -- Prometheus and the load --------------------------------------------------------------


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian package prometheus: scripts/system-deps.sh)"
        if os.environ.get("CI", "").casefold() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@dataclass(frozen=True)
class Scraped:
    api: str
    """Prometheus's base URL."""
    job: str
    instance: str
    """The service's target as Prometheus labels it (``host:port``)."""


def _load(stack: Stack, stop: threading.Event, errors: list[BaseException]) -> None:
    """Requests until ``stop``: reads over the tenants, refusals, truncations, explains,
    and every second PostgreSQL connections terminated under the pool."""
    # Tenant 2 (beta.example) takes a third of the reads: rank 1 of the top tenants.
    tenants: list[int | str] = [2, 2, 2, 1, 3, 11, 12, *stack.sqlserver]
    terminate_at = time.monotonic() + 1
    try:
        with stack.client() as client:
            for i in itertools.count():
                if stop.is_set():
                    return
                tenant = tenants[i % len(tenants)]
                body: dict[str, Any] = {
                    "tenant": tenant,
                    "sql": "SELECT * FROM Contacts WHERE ContactID = ?",
                    "params": [i % 10 + 1],
                }
                expected = 200
                if i % 7 == 3:
                    # A new name each time: the column cache is revalidated (a heal), on
                    # SQLite and on PostgreSQL, whose catalog read may meet a connection
                    # just terminated (read once more, tenancy.metadata).
                    heal = 2 if i % 2 else 12
                    body = {"tenant": heal, "sql": f"SELECT NoSuchColumn{i} FROM Contacts"}
                    expected = 400
                elif i % 11 == 5:
                    body = {"tenant": "nobody.example", "sql": "SELECT 1"}
                    expected = 404
                elif i % 13 == 6:
                    body = {"tenant": tenant, "sql": "SELECT ContactID FROM Contacts",
                            "max_rows": 2}  # fmt: skip
                if i % 19 == 9:
                    _transactions(client, i)
                response = client.post("/v1/explain" if i % 17 == 8 else "/v1/query", json=body)
                assert response.status_code == expected, response.text
                if time.monotonic() >= terminate_at:
                    terminate_at = time.monotonic() + 1
                    _terminate_pg_sessions(stack)
                time.sleep(0.005)  # a few hundred requests a second at most: a shared machine
    except BaseException as exc:  # reported by the tests, not lost in the thread
        errors.append(exc)


def _transactions(client: httpx.Client, i: int) -> None:
    """A batch of two reads, and an interactive transaction of one read, committed or
    rolled back, on a SQLite tenant (the PostgreSQL connections are terminated under
    the load)."""
    read = {"sql": "SELECT COUNT(*) AS n FROM Contacts WHERE ContactID = ?", "params": [1]}
    r = client.post("/v1/batch", json={"tenant": 2, "statements": [read, read]})
    assert r.status_code == 200, r.text
    r = client.post("/v1/transactions", json={"tenant": 2})
    assert r.status_code == 201, r.text
    url = f"/v1/transactions/{r.json()['id']}"
    assert client.post(f"{url}/query", json=read).status_code == 200
    end = "commit" if i % 2 else "rollback"
    assert client.post(f"{url}/{end}").status_code == 200


def _terminate_pg_sessions(stack: Stack) -> None:
    """The pool's connections to the stack's PostgreSQL tenants die: the next read on
    each finds its connection lost and is retried (``tenantgate_reads_retried``)."""
    databases = list(stack.pg_databases.values())
    marks = ", ".join("?" * len(databases))
    with contextlib.closing(stack.pg.connect()) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname IN ({marks}) AND pid <> pg_backend_pid()",
            *databases,
        ).fetchall()


@pytest.fixture(scope="module")
def scraped(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    binary = _binary("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    instance = urlsplit(stack.url).netloc
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [instance]}]}],
    }
    (root / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = free_port()
    log_path = root / "prometheus.log"
    stop, errors = threading.Event(), list[BaseException]()
    load = threading.Thread(target=_load, args=(stack, stop, errors), daemon=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    try:
        load.start()
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{api}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield Scraped(api, JOB, instance)
    finally:
        stop.set()
        load.join(timeout=30)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert not errors, f"the load failed: {errors[0]!r}"


@pytest.fixture(scope="module")
def exposition(scraped: Scraped, stack: Stack) -> str:
    """The service's /metrics once the load has run (every family has samples then)."""
    _wait_for(scraped, f'sum(tenantgate_requests_total{{job="{JOB}"}}) > 100')
    return httpx.get(f"{stack.url}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def exported(exposition: str) -> frozenset[str]:
    """Every series name /metrics exports, families without samples included."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "summary": ("_count", "_sum", "")}  # fmt: skip
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return frozenset(names)


def _query(scraped: Scraped, expr: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{scraped.api}/api/v1/query", data={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def _wait_for(scraped: Scraped, expr: str) -> list[dict[str, Any]]:
    """The result of ``expr`` once it holds a finite sample, or a failure at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = _query(scraped, expr)
        if _finite(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _pending(panel: Panel, exported: frozenset[str]) -> list[str]:
    names = set().union(*(metric_names(e) for e in panel.exprs))
    return sorted(n for n in names if n in PENDING and n not in exported)


# -- the tests ---------------------------------------------------------------------------


def test_the_dashboard_has_panels() -> None:
    assert len(PANELS) >= 20
    assert all(panel.exprs for panel in PANELS), [p.id for p in PANELS if not p.exprs]


@pytest.mark.parametrize("panel", PANELS, ids=[p.id for p in PANELS])
def test_panel_returns_data(panel: Panel, scraped: Scraped, exported: frozenset[str]) -> None:
    pending = _pending(panel, exported)
    if pending:
        reasons = sorted({PENDING[n] for n in pending})
        pytest.xfail(f"pending {' and '.join(reasons)}: {', '.join(pending)} not in /metrics")
    for expr in panel.exprs:
        sent = grafana_expr(expr, job=scraped.job, instance=scraped.instance)
        result = _wait_for(scraped, sent)
        assert _finite(result), f"no data within {DEADLINE_S} s for:\n{sent}\ngot: {result}"


def test_panels_name_only_exported_metrics(exported: frozenset[str]) -> None:
    unknown = {
        panel.id: sorted(names)
        for panel in PANELS
        if (
            names := set().union(*(metric_names(e) for e in panel.exprs))
            - exported
            - PROMETHEUS_SERIES
            - PENDING.keys()
        )
    }
    assert not unknown, f"panels name metrics /metrics does not export: {unknown}"
    # The extraction itself finds names (it would pass vacuously otherwise).
    assert metric_names(PANELS[0].exprs[0]) <= exported
    assert metric_names(
        'sum by (server) (rate(tenantgate_pool_wait_seconds_total{job=~"$job"}[5m]))'
        " / ignoring(x) group_left(server)"
        ' (sum(rate(tenantgate_pool_acquires_total{rank=~"[1-9]"}[5m])) > bool 0)'
    ) == {"tenantgate_pool_wait_seconds_total", "tenantgate_pool_acquires_total"}


def test_variables_find_the_service(scraped: Scraped) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    _wait_for(scraped, f'up{{job="{JOB}"}} == 1')
    for name, value in (("job", scraped.job), ("instance", scraped.instance)):
        query = variables[name]["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match and match.group(2) == name, query
        selector = match.group(1).replace("$job", scraped.job)
        response = httpx.get(
            f"{scraped.api}/api/v1/label/{name}/values", params={"match[]": selector}, timeout=10
        )
        assert value in response.json()["data"], (name, selector, response.text)


def test_promtool_accepts_the_metrics(exposition: str) -> None:
    promtool = _binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=exposition.encode(), capture_output=True,
        timeout=60, check=False,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, f"promtool check metrics:\n{output}"
    assert "tenantgate_requests_total" in exposition  # it linted the real thing
