"""Who a wire client is: SCRAM-SHA-256 against configured verifiers, or a token.

Two ways in, both ending in the ``Principal`` of a ``[[tokens]]`` entry, so a wire
client gets exactly the tenants and statement classes an HTTP caller with that token
gets:

* **SCRAM-SHA-256** (what libpq, psycopg, asyncpg and JDBC use by default) for the
  users of ``[[pgwire.users]]``. Each stores a verifier as PostgreSQL's ``pg_authid``
  does (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``); the secret is
  never in the file. The exchange is scramp's. A user name that is not configured runs
  the same exchange against a random verifier and fails at the end like a wrong
  password (as PostgreSQL does), so the answer never says which user names exist.
* **A token as a cleartext password**, over TLS only (``pgwire.cleartext_tokens``):
  tokens are stored as SHA-256 digests, which SCRAM cannot use (it needs a salted key
  derived from the secret itself).

scramp is pinned at 1.4.5: 1.5 refuses the empty user name libpq sends in its first
SCRAM message (``n,,n=,r=…``), where the server is meant to take the user from the
startup packet.
"""

from __future__ import annotations

import base64
import re
import secrets

from scramp import ScramException, ScramMechanism

from proxy.config import PgWireUser

__all__ = ["MECHANISM", "AuthFailed", "ScramExchange", "Verifier", "make_verifier", "verifier_of"]

MECHANISM = "SCRAM-SHA-256"
_ITERATIONS = 4096
_VERIFIER = re.compile(
    r"SCRAM-SHA-256\$(?P<i>[0-9]+):(?P<salt>[^$]+)\$(?P<stored>[^:]+):(?P<server>.+)"
)
_MECHANISM = ScramMechanism(MECHANISM)


class AuthFailed(Exception):
    """The client did not prove it knows the secret (28P01)."""


Verifier = tuple[bytes, bytes, bytes, int]
"""(salt, StoredKey, ServerKey, iterations), as scramp's server asks for them."""


def verifier_of(user: PgWireUser | None) -> Verifier:
    """``user``'s stored verifier; for no user, a random one no password matches."""
    if user is None:
        return (secrets.token_bytes(16), secrets.token_bytes(32), secrets.token_bytes(32), 4096)
    found = _VERIFIER.fullmatch(user.scram_sha256)
    if found is None:  # the configuration checks the form; this is a second guard
        raise ValueError(f"pgwire user {user.name!r}: malformed scram_sha256")
    return (
        base64.b64decode(found["salt"]),
        base64.b64decode(found["stored"]),
        base64.b64decode(found["server"]),
        int(found["i"]),
    )


def make_verifier(secret: str, *, iterations: int = _ITERATIONS) -> str:
    """The ``scram_sha256`` value for ``secret`` (``tenantgate pgwire-verifier``)."""
    salt, stored, server, count = _MECHANISM.make_auth_info(secret, iteration_count=iterations)
    b64 = base64.b64encode
    return f"{MECHANISM}${count}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


class ScramExchange:
    """One server side of a SCRAM-SHA-256 exchange (without channel binding)."""

    def __init__(self, verifier: Verifier) -> None:
        self._server = _MECHANISM.make_server(lambda _user: verifier)

    def first(self, client_first: bytes) -> bytes:
        try:
            self._server.set_client_first(client_first.decode("utf-8"))
            first: str = self._server.get_server_first()
            return first.encode("utf-8")
        except (ScramException, UnicodeDecodeError) as exc:
            raise AuthFailed(str(exc)) from None

    def final(self, client_final: bytes) -> bytes:
        try:
            self._server.set_client_final(client_final.decode("utf-8"))
            final: str = self._server.get_server_final()
            return final.encode("utf-8")
        except (ScramException, UnicodeDecodeError) as exc:
            raise AuthFailed(str(exc)) from None
