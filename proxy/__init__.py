"""tenantgate: the HTTP service, pools, execution, metrics and configuration."""

__version__ = "0.1.0"
