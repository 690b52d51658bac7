"""What a wire session answers itself: the tenant of a startup packet, transaction
control, ``SET``/``SHOW`` of a short allow-list, ``version()``, and ``$n`` parameters.

None of these reach a database. Transaction control becomes the pipeline's
interactive transactions (``proxy.pipeline.transactions``); session parameters live
in the session (``statement_timeout`` becomes the timeout of its statements); the rest
of the parameters a driver sets on connect are accepted only when they change nothing
tenantgate relies on (UTF-8, ISO dates, standard strings). Everything else is a
logical statement for the pipeline, in the user's dialect.

Commands are recognised by anchored regular expressions over the whole text (one
statement, an optional ``;``): a statement that merely contains ``BEGIN`` or ``SET``
is a logical statement, checked by the rewriter like any other.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from proxy.drivers.base import ISOLATION_LEVELS

__all__ = [
    "SERVER_VERSION",
    "Begin",
    "Command",
    "End",
    "Fixed",
    "Refused",
    "Savepoint",
    "Set",
    "Show",
    "Version",
    "command",
    "numbered_to_positional",
    "tenant_from",
]

SERVER_VERSION = "16.0"
"""What ``server_version`` says: drivers read it to choose their SQL (16: what the
rewriter's postgres dialect generates for, and what SQLAlchemy and Django accept)."""

TENANT_OPTION = "tenantgate.tenant"

SHORT_TEXT = 2048
"""Texts up to this long are remembered by ``short_texts`` functions: what drivers
send again and again is short, and a bound on the text keeps a client that sends
thousands of long ones from filling memory (the cache holds the text)."""

T = TypeVar("T")


def short_texts(maxsize: int) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """``functools.lru_cache(maxsize)`` for a pure function of one text, for texts up
    to ``SHORT_TEXT`` characters; a longer one is worked out each time."""

    def wrap(fn: Callable[[str], T]) -> Callable[[str], T]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(text: str) -> T:
            return cached(text) if len(text) <= SHORT_TEXT else fn(text)

        return call

    return wrap


def tenant_from(params: Mapping[str, str]) -> str | None:
    """The tenant a startup packet names: ``options=-c tenantgate.tenant=…``, else the
    database, else a ``user.tenant`` suffix; ``None`` when none does."""
    options = params.get("options", "")
    if options:
        for name, value in _option_settings(options):
            if name == TENANT_OPTION and value:
                return value
    database = params.get("database", "")
    if database:
        return database
    _, dot, suffix = params.get("user", "").partition(".")
    return suffix if dot and suffix else None


def user_name(params: Mapping[str, str]) -> str:
    """The user without a ``.tenant`` suffix."""
    return params.get("user", "").partition(".")[0]


def _option_settings(options: str) -> list[tuple[str, str]]:
    """``-c name=value`` and ``--name=value`` pairs of a libpq ``options`` string."""
    try:
        words = shlex.split(options.replace("\\ ", "\x00"))
    except ValueError:
        return []
    words = [w.replace("\x00", " ") for w in words]
    found = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            setting, i = words[i + 1], i + 2
        elif word.startswith("-c") or word.startswith("--"):
            setting, i = word[2:], i + 1
        else:
            i += 1
            continue
        name, eq, value = setting.partition("=")
        if eq:
            found.append((name.strip().lower().replace("-", "_"), value.strip()))
    return found


# -- commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    isolation: str | None


@dataclass(frozen=True, slots=True)
class End:
    commit: bool
    tag: str


@dataclass(frozen=True, slots=True)
class Set:
    name: str
    value: str | None
    """``None``: RESET to the session's start value."""
    echo: bool = False
    """``set_config(...)``: answered with the value as a one-row result."""


@dataclass(frozen=True, slots=True)
class Savepoint:
    """``SAVEPOINT`` or ``RELEASE``: accepted and remembered by nothing. Drivers set one
    around their own catalog lookups (psycopg's ``TypeInfo.fetch``); rolling back to one
    is refused, since tenantgate cannot undo part of a transaction."""

    release: bool


@dataclass(frozen=True, slots=True)
class Fixed:
    """A one-value answer the session knows (``current_schema()``)."""

    column: str
    value: str


@dataclass(frozen=True, slots=True)
class Show:
    name: str


@dataclass(frozen=True, slots=True)
class Version:
    column: str


@dataclass(frozen=True, slots=True)
class Refused:
    sqlstate: str
    message: str


Command = Begin | End | Set | Show | Version | Savepoint | Fixed | Refused

_END = r"\s*;?\s*\Z"
_BEGIN = re.compile(
    r"\A\s*(?:BEGIN(?:\s+(?:WORK|TRANSACTION))?|START\s+TRANSACTION)"
    r"(?:\s+ISOLATION\s+LEVEL\s+(?P<level>READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SERIALIZABLE))?"
    r"(?:\s*,?\s*READ\s+(?P<mode>WRITE|ONLY))?" + _END,
    re.IGNORECASE,
)
_COMMIT = re.compile(r"\A\s*(?:COMMIT|END)(?:\s+(?:WORK|TRANSACTION))?" + _END, re.IGNORECASE)
_ROLLBACK = re.compile(r"\A\s*(?:ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?" + _END, re.IGNORECASE)
_SAVEPOINT = re.compile(
    r"\A\s*(?P<verb>SAVEPOINT|RELEASE(?:\s+SAVEPOINT)?)\s+(?P<name>\"[^\"]+\"|\w+)" + _END,
    re.IGNORECASE,
)
_ROLLBACK_TO = re.compile(r"\A\s*ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\b", re.IGNORECASE)
_SET_CONFIG = re.compile(
    r"\A\s*SELECT\s+(?:pg_catalog\s*\.\s*)?set_config\s*\(\s*'(?P<name>[A-Za-z_][A-Za-z0-9_.]*)'"
    r"\s*,\s*'(?P<value>(?:[^']|'')*)'\s*,\s*(?P<local>false|true)\s*\)" + _END,
    re.IGNORECASE,
)
_CURRENT_SCHEMA = re.compile(
    r"\A\s*SELECT\s+(?:pg_catalog\s*\.\s*)?current_schema\s*(?:\(\s*\))?(?:\s+AS\s+(?P<alias>\w+))?"
    + _END,
    re.IGNORECASE,
)
_SHOW_ISOLATION = re.compile(r"\A\s*SHOW\s+TRANSACTION\s+ISOLATION\s+LEVEL" + _END, re.IGNORECASE)
_SET = re.compile(
    r"\A\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|\s+TO\s+)\s*"
    r"(?P<value>.+?)" + _END,
    re.IGNORECASE | re.DOTALL,
)
_SET_TIME_ZONE = re.compile(
    r"\A\s*SET\s+(?:SESSION\s+|LOCAL\s+)?TIME\s+ZONE\s+(?P<value>.+?)" + _END, re.IGNORECASE
)
_RESET = re.compile(r"\A\s*RESET\s+(?P<name>[A-Za-z_][A-Za-z0-9_.]*|ALL)" + _END, re.IGNORECASE)
_SHOW = re.compile(r"\A\s*SHOW\s+(?P<name>[A-Za-z_][A-Za-z0-9_.]*)" + _END, re.IGNORECASE)
_VERSION = re.compile(
    r"\A\s*SELECT\s+(?:pg_catalog\s*\.\s*)?version\s*\(\s*\)(?:\s+AS\s+(?P<alias>\w+))?" + _END,
    re.IGNORECASE,
)
_CURRENT_SETTING = re.compile(
    r"\A\s*SELECT\s+(?:pg_catalog\s*\.\s*)?current_setting\s*\(\s*'(?P<name>[A-Za-z_][A-Za-z0-9_.]*)'\s*\)"
    r"(?:\s+AS\s+(?P<alias>\w+))?" + _END,
    re.IGNORECASE,
)
_DISCARD = re.compile(r"\A\s*DISCARD\s+ALL" + _END, re.IGNORECASE)
_HEADS = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SET", "RESET", "SHOW",
          "SAVEPOINT", "RELEASE", "SELECT", "DISCARD")  # fmt: skip
