"""The `brrt` command line: parses arguments and calls library functions, nothing else."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from brrt_actors.errors import StartError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brrt", description="Serve an OpenAPI spec on gevent, one actor per operation.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a spec")
    serve.add_argument("spec", help="OpenAPI document (YAML or JSON)")
    serve.add_argument("--handlers", help="package or module name, or path to a folder or .py")
    serve.add_argument("--mock", action="store_true",
                       help="answer operations without a handler with examples")
    serve.add_argument("--host", help="listen address (env BRRTR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env PORT, default 8080)")
    serve.add_argument("--config", help="YAML config file (env vars override it)")
    serve.add_argument("--log-level", default=os.environ.get("BRRTR_LOG_LEVEL", "INFO"),
                       help="logging level (env BRRTR_LOG_LEVEL, default INFO)")
    serve.add_argument("--log-format", default=os.environ.get("BRRTR_LOG_FORMAT", "text"),
                       help="runtime log records as text or json lines (env BRRTR_LOG_FORMAT, "
                            "default text)")
    serve.add_argument("--dev", action="store_true",
                       help="development defaults for unconfigured security schemes (API key "
                            "'dev', each bearer/OAuth2 scheme its own HS256 secret "
                            "'brrt-dev-secret-never-use-in-production-<Scheme>', user dev/dev); "
                            "never in production")
    serve.add_argument("--workers", type=int,
                       help="worker processes sharing the socket, run by gunicorn's arbiter "
                            "(env BRRTR_WORKERS, default 1: one process, no arbiter)")
    serve.add_argument("--reload", action="store_true",
                       help="watch the spec (and the files it $refs), the config file and the "
                            "handlers; serve the new version on a change, without losing a "
                            "request (needs the watchfiles package)")
    serve.add_argument("--static-dir",
                       help="serve this folder's files under /static (env BRRTR_STATIC_DIR; "
                            "the prefix: BRRTR_STATIC_PREFIX); spec operations win")

    routes = commands.add_parser("routes", help="print the route table")
    routes.add_argument("spec")
    routes.add_argument("--handlers")
    routes.add_argument("--config")

    check = commands.add_parser("check", help="load and compile everything, list problems")
    check.add_argument("spec")
    check.add_argument("--handlers", help="also check that every operation has a handler")
    check.add_argument("--config")
    check.add_argument("--dev", action="store_true",
                       help="as serve --dev: unconfigured schemes get development defaults")
    check.add_argument("--mock", action="store_true",
                       help="as serve --mock: operations without a handler are fine")

    token = commands.add_parser(
        "token", help="print a test JWT for a bearer/oauth2 scheme, signed with its secret")
    token.add_argument("--scheme", required=True, help="the security scheme's name")
    token.add_argument("--config", help="YAML config file holding the scheme's secret")
    token.add_argument("--spec", help="the spec (only needed when the config file's flat "
                                      "bearer and oauth2 sections differ)")
    token.add_argument("--sub", default="user", help="the subject (default: user)")
    token.add_argument("--scope", default="", help='space-separated scopes, e.g. "read write"')
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.add_argument("--dev", action="store_true",
                       help="sign with the development secret if the scheme is unconfigured")

    hashing = commands.add_parser(
        "hash-password", help="hash a password (from stdin, or prompted) for security.basic")
    hashing.add_argument("--algorithm", choices=("scrypt", "pbkdf2_sha256"), default="scrypt")

    gen = commands.add_parser(
        "gen", help="write a runnable service for a spec: handler stubs, typed models, a "
                    "locustfile; never overwrites your functions")
    gen.add_argument("spec")
    gen.add_argument("--out", required=True, help="the service's folder (created if missing)")
    gen.add_argument("--package", default="handlers",
                     help="the handlers package's name (default: handlers)")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 when generated files are stale (for CI)")

    lint = commands.add_parser(
        "lint", help="list a spec's errors and warnings with JSON pointers (exit 1 on errors)")
    lint.add_argument("spec")
    lint.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _version() -> str:
    from brrt_actors import __version__

    return f"brrt {__version__} (Python {sys.version.split()[0]})"


def run(argv: Sequence[str]) -> int:
    """Run the command line with `argv`; return the exit code."""
    args = _parser().parse_args(argv)
    from brrt_actors.entrypoints import commands
    from brrt_actors.entrypoints.log_setup import configure_logging

    try:
        configure_logging(getattr(args, "log_level", "WARNING"),
                          getattr(args, "log_format", os.environ.get("BRRTR_LOG_FORMAT")))
        if args.command == "serve":
            return commands.serve_spec(args.spec, args.handlers, mock=args.mock, host=args.host,
                                       port=args.port, config_file=args.config, dev=args.dev,
                                       workers=args.workers, static_dir=args.static_dir,
                                       reload=args.reload)
        if args.command == "routes":
            return commands.print_routes(args.spec, args.handlers, sys.stdout,
                                         config_file=args.config)
        if args.command == "token":
            return commands.print_token(args.scheme, sys.stdout, config_file=args.config,
                                        spec=args.spec, subject=args.sub,
                                        scopes=args.scope.split(), ttl_s=args.ttl,
                                        dev=args.dev)
        if args.command == "gen":
            return commands.generate_service(args.spec, args.out, sys.stdout,
                                             package=args.package, check=args.check)
        if args.command == "lint":
            return commands.lint_spec_file(args.spec, sys.stdout, output_format=args.format)
        if args.command == "hash-password":
            return commands.print_password_hash(sys.stdout, sys.stdin, algorithm=args.algorithm)
        return commands.check_spec(args.spec, args.handlers, sys.stdout,
                                   config_file=args.config, dev=args.dev, mock=args.mock)
    except StartError as ex:
        print(f"brrt: cannot start: {ex}", file=sys.stderr)
        return 1
