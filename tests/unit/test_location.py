from __future__ import annotations

import dataclasses
import hashlib

import pytest

import tenancy
from tenancy.backends import BackendKind, kind_for_driver
from tenancy.connstr import ConnectionString, parse
from tenancy.errors import InvalidConnectionString, TenantMisconfigured
from tenancy.location import TenantLocation, locate

SECRET = "Hunter2-xyzzy"
NO_TEMPLATES: dict[BackendKind, ConnectionString] = {}


def _public_fields(location: TenantLocation) -> list[str]:
    """Every field that may be logged or shown: all but ``connect``."""
    values = [
        str(getattr(location, f.name)) for f in dataclasses.fields(location) if f.name != "connect"
    ]
    return [*values, location.key, repr(location), str(location)]


def _assert_no_secret(location: TenantLocation, secret: str = SECRET) -> None:
    for shown in _public_fields(location):
        assert secret not in shown


# -- kind_for_driver -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "kind"),
    [
        ("SQLite3", BackendKind.SQLITE),
        ("SQLite", BackendKind.SQLITE),
        ("{SQLite3}", BackendKind.SQLITE),
        ("sqlite3 odbc driver", BackendKind.SQLITE),
        ("SQLite ODBC Driver", BackendKind.SQLITE),
        ("PostgreSQL Unicode", BackendKind.POSTGRESQL),
        ("{PostgreSQL ANSI}", BackendKind.POSTGRESQL),
        ("postgresql unicode(x64)", BackendKind.POSTGRESQL),
        ("psqlODBC", BackendKind.POSTGRESQL),
        ("ODBC Driver 17 for SQL Server", BackendKind.SQLSERVER),
        ("{ODBC Driver 18 for SQL Server}", BackendKind.SQLSERVER),
        ("SQL Server", BackendKind.SQLSERVER),
        ("SQL Server Native Client 11.0", BackendKind.SQLSERVER),
        ("FreeTDS", BackendKind.SQLSERVER),
    ],
)
def test_kind_for_driver(driver: str, kind: BackendKind) -> None:
    assert kind_for_driver(driver) is kind


@pytest.mark.parametrize("driver", ["MySQL ODBC 8.0", "", "{}", "Oracle", "SQLite3x"])
def test_unknown_driver_is_misconfigured(driver: str) -> None:
    with pytest.raises(TenantMisconfigured, match="unsupported ODBC driver"):
        kind_for_driver(driver)


# -- SQLite --------------------------------------------------------------------------------


def test_sqlite() -> None:
    loc = locate(parse("Driver={SQLite3};Database=/data/t1.db"), NO_TEMPLATES)
    assert loc.kind is BackendKind.SQLITE
    assert loc.connect == parse("Driver=SQLite3;Database=/data/t1.db")
    assert loc.catalog is None
    assert loc.schema is None
    assert loc.database == "/data/t1.db"
    assert loc.server_key == "sqlite://local"
    assert loc.pool_key.startswith("sqlite:")


def test_sqlite_pool_per_file() -> None:
    a = locate(parse("Driver=SQLite3;Database=/data/a.db"), NO_TEMPLATES)
    a2 = locate(parse("DATABASE=/data/a.db;driver={SQLite3}"), NO_TEMPLATES)
    b = locate(parse("Driver=SQLite3;Database=/data/b.db"), NO_TEMPLATES)
    assert a.pool_key == a2.pool_key
    assert a.pool_key != b.pool_key
    assert a.key != b.key


def test_sqlite_requires_database() -> None:
    with pytest.raises(TenantMisconfigured, match="database file"):
        locate(parse("Driver=SQLite3"), NO_TEMPLATES)
    with pytest.raises(TenantMisconfigured):
        locate(parse("Driver=SQLite3;Database={  }"), NO_TEMPLATES)


def test_sqlite_refuses_schema() -> None:
    with pytest.raises(TenantMisconfigured, match="Schema"):
        locate(parse("Driver=SQLite3;Database=/x.db;Schema=t1"), NO_TEMPLATES)


