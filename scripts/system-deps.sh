#!/usr/bin/env bash
# Installs the system packages tenantgate needs, only where they are missing:
# unixODBC, the PostgreSQL and SQLite ODBC drivers, a C compiler and Python's headers
# (the compiled hot path), and (for tests) the PostgreSQL server binaries, iptables,
# Prometheus, the T-SQL engine's runtime, Java and the PostgreSQL JDBC driver, and (for
# benchmarks) wrk and pgbouncer. Debian 12 package names.
set -euo pipefail

need=()
have_driver() { odbcinst -q -d 2>/dev/null | grep -qx "\[$1\]"; }
command -v odbcinst >/dev/null 2>&1 || need+=(unixodbc)
[[ -e /usr/include/sql.h ]] || need+=(unixodbc-dev)
have_driver "PostgreSQL Unicode" || need+=(odbc-postgresql)
have_driver "SQLite3" || need+=(libsqliteodbc)
# FreeTDS: one of the two SQL Server drivers (the other, Microsoft ODBC Driver 18, comes
# from PyPI's mssql-python-odbc; see tests/support/tds.py).
have_driver "FreeTDS" || need+=(tdsodbc)
for flag in "$@"; do
  case "$flag" in
    --with-server)
      compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
      # The tests' T-SQL engine (Babelfish, shipped as a .tar.zst) and its runtime.
      command -v zstd >/dev/null 2>&1 || need+=(zstd)
      command -v openssl >/dev/null 2>&1 || need+=(openssl)
      # The fault-injection suite (tests/faults) cuts a server off with iptables.
      command -v iptables >/dev/null 2>&1 || need+=(iptables)
      # tests/e2e/test_grafana_dashboard.py: a private Prometheus scrapes the service
      # and answers the dashboard's queries; promtool lints /metrics.
      command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
        || need+=(prometheus)
      # tests/e2e/test_pgwire_jdbc.py: PostgreSQL's JDBC driver, from a Java program.
      [[ -e /usr/share/java/postgresql.jar ]] || need+=(libpostgresql-jdbc-java)
      command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
      for lib in libicu72 libxml2 libssl3; do
        dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
      done
      ;;
    --with-bench)
      # benchmarks/compare.py: wrk loads the HTTP paths; pgbench (from the server
      # package above) goes through PgBouncer.
      command -v wrk >/dev/null 2>&1 || need+=(wrk)
      command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
      ;;
  esac
done
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# `make compile` (mypyc, proxy/compiled.py): a C compiler and Python's headers.
command -v gcc >/dev/null 2>&1 || need+=(gcc)
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || need+=(python3-dev)

if ((${#need[@]} == 0)); then
  exit 0
fi
echo "tenantgate: installing system packages: ${need[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "tenantgate: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
