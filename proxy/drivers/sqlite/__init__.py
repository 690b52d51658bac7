"""The native SQLite driver: the standard library's sqlite3, reads inline on the loop.

``SqliteDriver(options)`` serves tenants whose backend is SQLite when the
configuration chooses ``driver = "native"`` (``proxy.drivers.manager``); it satisfies
``proxy.drivers.base.Driver``, and its sessions ``Session``. Modules:

=============  ========================================================================
options        connection string → file URI, busy timeout, pragmas (sqliteodbc's keys)
pool           ``FilePool``: one bounded pool per tenant file, for the loop and threads
classify       which statements are plain reads (the only ones run inline)
execute        one statement: inline under a budget, else in a worker thread; timeouts
errors         the one table from sqlite3's errors to tenantgate's
stream         a read streamed from a cursor, a batch per worker-thread hop
driver         ``SqliteDriver`` and ``SqliteSession``: pools per file, transactions,
               ``blocking_source`` for tenancy, statistics, the janitor
bench          ``python -m proxy.drivers.sqlite.bench``: the measurements below
=============  ========================================================================

Inline or in a thread: decided by measurement
---------------------------------------------

SQLite is a library: a statement is CPU work (plus page reads, usually from the OS
cache) in the calling thread, with no network round trip to wait for. Handing it to a
worker thread costs more than running it. Measured with ``python -m
proxy.drivers.sqlite.bench --runs 7`` (20,000 point selects by primary key on a
100,000-row table, median of 7 runs, CPU of the whole process per call; Python
3.11.7, SQLite 3.40.1, the 2-core test box while other test suites ran on it at a
load of 2-4, so each figure is the range over four runs):

==============================================  ===============  ================
path                                            CPU µs per call  wall µs per call
==============================================  ===============  ================
cursor.execute + fetchmany on the loop          11-18            12-36
the same through ``anyio.to_thread``            149-230          153-540
``SqliteDriver.run``, inline (the default)      28-52            28-65
``SqliteDriver.run``, ``inline_budget_s=0``     216-340          214-590
one-row INSERT committed on the loop            420-840          2,000-9,800
one-row INSERT through the driver (a thread)    680-1,480        2,250-12,800
==============================================  ===============  ================

One of the four runs used ``--uvloop``: bare thread 149 µs, driver inline 28 µs,
driver thread 216 µs CPU. So reads run inline: 6-10 times less CPU than a thread
hop, and the loop does not wait on a thread pool queue. The driver's own cost on top
of sqlite3 (pool, classification, progress-handler guard, building the
``ResultSet``) is 10-25 µs; a thread-path statement also pays the loop timer that
enforces its timeout (one ``call_later``: ``anyio.fail_after`` as the backstop cost
about 40 µs more per statement).

Writes run in a worker thread: a commit is journal I/O and, with ``synchronous`` on
in rollback-journal mode, an ``fsync`` (2-10 ms of wall time per commit on this
disk, measured above) that nothing can interrupt and that would stall every request
on the loop. Long reads start inline and move to a thread when they exceed the inline
budget (2 ms, enforced every 1000 VM instructions ≈ 30-60 µs of SQLite work,
measured at 17-34 instructions/µs); reads that meet a lock move to a thread too,
where they may wait for it. ``proxy.drivers.sqlite.execute`` explains why repeating an
aborted inline attempt is safe, and how timeouts stop statements on both paths.

Differences from the ODBC path (pyodbc + sqliteodbc)
----------------------------------------------------

* Values: converted by the column's declared type as sqliteodbc converts them
  (``types``: BOOLEAN → boolean, DATE/DATETIME/TIME → date-times, NUMERIC → number,
  DECIMAL → decimal, sent as a JSON string like the ODBC path's), so a tenant's JSON
  answer keeps its shape when its backend switches between ``driver = "odbc"`` and
  ``"native"``. Column type names come from the returned values (the first non-NULL
  one; ``unknown`` when all are NULL); sqliteodbc names them by declared type, so a
  DECIMAL column is "decimal" here and "string" there, and an untyped column holding
  5 is 5 here and ``'5'`` there.
* RETURNING rows are returned (sqliteodbc drops them), and emoji and other non-BMP
  characters round-trip in SQL text, parameters and results.
* Results are fetched incrementally (``fetchmany``), so ``max_rows`` bounds the rows
  SQLite produces; sqliteodbc reads the whole result at ``execute``.
* A missing file is ``BackendUnavailable``; sqliteodbc creates an empty database.
* ``ATTACH`` is refused (``SQLITE_LIMIT_ATTACHED = 0``), extension loading stays off,
  and ``SyncPragma``/``JournalMode`` values are checked against allow-lists.
* Transactions begin with ``BEGIN IMMEDIATE`` (see ``driver``).

The driver needs asyncio (the thread path's timer is ``loop.call_later`` and its
backstop cancels the asyncio task); uvloop works.
"""

from proxy.drivers.sqlite.driver import SqliteDriver, SqliteSession

__all__ = ["SqliteDriver", "SqliteSession"]
