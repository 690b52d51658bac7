"""The service's settings: one TOML file, validated once at start-up.

Every section is a frozen dataclass with defaults, so a test builds exactly the
settings it needs with keyword arguments. ``load()`` reads the file, resolves
``*_env`` indirections (secrets kept out of the file) and rejects unknown keys, so
a typo in the configuration fails loudly at start-up rather than silently at 3 a.m.
The format is documented in ``docs/config.md``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rewriter.markers import DEFAULT_SCHEMAS
from tenancy.backends import BackendKind

STATEMENT_CLASSES = frozenset({"read", "write", "admin"})
DIALECTS = frozenset(DEFAULT_SCHEMAS)  # the rewriter names the input dialects
BACKENDS = tuple(kind.value for kind in BackendKind)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8040
    worker_threads: int = 32
    workers: int = 1
    """Processes serving the port (docs/config.md, "Several workers, several hosts");
    pool caps are divided among them."""
    max_body_bytes: int = 1_048_576
    metrics_require_token: bool = False
    log_sql: bool = False
    """Log each statement's backend SQL (not its parameters) on ``tenantgate.sql``, for
    debugging: it carries callers' text, literals included."""


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    connection_string: str = ""
    table: str = "Customer"
    id_column: str = "customer_id"
    domain_column: str = "domainname"
    connection_column: str = "sqlconnectstring"
    cache_ttl_s: float = 60.0
    negative_ttl_s: float = 5.0
    timeout_ms: int = 1500
    """How long a request waits for a controller query (an unknown tenant's 503 comes
    within it, whatever the controller does)."""
    stale_grace_s: float = 300.0
    """How long past ``cache_ttl_s`` a tenant found before is still served while the
    controller cannot answer (0: never)."""
    max_threads: int = 4
    """Controller queries that may run at once, stuck ones included; when every one is
    stuck past its deadline, more fail at once."""
    changes_table: str = ""
    """The change log in the controller database (``tenancy.changes``); required with
    several workers or hosts, off ("") by default."""
    poll_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_size: int = 10
    min_size: int = 0
    acquire_timeout_ms: int = 2000
    login_timeout_s: int = 5
    max_idle_s: float = 300.0
    max_lifetime_s: float = 3600.0
    max_per_server: int = 50
    max_waiting: int = 20
    validate_idle_ms: int = 1000


@dataclass(frozen=True, slots=True)
class QuerySettings:
    default_dialect: str = "tsql"
    default_max_rows: int = 1000
    max_rows_cap: int = 10_000
    default_timeout_ms: int = 5000
    max_timeout_ms: int = 30_000
    max_sql_chars: int = 100_000
    """Longer statement text is refused before it is parsed (``statement_too_large``)."""
    max_params: int = 2100
    """Parameters per statement: SQL Server's own limit, kept for every backend."""
    max_depth: int = 150
    """Levels of the parsed tree (``rewriter.limits``: Python's recursion limit)."""
    max_in_list: int = 2100
    """Items of one IN list, as many as parameters."""
    parse_cache_bytes: int = 16 << 20
    """Parsed statements kept, by their estimated size (``rewriter.plan_cache``)."""
    plan_cache_bytes: int = 16 << 20
    """Rewritten plans kept, by their estimated size."""
    cache_max_entry_bytes: int = 2 << 20
    """A parsed statement or plan estimated larger is not cached."""
    lift_literals: bool = True
    """On PostgreSQL tenants, send the literals a WHERE or ON condition compares with a
    table's column as bind parameters, so that texts differing only by such values
    share one prepared statement (``rewriter.lift``; docs/decisions.md, "Literals sent
    as parameters")."""
    stream_max_rows: int = 10_000_000
    """Rows a streamed read (``Accept: application/x-ndjson`` or ``text/csv``) returns at
    most; also its default ``max_rows`` (docs/transactions.md, "Streaming results")."""
    stream_write_timeout_ms: int = 30_000
    """A streamed response whose client takes no bytes for this long is ended."""
    stream_max_ms: int = 1_800_000
    """A streamed response still going this long is ended (its trailer says
    ``statement_timeout``): every request ends, however slowly its client reads."""


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """Batches and interactive transactions (docs/transactions.md)."""

    max_batch_statements: int = 1000
    idle_timeout_ms: int = 30_000
    """An interactive transaction without a request for this long is rolled back."""
    max_lifetime_ms: int = 300_000
    """An interactive transaction still open this long after it began is rolled back."""
    max_per_token: int = 10
    """Open interactive transactions per token (per worker process: divided like pools)."""
    max_per_server: int = 20
    """Open interactive transactions per backend server: each pins a connection. At
    most ``pool.max_per_server`` take effect (no more connections exist)."""
    ended_kept_s: float = 600.0
    """How long an ended transaction's id still answers why it ended (then 404)."""


