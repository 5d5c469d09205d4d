"""mailings: the API, the sending workers, migrations, reports and the send-API simulator.

How to run and operate it: README.md; how a mailing goes out: docs/sending.md.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence
from datetime import date

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from settings import get_settings

    settings = get_settings()
    config = uvicorn.Config(
        "graphql_api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        fd=args.fd,
        log_config=None,
        proxy_headers=True,
        ws="websockets-sansio",
        # h11, not httptools: httptools reads request headers of any size
        # (a 128 MB header took 23 s of CPU); h11 refuses past this many bytes.
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # Connections and WebSockets at once; past it, a 503 (docs/protection.md).
        limit_concurrency=settings.max_connections,
        # On SIGTERM, open subscriptions get this long before they are closed.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if args.fd is not None:
        server.run()
        return
    # Bound before the application starts, so that "API ready" is said only
    # by a server that has its port, and a port taken is said plainly.
    server.run(sockets=[_listening(args.host, args.port)])


def _listening(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, or the command's end, saying how to move it."""
    import structlog

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As uvicorn does: a port left in TIME_WAIT by the last run is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        sys.exit(
            f"mailings serve: cannot listen on {host}:{port}: {error.strerror}. Another"
            " process may have the port: choose another with --port, or with API_PORT"
            " under make run (make run API_PORT=9000)."
        )
    structlog.get_logger("mailings.serve").info(
        "listening", url=f"http://{host}:{sock.getsockname()[1]}"
    )
    return sock


def _worker(args: argparse.Namespace) -> None:
    from tasks.consumer import run_consumer

    run_consumer(workers=args.workers, child=args.child, metrics_fd=args.metrics_fd)


def _migrate(_: argparse.Namespace) -> None:
    import structlog

    from models.db import migrate

    applied = asyncio.run(migrate())
    structlog.get_logger("mailings.migrate").info("migrations applied", applied=applied)


def _provider_sim(args: argparse.Namespace) -> None:
    from provider_sim import run_simulator

    run_simulator(args)


def _report(args: argparse.Namespace) -> None:
    from settings import get_settings
    from tasks.report.mail import SEND_ERRORS, render_csv, render_html, render_text
    from tasks.report.schedule import on_demand_report

    settings = get_settings()
    if args.send and not settings.report_enabled:
        sys.exit("mailings report --send: set SMTP_HOST and REPORT_RECIPIENTS first")
    try:
        report = asyncio.run(on_demand_report(settings, args.date, send=args.send))
    except SEND_ERRORS as error:
        sys.exit(f"mailings report --send: not sent: {type(error).__name__}: {error}")
    if not args.send:
        if args.format == "csv":
            sys.stdout.buffer.write(render_csv(report))
        elif args.format == "html":
            sys.stdout.write(render_html(report, settings.public_url))
        else:
            sys.stdout.write(render_text(report))


def _watch(args: argparse.Namespace) -> None:
    from tasks.console_watch import watch

    watch(sys.stdout, every=args.every)


def _export_schema(_: argparse.Namespace) -> None:
    from graphql_api.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def _export_docs(_: argparse.Namespace) -> None:
    from graphql_api.reference import api_markdown
    from graphql_api.schema import schema

    sys.stdout.write(api_markdown(schema))


# A socket passed by whoever starts the process (a supervisor, systemd socket
# activation, a test): its port is held from before the start to the end.
_FD_HELP = "listen on this inherited socket, bound already, instead of --host and --port"


def _parser() -> argparse.ArgumentParser:
    from provider_sim import add_fault_options

    parser = argparse.ArgumentParser(
        prog="mailings",
        description="The mailing service: its API, worker, migrations, reports and tools.",
        epilog='Settings come from the environment (README.md, "Settings"); how sending'
        " works: docs/sending.md; the API: schema.graphql and docs/.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the GraphQL API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--fd", type=int, metavar="FD", help=_FD_HELP)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run the Huey consumer that does all sending")
    worker.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each a Huey consumer beside one sending engine (default 1)",
    )
    worker.add_argument(
        "--metrics-fd",
        type=int,
        metavar="FD",
        help="serve /healthz, /readyz and /metrics on this inherited socket, bound already,"
        " instead of WORKER_METRICS_HOST:WORKER_METRICS_PORT",
    )
    # A process started by the first one: it shares its figures and serves nothing.
    worker.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(run=_worker)

    commands.add_parser("migrate", help="apply the migrations to DATABASE_URL").set_defaults(
        run=_migrate
    )

    sim = commands.add_parser("provider-sim", help="a local stand-in for the send API")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    sim.add_argument("--fd", type=int, metavar="FD", help=_FD_HELP)
    add_fault_options(sim)
    sim.set_defaults(run=_provider_sim)

    report = commands.add_parser("report", help="print or send a day's statistics report")
    report.add_argument(
        "--date",
        type=date.fromisoformat,
        help="the day, YYYY-MM-DD in REPORT_TIMEZONE (default: yesterday)",
    )
    report.add_argument("--send", action="store_true", help="email it to REPORT_RECIPIENTS")
    report.add_argument("--format", choices=("text", "html", "csv"), default="text")
    report.set_defaults(run=_report)

    watch = commands.add_parser(
        "watch", help="print each mailing's progress: started, every few seconds, finished"
    )
    watch.add_argument(
        "--every", type=float, default=5.0, help="seconds between progress lines (default 5)"
    )
    watch.set_defaults(run=_watch)

    commands.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        run=_export_schema
    )
    commands.add_parser(
        "export-docs", help="print the API reference as Markdown (docs/api.md)"
    ).set_defaults(run=_export_docs)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mailings`` console script."""
    from logs import configure_logging

    args = _parser().parse_args(argv)
    configure_logging(role=args.command)
    args.run(args)


if __name__ == "__main__":
    main()
