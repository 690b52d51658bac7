"""The production-like stack (docker-compose.yml, Dockerfile, deploy/): no Docker engine
runs here, so these tests check that the pieces fit together."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from proxy.config import load
from proxy.demo.seed import BASE_MODEL
from tenancy import connstr

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONTROLLER_ENV = "TENANTGATE_CONTROLLER_CONNECTION_STRING"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` with ``env`` (missing: the default)."""
    return INTERPOLATION.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def generate_init() -> ModuleType:
    path = DEPLOY / "mssql" / "generate_init.py"
    spec = importlib.util.spec_from_file_location("generate_init", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_init", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_services(services: dict[str, Any]) -> None:
    assert set(services) == {"mssql", "mssql-init", "tenantgate", "prometheus", "grafana"}


def test_mssql(services: dict[str, Any], env_example: dict[str, str]) -> None:
    mssql = services["mssql"]
    assert mssql["image"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert mssql["environment"]["ACCEPT_EULA"] == "Y"
    sa = mssql["environment"]["MSSQL_SA_PASSWORD"]
    assert sa.startswith("${MSSQL_SA_PASSWORD")
    assert interpolate(sa, {}) == env_example["MSSQL_SA_PASSWORD"]
    assert "1433:1433" in mssql["ports"]
    test = " ".join(mssql["healthcheck"]["test"])
    assert "/opt/mssql-tools18/bin/sqlcmd" in test
    assert "$$MSSQL_SA_PASSWORD" in test  # the container's variable, not compose's
    assert " -C " in test and "SELECT 1" in test
    assert any(v.endswith(":/var/opt/mssql") for v in mssql["volumes"])


def test_mssql_init_runs_once_after_mssql_is_healthy(services: dict[str, Any]) -> None:
    init = services["mssql-init"]
    assert init["depends_on"]["mssql"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    assert "./deploy/mssql/init.sql:/init/init.sql:ro" in init["volumes"]
    command = init["entrypoint"]
    assert command[0].endswith("/sqlcmd")
    assert command[command.index("-S") + 1] == "mssql,1433"
    assert command[command.index("-i") + 1] == "/init/init.sql"
    assert "-b" in command  # stop at the first error, exit non-zero
    env = init["environment"]
    assert env["SQLCMDPASSWORD"] == services["mssql"]["environment"]["MSSQL_SA_PASSWORD"]
    init_sql = (DEPLOY / "mssql" / "init.sql").read_text(encoding="utf-8")
    for var in set(re.findall(r"\$\((\w+)\)", init_sql)):
        assert var in env, f"init.sql uses $({var}) but mssql-init does not set it"


def test_tenantgate_service(services: dict[str, Any]) -> None:
    tg = services["tenantgate"]
    assert tg["build"]["dockerfile"] == "Dockerfile"
    assert tg["depends_on"]["mssql-init"]["condition"] == "service_completed_successfully"
    assert tg["depends_on"]["mssql"]["condition"] == "service_healthy"
    assert "8040:8040" in tg["ports"]
    assert tg["command"] == ["serve", "--config", "/etc/tenantgate/tenantgate.toml"]
    assert "./deploy/tenantgate.toml:/etc/tenantgate/tenantgate.toml:ro" in tg["volumes"]
    assert "/healthz" in " ".join(tg["healthcheck"]["test"])
    assert ":8040/" in " ".join(tg["healthcheck"]["test"])


def test_proxy_config_points_at_the_controller_on_mssql(
    services: dict[str, Any], env_example: dict[str, str]
) -> None:
    with open(DEPLOY / "tenantgate.toml", "rb") as fh:
        raw = tomllib.load(fh)
    assert raw["controller"]["connection_string_env"] == CONTROLLER_ENV
    assert "connection_string" not in raw["controller"]  # the secret stays in the environment
    template = services["tenantgate"]["environment"][CONTROLLER_ENV]
    value = interpolate(template, env_example)
    cs = connstr.parse(value)
    assert cs["driver"] == "ODBC Driver 18 for SQL Server"
    assert cs["server"] == "mssql,1433"
    assert cs["database"] == "tenantgate_controller"
    assert cs["uid"] == "tenantgate_controller"
    assert cs["pwd"] == env_example["TENANTGATE_CONTROLLER_PASSWORD"]
    assert cs["encrypt"] == "yes"
    # The same value with compose's defaults (no .env file).
    assert interpolate(template, {}) == value
    # The service's own loader accepts the file with that environment.
    settings = load(DEPLOY / "tenantgate.toml", env={CONTROLLER_ENV: value})
    assert settings.controller.connection_string == value
    assert settings.controller.table == "Customer"
    assert settings.server.host == "0.0.0.0"  # inside the container
    assert settings.server.port == 8040
    assert not settings.server.metrics_require_token  # Prometheus scrapes without a token


def test_base_model_matches_schema_seed() -> None:
    settings = load(DEPLOY / "tenantgate.toml", env={CONTROLLER_ENV: "Driver=x"})
    assert {t: list(cols) for t, cols in settings.base_model.items()} == BASE_MODEL


def test_token_hash_matches_the_documented_demo_token(env_example: dict[str, str]) -> None:
    settings = load(DEPLOY / "tenantgate.toml", env={CONTROLLER_ENV: "Driver=x"})
    token = env_example["TENANTGATE_DEMO_TOKEN"]
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    assert [t.sha256 for t in settings.tokens if t.name == "demo"] == [digest]


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def test_compose_defaults_match_env_example(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    found = [m for text in strings(compose) for m in INTERPOLATION.findall(text)]
    assert found
    for name, default in found:
        assert name in env_example, f"{name} is not documented in deploy/.env.example"
        assert default == env_example[name], name


def test_passwords_meet_sql_server_policy_and_stay_out_of_files(
    env_example: dict[str, str],
) -> None:
    init_sql = (DEPLOY / "mssql" / "init.sql").read_text(encoding="utf-8")
    for key in ("MSSQL_SA_PASSWORD", "TENANTGATE_APP_PASSWORD", "TENANTGATE_CONTROLLER_PASSWORD"):
        pw = env_example[key]
        classes = sum(
            any(f(c) for c in pw)
            for f in (str.isupper, str.islower, str.isdigit, lambda c: not c.isalnum())
        )
        assert len(pw) >= 8 and classes >= 3, key
        assert not set(pw) & set("';{}$"), key
        assert pw not in init_sql, key


def test_prometheus_scrapes_the_proxy(services: dict[str, Any]) -> None:
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus")
    assert "9090:9090" in prom["ports"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["tenantgate"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["tenantgate:8040"]


GRAFANA = DEPLOY / "grafana"
# Functions over a range whose window the dashboard leaves to Grafana ($__rate_interval).
RANGE_FUNCTIONS = re.compile(r"\b(?:rate|irate|increase|delta|deriv|\w+_over_time)\s*\(")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: container path -> host path (``:ro`` dropped)."""
    result = {}
    for volume in service["volumes"]:
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            result[container] = host
    return result


def test_grafana_service(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert "3000:3000" in grafana["ports"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_started"
    binds = mounts(grafana)
    assert binds["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert all(v.endswith(":ro") for v in grafana["volumes"] if v.startswith("./"))
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    # The home dashboard is the provisioned file, inside the dashboards mount.
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, _, name = home.rpartition("/")
    assert (ROOT / binds[folder] / name).resolve() == GRAFANA / "dashboards" / "tenantgate.json"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD"
    )


def test_grafana_provisioning_points_at_the_stack(services: dict[str, Any]) -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    [source] = sources
    assert source["type"] == "prometheus" and source["isDefault"]
    url = source["url"]
    port = services["prometheus"]["ports"][0].split(":")[-1]
    assert url == f"http://prometheus:{port}"  # the compose service, by its name
    # $__rate_interval is at least four of Grafana's idea of the scrape interval: it
    # must be Prometheus's, or the rate() windows would hold too few samples.
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]
    [provider] = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "tenantgate.yml").read_text(encoding="utf-8")
    )["providers"]
    assert provider["type"] == "file"
    binds = mounts(services["grafana"])
    assert (ROOT / binds[provider["options"]["path"]]).resolve() == GRAFANA / "dashboards"


def test_grafana_dashboard_is_well_formed() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "tenantgate.json").read_text("utf-8"))
    assert dashboard["uid"] == "tenantgate"
    assert dashboard["schemaVersion"] >= 42  # Grafana 13
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == [
        "Requests", "Latency", "Connection pools (per server)", "Caches", "Heals and retries",
        "Server health", "Top tenants (last ~60 s)", "Process", "Transactions and batches",
    ]  # fmt: skip
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # Every selector is narrowed to the chosen job and instances.
            selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", expr)
            assert selectors, expr
            for selector in selectors:
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, expr
            # Every window is Grafana's, never a fixed one.
            unquoted = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # not a matcher's [1-9]
            windows = re.findall(r"\[([^\]]+)\]", unquoted)
            assert len(windows) == len(RANGE_FUNCTIONS.findall(expr)), expr
            assert set(windows) <= {"$__rate_interval"}, expr


def test_init_sql_is_up_to_date() -> None:
    module = generate_init()
    current = (DEPLOY / "mssql" / "init.sql").read_text(encoding="utf-8")
    assert current == module.render(), "run: python deploy/mssql/generate_init.py"


def test_init_sql_content() -> None:
    module = generate_init()
    sql = (DEPLOY / "mssql" / "init.sql").read_text(encoding="utf-8")
    assert "CREATE DATABASE [tenantgate_controller]" in sql
    assert "CREATE TABLE [dbo].[Customer]" in sql
    for column in ("[customer_id]", "[domainname]", "[sqlconnectstring]"):
        assert column in sql
    databases = [t.database for t in module.TENANTS]
    assert {"tenant_alpha", "tenant_beta"} <= set(databases)
    custom_sets = [frozenset(c.name for c in t.custom) for t in module.TENANTS]
    assert len(set(custom_sets)) == len(custom_sets)  # tenants differ in custom fields
    for t in module.TENANTS:
        assert f"CREATE DATABASE [{t.database}]" in sql
        cs = connstr.parse(module.connection_string(t.database))
        assert cs["driver"] == "ODBC Driver 18 for SQL Server"
        assert cs["server"] == "mssql,1433"
        assert cs["database"] == t.database
        assert cs["uid"] == "tenantgate_app"
        assert cs["pwd"] == "$(TENANTGATE_APP_PASSWORD)"  # filled in by sqlcmd
        assert cs["encrypt"] == "yes" and cs["trustservercertificate"] == "yes"
        assert f"(N'{t.domain}'" in sql or f"N'{t.domain}'" in sql
        for c in t.custom:
            assert f"ADD [{c.name}] " in sql
    # The tenant login has a user in every tenant database and none in the controller.
    controller_part = sql.split("USE [tenantgate_controller];")[1].split("USE [tenant_")[0]
    assert "tenantgate_app" not in controller_part.replace("Uid=tenantgate_app", "")
    assert sql.count("CREATE USER [tenantgate_app]") == len(databases)
    assert "SCHEMA::" not in sql and "db_owner" not in sql


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "python:3.11-slim-bookworm" in text
    assert "packages.microsoft.com/config/debian/" in text
    assert "ACCEPT_EULA=Y" in text
    for package in ("msodbcsql18", "unixodbc", "odbc-postgresql", "libsqliteodbc"):
        assert package in text, package
    assert "pip install" in text
    assert 'CMD ["serve", "--config", "/etc/tenantgate/tenantgate.toml"]' in text
    assert 'ENTRYPOINT ["tenantgate"]' in text
    assert "EXPOSE 8040" in text
    assert "/healthz" in text
    assert re.search(r"^USER \S+", text, re.MULTILINE), "run as a non-root user"


def test_dockerignore() -> None:
    entries = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", "var", ".git", ".env", "**/__pycache__", ".pytest_cache",
                   ".mypy_cache", ".ruff_cache"):  # fmt: skip
        assert needed in entries, needed
    # What the image needs must stay in the context.
    for kept in ("proxy", "rewriter", "tenancy", "pyproject.toml", "README.md", "deploy"):
        assert kept not in entries, kept
