"""Log records that a caller's text cannot forge.

Anything a caller sends may end up in a record's arguments: a driver's message that
quotes a value, a name from the statement, the statement itself under
``server.log_sql``. A newline in it would start what looks like a record of
tenantgate's own ("2026-01-01 12:00:00,000 INFO tenantgate ..."). ``SafeFormatter``
makes each record one line: control characters in the message are escaped as
``repr`` escapes them (``\\n``, ``\\x1b``...). A traceback, which only unexpected
errors carry, follows on lines of its own, each indented, so that no line after the
first can pass for the start of a record.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SafeFormatter", "escape"]

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
