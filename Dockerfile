# syntax=docker/dockerfile:1
# tenantgate: the proxy with unixODBC and the SQL Server, PostgreSQL and SQLite drivers.
#
#   docker build -t tenantgate .
#   docker run -p 8040:8040 -v $PWD/deploy/tenantgate.toml:/etc/tenantgate/tenantgate.toml:ro \
#       -e TENANTGATE_CONTROLLER_CONNECTION_STRING=... tenantgate
#
# Two stages: wheels are built with a compiler and the ODBC headers (pyodbc has no
# wheel for every platform), tenantgate's own with its hot path compiled by mypyc
# (proxy/compiled.py; mypy, which holds mypyc, at the version the lock pins); the
# runtime image only installs them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential unixodbc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py requirements.lock README.md ./
COPY proxy ./proxy
COPY rewriter ./rewriter
COPY tenancy ./tenancy
RUN pip install --no-cache-dir -c requirements.lock mypy "setuptools>=77" \
    && TENANTGATE_COMPILE=1 pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# unixODBC, the PostgreSQL (psqlODBC) and SQLite ODBC drivers from Debian, and
# Microsoft's ODBC Driver 18 for SQL Server from Microsoft's Debian 12 repository,
# as Microsoft documents it (packages-microsoft-prod.deb installs the repository and
# its signing key). ACCEPT_EULA=Y accepts the msodbcsql18 licence.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    . /etc/os-release; \
    curl -fsSL -o /tmp/packages-microsoft-prod.deb \
        "https://packages.microsoft.com/config/debian/${VERSION_ID%%.*}/packages-microsoft-prod.deb"; \
    dpkg -i /tmp/packages-microsoft-prod.deb; \
    rm /tmp/packages-microsoft-prod.deb; \
    apt-get update; \
    ACCEPT_EULA=Y apt-get install -y --no-install-recommends \
        unixodbc msodbcsql18 odbc-postgresql libsqliteodbc; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    odbcinst -q -d

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels tenantgate \
    && rm -rf /wheels

RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tenantgate
COPY deploy/tenantgate.toml /etc/tenantgate/tenantgate.toml

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER tenantgate
EXPOSE 8040
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8040/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["tenantgate"]
CMD ["serve", "--config", "/etc/tenantgate/tenantgate.toml"]
