"""The ``mailings`` command (SPEC section 4)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        "graphql_api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        ws="websockets-sansio",
    )


def _worker(args: argparse.Namespace) -> None:
    from tasks.consumer import run_consumer

    run_consumer(workers=args.workers)


def _migrate(_: argparse.Namespace) -> None:
    import structlog

    from models.db import migrate

    applied = asyncio.run(migrate())
    structlog.get_logger("mailings.migrate").info("migrations applied", applied=applied)


def _provider_sim(args: argparse.Namespace) -> None:
    from tasks.provider_sim import run_simulator

    run_simulator(args)


def _export_schema(_: argparse.Namespace) -> None:
    from graphql_api.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailings", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the GraphQL API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run the Huey consumer that does all sending")
    worker.add_argument("--workers", type=int, default=1, help="worker threads (default 1)")
    worker.set_defaults(run=_worker)

    commands.add_parser("migrate", help="apply the migrations to DATABASE_URL").set_defaults(
        run=_migrate
    )

    sim = commands.add_parser("provider-sim", help="a local stand-in for the send API")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    try:
        from tasks.provider_sim import add_fault_options
    except ImportError:  # the simulator is optional until it exists
        pass
    else:
        add_fault_options(sim)
    sim.set_defaults(run=_provider_sim)

    commands.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        run=_export_schema
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mailings`` console script."""
    from logs import configure_logging

    args = _parser().parse_args(argv)
    configure_logging()
    args.run(args)


if __name__ == "__main__":
    main()
