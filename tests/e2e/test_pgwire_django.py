"""End to end: a small Django project (tests/e2e/django_project) reaches two tenants
through tenantgate's wire front end, unchanged: Django's own PostgreSQL backend on
psycopg 3, models of the default schema, ``DATABASES`` entries named after tenants and
a router that picks the current one.

What it does, on a SQLite and a PostgreSQL tenant:
- reads through ``Model.objects.using(tenant)``;
- creates, saves and filters through the router;
- commits one ``transaction.atomic`` block and rolls back another;
- sets a custom field with the records helper over HTTP (``proxy.client``);
- reads that field back with ``CUSTOM_FIELDS()`` in a raw query;
- lists tables through Django's introspection.

It runs in a process of its own, since Django's settings are global.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.e2e.test_pgwire import SECRET, TENANTS, TOKEN, USER, Wire, wire
from tests.support.stack import ROOT

__all__ = ["wire"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.e2e


def test_django_reads_saves_and_reaches_custom_fields(wire: Wire) -> None:
    pytest.importorskip("django")
    marker = f"dj-{uuid.uuid4().hex[:8]}"
    settings = {"host": wire.host, "port": wire.port, "user": USER, "password": SECRET,
                "tenants": list(TENANTS), "url": wire.url, "token": TOKEN}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.django_project.run", marker],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TENANTGATE_DJANGO_WIRE": json.dumps(settings)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for tenant in TENANTS:
        got = results[tenant]
        assert got["first"] == [1, 2, 3]
        assert got["names"] == ["Ada", "Bob"]  # Eve's block was rolled back
        assert got["email"] == "ada@example.com"
        assert got["custom"] == "Nordics"
        assert {"Accounts", "Contacts", "Opportunities"} <= set(got["tables"])
        assert wire.stored(tenant, marker) == 2
