"""A real T-SQL engine over TDS for the tests, reached through two real ODBC drivers.

The engine is either the server named by ``TENANTGATE_TEST_TDS_DSN`` (an ODBC string
with ``Server``, ``Port`` or ``Server=host,port``, ``UID`` and ``PWD``; the login must be
allowed to create databases), or a private Babelfish for PostgreSQL (T-SQL and TDS on
PostgreSQL 16) that this module starts with ``start.sh`` from
``TENANTGATE_BABELFISH_DIR`` (default: ``../shared/babelfish`` beside the checkout) on
free loopback ports, and stops and removes afterwards. Nothing here mocks the database.

Every SQL Server test runs once per driver:

* ``msodbc18``: Microsoft ODBC Driver 18, from the ``mssql-python-odbc`` wheel (a test
  dependency). The wheel is not registered with the driver manager, so
  ``register_msodbc18`` writes a private ``odbcinst.ini`` (the system's drivers plus this
  one) and points ``ODBCSYSINI`` at it. unixODBC reads that variable once per process,
  so this must happen before the first connection (``tests/conftest.py`` does it on
  import); the service processes the e2e tests start inherit it.
* ``freetds``: FreeTDS, Debian's ``tdsodbc``, registered by its package as ``FreeTDS``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyodbc

from tenancy import connstr

ROOT = Path(__file__).resolve().parents[2]
MSODBC18 = "msodbc18"
FREETDS = "freetds"
DRIVERS = (MSODBC18, FREETDS)
DRIVER_NAMES = {MSODBC18: "ODBC Driver 18 for SQL Server", FREETDS: "FreeTDS"}
LOGIN = "tg_tds_admin"
PASSWORD = "TdsLocal4711x"  # letters and digits: start.sh's rule, no ODBC quoting needed


class TdsUnavailable(RuntimeError):
    """No T-SQL engine can be had here; the message says why (the skip reason)."""


@dataclass(frozen=True)
class TdsServer:
    host: str
    port: int
    user: str
    password: str
    encrypt: str
    """``Encrypt=`` for Microsoft ODBC 18: ``yes`` (with TrustServerCertificate) or ``no``."""
    drivers: tuple[str, ...]
    """The driver labels (``msodbc18``, ``freetds``) that can reach it here."""
    control: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    """``control("stop")`` / ``control("start")`` for an engine this run started itself."""

    def odbc(
        self, driver: str, database: str | None = "master", *, password: str | None = None
    ) -> str:
        """An ODBC connection string for ``driver`` (a label of ``DRIVERS``)."""
        # Unbraced: FreeTDS 1.3 keeps the braces of PWD={...} as part of the password.
        pwd_value = self.password if password is None else password
        parts = [f"Driver={{{DRIVER_NAMES[driver]}}}"]
        if driver == FREETDS:
            # FreeTDS takes the port from Port= only; "Server=host,port" fails (08001).
            parts += [f"Server={self.host}", f"Port={self.port}", "TDS_Version=7.4"]
        else:
            parts += [f"Server={self.host},{self.port}", f"Encrypt={self.encrypt}"]
            if self.encrypt != "no":
                parts.append("TrustServerCertificate=yes")
        if database is not None:
            parts.append(f"Database={database}")
        parts += [f"UID={self.user}", f"PWD={pwd_value}"]
        return ";".join(parts)

    def connect(self, driver: str = FREETDS, database: str | None = "master") -> pyodbc.Connection:
        return pyodbc.connect(self.odbc(driver, database), autocommit=True, timeout=10)

    def create_database(self, prefix: str = "tg") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with contextlib.closing(self.connect()) as conn:
            conn.execute(f"CREATE DATABASE [{name}]")
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self.connect()) as conn:
            # Sessions of the pools under test may still sit in it.
            for (spid,) in conn.execute(
                "SELECT spid FROM sys.sysprocesses WHERE dbid = DB_ID(?) AND spid <> @@SPID",
                name,
            ).fetchall():
                with contextlib.suppress(pyodbc.Error):
                    conn.execute(f"KILL {int(spid)}")
            with contextlib.suppress(pyodbc.Error):
                conn.execute(f"DROP DATABASE [{name}]")

    def kill_sessions(self, database: str) -> int:
        """``KILL`` every session whose current database is ``database``: how many."""
        with contextlib.closing(self.connect()) as conn:
            spids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT spid FROM sys.sysprocesses WHERE dbid = DB_ID(?) AND spid <> @@SPID",
                    database,
                ).fetchall()
            ]
            for spid in spids:
                conn.execute(f"KILL {spid}")
        return len(spids)


# -- Microsoft ODBC Driver 18 from the wheel -------------------------------------------


def msodbc18_library() -> str | None:
    """The wheel's ``libmsodbcsql-18`` for this platform, or ``None`` if not installed."""
    try:
        import mssql_python_odbc  # noqa: PLC0415 (optional test dependency)
    except ImportError:
        return None
    base = Path(mssql_python_odbc.__file__).parent / "libs" / "linux"
    machine = os.uname().machine
    for family in ("debian_ubuntu", "rhel", "suse"):
        found = sorted(glob.glob(str(base / family / machine / "lib" / "libmsodbcsql-18.*.so*")))
        if found:
            return found[-1]
    return None


