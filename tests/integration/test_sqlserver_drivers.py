"""The forms of ``Driver=`` a controller may hold for a SQL Server tenant, over real TDS."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from proxy.demo.seed import seed_tenant
from proxy.pipeline.request import QueryRequest
from tenancy.errors import TenantMisconfigured
from tests.support.tds import MSODBC18, TdsServer, msodbc18_library
from tests.support.tenants import READER, service_for


def test_a_library_path_works_where_the_template_names_it(
    tmp_path: Path, tds_server: TdsServer, tds_database: str
) -> None:
    library = msodbc18_library()
    if library is None or MSODBC18 not in tds_server.drivers:
        pytest.skip("Microsoft ODBC Driver 18 (mssql-python-odbc) is not installed")
    with contextlib.closing(tds_server.connect(MSODBC18, tds_database)) as conn:
        seed_tenant(conn, "sqlserver", contacts=4, seed=5)
    registered = tds_server.odbc(MSODBC18, tds_database)
    by_path = registered.replace("{ODBC Driver 18 for SQL Server}", "{" + library + "}")
    elsewhere = by_path.replace(library, "/tmp/elsewhere/" + Path(library).name)
    service = service_for(
        tmp_path / "controller.db",
        {"path.example": by_path, "elsewhere.example": elsewhere},
        backend_templates={"sqlserver": f"Driver={{{library}}}"},
    )
    principal = service.auth.authenticate(f"Bearer {READER}")
    try:
        count = QueryRequest("path.example", "SELECT COUNT(*) AS n FROM Contacts")
        assert service.query(principal, count).result.rows == [[4]]
        with pytest.raises(TenantMisconfigured, match="library"):
            service.query(principal, QueryRequest("elsewhere.example", count.sql))
    finally:
        service.close()
