from __future__ import annotations

import pytest

from proxy.config import ConfigError, from_mapping, load

DIGEST = "a" * 64


CONTROLLER = {"connection_string": "Driver=SQLite3;Database=/tmp/c.db"}


def minimal(**extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "controller": dict(CONTROLLER),
        "tokens": [{"name": "t", "sha256": DIGEST}],
    }
    data.update(extra)
    return data


def test_minimal_configuration_has_working_defaults() -> None:
    s = from_mapping(minimal())
    assert s.server.port == 8040
    assert s.query.default_dialect == "tsql"
    assert s.tokens[0].classes == ("read",)
    assert s.tokens[0].tenants == ("*",)
    # An unknown tenant's 503 within 2 s; cached tenants ride out a controller outage.
    assert s.controller.timeout_ms == 1500
    assert s.controller.stale_grace_s == 300
    assert s.query.lift_literals is True


def test_secret_comes_from_the_environment() -> None:
    data = minimal(controller={"connection_string_env": "CTRL"})
    s = from_mapping(data, env={"CTRL": "Driver=SQLite3;Database=/x.db"})
    assert s.controller.connection_string == "Driver=SQLite3;Database=/x.db"


def test_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="CTRL"):
        from_mapping(minimal(controller={"connection_string_env": "CTRL"}), env={})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (minimal(server={"prot": 1}), "server.prot: unknown setting"),
        (minimal(surprise={}), "unknown sections"),
        (minimal(tokens=[]), "at least one"),
        (minimal(tokens=[{"name": "t", "sha256": "xyz"}]), "64 hex"),
        (minimal(tokens=[{"name": "t", "sha256": DIGEST, "classes": ["root"]}]), "unknown classes"),
        (minimal(backends={"oracle": {"template": ""}}), "unknown backend"),
        (minimal(query={"default_dialect": "mysql"}), "default_dialect"),
        (minimal(pool={"max_size": 0}), "pool.max_size must be > 0"),
        (minimal(pool={"min_size": 5, "max_size": 2}), "min_size"),
        (minimal(query={"default_max_rows": 20_000}), "default_max_rows"),
        (minimal(query={"max_depth": 0}), "query.max_depth must be > 0"),
        (minimal(query={"max_in_list": -1}), "query.max_in_list must be > 0"),
        (minimal(query={"plan_cache_bytes": 0}), "query.plan_cache_bytes must be > 0"),
        (minimal(base_model={"Contacts": "ContactID"}), "base_model.Contacts"),
        ({"tokens": [{"name": "t", "sha256": DIGEST}]}, "connection_string is required"),
        (minimal(controller={**CONTROLLER, "timeout_ms": 0}), "controller.timeout_ms must be > 0"),
        (minimal(controller={**CONTROLLER, "max_threads": 0}), "controller.max_threads"),
        (minimal(controller={**CONTROLLER, "stale_grace_s": -1}), "stale_grace_s must be >= 0"),
        (
            minimal(tokens=[{"name": "a", "sha256": DIGEST}, {"name": "b", "sha256": DIGEST}]),
            "the same sha256",
        ),
        (minimal(logging={"format": "xml"}), "logging.format"),
        (minimal(logging={"level": "loud"}), "logging.level"),
        (minimal(stats={"top_tenants": 0}), "stats.top_tenants must be > 0"),
        (minimal(stats={"top_tenants": 20, "tenants_tracked": 10}), "must not exceed"),
        (minimal(stats={"tenants_window_s": 0}), "stats.tenants_window_s must be > 0"),
        # A string would be taken as true, "false" included.
        (minimal(query={"lift_literals": "false"}), "query.lift_literals must be true or false"),
        (minimal(server={"log_sql": 1}), "server.log_sql must be true or false"),
    ],
)
def test_invalid_configuration_is_refused_with_a_reason(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        from_mapping(data, env={})


def test_load_reads_toml(tmp_path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text(
        '[controller]\nconnection_string = "Driver=SQLite3;Database=/c.db"\n'
        "[base_model]\nContacts = ['ContactID', 'FirstName']\n"
        f'[[tokens]]\nname = "a"\nsha256 = "{DIGEST}"\ntenants = ["beta.example", 3]\n'
    )
    s = load(path)
    assert s.base_model == {"Contacts": ("ContactID", "FirstName")}
    assert s.tokens[0].tenants == ("beta.example", "3")


def test_load_reports_bad_toml(tmp_path) -> None:
    path = tmp_path / "tg.toml"
    path.write_text("[controller\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")