_LEVELS = {" ".join(level.split("_")).upper(): level for level in ISOLATION_LEVELS}


@short_texts(1024)
def command(sql: str) -> Command | None:
    """The session command ``sql`` is, or ``None`` for a logical statement (once per
    text: a ``SELECT`` goes through every pattern, and drivers send the same texts)."""
    if not sql.lstrip()[:16].upper().startswith(_HEADS):
        return None
    if m := _BEGIN.match(sql):
        level = m["level"]
        if m["mode"] and m["mode"].upper() == "ONLY":
            return Refused("0A000", "READ ONLY transactions are not offered: use a read token")
        return Begin(None if level is None else _LEVELS[" ".join(level.split()).upper()])
    if _COMMIT.match(sql):
        return End(commit=True, tag="COMMIT")
    if _ROLLBACK.match(sql):
        return End(commit=False, tag="ROLLBACK")
    if m := _SAVEPOINT.match(sql):
        return Savepoint(release=m["verb"].upper().startswith("RELEASE"))
    if _ROLLBACK_TO.match(sql):
        return Refused(
            "0A000", "tenantgate cannot roll back to a savepoint: roll the transaction back"
        )
    if m := _SET_CONFIG.match(sql):
        return Set(m["name"].lower(), m["value"].replace("''", "'"), echo=True)
    if m := _CURRENT_SCHEMA.match(sql):
        return Fixed(m["alias"] or "current_schema", "public")
    if _SHOW_ISOLATION.match(sql):
        return Show("transaction_isolation")
    if m := _SET_TIME_ZONE.match(sql):
        return Set("timezone", _unquote(m["value"]))
    if m := _SET.match(sql):
        return Set(m["name"].lower(), _unquote(m["value"]))
    if m := _RESET.match(sql):
        return Set(m["name"].lower(), None)
    if m := _SHOW.match(sql):
        return Show(m["name"].lower())
    if m := _VERSION.match(sql):
        return Version(m["alias"] or "version")
    if m := _CURRENT_SETTING.match(sql):
        return Show(m["name"].lower())
    if _DISCARD.match(sql):
        return Set("all", None)
    return None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


