"""The request being served, for everything that runs on its behalf.

A front end opens a ``RequestContext`` for each request (``begin``) and closes it when
the answer is sent. What runs for the request, on the event loop or on a worker thread
(``anyio.to_thread`` copies the context into the thread), finds it with ``current()``:

* every log record carries the request's id and tenant (``proxy.logs``), so one grep
  finds every line about one request;
* the drivers pass the id to the database server (``request_id``), so a DBA looking at
  a slow statement finds the request behind it;
* the pipeline writes the resolved tenant into it, and the front end records the
  request in ``TenantActivity`` under that name.

Request ids come from the caller's ``X-Request-ID`` header when it is well formed (a
gateway's or a tracing system's id is worth keeping), and are made here otherwise. A
well-formed id is 1-64 characters of letters, digits and ``-._:``: it reaches log
lines, a response header and a database session's ``application_name`` (63 bytes), so
nothing in it may need escaping anywhere. Ids made here are a random per-process
prefix and a counter, unique across processes and hosts without a system call.
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar, Token
from dataclasses import dataclass

__all__ = ["RequestContext", "begin", "current", "end", "request_id_from"]

_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)


# One per request: the __init__ is written out to be compiled (mypyc leaves a
# dataclass's generated one interpreted).
@dataclass(init=False, slots=True)
class RequestContext:
    request_id: str
    tenant: str | None
    """The tenant's domain, once the pipeline has resolved it."""
    code: str | None
    """The error code the request was answered with, if any."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tenant = None
        self.code = None

    def label(self) -> bytes:
        """How the drivers name the request on a database session:
        ``tenantgate <request id>`` (well formed, so it needs no quoting anywhere)."""
        return b"tenantgate " + self.request_id.encode("ascii")


_CURRENT: ContextVar[RequestContext | None] = ContextVar("tenantgate_request", default=None)


def current() -> RequestContext | None:
    return _CURRENT.get()


def request_id_from(header: bytes | None) -> str:
    """The caller's id when it is well formed, else a new one."""
    if header is not None and _WELL_FORMED.fullmatch(header):
        return header.decode("ascii")
    return f"{_PREFIX}-{next(_COUNTER):x}"


def begin(request_id: str) -> tuple[RequestContext, Token[RequestContext | None]]:
    context = RequestContext(request_id)
    return context, _CURRENT.set(context)


def end(token: Token[RequestContext | None]) -> None:
    _CURRENT.reset(token)