# -- PostgreSQL ---------------------------------------------------------------------------

PG = f"Driver={{PostgreSQL Unicode}};Server=DB1;Database=t2;Uid=app;Pwd={{{SECRET}}}"


def test_postgresql() -> None:
    loc = locate(parse(PG), NO_TEMPLATES)
    assert loc.kind is BackendKind.POSTGRESQL
    assert loc.connect == parse(PG)
    assert loc.server_key == "postgresql://db1:5432"
    assert loc.catalog is None
    assert loc.schema == "public"
    assert loc.database == "t2"
    assert loc.pool_key.startswith("postgresql:")
    assert loc.key == f"{loc.pool_key}//public"
    _assert_no_secret(loc)


def test_postgresql_servername_port_and_schema() -> None:
    loc = locate(
        parse("Driver=PostgreSQL ANSI;Servername=db9;Port=6543;Database=shared;schema=tenant_7"),
        NO_TEMPLATES,
    )
    assert loc.server_key == "postgresql://db9:6543"
    assert loc.schema == "tenant_7"
    assert loc.database == "shared"
    assert "Schema" not in loc.connect


def test_postgresql_schema_per_tenant_shares_pool_not_key() -> None:
    a = locate(parse(PG + ";Schema=t_a"), NO_TEMPLATES)
    b = locate(parse(PG + ";Schema=t_b"), NO_TEMPLATES)
    assert a.pool_key == b.pool_key
    assert a.key != b.key


def test_postgresql_pool_per_database() -> None:
    a = locate(parse(PG), NO_TEMPLATES)
    b = locate(parse(PG.replace("Database=t2", "Database=t3")), NO_TEMPLATES)
    assert a.pool_key != b.pool_key


def test_postgresql_ipv6_server_key() -> None:
    loc = locate(parse("Driver=PostgreSQL Unicode;Server=::1;Database=d"), NO_TEMPLATES)
    assert loc.server_key == "postgresql://[::1]:5432"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Driver=PostgreSQL Unicode;Database=d", "server"),
        ("Driver=PostgreSQL Unicode;Server= ;Database=d", "server"),
        ("Driver=PostgreSQL Unicode;Server=h", "database"),
        ("Driver=PostgreSQL Unicode;Server=h;Database={}", "database"),
        ("Driver=PostgreSQL Unicode;Server=h;Database=d;Port=http", "port"),
        ("Driver=PostgreSQL Unicode;Server=h;Database=d;Port=70000", "port"),
        ("Driver=PostgreSQL Unicode;Server=h;Database=d;Port=0", "port"),
        ("Driver=PostgreSQL Unicode;Server=h;Servername=other;Database=d", "twice"),
        ("Driver=PostgreSQL Unicode;Server=h;Database=d;Schema=", "Schema"),
    ],
)
def test_postgresql_errors(text: str, match: str) -> None:
    with pytest.raises(TenantMisconfigured, match=match) as info:
        locate(parse(text + f";Pwd={{{SECRET}}}"), NO_TEMPLATES)
    assert SECRET not in str(info.value)


# -- SQL Server -------------------------------------------------------------------------------

MSSQL = "Driver={ODBC Driver 18 for SQL Server};Uid=app;Pwd={" + SECRET + "}"


@pytest.mark.parametrize(
    ("server", "server_key"),
    [
        ("sql1", "sqlserver://sql1:1433"),
        ("SQL1,14330", "sqlserver://sql1:14330"),
        ("tcp:sql1,14330", "sqlserver://sql1:14330"),
        ("TCP:sql1", "sqlserver://sql1:1433"),
        (r"sql1\Tenants", "sqlserver://sql1/tenants"),
        (r"sql1\Tenants,1500", "sqlserver://sql1:1500"),
        ("10.0.0.5, 1433", "sqlserver://10.0.0.5:1433"),
    ],
)
def test_sqlserver_server_forms(server: str, server_key: str) -> None:
    loc = locate(parse(f"{MSSQL};Server={server};Database=t1"), NO_TEMPLATES)
    assert loc.server_key == server_key