def _installed_drivers() -> set[str]:
    try:
        out = subprocess.run(["odbcinst", "-q", "-d"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return set()
    return {line.strip().strip("[]") for line in out.stdout.splitlines() if line.strip()}


def register_msodbc18() -> str | None:
    """Make ``ODBC Driver 18 for SQL Server`` resolvable by name; why not, else ``None``.

    Does nothing when the driver manager already knows the driver (a system install).
    """
    if DRIVER_NAMES[MSODBC18] in _installed_drivers():
        return None
    library = msodbc18_library()
    if library is None:
        return "Microsoft ODBC Driver 18 is not installed (pip package mssql-python-odbc)"
    system_ini = Path("/etc/odbcinst.ini")
    with contextlib.suppress(FileNotFoundError, subprocess.SubprocessError):
        out = subprocess.run(["odbcinst", "-j"], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            if line.startswith("DRIVERS"):
                system_ini = Path(line.split(":", 1)[1].strip())
    folder = Path(tempfile.mkdtemp(prefix="tenantgate-odbcinst-"))
    existing = system_ini.read_text(encoding="utf-8") if system_ini.exists() else ""
    (folder / "odbcinst.ini").write_text(
        f"{existing}\n[{DRIVER_NAMES[MSODBC18]}]\n"
        "Description=Microsoft ODBC Driver 18 for SQL Server (mssql-python-odbc wheel)\n"
        f"Driver={library}\nUsageCount=1\n",
        encoding="utf-8",
    )
    (folder / "odbc.ini").write_text("", encoding="utf-8")
    os.environ["ODBCSYSINI"] = str(folder)
    return None


# -- the engine ------------------------------------------------------------------------


def required() -> bool:
    """Whether the SQL Server tests must run rather than skip: in CI, where the engine
    ships beside the checkout, not reaching it is a failure."""
    return (
        os.environ.get("CI", "").casefold() in ("1", "true", "yes")
        and (babelfish_dir() / "start.sh").exists()
    )


def babelfish_dir() -> Path:
    return Path(os.environ.get("TENANTGATE_BABELFISH_DIR") or ROOT.parent / "shared" / "babelfish")


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (TDS and Babelfish's PostgreSQL port)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise TdsUnavailable("no two adjacent free loopback ports")


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


@contextlib.contextmanager
def private_babelfish() -> Iterator[TdsServer]:
    source = babelfish_dir()
    if not (source / "start.sh").exists():
        raise TdsUnavailable(
            f"no Babelfish engine at {source} "
            "(set TENANTGATE_BABELFISH_DIR or TENANTGATE_TEST_TDS_DSN)"
        )
    if shutil.which("zstd") is None:
        raise TdsUnavailable("zstd is missing (needed to unpack Babelfish): run `make test`")
    # PostgreSQL refuses to run as root, and the checkout's parents may be closed to the
    # server's user: run a copy of the scripts and tarball from a folder it owns.
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="tenantgate-tds-"))
    kit, data, cache = base / "kit", base / "data", base / "cache"
    for folder in (kit, cache):
        folder.mkdir()
    for item in source.iterdir():
        if item.is_file():
            shutil.copy(item, kit / item.name)
    if user is not None:
        info = pwd.getpwnam(user)
        for path in (base, kit, cache, *kit.iterdir()):
            os.chown(path, info.pw_uid, info.pw_gid)
    port = _free_port_pair()
    env: dict[str, str] = {
        **os.environ,
        "BBF_LOGIN": LOGIN,
        "BBF_PASSWORD": PASSWORD,
        "BBF_CACHE_DIR": str(cache),
        "BBF_PG_PORT": str(port + 1),
        "HOME": str(base),
    }

    def run_script(action: str) -> subprocess.CompletedProcess[str]:
        script = {"start": [str(kit / "start.sh"), str(data), str(port)]}.get(
            action, [str(kit / "stop.sh"), str(data)]
        )
        done = subprocess.run(
            _as_user(script, user), env=env, capture_output=True, text=True, check=False,
            timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise TdsUnavailable(
                f"Babelfish {action} failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        return done

    def control(action: str) -> None:
        run_script(action)

    try:
        started = run_script("start")
        encrypt = "yes" if "Encrypt=yes" in started.stdout else "no"
        yield TdsServer(
            "127.0.0.1", port, LOGIN, PASSWORD, encrypt, usable_drivers(),
            control=control,
        )  # fmt: skip
    finally:
        subprocess.run(
            _as_user([str(kit / "stop.sh"), str(data)], user),
            env=env, capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def usable_drivers() -> tuple[str, ...]:
    installed = _installed_drivers()
    return tuple(d for d in DRIVERS if DRIVER_NAMES[d] in installed)


def from_dsn(dsn: str) -> TdsServer:
    cs = connstr.parse(dsn)
    server = (cs.get("Server") or cs.get("Address") or "127.0.0.1").strip()
    if server.casefold().startswith("tcp:"):
        server = server[4:]
    host, _, port_text = server.partition(",")
    port = int((port_text or cs.get("Port") or "1433").strip())
    encrypt = (cs.get("Encrypt") or "yes").strip().casefold()
    return TdsServer(
        host=host.strip(),
        port=port,
        user=cs.get("UID") or cs.get("User") or "sa",
        password=cs.get("PWD") or cs.get("Password") or "",
        encrypt="no" if encrypt in ("no", "false", "optional") else "yes",
        drivers=usable_drivers(),
    )


@contextlib.contextmanager
def tds_server() -> Iterator[TdsServer]:
    """The engine for this test run; raises ``TdsUnavailable`` when there is none."""
    dsn = os.environ.get("TENANTGATE_TEST_TDS_DSN")
    if dsn:
        server = from_dsn(dsn)
        if not server.drivers:
            raise TdsUnavailable("neither FreeTDS nor Microsoft ODBC Driver 18 is installed")
        yield server
        return
    if not usable_drivers():
        raise TdsUnavailable("neither FreeTDS nor Microsoft ODBC Driver 18 is installed")
    with private_babelfish() as server:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.connect(server.drivers[-1]).close()
                break
            except pyodbc.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield server
