"""The default schema's tables, unmanaged: tenantgate owns no DDL, tenants' tables exist.

Custom fields are not here: no model can know them. They are reached through
``CUSTOM_FIELDS()`` in raw queries, or the records helper (``proxy.client.records``).
"""

from __future__ import annotations

from django.db import models


class Account(models.Model):
    account_id = models.AutoField(primary_key=True, db_column="AccountID")
    name = models.CharField(max_length=200, db_column="Name")

    class Meta:
        app_label = "crm"
        db_table = "Accounts"
        managed = False


class Contact(models.Model):
    contact_id = models.AutoField(primary_key=True, db_column="ContactID")
    first_name = models.CharField(max_length=50, db_column="FirstName")
    last_name = models.CharField(max_length=50, db_column="LastName")
    email = models.CharField(max_length=255, null=True, db_column="Email")
    is_active = models.BooleanField(db_column="IsActive")
    created_at = models.DateTimeField(db_column="CreatedAt")

    class Meta:
        app_label = "crm"
        db_table = "Contacts"
        managed = False
