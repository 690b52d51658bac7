"""Log records that a caller's text cannot forge, each naming the request it is about.

Anything a caller sends may end up in a record's arguments: a driver's message that
quotes a value, a name from the statement, the statement itself under
``server.log_sql``. A newline in it would start what looks like a record of
tenantgate's own ("2026-01-01 12:00:00,000 INFO tenantgate ..."). ``SafeFormatter``
makes each record one line: control characters in the message are escaped as
``repr`` escapes them (``\\n``, ``\\x1b``...). A traceback, which only unexpected
errors carry, follows on lines of its own, each indented, so that no line after the
first can pass for the start of a record.

``logging.format = "json"`` writes ``JsonFormatter``'s one object per line instead
(``time``, ``level``, ``logger``, ``message``, ``request_id``, ``tenant``, and
``exception`` or an access line's ``http`` fields), for a log pipeline to index; JSON's
own escaping keeps it to one line. Either way ``RequestFields``, a filter on the
handler, stamps every record made while serving a request, on the event loop or on a
worker thread, with that request's id and tenant (``proxy.context``).

What a record holds is up to its caller: no caller SQL, parameters or secrets by
default (``server.log_sql`` is the opt-in for statements).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

from proxy import context

__all__ = ["JsonFormatter", "RequestFields", "SafeFormatter", "escape"]

# C0 and C1 controls, DEL, and the separators some readers take for line breaks.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INDENT = "    "


def escape(text: str) -> str:
    """``text`` with every control character written as ``repr`` writes it."""
    if text.isprintable():  # the usual case, without the regex
        return text
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


class SafeFormatter(logging.Formatter):
    """``logging.Formatter`` with the message escaped to one line and tracebacks
    indented (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request"):  # a handler without ``RequestFields``
            record.request = ""
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        blocks = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            # A message inside the traceback (the exception's) may hold newlines too.
            lines = block.splitlines()
            line += "".join(f"\n{_INDENT}{escape(text)}" for text in lines)
        return line


class RequestFields(logging.Filter):
    """Stamps each record with its request's id and tenant (``-`` outside a request).

    ``request`` is the text form, `` [<id> <tenant>]`` or empty, for a format string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        if ctx is None:
            record.request_id = record.tenant = None
            record.request = ""
        else:
            record.request_id, record.tenant = ctx.request_id, ctx.tenant
            # Both printable already: ids are checked, tenants are the controller's names
            # (escaped by SafeFormatter with the message all the same).
            record.request = f" [{ctx.request_id} {ctx.tenant or '-'}]"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
            entry["tenant"] = getattr(record, "tenant", None)
        http = getattr(record, "http", None)
        if http is not None:
            entry["http"] = http
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()
