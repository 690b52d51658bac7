"""``tenantgate serve``: one process serving the HTTP front end with uvicorn."""

from __future__ import annotations

import uvicorn

from proxy.compose import build
from proxy.config import Settings
from proxy.frontends.http.app import create_app

__all__ = ["serve"]


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    app = create_app(build(settings))
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="info",
        # One process: pools, caches and rate buckets live in it.
        workers=None,
    )