def test_sqlserver() -> None:
    loc = locate(parse(f"{MSSQL};Server=sql1;Database=Tenant1"), NO_TEMPLATES)
    assert loc.kind is BackendKind.SQLSERVER
    assert loc.catalog == "Tenant1"
    assert loc.database == "Tenant1"
    assert loc.schema == "dbo"
    assert "Database" not in loc.connect
    assert loc.connect["Server"] == "sql1"
    assert loc.pool_key.startswith("sqlserver:")
    _assert_no_secret(loc)


def test_sqlserver_initial_catalog_and_schema() -> None:
    loc = locate(parse(f"{MSSQL};Server=sql1;Initial Catalog=T2;Schema=sales"), NO_TEMPLATES)
    assert loc.catalog == "T2"
    assert loc.schema == "sales"
    assert "Initial Catalog" not in loc.connect
    assert "Schema" not in loc.connect


def test_sqlserver_databases_on_one_server_and_login_share_a_pool() -> None:
    a = locate(parse(f"{MSSQL};Server=sql1;Database=Tenant1"), NO_TEMPLATES)
    b = locate(parse(f"{MSSQL};Server=sql1;Database=Tenant2"), NO_TEMPLATES)
    assert a.pool_key == b.pool_key
    assert a.connect == b.connect
    assert a.key != b.key
    c = locate(parse(f"{MSSQL};Server=sql2;Database=Tenant1"), NO_TEMPLATES)
    assert c.pool_key != a.pool_key
    d = locate(parse(f"{MSSQL};Server=sql1;Database=Tenant1").replace("Uid", "u2"), NO_TEMPLATES)
    assert d.pool_key != a.pool_key


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (";Database=t", "server"),
        (";Server=sql1", "database"),
        (";Server=sql1;Database=a;Initial Catalog=b", "twice"),
        (";Server=np:sql1;Database=t", "protocol"),
        (";Server=sql1,99999;Database=t", "port"),
        (";Server=,1433;Database=t", "server"),
        (r";Server=\inst;Database=t", "server"),
    ],
)
def test_sqlserver_errors(text: str, match: str) -> None:
    with pytest.raises(TenantMisconfigured, match=match) as info:
        locate(parse(MSSQL + text), NO_TEMPLATES)
    assert SECRET not in str(info.value)


# -- templates ------------------------------------------------------------------------------


def test_template_merged_under_tenant_string() -> None:
    templates = {
        BackendKind.POSTGRESQL: parse(
            "Driver={PostgreSQL Unicode};Uid=svc;Pwd={tpl};SSLMode=require;Port=5433;Database=x"
        ),
        BackendKind.SQLSERVER: parse("Encrypt=yes"),
    }
    loc = locate(parse("Driver=PostgreSQL ANSI;Server=db1;Database=t9;Pwd=own"), templates)
    assert loc.connect["Driver"] == "PostgreSQL ANSI"  # tenant wins
    assert loc.connect["Database"] == "t9"
    assert loc.connect["Pwd"] == "own"
    assert loc.connect["Uid"] == "svc"  # template fills the gaps
    assert loc.connect["SSLMode"] == "require"
    assert "Encrypt" not in loc.connect  # other backends' templates do not apply
    assert loc.server_key == "postgresql://db1:5433"
    assert list(loc.connect)[:4] == ["Driver", "Server", "Database", "Pwd"]


def test_tenant_alias_overrides_template_spelling() -> None:
    templates = {
        BackendKind.POSTGRESQL: parse("Servername=tpl-host;Username=svc;Password={tpl}"),
        BackendKind.SQLSERVER: parse("Initial Catalog=master;Address=tpl-host"),
    }
    pg = locate(parse("Driver=PostgreSQL Unicode;Server=db1;Database=d;Uid=me;Pwd=p"), templates)
    assert pg.server_key == "postgresql://db1:5432"
    assert "Servername" not in pg.connect
    assert "Username" not in pg.connect
    assert "Password" not in pg.connect
    ms = locate(parse("Driver=SQL Server;Server=sql1;Database=T1"), templates)
    assert ms.catalog == "T1"
    assert ms.server_key == "sqlserver://sql1:1433"
    assert "Address" not in ms.connect


