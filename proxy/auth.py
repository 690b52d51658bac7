"""Who is calling, and what they may do.

Tokens are configured only as SHA-256 digests, so the configuration file and any
dump of memory hold nothing a caller could present. A presented token is hashed
and looked up; the digest comparison is a dictionary lookup on a value the caller
cannot choose (the hash of their input), so it leaks nothing useful by timing.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from proxy.config import TokenSettings
from proxy.errors import Forbidden, RateLimited, Unauthenticated


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, now: float) -> float:
        """Take one request; return 0 when allowed, else seconds until one is."""
        with self.lock:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and its scope."""

    name: str
    tenants: frozenset[str]
    classes: frozenset[str]
    bucket: _Bucket | None = field(default=None, compare=False, repr=False)

    @property
    def all_tenants(self) -> bool:
        return "*" in self.tenants

    def check_tenant(self, *refs: str | int) -> None:
        """Allow when the token names the tenant by any of its references (id or domain)."""
        if self.all_tenants:
            return
        if any(str(r).casefold() in self.tenants for r in refs):
            return
        raise Forbidden(f"token {self.name!r} may not reach this tenant")

    def check_class(self, statement_class: str) -> None:
        if statement_class not in self.classes:
            raise Forbidden(
                f"token {self.name!r} may not run {statement_class} statements",
                statement_class=statement_class,
            )


class Authenticator:
    def __init__(
        self, tokens: Iterable[TokenSettings], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._by_digest: dict[str, Principal] = {}
        for t in tokens:
            bucket = None
            if t.rate_per_s > 0:
                # A burst of one second's worth keeps short spikes from being refused.
                capacity = max(1.0, t.rate_per_s)
                bucket = _Bucket(t.rate_per_s, capacity, capacity, clock())
            self._by_digest[t.sha256.lower()] = Principal(
                name=t.name,
                tenants=frozenset(str(x).casefold() for x in t.tenants),
                classes=frozenset(t.classes),
                bucket=bucket,
            )

    def principal(self, token_name: str) -> Principal:
        """The principal of the ``[[tokens]]`` entry named ``token_name`` (a wire user's)."""
        for principal in self._by_digest.values():
            if principal.name == token_name:
                return principal
        raise KeyError(token_name)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        principal = self._by_digest.get(hash_token(token))
        if principal is None:
            raise Unauthenticated("invalid token")
        self.admit(principal)
        return principal

    def admit(self, principal: Principal) -> None:
        """One request of ``principal`` against its token's rate (``rate_per_s``): a wire
        session's statements are each one, as HTTP requests are."""
        if principal.bucket is not None:
            wait = principal.bucket.take(self._clock())
            if wait > 0:
                raise RateLimited(
                    f"token {principal.name!r} is over its rate",
                    retry_after=float(math.ceil(wait)),
                )
