"""The worker's own ``/healthz``, ``/readyz`` and ``/metrics`` (``WORKER_METRICS_PORT``).

One server per ``mailings worker``, in its first process, for all its
processes: they share their figures through prometheus-client's multiprocess
directory, and each one's event loop stamps a heartbeat there every second
(``tasks/worker_metrics.py``), which is how the first process knows that the
others still answer.

- ``/healthz`` (liveness): 200 while every process of the worker runs and
  its event loop stamped a heartbeat in the last ``STALE_AFTER`` seconds;
  else 503, naming the process.
- ``/readyz``: the same, the database and the queue answer, and every
  process's dispatcher, recorder, sweeper and builder finished a round in
  the last ``LOOP_STALL_UNREADY`` seconds (liveness is progress:
  ``tasks/liveness.py``); it reports
  each process's circuit breaker state, which never makes it fail (an open
  breaker is the worker doing its job while the provider is down), and the
  largest offset of a process's clock from the database's
  (``clock_offset_seconds``), which never makes it fail either.
- ``/metrics``: Prometheus text, the sums over the worker's processes.

A thread of its own serves them with the standard library's server: a
worker whose engine loop is stuck still answers, with a 503 that says so.
No token is needed; the bodies name no secret.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from models.db import connection, fetch
from settings import get_settings
from tasks.runtime import EngineRuntime

__all__ = ["PATHS", "STALE_AFTER", "WorkerProbes", "WorkerServer"]

log = structlog.get_logger(__name__)

PATHS = ("/healthz", "/readyz", "/metrics")
STALE_AFTER = 10.0  # seconds without a heartbeat before a process counts as stuck
_TIMEOUT = 2.0  # seconds each dependency gets to answer


class WorkerProbes:
    """What the probes check, for the processes of one ``mailings worker``."""

    def __init__(
        self,
        runtime: EngineRuntime,
        processes: Callable[[], dict[int, int | None]],
        queue_depth: Callable[[], int],
    ) -> None:
        """``processes``: pid -> exit code (``None`` while it runs), this one included."""
        self._runtime = runtime
        self._processes = processes
        self._queue_depth = queue_depth
        self._registry = CollectorRegistry()
        self._registry.register(MultiProcessCollector(None))  # type: ignore[no-untyped-call]
        self._checks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")

    def metrics(self) -> bytes:
        return generate_latest(self._registry)

    def _samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (sample.labels, sample.value)
            for family in self._registry.collect()
            for sample in family.samples
            if sample.name == name
        ]

    def health(self) -> tuple[bool, dict[str, Any]]:
        beats = {
            int(labels["pid"]): value
            for labels, value in self._samples("mailings_worker_heartbeat_timestamp_seconds")
        }
        now = time.time()
        processes: dict[str, str] = {}
        for pid, returncode in self._processes().items():
            age = now - beats.get(pid, -math.inf)
            if returncode is not None:
                processes[str(pid)] = f"exited ({returncode})"
            elif pid not in beats:
                processes[str(pid)] = "starting"
            elif age > STALE_AFTER:
                processes[str(pid)] = f"stuck (no heartbeat for {age:.0f} s)"
            else:
                processes[str(pid)] = "ok"
        if not self._runtime.is_alive():
            processes["engine"] = "stopped"
        healthy = all(state == "ok" for state in processes.values())
        return healthy, {"status": "ok" if healthy else "unavailable", "processes": processes}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        healthy, body = self.health()
        dependencies = {"database": self._database, "queue": self._queue}
        for name, check in dependencies.items():
            try:
                check()
                body[name] = "ok"
            except Exception as exc:
                # The reason stays in the log: the body is public.
                log.warning("worker not ready", dependency=name, error=type(exc).__name__)
                body[name] = "unavailable"
        stalled = self._stalled_loops()
        if stalled:
            body["loops"] = stalled
        breakers = self._samples("mailings_breaker_state")
        body["breaker"] = {
            labels["state"]: int(value) for labels, value in breakers if labels.get("state")
        }
        # Informational: every time decision uses the database's clock, whatever this one says.
        offsets = [value for _, value in self._samples("mailings_clock_offset_seconds")]
        largest = max(offsets, key=lambda offset: abs(offset), default=None)
        body["clock_offset_seconds"] = None if largest is None else round(largest, 3)
        ready = healthy and not stalled and all(body[name] == "ok" for name in dependencies)
        body["status"] = "ok" if ready else "unavailable"
        return ready, body

    def _stalled_loops(self) -> dict[str, str]:
        """``pid/loop`` -> how long it has gone without a good round, for those past the bound."""
        bound = get_settings().loop_stall_unready
        now = time.time()
        stalled: dict[str, str] = {}
        for labels, value in self._samples("mailings_loop_progress_timestamp_seconds"):
            age = now - value
            if age > bound:
                where = f"{labels.get('pid')}/{labels.get('loop')}"
                stalled[where] = f"no progress for {age:.0f} s"
        return stalled

    def _database(self) -> None:
        self._runtime.run(fetch(connection(), "SELECT 1 AS ok"), _TIMEOUT)

    def _queue(self) -> None:
        self._checks.submit(self._queue_depth).result(_TIMEOUT)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        probes = self.server.probes
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._answer(200, probes.metrics(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, body = probes.health() if path == "/healthz" else probes.ready()
                self._json(200 if ok else 503, body)
            else:
                self._json(404, {"errors": [{"message": f"no such path: {path}"}]})
        except Exception:
            log.exception("worker probe failed", path=path)
            self._json(500, {"errors": [{"message": "the probe failed; see the worker's log"}]})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json")

    def _answer(self, status: int, body: bytes, media_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds: no access log.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    probes: WorkerProbes


class WorkerServer:
    """Binds at once (a port in use fails the worker's start), serves once probes are set.

    ``fd``: a socket bound already by whoever started the worker (a
    supervisor, systemd socket activation, a test), used instead of
    ``host``:``port``.
    """

    def __init__(self, host: str, port: int, *, fd: int | None = None) -> None:
        try:
            self._server = _Server((host, port), _Handler) if fd is None else _on_socket(fd)
        except OSError as error:
            where = f"{host}:{port}" if fd is None else f"file descriptor {fd}"
            raise SystemExit(
                f"mailings worker: cannot serve /metrics on {where} ({error.strerror});"
                " set WORKER_METRICS_PORT to a free port, or 0 to turn it off"
            ) from error
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._server.socket.getsockname()[:2]
        self.address = f"{bound_host}:{bound_port}"

    def serve(self, probes: WorkerProbes) -> None:
        self._server.probes = probes
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-http", daemon=True
        )
        self._thread.start()
        log.info("worker probes served", address=self.address)

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()


def _on_socket(fd: int) -> _Server:
    sock = socket.socket(fileno=fd)
    server = _Server(sock.getsockname()[:2], _Handler, bind_and_activate=False)
    server.socket.close()  # the one it made, unbound
    server.socket = sock
    server.server_activate()
    return server