def test_template_can_supply_schema() -> None:
    templates = {BackendKind.POSTGRESQL: parse("Schema=app")}
    loc = locate(parse("Driver=PostgreSQL Unicode;Server=h;Database=d"), templates)
    assert loc.schema == "app"
    assert "Schema" not in loc.connect
    own = locate(parse("Driver=PostgreSQL Unicode;Server=h;Database=d;SCHEMA=mine"), templates)
    assert own.schema == "mine"


def test_template_secrets_stay_out_of_public_fields() -> None:
    templates = {BackendKind.SQLSERVER: parse(f"Uid=svc;Pwd={{{SECRET}}}")}
    loc = locate(parse("Driver=SQL Server;Server=sql1;Database=T1"), templates)
    assert loc.connect["Pwd"] == SECRET
    _assert_no_secret(loc)


# -- pool keys ----------------------------------------------------------------------------------


def test_different_passwords_different_pool_keys() -> None:
    a = locate(parse(PG), NO_TEMPLATES)
    b = locate(parse(PG.replace(SECRET, SECRET + "!")), NO_TEMPLATES)
    assert a.pool_key != b.pool_key
    assert a.server_key == b.server_key
    ms1 = locate(parse(f"{MSSQL};Server=s;Database=d"), NO_TEMPLATES)
    ms2 = locate(parse(f"{MSSQL};Server=s;Database=d".replace(SECRET, "other")), NO_TEMPLATES)
    assert ms1.pool_key != ms2.pool_key


def test_pool_key_ignores_spelling_and_order_only() -> None:
    a = locate(parse("Driver=SQLite3;Database=/a.db;Timeout=5"), NO_TEMPLATES)
    b = locate(parse("timeout=5;DATABASE=/a.db;DRIVER={SQLite3}"), NO_TEMPLATES)
    c = locate(parse("Driver=SQLite3;Database=/a.db;Timeout=6"), NO_TEMPLATES)
    assert a.pool_key == b.pool_key
    assert a.pool_key != c.pool_key


def test_pool_key_is_not_a_plain_hash_of_the_secret() -> None:
    loc = locate(parse(PG), NO_TEMPLATES)
    digest = loc.pool_key.split(":", 1)[1]
    assert len(digest) == 32
    assert all(c in "0123456789abcdef" for c in digest)
    plain = hashlib.sha256(loc.connect.canonical().encode()).hexdigest()
    assert digest not in plain
    assert hashlib.sha256(SECRET.encode()).hexdigest()[:32] != digest


# -- refused strings ---------------------------------------------------------------------------


def test_dsn_only_string_is_refused() -> None:
    with pytest.raises(TenantMisconfigured, match="DSN but no Driver"):
        locate(parse(f"DSN=tenants;Pwd={{{SECRET}}}"), NO_TEMPLATES)


def test_no_driver_is_refused() -> None:
    with pytest.raises(TenantMisconfigured, match="no Driver") as info:
        locate(parse(f"Server=x;Pwd={{{SECRET}}}"), NO_TEMPLATES)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("extra", ["DSN=other", "FileDSN=/tmp/x.dsn", "SaveFile=/tmp/leak.dsn"])
def test_driver_manager_file_keywords_are_refused(extra: str) -> None:
    with pytest.raises(TenantMisconfigured, match="may not use"):
        locate(parse(f"{extra};{PG}"), NO_TEMPLATES)
    with pytest.raises(TenantMisconfigured, match="may not use"):
        locate(parse(PG), {BackendKind.POSTGRESQL: parse(extra)})


def test_unknown_driver_is_refused() -> None:
    with pytest.raises(TenantMisconfigured, match="unsupported"):
        locate(parse("Driver=MySQL;Server=x;Database=y"), NO_TEMPLATES)


