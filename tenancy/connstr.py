"""ODBC connection strings: parsed strictly, written back canonically, never logged in clear.

Tenant connection strings come from the controller's database, so they are treated as
hostile input: anything the ODBC grammar leaves ambiguous is refused rather than guessed,
because a driver that guesses differently would connect somewhere we did not check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import NoReturn

from tenancy.errors import InvalidConnectionString

__all__ = ["EMPTY", "MAX_LENGTH", "ConnectionString", "is_secret_key", "parse"]

MAX_LENGTH = 64 * 1024
"""Longest text ``parse`` accepts. Real strings are a few hundred characters; anything
near this is garbage or an attempt to make the parser (or a driver's fixed buffers) choke."""

# Only ASCII whitespace is trimmed: drivers trim with C isspace() in the "C" locale, and a
# value we keep must reach the driver byte for byte.
_WS = " \t\r\n\f\v"

# The spec reserves these in keywords; a keyword containing one is a mangled string.
_FORBIDDEN_IN_KEY = frozenset("[]{}(),;?*=!@")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Keywords whose names may appear in error messages: well-known, and never a fragment of a
# secret. Any other keyword text might be half of a password split at an unbraced ';'.
_NAMEABLE_KEYS = frozenset(
    {
        "driver",
        "dsn",
        "filedsn",
        "savefile",
        "server",
        "servername",
        "address",
        "addr",
        "database",
        "initial catalog",
        "port",
        "uid",
        "user",
        "username",
        "user id",
        "schema",
        "description",
        "trusted_connection",
        "encrypt",
        "trustservercertificate",
        "sslmode",
        "app",
        "wsid",
        "timeout",
        "readonly",
        "connsettings",
        "pqopt",
        "pwd",
        "password",
    }
)

_SECRET_EXACT = frozenset({"pwd", "pw", "pass", "passwd", "pqopt"})
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
)

# psqlODBC percent-decodes these when they are not braced ('+' becomes a space), so they
# are always written braced; the Driver value is braced by convention (the driver manager
# strips the braces). Other values are braced only when the grammar needs it, because
# some drivers (sqliteodbc) take braces literally.
_ALWAYS_BRACED = frozenset({"driver", "pwd", "password", "connsettings", "pqopt"})


def _fold(key: str) -> str:
    """ASCII-only case folding, as drivers compare keywords with strcasecmp()."""
    return key.translate(_ASCII_LOWER)


def is_secret_key(key: str) -> bool:
    """Whether the value of ``key`` must never be shown.

    Errs on the side of hiding: a key that merely looks like a credential is redacted,
    because a hidden harmless value costs nothing and a shown password cannot be unshown.
    ``pqopt`` is included because psqlODBC passes it to libpq, which accepts a password.
    """
    norm = re.sub(r"[^0-9a-z]", "", key.casefold())
    return norm in _SECRET_EXACT or any(part in norm for part in _SECRET_PARTS)


def _key_label(key: str) -> str:
    folded = _fold(key.strip(_WS))
    if folded in _NAMEABLE_KEYS:
        return f"keyword {key.strip(_WS)!r}"
    return "a keyword"


def _fail(message: str, position: int | None = None) -> NoReturn:
    where = f" (at character {position})" if position is not None else ""
    raise InvalidConnectionString(f"invalid connection string: {message}{where}")


def _check_key(key: str, position: int | None = None) -> None:
    if not key:
        _fail("empty keyword", position)
    if any(c in _FORBIDDEN_IN_KEY for c in key):
        _fail("keyword contains a character ODBC reserves ([]{}(),;?*=!@)", position)
    if any(c < " " or c == "\x7f" for c in key):
        _fail("keyword contains a control character", position)


def _needs_braces(value: str) -> bool:
    return not value or ";" in value or value[0] == "{" or value[0] in _WS or value[-1] in _WS


def _quote(key: str, value: str) -> str:
    if _fold(key) in _ALWAYS_BRACED or _needs_braces(value):
        return "{" + value.replace("}", "}}") + "}"
    return value


