"""The floor tenantgate is measured against: bare Starlette + uvicorn that runs the
same backend SQL through pyodbc in a worker thread, with no auth, tenancy, rewriting,
pooling, watchdog or metrics. Started by ``benchmarks/throughput.py``.

    python benchmarks/baseline_app.py PORT ODBC_CONNECTION_STRING SQL [EXTRA_PARAMS_JSON]

EXTRA_PARAMS_JSON: binds appended to each request's params, so that the floor runs
exactly what tenantgate runs (its generated reads end in a row cap, ``LIMIT ?``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import anyio
import orjson
import pyodbc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pyodbc.pooling = False
PORT, DSN, SQL = int(sys.argv[1]), sys.argv[2], sys.argv[3]
EXTRA: list[Any] = orjson.loads(sys.argv[4]) if len(sys.argv) > 4 else []
_local = threading.local()


def run(params: list[Any]) -> list[list[Any]]:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = pyodbc.connect(DSN, autocommit=True)
    cursor = conn.cursor()
    try:
        cursor.execute(SQL, params)
        return [list(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


async def query(request: Request) -> Response:
    body = orjson.loads(await request.body())
    rows = await anyio.to_thread.run_sync(run, body["params"] + EXTRA)
    return Response(orjson.dumps({"rows": rows}), media_type="application/json")


app = Starlette(routes=[Route("/v1/query", query, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=PORT, http="httptools", loop="uvloop",
            access_log=False, log_level="warning")  # fmt: skip
