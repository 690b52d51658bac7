"""ServerHealth: a server's state as requests found it (``/readyz``, metrics)."""

from __future__ import annotations

from proxy.errors import BackendUnavailable, ConnectionLost
from proxy.pipeline.servers import ServerHealth
from tenancy.backends import BackendKind

PG = BackendKind.POSTGRESQL
PG_A, PG_B = "postgresql://a:5432", "postgresql://b:5432"


def test_unseen_servers_are_absent_and_sqlite_is_never_tracked() -> None:
    health = ServerHealth()
    health.answered(BackendKind.SQLITE, "sqlite://local")
    health.unavailable(BackendKind.SQLITE, "sqlite://local", BackendUnavailable("no file"))
    assert health.snapshot() == {}


def test_failing_from_the_first_error_until_a_statement_runs() -> None:
    health = ServerHealth()
    health.answered(PG, PG_A)
    health.answered(BackendKind.SQLSERVER, "sqlserver://c:1433")
    health.unavailable(PG, PG_A, ConnectionLost("gone"))
    health.unavailable(PG, PG_A, BackendUnavailable("refused"))
    snapshot = health.snapshot()
    assert snapshot[PG_A]["state"] == "failing"
    assert (snapshot[PG_A]["failures"], snapshot[PG_A]["code"]) == (2, "backend_unavailable")
    assert snapshot["sqlserver://c:1433"]["state"] == "up"
    assert "failures" not in snapshot["sqlserver://c:1433"]
    health.answered(PG, PG_A)
    back = health.snapshot()[PG_A]
    assert back["state"] == "up" and set(back) == {"state", "for_s"}


def test_metrics_get_a_failing_flag_per_tracked_server() -> None:
    health = ServerHealth()
    health.unavailable(PG, PG_B, BackendUnavailable("refused"))
    health.answered(PG, PG_A)
    pools = health.with_pool_stats({PG_A: {"pool_size": 3}})
    assert pools == {PG_A: {"pool_size": 3, "failing": 0}, PG_B: {"failing": 1}}
