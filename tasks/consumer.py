"""``mailings worker``: the Huey consumer and the engine, in one or more processes.

The first process starts the others (``--workers N``), serves the probes and
the figures of all of them (``tasks/worker_http.py``) and watches them: when
one ends unexpectedly it stops the rest and exits with an error, so that the
supervisor (Compose, Kubernetes, honcho) restarts the whole worker rather
than leaving it short of a process without anyone knowing.

The processes share their Prometheus figures through a directory of their
own (prometheus-client's multiprocess mode), made fresh by the first process
(``$TMPDIR/mailings-worker-metrics-<pid>``) and removed when it stops; one
left by a worker killed outright is removed by the next one to start.
prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first
imported, so this module sets it before anything imports it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import structlog

from settings import get_settings

__all__ = ["run_consumer"]

log = structlog.get_logger(__name__)

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DIR_PREFIX = "mailings-worker-metrics-"


def _share_metrics_between_processes() -> Path:
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the worker set its multiprocess directory"
        )
    base = Path(tempfile.gettempdir())
    # Directories of workers that were killed outright (or of an earlier
    # container with this pid, on a Kubernetes emptyDir) go first.
    for old in base.glob(f"{_DIR_PREFIX}*"):
        pid = old.name.removeprefix(_DIR_PREFIX)
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"{_DIR_PREFIX}{os.getpid()}"
    path.mkdir(mode=0o700)
    # Written, not read: the child processes and prometheus-client take it from here.
    os.environ[_MULTIPROC_ENV] = str(path)
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def run_consumer(workers: int = 1, *, child: bool = False, metrics_fd: int | None = None) -> None:
    """Run ``workers`` worker processes: each a Huey consumer beside an engine.

    Several processes use several cores; they share mailings safely through
    the database (leases, ``SKIP LOCKED``). SIGTERM and Ctrl-C stop each one
    gracefully: no new claims, in-flight requests finish and are recorded.
    ``child``: a process started by the first one (it serves nothing).
    ``metrics_fd``: serve the probes on this socket, bound already, rather
    than on ``WORKER_METRICS_HOST``:``WORKER_METRICS_PORT``.
    """
    settings = get_settings()
    metrics_dir = None if child else _share_metrics_between_processes()
    from prometheus_client import multiprocess

    from tasks.queue import huey
    from tasks.runtime import start_engine
    from tasks.worker_http import WorkerProbes, WorkerServer

    server = None
    if not child and (settings.worker_metrics_port or metrics_fd is not None):
        try:
            server = WorkerServer(
                settings.worker_metrics_host, settings.worker_metrics_port, fd=metrics_fd
            )
        except SystemExit:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
            raise
    children = [
        subprocess.Popen([sys.executable, "-m", "cli", "worker", "--workers", "1", "--child"])
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
        periodic=settings.report_enabled,
        initial_delay=0.05,
        max_delay=1.0,
        graceful_signal="TERM",
        shutdown_timeout=30,
    )

    def processes() -> dict[int, int | None]:
        return {os.getpid(): None, **{c.pid: c.poll() for c in children}}

    if server is not None:
        server.serve(WorkerProbes(runtime, processes, huey.pending_count))
    stopping = threading.Event()
    lost = _watch(children, stopping)
    log.info("worker started", processes=workers)
    try:
        consumer.run()
    finally:
        stopping.set()
        for process in children:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        runtime.stop()
        for process in children:
            process.wait()
            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
        if server is not None:
            server.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("worker stopped")
    if lost.is_set():
        sys.exit("mailings worker: a worker process ended unexpectedly; see the log above")


def _watch(children: list[subprocess.Popen[bytes]], stopping: threading.Event) -> threading.Event:
    """Stop this worker (SIGTERM, so gracefully) as soon as one of its other processes ends;
    the event is set when one ended with an error (a crash, SIGKILL)."""
    lost = threading.Event()

    def watch() -> None:
        while not stopping.wait(0.5):
            for process in children:
                returncode = process.poll()
                if returncode is None or stopping.is_set():
                    continue
                # 0: it was stopped (Ctrl-C reaches every process of the group).
                if returncode != 0:
                    log.error(
                        "a worker process ended unexpectedly; stopping the others so that"
                        " the whole worker restarts",
                        pid=process.pid,
                        returncode=returncode,
                    )
                    lost.set()
                os.kill(os.getpid(), signal.SIGTERM)
                return

    if children:
        threading.Thread(target=watch, name="children", daemon=True).start()
    return lost
