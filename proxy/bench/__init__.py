"""The operator's load-benchmark tools: ``tenantgate seed`` builds a fleet of tenants,
``tenantgate bench`` drives load against it, through tenantgate and directly.

``fleet`` is the contract between the two (``fleet.json``, ``tenantgate.toml``, ``token``
in the fleet's directory); the rest is the load generator (``docs/bench.md``).
"""