def test_invalid_string_error_is_a_misconfiguration() -> None:
    with pytest.raises(TenantMisconfigured):
        locate(parse("Driver={SQLite3"), NO_TEMPLATES)
    assert issubclass(InvalidConnectionString, TenantMisconfigured)


def test_package_exports() -> None:
    assert tenancy.parse is parse
    assert tenancy.locate is locate
    assert tenancy.ConnectionString is ConnectionString
    assert tenancy.kind_for_driver is kind_for_driver
    assert tenancy.TenantLocation is TenantLocation
    assert tenancy.BackendKind is BackendKind


@pytest.mark.parametrize(
    "driver",
    [
        "libsqlite3odbc-0.9998.so",
        "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so",
        "psqlodbca.so",
        "/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.3.so.2.1",
        r"C:\Windows\System32\msodbcsql17.dll",
        "/tmp/x/libsqlite3odbc.so",
        "sqlite3.so",
        "libtdsodbc.so.0",
    ],
)
def test_driver_library_paths_are_refused(driver: str) -> None:
    # A controller record must not be able to make the proxy load an arbitrary library.
    with pytest.raises(TenantMisconfigured):
        kind_for_driver(driver)


MSODBC_LIBRARY = "/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.3.so.2.1"


@pytest.mark.parametrize("driver", [MSODBC_LIBRARY, "{" + MSODBC_LIBRARY + "}"])
def test_a_library_path_is_accepted_where_the_template_names_it(driver: str) -> None:
    # Where a deployment ships the driver without registering it (a wheel, a container
    # layer), its template names the library, and controller records may use it too.
    templates = {BackendKind.SQLSERVER: parse(f"Driver={MSODBC_LIBRARY};Encrypt=yes")}
    located = locate(parse(f"Driver={driver};Server=db1,1433;Database=t1"), templates)
    assert located.kind is BackendKind.SQLSERVER
    assert located.catalog == "t1"
    # Another library, or the same one without the template's word for it, is refused.
    with pytest.raises(TenantMisconfigured, match="library"):
        locate(parse("Driver=/tmp/evil/libmsodbcsql-18.3.so.2.1;Server=db1;Database=t1"), templates)
    with pytest.raises(TenantMisconfigured):
        locate(parse(f"Driver={driver};Server=db1;Database=t1"), {})


def test_a_template_library_is_that_template_s_backend() -> None:
    # The path says nothing about the backend; the template it came from does.
    lib = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so"
    templates = {BackendKind.SQLSERVER: parse(f"Driver={lib}")}
    assert kind_for_driver(lib, {lib: BackendKind.SQLSERVER}) is BackendKind.SQLSERVER
    located = locate(parse(f"Driver={lib};Server=db1;Port=1444;Database=t1"), templates)
    assert located.server_key == "sqlserver://db1:1444"


@pytest.mark.parametrize(
    ("server", "port", "key"),
    [("db1", "1444", "sqlserver://db1:1444"), ("db1,1500", "1444", "sqlserver://db1:1500")],
)
def test_freetds_port_keyword_names_the_server(server: str, port: str, key: str) -> None:
    # FreeTDS reads only Port=; the "host,port" form, when given, is what MS drivers use.
    cs = parse(f"Driver={{FreeTDS}};Server={server};Port={port};Database=t1")
    assert locate(cs, {}).server_key == key


@pytest.mark.parametrize("key", ["ConnSettings", "pqopt", "connsettings"])
def test_tenant_may_not_set_session_sql_options(key: str) -> None:
    cs = parse(f"Driver={{PostgreSQL Unicode}};Server=db;Database=t;{key}={{SET role x}}")
    with pytest.raises(TenantMisconfigured, match="template"):
        locate(cs, {})
    template = parse("ConnSettings={SET application_name='tenantgate'}")
    located = locate(
        parse("Driver={PostgreSQL Unicode};Server=db;Database=t"),
        {BackendKind.POSTGRESQL: template},
    )
    assert "ConnSettings" in located.connect
