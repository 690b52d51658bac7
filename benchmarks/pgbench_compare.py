"""pgbench through tenantgate's PostgreSQL wire front end, next to pgbench through
PgBouncer and pgbench directly to PostgreSQL (issue #13, item 5), in one run with
interleaved rounds.

Every target runs the same custom script, a point select on a seeded PostgreSQL
tenant's Contacts with a random key::

    \\set key random(1, 200)
    SELECT "FirstName" FROM "Contacts" WHERE "ContactID" = :key;

The identifiers are quoted so that the one text is valid both as tenantgate's logical
SQL (PostgreSQL dialect) and as the tenant's physical SQL. Targets:

* pgbench directly to PostgreSQL (``-M prepared``, the best a client can do);
* pgbench through PgBouncer (Debian's, started by ``compare.pgbouncer``: transaction
  pooling, a pool of 4 server connections like tenantgate's ``pool.max_size``),
  ``-M simple`` and ``-M extended``. PgBouncer 1.18 cannot keep protocol-level prepared
  statements in transaction pooling, so it has no prepared row;
* pgbench through tenantgate's wire front end (its own service process with
  ``[pgwire]`` on, a SCRAM user), ``-M simple``, ``extended`` and ``prepared``.

For each target and client count (``-c 16 -j 2`` and ``-c 1``): transactions/s and the
CPU µs per transaction of the proxy process (tenantgate's service pid, PgBouncer's pid;
utime + stime from /proc/PID/stat over the run). Neither PostgreSQL's backends nor
pgbench are in it. Figures are medians across rounds. The ratio column is tenantgate's
tps over PgBouncer's in the same protocol mode (extended for prepared); the issue's goal
is ≥ 0.5 at 16 clients.

With ``--profile``, one more tenantgate run per mode at 16 clients under ``py-spy``
(``$PY_SPY`` or on PATH; a sampling profiler, outside the process) prints the
functions with the most time per transaction: inclusive and own. py-spy samples a
running thread's stack, not its CPU: a send that wakes its receiver and is preempted
counts as the sender's own time (``StreamWriter.write``, ``Statements.execute``), so
those two are overstated; /proc puts tenantgate's system CPU near 25 µs a transaction.

With ``--against REF`` (a git commit, branch or tag), a second tenantgate runs the
code of REF from a git worktree, with the same configuration, in the same alternating
rounds: a change's effect measured side by side, and the CPU of each per transaction.

    .venv/bin/python benchmarks/pgbench_compare.py [--rounds 3] [--seconds 5] \\
        [--clients 16,1] [--profile] [--tiny] [--against REF]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare import PGBOUNCER_PASSWORD, POOL, free_port, pgbench_path, pgbouncer  # noqa: E402
from procstat import cpu_s  # noqa: E402

from proxy.auth import hash_token  # noqa: E402
from proxy.compiled import compiled  # noqa: E402
from proxy.demo.seed import custom_columns, seed_tenant  # noqa: E402
from proxy.frontends.pgwire.auth import make_verifier  # noqa: E402
from tests.support.pg import PgServer, pg_server  # noqa: E402
from tests.support.stack import serve  # noqa: E402
from tests.support.tenants import backends_toml, base_model_toml, write_controller  # noqa: E402

CONTACTS = 200
TENANT = "pgbench.example"
WIRE_USER = "bench"
SCRIPT = (
    f"\\set key random(1, {CONTACTS})\n"
    'SELECT "FirstName" FROM "Contacts" WHERE "ContactID" = :key;\n'
)

TARGETS = (
    ("direct", "prepared", "pgbench direct, prepared"),
    ("pgbouncer", "simple", "PgBouncer, simple"),
    ("pgbouncer", "extended", "PgBouncer, extended"),
    ("tenantgate", "simple", "tenantgate, simple"),
    ("tenantgate", "extended", "tenantgate, extended"),
    ("tenantgate", "prepared", "tenantgate, prepared"),
)


@dataclass(frozen=True)
class Run:
    tps: float
    cpu_us: float | None
    """CPU µs per transaction of the proxy process, ``None`` for pgbench direct."""


def run_pgbench(
    *, port: int, user: str, database: str, script: Path, mode: str, clients: int,
    seconds: int, pid: int | None,
) -> Run:  # fmt: skip
    c0 = tree_cpu_s(pid) if pid else 0.0
    done = subprocess.run(
        [pgbench_path() or "pgbench", "-n", "-M", mode, "-c", str(clients),
         "-j", str(min(clients, 2)), "-T", str(seconds), "-f", str(script),
         "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
        capture_output=True, text=True, check=False, timeout=seconds + 120,
        env={**os.environ, "PGPASSWORD": PGBOUNCER_PASSWORD},
    )  # fmt: skip
    cpu = tree_cpu_s(pid) - c0 if pid else 0.0
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or (failed and failed.group(1) != "0"):
        raise RuntimeError(f"pgbench -M {mode} failed:\n{done.stdout}\n{done.stderr}")
    processed = int(re.search(r"actually processed: (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    return Run(tps, cpu / max(processed, 1) * 1e6 if pid else None)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children: the workers of a service with
    ``server.workers`` > 1 are children of the process ``serve`` started."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return cpu_s(pid) + sum(cpu_s(c) for c in children)


def _config(controller: Path, port: int, workers: int) -> str:
    # The defaults for logging (text, no access log), as a deployment would start.
    return f"""
