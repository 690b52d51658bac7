"""The PostgreSQL wire-protocol front end.

PostgreSQL clients (psql, pgbench, psycopg, asyncpg, JDBC, the ORMs on top of them) speak
protocol 3.0 to tenantgate's own port and reach a tenant through the same pipeline as HTTP.
``protocol`` frames and parses the messages, ``types`` encodes values, ``connection``
runs one client's session and ``server`` accepts them.
"""