class ConnectionString(Mapping[str, str]):
    """An immutable, ordered, case-insensitive mapping of ODBC keywords to values.

    Equality and hashing ignore keyword spelling and order (ODBC does), so two strings
    that connect the same way compare equal. ``str()`` and ``repr()`` are redacted so a
    connection string dropped into a log line, an f-string or a traceback leaks nothing;
    only ``to_odbc()`` gives the real text, for handing to the driver.
    """

    __slots__ = ("_hash", "_index", "_pairs")

    _pairs: tuple[tuple[str, str], ...]
    _index: dict[str, int]
    _hash: int

    def __init__(self, pairs: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        checked: list[tuple[str, str]] = []
        for raw_key, value in items:
            if not isinstance(raw_key, str) or not isinstance(value, str):
                _fail("keywords and values must be text")
            key = raw_key.strip(_WS)
            _check_key(key)
            if "\x00" in value:
                _fail(f"NUL character in the value of {_key_label(key)}")
            checked.append((key, value))
        self._init(checked)

    def _init(self, pairs: Iterable[tuple[str, str]]) -> None:
        # First occurrence wins, as SQLDriverConnect specifies for repeated keywords.
        kept: list[tuple[str, str]] = []
        index: dict[str, int] = {}
        for key, value in pairs:
            folded = _fold(key)
            if folded not in index:
                index[folded] = len(kept)
                kept.append((key, value))
        object.__setattr__(self, "_pairs", tuple(kept))
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_hash", hash(frozenset((_fold(k), v) for k, v in kept)))

    @classmethod
    def _trusted(cls, pairs: Iterable[tuple[str, str]]) -> ConnectionString:
        """Build from pairs already validated, skipping the checks."""
        new = cls.__new__(cls)
        new._init(pairs)
        return new

    # -- immutability -------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("ConnectionString is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("ConnectionString is immutable")

    def __reduce__(self) -> tuple[type[ConnectionString], tuple[tuple[tuple[str, str], ...]]]:
        return (ConnectionString, (self._pairs,))

    # -- mapping ------------------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        if isinstance(key, str):
            position = self._index.get(_fold(key.strip(_WS)))
            if position is not None:
                return self._pairs[position][1]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _fold(key.strip(_WS)) in self._index

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnectionString):
            return NotImplemented
        if self._hash != other._hash or len(self) != len(other):
            return False
        return all(other.get(key) == value for key, value in self._pairs)

    def __hash__(self) -> int:
        return self._hash

    # -- derivation ---------------------------------------------------------------

    def merged_over(self, template: ConnectionString) -> ConnectionString:
        """This string with the template's defaults for whatever it does not set.

        The receiver's pairs come first, in their order, then the template-only pairs:
        exactly what ODBC's first-occurrence rule would make of ``self;template``.
        """
        return ConnectionString._trusted(self._pairs + template._pairs)

    def without(self, *keys: str) -> ConnectionString:
        """A copy without ``keys`` (any spelling); absent keys are ignored."""
        drop = {_fold(k.strip(_WS)) for k in keys}
        return ConnectionString._trusted(p for p in self._pairs if _fold(p[0]) not in drop)

    def replace(self, key: str, value: str) -> ConnectionString:
        """A copy with ``key`` set to ``value``: in place if present, else appended.

        An existing keyword keeps its position and spelling, so replacing a value does
        not reshuffle the string a human compares against the controller's record.
        """
        single = ConnectionString([(key, value)])
        new_key, new_value = single._pairs[0]
        folded = _fold(new_key)
        if folded in self._index:
            pairs = [(k, new_value) if _fold(k) == folded else (k, v) for k, v in self._pairs]
            return ConnectionString._trusted(pairs)
        return ConnectionString._trusted((*self._pairs, (new_key, new_value)))

    def with_(self, **pairs: str) -> ConnectionString:
        """``replace`` for several keywords given as Python identifiers."""
        result = self
        for key, value in pairs.items():
            result = result.replace(key, value)
        return result

    # -- output -------------------------------------------------------------------

    def to_odbc(self) -> str:
        """The text to hand to the driver. Contains secrets: never log it.

        Values are braced only where the grammar needs it (empty, ``;``, a leading
        ``{``, surrounding whitespace), plus Driver and the keywords psqlODBC would
        percent-decode; ``}`` inside braces is doubled. A braced last value is followed
        by ``;``: FreeTDS 1.3 keeps the closing brace of an unterminated last value
        (``...;PWD={x}`` logs in with the password ``x}``).
        """
        text = ";".join(f"{k}={_quote(k, v)}" for k, v in self._pairs)
        return text + ";" if text.endswith("}") else text

    def redacted(self) -> str:
        """``to_odbc()`` with every secret value replaced by ``***``: safe to show."""
        return ";".join(
            f"{k}={'***' if is_secret_key(k) else _quote(k, v)}" for k, v in self._pairs
        )

    def canonical(self) -> str:
        """A serialisation equal for exactly the strings that compare equal.

        Keyword spelling and order are normalised away; the result contains secrets, so
        it is only fit to be hashed (pool keys are derived from it).
        """
        return ";".join(
            f"{k}={_quote(k, v)}" for k, v in sorted((_fold(k), v) for k, v in self._pairs)
        )

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"ConnectionString({self.redacted()!r})"


EMPTY = ConnectionString()


def parse(text: str) -> ConnectionString:
    """Parse a ``SQLDriverConnect`` connection string.

    Strict where drivers disagree or where a lenient reading would let one value smuggle
    in another keyword: text after a closing brace, unterminated braces, segments
    without ``=``, reserved characters in keywords and NULs are all refused. Error
    messages give positions, never values.
    """
    if not isinstance(text, str):
        _fail("not text")
    if len(text) > MAX_LENGTH:
        _fail(f"longer than {MAX_LENGTH} characters")
    nul = text.find("\x00")
    if nul >= 0:
        _fail("NUL character", nul)

    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        semi = text.find(";", i)
        segment_end = n if semi < 0 else semi
        eq = text.find("=", i, segment_end)
        if eq < 0:
            if text[i:segment_end].strip(_WS):
                _fail("attribute without '='", i)
            i = segment_end + 1
            continue
        key = text[i:eq].strip(_WS)
        _check_key(key, i)
        j = eq + 1
        while j < n and text[j] in _WS:
            j += 1
        if j < n and text[j] == "{":
            value, j = _read_braced(text, j, key)
            while j < n and text[j] in _WS:
                j += 1
            if j < n and text[j] != ";":
                _fail(f"text after the closing brace of {_key_label(key)}", j)
            i = j + 1
        else:
            value = text[j:segment_end].rstrip(_WS)
            i = segment_end + 1
        pairs.append((key, value))
    return ConnectionString._trusted(pairs)


def _read_braced(text: str, start: int, key: str) -> tuple[str, int]:
    """Read ``{...}`` at ``start``; return the unescaped value and the index after it."""
    parts: list[str] = []
    k, n = start + 1, len(text)
    while True:
        close = text.find("}", k)
        if close < 0:
            _fail(f"unterminated brace in the value of {_key_label(key)}", start)
        if close + 1 < n and text[close + 1] == "}":
            parts.append(text[k : close + 1])
            k = close + 2
            continue
        parts.append(text[k:close])
        return "".join(parts), close + 1
