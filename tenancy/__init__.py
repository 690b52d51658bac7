"""Tenancy: controller directory, connection strings, tenant resolution, column metadata."""

from tenancy.backends import BackendKind, kind_for_driver
from tenancy.catalog import Column
from tenancy.connstr import ConnectionString, parse
from tenancy.controller import ControllerDirectory, CustomerRecord
from tenancy.errors import (
    ControllerTimeout,
    ControllerUnavailable,
    InvalidConnectionString,
    InvalidTenantReference,
    MetadataUnavailable,
    TenancyError,
    TenantMisconfigured,
    UnknownTenant,
)
from tenancy.location import TenantLocation, locate
from tenancy.metadata import BaseModel, MetadataCache, TableMetadata
from tenancy.resolver import Tenant, TenantDirectory, TenantResolver
from tenancy.sources import ConnectionSource, odbc_source

__all__ = [
    "BackendKind",
    "BaseModel",
    "Column",
    "ConnectionSource",
    "ConnectionString",
    "ControllerDirectory",
    "ControllerTimeout",
    "ControllerUnavailable",
    "CustomerRecord",
    "InvalidConnectionString",
    "InvalidTenantReference",
    "MetadataCache",
    "MetadataUnavailable",
    "TableMetadata",
    "TenancyError",
    "Tenant",
    "TenantDirectory",
    "TenantLocation",
    "TenantMisconfigured",
    "TenantResolver",
    "UnknownTenant",
    "kind_for_driver",
    "locate",
    "odbc_source",
    "parse",
]
