"""``tenantgate serve``: the HTTP front end on uvicorn, in one process or several.

With ``server.workers = 1`` the app runs in this process. With more, uvicorn's
supervisor binds the port once and starts that many worker processes that accept on
it (the ecosystem's usual multi-process model; each worker builds its own service from
the configuration file named by ``TENANTGATE_CONFIG``, see ``app_from_environment``).
The workers of a host share a run folder (``TENANTGATE_RUN_DIR``): each worker's
metrics snapshot (``proxy.metrics``) and the change bell
(``proxy.pipeline.invalidation``). Pool caps are divided among the workers
(``proxy.compose.pool_options``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import uvicorn

from proxy import compiled
from proxy.compose import build
from proxy.config import ConfigError, LoggingSettings, Settings, load
from proxy.frontends.http.app import App, create_app
from proxy.logs import JsonFormatter, RequestFields, SafeFormatter

__all__ = ["app_from_environment", "configure_logging", "serve"]

log = logging.getLogger("tenantgate")

CONFIG_ENV = "TENANTGATE_CONFIG"
RUN_DIR_ENV = "TENANTGATE_RUN_DIR"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s %(message)s"
"""``request`` is `` [<request id> <tenant>]`` on a request's records (``RequestFields``)."""
_UVICORN = {
    "http": "httptools",
    "loop": "uvloop",
    # Ours is ``logging.access_log`` (with the request's id and tenant).
    "access_log": False,
    "log_level": "info",
    # uvicorn's records go through our handler (``configure_logging``): JSON when
    # configured, one line each, like every other record.
    "log_config": None,
    # A client that keeps a response from finishing cannot hold a stop (a rollout's
    # SIGTERM) past this; requests in flight get their deadlines' worth and more.
    "timeout_graceful_shutdown": 30,
}


def serve(
    settings: Settings,
    *,
    config_path: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    host = host or settings.server.host
    port = port or settings.server.port
    workers = settings.server.workers
    if workers == 1:
        app = create_app(build(settings))
        report_compiled()
        uvicorn.run(app, host=host, port=port, **_UVICORN)  # type: ignore[arg-type]
        return
    if config_path is None:
        raise ValueError("several workers read their settings from a configuration file")
    try:
        run_dir = tempfile.mkdtemp(prefix="tenantgate-run-")
    except OSError as exc:
        # A read-only root filesystem without a writable /tmp (deploy/k8s mounts one).
        raise ConfigError(
            f"server.workers = {workers} needs a writable temporary folder for the workers' "
            f"shared run folder (set TMPDIR): {exc.strerror}"
        ) from None
    os.environ[RUN_DIR_ENV] = run_dir
    os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    try:
        uvicorn.run(
            f"{__name__}:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **_UVICORN,  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def configure_logging(settings: LoggingSettings | None = None) -> None:
    """Logging as ``[logging]`` says (its defaults until the configuration is read)."""
    settings = settings or LoggingSettings()
    # One line a record whatever a message holds (``proxy.logs``): callers' text
    # reaches some messages through driver errors and names, and with server.log_sql.
    handler = logging.StreamHandler()
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SafeFormatter(LOG_FORMAT))
    handler.addFilter(RequestFields())
    logging.basicConfig(level=settings.level.upper(), handlers=[handler], force=True)
    # Python's warnings too (a library's), instead of raw lines on stderr.
    logging.captureWarnings(True)
    # psycopg warns "query cancellation interrupted" when a request is cancelled
    # mid-statement; the PostgreSQL driver then cancels from a thread of its own.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    # sqlglot warns with the caller's statement in the message ("'...' contains
    # unsupported syntax"): newlines that forge log lines, passwords of a refused ALTER
    # LOGIN. Its errors reach us as exceptions, which the rewriter turns into its own
    # messages; nothing it logs is needed.
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)


def app_from_environment() -> App:
    """A worker's app (uvicorn calls this in each worker process)."""
    # A spawned worker starts afresh: the parent's logging set-up is not inherited.
    settings = load(os.environ[CONFIG_ENV])
    configure_logging(settings.logging)
    run_dir = os.environ[RUN_DIR_ENV]
    app = create_app(build(settings, run_dir=run_dir), run_dir=run_dir)
    report_compiled()
    return app


def report_compiled() -> None:
    """Say whether the hot path runs compiled (``proxy.compiled``), once the service's
    modules are imported; warn of extensions older than their sources, which run in
    their place."""
    done = compiled.compiled()
    log.info("hot path: %d of %d modules compiled by mypyc", len(done), len(compiled.HOT))
    if outdated := compiled.stale():
        log.warning(
            "compiled modules older than their sources, run instead of them: %s "
            "(`make compile` rebuilds them, `make uncompile` removes them)",
            ", ".join(outdated),
        )