[server]
workers = {workers}

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
changes_table = "TenantgateChanges"

{backends_toml()}

[pool]
max_size = {POOL}

[pgwire]
enabled = true
host = "127.0.0.1"
port = {port}

[[pgwire.users]]
name = "{WIRE_USER}"
token = "bench"
scram_sha256 = "{make_verifier(PGBOUNCER_PASSWORD)}"

[base_model]
{base_model_toml()}

[[tokens]]
name = "bench"
sha256 = "{hash_token("pgbench-compare-unused-token")}"
tenants = ["*"]
classes = ["read"]
"""


@contextlib.contextmanager
def tenantgate(
    pg: PgServer, database: str, root: Path, workers: int = 1, code: Path = ROOT
) -> Iterator[tuple[int, int]]:
    """The service with ``[pgwire]`` on, serving ``database`` as ``TENANT``: its wire
    port and pid (with several workers, the parent's: ``tree_cpu_s`` counts them all).
    ``code``: the checkout it runs (``--against``'s worktree)."""
    root.mkdir(parents=True, exist_ok=True)
    controller = root / "controller.db"
    write_controller(controller, [(1, TENANT, pg.odbc(database))])
    port = free_port()
    config = root / "tenantgate.toml"
    config.write_text(_config(controller, port, workers), encoding="utf-8")
    with serve(config, root / "service.log", code=code) as (_, pid):
        yield port, pid


@contextlib.contextmanager
def worktree(ref: str, where: Path) -> Iterator[Path]:
    """A detached git worktree of ``ref`` at ``where``, removed afterwards; its hot path
    compiled when this checkout's is and ``ref`` knows how (``TENANTGATE_COMPILE``), so
    that the two sides differ only by their code."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), ref],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        setup = where / "setup.py"
        if compiled() and setup.exists() and "TENANTGATE_COMPILE" in setup.read_text():
            print(f"compiling {ref}'s hot path with mypyc (a few minutes) ...", flush=True)
            subprocess.run(
                [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                cwd=where, check=True, capture_output=True, timeout=1800,
                env={**os.environ, "TENANTGATE_COMPILE": "1"},
            )  # fmt: skip
        elif compiled():
            print(f"{ref} runs interpreted: it has no compiled build", flush=True)
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip


def targets(against: str | None) -> tuple[tuple[str, str, str], ...]:
    """What runs: ``TARGETS``, and tenantgate at ``against`` in each mode."""
    if against is None:
        return TARGETS
    return TARGETS + tuple(
        ("against", mode, f"tenantgate {against[:12]}, {mode}")
        for mode in ("simple", "extended", "prepared")
    )


def profile(pid: int, seconds: int, out: Path, run: Callable[[], Run]) -> tuple[Path, Run]:
    """``run`` while py-spy samples ``pid``: the collapsed stacks and the run."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy, or set PY_SPY)")
    # --nonblocking: py-spy does not stop the process to sample it, so the profiled
    # run's tps is close to an unprofiled one.
    sampler = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
         "--format", "raw", "--output", str(out), "--duration", str(seconds + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)  # attached before the load starts
    result = run()
    sampler.wait(timeout=60)
    return out, result


def top_costs(collapsed: Path, rate: int, transactions: float, n: int) -> list[str]:
    """The ``n`` functions with most samples, inclusive and own, in µs per transaction."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = [_short(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples

    def us(samples: int) -> float:
        return samples / rate / transactions * 1e6

    lines = [f"  sampled CPU: {us(total):.0f} µs per transaction ({total} samples)"]
    lines.append(f"  {'inclusive µs/tx':>16}  function")
    lines += [f"  {us(s):16.1f}  {f}" for f, s in inclusive.most_common(n + 8)]
    lines.append(f"  {'own µs/tx':>16}  function")
    lines += [f"  {us(s):16.1f}  {f}" for f, s in own.most_common(n)]
    return lines


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` as ``func (module.py:123)``, dropping the line
    number so that one function's samples add up."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    parts = Path(path).parts
    where = "/".join(parts[-3:]) if "proxy" in parts or "rewriter" in parts else parts[-1]
    return f"{name} ({where})"


CLIENTS = "16,1"
TINY_CLIENTS = [4]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", default=CLIENTS, help="comma-separated, e.g. 16,1")
    parser.add_argument("--profile", action="store_true", help="py-spy tenantgate at 16 clients")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--workers", type=int, default=1, help="tenantgate's server.workers")
    parser.add_argument("--tiny", action="store_true", help="the smoke test's size")
    parser.add_argument(
        "--against", metavar="REF", help="also run tenantgate at this git ref, side by side"
    )
    args = parser.parse_args()
    clients = [int(c) for c in str(args.clients).split(",")]
    if args.tiny:
        args.rounds, args.seconds, clients = 1, 1, TINY_CLIENTS
    if missing := missing_tools():
        sys.exit(f"missing: {', '.join(missing)} (`make bench` installs pgbouncer)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pg_server() as pg:
        run(pg, Path(tmp), args, clients)
    print(f"\npgbench_compare.py done in {time.monotonic() - started:.0f} s")


def missing_tools() -> list[str]:
    missing = [t for t in ("pgbouncer",) if shutil.which(t) is None]
    return missing + ([] if pgbench_path() else ["pgbench"])


def run(pg: PgServer, root: Path, args: argparse.Namespace, clients: list[int]) -> None:
    """The whole comparison on ``pg``, in ``root`` (a directory of its own): a seeded
    tenant database, PgBouncer and a tenantgate service in front of it, the rounds and
    the report (and the profile with ``args.profile``); the database is dropped after.

    ``args``: ``rounds``, ``seconds``, ``tiny``, ``workers``, ``profile`` and ``top``,
    as this script's options (compare.py passes its own rounds and seconds)."""
    database = pg.create_database("tg_pgbench")
    try:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(
                conn, "postgresql", contacts=CONTACTS,
                custom_columns=custom_columns(20), seed=12,
            )  # fmt: skip
        script = root / "point_select.pgbench.sql"
        script.write_text(SCRIPT)
        against = getattr(args, "against", None)
        with contextlib.ExitStack() as stack:
            bouncer_port, bouncer_pid = stack.enter_context(pgbouncer(pg, database))
            wire_port, wire_pid = stack.enter_context(
                tenantgate(pg, database, root / "head", args.workers)
            )
            where = {
                "direct": (pg.port, pg.user, database, None),
                "pgbouncer": (bouncer_port, pg.user, database, bouncer_pid),
                "tenantgate": (wire_port, WIRE_USER, TENANT, wire_pid),
            }
            if against is not None:
                code = stack.enter_context(worktree(against, root / "against-code"))
                port, pid = stack.enter_context(
                    tenantgate(pg, database, root / "against", args.workers, code)
                )
                where["against"] = (port, WIRE_USER, TENANT, pid)

            def runner(target: str, mode: str, c: int, seconds: int) -> Callable[[], Run]:
                port, user, db, pid = where[target]
                return lambda: run_pgbench(
                    port=port, user=user, database=db, script=script, mode=mode,
                    clients=c, seconds=seconds, pid=pid,
                )  # fmt: skip

            report(args, clients, runner, targets(against))
            if args.profile and args.workers == 1:
                for mode in ("simple", "extended", "prepared"):
                    out = root / f"profile-{mode}.txt"
                    sampled = runner("tenantgate", mode, 16, args.seconds)
                    _, result = profile(wire_pid, args.seconds, out, sampled)
                    tx = result.tps * args.seconds
                    print(
                        f"\npy-spy, tenantgate -M {mode} -c 16: {result.tps:.0f} tps "
                        f"while sampled, {result.cpu_us:.0f} µs CPU/tx by /proc"
                    )
                    print("\n".join(top_costs(out, 250, tx, args.top)))
    finally:
        pg.drop_database(database)


def report(
    args: argparse.Namespace, clients: list[int],
    runner: Callable[[str, str, int, int], Callable[[], Run]],
    runs: tuple[tuple[str, str, str], ...] = TARGETS,
) -> None:  # fmt: skip
    # Warm every path: pools, plan and metadata caches, PgBouncer's server connections.
    # The smoke test's size has no warm-up: its figures are not read.
    for target, mode, _ in runs if not args.tiny else ():
        runner(target, mode, max(clients), 1)()
    results: dict[tuple[str, str, int], list[Run]] = {}
    for r in range(args.rounds):
        for c in clients:
            order = list(runs[r % len(runs) :] + runs[: r % len(runs)])
            for target, mode, _ in order:
                results.setdefault((target, mode, c), []).append(
                    runner(target, mode, c, args.seconds)()
                )
    print(f"\npgbench point select, tenant {TENANT} ({CONTACTS} contacts, 20 custom columns):")
    print("  " + SCRIPT.replace("\n", "\n  ").rstrip())
    print(
        f"  medians of {args.rounds} interleaved round(s) of {args.seconds} s; "
        f"-j 2 (-j 1 at one client); pool of {POOL} backend connections for PgBouncer "
        f"and tenantgate (server.workers = {args.workers}, sharing it); {os.cpu_count()} CPUs "
        "shared by pgbench, the proxy and PostgreSQL"
    )
    print(f"\n  {'clients':>7}  {'path':30}{'tps':>9}{'CPU µs/tx':>11}{'tg/PgBouncer':>14}")
    for c in clients:
        med: dict[tuple[str, str], Run] = {}
        for target, mode, label in runs:
            done = results[(target, mode, c)]
            cpus = [x.cpu_us for x in done if x.cpu_us is not None]
            m = med[(target, mode)] = Run(
                statistics.median(x.tps for x in done), statistics.median(cpus) if cpus else None
            )
            cpu = f"{m.cpu_us:11.0f}" if m.cpu_us is not None else f"{'-':>11}"
            ratio = ""
            if target in ("tenantgate", "against"):
                bouncer = med[("pgbouncer", "simple" if mode == "simple" else "extended")]
                ratio = f"{m.tps / bouncer.tps:13.2f}x"
            print(f"  {c:>7}  {label:30}{m.tps:9.0f}{cpu}{ratio}")
        if any(target == "against" for target, _, _ in runs):
            for mode in ("simple", "extended", "prepared"):
                head, base = med[("tenantgate", mode)], med[("against", mode)]
                assert head.cpu_us is not None and base.cpu_us is not None
                print(
                    f"  {c:>7}  this checkout / {args.against[:12]}, {mode}: "
                    f"tps {head.tps / base.tps:.2f}x, CPU µs/tx {head.cpu_us / base.cpu_us:.2f}x"
                )
    print(
        "  CPU µs/tx: the proxy process alone (tenantgate's service, PgBouncer), from "
        "/proc/PID/stat; tg/PgBouncer: tps in the same mode (prepared against extended)."
        "\n  Goal (#13): tenantgate ≥ 0.5x PgBouncer at 16 clients."
    )


if __name__ == "__main__":
    main()