# -- parameters ----------------------------------------------------------------------------


@short_texts(2048)
def numbered_to_positional(sql: str) -> tuple[str, tuple[int, ...]]:
    """``$1``-style parameters as the pipeline's ``?``: the text, and for each ``?`` in
    order the 0-based index of the value it binds (``$2 … $1 … $2`` → ``(1, 0, 1)``).

    Found by sqlglot's PostgreSQL tokenizer, so ``'$1'`` in a string, a comment or a
    dollar-quoted body stays as it is. A text that also holds ``?`` markers is left
    alone for the rewriter to refuse (it cannot tell the two kinds apart).
    """
    if "$" not in sql:
        return sql, ()
    try:
        tokens = _TOKENIZER.tokenize(sql)
    except TokenError:
        return sql, ()  # the rewriter says what is wrong with it
    if any(token.token_type is TokenType.PLACEHOLDER for token in tokens):
        return sql, ()
    spans = []
    order = []
    for i in range(len(tokens) - 1):
        token, number = tokens[i], tokens[i + 1]
        if (
            token.token_type is TokenType.PARAMETER
            and number.token_type is TokenType.NUMBER
            and number.start == token.end + 1
            and number.text.isdigit()
            and int(number.text) >= 1
        ):
            spans.append((token.start, number.end + 1))
            order.append(int(number.text) - 1)
    if not spans:
        return sql, ()
    out, last = [], 0
    for start, end in spans:
        out.append(sql[last:start])
        # ``?`` before an operator character would be read as one of PostgreSQL's ``?``
        # operators (``$1::int`` must not become ``?::int``).
        out.append("? " if sql[end : end + 1] in _OPERATOR_CHARACTERS else "?")
        last = end
    out.append(sql[last:])
    return "".join(out), tuple(order)


_TOKENIZER = Postgres().tokenizer_class()
_OPERATOR_CHARACTERS = frozenset(":|&?-<>=~!#%^@*/+")
