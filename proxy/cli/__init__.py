"""The ``tenantgate`` command.

tenantgate serve --config PATH      serve with a configuration file
tenantgate demo [--dir var/demo]    create the embedded SQLite demo (once) and serve it
tenantgate hash-token [TOKEN]       print the sha256 to put in a [[tokens]] entry
tenantgate pgwire-verifier [SECRET] print the scram_sha256 of a [[pgwire.users]] entry
tenantgate check-config --config    validate a configuration file and exit
tenantgate bench --fleet DIR ...     drive load at a fleet (docs/bench.md)
tenantgate seed --dir DIR ...        create, resume or drop a fleet of tenants (docs/bench.md)
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from proxy.auth import hash_token
from proxy.cli import bench as bench_cli
from proxy.cli import seed as seed_cli
from proxy.cli.demo import DEMO_PORT, DEMO_TOKEN_ENV, demo_settings, print_examples
from proxy.cli.serve import configure_logging, serve
from proxy.config import ConfigError, load

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantgate", description="Tenant-aware SQL proxy.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="serve with a configuration file")
    serve_cmd.add_argument("--config", required=True)
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    demo = sub.add_parser("demo", help="create the SQLite demo once and serve it")
    demo.add_argument("--dir", default="var/demo")
    demo.add_argument("--port", type=int, default=DEMO_PORT)
    hash_cmd = sub.add_parser("hash-token", help="print the sha256 of a token")
    hash_cmd.add_argument("token", nargs="?")
    verifier_cmd = sub.add_parser(
        "pgwire-verifier", help="print the SCRAM-SHA-256 verifier of a wire user's secret"
    )
    verifier_cmd.add_argument("secret", nargs="?")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("--config", required=True)
    bench_cli.add_arguments(sub.add_parser("bench", help="drive load at a fleet of tenants"))
    seed_cli.add_arguments(sub.add_parser("seed", help="create a fleet of tenants to bench"))
    args = parser.parse_args(argv)
    # Logging is the service's (serve, demo: configured from their settings below); the
    # tools print what they have to say, and leave a caller's logging alone (a test
    # that runs them in process, a script).
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "seed":
        return seed_cli.run(args)

    try:
        if args.command == "serve":
            settings = load(args.config)
            configure_logging(settings.logging)
            serve(settings, config_path=args.config, host=args.host, port=args.port)
        elif args.command == "demo":
            token = os.environ.get(DEMO_TOKEN_ENV) or secrets.token_urlsafe(24)
            settings = demo_settings(Path(args.dir).resolve(), token, args.port)
            configure_logging(settings.logging)
            print_examples(token, args.port, DEMO_TOKEN_ENV in os.environ)
            serve(settings, host="127.0.0.1", port=args.port)
        elif args.command == "hash-token":
            token = args.token or sys.stdin.readline().strip()
            print(hash_token(token))
        elif args.command == "pgwire-verifier":
            from proxy.frontends.pgwire.auth import make_verifier  # noqa: PLC0415

            secret = args.secret or sys.stdin.readline().strip()
            print(make_verifier(secret))
        elif args.command == "check-config":
            load(args.config)
            print("configuration is valid")
    except ConfigError as exc:
        print(f"tenantgate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
