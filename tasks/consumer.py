"""``mailings worker``: the Huey consumer and the engine, in one or more processes."""

from __future__ import annotations

import signal
import subprocess
import sys

import structlog

from settings import get_settings
from tasks.queue import huey
from tasks.runtime import start_engine

__all__ = ["run_consumer"]

log = structlog.get_logger(__name__)


def run_consumer(workers: int = 1) -> None:
    """Run ``workers`` worker processes: each a Huey consumer beside an engine.

    Several processes use several cores; they share mailings safely through
    the database (leases, ``SKIP LOCKED``). SIGTERM and Ctrl-C stop each one
    gracefully: no new claims, in-flight requests finish and are recorded.
    """
    children = [
        subprocess.Popen([sys.executable, "-m", "cli", "worker", "--workers", "1"])
        for _ in range(workers - 1)
    ]
    import tasks.jobs  # noqa: F401  (registers the tasks with the consumer)

    runtime = start_engine()
    # SIGTERM (what Kubernetes and honcho send) stops Huey gracefully too:
    # a running task finishes before the engine below shuts down.
    consumer = huey.create_consumer(
        workers=2,
        worker_type="thread",
        # The one periodic task is the daily report: off when it has nowhere to go.
        periodic=get_settings().report_enabled,
        initial_delay=0.05,
        max_delay=1.0,
        graceful_signal="TERM",
        shutdown_timeout=30,
    )
    log.info("worker started", processes=workers)
    try:
        consumer.run()
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        runtime.stop()
        for child in children:
            child.wait()
        log.info("worker stopped")
