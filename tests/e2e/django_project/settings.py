"""A Django project that reaches tenants through tenantgate's wire front end.

Each tenant is a ``DATABASES`` entry named after it, all on one tenantgate port; the
database name is the tenant (docs/pgwire.md, "Connecting"). ``TenantRouter`` sends a
model's queries to the tenant of the current request (here: whatever the caller set),
which is the original system's ``Model.objects.using(tenant)`` without the ``using``.
"""

from __future__ import annotations

import contextvars
import json
import os
from typing import Any

_WIRE = json.loads(os.environ["TENANTGATE_DJANGO_WIRE"])

SECRET_KEY = "tests-only"
INSTALLED_APPS = ["tests.e2e.django_project.crm"]
USE_TZ = False
TIME_ZONE = "Europe/Oslo"  # Django sets it on connect; tenantgate accepts any zone
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES: dict[str, dict[str, Any]] = {
    alias: {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": tenant,
        "USER": _WIRE["user"],
        "PASSWORD": _WIRE["password"],
        "HOST": _WIRE["host"],
        "PORT": str(_WIRE["port"]),
        "OPTIONS": {"sslmode": "disable"},
    }
    for alias, tenant in [("default", _WIRE["tenants"][0])]
    + [(tenant, tenant) for tenant in _WIRE["tenants"]]
}
DATABASE_ROUTERS = ["tests.e2e.django_project.settings.TenantRouter"]

current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_tenant", default=None
)


class TenantRouter:
    """Reads and writes go to the current tenant's database entry, if one is set."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return current_tenant.get()

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return current_tenant.get()
