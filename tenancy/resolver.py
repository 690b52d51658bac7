"""Tenant resolution: a customer id or domain name → ``Tenant``, cached.

* A reference is an id (an ``int``, or a string of ASCII digits) or a domain name
  (hostname-like, at most 253 characters, case-insensitive). Anything else is
  ``InvalidTenantReference`` and never reaches the controller.
* Found tenants are cached for ``ttl`` seconds under both their id and their domain,
  so both forms of reference return the same ``Tenant`` object.
* Unknown references are cached negatively for ``negative_ttl`` seconds, and records
  whose connection string cannot be located (``TenantMisconfigured``) for
  ``misconfigured_ttl`` (default: ``negative_ttl``), so a flood of bogus names costs one
  controller query per name and per period.
* Concurrent misses for one key share one controller lookup (single flight): the
  others wait for it and get its result or its error. Errors such as
  ``ControllerUnavailable`` are not cached.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, Protocol

from cachetools import TLRUCache

from tenancy.controller import CustomerRecord
from tenancy.errors import InvalidTenantReference, TenancyError, TenantMisconfigured, UnknownTenant

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

_DIGITS = re.compile(r"[0-9]+")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_DOMAIN = 253
_MAX_ID = 2**63 - 1

_Key = tuple[str, int | str]
"""``("id", 42)`` or ``("domain", "beta.example")`` (lower-cased)."""


@dataclass(frozen=True, slots=True)
class Tenant:
    customer_id: int
    domain: str
    location: TenantLocation


class TenantDirectory(Protocol):
    """What the resolver needs of the controller (``ControllerDirectory`` is one)."""

    def by_id(self, customer_id: int) -> CustomerRecord | None: ...

    def by_domain(self, domain: str) -> CustomerRecord | None: ...


@dataclass(frozen=True, slots=True)
class _Negative:
    error: type[TenancyError]
    message: str
    details: dict[str, str | int] = field(hash=False)
    ttl: float

    def exception(self) -> TenancyError:
        return self.error(self.message, **self.details)


class _Flight:
    __slots__ = ("done", "error", "tenant")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.tenant: Tenant | None = None
        self.error: BaseException | None = None


def parse_reference(ref: str | int) -> _Key:
    """The cache key of a tenant reference, or ``InvalidTenantReference``."""
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        raise InvalidTenantReference("a tenant is named by a customer id or a domain name")
    if isinstance(ref, int):
        if not 0 <= ref <= _MAX_ID:
            raise InvalidTenantReference("a customer id is a non-negative 64-bit integer")
        return ("id", ref)
    if _DIGITS.fullmatch(ref):
        value = int(ref) if len(ref) <= 19 else _MAX_ID + 1
        if value > _MAX_ID:
            raise InvalidTenantReference("a customer id is a non-negative 64-bit integer")
        return ("id", value)
    if len(ref) <= _MAX_DOMAIN and _DOMAIN.fullmatch(ref):
        return ("domain", ref.lower())
    raise InvalidTenantReference("the tenant reference is neither a customer id nor a domain name")


class TenantResolver:
    def __init__(
        self,
        directory: TenantDirectory,
        *,
        locate: Callable[[str], TenantLocation],
        ttl: float,
        negative_ttl: float,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        misconfigured_ttl: float | None = None,
    ) -> None:
        if ttl <= 0 or negative_ttl < 0 or maxsize <= 0:
            raise ValueError("ttl and maxsize must be positive, negative_ttl non-negative")
        self._directory = directory
        self._locate = locate
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._misconfigured_ttl = negative_ttl if misconfigured_ttl is None else misconfigured_ttl
        self._cache: TLRUCache[_Key, Tenant | _Negative] = TLRUCache(
            maxsize=maxsize, ttu=self._time_to_use, timer=clock
        )
        self._inflight: dict[_Key, _Flight] = {}
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(("hits", "misses", "negative_hits", "lookups", "errors"), 0)

    def _time_to_use(self, _key: _Key, value: Tenant | _Negative, now: float) -> float:
        return now + (self._ttl if isinstance(value, Tenant) else value.ttl)

    def resolve(self, ref: str | int) -> Tenant:
        key = parse_reference(ref)
        with self._lock:
            cached = self._cache.get(key)
            if isinstance(cached, Tenant):
                self._stats["hits"] += 1
                return cached
            if cached is not None:
                self._stats["negative_hits"] += 1
                raise cached.exception()
            self._stats["misses"] += 1
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = _Flight()
        if not leader:
            flight.done.wait()
            return self._outcome(flight)
        try:
            flight.tenant = self._lookup(key, flight)
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                if self._inflight.get(key) is flight:
                    del self._inflight[key]
            flight.done.set()
        return flight.tenant

    def invalidate(self, ref: str | int) -> None:
        """Forget what is cached for ``ref`` (and, for a tenant, its other key)."""
        key = parse_reference(ref)
        with self._lock:
            self._inflight.pop(key, None)
            cached = self._cache.pop(key, None)
            if isinstance(cached, Tenant):
                for other in self._keys_of(cached):
                    if self._cache.get(other) is cached:
                        del self._cache[other]

    def clear(self) -> None:
        with self._lock:
            self._inflight.clear()
            self._cache.clear()

    def get_stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._stats, "size": len(self._cache)}

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _keys_of(tenant: Tenant) -> list[_Key]:
        keys: list[_Key] = [("id", tenant.customer_id)]
        if tenant.domain:
            keys.append(("domain", tenant.domain.lower()))
        return keys

    @staticmethod
    def _outcome(flight: _Flight) -> Tenant:
        error = flight.error
        if isinstance(error, TenancyError):
            # A fresh instance per waiter: one exception raised in many threads
            # would collect all their tracebacks.
            raise type(error)(error.message, **error.details)
        if error is not None:
            raise error
        assert flight.tenant is not None
        return flight.tenant

    def _lookup(self, key: _Key, flight: _Flight) -> Tenant:
        kind, value = key
        with self._lock:
            self._stats["lookups"] += 1
        try:
            if kind == "id":
                assert isinstance(value, int)
                record = self._directory.by_id(value)
                label = f"customer id {value}"
            else:
                assert isinstance(value, str)
                record = self._directory.by_domain(value)
                label = f"domain {value!r}"
        except BaseException:
            with self._lock:
                self._stats["errors"] += 1
            raise
        if record is None:
            self._remember(
                key, flight, _Negative(UnknownTenant, f"no tenant {label}", {}, self._negative_ttl)
            )
            raise UnknownTenant(f"no tenant {label}")
        try:
            location = self._locate(record.connection_string)
        except TenancyError as error:
            # Errors of the tenancy layer carry redacted messages by contract.
            message = f"customer {record.customer_id}: {error.message}"
            self._misconfigured(key, flight, message, record.customer_id)
        except (ValueError, KeyError, TypeError):
            message = f"customer {record.customer_id}: the connection string is unusable"
            self._misconfigured(key, flight, message, record.customer_id)
        tenant = Tenant(record.customer_id, record.domain, location)
        with self._lock:
            if self._inflight.get(key) is flight:  # not invalidated meanwhile
                for other in {key, *self._keys_of(tenant)}:
                    self._cache[other] = tenant
        return tenant

    def _misconfigured(
        self, key: _Key, flight: _Flight, message: str, customer_id: int
    ) -> NoReturn:
        details: dict[str, str | int] = {"customer_id": customer_id}
        self._remember(
            key, flight, _Negative(TenantMisconfigured, message, details, self._misconfigured_ttl)
        )
        raise TenantMisconfigured(message, **details) from None

    def _remember(self, key: _Key, flight: _Flight, negative: _Negative) -> None:
        if negative.ttl <= 0:
            return
        with self._lock:
            if self._inflight.get(key) is flight:
                self._cache[key] = negative
