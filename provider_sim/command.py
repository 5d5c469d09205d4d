"""``mailings provider-sim``: run the simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable

from provider_sim.faults import faults_from_args
from provider_sim.server import SimulatorServer

__all__ = ["run_simulator"]


def run_simulator(args: argparse.Namespace) -> None:
    """Serve with the faults of ``args`` (:func:`provider_sim.add_fault_options`) until a signal."""
    try:
        faults, timed = faults_from_args(args)
    except ValueError as exc:  # what one option cannot check alone
        sys.exit(f"mailings provider-sim: {exc}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        server = SimulatorServer(
            args.host,
            args.port,
            control_port=getattr(args, "control_port", None),
            sock=_inherited(getattr(args, "fd", None)),
            control_sock=_inherited(getattr(args, "control_fd", None)),
            faults=faults,
        )
        await server.start()
        try:
            if timed:
                await server.set_faults(**timed)
            await stop.wait()
        finally:
            await server.stop()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())


def _inherited(fd: int | None) -> socket.socket | None:
    """The socket of file descriptor ``fd``, bound by whoever started us (its family as it is)."""
    return None if fd is None else socket.socket(fileno=fd)
