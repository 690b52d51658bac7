"""Records by primary key, field by field: the original ``DynamicSchemaModel``, done right.

``client.records(tenant, table).get(key)`` loads a record's base fields (the columns
every tenant has). A custom field (this tenant's own columns) is fetched on first use,
with all of them at once; if the base fields that fetch returns differ from those
loaded, the row changed in between and ``RecordChanged`` says so rather than mix two
versions of it. Setting a field records a change; ``save()`` sends only the changed
fields (``PATCH``) with ``If-Match`` set to the version read, so a row someone else
wrote since is ``PreconditionFailed`` (412), never overwritten. ``reload()`` starts
again from the current row.

The version is the ETag of the scope read: base fields only, or base and custom once
custom fields were fetched, which then guards every field the caller has seen. Field
names match as the service's do, ignoring case; the record's keys are the table's own
spellings. ``rec["FirstName"]`` always works; ``rec.FirstName`` too, for a field whose
name is not one of the record's methods or properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from proxy.client import protocol
from proxy.client.errors import RecordChanged

if TYPE_CHECKING:
    from proxy.client.sync import Client

__all__ = ["Record", "Records"]


class Records:
    """One table of one tenant, through the records API."""

    def __init__(self, client: Client, tenant: str | int, table: str) -> None:
        self.client = client
        self.tenant = tenant
        self.table = table

    def get(self, key: Any) -> Record:
        """The record's base fields (``RecordNotFound`` when there is no such row)."""
        values, etag = self.client.send(protocol.record_get(self.tenant, self.table, key))
        return Record(self, key, values, etag)

    def insert(self, fields: Mapping[str, Any] | None = None, /, **more: Any) -> Any:
        """Insert a row and answer its primary key (``get`` it to work with it)."""
        body = {**(fields or {}), **more}
        created = self.client.send(protocol.record_insert(self.tenant, self.table, body))
        return created.get("key")


class Record:
    """A row being read and changed; see the module's docstring for the rules."""

    def __init__(self, records: Records, key: Any, base: dict[str, Any], etag: str) -> None:
        self._records = records
        self._key = key
        self._base = base
        self._custom: dict[str, Any] | None = None
        self._etag = etag
        self._changes: dict[str, Any] = {}

    # -- what it is ----------------------------------------------------------------

    @property
    def key(self) -> Any:
        return self._key

    @property
    def table(self) -> str:
        return self._records.table

    @property
    def etag(self) -> str:
        """The version ``save`` will send as ``If-Match``."""
        return self._etag

    @property
    def changes(self) -> dict[str, Any]:
        """The fields set since the last load or save, and their new values."""
        return dict(self._changes)

    @property
    def custom_loaded(self) -> bool:
        return self._custom is not None

    def as_dict(self) -> dict[str, Any]:
        """Every field read so far, with the changes applied."""
        return {**self._base, **(self._custom or {}), **self._changes}

    # -- fields --------------------------------------------------------------------

    def _name(self, name: str) -> str | None:
        known = self._base.keys() | (self._custom or {}).keys()
        if name in known:
            return name
        folded = name.casefold()
        return next((k for k in known if k.casefold() == folded), None)

    def _resolve(self, name: str) -> str:
        found = self._name(name)
        if found is None and self._custom is None:
            self.load_custom()
            found = self._name(name)
        if found is None:
            raise KeyError(f"{self.table} has no field {name!r}")
        return found

    def __getitem__(self, name: str) -> Any:
        found = self._resolve(name)
        if found in self._changes:
            return self._changes[found]
        if found in self._base:
            return self._base[found]
        assert self._custom is not None
        return self._custom[found]

    def __setitem__(self, name: str, value: Any) -> None:
        self._changes[self._resolve(name)] = value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self._resolve(name)
        except KeyError:
            return False
        return True

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self.table} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __repr__(self) -> str:
        return f"<Record {self.table} {self._key!r} changes={sorted(self._changes)}>"

    # -- I/O -----------------------------------------------------------------------

    def load_custom(self) -> None:
        """Fetch the custom fields now (``rec["Custom_X"]`` does it on first use)."""
        records = self._records
        values, etag = records.client.send(
            protocol.record_get(records.tenant, records.table, self._key, custom=True)
        )
        if {k: values.get(k) for k in self._base} != self._base or not (
            self._base.keys() <= values.keys()
        ):
            raise RecordChanged(
                f"the {self.table} record {self._key!r} changed since its base fields "
                "were read; reload() it",
                details={"key": self._key},
            )
        self._custom = {k: v for k, v in values.items() if k not in self._base}
        self._etag = etag

    def save(self) -> None:
        """Write the changed fields, if the row is still the version read.

        ``PreconditionFailed`` when it is not: nothing was written, the changes are
        kept; ``reload()`` and apply them again if they still make sense.
        """
        if not self._changes:
            return
        records = self._records
        custom = self._custom is not None
        values, etag = records.client.send(
            protocol.record_patch(
                records.tenant, records.table, self._key, self._changes,
                if_match=self._etag, custom=custom,
            )
        )  # fmt: skip
        self._loaded(values, etag, custom=custom)

    def reload(self) -> None:
        """Read the row again (custom fields too if they were loaded); drop the changes."""
        records = self._records
        custom = self._custom is not None
        values, etag = records.client.send(
            protocol.record_get(records.tenant, records.table, self._key, custom=custom)
        )
        self._loaded(values, etag, custom=custom)

    def _loaded(self, values: dict[str, Any], etag: str, *, custom: bool) -> None:
        if custom:
            self._base = {k: values.get(k) for k in self._base}
            self._custom = {k: v for k, v in values.items() if k not in self._base}
        else:
            self._base = values
        self._etag = etag
        self._changes = {}
