"""Fleets on PostgreSQL: a database per tenant, or a schema per tenant in one database.

Both layouts talk to the server through psycopg (the admin connection of ``--server``)
and load rows with ``COPY``, the server's bulk path.

**Database per tenant** (``{prefix}_t00001``...): a template database
``{prefix}_template`` is seeded once with the default schema: ``Accounts`` filled,
``Contacts`` and ``Opportunities`` empty, the opportunities waiting in a staging table
(``Opportunities`` refers to ``Contacts``, whose rows differ per tenant), identities
already moved past the ids that will be loaded. The template refuses connections
(``ALLOW_CONNECTIONS false``), so nothing can keep it busy while it is copied. A tenant
is then ``CREATE DATABASE ... TEMPLATE`` (a block copy on the server, ~20 ms), its
custom columns added with one ``ALTER TABLE``, ``Contacts`` loaded by ``COPY`` with them,
the opportunities moved in from staging, and the database marked with a ``COMMENT``.

**Schema per tenant** (``t00001``... in the database ``--database``, default
``{prefix}``): many tenants a transaction (each ``CREATE TABLE`` holds locks until the
commit, so a batch stays small), each a ``CREATE SCHEMA``, the default schema's DDL with
its custom columns, three ``COPY``s and a ``COMMENT ON SCHEMA``. A batch killed midway
rolls back whole: a schema is never half-made. Tenants reach it with ``Schema=t00001``
in their connection string.

With ``controller_on_server`` the controller is the database ``{prefix}_controller``
holding ``"Customer"``. Markers are comments (``tenantgate fleet <id> tenant 17``),
read for a whole fleet with one query (``shobj_description``, ``obj_description``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from proxy.bench.seed_store import (
    Obj,
    Owner,
    Role,
    SeedFailed,
    StoreConfig,
    TenantPlan,
    base_rows,
    contact_rows,
    crash_point,
    marker_text,
    parse_marker,
)
from proxy.demo.seed import (
    TABLE_ORDER,
    Column,
    SeedCounts,
    Value,
    identity_reset_sql,
    schema_ddl,
    table_columns,
)
from tenancy.connstr import ConnectionString

__all__ = ["ODBC_DRIVER", "PostgresStore", "server_label"]

ODBC_DRIVER = "PostgreSQL Unicode"
STAGING = "tenantgate_staging_opportunities"


def _params(config: StoreConfig) -> dict[str, Any]:
    try:
        params: dict[str, Any] = conninfo_to_dict(config.server)
    except psycopg.ProgrammingError:
        raise SeedFailed(
            "--server is not a PostgreSQL address (postgresql://user@host:port/database)"
        ) from None
    if config.password is not None:
        params["password"] = config.password
    return params


def server_label(config: StoreConfig) -> str:
    """``user@host:port``: the server, without its password, for messages."""
    p = _params(config)
    return f"{p.get('user', '')}@{p.get('host', 'localhost')}:{p.get('port', 5432)}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Registry:
    """The controller database on the server."""

    def __init__(self, store: PostgresStore, database: str) -> None:
        self._store = store
        self._database = database
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def connection_string(self) -> str:
        return self._store.odbc(self._database)

    def register(self, rows: Sequence[tuple[int, str, str]]) -> None:
        if self._conn is None:
            self._conn = self._store.connect(self._database)
        with self._conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO "Customer" (customer_id, domainname, sqlconnectstring) '
                "VALUES (%s, %s, %s) ON CONFLICT (customer_id) DO UPDATE SET "
                "domainname = EXCLUDED.domainname, sqlconnectstring = EXCLUDED.sqlconnectstring",
                list(rows),
            )
        self._conn.commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresStore:
    def __init__(self, config: StoreConfig) -> None:
        if config.layout not in ("database", "schema"):
            raise SeedFailed("PostgreSQL fleets use --layout database or --layout schema")
        self.config = config
        self._params = _params(config)
        self._admin_conn: psycopg.Connection[Any] | None = None
        self._fleet_conn: psycopg.Connection[Any] | None = None
        self._registry: _Registry | None = None

    # -- connections -------------------------------------------------------------------

    def connect(self, database: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                **{**self._params, "dbname": database},
                autocommit=autocommit,
                connect_timeout=10,
                application_name="tenantgate-seed",
            )
        except psycopg.OperationalError as exc:
            raise SeedFailed(
                f"cannot connect to PostgreSQL {server_label(self.config)} "
                f"(database {database}): {_first_line(exc)}"
            ) from None

    def _admin(self) -> psycopg.Connection[Any]:
        if self._admin_conn is None or self._admin_conn.closed:
            admin_db = str(self._params.get("dbname") or "postgres")
            self._admin_conn = self.connect(admin_db, autocommit=True)
        return self._admin_conn

    def _fleet(self) -> psycopg.Connection[Any]:
        if self._fleet_conn is None or self._fleet_conn.closed:
            self._fleet_conn = self.connect(self._fleet_database)
        return self._fleet_conn

    def odbc(self, database: str, schema: str | None = None) -> str:
        pairs = [
            ("Driver", ODBC_DRIVER),
            ("Server", str(self._params.get("host") or "localhost")),
            ("Port", str(self._params.get("port") or 5432)),
            ("Database", database),
            ("Uid", str(self._params.get("user") or "")),
        ]
        if self._params.get("password"):
            pairs.append(("Pwd", str(self._params["password"])))
        if self._params.get("sslmode"):
            pairs.append(("SSLmode", str(self._params["sslmode"])))
        if schema:
            pairs.append(("Schema", schema))
        return ConnectionString(pairs).to_odbc()

    # -- names -------------------------------------------------------------------------

    @property
    def _fleet_database(self) -> str:
        return self.config.database or self.config.prefix

    @property
    def _template(self) -> str:
        return f"{self.config.prefix}_template"

    @property
    def _controller(self) -> str:
        return f"{self.config.prefix}_controller"

    def tenant_obj(self, tenant: TenantPlan) -> Obj:
        if self.config.layout == "schema":
            return Obj("schema", tenant.stem)
        return Obj("database", f"{self.config.prefix}_{tenant.stem}")

    def helpers(self) -> list[tuple[Obj, Role]]:
        found: list[tuple[Obj, Role]] = []
        if self.config.layout == "schema":
            found.append((Obj("database", self._fleet_database), "database"))
        else:
            found.append((Obj("database", self._template), "template"))
        if self.config.controller_on_server:
            found.append((Obj("database", self._controller), "controller"))
        return found

    def connection_string(self, tenant: TenantPlan) -> str:
        if self.config.layout == "schema":
            return self.odbc(self._fleet_database, tenant.stem)
        return self.odbc(self.tenant_obj(tenant).name)

    def batch_size(self) -> int:
        # Schemas: one transaction a batch (each CREATE TABLE holds locks until commit);
        # databases: a few per task, to keep the workers' round trips to the seeder few.
        return 25 if self.config.layout == "schema" else 4

    # -- inventory ---------------------------------------------------------------------

    def _databases(self, names: Collection[str] | None) -> dict[str, Owner]:
        query = "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        args: tuple[Any, ...] = ()
        if names is not None:
            query += " WHERE datname = ANY(%s)"
            args = (list(names),)
        rows = self._admin().execute(query, args).fetchall()
        return {str(name): parse_marker(comment) for name, comment in rows}

    def inventory(self, planned: Collection[Obj]) -> dict[Obj, Owner]:
        databases = {o.name for o in planned if o.kind == "database"}
        found = {Obj("database", n): o for n, o in self._databases(databases).items()}
        schemas = [o.name for o in planned if o.kind == "schema"]
        if schemas and Obj("database", self._fleet_database) in found:
            rows = (
                self._fleet()
                .execute(
                    "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                    "WHERE nspname = ANY(%s)",
                    (schemas,),
                )
                .fetchall()
            )
            self._fleet().rollback()
            found.update({Obj("schema", str(n)): parse_marker(c) for n, c in rows})
        return found

    # -- helpers -----------------------------------------------------------------------

    def _comment_database(self, name: str, role: Role, customer_id: int | None = None) -> None:
        self._admin().execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name),
                sql.Literal(marker_text(self.config.fleet_id, role, customer_id)),
            )
        )

    def _create_database(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin().execute(statement)

    def prepare(self) -> None:
        existing = self._databases([o.name for o, _ in self.helpers()])
        for obj, role in self.helpers():
            if obj.name in existing:
                continue
            self._create_database(obj.name)
            if role == "template":
                self._seed_template(obj.name)
            elif role == "controller":
                self._create_controller(obj.name)
            self._comment_database(obj.name, role)

    def _seed_template(self, name: str) -> None:
        counts = SeedCounts.for_contacts(self.config.contacts)
        rows = base_rows(self.config.contacts, self.config.seed)
        with contextlib.closing(self.connect(name)) as conn:
            for statement in schema_ddl("postgresql"):
                conn.execute(statement)
            conn.execute(f'CREATE TABLE {STAGING} (LIKE "Opportunities")')
            _copy(conn, "Accounts", table_columns("Accounts"), rows["Accounts"])
            _copy(conn, STAGING, table_columns("Opportunities"), rows["Opportunities"], raw=True)
            for table in TABLE_ORDER:
                pk = table_columns(table)[0].name
                conn.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s, false)",
                    (f'"{table}"', pk, counts.of(table) + 1),
                )
            conn.commit()
        # Nobody (autovacuum included) may hold it open while it is copied.
        self._admin().execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )

    def _create_controller(self, name: str) -> None:
        with contextlib.closing(self.connect(name)) as conn:
            conn.execute(
                'CREATE TABLE "Customer" (customer_id bigint PRIMARY KEY, '
                "domainname varchar(255) NOT NULL UNIQUE, sqlconnectstring varchar(4000) NOT NULL)"
            )
            # tenantgate looks domains up as LOWER(domainname) = ? (tenancy.controller).
            conn.execute('CREATE INDEX customer_domain_lower ON "Customer" (LOWER(domainname))')
            conn.commit()

    def registry(self) -> _Registry | None:
        if not self.config.controller_on_server:
            return None
        if self._registry is None:
            self._registry = _Registry(self, self._controller)
        return self._registry

    # -- tenants -----------------------------------------------------------------------

    def build(self, tenants: Sequence[TenantPlan]) -> None:
        if self.config.layout == "schema":
            self._build_schemas(tenants)
        else:
            for tenant in tenants:
                self._build_database(tenant)

    def _build_database(self, tenant: TenantPlan) -> None:
        name = self.tenant_obj(tenant).name
        self._create_database(name, self._template)
        crash_point(tenant.customer_id)
        custom = tenant.columns()
        with contextlib.closing(self.connect(name)) as conn:
            if custom:
                conn.execute(
                    'ALTER TABLE "Contacts" '
                    + ", ".join(
                        f'ADD COLUMN "{c.name}" {c.type.sql("postgresql")} NULL' for c in custom
                    )
                )
            _copy(
                conn,
                "Contacts",
                table_columns("Contacts", custom),
                contact_rows(self.config.contacts, self.config.seed, custom),
            )
            conn.execute(f'INSERT INTO "Opportunities" SELECT * FROM {STAGING}')
            conn.execute(f"DROP TABLE {STAGING}")
            conn.commit()
        self._comment_database(name, "tenant", tenant.customer_id)

    def _build_schemas(self, tenants: Sequence[TenantPlan]) -> None:
        conn = self._fleet()
        rows = base_rows(self.config.contacts, self.config.seed)
        try:
            for tenant in tenants:
                schema = tenant.stem
                custom = tenant.columns()
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                crash_point(tenant.customer_id)
                for statement in schema_ddl("postgresql", custom_columns=custom, schema=schema):
                    conn.execute(statement)
                contacts = contact_rows(self.config.contacts, self.config.seed, custom)
                for table in TABLE_ORDER:
                    cols = table_columns(table, custom if table == "Contacts" else ())
                    data = contacts if table == "Contacts" else rows[table]
                    _copy(conn, table, cols, data, schema=schema)
                    conn.execute(identity_reset_sql(table, schema=schema))
                conn.execute(
                    sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                        sql.Identifier(schema),
                        sql.Literal(
                            marker_text(self.config.fleet_id, "tenant", tenant.customer_id)
                        ),
                    )
                )
            conn.commit()
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            raise

    # -- removal -----------------------------------------------------------------------

    def discard(self, obj: Obj) -> None:
        if obj.kind == "schema":
            conn = self._fleet()
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(obj.name))
            )
            conn.commit()
            return
        if obj.name == self._fleet_database and self._fleet_conn is not None:
            self._fleet_conn.close()
        if obj.name == self._controller and self._registry is not None:
            self._registry.close()
        self._admin().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(obj.name))
        )

    def drop_fleet(self) -> list[Obj]:
        dropped = []
        for name, owner in sorted(self._databases(None).items()):
            if owner.fleet_id == self.config.fleet_id:
                self.discard(Obj("database", name))
                dropped.append(Obj("database", name))
        return dropped

    def close(self) -> None:
        for conn in (self._fleet_conn, self._admin_conn):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        if self._registry is not None:
            self._registry.close()


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[Column],
    rows: Iterable[tuple[Value, ...]],
    *,
    schema: str | None = None,
    raw: bool = False,
) -> None:
    target = (
        sql.SQL(table)
        if raw
        else sql.Identifier(schema, table)
        if schema
        else sql.Identifier(table)
    )
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy,
    ):
        for row in rows:
            copy.write_row(row)