@dataclass(frozen=True, slots=True)
class PgWireUser:
    """A user of the PostgreSQL wire front end (``[[pgwire.users]]``)."""

    name: str
    """The startup packet's ``user`` (before a ``.tenant`` suffix, if any)."""
    token: str
    """The ``[[tokens]]`` entry whose tenants and statement classes the user gets."""
    scram_sha256: str
    """A SCRAM-SHA-256 verifier as PostgreSQL stores one
    (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64): the secret
    itself is never in the file. ``tenantgate pgwire-verifier`` makes one."""
    dialect: str = "postgres"
    """The dialect of the user's logical SQL."""


@dataclass(frozen=True, slots=True)
class PgWireSettings:
    """The PostgreSQL wire-protocol front end (docs/pgwire.md)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 6432
    max_message_bytes: int = 1_048_576
    """A message longer than this is refused (54000) and the connection closed."""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    """With both, SSLRequest is answered with TLS; without, it is declined ('N')."""
    cleartext_tokens: bool = True
    """Over TLS only: a user may send a ``[[tokens]]`` token as a cleartext password
    (the token's own scopes; any user name)."""
    auth_failure_delay_ms: int = 500
    """How long a failed login waits before its error: brute force gets slow."""
    users: tuple[PgWireUser, ...] = ()


@dataclass(frozen=True, slots=True)
class MetadataSettings:
    ttl_s: float = 300.0
    negative_ttl_s: float = 10.0
    timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str = "text"
    """``text`` (one line a record) or ``json`` (one object a line)."""
    level: str = "info"
    access_log: bool = False
    """One line per HTTP request on ``tenantgate.access``: method, path, status, time."""
    request_id_to_database: bool = True
    """Name each statement's request on the database session (``proxy.drivers``)."""


@dataclass(frozen=True, slots=True)
class StatsSettings:
    top_tenants: int = 10
    """Ranks exported as ``tenantgate_top_tenant_*{rank}`` series."""
    tenants_window_s: float = 60.0
    """The window the busiest tenants are counted over."""
    tenants_tracked: int = 256
    """Tenants each process's summary keeps per measure (``proxy.pipeline.activity``)."""


LOG_FORMATS = frozenset({"text", "json"})
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


@dataclass(frozen=True, slots=True)
class TokenSettings:
    name: str
    sha256: str
    tenants: tuple[str, ...] = ("*",)
    classes: tuple[str, ...] = ("read",)
    rate_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Settings:
    controller: ControllerSettings
    tokens: tuple[TokenSettings, ...]
    server: ServerSettings = field(default_factory=ServerSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    query: QuerySettings = field(default_factory=QuerySettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    transactions: TransactionSettings = field(default_factory=TransactionSettings)
    pgwire: PgWireSettings = field(default_factory=PgWireSettings)
    backend_templates: Mapping[str, str] = field(default_factory=dict)
    backend_drivers: Mapping[str, str] = field(default_factory=dict)
    """Backend → client library (``native`` or ``odbc``); see ``proxy.drivers.manager``."""
    base_model: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)


def _validate(s: Settings) -> None:
    problems: list[str] = []
    if not s.controller.connection_string.strip():
        problems.append("controller.connection_string is required")
    if not s.tokens:
        problems.append("at least one [[tokens]] entry is required")
    if len({t.name for t in s.tokens}) != len(s.tokens):
        problems.append("token names must be unique")
    if len({t.sha256.lower() for t in s.tokens}) != len(s.tokens):
        # One token, two scopes: the authenticator would silently keep only one.
        problems.append("two [[tokens]] entries have the same sha256")
    for t in s.tokens:
        digest = t.sha256.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            problems.append(f"token {t.name!r}: sha256 must be 64 hex digits")
        bad = set(t.classes) - STATEMENT_CLASSES
        if bad:
            problems.append(f"token {t.name!r}: unknown classes {sorted(bad)}")
        if not t.tenants:
            problems.append(f"token {t.name!r}: tenants must not be empty (use ['*'])")
        if t.rate_per_s < 0:
            problems.append(f"token {t.name!r}: rate_per_s must be >= 0")
    for kind in {*s.backend_templates, *s.backend_drivers}:
        if kind not in BACKENDS:
            problems.append(f"[backends.{kind}]: unknown backend, expected one of {BACKENDS}")
    from proxy.drivers.manager import CHOICES  # noqa: PLC0415 - drivers import config's users

    for kind, chosen in s.backend_drivers.items():
        allowed = CHOICES.get(BackendKind(kind), ()) if kind in BACKENDS else ()
        if allowed and chosen not in allowed:
            problems.append(f"[backends.{kind}] driver must be one of {list(allowed)}")
    if s.query.default_dialect not in DIALECTS:
        problems.append(f"query.default_dialect must be one of {sorted(DIALECTS)}")
    positive = {
        "server.port": s.server.port,
        "server.worker_threads": s.server.worker_threads,
        "server.max_body_bytes": s.server.max_body_bytes,
        "pool.max_size": s.pool.max_size,
        "pool.acquire_timeout_ms": s.pool.acquire_timeout_ms,
        "pool.login_timeout_s": s.pool.login_timeout_s,
        "pool.max_per_server": s.pool.max_per_server,
        "query.default_max_rows": s.query.default_max_rows,
        "query.max_rows_cap": s.query.max_rows_cap,
        "query.default_timeout_ms": s.query.default_timeout_ms,
        "query.max_timeout_ms": s.query.max_timeout_ms,
        "query.max_sql_chars": s.query.max_sql_chars,
        "query.max_params": s.query.max_params,
        "query.max_depth": s.query.max_depth,
        "query.max_in_list": s.query.max_in_list,
        "query.parse_cache_bytes": s.query.parse_cache_bytes,
        "query.plan_cache_bytes": s.query.plan_cache_bytes,
        "query.cache_max_entry_bytes": s.query.cache_max_entry_bytes,
        "query.stream_max_rows": s.query.stream_max_rows,
        "query.stream_write_timeout_ms": s.query.stream_write_timeout_ms,
        "query.stream_max_ms": s.query.stream_max_ms,
        "controller.cache_ttl_s": s.controller.cache_ttl_s,
        "controller.timeout_ms": s.controller.timeout_ms,
        "controller.max_threads": s.controller.max_threads,
        "metadata.ttl_s": s.metadata.ttl_s,
        "metadata.timeout_ms": s.metadata.timeout_ms,
        "stats.top_tenants": s.stats.top_tenants,
        "stats.tenants_window_s": s.stats.tenants_window_s,
        "stats.tenants_tracked": s.stats.tenants_tracked,
        "transactions.max_batch_statements": s.transactions.max_batch_statements,
        "transactions.idle_timeout_ms": s.transactions.idle_timeout_ms,
        "transactions.max_lifetime_ms": s.transactions.max_lifetime_ms,
        "transactions.max_per_token": s.transactions.max_per_token,
        "transactions.max_per_server": s.transactions.max_per_server,
        "transactions.ended_kept_s": s.transactions.ended_kept_s,
    }
    problems.extend(f"{k} must be > 0" for k, v in positive.items() if v <= 0)
    if not 0 <= s.pool.min_size <= s.pool.max_size:
        problems.append("pool.min_size must be between 0 and pool.max_size")
    if s.server.workers < 1:
        problems.append("server.workers must be >= 1")
    elif s.server.workers > 1:
        if not s.controller.changes_table:
            problems.append(
                "server.workers > 1 needs controller.changes_table (how workers tell each "
                "other of schema changes)"
            )
        if s.pool.max_size < s.server.workers or s.pool.max_per_server < s.server.workers:
            problems.append(
                "pool.max_size and pool.max_per_server are divided among server.workers: "
                "each must be at least server.workers"
            )
    if not s.controller.poll_interval_s > 0:
        problems.append("controller.poll_interval_s must be > 0")
    if not s.controller.stale_grace_s >= 0:
        problems.append("controller.stale_grace_s must be >= 0")
    if s.query.default_max_rows > s.query.max_rows_cap:
        problems.append("query.default_max_rows must not exceed query.max_rows_cap")
    if s.query.default_timeout_ms > s.query.max_timeout_ms:
        problems.append("query.default_timeout_ms must not exceed query.max_timeout_ms")
    problems.extend(_operations_problems(s))
    problems.extend(_pgwire_problems(s))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def _operations_problems(s: Settings) -> list[str]:
    """What is wrong with ``[logging]`` and ``[stats]``."""
    problems = []
    if s.logging.format not in LOG_FORMATS:
        problems.append(f"logging.format must be one of {sorted(LOG_FORMATS)}")
    if s.logging.level not in LOG_LEVELS:
        problems.append(f"logging.level must be one of {sorted(LOG_LEVELS)}")
    if s.stats.top_tenants > s.stats.tenants_tracked:
        problems.append("stats.top_tenants must not exceed stats.tenants_tracked")
    return problems


def _pgwire_problems(s: Settings) -> list[str]:
    w = s.pgwire
    problems = []
    if not 0 < w.port < 65536:
        problems.append("pgwire.port must be a TCP port")
    if w.max_message_bytes < 1024:
        problems.append("pgwire.max_message_bytes must be at least 1024")
    if w.auth_failure_delay_ms < 0:
        problems.append("pgwire.auth_failure_delay_ms must be >= 0")
    if bool(w.tls_cert_file) != bool(w.tls_key_file):
        problems.append("pgwire.tls_cert_file and pgwire.tls_key_file go together")
    tokens = {t.name for t in s.tokens}
    names = [u.name.casefold() for u in w.users]
    if len(set(names)) != len(names):
        problems.append("pgwire.users: names must be unique (ignoring case)")
    for u in w.users:
        if not u.name or "." in u.name:
            problems.append(f"pgwire user {u.name!r}: a name, without '.' (the tenant suffix's)")
        if u.token not in tokens:
            problems.append(f"pgwire user {u.name!r}: no [[tokens]] entry named {u.token!r}")
        if u.dialect not in DIALECTS:
            problems.append(f"pgwire user {u.name!r}: dialect must be one of {sorted(DIALECTS)}")
        if not _SCRAM_VERIFIER.fullmatch(u.scram_sha256):
            problems.append(
                f"pgwire user {u.name!r}: scram_sha256 must be a verifier "
                "'SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>'"
            )
    return problems


_SCRAM_VERIFIER = re.compile(
    r"SCRAM-SHA-256\$[0-9]{1,7}:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"
)


def _section(cls: type[Any], raw: Any, where: str, env: Mapping[str, str]) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f.type for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key.endswith("_env") and key[:-4] in known:
            name = key[:-4]
            if not isinstance(value, str) or value not in env:
                raise ConfigError(f"{where}.{key}: environment variable {value!r} is not set")
            values[name] = env[value]
        elif key in known:
            if known[key] == "bool" and not isinstance(value, bool):
                # A dataclass takes any value, and "false" (a string) would be true.
                raise ConfigError(f"{where}.{key} must be true or false")
            values[key] = tuple(value) if isinstance(value, list) else value
        else:
            raise ConfigError(f"{where}.{key}: unknown setting")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from None


def from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    known = {
        "server",
        "controller",
        "pool",
        "query",
        "metadata",
        "logging",
        "stats",
        "transactions",
        "pgwire",
        "backends",
        "base_model",
        "tokens",
    }
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown sections: {sorted(unknown)}")
    templates: dict[str, str] = {}
    drivers: dict[str, str] = {}
    for kind, section in (data.get("backends") or {}).items():
        if not isinstance(section, dict) or set(section) - {"template", "driver"}:
            raise ConfigError(f"[backends.{kind}] takes only 'template' and 'driver'")
        if "template" in section:
            templates[kind] = str(section["template"])
        if "driver" in section:
            drivers[kind] = str(section["driver"])
    base_model: dict[str, tuple[str, ...]] = {}
    for table, cols in (data.get("base_model") or {}).items():
        if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
            raise ConfigError(f"base_model.{table} must be a list of column names")
        base_model[table] = tuple(cols)
    raw_tokens = data.get("tokens") or []
    if not isinstance(raw_tokens, list):
        raise ConfigError("tokens must be an array of tables ([[tokens]])")
    tokens = []
    for i, entry in enumerate(raw_tokens):
        if isinstance(entry, dict) and isinstance(entry.get("tenants"), list):
            # Ids may be written as numbers; scopes compare strings.
            entry = {**entry, "tenants": [str(t) for t in entry["tenants"]]}  # noqa: PLW2901
        tokens.append(_section(TokenSettings, entry, f"tokens[{i}]", env))
    try:
        return Settings(
            server=_section(ServerSettings, data.get("server"), "server", env),
            controller=_section(ControllerSettings, data.get("controller"), "controller", env),
            pool=_section(PoolSettings, data.get("pool"), "pool", env),
            query=_section(QuerySettings, data.get("query"), "query", env),
            metadata=_section(MetadataSettings, data.get("metadata"), "metadata", env),
            logging=_section(LoggingSettings, data.get("logging"), "logging", env),
            stats=_section(StatsSettings, data.get("stats"), "stats", env),
            transactions=_section(
                TransactionSettings, data.get("transactions"), "transactions", env
            ),
            pgwire=_pgwire(data.get("pgwire"), env),
            backend_templates=templates,
            backend_drivers=drivers,
            base_model=base_model,
            tokens=tuple(tokens),
        )
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _pgwire(raw: Any, env: Mapping[str, str]) -> PgWireSettings:
    if raw is None:
        return PgWireSettings()
    if not isinstance(raw, dict):
        raise ConfigError("[pgwire] must be a table")
    raw_users = raw.get("users") or []
    if not isinstance(raw_users, list):
        raise ConfigError("pgwire.users must be an array of tables ([[pgwire.users]])")
    users = tuple(
        _section(PgWireUser, entry, f"pgwire.users[{i}]", env) for i, entry in enumerate(raw_users)
    )
    rest = {k: v for k, v in raw.items() if k != "users"}
    settings: PgWireSettings = _section(PgWireSettings, rest, "pgwire", env)
    return replace(settings, users=users)


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration {str(path)!r} is not valid TOML: {exc}") from None
    return from_mapping(data, env)
