"""Errors of the tenancy layer.

    TenancyError                      (code)
    ├── UnknownTenant                 unknown_tenant          the caller named no such tenant
    ├── InvalidTenantReference        invalid_tenant          not an id nor a domain name
    ├── ControllerUnavailable         controller_unavailable  the controller could not be asked
    │   └── ControllerTimeout         controller_unavailable  ... or did not answer in time
    ├── TenantMisconfigured           tenant_misconfigured    the controller's record is unusable
    │   └── InvalidConnectionString   tenant_misconfigured
    └── MetadataUnavailable           backend_unavailable     the tenant's catalog could not be read

HTTP statuses are assigned in ``proxy.errors``. Messages never contain a
connection string's secrets: callers build them from redacted values only.

An error that a retry may cure carries ``retry_after`` (seconds), which the HTTP front
end sends as ``Retry-After``, as it does for the proxy's own errors.
"""

from __future__ import annotations

from typing import ClassVar


class TenancyError(Exception):
    code: ClassVar[str] = "tenancy_error"

    def __init__(self, message: str, **details: str | int | None) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}


class UnknownTenant(TenancyError):
    code = "unknown_tenant"


class InvalidTenantReference(TenancyError):
    code = "invalid_tenant"


class ControllerUnavailable(TenancyError):
    code = "controller_unavailable"
    retry_after: ClassVar[float] = 1.0


class ControllerTimeout(ControllerUnavailable):
    """The controller did not answer within ``controller.timeout_ms`` (or so many of its
    queries are still unanswered that asking once more would not help)."""


class TenantMisconfigured(TenancyError):
    code = "tenant_misconfigured"


class InvalidConnectionString(TenantMisconfigured):
    code = "tenant_misconfigured"


class MetadataUnavailable(TenancyError):
    code = "backend_unavailable"
