"""Django through tenantgate, end to end: prints what it did as JSON.

Run by tests/e2e/test_pgwire_django.py."""

from __future__ import annotations

import datetime
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.django_project.settings")

import django

django.setup()

from django.db import connections, transaction  # noqa: E402

from proxy.client import Client  # noqa: E402
from tests.e2e.django_project.crm.models import Contact  # noqa: E402
from tests.e2e.django_project.settings import _WIRE, current_tenant  # noqa: E402


def _give_up() -> None:
    raise RuntimeError("rolled back")


def main() -> None:
    marker = sys.argv[1]
    out: dict[str, object] = {}
    for tenant in _WIRE["tenants"]:
        done: dict[str, object] = {}
        # Model.objects.using(tenant): the original system's wish.
        done["first"] = list(
            Contact.objects.using(tenant)
            .order_by("contact_id")
            .values_list("contact_id", flat=True)[:3]
        )
        # The router names the tenant instead.
        token = current_tenant.set(tenant)
        try:
            created = Contact.objects.create(
                first_name="Ada", last_name=marker, is_active=True,
                created_at=datetime.datetime(2024, 5, 1, 10, 0),
            )  # fmt: skip
            done["created"] = created.contact_id
            created.email = "ada@example.com"
            created.save()
            with transaction.atomic(using=tenant):
                Contact.objects.create(
                    first_name="Bob", last_name=marker, is_active=False,
                    created_at=datetime.datetime(2024, 5, 2),
                )  # fmt: skip
            try:
                with transaction.atomic(using=tenant):
                    Contact.objects.create(
                        first_name="Eve", last_name=marker, is_active=True,
                        created_at=datetime.datetime(2024, 5, 3),
                    )  # fmt: skip
                    _give_up()
            except RuntimeError:
                pass
            done["names"] = sorted(
                Contact.objects.filter(last_name=marker).values_list("first_name", flat=True)
            )
            done["email"] = Contact.objects.get(pk=created.pk).email
        finally:
            current_tenant.reset(token)
        # A custom field through the records helper (HTTP), read back through Django raw SQL.
        with Client(_WIRE["url"], _WIRE["token"]) as tg:
            record = tg.records(tenant, "Contacts").get(created.contact_id)
            record["Custom_Region"] = "Nordics"
            record.save()
        with connections[tenant].cursor() as cursor:
            cursor.execute(
                "SELECT ContactID, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = %s",
                [created.contact_id],
            )
            columns = [c.name for c in cursor.description]
            done["custom"] = dict(zip(columns, cursor.fetchone(), strict=True)).get("Custom_Region")
        done["tables"] = sorted(connections[tenant].introspection.table_names())
        out[tenant] = done
    print(json.dumps(out))


if __name__ == "__main__":
    main()
