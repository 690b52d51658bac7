"""What tenantgate is measured against, in one module with two routes, run as its own
process (so that its CPU time can be read from /proc/PID/stat):

* ``POST /v1/query``: the naive passthrough a team would write by hand. Bare Starlette
  + uvicorn that runs the same backend SQL tenantgate generates (taken from
  ``/v1/explain``, with the same binds) through ``anyio.to_thread`` + pyodbc on a small
  pool, and returns the rows as JSON. No auth, tenancy, rewriting, watchdog or metrics.
* ``POST /floor``: the "HTTP floor": the same server stack (uvicorn, httptools, uvloop,
  Starlette, orjson) reading the body and returning constant JSON.

Started by ``benchmarks/compare.py`` and ``benchmarks/throughput.py``::

    python benchmarks/baseline_app.py --port PORT --dsn ODBC_CONNECTION_STRING \\
        --sql SQL [--extra EXTRA_PARAMS_JSON] [--pool 4]

``--extra``: binds appended to each request's params, so that the passthrough runs
exactly what tenantgate runs (its generated reads end in a row cap, ``LIMIT ?``).
``--pool``: connections (and worker threads) of the passthrough, like tenantgate's
``pool.max_size``.
"""

from __future__ import annotations

import argparse
import queue
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pyodbc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pyodbc.pooling = False


def build(dsn: str, sql: str, extra: list[Any], pool_size: int) -> Starlette:
    idle: queue.LifoQueue[pyodbc.Connection] = queue.LifoQueue()
    limiter = anyio.CapacityLimiter(pool_size)

    def run(params: list[Any]) -> list[list[Any]]:
        # At most ``pool_size`` threads run at once (the limiter), so at most that many
        # connections are ever open.
        try:
            conn = idle.get_nowait()
        except queue.Empty:
            conn = pyodbc.connect(dsn, autocommit=True)
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(sql, params)
                return [list(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        finally:
            idle.put(conn)

    async def query(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rows = await anyio.to_thread.run_sync(run, body["params"] + extra, limiter=limiter)
        return Response(orjson.dumps({"rows": rows}), media_type="application/json")

    constant = orjson.dumps({"columns": ["FirstName"], "rows": [["Floor"]], "row_count": 1})

    async def floor(request: Request) -> Response:
        await request.body()
        return Response(constant, media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/query", query, methods=["POST"]),
            Route("/floor", floor, methods=["POST"]),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--sql", required=True)
    parser.add_argument("--extra", default="[]")
    parser.add_argument("--pool", type=int, default=4)
    args = parser.parse_args()
    app = build(args.dsn, args.sql, orjson.loads(args.extra), args.pool)
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop",
                access_log=False, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
