"""PostgreSQL through psycopg 3, asynchronously, on the event loop.

    PostgresDriver                driver.py    pools per database, maintenance, the seam
      PgPool, ServerLimiter       pool.py      an asyncio pool; a cap per server
      PgSession, execute_on       session.py   statement timeouts, backstop, results
      Statements                  statements.py  libpq's extended protocol, prepared statements
      stream_on                   stream.py    a read from a server-side cursor, FETCH per batch
      conn_params                 conninfo.py  ODBC-style connection string → libpq
      to_numbered                 placeholders.py  ``?`` → ``$n``
      ADAPTERS, type_name         types.py     what values become, and their type names
      translate                   errors.py    psycopg errors → tenantgate errors
      BlockingConnection          blocking.py  a DB-API face for tenancy's worker threads
      Watch                       watch.py     one timer for every statement's backstop

Measured on the test box (2 cores shared with PostgreSQL 15, psycopg 3.3.9 binary,
libpq 18, uvloop; ranges are two runs): raw psycopg with this driver's adapters and
connection parameters, a point select by primary key (5 columns) and one row of an
818-column table; steady state is the median wall time and the mean client CPU per
execute+fetch after warm-up, "fresh" the 1st / 2nd / 3rd run on a new connection
(mean of 20 connections).

==========  ===================  ===========  =========  =============================
query       prepare_threshold    wall µs      CPU µs     fresh connection, µs
==========  ===================  ===========  =========  =============================
point       0                    204-222      144-155    2751-3107 / 416-516 / 255-380
point       1 (chosen)           190-193      128-133    2954-3383 / 931-2440 / 398-1136
point       5 (psycopg default)  177-202      128-145    2375-3440 / 626-1605 / 403-649
point       None (never)         226-243      126-131    2077-3140 / 800-1359 / 316-807
818 cols    0                    637-650      347-350    18149-26109 / 2157-2955 / 1826-2789
818 cols    1 (chosen)           478-661      274-380    14884-25651 / 9500-14792 / 2447-3926
818 cols    5                    447-551      262-304    14786-17609 / 9143-11059 / 8881-10450
818 cols    None                 6693-9874    795-822    14752-15694 / 8273-9086 / 8399-8505
==========  ===================  ===========  =========  =============================

Prepared, the 818-column row costs a tenth of its unprepared self: the server
otherwise parses and plans 818 columns every time. Once prepared, every threshold is
alike (the differences above are the box's noise); threshold 0 is prepared from the
second run on, at the price of one extra round trip on the first run of each
statement on each connection. The driver uses 1 all the same (``statements``
says why: with thousands of tenants, preparing on first sight costs two round trips per
request). Binary against text results
(threshold 0): point 178-194 against 165-206 µs wall, 125-134 against 121-142 µs CPU;
818 columns 444-637 against 505-563 µs wall, 274-328 against 267-298 µs CPU: no
consistent difference, and binary hands out raw bytes for types without a binary
loader (enums, citext, extensions' types), so text.

Per request through ``PostgresDriver.run`` (pool, timeouts, result building included).
Client instructions per request (valgrind ``cachegrind``, uvloop, the difference
between 600 requests and none, so the box's load does not matter): point select
175,000, against 129,000 for raw psycopg on the same SQL, 484,000 for the ODBC path it
replaces (``proxy.drivers.odbc`` pool + execute through ``anyio.to_thread``, pyodbc 5.5
+ psqlODBC) and 94,000 for bare pyodbc on one reused cursor with no pool and no thread
hop; the 818-column row 1,076,000 against 1,015,000 raw. Wall and CPU time on the
quiet box, uvloop / asyncio's own loop: point 261 / 295 µs wall, 180 / 246 µs CPU
(ODBC path 874 / 832 µs, 483 / 571 µs CPU; bare pyodbc 151-168 µs, 89-90 µs CPU); the
818-column row 0.56-0.72 ms wall, 0.35-0.55 ms CPU (ODBC path 42-51 ms wall, 32-36 ms
CPU: psqlODBC prepares, describes and deallocates on every new cursor; bare pyodbc
1.6-1.9 ms, 1.3-1.5 ms CPU).
"""

from proxy.drivers.postgres.driver import PostgresDriver

__all__ = ["PostgresDriver"]
